//! Parses the kernel's `struct tcp_info` (include/uapi/linux/tcp.h) from whatever prefix of it was sent.
//!
//! The struct only ever grows at the end, so an older kernel sends a shorter prefix. A field is `Some` only
//! when the payload holds all of its bytes. Values are in host byte order.

use crate::model::TcpInfo;

/// Byte offsets of the fields kwatch reads, from the uapi header.
mod off {
    pub const STATE: usize = 0;
    pub const CA_STATE: usize = 1;
    pub const RETRANSMITS: usize = 2;
    pub const PROBES: usize = 3;
    pub const BACKOFF: usize = 4;
    // 5 options, 6 snd_wscale:4 rcv_wscale:4, 7 delivery_rate_app_limited:1 fastopen_client_fail:2
    pub const RTO: usize = 8;
    pub const ATO: usize = 12;
    pub const SND_MSS: usize = 16;
    pub const RCV_MSS: usize = 20;
    pub const UNACKED: usize = 24;
    pub const SACKED: usize = 28;
    pub const LOST: usize = 32;
    pub const RETRANS: usize = 36;
    // 40 fackets
    pub const LAST_DATA_SENT: usize = 44;
    pub const LAST_ACK_SENT: usize = 48;
    pub const LAST_DATA_RECV: usize = 52;
    pub const LAST_ACK_RECV: usize = 56;
    pub const PMTU: usize = 60;
    // 64 rcv_ssthresh
    pub const RTT: usize = 68;
    pub const RTTVAR: usize = 72;
    // 76 snd_ssthresh
    pub const SND_CWND: usize = 80;
    // 84 advmss, 88 reordering, 92 rcv_rtt, 96 rcv_space
    pub const TOTAL_RETRANS: usize = 100; // the original struct ends at 104
    // 104 pacing_rate (u64), 112 max_pacing_rate (u64)
    pub const BYTES_ACKED: usize = 120; // u64
    pub const BYTES_RECEIVED: usize = 128; // u64
    // 136 segs_out, 140 segs_in
    pub const NOTSENT_BYTES: usize = 144;
    pub const MIN_RTT: usize = 148;
    // 152 data_segs_in, 156 data_segs_out, 160 delivery_rate (u64), 168 busy_time (u64),
    // 176 rwnd_limited (u64), 184 sndbuf_limited (u64), 192 delivered, 196 delivered_ce
    pub const BYTES_SENT: usize = 200; // u64
    pub const BYTES_RETRANS: usize = 208; // u64
    // 216 dsack_dups, 220 reord_seen, 224 rcv_ooopack
    pub const SND_WND: usize = 228;
    // 232 rcv_wnd, 236 rehash, 240 total_rto (u16), 242 total_rto_recoveries (u16), 244 total_rto_time: 248
}

fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at + 4)?;
    Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_ne_bytes(bytes))
}

/// Reads the fields `model::TcpInfo` carries from an `INET_DIAG_INFO` payload of any length, straight into the
/// compact form (one per socket of every dump).
pub fn parse(b: &[u8]) -> TcpInfo {
    // Packed once, in table order (see `model::tcp_info`).
    TcpInfo::from_values(&[
        u8_at(b, off::STATE).map(u64::from),
        u8_at(b, off::CA_STATE).map(u64::from),
        u8_at(b, off::RETRANSMITS).map(u64::from),
        u8_at(b, off::PROBES).map(u64::from),
        u8_at(b, off::BACKOFF).map(u64::from),
        u32_at(b, off::RTO).map(u64::from),
        u32_at(b, off::ATO).map(u64::from),
        u32_at(b, off::SND_MSS).map(u64::from),
        u32_at(b, off::RCV_MSS).map(u64::from),
        u32_at(b, off::UNACKED).map(u64::from),
        u32_at(b, off::SACKED).map(u64::from),
        u32_at(b, off::LOST).map(u64::from),
        u32_at(b, off::RETRANS).map(u64::from),
        u32_at(b, off::LAST_DATA_SENT).map(u64::from),
        u32_at(b, off::LAST_ACK_SENT).map(u64::from),
        u32_at(b, off::LAST_DATA_RECV).map(u64::from),
        u32_at(b, off::LAST_ACK_RECV).map(u64::from),
        u32_at(b, off::PMTU).map(u64::from),
        u32_at(b, off::RTT).map(u64::from),
        u32_at(b, off::RTTVAR).map(u64::from),
        u32_at(b, off::SND_CWND).map(u64::from),
        u32_at(b, off::TOTAL_RETRANS).map(u64::from),
        u64_at(b, off::BYTES_ACKED),
        u64_at(b, off::BYTES_RECEIVED),
        u32_at(b, off::NOTSENT_BYTES).map(u64::from),
        u32_at(b, off::MIN_RTT).map(u64::from),
        u64_at(b, off::BYTES_SENT),
        u64_at(b, off::BYTES_RETRANS),
        u32_at(b, off::SND_WND).map(u64::from),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 248-byte tcp_info (Linux 6.x) where every u32 slot holds its own offset and u64 slots likewise, so a
    /// wrong offset shows up as a wrong value.
    fn numbered(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        for (i, byte) in b.iter_mut().enumerate().take(8) {
            *byte = 0x10 + i as u8;
        }
        let mut at = 8;
        while at + 4 <= len.min(104) {
            b[at..at + 4].copy_from_slice(&(at as u32).to_ne_bytes());
            at += 4;
        }
        for at in [104, 112, 120, 128, 160, 168, 176, 184, 200, 208] {
            if at + 8 <= len {
                b[at..at + 8].copy_from_slice(&(at as u64 | 1 << 40).to_ne_bytes());
            }
        }
        for at in [
            136, 140, 144, 148, 152, 156, 192, 196, 216, 220, 224, 228, 232, 236, 244,
        ] {
            if at + 4 <= len {
                b[at..at + 4].copy_from_slice(&(at as u32).to_ne_bytes());
            }
        }
        b
    }

    #[test]
    fn full_struct_reads_every_field_at_its_offset() {
        let t = parse(&numbered(248));
        assert_eq!(
            (
                t.state(),
                t.ca_state(),
                t.retransmits(),
                t.probes(),
                t.backoff()
            ),
            (Some(0x10), Some(0x11), Some(0x12), Some(0x13), Some(0x14))
        );
        assert_eq!(
            (t.rto_us(), t.ato_us(), t.snd_mss(), t.rcv_mss()),
            (Some(8), Some(12), Some(16), Some(20))
        );
        assert_eq!(
            (t.unacked(), t.sacked(), t.lost(), t.retrans()),
            (Some(24), Some(28), Some(32), Some(36))
        );
        assert_eq!(
            (
                t.last_data_sent_ms(),
                t.last_ack_sent_ms(),
                t.last_data_recv_ms(),
                t.last_ack_recv_ms()
            ),
            (Some(44), Some(48), Some(52), Some(56))
        );
        assert_eq!(
            (t.pmtu(), t.rtt_us(), t.rttvar_us(), t.snd_cwnd()),
            (Some(60), Some(68), Some(72), Some(80))
        );
        assert_eq!(t.total_retrans(), Some(100));
        assert_eq!(t.bytes_acked(), Some(120 + (1 << 40)));
        assert_eq!(t.bytes_received(), Some(128 + (1 << 40)));
        assert_eq!((t.notsent_bytes(), t.min_rtt_us()), (Some(144), Some(148)));
        assert_eq!(t.bytes_sent(), Some(200 + (1 << 40)));
        assert_eq!(t.bytes_retrans(), Some(208 + (1 << 40)));
        assert_eq!(t.snd_wnd(), Some(228));
    }

    #[test]
    fn short_struct_has_none_past_its_end() {
        // 104 bytes: the original struct (Linux 2.6), ends with tcpi_total_retrans.
        let t = parse(&numbered(104));
        assert_eq!(t.total_retrans(), Some(100));
        assert_eq!(t.rtt_us(), Some(68));
        assert_eq!(t.bytes_acked(), None);
        assert_eq!(t.min_rtt_us(), None);
        assert_eq!(t.snd_wnd(), None);
    }

    #[test]
    fn a_field_cut_in_half_is_none() {
        // 124 bytes: bytes_acked (120..128) only half present.
        let t = parse(&numbered(124));
        assert_eq!(t.bytes_acked(), None);
        // 230 bytes: snd_wnd (228..232) cut.
        let t = parse(&numbered(230));
        assert_eq!(t.bytes_retrans(), Some(208 + (1 << 40)));
        assert_eq!(t.snd_wnd(), None);
    }

    #[test]
    fn empty_payload_is_all_none() {
        assert_eq!(parse(&[]), TcpInfo::default());
    }
}
