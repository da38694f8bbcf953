//! Snapshot outputs for scripts and people: the text table and the JSON document.

pub mod json;
pub mod table;
