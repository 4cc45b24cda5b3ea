//! The loader interface: [`Sink`] and what crosses it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dpl_core::{RowBatch, Schema, Table};

use crate::config::{SinkConfig, SinkKind};
use crate::csv::{EncodeStats, check_shape};
use crate::error::Error;
use crate::files::FilesSink;
use crate::postgres::PostgresLoader;
use crate::redshift::RedshiftLoader;

/// One run's load, for the ledger.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub run_id: String,
    pub started_at: jiff::Timestamp,
    pub finished_at: jiff::Timestamp,
    /// The objects the run read; written to the ledger with the rows, atomically.
    pub objects: Vec<LoadedObject>,
    /// The run summary counts as JSON, stored in `dpl_runs.summary`.
    pub summary_json: String,
}

/// One object read by a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedObject {
    pub key: String,
    pub etag: String,
    pub size: u64,
    pub events: u64,
}

/// What a commit loaded and what it had to change to load it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Rows loaded (PostgreSQL: rows inserted after the merge; files: rows written).
    pub rows: BTreeMap<Table, u64>,
    /// Staged rows not loaded because an earlier staged row of the run had the same key.
    pub duplicate_keys: BTreeMap<Table, u64>,
    /// Text values cut to their column size.
    pub cut_values: BTreeMap<Table, u64>,
    /// NUL characters removed from text values.
    pub nul_removed: u64,
    /// Time stamps and dates outside years 1..=9999, loaded as NULL.
    pub out_of_range: u64,
    /// Staged rows not loaded because a primary key column was NULL.
    pub null_keys: BTreeMap<Table, u64>,
    /// Primary keys withdrawn (rows an earlier run loaded that no longer exist), per table.
    pub withdrawn: BTreeMap<Table, u64>,
}

impl LoadStats {
    pub(crate) fn add_encode(&mut self, e: &EncodeStats) {
        for t in Table::ALL {
            let n = e.cut_values.get(t as usize).copied().unwrap_or(0);
            if n > 0 {
                *self.cut_values.entry(t).or_default() += n;
            }
        }
        self.nul_removed += e.nul_removed;
        self.out_of_range += e.out_of_range;
    }

    fn record_metrics(&self) {
        for (t, n) in &self.rows {
            metrics::counter!("dpl_sink_loaded_rows_total", "table" => t.name()).increment(*n);
        }
        for (t, n) in &self.duplicate_keys {
            metrics::counter!("dpl_sink_duplicate_keys_total", "table" => t.name()).increment(*n);
        }
        for (t, n) in &self.cut_values {
            metrics::counter!("dpl_sink_cut_values_total", "table" => t.name()).increment(*n);
        }
        for (t, n) in &self.null_keys {
            metrics::counter!("dpl_sink_null_keys_total", "table" => t.name()).increment(*n);
        }
        metrics::counter!("dpl_sink_nul_removed_total").increment(self.nul_removed);
        metrics::counter!("dpl_sink_out_of_range_total").increment(self.out_of_range);
    }
}

/// A sink that discards rows, counting them (benchmarks).
#[derive(Debug)]
pub struct NullSink {
    schema: Arc<Schema>,
    rows: BTreeMap<Table, u64>,
}

impl NullSink {
    pub fn new(schema: Arc<Schema>) -> NullSink {
        NullSink {
            schema,
            rows: BTreeMap::new(),
        }
    }
}

/// Where a run's rows go. Call order: [`Sink::open`], then per run [`Sink::begin`],
/// [`Sink::write`] for every batch, [`Sink::commit`]. Nothing is visible to readers until
/// `commit` returns `Ok`; dropping the sink (or calling `begin` again) before that discards
/// the run's rows.
#[derive(Debug)]
pub enum Sink {
    Files(FilesSink),
    Postgres(PostgresLoader),
    Redshift(Box<RedshiftLoader>),
    Null(NullSink),
}

impl Sink {
    /// Validates config, connects (postgres: a bb8 pool of tokio-postgres; redshift: one
    /// connection per step; TLS per `sslmode`), creates the schema's tables, ledger and
    /// view if missing (columns missing from an existing table are added with
    /// `ALTER TABLE ADD COLUMN`).
    pub async fn open(config: &SinkConfig, schema: Arc<Schema>) -> Result<Sink, Error> {
        config.validate()?;
        match config.kind {
            SinkKind::Files => Ok(Sink::Files(FilesSink::open(config, schema).await?)),
            SinkKind::Postgres => Ok(Sink::Postgres(PostgresLoader::open(config, schema).await?)),
            SinkKind::Null => Ok(Sink::Null(NullSink::new(schema))),
            SinkKind::Redshift => Ok(Sink::Redshift(Box::new(
                RedshiftLoader::open(config, schema).await?,
            ))),
        }
    }

    /// Objects already loaded, key -> ETag, from the ledger (files sink: its ledger file).
    pub async fn loaded_objects(&self) -> Result<HashMap<String, String>, Error> {
        match self {
            Sink::Files(s) => s.loaded_objects().await,
            Sink::Postgres(s) => s.loaded_objects().await,
            Sink::Redshift(s) => s.loaded_objects().await,
            Sink::Null(_) => Ok(HashMap::new()),
        }
    }

    /// Whether the ledger (`dpl_runs`, or the files sink's runs file) holds a run with this
    /// id, i.e. its load committed. At start-up the binary promotes a checkpoint left
    /// pending by a run that crashed between its commit and making the checkpoint current
    /// when this is `true`, and discards it otherwise. The null sink keeps no ledger:
    /// always `false`.
    pub async fn run_committed(&self, run_id: &str) -> Result<bool, Error> {
        validate_run_id(run_id)?;
        match self {
            Sink::Files(s) => s.run_committed(run_id).await,
            Sink::Postgres(s) => s.run_committed(run_id).await,
            Sink::Redshift(s) => s.run_committed(run_id).await,
            Sink::Null(_) => Ok(false),
        }
    }

    /// Starts a run's load: opens the transaction / staging area. A run begun and not
    /// committed is discarded.
    pub async fn begin(&mut self, run_id: &str) -> Result<(), Error> {
        validate_run_id(run_id)?;
        match self {
            Sink::Files(s) => s.begin(run_id).await,
            Sink::Postgres(s) => s.begin(run_id).await,
            Sink::Redshift(s) => s.begin(run_id).await,
            Sink::Null(s) => {
                s.rows.clear();
                Ok(())
            }
        }
    }

    /// Stages one batch. Its width must be the table's column count, or for a batch of
    /// withdrawn keys (`batch.withdraw`) the primary key's column count: those rows are
    /// deleted in the run's transaction, before its rows replace theirs.
    pub async fn write(&mut self, batch: RowBatch) -> Result<(), Error> {
        if batch.withdraw {
            check_withdraw_shape(&batch)?;
            if batch.is_empty() {
                return Ok(());
            }
            return match self {
                Sink::Files(s) => s.withdraw(batch).await,
                Sink::Postgres(s) => s.withdraw(batch).await,
                Sink::Redshift(s) => s.withdraw(batch).await,
                Sink::Null(_) => Ok(()),
            };
        }
        match self {
            Sink::Files(s) => s.write(batch).await,
            Sink::Postgres(s) => s.write(batch).await,
            Sink::Redshift(s) => s.write(batch).await,
            Sink::Null(s) => {
                check_shape(s.schema.columns(batch.table), &batch)?;
                *s.rows.entry(batch.table).or_default() += batch.len() as u64;
                Ok(())
            }
        }
    }

    /// Merges staged rows into the targets and writes the ledger, atomically; returns counts.
    pub async fn commit(&mut self, run: &RunRecord) -> Result<LoadStats, Error> {
        validate_run_id(&run.run_id)?;
        let stats = match self {
            Sink::Files(s) => s.commit(run).await?,
            Sink::Postgres(s) => s.commit(run).await?,
            Sink::Redshift(s) => s.commit(run).await?,
            Sink::Null(s) => LoadStats {
                rows: std::mem::take(&mut s.rows),
                ..LoadStats::default()
            },
        };
        stats.record_metrics();
        Ok(stats)
    }
}

/// The writer loop: `sink.write(batch)` for every batch until `rx` closes (all senders
/// dropped). The first error stops the loop; the caller then must not commit.
pub async fn run(sink: &mut Sink, rx: async_channel::Receiver<RowBatch>) -> Result<(), Error> {
    while let Ok(batch) = rx.recv().await {
        sink.write(batch).await?;
    }
    Ok(())
}

/// A batch of withdrawn keys has the width of its table's primary key.
pub(crate) fn check_withdraw_shape(batch: &RowBatch) -> Result<(), Error> {
    let n = batch.table.primary_key().len();
    if batch.width != n || !batch.values.len().is_multiple_of(n) {
        return Err(Error::BadBatch {
            table: batch.table,
            width: batch.width,
            values: batch.values.len(),
            expected: n,
        });
    }
    Ok(())
}

/// The text form of a key value for a `CAST(text AS type)` in SQL; `None` for NULL.
pub(crate) fn key_text(v: &dpl_core::Value) -> Option<String> {
    use dpl_core::Value;
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Text(t) => Some(t.to_string()),
        Value::Short(t) => Some(t.as_str().to_string()),
        Value::Ts(us) => {
            let mut s = String::new();
            dpl_core::write_ts(&mut s, *us);
            Some(s)
        }
        Value::Date(d) => {
            let mut s = String::new();
            dpl_core::write_date(&mut s, *d);
            Some(s)
        }
    }
}

/// The primary key columns of `table`, typed as in `schema`.
pub(crate) fn key_columns(schema: &Schema, table: Table) -> Vec<dpl_core::Column> {
    table
        .primary_key()
        .iter()
        .filter_map(|k| {
            schema
                .index(table, k)
                .map(|i| schema.columns(table)[i].clone())
        })
        .collect()
}

/// Run ids name files and ledger rows: 1 to 128 of `A-Z a-z 0-9 _ - . :`, not starting
/// with `.`.
pub(crate) fn validate_run_id(id: &str) -> Result<(), Error> {
    let ok = (1..=128).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRunId(id.to_owned()))
    }
}

/// Naive UTC micros of a timestamp, for TIMESTAMP columns.
pub(crate) fn utc_micros(t: jiff::Timestamp) -> i64 {
    t.as_microsecond()
}

/// Objects of a run with one entry per key (the last wins), in key order.
pub(crate) fn unique_objects(objects: &[LoadedObject]) -> Vec<&LoadedObject> {
    let mut m: BTreeMap<&str, &LoadedObject> = BTreeMap::new();
    for o in objects {
        m.insert(&o.key, o);
    }
    m.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    /// The binary runs the sink in a spawned task: the sink and its futures must be `Send`.
    #[allow(dead_code, clippy::diverging_sub_expression)]
    async fn futures_are_send(mut sink: Sink, b: RowBatch, r: RunRecord) {
        is_send(&sink);
        is_send(&Sink::open(
            &SinkConfig::default(),
            Arc::new(Schema::default()),
        ));
        is_send(&sink.loaded_objects());
        is_send(&sink.run_committed("x"));
        is_send(&sink.begin("x"));
        is_send(&sink.write(b));
        is_send(&sink.commit(&r));
        let (_tx, rx) = async_channel::bounded(1);
        is_send(&run(&mut sink, rx));
    }

    #[test]
    fn run_ids() {
        for good in ["20261129T002819.123456Z-4242", "r1", "a_b-c.d:e"] {
            assert!(validate_run_id(good).is_ok(), "{good:?}");
        }
        for bad in ["", ".hidden", "../x", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(validate_run_id(bad).is_err(), "{bad:?}");
        }
    }
}
