//! Configuration of the decode stage (SPEC.md section 7 defaults).

use crate::privacy::PrivacyConfig;

/// What the decoder is told; `Decoder::new` checks it. `Debug` and `Serialize` show the
/// hash salt as `***`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// JSON key of `extra_data` whose value becomes `Event::extra` (default `"user_type"`).
    pub extra_data_key: String,
    /// Exact `ua_browser` values that mark a bot (default `["Googlebot"]`).
    pub bot_ua_browsers: Vec<String>,
    /// Regular expressions (`regex` crate syntax, unanchored) on `user_agent` that mark a bot
    /// (default none).
    pub bot_user_agent_patterns: Vec<String>,
    /// When non-empty, only these custom actions are kept; others are counted in
    /// `DecodeStats::unlisted_custom` and dropped (default empty: keep all).
    pub custom_actions: Vec<String>,
    /// Rows (events plus error rows) per `DecodedBatch`, at least 1 (default 1024: batches of a few MB, so the channels between stages hold little).
    pub batch_events: usize,
    /// What happens to `visitor_ip` and `user_agent` (default: kept); see
    /// [`PrivacyConfig`].
    pub privacy: PrivacyConfig,
}

fn default_extra_data_key() -> String {
    "user_type".to_owned()
}

fn default_bot_ua_browsers() -> Vec<String> {
    vec!["Googlebot".to_owned()]
}

fn default_batch_events() -> usize {
    1024
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            extra_data_key: default_extra_data_key(),
            bot_ua_browsers: default_bot_ua_browsers(),
            bot_user_agent_patterns: Vec::new(),
            custom_actions: Vec::new(),
            batch_events: default_batch_events(),
            privacy: PrivacyConfig::default(),
        }
    }
}
