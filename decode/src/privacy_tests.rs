//! Privacy controls at the decoder level (issue 6, "Personal data"): every mode on events,
//! bot rows and error rows, hand-worked.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::Arc;

use dpl_core::{Class, DecodedBatch, ErrorReason, Field, RawObject, Value};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{DecodeConfig, Decoder, Error, IpMode, PrivacyConfig, UserAgentMode, WITHHELD_RAW};

const IP: &str = "198.51.100.237";
const IP_24: &str = "198.51.100.0";
const IP6: &str = "2001:db8:abcd:12:34::9";
const IP6_48: &str = "2001:db8:abcd::";
const UA: &str = "Mozilla/5.0 (X11; Linux) TestAgent/7.7";
const SALT: &str = "test-salt-0123456789-abcdef";
const REQ: &str =
    r#""apikey":"a.com","event_id":"e1","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00""#;

fn decoder(ip: IpMode, ua: UserAgentMode) -> Decoder {
    Decoder::new(DecodeConfig {
        bot_user_agent_patterns: vec!["BotAgent".into()],
        privacy: PrivacyConfig {
            visitor_ip: ip,
            user_agent: ua,
            ip_hash_salt: Some(SALT.into()),
        },
        ..DecodeConfig::default()
    })
    .unwrap()
}

/// HMAC-SHA256(SALT, text) in lower-case hex, computed here independently of the crate.
fn hmac_hex(text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SALT.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn decode(d: &Decoder, bytes: Vec<u8>) -> Vec<DecodedBatch> {
    let object = RawObject {
        id: 1,
        key: Arc::from("events/2016/08/01/p.gz"),
        bytes: bytes.into(),
    };
    let mut out = Vec::new();
    d.decode_object(&object, &mut |b| out.push(b));
    out
}

/// One line of every kind that can carry `visitor_ip`/`user_agent`, gzip without its
/// trailer so the last line comes back as a `corrupt_gzip` row.
fn mixed_object() -> Vec<u8> {
    let body = [
        // 1: pageview.
        format!(r#"{{"action":"pageview",{REQ},"visitor_ip":"{IP}","user_agent":"{UA}"}}"#),
        // 2: a bot by its user agent: classified on the value as received.
        format!(
            r#"{{"action":"pageview",{REQ},"visitor_ip":"{IP}","user_agent":"{UA} BotAgent"}}"#
        ),
        // 3: parsed, then rejected (no event_id).
        format!(
            r#"{{"action":"pageview","apikey":"a.com","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00","visitor_ip":"{IP}","user_agent":"{UA}"}}"#
        ),
        // 4: invalid JSON holding both.
        format!(r#"{{"action":"pageview","event_id":"e4","visitor_ip":"{IP}","user_agent":"{UA}""#),
        // 5: invalid UTF-8 elsewhere, valid JSON once replaced.
        format!(
            "{{\"action\":\"pageview\",\"event_id\":\"e\u{fffd}5\",\"visitor_ip\":\"{IP}\",\"user_agent\":\"{UA}\"}}"
        )
        .replace('\u{fffd}', "\u{1}"),
        // 6: IPv6.
        format!(r#"{{"action":"heartbeat",{REQ},"visitor_ip":"{IP6}","user_agent":"{UA}"}}"#),
        // 7: the key written with an escape is still the field.
        format!(r#"{{"action":"pageview",{REQ},"visitor\u005fip":"{IP}","user\u005fagent":"{UA}"}}"#),
        // 8: invalid JSON with neither field: kept as is.
        r#"{"action":"pageview","event_id":"e8","#.to_owned(),
        // 9: the partial last line (valid JSON, but the gzip stream is cut).
        format!(r#"{{"action":"share","event_id":"e9","visitor_ip":"{IP}","user_agent":"{UA}"}}"#),
    ]
    .join("\n");
    // Line 5 gets a real invalid byte where the marker is.
    let bytes: Vec<u8> = body
        .into_bytes()
        .into_iter()
        .map(|b| if b == 1 { 0xff } else { b })
        .collect();
    let gz = gzip(&bytes);
    gz[..gz.len() - 8].to_vec()
}

/// The personal values of [`mixed_object`] appear nowhere in what the decoder produced.
fn assert_nowhere(batches: &[DecodedBatch], mode: &str) {
    let all = format!("{batches:?}");
    for secret in [IP, IP6, "TestAgent"] {
        assert!(!all.contains(secret), "{mode}: {secret} leaked");
    }
}

#[test]
fn keep_is_the_default_and_keeps_everything() {
    assert_eq!(DecodeConfig::default().privacy, PrivacyConfig::default());
    let d = Decoder::new(DecodeConfig {
        bot_user_agent_patterns: vec!["BotAgent".into()],
        ..DecodeConfig::default()
    })
    .unwrap();
    let batches = decode(&d, mixed_object());
    let events: Vec<_> = batches.iter().flat_map(|b| &b.events).collect();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].str(Field::VisitorIp), Some(IP));
    assert_eq!(events[0].str(Field::UserAgent), Some(UA));
    assert_eq!(events[2].str(Field::VisitorIp), Some(IP6));
    let errors: Vec<_> = batches.iter().flat_map(|b| &b.errors).collect();
    assert_eq!(errors.len(), 5);
    assert!(errors.iter().all(|e| !e.raw.starts_with("[withheld")));
    assert!(errors[0].raw.contains(IP) && errors[1].raw.contains(UA));
}

#[test]
fn every_mode_on_every_kind_of_row() {
    let modes = [
        (IpMode::Truncate, Some(IP_24), Some(IP6_48)),
        (IpMode::Drop, None, None),
        (IpMode::Hash, Some(&*hmac_hex(IP)), Some(&*hmac_hex(IP6))),
    ];
    for (mode, want4, want6) in modes {
        let d = decoder(mode, UserAgentMode::Drop);
        let batches = decode(&d, mixed_object());
        let name = format!("{mode:?}");
        assert_nowhere(&batches, &name);
        let events: Vec<_> = batches.iter().flat_map(|b| &b.events).collect();
        let errors: Vec<_> = batches.iter().flat_map(|b| &b.errors).collect();
        let classes: Vec<_> = events.iter().map(|e| e.class).collect();
        assert_eq!(
            classes,
            [
                Class::Pageview,
                Class::Bot,
                Class::Heartbeat,
                Class::Pageview
            ],
            "{name}"
        );
        let ips: Vec<_> = events.iter().map(|e| e.str(Field::VisitorIp)).collect();
        assert_eq!(ips, [want4, want4, want6, want4], "{name}");
        assert!(events.iter().all(|e| e.get(Field::UserAgent).is_null()));
        let stats: u32 = batches
            .iter()
            .map(|b| b.stats.coerced.iter().sum::<u32>())
            .sum();
        assert_eq!(stats, 0, "{name}: nothing counted as unparseable");

        let rows: Vec<_> = errors.iter().map(|e| (e.line, e.reason)).collect();
        assert_eq!(
            rows,
            [
                (3, ErrorReason::MissingRequiredField),
                (4, ErrorReason::InvalidJson),
                (5, ErrorReason::InvalidUtf8),
                (8, ErrorReason::InvalidJson),
                (9, ErrorReason::CorruptGzip),
            ],
            "{name}"
        );
        // Parsed lines are re-written compactly with the fields redacted as in events.
        let ip_member = want4.map_or(String::new(), |ip| format!(r#","visitor_ip":"{ip}""#));
        assert_eq!(
            errors[0].raw,
            format!(
                r#"{{"action":"pageview","apikey":"a.com","visitor_site_id":"v1","ts_action":"2016-08-01 00:00:00"{ip_member}}}"#
            ),
            "{name}"
        );
        assert_eq!(errors[1].raw, WITHHELD_RAW, "{name}");
        assert_eq!(errors[1].event_id.as_deref(), Some("e4"), "ids still read");
        assert_eq!(
            errors[2].raw,
            format!("{{\"action\":\"pageview\",\"event_id\":\"e\u{fffd}5\"{ip_member}}}"),
            "{name}"
        );
        assert_eq!(errors[3].raw, r#"{"action":"pageview","event_id":"e8","#);
        assert_eq!(
            errors[4].raw,
            format!(r#"{{"action":"share","event_id":"e9"{ip_member}}}"#),
            "{name}"
        );
    }
}

#[test]
fn user_agent_alone_or_ip_alone() {
    // Only the user agent dropped: the address stays, and so does a raw line without UA.
    let d = decoder(IpMode::Keep, UserAgentMode::Drop);
    let batches = decode(&d, mixed_object());
    let all = format!("{batches:?}");
    assert!(!all.contains("TestAgent"));
    assert!(all.contains(IP));
    let errors: Vec<_> = batches.iter().flat_map(|b| &b.errors).collect();
    assert_eq!(
        errors[4].raw,
        format!(r#"{{"action":"share","event_id":"e9","visitor_ip":"{IP}"}}"#)
    );
    // Only the address truncated: the user agent stays.
    let d = decoder(IpMode::Truncate, UserAgentMode::Keep);
    let batches = decode(&d, mixed_object());
    let all = format!("{batches:?}");
    assert!(!all.contains(IP) && !all.contains(IP6));
    let events: Vec<_> = batches.iter().flat_map(|b| &b.events).collect();
    assert_eq!(events[0].str(Field::UserAgent), Some(UA));
}

/// `visitor_ip` given as `json` under `mode`: the value and whether it is counted.
fn check_ip(mode: IpMode, json: &str, want: Value, coerced: bool) {
    let d = decoder(mode, UserAgentMode::Keep);
    let line = format!(r#"{{"action":"pageview",{REQ},"visitor_ip":{json}}}"#);
    let batches = decode(&d, line.into_bytes());
    let events: Vec<_> = batches.iter().flat_map(|b| &b.events).collect();
    assert_eq!(events.len(), 1, "{mode:?} {json}");
    assert_eq!(events[0].get(Field::VisitorIp), &want, "{mode:?} {json}");
    let counted: u32 = batches
        .iter()
        .map(|b| b.stats.coerced[Field::VisitorIp as usize])
        .sum();
    assert_eq!(counted, u32::from(coerced), "{mode:?} {json}");
}

#[test]
fn values_that_are_not_addresses() {
    use IpMode::{Drop, Hash, Truncate};
    check_ip(Truncate, r#""unknown""#, Value::Null, true);
    check_ip(Truncate, "42", Value::Null, true);
    check_ip(Truncate, r#""198.51.100""#, Value::Null, true);
    check_ip(Truncate, r#"" 198.51.100.237 ""#, Value::text(IP_24), false);
    check_ip(Truncate, r#""""#, Value::Null, false);
    check_ip(Truncate, "null", Value::Null, false);
    check_ip(Truncate, r#"{"ip":1}"#, Value::Null, true);
    check_ip(
        Hash,
        r#""unknown""#,
        Value::text(hmac_hex("unknown")),
        false,
    );
    check_ip(Hash, "42", Value::text(hmac_hex("42")), false);
    // Canonical text form first: these are the same address.
    check_ip(
        Hash,
        r#""2001:DB8::1""#,
        Value::text(hmac_hex("2001:db8::1")),
        false,
    );
    check_ip(Hash, r#""""#, Value::Null, false);
    check_ip(Drop, r#"{"ip":1}"#, Value::Null, false);
    check_ip(Drop, r#""unknown""#, Value::Null, false);
}

#[test]
fn configuration_from_toml() {
    let cfg: DecodeConfig = toml::from_str(&format!(
        "[privacy]\nvisitor_ip = \"hash\"\nuser_agent = \"drop\"\nip_hash_salt = \"{SALT}\"\n"
    ))
    .unwrap();
    assert_eq!(cfg.privacy.visitor_ip, IpMode::Hash);
    assert_eq!(cfg.privacy.user_agent, UserAgentMode::Drop);
    assert_eq!(cfg.privacy.ip_hash_salt.as_ref().unwrap().expose(), SALT);
    assert!(!format!("{cfg:?}").contains(SALT), "salt not in Debug");
    let shown = toml::to_string(&cfg).unwrap();
    assert!(!shown.contains(SALT), "salt not serialized");
    assert!(shown.contains(r#"ip_hash_salt = "***""#), "{shown}");
    assert!(shown.contains(r#"visitor_ip = "hash""#), "{shown}");
    let d = Decoder::new(cfg).unwrap();
    assert!(
        !format!("{d:?}").contains(SALT),
        "salt not in the decoder's Debug"
    );
    for mode in ["keep", "truncate", "drop"] {
        let cfg: DecodeConfig =
            toml::from_str(&format!("[privacy]\nvisitor_ip = \"{mode}\"\n")).unwrap();
        assert!(Decoder::new(cfg).is_ok(), "{mode} needs no salt");
    }
    for bad in [
        "[privacy]\nvisitor_ip = \"mask\"\n",
        "[privacy]\nuser_agent = \"truncate\"\n",
        "[privacy]\nsalt = \"x\"\n",
    ] {
        assert!(toml::from_str::<DecodeConfig>(bad).is_err(), "{bad}");
    }
    let no_salt: DecodeConfig = toml::from_str("[privacy]\nvisitor_ip = \"hash\"\n").unwrap();
    assert!(matches!(Decoder::new(no_salt), Err(Error::MissingSalt)));
    let short = "[privacy]\nvisitor_ip = \"hash\"\nip_hash_salt = \"tiny-secret\"\n";
    let err = Decoder::new(toml::from_str(short).unwrap()).unwrap_err();
    assert!(!err.to_string().contains("tiny-secret"));
}
