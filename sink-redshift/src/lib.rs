//! The sinks of the dpl pipeline: where finished rows go.
//!
//! - [`Sink::Files`] (the default, needs no service): gzip CSV parts in one directory per
//!   table, staged per run and moved into place at commit, plus a ledger file. It stages and
//!   does not merge: rows sharing a primary key all stay in the parts (see [`FilesSink`]).
//! - [`Sink::Postgres`]: rows `COPY`ed into temporary staging tables, then in one transaction
//!   the target rows with the same primary key are replaced (the first staged row of a key
//!   wins, the others are counted as `duplicate_keys`) and the ledger (`dpl_loaded_objects`,
//!   `dpl_runs`) is written. A run that fails or is dropped before commit changes nothing.
//! - [`Sink::Redshift`] ([`RedshiftLoader`]): rows staged in S3 as gzip or zstd CSV parts
//!   plus one manifest per table under `<staging_prefix><run_id>/` ([`staging`]), then one
//!   transaction: `COPY ... MANIFEST` into temporary staging tables, the same merge by
//!   primary key, the ledger rows, `COMMIT`; the staged objects are deleted after it. A
//!   failed COPY is [`Error::LoadFailed`] with its `stl_load_errors` rows. Every statement
//!   is built by [`redshift_sql`] (values escaped by [`sql_literal`], the one audited
//!   function; credentials redacted from every message). `docs/redshift.md` says what to
//!   create in AWS and how to read a failed load.
//! - [`Sink::Null`]: discards rows (benchmarks).
//!
//! Crash safety: [`Sink::run_committed`] tells whether a run id is in the ledger; the
//! binary uses it at start-up to promote or discard a checkpoint left pending by a run that
//! crashed between its commit and making the checkpoint current.
//!
//! TLS ([`SslMode`], libpq's meanings): `disable`, `prefer` (the postgres default),
//! `require` (the redshift default: encrypted, certificate not verified) and `verify-full`
//! (chain checked against the system's root certificates, and the host name), with rustls.
//! `sslmode` comes from the config key, else from the URL's `sslmode=` parameter.
//!
//! Not done here: Redshift itself cannot run in tests. The Redshift path is proven by
//! parsing every statement with sqlparser's Redshift dialect and by loading the staged
//! parts, read back from an in-process S3 server, into PostgreSQL with the same CSV options
//! and the same transaction (`tests/redshift.rs`). The [`redshift_sql`] and [`staging`]
//! modules are public, unlike the others, so those tests (and operators reproducing a
//! load by hand) can build exactly what the loader sends.
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
mod redshift;
pub mod redshift_sql;
mod sink;
mod sql;
pub mod staging;
mod tls;

pub use config::{Compression, SinkConfig, SinkKind, Sse, redact_url};
pub use csv::{CsvEncoder, Dialect, EncodeStats};
pub use error::{Error, LoadErrorRow};
pub use files::{FilesSink, LEDGER_FILE, RUNS_FILE};
pub use postgres::PostgresLoader;
pub use redshift::{RedshiftLoader, SWEEP_AFTER, run_load_steps};
pub use redshift_sql::{CopyAuth, sql_literal};
pub use sink::{LoadStats, LoadedObject, NullSink, RunRecord, Sink, run};
pub use sql::{
    ViewOptions, create_table, ddl, ddl_with_view, merge_statements, quote_ident, staging_name,
    validate_schema_name,
};
pub use tls::{SslMode, connector as pg_connector};
