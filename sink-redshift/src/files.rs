//! The files sink: gzip CSV parts per table, staged per run and moved into place at commit.
//!
//! Layout under `out/`:
//! - `<table_name>/part-<run_id>-<nnnnn>.csv.gz`: header-less CSV in the crate's encoding
//!   (PostgreSQL dialect: text cut to the column size in characters), at most `part_rows`
//!   rows each;
//! - `<table_name>/columns` (one column name per line, in order) and `columns.sql` (the
//!   table's `CREATE TABLE`, PostgreSQL dialect), written at open;
//! - `_dpl_ledger.csv`: the loaded objects, columns of `dpl_loaded_objects` (`object_key,
//!   etag, size_bytes, events, run_id, loaded_at`), appended at every commit; a key listed
//!   twice counts with its last row;
//! - `_dpl_runs.csv`: one row per committed run, columns of `dpl_runs`;
//! - `<table_name>/withdrawn-<run_id>.csv.gz`: primary keys (in `Table::primary_key`
//!   order, same CSV encoding) of rows that earlier runs wrote and that no longer exist
//!   (a session emitted while open whose key changed): a loader deletes them before it
//!   merges that run's parts.
//!
//! During a run parts are written under `out/.staging-<run_id>/`; commit renames them into
//! the tables' directories, then rewrites the ledger atomically (temp file, fsync, rename),
//! then removes the staging directory. A run that never commits leaves nothing in the tables'
//! directories; its staging directory is removed by the next open. A crash between the
//! renames and the ledger write leaves parts whose objects the ledger does not list: the next
//! run reads those objects again and writes their rows again.
//!
//! The files sink stages, it does not merge: rows with the same primary key (within a run,
//! or a later run's replacement of an earlier run's row) all stay in the parts. Whoever loads
//! the parts must merge by primary key, later parts winning, as the PostgreSQL loader does.
//!
//! Files are created readable by the owner only (mode 0600, directories 0700).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dpl_core::{RowBatch, Schema, Table};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::config::SinkConfig;
use crate::csv::{CsvEncoder, Dialect, check_shape, parse_records};
use crate::error::Error;
use crate::sink::{LoadStats, RunRecord, unique_objects, utc_micros};
use crate::sql;

/// Ledger file of loaded objects, under `out/`.
pub const LEDGER_FILE: &str = "_dpl_ledger.csv";
/// Ledger file of runs, under `out/`.
pub const RUNS_FILE: &str = "_dpl_runs.csv";
const STAGING_PREFIX: &str = ".staging-";
/// Encoded bytes gathered before they go to the compressor.
const FLUSH_BYTES: usize = 1 << 16;

/// See the module docs.
#[derive(Debug)]
pub struct FilesSink {
    out: PathBuf,
    part_rows: usize,
    schema: Arc<Schema>,
    /// `Some` between `begin` and `commit`; moved into a blocking task while it writes.
    run: Option<Box<RunState>>,
}

#[derive(Debug)]
struct RunState {
    run_id: String,
    staging: PathBuf,
    part_rows: usize,
    schema: Arc<Schema>,
    encoder: CsvEncoder,
    buf: Vec<u8>,
    /// The open part of each table, indexed by `Table as usize`.
    open: Vec<Option<Part>>,
    /// Closed parts: table and file name, under `staging/<table>/`.
    closed: Vec<(Table, String)>,
    next_part: [u32; Table::ALL.len()],
    rows: [u64; Table::ALL.len()],
    /// Encoded withdrawn keys and their count, indexed by `Table as usize`.
    withdrawn: Vec<(Vec<u8>, u64)>,
}

struct Part {
    name: String,
    path: PathBuf,
    gz: GzEncoder<BufWriter<File>>,
    rows: usize,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish()
    }
}

impl FilesSink {
    pub(crate) async fn open(config: &SinkConfig, schema: Arc<Schema>) -> Result<FilesSink, Error> {
        let out = config.out.clone();
        let schema_name = config.schema.clone();
        let s = schema.clone();
        let out2 = out.clone();
        blocking(move || prepare_out(&out2, &schema_name, &s)).await??;
        Ok(FilesSink {
            out,
            part_rows: config.part_rows,
            schema,
            run: None,
        })
    }

    /// The output directory.
    pub fn out(&self) -> &Path {
        &self.out
    }

    pub(crate) async fn loaded_objects(&self) -> Result<HashMap<String, String>, Error> {
        let path = self.out.join(LEDGER_FILE);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(Error::io(path)(e)),
        };
        let records = parse_records(&text).map_err(|(line, message)| Error::Ledger {
            path: path.clone(),
            line,
            message,
        })?;
        let mut m = HashMap::new();
        for (i, r) in records.into_iter().enumerate() {
            match (r.first(), r.get(1)) {
                (Some(Some(key)), Some(Some(etag))) => {
                    m.insert(key.clone(), etag.clone());
                }
                _ => {
                    return Err(Error::Ledger {
                        path,
                        line: i + 1,
                        message: "expected object_key and etag".to_owned(),
                    });
                }
            }
        }
        Ok(m)
    }

    /// Whether the runs ledger file lists `run_id`.
    pub(crate) async fn run_committed(&self, run_id: &str) -> Result<bool, Error> {
        Ok(self.committed_runs().await?.iter().any(|r| r == run_id))
    }

    /// Run ids listed in the runs ledger file.
    async fn committed_runs(&self) -> Result<Vec<String>, Error> {
        let path = self.out.join(RUNS_FILE);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path)(e)),
        };
        let records = parse_records(&text).map_err(|(line, message)| Error::Ledger {
            path: path.clone(),
            line,
            message,
        })?;
        Ok(records
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect())
    }

    pub(crate) async fn begin(&mut self, run_id: &str) -> Result<(), Error> {
        if let Some(old) = self.run.take() {
            let staging = old.staging.clone();
            drop(old);
            blocking(move || remove_dir_if_exists(&staging)).await??;
        }
        if self.committed_runs().await?.iter().any(|r| r == run_id) {
            // Its part names would replace the earlier run's parts.
            return Err(Error::Config(format!(
                "run id {run_id:?} was already committed to {}",
                self.out.display()
            )));
        }
        let staging = self.out.join(format!("{STAGING_PREFIX}{run_id}"));
        let st = staging.clone();
        blocking(move || {
            remove_dir_if_exists(&st)?;
            create_dir(&st)
        })
        .await??;
        self.run = Some(Box::new(RunState {
            run_id: run_id.to_owned(),
            staging,
            part_rows: self.part_rows,
            schema: self.schema.clone(),
            encoder: CsvEncoder::new(Dialect::Postgres),
            buf: Vec::with_capacity(FLUSH_BYTES * 2),
            open: Table::ALL.iter().map(|_| None).collect(),
            closed: Vec::new(),
            next_part: [0; Table::ALL.len()],
            rows: [0; Table::ALL.len()],
            withdrawn: Table::ALL.iter().map(|_| (Vec::new(), 0)).collect(),
        }));
        Ok(())
    }

    pub(crate) async fn write(&mut self, batch: RowBatch) -> Result<(), Error> {
        let mut run = self.run.take().ok_or(Error::State("write before begin"))?;
        let (run, result) = blocking(move || {
            let r = run.write(&batch);
            (run, r)
        })
        .await?;
        if result.is_err() {
            // Part of the batch may be in the parts: discard the run so it cannot commit.
            let staging = run.staging.clone();
            drop(run);
            blocking(move || remove_dir_if_exists(&staging)).await??;
        } else {
            self.run = Some(run);
        }
        result
    }

    /// Keeps withdrawn keys for the run's `withdrawn-<run_id>.csv.gz` files.
    pub(crate) async fn withdraw(&mut self, batch: RowBatch) -> Result<(), Error> {
        let run = self
            .run
            .as_mut()
            .ok_or(Error::State("write before begin"))?;
        let columns = crate::sink::key_columns(&run.schema, batch.table);
        let Some((buf, n)) = run.withdrawn.get_mut(batch.table as usize) else {
            return Err(Error::State("unknown table"));
        };
        for row in batch.values.chunks_exact(columns.len().max(1)) {
            run.encoder.encode_row(batch.table, &columns, row, buf)?;
            *n += 1;
        }
        Ok(())
    }

    pub(crate) async fn commit(&mut self, record: &RunRecord) -> Result<LoadStats, Error> {
        let run = self.run.take().ok_or(Error::State("commit before begin"))?;
        if run.run_id != record.run_id {
            return Err(Error::State("commit of a run id other than the one begun"));
        }
        let out = self.out.clone();
        let record = record.clone();
        blocking(move || run.commit(&out, &record)).await?
    }
}

impl RunState {
    fn write(&mut self, batch: &RowBatch) -> Result<(), Error> {
        let schema = self.schema.clone();
        let columns = schema.columns(batch.table);
        check_shape(columns, batch)?;
        let table = batch.table;
        let t = table as usize;
        for row in batch.values.chunks_exact(columns.len()) {
            let full = self
                .open
                .get(t)
                .and_then(Option::as_ref)
                .is_some_and(|p| p.rows >= self.part_rows);
            if full {
                self.close_part(table)?;
            }
            self.open_part(table)?.rows += 1;
            self.encoder
                .encode_row(table, columns, row, &mut self.buf)?;
            if let Some(r) = self.rows.get_mut(t) {
                *r += 1;
            }
            if self.buf.len() >= FLUSH_BYTES {
                self.flush(table)?;
            }
        }
        self.flush(table)
    }

    /// Compresses the encoded rows into the table's open part.
    fn flush(&mut self, table: Table) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let part = self
            .open
            .get_mut(table as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::State("rows encoded without an open part"))?;
        part.gz
            .write_all(&self.buf)
            .map_err(Error::io(&part.path))?;
        self.buf.clear();
        Ok(())
    }

    fn open_part(&mut self, table: Table) -> Result<&mut Part, Error> {
        let t = table as usize;
        let slot = self.open.get_mut(t).ok_or(Error::State("unknown table"))?;
        if slot.is_none() {
            let dir = self.staging.join(table.name());
            if !dir.exists() {
                create_dir(&dir)?;
            }
            let n = self
                .next_part
                .get_mut(t)
                .ok_or(Error::State("unknown table"))?;
            let name = format!("part-{}-{:05}.csv.gz", self.run_id, *n);
            *n += 1;
            let path = dir.join(&name);
            let file = create_file(&path)?;
            *slot = Some(Part {
                name,
                path,
                gz: GzEncoder::new(BufWriter::with_capacity(1 << 16, file), Compression::fast()),
                rows: 0,
            });
        }
        slot.as_mut().ok_or(Error::State("part not open"))
    }

    fn close_part(&mut self, table: Table) -> Result<(), Error> {
        self.flush(table)?;
        let Some(part) = self.open.get_mut(table as usize).and_then(Option::take) else {
            return Ok(());
        };
        let buf = part.gz.finish().map_err(Error::io(&part.path))?;
        let file = buf
            .into_inner()
            .map_err(|e| Error::io(&part.path)(e.into_error()))?;
        file.sync_all().map_err(Error::io(&part.path))?;
        self.closed.push((table, part.name));
        Ok(())
    }

    fn commit(mut self, out: &Path, record: &RunRecord) -> Result<LoadStats, Error> {
        for t in Table::ALL {
            self.close_part(t)?;
        }
        let mut withdrawn = std::collections::BTreeMap::new();
        for t in Table::ALL {
            let Some((keys, n)) = self.withdrawn.get(t as usize) else {
                continue;
            };
            if *n == 0 {
                continue;
            }
            let dir = self.staging.join(t.name());
            if !dir.exists() {
                create_dir(&dir)?;
            }
            let name = format!("withdrawn-{}.csv.gz", self.run_id);
            let path = dir.join(&name);
            let mut gz = GzEncoder::new(BufWriter::new(create_file(&path)?), Compression::fast());
            gz.write_all(keys).map_err(Error::io(&path))?;
            let file = gz
                .finish()
                .map_err(Error::io(&path))?
                .into_inner()
                .map_err(|e| Error::io(&path)(e.into_error()))?;
            file.sync_all().map_err(Error::io(&path))?;
            self.closed.push((t, name));
            withdrawn.insert(t, *n);
        }
        let mut dirs = Vec::new();
        for (table, name) in &self.closed {
            let from = self.staging.join(table.name()).join(name);
            let dir = out.join(table.name());
            let to = dir.join(name);
            fs::rename(&from, &to).map_err(Error::io(&to))?;
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        append_ledger(out, record)?;
        remove_dir_if_exists(&self.staging)?;
        let mut stats = LoadStats {
            withdrawn,
            ..LoadStats::default()
        };
        for t in Table::ALL {
            let n = self.rows.get(t as usize).copied().unwrap_or(0);
            if n > 0 {
                stats.rows.insert(t, n);
            }
        }
        stats.add_encode(&self.encoder.take_stats());
        Ok(stats)
    }
}

/// Creates `out/`, one directory per table with its `columns` files, and removes staging
/// directories left by runs that never committed.
fn prepare_out(out: &Path, schema_name: &str, schema: &Schema) -> Result<(), Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode_0700()
        .create(out)
        .map_err(Error::io(out))?;
    for entry in fs::read_dir(out).map_err(Error::io(out))? {
        let entry = entry.map_err(Error::io(out))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            tracing::warn!(path = %entry.path().display(), "removing the staging directory of a run that did not commit");
            remove_dir_if_exists(&entry.path())?;
        }
    }
    for t in Table::ALL {
        let dir = out.join(t.name());
        if !dir.exists() {
            create_dir(&dir)?;
        }
        let mut names = String::new();
        for c in schema.columns(t) {
            names.push_str(&c.name);
            names.push('\n');
        }
        write_if_changed(&dir.join("columns"), names.as_bytes())?;
        let ddl = sql::create_table(Dialect::Postgres, schema_name, schema, t);
        write_if_changed(&dir.join("columns.sql"), ddl.as_bytes())?;
    }
    Ok(())
}

/// Appends the run's objects and its run row to the ledger files, each atomically.
fn append_ledger(out: &Path, record: &RunRecord) -> Result<(), Error> {
    let (obj_cols, run_cols) = sql::ledger_columns();
    let mut enc = CsvEncoder::new(Dialect::Postgres);
    let finished = dpl_core::Value::Ts(utc_micros(record.finished_at));
    let run_id = dpl_core::Value::text(record.run_id.as_str());

    let mut rows = Vec::new();
    for o in unique_objects(&record.objects) {
        let row = [
            dpl_core::Value::text(o.key.as_str()),
            dpl_core::Value::text(o.etag.as_str()),
            dpl_core::Value::Int(i64::try_from(o.size).unwrap_or(i64::MAX)),
            dpl_core::Value::Int(i64::try_from(o.events).unwrap_or(i64::MAX)),
            run_id.clone(),
            finished.clone(),
        ];
        enc.encode_row(Table::Errors, &obj_cols, &row, &mut rows)?;
    }
    append_atomically(&out.join(LEDGER_FILE), &rows)?;

    let mut run_row = Vec::new();
    let row = [
        run_id,
        dpl_core::Value::Ts(utc_micros(record.started_at)),
        finished,
        dpl_core::Value::Int(i64::try_from(record.objects.len()).unwrap_or(i64::MAX)),
        dpl_core::Value::text(record.summary_json.as_str()),
    ];
    enc.encode_row(Table::Errors, &run_cols, &row, &mut run_row)?;
    append_atomically(&out.join(RUNS_FILE), &run_row)
}

fn append_atomically(path: &Path, tail: &[u8]) -> Result<(), Error> {
    let mut bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(path)(e)),
    };
    bytes.extend_from_slice(tail);
    write_atomically(path, &bytes)
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    match fs::read(path) {
        Ok(old) if old == bytes => Ok(()),
        _ => write_atomically(path, bytes),
    }
}

/// Writes a temporary file next to `path`, fsyncs it, renames it over `path` and fsyncs
/// the directory, so readers see the old or the new content, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{}.tmp", name.unwrap_or_default()));
    let mut f = create_file(&tmp)?;
    f.write_all(bytes).map_err(Error::io(&tmp))?;
    f.sync_all().map_err(Error::io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(Error::io(path))?;
    sync_dir(dir)
}

fn create_file(path: &Path) -> Result<File, Error> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path).map_err(Error::io(path))
}

fn create_dir(path: &Path) -> Result<(), Error> {
    fs::DirBuilder::new()
        .mode_0700()
        .create(path)
        .map_err(Error::io(path))
}

fn remove_dir_if_exists(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path)(e)),
    }
}

fn sync_dir(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        File::open(path)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(path))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

trait DirMode {
    fn mode_0700(&mut self) -> &mut Self;
}

impl DirMode for fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            self.mode(0o700);
        }
        self
    }
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))
}
