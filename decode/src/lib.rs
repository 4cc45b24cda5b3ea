//! The decode stage of the dpl pipeline: raw DPL objects (gzipped or plain JSON lines) to
//! [`dpl_core::Event`]s and [`dpl_core::ErrorRow`]s, per SPEC.md sections 1 and 2.
//!
//! What it does:
//! - recognises gzip by its magic bytes (`1f 8b`, any number of members back to back) and
//!   reads anything else as plain lines; streams through one reused line buffer, never
//!   decompressing a whole object at once;
//! - splits lines on `\n`, removes one trailing `\r`, numbers lines from 1 across gzip
//!   members, skips (but counts) blank lines (empty or ASCII whitespace only);
//! - parses each line with simd-json's tape, maps every schema key with
//!   [`dpl_core::Field::from_name`] (unknown keys ignored, repeated keys: the last wins) and
//!   coerces it by [`dpl_core::Kind`] with the leniency of SPEC.md section 1;
//! - rejects lines as error rows ([`dpl_core::ErrorReason`]): invalid UTF-8, invalid JSON,
//!   not an object, missing action, missing/empty or unparseable required field (checked in
//!   this order: `action`, `apikey`, `event_id`, `visitor_site_id`, `ts_action`);
//! - classifies events (bot rules first, for any action; then the four standard actions;
//!   else custom, dropped and counted when `custom_actions` is set and does not list it);
//! - ends a corrupt or truncated gzip stream with one `corrupt_gzip` row holding the partial
//!   line (line number = the next one), after decoding every complete line before it.
//!
//! What it does not do: drop duplicates (the sessionizer does), cut text to column sizes
//! (the sink does), or derive values (keys, local times).
//!
//! Choices where SPEC.md is silent:
//! - an empty string in a non-text field (number, bool, time stamp, JSON, list) is null and
//!   not counted as unparseable; in a required field it is "missing";
//! - `_` separators in numeric strings are single and between digits (`1_000`, not `_1`,
//!   `1_`, `1__0`); a sign `+`/`-` and exponents are accepted, whitespace is not;
//! - integer fields take whole floats (`5.0`, `"1e3"`) but not `true`; bool fields take the
//!   numbers 1 and 0 (also `1.0`, `0.0`); float fields take no bools;
//! - a number in a text field becomes its JSON text as re-written from the parsed value
//!   (`1.50` -> `"1.5"`, `1e3` -> `"1000.0"`); compact JSON text is written the same way;
//! - `action` given as an object or array is `missing_action` (detail `action is not
//!   text`); `action` given as a number or bool is its text, hence a custom action;
//! - `event_id`/`action` of an error row: read from the parsed object when the line parsed;
//!   for invalid JSON or UTF-8 and for the partial line of `corrupt_gzip`, from the line
//!   with bad bytes replaced if that parses, else by a lenient scan for the first
//!   `"key": value`; empty strings are left out;
//! - a line longer than [`MAX_LINE_BYTES`] is read through and rejected as `invalid_json`
//!   (detail says why) so memory stays bounded;
//! - `DecodeStats::lines` counts complete lines (a last line without `\n` included); the
//!   partial line of a `corrupt_gzip` row is not a line, but its bytes are in `bytes`.
//!   So for every object: events + error rows + `unlisted_custom` = non-blank lines, plus
//!   one when the object ends with a `corrupt_gzip` row;
//! - a batch holds at most `batch_events` rows, events and error rows together.
//!
//! # Personal data
//!
//! `visitor_ip` and `user_agent` can be kept (default, as the original does), truncated,
//! hashed or dropped ([`PrivacyConfig`], `[decode.privacy]`):
//!
//! ```toml
//! [decode.privacy]
//! visitor_ip = "hash"       # keep | truncate | hash | drop
//! user_agent = "drop"       # keep | drop
//! ip_hash_salt = "..."      # required for hash, at least 16 bytes; a secret
//! ```
//!
//! It is applied inside the decoder, so the value as received reaches no event, error row,
//! table, file or log:
//! - events of every class, bot rows included, carry the redacted value;
//! - `raw` of an error row whose line parsed as JSON and has a redacted member at the top
//!   level is that line re-written as compact JSON with the member redacted as in events (a
//!   dropped field's member left out, a value that cannot be made safe as `null`), so it is
//!   no longer byte for byte the line. A line that did not parse (invalid JSON or UTF-8, the
//!   partial line of `corrupt_gzip`, an overlong line) is re-written the same way if its
//!   text, bad bytes replaced, parses; otherwise it is kept as it is only if it cannot hold
//!   a redacted key (neither the key's name nor any `\u` escape occurs in it), and is
//!   else replaced by [`WITHHELD_RAW`]. `event_id`, `action`, `reason` and `detail` are
//!   filled as usual (they never hold these fields);
//! - bot classification by `bot_user_agent_patterns` still reads the user agent as
//!   received (in memory only), so classes do not depend on the privacy settings;
//! - the salt never appears in `Debug` output ([`Secret`] prints `***`) or in errors.
//!
//! Keys: none of the md5 recipes of SPEC.md section 3 (`apikey_visitor_id`, `utm_id`,
//! `pageview_key`, `videostart_key`, `parsely_session_id`) uses `visitor_ip` or
//! `user_agent`, so every key and every session is the same in every mode. What does
//! change is only the `visitor_ip`/`user_agent` columns: of the event-grain tables and
//! `parsely_bot_traffic`, and the session's first-event attributes (SPEC.md section 4).
//! Hashed values join across runs only with the same salt. Not covered: the same text
//! elsewhere on a line (inside `extra_data`, or a line that is not an object) and the
//! location fields derived from the address (`ip_city`, `ip_postal`, `ip_lat`, ...).
//!
//! # Speed
//!
//! Each worker thread keeps its line parser between objects (buffers, tape) and a small
//! direct-mapped cache of text values per field, so repeated strings of one batch
//! (`url_scheme`, `ua_*`, `ip_country`, urls and titles of popular pages, lists) share one
//! `Arc<str>` instead of one allocation each: about 10 allocations per generated line
//! instead of 75. The cache is emptied for every batch, so the decoder never touches the
//! reference counts of strings already handed on to the next stage. Bounded: at most 128
//! strings of at most 256 bytes per field (under 4 MiB per thread); fields unique per
//! event or visitor (`event_id`, `visitor_site_id`, `visitor_ip`, ...)
//! are not cached. Nothing observable depends on it.
//!
//! Heartbeats are stored against an earlier event of their visitor as they are read
//! ([`dpl_core::Event::sharing`]): within one object, each page view, video start and
//! other event that is not so stored becomes a *base*, and a later heartbeat, video
//! heartbeat or custom event of the same `(apikey, visitor_site_id)` is compared field by
//! field with the visitor's two latest bases. A field whose value equals the base's is
//! never built (for text, the tape's string is compared with the base's, so a long url or
//! title costs a comparison instead of an allocation or cache lookup); the event holds only
//! the values that differ. It is stored whole instead when a field the base has is missing,
//! null or unparseable on its line, or when more than [`dpl_core::SHARE_MAX_OWN`] values
//! differ. Either way it reads exactly as if decoded alone (a test checks every event of
//! generated objects both ways). A heartbeat repeats all but about eight of its page view's
//! hundred-odd values, so this spares the decoder building them and the sessionizer, which
//! holds open sessions' events stored this way, comparing and dropping them: `dpl bench`
//! went from about 160k to 250k events/s in the sessionize stage and 7-11% faster in the
//! decode stage. The bases are forgotten at the end of each object (and past 65,536
//! visitors in one object), so they hold no more than the object's own events.
//!
//! # Telemetry and API
//!
//! Telemetry (recorded by [`run`] per batch): `dpl_decode_lines_total`,
//! `dpl_decode_bytes_total`, `dpl_decode_events_total{class}`,
//! `dpl_decode_errors_total{reason}`, `dpl_decode_unlisted_custom_total`,
//! `dpl_decode_coerced_total`.
//!
//! Main types: [`DecodeConfig`] (with [`PrivacyConfig`]), [`Decoder`] (one object at a
//! time, shareable via `Arc`), [`run`] (the async stage over channels), [`parse_ts`],
//! [`Error`].
//!
//! ```
//! use std::sync::Arc;
//! use dpl_core::{Class, Field, RawObject};
//! use dpl_decode::{DecodeConfig, Decoder};
//!
//! let decoder = Decoder::new(DecodeConfig::default())?;
//! let line = r#"{"action":"pageview","apikey":"a.com","event_id":"e1","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00"}"#;
//! let object = RawObject { id: 0, key: Arc::from("events/2016/08/01/x"), bytes: format!("{line}\n\n").into() };
//! let mut batches = Vec::new();
//! decoder.decode_object(&object, &mut |b| batches.push(b));
//! assert_eq!(batches.len(), 1);
//! assert!(batches[0].last);
//! assert_eq!(batches[0].stats.lines, 2);
//! assert_eq!(batches[0].events[0].class, Class::Pageview);
//! assert_eq!(batches[0].events[0].str(Field::Apikey), Some("a.com"));
//! # Ok::<(), dpl_decode::Error>(())
//! ```

mod coerce;
mod config;
mod decoder;
mod error;
mod intern;
mod json;
mod privacy;
mod run;
mod telemetry;
mod ts;

#[cfg(test)]
mod privacy_tests;
#[cfg(test)]
mod tests;

pub use config::DecodeConfig;
pub use decoder::{Decoder, MAX_LINE_BYTES, MAX_RAW_BYTES, WITHHELD_RAW};
pub use error::Error;
pub use privacy::{IpMode, MIN_SALT_BYTES, PrivacyConfig, Secret, UserAgentMode};
pub use run::run;
pub use ts::parse_ts;
