//! The crate's error.

use std::path::PathBuf;

/// Why [`crate::generate_to_dir`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating a directory or writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The summary could not be encoded as JSON.
    #[error("cannot encode the summary: {0}")]
    Summary(#[from] serde_json::Error),
}
