//! Makes untrusted strings (process names, command lines) safe to put on a terminal.
