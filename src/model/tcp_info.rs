//! `TcpInfo`: the part of the kernel's `struct tcp_info` kwatch keeps per socket, stored compactly.
//!
//! A busy host has hundreds of thousands of sockets, so the struct holds plain integers and one bit per field
//! saying whether the kernel sent it (128 bytes rather than 240 with an `Option` per field). Readers see
//! `Option`s through accessors; [`TcpInfoFields`] is the same data with an `Option` per field, the shape of the
//! JSON and the convenient way to build a `TcpInfo` in tests.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

/// The presence word's top bit, set in every `TcpInfo`: the word is never zero, so `Option<TcpInfo>` needs no
/// separate tag (8 bytes less per socket). Fields use the bits below it.
const NEVER_ZERO: NonZeroU32 = NonZeroU32::new(1 << 31).expect("not zero");

/// Declares, from one table, the compact `TcpInfo` (plain fields + presence bits), its accessors and setters,
/// `TcpInfoFields` (an `Option` per field) and the lossless conversions between them.
macro_rules! tcp_info {
    ($( $(#[doc = $doc:expr])* $name:ident, $set:ident: $ty:ty; )*) => {
        /// The part of the kernel's `struct tcp_info` kwatch uses. Each field reads `None` when the kernel's
        /// reply was too short to contain it (older kernels send a shorter struct). Serialized as
        /// [`TcpInfoFields`].
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "TcpInfoFields", into = "TcpInfoFields")]
        pub struct TcpInfo {
            /// Bit `Field::x as u32` set when field `x` was sent, and [`NEVER_ZERO`] always. An absent field
            /// holds 0, so the derived equality compares what the accessors return.
            present: NonZeroU32,
            $( $name: $ty, )*
        }

        impl Default for TcpInfo {
            /// No field present.
            fn default() -> Self {
                TcpInfo { present: NEVER_ZERO, $( $name: 0, )* }
            }
        }

        /// One bit index per field, in table order.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        enum Field { $( $name, )* }

        /// How many fields `TcpInfo` has.
        pub const FIELDS: usize = [$( Field::$name ),*].len();

        // Every field's bit lies below `NEVER_ZERO`'s.
        const _: () = assert!(FIELDS < 31);

        impl TcpInfo {
            /// Every field by name, in table order (the order of the JSON), widened to `u64`; `None` when the
            /// kernel did not send it.
            pub fn by_name(&self) -> [(&'static str, Option<u64>); FIELDS] {
                [$( (stringify!($name), self.$name().map(u64::from)), )*]
            }

            /// Sets the field at `index` in table order (the order of [`TcpInfo::by_name`]) from a value widened
            /// to `u64`, as `by_name` reads it. False (and nothing set) when there is no such field or the value
            /// does not fit it.
            pub fn set_by_index(&mut self, index: usize, value: Option<u64>) -> bool {
                let mut at = 0;
                $(
                    if at == index {
                        let value = match value.map(<$ty>::try_from) {
                            Some(Ok(v)) => Some(v),
                            Some(Err(_)) => return false,
                            None => None,
                        };
                        self.$set(value);
                        return true;
                    }
                    at += 1;
                )*
                let _ = at;
                false
            }

            $(
                $(#[doc = $doc])*
                pub fn $name(&self) -> Option<$ty> {
                    (self.present.get() & (1 << Field::$name as u32) != 0).then_some(self.$name)
                }

                pub fn $set(&mut self, value: Option<$ty>) {
                    let bit = 1 << Field::$name as u32;
                    match value {
                        Some(v) => {
                            self.present |= bit;
                            self.$name = v;
                        }
                        None => {
                            self.present = NEVER_ZERO | (self.present.get() & !bit);
                            self.$name = 0;
                        }
                    }
                }
            )*
        }

        /// `TcpInfo` with an `Option` per field: what the JSON carries.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct TcpInfoFields {
            $( $(#[doc = $doc])* pub $name: Option<$ty>, )*
        }

        impl From<TcpInfoFields> for TcpInfo {
            fn from(f: TcpInfoFields) -> Self {
                let mut info = TcpInfo::default();
                $( info.$set(f.$name); )*
                info
            }
        }

        impl From<TcpInfo> for TcpInfoFields {
            fn from(info: TcpInfo) -> Self {
                TcpInfoFields { $( $name: info.$name(), )* }
            }
        }
    };
}

tcp_info! {
    /// `tcpi_state` as the kernel sees it.
    state, set_state: u8;
    /// `tcpi_ca_state`: congestion-avoidance state (0 open, 1 disorder, 2 cwr, 3 recovery, 4 loss).
    ca_state, set_ca_state: u8;
    /// `tcpi_retransmits`: consecutive retransmits of the current segment (icsk_retransmits).
    retransmits, set_retransmits: u8;
    /// `tcpi_probes`: unanswered zero-window or keepalive probes (icsk_probes_out).
    probes, set_probes: u8;
    /// `tcpi_backoff`: exponential backoff of the retransmit timer.
    backoff, set_backoff: u8;
    rto_us, set_rto_us: u32;
    ato_us, set_ato_us: u32;
    snd_mss, set_snd_mss: u32;
    rcv_mss, set_rcv_mss: u32;
    unacked, set_unacked: u32;
    sacked, set_sacked: u32;
    lost, set_lost: u32;
    retrans, set_retrans: u32;
    last_data_sent_ms, set_last_data_sent_ms: u32;
    last_ack_sent_ms, set_last_ack_sent_ms: u32;
    last_data_recv_ms, set_last_data_recv_ms: u32;
    last_ack_recv_ms, set_last_ack_recv_ms: u32;
    pmtu, set_pmtu: u32;
    rtt_us, set_rtt_us: u32;
    rttvar_us, set_rttvar_us: u32;
    snd_cwnd, set_snd_cwnd: u32;
    total_retrans, set_total_retrans: u32;
    bytes_acked, set_bytes_acked: u64;
    bytes_received, set_bytes_received: u64;
    notsent_bytes, set_notsent_bytes: u32;
    min_rtt_us, set_min_rtt_us: u32;
    bytes_sent, set_bytes_sent: u64;
    bytes_retrans, set_bytes_retrans: u64;
    snd_wnd, set_snd_wnd: u32;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> TcpInfoFields {
        TcpInfoFields {
            state: Some(1),
            probes: Some(0),
            rtt_us: Some(250),
            bytes_acked: Some(1 << 40),
            snd_wnd: Some(65535),
            ..TcpInfoFields::default()
        }
    }

    #[test]
    fn every_field_round_trips_through_the_compact_form() {
        let fields = sample();
        let info = TcpInfo::from(fields.clone());
        assert_eq!(TcpInfoFields::from(info.clone()), fields);
        assert_eq!(info.rtt_us(), Some(250));
        // Zero is a value, not absence.
        assert_eq!(info.probes(), Some(0));
        assert_eq!(info.backoff(), None);
    }

    #[test]
    fn clearing_a_field_makes_it_equal_to_one_never_set() {
        let mut info = TcpInfo::from(sample());
        info.set_rtt_us(None);
        let mut without = sample();
        without.rtt_us = None;
        assert_eq!(info, TcpInfo::from(without));
    }

    #[test]
    fn fields_by_name_are_the_json_keys_in_order() {
        let info = TcpInfo::from(sample());
        let text = serde_json::to_string(&info).unwrap();
        let fields = info.by_name();
        // Every name is a key of the JSON, in the JSON's order, and there are no others.
        let at: Vec<usize> = fields
            .iter()
            .map(|(name, _)| text.find(&format!("\"{name}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json.as_object().unwrap().len(), fields.len());
        let value = |name: &str| fields.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(value("rtt_us"), Some(250));
        assert_eq!(value("backoff"), None);
    }

    #[test]
    fn json_has_a_null_per_absent_field_and_reads_back() {
        let info = TcpInfo::from(sample());
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["rtt_us"], 250);
        assert!(json["backoff"].is_null());
        assert_eq!(json.as_object().unwrap().len(), 29);
        assert_eq!(json, serde_json::to_value(sample()).unwrap());
        assert_eq!(serde_json::from_value::<TcpInfo>(json).unwrap(), info);
    }

    #[test]
    fn the_compact_form_is_about_half_the_size() {
        assert!(std::mem::size_of::<TcpInfo>() <= 128);
        assert_eq!(
            std::mem::size_of::<Option<TcpInfo>>(),
            std::mem::size_of::<TcpInfo>()
        );
    }
}
