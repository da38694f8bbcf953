//! The recording's byte encoding of one socket: LEB128 varints, field by field, in a fixed order (pure).
//!
//! Hand-written rather than derived so that the stored format cannot change by accident when a model type gains a
//! field or is reordered: a change here is a change of [`super::store::VERSION`], and the round-trip tests below
//! fail first.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::model::keepalive::{KeepaliveSettings, Source};
use crate::model::{
    Congestion, Connection, Family, Finding, FindingCode, NetnsRef, Owner, Owners, Severity,
    TcpInfo, TcpInfoField, TcpState, Timer, TimerKind,
};

/// Why bytes could not be decoded: they end early, or hold a value no encoder writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("entry ends in the middle of a value")]
    Truncated,
    #[error("invalid {0} in entry")]
    Invalid(&'static str),
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends an optional value as `0` (none) or `v + 1`; `v` must be below `u64::MAX`.
fn put_opt(buf: &mut Vec<u8>, v: Option<u64>) {
    put(buf, v.map_or(0, |v| v + 1));
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put(buf, 0),
        Some(s) => {
            put(buf, s.len() as u64 + 1);
            buf.extend_from_slice(s.as_bytes());
        }
    }
}

/// Reads values back from an entry's bytes, in the order they were put.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn get(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.bytes.split_first().ok_or(DecodeError::Truncated)?;
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Invalid("varint"))
    }

    /// A varint that must fit `T`.
    pub fn get_as<T: TryFrom<u64>>(&mut self, what: &'static str) -> Result<T, DecodeError> {
        T::try_from(self.get()?).map_err(|_| DecodeError::Invalid(what))
    }

    /// A count of items that each take at least one byte: no count can ask for more than the entry holds.
    pub fn get_len(&mut self) -> Result<usize, DecodeError> {
        let n: usize = self.get_as("length")?;
        if n > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    fn get_opt(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(self.get()?.checked_sub(1))
    }

    fn get_opt_as<T: TryFrom<u64>>(
        &mut self,
        what: &'static str,
    ) -> Result<Option<T>, DecodeError> {
        self.get_opt()?
            .map(|v| T::try_from(v).map_err(|_| DecodeError::Invalid(what)))
            .transpose()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn get_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.get_len()?;
        self.take(n)
    }

    fn get_opt_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        let Some(n) = self.get_opt()? else {
            return Ok(None);
        };
        let n = usize::try_from(n).map_err(|_| DecodeError::Invalid("length"))?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| DecodeError::Invalid("string"))
    }
}

/// Strings shared by many sockets (congestion algorithm, namespace), one allocation per distinct value while
/// decoding, as a live snapshot shares them.
#[derive(Default)]
pub struct Interner {
    congestion: Vec<Congestion>,
    netns: Vec<Arc<NetnsRef>>,
    keepalive: crate::sockopt::Interner,
}

impl Interner {
    fn congestion(&mut self, name: &str) -> Congestion {
        if let Some(known) = self.congestion.iter().find(|c| &***c == name) {
            return known.clone();
        }
        let new = Congestion::from(name);
        self.congestion.push(new.clone());
        new
    }

    fn netns(&mut self, inode: u64, name: Option<&str>) -> Arc<NetnsRef> {
        if let Some(known) = self
            .netns
            .iter()
            .find(|n| n.inode == inode && n.name.as_deref() == name)
        {
            return Arc::clone(known);
        }
        let new = Arc::new(NetnsRef {
            inode,
            name: name.map(Arc::from),
        });
        self.netns.push(Arc::clone(&new));
        new
    }
}

/// Turns a socket's clock-relative times into moments on the frame's clock `base`: the timer's expiry (`expires_ms`
/// from now becomes `base + expires_ms`) and the `tcp_info` fields that count back from the dump
/// (`last_data_sent_ms`, `last_data_recv_ms`, `last_ack_recv_ms`: `base - ago`). All are kept modulo 2^32 in the
/// socket's own 32-bit fields, as the kernel's own jiffies are (not `last_ack_sent_ms`, which Linux always reports
/// as 0); the stored expiry is the whole 64-bit moment ([`put_connection`] widens it). A socket that did not change
/// keeps the same moments from one refresh to the next, so it is equal to what was recorded before and costs
/// nothing. [`from_moments`] undoes it exactly. The encoder does not call it: [`same_moments`] compares and
/// [`put_connection`] writes sockets as taken, as if this had been called; the decoder's sockets are moments.
pub fn to_moments(c: &mut Connection, base: u64) {
    if c.timer.kind != TimerKind::None {
        c.timer.expires_ms = (base as u32).wrapping_add(c.timer.expires_ms);
    }
    if let Some(info) = &mut c.tcp_info {
        shift_ago(info, |ago| (base as u32).wrapping_sub(ago));
    }
}

/// The inverse of [`to_moments`] with the same `base`.
pub fn from_moments(c: &mut Connection, base: u64) {
    if c.timer.kind != TimerKind::None {
        c.timer.expires_ms = c.timer.expires_ms.wrapping_sub(base as u32);
    }
    if let Some(info) = &mut c.tcp_info {
        shift_ago(info, |moment| (base as u32).wrapping_sub(moment));
    }
}

/// The `tcp_info` fields that count back from the dump, as a field mask ([`TcpInfo::eq_where`]).
const AGO: u32 = 1 << TcpInfoField::last_data_sent_ms as u32
    | 1 << TcpInfoField::last_data_recv_ms as u32
    | 1 << TcpInfoField::last_ack_recv_ms as u32;

/// Whether socket `now` on clock `base` and socket `was` on clock `was_base` are the same record: what
/// `to_moments(now, base) == to_moments(was, was_base)` says, without changing or copying either. A socket whose
/// state, counters and timers did not change answers yes while the kernel's clock moves with the bases, and costs
/// the recorder a comparison of its fields (the packed `tcp_info` compared byte by byte but for its three times).
pub fn same_moments(now: &Connection, base: u64, was: &Connection, was_base: u64) -> bool {
    // now's moments are `base + t` (expiry) and `base - t` (ago); was's the same on `was_base`.
    let moved = (base as u32).wrapping_sub(was_base as u32);
    // Every field named, so that a field added to `Connection` is a compile error here until it is compared.
    let Connection {
        cookie,
        family,
        state,
        local_addr,
        local_port,
        peer_addr,
        peer_port,
        interface,
        inode,
        uid,
        recv_q,
        send_q,
        timer,
        shutdown,
        congestion,
        tcp_info,
        owners,
        findings,
        keepalive,
        netns,
    } = now;
    let expiry = if timer.kind == TimerKind::None {
        timer.expires_ms
    } else {
        timer.expires_ms.wrapping_add(moved)
    };
    *cookie == was.cookie
        && *state == was.state
        && timer.kind == was.timer.kind
        && timer.count == was.timer.count
        && expiry == was.timer.expires_ms
        && *recv_q == was.recv_q
        && *send_q == was.send_q
        && *inode == was.inode
        && *local_port == was.local_port
        && *peer_port == was.peer_port
        && *family == was.family
        && *local_addr == was.local_addr
        && *peer_addr == was.peer_addr
        && *interface == was.interface
        && *uid == was.uid
        && *shutdown == was.shutdown
        && *findings == was.findings
        && match (tcp_info, &was.tcp_info) {
            (None, None) => true,
            (Some(a), Some(b)) => a.eq_where(b, AGO, |now, was| {
                (now as u32).wrapping_sub(moved) == was as u32
            }),
            _ => false,
        }
        && *owners == was.owners
        && *congestion == was.congestion
        && *keepalive == was.keepalive
        && *netns == was.netns
}

/// Decoded and packed once: a setter per field would pack three times.
fn shift_ago(info: &mut TcpInfo, f: impl Fn(u32) -> u32) {
    let mut t = info.fields();
    t.last_data_sent_ms = t.last_data_sent_ms.map(&f);
    t.last_data_recv_ms = t.last_data_recv_ms.map(&f);
    t.last_ack_recv_ms = t.last_ack_recv_ms.map(&f);
    *info = TcpInfo::from(t);
}

/// Appends one socket, as taken (its times relative to the dump), as its moments on `base` ([`to_moments`]): the
/// timer's expiry as its 64-bit moment `base + expires_ms`, the `tcp_info` times as `base - ago` modulo 2^32.
pub fn put_connection(buf: &mut Vec<u8>, c: &Connection, base: u64) {
    put(buf, c.cookie);
    // Family, state and timer kind in one byte each's worth: family bit 0, state bits 1-4, timer kind bits 5-7.
    let family = match c.family {
        Family::Ipv4 => 0,
        Family::Ipv6 => 1,
    };
    put(
        buf,
        family | (c.state as u64) << 1 | u64::from(timer_kind_code(c.timer.kind)) << 5,
    );
    put_addr(buf, c.local_addr);
    put(buf, u64::from(c.local_port));
    put_addr(buf, c.peer_addr);
    put(buf, u64::from(c.peer_port));
    put(buf, u64::from(c.interface));
    put(buf, u64::from(c.inode));
    put(buf, u64::from(c.uid));
    put(buf, u64::from(c.recv_q));
    put(buf, u64::from(c.send_q));
    put(buf, expiry_to_store(c.timer, base));
    put(buf, u64::from(c.timer.count));
    put_opt(buf, c.shutdown.map(u64::from));
    put_opt_str(buf, c.congestion.as_deref());
    match &c.tcp_info {
        None => put(buf, 0),
        Some(info) => {
            let fields = info.by_name();
            let mut present: u64 = 0;
            for (i, (_, v)) in fields.iter().enumerate() {
                if v.is_some() {
                    present |= 1 << i;
                }
            }
            // Bit 31 set: the field mask of a present `tcp_info`, never zero.
            put(buf, present | 1 << 31);
            for (i, v) in fields
                .iter()
                .enumerate()
                .filter_map(|(i, (_, v))| Some((i, (*v)?)))
            {
                let v = if AGO & 1 << i != 0 {
                    u64::from((base as u32).wrapping_sub(v as u32))
                } else {
                    v
                };
                put(buf, v);
            }
        }
    }
    put(buf, c.owners.len() as u64);
    for o in &c.owners {
        put(buf, u64::from(o.pid));
        put(buf, u64::from(o.fd));
    }
    put(buf, c.findings.len() as u64);
    for f in &c.findings {
        put(
            buf,
            f.code as u64 | u64::from(severity_code(f.severity)) << 4,
        );
    }
    match &c.keepalive {
        None => put(buf, 0),
        Some(ka) => {
            let source = match ka.source {
                Source::Socket => 1,
                Source::Sysctl => 2,
            };
            put(buf, source);
            put_opt(buf, ka.enabled.map(u64::from));
            put_opt(buf, ka.idle_s.map(u64::from));
            put_opt(buf, ka.intvl_s.map(u64::from));
            put_opt(buf, ka.cnt.map(u64::from));
            put_opt(buf, ka.user_timeout_ms.map(u64::from));
        }
    }
    match &c.netns {
        None => put(buf, 0),
        Some(ns) => {
            put(buf, 1);
            put(buf, ns.inode);
            put_opt_str(buf, ns.name.as_deref());
        }
    }
}

/// Reads one socket written by [`put_connection`] on the same `base`, its times left as moments.
pub fn get_connection(
    r: &mut Reader,
    interner: &mut Interner,
    base: u64,
) -> Result<Connection, DecodeError> {
    let cookie = r.get()?;
    let packed = r.get()?;
    let family = if packed & 1 == 0 {
        Family::Ipv4
    } else {
        Family::Ipv6
    };
    let state =
        TcpState::from_kernel((packed >> 1 & 0xf) as u8).ok_or(DecodeError::Invalid("state"))?;
    let kind = TimerKind::from_kernel((packed >> 5 & 0x7) as u8)
        .ok_or(DecodeError::Invalid("timer kind"))?;
    if packed >> 8 != 0 {
        return Err(DecodeError::Invalid("socket flags"));
    }
    let local_addr = get_addr(r)?;
    let local_port = r.get_as("port")?;
    let peer_addr = get_addr(r)?;
    let peer_port = r.get_as("port")?;
    let interface = r.get_as("interface")?;
    let inode = r.get_as("inode")?;
    let uid = r.get_as("uid")?;
    let recv_q = r.get_as("queue")?;
    let send_q = r.get_as("queue")?;
    let timer = Timer {
        kind,
        expires_ms: stored_expiry(kind, r.get()?, base)?,
        count: r.get_as("timer count")?,
    };
    let shutdown = r.get_opt_as("shutdown")?;
    let congestion = r.get_opt_str()?.map(|s| interner.congestion(s));
    let tcp_info = match r.get()? {
        0 => None,
        present => {
            let count = crate::model::TCP_INFO_FIELDS;
            let fields = present & ((1 << 31) - 1);
            if present >> 31 != 1 || fields >> count != 0 {
                return Err(DecodeError::Invalid("tcp_info fields"));
            }
            let mut values = [None; crate::model::TCP_INFO_FIELDS];
            for (i, value) in values.iter_mut().enumerate() {
                if present & 1 << i != 0 {
                    *value = Some(r.get()?);
                }
            }
            Some(TcpInfo::try_from_values(&values).ok_or(DecodeError::Invalid("tcp_info field"))?)
        }
    };
    let n = r.get_len()?;
    let mut owners = Owners::new();
    for _ in 0..n {
        owners.push(Owner {
            pid: r.get_as("pid")?,
            fd: r.get_as("fd")?,
        });
    }
    let n = r.get_len()?;
    let mut findings = crate::model::Findings::NONE;
    for _ in 0..n {
        let v = r.get()?;
        let code = usize::try_from(v & 0xf)
            .ok()
            .and_then(|i| FindingCode::ALL.get(i).copied())
            .ok_or(DecodeError::Invalid("finding"))?;
        let severity = match v >> 4 {
            0 => Severity::Info,
            1 => Severity::Warning,
            2 => Severity::Critical,
            _ => return Err(DecodeError::Invalid("severity")),
        };
        findings.insert(Finding { code, severity });
    }
    let keepalive = match r.get()? {
        0 => None,
        source => Some(KeepaliveSettings {
            source: match source {
                1 => Source::Socket,
                2 => Source::Sysctl,
                _ => return Err(DecodeError::Invalid("keepalive source")),
            },
            enabled: match r.get_opt()? {
                None => None,
                Some(0) => Some(false),
                Some(1) => Some(true),
                Some(_) => return Err(DecodeError::Invalid("keepalive flag")),
            },
            idle_s: r.get_opt_as("keepalive idle")?,
            intvl_s: r.get_opt_as("keepalive interval")?,
            cnt: r.get_opt_as("keepalive count")?,
            user_timeout_ms: r.get_opt_as("user timeout")?,
        }),
    }
    .map(|k| interner.keepalive.get(k));
    let netns = match r.get()? {
        0 => None,
        1 => {
            let inode = r.get()?;
            let name = r.get_opt_str()?;
            Some(interner.netns(inode, name))
        }
        _ => return Err(DecodeError::Invalid("namespace")),
    };
    Ok(Connection {
        cookie,
        family,
        state,
        local_addr,
        local_port,
        peer_addr,
        peer_port,
        interface,
        inode,
        uid,
        recv_q,
        send_q,
        timer,
        shutdown,
        congestion,
        tcp_info,
        owners,
        findings,
        keepalive,
        netns,
    })
}

/// The value stored for a timer's expiry (as taken: from now): its moment `base + expires_ms` in full (the
/// in-memory moment is the same modulo 2^32), or `expires_ms` itself when no timer is pending.
fn expiry_to_store(timer: Timer, base: u64) -> u64 {
    if timer.kind == TimerKind::None {
        return u64::from(timer.expires_ms);
    }
    base.wrapping_add(u64::from(timer.expires_ms))
}

/// The inverse of [`expiry_to_store`]: the in-memory value (the moment modulo 2^32). A moment must lie within
/// 2^32 ms after `base`, as every expiry the kernel reports does.
fn stored_expiry(kind: TimerKind, stored: u64, base: u64) -> Result<u32, DecodeError> {
    let from_now = match kind {
        TimerKind::None => stored,
        _ => stored.wrapping_sub(base),
    };
    u32::try_from(from_now).map_err(|_| DecodeError::Invalid("timer expiry"))?;
    Ok(stored as u32)
}

fn timer_kind_code(kind: TimerKind) -> u8 {
    match kind {
        TimerKind::None => 0,
        TimerKind::Retransmit => 1,
        TimerKind::Keepalive => 2,
        TimerKind::TimeWait => 3,
        TimerKind::ZeroWindowProbe => 4,
    }
}

fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

fn put_addr(buf: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            buf.push(4);
            buf.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            buf.push(6);
            buf.extend_from_slice(&a.octets());
        }
    }
}

fn get_addr(r: &mut Reader) -> Result<IpAddr, DecodeError> {
    match r.take(1)? {
        [4] => {
            let b: [u8; 4] = r.take(4)?.try_into().map_err(|_| DecodeError::Truncated)?;
            Ok(IpAddr::V4(Ipv4Addr::from(b)))
        }
        [6] => {
            let b: [u8; 16] = r.take(16)?.try_into().map_err(|_| DecodeError::Truncated)?;
            Ok(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => Err(DecodeError::Invalid("address")),
    }
}

/// Appends bytes with their length (a JSON part of a frame).
pub fn put_part(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_bytes(buf, bytes);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::model::TcpInfoFields;

    pub(crate) fn busy_connection() -> Connection {
        Connection {
            cookie: u64::MAX - 3,
            family: Family::Ipv6,
            state: TcpState::FinWait1,
            local_addr: "2001:db8::1".parse().unwrap(),
            local_port: 443,
            peer_addr: "2001:db8::2".parse().unwrap(),
            peer_port: 65535,
            interface: 3,
            inode: 987_654,
            uid: u32::MAX,
            recv_q: 7,
            send_q: u32::MAX,
            timer: Timer {
                kind: TimerKind::ZeroWindowProbe,
                expires_ms: 1234,
                count: 9,
            },
            shutdown: Some(3),
            congestion: Some(Congestion::from("cubic")),
            tcp_info: Some(TcpInfo::from(TcpInfoFields {
                state: Some(4),
                probes: Some(0),
                backoff: Some(255),
                last_data_recv_ms: Some(u32::MAX),
                last_ack_recv_ms: Some(0),
                bytes_acked: Some(u64::MAX),
                snd_wnd: Some(0),
                ..TcpInfoFields::default()
            })),
            owners: [Owner { pid: 1, fd: 3 }, Owner { pid: 99, fd: 4 }].into(),
            findings: [
                Finding {
                    code: FindingCode::ZeroWindow,
                    severity: Severity::Critical,
                },
                Finding {
                    code: FindingCode::KeepaliveDefault,
                    severity: Severity::Info,
                },
            ]
            .into_iter()
            .collect(),
            keepalive: Some(
                KeepaliveSettings {
                    enabled: Some(false),
                    idle_s: Some(7200),
                    intvl_s: None,
                    cnt: Some(9),
                    user_timeout_ms: Some(0),
                    source: Source::Socket,
                }
                .into(),
            ),
            netns: Some(Arc::new(NetnsRef {
                inode: 4_026_531_840,
                name: Some(Arc::from("web")),
            })),
        }
    }

    fn round_trip(c: &Connection) -> Connection {
        let mut buf = Vec::new();
        let base = 1_796_432_400_123;
        put_connection(&mut buf, c, base);
        let mut r = Reader::new(&buf);
        let mut back = get_connection(&mut r, &mut Interner::default(), base).unwrap();
        assert!(r.is_empty());
        from_moments(&mut back, base);
        back
    }

    #[test]
    fn a_socket_with_every_field_set_reads_back_equal() {
        let c = busy_connection();
        assert_eq!(round_trip(&c), c);
        let mut plain = c.clone();
        plain.family = Family::Ipv4;
        plain.local_addr = "192.0.2.1".parse().unwrap();
        plain.peer_addr = "0.0.0.0".parse().unwrap();
        plain.tcp_info = None;
        plain.owners.clear();
        plain.findings = crate::model::Findings::NONE;
        plain.keepalive = None;
        plain.netns = None;
        plain.shutdown = None;
        plain.congestion = None;
        plain.timer = Timer::NONE;
        assert_eq!(round_trip(&plain), plain);
    }

    #[test]
    fn moments_undo_exactly_and_stay_put_while_the_clock_moves() {
        let c = busy_connection();
        for base in [0, 1, 1_796_432_400_123, u64::MAX] {
            let mut m = c.clone();
            to_moments(&mut m, base);
            from_moments(&mut m, base);
            assert_eq!(m, c, "base {base}");
        }
        // 10 s later the same timer expires 10 s sooner and the last receive was 10 s longer ago.
        let mut later = c.clone();
        later.timer.expires_ms -= 1000;
        let mut info = TcpInfoFields::from(later.tcp_info.clone().unwrap());
        info.last_data_recv_ms = Some(u32::MAX.wrapping_add(1000));
        info.last_ack_recv_ms = Some(1000);
        later.tcp_info = Some(info.into());
        let (mut a, mut b) = (c.clone(), later);
        to_moments(&mut a, 50_000);
        to_moments(&mut b, 51_000);
        assert_eq!(a, b);
    }

    /// `c` turned into moments on `base`: what the encoder compared before [`same_moments`].
    fn moments(c: &Connection, base: u64) -> Connection {
        let mut m = c.clone();
        to_moments(&mut m, base);
        m
    }

    /// `c` `ms` later, unchanged: its timer nearer, its last sends and receives longer ago.
    fn later(c: &Connection, ms: u32) -> Connection {
        let mut c = c.clone();
        if c.timer.kind != TimerKind::None {
            c.timer.expires_ms = c.timer.expires_ms.wrapping_sub(ms);
        }
        if let Some(info) = c.tcp_info.take() {
            let mut t = TcpInfoFields::from(info);
            for ago in [
                &mut t.last_data_sent_ms,
                &mut t.last_data_recv_ms,
                &mut t.last_ack_recv_ms,
            ] {
                *ago = ago.map(|v| v.wrapping_add(ms));
            }
            c.tcp_info = Some(t.into());
        }
        c
    }

    /// A change made to a socket, named.
    type Change = (&'static str, fn(&mut Connection));

    fn info(c: &mut Connection, f: fn(&mut TcpInfoFields)) {
        let mut t = TcpInfoFields::from(c.tcp_info.take().unwrap());
        f(&mut t);
        c.tcp_info = Some(t.into());
    }

    #[test]
    fn same_moments_is_equality_of_moments_and_sees_a_change_in_any_field() {
        let (was_base, base) = (1_796_432_400_123, 1_796_432_410_123);
        let mut quiet = busy_connection();
        quiet.timer = Timer::NONE;
        quiet.timer.expires_ms = 77;
        for was in [busy_connection(), quiet] {
            let now = later(&was, 10_000);
            assert!(same_moments(&now, base, &was, was_base));
            assert_eq!(moments(&now, base), moments(&was, was_base));
            let changes: [Change; 28] = [
                ("cookie", |c| c.cookie ^= 1),
                ("family", |c| c.family = Family::Ipv4),
                ("state", |c| c.state = TcpState::CloseWait),
                ("local_addr", |c| {
                    c.local_addr = "2001:db8::9".parse().unwrap();
                }),
                ("local_port", |c| c.local_port += 1),
                ("peer_addr", |c| c.peer_addr = "192.0.2.1".parse().unwrap()),
                ("peer_port", |c| c.peer_port -= 1),
                ("interface", |c| c.interface += 1),
                ("inode", |c| c.inode += 1),
                ("uid", |c| c.uid = 0),
                ("recv_q", |c| c.recv_q += 1),
                ("send_q", |c| c.send_q -= 1),
                ("timer kind", |c| c.timer.kind = TimerKind::Retransmit),
                ("timer count", |c| c.timer.count += 1),
                ("timer expiry", |c| {
                    c.timer.expires_ms = c.timer.expires_ms.wrapping_add(4);
                }),
                ("shutdown", |c| c.shutdown = Some(1)),
                ("congestion", |c| {
                    c.congestion = Some(Congestion::from("reno"));
                }),
                ("tcp_info rtt", |c| info(c, |t| t.rtt_us = Some(1))),
                ("tcp_info last ack sent", |c| {
                    info(c, |t| t.last_ack_sent_ms = Some(10_000));
                }),
                ("tcp_info last data sent", |c| {
                    info(c, |t| t.last_data_sent_ms = Some(5));
                }),
                ("tcp_info last receive", |c| {
                    info(c, |t| {
                        t.last_ack_recv_ms = t.last_ack_recv_ms.map(|v| v + 4);
                    });
                }),
                ("tcp_info bytes", |c| info(c, |t| t.bytes_acked = Some(1))),
                ("no tcp_info", |c| c.tcp_info = None),
                ("owners", |c| c.owners.push(Owner { pid: 7, fd: 8 })),
                ("findings", |c| c.findings = crate::model::Findings::NONE),
                ("keepalive", |c| c.keepalive = None),
                ("netns name", |c| {
                    c.netns = Some(Arc::new(NetnsRef {
                        inode: 4_026_531_840,
                        name: Some(Arc::from("db")),
                    }));
                }),
                ("no netns", |c| c.netns = None),
            ];
            for (name, change) in changes {
                let mut c = now.clone();
                change(&mut c);
                if name == "timer expiry" && c.timer.kind == TimerKind::None {
                    // Kept as is when no timer is pending: a change like any other.
                    assert_ne!(c, now);
                }
                let equal = moments(&c, base) == moments(&was, was_base);
                assert!(!equal, "{name} is a change of the record");
                assert!(!same_moments(&c, base, &was, was_base), "{name}");
                assert!(!same_moments(&was, was_base, &c, base), "{name}");
            }
            // The clock moved by other amounts than the socket's times: equal exactly when the moments are,
            // whichever way it wraps.
            for moved in [0, 4, 9_996, 10_004, 1 << 32, (1 << 32) + 10_000] {
                let other = was_base + moved;
                assert_eq!(
                    same_moments(&now, other, &was, was_base),
                    moments(&now, other) == moments(&was, was_base),
                    "moved {moved}"
                );
            }
            // A 2^32 ms wrap of the bases reads the same 32-bit moments.
            assert!(same_moments(&now, base + (1 << 32), &was, was_base));
        }
    }

    #[test]
    fn an_expiry_is_stored_as_its_whole_moment_within_32_bits_of_its_base() {
        // An epoch time whose low 32 bits wrap 5 s later, and the largest expiry the kernel can report.
        let base: u64 = 419 << 32 | 0xffff_ec78;
        let mut taken = busy_connection();
        taken.timer.expires_ms = u32::MAX;
        let mut m = taken.clone();
        to_moments(&mut m, base);
        let stored = |written_on: u64| {
            let mut buf = Vec::new();
            put_connection(&mut buf, &taken, written_on);
            let mut r = Reader::new(&buf);
            r.get().unwrap();
            r.get().unwrap();
            // Past the addresses, ports, interface, inode, uid and queues to the expiry.
            get_addr(&mut r).unwrap();
            r.get().unwrap();
            get_addr(&mut r).unwrap();
            for _ in 0..6 {
                r.get().unwrap();
            }
            (r.get().unwrap(), buf)
        };
        let (moment, buf) = stored(base);
        assert_eq!(moment, base + u64::from(u32::MAX));
        let mut r = Reader::new(&buf);
        assert_eq!(
            get_connection(&mut r, &mut Interner::default(), base),
            Ok(m.clone())
        );
        // A moment before its base, or 2^32 ms or more after it, is no expiry the kernel reports.
        for other in [base - (1 << 32), base + (1 << 32)] {
            let (_, buf) = stored(other);
            let mut r = Reader::new(&buf);
            assert_eq!(
                get_connection(&mut r, &mut Interner::default(), base),
                Err(DecodeError::Invalid("timer expiry"))
            );
        }
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let mut buf = Vec::new();
        put_connection(&mut buf, &busy_connection(), 0);
        for cut in 0..buf.len() {
            let mut r = Reader::new(&buf[..cut]);
            assert!(get_connection(&mut r, &mut Interner::default(), 0).is_err());
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0xff;
            let mut r = Reader::new(&bad);
            // Either an error or some socket: never a panic.
            let _ = get_connection(&mut r, &mut Interner::default(), 0);
        }
    }

    #[test]
    fn the_stored_tcp_info_field_order_is_pinned() {
        // The recording stores tcp_info fields by index. A new field at the end is compatible; any other change
        // to this list needs a new store format version.
        let names: Vec<&str> = TcpInfo::default()
            .by_name()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            names[..29],
            [
                "state",
                "ca_state",
                "retransmits",
                "probes",
                "backoff",
                "rto_us",
                "ato_us",
                "snd_mss",
                "rcv_mss",
                "unacked",
                "sacked",
                "lost",
                "retrans",
                "last_data_sent_ms",
                "last_ack_sent_ms",
                "last_data_recv_ms",
                "last_ack_recv_ms",
                "pmtu",
                "rtt_us",
                "rttvar_us",
                "snd_cwnd",
                "total_retrans",
                "bytes_acked",
                "bytes_received",
                "notsent_bytes",
                "min_rtt_us",
                "bytes_sent",
                "bytes_retrans",
                "snd_wnd",
            ]
        );
    }
}
