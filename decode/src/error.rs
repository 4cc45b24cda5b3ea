//! The crate's one error type.

/// What can stop the decode stage. Bad lines are never an `Error`: they become
/// [`dpl_core::ErrorRow`]s inside the batches.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entry of `bot_user_agent_patterns` is not a valid regular expression.
    #[error("invalid bot_user_agent_patterns entry {pattern:?}: {source}")]
    BadPattern {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    /// The patterns are valid one by one but too large together.
    #[error("bot_user_agent_patterns cannot be compiled together: {0}")]
    PatternSet(#[source] regex::Error),
    /// `batch_events` must be at least 1.
    #[error("batch_events must be at least 1")]
    ZeroBatchEvents,
    /// `privacy.visitor_ip = "hash"` without `privacy.ip_hash_salt`.
    #[error("privacy.visitor_ip = \"hash\" needs privacy.ip_hash_salt")]
    MissingSalt,
    /// `privacy.ip_hash_salt` is too short (the message never shows the salt).
    #[error("privacy.ip_hash_salt must be at least {min} bytes")]
    ShortSalt { min: usize },
    /// The downstream channel closed before the input was drained.
    #[error("decode output channel closed by the receiver")]
    Closed,
    /// A decode worker task died (a bug: decoding never panics on input).
    #[error("decode worker failed: {0}")]
    Worker(String),
}
