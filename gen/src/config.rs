//! What to generate, and the summary of what was generated.

use std::collections::BTreeMap;

/// What to generate. Same config, same bytes.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Event lines to write: valid events (standard, custom and bot), duplicate copies and
    /// malformed lines together. Blank lines come on top.
    pub events: u64,
    /// First UTC day of the events.
    pub start_date: jiff::civil::Date,
    /// Number of UTC days the events span (0 is taken as 1).
    pub days: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// The site's `apikey`; urls are on `www.<apikey>`.
    pub apikey: String,
    /// Visitors to draw sessions from; default `events / 20`. The number with activity
    /// (see [`GenSummary::visitors`]) is usually a little lower.
    pub visitors: Option<u64>,
    /// Objects per day, each covering an equal slice of the day by delivery time
    /// (clamped to 1..=1440).
    pub objects_per_day: u32,
    /// Hold back about 0.05% of events for more than an hour so they arrive as stragglers
    /// (default true; tests that compare run splits turn it off, since SPEC.md lets
    /// visitors with stragglers differ with the split).
    pub stragglers: bool,
}

impl GenConfig {
    /// A config with the defaults: apikey `example.com`, `events / 20` visitors, 24 objects
    /// per day.
    pub fn new(events: u64, start_date: jiff::civil::Date, days: u32, seed: u64) -> GenConfig {
        GenConfig {
            events,
            start_date,
            days,
            seed,
            apikey: "example.com".to_owned(),
            visitors: None,
            objects_per_day: 24,
            stragglers: true,
        }
    }
}

/// One generated object: its key under the bucket root and its bytes (gzip or plain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenObject {
    /// `events/YYYY/MM/DD/<name>`.
    pub key: String,
    pub bytes: Vec<u8>,
}

/// What the generated files hold, counted as SPEC.md classifies it, so tests can compare a
/// pipeline run with it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenSummary {
    /// Objects written (`days * objects_per_day`; some may hold no line).
    pub objects: u64,
    /// Non-blank lines written: valid events, duplicate copies and malformed lines
    /// (equals [`GenConfig::events`]).
    pub lines: u64,
    /// Empty or whitespace-only lines.
    pub blank_lines: u64,
    /// Unique events (first copies) by class; `bots` counts every crawler line whatever
    /// its action.
    pub pageviews: u64,
    pub heartbeats: u64,
    pub videostarts: u64,
    pub vheartbeats: u64,
    pub custom: u64,
    pub bots: u64,
    /// Extra copies of an earlier line (same `event_id`), each arriving in a later object
    /// (or later in the last object) within 48 hours.
    pub duplicates: u64,
    /// Malformed lines by `dpl_core::ErrorReason::as_str()`; reasons with no line are absent.
    pub errors: BTreeMap<String, u64>,
    /// Distinct (apikey, visitor_site_id) with at least one standard or custom event.
    pub visitors: u64,
    /// Activity events (first copies) whose `ts_action`, as written, is more than one hour
    /// before the largest `ts_action` of the activity events before them in arrival order
    /// (SPEC.md section 4 with the default `allowed_lateness`).
    pub stragglers: u64,
}
