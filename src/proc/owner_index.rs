//! `OwnerIndex`: socket inode → the (pid, fd) pairs holding it, in 16 bytes a pair.
//!
//! A million sockets each held by one fd make a million pairs. In a hash map of inode → [`Owners`] they took
//! ~50 bytes each (24-byte entries in a table kept below 7/8 full, so 2^21 slots for 10^6): 68 MiB at the peak
//! of `--once` beside a ~300 MiB snapshot. Here they are one sorted vector of (inode, owner): 16 MiB, built with
//! one sort, looked up by binary search (the join does 10^6 lookups in ~0.1 s).

use crate::model::{Owner, Owners};

/// Every (inode, owner) pair, sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerIndex {
    pairs: Vec<(u64, Owner)>,
}

impl OwnerIndex {
    /// From pairs in any order; duplicates are dropped.
    pub fn from_pairs(mut pairs: Vec<(u64, Owner)>) -> OwnerIndex {
        pairs.sort_unstable();
        pairs.dedup();
        pairs.shrink_to_fit();
        OwnerIndex { pairs }
    }

    /// The first index whose inode is not below `inode`. Inodes come from one counter, so they spread evenly:
    /// the search starts where `inode` would sit if they were spread perfectly and gallops from there (a binary
    /// search over a million pairs was 3 % of `--once`'s samples, twice: the cache's check and the join).
    fn start_of(&self, inode: u64) -> usize {
        let pairs = &self.pairs;
        let (Some(first), Some(last)) = (pairs.first(), pairs.last()) else {
            return 0;
        };
        if inode <= first.0 {
            return 0;
        }
        if inode > last.0 {
            return pairs.len();
        }
        // first.0 < inode <= last.0, so the span is not zero and the guess lies within the vector.
        let span = u128::from(last.0 - first.0);
        let guess = (u128::from(inode - first.0) * (pairs.len() as u128 - 1) / span) as usize;
        // Gallop to a window [lo, hi) that holds the answer, then search it.
        let (mut lo, mut hi) = (guess, guess + 1);
        let mut step = 1;
        if pairs[guess].0 < inode {
            // The answer is past `guess`.
            lo = guess + 1;
            hi = lo;
            while hi < pairs.len() && pairs[hi].0 < inode {
                lo = hi + 1;
                hi = (hi + step).min(pairs.len());
                step *= 2;
            }
            hi = hi.min(pairs.len());
        } else {
            // The answer is at `guess` or before.
            while lo > 0 && pairs[lo - 1].0 >= inode {
                hi = lo;
                lo = lo.saturating_sub(step);
                step *= 2;
            }
        }
        lo + pairs[lo..hi].partition_point(|(i, _)| *i < inode)
    }

    /// The pairs of `inode`, sorted by owner; empty when no fd holds it.
    fn slice(&self, inode: u64) -> &[(u64, Owner)] {
        let start = self.start_of(inode);
        let len = self.pairs[start..]
            .iter()
            .take_while(|(i, _)| *i == inode)
            .count();
        &self.pairs[start..start + len]
    }

    /// Every (pid, fd) holding `inode`, sorted; `None` when none does.
    pub fn get(&self, inode: u64) -> Option<Owners> {
        let slice = self.slice(inode);
        (!slice.is_empty()).then(|| slice.iter().map(|(_, o)| *o).collect())
    }

    pub fn contains_key(&self, inode: u64) -> bool {
        !self.slice(inode).is_empty()
    }

    /// Distinct inodes, in increasing order.
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.pairs
            .chunk_by(|a, b| a.0 == b.0)
            .map(|group| group[0].0)
    }

    /// Every (inode, owner) pair, sorted.
    pub fn pairs(&self) -> &[(u64, Owner)] {
        &self.pairs
    }

    /// Every inode with its owners, in increasing inode order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Owners)> + '_ {
        self.pairs
            .chunk_by(|a, b| a.0 == b.0)
            .map(|group| (group[0].0, group.iter().map(|(_, o)| *o).collect()))
    }

    /// How many distinct inodes are held.
    pub fn len(&self) -> usize {
        self.keys().count()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Heap bytes held (for the benchmark's profile).
    pub fn heap_bytes(&self) -> usize {
        self.pairs.capacity() * std::mem::size_of::<(u64, Owner)>()
    }
}

impl FromIterator<(u64, Owners)> for OwnerIndex {
    fn from_iter<I: IntoIterator<Item = (u64, Owners)>>(iter: I) -> Self {
        OwnerIndex::from_pairs(
            iter.into_iter()
                .flat_map(|(inode, owners)| {
                    owners.iter().map(move |o| (inode, *o)).collect::<Vec<_>>()
                })
                .collect(),
        )
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
    fn owners_come_out_sorted_and_deduplicated_per_inode() {
        let index = OwnerIndex::from_pairs(vec![
            (9, o(2, 5)),
            (7, o(1, 3)),
            (9, o(1, 4)),
            (9, o(2, 5)),
            (12, o(3, 1)),
        ]);
        assert_eq!(index.get(9), Some(Owners::from([o(1, 4), o(2, 5)])));
        assert_eq!(index.get(7), Some(Owners::from(o(1, 3))));
        assert_eq!(index.get(8), None);
        assert_eq!(index.get(13), None);
        assert!(index.contains_key(12) && !index.contains_key(0));
        assert_eq!(index.keys().collect::<Vec<_>>(), [7, 9, 12]);
        assert_eq!(index.len(), 3);
        let groups: Vec<(u64, usize)> = index.iter().map(|(i, o)| (i, o.len())).collect();
        assert_eq!(groups, [(7, 1), (9, 2), (12, 1)]);
        assert_eq!(std::mem::size_of::<(u64, Owner)>(), 16);
    }

    #[test]
    fn the_interpolated_search_agrees_with_a_binary_one() {
        // Dense, sparse, clustered and repeated inodes; every value around them looked up.
        let sets: [Vec<u64>; 4] = [
            (100..400).collect(),
            (0..300).map(|i| i * i * 7 + 3).collect(),
            (0..100)
                .chain(1_000_000..1_000_050)
                .chain([u64::MAX - 1])
                .collect(),
            [5, 5, 5, 9, 9, 12].to_vec(),
        ];
        for inodes in sets {
            let index = OwnerIndex::from_pairs(
                inodes
                    .iter()
                    .enumerate()
                    .map(|(n, &i)| (i, o(1, n as u32)))
                    .collect(),
            );
            let mut probes: Vec<u64> = inodes
                .iter()
                .flat_map(|&i| [i.saturating_sub(1), i, i.saturating_add(1)])
                .collect();
            probes.extend([0, 1, u64::MAX]);
            for p in probes {
                let want = index.pairs.partition_point(|(i, _)| *i < p);
                assert_eq!(index.start_of(p), want, "inode {p}");
            }
        }
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        let index = OwnerIndex::default();
        assert!(index.is_empty() && index.get(1).is_none() && index.keys().count() == 0);
    }
}
