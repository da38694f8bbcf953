//! Reading a recording: a cursor over its frames across shards, the frame of a moment, and a check that a moment
//! can be shown.

use std::io;
use std::path::Path;

use anyhow::bail;
use jiff::tz::TimeZone;

use super::frame::{Decoded, Decoder, Frame};
use super::store::{self, Kind, Payload, Shard, ShardReader, StoreError};
use crate::moment::format_local;

/// Reads a store's frames in order, from the key frame before a moment on, across shards.
pub struct Cursor {
    shards: Vec<Shard>,
    /// Index in `shards` of the open one.
    at: usize,
    reader: Option<ShardReader>,
    /// Next entry of `reader` to read.
    entry: usize,
    decoder: Decoder,
}

impl Cursor {
    /// A cursor whose next frame is the key frame from which the frame at `t_ms` decodes (or the first frame of
    /// the store when `t_ms` is before it).
    pub fn seek(dir: &Path, t_ms: u64) -> Result<Cursor, StoreError> {
        let shards = store::list(dir)?;
        let at = shards.iter().rposition(|s| s.start_ms <= t_ms).unwrap_or(0);
        let reader = ShardReader::open(&shards[at].path)?;
        let entry = reader
            .entries
            .iter()
            .rposition(|e| e.kind == Kind::Key && e.time_ms <= t_ms)
            .unwrap_or(0);
        Ok(Cursor {
            shards,
            at,
            reader: Some(reader),
            entry,
            decoder: Decoder::new(),
        })
    }

    /// Time of the next frame, opening the next shard when this one is read through.
    pub fn peek(&mut self) -> Result<Option<u64>, StoreError> {
        loop {
            if let Some(reader) = &self.reader
                && let Some(e) = reader.entries.get(self.entry)
            {
                return Ok(Some(e.time_ms));
            }
            if !self.next_shard()? {
                return Ok(None);
            }
        }
    }

    fn next_shard(&mut self) -> Result<bool, StoreError> {
        self.at += 1;
        self.entry = 0;
        self.reader = None;
        match self.shards.get(self.at) {
            None => Ok(false),
            Some(shard) => {
                // Removed by retention since the store was listed: the next one goes on.
                match ShardReader::open(&shard.path) {
                    Ok(r) => self.reader = Some(r),
                    Err(StoreError::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                Ok(true)
            }
        }
    }

    /// Decodes the next frame; `None` at the end of the recording. A frame cut short (torn by a crash, or being
    /// written) ends its shard.
    pub fn advance(&mut self) -> Result<Option<(u64, Decoded)>, StoreError> {
        loop {
            let Some(time) = self.peek()? else {
                return Ok(None);
            };
            let Some(reader) = self.reader.as_mut() else {
                continue;
            };
            let i = self.entry;
            let entry = reader.entries[i];
            match reader.frame(i)? {
                Payload::Torn => {
                    self.entry = reader.entries.len();
                }
                Payload::Frame(bytes) => {
                    self.entry += 1;
                    let key = entry.kind == Kind::Key;
                    let decoded = self.decoder.decode(&bytes, key, time).map_err(|e| {
                        StoreError::Damaged {
                            path: reader.path.clone(),
                            offset: entry.offset,
                            what: e.to_string(),
                        }
                    })?;
                    return Ok(Some((time, decoded)));
                }
            }
        }
    }

    /// The snapshot of the frame [`Cursor::advance`] returned last.
    pub fn frame(&self, decoded: Decoded) -> Option<Frame> {
        self.decoder.frame(decoded)
    }

    /// How many frames of the open shard from the next one on were recorded at or before `t_ms` (after
    /// [`Cursor::seek`] to `t_ms`: the frames from the key frame to `t_ms`, which are all in that shard).
    pub fn pending_until(&self, t_ms: u64) -> usize {
        self.reader.as_ref().map_or(0, |r| {
            r.entries
                .iter()
                .skip(self.entry)
                .take_while(|e| e.time_ms <= t_ms)
                .count()
        })
    }

    /// Time of the store's first frame.
    pub fn first_time(&self) -> u64 {
        self.shards.first().map_or(0, |s| s.start_ms)
    }
}

/// Reads the frames from the key frame before `t_ms` to it (at least one) without building their snapshots:
/// a store that cannot be shown there is an error naming its file before anything else happens.
pub fn check(dir: &Path, t_ms: u64) -> Result<(), StoreError> {
    let mut cursor = Cursor::seek(dir, t_ms)?;
    let mut read = false;
    while let Some(time) = cursor.peek()? {
        if time > t_ms && read {
            break;
        }
        read |= cursor.advance()?.is_some();
    }
    Ok(())
}

/// The last frame recorded at or before `t_ms`.
pub fn frame_at(dir: &Path, t_ms: u64) -> anyhow::Result<Frame> {
    let mut cursor = Cursor::seek(dir, t_ms)?;
    let mut last = None;
    while let Some(time) = cursor.peek()? {
        if time > t_ms {
            break;
        }
        last = cursor.advance()?;
    }
    let tz = TimeZone::system();
    match last.and_then(|(_, d)| cursor.frame(d)) {
        Some(frame) => Ok(frame),
        None => bail!(
            "nothing recorded at or before {} in '{}': the recording starts at {}",
            format_local(t_ms, &tz),
            dir.display(),
            format_local(cursor.first_time(), &tz)
        ),
    }
}
