//! The stateful sessionizer and user tracker (SPEC.md sections 2 to 5).
//!
//! [`Sessionizer`] takes decoded events in arrival order and produces the rows of every
//! table of the star schema: it drops duplicates, routes bots and errors, builds sessions
//! per visitor by idle gap in event time, attributes heartbeats and video heartbeats, tracks
//! users, content and campaigns, and keeps what the next run needs in a [`Checkpoint`].
//! [`run`] is the pipeline stage around it (reorder buffer, blocking thread, channels).
//!
//! It does not decode (`dpl-decode`), load or replace rows by key (`dpl-sink`), or decide
//! which objects a run reads (the binary).
//!
//! # How it works
//! - Dedupe: ids are kept exactly (a map id to `ts_action` plus a min-heap by time for
//!   eviction) while their `ts_action` is within `dedupe_window` of the largest seen.
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
//!
//! # Choices where SPEC.md is silent
//! - Dedupe compares against the largest `ts_action` of the events kept before (activity and
//!   bots). A copy of an event kept earlier in the same run but out of the window (a key
//!   conflict) is dropped whole, so totals never count it twice; across runs the later
//!   run's row replaces the earlier one in the sink.
//! - User-at-the-time: "pageviews before" is the visitor's lifetime total when the session
//!   is folded less the kept pageview times at or after its start (pageviews of late
//!   sessions of earlier runs dated after it), and the rolling count uses the kept pageview
//!   times in `[start - rolling_window_days, start)`.
//! - A session counts for a campaign when its first event carries it (custom events
//!   included); a campaign is a row once a standard event carries it.
//! - `user_daily_too_old` counts the straggler events whose local day is past the visitor's
//!   kept days (`daily_retention_days` behind the visitor's latest day).
//! - A session emitted open whose start later moves earlier (an on-time event lands before
//!   it) or that merges with another is re-emitted under the new key; the sink keeps the
//!   old row (it has no delete).
//!
//! # State size
//! Measured by `benches/sessionize.rs` (1 million visitors with one session each, then 100k
//! open sessions of 4 events; [`SessionizeStats::state_bytes`] is the in-memory estimate):
//! - a known visitor: about 560 bytes in memory (record, key, kept days and pageview
//!   times, hash slot) and about 130 bytes in the checkpoint;
//! - an open session: about 2.4 KB in memory per event (every raw field is kept until the
//!   session is final) and its non-null fields in the checkpoint (about 115 bytes per event
//!   in the bench; real events with long URLs and metadata take 1 to 2 KB);
//! - a remembered event id (dedupe): about 100 bytes in memory and 33 in the checkpoint,
//!   for every event of the last `dedupe_window` (48 h); ids kept in the current run stay
//!   until it ends, to detect key conflicts.
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
mod dedupe;
mod derive;
mod emit;
mod error;
#[cfg(test)]
mod reference;
mod rows;
mod ser;
mod session;
mod sessionizer;
mod stage;
mod state;
#[cfg(test)]
mod tests;

pub use checkpoint::Checkpoint;
pub use config::SessionizeConfig;
pub use error::Error;
pub use sessionizer::{SessionizeStats, Sessionizer};
pub use stage::run;
