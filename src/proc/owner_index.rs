//! `OwnerIndex`: socket inode → the (pid, fd) pairs holding it, in 12 bytes a pair.
//!
//! A million sockets each held by one fd make a million pairs. In a hash map of inode → [`Owners`] they took
//! ~50 bytes each (24-byte entries in a table kept below 7/8 full, so 2^21 slots for 10^6): 68 MiB at the peak
//! of `--once` beside a ~300 MiB snapshot. Here they are one sorted vector of (inode, owner): 11.4 MiB (socket
//! inodes are 32-bit, the kernel's `get_next_ino`), built with one sort, looked up by binary search (the join does 10^6 lookups in ~0.1 s).

use crate::model::{Owner, Owners};

/// Every (inode, owner) pair, sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerIndex {
    pairs: Vec<(u32, Owner)>,
}

impl OwnerIndex {
    /// From pairs in any order; duplicates are dropped.
    pub fn from_pairs(mut pairs: Vec<(u32, Owner)>) -> OwnerIndex {
        pairs.sort_unstable();
        pairs.dedup();
        pairs.shrink_to_fit();
        OwnerIndex { pairs }
    }

    /// This index's pairs and those of `earlier` whose owner `keep` accepts, in one merge of the two sorted
    /// lists (a refresh that read a few processes again does not sort a million pairs). The two must hold
    /// different owners: a pair in both is kept twice.
    #[must_use]
    pub fn merged_with(self, earlier: OwnerIndex, keep: impl Fn(&Owner) -> bool) -> OwnerIndex {
        if earlier.pairs.is_empty() {
            return self;
        }
        let mut pairs = Vec::with_capacity(self.pairs.len() + earlier.pairs.len());
        let mut new = self.pairs.into_iter().peekable();
        for old in earlier.pairs.into_iter().filter(|(_, owner)| keep(owner)) {
            while let Some(n) = new.next_if(|n| *n < old) {
                pairs.push(n);
            }
            pairs.push(old);
        }
        pairs.extend(new);
        pairs.shrink_to_fit();
        OwnerIndex { pairs }
    }

    /// The first index whose inode is not below `inode`. Inodes come from one counter, so they spread evenly:
    /// the search starts where `inode` would sit if they were spread perfectly and gallops from there (a binary
    /// search over a million pairs was 3 % of `--once`'s samples, twice: the cache's check and the join).
    fn start_of(&self, inode: u32) -> usize {
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
        let span = u64::from(last.0 - first.0);
        let guess = (u64::from(inode - first.0) * (pairs.len() as u64 - 1) / span) as usize;
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
    fn slice(&self, inode: u32) -> &[(u32, Owner)] {
        let start = self.start_of(inode);
        let len = self.pairs[start..]
            .iter()
            .take_while(|(i, _)| *i == inode)
            .count();
        &self.pairs[start..start + len]
    }

    /// Every (pid, fd) holding `inode`, sorted; `None` when none does.
    pub fn get(&self, inode: u32) -> Option<Owners> {
        let slice = self.slice(inode);
        (!slice.is_empty()).then(|| slice.iter().map(|(_, o)| *o).collect())
    }

    /// The inodes of `sorted` (in increasing order, repeats allowed) that no fd holds, each once and in
    /// increasing order: one pass over both lists instead of a lookup per inode, whose cache misses made the
    /// cache's check 3 % of `--once`'s samples at a million sockets. Unsorted input is a bug (checked in debug
    /// builds) and gives a wrong answer, not a panic.
    pub fn missing<'a>(&'a self, sorted: &'a [u32]) -> impl Iterator<Item = u32> + 'a {
        debug_assert!(
            sorted.is_sorted(),
            "OwnerIndex::missing needs sorted inodes"
        );
        let mut rest = self.pairs.as_slice();
        let mut last = None;
        sorted.iter().copied().filter(move |&inode| {
            if last == Some(inode) {
                return false;
            }
            last = Some(inode);
            rest = skip_below(rest, inode);
            rest.first().is_none_or(|(held, _)| *held != inode)
        })
    }

    /// Hands every item whose inode some fd holds its owners (`give`). The items' inodes are sorted with their
    /// positions and merged against the pairs: a million lookups in an 11 MiB vector, a cache miss or more each
    /// (3 % of `--once`'s samples), cost more than sorting a million positions. Inode 0 (a socket no file refers
    /// to) and inodes nobody holds are skipped; an inode two items share is given to both.
    ///
    /// Socket inodes are 32-bit (`idiag_inode`), so an inode and a position are packed into one `u64`. The items
    /// go [`ATTACH_CHUNK`] at a time, each chunk sorted and merged against the whole index: the order of a million
    /// at once was 7.6 MiB, allocated when the snapshot, the index and the map are all held (it set the peak of
    /// `--once --json` at a million sockets); a chunk's is 1 MiB, and the merges gallop over the index.
    pub fn attach<T>(
        &self,
        items: &mut [T],
        inode: impl Fn(&T) -> u32,
        give: impl FnMut(&mut T, Owners),
    ) {
        self.attach_by(ATTACH_CHUNK, items, inode, give);
    }

    /// [`attach`](Self::attach), `chunk` items at a time (below 2^32).
    fn attach_by<T>(
        &self,
        chunk: usize,
        items: &mut [T],
        inode: impl Fn(&T) -> u32,
        mut give: impl FnMut(&mut T, Owners),
    ) {
        if self.pairs.is_empty() {
            return;
        }
        let mut order: Vec<u64> = Vec::with_capacity(items.len().min(chunk));
        for chunk in items.chunks_mut(chunk) {
            order.clear();
            order.extend(
                chunk
                    .iter()
                    .enumerate()
                    .filter(|(_, item)| inode(item) != 0)
                    .map(|(k, item)| (u64::from(inode(item)) << 32) | k as u64),
            );
            order.sort_unstable();
            let sorted = order
                .iter()
                .map(|&p| ((p >> 32) as u32, (p & u64::from(u32::MAX)) as usize));
            self.give_sorted(sorted, chunk, &mut give);
        }
    }

    /// [`attach`](Self::attach)'s merge: `order` is (inode, position) in increasing inode order.
    fn give_sorted<T>(
        &self,
        order: impl Iterator<Item = (u32, usize)>,
        items: &mut [T],
        give: &mut impl FnMut(&mut T, Owners),
    ) {
        let mut rest = self.pairs.as_slice();
        let mut current: Option<(u32, Owners)> = None;
        for (inode, k) in order {
            if current.as_ref().is_none_or(|(i, _)| *i != inode) {
                rest = skip_below(rest, inode);
                let held = rest.iter().take_while(|(i, _)| *i == inode).count();
                current = Some((inode, rest[..held].iter().map(|(_, o)| *o).collect()));
                rest = &rest[held..];
            }
            if let Some((_, owners)) = &current {
                if !owners.is_empty() {
                    give(&mut items[k], owners.clone());
                }
            }
        }
    }

    pub fn contains_key(&self, inode: u32) -> bool {
        !self.slice(inode).is_empty()
    }

    /// Distinct inodes, in increasing order.
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.pairs
            .chunk_by(|a, b| a.0 == b.0)
            .map(|group| group[0].0)
    }

    /// Every (inode, owner) pair, sorted.
    pub fn pairs(&self) -> &[(u32, Owner)] {
        &self.pairs
    }

    /// Every inode with its owners, in increasing inode order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Owners)> + '_ {
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
}

/// How many items [`OwnerIndex::attach`] sorts at a time (1 MiB of order; a chunk needs fewer than 2^32).
const ATTACH_CHUNK: usize = 1 << 17;

/// `pairs` (sorted) from the first pair whose inode is not below `inode`, found by galloping from the front: a
/// merge of a short list against a long one takes a few steps per item, not the long list's length.
fn skip_below(pairs: &[(u32, Owner)], inode: u32) -> &[(u32, Owner)] {
    let mut end = 1;
    while end < pairs.len() && pairs[end - 1].0 < inode {
        end *= 2;
    }
    let end = end.min(pairs.len());
    let skip = pairs[..end].partition_point(|(i, _)| *i < inode);
    &pairs[skip..]
}

impl FromIterator<(u32, Owners)> for OwnerIndex {
    fn from_iter<I: IntoIterator<Item = (u32, Owners)>>(iter: I) -> Self {
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
    fn merged_with_keeps_the_earlier_pairs_asked_for_in_inode_order() {
        let o = |pid, fd| Owner { pid, fd };
        let new = OwnerIndex::from_pairs(vec![(5, o(2, 3)), (1, o(2, 4)), (9, o(2, 5))]);
        let earlier = OwnerIndex::from_pairs(vec![
            (1, o(1, 3)),
            (4, o(3, 3)),
            (5, o(1, 4)),
            (12, o(1, 5)),
        ]);
        let merged = new.merged_with(earlier, |owner| owner.pid == 1);
        assert_eq!(
            merged.pairs(),
            [
                (1, o(1, 3)),
                (1, o(2, 4)),
                (5, o(1, 4)),
                (5, o(2, 3)),
                (9, o(2, 5)),
                (12, o(1, 5))
            ],
            "pid 3's earlier pair is dropped, the rest merged in order"
        );
        assert_eq!(merged.get(5).unwrap().to_vec(), [o(1, 4), o(2, 3)]);
        let alone = OwnerIndex::from_pairs(vec![(7, o(2, 2))]);
        assert_eq!(
            alone.clone().merged_with(OwnerIndex::default(), |_| true),
            alone
        );
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
        let groups: Vec<(u32, usize)> = index.iter().map(|(i, o)| (i, o.len())).collect();
        assert_eq!(groups, [(7, 1), (9, 2), (12, 1)]);
        assert_eq!(std::mem::size_of::<(u32, Owner)>(), 12);
    }

    #[test]
    fn the_interpolated_search_agrees_with_a_binary_one() {
        // Dense, sparse, clustered and repeated inodes; every value around them looked up.
        let sets: [Vec<u32>; 4] = [
            (100..400).collect(),
            (0..300).map(|i| i * i * 7 + 3).collect(),
            (0..100)
                .chain(1_000_000..1_000_050)
                .chain([u32::MAX - 1])
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
            let mut probes: Vec<u32> = inodes
                .iter()
                .flat_map(|&i| [i.saturating_sub(1), i, i.saturating_add(1)])
                .collect();
            probes.extend([0, 1, u32::MAX]);
            for p in probes {
                let want = index.pairs.partition_point(|(i, _)| *i < p);
                assert_eq!(index.start_of(p), want, "inode {p}");
            }
        }
    }

    /// Several owners per inode, an inode held twice by one process.
    fn several_owners_per_inode() -> OwnerIndex {
        OwnerIndex::from_pairs(vec![
            (7, o(1, 3)),
            (9, o(1, 4)),
            (9, o(2, 5)),
            (9, o(2, 6)),
            (12, o(3, 1)),
            (40, o(3, 2)),
        ])
    }

    #[test]
    fn missing_inodes_are_found_by_one_merge() {
        // Inode 0 and repeats in the dumped list.
        let index = several_owners_per_inode();
        let dumped = [0, 0, 3, 7, 7, 8, 9, 9, 10, 12, 13, 13, 41, u32::MAX];
        let missing: Vec<u32> = index.missing(&dumped).collect();
        assert_eq!(missing, [0, 3, 8, 10, 13, 41, u32::MAX]);
        // Agrees with a lookup per inode.
        let mut looked_up: Vec<u32> = dumped
            .iter()
            .copied()
            .filter(|i| !index.contains_key(*i))
            .collect();
        looked_up.dedup();
        assert_eq!(missing, looked_up);
        assert_eq!(index.missing(&[]).count(), 0);
        assert_eq!(index.missing(&[7, 9, 12, 40]).count(), 0);
        assert_eq!(
            OwnerIndex::default()
                .missing(&[0, 5, 5, 6])
                .collect::<Vec<_>>(),
            [0, 5, 6]
        );
    }

    #[test]
    fn attaching_owners_agrees_with_a_lookup_per_item() {
        let index = several_owners_per_inode();
        // Unsorted, an inode twice, inode 0 twice, inodes nobody holds, one past every pair.
        let mut items: Vec<(u32, Owners)> = [12, 0, 9, 8, 41, 9, 7, 0, 3, 40, u32::MAX]
            .iter()
            .map(|&i| (i, Owners::new()))
            .collect();
        let mut given = Vec::new();
        index.attach(
            &mut items,
            |(inode, _)| *inode,
            |(inode, owners), found| {
                given.push(*inode);
                *owners = found;
            },
        );
        assert_eq!(given, [7, 9, 9, 12, 40]);
        for (inode, owners) in &items {
            assert_eq!(
                Some(owners.clone()).filter(|o| !o.is_empty()),
                index.get(*inode)
            );
        }
        assert_eq!(items[2].1, Owners::from([o(1, 4), o(2, 5), o(2, 6)]));
        assert_eq!(items[5].1, items[2].1);
        let mut items = attached_as_looked_up(&index, [u32::MAX, 0, 9, u32::MAX, 10]);
        assert_eq!(items[2].1, Owners::from([o(1, 4), o(2, 5), o(2, 6)]));
        // Nothing to attach, or nothing held.
        index.attach(
            &mut [] as &mut [(u32, Owners)],
            |(i, _)| *i,
            |_, _| panic!(),
        );
        OwnerIndex::default().attach(&mut items, |(i, _)| *i, |_, _| panic!("nothing is held"));
    }

    /// Attaches owners to `inodes` in one merge and checks each against a lookup.
    fn attached_as_looked_up(
        index: &OwnerIndex,
        inodes: impl IntoIterator<Item = u32>,
    ) -> Vec<(u32, Owners)> {
        let inodes: Vec<u32> = inodes.into_iter().collect();
        let mut items: Vec<(u32, Owners)> = Vec::new();
        // One chunk, and chunks that split repeats and runs of the index between them.
        for chunk in [ATTACH_CHUNK, 1, 2, 3, 7] {
            items = inodes.iter().map(|&i| (i, Owners::new())).collect();
            index.attach_by(
                chunk,
                &mut items,
                |(i, _)| *i,
                |(_, owners), found| *owners = found,
            );
            for (inode, owners) in &items {
                assert_eq!(
                    Some(owners.clone()).filter(|o| !o.is_empty()),
                    index.get(*inode),
                    "inode {inode}, chunks of {chunk}"
                );
            }
        }
        items
    }

    #[test]
    fn a_short_list_merged_against_a_long_index_agrees_with_lookups() {
        // Galloping past long runs: every 1000th inode of a long index, and inodes between and beyond.
        let index = OwnerIndex::from_pairs((1..=20_000).map(|i| (i * 3, o(1, i))).collect());
        let wanted: Vec<u32> = (0..25).map(|k| k * 2_503).collect();
        let missing: Vec<u32> = index.missing(&wanted).collect();
        let expected: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|i| !index.contains_key(*i))
            .collect();
        assert_eq!(missing, expected);
        attached_as_looked_up(&index, wanted.iter().rev().copied());
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        let index = OwnerIndex::default();
        assert!(index.is_empty() && index.get(1).is_none() && index.keys().count() == 0);
    }
}
