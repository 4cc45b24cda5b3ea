//! The sessionizer as one value: the gate, the shards and the content totals, run one after
//! the other on the caller's thread ([`crate::run`] runs the same parts on threads).

use std::collections::BTreeMap;
use std::sync::Arc;

use dpl_core::{DecodedBatch, Event, RowBatch, Schema, Table};

use crate::checkpoint::{Checkpoint, State};
use crate::config::{SessionizeConfig, Settings};
use crate::content::ContentState;
use crate::derive::{Derive, HashMap, Key};
use crate::emit::Emitter;
use crate::error::Error;
use crate::gate::{Gate, Routed, shard_of};
use crate::shard::{Shard, ShardEnd};
use crate::state::{Totals, User, users_bytes};

/// Counters of one run.
#[derive(Clone, Debug, Default)]
pub struct SessionizeStats {
    /// Events dropped as copies of an event seen within `dedupe_window`.
    pub duplicates: u64,
    /// Activity events that arrived later than `allowed_lateness` (sessionized at run end).
    pub stragglers: u64,
    /// Late sessions built from stragglers.
    pub late_sessions: u64,
    /// Primary keys withdrawn: rows an earlier run emitted for sessions then open, whose
    /// keys the sessions no longer have (sessions, orphan pageview and videoview rows).
    pub withdrawn: u64,
    /// Straggler events dated before the visitor's `daily_retention_days` (not loaded into
    /// `parsely_user_daily`).
    pub user_daily_too_old: u64,
    /// Rows emitted per table.
    pub rows: BTreeMap<Table, u64>,
    /// Sessions still open at run end (emitted as they stand, kept in the checkpoint).
    pub open_sessions: u64,
    /// Visitors known to the state at run end.
    pub users: u64,
    /// Estimated bytes of the state kept between runs (users, content, campaigns, open
    /// sessions, dedupe ids).
    pub state_bytes: u64,
}

/// The content part: totals plus the row builder of the run-end content rows.
pub(crate) struct Content {
    pub(crate) state: ContentState,
    d: Derive,
    em: Emitter,
}

impl Content {
    fn new(
        config: &SessionizeConfig,
        schema: Arc<Schema>,
        state: ContentState,
    ) -> Result<Content, Error> {
        let d = Derive::new(config, schema)?;
        let em = Emitter::new(|t| d.width(t), config.batch_rows);
        Ok(Content { state, d, em })
    }

    /// Emits the run-end content and campaign rows and flushes them.
    pub(crate) fn finish(&mut self, out: &mut dyn FnMut(RowBatch)) {
        self.state.emit_run_end(&self.d, &mut self.em, out);
        self.em.flush(out);
    }
}

/// The stateful sessionizer of one run (SPEC.md sections 2 to 5). See the crate docs.
pub struct Sessionizer {
    pub(crate) gate: Gate,
    pub(crate) shards: Vec<Shard>,
    pub(crate) content: Content,
    pub(crate) settings: Settings,
    routed: Vec<Routed>,
}

impl Sessionizer {
    /// `checkpoint` is the state the previous run left (None on a first run).
    pub fn new(
        config: SessionizeConfig,
        schema: Arc<Schema>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Sessionizer, Error> {
        Sessionizer::sharded(config, schema, checkpoint, 1)
    }

    /// [`Sessionizer::new`] with the visitors split over `shards` shards by a hash of
    /// `(apikey, visitor_site_id)` (at least 1). [`crate::run`] runs each shard on its own
    /// thread; [`Sessionizer::push`] runs them one after the other. The rows are the same
    /// whatever the number of shards (their order is not), and so is the checkpoint, which
    /// any number of shards can load.
    pub fn sharded(
        config: SessionizeConfig,
        schema: Arc<Schema>,
        checkpoint: Option<Checkpoint>,
        shards: usize,
    ) -> Result<Sessionizer, Error> {
        config.validate()?;
        let n = shards.max(1);
        let settings = Settings::of(&config, &schema);
        let micros = |d: jiff::SignedDuration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let mut gate = Gate::new(
            micros(config.dedupe_window),
            micros(config.allowed_lateness),
        );
        let mut parts = (0..n)
            .map(|_| Shard::new(&config, schema.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut content = ContentState::new(Default::default());
        if let Some(ck) = checkpoint {
            let state = ck.into_state();
            if let Some((setting, old, new)) = state.settings.changed(&settings) {
                return Err(Error::SettingChanged { setting, old, new });
            }
            gate.watermark = state.watermark;
            gate.dedupe.set_max(state.dedupe_max);
            gate.dedupe.restore(state.dedupe);
            gate.dedupe.set_max(state.dedupe_max);
            let (users, totals) = (state.totals.users, state.totals.content);
            content = ContentState::new(totals);
            // The shard of each visitor with open events, for its prior keys.
            let mut shard_of_avid: HashMap<Key, usize> = HashMap::default();
            for ev in state.open {
                let s = shard_of(ev.apikey(), ev.visitor_site_id(), n);
                if let Some(part) = parts.get_mut(s) {
                    shard_of_avid.insert(part.load_open(ev), s);
                }
            }
            for (avid, user) in users {
                let s = shard_of(&user.apikey, &user.visitor_site_id, n);
                shard_of_avid.entry(avid.clone()).or_insert(s);
                if let Some(part) = parts.get_mut(s) {
                    part.load_user(avid, user);
                }
            }
            for (avid, prior) in state.priors {
                let s = shard_of_avid.get(&avid).copied().unwrap_or(0);
                if let Some(part) = parts.get_mut(s) {
                    part.load_prior(avid, prior);
                }
            }
            for part in &mut parts {
                part.set_watermark(state.watermark);
            }
        }
        let content = Content::new(&config, schema, content)?;
        Ok(Sessionizer {
            gate,
            shards: parts,
            content,
            settings,
            routed: (0..n).map(|_| Routed::default()).collect(),
        })
    }

    /// Feeds decoded batches in arrival order (object, seq). Emits rows as they become final
    /// (bots and errors at once; a session's rows when the session is final).
    pub fn push(&mut self, batch: DecodedBatch, out: &mut dyn FnMut(RowBatch)) {
        self.gate.route(batch, &mut self.routed);
        for (shard, routed) in self.shards.iter_mut().zip(&mut self.routed) {
            shard.process(routed, out);
            self.content.state.fold(shard.take_delta(), false);
        }
    }

    /// Event ids remembered for dedupe now.
    #[cfg(test)]
    pub(crate) fn dedupe_len(&self) -> usize {
        self.gate.dedupe.len()
    }

    /// End of run: emits still-open sessions as they stand, sessionizes the stragglers into
    /// late sessions, emits the users, user_daily, content and campaign rows of every key
    /// touched in this run, and returns the state for the next run.
    pub fn finish(
        mut self,
        run_id: &str,
        out: &mut dyn FnMut(RowBatch),
    ) -> (Checkpoint, SessionizeStats) {
        for shard in &mut self.shards {
            let overlay = shard.finish_open(out);
            self.content.state.fold(overlay, true);
        }
        for shard in &mut self.shards {
            let late = shard.finish_late(out);
            self.content.state.fold(late, false);
        }
        self.content.finish(out);
        let ends = self.shards.into_iter().map(Shard::into_end).collect();
        end_of_run(run_id, self.settings, self.gate, ends, self.content)
    }

    /// The parts, for the threaded stage.
    pub(crate) fn into_parts(self) -> (Gate, Vec<Shard>, Content, Settings) {
        (self.gate, self.shards, self.content, self.settings)
    }
}

/// Assembles the checkpoint (the same bytes whatever the number of shards) and the run's
/// counters from the parts.
pub(crate) fn end_of_run(
    run_id: &str,
    settings: Settings,
    mut gate: Gate,
    ends: Vec<ShardEnd>,
    content: Content,
) -> (Checkpoint, SessionizeStats) {
    gate.dedupe.evict();
    let mut stats = SessionizeStats {
        duplicates: gate.duplicates,
        stragglers: gate.stragglers,
        rows: content.em.rows.clone(),
        ..SessionizeStats::default()
    };
    // Each collection is sized once (or taken whole from a lone shard): at the end of a
    // run they hold every user, open visitor and remembered id, and growing them by
    // doubling copied and freshly faulted in several times their final size.
    let mut visitors: Vec<Vec<Event>> = Vec::with_capacity(ends.iter().map(|e| e.open.len()).sum());
    let mut priors = Vec::with_capacity(ends.iter().map(|e| e.priors.len()).sum());
    let mut users: HashMap<Key, User> = HashMap::default();
    let mut open_bytes = 0;
    for end in ends {
        stats.late_sessions += end.stats.late_sessions;
        stats.withdrawn += end.stats.withdrawn;
        stats.user_daily_too_old += end.stats.user_daily_too_old;
        stats.open_sessions += end.stats.open_sessions;
        stats.users += end.visitors;
        for (t, n) in end.rows {
            *stats.rows.entry(t).or_default() += n;
        }
        open_bytes += end.open_bytes;
        visitors.extend(end.open);
        priors.extend(end.priors);
        if users.is_empty() {
            users = end.users;
        } else {
            users.extend(end.users);
        }
    }
    // By visitor, each visitor's events already in `(ts_action, event_id)` order: the same
    // order as sorting every event by `(visitor_site_id, apikey, ts_action, event_id)`, for
    // the cost of sorting the visitors.
    fn visitor(events: &[Event]) -> Option<(&str, &str)> {
        events.first().map(|e| (e.visitor_site_id(), e.apikey()))
    }
    visitors.sort_by(|a, b| visitor(a).cmp(&visitor(b)));
    let mut open: Vec<Event> = Vec::with_capacity(visitors.iter().map(Vec::len).sum());
    visitors.into_iter().for_each(|v| open.extend(v));
    priors.sort_by(|a, b| a.0.cmp(&b.0));
    let dedupe = gate.dedupe.entries();
    let totals = content.state.totals;
    stats.state_bytes =
        (users_bytes(&users) + totals.bytes() + gate.dedupe.bytes()) as u64 + open_bytes;
    let state = State {
        settings,
        watermark: gate.watermark,
        dedupe_max: gate.dedupe.max(),
        dedupe,
        open,
        priors,
        totals: Totals {
            users,
            content: totals,
        },
    };
    (Checkpoint::new(run_id, state), stats)
}
