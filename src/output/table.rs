//! The width-aware text table of `kwatch --once`.
