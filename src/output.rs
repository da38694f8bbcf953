//! Snapshot outputs for scripts and people: the text table and the JSON document.

mod chunks;
pub mod json;
pub mod table;
