//! Pure keepalive arithmetic: the honest next probe, when the kernel gives up, and why a connection died.
//!
//! The rule follows the kernel's `tcp_keepalive_timer()` (net/ipv4/tcp_timer.c):
//!
//! - The keepalive timer is not re-armed when data or ACKs arrive. When it fires, the kernel computes
//!   `elapsed = keepalive_time_elapsed()` = time since the newer of the last data received (`lrcvtime`) and the
//!   last ACK received (`rcv_tstamp`), which tcp_info reports as `min(last_data_recv_ms, last_ack_recv_ms)`.
//!   If `elapsed < keepalive_time` it re-arms for the remainder and sends nothing. So the dump's `expires_ms`
//!   can be early: the real first probe is at `max(expires_ms, idle - elapsed_now)`.
//! - With `elapsed >= keepalive_time` it resets the socket when `probes_out >= keepalive_probes` (no
//!   TCP_USER_TIMEOUT), or when `elapsed >= user_timeout && probes_out > 0` (TCP_USER_TIMEOUT set: the probe count
//!   is then ignored); otherwise it sends a probe, `probes_out += 1`, and re-arms for `keepalive_intvl`.
//! - Any ACK from the peer (`tcp_ack()`) sets `probes_out = 0` and refreshes `rcv_tstamp`.
//! - While data is in flight the keepalive timer only re-arms itself; the retransmit timer decides, and gives
//!   up after `tcp_retries2` (modelled in `tcp_model_timeout()` with a 200 ms base) or TCP_USER_TIMEOUT.
//!
//! Timer-wheel granularity makes every kernel timer fire a little late (never early): up to 1/8 of the delay
//! for long timers (a 2 h idle may fire minutes late), a few tens of milliseconds for delays of seconds.

use crate::model::keepalive::{DeathBy, DeathCause, KeepaliveSettings, Prediction};
use crate::model::{Connection, Settings, Snapshot, TcpState, TimerKind};

/// The kernel's TCP_RTO_MIN and TCP_RTO_MAX (ms): the retransmission model's base and ceiling.
const RTO_MIN_MS: u64 = 200;
const RTO_MAX_MS: u64 = 120_000;

/// A socket's prediction with `net`, the sysctls of its namespace: for ESTABLISHED and CLOSE_WAIT sockets whose
/// keepalive settings were collected, `None` otherwise. Computed when asked rather than kept with every socket of
/// every snapshot (40 bytes each).
pub fn prediction(conn: &Connection, net: &Settings) -> Option<Prediction> {
    conn.keepalive
        .as_ref()
        .and_then(|ka| predict(conn, ka, net))
}

/// A socket's prediction with the sysctls of its own namespace ([`prediction`]).
pub fn prediction_in(snapshot: &Snapshot, conn: &Connection) -> Option<Prediction> {
    prediction(conn, snapshot.settings_of(conn))
}

/// Predicts the next probe and the time of death of an ESTABLISHED or CLOSE_WAIT socket (the states where a
/// silent peer matters); `None` for other states.
pub fn predict(conn: &Connection, ka: &KeepaliveSettings, net: &Settings) -> Option<Prediction> {
    if !matches!(conn.state, TcpState::Established | TcpState::CloseWait) {
        return None;
    }
    let timer = conn.timer;
    Some(match timer.kind {
        TimerKind::Retransmit => retransmit(conn, ka, net),
        TimerKind::ZeroWindowProbe => zero_window(conn, net),
        TimerKind::Keepalive => keepalive(
            conn,
            ka,
            Some(u64::from(timer.expires_ms)),
            u32::from(timer.count),
        ),
        TimerKind::None | TimerKind::TimeWait => match ka.enabled {
            // The dump saw no timer although keepalive is on (a state change raced the dump): assume the timer
            // is where the idle time puts it.
            Some(true) => Prediction {
                dies_in_estimate: true,
                ..keepalive(conn, ka, None, 0)
            },
            _ => Prediction::default(),
        },
    })
}

fn keepalive(
    conn: &Connection,
    ka: &KeepaliveSettings,
    expires_ms: Option<u64>,
    probes_out: u32,
) -> Prediction {
    let (Some(idle_s), Some(intvl_s), Some(cnt)) = (ka.idle_s, ka.intvl_s, ka.cnt) else {
        return Prediction {
            next_probe_ms: expires_ms,
            dies_in_estimate: true,
            ..Prediction::default()
        };
    };
    let idle = u64::from(idle_s) * 1000;
    let intvl = u64::from(intvl_s) * 1000;
    let elapsed = conn.heard_ms();
    // The first timer expiry that acts (sends a probe or resets). With probes out, nothing was received since
    // the first probe (an ACK would have zeroed the count), so the pending expiry acts.
    let first = match (expires_ms, elapsed) {
        (Some(e), _) if probes_out > 0 => e,
        (Some(e), Some(el)) => e.max(idle.saturating_sub(el)),
        (Some(e), None) => e,
        (None, el) => idle.saturating_sub(el.unwrap_or(0)),
    };
    let p = u64::from(probes_out);
    let user_timeout = u64::from(ka.user_timeout_ms.unwrap_or(0));
    // Expiries happen at first + k * intvl; before expiry k, probes_out is p + k.
    let (k, by) = if user_timeout == 0 {
        (u64::from(cnt).saturating_sub(p), DeathBy::Keepalive)
    } else {
        // Reset at the first expiry with probes_out > 0 and elapsed >= user timeout, where elapsed at expiry k
        // is (time since last receive now) + first + k * intvl.
        let at_first = elapsed.unwrap_or(0) + first;
        let needed = user_timeout.saturating_sub(at_first).div_ceil(intvl.max(1));
        let min_k = u64::from(p == 0);
        (needed.max(min_k), DeathBy::UserTimeout)
    };
    Prediction {
        next_probe_ms: (k > 0).then_some(first),
        dies_in_ms: Some(first + k * intvl),
        dies_in_estimate: elapsed.is_none() || expires_ms.is_none(),
        dies_by: Some(by),
    }
}

/// The kernel's `tcp_model_timeout()`: how long retransmissions may go on before `tcp_write_timeout()` gives up,
/// for `boundary` = tcp_retries2.
pub fn model_timeout_ms(boundary: u32) -> u64 {
    let thresh = (RTO_MAX_MS / RTO_MIN_MS).ilog2();
    if boundary <= thresh {
        ((2u64 << boundary) - 1) * RTO_MIN_MS
    } else {
        ((2u64 << thresh) - 1) * RTO_MIN_MS + u64::from(boundary - thresh) * RTO_MAX_MS
    }
}

/// Retransmitting: the kernel gives up at the first retransmit timer expiry at least `tcp_model_timeout()` (or
/// TCP_USER_TIMEOUT) after the first unacknowledged transmission. That start is not in tcp_info, so it is
/// reconstructed from the backoff: expiry n happens `sum(rto_j, j < n)` after it, `rto_j = base << j`, capped.
fn retransmit(conn: &Connection, ka: &KeepaliveSettings, net: &Settings) -> Prediction {
    let timer = conn.timer;
    let info = conn.tcp_info.as_ref();
    let backoff = info
        .and_then(crate::model::TcpInfo::backoff)
        .map_or(u32::from(timer.count), u32::from)
        .min(32);
    let rto = info
        .and_then(crate::model::TcpInfo::rto_us)
        .map_or(RTO_MIN_MS, |us| u64::from(us) / 1000)
        .clamp(1, RTO_MAX_MS);
    let base = (rto >> backoff).max(RTO_MIN_MS.min(rto));
    let rto_at = |j: u32| base.checked_shl(j).unwrap_or(u64::MAX).min(RTO_MAX_MS);
    // Time from the start to the pending expiry (number backoff + 1).
    let to_pending: u64 = (0..=backoff).map(rto_at).sum();
    let since_start = to_pending.saturating_sub(u64::from(timer.expires_ms));
    let user_timeout = u64::from(ka.user_timeout_ms.unwrap_or(0));
    let (limit, by) = match (user_timeout, net.tcp_retries2) {
        (u, _) if u > 0 => (u, DeathBy::UserTimeout),
        (_, Some(r2)) => (model_timeout_ms(r2), DeathBy::Retransmit),
        (_, None) => {
            return Prediction {
                dies_in_estimate: true,
                ..Prediction::default()
            };
        }
    };
    // Walk the expiries; retransmits done before expiry n is n - 1, and the kernel needs at least one.
    let mut at = u64::from(timer.expires_ms);
    for n in (backoff + 1..).take(256) {
        if n > 1 && since_start + at >= limit {
            break;
        }
        let mut step = rto_at(n);
        if user_timeout > 0 {
            // tcp_clamp_rto_to_user_timeout(): never sleep past the user timeout.
            step = step.min(limit.saturating_sub(since_start + at).max(1));
        }
        at += step;
    }
    Prediction {
        next_probe_ms: None,
        dies_in_ms: Some(at),
        dies_in_estimate: true,
        dies_by: Some(by),
    }
}

/// Zero-window probes: the peer answers them while alive (resetting the count). If it went silent, the kernel
/// gives up after `tcp_retries2` unanswered probes, each interval doubling from the RTO.
fn zero_window(conn: &Connection, net: &Settings) -> Prediction {
    let Some(r2) = net.tcp_retries2 else {
        return Prediction {
            dies_in_estimate: true,
            ..Prediction::default()
        };
    };
    let timer = conn.timer;
    let rto = conn
        .tcp_info
        .as_ref()
        .and_then(crate::model::TcpInfo::rto_us)
        .map_or(RTO_MIN_MS, |us| u64::from(us) / 1000)
        .clamp(1, RTO_MAX_MS);
    let mut at = u64::from(timer.expires_ms);
    let mut interval = rto;
    for _ in u32::from(timer.count)..r2 {
        interval = (interval * 2).min(RTO_MAX_MS);
        at += interval;
    }
    Prediction {
        next_probe_ms: None,
        dies_in_ms: Some(at),
        dies_in_estimate: true,
        dies_by: Some(DeathBy::ZeroWindowProbe),
    }
}

/// The kernel's default limits where kwatch does not read the sysctl: SYN retransmissions (tcp_syn_retries) and
/// retransmissions of a connection its program closed (tcp_orphan_retries 0 means 8 while the peer answers).
const SYN_RETRIES: u8 = 6;
const ORPHAN_RETRIES: u8 = 8;
/// tcp_retries2's default, when the namespace's value is unknown.
const RETRIES2: u32 = 15;

/// What is known of a socket when it died: its final counters (`probes` and `retransmits` survive `tcp_done()`
/// into the destroy notification and TCP_INFO), its keepalive settings and what kwatch last saw of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeathEvidence<'a> {
    pub probes: Option<u8>,
    pub retransmits: Option<u8>,
    pub settings: Option<&'a KeepaliveSettings>,
    /// The state in the last snapshot that listed it.
    pub last_state: Option<TcpState>,
    /// No process held it when last seen (its program had closed it): the orphan limit applies.
    pub orphan: bool,
    /// The namespace's tcp_retries2.
    pub tcp_retries2: Option<u32>,
    /// A TIME-WAIT entry with its cookie took its place.
    pub time_wait_twin: bool,
}

/// Infers the cause of death from the evidence, following the kernel's rules for giving up
/// (`tcp_keepalive_timer()`, `tcp_write_timeout()`): a cause only when the counters or the states seen show it.
pub fn infer_cause(e: &DeathEvidence<'_>) -> DeathCause {
    let probes = e.probes.unwrap_or(0);
    let retransmits = e.retransmits.unwrap_or(0);
    let user_timeout = e
        .settings
        .and_then(|s| s.user_timeout_ms)
        .is_some_and(|ms| ms > 0);
    let keepalive_on = e.settings.and_then(|s| s.enabled) == Some(true);
    if probes > 0 && keepalive_on {
        let cnt = e.settings.and_then(|s| s.cnt);
        if user_timeout || cnt.is_some_and(|c| u32::from(probes) >= c) {
            return DeathCause::KeepaliveExhausted;
        }
        // Fewer probes out than allowed, so the keepalive timer did not end it.
        if cnt.is_some() {
            return DeathCause::Reset;
        }
    }
    if retransmits > 0 {
        let limit = if e.last_state == Some(TcpState::SynSent) {
            u32::from(SYN_RETRIES)
        } else if e.orphan {
            u32::from(ORPHAN_RETRIES)
        } else {
            e.tcp_retries2.unwrap_or(RETRIES2)
        };
        return if user_timeout || u32::from(retransmits) >= limit {
            DeathCause::RetransmitTimeout
        } else {
            DeathCause::Reset
        };
    }
    if e.time_wait_twin {
        return DeathCause::Closed;
    }
    match e.last_state {
        Some(
            TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::TimeWait
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::CloseWait,
        ) => DeathCause::Closed,
        _ => DeathCause::Unknown,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::format::compact;
    use crate::model::keepalive::Source;
    use crate::model::{TcpInfo, Timer};

    const NET: Settings = Settings {
        tcp_keepalive_time_s: Some(7200),
        tcp_keepalive_intvl_s: Some(75),
        tcp_keepalive_probes: Some(9),
        tcp_retries2: Some(15),
        tcp_fin_timeout_s: Some(60),
    };

    fn conn(state: TcpState, kind: TimerKind, expires_ms: u32, count: u8) -> Connection {
        Connection {
            state,
            local_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            local_port: 40000,
            peer_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            peer_port: 9000,
            inode: 100,
            timer: Timer {
                kind,
                expires_ms,
                count,
            },
            tcp_info: Some(TcpInfo::default()),
            ..crate::testing::conn()
        }
    }

    fn heard(mut c: Connection, data_ms: u32, ack_ms: u32) -> Connection {
        let info = c.tcp_info.get_or_insert_with(TcpInfo::default);
        info.set_last_data_recv_ms(Some(data_ms));
        info.set_last_ack_recv_ms(Some(ack_ms));
        c
    }

    fn ka(idle: u32, intvl: u32, cnt: u32, user_timeout_ms: u32) -> KeepaliveSettings {
        KeepaliveSettings {
            enabled: Some(true),
            idle_s: Some(idle),
            intvl_s: Some(intvl),
            cnt: Some(cnt),
            user_timeout_ms: Some(user_timeout_ms),
            source: Source::Socket,
        }
    }

    fn p(next: Option<u64>, dies: Option<u64>, estimate: bool, by: Option<DeathBy>) -> Prediction {
        Prediction {
            next_probe_ms: next,
            dies_in_ms: dies,
            dies_in_estimate: estimate,
            dies_by: by,
        }
    }

    use DeathBy::*;

    #[test]
    fn keepalive_predictions_follow_the_kernel_rule() {
        let est = TcpState::Established;
        let k = TimerKind::Keepalive;
        #[rustfmt::skip]
        let cases: &[(&str, Connection, KeepaliveSettings, Prediction)] = &[
            ("armed at the last receive: the timer is honest",
             heard(conn(est, k, 2_000, 0), 1_000, 1_000), ka(3, 2, 3, 0),
             p(Some(2_000), Some(8_000), false, Some(Keepalive))),
            ("data arrived since the timer was armed: the timer fires early and re-arms; the probe waits idle",
             heard(conn(est, k, 1_500, 0), 200, 1_500), ka(3, 2, 3, 0),
             p(Some(2_800), Some(8_800), false, Some(Keepalive))),
            ("an ack alone also counts as hearing from the peer",
             heard(conn(est, k, 500, 0), 90_000, 100), ka(3, 2, 3, 0),
             p(Some(2_900), Some(8_900), false, Some(Keepalive))),
            ("timer later than idle (re-armed while data was in flight): the timer decides",
             heard(conn(est, k, 2_500, 0), 2_000, 2_000), ka(3, 2, 3, 0),
             p(Some(2_500), Some(8_500), false, Some(Keepalive))),
            ("overdue timer (expires 0)",
             heard(conn(est, k, 0, 0), 4_000, 4_000), ka(3, 2, 3, 0),
             p(Some(0), Some(6_000), false, Some(Keepalive))),
            ("one probe out: next probe at the expiry, then two more intervals",
             heard(conn(est, k, 1_200, 1), 3_800, 3_800), ka(3, 2, 3, 0),
             p(Some(1_200), Some(5_200), false, Some(Keepalive))),
            ("all probes out: the next expiry resets, no more probes",
             heard(conn(est, k, 700, 3), 8_300, 8_300), ka(3, 2, 3, 0),
             p(None, Some(700), false, Some(Keepalive))),
            ("probes out beyond a lowered count: reset at the expiry",
             heard(conn(est, k, 700, 5), 8_300, 8_300), ka(3, 2, 3, 0),
             p(None, Some(700), false, Some(Keepalive))),
            ("kernel defaults, just heard from the peer: 2h11m15s",
             heard(conn(est, k, 7_200_000, 0), 0, 0), ka(7200, 75, 9, 0),
             p(Some(7_200_000), Some(7_875_000), false, Some(Keepalive))),
            ("a count of 0 resets at the first expiry without probing",
             heard(conn(est, k, 1_000, 0), 2_000, 2_000), ka(3, 2, 0, 0),
             p(None, Some(1_000), false, Some(Keepalive))),
            ("user timeout replaces the count: first expiry past it with a probe out",
             heard(conn(est, k, 30_000, 0), 0, 0), ka(30, 5, 4, 42_000),
             p(Some(30_000), Some(45_000), false, Some(UserTimeout))),
            ("user timeout shorter than idle: one probe, reset at the next interval",
             heard(conn(est, k, 30_000, 0), 0, 0), ka(30, 5, 4, 1_000),
             p(Some(30_000), Some(35_000), false, Some(UserTimeout))),
            ("user timeout already passed with a probe out: reset at the expiry",
             heard(conn(est, k, 3_000, 2), 42_000, 42_000), ka(30, 5, 4, 40_000),
             p(None, Some(3_000), false, Some(UserTimeout))),
            ("user timeout exactly at an expiry counts (elapsed >= user timeout)",
             heard(conn(est, k, 5_000, 1), 35_000, 35_000), ka(30, 5, 9, 50_000),
             p(Some(5_000), Some(15_000), false, Some(UserTimeout))),
            ("close-wait sockets keep probing",
             heard(conn(TcpState::CloseWait, k, 1_000, 0), 500, 500), ka(3, 2, 3, 0),
             p(Some(2_500), Some(8_500), false, Some(Keepalive))),
        ];
        for (name, c, settings, want) in cases {
            assert_eq!(predict(c, settings, &NET), Some(*want), "{name}");
        }
    }

    #[test]
    fn keepalive_off_never_dies_and_other_states_are_not_predicted() {
        let off = KeepaliveSettings {
            enabled: Some(false),
            ..ka(7200, 75, 9, 0)
        };
        let c = heard(
            conn(TcpState::Established, TimerKind::None, 0, 0),
            9_000_000,
            9_000_000,
        );
        assert_eq!(predict(&c, &off, &NET), Some(Prediction::default()));
        for state in [
            TcpState::Listen,
            TcpState::TimeWait,
            TcpState::SynSent,
            TcpState::FinWait2,
        ] {
            let c = conn(state, TimerKind::None, 0, 0);
            assert_eq!(predict(&c, &off, &NET), None, "{state}");
        }
    }

    #[test]
    fn keepalive_on_without_a_timer_is_an_estimate_from_idle() {
        let c = heard(
            conn(TcpState::Established, TimerKind::None, 0, 0),
            1_000,
            1_000,
        );
        assert_eq!(
            predict(&c, &ka(3, 2, 3, 0), &NET),
            Some(p(Some(2_000), Some(8_000), true, Some(Keepalive)))
        );
    }

    #[test]
    fn missing_settings_or_tcp_info_mark_an_estimate() {
        let mut c = conn(TcpState::Established, TimerKind::Keepalive, 1_000, 0);
        c.tcp_info = None;
        let got = predict(&c, &ka(3, 2, 3, 0), &NET).unwrap();
        assert_eq!(got, p(Some(1_000), Some(7_000), true, Some(Keepalive)));
        let unknown = KeepaliveSettings {
            idle_s: None,
            ..ka(3, 2, 3, 0)
        };
        let got = predict(&c, &unknown, &NET).unwrap();
        assert_eq!(got, p(Some(1_000), None, true, None));
    }

    #[test]
    fn model_timeout_matches_the_kernel_for_common_retries2() {
        // tcp_retries2=15 is the documented 924.6 s; 8 gives 102.2 s (2^9-1)*200ms.
        assert_eq!(model_timeout_ms(15), 924_600);
        assert_eq!(model_timeout_ms(8), 102_200);
        assert_eq!(model_timeout_ms(9), 204_600);
        assert_eq!(model_timeout_ms(10), 324_600);
        assert_eq!(model_timeout_ms(0), 200);
    }

    #[test]
    fn retransmitting_sockets_get_an_estimate_from_the_backoff() {
        let with = |expires: u32, count: u8, backoff: u8, rto_ms: u32| {
            let mut c = conn(TcpState::Established, TimerKind::Retransmit, expires, count);
            let info = c.tcp_info.as_mut().unwrap();
            info.set_backoff(Some(backoff));
            info.set_rto_us(Some(rto_ms * 1000));
            c
        };
        let r2 = |n| Settings {
            tcp_retries2: Some(n),
            ..NET
        };
        // base 200 ms, first retransmit pending in 200 ms: expiries at 200, 600, 1400, ... after the start;
        // with retries2=3 the limit is 3000 ms: the expiry at 3000 gives up (retransmits so far: 3).
        let c = with(200, 0, 0, 200);
        let got = predict(&c, &ka(7200, 75, 9, 0), &r2(3)).unwrap();
        assert_eq!(got, p(None, Some(3_000), true, Some(Retransmit)));
        // The same socket two retransmits later (rto 800, third expiry due in 500 ms, i.e. now is 900 ms after
        // the start): it still gives up 3000 ms after the start.
        let c = with(500, 2, 2, 800);
        let got = predict(&c, &ka(7200, 75, 9, 0), &r2(3)).unwrap();
        assert_eq!(got, p(None, Some(2_100), true, Some(Retransmit)));
        // Default retries2: 924.6 s from the start; the expiry that crosses it ends the connection.
        let c = with(200, 0, 0, 200);
        let got = predict(&c, &ka(7200, 75, 9, 0), &NET).unwrap();
        let dies = got.dies_in_ms.unwrap();
        assert!((924_600..924_600 + 120_000).contains(&dies), "{dies}");
        // A user timeout clamps the timer: the socket dies at the user timeout.
        let c = with(200, 0, 0, 200);
        let got = predict(&c, &ka(7200, 75, 9, 10_000), &NET).unwrap();
        assert_eq!(got, p(None, Some(10_000), true, Some(UserTimeout)));
    }

    #[test]
    fn zero_window_probes_estimate_from_retries2() {
        let mut c = conn(TcpState::Established, TimerKind::ZeroWindowProbe, 400, 1);
        c.tcp_info.as_mut().unwrap().set_rto_us(Some(200_000));
        let net = Settings {
            tcp_retries2: Some(3),
            ..NET
        };
        let got = predict(&c, &ka(7200, 75, 9, 0), &net).unwrap();
        assert_eq!(
            got,
            p(None, Some(400 + 400 + 800), true, Some(ZeroWindowProbe))
        );
    }

    #[test]
    fn assumed_settings_infer_enabled_from_the_timer() {
        let on = conn(TcpState::Established, TimerKind::Keepalive, 1, 0);
        let off = conn(TcpState::Established, TimerKind::None, 0, 0);
        let busy = conn(TcpState::Established, TimerKind::Retransmit, 1, 0);
        assert_eq!(KeepaliveSettings::assumed(&on, &NET).enabled, Some(true));
        assert_eq!(KeepaliveSettings::assumed(&off, &NET).enabled, Some(false));
        assert_eq!(KeepaliveSettings::assumed(&busy, &NET).enabled, None);
        let s = KeepaliveSettings::assumed(&on, &NET);
        assert_eq!(s.source, Source::Sysctl);
        assert_eq!(
            (s.idle_s, s.intvl_s, s.cnt),
            (Some(7200), Some(75), Some(9))
        );
        assert_eq!(s.user_timeout_ms, None);
        assert!(s.default_idle());
        assert_eq!(serde_json::to_value(s.source).unwrap(), "sysctl");
        assert_eq!(serde_json::to_value(Source::Socket).unwrap(), "socket");
    }

    #[test]
    fn compact_settings_say_read_assumed_off_unknown_or_not_applicable() {
        let read = ka(300, 100, 3, 0);
        assert_eq!(compact(Some(&read)), "300/100/3");
        let assumed = KeepaliveSettings {
            source: Source::Sysctl,
            ..ka(7200, 75, 9, 0)
        };
        assert_eq!(compact(Some(&assumed)), "7200/75/9*");
        let off = KeepaliveSettings {
            enabled: Some(false),
            ..read
        };
        assert_eq!(compact(Some(&off)), "off");
        let unknown = KeepaliveSettings {
            enabled: None,
            ..assumed
        };
        assert_eq!(compact(Some(&unknown)), "?");
        let missing = KeepaliveSettings {
            intvl_s: None,
            ..assumed
        };
        assert_eq!(compact(Some(&missing)), "7200/?/9*");
        assert_eq!(compact(None), "-");
    }

    #[test]
    fn causes_of_death_are_given_only_on_evidence() {
        let ka3 = ka(3, 2, 3, 0);
        let ut = ka(3, 2, 9, 5_000);
        let off = KeepaliveSettings {
            enabled: Some(false),
            ..ka3
        };
        use DeathCause::*;
        use TcpState::*;
        fn ev(
            probes: u8,
            retransmits: u8,
            settings: Option<&KeepaliveSettings>,
            last_state: Option<TcpState>,
            orphan: bool,
            time_wait_twin: bool,
        ) -> DeathEvidence<'_> {
            DeathEvidence {
                probes: Some(probes),
                retransmits: Some(retransmits),
                settings,
                last_state,
                orphan,
                tcp_retries2: Some(15),
                time_wait_twin,
            }
        }
        #[rustfmt::skip]
        let cases = [
            ("all probes unanswered", ev(3, 0, Some(&ka3), Some(Established), false, false), KeepaliveExhausted),
            ("user timeout ends probing early", ev(1, 0, Some(&ut), None, false, false), KeepaliveExhausted),
            ("probes, count unknown", ev(2, 0, None, None, false, false), Unknown),
            ("window probes with keepalive off", ev(3, 0, Some(&off), Some(Established), false, false), Unknown),
            ("ended before the probes ran out", ev(1, 0, Some(&ka3), Some(Established), false, false), Reset),
            ("retransmissions at tcp_retries2", ev(0, 15, Some(&ka3), Some(Established), false, false), RetransmitTimeout),
            ("retransmissions past the user timeout", ev(0, 4, Some(&ut), Some(Established), false, false), RetransmitTimeout),
            ("an orphan at the orphan limit", ev(0, 8, None, Some(FinWait1), true, false), RetransmitTimeout),
            ("SYN retries exhausted", ev(0, 6, None, Some(SynSent), false, false), RetransmitTimeout),
            ("ended mid-retransmission", ev(0, 3, Some(&ka3), Some(Established), false, false), Reset),
            ("a TIME-WAIT entry took its place", ev(0, 0, Some(&ka3), Some(Established), false, true), Closed),
            ("last seen closing", ev(0, 0, None, Some(LastAck), true, false), Closed),
            ("a fast close from ESTABLISHED", ev(0, 0, Some(&ka3), Some(Established), false, false), Unknown),
            ("nothing known", DeathEvidence::default(), Unknown),
        ];
        for (name, evidence, want) in cases {
            assert_eq!(infer_cause(&evidence), want, "{name}");
        }
        let lower = DeathEvidence {
            tcp_retries2: Some(3),
            ..ev(0, 3, None, Some(Established), false, false)
        };
        assert_eq!(
            infer_cause(&lower),
            RetransmitTimeout,
            "the namespace's own tcp_retries2"
        );
        assert_eq!(
            serde_json::to_value(KeepaliveExhausted).unwrap(),
            "keepalive_exhausted"
        );
    }
}
