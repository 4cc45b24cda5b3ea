//! Golden tests (hand-worked from SPEC.md sections 1-2), object-level tests, the stage, and
//! property tests.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::Arc;

use dpl_core::{
    Class, DecodeStats, DecodedBatch, ErrorReason, ErrorRow, Event, Field, RawObject, Value,
};
use proptest::prelude::*;

use crate::{DecodeConfig, Decoder, Error, MAX_RAW_BYTES};

/// 2016-08-01 00:00:00 UTC in microseconds.
const AUG1: i64 = 1_470_009_600_000_000;
const KEY: &str = "events/2016/08/01/obj.gz";
const REQ: &str =
    r#""apikey":"a.com","event_id":"e1","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00""#;

fn dec() -> Decoder {
    Decoder::new(DecodeConfig::default()).unwrap()
}

/// A line with the required fields, `action`, and `more` (`,"k":v...` or empty).
fn line(action: &str, more: &str) -> String {
    format!(r#"{{"action":"{action}",{REQ}{more}}}"#)
}

fn one_with(d: &Decoder, text: &[u8]) -> Option<Result<Event, ErrorRow>> {
    d.decode_line(&Arc::from(KEY), 7, 3, text)
}

fn event(text: &str) -> Event {
    match one_with(&dec(), text.as_bytes()) {
        Some(Ok(e)) => e,
        other => panic!("input {text}: expected an event, got {other:?}"),
    }
}

fn error(text: &[u8]) -> ErrorRow {
    match one_with(&dec(), text) {
        Some(Err(e)) => e,
        other => panic!(
            "input {:?}: expected an error, got {other:?}",
            String::from_utf8_lossy(text)
        ),
    }
}

fn object(bytes: Vec<u8>) -> RawObject {
    RawObject {
        id: 5,
        key: Arc::from(KEY),
        bytes: bytes.into(),
    }
}

fn decode_with(d: &Decoder, bytes: Vec<u8>) -> Vec<DecodedBatch> {
    let mut out = Vec::new();
    d.decode_object(&object(bytes), &mut |b| out.push(b));
    out
}

/// All batches of one object merged, after checking the batch protocol.
fn merged(batches: Vec<DecodedBatch>) -> (Vec<Event>, Vec<ErrorRow>, DecodeStats) {
    assert!(!batches.is_empty(), "at least one batch per object");
    let n = batches.len();
    let (mut events, mut errors, mut stats) = (Vec::new(), Vec::new(), DecodeStats::default());
    for (i, b) in batches.into_iter().enumerate() {
        assert_eq!(b.object, 5);
        assert_eq!(b.seq as usize, i);
        assert_eq!(b.last, i + 1 == n, "only the final batch is last");
        events.extend(b.events);
        errors.extend(b.errors);
        stats.add(&b.stats);
    }
    (events, errors, stats)
}

fn decode(bytes: Vec<u8>) -> (Vec<Event>, Vec<ErrorRow>, DecodeStats) {
    merged(decode_with(&dec(), bytes))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn text(v: &str) -> Value {
    Value::text(v)
}

// ---------------------------------------------------------------- classes

#[test]
fn golden_pageview() {
    let e = event(&line(
        "pageview",
        r#","url":"http://a.com/x","engaged_time_inc":5,"nope":1"#,
    ));
    assert_eq!(e.class, Class::Pageview);
    assert_eq!(e.arrival, dpl_core::Arrival { object: 7, line: 3 });
    assert_eq!(e.get(Field::Action), &text("pageview"));
    assert_eq!(e.get(Field::Apikey), &text("a.com"));
    assert_eq!(e.get(Field::EventId), &text("e1"));
    assert_eq!(e.get(Field::VisitorSiteId), &text("v1"));
    assert_eq!(e.get(Field::TsAction), &Value::Ts(AUG1));
    assert_eq!(e.get(Field::Url), &text("http://a.com/x"));
    assert_eq!(e.get(Field::EngagedTimeInc), &Value::Int(5));
    assert_eq!(e.extra, Value::Null);
    let set = e.field_count();
    assert_eq!(set, 7, "every other field is null");
}

#[test]
fn golden_standard_and_custom_classes() {
    let cases = [
        ("heartbeat", Class::Heartbeat),
        ("videostart", Class::Videostart),
        ("vheartbeat", Class::Vheartbeat),
        ("share", Class::Custom),
        // Exact match only.
        ("Pageview", Class::Custom),
        ("pageview ", Class::Custom),
    ];
    for (action, class) in cases {
        let e = event(&line(action, ""));
        assert_eq!(e.class, class, "action {action:?}");
        assert_eq!(e.get(Field::Action), &text(action));
    }
}

#[test]
fn golden_bot_by_ua_browser_any_action() {
    for action in ["pageview", "videostart", "share"] {
        let e = event(&line(action, r#","ua_browser":"Googlebot""#));
        assert_eq!(e.class, Class::Bot, "action {action}");
    }
    // Exact, case-sensitive equality.
    let e = event(&line("pageview", r#","ua_browser":"googlebot""#));
    assert_eq!(e.class, Class::Pageview);
}

#[test]
fn golden_bot_by_user_agent_pattern() {
    let d = Decoder::new(DecodeConfig {
        bot_user_agent_patterns: vec!["(?i)crawler".into(), "^curl/".into()],
        bot_ua_browsers: vec![],
        ..DecodeConfig::default()
    })
    .unwrap();
    let cases = [
        (
            r#","user_agent":"Mozilla/5.0 (compatible; FooCrawler/1.0)""#,
            Class::Bot,
        ),
        (r#","user_agent":"curl/8.0""#, Class::Bot),
        (r#","user_agent":"my curl/8.0""#, Class::Pageview),
        (r#","ua_browser":"Googlebot""#, Class::Pageview),
        ("", Class::Pageview),
    ];
    for (more, class) in cases {
        let got = one_with(&d, line("pageview", more).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(got.class, class, "fields {more}");
    }
}

#[test]
fn golden_custom_actions_filter() {
    let d = Decoder::new(DecodeConfig {
        custom_actions: vec!["share".into()],
        ..DecodeConfig::default()
    })
    .unwrap();
    let input = [
        line("share", ""),
        line("like", ""),
        line("pageview", ""),
        // A bot is a bot whatever its action, listed or not.
        line("like", r#","ua_browser":"Googlebot""#),
    ]
    .join("\n");
    let (events, errors, stats) = merged(decode_with(&d, input.into_bytes()));
    let classes: Vec<_> = events.iter().map(|e| e.class).collect();
    assert_eq!(classes, [Class::Custom, Class::Pageview, Class::Bot]);
    assert_eq!(
        events.iter().map(|e| e.arrival.line).collect::<Vec<_>>(),
        [1, 3, 4]
    );
    assert!(errors.is_empty());
    assert_eq!(stats.unlisted_custom, 1);
    assert_eq!(stats.events, [1, 0, 0, 0, 1, 1]);
    assert_eq!(stats.lines, 4);
}

// ---------------------------------------------------------------- leniency

/// One optional field given as `json`: the value it must become and whether it is counted
/// as unparseable.
fn check_field(field: Field, json: &str, want: Value, coerced: bool) {
    let input = line("pageview", &format!(r#","{}":{json}"#, field.name()));
    let (events, errors, stats) = decode(input.clone().into_bytes());
    assert!(errors.is_empty(), "input {input}: {errors:?}");
    assert_eq!(events.len(), 1, "input {input}");
    assert_eq!(events[0].get(field), &want, "input {input}");
    assert_eq!(
        stats.coerced[field as usize],
        u32::from(coerced),
        "input {input}"
    );
    assert_eq!(
        stats.coerced.iter().sum::<u32>(),
        u32::from(coerced),
        "input {input}"
    );
}

#[test]
fn golden_str_field() {
    let f = Field::Url;
    check_field(f, r#""x y é""#, text("x y é"), false);
    check_field(f, r#""a\"b\\c\u00e9""#, text("a\"b\\cé"), false);
    check_field(f, r#""""#, text(""), false);
    check_field(f, "12", text("12"), false);
    check_field(f, "-3", text("-3"), false);
    check_field(f, "1.5", text("1.5"), false);
    check_field(f, "true", text("true"), false);
    check_field(f, "false", text("false"), false);
    check_field(f, "null", Value::Null, false);
    check_field(f, r#"{"a":1}"#, Value::Null, true);
    check_field(f, "[1]", Value::Null, true);
    // Text is kept whole here (the sink cuts to column size): ip_country is VARCHAR(2).
    check_field(Field::IpCountry, r#""USA""#, text("USA"), false);
}

#[test]
fn golden_int_field() {
    let f = Field::EngagedTimeInc;
    check_field(f, "42", Value::Int(42), false);
    check_field(f, "-7", Value::Int(-7), false);
    check_field(f, "5.0", Value::Int(5), false);
    check_field(f, "1e3", Value::Int(1000), false);
    check_field(f, r#""42""#, Value::Int(42), false);
    check_field(f, r#""-42""#, Value::Int(-42), false);
    check_field(f, r#""5.0""#, Value::Int(5), false);
    check_field(f, r#""1_000""#, Value::Int(1000), false);
    check_field(f, r#""9223372036854775807""#, Value::Int(i64::MAX), false);
    check_field(
        f,
        r#""12345678901234567.0""#,
        Value::Int(12_345_678_901_234_567),
        false,
    );
    check_field(f, "null", Value::Null, false);
    check_field(f, r#""""#, Value::Null, false);
    check_field(f, "5.5", Value::Null, true);
    check_field(f, r#""5.5""#, Value::Null, true);
    check_field(f, r#"" 42""#, Value::Null, true);
    check_field(f, r#""42 ""#, Value::Null, true);
    check_field(f, r#""_1""#, Value::Null, true);
    check_field(f, r#""1_""#, Value::Null, true);
    check_field(f, r#""1__0""#, Value::Null, true);
    check_field(f, r#""4x""#, Value::Null, true);
    check_field(f, r#""9223372036854775808""#, Value::Null, true);
    check_field(f, "18446744073709551615", Value::Null, true);
    check_field(f, "true", Value::Null, true);
    check_field(f, "[1]", Value::Null, true);
}

#[test]
fn golden_epoch_ms_field() {
    let f = Field::MetadataPubDateTmsp;
    check_field(f, "1470045600000", Value::Int(1_470_045_600_000), false);
    check_field(
        f,
        r#""1_470_045_600_000""#,
        Value::Int(1_470_045_600_000),
        false,
    );
    check_field(f, "1470045600000.0", Value::Int(1_470_045_600_000), false);
    check_field(f, r#""2016-08-01 00:00:00""#, Value::Null, true);
}

#[test]
fn golden_float_field() {
    let f = Field::IpLat;
    check_field(f, "40.5", Value::Float(40.5), false);
    check_field(f, "3", Value::Float(3.0), false);
    check_field(f, "-3", Value::Float(-3.0), false);
    check_field(f, r#""1_000.25""#, Value::Float(1000.25), false);
    check_field(f, r#""-1.5e2""#, Value::Float(-150.0), false);
    check_field(f, r#""abc""#, Value::Null, true);
    check_field(f, r#""NaN""#, Value::Null, true);
    check_field(f, r#""inf""#, Value::Null, true);
    check_field(f, r#""1e999""#, Value::Null, true);
    check_field(f, "true", Value::Null, true);
}

#[test]
fn golden_bool_field() {
    let f = Field::FlagsIsAmp;
    let cases = [
        ("true", Some(true)),
        ("false", Some(false)),
        (r#""TRUE""#, Some(true)),
        (r#""t""#, Some(true)),
        (r#""F""#, Some(false)),
        (r#""Yes""#, Some(true)),
        (r#""no""#, Some(false)),
        (r#""1""#, Some(true)),
        (r#""0""#, Some(false)),
        ("1", Some(true)),
        ("0", Some(false)),
        ("2", None),
        ("-1", None),
        (r#""maybe""#, None),
        (r#""y""#, None),
        (r#"" true""#, None),
        ("{}", None),
    ];
    for (json, want) in cases {
        check_field(
            f,
            json,
            want.map_or(Value::Null, Value::Bool),
            want.is_none(),
        );
    }
}

#[test]
fn golden_ts_text_field() {
    let f = Field::TsSessionCurrent;
    let t = AUG1 + (3600 + 2 * 60 + 3) * 1_000_000 + 123_456;
    check_field(f, r#""2016-08-01T01:02:03.1234567Z""#, Value::Ts(t), false);
    check_field(f, r#""2016-08-01 00:00:00""#, Value::Ts(AUG1), false);
    check_field(f, r#""2016-08-01""#, Value::Null, true);
    check_field(f, r#""2016-02-30 00:00:00""#, Value::Null, true);
    check_field(f, "1470009600000", Value::Null, true);
}

#[test]
fn golden_json_field_and_extra() {
    let f = Field::ExtraData;
    check_field(
        f,
        r#"{ "user_type" : "sub", "n" : [1, 2] }"#,
        text(r#"{"user_type":"sub","n":[1,2]}"#),
        false,
    );
    check_field(f, r#""{\"a\": 1}""#, text(r#"{"a":1}"#), false);
    check_field(f, r#""[1]""#, Value::Null, true);
    check_field(f, r#""not json""#, Value::Null, true);
    check_field(f, "5", Value::Null, true);
    check_field(f, "[1]", Value::Null, true);
    check_field(f, "{}", text("{}"), false);

    let cases = [
        (r#"{"user_type":"subscriber"}"#, text("subscriber")),
        (r#"{"user_type":5}"#, text("5")),
        (r#"{"user_type":true}"#, text("true")),
        (r#"{"user_type":{"a":[1, "x"]}}"#, text(r#"{"a":[1,"x"]}"#)),
        (r#"{"user_type":null}"#, Value::Null),
        (r#"{"other":"x"}"#, Value::Null),
        (r#"{"user_type":"a","user_type":"b"}"#, text("b")),
        (r#""{\"user_type\":\"from text\"}""#, text("from text")),
        (r#""nope""#, Value::Null),
        ("null", Value::Null),
    ];
    for (json, want) in cases {
        let e = event(&line("pageview", &format!(r#","extra_data":{json}"#)));
        assert_eq!(e.extra, want, "extra_data {json}");
    }
    // Without extra_data at all.
    assert_eq!(event(&line("pageview", "")).extra, Value::Null);
}

#[test]
fn golden_extra_data_key_configurable() {
    let d = Decoder::new(DecodeConfig {
        extra_data_key: "plan".into(),
        ..DecodeConfig::default()
    })
    .unwrap();
    let input = line(
        "pageview",
        r#","extra_data":{"user_type":"x","plan":"gold"}"#,
    );
    let e = one_with(&d, input.as_bytes()).unwrap().unwrap();
    assert_eq!(e.extra, text("gold"));
}

#[test]
fn golden_list_field() {
    let f = Field::MetadataTags;
    check_field(f, r#"[ "a", "b c" ]"#, text(r#"["a","b c"]"#), false);
    check_field(f, "[]", text("[]"), false);
    check_field(f, r#""[\"a\", \"b\"]""#, text(r#"["a","b"]"#), false);
    check_field(f, r#""a,b""#, Value::Null, true);
    check_field(f, r#""{}""#, Value::Null, true);
    check_field(f, r#"{"a":1}"#, Value::Null, true);
}

#[test]
fn golden_optional_nginx_ms_unparseable_keeps_event() {
    check_field(Field::TimestampInfoNginxMs, r#""soon""#, Value::Null, true);
}

#[test]
fn keys_in_changing_order_and_unknown_keys() {
    let input = [
        format!(r#"{{"url":"a","action":"pageview",{REQ}}}"#),
        format!(r#"{{"action":"heartbeat","url":"b",{REQ}}}"#),
        format!(r#"{{"zzz":1,"url":"c","action":"share",{REQ}}}"#),
        format!(r#"{{"zzz":1,"url":"d","action":"share",{REQ},"referrer":"r"}}"#),
    ]
    .join("\n");
    let (events, errors, _) = decode(input.into_bytes());
    assert!(errors.is_empty());
    let got: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.str(Field::Url),
                e.class,
                e.str(Field::Referrer),
                e.event_id(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Some("a"), Class::Pageview, None, "e1"),
            (Some("b"), Class::Heartbeat, None, "e1"),
            (Some("c"), Class::Custom, None, "e1"),
            (Some("d"), Class::Custom, Some("r"), "e1"),
        ]
    );
}

#[test]
fn golden_repeated_key_last_wins() {
    let e = event(&line("pageview", r#","url":"first","url":"second""#));
    assert_eq!(e.get(Field::Url), &text("second"));
}

// ---------------------------------------------------------------- error reasons

fn check_error(
    text: &[u8],
    reason: ErrorReason,
    detail: Option<&str>,
    id: Option<&str>,
    action: Option<&str>,
) {
    let e = error(text);
    let shown = String::from_utf8_lossy(text);
    assert_eq!(e.reason, reason, "input {shown}");
    assert_eq!(e.detail.as_deref(), detail, "input {shown}");
    assert_eq!(e.event_id.as_deref(), id, "input {shown}");
    assert_eq!(e.action.as_deref(), action, "input {shown}");
    assert_eq!(&*e.source_object, KEY);
    assert_eq!(e.line, 3);
    assert_eq!(e.raw, shown, "raw is the line");
}

#[test]
fn golden_invalid_utf8() {
    let bad = b"{\"action\":\"pageview\",\"event_id\":\"e\xff1\",\"apikey\":\"a\"}";
    check_error(
        bad,
        ErrorReason::InvalidUtf8,
        None,
        Some("e\u{fffd}1"),
        Some("pageview"),
    );
    let e = error(bad);
    assert_eq!(
        e.raw,
        "{\"action\":\"pageview\",\"event_id\":\"e\u{fffd}1\",\"apikey\":\"a\"}"
    );
    // Broken JSON and broken UTF-8: still invalid UTF-8, ids from the lenient scan.
    let bad = b"{\"event_id\":\"x\xc3\", \"action\": \"share\" ,,";
    check_error(
        bad,
        ErrorReason::InvalidUtf8,
        None,
        Some("x\u{fffd}"),
        Some("share"),
    );
}

#[test]
fn golden_invalid_json() {
    check_error(
        br#"{"action":"pageview","event_id":"e9","#,
        ErrorReason::InvalidJson,
        None,
        Some("e9"),
        Some("pageview"),
    );
    check_error(
        br#"{"action":pageview}"#,
        ErrorReason::InvalidJson,
        None,
        None,
        None,
    );
    check_error(
        br#"{"a":1} {"b":2}"#,
        ErrorReason::InvalidJson,
        None,
        None,
        None,
    );
    check_error(b"{\"a\":1}\x00", ErrorReason::InvalidJson, None, None, None);
    check_error(
        br#"{"n":18446744073709551616}"#,
        ErrorReason::InvalidJson,
        None,
        None,
        None,
    );
}

#[test]
fn golden_not_an_object() {
    for json in [&b"[1,2]"[..], b"\"pageview\"", b"42", b"null", b"true"] {
        check_error(json, ErrorReason::NotAnObject, None, None, None);
    }
}

#[test]
fn golden_missing_action() {
    let m = ErrorReason::MissingAction;
    check_error(format!("{{{REQ}}}").as_bytes(), m, None, Some("e1"), None);
    check_error(
        format!(r#"{{"action":null,{REQ}}}"#).as_bytes(),
        m,
        None,
        Some("e1"),
        None,
    );
    check_error(
        format!(r#"{{"action":"",{REQ}}}"#).as_bytes(),
        m,
        None,
        Some("e1"),
        None,
    );
    check_error(
        format!(r#"{{"action":["pageview"],{REQ}}}"#).as_bytes(),
        m,
        Some("action is not text"),
        Some("e1"),
        None,
    );
    // action is checked before the required fields.
    check_error(br#"{"event_id":"e2"}"#, m, None, Some("e2"), None);
    // A number is text for a text field: a custom action named "5".
    assert_eq!(
        event(&format!(r#"{{"action":5,{REQ}}}"#)).get(Field::Action),
        &text("5")
    );
}

#[test]
fn golden_missing_required_field() {
    let m = ErrorReason::MissingRequiredField;
    let cases = [
        (
            r#"{"action":"pageview","event_id":"e1","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00"}"#,
            "apikey",
            Some("e1"),
        ),
        (
            r#"{"action":"pageview","apikey":null,"event_id":"e1","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00"}"#,
            "apikey",
            Some("e1"),
        ),
        (
            r#"{"action":"pageview","apikey":"a","event_id":"","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00"}"#,
            "event_id",
            None,
        ),
        (
            r#"{"action":"pageview","apikey":"a","event_id":"e1","ts_action":"2016-08-01 00:00:00"}"#,
            "visitor_site_id",
            Some("e1"),
        ),
        (
            r#"{"action":"pageview","apikey":"a","event_id":"e1","visitor_site_id":"v1","ts_action":""}"#,
            "ts_action",
            Some("e1"),
        ),
        (
            r#"{"action":"pageview","apikey":"a","event_id":"e1","visitor_site_id":"v1"}"#,
            "ts_action",
            Some("e1"),
        ),
        // Several problems: the first in order apikey, event_id, visitor_site_id, ts_action.
        (r#"{"action":"pageview","ts_action":"x"}"#, "apikey", None),
    ];
    for (json, field, id) in cases {
        check_error(json.as_bytes(), m, Some(field), id, Some("pageview"));
    }
}

#[test]
fn golden_unparseable_required_field() {
    let u = ErrorReason::UnparseableRequiredField;
    let cases = [
        (
            r#"{"action":"pageview","apikey":{},"event_id":"e1","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00"}"#,
            "apikey",
            Some("e1"),
        ),
        (
            r#"{"action":"pageview","apikey":"a","event_id":["e"],"visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00"}"#,
            "event_id",
            None,
        ),
        (
            r#"{"action":"pageview","apikey":"a","event_id":"e1","visitor_site_id":"v1","ts_action":"2016-08-01"}"#,
            "ts_action",
            Some("e1"),
        ),
        (
            r#"{"action":"pageview","apikey":"a","event_id":"e1","visitor_site_id":"v1","ts_action":1470009600000}"#,
            "ts_action",
            Some("e1"),
        ),
    ];
    for (json, field, id) in cases {
        check_error(json.as_bytes(), u, Some(field), id, Some("pageview"));
    }
    // Numbers in text fields are text, so a numeric event_id is fine.
    let e = event(
        r#"{"action":"pageview","apikey":"a","event_id":12,"visitor_site_id":7,"ts_action":"2016-08-01 00:00:00"}"#,
    );
    assert_eq!((e.event_id(), e.visitor_site_id()), ("12", "7"));
}

#[test]
fn error_raw_is_cut_on_a_char_boundary() {
    // 'é' is 2 bytes; after the opening `[` every char starts at an odd offset, so byte
    // 65,536 falls inside one and the cut goes back one byte.
    let long = format!("[{}", "é".repeat(40_000));
    let e = error(long.as_bytes());
    assert_eq!(e.reason, ErrorReason::InvalidJson);
    assert_eq!(e.raw.len(), MAX_RAW_BYTES - 1);
    assert!(long.starts_with(&e.raw));
    // Invalid bytes become 3-byte U+FFFD before the cut.
    let mut bad = vec![0xffu8; 30_000];
    bad.push(b'x');
    let e = error(&bad);
    assert_eq!(e.reason, ErrorReason::InvalidUtf8);
    assert_eq!(e.raw, "\u{fffd}".repeat(MAX_RAW_BYTES / 3));
}

// ---------------------------------------------------------------- objects

#[test]
fn multi_member_gzip_counts_lines_across_members() {
    let first = format!("{}\n\n", line("pageview", ""));
    let second = format!("{}\n{}", line("heartbeat", ""), line("share", ""));
    let mut bytes = gzip(first.as_bytes());
    bytes.extend(gzip(second.as_bytes()));
    let (events, errors, stats) = decode(bytes);
    assert!(errors.is_empty());
    let got: Vec<_> = events.iter().map(|e| (e.arrival.line, e.class)).collect();
    assert_eq!(
        got,
        [
            (1, Class::Pageview),
            (3, Class::Heartbeat),
            (4, Class::Custom)
        ]
    );
    assert!(events.iter().all(|e| e.arrival.object == 5));
    assert_eq!(stats.lines, 4);
    assert_eq!(stats.bytes as usize, first.len() + second.len());
}

#[test]
fn plain_object_blank_lines_and_crlf() {
    let input = format!(
        "\n{}\r\n  \t\r\n\r\n{}\n",
        line("pageview", r#","url":"u""#),
        line("videostart", "")
    );
    let len = input.len();
    let (events, errors, stats) = decode(input.into_bytes());
    assert!(errors.is_empty());
    let got: Vec<_> = events.iter().map(|e| (e.arrival.line, e.class)).collect();
    assert_eq!(got, [(2, Class::Pageview), (5, Class::Videostart)]);
    assert_eq!(
        events[0].get(Field::Url),
        &text("u"),
        "the \\r is not part of the value"
    );
    assert_eq!(stats.lines, 5);
    assert_eq!(stats.bytes as usize, len);
    assert_eq!(stats.events, [1, 0, 1, 0, 0, 0]);
}

#[test]
fn empty_object_gives_one_empty_last_batch() {
    for bytes in [Vec::new(), gzip(b""), b"\n\n".to_vec()] {
        let batches = decode_with(&dec(), bytes.clone());
        assert_eq!(batches.len(), 1, "input {bytes:?}");
        assert!(batches[0].last && batches[0].events.is_empty() && batches[0].errors.is_empty());
    }
}

#[test]
fn error_line_numbers_in_objects() {
    let input = format!(
        "{}\nnot json\n\n[1]\n{}",
        line("pageview", ""),
        line("share", "")
    );
    let (events, errors, stats) = decode(input.into_bytes());
    assert_eq!(events.len(), 2);
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.line, e.reason, e.raw.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (2, ErrorReason::InvalidJson, "not json"),
            (4, ErrorReason::NotAnObject, "[1]")
        ]
    );
    assert_eq!(stats.lines, 5);
}

#[test]
fn truncated_gzip_keeps_complete_lines_then_one_corrupt_row() {
    let body = format!(
        "{}\n{}\n{}",
        line("pageview", ""),
        line("heartbeat", ""),
        line("share", "")
    );
    let full = gzip(body.as_bytes());
    // Without the 8-byte trailer every byte is decoded, but the stream is incomplete.
    let (events, errors, stats) = decode(full[..full.len() - 8].to_vec());
    assert_eq!(
        events.iter().map(|e| e.arrival.line).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].reason, ErrorReason::CorruptGzip);
    assert_eq!(errors[0].line, 3);
    assert_eq!(errors[0].raw, line("share", ""), "the partial line");
    let ids = (errors[0].event_id.as_deref(), errors[0].action.as_deref());
    assert_eq!(
        ids,
        (Some("e1"), Some("share")),
        "read from the partial line"
    );
    assert_eq!(stats.lines, 2);
    assert_eq!(stats.bytes as usize, body.len());

    // Cut inside the header: nothing decodes, one row with empty raw at line 1.
    let (events, errors, _) = decode(full[..5].to_vec());
    assert!(events.is_empty());
    assert_eq!(
        (errors.len(), errors[0].line, errors[0].raw.as_str()),
        (1, 1, "")
    );
    assert_eq!(errors[0].reason, ErrorReason::CorruptGzip);
    // Cut just after the header: whatever of line 1 was decoded is the raw.
    let (events, errors, stats) = decode(full[..12].to_vec());
    assert!(events.is_empty());
    assert_eq!(
        (errors.len(), errors[0].line, errors[0].reason),
        (1, 1, ErrorReason::CorruptGzip)
    );
    assert!(body.starts_with(&errors[0].raw));
    assert_eq!(stats.lines, 0);
}

#[test]
fn garbage_after_last_member_is_corrupt() {
    let mut bytes = gzip(format!("{}\n", line("pageview", "")).as_bytes());
    bytes.extend_from_slice(b"trailing junk");
    let (events, errors, _) = decode(bytes);
    assert_eq!(events.len(), 1);
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.line, e.reason, e.raw.as_str()))
        .collect();
    assert_eq!(got, [(2, ErrorReason::CorruptGzip, "")]);
}

#[test]
fn ten_megabyte_line() {
    let big = "x".repeat(10 << 20);
    let input = format!(
        "{}\n{}\n",
        line("pageview", &format!(r#","url":"{big}""#)),
        line("share", "")
    );
    let (events, errors, _) = decode(gzip(input.as_bytes()));
    assert!(errors.is_empty());
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].str(Field::Url).map(str::len), Some(10 << 20));
}

#[test]
fn overlong_line_is_rejected_and_reading_goes_on() {
    let d = Decoder::new(DecodeConfig::default())
        .unwrap()
        .with_max_line(64);
    let long = line("pageview", r#","url":"http://example.com/a/long/path""#);
    assert!(long.len() > 64);
    let input = format!("{long}\n{{}}\n");
    let (events, errors, stats) = merged(decode_with(&d, input.into_bytes()));
    assert!(events.is_empty());
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.line, e.reason, e.detail.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (
                1,
                ErrorReason::InvalidJson,
                Some("line longer than 64 bytes")
            ),
            (2, ErrorReason::MissingAction, None)
        ]
    );
    assert_eq!(errors[0].raw, long[..64]);
    assert_eq!(stats.lines, 2);
}

#[test]
fn deeply_nested_json() {
    let deep = "[".repeat(100_000);
    let closed = format!("{deep}{}", "]".repeat(100_000));
    let in_field = line(
        "pageview",
        &format!(r#","extra_data":{closed},"metadata_tags":{closed}"#),
    );
    let input = format!("{deep}\n{closed}\n{in_field}\n");
    let (events, errors, stats) = decode(input.into_bytes());
    let reasons: Vec<_> = errors.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [ErrorReason::InvalidJson, ErrorReason::NotAnObject]
    );
    assert_eq!(events.len(), 1);
    // extra_data must be an object: unparseable; the list is kept as compact text.
    assert_eq!(events[0].get(Field::ExtraData), &Value::Null);
    assert_eq!(
        events[0].str(Field::MetadataTags).map(str::len),
        Some(200_000)
    );
    assert_eq!(stats.coerced[Field::ExtraData as usize], 1);
}

#[test]
fn batches_split_at_batch_events() {
    let d = Decoder::new(DecodeConfig {
        batch_events: 2,
        ..DecodeConfig::default()
    })
    .unwrap();
    let p = line("pageview", "");
    let input = format!("{p}\nbad\n\n{p}\n{p}\n");
    let batches = decode_with(&d, input.into_bytes());
    let shape: Vec<_> = batches
        .iter()
        .map(|b| (b.seq, b.last, b.events.len(), b.errors.len(), b.stats.lines))
        .collect();
    // A batch is sent when the next line arrives and it is full: lines 1-2 (two rows),
    // then lines 3-5 (a blank and two events), last.
    assert_eq!(shape, [(0, false, 1, 1, 2), (1, true, 2, 0, 3)]);
    let (events, _, stats) = merged(batches);
    assert_eq!(
        events.iter().map(|e| e.arrival.line).collect::<Vec<_>>(),
        [1, 4, 5]
    );
    assert_eq!(stats.lines, 5);
}

#[test]
fn decoder_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Decoder>();
}

#[test]
fn config_errors() {
    let bad = Decoder::new(DecodeConfig {
        bot_user_agent_patterns: vec!["ok".into(), "(unclosed".into()],
        ..DecodeConfig::default()
    });
    match bad {
        Err(e @ Error::BadPattern { .. }) => assert!(e.to_string().contains("(unclosed"), "{e}"),
        other => panic!("expected BadPattern, got {other:?}"),
    }
    let zero = Decoder::new(DecodeConfig {
        batch_events: 0,
        ..DecodeConfig::default()
    });
    assert!(matches!(zero, Err(Error::ZeroBatchEvents)));
}

#[test]
fn config_defaults_and_deserialize() {
    let c = DecodeConfig::default();
    assert_eq!(c.extra_data_key, "user_type");
    assert_eq!(c.bot_ua_browsers, ["Googlebot"]);
    assert!(c.bot_user_agent_patterns.is_empty() && c.custom_actions.is_empty());
    assert_eq!(c.batch_events, 1024);
    // Missing keys take the defaults.
    let c: DecodeConfig =
        toml::from_str("batch_events = 10\ncustom_actions = [\"share\"]").unwrap();
    let want = DecodeConfig {
        batch_events: 10,
        custom_actions: vec!["share".into()],
        ..DecodeConfig::default()
    };
    assert_eq!(c, want);
    // Unknown keys are refused, so typos surface at start-up.
    assert!(toml::from_str::<DecodeConfig>("batch_event = 10").is_err());
}

// ---------------------------------------------------------------- the stage

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_decodes_every_object() {
    let (in_tx, in_rx) = async_channel::bounded(2);
    let (out_tx, out_rx) = async_channel::bounded(4);
    let stage = tokio::spawn(crate::run(Arc::new(dec()), 3, in_rx, out_tx));
    let feeder = tokio::spawn(async move {
        for id in 0..10u32 {
            let body = format!("{}\n{}\n", line("pageview", ""), line("share", ""));
            let bytes = if id % 2 == 0 {
                gzip(body.as_bytes())
            } else {
                body.into_bytes()
            };
            let obj = RawObject {
                id,
                key: Arc::from(format!("events/2016/08/01/{id}")),
                bytes: bytes.into(),
            };
            in_tx.send(obj).await.unwrap();
        }
    });
    let mut got = Vec::new();
    while let Ok(b) = out_rx.recv().await {
        got.push(b);
    }
    feeder.await.unwrap();
    stage.await.unwrap().unwrap();
    got.sort_by_key(|b| (b.object, b.seq));
    assert_eq!(got.len(), 10);
    for (i, b) in got.iter().enumerate() {
        assert_eq!(
            (b.object as usize, b.seq, b.last, b.events.len()),
            (i, 0, true, 2)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_when_downstream_is_gone() {
    let (in_tx, in_rx) = async_channel::bounded(1);
    let (out_tx, out_rx) = async_channel::bounded(1);
    drop(out_rx);
    let stage = tokio::spawn(crate::run(Arc::new(dec()), 2, in_rx, out_tx));
    let obj = object(line("pageview", "").into_bytes());
    // The first send succeeds; the stage then closes its input, so sending fails soon.
    let mut sent = 0;
    while in_tx.send(obj.clone()).await.is_ok() {
        sent += 1;
        assert!(sent < 1000, "the source is never told to stop");
    }
    assert!(matches!(stage.await.unwrap(), Err(Error::Closed)));
}

// ---------------------------------------------------------------- heartbeats stored against a base

/// Every line of `plain` (no gzip) decoded alone, as `decode_object` numbers them (object 5).
fn lines_alone(d: &Decoder, plain: &[u8]) -> Vec<Result<Event, ErrorRow>> {
    let key: Arc<str> = Arc::from(KEY);
    plain
        .split(|&b| b == b'\n')
        .zip(1..)
        .filter_map(|(l, n)| d.decode_line(&key, 5, n, l))
        .collect()
}

/// A heartbeat of visitor `v1` with the page view's fields as given in `more`.
fn beat(id: &str, more: &str) -> String {
    format!(
        r#"{{"action":"heartbeat","apikey":"a.com","event_id":"{id}","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:10","engaged_time_inc":5{more}}}"#
    )
}

#[test]
fn heartbeats_are_stored_against_their_page_view_and_read_as_if_decoded_alone() {
    let url = r#","url":"http://a.com/2016/08/a-rather-long-article-path""#;
    let title = r#","metadata_title":"A title longer than what is held inline""#;
    let rest = r#","ip_lat":1.5,"ua_browser":"Firefox""#;
    // Seventeen text fields the page view does not have: more than a base may differ in.
    let many: String = dpl_core::ALL_FIELDS
        .iter()
        .filter(|f| f.kind() == dpl_core::Kind::Str)
        .filter(|f| !line("pageview", "").contains(&format!("\"{}\"", f.name())))
        .filter(|f| ![Field::Url, Field::MetadataTitle, Field::UaBrowser].contains(f))
        .take(17)
        .map(|f| format!(r#","{}":"x""#, f.name()))
        .collect();
    let lines = [
        line("pageview", &format!("{url}{title}{rest}")),
        beat("h-same", &format!("{url}{title}{rest}")),
        format!(
            r#"{{"action":"videostart","apikey":"a.com","event_id":"vs","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:20"{many}}}"#
        ),
        beat("h-same-2", &format!("{url}{title}{rest}")),
        beat("h-no-title", &format!("{url}{rest}")),
        beat(
            "h-null-title",
            &format!(r#"{url}{rest},"metadata_title":null"#),
        ),
        beat(
            "h-bad-lat",
            &format!(r#"{url}{title},"ip_lat":"north","ua_browser":"Firefox""#),
        ),
        beat("h-many", &format!("{url}{title}{rest}{many}")),
        beat("h-other", &format!("{url}{title}{rest}")).replace(r#""v1""#, r#""v2""#),
    ];
    let plain = lines.join("\n").into_bytes();
    let d = dec();
    let (events, errors, stats) = merged(decode_with(&d, plain.clone()));
    assert!(errors.is_empty());
    let alone: Vec<Event> = lines_alone(&d, &plain)
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(events, alone, "every event reads as it does decoded alone");

    let pv_base = events[0].base().expect("a page view is a base");
    let on_pv = |e: &Event| e.base().is_some_and(|b| Arc::ptr_eq(b, pv_base));
    let by_id = |id: &str| events.iter().find(|e| e.event_id() == id).unwrap();
    // Equal but for its own fields: stored against the page view, holding only those.
    let same = by_id("h-same");
    assert!(on_pv(same));
    assert_eq!(
        same.own_values().len(),
        4,
        "action, event id, ts_action, engaged time"
    );
    assert_eq!(
        same.get(Field::MetadataTitle),
        &text("A title longer than what is held inline")
    );
    assert_eq!(same.get(Field::EngagedTimeInc), &Value::Int(5));
    assert_eq!(same.get(Field::Action), &text("heartbeat"));
    // A field the page view has is missing, null or unparseable here: it must read null, so
    // the heartbeat is not stored against the page view.
    for id in ["h-no-title", "h-null-title"] {
        assert!(!on_pv(by_id(id)), "{id}");
        assert_eq!(by_id(id).get(Field::MetadataTitle), &Value::Null, "{id}");
    }
    assert!(!on_pv(by_id("h-bad-lat")));
    assert_eq!(by_id("h-bad-lat").get(Field::IpLat), &Value::Null);
    assert_eq!(stats.coerced[Field::IpLat as usize], 1, "counted once");
    assert_eq!(stats.coerced.iter().sum::<u32>(), 1);
    // Too many differences, or another visitor: not against this page view.
    assert!(!on_pv(by_id("h-many")));
    assert!(!on_pv(by_id("h-other")));
    // A later heartbeat, after a video start it cannot be stored against (the video start
    // has fields the heartbeat lacks), finds the page view among the visitor's two latest
    // bases.
    assert!(on_pv(by_id("h-same-2")));
}

#[test]
fn generated_objects_read_the_same_decoded_whole_or_line_by_line() {
    let mut cfg = dpl_gen::GenConfig::new(3_000, jiff::civil::date(2026, 11, 1), 1, 1);
    cfg.objects_per_day = 4;
    let (generated, _) = dpl_gen::generate(&cfg);
    let d = dec();
    let (mut beats, mut stored_against) = (0, 0);
    for o in &generated {
        let mut plain = Vec::new();
        if o.bytes.starts_with(&[0x1f, 0x8b]) {
            std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(&o.bytes[..]),
                &mut plain,
            )
            .unwrap();
        } else {
            plain.clone_from(&o.bytes);
        }
        let (events, errors, _) = merged(decode_with(&d, o.bytes.clone()));
        let (alone_events, alone_errors): (Vec<_>, Vec<_>) =
            lines_alone(&d, &plain).into_iter().partition(Result::is_ok);
        let alone_events: Vec<Event> = alone_events.into_iter().map(Result::unwrap).collect();
        assert_eq!(events, alone_events, "object {}", o.key);
        assert_eq!(errors.len(), alone_errors.len(), "object {}", o.key);
        for e in events.iter().filter(|e| e.class == Class::Heartbeat) {
            beats += 1;
            // Stored against an earlier event (a base holds no values of its own).
            stored_against += usize::from(e.is_shared() && !e.own_values().is_empty());
        }
    }
    // Most heartbeats follow an earlier event of their visitor within the object.
    assert!(beats > 1000, "{beats} heartbeats");
    assert!(
        stored_against * 10 > beats * 8,
        "{stored_against} of {beats} stored against an earlier event"
    );
}

// ---------------------------------------------------------------- properties

/// Non-blank lines of decompressed data, the way the decoder splits them.
fn non_blank_lines(data: &[u8]) -> u64 {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.is_empty() || data.ends_with(b"\n") {
        lines.pop();
    }
    lines
        .iter()
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count() as u64
}

/// events + errors + unlisted == non-blank complete lines (+1 for a corrupt_gzip row).
fn check_accounting(
    d: &Decoder,
    bytes: Vec<u8>,
    complete: Option<u64>,
) -> Result<(), TestCaseError> {
    let batches = decode_with(d, bytes);
    prop_assert!(!batches.is_empty());
    prop_assert!(batches.last().is_some_and(|b| b.last));
    let (events, errors, stats) = merged(batches);
    let corrupt = errors
        .iter()
        .filter(|e| e.reason == ErrorReason::CorruptGzip)
        .count() as u64;
    prop_assert!(corrupt <= 1);
    let rows = events.len() as u64 + errors.len() as u64 + stats.unlisted_custom;
    let blank_free_lines = rows - corrupt;
    prop_assert!(blank_free_lines <= stats.lines);
    prop_assert_eq!(stats.events.iter().sum::<u64>(), events.len() as u64);
    if let Some(n) = complete {
        prop_assert_eq!(blank_free_lines, n);
    }
    for e in &errors {
        prop_assert!(e.raw.len() <= MAX_RAW_BYTES);
    }
    for e in &events {
        prop_assert!(
            !e.apikey().is_empty() && !e.event_id().is_empty() && !e.visitor_site_id().is_empty()
        );
        prop_assert!(e.ts(Field::TsAction).is_some());
    }
    Ok(())
}

/// Lines that are often valid events, often slightly broken.
fn valid_ish_line() -> impl Strategy<Value = String> {
    let action = prop_oneof![
        Just("pageview"),
        Just("heartbeat"),
        Just("videostart"),
        Just("vheartbeat"),
        Just("share"),
        Just("like"),
        Just("")
    ];
    let extra = prop_oneof![
        Just(String::new()),
        Just(r#","engaged_time_inc":"1_0""#.to_owned()),
        Just(r#","ua_browser":"Googlebot""#.to_owned()),
        Just(r#","extra_data":"{\"user_type\":1}""#.to_owned()),
        Just(r#","ip_lat":"x""#.to_owned()),
        "[ -~]{0,12}".prop_map(|s| format!(r#","url":{}"#, serde_like_quote(&s))),
    ];
    (action, extra, 0..4u8, "[ -~]{0,8}").prop_map(|(a, more, mode, junk)| match mode {
        0 => line(a, &more),
        1 => format!("{}{junk}", line(a, &more)),
        2 => junk,
        _ => line(a, &more).replace("apikey", "apikay"),
    })
}

fn serde_like_quote(s: &str) -> String {
    let mut out = String::new();
    crate::json::write_escaped(&mut out, s);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let complete = non_blank_lines(&bytes);
        let plain = if bytes.starts_with(&[0x1f, 0x8b]) { None } else { Some(complete) };
        check_accounting(&dec(), bytes.clone(), plain)?;
        // The same bytes behind a gzip magic number: a corrupt gzip stream.
        let mut fake = vec![0x1f, 0x8b];
        fake.extend(bytes);
        check_accounting(&dec(), fake, None)?;
    }

    #[test]
    fn gzip_of_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let n = non_blank_lines(&bytes);
        check_accounting(&dec(), gzip(&bytes), Some(n))?;
    }

    #[test]
    fn truncated_or_damaged_gzip_of_lines(
        lines in proptest::collection::vec(valid_ish_line(), 0..12),
        cut in any::<proptest::sample::Index>(),
        flip in proptest::option::of((any::<proptest::sample::Index>(), 1..=255u8)),
    ) {
        let body = lines.join("\n");
        let mut bytes = gzip(body.as_bytes());
        if let Some((at, x)) = flip {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        check_accounting(&dec(), bytes, None)?;
    }

    #[test]
    fn accounting_on_valid_ish_lines(
        lines in proptest::collection::vec(valid_ish_line(), 0..20),
        custom in proptest::bool::ANY,
        crlf in proptest::bool::ANY,
    ) {
        let d = Decoder::new(DecodeConfig {
            custom_actions: if custom { vec!["share".into()] } else { vec![] },
            batch_events: 3,
            ..DecodeConfig::default()
        }).unwrap();
        let body = lines.join(if crlf { "\r\n" } else { "\n" });
        let n = non_blank_lines(body.as_bytes());
        check_accounting(&d, body.clone().into_bytes(), Some(n))?;
        check_accounting(&d, gzip(body.as_bytes()), Some(n))?;
    }
}
