//! The shared snapshot fixtures load, and analysis finds what each socket in `busy.json` was built to show.

use kwatch::model::Snapshot;

fn load(name: &str) -> Snapshot {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read '{path}': {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse '{path}': {e}"))
}

#[test]
fn fixtures_load_with_findings_empty() {
    let busy = load("busy.json");
    assert_eq!(busy.host, "web-1");
    assert_eq!(busy.connections.len(), 14);
    assert!(busy.connections.iter().all(|c| c.findings.is_empty()));
    assert_eq!(busy.processes.len(), 5);
    assert!(busy.comm(3107).contains('\u{1b}'));
    let empty = load("empty.json");
    assert!(empty.connections.is_empty());
}
