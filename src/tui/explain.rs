//! Plain-language readings of a socket's timer and state, from its keepalive settings (read from the socket, or
//! the namespace's) and the kernel-rule prediction in `analyze::predict`.

use crate::analyze::predict::predict;
use crate::duration::format_duration_ms;
use crate::model::keepalive::{DeathBy, KeepaliveSettings, Prediction, Source};
use crate::model::{Connection, Settings, TcpState, TimerKind};

/// One or two sentences saying what the kernel will do with this socket and when. Uses the socket's own
/// keepalive settings when the collector filled them, else assumes the namespace settings.
pub fn reading(conn: &Connection, settings: &Settings) -> String {
    let ka = conn
        .keepalive
        .as_deref()
        .copied()
        .unwrap_or_else(|| KeepaliveSettings::assumed(conn, settings));
    let pred = predict(conn, &ka, settings);
    let timer = conn.timer;
    let (count, expires_ms) = (u32::from(timer.count), u64::from(timer.expires_ms));
    let e = format_duration_ms(expires_ms);
    let dies = |p: Option<Prediction>| p.and_then(|p| p.dies_in_ms).map(format_duration_ms);
    match timer.kind {
        TimerKind::Keepalive => keepalive(count, expires_ms, &ka, pred),
        TimerKind::Retransmit if conn.state == TcpState::SynSent => format!(
            "connecting: {} SYN retransmit{} so far, next in {e}; no answer from the peer yet",
            count,
            plural(count)
        ),
        TimerKind::Retransmit if count == 0 => {
            format!("data in flight: retransmit timer (or loss probe) fires in {e} unless acked")
        }
        TimerKind::Retransmit => {
            let limit = match (dies(pred), settings.tcp_retries2) {
                (Some(d), Some(r)) => {
                    format!("; the kernel gives up in about {d} (tcp_retries2={r})")
                }
                (Some(d), None) => format!("; the kernel gives up in about {d}"),
                (None, Some(r)) => {
                    format!("; the kernel gives up after tcp_retries2={r} retransmits")
                }
                (None, None) => String::new(),
            };
            format!(
                "{} retransmit{} of unacknowledged data, next in {e}: the peer or the path is not \
                 answering{limit}",
                count,
                plural(count)
            )
        }
        TimerKind::ZeroWindowProbe => {
            let limit = dies(pred)
                .map(|d| format!("; if it never reads, the kernel gives up in about {d}"))
                .unwrap_or_default();
            format!(
                "the peer's receive window is zero (it is not reading): {} window probe{} sent, next in \
                 {e}{limit}",
                count,
                plural(count)
            )
        }
        TimerKind::TimeWait => {
            format!("closed; the kernel frees this TIME-WAIT entry in {e} (normal, nothing to do)")
        }
        TimerKind::None => untimed(conn, settings),
    }
}

/// Where the numbers come from, when the socket set its own.
fn whose(ka: &KeepaliveSettings) -> &'static str {
    match ka.source {
        Source::Socket => ", set on the socket",
        Source::Sysctl => "",
    }
}

fn keepalive(
    count: u32,
    expires_ms: u64,
    ka: &KeepaliveSettings,
    pred: Option<Prediction>,
) -> String {
    let (Some(intvl), Some(cnt)) = (ka.intvl_s, ka.cnt) else {
        return format!(
            "keepalive on: {count} probe{} unanswered, next timer in {}",
            plural(count),
            format_duration_ms(expires_ms)
        );
    };
    let dies_ms = pred.and_then(|p| p.dies_in_ms).unwrap_or_else(|| {
        expires_ms + u64::from(cnt.saturating_sub(count)) * u64::from(intvl) * 1_000
    });
    let reset = format_duration_ms(dies_ms);
    let how = match pred.and_then(|p| p.dies_by) {
        Some(DeathBy::UserTimeout) => format!(
            "TCP_USER_TIMEOUT {}",
            format_duration_ms(u64::from(ka.user_timeout_ms.unwrap_or(0)))
        ),
        _ => format!("{intvl}s x {cnt}"),
    };
    let src = whose(ka);
    if count == 0 {
        let first = pred.and_then(|p| p.next_probe_ms).unwrap_or(expires_ms);
        format!(
            "keepalive on: first probe in {}; if the peer vanished, the kernel resets this connection in \
             about {reset} ({how}{src})",
            format_duration_ms(first)
        )
    } else {
        format!(
            "{count} keepalive probe{} unanswered; with {how} the kernel resets this connection in about \
             {reset}{}",
            plural(count),
            if src.is_empty() {
                ""
            } else {
                " (set on the socket)"
            }
        )
    }
}

fn untimed(conn: &Connection, settings: &Settings) -> String {
    match conn.state {
        TcpState::Established if conn.send_q > 0 => {
            "data queued but no timer: unusual; the kernel should be retransmitting".to_string()
        }
        TcpState::Established => {
            "no keepalive: if this peer vanished, the connection would stay ESTABLISHED forever"
                .to_string()
        }
        TcpState::CloseWait => {
            "the peer closed its side; the owning process has not called close(). The \
             kernel never times this out: it stays until the process closes it"
                .to_string()
        }
        TcpState::FinWait2 => match settings.tcp_fin_timeout_s {
            Some(s) => format!(
                "we closed; waiting for the peer's FIN. Orphaned, it is dropped after tcp_fin_timeout={s}s"
            ),
            None => "we closed; waiting for the peer's FIN".to_string(),
        },
        TcpState::Listen => format!("listening: accept queue {} of {}", conn.recv_q, conn.send_q),
        TcpState::LastAck => "we closed after the peer did; waiting for its final ACK".to_string(),
        _ => "no timer pending".to_string(),
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::Timer;

    fn defaults() -> Settings {
        Settings {
            tcp_keepalive_time_s: Some(7200),
            tcp_keepalive_intvl_s: Some(75),
            tcp_keepalive_probes: Some(9),
            tcp_retries2: Some(15),
            tcp_fin_timeout_s: Some(60),
        }
    }

    fn conn(state: TcpState, kind: TimerKind, expires_ms: u32, count: u8) -> Connection {
        Connection {
            state,
            local_addr: "10.0.0.5".parse().unwrap(),
            local_port: 40112,
            peer_addr: "10.0.0.9".parse().unwrap(),
            peer_port: 5432,
            timer: Timer {
                kind,
                expires_ms,
                count,
            },
            ..crate::testing::conn()
        }
    }

    #[test]
    fn keepalive_with_unanswered_probes_counts_down_to_reset() {
        let c = conn(TcpState::Established, TimerKind::Keepalive, 0, 3);
        assert_eq!(
            reading(&c, &defaults()),
            "3 keepalive probes unanswered; with 75s x 9 the kernel resets this connection in about 7m30s"
        );
    }

    #[test]
    fn no_timer_on_established_means_forever() {
        let c = conn(TcpState::Established, TimerKind::None, 0, 0);
        assert_eq!(
            reading(&c, &defaults()),
            "no keepalive: if this peer vanished, the connection would stay ESTABLISHED forever"
        );
    }

    #[test]
    fn keepalive_without_settings_still_reads() {
        let c = conn(TcpState::Established, TimerKind::Keepalive, 41_000, 1);
        assert_eq!(
            reading(&c, &Settings::default()),
            "keepalive on: 1 probe unanswered, next timer in 41s"
        );
    }

    #[test]
    fn retransmits_name_the_limit() {
        let c = conn(TcpState::Established, TimerKind::Retransmit, 25_600, 6);
        let text = reading(&c, &defaults());
        assert!(
            text.starts_with("6 retransmits of unacknowledged data, next in 25s"),
            "{text}"
        );
        assert!(text.contains("the kernel gives up in about "), "{text}");
        assert!(text.ends_with("(tcp_retries2=15)"), "{text}");
    }

    #[test]
    fn settings_read_from_the_socket_win_over_the_namespace() {
        let mut c = conn(TcpState::Established, TimerKind::Keepalive, 5_000, 2);
        c.keepalive = Some(
            KeepaliveSettings {
                enabled: Some(true),
                idle_s: Some(60),
                intvl_s: Some(10),
                cnt: Some(5),
                user_timeout_ms: Some(0),
                source: Source::Socket,
            }
            .into(),
        );
        assert_eq!(
            reading(&c, &defaults()),
            "2 keepalive probes unanswered; with 10s x 5 the kernel resets this connection in about 35s (set on \
             the socket)"
        );
    }
}
