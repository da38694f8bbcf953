//! The live view's `K` and `E`, performed on the collector thread once the user said yes: SOCK_DESTROY requests or
//! a few setsockopt calls per socket, so the UI thread never waits on a syscall; one line for the footer comes back.

use std::path::Path;

use crate::act;
use crate::diag::sock_destroy::DestroyError;
use crate::model::keepalive::KeepaliveValues;
use crate::model::{Connection, NamespaceInfo};
use crate::sockopt::Reader;
use crate::sockopt::enable::enable_keepalive;
use crate::tui::act::{ActKind, Pending};

/// Does what `pending` asks and says how it went, in one line.
pub fn perform(pending: &Pending, namespaces: &[NamespaceInfo], proc_root: &Path) -> String {
    let targets: Vec<&Connection> = pending.targets.iter().collect();
    let n = targets.len();
    match pending.kind {
        ActKind::Kill => {
            let results = act::kill_all(&targets, namespaces, proc_root);
            let killed = results.iter().filter(|r| matches!(r, Some(Ok(())))).count();
            let gone = results
                .iter()
                .filter(|r| matches!(r, Some(Err(DestroyError::Gone))))
                .count();
            let first_error = results.iter().find_map(|r| match r {
                Some(Err(e)) if !matches!(e, DestroyError::Gone) => Some(e.to_string()),
                _ => None,
            });
            let mut line = format!("killed {killed} of {n}");
            if gone > 0 {
                line.push_str(&format!(", {gone} already gone"));
            }
            if let Some(e) = first_error {
                line.push_str(&format!(": {e}"));
            } else if killed > 0 {
                line.push_str("; the owning program keeps a dead fd until it closes it");
            }
            line
        }
        ActKind::Keepalive => {
            let v = KeepaliveValues::DEFAULT;
            let mut reader = Reader::new();
            let mut on = 0;
            let mut first_error = None;
            for conn in &targets {
                match enable_keepalive(&mut reader, conn, v) {
                    Ok(read) if v.applied_in(&read) => on += 1,
                    Ok(read) => {
                        first_error.get_or_insert_with(|| act::plan::readback_text(v, &read));
                    }
                    Err(e) => {
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            let mut line = format!(
                "keepalive on for {on} of {n} (idle {}s intvl {}s cnt {}, read back)",
                v.idle_s, v.intvl_s, v.cnt
            );
            if let Some(e) = first_error {
                line.push_str(&format!(": {e}"));
            }
            line
        }
    }
}
