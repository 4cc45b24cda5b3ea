//! Sink configuration.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::Error;
use crate::sql::ViewOptions;

/// Which sink loads the rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Gzip CSV parts in one directory per table, plus a ledger file; needs no service.
    #[default]
    Files,
    /// A PostgreSQL database, loaded with `COPY FROM STDIN` and merged by primary key.
    Postgres,
    /// Amazon Redshift: not built yet ([`Error::NotYetSupported`]).
    Redshift,
    /// Discards every row (benchmarks).
    Null,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Files => "files",
            SinkKind::Postgres => "postgres",
            SinkKind::Redshift => "redshift",
            SinkKind::Null => "null",
        }
    }
}

/// The `[sink]` section of the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// `files` (default), `postgres`, `redshift` or `null`.
    pub kind: SinkKind,
    /// Output directory of the files sink (default `dpl-out`).
    pub out: PathBuf,
    /// Rows per gzip CSV part of the files sink (default 500,000).
    pub part_rows: usize,
    /// `postgres://user@host:port/db` of the postgres sink.
    pub pg_url: Option<String>,
    /// Warehouse schema holding the tables (default `public`): ASCII letters, digits and `_`.
    pub schema: String,
    /// Connections in the postgres pool (default 4).
    pub pool_size: u32,
    /// Settings of the `parsely_users_current` view. Not read from the `[sink]` section:
    /// the binary copies them from the pipeline settings (`rolling_window_days`,
    /// `rolling_loyalty_pageviews`, `timezone`); defaults are SPEC.md's.
    #[serde(skip)]
    pub view: ViewOptions,
}

fn default_out() -> PathBuf {
    PathBuf::from("dpl-out")
}
fn default_part_rows() -> usize {
    500_000
}
fn default_schema() -> String {
    "public".to_owned()
}
fn default_pool_size() -> u32 {
    4
}

impl Default for SinkConfig {
    fn default() -> SinkConfig {
        SinkConfig {
            kind: SinkKind::default(),
            out: default_out(),
            part_rows: default_part_rows(),
            pg_url: None,
            schema: default_schema(),
            pool_size: default_pool_size(),
            view: ViewOptions::default(),
        }
    }
}

impl SinkConfig {
    /// Checks the values every sink kind relies on; the message names the key.
    pub fn validate(&self) -> Result<(), Error> {
        crate::sql::validate_schema_name(&self.schema)?;
        match self.kind {
            SinkKind::Files => {
                if self.part_rows == 0 {
                    return Err(Error::Config(
                        "sink.part_rows must be at least 1".to_owned(),
                    ));
                }
                if self.out.as_os_str().is_empty() {
                    return Err(Error::Config("sink.out must name a directory".to_owned()));
                }
            }
            SinkKind::Postgres => {
                if self.pg_url.as_deref().is_none_or(str::is_empty) {
                    return Err(Error::Config(
                        "sink.pg_url is required for the postgres sink (postgres://user@host:port/db)"
                            .to_owned(),
                    ));
                }
                if self.pool_size == 0 {
                    return Err(Error::Config(
                        "sink.pool_size must be at least 1".to_owned(),
                    ));
                }
            }
            SinkKind::Redshift | SinkKind::Null => {}
        }
        Ok(())
    }
}
