//! How kwatch ends: an error on one line, the exit status (2, or what `kill` and `keepalive` say), a closed pipe
//! taken quietly.

use std::io;
use std::process::ExitCode;

use thiserror::Error;

/// Exit status 1: there was nothing to do.
pub const EXIT_NOTHING_TO_DO: u8 = 1;
/// Exit status 2: an error, or not one socket could be handled.
pub const EXIT_FAILED: u8 = 2;
/// Exit status 3: some sockets were handled, some not.
pub const EXIT_PARTIAL: u8 = 3;

/// A command that did not do all it was asked: the message for stderr and the exit status.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct Unfinished {
    pub status: u8,
    pub message: String,
}

impl Unfinished {
    pub fn error(status: u8, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Unfinished {
            status,
            message: message.into(),
        })
    }
}

/// The exit status for `failed` of `asked` sockets not handled (`asked` > 0): `None` when all were.
pub fn failure_status(failed: usize, asked: usize) -> Option<u8> {
    match failed {
        0 => None,
        f if f >= asked => Some(EXIT_FAILED),
        _ => Some(EXIT_PARTIAL),
    }
}

/// The exit code of a run: errors print one line (`kwatch: ...`) and exit 2 (`kill` and `keepalive`: 1, 2 or 3,
/// see [`Unfinished`]); a closed pipe exits 0 quietly.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kwatch: {}", error_line(&err));
            // `kill` and `keepalive` tell nothing to do (1) and a partial failure (3) apart from errors (2).
            ExitCode::from(
                err.downcast_ref::<Unfinished>()
                    .map_or(EXIT_FAILED, |u| u.status),
            )
        }
    }
}

/// An error and its causes on one line, `a: b: c`, leaving out a cause whose text the line already holds
/// (errors that print their source in their own message).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_names_each_cause_once() {
        let io = io::Error::from(io::ErrorKind::NotFound);
        let inner = crate::netns::NetnsError::Open {
            path: "/run/netns/x".into(),
            source: io,
        };
        let err = anyhow::Error::new(inner).context("taking a snapshot");
        let line = error_line(&err);
        assert_eq!(
            line,
            "taking a snapshot: cannot open network namespace '/run/netns/x': entity not found"
        );
        let plain = anyhow::anyhow!("outer").context("top");
        assert_eq!(error_line(&plain), "top: outer");
    }
}
