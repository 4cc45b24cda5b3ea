//! The crate's error type.

use std::path::PathBuf;

use dpl_core::Table;

/// Everything that can stop a load. Any of these means the run's load did not commit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is unusable; the message names the key.
    #[error("sink config: {0}")]
    Config(String),
    /// The warehouse schema name is not a plain identifier.
    #[error(
        "invalid schema name {0:?}: use 1 to 63 ASCII letters, digits and _, not starting with a digit"
    )]
    BadSchemaName(String),
    /// A run id that cannot be used in file names and ledger rows.
    #[error("invalid run id {0:?}: use 1 to 128 of A-Z a-z 0-9 _ - . :, not starting with .")]
    BadRunId(String),
    /// A batch whose shape does not match the table's column list.
    #[error(
        "batch for {table:?} has width {width} and {values} values; the table has {expected} columns"
    )]
    BadBatch {
        table: Table,
        width: usize,
        values: usize,
        expected: usize,
    },
    /// A value whose kind cannot be stored in its column (a producer bug).
    #[error("{table}.{column}: a {value} value cannot be stored in a {column_type} column")]
    TypeMismatch {
        table: &'static str,
        column: String,
        value: &'static str,
        column_type: &'static str,
    },
    /// `write` or `commit` without `begin`.
    #[error("sink used out of order: {0}")]
    State(&'static str),
    /// A PostgreSQL statement failed; `context` says which step.
    #[error("postgres: {context}: {message}")]
    Postgres {
        context: String,
        message: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// No pooled connection could be had.
    #[error("postgres: {context}: {message}")]
    Pool { context: String, message: String },
    /// A file operation of the files sink failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The files sink's ledger cannot be read.
    #[error("ledger {path}: line {line}: {message}")]
    Ledger {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// An S3 request of the Redshift loader's staging failed.
    #[error("s3: {context}: {message}")]
    S3 { context: String, message: String },
    /// A Redshift statement failed; the message has any credentials redacted.
    #[error("redshift: {context}: {message}")]
    Redshift { context: String, message: String },
    /// A Redshift `COPY` failed; `rows` are its `stl_load_errors` rows (at most 20), and
    /// the run changed nothing.
    #[error("redshift: COPY into the staging table of {table} failed: {message}{}", format_load_errors(.rows))]
    LoadFailed {
        table: &'static str,
        message: String,
        rows: Vec<LoadErrorRow>,
    },
    /// The blocking writer task of the files sink panicked or was cancelled.
    #[error("files sink writer task failed: {0}")]
    Task(String),
}

/// One row of Redshift's `stl_load_errors`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadErrorRow {
    /// The staged part (`s3://...`).
    pub file: String,
    /// 1-based line in the decompressed part.
    pub line: i64,
    pub column: String,
    /// The column's type.
    pub column_type: String,
    /// The field's raw text (Redshift keeps up to 1024 bytes).
    pub raw_value: String,
    pub code: i64,
    pub reason: String,
}

fn format_load_errors(rows: &[LoadErrorRow]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut s = format!("; stl_load_errors ({} rows):", rows.len());
    for r in rows {
        s.push_str(&format!(
            "\n  {} line {} column {} ({}): {} [code {}], raw value {:?}",
            r.file, r.line, r.column, r.column_type, r.reason, r.code, r.raw_value
        ));
    }
    s
}

/// An error's text followed by its causes (`a: b: c`): tokio-postgres keeps the reason of a
/// TLS or I/O failure in the source chain.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn pg(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| {
            // The Display of a server error is only "db error": take the server's text.
            let message = match source.as_db_error() {
                Some(db) => {
                    let mut m = format!("{}: {}", db.code().code(), db.message());
                    if let Some(d) = db.detail() {
                        m.push_str(" (");
                        m.push_str(d);
                        m.push(')');
                    }
                    if let Some(w) = db.where_() {
                        m.push_str(" [");
                        m.push_str(w);
                        m.push(']');
                    }
                    m
                }
                None => with_causes(&source),
            };
            Error::Postgres {
                context,
                message,
                source,
            }
        }
    }

    pub(crate) fn pool(
        context: impl Into<String>,
    ) -> impl FnOnce(bb8::RunError<tokio_postgres::Error>) -> Error {
        let context = context.into();
        move |e| match e {
            bb8::RunError::User(source) => Error::pg(context)(source),
            bb8::RunError::TimedOut => Error::Pool {
                context,
                message: "timed out waiting for a connection".to_owned(),
            },
        }
    }
}
