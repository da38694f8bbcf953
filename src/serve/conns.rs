//! The open connections of the exporter: how many, which are busy answering, and which to close first when
//! there are too many (the one idle the longest).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// Every open connection, keyed by an id of its own.
#[derive(Default)]
pub struct Conns {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next: u64,
    live: HashMap<u64, Slot>,
}

struct Slot {
    /// Requests of this connection being answered (past authentication).
    busy: u32,
    /// When it was accepted or last finished answering.
    last_active: Instant,
    /// Told when the connection must close.
    evict: Arc<Notify>,
}

/// One connection's place in [`Conns`]; leaves it when dropped.
pub struct Conn {
    conns: Arc<Conns>,
    id: u64,
    pub evict: Arc<Notify>,
}

/// Marks its connection busy (not to be evicted) while it lives.
pub struct Busy<'a>(&'a Conn);

impl Conns {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a new connection.
    pub fn open(self: &Arc<Self>, now: Instant) -> Conn {
        let mut t = self.lock();
        let id = t.next;
        t.next += 1;
        let evict = Arc::new(Notify::new());
        t.live.insert(
            id,
            Slot {
                busy: 0,
                last_active: now,
                evict: Arc::clone(&evict),
            },
        );
        Conn {
            conns: Arc::clone(self),
            id,
            evict,
        }
    }

    /// Tells the connection idle the longest to close; false when every connection is busy.
    pub fn evict_idlest(&self) -> bool {
        let mut t = self.lock();
        let idlest = t
            .live
            .iter()
            .filter(|(_, s)| s.busy == 0)
            .min_by_key(|(id, s)| (s.last_active, **id))
            .map(|(id, _)| *id);
        match idlest.and_then(|id| t.live.remove(&id)) {
            Some(slot) => {
                slot.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Conn {
    pub fn busy(&self) -> Busy<'_> {
        if let Some(s) = self.conns.lock().live.get_mut(&self.id) {
            s.busy += 1;
        }
        Busy(self)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0.conns.lock().live.get_mut(&self.0.id) {
            s.busy = s.busy.saturating_sub(1);
            s.last_active = Instant::now();
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.conns.lock().live.remove(&self.id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn the_idlest_connection_is_evicted_never_a_busy_one() {
        let conns = Arc::new(Conns::default());
        let t0 = Instant::now();
        let a = conns.open(t0);
        let b = conns.open(t0 + Duration::from_secs(1));
        let busy = a.busy();
        assert_eq!(conns.len(), 2);
        // a is older but busy: b goes.
        assert!(conns.evict_idlest());
        tokio::time::timeout(Duration::from_secs(5), b.evict.notified())
            .await
            .unwrap();
        assert_eq!(conns.len(), 1);
        assert!(!conns.evict_idlest(), "a is busy");
        drop(busy);
        assert!(conns.evict_idlest());
        assert!(conns.is_empty());
        drop(a);
        drop(b);
        assert!(conns.is_empty());
    }
}
