//! Errors of the sources.

use std::path::PathBuf;

/// What stops a source. Every variant names the object or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("source directory {path} does not exist or is not a directory: point --source-dir (source.dir) at the folder that holds events/YYYY/MM/DD/")]
    NoRoot { path: PathBuf },
    #[error("cannot list {path}: {source}")]
    List { path: PathBuf, source: std::io::Error },
    #[error("cannot read object {key}: {source}")]
    Read { key: String, source: std::io::Error },
    #[error("object {key} is not valid UTF-8 in its path and cannot be given a key")]
    BadName { key: String },
    #[error("the pipeline stopped reading (downstream closed)")]
    Closed,
}
