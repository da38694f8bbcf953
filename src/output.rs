//! Outputs for scripts and people: the text table and the JSON document of a snapshot, and the line of an event.

mod chunks;
pub mod event_line;
pub mod json;
pub mod table;
