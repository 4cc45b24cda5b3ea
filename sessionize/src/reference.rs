//! A deliberately naive reference model of SPEC.md sections 2 to 5, and property tests of
//! [`crate::Sessionizer`] against it (test only).
//!
//! The model sees every event of every run at once: it walks them in arrival order to apply
//! the dedupe window and the straggler rule, then sorts and scans. On-time sessions come from
//! all on-time events of a visitor sorted by `(ts_action, event_id)`; late sessions from each
//! run's stragglers; every table is then computed "the obvious way" from the sessions and
//! built with the same `push_*` row builders. Rows are keyed by primary key, so the result is
//! what the sink holds after every run (a later run's row replaces an earlier one's).
//!
//! Where the run split matters (SPEC.md section 4 allows it only for visitors with
//! stragglers) the model says which run a session is final in: an on-time session is final
//! in the first run whose on-time watermark passes its last event by `idle_timeout` plus
//! `allowed_lateness`, else it is last emitted open by the last run. Its user-at-the-time
//! counts the visitor's real pageviews strictly before its first event from on-time sessions
//! and from the late sessions of earlier runs (a run's late sessions count "from then on",
//! after the run).
//!
//! Other readings of SPEC.md the model makes (the sessionizer must agree):
//! - a campaign's `sessions` counts every session whose first event (standard or custom)
//!   carries its utm_id; the row exists when a standard event carries it;
//! - `parsely_user_daily` has a row for every local day with an activity event;
//! - "last" values (`last_<extra>`, latest metadata, latest `campaign_id`) order by
//!   `(ts_action, event_id)`, stragglers included.
//!
//! The properties (module `props`): (a) the sessionizer equals the model, exactly, for one
//! run and over several (each run's withdrawals applied before its rows, as sinks do); (b) the
//! tables do not depend on how the input is cut into objects and runs, nor on the order in
//! which the pipeline stage receives the batches (visitors without stragglers); (c) running
//! a run again emits the same rows; and checkpoints through files change nothing. Exact
//! cases the properties found are kept as small named tests.
//!
//! Not modelled: key conflicts (copies further apart than `dedupe_window`; the model, like
//! the sessionizer, takes the later copy as a new event, but keeps the later row where a sink
//! keeps the first) and stragglers older than `daily_retention_days`; the generator never
//! produces them.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::fmt::Write as _;
use std::sync::Arc;

use dpl_core::{
    CONTENT_METADATA_FIELDS, Class, DecodedBatch, Event, Field, RowBatch, Table, Value,
};

use crate::SessionizeConfig;
use crate::derive::{Derive, Key, UTM_FIELDS};
use crate::rows::{
    CampaignFacts, PageviewFacts, PostContentFacts, SessionFacts, SessionUserFacts, UserDailyFacts,
    UserFacts, VideoContentFacts, VideoviewFacts,
};

/// Rows of every table by primary key (the key columns' values, debug-printed).
pub(crate) type Tables = BTreeMap<Table, BTreeMap<String, Vec<Value>>>;

fn micros(d: jiff::SignedDuration) -> i64 {
    i64::try_from(d.as_micros()).unwrap()
}

/// The primary key text of a row.
pub(crate) fn pk(d: &Derive, table: Table, row: &[Value]) -> String {
    let mut s = String::new();
    for k in table.primary_key() {
        let i = d.schema.index(table, k).unwrap();
        let _ = write!(s, "{:?}|", row[i]);
    }
    s
}

/// Adds every row of `batch` to `tables`, replacing rows with the same primary key; a batch
/// of withdrawals deletes the rows with its keys.
pub(crate) fn merge(d: &Derive, tables: &mut Tables, batch: &RowBatch) {
    let rows = tables.entry(batch.table).or_default();
    for row in batch.rows() {
        if batch.withdraw {
            rows.remove(&withdrawn_pk(row));
        } else {
            rows.insert(pk(d, batch.table, row), row.to_vec());
        }
    }
}

/// The primary key text of a withdrawn key (its values in primary-key order).
pub(crate) fn withdrawn_pk(key: &[Value]) -> String {
    let mut s = String::new();
    for v in key {
        let _ = write!(s, "{v:?}|");
    }
    s
}

/// Merges one run's batches as a sink loads them: every withdrawal, then every row. Panics
/// if the run withdraws a key it also loads (a sink would delete it and load it again, but
/// the sessionizer promises never to).
pub(crate) fn merge_run(d: &Derive, tables: &mut Tables, run: &[RowBatch]) {
    let mut loaded = BTreeSet::new();
    for b in run.iter().filter(|b| !b.withdraw) {
        for row in b.rows() {
            loaded.insert((b.table, pk(d, b.table, row)));
        }
    }
    for b in run.iter().filter(|b| b.withdraw) {
        assert_eq!(b.width, b.table.primary_key().len());
        for key in b.rows() {
            let k = withdrawn_pk(key);
            assert!(
                !loaded.contains(&(b.table, k.clone())),
                "{} {k} is withdrawn and loaded by the same run",
                b.table.name()
            );
        }
        merge(d, tables, b);
    }
    for b in run.iter().filter(|b| !b.withdraw) {
        merge(d, tables, b);
    }
}

/// One row of the pageview or videoview table, as the aggregates need it.
struct RowInfo {
    ev: Event,
    real: bool,
    engaged: i64,
}

/// A session of the model.
struct Sess {
    avid: Key,
    events: Vec<Event>,
    late: bool,
}

/// Everything the model derived, before the run-end tables.
#[derive(Default)]
struct Acc {
    pageview_rows: Vec<RowInfo>,
    video_rows: Vec<RowInfo>,
    /// (avid, first event) of every session, late ones included.
    sessions: Vec<(Key, Event)>,
}

fn by_time(a: &Event, b: &Event) -> std::cmp::Ordering {
    a.time_key().cmp(&b.time_key())
}

/// Splits time-sorted events into sessions by the idle gap.
fn split(events: &[Event], idle: i64) -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = Vec::new();
    for ev in events {
        match out.last_mut() {
            Some(s) if ev.ts_action() - s.last().unwrap().ts_action() <= idle => s.push(ev.clone()),
            _ => out.push(vec![ev.clone()]),
        }
    }
    out
}

fn inc(ev: &Event) -> i64 {
    ev.int(Field::EngagedTimeInc).unwrap_or(0)
}

fn post_id(ev: &Event) -> Option<Arc<str>> {
    Derive::pageview_post_id(ev).map(Arc::from)
}

/// The reference tables for `runs` (each a run's batches in arrival order).
/// The reference tables for `runs` (each a run's batches in arrival order), and the visitors
/// that have stragglers.
pub(crate) fn reference(
    d: &Derive,
    cfg: &SessionizeConfig,
    runs: &[Vec<DecodedBatch>],
) -> (Tables, BTreeSet<Key>) {
    let idle = micros(cfg.idle_timeout);
    let lateness = micros(cfg.allowed_lateness);
    let window = micros(cfg.dedupe_window);
    let mut tables = Tables::new();
    let mut out = |t: Table, row: Vec<Value>| {
        tables.entry(t).or_default().insert(pk(d, t, &row), row);
    };

    // 1. Arrival order: dedupe, bots, stragglers, on-time watermark per run.
    let mut kept: HashMap<String, i64> = HashMap::new();
    let mut dedupe_max = i64::MIN;
    let mut watermark = i64::MIN;
    let mut on_time: Vec<Event> = Vec::new();
    let mut stragglers: Vec<Vec<Event>> = vec![Vec::new(); runs.len()];
    let mut watermark_end: Vec<i64> = Vec::new();
    for (r, run) in runs.iter().enumerate() {
        for batch in run {
            for e in &batch.errors {
                let mut row = Vec::new();
                d.push_error(e, &mut row);
                out(Table::Errors, row);
            }
            for ev in &batch.events {
                let id = ev.event_id().to_owned();
                if let Some(&ts) = kept.get(&id)
                    && ts >= dedupe_max.saturating_sub(window)
                {
                    continue;
                }
                kept.insert(id, ev.ts_action());
                dedupe_max = dedupe_max.max(ev.ts_action());
                if ev.class == Class::Bot {
                    let mut row = Vec::new();
                    d.push_bot(ev, &mut row);
                    out(Table::BotTraffic, row);
                } else if ev.ts_action() < watermark.saturating_sub(lateness) {
                    stragglers[r].push(ev.clone());
                } else {
                    watermark = watermark.max(ev.ts_action());
                    on_time.push(ev.clone());
                }
            }
        }
        watermark_end.push(watermark);
    }
    let last_run = runs.len().saturating_sub(1);

    // 2. Sessions: on-time over all runs, late per run.
    let mut per_visitor: BTreeMap<Key, Vec<Event>> = BTreeMap::new();
    for ev in on_time {
        per_visitor
            .entry(Derive::apikey_visitor_id(&ev))
            .or_default()
            .push(ev);
    }
    // (session, run it is last emitted in)
    let mut on_time_sessions: Vec<(Sess, usize)> = Vec::new();
    for (avid, mut evs) in per_visitor {
        evs.sort_by(by_time);
        for s in split(&evs, idle) {
            let deadline = s.last().unwrap().ts_action() + idle + lateness;
            let run = watermark_end
                .iter()
                .position(|&w| w > deadline)
                .unwrap_or(last_run);
            on_time_sessions.push((
                Sess {
                    avid: avid.clone(),
                    events: s,
                    late: false,
                },
                run,
            ));
        }
    }
    // (session, run of its stragglers)
    let mut late_sessions: Vec<(Sess, usize)> = Vec::new();
    for (r, evs) in stragglers.iter().enumerate() {
        let mut per: BTreeMap<Key, Vec<Event>> = BTreeMap::new();
        for ev in evs {
            per.entry(Derive::apikey_visitor_id(ev))
                .or_default()
                .push(ev.clone());
        }
        for (avid, mut evs) in per {
            evs.sort_by(by_time);
            for s in split(&evs, idle) {
                late_sessions.push((
                    Sess {
                        avid: avid.clone(),
                        events: s,
                        late: true,
                    },
                    r,
                ));
            }
        }
    }

    // 3. Session rows.
    let mut acc = Acc::default();
    let mut number: HashMap<Key, i64> = HashMap::new();
    for (s, run) in &on_time_sessions {
        let n = number.entry(s.avid.clone()).or_insert(0);
        *n += 1;
        let start = s.events[0].ts_action();
        let visible = |ev: &Event, is_late_of: Option<usize>| match is_late_of {
            Some(r) => r < *run,
            None => true,
        } && ev.class == Class::Pageview
            && ev.ts_action() < start;
        let mut before = 0;
        let mut rolling = 0;
        let rolling_from = start - cfg.rolling_window_days * crate::derive::MICROS_PER_DAY;
        let mut count = |ev: &Event| {
            before += 1;
            if ev.ts_action() >= rolling_from {
                rolling += 1;
            }
        };
        for (o, _) in &on_time_sessions {
            if o.avid == s.avid {
                o.events
                    .iter()
                    .filter(|e| visible(e, None))
                    .for_each(&mut count);
            }
        }
        for (o, r) in &late_sessions {
            if o.avid == s.avid {
                o.events
                    .iter()
                    .filter(|e| visible(e, Some(*r)))
                    .for_each(&mut count);
            }
        }
        let session_pageviews = s
            .events
            .iter()
            .filter(|e| e.class == Class::Pageview)
            .count();
        let user = SessionUserFacts {
            is_new: *n == 1,
            pageviews_before: before,
            rolling_pageviews_before: rolling,
            session_pageviews: session_pageviews as i64,
        };
        let key = Derive::session_key(&s.avid, start);
        build_session(d, s, &key, Some(*n), Some(user), &mut acc, &mut out);
    }
    for (s, _) in &late_sessions {
        let key = Derive::late_session_key(&s.avid, s.events[0].event_id());
        build_session(d, s, &key, None, None, &mut acc, &mut out);
    }

    // 4. Run-end tables from every session.
    let activity: Vec<&Event> = on_time_sessions
        .iter()
        .chain(&late_sessions)
        .flat_map(|(s, _)| &s.events)
        .collect();
    users(d, cfg, &activity, &acc, &mut out);
    user_daily(d, &activity, &acc, &mut out);
    content(d, &activity, &acc, &mut out);
    campaigns(d, &activity, &acc, &mut out);
    let late_visitors = late_sessions.iter().map(|(s, _)| s.avid.clone()).collect();
    (tables, late_visitors)
}

/// Builds the pageview, videoview, custom event and session rows of one session.
fn build_session(
    d: &Derive,
    s: &Sess,
    key: &str,
    number: Option<i64>,
    user: Option<SessionUserFacts>,
    acc: &mut Acc,
    out: &mut impl FnMut(Table, Vec<Value>),
) {
    let evs = &s.events;
    let of = |c: Class| evs.iter().filter(move |e| e.class == c).collect::<Vec<_>>();
    let pvs = of(Class::Pageview);
    let hbs = of(Class::Heartbeat);
    let vss = of(Class::Videostart);
    let vhbs = of(Class::Vheartbeat);

    // Heartbeats to pageviews: latest with the key at or before, else the earliest.
    let mut engaged = vec![0i64; pvs.len()];
    let mut orphans: Vec<(Key, &Event, i64)> = Vec::new();
    for h in &hbs {
        let k = Derive::pageview_key(h);
        let cands: Vec<usize> = (0..pvs.len())
            .filter(|&i| Derive::pageview_key(pvs[i]) == k)
            .collect();
        let target = cands
            .iter()
            .rev()
            .find(|&&i| pvs[i].ts_action() <= h.ts_action())
            .or(cands.first());
        match target {
            Some(&i) => engaged[i] += inc(h),
            None => match orphans.iter_mut().find(|o| o.0 == k) {
                Some(o) => o.2 += inc(h),
                None => orphans.push((k, h, inc(h))),
            },
        }
    }
    // Vheartbeats to videostarts, the same way.
    let mut v_engaged = vec![0i64; vss.len()];
    let mut v_orphans: Vec<(Key, &Event, i64)> = Vec::new();
    for h in &vhbs {
        let k = Derive::videostart_key(h);
        let cands: Vec<usize> = (0..vss.len())
            .filter(|&i| Derive::videostart_key(vss[i]) == k)
            .collect();
        let target = cands
            .iter()
            .rev()
            .find(|&&i| vss[i].ts_action() <= h.ts_action())
            .or(cands.first());
        match target {
            Some(&i) => v_engaged[i] += inc(h),
            None => match v_orphans.iter_mut().find(|o| o.0 == k) {
                Some(o) => o.2 += inc(h),
                None => v_orphans.push((k, h, inc(h))),
            },
        }
    }
    // Video rows: (defining event, real, engaged, sequence) and their parent pageview.
    let mut video_rows: Vec<(&Event, bool, i64, Option<i64>)> = Vec::new();
    for (i, v) in vss.iter().enumerate() {
        video_rows.push((v, true, v_engaged[i], Some(i as i64 + 1)));
    }
    for (_, h, e) in &v_orphans {
        video_rows.push((h, false, *e, None));
    }
    let same = [
        Field::Apikey,
        Field::SessionId,
        Field::VisitorSiteId,
        Field::Url,
        Field::Referrer,
        Field::TsSessionCurrent,
    ];
    let mut pv_videoviews = vec![0i64; pvs.len()];
    let mut pv_video_engaged = vec![0i64; pvs.len()];
    let mut parents: Vec<Option<usize>> = Vec::new();
    for (v, real, e, _) in &video_rows {
        let parent = (0..pvs.len()).rev().find(|&i| {
            pvs[i].ts_action() <= v.ts_action() && same.iter().all(|&f| pvs[i].get(f) == v.get(f))
        });
        if let Some(i) = parent {
            pv_videoviews[i] += i64::from(*real);
            pv_video_engaged[i] += e;
        }
        parents.push(parent);
    }

    // Pageview rows.
    for (i, pv) in pvs.iter().enumerate() {
        let f = PageviewFacts {
            session_key: key,
            counter: 1,
            matched: true,
            engaged_time: engaged[i],
            videoviews: pv_videoviews[i],
            video_engaged_time: pv_video_engaged[i],
            sequence: Some(i as i64 + 1),
            previous_post_id: i
                .checked_sub(1)
                .and_then(|j| post_id(pvs[j]))
                .map(Value::text),
            next_post_id: pvs.get(i + 1).and_then(|p| post_id(p)).map(Value::text),
            is_entry: i == 0,
            is_exit: i + 1 == pvs.len(),
        };
        let mut row = Vec::new();
        d.push_pageview(pv, &f, &mut row);
        out(Table::Pageviews, row);
        acc.pageview_rows.push(RowInfo {
            ev: (*pv).clone(),
            real: true,
            engaged: engaged[i],
        });
    }
    for (_, h, e) in &orphans {
        let f = PageviewFacts {
            session_key: key,
            counter: 0,
            matched: false,
            engaged_time: *e,
            videoviews: 0,
            video_engaged_time: 0,
            sequence: None,
            previous_post_id: None,
            next_post_id: None,
            is_entry: false,
            is_exit: false,
        };
        let mut row = Vec::new();
        d.push_pageview(h, &f, &mut row);
        out(Table::Pageviews, row);
        acc.pageview_rows.push(RowInfo {
            ev: (*h).clone(),
            real: false,
            engaged: *e,
        });
    }
    // Videoview rows.
    for ((v, real, e, seq), parent) in video_rows.iter().zip(&parents) {
        let parent_key = parent.map(|i| Derive::pageview_key(pvs[i]));
        let f = VideoviewFacts {
            session_key: key,
            counter: i64::from(*real),
            matched: *real,
            video_engaged_time: *e,
            sequence: *seq,
            parent_pageview_key: parent_key.as_deref(),
        };
        let mut row = Vec::new();
        d.push_videoview(v, &f, &mut row);
        out(Table::Videoviews, row);
        acc.video_rows.push(RowInfo {
            ev: (*v).clone(),
            real: *real,
            engaged: *e,
        });
    }
    // Custom events.
    for c in of(Class::Custom) {
        let mut row = Vec::new();
        d.push_custom_event(c, key, &mut row);
        out(Table::CustomEvents, row);
    }
    // The session row.
    let extras: Vec<&Value> = evs
        .iter()
        .map(|e| &e.extra)
        .filter(|v| !v.is_null())
        .collect();
    let f = SessionFacts {
        session_key: key,
        first: &evs[0],
        last: evs.last().unwrap(),
        user_session_number: number,
        pageviews: pvs.len() as i64,
        engaged_time: engaged.iter().sum::<i64>() + orphans.iter().map(|o| o.2).sum::<i64>(),
        videoviews: vss.len() as i64,
        video_engaged_time: video_rows.iter().map(|v| v.2).sum(),
        custom_events: of(Class::Custom).len() as i64,
        is_late: s.late,
        user,
        extra_first: extras.first().map_or(Value::Null, |v| (*v).clone()),
        extra_last: extras.last().map_or(Value::Null, |v| (*v).clone()),
    };
    let mut row = Vec::new();
    d.push_session(&f, &mut row);
    out(Table::Sessions, row);
    acc.sessions.push((s.avid.clone(), evs[0].clone()));
}

fn users(
    d: &Derive,
    cfg: &SessionizeConfig,
    activity: &[&Event],
    acc: &Acc,
    out: &mut impl FnMut(Table, Vec<Value>),
) {
    let mut avids: BTreeMap<Key, Vec<&Event>> = BTreeMap::new();
    for ev in activity {
        avids
            .entry(Derive::apikey_visitor_id(ev))
            .or_default()
            .push(ev);
    }
    for (avid, mut evs) in avids {
        evs.sort_by(|a, b| by_time(a, b));
        let first = evs[0];
        let last = *evs.last().unwrap();
        let mine = |r: &&RowInfo| Derive::apikey_visitor_id(&r.ev) == avid;
        let pv: Vec<&RowInfo> = acc.pageview_rows.iter().filter(mine).collect();
        let vv: Vec<&RowInfo> = acc.video_rows.iter().filter(mine).collect();
        let last_day = d.local_day(last.ts_action());
        let rolling = pv
            .iter()
            .filter(|r| r.real)
            .filter(|r| {
                let day = d.local_day(r.ev.ts_action());
                day <= last_day && i64::from(last_day - day) < cfg.rolling_window_days
            })
            .count() as i64;
        let apikey = first.arc(Field::Apikey).unwrap();
        let vsid = first.arc(Field::VisitorSiteId).unwrap();
        let last_extra = evs
            .iter()
            .rev()
            .map(|e| &e.extra)
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or_default();
        let f = UserFacts {
            apikey_visitor_id: &avid,
            apikey: &apikey,
            visitor_site_id: &vsid,
            first_seen_ts: first.ts_action(),
            last_seen_ts: last.ts_action(),
            pageviews: pv.iter().filter(|r| r.real).count() as i64,
            engaged_time: pv.iter().map(|r| r.engaged).sum(),
            videoviews: vv.iter().filter(|r| r.real).count() as i64,
            video_engaged_time: vv.iter().map(|r| r.engaged).sum(),
            sessions: acc.sessions.iter().filter(|s| s.0 == avid).count() as i64,
            custom_events: evs.iter().filter(|e| e.class == Class::Custom).count() as i64,
            rolling_pageviews: rolling,
            last_extra,
        };
        let mut row = Vec::new();
        d.push_user(&f, &mut row);
        out(Table::Users, row);
    }
}

fn user_daily(d: &Derive, activity: &[&Event], acc: &Acc, out: &mut impl FnMut(Table, Vec<Value>)) {
    // (avid, day) -> [pageviews, videoviews, engaged, video engaged, sessions]
    let mut days: BTreeMap<(Key, i32), [i64; 5]> = BTreeMap::new();
    let day = |ev: &Event| (Derive::apikey_visitor_id(ev), d.local_day(ev.ts_action()));
    for ev in activity {
        days.entry(day(ev)).or_default();
    }
    for r in &acc.pageview_rows {
        let c = days.entry(day(&r.ev)).or_default();
        c[0] += i64::from(r.real);
        c[2] += r.engaged;
    }
    for r in &acc.video_rows {
        let c = days.entry(day(&r.ev)).or_default();
        c[1] += i64::from(r.real);
        c[3] += r.engaged;
    }
    for (_, first) in &acc.sessions {
        days.entry(day(first)).or_default()[4] += 1;
    }
    for ((avid, date), c) in days {
        let f = UserDailyFacts {
            apikey_visitor_id: &avid,
            date,
            pageviews: c[0],
            videoviews: c[1],
            engaged_time: c[2],
            video_engaged_time: c[3],
            sessions: c[4],
        };
        let mut row = Vec::new();
        d.push_user_daily(&f, &mut row);
        out(Table::UserDaily, row);
    }
}

fn metadata(ev: &Event) -> Vec<Value> {
    CONTENT_METADATA_FIELDS
        .iter()
        .map(|&f| ev.get(f).clone())
        .collect()
}

fn content(d: &Derive, activity: &[&Event], acc: &Acc, out: &mut impl FnMut(Table, Vec<Value>)) {
    let mut posts: BTreeMap<Arc<str>, Vec<&Event>> = BTreeMap::new();
    let mut videos: BTreeMap<Arc<str>, Vec<&Event>> = BTreeMap::new();
    for ev in activity {
        match ev.class {
            Class::Pageview | Class::Heartbeat => {
                if let Some(p) = post_id(ev) {
                    posts.entry(p).or_default().push(ev);
                }
            }
            Class::Videostart | Class::Vheartbeat => {
                if let Some(c) = ev.arc(Field::MetadataCanonicalUrl) {
                    videos.entry(c).or_default().push(ev);
                }
            }
            _ => {}
        }
    }
    for (p, mut evs) in posts {
        evs.sort_by(|a, b| by_time(a, b));
        let latest = *evs.last().unwrap();
        let rows: Vec<&RowInfo> = acc
            .pageview_rows
            .iter()
            .filter(|r| post_id(&r.ev).as_ref() == Some(&p))
            .collect();
        let meta = metadata(latest);
        let f = PostContentFacts {
            pageview_post_id: &p,
            url: latest.get(Field::Url),
            metadata: &meta,
            first_seen_ts: evs[0].ts_action(),
            last_seen_ts: latest.ts_action(),
            pageviews: rows.iter().filter(|r| r.real).count() as i64,
            engaged_time: rows.iter().map(|r| r.engaged).sum(),
        };
        let mut row = Vec::new();
        d.push_post_content(&f, &mut row);
        out(Table::PostContent, row);
    }
    for (c, mut evs) in videos {
        evs.sort_by(|a, b| by_time(a, b));
        let latest = *evs.last().unwrap();
        let rows: Vec<&RowInfo> = acc
            .video_rows
            .iter()
            .filter(|r| r.ev.str(Field::MetadataCanonicalUrl) == Some(&*c))
            .collect();
        let meta = metadata(latest);
        let f = VideoContentFacts {
            metadata_canonical_url: &c,
            url: latest.get(Field::Url),
            metadata: &meta,
            first_seen_ts: evs[0].ts_action(),
            last_seen_ts: latest.ts_action(),
            videoviews: rows.iter().filter(|r| r.real).count() as i64,
            video_engaged_time: rows.iter().map(|r| r.engaged).sum(),
        };
        let mut row = Vec::new();
        d.push_video_content(&f, &mut row);
        out(Table::VideoContent, row);
    }
}

/// The campaign an event carries, if any.
fn campaign_of(ev: &Event) -> Option<Key> {
    Derive::has_utm(ev).then(|| Derive::utm_id(ev))
}

fn campaigns(d: &Derive, activity: &[&Event], acc: &Acc, out: &mut impl FnMut(Table, Vec<Value>)) {
    let mut by: BTreeMap<Key, Vec<&Event>> = BTreeMap::new();
    for ev in activity {
        if ev.class.is_standard()
            && let Some(k) = campaign_of(ev)
        {
            by.entry(k).or_default().push(ev);
        }
    }
    for (k, mut evs) in by {
        evs.sort_by(|a, b| by_time(a, b));
        let latest = *evs.last().unwrap();
        let carries = |r: &&RowInfo| campaign_of(&r.ev).as_ref() == Some(&k);
        let pv: Vec<&RowInfo> = acc.pageview_rows.iter().filter(carries).collect();
        let vv: Vec<&RowInfo> = acc.video_rows.iter().filter(carries).collect();
        let utm: [Value; 5] = UTM_FIELDS.map(|f| latest.get(f).clone());
        let campaign_id = evs
            .iter()
            .rev()
            .map(|e| e.get(Field::CampaignId))
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or_default();
        let apikey = latest.arc(Field::Apikey).unwrap();
        let f = CampaignFacts {
            utm_id: &k,
            apikey: &apikey,
            utm: &utm,
            campaign_id: &campaign_id,
            first_seen_ts: evs[0].ts_action(),
            last_seen_ts: latest.ts_action(),
            pageviews: pv.iter().filter(|r| r.real).count() as i64,
            engaged_time: pv.iter().map(|r| r.engaged).sum(),
            videoviews: vv.iter().filter(|r| r.real).count() as i64,
            video_engaged_time: vv.iter().map(|r| r.engaged).sum(),
            sessions: acc
                .sessions
                .iter()
                .filter(|(_, first)| campaign_of(first).as_ref() == Some(&k))
                .count() as i64,
        };
        let mut row = Vec::new();
        d.push_campaign(&f, &mut row);
        out(Table::Campaigns, row);
    }
}

#[cfg(test)]
mod props {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::derive::FBIA_REFERRER;
    use crate::derive::tests::us;
    use crate::{Checkpoint, Sessionizer};
    use dpl_core::{Arrival, DecodeStats, ErrorReason, ErrorRow, Schema};
    use proptest::prelude::*;
    use std::path::Path;

    const MIN: i64 = 60 * 1_000_000;
    /// Gaps between a visitor's consecutive events: ties, seconds, around `idle_timeout`
    /// (exactly 30 minutes does not split, one second more does), hours.
    const GAPS: [i64; 8] = [
        0,
        1_000_000,
        10_000_000,
        5 * MIN,
        30 * MIN - 1_000_000,
        30 * MIN,
        30 * MIN + 1_000_000,
        180 * MIN,
    ];

    /// One generated event: (visitor, gap, kind, page context, arrival delay, duplicate,
    /// engaged increment).
    type Spec = (u8, u8, u8, u8, u8, u8, u8);

    const CUSTOM_UTM: bool = true;

    fn config() -> SessionizeConfig {
        SessionizeConfig {
            loyalty_pageviews: 5,
            rolling_loyalty_pageviews: 3,
            rolling_window_days: 1,
            batch_rows: 7,
            ..SessionizeConfig::default()
        }
    }

    fn derive(cfg: &SessionizeConfig) -> Derive {
        Derive::new(cfg, Arc::new(Schema::default())).unwrap()
    }

    fn t(s: String) -> Value {
        Value::text(s)
    }

    /// Events in arrival order. Times start at 2024-11-02 02:00 UTC (22:00 EDT the day
    /// before), so sessions cross local and UTC midnight, and hours-long gaps reach the
    /// 2024-11-03 daylight-saving fold.
    fn events(specs: &[Spec]) -> Vec<Event> {
        let base = us(2024, 11, 2, 2, 0, 0);
        let mut clock = [0i64; 4];
        for (v, c) in clock.iter_mut().enumerate() {
            *c = base + v as i64 * 7 * MIN;
        }
        let mut items: Vec<(i64, usize, Event)> = Vec::new();
        for (i, &(v, gap, kind, ctx, delay, dup, inc)) in specs.iter().enumerate() {
            let v = usize::from(v % 4);
            clock[v] += GAPS[usize::from(gap % 8)];
            let ts = clock[v];
            let class = match kind % 10 {
                0..=2 => Class::Pageview,
                3..=5 => Class::Heartbeat,
                6 => Class::Videostart,
                7 => Class::Vheartbeat,
                8 => Class::Custom,
                _ => Class::Bot,
            };
            let mut e = Event::empty(class, Arrival { object: 0, line: 0 });
            let action = match class {
                Class::Pageview | Class::Bot => "pageview",
                Class::Heartbeat => "heartbeat",
                Class::Videostart => "videostart",
                Class::Vheartbeat => "vheartbeat",
                Class::Custom => "share",
            };
            e.set(Field::Action, Value::text(action));
            e.set(
                Field::Apikey,
                Value::text(if v == 3 { "b.com" } else { "a.com" }),
            );
            e.set(Field::VisitorSiteId, t(format!("v{}", v % 3)));
            e.set(Field::EventId, t(format!("e{i}")));
            e.set(Field::TsAction, Value::Ts(ts));
            e.set(
                Field::TsSessionCurrent,
                Value::Ts(base - 60 * MIN + 123_456),
            );
            e.set(Field::SessionId, Value::Int(1 + v as i64));
            e.set(Field::SessionTimestamp, Value::Int(base / 1000 - 3_600_000));
            e.set(Field::PageviewId, t(format!("pv{ctx}")));
            e.set(Field::VideostartId, t(format!("vs{ctx}")));
            e.set(Field::Url, t(format!("http://a.com/p{ctx}")));
            if ctx != 2 {
                e.set(
                    Field::MetadataCanonicalUrl,
                    t(format!("http://a.com/c{ctx}")),
                );
            }
            if ctx == 1 {
                e.set(Field::Referrer, Value::text(FBIA_REFERRER));
            }
            e.set(Field::UrlPath, t(format!("/p{ctx}")));
            e.set(Field::IpCity, t(format!("city{}", i % 3)));
            e.set(
                Field::UaBrowser,
                Value::text(if class == Class::Bot {
                    "Googlebot"
                } else {
                    "Chrome"
                }),
            );
            if matches!(class, Class::Heartbeat | Class::Vheartbeat) {
                e.set(Field::EngagedTimeInc, Value::Int(i64::from(inc % 30)));
            }
            e.set(Field::MetadataTitle, t(format!("t{ctx}-{}", i % 3)));
            e.set(
                Field::MetadataFullContentWordCount,
                Value::Int((i as i64 * 37) % 5000),
            );
            e.set(
                Field::MetadataPubDateTmsp,
                Value::Int(base / 1000 - 3 * 86_400_000 + i64::from(ctx) * 1000),
            );
            e.set(Field::TimestampInfoNginxMs, Value::Int(ts / 1000 + 250));
            if ctx == 0 && (class != Class::Custom || CUSTOM_UTM) {
                e.set(Field::UtmSource, Value::text("fb"));
                e.set(Field::UtmCampaign, Value::text("spring"));
                if i % 4 == 0 {
                    e.set(Field::CampaignId, t(format!("c{}", i % 3)));
                }
            } else if ctx == 1 && class == Class::Custom {
                e.set(Field::UtmSource, Value::text("mail"));
            }
            if i % 5 == 0 {
                e.extra = Value::text("subscriber");
            } else if i % 7 == 0 {
                e.extra = Value::text("anon");
            }
            let delay = match delay % 20 {
                0..=14 => 0,
                15 => 10 * MIN,
                16 => 40 * MIN,
                17 => 59 * MIN,
                18 => 90 * MIN,
                _ => 180 * MIN,
            };
            if dup % 20 == 19 {
                items.push((ts + delay + 20 * MIN, i + 1_000_000, e.clone()));
            }
            items.push((ts + delay, i, e));
        }
        items.sort_by_key(|(k, i, _)| (*k, *i));
        items.into_iter().map(|(_, _, e)| e).collect()
    }

    /// Splits arrival-ordered events into runs (at `cuts`, fractions of 1000) of objects of
    /// `chunk` events; every third object also carries an error line.
    fn runs(events: &[Event], cuts: &[u16], chunk: usize) -> Vec<Vec<DecodedBatch>> {
        let n = events.len();
        let mut at: Vec<usize> = cuts.iter().map(|&c| n * usize::from(c) / 1000).collect();
        at.push(0);
        at.push(n);
        at.sort_unstable();
        at.dedup();
        let mut out = Vec::new();
        for w in at.windows(2) {
            let mut batches = Vec::new();
            for (o, objs) in events[w[0]..w[1]].chunks(chunk.max(1)).enumerate() {
                let mut evs = objs.to_vec();
                for (j, e) in evs.iter_mut().enumerate() {
                    e.arrival = Arrival {
                        object: o as u32,
                        line: j as u64 + 1,
                    };
                }
                // Error lines belong to events (every 13th), so every split has the same.
                let errors = objs
                    .iter()
                    .filter_map(|e| {
                        let i: u64 = e.event_id().trim_start_matches('e').parse().ok()?;
                        i.is_multiple_of(13).then(|| ErrorRow {
                            source_object: Arc::from(format!("events/2024/11/02/x{i:06}.gz")),
                            line: i + 1,
                            reason: ErrorReason::InvalidJson,
                            detail: None,
                            event_id: None,
                            action: None,
                            raw: "{".to_owned(),
                        })
                    })
                    .collect();
                batches.push(DecodedBatch {
                    object: o as u32,
                    seq: 0,
                    last: true,
                    events: evs,
                    errors,
                    stats: DecodeStats::default(),
                });
            }
            out.push(batches);
        }
        out
    }

    /// Runs the sessionizer over `runs`, each from the checkpoint the previous one left
    /// (through a file in `disk` when set, else in memory); returns the merged tables and
    /// each run's rows.
    fn sessionize(
        cfg: &SessionizeConfig,
        runs: &[Vec<DecodedBatch>],
        disk: Option<&Path>,
    ) -> (Tables, Vec<Vec<RowBatch>>) {
        sessionize_sharded(cfg, runs, disk, &[1]).0
    }

    /// Merged tables and each run's rows.
    type Sessionized = (Tables, Vec<Vec<RowBatch>>);

    /// [`sessionize`] with run `r` split over `shards[r % shards.len()]` shards (run one
    /// after the other on this thread); also returns each run's checkpoint bytes.
    fn sessionize_sharded(
        cfg: &SessionizeConfig,
        runs: &[Vec<DecodedBatch>],
        disk: Option<&Path>,
        shards: &[usize],
    ) -> (Sessionized, Vec<Vec<u8>>) {
        let d = derive(cfg);
        let mut states = Vec::new();
        let mut tables = Tables::new();
        let mut emitted = Vec::new();
        let mut prev: Option<Checkpoint> = None;
        for (r, run) in runs.iter().enumerate() {
            let n = shards.get(r % shards.len().max(1)).copied().unwrap_or(1);
            let mut s =
                Sessionizer::sharded(cfg.clone(), Arc::new(Schema::default()), prev.take(), n)
                    .unwrap();
            let mut rows = Vec::new();
            for b in run {
                s.push(b.clone(), &mut |rb| rows.push(rb));
            }
            let (ck, _) = s.finish(&format!("run{r}"), &mut |rb| rows.push(rb));
            states.push(ck.state_summary());
            prev = Some(match disk {
                Some(dir) => {
                    let path = dir.join(format!("run{r}.ckpt"));
                    ck.save(&path).unwrap();
                    Checkpoint::load(&path).unwrap().unwrap()
                }
                None => ck,
            });
            merge_run(&d, &mut tables, &rows);
            emitted.push(rows);
        }
        ((tables, emitted), states)
    }

    /// Runs `runs` through the pipeline stage [`crate::run`], each object cut into two
    /// batches and every batch sent in reverse order (as parallel decoders might deliver
    /// them); returns each run's rows, flattened per table in emission order.
    fn via_stage(cfg: &SessionizeConfig, runs: &[Vec<DecodedBatch>]) -> Vec<Vec<RowBatch>> {
        via_stage_sharded(cfg, runs, 1).0
    }

    /// [`via_stage`] with `shards` shards on threads of their own; also returns each run's
    /// checkpoint bytes.
    fn via_stage_sharded(
        cfg: &SessionizeConfig,
        runs: &[Vec<DecodedBatch>],
        shards: usize,
    ) -> (Vec<Vec<RowBatch>>, Vec<Vec<u8>>) {
        let mut states = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut prev = None;
        let mut out = Vec::new();
        for (r, run) in runs.iter().enumerate() {
            let mut parts = halve(run);
            parts.reverse();
            let s = Sessionizer::sharded(
                cfg.clone(),
                Arc::new(Schema::default()),
                prev.take(),
                shards,
            )
            .unwrap();
            let (btx, brx) = async_channel::unbounded();
            let (rtx, rrx) = async_channel::unbounded();
            for p in parts {
                btx.send_blocking(p).unwrap();
            }
            drop(btx);
            let (ck, _) = rt
                .block_on(crate::run(s, format!("run{r}"), brx, rtx))
                .unwrap();
            states.push(ck.state_summary());
            prev = Some(ck);
            let mut rows = Vec::new();
            while let Ok(rb) = rrx.try_recv() {
                rows.push(rb);
            }
            out.push(rows);
        }
        (out, states)
    }

    /// Each object's batch cut into two (arrival order kept).
    fn halve(run: &[DecodedBatch]) -> Vec<DecodedBatch> {
        let mut parts = Vec::new();
        for b in run {
            let mut first = b.clone();
            let cut = first.events.len() / 2;
            let mut second = first.clone();
            second.events = first.events.split_off(cut);
            first.errors.clear();
            first.last = false;
            second.seq = 1;
            parts.push(first);
            parts.push(second);
        }
        parts
    }

    /// [`flat`] with each table's rows sorted (the order shards interleave in is not
    /// part of the contract).
    fn sorted(batches: &[RowBatch]) -> BTreeMap<(Table, bool), Vec<String>> {
        flat(batches)
            .into_iter()
            .map(|(k, rows)| {
                let mut rows: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
                rows.sort();
                (k, rows)
            })
            .collect()
    }

    /// Rows (and withdrawn keys) per table in emission order (batch boundaries ignored).
    fn flat(batches: &[RowBatch]) -> BTreeMap<(Table, bool), Vec<Vec<Value>>> {
        let mut m: BTreeMap<(Table, bool), Vec<Vec<Value>>> = BTreeMap::new();
        for b in batches {
            m.entry((b.table, b.withdraw))
                .or_default()
                .extend(b.rows().map(<[Value]>::to_vec));
        }
        m
    }

    fn column_name(d: &Derive, table: Table, i: usize) -> &str {
        d.schema
            .columns(table)
            .get(i)
            .map_or("?", |c| c.name.as_str())
    }

    /// Differences of two table sets, one line each (empty when equal).
    fn diff(d: &Derive, a: &Tables, b: &Tables, names: (&str, &str)) -> Vec<String> {
        let mut out = Vec::new();
        let empty = BTreeMap::new();
        for table in Table::ALL {
            let ta = a.get(&table).unwrap_or(&empty);
            let tb = b.get(&table).unwrap_or(&empty);
            for (k, ra) in ta {
                match tb.get(k) {
                    None => out.push(format!("{} {k}: only in {}", table.name(), names.0)),
                    Some(rb) => {
                        for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
                            if x != y {
                                out.push(format!(
                                    "{} {k} {}: {} {x:?} != {} {y:?}",
                                    table.name(),
                                    column_name(d, table, i),
                                    names.0,
                                    names.1
                                ));
                            }
                        }
                    }
                }
            }
            for k in tb.keys().filter(|k| !ta.contains_key(*k)) {
                out.push(format!("{} {k}: only in {}", table.name(), names.1));
            }
        }
        out
    }

    fn assert_same(d: &Derive, a: &Tables, b: &Tables, names: (&str, &str)) {
        let diffs = diff(d, a, b, names);
        assert!(
            diffs.is_empty(),
            "{} differences:\n{}",
            diffs.len(),
            diffs
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Drops the rows of visitors with stragglers (and the tables that mix visitors, when
    /// there are any): SPEC.md section 4 lets those depend on the run split.
    fn without(d: &Derive, tables: &Tables, late: &BTreeSet<Key>) -> Tables {
        let mut out = Tables::new();
        for (&table, rows) in tables {
            let Some(i) = d.schema.index(table, "apikey_visitor_id") else {
                if late.is_empty() || table == Table::Errors {
                    out.insert(table, rows.clone());
                }
                continue;
            };
            let keep = rows
                .iter()
                .filter(|(_, r)| match &r[i] {
                    Value::Text(a) => !late.contains(a),
                    _ => true,
                })
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
            out.insert(table, keep);
        }
        out
    }

    fn spec_strategy() -> impl Strategy<Value = Vec<Spec>> {
        prop::collection::vec(
            (0..4u8, 0..8u8, 0..10u8, 0..3u8, 0..20u8, 0..20u8, 0..30u8),
            1..300,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// (a) The sessionizer's tables equal the reference, for one run and over runs (the
        /// withdrawals of keys that sessions open at a run end no longer have applied).
        #[test]
        fn sessionizer_matches_reference(
            specs in spec_strategy(),
            cuts in prop::collection::vec(0..1000u16, 0..3),
            chunk in 1..60usize,
        ) {
            let cfg = config();
            let d = derive(&cfg);
            let evs = events(&specs);
            let one = runs(&evs, &[], chunk);
            let (want, _) = reference(&d, &cfg, &one);
            let (got, _) = sessionize(&cfg, &one, None);
            assert_same(&d, &want, &got, ("reference", "sessionizer"));
            let split = runs(&evs, &cuts, chunk);
            let (want, _) = reference(&d, &cfg, &split);
            let (got, _) = sessionize(&cfg, &split, None);
            assert_same(&d, &want, &got, ("reference", "sessionizer"));
        }

        /// (b) Same tables however the input is split into objects and runs (visitors
        /// without stragglers), and (c) re-running a run from the previous checkpoint emits
        /// the same rows and leaves the tables unchanged.
        #[test]
        fn splits_and_reruns_change_nothing(
            specs in spec_strategy(),
            cuts in prop::collection::vec(0..1000u16, 1..4),
            chunk in 1..60usize,
        ) {
            let cfg = config();
            let d = derive(&cfg);
            let evs = events(&specs);
            let whole = runs(&evs, &[], 1000);
            let split = runs(&evs, &cuts, chunk);
            let (_, late) = reference(&d, &cfg, &whole);
            let (a, _) = sessionize(&cfg, &whole, None);
            let (b, emitted) = sessionize(&cfg, &split, None);
            assert_same(
                &d,
                &without(&d, &a, &late),
                &without(&d, &b, &late),
                ("one run", "split runs"),
            );
            // Through the stage, batches delivered out of order: the same rows.
            let staged = via_stage(&cfg, &split);
            for (r, (x, y)) in emitted.iter().zip(&staged).enumerate() {
                prop_assert!(flat(x) == flat(y), "run {} differs through the stage", r);
            }
            // (c) the last run again, from the checkpoint the run before it left: the same
            // rows, so the tables do not change.
            let (_, again) = sessionize(&cfg, &split, None);
            let r = split.len() - 1;
            prop_assert_eq!(&again[r], &emitted[r], "re-run emitted different rows");
            let mut b2 = b.clone();
            merge_run(&d, &mut b2, &again[r]);
            assert_same(&d, &b, &b2, ("first run", "re-run"));
        }

        /// Sharding changes no row and no byte of the checkpoint: split over 2, 3 or 5
        /// shards (a different number in each run, so a checkpoint is loaded into another
        /// number of shards than wrote it), sequentially and through the stage's threads,
        /// the runs emit the same rows as one shard (in another order) and leave the same
        /// checkpoints; the threaded stage emits exactly the sequential order.
        #[test]
        fn shards_change_nothing(
            specs in spec_strategy(),
            cuts in prop::collection::vec(0..1000u16, 0..3),
            chunk in 1..60usize,
            n in 2..6usize,
        ) {
            let cfg = config();
            let evs = events(&specs);
            let split = runs(&evs, &cuts, chunk);
            let ((_, one), one_states) = sessionize_sharded(&cfg, &split, None, &[1]);
            let ((_, many), many_states) = sessionize_sharded(&cfg, &split, None, &[n, 3, 2]);
            for (r, (x, y)) in one.iter().zip(&many).enumerate() {
                prop_assert!(sorted(x) == sorted(y), "run {} differs with {} shards", r, n);
            }
            prop_assert!(one_states == many_states, "checkpoints differ with {} shards", n);
            // The same batches as the stage gets (each object in two), in arrival order.
            let halved: Vec<Vec<DecodedBatch>> = split.iter().map(|r| halve(r)).collect();
            let ((_, seq), _) = sessionize_sharded(&cfg, &halved, None, &[n]);
            let (threaded, threaded_states) = via_stage_sharded(&cfg, &split, n);
            for (r, (x, y)) in seq.iter().zip(&threaded).enumerate() {
                prop_assert!(flat(x) == flat(y), "run {} differs on threads", r);
            }
            prop_assert!(one_states == threaded_states, "threaded checkpoints differ");
        }

        /// Saving and loading the checkpoint between runs changes no row.
        #[test]
        fn checkpoint_files_change_nothing(
            specs in spec_strategy(),
            cuts in prop::collection::vec(0..1000u16, 1..4),
            chunk in 1..60usize,
        ) {
            let cfg = config();
            let evs = events(&specs);
            let split = runs(&evs, &cuts, chunk);
            let dir = tempfile::tempdir().unwrap();
            let (_, in_memory) = sessionize(&cfg, &split, None);
            let (_, via_files) = sessionize(&cfg, &split, Some(dir.path()));
            prop_assert_eq!(in_memory, via_files);
        }
    }

    /// A fixed pseudo-random input of `n` specs.
    fn fixed_specs(n: usize, seed: u64) -> Vec<Spec> {
        let mut x = seed;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((x >> 33) % m) as u8
        };
        (0..n)
            .map(|_| {
                (
                    next(4),
                    next(8),
                    next(10),
                    next(3),
                    next(20),
                    next(20),
                    next(30),
                )
            })
            .collect()
    }

    /// The generated inputs reach the rules the properties are about (so the properties
    /// are not vacuous): stragglers, duplicates, orphans, split and merged sessions,
    /// loyalty crossed, local dates that differ from UTC dates, the DST fold.
    #[test]
    fn generator_reaches_every_rule() {
        let cfg = config();
        let d = derive(&cfg);
        let specs = fixed_specs(300, 7);
        let evs = events(&specs);
        let rs = runs(&evs, &[500], 20);
        let (t, late) = reference(&d, &cfg, &rs);
        let col = |table: Table, name: &str| -> Vec<Value> {
            let i = d.schema.index(table, name).unwrap();
            t[&table].values().map(|r| r[i].clone()).collect()
        };
        assert!(!late.is_empty(), "no stragglers");
        assert!(evs.len() > t[&Table::Pageviews].len() + t[&Table::Videoviews].len());
        assert!(col(Table::Pageviews, "pageview_match").contains(&Value::Bool(false)));
        assert!(col(Table::Videoviews, "videostart_match").contains(&Value::Bool(false)));
        assert!(
            col(Table::Videoviews, "pageview_key")
                .iter()
                .any(|v| !v.is_null())
        );
        assert!(col(Table::Sessions, "is_late_session").contains(&Value::Bool(true)));
        assert!(col(Table::Sessions, "converted_to_loyalty").contains(&Value::Bool(true)));
        assert!(col(Table::Sessions, "user_session_number").contains(&Value::Int(3)));
        let dates: BTreeSet<String> = col(Table::Pageviews, "date_id")
            .iter()
            .map(|v| format!("{v:?}"))
            .collect();
        assert!(dates.len() >= 3, "local dates {dates:?}");
        // 2024-11-03 01:xx local happens twice; some event falls in the fold hour.
        let fold = (us(2024, 11, 3, 1, 0, 0), us(2024, 11, 3, 2, 0, 0));
        assert!(
            col(Table::Pageviews, "ts_action_tz")
                .iter()
                .any(|v| matches!(v, Value::Ts(x) if (fold.0..fold.1).contains(x))),
            "no event in the DST fold"
        );
        assert!(!t[&Table::Campaigns].is_empty() && !t[&Table::BotTraffic].is_empty());
        assert!(!t[&Table::Errors].is_empty() && !t[&Table::CustomEvents].is_empty());
    }

    // Exact cases found by the properties, small enough to check by hand.

    /// A minimal event of visitor `v` of `a.com` at `ts`.
    fn mk(id: &str, class: Class, v: &str, ts: i64) -> Event {
        let mut e = Event::empty(class, Arrival { object: 0, line: 0 });
        let action = match class {
            Class::Heartbeat => "heartbeat",
            Class::Custom => "share",
            _ => "pageview",
        };
        e.set(Field::Action, Value::text(action));
        e.set(Field::Apikey, Value::text("a.com"));
        e.set(Field::VisitorSiteId, Value::text(v));
        e.set(Field::EventId, Value::text(id));
        e.set(Field::TsAction, Value::Ts(ts));
        e.set(Field::Url, Value::text("http://a.com/p"));
        e.set(Field::PageviewId, Value::text("pv"));
        e
    }

    /// Runs, each one object holding `events` in arrival order.
    fn as_runs(runs: Vec<Vec<Event>>) -> Vec<Vec<DecodedBatch>> {
        runs.into_iter()
            .map(|evs| {
                let events = evs
                    .into_iter()
                    .enumerate()
                    .map(|(j, mut e)| {
                        e.arrival = Arrival {
                            object: 0,
                            line: j as u64 + 1,
                        };
                        e
                    })
                    .collect();
                vec![DecodedBatch {
                    object: 0,
                    seq: 0,
                    last: true,
                    events,
                    errors: Vec::new(),
                    stats: DecodeStats::default(),
                }]
            })
            .collect()
    }

    /// The value of `column` in the row of `table` whose (single) key is the text `key`.
    fn cell(d: &Derive, tables: &Tables, table: Table, key: &str, column: &str) -> Value {
        let row = tables
            .get(&table)
            .and_then(|t| t.get(&format!("{:?}|", Value::text(key))))
            .unwrap_or_else(|| panic!("no {} row {key}", table.name()));
        row[d.schema.index(table, column).unwrap()].clone()
    }

    /// SPEC.md section 5, campaigns: `sessions` counts the sessions whose first event
    /// carries the utm_id, and custom events are activity, so a session opened by a custom
    /// event carrying the campaign counts.
    #[test]
    fn campaign_sessions_count_a_session_opened_by_a_custom_event() {
        let cfg = config();
        let d = derive(&cfg);
        let t0 = us(2024, 11, 2, 2, 0, 0);
        let mut custom = mk("c1", Class::Custom, "v0", t0);
        let mut pv = mk("p1", Class::Pageview, "v0", t0 + MIN);
        for e in [&mut custom, &mut pv] {
            e.set(Field::UtmSource, Value::text("fb"));
        }
        let utm = Derive::utm_id(&pv);
        let rs = as_runs(vec![vec![custom, pv]]);
        let (want, _) = reference(&d, &cfg, &rs);
        assert_eq!(
            cell(&d, &want, Table::Campaigns, &utm, "sessions"),
            Value::Int(1)
        );
        let (got, _) = sessionize(&cfg, &rs, None);
        assert_eq!(
            cell(&d, &got, Table::Campaigns, &utm, "sessions"),
            Value::Int(1)
        );
    }

    /// SPEC.md section 1: "last" orders by `ts_action`, then `event_id`. An on-time event
    /// `e2` and a straggler `e1` of the same visitor at the same `ts_action`: `e2` is the
    /// last, so `last_custom_extra_data` is its value, whatever the order of folding.
    #[test]
    fn last_extra_ties_break_by_event_id() {
        let cfg = config();
        let d = derive(&cfg);
        let t0 = us(2024, 11, 2, 2, 0, 0);
        let mut on_time = mk("e2", Class::Pageview, "v0", t0);
        on_time.extra = Value::text("anon");
        let other = mk("x1", Class::Pageview, "v1", t0 + 120 * MIN);
        let mut straggler = mk("e1", Class::Pageview, "v0", t0);
        straggler.extra = Value::text("subscriber");
        let avid = Derive::apikey_visitor_id(&on_time);
        let rs = as_runs(vec![vec![on_time, other, straggler]]);
        let (want, late) = reference(&d, &cfg, &rs);
        assert!(late.contains(&avid), "e1 is a straggler");
        let col = "last_custom_extra_data";
        assert_eq!(
            cell(&d, &want, Table::Users, &avid, col),
            Value::text("anon")
        );
        let (got, _) = sessionize(&cfg, &rs, None);
        assert_eq!(
            cell(&d, &got, Table::Users, &avid, col),
            Value::text("anon")
        );
    }

    /// SPEC.md section 5: `session_user_engagement_level` counts the pageviews strictly
    /// before the session's first event. Run 1: v0 is active 10:00 to 12:00 (open at the run
    /// end); its pageview s1 at 10:30 arrives last, more than `allowed_lateness` behind, so
    /// it is a late session of run 1. Run 2 extends the session to 12:10 and finishes it.
    /// s1 (10:30) is not before the session's first event (10:00), so with
    /// `loyalty_pageviews` 1 the session starts `Non-Loyalty` and ends `Loyalty`.
    #[test]
    fn late_pageviews_after_the_start_are_not_before_the_session() {
        let cfg = SessionizeConfig {
            loyalty_pageviews: 1,
            ..config()
        };
        let d = derive(&cfg);
        let at = |h, m| us(2024, 11, 2, h, m, 0);
        let run1: Vec<Event> = (0..7)
            .map(|i| {
                mk(
                    &format!("p{i}"),
                    Class::Pageview,
                    "v0",
                    at(10, 0) + i * 20 * MIN,
                )
            })
            .chain([mk("s1", Class::Pageview, "v0", at(10, 30))])
            .collect();
        let run2 = vec![
            mk("p7", Class::Pageview, "v0", at(12, 10)),
            mk("x1", Class::Pageview, "v1", at(15, 0)),
        ];
        let key = Derive::session_key(&Derive::apikey_visitor_id(&run1[0]), at(10, 0));
        let rs = as_runs(vec![run1, run2]);
        let (want, late) = reference(&d, &cfg, &rs);
        assert_eq!(late.len(), 1);
        let (got, _) = sessionize(&cfg, &rs, None);
        for (name, t) in [("reference", &want), ("sessionizer", &got)] {
            let c = |col| cell(&d, t, Table::Sessions, &key, col);
            assert_eq!(c("pageviews"), Value::Int(8), "{name}");
            assert_eq!(
                c("session_user_engagement_level"),
                Value::text("Non-Loyalty"),
                "{name}"
            );
            assert_eq!(c("converted_to_loyalty"), Value::Bool(true), "{name}");
        }
    }

    /// A checkpoint holding a campaign loads again.
    #[test]
    fn checkpoint_with_a_campaign_loads() {
        let cfg = config();
        let mut pv = mk("p1", Class::Pageview, "v0", us(2024, 11, 2, 2, 0, 0));
        pv.set(Field::UtmSource, Value::text("fb"));
        let rs = as_runs(vec![vec![pv], vec![]]);
        let dir = tempfile::tempdir().unwrap();
        let (_, a) = sessionize(&cfg, &rs, None);
        let (_, b) = sessionize(&cfg, &rs, Some(dir.path()));
        assert_eq!(a, b);
    }

    /// SPEC.md section 4: an open session is "loaded again, complete, by the next run under
    /// the same key", and the output must not depend on the run split. Here run 1 leaves
    /// v0 with two open sessions (10:00 and 10:30:10, 30m10s apart) and an orphan heartbeat
    /// row (h1, its pageview not seen yet); run 2 brings p3 at 10:29:59, which bridges the
    /// two into one session started at 10:00, and p0 at 09:59, the pageview of h1, which
    /// moves the start to 09:59. One run over everything has one session and no orphan row;
    /// the two runs leave, besides, the rows of the 10:00 and 10:30:10 sessions and h1's
    /// orphan row unless run 2 withdraws their keys, which it does.
    #[test]
    fn stale_rows_of_bridged_sessions() {
        let cfg = config();
        let d = derive(&cfg);
        let at = |h, m, s| us(2024, 11, 2, h, m, s);
        let mut h1 = mk("h1", Class::Heartbeat, "v0", at(10, 0, 0));
        h1.set(Field::PageviewId, Value::text("pv0"));
        let mut p0 = mk("p0", Class::Pageview, "v0", at(9, 59, 0));
        p0.set(Field::PageviewId, Value::text("pv0"));
        let p1 = mk("p1", Class::Pageview, "v0", at(10, 0, 0));
        let p2 = mk("p2", Class::Pageview, "v0", at(10, 30, 10));
        let p3 = mk("p3", Class::Pageview, "v0", at(10, 29, 59));
        let avid = Derive::apikey_visitor_id(&p1);
        let whole = as_runs(vec![vec![
            h1.clone(),
            p1.clone(),
            p2.clone(),
            p3.clone(),
            p0.clone(),
        ]]);
        let split = as_runs(vec![vec![h1, p1, p2], vec![p3, p0]]);
        let (a, _) = sessionize(&cfg, &whole, None);
        let (b, emitted) = sessionize(&cfg, &split, None);
        assert_eq!(a[&Table::Sessions].len(), 1);
        assert_same(&d, &a, &b, ("one run", "two runs"));
        // Run 1: the 10:00 session (h1's orphan row, p1) and the 10:30:10 one (p2), open.
        let keys = |run: &[RowBatch], table: Table, withdraw: bool| -> BTreeSet<String> {
            run.iter()
                .filter(|b| b.table == table && b.withdraw == withdraw)
                .flat_map(|b| b.rows().map(|r| withdrawn_pk(&r[..1])))
                .collect()
        };
        let k = |ts| withdrawn_pk(&[Value::Text(Derive::session_key(&avid, ts))]);
        let id = |s: &str| withdrawn_pk(&[Value::text(s)]);
        assert_eq!(
            keys(&emitted[0], Table::Sessions, false),
            BTreeSet::from([k(at(10, 0, 0)), k(at(10, 30, 10))])
        );
        assert!(keys(&emitted[0], Table::Sessions, true).is_empty());
        // Run 2 withdraws both session keys (the session now starts at 09:59) and h1's
        // orphan row (h1 belongs to p0 now), and withdraws nothing else.
        assert_eq!(
            keys(&emitted[1], Table::Sessions, true),
            BTreeSet::from([k(at(10, 0, 0)), k(at(10, 30, 10))])
        );
        assert_eq!(
            keys(&emitted[1], Table::Pageviews, true),
            BTreeSet::from([id("h1")])
        );
        assert!(keys(&emitted[1], Table::Videoviews, true).is_empty());
        assert_eq!(
            keys(&emitted[1], Table::Sessions, false),
            BTreeSet::from([k(at(9, 59, 0))])
        );
    }
}
