//! Port filters as `INET_DIAG_REQ_BYTECODE`: a tiny program the kernel runs on each socket before it sends it.
//!
//! The program is a list of `struct inet_diag_bc_op { u8 code; u8 yes; u16 no; }`; `yes` and `no` are byte
//! offsets forward, taken when the op's condition holds or not. A socket is sent when the program's last jump
//! lands exactly on its end, and dropped when a jump goes past it (by convention 4 bytes past). A port test is
//! two ops, the second carrying the port in `no`. The kernel's audit (`inet_diag_bc_audit`) walks the program
//! along the `yes` jumps only, and accepts a `no` jump only to an op it met on that walk, so an OR is laid out as
//! `ss` does it: `test, JMP, test, JMP, ..., test`, each test jumping on failure to the next test, on success to
//! the JMP after it, which jumps to the end of the OR.

use std::fmt;

/// `INET_DIAG_REQ_BYTECODE`: the request attribute that carries the program.
pub const INET_DIAG_REQ_BYTECODE: u16 = 1;

/// Op codes of `enum` in `linux/inet_diag.h` used here.
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_EQ: u8 = 11;
const INET_DIAG_BC_D_EQ: u8 = 12;

/// The longest program a request can carry: the attribute's length is a u16 that counts its 4-byte header,
/// and the jump past the end (`len + 4`) must fit the u16 `no`.
pub const MAX_LEN: usize = u16::MAX as usize - OP_LEN;

/// `sizeof(struct inet_diag_bc_op)`.
const OP_LEN: usize = 4;
/// A port test: the op and the op holding the port.
const TEST_LEN: usize = 2 * OP_LEN;

/// One condition on a socket's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortCond {
    /// The local (source) port is this.
    Local(u16),
    /// The peer (destination) port is this.
    Peer(u16),
}

impl PortCond {
    fn holds(self, local_port: u16, peer_port: u16) -> bool {
        match self {
            PortCond::Local(p) => p == local_port,
            PortCond::Peer(p) => p == peer_port,
        }
    }
}

/// A filter on ports in conjunctive form: every clause must hold, and a clause holds when any of its conditions
/// does. No clause: every socket passes (and no bytecode is sent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortFilter {
    clauses: Vec<Vec<PortCond>>,
}

impl PortFilter {
    /// The filter of `--port` (local or peer), `--sport` (local) and `--dport` (peer): values within one list
    /// are alternatives, the lists combine with AND, an empty list puts no constraint.
    pub fn new(ports: &[u16], sports: &[u16], dports: &[u16]) -> PortFilter {
        let mut filter = PortFilter::default();
        filter.require(
            ports
                .iter()
                .flat_map(|&p| [PortCond::Local(p), PortCond::Peer(p)]),
        );
        filter.require(sports.iter().map(|&p| PortCond::Local(p)));
        filter.require(dports.iter().map(|&p| PortCond::Peer(p)));
        filter
    }

    /// Adds a clause: at least one of `any` must hold. An empty clause is ignored (no constraint).
    pub fn require(&mut self, any: impl IntoIterator<Item = PortCond>) {
        let mut clause: Vec<PortCond> = Vec::new();
        for cond in any {
            if !clause.contains(&cond) {
                clause.push(cond);
            }
        }
        if !clause.is_empty() {
            self.clauses.push(clause);
        }
    }

    /// True when the filter lets every socket through.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// What the kernel is asked to decide, decided here: the filter's meaning, for tests.
    pub fn matches(&self, local_port: u16, peer_port: u16) -> bool {
        self.clauses
            .iter()
            .all(|clause| clause.iter().any(|c| c.holds(local_port, peer_port)))
    }

    /// The bytecode program: empty for an empty filter, `None` when it would be longer than [`MAX_LEN`]
    /// (about 5,000 ports; then the kernel cannot filter and the caller filters alone).
    pub fn bytecode(&self) -> Option<Vec<u8>> {
        let len: usize = self.clauses.iter().map(|c| clause_len(c.len())).sum();
        if len > MAX_LEN {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        for clause in &self.clauses {
            let clause_end = out.len() + clause_len(clause.len());
            for (i, cond) in clause.iter().enumerate() {
                let last = i + 1 == clause.len();
                let (code, port) = match *cond {
                    PortCond::Local(p) => (INET_DIAG_BC_S_EQ, p),
                    PortCond::Peer(p) => (INET_DIAG_BC_D_EQ, p),
                };
                if last {
                    // Holds: on to the next clause (or the end: sent). Fails: past the end (dropped).
                    let reject = len + OP_LEN - out.len();
                    push_op(&mut out, code, TEST_LEN, reject);
                } else {
                    // Holds: to the JMP after this test. Fails: over the JMP to the next test.
                    push_op(&mut out, code, TEST_LEN, TEST_LEN + OP_LEN);
                }
                push_op(&mut out, 0, 0, usize::from(port));
                if !last {
                    // The JMP always takes `no`: to the end of the clause.
                    let to_end = clause_end - out.len();
                    push_op(&mut out, INET_DIAG_BC_JMP, OP_LEN, to_end);
                }
            }
        }
        debug_assert_eq!(out.len(), len);
        Some(out)
    }
}

impl fmt::Display for PortFilter {
    /// `(sport 80 or dport 80) and dport 5432`, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, clause) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            let parens = clause.len() > 1 && self.clauses.len() > 1;
            if parens {
                f.write_str("(")?;
            }
            for (j, cond) in clause.iter().enumerate() {
                if j > 0 {
                    f.write_str(" or ")?;
                }
                match cond {
                    PortCond::Local(p) => write!(f, "sport {p}")?,
                    PortCond::Peer(p) => write!(f, "dport {p}")?,
                }
            }
            if parens {
                f.write_str(")")?;
            }
        }
        Ok(())
    }
}

/// Bytes of a clause of `n` conditions: `n` tests and a JMP between each two.
fn clause_len(n: usize) -> usize {
    n * TEST_LEN + n.saturating_sub(1) * OP_LEN
}

/// Appends one `struct inet_diag_bc_op`; `no` (like the port it carries in a test's second op) is a u16 in host
/// byte order. `yes` is at most 8 here and `no` at most `MAX_LEN + 4`, so the casts keep every bit.
fn push_op(out: &mut Vec<u8>, code: u8, yes: usize, no: usize) {
    debug_assert!(u8::try_from(yes).is_ok() && u16::try_from(no).is_ok());
    out.push(code);
    out.push(yes as u8);
    out.extend_from_slice(&(no as u16).to_ne_bytes());
}

#[cfg(test)]
mod tests;
