//! The JSON document of `kwatch --once --json`.
