//! The encoding on bytes, and its meaning under a port of the kernel's own audit and interpreter
//! (`inet_diag_bc_audit`, `valid_cc`, `inet_diag_bc_run` in net/ipv4/inet_diag.c, port ops only).

#![allow(clippy::unwrap_used)]

use super::*;

fn op(code: u8, yes: u8, no: u16) -> Vec<u8> {
    let mut v = vec![code, yes];
    v.extend_from_slice(&no.to_ne_bytes());
    v
}

fn ops(bc: &[u8], at: usize) -> (u8, usize, usize) {
    (
        bc[at],
        usize::from(bc[at + 1]),
        usize::from(u16::from_ne_bytes([bc[at + 2], bc[at + 3]])),
    )
}

/// `valid_cc`: is there an op boundary `cc` bytes before the end on the walk along `yes`?
fn valid_cc(bc: &[u8], cc: usize) -> bool {
    let (mut at, mut len) = (0usize, bc.len() as isize);
    while len >= 0 {
        if cc as isize > len {
            return false;
        }
        if cc as isize == len {
            return true;
        }
        let (_, yes, _) = ops(bc, at);
        if yes < 4 || yes & 3 != 0 {
            return false;
        }
        at += yes;
        len -= yes as isize;
    }
    false
}

/// `inet_diag_bc_audit` for the ops this builder emits: true when the kernel accepts the program.
fn kernel_accepts(bc: &[u8]) -> bool {
    if bc.len() < 4 {
        return false;
    }
    let (mut at, mut len) = (0usize, bc.len() as isize);
    while len > 0 {
        let (code, yes, no) = ops(bc, at);
        let min_len = match code {
            INET_DIAG_BC_S_EQ | INET_DIAG_BC_D_EQ => {
                if len < 8 {
                    return false;
                }
                8
            }
            INET_DIAG_BC_JMP => 4,
            _ => return false,
        };
        if no < min_len || no as isize > len + 4 || no & 3 != 0 {
            return false;
        }
        if (no as isize) < len && !valid_cc(bc, (len - no as isize) as usize) {
            return false;
        }
        if yes < min_len || yes as isize > len + 4 || yes & 3 != 0 {
            return false;
        }
        at += yes;
        len -= yes as isize;
    }
    len == 0
}

/// `inet_diag_bc_run`: does the kernel send a socket with these ports?
fn kernel_sends(bc: &[u8], sport: u16, dport: u16) -> bool {
    let (mut at, mut len) = (0usize, bc.len() as isize);
    while len > 0 {
        let (code, yes, no) = ops(bc, at);
        let port = || u16::from_ne_bytes([bc[at + 6], bc[at + 7]]);
        let holds = match code {
            INET_DIAG_BC_JMP => false,
            INET_DIAG_BC_S_EQ => sport == port(),
            INET_DIAG_BC_D_EQ => dport == port(),
            _ => panic!("unexpected op {code}"),
        };
        let step = if holds { yes } else { no };
        at += step;
        len -= step as isize;
    }
    len == 0
}

#[test]
fn one_local_port_is_one_test_that_drops_on_failure() {
    let bc = PortFilter::new(&[], &[80], &[]).bytecode().unwrap();
    assert_eq!(bc, [op(11, 8, 12), op(0, 0, 80)].concat());
}

#[test]
fn an_or_is_laid_out_as_ss_does_it() {
    // sport 80 or dport 80: test, JMP to the end, test.
    let bc = PortFilter::new(&[80], &[], &[]).bytecode().unwrap();
    assert_eq!(
        bc,
        [
            op(11, 8, 12),
            op(0, 0, 80),
            op(1, 4, 12),
            op(12, 8, 12),
            op(0, 0, 80),
        ]
        .concat()
    );
}

#[test]
fn an_and_chains_clauses_and_every_failure_jumps_past_the_end() {
    // sport 443 and dport 5432.
    let bc = PortFilter::new(&[], &[443], &[5432]).bytecode().unwrap();
    assert_eq!(
        bc,
        [op(11, 8, 20), op(0, 0, 443), op(12, 8, 12), op(0, 0, 5432),].concat()
    );
}

#[test]
fn empty_filters_send_no_program() {
    let f = PortFilter::new(&[], &[], &[]);
    assert!(f.is_empty());
    assert_eq!(f.bytecode(), Some(vec![]));
    let mut f = PortFilter::default();
    f.require([]);
    assert!(f.is_empty());
}

#[test]
fn too_many_ports_for_one_attribute_give_no_program() {
    let many: Vec<u16> = (1..=6000).collect();
    assert_eq!(PortFilter::new(&[], &many, &[]).bytecode(), None);
    let fits: Vec<u16> = (1..=5000).collect();
    let bc = PortFilter::new(&[], &fits, &[]).bytecode().unwrap();
    assert!(bc.len() <= MAX_LEN && kernel_accepts(&bc));
}

#[test]
fn the_kernel_accepts_every_program_and_decides_as_the_filter_means() {
    let cases: [(&[u16], &[u16], &[u16]); 9] = [
        (&[80], &[], &[]),
        (&[], &[80], &[]),
        (&[], &[], &[80]),
        (&[80, 443], &[], &[]),
        (&[], &[80, 443, 8080], &[]),
        (&[80], &[443], &[]),
        (&[80, 443], &[443, 80], &[5432, 80]),
        (&[], &[1], &[65535]),
        (&[7], &[7], &[7]),
    ];
    let probe = [0u16, 1, 7, 80, 443, 5432, 8080, 65535, 50000];
    for (ports, sports, dports) in cases {
        let filter = PortFilter::new(ports, sports, dports);
        let bc = filter.bytecode().unwrap();
        assert!(kernel_accepts(&bc), "{filter}: {bc:?}");
        for s in probe {
            for d in probe {
                assert_eq!(
                    kernel_sends(&bc, s, d),
                    filter.matches(s, d),
                    "{filter}: sport {s} dport {d}"
                );
            }
        }
    }
}

#[test]
fn the_audit_port_refuses_a_no_jump_to_an_op_the_yes_walk_skips() {
    // The naive OR (first test jumping on success straight to the end) hides the second test from the audit.
    let naive = [op(11, 16, 8), op(0, 0, 80), op(12, 8, 12), op(0, 0, 80)].concat();
    assert!(!kernel_accepts(&naive));
}

#[test]
fn display_names_the_conditions() {
    assert_eq!(
        PortFilter::new(&[80], &[], &[5432]).to_string(),
        "(sport 80 or dport 80) and dport 5432"
    );
    assert_eq!(PortFilter::new(&[], &[22], &[]).to_string(), "sport 22");
}
