//! Port filters run by the kernel (`INET_DIAG_REQ_BYTECODE`): the kernel accepts the programs and sends exactly
//! the loopback sockets of this test that the filter means, for one port, an OR of ports, an AND, and a port
//! nothing uses.

#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};

use kwatch::diag::{DumpRequest, Dumper, PortFilter};
use kwatch::model::{Connection, TcpState};

/// Two listeners with one connection each.
struct Scene {
    _listeners: [TcpListener; 2],
    _ends: Vec<TcpStream>,
    /// Listening ports.
    a: u16,
    b: u16,
    /// Client (ephemeral) ports of the connections to `a` and `b`.
    ca: u16,
    cb: u16,
}

impl Scene {
    fn new() -> Scene {
        let la = TcpListener::bind("127.0.0.1:0").unwrap();
        let lb = TcpListener::bind("127.0.0.1:0").unwrap();
        let (a, b) = (
            la.local_addr().unwrap().port(),
            lb.local_addr().unwrap().port(),
        );
        let to_a = TcpStream::connect(("127.0.0.1", a)).unwrap();
        let to_b = TcpStream::connect(("127.0.0.1", b)).unwrap();
        let (ca, cb) = (
            to_a.local_addr().unwrap().port(),
            to_b.local_addr().unwrap().port(),
        );
        let (sa, _) = la.accept().unwrap();
        let (sb, _) = lb.accept().unwrap();
        Scene {
            _listeners: [la, lb],
            _ends: vec![to_a, to_b, sa, sb],
            a,
            b,
            ca,
            cb,
        }
    }

    /// Every (local, peer) port pair of this scene's sockets, the listeners with peer port 0.
    fn pairs(&self) -> Vec<(u16, u16)> {
        let (a, b, ca, cb) = (self.a, self.b, self.ca, self.cb);
        vec![(a, 0), (b, 0), (ca, a), (a, ca), (cb, b), (b, cb)]
    }

    fn ours(&self, c: &Connection) -> bool {
        self.pairs().contains(&(c.local_port, c.peer_port))
    }
}

fn dump(filter: &PortFilter) -> Vec<Connection> {
    Dumper::open()
        .unwrap()
        .dump(&DumpRequest {
            ports: filter.clone(),
            ..DumpRequest::all()
        })
        .unwrap()
}

/// The kernel sends only matching sockets, and of this scene's sockets exactly those the filter means.
fn check(scene: &Scene, filter: &PortFilter) -> Vec<(u16, u16)> {
    let conns = dump(filter);
    for c in &conns {
        assert!(
            filter.matches(c.local_port, c.peer_port),
            "{filter}: the kernel sent {}:{} -> {}",
            c.local_port,
            c.peer_port,
            c.state.name()
        );
    }
    let mut got: Vec<(u16, u16)> = conns
        .iter()
        .filter(|c| scene.ours(c))
        .map(|c| (c.local_port, c.peer_port))
        .collect();
    got.sort_unstable();
    let mut want: Vec<(u16, u16)> = scene
        .pairs()
        .into_iter()
        .filter(|(l, p)| filter.matches(*l, *p))
        .collect();
    want.sort_unstable();
    assert_eq!(got, want, "{filter}");
    got
}

#[test]
fn the_kernel_filters_by_port() {
    let s = Scene::new();
    // --port a: the listener, the server end (local a) and the client end (peer a).
    let got = check(&s, &PortFilter::new(&[s.a], &[], &[]));
    assert_eq!(got.len(), 3);
    // --sport a,b: both listeners and both server ends.
    assert_eq!(check(&s, &PortFilter::new(&[], &[s.a, s.b], &[])).len(), 4);
    // --dport b: the client end of the connection to b.
    assert_eq!(check(&s, &PortFilter::new(&[], &[], &[s.b])), [(s.cb, s.b)]);
    // --sport ca --dport a: one socket; --sport ca --dport b: none.
    assert_eq!(
        check(&s, &PortFilter::new(&[], &[s.ca], &[s.a])),
        [(s.ca, s.a)]
    );
    assert!(check(&s, &PortFilter::new(&[], &[s.ca], &[s.b])).is_empty());
    // --port a,b --dport a: only the client end to a.
    assert_eq!(
        check(&s, &PortFilter::new(&[s.a, s.b], &[], &[s.a])),
        [(s.ca, s.a)]
    );
}

#[test]
fn a_port_nothing_uses_gives_an_empty_dump() {
    let _scene = Scene::new();
    let unused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(dump(&PortFilter::new(&[unused], &[], &[])).is_empty());
}

#[test]
fn the_kernel_accepts_a_long_or_and_the_state_mask_still_applies() {
    let s = Scene::new();
    let mut ports: Vec<u16> = (20000..21000).filter(|p| ![s.a, s.b].contains(p)).collect();
    ports.push(s.b);
    let filter = PortFilter::new(&[], &ports, &[]);
    let conns = Dumper::open()
        .unwrap()
        .dump(&DumpRequest {
            ports: filter.clone(),
            states: 1 << TcpState::Listen as u8,
            ..DumpRequest::all()
        })
        .unwrap();
    let ours: Vec<u16> = conns
        .iter()
        .filter(|c| s.ours(c))
        .map(|c| c.local_port)
        .collect();
    assert_eq!(ours, [s.b], "only b's listener: {filter}");
    assert!(conns.iter().all(|c| c.state == TcpState::Listen));
}
