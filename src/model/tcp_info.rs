//! `TcpInfo`: the part of the kernel's `struct tcp_info` kwatch keeps per socket, packed.
//!
//! A million sockets each carry one, so its size is most of a snapshot's. The 29 fields held as plain integers
//! with a presence bit each took 128 bytes; most values are small (counters at 0, MSS and RTO in two or three
//! bytes), so here they are LEB128 varints: first the fields the kernel did not send (a bit each, one byte when
//! it sent them all), then each present field in table order. A loopback connection packs into ~45 bytes, kept in
//! the struct itself (48 bytes); a longer one (large byte counters) goes to the heap. Inline storage matters as
//! much as the size: a heap allocation per socket per refresh left the long-running live view and exporter with
//! tens of MiB of fragmented heap. Readers see `Option`s through accessors, which decode the one field asked for;
//! [`TcpInfo::values`] decodes them all at once (the JSON row and the recorder do). [`TcpInfoFields`] is the same
//! data with an `Option` per field: the shape of the JSON and the convenient way to build a `TcpInfo` in tests.

use serde::{Deserialize, Serialize};

/// Packed bytes kept in the struct itself: 46 bytes and a length fit the 48 bytes of the heap variant's place.
const INLINE: usize = 46;

/// The packed bytes, inline when they fit. Canonical (inline exactly when they fit, unused bytes zero), so the
/// derived equality compares contents.
#[derive(Clone, PartialEq, Eq)]
enum Packed {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl Packed {
    fn new(bytes: &[u8]) -> Packed {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Packed::Inline(bytes.len() as u8, inline)
        } else {
            Packed::Heap(bytes.into())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Packed::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Packed::Heap(bytes) => bytes,
        }
    }
}

/// Writes `v` as an unsigned LEB128 varint at `out[at..]`; returns the index past it.
fn put_varint(out: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        out[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    out[at] = v as u8;
    at + 1
}

/// Reads a varint at `*at`, moving past it; 0 past the end (never produced by [`put_varint`]).
fn get_varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*at) {
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

/// Declares, from one table, the packed `TcpInfo`, its accessors and setters, `TcpInfoFields` (an `Option` per
/// field) and the lossless conversions between them.
macro_rules! tcp_info {
    ($( $(#[doc = $doc:expr])* $name:ident, $set:ident: $ty:ty; )*) => {
        /// The part of the kernel's `struct tcp_info` kwatch uses. Each field reads `None` when the kernel's
        /// reply was too short to contain it (older kernels send a shorter struct). Serialized as
        /// [`TcpInfoFields`].
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "TcpInfoFields", into = "TcpInfoFields")]
        pub struct TcpInfo {
            /// The absence word (bit `Field::x as u32` set when field `x` was not sent) as a varint, then the
            /// present fields' values as varints, in table order. The encoding of a set of values is unique, so
            /// the derived equality compares what the accessors return.
            packed: Packed,
        }

        impl Default for TcpInfo {
            /// No field present.
            fn default() -> Self {
                TcpInfo::from_values(&[None; FIELDS])
            }
        }

        impl std::fmt::Debug for TcpInfo {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                TcpInfoFields::from(self.clone()).fmt(f)
            }
        }

        /// One bit index per field, in table order (`Field::x as u32` is field `x`'s bit in a field mask).
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum Field { $( $name, )* }

        /// How many fields `TcpInfo` has.
        pub const FIELDS: usize = [$( Field::$name ),*].len();

        // Every field has a bit of the absence word below bit 31 (the recording's field mask keeps bit 31 set).
        const _: () = assert!(FIELDS < 31);

        /// Field names in table order (the order of the JSON).
        const NAMES: [&str; FIELDS] = [$( stringify!($name), )*];

        /// The largest value each field's type holds, in table order.
        const MAX: [u64; FIELDS] = [$( <$ty>::MAX as u64, )*];

        impl TcpInfo {
            /// Packs values given in table order, each widened to `u64`. A value too large for its field's type
            /// is kept only up to that type's maximum (never produced by the kernel's parser, which reads each
            /// field at its width).
            pub fn from_values(values: &[Option<u64>; FIELDS]) -> TcpInfo {
                let mut absent = 0u64;
                for (i, v) in values.iter().enumerate() {
                    if v.is_none() {
                        absent |= 1 << i;
                    }
                }
                // At most 5 bytes of absence word and 10 per field.
                let mut out = [0u8; 5 + 10 * FIELDS];
                let mut len = put_varint(&mut out, 0, absent);
                for (v, max) in values.iter().zip(MAX) {
                    if let Some(v) = v {
                        len = put_varint(&mut out, len, (*v).min(max));
                    }
                }
                TcpInfo { packed: Packed::new(&out[..len]) }
            }

            /// [`TcpInfo::from_values`], or `None` when a value does not fit its field's type.
            pub fn try_from_values(values: &[Option<u64>; FIELDS]) -> Option<TcpInfo> {
                values
                    .iter()
                    .zip(MAX)
                    .all(|(v, max)| v.is_none_or(|v| v <= max))
                    .then(|| TcpInfo::from_values(values))
            }

            /// Every field in table order, widened to `u64`; `None` when the kernel did not send it.
            pub fn values(&self) -> [Option<u64>; FIELDS] {
                let bytes = self.packed.bytes();
                let mut at = 0;
                let absent = get_varint(bytes, &mut at);
                let mut out = [None; FIELDS];
                for (i, slot) in out.iter_mut().enumerate() {
                    if absent & (1 << i) == 0 {
                        *slot = Some(get_varint(bytes, &mut at));
                    }
                }
                out
            }

            /// Field `index` (table order), widened to `u64`: skips the varints of the present fields before it.
            fn get(&self, index: usize) -> Option<u64> {
                let bytes = self.packed.bytes();
                let mut at = 0;
                let absent = get_varint(bytes, &mut at);
                if absent & (1 << index) != 0 {
                    return None;
                }
                let mut skip = index as u32 - (absent & ((1 << index) - 1)).count_ones();
                while skip > 0 {
                    // Each byte without the continuation bit ends one varint.
                    skip -= u32::from(bytes.get(at)? & 0x80 == 0);
                    at += 1;
                }
                Some(get_varint(bytes, &mut at))
            }

            /// Whether `self` and `other` hold the same fields with the same values, except that the values of
            /// the fields in `mask` (bit `Field::x as u32` for field `x`) are compared by `eq(self's, other's)`.
            /// Decodes only the fields in `mask` and compares the bytes between them as bytes (the encoding of
            /// a value is unique: equal values have equal bytes): the recorder asks this of every socket on
            /// every refresh. `eq` is not called for a field absent from both.
            pub fn eq_where(&self, other: &TcpInfo, mask: u32, eq: impl Fn(u64, u64) -> bool) -> bool {
                let (a, b) = (self.packed.bytes(), other.packed.bytes());
                let (mut i, mut j) = (0, 0);
                let absent = get_varint(a, &mut i);
                if absent != get_varint(b, &mut j) {
                    return false;
                }
                let present = !absent & ((1u64 << FIELDS) - 1);
                let mut masked = present & u64::from(mask);
                // The present fields before `next` are compared; `i` and `j` are at the first one after.
                let mut next = 0;
                while masked != 0 {
                    let field = masked.trailing_zeros();
                    masked &= masked - 1;
                    // The varints of the present fields from `next` up to `field`, compared as one run of bytes.
                    let mut skip = (present & ((1u64 << field) - 1) & !((1u64 << next) - 1)).count_ones();
                    let from = i;
                    while skip > 0 {
                        let Some(&x) = a.get(i) else { return false };
                        skip -= u32::from(x & 0x80 == 0);
                        i += 1;
                    }
                    if b.get(j..j + (i - from)) != Some(&a[from..i]) {
                        return false;
                    }
                    j += i - from;
                    if !eq(get_varint(a, &mut i), get_varint(b, &mut j)) {
                        return false;
                    }
                    next = field + 1;
                }
                a.get(i..) == b.get(j..)
            }

            /// Bytes of the packed fields, inline or not.
            pub fn packed_len(&self) -> usize {
                self.packed.bytes().len()
            }

            /// Decoded, an `Option` per field.
            pub fn fields(&self) -> TcpInfoFields {
                let [$( $name, )*] = self.values();
                TcpInfoFields { $( $name: $name.and_then(|v| <$ty>::try_from(v).ok()), )* }
            }

            /// Every field by name, in table order (the order of the JSON), widened to `u64`; `None` when the
            /// kernel did not send it.
            pub fn by_name(&self) -> [(&'static str, Option<u64>); FIELDS] {
                let values = self.values();
                std::array::from_fn(|i| (NAMES[i], values[i]))
            }

            /// Sets the field at `index` in table order (the order of [`TcpInfo::by_name`]) from a value widened
            /// to `u64`, as `by_name` reads it. False (and nothing set) when there is no such field or the value
            /// does not fit it.
            pub fn set_by_index(&mut self, index: usize, value: Option<u64>) -> bool {
                if index >= FIELDS || value.is_some_and(|v| v > MAX[index]) {
                    return false;
                }
                let mut values = self.values();
                values[index] = value;
                *self = TcpInfo::from_values(&values);
                true
            }

            $(
                $(#[doc = $doc])*
                pub fn $name(&self) -> Option<$ty> {
                    self.get(Field::$name as usize).and_then(|v| <$ty>::try_from(v).ok())
                }

                pub fn $set(&mut self, value: Option<$ty>) {
                    self.set_by_index(Field::$name as usize, value.map(u64::from));
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
                TcpInfo::from_values(&[$( f.$name.map(u64::from), )*])
            }
        }

        impl From<TcpInfo> for TcpInfoFields {
            fn from(info: TcpInfo) -> Self {
                info.fields()
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
    fn the_packed_form_is_inline_and_a_few_bytes() {
        assert_eq!(std::mem::size_of::<TcpInfo>(), 48);
        assert_eq!(std::mem::size_of::<Option<TcpInfo>>(), 48);
        // A loopback connection's values: well under the 128 bytes the plain fields took.
        let mut values = [Some(0u64); FIELDS];
        values[5] = Some(204_000); // rto_us
        values[7] = Some(65_483); // snd_mss
        values[13] = Some(1_234_567); // last_data_sent_ms
        values[22] = Some(1 << 40); // bytes_acked
        let info = TcpInfo::from_values(&values);
        assert!(info.packed_len() <= INLINE, "{}", info.packed_len());
        assert!(matches!(info.packed, Packed::Inline(..)));
        assert_eq!(info.values(), values);
        // Every field at its largest does not fit inline, and reads back the same.
        let all: [Option<u64>; FIELDS] = std::array::from_fn(|i| Some(MAX[i]));
        let big = TcpInfo::from_values(&all);
        assert!(matches!(big.packed, Packed::Heap(_)));
        assert_eq!(big.values(), all);
        assert_eq!(big.clone(), big);
        assert_ne!(big, info);
    }

    #[test]
    fn eq_where_agrees_with_comparing_the_decoded_values() {
        // Pairs that differ in presence, in a field inside or outside the mask, at every width; `eq` here says
        // a masked value equals the other's plus 5 (mod 2^32), as the recorder's moving clock does.
        let mask = 1 << Field::last_data_recv_ms as u32 | 1 << Field::rtt_us as u32;
        let eq = |x: u64, y: u64| (x as u32).wrapping_add(5) == y as u32;
        let oracle = |a: &[Option<u64>; FIELDS], b: &[Option<u64>; FIELDS]| {
            (0..FIELDS).all(|i| match (a[i], b[i]) {
                (Some(x), Some(y)) if mask & 1 << i != 0 => eq(x, y),
                (x, y) => x == y,
            })
        };
        let base: [Option<u64>; FIELDS] =
            std::array::from_fn(|i| (i % 7 != 3).then_some((i as u64 * 300).min(MAX[i])));
        let mut checked = (0, 0);
        for i in 0..FIELDS {
            for v in [
                None,
                Some(0),
                Some(1),
                Some(127),
                Some(128),
                Some(1 << 20),
                Some(MAX[i]),
            ] {
                let mut other = base;
                other[i] = v.map(|v| v.min(MAX[i]));
                let mut shifted = other;
                for (k, slot) in shifted.iter_mut().enumerate() {
                    if mask & 1 << k != 0 {
                        *slot = slot.map(|x| u64::from((x as u32).wrapping_add(5)));
                    }
                }
                for (a, b) in [
                    (base, other),
                    (other, base),
                    (other, shifted),
                    (base, shifted),
                ] {
                    let (x, y) = (TcpInfo::from_values(&a), TcpInfo::from_values(&b));
                    let want = oracle(&a, &b);
                    assert_eq!(x.eq_where(&y, mask, eq), want, "{a:?} {b:?}");
                    assert_eq!(x.eq_where(&y, 0, |_, _| false), x == y);
                    if want {
                        checked.0 += 1;
                    } else {
                        checked.1 += 1;
                    }
                }
            }
        }
        // Both answers were asked for many times.
        assert!(checked.0 > 50 && checked.1 > 50, "{checked:?}");
    }

    #[test]
    fn every_field_reads_back_at_every_width() {
        // Each field alone and all together, at 0, a one-byte, a multi-byte and its type's largest value.
        for i in 0..FIELDS {
            for v in [0, 1, 127, 128, 300, 1 << 20, MAX[i]] {
                let mut values = [None; FIELDS];
                values[i] = Some(v.min(MAX[i]));
                let info = TcpInfo::from_values(&values);
                assert_eq!(info.values(), values);
                assert_eq!(info.by_name()[i].1, values[i]);
                let all: [Option<u64>; FIELDS] = std::array::from_fn(|j| Some(MAX[j].min(v)));
                let info = TcpInfo::from_values(&all);
                assert_eq!(info.values(), all);
                assert!((0..FIELDS).all(|j| info.get(j) == all[j]));
            }
        }
        let mut info = TcpInfo::default();
        assert!(!info.set_by_index(0, Some(256)), "state is a u8");
        assert!(!info.set_by_index(FIELDS, Some(1)));
        assert!(info.set_by_index(FIELDS - 1, Some(7)));
        assert_eq!(info.snd_wnd(), Some(7));
    }
}
