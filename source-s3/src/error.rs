//! Errors of the sources.

use std::path::PathBuf;

/// What stops a source. Every variant names the object or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "source directory {path} does not exist or is not a directory: point --source-dir (source.dir) at the folder that holds events/YYYY/MM/DD/"
    )]
    NoRoot { path: PathBuf },
    #[error("cannot list {path}: {source}")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read object {key}: {source}")]
    Read { key: String, source: std::io::Error },
    #[error("object {key} is not valid UTF-8 in its path and cannot be given a key")]
    BadName { key: String },
    #[error("the pipeline stopped reading (downstream closed)")]
    Closed,
    #[error("invalid s3 source config: {message}")]
    S3Config { message: String },
    #[error("cannot list s3://{bucket}/{prefix} ({attempts} attempt(s)): {message}")]
    S3List {
        bucket: String,
        prefix: String,
        attempts: u32,
        message: String,
    },
    #[error("cannot read s3://{bucket}/{key} ({attempts} attempt(s)): {message}")]
    S3Get {
        bucket: String,
        key: String,
        attempts: u32,
        message: String,
    },
    #[error(
        "s3://{bucket}/{key} changed since it was listed (listed ETag {listed}, found {found}): \
         run again to list the new version"
    )]
    S3Changed {
        bucket: String,
        key: String,
        listed: String,
        found: String,
    },
    #[error("s3://{bucket}/{key} was listed with {listed} bytes but {read} bytes were read")]
    S3Size {
        bucket: String,
        key: String,
        listed: u64,
        read: u64,
    },
}
