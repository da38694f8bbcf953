//! Keepalive options of every TCP socket, as the BPF task_file iterator read them in the kernel
//! (bpf/task_sockets.bpf.c): what getsockopt would answer, without a pidfd_getfd and five getsockopt calls per
//! socket (0.8 s at a million sockets).

use rustc_hash::FxHashMap;

use crate::model::keepalive::{KeepaliveSettings, Source};

/// A TCP socket's options as the iterator writes them: times in jiffies, the socket's own or its namespace's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawOptions {
    pub keepalive: bool,
    pub idle_jiffies: u32,
    pub intvl_jiffies: u32,
    pub probes: u16,
    pub user_timeout_ms: u32,
}

impl RawOptions {
    /// The settings getsockopt reports, with `hz` jiffies a second (TCP_KEEPIDLE and TCP_KEEPINTVL are the
    /// jiffies divided by HZ, rounded down, as the kernel does).
    pub fn settings(&self, hz: u32) -> KeepaliveSettings {
        KeepaliveSettings {
            enabled: Some(self.keepalive),
            idle_s: Some(self.idle_jiffies / hz),
            intvl_s: Some(self.intvl_jiffies / hz),
            cnt: Some(u32::from(self.probes)),
            user_timeout_ms: Some(self.user_timeout_ms),
            source: Source::Socket,
        }
    }
}

/// Socket inode → keepalive settings, for one refresh: sorted by inode, each distinct set of settings stored
/// once (16 bytes a socket it holds: those with SO_KEEPALIVE or TCP_USER_TIMEOUT, and listeners).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KernelOptions {
    /// (inode, index into `settings`), sorted by inode, one per inode.
    pairs: Vec<(u32, u32)>,
    settings: Vec<KeepaliveSettings>,
}

impl KernelOptions {
    /// The settings read for `inode`, if the iterator saw it (the collector asks many at once: `get_sorted`).
    #[cfg(test)]
    pub fn get(&self, inode: u32) -> Option<KeepaliveSettings> {
        let at = self.pairs.binary_search_by_key(&inode, |&(i, _)| i).ok()?;
        self.settings.get(self.pairs[at].1 as usize).copied()
    }

    /// Looks up many inodes at once: `wanted` sorted by inode, answered in that order with one merge over the
    /// table (a binary search per socket into a table of a million is ~20 cache misses each).
    pub fn get_sorted<'a>(
        &'a self,
        wanted: impl IntoIterator<Item = u32> + 'a,
    ) -> impl Iterator<Item = Option<KeepaliveSettings>> + 'a {
        let mut at = 0;
        wanted.into_iter().map(move |inode| {
            at += self.pairs[at..].partition_point(|&(i, _)| i < inode);
            match self.pairs.get(at) {
                Some(&(i, s)) if i == inode => self.settings.get(s as usize).copied(),
                _ => None,
            }
        })
    }

    /// How many sockets it holds (tests).
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.pairs.len()
    }
}

/// Builds [`KernelOptions`] from records in any order, before HZ is known; an inode seen twice (a socket held by
/// several fds, read twice) keeps one of its records. 16 bytes a socket while it builds.
#[derive(Debug, Default)]
pub struct Builder {
    pairs: Vec<(u32, u32)>,
    known: FxHashMap<RawOptions, u32>,
    raw: Vec<RawOptions>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    pub fn push(&mut self, inode: u32, raw: RawOptions) {
        let next = u32::try_from(self.raw.len()).unwrap_or(u32::MAX);
        let i = *self.known.entry(raw).or_insert(next);
        if i == next {
            self.raw.push(raw);
        }
        self.pairs.push((inode, i));
    }

    /// The table, with `hz` jiffies a second (0 is taken as 1).
    pub fn build(mut self, hz: u32) -> KernelOptions {
        self.pairs.sort_unstable_by_key(|&(inode, _)| inode);
        self.pairs.dedup_by_key(|&mut (inode, _)| inode);
        self.pairs.shrink_to_fit();
        KernelOptions {
            pairs: self.pairs,
            settings: self.raw.iter().map(|r| r.settings(hz.max(1))).collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn raw(idle: u32, keepalive: bool) -> RawOptions {
        RawOptions {
            keepalive,
            idle_jiffies: idle,
            intvl_jiffies: 75_000,
            probes: 9,
            user_timeout_ms: 0,
        }
    }

    #[test]
    fn jiffies_become_seconds_rounded_down_as_getsockopt_does() {
        let s = RawOptions {
            keepalive: true,
            idle_jiffies: 30_999,
            intvl_jiffies: 250,
            probes: 4,
            user_timeout_ms: 45_000,
        }
        .settings(1000);
        assert_eq!(
            s,
            KeepaliveSettings {
                enabled: Some(true),
                idle_s: Some(30),
                intvl_s: Some(0),
                cnt: Some(4),
                user_timeout_ms: Some(45_000),
                source: Source::Socket,
            }
        );
        assert_eq!(raw(7_200 * 250, false).settings(250).idle_s, Some(7_200));
    }

    #[test]
    fn lookups_by_inode_share_settings_and_keep_one_record_of_a_duplicate() {
        let mut b = Builder::new();
        b.push(30, raw(7_200_000, false));
        b.push(10, raw(60_000, true));
        b.push(20, raw(7_200_000, false));
        b.push(10, raw(60_000, true));
        let t = b.build(1000);
        assert_eq!(t.count(), 3);
        assert_eq!(t.settings.len(), 2);
        assert_eq!(t.get(10).unwrap().idle_s, Some(60));
        assert_eq!(t.get(20).unwrap().idle_s, Some(7_200));
        assert_eq!(t.get(30), t.get(20));
        assert_eq!(t.get(15), None);
        let merged: Vec<Option<u32>> = t
            .get_sorted([5, 10, 10, 20, 25, 30, 40])
            .map(|s| s.and_then(|s| s.idle_s))
            .collect();
        assert_eq!(
            merged,
            [
                None,
                Some(60),
                Some(60),
                Some(7_200),
                None,
                Some(7_200),
                None
            ]
        );
    }
}
