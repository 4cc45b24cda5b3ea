//! Golden scenarios worked by hand from SPEC.md, one per rule.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use dpl_core::{
    Arrival, Class, DecodeStats, DecodedBatch, Event, Field, RowBatch, Schema, Table, Value,
    micros_of,
};
use jiff::SignedDuration;

use crate::{Checkpoint, SessionizeConfig, SessionizeStats, Sessionizer};

/// UTC micros of `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn t(s: &str) -> i64 {
    micros_of(s.parse::<jiff::civil::DateTime>().unwrap())
}

/// An event with sensible defaults: apikey `example.com`, url `http://example.com/<post>`
/// where post is `a`, the action of its class.
pub(crate) fn ev(class: Class, id: &str, visitor: &str, ts: &str) -> Event {
    let mut e = Event::empty(class, Arrival { object: 0, line: 0 });
    e.set(Field::Apikey, Value::text("example.com"));
    e.set(Field::EventId, Value::text(id));
    e.set(Field::VisitorSiteId, Value::text(visitor));
    e.set(Field::TsAction, Value::Ts(t(ts)));
    e.set(
        Field::Action,
        Value::text(if class == Class::Bot {
            "pageview"
        } else {
            class.as_str()
        }),
    );
    e.set(Field::Url, Value::text("http://example.com/a"));
    e.set(Field::SessionId, Value::Int(1));
    e
}

pub(crate) trait With {
    fn with(self, f: Field, v: Value) -> Self;
    fn inc(self, secs: i64) -> Self;
    fn url(self, u: &str) -> Self;
}

impl With for Event {
    fn with(mut self, f: Field, v: Value) -> Event {
        self.set(f, v);
        self
    }
    fn inc(self, secs: i64) -> Event {
        self.with(Field::EngagedTimeInc, Value::Int(secs))
    }
    fn url(self, u: &str) -> Event {
        self.with(Field::Url, Value::text(u))
    }
}

/// Rows of a run, by table.
#[derive(Default, Debug, Clone, PartialEq)]
pub(crate) struct Out {
    pub rows: HashMap<Table, Vec<Vec<Value>>>,
    /// Withdrawn primary keys, by table.
    pub withdrawn: HashMap<Table, Vec<Vec<Value>>>,
}

impl Out {
    /// The same rows with each table's rows in a fixed order (shards interleave).
    fn sorted(mut self) -> Out {
        for rows in self.rows.values_mut().chain(self.withdrawn.values_mut()) {
            rows.sort_by_cached_key(|r| format!("{r:?}"));
        }
        self
    }

    fn add(&mut self, b: RowBatch) {
        let rows = if b.withdraw {
            assert_eq!(b.width, b.table.primary_key().len());
            self.withdrawn.entry(b.table).or_default()
        } else {
            self.rows.entry(b.table).or_default()
        };
        for r in b.rows() {
            assert_eq!(r.len(), b.width);
            rows.push(r.to_vec());
        }
    }
    pub(crate) fn table(&self, t: Table) -> &[Vec<Value>] {
        self.rows.get(&t).map_or(&[], |v| v.as_slice())
    }
    /// The value of `col` in every row of `t`.
    pub(crate) fn col(&self, t: Table, col: &str) -> Vec<Value> {
        let i = schema()
            .index(t, col)
            .unwrap_or_else(|| panic!("no column {col}"));
        self.table(t).iter().map(|r| r[i].clone()).collect()
    }
    /// The row of `t` whose `key_col` is the text `key`.
    pub(crate) fn row(&self, t: Table, key_col: &str, key: &str) -> Row {
        let i = schema().index(t, key_col).unwrap();
        let matches: Vec<_> = self
            .table(t)
            .iter()
            .filter(|r| r[i].as_str() == Some(key))
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "rows of {} with {key_col} = {key}",
            t.name()
        );
        Row {
            table: t,
            values: matches[0].clone(),
        }
    }
}

pub(crate) struct Row {
    table: Table,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn get(&self, col: &str) -> &Value {
        let i = schema()
            .index(self.table, col)
            .unwrap_or_else(|| panic!("no column {col}"));
        &self.values[i]
    }
    fn int(&self, col: &str) -> i64 {
        self.get(col)
            .as_int()
            .unwrap_or_else(|| panic!("{col} = {:?}", self.get(col)))
    }
    fn text(&self, col: &str) -> &str {
        self.get(col)
            .as_str()
            .unwrap_or_else(|| panic!("{col} = {:?}", self.get(col)))
    }
    fn bool(&self, col: &str) -> bool {
        self.get(col)
            .as_bool()
            .unwrap_or_else(|| panic!("{col} = {:?}", self.get(col)))
    }
}

pub(crate) fn schema() -> Arc<Schema> {
    Arc::new(Schema::default())
}

pub(crate) fn batch(object: u32, seq: u32, last: bool, events: Vec<Event>) -> DecodedBatch {
    DecodedBatch {
        object,
        seq,
        last,
        events,
        errors: Vec::new(),
        stats: DecodeStats::default(),
    }
}

/// One run over `events` (in this arrival order, one batch), from `ck`.
pub(crate) fn run_with(
    config: &SessionizeConfig,
    ck: Option<Checkpoint>,
    events: Vec<Event>,
) -> (Out, Checkpoint, SessionizeStats) {
    let mut s = Sessionizer::new(config.clone(), schema(), ck).unwrap();
    let mut out = Out::default();
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.arrival = Arrival {
                object: 0,
                line: i as u64 + 1,
            };
            e
        })
        .collect();
    s.push(batch(0, 0, true, events), &mut |b| out.add(b));
    let (ck, stats) = s.finish("run", &mut |b| out.add(b));
    (out, ck, stats)
}

pub(crate) fn run(events: Vec<Event>) -> (Out, SessionizeStats) {
    let (out, _, stats) = run_with(&SessionizeConfig::default(), None, events);
    (out, stats)
}

fn avid(visitor: &str) -> String {
    let e = ev(Class::Pageview, "x", visitor, "2024-01-01 00:00:00");
    crate::derive::Derive::apikey_visitor_id(&e).to_string()
}

#[test]
fn reloads_split_heartbeats_between_pageviews() {
    // Two pageviews with the same pageview_key (a reload) at 10:00:00 and 10:01:00.
    let (out, _) = run(vec![
        ev(Class::Heartbeat, "h0", "v", "2024-05-01 09:59:55").inc(3),
        ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00"),
        ev(Class::Heartbeat, "h1", "v", "2024-05-01 10:00:10").inc(10),
        ev(Class::Pageview, "p2", "v", "2024-05-01 10:01:00"),
        // Same ts_action as p2, an event_id ordered before it: still counts as after p2.
        ev(Class::Heartbeat, "a", "v", "2024-05-01 10:01:00").inc(5),
        ev(Class::Heartbeat, "h3", "v", "2024-05-01 10:01:10").inc(7),
    ]);
    let p1 = out.row(Table::Pageviews, "event_id", "p1");
    let p2 = out.row(Table::Pageviews, "event_id", "p2");
    // h0 precedes every pageview: it goes to the earliest, p1.
    assert_eq!(p1.int("engaged_time"), 13);
    assert_eq!(p2.int("engaged_time"), 12);
    assert_eq!(p1.int("pageview_sequence"), 1);
    assert_eq!(p2.int("pageview_sequence"), 2);
    assert!(p1.bool("is_entry") && !p1.bool("is_exit"));
    assert!(!p2.bool("is_entry") && p2.bool("is_exit"));
    assert_eq!(p1.text("next_pageview_post_id"), "http://example.com/a");
    assert!(p1.get("previous_pageview_post_id").is_null());
    assert_eq!(out.table(Table::Pageviews).len(), 2);
    let s = &out.table(Table::Sessions);
    assert_eq!(s.len(), 1);
    let sk = p1.text("session_key").to_owned();
    let s = out.row(Table::Sessions, "session_key", &sk);
    assert_eq!(s.int("pageviews"), 2);
    assert_eq!(s.int("engaged_time"), 25);
    assert_eq!(s.text("entry_url"), "http://example.com/a");
    // The session starts with the heartbeat h0.
    assert_eq!(
        s.get("session_start_ts"),
        &Value::Ts(t("2024-05-01 09:59:55"))
    );
    assert_eq!(s.int("session_duration_seconds"), 75);
}

#[test]
fn orphan_heartbeats_and_vheartbeats_make_zero_counter_rows() {
    let (out, _) = run(vec![
        ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00").url("http://example.com/v"),
        // Heartbeats of a page whose pageview was lost (other pageview_id).
        ev(Class::Heartbeat, "h2", "v", "2024-05-01 10:00:20")
            .with(Field::PageviewId, Value::text("lost"))
            .inc(10),
        ev(Class::Heartbeat, "h1", "v", "2024-05-01 10:00:10")
            .with(Field::PageviewId, Value::text("lost"))
            .inc(5),
        // Video heartbeats without their videostart, on the page of p1.
        ev(Class::Vheartbeat, "vh1", "v", "2024-05-01 10:00:30")
            .url("http://example.com/v")
            .with(Field::MetadataCanonicalUrl, Value::text("http://video/1"))
            .with(Field::VideostartId, Value::text("vs-lost"))
            .inc(20),
        ev(Class::Vheartbeat, "vh2", "v", "2024-05-01 10:00:50")
            .url("http://example.com/v")
            .with(Field::MetadataCanonicalUrl, Value::text("http://video/1"))
            .with(Field::VideostartId, Value::text("vs-lost"))
            .inc(50),
    ]);
    assert_eq!(out.table(Table::Pageviews).len(), 2);
    // The orphan row is built from the first heartbeat by time (h1), with both increments.
    let o = out.row(Table::Pageviews, "event_id", "h1");
    assert_eq!(o.int("pageview_counter"), 0);
    assert!(!o.bool("pageview_match"));
    assert_eq!(o.int("engaged_time"), 15);
    assert!(o.get("pageview_sequence").is_null());
    assert!(!o.bool("is_entry") && !o.bool("is_exit"));
    let p1 = out.row(Table::Pageviews, "event_id", "p1");
    assert_eq!(p1.int("engaged_time"), 0);
    assert!(p1.bool("is_entry") && p1.bool("is_exit"));
    // The orphan video row from vh1 finds p1 (same url, referrer, session...) as parent.
    let v = out.row(Table::Videoviews, "event_id", "vh1");
    assert_eq!(v.int("videostart_counter"), 0);
    assert!(!v.bool("videostart_match"));
    assert_eq!(v.int("video_engaged_time"), 70);
    assert_eq!(v.text("watch_category"), "Deep Watch");
    assert_eq!(v.get("pageview_key"), p1.get("pageview_key"));
    assert_eq!(p1.int("videoviews"), 0);
    assert_eq!(p1.int("video_engaged_time"), 70);
    let s = out.row(Table::Sessions, "session_key", p1.text("session_key"));
    assert_eq!(s.int("pageviews"), 1);
    assert_eq!(s.int("engaged_time"), 15);
    assert_eq!(s.int("videoviews"), 0);
    assert_eq!(s.int("video_engaged_time"), 70);
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("v"));
    assert_eq!(u.int("user_total_pageviews"), 1);
    assert_eq!(u.int("user_total_engaged_time"), 15);
    assert_eq!(u.int("user_total_video_engaged_time"), 70);
    let vc = out.row(
        Table::VideoContent,
        "metadata_canonical_url",
        "http://video/1",
    );
    assert_eq!(vc.int("videoviews"), 0);
    assert_eq!(vc.int("video_engaged_time"), 70);
}

#[test]
fn videostart_attribution_and_parent_pageview() {
    let video = |e: Event| {
        e.url("http://example.com/a")
            .with(Field::MetadataCanonicalUrl, Value::text("http://video/2"))
            .with(Field::VideostartId, Value::text("vs1"))
    };
    let (out, _) = run(vec![
        ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00"),
        // A pageview of another url: not a parent candidate.
        ev(Class::Pageview, "p2", "v", "2024-05-01 10:00:05").url("http://example.com/b"),
        video(ev(Class::Videostart, "s1", "v", "2024-05-01 10:00:10")),
        video(ev(Class::Vheartbeat, "vh1", "v", "2024-05-01 10:00:20")).inc(10),
        video(ev(Class::Vheartbeat, "vh2", "v", "2024-05-01 10:00:30")).inc(10),
    ]);
    let s1 = out.row(Table::Videoviews, "event_id", "s1");
    assert_eq!(s1.int("video_engaged_time"), 20);
    assert_eq!(s1.int("videostart_counter"), 1);
    assert_eq!(s1.int("videoview_sequence"), 1);
    assert_eq!(s1.text("watch_category"), "Watch");
    let p1 = out.row(Table::Pageviews, "event_id", "p1");
    assert_eq!(s1.get("pageview_key"), p1.get("pageview_key"));
    assert_eq!(p1.int("videoviews"), 1);
    assert_eq!(p1.int("video_engaged_time"), 20);
    let p2 = out.row(Table::Pageviews, "event_id", "p2");
    assert_eq!(p2.int("videoviews"), 0);
    assert_eq!(p1.text("next_pageview_post_id"), "http://example.com/b");
    assert_eq!(p2.text("previous_pageview_post_id"), "http://example.com/a");
}

#[test]
fn a_gap_of_exactly_idle_timeout_does_not_split_one_microsecond_more_does() {
    let mut late = ev(Class::Pageview, "c", "w", "2024-05-01 11:00:00");
    late.set(Field::TsAction, Value::Ts(t("2024-05-01 11:00:00") + 1));
    let (out, _) = run(vec![
        ev(Class::Pageview, "a", "v", "2024-05-01 10:00:00"),
        ev(Class::Pageview, "b", "v", "2024-05-01 10:30:00"),
        ev(Class::Pageview, "a", "w", "2024-05-01 10:30:00")
            .with(Field::EventId, Value::text("w1")),
        late,
        ev(Class::Pageview, "c2", "w", "2024-05-01 11:30:01"),
    ]);
    let sessions = out.col(Table::Sessions, "apikey_visitor_id");
    let count = |v: &str| {
        sessions
            .iter()
            .filter(|a| a.as_str() == Some(&avid(v)))
            .count()
    };
    assert_eq!(count("v"), 1, "a 30m gap splits");
    assert_eq!(count("w"), 3, "30m + 1us and 30m + 1s gaps do not split");
    let a = out.row(Table::Pageviews, "event_id", "a");
    let b = out.row(Table::Pageviews, "event_id", "b");
    assert_eq!(a.get("session_key"), b.get("session_key"));
    let numbers: Vec<i64> = out
        .table(Table::Sessions)
        .iter()
        .zip(&sessions)
        .filter(|(_, a)| a.as_str() == Some(&avid("w")))
        .map(|(r, _)| {
            let i = schema()
                .index(Table::Sessions, "user_session_number")
                .unwrap();
            r[i].as_int().unwrap()
        })
        .collect();
    let mut sorted = numbers.clone();
    sorted.sort();
    assert_eq!(sorted, vec![1, 2, 3]);
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("w"));
    assert_eq!(u.int("user_total_sessions"), 3);
    assert_eq!(u.text("user_type"), "Returning");
}

#[test]
fn sessions_across_utc_midnight_local_midnight_and_dst() {
    let (out, _) = run(vec![
        // 19:50 and 20:10 EDT on June 1: one local day although UTC changes day.
        ev(Class::Pageview, "u1", "utc", "2024-06-01 23:50:00"),
        ev(Class::Pageview, "u2", "utc", "2024-06-02 00:10:00"),
        // 23:50 EDT June 1 and 00:10 EDT June 2: one session over two local days.
        ev(Class::Pageview, "l1", "local", "2024-06-02 03:50:00"),
        ev(Class::Pageview, "l2", "local", "2024-06-02 04:10:00"),
        // 2024-03-10: 01:50 EST then 03:10 EDT, 20 minutes apart.
        ev(Class::Pageview, "d1", "dst", "2024-03-10 06:50:00"),
        ev(Class::Pageview, "d2", "dst", "2024-03-10 07:10:00"),
    ]);
    let day = |y, m, d| dpl_core::day_number(jiff::civil::date(y, m, d));
    let daily = |v: &str| -> Vec<(i32, i64, i64)> {
        let a = avid(v);
        let rows: Vec<_> = out
            .table(Table::UserDaily)
            .iter()
            .filter(|r| r[0].as_str() == Some(&a))
            .collect();
        let i = |c| schema().index(Table::UserDaily, c).unwrap();
        rows.iter()
            .map(|r| {
                let Value::Date(d) = r[i("date")] else {
                    panic!("date")
                };
                (
                    d,
                    r[i("pageviews")].as_int().unwrap(),
                    r[i("sessions")].as_int().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(daily("utc"), vec![(day(2024, 6, 1), 2, 1)]);
    assert_eq!(
        daily("local"),
        vec![(day(2024, 6, 1), 1, 1), (day(2024, 6, 2), 1, 0)]
    );
    assert_eq!(daily("dst"), vec![(day(2024, 3, 10), 2, 1)]);
    let d1 = out.row(Table::Pageviews, "event_id", "d1");
    let s = out.row(Table::Sessions, "session_key", d1.text("session_key"));
    assert_eq!(
        s.get("session_start_ts_tz"),
        &Value::Ts(t("2024-03-10 01:50:00"))
    );
    assert_eq!(
        s.get("session_end_ts_tz"),
        &Value::Ts(t("2024-03-10 03:10:00"))
    );
    assert_eq!(s.int("session_duration_seconds"), 1200);
    assert_eq!(s.int("session_date_id"), 20240310);
    let l1 = out.row(Table::Pageviews, "event_id", "l1");
    let s = out.row(Table::Sessions, "session_key", l1.text("session_key"));
    assert_eq!(s.int("session_date_id"), 20240601);
    assert_eq!(s.int("pageviews"), 2);
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("local"));
    assert_eq!(u.get("date_first_seen"), &Value::Date(day(2024, 6, 1)));
    assert_eq!(u.get("date_last_seen"), &Value::Date(day(2024, 6, 2)));
}

#[test]
fn stragglers_inside_and_outside_the_lateness_bound() {
    let (out, stats) = run(vec![
        ev(Class::Pageview, "a1", "a", "2024-05-01 12:00:00"),
        // Exactly allowed_lateness behind the watermark: on time, joins a's open events.
        ev(Class::Pageview, "a0", "a", "2024-05-01 11:00:00"),
        ev(Class::Pageview, "b0", "b", "2024-05-01 11:30:00"),
        // One second more: a straggler, sessionized at run end as a late session.
        ev(Class::Pageview, "c0", "c", "2024-05-01 10:59:59"),
        ev(Class::Pageview, "c1", "c", "2024-05-01 11:05:00"),
    ]);
    assert_eq!(stats.stragglers, 1);
    assert_eq!(stats.late_sessions, 1);
    let a0 = out.row(Table::Pageviews, "event_id", "a0");
    let a1 = out.row(Table::Pageviews, "event_id", "a1");
    assert_ne!(
        a0.get("session_key"),
        a1.get("session_key"),
        "60 minutes apart"
    );
    let c0 = out.row(Table::Pageviews, "event_id", "c0");
    let c1 = out.row(Table::Pageviews, "event_id", "c1");
    assert_ne!(c0.get("session_key"), c1.get("session_key"));
    let late = out.row(Table::Sessions, "session_key", c0.text("session_key"));
    assert!(late.bool("is_late_session"));
    assert!(late.get("user_session_number").is_null());
    assert!(late.get("session_user_type").is_null());
    assert!(late.get("converted_to_loyalty").is_null());
    let key = crate::derive::Derive::late_session_key(&avid("c"), "c0");
    assert_eq!(c0.text("session_key"), &*key);
    let on_time = out.row(Table::Sessions, "session_key", c1.text("session_key"));
    assert!(!on_time.bool("is_late_session"));
    // The late session is not seen by c's on-time session of the same run...
    assert_eq!(on_time.int("user_session_number"), 1);
    assert_eq!(on_time.text("session_user_type"), "New");
    // ...but counts in the totals.
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("c"));
    assert_eq!(u.int("user_total_pageviews"), 2);
    assert_eq!(u.int("user_total_sessions"), 2);
    assert_eq!(u.get("first_seen_ts"), &Value::Ts(t("2024-05-01 10:59:59")));
}

#[test]
fn loyalty_crossed_mid_session() {
    let config = SessionizeConfig {
        loyalty_pageviews: 3,
        rolling_loyalty_pageviews: 3,
        ..SessionizeConfig::default()
    };
    let (out, _, _) = run_with(
        &config,
        None,
        vec![
            ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00"),
            ev(Class::Pageview, "p2", "v", "2024-05-01 10:01:00"),
            ev(Class::Pageview, "p3", "v", "2024-05-02 10:00:00"),
            ev(Class::Pageview, "p4", "v", "2024-05-02 10:01:00"),
            // 31 days after p1, p2: outside the rolling window of the third session.
            ev(Class::Pageview, "p5", "v", "2024-06-01 10:00:30"),
        ],
    );
    let session = |p: &str| {
        let r = out.row(Table::Pageviews, "event_id", p);
        out.row(Table::Sessions, "session_key", r.text("session_key"))
    };
    let s1 = session("p1");
    assert_eq!(s1.text("session_user_type"), "New");
    assert_eq!(s1.text("session_user_engagement_level"), "Non-Loyalty");
    assert_eq!(s1.text("session_user_engagement_level_end"), "Non-Loyalty");
    assert!(!s1.bool("converted_to_loyalty"));
    let s2 = session("p3");
    assert_eq!(s2.text("session_user_type"), "Returning");
    assert_eq!(s2.int("user_session_number"), 2);
    assert_eq!(s2.text("session_user_engagement_level"), "Non-Loyalty");
    assert_eq!(s2.text("session_user_engagement_level_end"), "Loyalty");
    assert!(s2.bool("converted_to_loyalty"));
    assert_eq!(s2.text("session_rolling_30_day_user_type"), "Non-Loyalty");
    let s3 = session("p5");
    assert_eq!(s3.text("session_user_engagement_level"), "Loyalty");
    assert!(!s3.bool("converted_to_loyalty"));
    // [2024-05-02 10:00:30, 2024-06-01 10:00:30) holds p3 and p4 only.
    assert_eq!(s3.text("session_rolling_30_day_user_type"), "Non-Loyalty");
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("v"));
    assert_eq!(u.text("user_engagement_level"), "Loyalty");
    // Local days [2024-05-03, 2024-06-01]: p3 and p4 (2024-05-02 local) are out.
    assert_eq!(u.int("rolling_30_day_pageviews"), 1);
    assert_eq!(u.text("rolling_30_day_user_type"), "Non-Loyalty");
}

#[test]
fn subscriber_conversion_in_extra_data() {
    let extra = |e: Event, v: &str| {
        let mut e = e;
        e.extra = Value::text(v);
        e
    };
    let (out, _) = run(vec![
        ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00"),
        extra(
            ev(Class::Pageview, "p2", "v", "2024-05-01 10:01:00"),
            "anonymous",
        ),
        ev(Class::Heartbeat, "h1", "v", "2024-05-01 10:02:00"),
        extra(
            ev(Class::Custom, "c1", "v", "2024-05-01 10:03:00"),
            "subscriber",
        ),
        ev(Class::Pageview, "p3", "v", "2024-05-01 10:04:00"),
    ]);
    let p1 = out.row(Table::Pageviews, "event_id", "p1");
    let s = out.row(Table::Sessions, "session_key", p1.text("session_key"));
    assert_eq!(s.text("custom_extra_data_first"), "anonymous");
    assert_eq!(s.text("custom_extra_data_last"), "subscriber");
    assert_eq!(s.int("custom_events"), 1);
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("v"));
    assert_eq!(u.text("last_custom_extra_data"), "subscriber");
    assert_eq!(u.int("user_total_custom_events"), 1);
    let c = out.row(Table::CustomEvents, "event_id", "c1");
    assert_eq!(c.get("session_key"), p1.get("session_key"));
}

#[test]
fn bots_and_duplicates_are_kept_out_of_every_metric() {
    let (out, stats) = run(vec![
        ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00")
            .with(Field::UtmCampaign, Value::text("spring")),
        ev(Class::Bot, "b1", "v", "2024-05-01 10:00:30")
            .with(Field::UtmCampaign, Value::text("spring")),
        // A copy of p1 hours later in arrival, and a copy of the bot event.
        ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00")
            .with(Field::UtmCampaign, Value::text("spring")),
        ev(Class::Bot, "b1", "v", "2024-05-01 10:00:30"),
        ev(Class::Heartbeat, "h1", "v", "2024-05-01 10:00:40").inc(8),
        ev(Class::Heartbeat, "h1", "v", "2024-05-01 10:00:40").inc(8),
    ]);
    assert_eq!(stats.duplicates, 3);
    assert_eq!(out.table(Table::BotTraffic).len(), 1);
    assert_eq!(out.table(Table::Pageviews).len(), 1);
    let p1 = out.row(Table::Pageviews, "event_id", "p1");
    assert_eq!(p1.int("engaged_time"), 8);
    let s = out.row(Table::Sessions, "session_key", p1.text("session_key"));
    assert_eq!((s.int("pageviews"), s.int("engaged_time")), (1, 8));
    assert_eq!(
        s.get("session_end_ts"),
        &Value::Ts(t("2024-05-01 10:00:40"))
    );
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("v"));
    assert_eq!(u.int("user_total_pageviews"), 1);
    assert_eq!(u.int("user_total_engaged_time"), 8);
    let c = out.row(
        Table::PostContent,
        "pageview_post_id",
        "http://example.com/a",
    );
    assert_eq!((c.int("pageviews"), c.int("engaged_time")), (1, 8));
    let k = &out.table(Table::Campaigns);
    assert_eq!(k.len(), 1);
    let i = |c| schema().index(Table::Campaigns, c).unwrap();
    assert_eq!(k[0][i("pageviews")], Value::Int(1));
    assert_eq!(k[0][i("sessions")], Value::Int(1));
    assert_eq!(k[0][i("utm_campaign")], Value::text("spring"));
    let d = &out.table(Table::UserDaily);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0][schema().index(Table::UserDaily, "pageviews").unwrap()],
        Value::Int(1)
    );
}

#[test]
fn copies_further_apart_than_the_dedupe_window_are_a_key_conflict() {
    // SPEC.md section 4: within a run the on-time row wins and the other copy is counted,
    // not loaded. Ids are only remembered within the window (bounded memory), so the
    // sessionizer takes the late copy as a new event: a straggler here, in a late session.
    // Both rows are emitted, the on-time one first; the sink keeps the first staged row per
    // key and counts the other. The copy's contribution to the totals is counted, as for
    // copies across runs.
    let config = SessionizeConfig {
        dedupe_window: SignedDuration::from_hours(2),
        ..SessionizeConfig::default()
    };
    let (out, _, stats) = run_with(
        &config,
        None,
        vec![
            ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00"),
            ev(Class::Pageview, "p2", "w", "2024-05-01 13:00:00"),
            ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00"),
        ],
    );
    assert_eq!(stats.duplicates, 0);
    assert_eq!(stats.stragglers, 1);
    assert_eq!(stats.late_sessions, 1);
    assert_eq!(
        out.col(Table::Pageviews, "event_id"),
        vec![Value::text("p1"), Value::text("p2"), Value::text("p1")]
    );
    let late = out.col(Table::Pageviews, "session_key");
    let on_time = out.row(Table::Sessions, "session_key", late[0].as_str().unwrap());
    assert!(
        !on_time.bool("is_late_session"),
        "the on-time row comes first"
    );
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("v"));
    assert_eq!(u.int("user_total_pageviews"), 2);
}

#[test]
fn dedupe_ids_leave_memory_within_a_run() {
    // One visitor, a pageview an hour for four days, one batch each: with a 2h window at
    // most the ids of the last two hours (three, 2h exactly is within) are remembered at any
    // time, however long the run; a copy within the window is still a duplicate.
    let config = SessionizeConfig {
        dedupe_window: SignedDuration::from_hours(2),
        ..SessionizeConfig::default()
    };
    let mut s = Sessionizer::new(config, schema(), None).unwrap();
    let mut out = Out::default();
    let mut most = 0;
    for h in 0..96u32 {
        let ts = format!("2024-05-{:02} {:02}:00:00", 1 + h / 24, h % 24);
        let e = ev(Class::Pageview, &format!("p{h}"), "v", &ts);
        s.push(batch(h, 0, true, vec![e]), &mut |b| out.add(b));
        most = most.max(s.dedupe_len());
    }
    assert_eq!(most, 3);
    let copy = ev(Class::Pageview, "p94", "v", "2024-05-04 22:00:00");
    s.push(batch(96, 0, true, vec![copy]), &mut |b| out.add(b));
    let (_, stats) = s.finish("run", &mut |b| out.add(b));
    assert_eq!(stats.duplicates, 1);
    assert_eq!(out.table(Table::Pageviews).len(), 96);
}

#[test]
fn a_changed_setting_is_an_error_naming_it() {
    let (_, ck, _) = run_with(
        &SessionizeConfig::default(),
        None,
        vec![ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00")],
    );
    let config = SessionizeConfig {
        idle_timeout: SignedDuration::from_mins(45),
        ..SessionizeConfig::default()
    };
    let err = Sessionizer::new(config, schema(), Some(ck)).err().unwrap();
    let msg = err.to_string();
    assert!(msg.starts_with("idle_timeout was 30m"), "{msg}");
    assert!(msg.contains("is 45m now"), "{msg}");
    assert!(msg.contains("empty one"), "{msg}");

    for (config, schema, setting) in [
        (
            SessionizeConfig {
                timezone: "UTC".to_owned(),
                ..SessionizeConfig::default()
            },
            schema(),
            "timezone was \"America/New_York\"",
        ),
        (
            SessionizeConfig {
                dedupe_window: SignedDuration::from_hours(24),
                ..SessionizeConfig::default()
            },
            schema(),
            "dedupe_window was 48h",
        ),
        (
            SessionizeConfig {
                rolling_window_days: 7,
                ..SessionizeConfig::default()
            },
            schema(),
            "rolling_window_days was 30",
        ),
        (
            SessionizeConfig::default(),
            Arc::new(Schema::new("subscriber").unwrap()),
            "extra_data_column was \"custom_extra_data\"",
        ),
    ] {
        let (_, ck, _) = run_with(
            &SessionizeConfig::default(),
            None,
            vec![ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00")],
        );
        let err = Sessionizer::new(config, schema, Some(ck)).err().unwrap();
        assert!(err.to_string().starts_with(setting), "{err}");
    }
    // Settings the state does not depend on may change.
    let (_, ck, _) = run_with(
        &SessionizeConfig::default(),
        None,
        vec![ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00")],
    );
    let config = SessionizeConfig {
        skim_seconds: 20,
        batch_rows: 5,
        ..SessionizeConfig::default()
    };
    assert!(Sessionizer::new(config, schema(), Some(ck)).is_ok());
}

fn open_session_events() -> (Vec<Event>, Vec<Event>) {
    let day1 = vec![
        ev(Class::Pageview, "p1", "v", "2024-05-01 23:40:00")
            .with(Field::UtmSource, Value::text("news")),
        ev(Class::Heartbeat, "h1", "v", "2024-05-01 23:41:00")
            .inc(20)
            .with(Field::UtmSource, Value::text("news")),
        ev(Class::Pageview, "q1", "w", "2024-05-01 12:00:00"),
        ev(Class::Pageview, "p2", "v", "2024-05-01 23:55:00"),
    ];
    let day2 = vec![
        ev(Class::Heartbeat, "h2", "v", "2024-05-02 00:10:00").inc(30),
        ev(Class::Pageview, "p3", "v", "2024-05-02 00:20:00"),
        // Another visitor's event moves the watermark far enough to close v's session.
        ev(Class::Pageview, "q2", "w", "2024-05-02 05:00:00"),
        ev(Class::Pageview, "q3", "w", "2024-05-02 05:05:00"),
    ];
    (day1, day2)
}

#[test]
fn an_open_session_is_reemitted_complete_by_the_next_run_under_the_same_key() {
    let (day1, day2) = open_session_events();
    let config = SessionizeConfig::default();
    let (out1, ck, stats1) = run_with(&config, None, day1.clone());
    assert_eq!(stats1.open_sessions, 1);
    assert_eq!(stats1.users, 2, "w has a record, v only an open session");
    let p1 = out1.row(Table::Pageviews, "event_id", "p1");
    let key = p1.text("session_key").to_owned();
    let s = out1.row(Table::Sessions, "session_key", &key);
    assert_eq!(s.int("pageviews"), 2);
    let u = out1.row(Table::Users, "apikey_visitor_id", &avid("v"));
    assert_eq!(u.int("user_total_pageviews"), 2);
    assert_eq!(u.int("user_total_sessions"), 1);

    // Through the file, as the binary does.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessionize.ckpt");
    ck.save(&path).unwrap();
    let ck = Checkpoint::load(&path).unwrap().unwrap();
    assert_eq!(ck.run_id(), "run");
    let (out2, _, stats2) = run_with(&config, Some(ck), day2.clone());
    assert_eq!(stats2.duplicates, 0);
    let s2 = out2.row(Table::Sessions, "session_key", &key);
    assert_eq!(s2.int("pageviews"), 3);
    assert_eq!(s2.int("engaged_time"), 50);
    let u2 = out2.row(Table::Users, "apikey_visitor_id", &avid("v"));
    assert_eq!(
        u2.int("user_total_pageviews"),
        3,
        "open session counted once"
    );
    assert_eq!(u2.int("user_total_sessions"), 1);

    // Equal to one run over both days.
    let mut all = day1;
    all.extend(day2);
    let (one, _, _) = run_with(&config, None, all);
    for t in [
        Table::Sessions,
        Table::Pageviews,
        Table::Users,
        Table::PostContent,
    ] {
        let (key_col, keys): (&str, Vec<String>) = match t {
            Table::Sessions => ("session_key", vec![key.clone()]),
            Table::Users => ("apikey_visitor_id", vec![avid("v"), avid("w")]),
            Table::PostContent => ("pageview_post_id", vec!["http://example.com/a".into()]),
            _ => ("event_id", vec!["p1".into(), "p2".into(), "p3".into()]),
        };
        for k in keys {
            assert_eq!(
                out2.row(t, key_col, &k).values,
                one.row(t, key_col, &k).values,
                "{} {k}",
                t.name()
            );
        }
    }
    let d = |o: &Out| {
        let mut v = o.table(Table::UserDaily).to_vec();
        v.sort_by_key(|r| format!("{r:?}"));
        v
    };
    // Every user_daily row of the one-run result equals the last one loaded for its key.
    for r in d(&one) {
        let later = d(&out2)
            .into_iter()
            .chain(d(&out1))
            .find(|x| x[0] == r[0] && x[1] == r[1])
            .unwrap();
        assert_eq!(later, r);
    }
}

#[test]
fn batch_sizes_do_not_change_the_output() {
    let (day1, day2) = open_session_events();
    let mut all = day1;
    all.extend(day2);
    let (one, _, _) = run_with(&SessionizeConfig::default(), None, all.clone());
    let config = SessionizeConfig {
        batch_rows: 1,
        ..SessionizeConfig::default()
    };
    let mut s = Sessionizer::new(config, schema(), None).unwrap();
    let mut out = Out::default();
    let n = all.len();
    for (i, mut e) in all.into_iter().enumerate() {
        e.arrival = Arrival {
            object: 0,
            line: i as u64 + 1,
        };
        s.push(batch(0, i as u32, i + 1 == n, vec![e]), &mut |b| out.add(b));
    }
    s.finish("run", &mut |b| out.add(b));
    assert_eq!(out, one);
}

#[test]
fn checkpoint_round_trip_and_corrupt_files() {
    let (day1, _) = open_session_events();
    let (_, ck, _) = run_with(&SessionizeConfig::default(), None, day1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.ckpt");
    assert!(Checkpoint::load(&path).unwrap().is_none());
    ck.save(&path).unwrap();
    assert!(!dir.path().join("state.ckpt.tmp").exists());
    let bytes = std::fs::read(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap().unwrap();
    back.save(&path).unwrap();
    let (a, b) = (back.state_summary(), ck.state_summary());
    assert_eq!(a, b);

    let err = |b: &[u8]| {
        std::fs::write(&path, b).unwrap();
        let e = Checkpoint::load(&path).unwrap_err();
        assert!(matches!(e, crate::Error::Checkpoint { .. }), "{e}");
        e.to_string()
    };
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    assert!(err(&flipped).contains("checksum"));
    assert!(err(&bytes[..bytes.len() - 10]).contains("truncated"));
    assert!(err(&bytes[..6]).contains("magic"));
    let mut version = bytes.clone();
    version[8] = 99;
    assert!(err(&version).contains("version 99"));
    assert!(err(b"").contains("magic"));
}

#[tokio::test]
async fn the_stage_restores_arrival_order() {
    let (day1, day2) = open_session_events();
    let mut all = day1;
    all.extend(day2);
    let (one, _, _) = run_with(&SessionizeConfig::default(), None, all.clone());
    // Two objects of 4 events, two batches each, sent in scrambled order.
    let mut batches = Vec::new();
    for (i, mut e) in all.into_iter().enumerate() {
        e.arrival = Arrival {
            object: 0,
            line: i as u64 + 1,
        };
        let (object, seq) = ((i / 4) as u32, ((i % 4) / 2) as u32);
        if i % 2 == 0 {
            batches.push(batch(object, seq, seq == 1, vec![e]));
        } else if let Some(b) = batches.last_mut() {
            b.events.push(e);
        }
    }
    batches.reverse();
    // One shard on one thread, or three shards on threads of their own.
    for shards in [1, 3] {
        let (btx, brx) = async_channel::bounded(8);
        let (rtx, rrx) = async_channel::bounded(64);
        let s = Sessionizer::sharded(SessionizeConfig::default(), schema(), None, shards).unwrap();
        let task = tokio::spawn(crate::run(s, "r".into(), brx, rtx));
        for b in batches.clone() {
            btx.send(b).await.unwrap();
        }
        drop(btx);
        let mut out = Out::default();
        while let Ok(b) = rrx.recv().await {
            out.add(b);
        }
        let (ck, _) = task.await.unwrap().unwrap();
        assert_eq!(ck.run_id(), "r");
        assert_eq!(out.sorted(), one.clone().sorted(), "{shards} shards");

        // A missing batch is an error, never a silent gap.
        let (btx, brx) = async_channel::bounded(8);
        let (rtx, _rrx) = async_channel::bounded(64);
        let s = Sessionizer::sharded(SessionizeConfig::default(), schema(), None, shards).unwrap();
        btx.send(batch(1, 0, true, Vec::new())).await.unwrap();
        drop(btx);
        let e = crate::run(s, "r".into(), brx, rtx).await.unwrap_err();
        assert!(
            matches!(
                e,
                crate::Error::MissingBatch {
                    object: 0,
                    seq: 0,
                    ..
                }
            ),
            "{shards} shards: {e}"
        );

        // Rows nobody receives: an error (the run must not commit), not a hang.
        let (btx, brx) = async_channel::bounded(8);
        let (rtx, rrx) = async_channel::bounded(64);
        drop(rrx);
        let s = Sessionizer::sharded(SessionizeConfig::default(), schema(), None, shards).unwrap();
        for b in batches.clone() {
            btx.send(b).await.unwrap();
        }
        drop(btx);
        let e = crate::run(s, "r".into(), brx, rtx).await.unwrap_err();
        assert!(
            matches!(e, crate::Error::OutputClosed | crate::Error::Task(_)),
            "{shards} shards: {e}"
        );
    }
}

#[test]
fn duplicates_are_found_across_runs() {
    let config = SessionizeConfig::default();
    let (_, ck, _) = run_with(
        &config,
        None,
        vec![ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00")],
    );
    let (out, _, stats) = run_with(
        &config,
        Some(ck),
        vec![
            ev(Class::Pageview, "p1", "v", "2024-05-01 10:00:00"),
            ev(Class::Pageview, "p2", "v", "2024-05-01 10:10:00"),
        ],
    );
    assert_eq!(stats.duplicates, 1);
    // p1 is loaded again once, as part of its session (open at the end of run 1).
    assert_eq!(
        out.col(Table::Pageviews, "event_id"),
        vec![Value::text("p1"), Value::text("p2")]
    );
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("v"));
    assert_eq!(u.int("user_total_pageviews"), 2);
    assert_eq!(u.int("user_total_sessions"), 1);
}

#[test]
fn a_straggler_older_than_daily_retention_skips_user_daily_only() {
    let (out, stats) = run(vec![
        ev(Class::Pageview, "p1", "v", "2024-06-10 12:00:00"),
        ev(Class::Pageview, "far", "w", "2024-06-10 20:00:00"),
        // 36 local days before v's latest day: past the 35 kept days.
        ev(Class::Pageview, "old", "v", "2024-05-05 12:00:00"),
        // A straggler of a visitor with no kept days: loaded into user_daily.
        ev(Class::Pageview, "recent", "x", "2024-06-10 12:00:00"),
    ]);
    assert_eq!(stats.stragglers, 2);
    assert_eq!(stats.user_daily_too_old, 1);
    assert_eq!(
        out.row(Table::Pageviews, "event_id", "old")
            .int("pageview_counter"),
        1
    );
    let u = out.row(Table::Users, "apikey_visitor_id", &avid("v"));
    assert_eq!(u.int("user_total_pageviews"), 2);
    assert_eq!(u.int("user_total_sessions"), 2);
    let days: Vec<_> = out
        .table(Table::UserDaily)
        .iter()
        .filter(|r| r[0].as_str() == Some(avid("v").as_str()))
        .collect();
    assert_eq!(days.len(), 1, "only the on-time day of v");
    let x = out
        .table(Table::UserDaily)
        .iter()
        .filter(|r| r[0].as_str() == Some(avid("x").as_str()))
        .count();
    assert_eq!(x, 1);
}

#[test]
fn invalid_settings_are_rejected_at_start() {
    let bad = [
        SessionizeConfig {
            timezone: "Mars/Olympus".into(),
            ..SessionizeConfig::default()
        },
        SessionizeConfig {
            idle_timeout: SignedDuration::ZERO,
            ..SessionizeConfig::default()
        },
        SessionizeConfig {
            daily_retention_days: 10,
            ..SessionizeConfig::default()
        },
        SessionizeConfig {
            batch_rows: 0,
            ..SessionizeConfig::default()
        },
    ];
    for c in bad {
        let e = Sessionizer::new(c.clone(), schema(), None).err();
        assert!(matches!(e, Some(crate::Error::Config(_))), "{c:?} accepted");
    }
}

#[test]
fn keys_that_an_open_session_no_longer_has_are_withdrawn_by_the_next_run() {
    // Run 1 ends with v's session open: an orphan heartbeat row (h2, its pageview not seen)
    // and an orphan video row (vh1, its videostart not seen), session start 10:00:30.
    let config = SessionizeConfig::default();
    let pv = |e: Event| e.with(Field::PageviewId, Value::text("pv1"));
    let vs = |e: Event| e.with(Field::VideostartId, Value::text("vs1"));
    let day1 = vec![
        pv(ev(Class::Heartbeat, "h2", "v", "2024-05-01 10:00:30")).inc(10),
        vs(ev(Class::Vheartbeat, "vh1", "v", "2024-05-01 10:00:40")).inc(20),
    ];
    let (out1, ck, _) = run_with(&config, None, day1);
    let key1 = out1.col(Table::Sessions, "session_key");
    assert_eq!(
        out1.col(Table::Pageviews, "event_id"),
        vec![Value::text("h2")]
    );
    assert_eq!(
        out1.col(Table::Videoviews, "event_id"),
        vec![Value::text("vh1")]
    );
    assert!(out1.withdrawn.is_empty());

    // Run 2: an earlier heartbeat of the same pageview (h1, 10:00:10, within the lateness)
    // becomes the orphan row's first beat and the session's start; the videostart arrives
    // and takes vh1's engaged time.
    let day2 = vec![
        pv(ev(Class::Heartbeat, "h1", "v", "2024-05-01 10:00:10")).inc(5),
        vs(ev(Class::Videostart, "s1", "v", "2024-05-01 10:00:35")),
    ];
    let (out2, ck2, stats) = run_with(&config, Some(ck), day2);
    assert_eq!(
        out2.col(Table::Pageviews, "event_id"),
        vec![Value::text("h1")]
    );
    let row = out2.row(Table::Pageviews, "event_id", "h1");
    assert_eq!(row.int("engaged_time"), 15);
    assert_eq!(
        out2.col(Table::Videoviews, "event_id"),
        vec![Value::text("s1")]
    );
    let row = out2.row(Table::Videoviews, "event_id", "s1");
    assert_eq!(row.int("video_engaged_time"), 20);
    let key2 = out2.col(Table::Sessions, "session_key");
    assert_ne!(key1, key2);
    let w = |t: Table| out2.withdrawn.get(&t).cloned().unwrap_or_default();
    assert_eq!(w(Table::Sessions), vec![key1]);
    assert_eq!(w(Table::Pageviews), vec![vec![Value::text("h2")]]);
    assert_eq!(w(Table::Videoviews), vec![vec![Value::text("vh1")]]);
    assert_eq!(stats.withdrawn, 3);
    assert_eq!(out2.withdrawn.len(), 3, "nothing else is withdrawn");

    // Run 3 brings nothing for v: the session, still open, is emitted again as it stands
    // and nothing is withdrawn.
    let (out3, _, stats3) = run_with(&config, Some(ck2), vec![]);
    assert_eq!(out3.col(Table::Sessions, "session_key"), key2);
    assert!(out3.withdrawn.is_empty());
    assert_eq!(stats3.withdrawn, 0);
}
