//! The flight recorder's recording: every refresh's snapshot and the destroy notifications received before it,
//! kept in a store of kwatch's own ([`store`], format in docs/recording.md) as frames that hold only what changed
//! ([`frame`], [`codec`]); [`Recorder`] writes one (for `kwatch record` and `kwatch serve --record`), [`cursor`]
//! reads one back into snapshots (for `kwatch replay`).

pub mod codec;
pub mod cursor;
pub mod frame;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::events::{Evidence, Unchanged};
use crate::model::Snapshot;
use frame::{Compared, Encoder, FLAG_DEATHS, FLAG_SESSION_START};
use store::{Kind, Retention, Writer};

/// A store being written: each refresh appended as a frame of what changed since the one before, retention
/// enforced after each. Used by `kwatch record` and `kwatch serve --record`.
pub struct Recorder {
    writer: Writer,
    encoder: Encoder,
    /// Flags of the next frame.
    flags: u64,
}

impl Recorder {
    /// Opens (or creates) the store in `dir`, after its last good entry; with warnings of what was skipped, for
    /// the caller to write.
    pub fn open(dir: &Path, retention: Retention) -> anyhow::Result<(Recorder, Vec<String>)> {
        let (writer, warnings) =
            Writer::open(dir, retention).context("cannot open the recording")?;
        let recorder = Recorder {
            writer,
            encoder: Encoder::new(),
            flags: FLAG_SESSION_START,
        };
        Ok((recorder, warnings))
    }

    /// Appends one refresh: its snapshot (kept, shared, until the next refresh is appended: whoever else holds it,
    /// such as the death feed, holds the same one, not a copy), what the feed heard and found before it, and
    /// whether a destroy notification subscription was open (deaths are recorded). Then removes what retention
    /// says. Returns whether it was written as a key frame.
    pub fn append(
        &mut self,
        snapshot: Arc<Snapshot>,
        evidence: &Evidence,
        listening: bool,
    ) -> anyhow::Result<bool> {
        let pending = self.compare(snapshot)?;
        self.append_compared(pending, evidence, listening)
    }

    /// The first half of [`Recorder::append`], for a caller whose death feed steps between the two with what it
    /// tells ([`Pending::unchanged`]) and whose evidence the frame then records: compares the refresh with the
    /// one before (a delta) or not (a key frame: the first of a shard).
    pub fn compare(&mut self, snapshot: Arc<Snapshot>) -> anyhow::Result<Pending> {
        let time = snapshot.taken_at_unix_ms;
        let key = self.writer.begin(time).context(KEPT)?;
        Ok(Pending {
            compared: self.encoder.compare(snapshot, key),
            key,
            time,
        })
    }

    /// The second half of [`Recorder::append`]: writes what [`Recorder::compare`] found, with the feed's evidence.
    pub fn append_compared(
        &mut self,
        pending: Pending,
        evidence: &Evidence,
        listening: bool,
    ) -> anyhow::Result<bool> {
        let Pending {
            compared,
            key,
            time,
        } = pending;
        if listening {
            self.flags |= FLAG_DEATHS;
        }
        let bytes = self.encoder.finish(compared, evidence, self.flags);
        let kind = if key { Kind::Key } else { Kind::Delta };
        self.writer.append(kind, time, &bytes).context(KEPT)?;
        self.flags = 0;
        self.writer.enforce(unix_ms()).context(KEPT)?;
        Ok(key)
    }

    /// Bytes the store holds.
    pub fn size(&self) -> u64 {
        self.writer.size()
    }

    /// Writes what the system still buffers to disk.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.writer.sync().context("cannot record")?;
        Ok(())
    }
}

/// A refresh compared with the one before and not yet written ([`Recorder::compare`]).
pub struct Pending {
    compared: Compared,
    key: bool,
    time: u64,
}

impl Pending {
    /// Which sockets are where they were in the refresh before, for the death feed's step
    /// ([`crate::events::Feed::step_unchanged`]); `None` for a key frame or when they moved.
    pub fn unchanged(&self) -> Option<Unchanged<'_>> {
        self.compared.unchanged()
    }
}

const KEPT: &str = "cannot record; the recording keeps every refresh before this one";

/// The wall clock, milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
