//! The run loop: dedupe, routing, on-time sessions by watermark, stragglers, run end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dpl_core::{Class, DecodedBatch, Event, Field, RowBatch, Schema, Table, Value};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, State};
use crate::config::{SessionizeConfig, Settings};
use crate::dedupe::Dedupe;
use crate::derive::{Derive, HashMap, HashSet, Key, MICROS_PER_DAY};
use crate::emit::Emitter;
use crate::error::Error;
use crate::rows::{CampaignFacts, PostContentFacts, UserDailyFacts, UserFacts, VideoContentFacts};
use crate::session::{UserBefore, build_session};
use crate::state::{Contribution, DayCounts, Totals, User, Windows, apply_user};

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

/// The keys a visitor's open sessions were emitted under at the end of an earlier run, not
/// yet emitted again.
///
/// The open sessions' events stay together (adding events never splits a session), and a
/// visitor's sessions become final in time order, so once a final session reaches the latest
/// of those events (`last_ts`, `last_id`), every one of them has been emitted again: the keys
/// still here then no longer exist and are withdrawn.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Prior {
    last_ts: i64,
    last_id: Arc<str>,
    /// `(table, key)` not emitted again yet; the table is one of sessions, pageviews,
    /// videoviews.
    keys: Vec<(u8, Key)>,
}

/// The tables whose keys can vanish, by their index in [`Prior::keys`].
const WITHDRAWABLE: [Table; 3] = [Table::Sessions, Table::Pageviews, Table::Videoviews];

fn table_code(t: Table) -> u8 {
    match t {
        Table::Sessions => 0,
        Table::Pageviews => 1,
        _ => 2,
    }
}

/// A visitor as the event has it: `(apikey, visitor_site_id)` (hashing two shared strings
/// is cheaper than the md5 of `apikey_visitor_id` for every event).
type VisitorKey = (Arc<str>, Arc<str>);

fn visitor_key(ev: &Event) -> VisitorKey {
    let text = |f| match ev.get(f) {
        Value::Text(s) => s.clone(),
        _ => Arc::from(""),
    };
    (text(Field::Apikey), text(Field::VisitorSiteId))
}

/// A visitor's open (not yet final) events, sorted by `(ts_action, event_id)`.
struct Visitor {
    /// `apikey_visitor_id`, computed once.
    avid: Key,
    events: Vec<Event>,
    /// Index of the last event of the first (earliest) open session.
    first_end: usize,
    /// When the first open session becomes final: its last `ts_action` + idle + lateness.
    deadline: i64,
}

/// Run-wide keys of the run-end tables touched in this run.
#[derive(Default)]
struct Touched {
    users: HashSet<Key>,
    days: HashSet<(Key, i32)>,
    posts: HashSet<Arc<str>>,
    videos: HashSet<Arc<str>>,
    campaigns: HashSet<Key>,
    /// Touched days that fell out of retention during the run: their last counts.
    evicted_days: HashMap<(Key, i32), DayCounts>,
}

impl Touched {
    fn mark(&mut self, c: &Contribution) {
        self.users.insert(c.avid.clone());
        for &day in c.days.keys() {
            self.days.insert((c.avid.clone(), day));
        }
        self.posts.extend(c.posts.keys().cloned());
        self.videos.extend(c.videos.keys().cloned());
        self.campaigns.extend(c.campaigns.keys().cloned());
    }
}

/// The stateful sessionizer of one run (SPEC.md sections 2 to 5). See the crate docs.
pub struct Sessionizer {
    d: Derive,
    idle: i64,
    lateness: i64,
    windows: Windows,
    dedupe: Dedupe,
    /// Largest `ts_action` of the activity events so far (across runs); `i64::MIN` if none.
    watermark: i64,
    visitors: HashMap<VisitorKey, Visitor>,
    /// `(deadline, visitor)` of every visitor with open events.
    deadlines: BTreeSet<(i64, VisitorKey)>,
    stragglers: Vec<Event>,
    totals: Totals,
    /// Keys of the open sessions of earlier runs, per visitor, not emitted again yet.
    priors: HashMap<Key, Prior>,
    /// Keys to withdraw at the end of the run (none of them emitted as a row in this run).
    withdraw: BTreeSet<(Table, Key)>,
    settings: Settings,
    touched: Touched,
    em: Emitter,
    stats: SessionizeStats,
}

fn micros(d: jiff::SignedDuration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Sessionizer {
    /// `checkpoint` is the state the previous run left (None on a first run).
    pub fn new(
        config: SessionizeConfig,
        schema: Arc<Schema>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Sessionizer, Error> {
        config.validate()?;
        let settings = Settings::of(&config, &schema);
        let d = Derive::new(&config, schema)?;
        let em = Emitter::new(|t| d.width(t), config.batch_rows);
        let windows = Windows {
            retention_days: config.daily_retention_days,
            rolling_micros: config.rolling_window_days.saturating_mul(MICROS_PER_DAY),
        };
        let mut s = Sessionizer {
            idle: micros(config.idle_timeout),
            lateness: micros(config.allowed_lateness),
            dedupe: Dedupe::new(micros(config.dedupe_window)),
            windows,
            d,
            watermark: i64::MIN,
            visitors: HashMap::default(),
            deadlines: BTreeSet::new(),
            stragglers: Vec::new(),
            totals: Totals::default(),
            priors: HashMap::default(),
            withdraw: BTreeSet::new(),
            settings,
            touched: Touched::default(),
            em,
            stats: SessionizeStats::default(),
        };
        if let Some(ck) = checkpoint {
            let state = ck.into_state();
            if let Some((setting, old, new)) = state.settings.changed(&s.settings) {
                return Err(Error::SettingChanged { setting, old, new });
            }
            s.watermark = state.watermark;
            s.dedupe.set_max(state.dedupe_max);
            for (id, ts) in state.dedupe {
                s.dedupe.register(id, ts);
            }
            s.dedupe.set_max(state.dedupe_max);
            s.totals = state.totals;
            s.priors = state.priors.into_iter().collect();
            for ev in state.open {
                s.insert_open(ev);
            }
        }
        Ok(s)
    }

    /// Feeds decoded batches in arrival order (object, seq). Emits rows as they become final
    /// (bots and errors at once; a session's rows when the session is final).
    pub fn push(&mut self, batch: DecodedBatch, out: &mut dyn FnMut(RowBatch)) {
        for e in &batch.errors {
            let d = &self.d;
            self.em.row(Table::Errors, out, |buf| d.push_error(e, buf));
        }
        for ev in batch.events {
            self.push_event(ev, out);
        }
        self.dedupe.evict();
    }

    fn push_event(&mut self, ev: Event, out: &mut dyn FnMut(RowBatch)) {
        if self.dedupe.is_duplicate(ev.event_id()) {
            self.stats.duplicates += 1;
            return;
        }
        let id = match ev.get(Field::EventId) {
            Value::Text(id) => id.clone(),
            _ => Arc::from(ev.event_id()),
        };
        self.dedupe.register(id, ev.ts_action());
        if ev.class == Class::Bot {
            let d = &self.d;
            self.em
                .row(Table::BotTraffic, out, |buf| d.push_bot(&ev, buf));
            return;
        }
        let ts = ev.ts_action();
        if ts < self.watermark.saturating_sub(self.lateness) {
            self.stats.stragglers += 1;
            self.stragglers.push(ev);
            return;
        }
        self.watermark = self.watermark.max(ts);
        self.insert_open(ev);
        self.finalize_ready(out);
    }

    /// Inserts an on-time event among its visitor's open events and updates the deadline.
    fn insert_open(&mut self, ev: Event) {
        let vk = visitor_key(&ev);
        let v = self.visitors.entry(vk.clone()).or_insert_with(|| Visitor {
            avid: Derive::apikey_visitor_id(&ev),
            events: Vec::new(),
            first_end: 0,
            deadline: 0,
        });
        let pos = v.events.partition_point(|e| e.time_key() <= ev.time_key());
        v.events.insert(pos, ev);
        let was_empty = v.events.len() == 1;
        if was_empty {
            v.first_end = 0;
        } else if pos <= v.first_end + 1 {
            // Events before `pos` keep their gaps; rescan from the one before it (or from the
            // start when the event went first).
            v.first_end = first_cluster_end(&v.events, pos.saturating_sub(1), self.idle);
        }
        let deadline = v
            .events
            .get(v.first_end)
            .map_or(i64::MAX, |e| e.ts_action())
            .saturating_add(self.idle)
            .saturating_add(self.lateness);
        if was_empty || deadline != v.deadline {
            if !was_empty {
                self.deadlines.remove(&(v.deadline, vk.clone()));
            }
            v.deadline = deadline;
            self.deadlines.insert((deadline, vk));
        }
    }

    /// Finalizes every open session whose deadline the watermark has passed.
    fn finalize_ready(&mut self, out: &mut dyn FnMut(RowBatch)) {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline >= self.watermark {
                break;
            }
            let Some((_, vk)) = self.deadlines.pop_first() else {
                break;
            };
            let Some(v) = self.visitors.get_mut(&vk) else {
                continue;
            };
            let avid = v.avid.clone();
            let end = v.first_end.min(v.events.len().saturating_sub(1));
            let session: Vec<Event> = v.events.drain(..=end).collect();
            if v.events.is_empty() {
                self.visitors.remove(&vk);
            } else {
                v.first_end = first_cluster_end(&v.events, 0, self.idle);
                v.deadline = v
                    .events
                    .get(v.first_end)
                    .map_or(i64::MAX, |e| e.ts_action())
                    .saturating_add(self.idle)
                    .saturating_add(self.lateness);
                self.deadlines.insert((v.deadline, vk));
            }
            self.finalize_session(&avid, &session, out);
        }
    }

    /// Event ids remembered for dedupe now.
    #[cfg(test)]
    pub(crate) fn dedupe_len(&self) -> usize {
        self.dedupe.len()
    }

    fn user_before(&self, user: Option<&User>, start: i64) -> UserBefore {
        match user {
            Some(u) => UserBefore {
                number: u.on_time_sessions + 1,
                is_new: u.on_time_sessions == 0,
                // Late sessions of earlier runs may hold pageviews after `start`; they are
                // recent, so within the kept pageview times.
                pageviews_before: u
                    .pageviews
                    .saturating_sub(u.pageviews_between(start, i64::MAX)),
                rolling_pageviews_before: u
                    .pageviews_between(start.saturating_sub(self.windows.rolling_micros), start),
            },
            None => UserBefore {
                number: 1,
                is_new: true,
                pageviews_before: 0,
                rolling_pageviews_before: 0,
            },
        }
    }

    fn finalize_session(&mut self, avid: &Key, events: &[Event], out: &mut dyn FnMut(RowBatch)) {
        let Some(start) = events.first().map(Event::ts_action) else {
            return;
        };
        let before = self.user_before(self.totals.users.get(avid), start);
        let c = build_session(&self.d, avid, events, Some(before), &mut self.em, out);
        self.emitted(avid);
        if let Some(p) = self.priors.get(avid)
            && events
                .last()
                .is_some_and(|e| e.time_key() >= (p.last_ts, &*p.last_id))
        {
            self.resolve(avid);
        }
        if let Some(c) = c {
            self.fold(&c);
        }
    }

    /// Accounts for the withdrawable keys of the session just built for `avid`: they are
    /// emitted again, so neither withdrawn by this run nor pending in the visitor's prior.
    fn emitted(&mut self, avid: &Key) {
        emitted(
            &mut self.priors,
            &mut self.withdraw,
            &mut self.em.keys,
            avid,
        );
    }

    /// Every event of the visitor's earlier open sessions has been emitted again: the keys
    /// not emitted again no longer exist.
    fn resolve(&mut self, avid: &Key) {
        if let Some(p) = self.priors.remove(avid) {
            for (code, key) in p.keys {
                if let Some(&table) = WITHDRAWABLE.get(usize::from(code)) {
                    self.withdraw.insert((table, key));
                }
            }
        }
    }

    /// Folds a contribution into the saved totals.
    fn fold(&mut self, c: &Contribution) {
        self.touched.mark(c);
        let applied = self.totals.apply(c, self.windows, None);
        self.stats.user_daily_too_old += applied.too_old;
        for day in applied.evicted {
            let k = (c.avid.clone(), day.day);
            if self.touched.days.contains(&k) {
                self.touched.evicted_days.insert(k, day);
            }
        }
    }

    /// End of run: emits still-open sessions as they stand, sessionizes the stragglers into
    /// late sessions, emits the users, user_daily, content and campaign rows of every key
    /// touched in this run, and returns the state for the next run.
    pub fn finish(
        mut self,
        run_id: &str,
        out: &mut dyn FnMut(RowBatch),
    ) -> (Checkpoint, SessionizeStats) {
        // 1. Open sessions as they stand, each seeing the visitor's earlier open ones.
        let mut open_keys: Vec<(Key, VisitorKey)> = self
            .visitors
            .iter()
            .map(|(vk, v)| (v.avid.clone(), vk.clone()))
            .collect();
        open_keys.sort();
        let mut open_contribs = Vec::new();
        let mut priors = Vec::with_capacity(open_keys.len());
        for (avid, vk) in &open_keys {
            let Some(v) = self.visitors.get(vk) else {
                continue;
            };
            let mut user = self.totals.users.get(avid).cloned();
            let mut prior = Prior::default();
            if let Some(last) = v.events.last() {
                prior.last_ts = last.ts_action();
                prior.last_id = match last.get(Field::EventId) {
                    Value::Text(id) => id.clone(),
                    _ => Arc::from(last.event_id()),
                };
            }
            for session in clusters(&v.events, self.idle) {
                let Some(start) = session.first().map(Event::ts_action) else {
                    continue;
                };
                let before = self.user_before(user.as_ref(), start);
                self.stats.open_sessions += 1;
                let c = build_session(&self.d, avid, session, Some(before), &mut self.em, out);
                prior.keys.extend(
                    self.em
                        .keys
                        .iter()
                        .map(|(t, k)| (table_code(*t), k.clone())),
                );
                emitted(
                    &mut self.priors,
                    &mut self.withdraw,
                    &mut self.em.keys,
                    avid,
                );
                if let Some(c) = c {
                    match user.as_mut() {
                        Some(u) => {
                            apply_user(u, &c, self.windows);
                        }
                        None => user = Some(User::from_contribution(&c, self.windows)),
                    }
                    open_contribs.push(c);
                }
            }
            // Every event of the earlier open sessions was just emitted again.
            self.resolve(avid);
            priors.push((avid.clone(), prior));
        }
        // A visitor whose earlier open events all became final resolved then; none is left.
        let left: Vec<Key> = self.priors.keys().cloned().collect();
        for avid in &left {
            self.resolve(avid);
        }

        // 2. Late sessions from the stragglers, folded into the saved totals.
        let mut late: BTreeMap<Key, Vec<Event>> = BTreeMap::new();
        for ev in std::mem::take(&mut self.stragglers) {
            late.entry(Derive::apikey_visitor_id(&ev))
                .or_default()
                .push(ev);
        }
        for (avid, events) in late.iter_mut() {
            events.sort_by(|a, b| a.time_key().cmp(&b.time_key()));
            let sessions: Vec<&[Event]> = clusters(events, self.idle).collect();
            for session in sessions {
                self.stats.late_sessions += 1;
                let c = build_session(&self.d, avid, session, None, &mut self.em, out);
                self.emitted(avid);
                if let Some(c) = c {
                    self.fold(&c);
                }
            }
        }

        // Withdrawals: keys of earlier open sessions that no row of this run repeats.
        let batch_rows = self.d.config.batch_rows.max(1);
        for table in WITHDRAWABLE {
            let keys: Vec<&Key> = self
                .withdraw
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(_, k)| k)
                .collect();
            for chunk in keys.chunks(batch_rows) {
                let mut batch = RowBatch::withdrawals(table);
                batch
                    .values
                    .extend(chunk.iter().map(|k| Value::Text(Key::clone(k))));
                self.stats.withdrawn += batch.len() as u64;
                out(batch);
            }
        }

        // 3. The run-end view: saved totals plus open sessions (never saved).
        let mut overlay = Totals::default();
        for c in &open_contribs {
            self.touched.mark(c);
            overlay.apply(c, self.windows, Some(&self.totals));
        }
        self.emit_run_end(&overlay, out);
        self.em.flush(out);

        // 4. The state for the next run.
        self.dedupe.evict();
        let mut stats = std::mem::take(&mut self.stats);
        stats.rows = self.em.rows.clone();
        // Visitors with a record, plus those seen only in still-open sessions.
        stats.users = (self.totals.users.len()
            + self
                .visitors
                .values()
                .filter(|v| !self.totals.users.contains_key(&v.avid))
                .count()) as u64;
        let open_bytes: usize = self
            .visitors
            .values()
            .flat_map(|v| v.events.iter())
            .map(event_bytes)
            .sum::<usize>()
            + self.visitors.len() * (std::mem::size_of::<Visitor>() + 32 + 16 + 48);
        stats.state_bytes = (self.totals.bytes() + self.dedupe.bytes() + open_bytes) as u64;
        let mut open: Vec<Event> = self.visitors.into_values().flat_map(|v| v.events).collect();
        open.sort_by(|a, b| {
            (a.visitor_site_id(), a.apikey(), a.time_key()).cmp(&(
                b.visitor_site_id(),
                b.apikey(),
                b.time_key(),
            ))
        });
        let mut dedupe: Vec<(Arc<str>, i64)> = self
            .dedupe
            .entries()
            .map(|(k, ts)| (k.clone(), ts))
            .collect();
        dedupe.sort();
        stats.state_bytes += priors
            .iter()
            .map(|(_, p)| 64 + p.keys.iter().map(|(_, k)| k.len() + 24).sum::<usize>())
            .sum::<usize>() as u64;
        let state = State {
            settings: self.settings,
            watermark: self.watermark,
            dedupe_max: self.dedupe.max(),
            dedupe,
            open,
            priors,
            totals: self.totals,
        };
        (Checkpoint::new(run_id, state), stats)
    }

    fn emit_run_end(&mut self, overlay: &Totals, out: &mut dyn FnMut(RowBatch)) {
        let d = &self.d;
        let em = &mut self.em;
        let base = &self.totals;
        let mut users: Vec<&Key> = self.touched.users.iter().collect();
        users.sort();
        for avid in users {
            let Some(u) = overlay.users.get(avid).or_else(|| base.users.get(avid)) else {
                continue;
            };
            let last_day = d.local_day(u.last_seen);
            let facts = UserFacts {
                apikey_visitor_id: avid,
                apikey: &u.apikey,
                visitor_site_id: &u.visitor_site_id,
                first_seen_ts: u.first_seen,
                last_seen_ts: u.last_seen,
                pageviews: u.pageviews,
                engaged_time: u.engaged_time,
                videoviews: u.videoviews,
                video_engaged_time: u.video_engaged_time,
                sessions: u.sessions,
                custom_events: u.custom_events,
                rolling_pageviews: u.pageviews_of_days(last_day, d.config.rolling_window_days),
                last_extra: u.last_extra.clone(),
            };
            em.row(Table::Users, out, |buf| d.push_user(&facts, buf));
        }
        let mut days: Vec<&(Key, i32)> = self.touched.days.iter().collect();
        days.sort();
        for key in days {
            let (avid, day) = key;
            let counts = overlay
                .users
                .get(avid)
                .or_else(|| base.users.get(avid))
                .and_then(|u| u.days.iter().find(|c| c.day == *day))
                .or_else(|| self.touched.evicted_days.get(key));
            let Some(c) = counts else { continue };
            let facts = UserDailyFacts {
                apikey_visitor_id: avid,
                date: *day,
                pageviews: c.pageviews,
                videoviews: c.videoviews,
                engaged_time: c.engaged_time,
                video_engaged_time: c.video_engaged_time,
                sessions: c.sessions,
            };
            em.row(Table::UserDaily, out, |buf| d.push_user_daily(&facts, buf));
        }
        let mut posts: Vec<&Arc<str>> = self.touched.posts.iter().collect();
        posts.sort();
        for k in posts {
            let Some(p) = overlay.posts.get(k).or_else(|| base.posts.get(k)) else {
                continue;
            };
            let facts = PostContentFacts {
                pageview_post_id: k,
                url: &p.url,
                metadata: &p.meta,
                first_seen_ts: p.first_seen,
                last_seen_ts: p.last_seen,
                pageviews: p.views,
                engaged_time: p.engaged,
            };
            em.row(Table::PostContent, out, |buf| {
                d.push_post_content(&facts, buf)
            });
        }
        let mut videos: Vec<&Arc<str>> = self.touched.videos.iter().collect();
        videos.sort();
        for k in videos {
            let Some(p) = overlay.videos.get(k).or_else(|| base.videos.get(k)) else {
                continue;
            };
            let facts = VideoContentFacts {
                metadata_canonical_url: k,
                url: &p.url,
                metadata: &p.meta,
                first_seen_ts: p.first_seen,
                last_seen_ts: p.last_seen,
                videoviews: p.views,
                video_engaged_time: p.engaged,
            };
            em.row(Table::VideoContent, out, |buf| {
                d.push_video_content(&facts, buf)
            });
        }
        let mut campaigns: Vec<&Key> = self.touched.campaigns.iter().collect();
        campaigns.sort();
        for k in campaigns {
            let Some(c) = overlay.campaigns.get(k).or_else(|| base.campaigns.get(k)) else {
                continue;
            };
            if !c.seen() {
                continue;
            }
            let facts = CampaignFacts {
                utm_id: k,
                apikey: &c.apikey,
                utm: &c.utm,
                campaign_id: &c.campaign_id,
                first_seen_ts: c.first_seen,
                last_seen_ts: c.last_seen,
                pageviews: c.pageviews,
                engaged_time: c.engaged_time,
                videoviews: c.videoviews,
                video_engaged_time: c.video_engaged_time,
                sessions: c.sessions,
            };
            em.row(Table::Campaigns, out, |buf| d.push_campaign(&facts, buf));
        }
    }
}

/// See [`Sessionizer::emitted`] (a function of the fields it needs, for disjoint borrows).
fn emitted(
    priors: &mut HashMap<Key, Prior>,
    withdraw: &mut BTreeSet<(Table, Key)>,
    keys: &mut Vec<(Table, Key)>,
    avid: &Key,
) {
    let mut prior = priors.get_mut(avid);
    if prior.is_none() && withdraw.is_empty() {
        keys.clear();
        return;
    }
    for (table, key) in keys.drain(..) {
        if let Some(p) = prior.as_deref_mut() {
            let code = table_code(table);
            p.keys.retain(|(t, k)| !(*t == code && *k == key));
        }
        if !withdraw.is_empty() {
            withdraw.remove(&(table, key));
        }
    }
}

/// Approximate bytes of an event held in memory.
pub(crate) fn event_bytes(ev: &Event) -> usize {
    std::mem::size_of::<Event>()
        + ev.values.len() * std::mem::size_of::<Value>()
        + ev.values
            .iter()
            .map(crate::state::value_bytes)
            .sum::<usize>()
        + crate::state::value_bytes(&ev.extra)
}

/// Index of the last event of the cluster containing `from` (events sorted; a gap longer
/// than `idle` ends a cluster).
fn first_cluster_end(events: &[Event], from: usize, idle: i64) -> usize {
    let mut j = from;
    while let (Some(a), Some(b)) = (events.get(j), events.get(j + 1)) {
        if b.ts_action().saturating_sub(a.ts_action()) > idle {
            break;
        }
        j += 1;
    }
    j.min(events.len().saturating_sub(1))
}

/// Splits sorted events into sessions by the gap rule.
fn clusters(events: &[Event], idle: i64) -> impl Iterator<Item = &[Event]> {
    events.chunk_by(move |a, b| b.ts_action().saturating_sub(a.ts_action()) <= idle)
}
