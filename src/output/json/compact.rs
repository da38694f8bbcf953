//! Socket rows written straight to bytes: the JSON serde_json writes, without its work per key.
//!
//! A socket row has about sixty keys, and serde_json runs every key of every row through its string escaper (it
//! cannot know they are plain identifiers): at 200,000 rows that was the largest single cost of `--once --json`
//! after the kernel's. Here a row's own keys and tcp_info's are written as they are, numbers through itoa, and
//! everything else (strings that may need escaping, the small nested objects) through serde_json itself. The tests
//! of `json` compare the bytes with serde_json's for every kind of row.

use std::io;
use std::net::IpAddr;

use crate::model::keepalive::{DeathBy, KeepaliveSettings};
use crate::model::{Family, NetnsRef, Owner, StateName, TcpInfo, Timer, Unit};

use super::Findings;

/// A value that writes itself as compact JSON, byte for byte what serde_json writes for it.
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

/// Types whose JSON serde_json writes: strings that may need escaping, and objects too small or too rare in a row
/// to be worth writing by hand.
macro_rules! through_serde {
    ($($t:ty),*) => {$(
        impl WriteJson for $t {
            fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
                serde_json::to_writer(&mut *out, self).map_err(io::Error::from)
            }
        }
    )*};
}
through_serde!(
    str,
    Family,
    Timer,
    [Owner],
    Findings<'_>,
    KeepaliveSettings,
    DeathBy,
    NetnsRef,
    Unit
);

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

/// An address as serde writes it: its text in quotes (digits, hex, dots and colons need no escaping).
impl WriteJson for IpAddr {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        use std::io::Write;
        write!(out, "\"{self}\"")
    }
}

/// A state's documented name (lowercase letters and dashes).
impl WriteJson for StateName {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        out.push(b'"');
        out.extend_from_slice(self.0.name().as_bytes());
        out.push(b'"');
        Ok(())
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
