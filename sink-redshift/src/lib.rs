//! The sinks of the dpl pipeline: where finished rows go.
//!
//! - [`Sink::Files`] (the default, needs no service): gzip CSV parts in one directory per
//!   table, staged per run and moved into place at commit, plus a ledger file. It stages and
//!   does not merge: rows sharing a primary key all stay in the parts (see [`FilesSink`]).
//! - [`Sink::Postgres`]: rows `COPY`ed into temporary staging tables, then in one transaction
//!   the target rows with the same primary key are replaced (the first staged row of a key
//!   wins, the others are counted as `duplicate_keys`) and the ledger (`dpl_loaded_objects`,
//!   `dpl_runs`) is written. A run that fails or is dropped before commit changes nothing.
//! - [`Sink::Null`]: discards rows (benchmarks).
//!
//! Not done yet: the Redshift loader (S3 staging and `COPY ... MANIFEST`); `kind = "redshift"`
//! fails with [`Error::NotYetSupported`]. The pieces it will reuse are here and dialect-aware:
//! the CSV encoding ([`CsvEncoder`]), the DDL ([`ddl`]) and the merge SQL
//! ([`merge_statements`]).
//!
//! The CSV encoding (shared by every sink) is described on [`CsvEncoder`]: NULL is
//! `\N`, the empty string `""`; text too long for its column is cut on a character boundary
//! and counted; NULs are removed and counted; times outside years 1..=9999 become NULL and
//! are counted.
//!
//! Choices where SPEC.md is silent:
//! - Rows whose primary key has a NULL part cannot be stored: they are skipped at merge and
//!   counted in [`LoadStats::null_keys`].
//! - `parsely_users_current` counts the `rolling_window_days` reporting-zone days ending
//!   today, inclusive, like `parsely_users.rolling_30_day_pageviews` does for
//!   `date_last_seen`; [`ddl`] uses the default settings, [`ddl_with_view`] takes others.
//! - Columns of an existing table that the schema no longer has are left alone; a column
//!   whose type changed is not altered.
//! - PostgreSQL cannot put a text longer than about 2704 bytes in a btree index, and the
//!   content tables are keyed by URLs of up to 65535 characters: on PostgreSQL those two
//!   tables have no `PRIMARY KEY` constraint but a hash index on the key; the merge keeps
//!   keys unique (see [`create_table`]). Redshift keeps the (informational) primary key.
//! - The files sink cuts text by PostgreSQL's rule (characters).
//!
//! Metrics at commit: `dpl_sink_loaded_rows_total`, `dpl_sink_duplicate_keys_total`,
//! `dpl_sink_cut_values_total`, `dpl_sink_null_keys_total` (label `table`),
//! `dpl_sink_nul_removed_total`, `dpl_sink_out_of_range_total`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dpl_sink::Error> {
//! use std::sync::Arc;
//! use dpl_sink::{Sink, SinkConfig, RunRecord};
//! let schema = Arc::new(dpl_core::Schema::default());
//! let mut sink = Sink::open(&SinkConfig::default(), schema).await?;
//! let done = sink.loaded_objects().await?;
//! sink.begin("run-1").await?;
//! // sink.write(batch).await? for every RowBatch, or dpl_sink::run(&mut sink, rx)
//! let now = jiff::Timestamp::now();
//! let stats = sink.commit(&RunRecord { run_id: "run-1".into(), started_at: now,
//!     finished_at: now, objects: vec![], summary_json: "{}".into() }).await?;
//! # let _ = (done, stats); Ok(()) }
//! ```

mod config;
mod csv;
mod error;
mod files;
mod postgres;
mod sink;
mod sql;

pub use config::{SinkConfig, SinkKind};
pub use csv::{CsvEncoder, Dialect, EncodeStats};
pub use error::Error;
pub use files::{FilesSink, LEDGER_FILE, RUNS_FILE};
pub use postgres::PostgresLoader;
pub use sink::{LoadStats, LoadedObject, NullSink, RunRecord, Sink, run};
pub use sql::{
    ViewOptions, create_table, ddl, ddl_with_view, merge_statements, quote_ident, staging_name,
    validate_schema_name,
};
