//! Reads the namespace TCP sysctls from /proc/sys/net/ipv4.
