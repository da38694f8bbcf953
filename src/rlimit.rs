//! The open-file limit (RLIMIT_NOFILE): raised to the hard limit at start, read to size the exporter.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft open-file limit to the hard limit (a no-op when they are equal) and returns the soft limit
/// now in force (`None`: unlimited). A failure leaves the limit as it was: a low limit only matters to a busy
/// exporter, which sizes itself from what this returns.
pub fn raise_nofile() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum;
        }
    }
    limit.current
}
