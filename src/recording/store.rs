//! The recording on disk: a directory of shard files, one per hour of recording, each a header and a run of
//! entries (one refresh each) appended and never rewritten. Every entry carries its length and a CRC, so a write
//! torn by a crash or still in progress is told from data and left out; retention removes whole shards.
//!
//! ```text
//! shard  YYYYMMDDTHHMMSS.mmmZ.kwr (UTC time of its first entry)
//!        header: "KWATCHRC" | version u32 LE | 0 u32
//!        entry*: length u32 | raw length u32 | crc32 u32 | kind u8 | time ms u64 | zstd(frame)
//!                (little-endian; the CRC covers kind, time and the compressed frame)
//! ```
//! The layout is documented in docs/recording.md.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every shard.
pub const MAGIC: [u8; 8] = *b"KWATCHRC";
/// The format this kwatch writes and the newest it reads.
pub const VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
/// Bytes before an entry's frame.
const ENTRY_HEAD: usize = 21;
/// The largest frame, compressed or not, an entry may hold: a length above it is damage, not a frame.
const MAX_FRAME: u32 = 1 << 30;
/// A shard holds at least this much recording time (unless closed early for size), more when its key frames are
/// large: see [`span_ms`].
pub const SHARD_SPAN_MS: u64 = 3_600_000;
/// Key frame bytes that earn a shard an hour of span: one key frame of this size an hour at most.
pub const KEY_BYTES_PER_HOUR: u64 = 4 << 20;
/// The longest a shard spans.
pub const MAX_SPAN_MS: u64 = 24 * SHARD_SPAN_MS;
const SUFFIX: &str = ".kwr";
/// zstd level of frames: fast, and still a fifth of the size of level 1 for repeated sockets.
const LEVEL: i32 = 3;

/// What kind of frame an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every socket: decodes alone.
    Key = 1,
    /// What changed since the entry before.
    Delta = 2,
}

/// Errors of the store, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("'{}': {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("'{}': not a kwatch recording (it does not start with the recording's magic bytes)", path.display())]
    NotARecording { path: PathBuf },
    #[error("'{}': written by a newer kwatch (store format version {found}; this kwatch reads version {VERSION})", path.display())]
    Newer { path: PathBuf, found: u32 },
    #[error("'{}': damaged entry at byte {offset}: {what}", path.display())]
    Damaged {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("'{}': no recording in it (no shard files '*{SUFFIX}')", path.display())]
    Empty { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One shard file of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub path: PathBuf,
    /// Time of its first entry, from its name.
    pub start_ms: u64,
}

/// The shard's file name for a first entry at `ms`.
pub fn shard_name(ms: u64) -> String {
    let ts = jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::MAX);
    let t = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z{SUFFIX}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.subsec_nanosecond() / 1_000_000
    )
}

/// The first entry's time from a shard's file name, `None` for any other file.
pub fn parse_shard_name(name: &str) -> Option<u64> {
    let s = name.strip_suffix(SUFFIX)?.strip_suffix('Z')?;
    let b = s.as_bytes();
    if b.len() != 19 || b[8] != b'T' || b[15] != b'.' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let dt = jiff::civil::DateTime::new(
        i16::try_from(num(0..4)?).ok()?,
        i8::try_from(num(4..6)?).ok()?,
        i8::try_from(num(6..8)?).ok()?,
        i8::try_from(num(9..11)?).ok()?,
        i8::try_from(num(11..13)?).ok()?,
        i8::try_from(num(13..15)?).ok()?,
        num(16..19)? * 1_000_000,
    )
    .ok()?;
    let ms = dt
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp()
        .as_millisecond();
    u64::try_from(ms).ok()
}

/// The shards of `dir`, oldest first. An unreadable directory or one without shards is an error.
pub fn list(dir: &Path) -> Result<Vec<Shard>, StoreError> {
    let shards = list_or_none(dir)?;
    if shards.is_empty() {
        return Err(StoreError::Empty {
            path: dir.to_path_buf(),
        });
    }
    Ok(shards)
}

fn list_or_none(dir: &Path) -> Result<Vec<Shard>, StoreError> {
    let mut shards = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(start_ms) = name.to_str().and_then(parse_shard_name) {
            shards.push(Shard {
                path: entry.path(),
                start_ms,
            });
        }
    }
    shards.sort_by_key(|s| s.start_ms);
    Ok(shards)
}

/// Where one entry lies in its shard, and what its head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub time_ms: u64,
    /// Offset of the entry's head.
    pub offset: u64,
    len: u32,
    raw_len: u32,
    crc: u32,
}

impl Entry {
    /// Offset just past the entry.
    pub fn end(&self) -> u64 {
        self.offset + ENTRY_HEAD as u64 + u64::from(self.len)
    }
}

fn crc_of(kind: u8, time_ms: u64, frame: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(&time_ms.to_le_bytes());
    h.update(frame);
    h.finalize()
}

/// Checks a shard's header: the magic and a version this kwatch reads.
fn check_header(path: &Path, file: &mut File) -> Result<(), StoreError> {
    let mut head = [0u8; HEADER_LEN as usize];
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    match file.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(StoreError::NotARecording {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err(path)(e)),
    }
    if head[..8] != MAGIC {
        return Err(StoreError::NotARecording {
            path: path.to_path_buf(),
        });
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version > VERSION || version == 0 {
        return Err(StoreError::Newer {
            path: path.to_path_buf(),
            found: version,
        });
    }
    Ok(())
}

/// How a shard's entries end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// After the last entry, nothing.
    Clean,
    /// An entry cut short: a write torn by a crash, or one still being written.
    Torn,
}

/// A shard opened for reading: its entries' heads, read through to the last complete entry.
pub struct ShardReader {
    pub path: PathBuf,
    file: File,
    pub entries: Vec<Entry>,
    pub tail: Tail,
}

impl ShardReader {
    /// Opens a shard and reads its entries' heads. A newer version or foreign bytes are errors; an entry cut short
    /// at the end is where the shard ends.
    pub fn open(path: &Path) -> Result<ShardReader, StoreError> {
        let mut file = File::open(path).map_err(io_err(path))?;
        check_header(path, &mut file)?;
        let file_len = file.metadata().map_err(io_err(path))?.len();
        let mut reader = io::BufReader::with_capacity(1 << 16, &mut file);
        let mut entries = Vec::new();
        let mut offset = HEADER_LEN;
        let mut tail = Tail::Clean;
        loop {
            if offset == file_len {
                break;
            }
            let mut head = [0u8; ENTRY_HEAD];
            if offset + ENTRY_HEAD as u64 > file_len || reader.read_exact(&mut head).is_err() {
                tail = Tail::Torn;
                break;
            }
            let u32_at =
                |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
            let (len, raw_len, crc) = (u32_at(0), u32_at(4), u32_at(8));
            let kind = match head[12] {
                1 => Kind::Key,
                2 => Kind::Delta,
                _ => None.ok_or_else(|| damaged(path, offset, "unknown entry kind"))?,
            };
            let mut time = [0u8; 8];
            time.copy_from_slice(&head[13..21]);
            if len > MAX_FRAME || raw_len > MAX_FRAME {
                return Err(damaged(path, offset, "entry length out of range"));
            }
            let entry = Entry {
                kind,
                time_ms: u64::from_le_bytes(time),
                offset,
                len,
                raw_len,
                crc,
            };
            if entry.end() > file_len {
                tail = Tail::Torn;
                break;
            }
            reader.seek_relative(i64::from(len)).map_err(io_err(path))?;
            offset = entry.end();
            entries.push(entry);
        }
        drop(reader);
        Ok(ShardReader {
            path: path.to_path_buf(),
            file,
            entries,
            tail,
        })
    }

    /// The frame of entry `i`, checked and decompressed. A CRC mismatch in the last entry of a shard that may still
    /// be written is [`Payload::Torn`]; anywhere else it is damage.
    pub fn frame(&mut self, i: usize) -> Result<Payload, StoreError> {
        let Some(entry) = self.entries.get(i).copied() else {
            return Ok(Payload::Torn);
        };
        let path = &self.path;
        let mut bytes = vec![0u8; entry.len as usize];
        self.file
            .seek(SeekFrom::Start(entry.offset + ENTRY_HEAD as u64))
            .map_err(io_err(path))?;
        self.file.read_exact(&mut bytes).map_err(io_err(path))?;
        if crc_of(entry.kind as u8, entry.time_ms, &bytes) != entry.crc {
            if i + 1 == self.entries.len() {
                return Ok(Payload::Torn);
            }
            return Err(damaged(path, entry.offset, "checksum mismatch"));
        }
        let raw = zstd::bulk::decompress(&bytes, entry.raw_len as usize)
            .map_err(|e| damaged(path, entry.offset, &format!("cannot decompress: {e}")))?;
        if raw.len() != entry.raw_len as usize {
            return Err(damaged(
                path,
                entry.offset,
                "frame length differs from its head",
            ));
        }
        Ok(Payload::Frame(raw))
    }
}

/// An entry's frame, or the end of the shard's good entries.
pub enum Payload {
    Frame(Vec<u8>),
    Torn,
}

fn damaged(path: &Path, offset: u64, what: &str) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        offset,
        what: what.to_string(),
    }
}

/// How long a shard whose key frames take `key_bytes` spans (unless closed early for size): an hour, or an hour per
/// [`KEY_BYTES_PER_HOUR`] of key frame, at most a day. Every shard begins with a key frame, so one an hour would be
/// most of the store of a big host (24 a day of ~25 MB at a million sockets, while a steady host's deltas are a few
/// kB); this way key frames take at most about 100 MB a day whatever the host's size. Readers do not depend on the
/// span: a shard is read from its last key frame at or before a moment, whatever its length.
pub fn span_ms(key_bytes: u64) -> u64 {
    let hours_ms =
        u128::from(SHARD_SPAN_MS) * u128::from(key_bytes) / u128::from(KEY_BYTES_PER_HOUR);
    u64::try_from(hours_ms).map_or(MAX_SPAN_MS, |ms| ms.clamp(SHARD_SPAN_MS, MAX_SPAN_MS))
}

/// How much a store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Shards whose every entry is older than this are removed.
    pub max_age_ms: u64,
    /// The oldest shards are removed while the store is larger.
    pub max_bytes: u64,
}

impl Retention {
    /// The size at which a shard is closed before its hour is over, so that retention by size removes a small
    /// part of the store at a time.
    pub fn shard_max(&self) -> u64 {
        (self.max_bytes / 8).max(1 << 20)
    }
}

/// The shard being appended to.
struct Current {
    path: PathBuf,
    file: File,
    start_ms: u64,
    size: u64,
    /// Size of the last key frame's entry, and of the delta entries written since it.
    key_bytes: u64,
    since_key: u64,
}

/// Appends entries to a store and keeps it within its retention.
pub struct Writer {
    dir: PathBuf,
    retention: Retention,
    /// Every shard with its size, oldest first (the current one included).
    shards: Vec<(Shard, u64)>,
    current: Option<Current>,
    /// The next frame must be a key frame (the first after opening or a new shard).
    need_key: bool,
    compressor: zstd::bulk::Compressor<'static>,
}

impl Writer {
    /// Opens (creating it if needed) the store in `dir` for appending. The newest shard is checked entry by entry:
    /// an entry torn by a crash at its end is cut off, and the next frame is appended after the last good one. A
    /// shard damaged elsewhere is left as it is and a new one started. Returns warnings worth a line each.
    pub fn open(dir: &Path, retention: Retention) -> Result<(Writer, Vec<String>), StoreError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut warnings = Vec::new();
        let mut shards = Vec::new();
        for shard in list_or_none(dir)? {
            let size = fs::metadata(&shard.path)
                .map_err(io_err(&shard.path))?
                .len();
            shards.push((shard, size));
        }
        let mut current = None;
        // A shard created but whose header was never written (a crash right then) holds nothing.
        if let Some((last, size)) = shards.last()
            && *size < HEADER_LEN
        {
            fs::remove_file(&last.path).map_err(io_err(&last.path))?;
            shards.pop();
        }
        if let Some((last, size)) = shards.last_mut() {
            match resume(last) {
                Ok(Some(cur)) => {
                    *size = cur.size;
                    current = Some(cur);
                }
                Ok(None) => warnings.push(format!(
                    "'{}': damaged before its end; left as it is, recording goes on in a new shard",
                    last.path.display()
                )),
                Err(e @ (StoreError::Newer { .. } | StoreError::Io { .. })) => return Err(e),
                Err(e) => warnings.push(format!("{e}; recording goes on in a new shard")),
            }
        }
        let compressor = zstd::bulk::Compressor::new(LEVEL).map_err(io_err(dir))?;
        Ok((
            Writer {
                dir: dir.to_path_buf(),
                retention,
                shards,
                current,
                need_key: true,
                compressor,
            },
            warnings,
        ))
    }

    /// Prepares to append a frame taken at `time_ms`: starts a new shard when the current one spans its time
    /// ([`span_ms`] of its last key frame) or has grown past its share of the size limit. Returns whether the frame must be a key frame: the first of a
    /// shard or of a session, or when the deltas since the last key frame outweigh it (so that reading any moment
    /// decodes at most about twice a key frame's bytes).
    pub fn begin(&mut self, time_ms: u64) -> Result<bool, StoreError> {
        let rotate = match &self.current {
            None => true,
            Some(c) => {
                time_ms >= c.start_ms.saturating_add(span_ms(c.key_bytes))
                    || c.size >= self.retention.shard_max()
            }
        };
        if rotate {
            self.rotate(time_ms)?;
        }
        Ok(self.need_key
            || self
                .current
                .as_ref()
                .is_none_or(|c| c.since_key > c.key_bytes))
    }

    fn rotate(&mut self, time_ms: u64) -> Result<(), StoreError> {
        if let Some(old) = self.current.take() {
            old.file.sync_data().map_err(io_err(&old.path))?;
        }
        // Shards are named, listed and read in the order they were written, even if the clock was set back.
        let mut start_ms = match self.shards.last() {
            Some((last, _)) => time_ms.max(last.start_ms + 1),
            None => time_ms,
        };
        let (path, mut file) = loop {
            let path = self.dir.join(shard_name(start_ms));
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => start_ms += 1,
                Err(e) => return Err(io_err(&path)(e)),
            }
        };
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        if let Err(e) = file.write_all(&header) {
            // A shard without its header is no shard: do not leave it behind.
            let _ = fs::remove_file(&path);
            return Err(io_err(&path)(e));
        }
        self.shards.push((
            Shard {
                path: path.clone(),
                start_ms,
            },
            HEADER_LEN,
        ));
        self.current = Some(Current {
            path,
            file,
            start_ms,
            size: HEADER_LEN,
            key_bytes: 0,
            since_key: 0,
        });
        self.need_key = true;
        Ok(())
    }

    /// Appends one frame (call [`Writer::begin`] first). A failed write (a full disk) is cut off again, so the
    /// shard ends with its last good entry, and returned as an error.
    pub fn append(&mut self, kind: Kind, time_ms: u64, frame: &[u8]) -> Result<(), StoreError> {
        let Some(cur) = self.current.as_mut() else {
            return Err(io_err(&self.dir)(io::Error::other("no shard open")));
        };
        let packed = self.compressor.compress(frame).map_err(io_err(&cur.path))?;
        let too_big = || damaged(&cur.path, cur.size, "frame larger than 1 GiB");
        let len = u32::try_from(packed.len())
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(too_big)?;
        let raw_len = u32::try_from(frame.len())
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(too_big)?;
        let mut entry = Vec::with_capacity(ENTRY_HEAD + packed.len());
        entry.extend_from_slice(&len.to_le_bytes());
        entry.extend_from_slice(&raw_len.to_le_bytes());
        entry.extend_from_slice(&crc_of(kind as u8, time_ms, &packed).to_le_bytes());
        entry.push(kind as u8);
        entry.extend_from_slice(&time_ms.to_le_bytes());
        entry.extend_from_slice(&packed);
        if let Err(e) = cur.file.write_all(&entry) {
            let _ = cur.file.set_len(cur.size);
            return Err(io_err(&cur.path)(e));
        }
        let n = entry.len() as u64;
        cur.size += n;
        match kind {
            Kind::Key => {
                cur.key_bytes = n;
                cur.since_key = 0;
            }
            Kind::Delta => cur.since_key += n,
        }
        if let Some((_, size)) = self.shards.last_mut() {
            *size = cur.size;
        }
        self.need_key = false;
        Ok(())
    }

    /// Removes the oldest shards while they are older than the retention age (their successor started before
    /// `now_ms - max_age`) or the store is larger than its size limit; never the shard being written. Returns
    /// the removed files.
    pub fn enforce(&mut self, now_ms: u64) -> Result<Vec<PathBuf>, StoreError> {
        let mut removed = Vec::new();
        let horizon = now_ms.saturating_sub(self.retention.max_age_ms);
        loop {
            let total: u64 = self.shards.iter().map(|(_, size)| size).sum();
            let [(oldest, _), (next, _), ..] = &self.shards[..] else {
                break;
            };
            let current = self.current.as_ref().map(|c| &c.path);
            if current == Some(&oldest.path) {
                break;
            }
            if next.start_ms > horizon && total <= self.retention.max_bytes {
                break;
            }
            match fs::remove_file(&oldest.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&oldest.path)(e)),
            }
            removed.push(self.shards.remove(0).0.path);
        }
        Ok(removed)
    }

    /// Flushes the current shard to disk.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        match &self.current {
            Some(c) => c.file.sync_data().map_err(io_err(&c.path)),
            None => Ok(()),
        }
    }

    /// Bytes the store holds.
    pub fn size(&self) -> u64 {
        self.shards.iter().map(|(_, size)| size).sum()
    }
}

/// Opens the newest shard to append to it: checks every entry and cuts off a torn one at the end. `None` when an
/// entry before the end is damaged (the shard is left alone).
fn resume(shard: &Shard) -> Result<Option<Current>, StoreError> {
    let path = &shard.path;
    let len = fs::metadata(path).map_err(io_err(path))?.len();
    let mut reader = ShardReader::open(path)?;
    let mut good_end = HEADER_LEN;
    let (mut key_bytes, mut since_key) = (0, 0);
    for i in 0..reader.entries.len() {
        match reader.frame(i) {
            Ok(Payload::Frame(_)) => {}
            Ok(Payload::Torn) => break,
            Err(StoreError::Damaged { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let e = reader.entries[i];
        let n = e.end() - e.offset;
        match e.kind {
            Kind::Key => (key_bytes, since_key) = (n, 0),
            Kind::Delta => since_key += n,
        }
        good_end = e.end();
    }
    let file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    if good_end < len {
        file.set_len(good_end).map_err(io_err(path))?;
    }
    Ok(Some(Current {
        path: path.clone(),
        file,
        start_ms: shard.start_ms,
        size: good_end,
        key_bytes,
        since_key,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const T0: u64 = 1_796_400_000_000;

    fn retention(max_age_ms: u64, max_bytes: u64) -> Retention {
        Retention {
            max_age_ms,
            max_bytes,
        }
    }

    fn write(w: &mut Writer, time: u64, frame: &[u8]) {
        let key = w.begin(time).unwrap();
        let kind = if key { Kind::Key } else { Kind::Delta };
        w.append(kind, time, frame).unwrap();
    }

    fn frames(path: &Path) -> Vec<(u64, Vec<u8>)> {
        let mut r = ShardReader::open(path).unwrap();
        (0..r.entries.len())
            .map_while(|i| match r.frame(i).unwrap() {
                Payload::Frame(f) => Some((r.entries[i].time_ms, f)),
                Payload::Torn => None,
            })
            .collect()
    }

    #[test]
    fn shard_names_read_back_and_other_files_are_not_shards() {
        for ms in [0, T0, T0 + 999, 4_102_444_800_000] {
            assert_eq!(
                parse_shard_name(&shard_name(ms)),
                Some(ms),
                "{}",
                shard_name(ms)
            );
        }
        assert_eq!(shard_name(T0 + 123), "20261204T160000.123Z.kwr");
        for other in [
            "notes.txt",
            "20261206T124000.123Z.kwr.tmp",
            "2026120xT124000.123Z.kwr",
            "20261306T124000.123Z.kwr",
        ] {
            assert_eq!(parse_shard_name(other), None, "{other}");
        }
    }

    #[test]
    fn entries_read_back_and_a_new_shard_starts_every_hour_with_a_key_frame() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, warnings) = Writer::open(dir.path(), retention(u64::MAX, u64::MAX)).unwrap();
        assert!(warnings.is_empty());
        assert!(w.begin(T0).unwrap());
        w.append(Kind::Key, T0, b"key").unwrap();
        assert!(!w.begin(T0 + 10_000).unwrap());
        w.append(Kind::Delta, T0 + 10_000, b"d1").unwrap();
        // An hour later: a new shard, whose first frame is a key frame.
        assert!(w.begin(T0 + HOUR).unwrap());
        w.append(Kind::Key, T0 + HOUR, b"key2").unwrap();
        // The clock set back by a day: the next shard still comes after the others.
        assert!(w.begin(T0 + 2 * HOUR).unwrap());
        w.append(Kind::Key, T0 + 2 * HOUR, b"key3").unwrap();
        assert!(!w.begin(T0 - 86_400_000).unwrap());
        w.append(Kind::Delta, T0 - 86_400_000, b"back").unwrap();
        drop(w);
        let (mut w, _) = Writer::open(dir.path(), retention(u64::MAX, u64::MAX)).unwrap();
        w.rotate(T0 - 86_400_000).unwrap();
        let shards = list(dir.path()).unwrap();
        assert_eq!(shards.len(), 4);
        assert_eq!(shards[3].start_ms, T0 + 2 * HOUR + 1);
        let shards = &shards[..2];
        assert_eq!(
            frames(&shards[0].path),
            vec![(T0, b"key".to_vec()), (T0 + 10_000, b"d1".to_vec())]
        );
        assert_eq!(frames(&shards[1].path), vec![(T0 + HOUR, b"key2".to_vec())]);
    }

    #[test]
    fn a_shard_with_big_key_frames_spans_an_hour_per_4_mib_of_them() {
        assert_eq!(span_ms(0), HOUR);
        assert_eq!(span_ms(KEY_BYTES_PER_HOUR), HOUR);
        assert_eq!(span_ms(KEY_BYTES_PER_HOUR * 5 / 2), 5 * HOUR / 2);
        assert_eq!(span_ms(u64::MAX), 24 * HOUR);
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Writer::open(dir.path(), retention(u64::MAX, u64::MAX)).unwrap();
        // 9 MiB that zstd cannot shrink: a key frame of a big host.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let big: Vec<u8> = (0..9 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(w.begin(T0).unwrap());
        w.append(Kind::Key, T0, &big).unwrap();
        let span = span_ms(w.size() - HEADER_LEN);
        assert!(span > 2 * HOUR && span < 3 * HOUR, "{span}");
        // Two hours on: the same shard, and a delta.
        assert!(!w.begin(T0 + 2 * HOUR).unwrap());
        w.append(Kind::Delta, T0 + 2 * HOUR, b"d").unwrap();
        assert_eq!(list(dir.path()).unwrap().len(), 1);
        // Its span over: a new shard, beginning with a key frame.
        assert!(w.begin(T0 + span).unwrap());
        assert_eq!(list(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn a_torn_tail_is_not_read_and_a_reopened_writer_appends_after_the_last_good_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Writer::open(dir.path(), retention(u64::MAX, u64::MAX)).unwrap();
        write(&mut w, T0, b"one");
        write(&mut w, T0 + 1, b"two");
        drop(w);
        let path = list(dir.path()).unwrap()[0].path.clone();
        let good = fs::metadata(&path).unwrap().len();
        // Every way a third write can be cut short: the reader sees the two entries before it.
        let third = {
            let d2 = tempfile::tempdir().unwrap();
            let (mut w2, _) = Writer::open(d2.path(), retention(u64::MAX, u64::MAX)).unwrap();
            write(&mut w2, T0, b"one");
            let p = list(d2.path()).unwrap()[0].path.clone();
            let before = fs::metadata(&p).unwrap().len();
            write(&mut w2, T0 + 2, b"three, a longer frame");
            fs::read(&p).unwrap()[before as usize..].to_vec()
        };
        for cut in 1..third.len() {
            let mut bytes = fs::read(&path).unwrap()[..good as usize].to_vec();
            bytes.extend_from_slice(&third[..cut]);
            fs::write(&path, &bytes).unwrap();
            assert_eq!(frames(&path).len(), 2, "cut at {cut}");
        }
        // A full-length entry whose bytes are not all there yet (a write in progress) reads as the end too.
        let mut bytes = fs::read(&path).unwrap()[..good as usize].to_vec();
        let mut garbled = third.clone();
        let last = garbled.len() - 1;
        garbled[last] ^= 1;
        bytes.extend_from_slice(&garbled);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(frames(&path).len(), 2);
        // A writer reopening the store cuts the torn entry off and goes on after "two".
        let (mut w, warnings) = Writer::open(dir.path(), retention(u64::MAX, u64::MAX)).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(fs::metadata(&path).unwrap().len(), good);
        assert!(
            w.begin(T0 + 3).unwrap(),
            "a new session starts with a key frame"
        );
        w.append(Kind::Key, T0 + 3, b"four").unwrap();
        let got: Vec<Vec<u8>> = frames(&path).into_iter().map(|(_, f)| f).collect();
        assert_eq!(
            got,
            vec![b"one".to_vec(), b"two".to_vec(), b"four".to_vec()]
        );
    }

    #[test]
    fn a_newer_version_and_foreign_or_damaged_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Writer::open(dir.path(), retention(u64::MAX, u64::MAX)).unwrap();
        write(&mut w, T0, b"one");
        write(&mut w, T0 + 1, b"two");
        write(&mut w, T0 + 2, b"three");
        drop(w);
        let path = list(dir.path()).unwrap()[0].path.clone();
        let good = fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();

        let mut newer = good.clone();
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        fs::write(&path, &newer).unwrap();
        let err = ShardReader::open(&path).err().unwrap().to_string();
        assert!(
            err.contains(&name) && err.contains("newer kwatch") && err.contains("version 2"),
            "{err}"
        );
        // A recorder does not append to it either.
        let err = Writer::open(dir.path(), retention(u64::MAX, u64::MAX))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("newer kwatch"), "{err}");

        fs::write(&path, b"hello, this is not a recording at all").unwrap();
        let err = ShardReader::open(&path).err().unwrap().to_string();
        assert!(
            err.contains(&name) && err.contains("not a kwatch recording"),
            "{err}"
        );

        // A flipped bit in the middle entry: its CRC fails, and it is not the last one.
        let mut flipped = good.clone();
        let mut r = {
            fs::write(&path, &good).unwrap();
            ShardReader::open(&path).unwrap()
        };
        let middle = r.entries[1];
        assert!(matches!(r.frame(1), Ok(Payload::Frame(_))));
        flipped[middle.offset as usize + ENTRY_HEAD] ^= 0x10;
        fs::write(&path, &flipped).unwrap();
        let mut r = ShardReader::open(&path).unwrap();
        let err = r.frame(1).err().unwrap().to_string();
        assert!(
            err.contains(&name)
                && err.contains(&format!("byte {}", middle.offset))
                && err.contains("checksum"),
            "{err}"
        );
        // The recorder leaves it alone and starts a new shard.
        let (mut w, warnings) = Writer::open(dir.path(), retention(u64::MAX, u64::MAX)).unwrap();
        assert!(warnings[0].contains(&name), "{warnings:?}");
        write(&mut w, T0 + 5, b"four");
        assert_eq!(fs::read(&path).unwrap(), flipped);
        assert_eq!(list(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn retention_by_age_removes_shards_wholly_older_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Writer::open(dir.path(), retention(2 * HOUR, u64::MAX)).unwrap();
        for h in 0..5 {
            write(&mut w, T0 + h * HOUR, b"frame");
            write(&mut w, T0 + h * HOUR + 1000, b"frame");
        }
        // At 3h - 1 ms the horizon is 1h - 1 ms: shard 0 ended when shard 1 began, at 1h, inside it.
        assert!(w.enforce(T0 + 3 * HOUR - 1).unwrap().is_empty());
        // At T0 + 5h the horizon is T0 + 3h: shards 0-1 ended before it (shard 2 began at 2h, shard 3 at 3h).
        let removed = w.enforce(T0 + 5 * HOUR).unwrap();
        let names: Vec<String> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            vec![
                shard_name(T0),
                shard_name(T0 + HOUR),
                shard_name(T0 + 2 * HOUR)
            ]
        );
        let left: Vec<u64> = list(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.start_ms)
            .collect();
        assert_eq!(left, vec![T0 + 3 * HOUR, T0 + 4 * HOUR]);
        // The current shard stays, however old.
        let removed = w.enforce(T0 + 100 * HOUR).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(list(dir.path()).unwrap().len(), 1);
        assert_eq!(frames(&list(dir.path()).unwrap()[0].path).len(), 2);
    }

    #[test]
    fn retention_by_size_removes_the_oldest_shards_until_the_store_fits() {
        let dir = tempfile::tempdir().unwrap();
        // 1 MiB shards (the smallest), 3.5 MiB in all; frames of incompressible 300 KiB.
        let (mut w, _) = Writer::open(dir.path(), retention(u64::MAX, 3 << 20 | 1 << 19)).unwrap();
        let mut x: u64 = 1;
        let mut frame = || -> Vec<u8> {
            (0..300 << 10)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        for i in 0..20 {
            write(&mut w, T0 + i * 1000, &frame());
            w.enforce(T0 + i * 1000).unwrap();
            assert!(w.size() <= (3 << 20 | 1 << 19) + (1 << 20), "{}", w.size());
        }
        let shards = list(dir.path()).unwrap();
        let on_disk: u64 = shards
            .iter()
            .map(|s| fs::metadata(&s.path).unwrap().len())
            .sum();
        assert_eq!(on_disk, w.size());
        assert!(on_disk <= 3 << 20 | 1 << 19, "{on_disk}");
        // What is left is the newest frames, each readable, none missing between them.
        let times: Vec<u64> = shards
            .iter()
            .flat_map(|s| frames(&s.path))
            .map(|(t, _)| t)
            .collect();
        assert_eq!(*times.last().unwrap(), T0 + 19_000);
        assert!(times.windows(2).all(|w| w[1] == w[0] + 1000), "{times:?}");
        assert!(times.len() >= 8, "{times:?}");
    }
}
