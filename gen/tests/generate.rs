//! Checks the generated files against the summary and against SPEC.md, decoding them here
//! with flate2 + serde_json (independently of dpl-decode).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::OnceLock;

use dpl_gen::{GenConfig, GenObject, GenSummary, generate};
use serde_json::Value;

const EVENTS: u64 = 30_000;
const MIN_US: i64 = 60_000_000;
const HOUR_US: i64 = 60 * MIN_US;

fn cfg() -> GenConfig {
    GenConfig::new(EVENTS, jiff::civil::date(2026, 11, 1), 2, 42)
}

fn data() -> &'static (Vec<GenObject>, GenSummary) {
    static DATA: OnceLock<(Vec<GenObject>, GenSummary)> = OnceLock::new();
    DATA.get_or_init(|| generate(&cfg()))
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.fraction][Z]` as UTC microseconds, per SPEC.md section 1.
fn parse_ts(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date =
        jiff::civil::Date::new(num(0..4)? as i16, num(5..7)? as i8, num(8..10)? as i8).ok()?;
    let time = jiff::civil::Time::new(
        num(11..13)? as i8,
        num(14..16)? as i8,
        num(17..19)? as i8,
        0,
    )
    .ok()?;
    let mut rest = s.get(19..)?;
    let mut micros = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let f = &frac[..digits];
        let mut padded = f.chars().take(6).collect::<String>();
        while padded.len() < 6 {
            padded.push('0');
        }
        micros = padded.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    if !(rest.is_empty() || rest == "Z") {
        return None;
    }
    let ts = date
        .to_datetime(time)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?;
    Some(ts.timestamp().as_microsecond() + micros)
}

/// An integer as SPEC.md reads it: JSON integer or numeric string with `_` separators.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0).then_some(f as i64)
        }),
        Value::String(s) => {
            let t: String = s.chars().filter(|c| *c != '_').collect();
            t.parse::<i64>().ok().or_else(|| {
                let f: f64 = t.parse().ok()?;
                (f.fract() == 0.0).then_some(f as i64)
            })
        }
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The text of a ts field inside md5 keys: seconds only (SPEC.md section 3).
fn ts_key(v: &Value) -> String {
    v.as_str()
        .and_then(parse_ts)
        .map(|us| (us.div_euclid(1_000_000)).to_string())
        .unwrap_or_default()
}

fn lines_of(obj: &GenObject) -> Vec<Vec<u8>> {
    let mut raw = Vec::new();
    if obj.bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(&obj.bytes[..])
            .read_to_end(&mut raw)
            .unwrap();
    } else {
        raw.clone_from(&obj.bytes);
    }
    let mut lines: Vec<Vec<u8>> = raw.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    // The text ends with a newline: the empty piece after it is not a line.
    assert_eq!(
        lines.pop(),
        Some(vec![]),
        "{} does not end with a newline",
        obj.key
    );
    lines
}

/// An event line that passed the error checks, with where it arrived.
struct Line {
    object: usize,
    json: serde_json::Map<String, Value>,
    ts: i64,
}

struct Decoded {
    summary: GenSummary,
    /// First copies of valid events, in arrival order.
    events: Vec<Line>,
    /// (object of the first copy, object of the copy, ts of the event) per duplicate.
    dup_objects: Vec<(usize, usize)>,
}

/// Classifies every line as SPEC.md section 2 does, and counts like [`GenSummary`].
fn decode(objects: &[GenObject]) -> Decoded {
    let mut s = GenSummary {
        objects: objects.len() as u64,
        ..GenSummary::default()
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut visitors = BTreeSet::new();
    let mut max_ts: Option<i64> = None;
    let mut events = Vec::new();
    let mut dup_objects = Vec::new();
    let error = |s: &mut GenSummary, r: &str| *s.errors.entry(r.to_owned()).or_default() += 1;
    for (oi, obj) in objects.iter().enumerate() {
        for line in lines_of(obj) {
            if line.iter().all(u8::is_ascii_whitespace) {
                s.blank_lines += 1;
                continue;
            }
            s.lines += 1;
            let Ok(text) = std::str::from_utf8(&line) else {
                error(&mut s, "invalid_utf8");
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                error(&mut s, "invalid_json");
                continue;
            };
            let Value::Object(map) = v else {
                error(&mut s, "not_an_object");
                continue;
            };
            if map
                .get("action")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                error(&mut s, "missing_action");
                continue;
            }
            let missing = ["apikey", "event_id", "visitor_site_id", "ts_action"]
                .iter()
                .any(|f| {
                    map.get(*f)
                        .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
                });
            if missing {
                error(&mut s, "missing_required_field");
                continue;
            }
            let Some(ts) = map["ts_action"].as_str().and_then(parse_ts) else {
                error(&mut s, "unparseable_required_field");
                continue;
            };
            let id = map["event_id"].as_str().unwrap().to_owned();
            if let Some(first) = seen.get(&id) {
                s.duplicates += 1;
                dup_objects.push((*first, oi));
                continue;
            }
            seen.insert(id, oi);
            if map.get("ua_browser").and_then(Value::as_str) == Some("Googlebot") {
                s.bots += 1;
                events.push(Line {
                    object: oi,
                    json: map,
                    ts,
                });
                continue;
            }
            match map["action"].as_str().unwrap() {
                "pageview" => s.pageviews += 1,
                "heartbeat" => s.heartbeats += 1,
                "videostart" => s.videostarts += 1,
                "vheartbeat" => s.vheartbeats += 1,
                _ => s.custom += 1,
            }
            visitors.insert(map["visitor_site_id"].as_str().unwrap().to_owned());
            if max_ts.is_some_and(|m| ts < m - HOUR_US) {
                s.stragglers += 1;
            }
            max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
            events.push(Line {
                object: oi,
                json: map,
                ts,
            });
        }
    }
    s.visitors = visitors.len() as u64;
    Decoded {
        summary: s,
        events,
        dup_objects,
    }
}

fn decoded() -> &'static Decoded {
    static D: OnceLock<Decoded> = OnceLock::new();
    D.get_or_init(|| decode(&data().0))
}

fn is_bot(l: &Line) -> bool {
    l.json.get("ua_browser").and_then(Value::as_str) == Some("Googlebot")
}

#[test]
fn summary_matches_the_files() {
    let (_, summary) = data();
    assert_eq!(&decoded().summary, summary);
}

#[test]
fn counts_and_rates_are_as_documented() {
    let (_, s) = data();
    assert_eq!(s.lines, EVENTS, "every event line is written, none more");
    let valid = s.pageviews + s.heartbeats + s.videostarts + s.vheartbeats + s.custom + s.bots;
    let errors: u64 = s.errors.values().sum();
    assert_eq!(valid + s.duplicates + errors, s.lines);
    assert_eq!(s.duplicates, 150, "0.5% of 30,000");
    assert_eq!(errors, 60, "0.2% of 30,000");
    assert_eq!(s.bots, ((EVENTS - 210) as f64 * 0.02).round() as u64);
    for reason in [
        "invalid_utf8",
        "invalid_json",
        "not_an_object",
        "missing_action",
        "missing_required_field",
        "unparseable_required_field",
    ] {
        assert_eq!(s.errors.get(reason), Some(&10), "{reason}");
    }
    assert!(s.blank_lines > 0);
    assert!(
        s.pageviews > 1000 && s.heartbeats > 5 * s.pageviews / 2,
        "{s:?}"
    );
    assert!(s.videostarts > 20 && s.vheartbeats > s.videostarts, "{s:?}");
    assert!(s.custom > 20, "{s:?}");
    assert!(s.stragglers >= 1, "{s:?}");
    assert!(s.visitors > 500 && s.visitors <= EVENTS / 20 + 50, "{s:?}");
}

#[test]
fn same_config_same_bytes_and_seed_matters() {
    let small = GenConfig::new(3_000, jiff::civil::date(2026, 3, 7), 2, 9);
    let a = generate(&small);
    let b = generate(&small);
    assert_eq!(a, b);
    let c = generate(&GenConfig { seed: 10, ..small });
    assert_eq!(a.0.len(), c.0.len());
    assert_ne!(a.0, c.0);
}

#[test]
fn layout_day_prefixes_sorted_keys_and_formats() {
    let (objects, _) = data();
    assert_eq!(objects.len(), 48);
    assert!(objects.windows(2).all(|w| w[0].key < w[1].key));
    let mut plain_per_day: BTreeMap<String, usize> = BTreeMap::new();
    let mut multi_member = 0;
    for o in objects {
        let parts: Vec<&str> = o.key.split('/').collect();
        assert_eq!(parts.len(), 5, "{}", o.key);
        assert_eq!(parts[0], "events");
        let day = format!("{}-{}-{}", parts[1], parts[2], parts[3]);
        assert!(day == "2026-11-01" || day == "2026-11-02", "{}", o.key);
        assert!(parts[4].starts_with(&format!("site-{day}-")), "{}", o.key);
        if o.bytes.starts_with(&[0x1f, 0x8b]) {
            assert!(o.key.ends_with(".gz"));
            // A second member starts right after the first one's trailer.
            let d0 = flate2::bufread::GzDecoder::new(&o.bytes[..]);
            let mut d = d0;
            let mut sink = Vec::new();
            d.read_to_end(&mut sink).unwrap();
            if !d.into_inner().is_empty() {
                multi_member += 1;
            }
        } else {
            assert!(o.key.ends_with(".json"));
            *plain_per_day.entry(day).or_default() += 1;
        }
    }
    assert_eq!(plain_per_day.len(), 2);
    assert!(plain_per_day.values().all(|n| *n == 1));
    assert!(multi_member >= 3, "{multi_member}");
    // Lines land in their UTC day of delivery, which is the day of ts_action but for
    // lines delivered just after midnight.
    let start = parse_ts("2026-11-01 00:00:00").unwrap();
    for l in &decoded().events {
        assert!(l.ts >= start && l.ts < start + 48 * HOUR_US);
        let day_of_object = l.object / 24;
        let day_of_ts = ((l.ts - start) / (24 * HOUR_US)) as usize;
        assert!(day_of_object == day_of_ts || day_of_object == day_of_ts + 1);
    }
}

#[test]
fn lines_are_out_of_order_within_minutes_and_stragglers_are_late() {
    let d = decoded();
    let mut unsorted_objects = BTreeSet::new();
    let mut prev: Option<&Line> = None;
    let mut late = 0;
    let mut max_ts = 0;
    for l in d.events.iter().filter(|l| !is_bot(l)) {
        if let Some(p) = prev
            && p.object == l.object
            && l.ts < p.ts
        {
            unsorted_objects.insert(l.object);
        }
        if l.ts < max_ts - HOUR_US {
            late += 1;
        } else {
            // Apart from stragglers, lines are at most a few minutes behind.
            assert!(l.ts >= max_ts - 6 * MIN_US, "{:?}", l.json.get("event_id"));
        }
        max_ts = max_ts.max(l.ts);
        prev = Some(l);
    }
    assert!(unsorted_objects.len() > 10);
    assert_eq!(late, d.summary.stragglers);
}

#[test]
fn duplicates_arrive_in_later_objects() {
    let d = decoded();
    assert_eq!(d.dup_objects.len(), 150);
    for (first, copy) in &d.dup_objects {
        assert!(copy > first || *copy == 47, "{first} {copy}");
    }
}

/// md5-free stand-in for SPEC.md section 3 keys: the joined text itself.
fn pageview_key(m: &serde_json::Map<String, Value>) -> String {
    let g = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    let post = match g("metadata_canonical_url") {
        Value::Null => g("url"),
        v => v,
    };
    [
        text(&g("pageview_id")),
        text(&g("apikey")),
        int(&g("session_id"))
            .map(|i| i.to_string())
            .unwrap_or_default(),
        text(&g("visitor_site_id")),
        text(&post),
        text(&g("referrer")),
        ts_key(&g("ts_session_current")),
    ]
    .join("_")
}

fn videostart_key(m: &serde_json::Map<String, Value>) -> String {
    let g = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    [
        text(&g("videostart_id")),
        text(&g("apikey")),
        int(&g("session_id"))
            .map(|i| i.to_string())
            .unwrap_or_default(),
        text(&g("visitor_site_id")),
        text(&g("url")),
        text(&g("metadata_canonical_url")),
        text(&g("referrer")),
        ts_key(&g("ts_session_current")),
    ]
    .join("_")
}

#[test]
fn heartbeats_match_an_earlier_pageview_and_vheartbeats_a_videostart() {
    let d = decoded();
    let mut pv: HashMap<String, i64> = HashMap::new();
    let mut vs: HashMap<String, i64> = HashMap::new();
    let mut reloads = 0;
    for l in &d.events {
        match l.json["action"].as_str().unwrap() {
            "pageview" if !is_bot(l) => {
                let k = pageview_key(&l.json);
                if pv.contains_key(&k) {
                    reloads += 1;
                }
                let e = pv.entry(k).or_insert(l.ts);
                *e = (*e).min(l.ts);
            }
            "videostart" => {
                vs.insert(videostart_key(&l.json), l.ts);
            }
            _ => {}
        }
    }
    assert!(reloads > 5, "{reloads}");
    let start_ms = parse_ts("2026-11-01 00:00:00").unwrap() / 1000;
    let (mut hb, mut vhb, mut orphans) = (0, 0, 0);
    for l in &d.events {
        match l.json["action"].as_str().unwrap() {
            "heartbeat" => {
                let t = pv.get(&pageview_key(&l.json)).copied();
                hb += 1;
                if int(&l.json["session_timestamp"]).unwrap() < start_ms {
                    // The session began before the data: its pageview may be missing.
                    orphans += u64::from(t.is_none());
                    continue;
                }
                assert!(t.is_some_and(|t| t < l.ts), "{:?}", l.json);
            }
            "vheartbeat" => {
                let t = vs.get(&videostart_key(&l.json)).copied();
                assert!(t.is_some_and(|t| t < l.ts), "{:?}", l.json);
                vhb += 1;
            }
            _ => {}
        }
    }
    assert_eq!((hb, vhb), (d.summary.heartbeats, d.summary.vheartbeats));
    assert!(orphans > 0, "some heartbeats have no pageview in the files");
}

#[test]
fn tracker_sessions_are_the_pipelines_sessions() {
    // Per visitor, in time order: a change of session_id comes after more than 30 minutes
    // idle, and inside a session no gap reaches 30 minutes.
    let d = decoded();
    let mut by_visitor: BTreeMap<String, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for l in d.events.iter().filter(|l| !is_bot(l)) {
        let sid = int(&l.json["session_id"]).unwrap();
        let start = int(&l.json["session_timestamp"]).unwrap();
        by_visitor
            .entry(l.json["visitor_site_id"].as_str().unwrap().to_owned())
            .or_default()
            .push((l.ts, sid, start));
    }
    let mut returning = 0;
    let mut crossing_midnight = 0;
    for events in by_visitor.values_mut() {
        events.sort();
        if events.first().map(|e| e.1) != events.last().map(|e| e.1) {
            returning += 1;
        }
        for w in events.windows(2) {
            let gap = w[1].0 - w[0].0;
            if w[0].1 == w[1].1 {
                assert!(gap < 30 * MIN_US, "{w:?}");
                assert_eq!(w[0].2, w[1].2, "session_timestamp is per session");
                if w[0].0.div_euclid(24 * HOUR_US) != w[1].0.div_euclid(24 * HOUR_US) {
                    crossing_midnight += 1;
                }
            } else {
                assert!(gap > 30 * MIN_US, "{w:?}");
                assert!(w[1].1 > w[0].1, "session_id counts up: {w:?}");
            }
        }
    }
    assert!(returning > 20, "{returning}");
    assert!(crossing_midnight > 0);
}

#[test]
fn content_utm_subscribers_and_leniency_are_present() {
    let d = decoded();
    let mut buckets = BTreeSet::new();
    let (mut utm, mut pageviews) = (0, 0);
    let (mut subscriber, mut converted) = (BTreeSet::new(), BTreeSet::new());
    let mut anonymous = BTreeSet::new();
    let (mut sep_numbers, mut bool_words, mut t_ts) = (0, 0, 0);
    for l in d.events.iter().filter(|l| !is_bot(l)) {
        let m = &l.json;
        if let Some(w) = int(&m["metadata_full_content_word_count"]) {
            buckets.insert(match w {
                ..100 => 0,
                100..500 => 1,
                500..1000 => 2,
                1000..2000 => 3,
                2000..3000 => 4,
                3000..4000 => 5,
                _ => 6,
            });
        }
        if let Some(p) = int(&m["metadata_pub_date_tmsp"]) {
            assert!(p * 1000 < l.ts, "published before it is read: {m:?}");
        }
        if m["action"] == "pageview" {
            pageviews += 1;
            if !m["utm_source"].is_null() {
                utm += 1;
                let q = m["url_query"].as_str().unwrap();
                assert!(q.contains(&format!("utm_campaign={}", text(&m["utm_campaign"]))));
                assert_eq!(m["campaign_id"], m["utm_campaign"]);
            }
        }
        let extra = match &m["extra_data"] {
            Value::String(s) => serde_json::from_str::<Value>(s).unwrap(),
            v => v.clone(),
        };
        let vid = m["visitor_site_id"].as_str().unwrap().to_owned();
        match extra.get("user_type").and_then(Value::as_str) {
            Some("subscriber") => {
                if anonymous.contains(&vid) {
                    converted.insert(vid.clone());
                }
                subscriber.insert(vid);
            }
            Some("anonymous") => {
                anonymous.insert(vid);
            }
            _ => {}
        }
        if m["session_timestamp"]
            .as_str()
            .is_some_and(|s| s.contains('_'))
        {
            sep_numbers += 1;
        }
        if m["flags_is_amp"].is_string() {
            bool_words += 1;
        }
        if m["ts_action"].as_str().is_some_and(|s| s.contains('T')) {
            t_ts += 1;
        }
    }
    assert_eq!(buckets.len(), 7, "{buckets:?}");
    let share = utm as f64 / pageviews as f64;
    assert!(share > 0.03 && share < 0.2, "{share}");
    assert!(
        subscriber.len() > 20 && !converted.is_empty(),
        "{converted:?}"
    );
    assert!(sep_numbers > 10 && bool_words > 10 && t_ts > 100);
}

#[test]
fn bots_are_googlebot_pageviews() {
    let d = decoded();
    let bots: Vec<&Line> = d.events.iter().filter(|l| is_bot(l)).collect();
    assert_eq!(bots.len() as u64, d.summary.bots);
    assert!(bots.iter().all(|l| l.json["action"] == "pageview"));
}

#[test]
fn generate_to_dir_writes_the_same_objects_and_the_summary() {
    let cfg = GenConfig {
        objects_per_day: 4,
        ..GenConfig::new(2_000, jiff::civil::date(2026, 11, 1), 1, 3)
    };
    let dir = tempfile::tempdir().unwrap();
    let summary = dpl_gen::generate_to_dir(&cfg, dir.path()).unwrap();
    let (objects, mem_summary) = generate(&cfg);
    assert_eq!(summary, mem_summary);
    assert_eq!(objects.len(), 4);
    for o in &objects {
        assert_eq!(
            std::fs::read(dir.path().join(&o.key)).unwrap(),
            o.bytes,
            "{}",
            o.key
        );
    }
    let file = std::fs::read(dir.path().join(dpl_gen::SUMMARY_FILE)).unwrap();
    let back: GenSummary = serde_json::from_slice(&file).unwrap();
    assert_eq!(back, summary);
    assert_eq!(decode(&objects).summary, summary);
}

#[test]
fn parse_ts_follows_the_spec_forms() {
    assert_eq!(parse_ts("1970-01-01 00:00:01"), Some(1_000_000));
    assert_eq!(parse_ts("1970-01-01T00:00:01.5Z"), Some(1_500_000));
    assert_eq!(parse_ts("2026-11-31 10:00:00"), None);
    assert_eq!(parse_ts("2026/11/01 10:00:00"), None);
}

#[test]
fn tiny_and_degenerate_configs_count_exactly() {
    for (events, days, per_day, visitors) in [
        (0, 1, 24, None),
        (1, 1, 24, None),
        (7, 0, 0, Some(0)),
        (300, 3, 1, Some(1)),
        (1_000, 1, 5000, None),
    ] {
        let cfg = GenConfig {
            objects_per_day: per_day,
            visitors,
            ..GenConfig::new(events, jiff::civil::date(2024, 2, 28), days, 5)
        };
        let (objects, summary) = generate(&cfg);
        let bins = u64::from(days.max(1)) * u64::from(per_day.clamp(1, 1440));
        assert_eq!(objects.len() as u64, bins, "{cfg:?}");
        assert_eq!(summary.lines, events, "{cfg:?}");
        assert_eq!(decode(&objects).summary, summary, "{cfg:?}");
    }
}
