//! One session's rows and its contribution to the totals (SPEC.md section 5).

use dpl_core::{Class, Event, Field, RowBatch, Table, Value};

use crate::derive::{Derive, HashMap, Key};
use crate::emit::Emitter;
use crate::rows::{EventKeys, PageviewFacts, SessionFacts, SessionUserFacts, VideoviewFacts};
use crate::state::Contribution;

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

/// Builds view rows: real views in time order, then one orphan row per key of beats that
/// have no view of that key, in order of their first beat. Beats go to the latest view of
/// their key at or before them (equal `ts_action` counts as before), else the earliest.
fn attribute(
    events: &[Event],
    views: &[usize],
    beats: &[usize],
    key_of: &mut dyn FnMut(&Event) -> Key,
    inc_field: Field,
) -> Vec<ViewRow> {
    let mut rows: Vec<ViewRow> = Vec::with_capacity(views.len());
    let mut by_key: HashMap<Key, Vec<usize>> = HashMap::default();
    for &i in views {
        let Some(ev) = events.get(i) else { continue };
        let key = key_of(ev);
        by_key.entry(key.clone()).or_default().push(rows.len());
        rows.push(ViewRow {
            ev: i,
            real: true,
            key,
            engaged: 0,
            videoviews: 0,
            video_engaged: 0,
        });
    }
    let mut orphans: HashMap<Key, usize> = HashMap::default();
    for &b in beats {
        let Some(beat) = events.get(b) else { continue };
        let key = key_of(beat);
        let inc = beat.int(inc_field).unwrap_or(0);
        let ts = beat.ts_action();
        let target = match by_key.get(&key) {
            Some(list) => {
                let n = list.partition_point(|&r| {
                    rows.get(r)
                        .and_then(|row| events.get(row.ev))
                        .is_some_and(|e| e.ts_action() <= ts)
                });
                list.get(n.saturating_sub(1)).copied()
            }
            None => match orphans.get(&key) {
                Some(&r) => Some(r),
                None => {
                    orphans.insert(key.clone(), rows.len());
                    rows.push(ViewRow {
                        ev: b,
                        real: false,
                        key,
                        engaged: 0,
                        videoviews: 0,
                        video_engaged: 0,
                    });
                    Some(rows.len() - 1)
                }
            },
        };
        if let Some(row) = target.and_then(|r| rows.get_mut(r)) {
            row.engaged = row.engaged.saturating_add(inc);
        }
    }
    rows
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
    let avid = avid.clone();
    let session_key = match user {
        Some(_) => Derive::session_key(&avid, first.ts_action()),
        None => Derive::late_session_key(&avid, first.event_id()),
    };
    let (mut pvs, mut hbs, mut vss, mut vhbs, mut customs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
    let memo = &mut em.memo;
    let mut pv_rows = attribute(
        events,
        &pvs,
        &hbs,
        &mut |e| memo.pageview_key(e),
        Field::EngagedTimeInc,
    );
    let video_rows = attribute(
        events,
        &vss,
        &vhbs,
        &mut |e| memo.videostart_key(e),
        Field::EngagedTimeInc,
    );

    // Parent pageviews of the videoview rows: the latest real pageview at or before the
    // row's defining event with the same PARENT_FIELDS.
    let n_real_pv = pvs.len();
    let mut parents: Vec<Option<usize>> = Vec::with_capacity(video_rows.len());
    for vr in &video_rows {
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
    let post_of = |r: &ViewRow| events.get(r.ev).and_then(Derive::pageview_post_id).cloned();
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
        let keys = EventKeys {
            avid: avid.clone(),
            utm_id: em.memo.utm_id(ev),
            pageview_key: Value::Text(r.key.clone()),
            videostart_key: em.memo.videostart_key(ev),
            session_id: em.memo.parsely_session_id(ev),
        };
        em.row(Table::Pageviews, out, |buf| {
            d.push_pageview_keyed(ev, &facts, keys, buf)
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
            let k = c.campaign(em.memo.utm_id(ev), ev);
            k.pageviews += i64::from(r.real);
            k.engaged_time = k.engaged_time.saturating_add(r.engaged);
        }
    }

    // Videoview rows.
    let n_real_vs = vss.len();
    for (i, (r, parent)) in video_rows.iter().zip(&parents).enumerate() {
        let Some(ev) = events.get(r.ev) else { continue };
        let parent_key = parent.and_then(|p| pv_rows.get(p)).map(|p| &*p.key);
        let facts = VideoviewFacts {
            session_key: &session_key,
            counter: i64::from(r.real),
            matched: r.real,
            video_engaged_time: r.engaged,
            sequence: (r.real && i < n_real_vs).then_some(i as i64 + 1),
            parent_pageview_key: parent_key,
        };
        let keys = EventKeys {
            avid: avid.clone(),
            utm_id: em.memo.utm_id(ev),
            pageview_key: parent
                .and_then(|p| pv_rows.get(p))
                .map_or(Value::Null, |p| Value::Text(p.key.clone())),
            videostart_key: r.key.clone(),
            session_id: em.memo.parsely_session_id(ev),
        };
        em.row(Table::Videoviews, out, |buf| {
            d.push_videoview_keyed(ev, &facts, keys, buf)
        });
        if !r.real {
            em.keys.push((Table::Videoviews, event_id(ev)));
        }
        c.videoviews += i64::from(r.real);
        c.video_engaged_time = c.video_engaged_time.saturating_add(r.engaged);
        let day = c.day(d, ev.ts_action());
        day.counts.videoviews += i64::from(r.real);
        day.counts.video_engaged_time = day.counts.video_engaged_time.saturating_add(r.engaged);
        if let Some(url) = ev.text(Field::MetadataCanonicalUrl) {
            let v = c.video(url, ev);
            v.views += i64::from(r.real);
            v.engaged = v.engaged.saturating_add(r.engaged);
        }
        if Derive::has_utm(ev) {
            let k = c.campaign(em.memo.utm_id(ev), ev);
            k.videoviews += i64::from(r.real);
            k.video_engaged_time = k.video_engaged_time.saturating_add(r.engaged);
        }
    }

    // Custom events.
    for &i in &customs {
        let Some(ev) = events.get(i) else { continue };
        let keys = EventKeys {
            avid: avid.clone(),
            utm_id: em.memo.utm_id(ev),
            pageview_key: Value::Text(em.memo.pageview_key(ev)),
            videostart_key: em.memo.videostart_key(ev),
            session_id: em.memo.parsely_session_id(ev),
        };
        em.row(Table::CustomEvents, out, |buf| {
            d.push_custom_event_keyed(ev, &session_key, keys, buf)
        });
    }
    c.custom_events = customs.len() as i64;

    // Per-event facts: content and campaign sightings, extra values, day event counts.
    let mut extra_first = Value::Null;
    let mut extra_last = Value::Null;
    for ev in events {
        c.day(d, ev.ts_action()).events += 1;
        if !ev.extra.is_null() {
            if extra_first.is_null() {
                extra_first = ev.extra.clone();
            }
            extra_last = ev.extra.clone();
            c.last_extra = Some((ev.ts_action(), ev.event_id().into(), ev.extra.clone()));
        }
        if matches!(ev.class, Class::Pageview | Class::Heartbeat)
            && let Some(post) = Derive::pageview_post_id(ev)
        {
            c.post(post, ev).observe(ev);
        }
        if matches!(ev.class, Class::Videostart | Class::Vheartbeat)
            && let Some(url) = ev.text(Field::MetadataCanonicalUrl)
        {
            c.video(url, ev).observe(ev);
        }
        if ev.class.is_standard() && Derive::has_utm(ev) {
            c.campaign(em.memo.utm_id(ev), ev).observe(ev);
        }
    }
    c.day(d, first.ts_action()).counts.sessions += 1;
    if Derive::has_utm(first) {
        c.campaign(em.memo.utm_id(first), first).sessions += 1;
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
    em.row(Table::Sessions, out, |buf| d.push_session(&facts, buf));
    em.keys.push((Table::Sessions, session_key));
    Some(c)
}

/// The event's `event_id` as a shared string.
fn event_id(ev: &Event) -> Key {
    match ev.get(Field::EventId) {
        Value::Text(s) => s.clone(),
        _ => Key::from(ev.event_id()),
    }
}
