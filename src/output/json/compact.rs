//! Socket rows written straight to bytes: the JSON serde_json writes, without its work per key and per string.
//!
//! A socket row has about sixty keys, and serde_json runs every key of every row through its string escaper (it
//! cannot know they are plain identifiers): at 200,000 rows that was the largest single cost of `--once --json`
//! after the kernel's. Here every part of a row is written by hand: keys as the literal bytes they are, numbers
//! through itoa, the nested objects (timer, owners, findings, keepalive, netns, unit) field by field (each
//! destructured, so a field added to the model does not compile until it is written here too), enumerations by
//! their documented names. Strings go through one writer, [`WriteJson`] for `str`: a string with nothing to escape
//! (no control character, `"`, `\` or bidirectional formatting character: nearly all) is copied as it is, any
//! other is escaped by serde_json and then by [`super::escape_bidi`]. Since every string of a row passes there,
//! the rows need no `escape_bidi` pass over their bytes (a gigabyte at a million sockets). Nothing of a row goes
//! through serde_json unless a string needs escaping. The tests of `json` compare the bytes with serde_json's
//! (bidi controls escaped) for every kind of row, every hand-written type and hostile strings.

use std::io;
use std::net::IpAddr;

use crate::model::keepalive::{DeathBy, KeepaliveSettings, Source};
use crate::model::{
    Family, FindingCode, NetnsRef, Owner, Severity, StateName, TcpInfo, Timer, TimerKind, Unit,
    UnitKind,
};

use super::{FindingReport, Findings};

/// A value that writes itself as compact JSON, byte for byte what serde_json writes for it, bidirectional
/// formatting characters escaped as [`super::escape_bidi`] escapes them. An implementation writes any string
/// through `str`'s, which escapes them: the rows get no other pass.
pub trait WriteJson {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()>;
}

/// Declares a struct whose fields serialize in order under their own names (serde's derive, no attributes), and
/// its [`WriteJson`], from the one list of fields.
macro_rules! json_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<$lt:lifetime> {
            $( $(#[doc = $doc:expr])* pub $field:ident: $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name<$lt> {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl $crate::output::json::compact::WriteJson for $name<'_> {
            fn write_json(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
                let mut open = true;
                $(
                    out.extend_from_slice(if open { b"{" } else { b"," });
                    open = false;
                    out.extend_from_slice(concat!("\"", stringify!($field), "\":").as_bytes());
                    self.$field.write_json(out)?;
                )*
                out.extend_from_slice(if open { b"{}" } else { b"}" });
                Ok(())
            }
        }
    };
}
pub(crate) use json_struct;

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl WriteJson for $t {
            fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
                out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
                Ok(())
            }
        }
    )*};
}
integers!(u8, u16, u32, u64);

/// Writes an object from its keys and values in order, `{"k0":v0,"k1":v1}`, each value through its [`WriteJson`]
/// (`out` a `&mut Vec<u8>`, in a function returning `io::Result`).
macro_rules! object {
    ($out:ident; $k0:ident: $v0:expr $(, $k:ident: $v:expr)* $(,)?) => {{
        $out.extend_from_slice(concat!("{\"", stringify!($k0), "\":").as_bytes());
        $v0.write_json($out)?;
        $(
            $out.extend_from_slice(concat!(",\"", stringify!($k), "\":").as_bytes());
            $v.write_json($out)?;
        )*
        $out.push(b'}');
    }};
}

/// Writes `name` in quotes: for the documented names of enumerations (lowercase letters, digits, `_` and `-`).
/// Never fails: the `Result` makes it a `write_json` body of its own.
#[allow(clippy::unnecessary_wraps)]
fn name(name: &str, out: &mut Vec<u8>) -> io::Result<()> {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Writes `values` as a JSON array.
fn array<T: WriteJson>(values: impl IntoIterator<Item = T>, out: &mut Vec<u8>) -> io::Result<()> {
    out.push(b'[');
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        value.write_json(out)?;
    }
    out.push(b']');
    Ok(())
}

/// Bytes that may need an escape: the ones serde_json escapes (controls, `"`, `\`) and the lead bytes of the
/// bidirectional formatting characters (0xD8, 0xE2; only candidates, [`super::bidi_at`] tells).
const LOOK: [bool; 256] = {
    let mut look = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        look[b] = true;
        b += 1;
    }
    look[b'"' as usize] = true;
    look[b'\\' as usize] = true;
    look[0xd8] = true;
    look[0xe2] = true;
    look
};

/// A string as serde_json writes it, with the bidirectional formatting characters escaped as
/// [`super::escape_bidi`] escapes them: every string of a socket row comes through here, so the rows need no pass
/// of `escape_bidi` over their bytes. A string without anything to escape (nearly all) is copied as it is.
impl WriteJson for str {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let bytes = self.as_bytes();
        let plain = bytes.iter().enumerate().all(|(i, &b)| {
            !LOOK[usize::from(b)] || (b >= 0x80 && super::bidi_at(bytes, i).is_none())
        });
        if plain {
            out.reserve(bytes.len() + 2);
            out.push(b'"');
            out.extend_from_slice(bytes);
            out.push(b'"');
        } else {
            out.extend_from_slice(&super::escape_bidi(serde_json::to_vec(self)?));
        }
        Ok(())
    }
}

impl WriteJson for String {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        self.as_str().write_json(out)
    }
}

impl<T: WriteJson> WriteJson for [T] {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        array(self, out)
    }
}

impl WriteJson for Family {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        name(
            match self {
                Family::Ipv4 => "ipv4",
                Family::Ipv6 => "ipv6",
            },
            out,
        )
    }
}

impl WriteJson for TimerKind {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        name(self.label(), out)
    }
}

impl WriteJson for Timer {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let Timer {
            kind,
            expires_ms,
            count,
        } = self;
        object!(out; kind: kind, expires_ms: expires_ms, count: count);
        Ok(())
    }
}

impl WriteJson for Owner {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let Owner { pid, fd } = self;
        object!(out; pid: pid, fd: fd);
        Ok(())
    }
}

impl WriteJson for FindingCode {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        name(self.name(), out)
    }
}

impl WriteJson for Severity {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        name(self.label(), out)
    }
}

impl WriteJson for FindingReport {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let FindingReport {
            code,
            severity,
            message,
        } = self;
        object!(out; code: code, severity: severity, message: message);
        Ok(())
    }
}

/// The findings as [`Findings`]' `Serialize` writes them, each sentence written from the socket as it goes.
impl WriteJson for Findings<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        array(self.reports(), out)
    }
}

impl WriteJson for Source {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        name(
            match self {
                Source::Socket => "socket",
                Source::Sysctl => "sysctl",
            },
            out,
        )
    }
}

impl WriteJson for KeepaliveSettings {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let KeepaliveSettings {
            enabled,
            idle_s,
            intvl_s,
            cnt,
            user_timeout_ms,
            source,
        } = self;
        object!(out;
            enabled: enabled,
            idle_s: idle_s,
            intvl_s: intvl_s,
            cnt: cnt,
            user_timeout_ms: user_timeout_ms,
            source: source,
        );
        Ok(())
    }
}

impl WriteJson for DeathBy {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        name(
            match self {
                DeathBy::Keepalive => "keepalive",
                DeathBy::UserTimeout => "user_timeout",
                DeathBy::Retransmit => "retransmit",
                DeathBy::ZeroWindowProbe => "zero_window_probe",
            },
            out,
        )
    }
}

impl WriteJson for NetnsRef {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let NetnsRef { inode, name } = self;
        object!(out; inode: inode, name: name.as_deref());
        Ok(())
    }
}

impl WriteJson for UnitKind {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        name(self.name(), out)
    }
}

impl WriteJson for Unit {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let Unit { kind, id, pod } = self;
        object!(out; kind: kind, id: id, pod: pod.as_deref());
        Ok(())
    }
}

impl WriteJson for bool {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
        Ok(())
    }
}

impl<T: WriteJson> WriteJson for Option<T> {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        if let Some(value) = self {
            value.write_json(out)
        } else {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

impl<T: WriteJson + ?Sized> WriteJson for &T {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        (**self).write_json(out)
    }
}

/// An address as serde writes it: its text in quotes (digits, hex, dots and colons need no escaping). An IPv4
/// address is written octet by octet, without the formatting machinery.
impl WriteJson for IpAddr {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            IpAddr::V4(v4) => {
                out.push(b'"');
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    out.extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
                }
                out.push(b'"');
                Ok(())
            }
            IpAddr::V6(_) => {
                use std::io::Write;
                write!(out, "\"{self}\"")
            }
        }
    }
}

/// A state's documented name (lowercase letters and dashes).
impl WriteJson for StateName {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        name(self.0.name(), out)
    }
}

/// tcp_info as [`crate::model::TcpInfoFields`] serializes: every field in order, `null` when absent.
impl WriteJson for TcpInfo {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut open = true;
        for (name, value) in self.by_name() {
            out.extend_from_slice(if open { b"{\"" } else { b",\"" });
            open = false;
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            value.write_json(out)?;
        }
        out.extend_from_slice(if open { b"{}" } else { b"}" });
        Ok(())
    }
}
