//! A shard: the visitors whose hash falls to it, with their open sessions, records and
//! withdrawable keys. It builds every event-grain, session, user and user_daily row of its
//! visitors; what their sessions add to content and campaigns leaves as a delta.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dpl_core::{
    Event, Field, RecentBases, RowBatch, SHARE_MAX_OWN, Schema, ShortText, Table, Value,
};
use serde::{Deserialize, Serialize};

use crate::config::SessionizeConfig;
use crate::derive::{BotKeys, Derive, HashMap, HashSet, Key, MICROS_PER_DAY};
use crate::emit::Emitter;
use crate::error::Error;
use crate::gate::{Route, Routed};
use crate::rows::{UserDailyFacts, UserFacts};
use crate::session::{UserBefore, build_session};
use crate::state::{ContentTotals, Contribution, DayCounts, User, Windows, apply_user};

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

/// A visitor as the event has it: `(apikey, visitor_site_id)` (hashing two strings is
/// cheaper than the md5 of `apikey_visitor_id` for every event).
type VisitorKey = (TextKey, TextKey);

/// A text value (either form) as a key: hashed, compared and ordered as its text. Taking
/// one from an event copies a short text and shares a long one, never allocates.
#[derive(Clone, Debug)]
struct TextKey(Value);

impl TextKey {
    fn as_str(&self) -> &str {
        self.0.as_str().unwrap_or_default()
    }
}

impl PartialEq for TextKey {
    fn eq(&self, other: &TextKey) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for TextKey {}
impl std::hash::Hash for TextKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}
impl PartialOrd for TextKey {
    fn partial_cmp(&self, other: &TextKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TextKey {
    fn cmp(&self, other: &TextKey) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

fn visitor_key(ev: &Event) -> VisitorKey {
    VisitorRef::of(ev).key()
}

/// A visitor as the event has it, borrowed: looks up a [`VisitorKey`] (hashed and compared
/// alike) without a reference count going up and down for every event.
struct VisitorRef<'a>(&'a Value, &'a Value);

impl<'a> VisitorRef<'a> {
    fn of(ev: &'a Event) -> VisitorRef<'a> {
        VisitorRef(ev.get(Field::Apikey), ev.get(Field::VisitorSiteId))
    }
    fn texts(&self) -> (&'a str, &'a str) {
        (
            self.0.as_str().unwrap_or_default(),
            self.1.as_str().unwrap_or_default(),
        )
    }
    fn key(&self) -> VisitorKey {
        let text = |v: &Value| match v {
            Value::Text(_) | Value::Short(_) => TextKey(v.clone()),
            _ => TextKey(Value::Short(ShortText::default())),
        };
        (text(self.0), text(self.1))
    }
}

impl std::hash::Hash for VisitorRef<'_> {
    /// As the tuple of [`TextKey`]s hashes.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.texts().hash(h);
    }
}

impl hashbrown::Equivalent<VisitorKey> for VisitorRef<'_> {
    fn equivalent(&self, key: &VisitorKey) -> bool {
        self.texts() == (key.0.as_str(), key.1.as_str())
    }
}

/// A visitor's open (not yet final) events, sorted by `(ts_action, event_id)`.
struct Visitor {
    /// `apikey_visitor_id`, computed once.
    avid: Key,
    events: Vec<Event>,
    /// The `ts_action` of the last of `events`: an event later than it (nearly every one)
    /// is appended without reading the last event, which has gone cold since it came.
    last_ts: i64,
    /// Index of the last event of the first (earliest) open session.
    first_end: usize,
    /// When the first open session becomes final: its last `ts_action` + idle + lateness.
    deadline: i64,
    /// The deadline the visitor is filed under in `Shard::deadlines`: at most `deadline`.
    /// An event that only moves the deadline later (nearly every event of a session going
    /// on) leaves the filing alone; when the watermark reaches `due`, the visitor is filed
    /// again under `deadline`. The sessions become final at the same point of the input,
    /// in the same order, as if filed anew for every event.
    due: i64,
    /// The two latest events the visitor's later events are stored against (most recently
    /// used first). See [`Visitor::share`].
    bases: RecentBases,
}

impl Visitor {
    /// `ev` stored as its differences from one of the visitor's bases, or made a base.
    ///
    /// An open session holds its events until it is final, an hour and a half at least, and
    /// nearly all of them are heartbeats repeating a hundred-odd values of their page view
    /// (or video start): stored this way, such an event takes a few hundred bytes instead of
    /// several kilobytes. It reads the same, so nothing downstream can tell.
    ///
    /// The decoder stores most heartbeats so already, and page views and video starts as
    /// bases (`dpl-decode`, within one object): such an event's base becomes the visitor's
    /// most recently used one, for the later events the decoder did not store against it.
    fn share(&mut self, ev: &mut Event) {
        if !ev.is_shared() && !self.bases.iter().any(|b| ev.share(b, SHARE_MAX_OWN)) {
            ev.make_base();
        }
        if let Some(base) = ev.base() {
            self.bases.used(base);
        }
    }
}

/// Keys of the run-end user tables touched in this run.
#[derive(Default)]
struct Touched {
    users: HashSet<Key>,
    days: HashSet<(Key, i32)>,
}

impl Touched {
    fn mark(&mut self, c: &Contribution) {
        self.users.insert(c.avid.clone());
        for &day in c.days.keys() {
            self.days.insert((c.avid.clone(), day));
        }
    }
}

/// Counters of one shard's run.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShardStats {
    pub late_sessions: u64,
    pub withdrawn: u64,
    pub user_daily_too_old: u64,
    pub open_sessions: u64,
}

/// What a shard leaves at the run end: its part of the checkpoint and its counters.
pub(crate) struct ShardEnd {
    /// The open events of each visitor, sorted by `(ts_action, event_id)`.
    pub open: Vec<Vec<Event>>,
    pub priors: Vec<(Key, Prior)>,
    pub users: HashMap<Key, User>,
    pub stats: ShardStats,
    pub rows: BTreeMap<Table, u64>,
    /// Visitors known (with a record, or only in still-open sessions).
    pub visitors: u64,
    /// Estimated bytes of the open events and priors.
    pub open_bytes: u64,
}

fn micros(d: jiff::SignedDuration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// One shard of the sessionizer. See the crate docs.
pub(crate) struct Shard {
    d: Derive,
    idle: i64,
    lateness: i64,
    windows: Windows,
    /// The watermark as the gate last reported it.
    watermark: i64,
    visitors: hashbrown::HashMap<VisitorKey, Visitor, foldhash::fast::RandomState>,
    /// `(due, visitor)` of every visitor with open events (see `Visitor::due`).
    deadlines: BTreeSet<(i64, VisitorKey)>,
    stragglers: Vec<Event>,
    users: HashMap<Key, User>,
    /// Keys of the open sessions of earlier runs, per visitor, not emitted again yet.
    priors: HashMap<Key, Prior>,
    /// Keys to withdraw at the end of the run (none of them emitted as a row in this run).
    withdraw: BTreeSet<(Table, Key)>,
    touched: Touched,
    /// What this shard's sessions added to content and campaigns since the last take.
    delta: ContentTotals,
    /// Contributions of the sessions still open at the run end (user part).
    open_contribs: Vec<Contribution>,
    /// The priors of the visitors with open sessions at the run end.
    end_priors: Vec<(Key, Prior)>,
    em: Emitter,
    bot_keys: BotKeys,
    stats: ShardStats,
}

impl Shard {
    pub(crate) fn new(config: &SessionizeConfig, schema: Arc<Schema>) -> Result<Shard, Error> {
        let d = Derive::new(config, schema)?;
        let em = Emitter::new(|t| d.width(t), config.batch_rows);
        Ok(Shard {
            idle: micros(config.idle_timeout),
            lateness: micros(config.allowed_lateness),
            windows: Windows {
                retention_days: config.daily_retention_days,
                rolling_micros: config.rolling_window_days.saturating_mul(MICROS_PER_DAY),
            },
            d,
            watermark: i64::MIN,
            visitors: hashbrown::HashMap::default(),
            deadlines: BTreeSet::new(),
            stragglers: Vec::new(),
            users: HashMap::default(),
            priors: HashMap::default(),
            withdraw: BTreeSet::new(),
            touched: Touched::default(),
            delta: ContentTotals::default(),
            open_contribs: Vec::new(),
            end_priors: Vec::new(),
            em,
            bot_keys: BotKeys::default(),
            stats: ShardStats::default(),
        })
    }

    /// Restores a visitor record of the checkpoint.
    pub(crate) fn load_user(&mut self, avid: Key, user: User) {
        self.users.insert(avid, user);
    }

    /// Restores a visitor's prior keys of the checkpoint.
    pub(crate) fn load_prior(&mut self, avid: Key, prior: Prior) {
        self.priors.insert(avid, prior);
    }

    /// Restores an open event of the checkpoint; returns its visitor's `apikey_visitor_id`.
    pub(crate) fn load_open(&mut self, ev: Event) -> Key {
        self.insert_open(ev, |v| v.avid.clone())
    }

    pub(crate) fn set_watermark(&mut self, watermark: i64) {
        self.watermark = watermark;
    }

    /// Processes one routed batch: error and bot rows at once, on-time events into their
    /// visitor's open sessions (emitting those the watermark makes final), stragglers kept
    /// for the run end.
    ///
    /// Takes the errors, events and routes out of `r`, leaving it empty with its capacity.
    pub(crate) fn process(&mut self, r: &mut Routed, out: &mut dyn FnMut(RowBatch)) {
        for e in r.errors.drain(..) {
            let d = &self.d;
            self.em.row(Table::Errors, out, |buf| d.push_error(&e, buf));
        }
        for (ev, route) in r.events.drain(..).zip(r.routes.drain(..)) {
            match route {
                Route::Bot => {
                    let d = &self.d;
                    let keys = self.bot_keys.of(&ev);
                    self.em.row(Table::BotTraffic, out, |buf| {
                        d.push_bot_keyed(&ev, keys, buf)
                    });
                }
                Route::Straggler => self.stragglers.push(ev),
                Route::OnTime(watermark) => {
                    self.watermark = watermark;
                    self.insert_open(ev, |_| ());
                    self.finalize_ready(out);
                }
            }
        }
        if r.watermark != self.watermark {
            self.watermark = r.watermark;
            self.finalize_ready(out);
        }
    }

    /// What this shard's sessions added to content and campaigns since the last call.
    pub(crate) fn take_delta(&mut self) -> ContentTotals {
        std::mem::take(&mut self.delta)
    }

    /// Inserts an on-time event among its visitor's open events and updates the deadline;
    /// returns what `then` makes of the visitor.
    ///
    /// The visitor is looked up by the event's borrowed fields: its key is cloned only for a
    /// new visitor and when it is filed under an earlier deadline. (`then` instead of
    /// returning the visitor: the borrow of a lookup that may insert cannot be returned.)
    fn insert_open<R>(&mut self, mut ev: Event, then: impl FnOnce(&Visitor) -> R) -> R {
        let v = match self.visitors.get_mut(&VisitorRef::of(&ev)) {
            Some(v) => v,
            None => self.visitors.entry(visitor_key(&ev)).or_insert(Visitor {
                avid: Derive::apikey_visitor_id(&ev),
                // A session has about twenty events: growing from one by doubling moved the
                // first ones three times over.
                events: Vec::with_capacity(8),
                last_ts: i64::MIN,
                first_end: 0,
                deadline: 0,
                due: 0,
                bases: RecentBases::default(),
            }),
        };
        v.share(&mut ev);
        // Nearly every event is the visitor's latest so far: appended after the last event
        // without reading it (it has gone cold since it came; `last_ts` is its time).
        let ts = ev.ts_action();
        let (len, last_ts, first_end) = (v.events.len(), v.last_ts, v.first_end);
        let appended = len > 0 && ts > last_ts;
        let pos = match v.events.last() {
            Some(_) if appended => len,
            Some(last) if last.time_key() > ev.time_key() => {
                v.events.partition_point(|e| e.time_key() <= ev.time_key())
            }
            _ => len,
        };
        if pos == len {
            v.last_ts = ts;
        }
        v.events.insert(pos, ev);
        let was_empty = len == 0;
        if was_empty {
            v.first_end = 0;
        } else if appended && pos == first_end + 1 {
            // Appended right after the first session's last event (the visitor's open events
            // were that one session): it goes on, or a new one starts with this event.
            if ts.saturating_sub(last_ts) <= self.idle {
                v.first_end = pos;
            }
        } else if pos <= first_end + 1 {
            // Events before `pos` keep their gaps; rescan from the one before it (or from the
            // start when the event went first).
            v.first_end = first_cluster_end(&v.events, pos.saturating_sub(1), self.idle);
        }
        let deadline = if !was_empty && pos > first_end && v.first_end == first_end {
            // The first session still ends with the same event: its deadline stands.
            v.deadline
        } else {
            let ends_at = if v.first_end == pos {
                ts
            } else {
                v.events
                    .get(v.first_end)
                    .map_or(i64::MAX, |e| e.ts_action())
            };
            session_deadline(ends_at, self.idle, self.lateness)
        };
        // A later deadline leaves the visitor filed under the earlier one (see `due`).
        if was_empty || deadline < v.due {
            let vk = v
                .events
                .get(pos)
                .map_or_else(|| (TextKey(Value::Null), TextKey(Value::Null)), visitor_key);
            if !was_empty {
                self.deadlines.remove(&(v.due, vk.clone()));
            }
            v.due = deadline;
            self.deadlines.insert((deadline, vk));
        }
        v.deadline = deadline;
        then(v)
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
            if v.deadline != v.due {
                // Filed early: the session went on since. Filed again under its deadline
                // (which the loop takes at once if the watermark has passed it too).
                v.due = v.deadline;
                self.deadlines.insert((v.due, vk));
                continue;
            }
            let avid = v.avid.clone();
            let end = v.first_end.min(v.events.len().saturating_sub(1));
            // The visitor's only open session (the usual case) is taken whole, not copied.
            let session: Vec<Event> = if end + 1 >= v.events.len() {
                std::mem::take(&mut v.events)
            } else {
                v.events.drain(..=end).collect()
            };
            if v.events.is_empty() {
                self.visitors.remove(&vk);
            } else {
                v.first_end = first_cluster_end(&v.events, 0, self.idle);
                let ends_at = v
                    .events
                    .get(v.first_end)
                    .map_or(i64::MAX, |e| e.ts_action());
                v.deadline = session_deadline(ends_at, self.idle, self.lateness);
                v.due = v.deadline;
                self.deadlines.insert((v.deadline, vk));
            }
            self.finalize_session(&avid, &session, out);
        }
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
        let before = self.user_before(self.users.get(avid), start);
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
            self.fold(c, out);
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

    /// Folds a final session's contribution into the visitor record; its content part goes
    /// to the delta. A touched day that falls out of retention is final (no later event can
    /// change it): its user_daily row goes out now, so the touched days stay within the
    /// retention window however long the run.
    fn fold(&mut self, mut c: Contribution, out: &mut dyn FnMut(RowBatch)) {
        self.touched.mark(&c);
        self.delta.take_from(&mut c);
        let w = self.windows;
        let user = self
            .users
            .entry(c.avid.clone())
            .or_insert_with(|| User::new(&c));
        let applied = apply_user(user, &c, w);
        self.stats.user_daily_too_old += applied.too_old;
        for day in applied.evicted {
            if self.touched.days.remove(&(c.avid.clone(), day.day)) {
                push_day(&self.d, &mut self.em, out, &c.avid, &day);
            }
        }
    }

    /// Run end, first step: emits the still-open sessions as they stand (each seeing the
    /// visitor's earlier open ones) and keeps them; returns their content part (an overlay:
    /// shown in this run's rows, never saved). Flushes every row buffer, so every on-time
    /// row is out before any late one. Take the delta of the last batch first.
    pub(crate) fn finish_open(&mut self, out: &mut dyn FnMut(RowBatch)) -> ContentTotals {
        let mut overlay = ContentTotals::default();
        let mut open_keys: Vec<(Key, VisitorKey)> = self
            .visitors
            .iter()
            .map(|(vk, v)| (v.avid.clone(), vk.clone()))
            .collect();
        open_keys.sort();
        for (avid, vk) in &open_keys {
            let Some(v) = self.visitors.get(vk) else {
                continue;
            };
            let mut user = self.users.get(avid).cloned();
            let mut prior = Prior::default();
            if let Some(last) = v.events.last() {
                prior.last_ts = last.ts_action();
                prior.last_id = last
                    .arc(Field::EventId)
                    .unwrap_or_else(|| Arc::from(last.event_id()));
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
                if let Some(mut c) = c {
                    match user.as_mut() {
                        Some(u) => {
                            apply_user(u, &c, self.windows);
                        }
                        None => user = Some(User::from_contribution(&c, self.windows)),
                    }
                    overlay.take_from(&mut c);
                    self.open_contribs.push(c);
                }
            }
            // Every event of the earlier open sessions was just emitted again.
            self.resolve(avid);
            self.end_priors.push((avid.clone(), prior));
        }
        // A visitor whose earlier open events all became final resolved then; none is left.
        let left: Vec<Key> = self.priors.keys().cloned().collect();
        for avid in &left {
            self.resolve(avid);
        }
        self.em.flush(out);
        overlay
    }

    /// Run end, second step: sessionizes the stragglers into late sessions (folded into the
    /// records), emits the withdrawals, then the users and user_daily rows of every visitor
    /// touched in the run (records plus open sessions), and flushes. Returns what the late
    /// sessions add to content and campaigns.
    pub(crate) fn finish_late(&mut self, out: &mut dyn FnMut(RowBatch)) -> ContentTotals {
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
                    self.fold(c, out);
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

        // The run-end view of the visitors: saved records plus open sessions (never saved).
        let mut overlay: HashMap<Key, User> = HashMap::default();
        for c in std::mem::take(&mut self.open_contribs) {
            self.touched.mark(&c);
            let user = overlay.entry(c.avid.clone()).or_insert_with(|| {
                self.users
                    .get(&c.avid)
                    .cloned()
                    .unwrap_or_else(|| User::new(&c))
            });
            apply_user(user, &c, self.windows);
        }
        self.emit_users(&overlay, out);
        self.em.flush(out);
        self.take_delta()
    }

    fn emit_users(&mut self, overlay: &HashMap<Key, User>, out: &mut dyn FnMut(RowBatch)) {
        let d = &self.d;
        let em = &mut self.em;
        let base = &self.users;
        let mut users: Vec<&Key> = self.touched.users.iter().collect();
        users.sort();
        for avid in users {
            let Some(u) = overlay.get(avid).or_else(|| base.get(avid)) else {
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
        for (avid, day) in days {
            let counts = overlay
                .get(avid)
                .or_else(|| base.get(avid))
                .and_then(|u| u.days.iter().find(|c| c.day == *day));
            if let Some(c) = counts {
                push_day(d, em, out, avid, c);
            }
        }
    }

    /// This shard's part of the state for the next run, and its counters.
    pub(crate) fn into_end(self) -> ShardEnd {
        let visitors = (self.users.len()
            + self
                .visitors
                .values()
                .filter(|v| !self.users.contains_key(&v.avid))
                .count()) as u64;
        let open_bytes = self
            .visitors
            .values()
            .flat_map(|v| v.events.iter().chain(v.bases.iter().map(|b| &**b)))
            .map(event_bytes)
            .sum::<usize>()
            + self.visitors.len() * (std::mem::size_of::<Visitor>() + 32 + 16 + 48)
            + self
                .end_priors
                .iter()
                .map(|(_, p)| 64 + p.keys.iter().map(|(_, k)| k.len() + 24).sum::<usize>())
                .sum::<usize>();
        ShardEnd {
            open: self.visitors.into_values().map(|v| v.events).collect(),
            priors: self.end_priors,
            users: self.users,
            stats: self.stats,
            rows: self.em.rows,
            visitors,
            open_bytes: open_bytes as u64,
        }
    }
}

/// Emits the `parsely_user_daily` row of `avid`'s day `c`.
fn push_day(
    d: &Derive,
    em: &mut Emitter,
    out: &mut dyn FnMut(RowBatch),
    avid: &Key,
    c: &DayCounts,
) {
    let facts = UserDailyFacts {
        apikey_visitor_id: avid,
        date: c.day,
        pageviews: c.pageviews,
        videoviews: c.videoviews,
        engaged_time: c.engaged_time,
        video_engaged_time: c.video_engaged_time,
        sessions: c.sessions,
    };
    em.row(Table::UserDaily, out, |buf| d.push_user_daily(&facts, buf));
}

/// See [`Shard::emitted`] (a function of the fields it needs, for disjoint borrows).
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

/// Approximate bytes of an event held in memory (of a shared event: what it holds itself).
pub(crate) fn event_bytes(ev: &Event) -> usize {
    std::mem::size_of::<Event>()
        + std::mem::size_of_val(ev.own_values())
        + ev.own_values()
            .iter()
            .map(crate::state::value_bytes)
            .sum::<usize>()
        + crate::state::value_bytes(&ev.extra)
}

/// When a session whose last event is at `ends_at` becomes final.
fn session_deadline(ends_at: i64, idle: i64, lateness: i64) -> i64 {
    ends_at.saturating_add(idle).saturating_add(lateness)
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
