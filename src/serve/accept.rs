//! What an `accept` failure means for the listener: retry after a pause, or give up; and when to say so.

use std::io;
use std::time::{Duration, Instant};

/// How to go on after a failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptFailure {
    /// The connection was gone before it was accepted, or the call was interrupted: accept the next one.
    Retry,
    /// Out of fds or memory: close an idle connection if any, pause, then accept again.
    Exhausted,
    /// The listener itself is broken: serving is impossible.
    Fatal,
}

/// Classifies an `accept` error by its errno.
pub fn classify(err: &io::Error) -> AcceptFailure {
    match err.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            AcceptFailure::Exhausted
        }
        Some(
            libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EINTR
            | libc::EAGAIN
            | libc::EPROTO
            | libc::EPERM
            | libc::ETIMEDOUT
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ENONET
            | libc::EOPNOTSUPP
            | libc::ENOPROTOOPT,
        ) => AcceptFailure::Retry,
        _ if err.kind() == io::ErrorKind::Interrupted => AcceptFailure::Retry,
        _ => AcceptFailure::Fatal,
    }
}

/// The pause after an exhausted `accept`, so a full fd table does not turn into a busy loop.
pub const EXHAUSTED_PAUSE: Duration = Duration::from_millis(100);

/// Rate-limits the log of accept failures: the first at once, then at most one line per `every`, which counts
/// the failures it did not print.
#[derive(Debug)]
pub struct FailureLog {
    every: Duration,
    last: Option<Instant>,
    unsaid: u64,
}

impl FailureLog {
    pub fn new(every: Duration) -> FailureLog {
        FailureLog {
            every,
            last: None,
            unsaid: 0,
        }
    }

    /// Records a failure at `now`; returns the line to print, if one is due.
    pub fn note(&mut self, now: Instant, err: &io::Error) -> Option<String> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.unsaid += 1;
            return None;
        }
        let more = match std::mem::take(&mut self.unsaid) {
            0 => String::new(),
            n => format!(" ({n} more since the last such line)"),
        };
        self.last = Some(now);
        Some(format!(
            "kwatch: warning: cannot accept a connection: {err}{more}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_errno() {
        let e = io::Error::from_raw_os_error;
        assert_eq!(classify(&e(libc::EMFILE)), AcceptFailure::Exhausted);
        assert_eq!(classify(&e(libc::ENFILE)), AcceptFailure::Exhausted);
        assert_eq!(classify(&e(libc::ECONNABORTED)), AcceptFailure::Retry);
        assert_eq!(classify(&e(libc::EINTR)), AcceptFailure::Retry);
        assert_eq!(classify(&e(libc::EBADF)), AcceptFailure::Fatal);
        assert_eq!(classify(&e(libc::EINVAL)), AcceptFailure::Fatal);
    }

    #[test]
    fn failures_are_logged_at_most_once_per_interval_with_a_count() {
        let mut log = FailureLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let err = io::Error::from_raw_os_error(libc::EMFILE);
        let first = log.note(t0, &err).expect("the first is said");
        assert!(
            first.starts_with("kwatch: warning: cannot accept a connection: "),
            "{first}"
        );
        assert!(!first.contains("more"), "{first}");
        for i in 1..=1000 {
            assert_eq!(log.note(t0 + Duration::from_millis(i), &err), None);
        }
        let next = log
            .note(t0 + Duration::from_secs(11), &err)
            .expect("due again");
        assert!(
            next.ends_with(" (1000 more since the last such line)"),
            "{next}"
        );
    }
}
