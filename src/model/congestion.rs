//! `Congestion`: a congestion control algorithm's name (`INET_DIAG_CONG`), shared by the sockets using it, in one
//! word.
//!
//! A host's sockets name a handful of algorithms, so each name is allocated once and every socket holds a pointer
//! to it. An `Arc<str>` is a pointer and a length in the socket (16 bytes, 15 MiB at a million sockets); this keeps
//! the length in the shared allocation and only the pointer in the socket (8 bytes, `Option<Congestion>` too).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::Deserializer;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// A congestion control algorithm's name (`cubic`, `bbr`). Reads as a `&str`; a clone is a reference count, not a
/// copy. Serialized as a string.
#[derive(Clone)]
pub struct Congestion(Arc<Box<str>>);

impl Congestion {
    /// Whether `a` and `b` are the same allocation (not merely equal names).
    pub fn ptr_eq(a: &Congestion, b: &Congestion) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Deref for Congestion {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Congestion {
    fn from(name: &str) -> Congestion {
        Congestion(Arc::new(Box::from(name)))
    }
}

impl PartialEq for Congestion {
    fn eq(&self, other: &Congestion) -> bool {
        Congestion::ptr_eq(self, other) || **self == **other
    }
}

impl Eq for Congestion {}

impl std::hash::Hash for Congestion {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl fmt::Debug for Congestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Congestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl Serialize for Congestion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for Congestion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Congestion, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Congestion::from(name.as_str()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_word_even_when_optional() {
        assert_eq!(std::mem::size_of::<Congestion>(), 8);
        assert_eq!(std::mem::size_of::<Option<Congestion>>(), 8);
    }

    #[test]
    fn reads_compares_and_serializes_as_its_name() {
        let a = Congestion::from("cubic");
        let b = Congestion::from("cubic");
        assert_eq!(&*a, "cubic");
        assert_eq!(a, b);
        assert!(!Congestion::ptr_eq(&a, &b));
        assert!(Congestion::ptr_eq(&a, &a.clone()));
        assert_ne!(a, Congestion::from("bbr"));
        assert_eq!(format!("{a} {a:?}"), "cubic \"cubic\"");
        let json = serde_json::to_string(&Some(a)).unwrap();
        assert_eq!(json, "\"cubic\"");
        let back: Option<Congestion> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_deref(), Some("cubic"));
    }
}
