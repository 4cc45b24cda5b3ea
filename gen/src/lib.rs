//! A deterministic generator of realistic Parse.ly Data Pipeline (DPL) raw event files, for
//! tests, benchmarks and demos of the pipeline.
//!
//! [`generate`] builds `events/YYYY/MM/DD/...` objects in memory; [`generate_to_dir`] writes
//! them under a directory (the layout a local source reads) with a `dpl-gen-summary.json`
//! holding the [`GenSummary`]: what the files contain, counted as SPEC.md classifies it, so a
//! test can compare a pipeline run with it. The same [`GenConfig`] always gives the same
//! bytes (ChaCha8 seeded from the config; no clock, no hash-map order, no dependence on the
//! number of threads).
//!
//! # What the files hold
//! - Visitors with stable devices, places, ip and ids; activity drawn Zipf-like (a few very
//!   active visitors, most with one session), some with sessions before the range (the
//!   tracker's `session_id` counts on). Sessions start more often in the New York day than
//!   at night and cross UTC and local midnights. A visitor's sessions are more than half an
//!   hour apart, and events inside one are less than half an hour apart, so the pipeline's
//!   sessions are the tracker's.
//! - Pageviews of a catalogue of 320 posts (canonical urls, titles, sections, authors,
//!   tags, publication times before the events that show them, word counts on both sides of
//!   every `word_count_buckets` boundary), front and section pages; each followed by
//!   heartbeats every 5-15 s carrying `engaged_time_inc` 5-15; reloads (a second pageview
//!   with the same `pageview_key` fields); about 3% of pages without metadata. About 1% of
//!   sessions began minutes before the first day: their earlier events are not written, so
//!   some heartbeats have no pageview in the files (orphans).
//! - Videos started from posts: a videostart and vheartbeats with the same videostart key.
//! - Custom events (`_share`, `conversion`, `newsletter_signup`, `_subscribe`, `_comment`).
//!   `extra_data` carries `user_type` (`subscriber`, `anonymous`, or none); a `_subscribe`
//!   turns a visitor into a subscriber from that event on.
//! - About 15% of sessions land on a utm-tagged url (`utm_*`, `campaign_id`, `url_query`,
//!   and `surl_utm_*` on every event of the session); about 4% of sessions are AMP.
//! - About 2% of events are Googlebot pageviews (`ua_browser` "Googlebot").
//! - About 0.5% of lines are exact copies of an earlier line, in a later object within 48 h;
//!   about 0.2% are malformed, cycling over invalid JSON (a truncated line), not an object,
//!   missing action, missing required field, unparseable `ts_action`, invalid UTF-8. Some
//!   lines are blank. Leniency is exercised: numbers as strings with `_` separators, bools as
//!   words, `ts_action` with milliseconds, `T` and `Z`, `extra_data` and lists as JSON text,
//!   a number in a string field, a key not in the schema, a few lines without the `display*`,
//!   `slot` and `channel` keys.
//! - Objects: `objects_per_day` per UTC day, each holding the lines DPL delivered in its
//!   slice of the day (delivery = `ts_action` + a few seconds to 4 minutes, so lines in an
//!   object are not sorted by time), named `site-YYYY-MM-DD-HH-NNNN.gz` (NNNN counts the
//!   objects starting in that hour from 1). Objects are gzip; about one in four is two gzip
//!   members back to back; one object per day (when there are two or more) is plain JSON
//!   lines named `.json`. Empty slices still get an (empty) object. A line lands in the day
//!   of its delivery, which for lines delivered after midnight is the day after their
//!   `ts_action`; nothing is delivered after the last day.
//! - About 0.05% of events (at least one from 1000 visitor events) are delivered 65-150
//!   minutes late, to exercise stragglers.
//!
//! # What it does not do
//! It does not write to S3, does not model several apikeys, and does not claim Parse.ly's
//! exact tracker semantics for fields the pipeline ignores (for a visitor's first session,
//! `session_last_session_timestamp` equals `session_timestamp`).
//!
//! ```
//! let cfg = dpl_gen::GenConfig::new(2_000, jiff::civil::date(2026, 11, 1), 1, 7);
//! let (objects, summary) = dpl_gen::generate(&cfg);
//! assert_eq!(objects.len(), 24);
//! assert_eq!(summary.lines, 2_000);
//! assert!(objects.windows(2).all(|w| w[0].key < w[1].key));
//! ```

mod catalog;
mod config;
mod error;
mod json;
mod output;
mod plan;
mod render;
mod tables;

pub use config::{GenConfig, GenObject, GenSummary};
pub use error::Error;
pub use output::{SUMMARY_FILE, generate, generate_to_dir};
