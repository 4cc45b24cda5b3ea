//! Errors of the sessionizer.

use std::path::PathBuf;

/// What can stop a sessionizer run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid; the message names the key and what is accepted.
    #[error("invalid sessionize config: {0}")]
    Config(String),
    /// The checkpoint was written under another value of a setting the state depends on.
    #[error(
        "{setting} was {old} when the saved state was written and is {new} now; the open \
         sessions, user totals and dedupe ids in the state follow the old value. Set \
         {setting} back to {old}, or move the state_dir away and reload from the first day \
         with an empty one (loads are idempotent)"
    )]
    SettingChanged {
        setting: &'static str,
        old: String,
        new: String,
    },
    /// The checkpoint file is corrupt, truncated or of another format version.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// Reading or writing the checkpoint failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The decoders closed their channel before every batch of every object arrived.
    #[error(
        "input ended before batch {seq} of object {object} arrived ({pending} later batches \
         waiting); the run is incomplete and nothing may be committed"
    )]
    MissingBatch {
        object: u32,
        seq: u32,
        pending: usize,
    },
    /// A batch arrived twice.
    #[error("batch {seq} of object {object} arrived twice")]
    DuplicateBatch { object: u32, seq: u32 },
    /// The row channel closed before the run ended (the sink stopped).
    #[error("the row channel closed before the sessionizer finished")]
    OutputClosed,
    /// The blocking sessionizer task panicked or was cancelled.
    #[error("sessionizer task failed: {0}")]
    Task(String),
}
