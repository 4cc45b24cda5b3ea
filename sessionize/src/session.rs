//! One session's rows and its contribution to the totals (SPEC.md section 5).

use dpl_core::{Class, Event, Field, RowBatch, Table, Value};

use crate::derive::{Derive, Key, KeyCache, Recipe};
use crate::emit::Emitter;
use crate::rows::{
    EventKeys, PageviewFacts, SessionFacts, SessionKeys, SessionUserFacts, VideoviewFacts,
};
use crate::state::{Contribution, event_id};

/// The user before an on-time session (None for a late session).
pub(crate) struct UserBefore {
    pub number: i64,
    pub is_new: bool,
    pub pageviews_before: i64,
    pub rolling_pageviews_before: i64,
}

/// A pageview or videoview row being built.
struct ViewRow {
    /// Index of the defining event (the real view, or the orphan's first heartbeat).
    ev: usize,
    real: bool,
    key: Key,
    engaged: i64,
    /// Pageview rows only: videoview rows whose parent this is.
    videoviews: i64,
    video_engaged: i64,
}

/// Scratch space of [`build_session`], kept in the [`Emitter`] and reused from session to
/// session, so that building a session allocates little beyond its rows and keys.
#[derive(Default)]
pub(crate) struct Scratch {
    keys: KeyCache,
    pvs: Vec<usize>,
    hbs: Vec<usize>,
    vss: Vec<usize>,
    vhbs: Vec<usize>,
    customs: Vec<usize>,
    pv_rows: Vec<ViewRow>,
    video_rows: Vec<ViewRow>,
    parents: Vec<Option<usize>>,
    /// Attribution: real view rows by key (see [`attribute`]).
    order: Vec<usize>,
    /// Attribution: orphan rows by key, sorted by key.
    orphans: Vec<(Key, usize)>,
}

impl Scratch {
    fn clear(&mut self) {
        self.keys.clear();
        self.pvs.clear();
        self.hbs.clear();
        self.vss.clear();
        self.vhbs.clear();
        self.customs.clear();
        self.pv_rows.clear();
        self.video_rows.clear();
        self.parents.clear();
        self.order.clear();
        self.orphans.clear();
    }
}

/// Builds view rows into `rows`: real views in time order, then one orphan row per key of
/// beats that have no view of that key, in order of their first beat. Beats go to the
/// latest view of their key at or before them (equal `ts_action` counts as before), else
/// the earliest. `key_of` gives the key of `events[i]`; `order` and `orphans` are scratch.
#[allow(clippy::too_many_arguments)]
fn attribute(
    events: &[Event],
    views: &[usize],
    beats: &[usize],
    keys: &mut KeyCache,
    recipe: Recipe,
    inc_field: Field,
    rows: &mut Vec<ViewRow>,
    order: &mut Vec<usize>,
    orphans: &mut Vec<(Key, usize)>,
) {
    rows.clear();
    order.clear();
    orphans.clear();
    for &i in views {
        if events.get(i).is_none() {
            continue;
        }
        rows.push(ViewRow {
            ev: i,
            real: true,
            key: keys.key(events, i, recipe),
            engaged: 0,
            videoviews: 0,
            video_engaged: 0,
        });
    }
    // The real view rows sorted by key, then position: each key's views are a run, in
    // time order (a sorted index instead of a map per session).
    order.extend(0..rows.len());
    order.sort_unstable_by(|&a, &b| {
        let key = |r: usize| rows.get(r).map(|row| &*row.key);
        key(a).cmp(&key(b)).then(a.cmp(&b))
    });
    for &b in beats {
        let Some(beat) = events.get(b) else { continue };
        let key = keys.key_ref(events, b, recipe);
        let inc = beat.int(inc_field).unwrap_or(0);
        let ts = beat.ts_action();
        let key_at = |r: usize| rows.get(r).map(|row| &*row.key);
        let lo = order.partition_point(|&r| key_at(r) < Some(&*key));
        let hi = lo
            + order
                .get(lo..)
                .unwrap_or_default()
                .partition_point(|&r| key_at(r) == Some(&*key));
        let target = if lo < hi {
            let same = order.get(lo..hi).unwrap_or_default();
            let n = same.partition_point(|&r| {
                rows.get(r)
                    .and_then(|row| events.get(row.ev))
                    .is_some_and(|e| e.ts_action() <= ts)
            });
            same.get(n.saturating_sub(1)).copied()
        } else {
            match orphans.binary_search_by(|(k, _)| (**k).cmp(&*key)) {
                Ok(at) => orphans.get(at).map(|&(_, r)| r),
                Err(at) => {
                    orphans.insert(at, (key.clone(), rows.len()));
                    rows.push(ViewRow {
                        ev: b,
                        real: false,
                        key: key.clone(),
                        engaged: 0,
                        videoviews: 0,
                        video_engaged: 0,
                    });
                    Some(rows.len() - 1)
                }
            }
        };
        if let Some(row) = target.and_then(|r| rows.get_mut(r)) {
            row.engaged = row.engaged.saturating_add(inc);
        }
    }
}

/// The fields a videoview and its parent pageview share (nulls equal).
const PARENT_FIELDS: [Field; 6] = [
    Field::Apikey,
    Field::SessionId,
    Field::VisitorSiteId,
    Field::Url,
    Field::Referrer,
    Field::TsSessionCurrent,
];

/// Emits the rows of one session (events sorted by `(ts_action, event_id)`, at least one,
/// all of the visitor `avid`) and returns what it adds to the totals. Appends to `em.keys`
/// the primary keys of the emitted rows that a later emission of the same events may not
/// repeat: the session key and the orphan pageview and videoview rows' event ids.
pub(crate) fn build_session(
    d: &Derive,
    avid: &Key,
    events: &[Event],
    user: Option<UserBefore>,
    em: &mut Emitter,
    out: &mut dyn FnMut(RowBatch),
) -> Option<Contribution> {
    let first = events.first()?;
    let last = events.last()?;
    let mut s = std::mem::take(&mut em.scratch);
    s.clear();
    let c = build(d, avid, events, first, last, user, &mut s, em, out);
    em.scratch = s;
    Some(c)
}

/// [`build_session`] with the scratch space taken out of the emitter.
#[allow(clippy::too_many_arguments)]
fn build(
    d: &Derive,
    avid: &Key,
    events: &[Event],
    first: &Event,
    last: &Event,
    user: Option<UserBefore>,
    s: &mut Scratch,
    em: &mut Emitter,
    out: &mut dyn FnMut(RowBatch),
) -> Contribution {
    let Scratch {
        keys,
        pvs,
        hbs,
        vss,
        vhbs,
        customs,
        pv_rows,
        video_rows,
        parents,
        order,
        orphans,
    } = s;
    let avid = avid.clone();
    let session_key = match user {
        Some(_) => Derive::session_key(&avid, first.ts_action()),
        None => Derive::late_session_key(&avid, first.event_id()),
    };
    // One value for the session_key column of every row of the session.
    let session_key_value = Value::Text(session_key.clone());
    // Every event's own values are read below (engaged time, times, the event id when it
    // is dropped), one event after another. They went cold while the session was open:
    // touched here first, in a loop whose reads do not wait on each other, their cache
    // misses overlap instead of coming one at a time.
    let mut touched = 0;
    for e in events {
        touched ^= e.int(Field::EngagedTimeInc).unwrap_or(0) ^ e.ts_action();
    }
    std::hint::black_box(touched);
    for (i, e) in events.iter().enumerate() {
        match e.class {
            Class::Pageview => pvs.push(i),
            Class::Heartbeat => hbs.push(i),
            Class::Videostart => vss.push(i),
            Class::Vheartbeat => vhbs.push(i),
            Class::Custom => customs.push(i),
            Class::Bot => {}
        }
    }
    attribute(
        events,
        pvs,
        hbs,
        keys,
        Recipe::Pageview,
        Field::EngagedTimeInc,
        pv_rows,
        order,
        orphans,
    );
    attribute(
        events,
        vss,
        vhbs,
        keys,
        Recipe::Videostart,
        Field::EngagedTimeInc,
        video_rows,
        order,
        orphans,
    );

    // Parent pageviews of the videoview rows: the latest real pageview at or before the
    // row's defining event with the same PARENT_FIELDS.
    let n_real_pv = pvs.len();
    for vr in video_rows.iter() {
        let parent = events.get(vr.ev).and_then(|v| {
            pv_rows.iter().take(n_real_pv).rposition(|pr| {
                events.get(pr.ev).is_some_and(|p| {
                    p.ts_action() <= v.ts_action()
                        && PARENT_FIELDS.iter().all(|&f| p.get(f) == v.get(f))
                })
            })
        });
        if let Some(p) = parent.and_then(|p| pv_rows.get_mut(p)) {
            p.videoviews += i64::from(vr.real);
            p.video_engaged = p.video_engaged.saturating_add(vr.engaged);
        }
        parents.push(parent);
    }

    let mut c = Contribution::new(first, avid.clone(), user.is_some());
    c.last_seen = last.ts_action();

    // Pageview rows.
    let post_of = |r: &ViewRow| {
        events
            .get(r.ev)
            .map(|e| Derive::pageview_post_value(e).clone())
    };
    for (i, r) in pv_rows.iter().enumerate() {
        let Some(ev) = events.get(r.ev) else { continue };
        let (sequence, previous, next) = if r.real {
            (
                Some(i as i64 + 1),
                i.checked_sub(1)
                    .and_then(|p| pv_rows.get(p))
                    .and_then(post_of),
                pv_rows
                    .get(i + 1)
                    .filter(|_| i + 1 < n_real_pv)
                    .and_then(post_of),
            )
        } else {
            (None, None, None)
        };
        let facts = PageviewFacts {
            session_key: &session_key,
            counter: i64::from(r.real),
            matched: r.real,
            engaged_time: r.engaged,
            videoviews: r.videoviews,
            video_engaged_time: r.video_engaged,
            sequence,
            previous_post_id: previous,
            next_post_id: next,
            is_entry: r.real && i == 0,
            is_exit: r.real && i + 1 == n_real_pv,
        };
        let utm_id = keys.key(events, r.ev, Recipe::Utm);
        let row_keys = EventKeys {
            avid: avid.clone(),
            utm_id: utm_id.clone(),
            pageview_key: Value::Text(r.key.clone()),
            videostart_key: keys.key(events, r.ev, Recipe::Videostart),
            session_id: keys.key(events, r.ev, Recipe::SessionId),
            session_key: session_key_value.clone(),
        };
        em.row(Table::Pageviews, out, |buf| {
            d.push_pageview_keyed(ev, &facts, row_keys, buf)
        });
        if !r.real {
            em.keys.push((Table::Pageviews, event_id(ev)));
        }
        c.pageviews += i64::from(r.real);
        c.engaged_time = c.engaged_time.saturating_add(r.engaged);
        let day = c.day(d, ev.ts_action());
        day.counts.pageviews += i64::from(r.real);
        day.counts.engaged_time = day.counts.engaged_time.saturating_add(r.engaged);
        if r.real {
            c.pv_ts.push(ev.ts_action());
        }
        if let Some(post) = Derive::pageview_post_id(ev) {
            let p = c.post(post, ev);
            p.views += i64::from(r.real);
            p.engaged = p.engaged.saturating_add(r.engaged);
        }
        if ev.class.is_standard() && Derive::has_utm(ev) {
            let k = c.campaign(utm_id, ev);
            k.pageviews += i64::from(r.real);
            k.engaged_time = k.engaged_time.saturating_add(r.engaged);
        }
    }

    // Videoview rows.
    let n_real_vs = vss.len();
    for (i, (r, parent)) in video_rows.iter().zip(parents.iter()).enumerate() {
        let Some(ev) = events.get(r.ev) else { continue };
        let parent_row = parent.and_then(|p| pv_rows.get(p));
        let facts = VideoviewFacts {
            session_key: &session_key,
            counter: i64::from(r.real),
            matched: r.real,
            video_engaged_time: r.engaged,
            sequence: (r.real && i < n_real_vs).then_some(i as i64 + 1),
            parent_pageview_key: parent_row.map(|p| &*p.key),
        };
        let utm_id = keys.key(events, r.ev, Recipe::Utm);
        let row_keys = EventKeys {
            avid: avid.clone(),
            utm_id: utm_id.clone(),
            pageview_key: parent_row.map_or(Value::Null, |p| Value::Text(p.key.clone())),
            videostart_key: r.key.clone(),
            session_id: keys.key(events, r.ev, Recipe::SessionId),
            session_key: session_key_value.clone(),
        };
        em.row(Table::Videoviews, out, |buf| {
            d.push_videoview_keyed(ev, &facts, row_keys, buf)
        });
        if !r.real {
            em.keys.push((Table::Videoviews, event_id(ev)));
        }
        c.videoviews += i64::from(r.real);
        c.video_engaged_time = c.video_engaged_time.saturating_add(r.engaged);
        let day = c.day(d, ev.ts_action());
        day.counts.videoviews += i64::from(r.real);
        day.counts.video_engaged_time = day.counts.video_engaged_time.saturating_add(r.engaged);
        if let Some(url) = ev.str(Field::MetadataCanonicalUrl) {
            let v = c.video(url, ev);
            v.views += i64::from(r.real);
            v.engaged = v.engaged.saturating_add(r.engaged);
        }
        if Derive::has_utm(ev) {
            let k = c.campaign(utm_id, ev);
            k.videoviews += i64::from(r.real);
            k.video_engaged_time = k.video_engaged_time.saturating_add(r.engaged);
        }
    }

    // Custom events.
    for &i in customs.iter() {
        let Some(ev) = events.get(i) else { continue };
        let row_keys = EventKeys {
            avid: avid.clone(),
            utm_id: keys.key(events, i, Recipe::Utm),
            pageview_key: Value::Text(keys.key(events, i, Recipe::Pageview)),
            videostart_key: keys.key(events, i, Recipe::Videostart),
            session_id: keys.key(events, i, Recipe::SessionId),
            session_key: session_key_value.clone(),
        };
        em.row(Table::CustomEvents, out, |buf| {
            d.push_custom_event_keyed(ev, row_keys, buf)
        });
    }
    c.custom_events = customs.len() as i64;

    // Per-event facts: content and campaign sightings, extra values, day event counts.
    // Content records keep the earliest time, the latest time and the metadata of the
    // latest event (by `ts_action`, then `event_id`, then position), so observing the
    // first and last event of every run of consecutive sightings of the same post (or
    // video) gives the same record as observing every event: the events are in that order.
    let mut extra_first = Value::Null;
    let mut extra_last_at = None;
    // (local day, an instant of it, events) of the current run of events on one day.
    let mut day_run: Option<(i32, i64, u64)> = None;
    let mut post_run = ContentRun::default();
    let mut video_run = ContentRun::default();
    for (i, ev) in events.iter().enumerate() {
        let ts = ev.ts_action();
        let day = d.local_day(ts);
        match &mut day_run {
            Some((run_day, _, n)) if *run_day == day => *n += 1,
            _ => {
                if let Some((_, at, n)) = day_run.replace((day, ts, 1)) {
                    c.day(d, at).events += n;
                }
            }
        }
        if !ev.extra.is_null() {
            if extra_first.is_null() {
                extra_first = ev.extra.clone();
            }
            extra_last_at = Some(i);
        }
        if matches!(ev.class, Class::Pageview | Class::Heartbeat)
            && let Some(post) = Derive::pageview_post_id(ev)
        {
            post_run.see(post, i, events, &mut |id, e| c.post(id, e).observe(e));
        }
        if matches!(ev.class, Class::Videostart | Class::Vheartbeat)
            && let Some(url) = ev.str(Field::MetadataCanonicalUrl)
        {
            video_run.see(url, i, events, &mut |id, e| c.video(id, e).observe(e));
        }
        if ev.class.is_standard() && Derive::has_utm(ev) {
            c.campaign(keys.key(events, i, Recipe::Utm), ev).observe(ev);
        }
    }
    if let Some((_, at, n)) = day_run {
        c.day(d, at).events += n;
    }
    let extra_last = match extra_last_at.and_then(|i| events.get(i)) {
        Some(ev) => {
            c.last_extra = Some((ev.ts_action(), ev.event_id().into(), ev.extra.clone()));
            ev.extra.clone()
        }
        None => Value::Null,
    };
    post_run.end(events, &mut |id, e| c.post(id, e).observe(e));
    video_run.end(events, &mut |id, e| c.video(id, e).observe(e));
    c.day(d, first.ts_action()).counts.sessions += 1;
    let first_utm = keys.key(events, 0, Recipe::Utm);
    if Derive::has_utm(first) {
        c.campaign(first_utm.clone(), first).sessions += 1;
    }

    let facts = SessionFacts {
        session_key: &session_key,
        first,
        last,
        user_session_number: user.as_ref().map(|u| u.number),
        pageviews: c.pageviews,
        engaged_time: c.engaged_time,
        videoviews: c.videoviews,
        video_engaged_time: c.video_engaged_time,
        custom_events: c.custom_events,
        is_late: user.is_none(),
        user: user.as_ref().map(|u| SessionUserFacts {
            is_new: u.is_new,
            pageviews_before: u.pageviews_before,
            rolling_pageviews_before: u.rolling_pageviews_before,
            session_pageviews: c.pageviews,
        }),
        extra_first,
        extra_last,
    };
    // The visitor key is the md5 of the first event's apikey and visitor_site_id whenever
    // both are non-empty texts (every event of the visitor then has the same two texts).
    let non_empty = |f| first.str(f).is_some_and(|s| !s.is_empty());
    let session_keys = SessionKeys {
        session_key: session_key_value,
        session_id: keys.key(events, 0, Recipe::SessionId),
        avid: if non_empty(Field::Apikey) && non_empty(Field::VisitorSiteId) {
            avid.clone()
        } else {
            Derive::apikey_visitor_id(first)
        },
        utm_id: first_utm,
    };
    em.row(Table::Sessions, out, |buf| {
        d.push_session_keyed(&facts, session_keys, buf)
    });
    em.keys.push((Table::Sessions, session_key));
    c
}

/// The current run of consecutive sightings (events `first..=last`) of one post or video
/// in [`build`]'s per-event loop; its first event was observed when the run started.
#[derive(Default)]
struct ContentRun<'e> {
    run: Option<(&'e str, usize, usize)>,
}

impl<'e> ContentRun<'e> {
    /// Event `i` is a sighting of `id`: extends the run, or ends it (observing its last
    /// event) and starts another (observing `events[i]`).
    fn see(
        &mut self,
        id: &'e str,
        i: usize,
        events: &'e [Event],
        observe: &mut dyn FnMut(&'e str, &'e Event),
    ) {
        if let Some((run_id, _, last)) = &mut self.run
            && *run_id == id
        {
            *last = i;
            return;
        }
        self.end(events, observe);
        if let Some(ev) = events.get(i) {
            observe(id, ev);
            self.run = Some((id, i, i));
        }
    }

    /// Ends the run: observes its last event (its first was observed when it started).
    fn end(&mut self, events: &'e [Event], observe: &mut dyn FnMut(&'e str, &'e Event)) {
        if let Some((id, first, last)) = self.run.take()
            && last != first
            && let Some(ev) = events.get(last)
        {
            observe(id, ev);
        }
    }
}
