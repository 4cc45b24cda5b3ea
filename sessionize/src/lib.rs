//! The stateful sessionizer and user tracker (SPEC.md sections 2 to 5).
//!
//! [`Sessionizer`] takes decoded events in arrival order and produces the rows of every
//! table of the star schema: it drops duplicates, routes bots and errors, builds sessions
//! per visitor by idle gap in event time, attributes heartbeats and video heartbeats, tracks
//! users, content and campaigns, and keeps what the next run needs in a [`Checkpoint`].
//! [`run`] is the pipeline stage around it (reorder buffer, blocking threads, channels).
//!
//! It does not decode (`dpl-decode`), load or replace rows by key (`dpl-sink`), or decide
//! which objects a run reads (the binary).
//!
//! # How it works
//! - Three parts. The gate takes the decisions that need arrival order over all visitors
//!   (dedupe, the watermark, stragglers). Shards own the visitors (split by a fixed hash of
//!   `(apikey, visitor_site_id)`): open sessions, records, withdrawable keys, and every
//!   event-grain, session, user and user_daily row. The content part folds the post, video
//!   and campaign deltas the shards send (sums, minima, maxima and the latest by
//!   `(ts_action, event_id)`: the order of folding does not matter) and emits their rows at
//!   the run end. [`Sessionizer::sharded`] sets the number of shards; [`run`] gives each
//!   its thread, with a router and a collector that keep the output order a function of the
//!   input (see `stage.rs`). The rows, and the checkpoint byte for byte, are the same for
//!   any number of shards, and a checkpoint loads into any number of shards.
//! - Dedupe: ids are kept exactly (a map id to `ts_action`; an id in the canonical UUID form
//!   as its 128 bits, any other as its text) and count while their `ts_action` is within
//!   `dedupe_window` of the largest seen; ids out of the window are swept from memory each
//!   time the window moves on by an eighth of itself, within a run as across runs.
//! - Watermark: the largest `ts_action` of the activity events so far, across runs. An
//!   activity event more than `allowed_lateness` behind it is a straggler, kept for the run
//!   end; every other event joins its visitor's open events (sorted by `ts_action`, then
//!   `event_id`), where it may extend, fill or bridge open sessions. A visitor's earliest
//!   open session is final once the watermark passes its last event by `idle_timeout` plus
//!   `allowed_lateness` (a `BTreeSet` of visitor deadlines, checked after every event, so the
//!   output does not depend on batch sizes); then its rows are emitted and it is folded into
//!   the user, content and campaign totals.
//! - Run end ([`Sessionizer::finish`]): open sessions are emitted as they stand (each seeing
//!   the visitor's earlier open sessions) and kept; stragglers become late sessions, folded
//!   into the totals; then the users, user_daily, post/video content and campaign rows of
//!   every key touched in the run are emitted in key order, including the open sessions'
//!   contributions, which the checkpoint does not hold (the next run adds them once, when
//!   the sessions are final).
//! - Withdrawals: the checkpoint remembers, per visitor with open sessions, the keys those
//!   sessions were emitted under that can vanish (session keys, and the event ids of orphan
//!   pageview and videoview rows). A later run that extends, bridges or moves those sessions
//!   emits them again; once it has emitted every one of their events again (a final session
//!   reaches the latest of them, or the run ends), the remembered keys it did not emit again
//!   are sent as [`dpl_core::RowBatch::withdrawals`] at the run end, so the sinks delete
//!   those rows in the load transaction. A key the same run emits as a row is never
//!   withdrawn.
//! - Settings: the checkpoint records `idle_timeout`, `allowed_lateness`, `dedupe_window`,
//!   `timezone`, `loyalty_pageviews`, `rolling_loyalty_pageviews`, `rolling_window_days`,
//!   `daily_retention_days` and the extra-data column; a run started with another value of
//!   any of them fails with [`Error::SettingChanged`] naming the setting, both values and
//!   the way out (keep the old value, or reload from an empty state dir).
//!
//! # Choices where SPEC.md is silent
//! - Dedupe compares against the largest `ts_action` of the events kept before (activity and
//!   bots). A copy arriving after its first copy left the window (a key conflict) is taken
//!   as a new event, within a run as across runs, since remembering every id of a run would
//!   not be bounded: its rows repeat a primary key, and the sinks keep the first staged row
//!   per key within a run (the on-time copy is emitted first: the later copy, being late, is
//!   a straggler emitted at the run end) and count the other, while across runs the later
//!   run's row replaces the earlier one. Its contribution to the user, content, campaign and
//!   daily totals is counted, as for copies across runs.
//! - User-at-the-time: "pageviews before" is the visitor's lifetime total when the session
//!   is folded less the kept pageview times at or after its start (pageviews of late
//!   sessions of earlier runs dated after it), and the rolling count uses the kept pageview
//!   times in `[start - rolling_window_days, start)`.
//! - A session counts for a campaign when its first event carries it (custom events
//!   included); a campaign is a row once a standard event carries it.
//! - `user_daily_too_old` counts the straggler events whose local day is past the visitor's
//!   kept days (`daily_retention_days` behind the visitor's latest day).
//! - A session emitted open whose start later moves earlier (an on-time event lands before
//!   it) or that merges with another is re-emitted under the new key and its old key is
//!   withdrawn (see Withdrawals above); the same for an orphan row whose view arrives later
//!   or whose first beat changes.
//!
//! # State size
//! Measured by `benches/sessionize.rs` (1 million visitors with one session each, then 100k
//! open sessions of 4 events; [`SessionizeStats::state_bytes`] is the in-memory estimate):
//! - a known visitor: about 560 bytes in memory (record, key, kept days and pageview
//!   times, hash slot) and about 130 bytes in the checkpoint;
//! - an open event: its non-null fields only, and of those only the ones that differ from
//!   a *base* event of its visitor (one of the visitor's two latest events that did not
//!   share: typically the page view or video start a heartbeat belongs to; see
//!   `Event::share`). A heartbeat repeating a hundred-odd values of its page view then takes
//!   a few hundred bytes instead of several kilobytes; the bases are held once. The
//!   checkpoint stores every event whole (non-null fields, texts inline: 1 to 3 KB each for
//!   real events with long URLs and metadata), its withdrawable keys included (about 100
//!   bytes per visitor with open sessions plus 40 per orphan row);
//! - a remembered event id (dedupe): about 40 bytes in memory for a UUID id (more for
//!   others: the text is kept) and 33 in the checkpoint, for every event of the last
//!   `dedupe_window` (48 h).
//!
//! # Speed
//! Per event the hot path hashes the visitor as `(apikey, visitor_site_id)` (foldhash, no
//! md5) and computes `apikey_visitor_id` once per visitor. A session's rows are built from
//! keys computed once per distinct input: a per-session key cache compares an event's recipe
//! fields with those already hashed in the session (so the heartbeats of a page view reuse
//! its `pageview_key`, and the session's events share `parsely_session_id` and `utm_id`),
//! the session key is one shared value for all the session's rows, and the session row reuses
//! the visitor and first-event keys; md5 input is formed on the stack and hashed in one call.
//! Attribution uses sorted indexes instead of per-session maps, scratch vectors are reused
//! from session to session, content records are observed only at the first and last event of
//! each run of sightings, static labels are shared values, and local times come from a
//! precomputed table of the zone's offsets (1970 to 2100, jiff outside it). The run-end
//! checkpoint gets the dedupe ids already in order. Measured on a decoded generated day
//! (`dpl_gen`, 50,000 lines, the `cargo bench -p dpl-sessionize` input) under valgrind: 451
//! million instructions against 546 million before, building the sessions 153 against 246
//! million. On one core of the shared 2-core machine (200,000 generated events, decoded and
//! sessionized object by object, thread CPU time) the sessionizer does 160-195k events/s,
//! 3.2 to 3.5 times the decoder, against 2.9 to 3.1 before; `dpl bench` varies more with
//! the machine's load and its first-touch page faults. The rest of the time is outside
//! session building: storing each event compactly against its visitor's base (bought for
//! memory: a 5-million-event day peaks at 1.8 GiB instead of 4.8; the decoder now stores
//! most heartbeats so as it reads them, so the sessionizer compares only the rest), dropping
//! the events, inserting each event into its visitor's open events (appended without a
//! search when it is the latest; the deadline set is touched only when a deadline moves
//! earlier or comes due), dedupe (one hash map lookup) and the md5 of the keys that do
//! differ. With the decoder's sharing and those changes, the criterion bench went from
//! 248-252k to 500-550k events/s (see `docs/performance.md`). Texts of up to 22 bytes,
//! about 70% of an event's, are held inline in the value (`dpl_core::Value::Short`), so
//! comparing, copying and dropping them touches no shared string: the criterion bench on
//! mimalloc went from 162-178k to 184-211k events/s.
//! Keys the sessionizer keeps (visitor, post, video, campaign) are made from either form.
//!
//! So the state is bounded by one record per known visitor, post, video and campaign plus
//! the events of the last `idle_timeout + allowed_lateness` (open sessions) and the ids of
//! the last `dedupe_window`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use dpl_core::Schema;
//! use dpl_sessionize::{Checkpoint, SessionizeConfig, Sessionizer};
//!
//! # fn main() -> Result<(), dpl_sessionize::Error> {
//! let path = std::path::Path::new("state/sessionize.ckpt");
//! let previous = Checkpoint::load(path)?;
//! let mut s = Sessionizer::new(SessionizeConfig::default(), Arc::new(Schema::default()), previous)?;
//! // s.push(batch, &mut |rows| ...) for every decoded batch in arrival order, then:
//! let (checkpoint, stats) = s.finish("run-1", &mut |rows| println!("{} rows", rows.len()));
//! checkpoint.save(path)?;
//! println!("{} duplicates", stats.duplicates);
//! # Ok(())
//! # }
//! ```

mod checkpoint;
mod config;
mod content;
mod dedupe;
mod derive;
mod emit;
mod error;
mod gate;
#[cfg(test)]
mod reference;
mod rows;
mod ser;
mod session;
mod sessionizer;
mod shard;
mod stage;
mod state;
#[cfg(test)]
mod tests;

pub use checkpoint::Checkpoint;
pub use config::SessionizeConfig;
pub use error::Error;
pub use sessionizer::{SessionizeStats, Sessionizer};
pub use stage::run;
