//! `Owners`: the (pid, fd) pairs holding one socket, in 16 bytes.
//!
//! Nearly every socket has one owner, and a busy host has hundreds of thousands of sockets, each listed in the
//! /proc map and in the snapshot: one owner is kept inline, several (a socket shared by fork or SCM_RIGHTS) in one
//! allocation. A small-vector crate keeps its inline capacity beside the length and the heap pointer (24 bytes);
//! this keeps either, never both.

use std::fmt;
use std::ops::Deref;

use serde::de::Deserializer;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::Owner;

/// The processes holding one socket. Reads as a slice of [`Owner`]s (`iter`, `first`, `len`, ...); serialized as
/// a list.
#[derive(Clone, Default)]
pub struct Owners(Repr);

#[derive(Clone, Default)]
enum Repr {
    #[default]
    None,
    One(Owner),
    /// Two or more. Boxed on purpose: a `Box<Vec>` is one word where a `Vec` or a boxed slice is two or three,
    /// and the rare shared socket pays the second allocation.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Owner>>),
}

impl Owners {
    pub fn new() -> Owners {
        Owners(Repr::None)
    }

    pub fn push(&mut self, owner: Owner) {
        self.0 = match std::mem::take(&mut self.0) {
            Repr::None => Repr::One(owner),
            Repr::One(first) => Repr::Many(Box::new(vec![first, owner])),
            Repr::Many(mut all) => {
                all.push(owner);
                Repr::Many(all)
            }
        };
    }

    pub fn clear(&mut self) {
        self.0 = Repr::None;
    }

    /// Sorts by pid and fd and drops repeats.
    pub fn sort_dedup(&mut self) {
        if let Repr::Many(all) = &mut self.0 {
            all.sort_unstable();
            all.dedup();
            if let [one] = all[..] {
                self.0 = Repr::One(one);
            }
        }
    }
}

impl Deref for Owners {
    type Target = [Owner];

    fn deref(&self) -> &[Owner] {
        match &self.0 {
            Repr::None => &[],
            Repr::One(one) => std::slice::from_ref(one),
            Repr::Many(all) => all,
        }
    }
}

impl PartialEq for Owners {
    fn eq(&self, other: &Owners) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Owners {}

impl std::hash::Hash for Owners {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self[..].hash(state);
    }
}

impl From<Owner> for Owners {
    fn from(owner: Owner) -> Owners {
        Owners(Repr::One(owner))
    }
}

impl From<Vec<Owner>> for Owners {
    fn from(all: Vec<Owner>) -> Owners {
        match all[..] {
            [] => Owners(Repr::None),
            [one] => Owners(Repr::One(one)),
            _ => Owners(Repr::Many(Box::new(all))),
        }
    }
}

impl<const N: usize> From<[Owner; N]> for Owners {
    fn from(all: [Owner; N]) -> Owners {
        all.into_iter().collect()
    }
}

impl FromIterator<Owner> for Owners {
    fn from_iter<I: IntoIterator<Item = Owner>>(iter: I) -> Owners {
        let mut owners = Owners::new();
        for owner in iter {
            owners.push(owner);
        }
        owners
    }
}

impl<'a> IntoIterator for &'a Owners {
    type Item = &'a Owner;
    type IntoIter = std::slice::Iter<'a, Owner>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Owners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Owners {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Owners {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Owner>::deserialize(deserializer)?.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn o(pid: u32, fd: u32) -> Owner {
        Owner { pid, fd }
    }

    #[test]
    fn holds_none_one_or_many_in_push_order() {
        let mut owners = Owners::new();
        assert!(owners.is_empty());
        owners.push(o(9, 4));
        assert_eq!(&owners[..], &[o(9, 4)]);
        owners.push(o(2, 7));
        owners.push(o(5, 1));
        assert_eq!(&owners[..], &[o(9, 4), o(2, 7), o(5, 1)]);
        assert_eq!(owners.first(), Some(&o(9, 4)));
        owners.clear();
        assert_eq!(owners, Owners::new());
    }

    #[test]
    fn sort_dedup_orders_and_drops_repeats_back_to_one() {
        let mut owners: Owners = [o(9, 4), o(2, 7), o(9, 4), o(2, 3)].into_iter().collect();
        owners.sort_dedup();
        assert_eq!(&owners[..], &[o(2, 3), o(2, 7), o(9, 4)]);
        let mut twice: Owners = [o(3, 3), o(3, 3)].into_iter().collect();
        twice.sort_dedup();
        // One owner is equal to one pushed alone, whatever way it was built.
        assert_eq!(twice, Owners::from(o(3, 3)));
        assert_eq!(Owners::from(vec![o(3, 3)]), Owners::from(o(3, 3)));
    }

    #[test]
    fn json_is_the_list_and_the_size_two_words() {
        let owners: Owners = [o(1, 2), o(3, 4)].into_iter().collect();
        let json = serde_json::to_string(&owners).unwrap();
        assert_eq!(json, r#"[{"pid":1,"fd":2},{"pid":3,"fd":4}]"#);
        assert_eq!(serde_json::from_str::<Owners>(&json).unwrap(), owners);
        assert_eq!(serde_json::from_str::<Owners>("[]").unwrap(), Owners::new());
        assert_eq!(std::mem::size_of::<Owners>(), 16);
    }
}
