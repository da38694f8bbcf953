//! `Findings`: what analysis says about one socket, at most one severity per code, kept in two bytes.
//!
//! A snapshot of a busy host holds hundreds of thousands of sockets and a `Vec` per socket costs 24 bytes before
//! it holds anything; two bits per code (absent, info, warning, critical) hold the same.

use std::fmt;

use serde::de::Deserializer;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::{Finding, FindingCode, Severity};

/// A socket's findings, read back worst first (ties in [`FindingCode`] order), one per code. Serialized as a
/// list of [`Finding`]s.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Findings(u16);

/// Severities from worst to least, as [`Findings::iter`] visits them.
const WORST_FIRST: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::Info];

fn shift(code: FindingCode) -> u32 {
    2 * code as u32
}

fn encode(severity: Severity) -> u16 {
    match severity {
        Severity::Info => 1,
        Severity::Warning => 2,
        Severity::Critical => 3,
    }
}

impl Findings {
    /// No finding: a healthy socket.
    pub const NONE: Findings = Findings(0);

    /// Adds `finding`; a finding with the same code is replaced.
    pub fn insert(&mut self, finding: Finding) {
        let at = shift(finding.code);
        self.0 = (self.0 & !(0b11 << at)) | encode(finding.severity) << at;
    }

    /// The severity of `code`, if it was found.
    pub fn get(&self, code: FindingCode) -> Option<Severity> {
        match self.0 >> shift(code) & 0b11 {
            0 => None,
            1 => Some(Severity::Info),
            2 => Some(Severity::Warning),
            _ => Some(Severity::Critical),
        }
    }

    pub fn contains(&self, code: FindingCode) -> bool {
        self.get(code).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn len(&self) -> usize {
        FindingCode::ALL
            .iter()
            .filter(|c| self.contains(**c))
            .count()
    }

    /// The worst severity, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.iter().next().map(|f| f.severity)
    }

    /// Worst first; among equal severities in [`FindingCode`] order.
    pub fn iter(&self) -> Iter {
        Iter {
            findings: *self,
            // Nothing to visit: start past the last severity.
            rank: if self.is_empty() {
                WORST_FIRST.len()
            } else {
                0
            },
            code: 0,
        }
    }
}

/// The findings of a [`Findings`], worst first.
#[derive(Debug, Clone)]
pub struct Iter {
    findings: Findings,
    /// Index into [`WORST_FIRST`].
    rank: usize,
    /// Index into [`FindingCode::ALL`].
    code: usize,
}

impl Iterator for Iter {
    type Item = Finding;

    fn next(&mut self) -> Option<Finding> {
        while let Some(&severity) = WORST_FIRST.get(self.rank) {
            while let Some(&code) = FindingCode::ALL.get(self.code) {
                self.code += 1;
                if self.findings.get(code) == Some(severity) {
                    return Some(Finding { code, severity });
                }
            }
            self.rank += 1;
            self.code = 0;
        }
        None
    }
}

impl FromIterator<Finding> for Findings {
    fn from_iter<I: IntoIterator<Item = Finding>>(iter: I) -> Self {
        let mut findings = Findings::NONE;
        for f in iter {
            findings.insert(f);
        }
        findings
    }
}

impl IntoIterator for &Findings {
    type Item = Finding;
    type IntoIter = Iter;

    fn into_iter(self) -> Iter {
        self.iter()
    }
}

impl fmt::Debug for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Findings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Findings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Finding>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn f(code: FindingCode, severity: Severity) -> Finding {
        Finding { code, severity }
    }

    #[test]
    fn every_code_keeps_its_own_severity() {
        let severities = [Severity::Info, Severity::Warning, Severity::Critical];
        for (i, code) in FindingCode::ALL.into_iter().enumerate() {
            for severity in severities {
                // Every other code set to something else: no bit of one code leaks into another.
                let mut all: Findings = FindingCode::ALL
                    .into_iter()
                    .map(|c| f(c, severities[(i + 1) % 3]))
                    .collect();
                all.insert(f(code, severity));
                assert_eq!(all.get(code), Some(severity), "{code}");
                for other in FindingCode::ALL.into_iter().filter(|c| *c != code) {
                    assert_eq!(all.get(other), Some(severities[(i + 1) % 3]), "{other}");
                }
                assert_eq!(all.len(), FindingCode::ALL.len());
            }
        }
    }

    #[test]
    fn reads_back_worst_first_then_in_code_order() {
        let found: Findings = [
            f(FindingCode::ZeroWindow, Severity::Warning),
            f(FindingCode::NoKeepaliveIdle, Severity::Info),
            f(FindingCode::Retransmitting, Severity::Critical),
            f(FindingCode::CloseWait, Severity::Warning),
        ]
        .into_iter()
        .collect();
        let order: Vec<Finding> = found.iter().collect();
        assert_eq!(
            order,
            vec![
                f(FindingCode::Retransmitting, Severity::Critical),
                f(FindingCode::CloseWait, Severity::Warning),
                f(FindingCode::ZeroWindow, Severity::Warning),
                f(FindingCode::NoKeepaliveIdle, Severity::Info),
            ]
        );
        assert_eq!(found.worst(), Some(Severity::Critical));
        assert_eq!(found.len(), 4);
        assert!(!found.contains(FindingCode::DeadPeerSuspect));
        assert!(Findings::NONE.is_empty() && Findings::NONE.worst().is_none());
    }

    #[test]
    fn a_second_finding_of_one_code_replaces_the_first() {
        let mut found = Findings::NONE;
        found.insert(f(FindingCode::CloseWait, Severity::Critical));
        found.insert(f(FindingCode::CloseWait, Severity::Info));
        assert_eq!(
            found.iter().collect::<Vec<_>>(),
            vec![f(FindingCode::CloseWait, Severity::Info)]
        );
    }

    #[test]
    fn json_is_the_list_of_findings() {
        let found: Findings = [
            f(FindingCode::DeadPeerSuspect, Severity::Critical),
            f(FindingCode::KeepaliveDefault, Severity::Info),
        ]
        .into_iter()
        .collect();
        let json = serde_json::to_string(&found).unwrap();
        assert_eq!(
            json,
            r#"[{"code":"dead_peer_suspect","severity":"critical"},{"code":"keepalive_default","severity":"info"}]"#
        );
        assert_eq!(serde_json::from_str::<Findings>(&json).unwrap(), found);
        assert_eq!(
            serde_json::from_str::<Findings>("[]").unwrap(),
            Findings::NONE
        );
        assert_eq!(std::mem::size_of::<Findings>(), 2);
    }
}
