//! The state saved between runs, and its file format.
//!
//! File layout (little endian): magic `DPLSESS\0` (8 bytes), format version (u32), run id
//! length (u32) and UTF-8 bytes, payload length (u64), CRC-32 of the payload (u32), then the
//! payload: the state in postcard encoding.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dpl_core::Event;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::dedupe::DedupeIds;
use crate::derive::Key;
use crate::error::Error;
use crate::ser::{StoredEvent, StoredEventRef};
use crate::shard::Prior;
use crate::state::Totals;

const MAGIC: &[u8; 8] = b"DPLSESS\0";

/// A writer that counts and checksums what passes through it.
struct Summed<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: std::io::Write> std::io::Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or(buf);
        self.crc.update(written);
        self.len += written.len() as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
/// Bump on any change to [`Stored`] or the records it holds.
pub(crate) const FORMAT_VERSION: u32 = 3;

/// What a run leaves for the next.
pub(crate) struct State {
    /// The settings the state was built under.
    pub settings: Settings,
    pub watermark: i64,
    pub dedupe_max: i64,
    pub dedupe: DedupeIds,
    pub open: Vec<Event>,
    /// Per visitor with open sessions, the keys they were emitted under (sorted by visitor).
    pub priors: Vec<(Key, Prior)>,
    pub totals: Totals,
}

#[derive(Deserialize)]
struct Stored {
    settings: Settings,
    watermark: i64,
    dedupe_max: i64,
    dedupe: Vec<(Arc<str>, i64)>,
    open: Vec<StoredEvent>,
    priors: Vec<(Key, Prior)>,
    totals: Totals,
}

/// [`Stored`] by reference, for writing: the same encoding without copying the state.
#[derive(Serialize)]
struct StoredRef<'a> {
    settings: &'a Settings,
    watermark: i64,
    dedupe_max: i64,
    dedupe: &'a DedupeIds,
    open: OpenEvents<'a>,
    priors: &'a [(Key, Prior)],
    totals: &'a Totals,
}

/// The open events, encoded one at a time as [`StoredEvent`]s.
struct OpenEvents<'a>(&'a [Event]);

impl Serialize for OpenEvents<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(StoredEventRef::of))
    }
}

/// The sessionizer state at the end of a run, with the id of the run that produced it.
pub struct Checkpoint {
    run_id: String,
    state: State,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("run_id", &self.run_id)
            .field("open_events", &self.state.open.len())
            .field("users", &self.state.totals.users.len())
            .finish_non_exhaustive()
    }
}

fn ck_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Checkpoint {
    pub(crate) fn new(run_id: &str, state: State) -> Checkpoint {
        Checkpoint {
            run_id: run_id.to_owned(),
            state,
        }
    }

    pub(crate) fn into_state(self) -> State {
        self.state
    }

    /// The id of the run that produced this state.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The encoded bytes (tests compare states with it).
    #[cfg(test)]
    pub(crate) fn state_summary(&self) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        match self.write_to(&mut out) {
            Ok(()) => out.into_inner(),
            Err(_) => Vec::new(),
        }
    }

    /// Writes the header and the payload, serialized straight from the state: neither a copy
    /// of the state nor the encoded payload is held in memory (at the end of a large run the
    /// payload alone is over a gigabyte). The header's length and CRC are written as zeros
    /// first and filled in once the payload is out.
    fn write_to<W: std::io::Write + std::io::Seek>(&self, w: &mut W) -> std::io::Result<()> {
        let s = &self.state;
        let stored = StoredRef {
            settings: &s.settings,
            watermark: s.watermark,
            dedupe_max: s.dedupe_max,
            dedupe: &s.dedupe,
            open: OpenEvents(&s.open),
            priors: &s.priors,
            totals: &s.totals,
        };
        let start = w.stream_position()?;
        let head = self.header(0, 0);
        w.write_all(&head)?;
        let (len, crc) = {
            // Summed under the buffer: the CRC runs over whole buffers, not over each of the
            // encoder's many small writes.
            let mut body = std::io::BufWriter::with_capacity(
                1 << 20,
                Summed {
                    inner: &mut *w,
                    crc: crc32fast::Hasher::new(),
                    len: 0,
                },
            );
            postcard::to_io(&stored, &mut body).map_err(std::io::Error::other)?;
            body.flush()?;
            let summed = body.get_ref();
            (summed.len, summed.crc.clone().finalize())
        };
        let end = w.stream_position()?;
        // The length and CRC are the header's last 12 bytes.
        w.seek(std::io::SeekFrom::Start(start + head.len() as u64 - 12))?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&crc.to_le_bytes())?;
        w.seek(std::io::SeekFrom::Start(end))?;
        Ok(())
    }

    /// The header: magic, version, run id, then the payload's length and CRC.
    fn header(&self, len: u64, crc: u32) -> Vec<u8> {
        let run = self.run_id.as_bytes();
        let mut out = Vec::with_capacity(run.len() + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&u32::try_from(run.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(run);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Atomic: writes `path.tmp`, fsyncs it, renames it to `path`, fsyncs the directory.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut tmp = PathBuf::from(path);
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        tmp.set_file_name(name);
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        self.write_to(&mut f).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
        Ok(())
    }

    /// `Ok(None)` if `path` does not exist; a corrupt, truncated or other-version file is an
    /// [`Error::Checkpoint`] saying what to do.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, Error> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path, e)),
        };
        Self::decode(&bytes).map(Some).map_err(|m| ck_err(path, m))
    }

    fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
        const FIX: &str = "restore the state directory from a backup, or move the file away \
                           and rerun from the first day (loads are idempotent)";
        let mut r = Reader(bytes);
        if r.take(8) != Some(MAGIC.as_slice()) {
            return Err(format!(
                "not a dpl sessionizer checkpoint (bad magic); {FIX}"
            ));
        }
        let version = r.u32().ok_or_else(|| format!("truncated header; {FIX}"))?;
        if version != FORMAT_VERSION {
            return Err(format!(
                "checkpoint format version {version}, this build reads version \
                 {FORMAT_VERSION}; run the dpl version that wrote it, or {FIX}"
            ));
        }
        let run_len = r.u32().ok_or_else(|| format!("truncated header; {FIX}"))?;
        let run = r
            .take(run_len as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| format!("truncated or invalid run id; {FIX}"))?
            .to_owned();
        let len = r.u64().ok_or_else(|| format!("truncated header; {FIX}"))?;
        let crc = r.u32().ok_or_else(|| format!("truncated header; {FIX}"))?;
        let payload = usize::try_from(len)
            .ok()
            .and_then(|l| r.take(l))
            .ok_or_else(|| {
                format!(
                    "truncated: the header of run {run} announces {len} bytes, {} are there; \
                     {FIX}",
                    r.0.len()
                )
            })?;
        if !r.0.is_empty() {
            return Err(format!(
                "{} unexpected bytes after the state; {FIX}",
                r.0.len()
            ));
        }
        if crc32fast::hash(payload) != crc {
            return Err(format!("checksum mismatch (the file is corrupt); {FIX}"));
        }
        let stored: Stored = postcard::from_bytes(payload)
            .map_err(|e| format!("cannot decode the state ({e}); {FIX}"))?;
        let open = stored
            .open
            .into_iter()
            .map(StoredEvent::into_event)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("an open event names an unknown class or field; {FIX}"))?;
        Ok(Checkpoint {
            run_id: run,
            state: State {
                settings: stored.settings,
                watermark: stored.watermark,
                dedupe_max: stored.dedupe_max,
                dedupe: DedupeIds::from_texts(stored.dedupe),
                open,
                priors: stored.priors,
                totals: stored.totals,
            },
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}
