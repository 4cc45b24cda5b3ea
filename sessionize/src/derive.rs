//! Derived values of SPEC.md section 3: md5 keys, reporting-zone times, date parts, labels.
//!
//! OWNED BY helper S1. The signatures below are the contract with the sessionizer (S2).
//!
//! Choices where SPEC.md is silent:
//! - Text forms inside the md5 recipes: null is the empty string, text as it is (full
//!   length, as parsed), integers (epoch-ms fields included, e.g. `session_timestamp`) in
//!   decimal, `Value::Ts` as `YYYY-MM-DD HH:MM:SS` without fraction, bools as `true`/`false`,
//!   floats in Rust's shortest round-trip form, dates as `YYYY-MM-DD`. The recipes of SPEC.md
//!   only use text, integer and time stamp fields.
//! - Local times come from the offset of the reporting zone at the UTC instant, so every UTC
//!   instant has exactly one local wall time (the autumn fold repeats wall times; the spring
//!   gap is never produced). An instant outside jiff's range (which parsed input cannot
//!   produce) keeps its UTC wall time in [`Derive::local`] and is null in `_tz` columns.
//! - Calendar arithmetic (day number to civil date, ISO week) is done with integers, so the
//!   per-event cost is one offset lookup plus a few divisions.

// Helpers here serve the sessionizer and the reference model; not every one is used by both.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::Arc;

use dpl_core::{Event, Field, Schema, Table, Value};
use md5::{Digest, Md5};

use crate::config::SessionizeConfig;
use crate::error::Error;

/// A 32-character lowercase md5 hex key.
pub(crate) type Key = Arc<str>;

/// Hash maps and sets of the hot path: foldhash (randomly seeded per process) instead of
/// SipHash, which showed up in the profile for every event.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub(crate) const MICROS_PER_SEC: i64 = 1_000_000;
pub(crate) const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;
const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
const MS_PER_WEEK: i64 = 7 * MS_PER_DAY;

/// The referrer of Facebook Instant Articles traffic (`flag_is_fbia`).
pub(crate) const FBIA_REFERRER: &str = "http://facebook.com/instantarticles";

/// Precomputed settings for derived values (time zone, thresholds, schema).
pub(crate) struct Derive {
    pub(crate) schema: Arc<Schema>,
    pub(crate) tz: jiff::tz::TimeZone,
    pub(crate) config: SessionizeConfig,
    /// Column count of every table, indexed by `Table as usize` (row-width checks).
    pub(crate) widths: [usize; 11],
    /// The zone's UTC offsets by instant, for the common range (see [`Offsets`]).
    offsets: Offsets,
}

/// The reporting zone's UTC offset over time, precomputed from its transitions for the
/// instants from 1970 to 2100: a lookup is an index into buckets of about six days plus a
/// step or two, instead of jiff's query (which evaluates the POSIX rule for every instant
/// past the zone's last listed transition). Instants outside the range ask jiff.
struct Offsets {
    /// UTC micros at which each offset starts, ascending; the first is the range's start.
    starts: Vec<i64>,
    /// The offset in micros from each start on.
    micros: Vec<i64>,
    /// Per bucket of `2^BUCKET_SHIFT` micros from the range's start: the index of the offset
    /// in effect at the bucket's start.
    buckets: Vec<u32>,
    /// One past the last UTC micros covered.
    hi: i64,
}

/// log2 of the bucket width of [`Offsets`] in micros (about 6.4 days).
const BUCKET_SHIFT: u32 = 39;

impl Offsets {
    fn of(tz: &jiff::tz::TimeZone) -> Offsets {
        let none = Offsets {
            starts: Vec::new(),
            micros: Vec::new(),
            buckets: Vec::new(),
            hi: i64::MIN,
        };
        // 1970-01-01 and 2100-01-01 00:00:00 UTC.
        let (Ok(lo), Ok(hi)) = (
            jiff::Timestamp::from_second(0),
            jiff::Timestamp::from_second(4_102_444_800),
        ) else {
            return none;
        };
        let off = |o: jiff::tz::Offset| i64::from(o.seconds()) * MICROS_PER_SEC;
        let mut starts = vec![lo.as_microsecond()];
        let mut micros = vec![off(tz.to_offset(lo))];
        for t in tz.following(lo) {
            if t.timestamp() >= hi {
                break;
            }
            let o = off(t.offset());
            // A transition may change only the abbreviation or the DST flag.
            if micros.last() != Some(&o) {
                starts.push(t.timestamp().as_microsecond());
                micros.push(o);
            }
        }
        let (lo, hi) = (lo.as_microsecond(), hi.as_microsecond());
        let mut buckets = Vec::new();
        let mut at = lo;
        while at < hi {
            let n = starts.partition_point(|&s| s <= at).saturating_sub(1);
            let Ok(n) = u32::try_from(n) else {
                return none;
            };
            buckets.push(n);
            at = at.saturating_add(1 << BUCKET_SHIFT);
        }
        Offsets {
            starts,
            micros,
            buckets,
            hi,
        }
    }

    /// The offset in micros at `utc_micros`, if in the precomputed range.
    fn get(&self, utc_micros: i64) -> Option<i64> {
        if utc_micros >= self.hi {
            return None;
        }
        let lo = *self.starts.first()?;
        let bucket = usize::try_from(utc_micros.checked_sub(lo)? >> BUCKET_SHIFT).ok()?;
        let mut n = usize::try_from(*self.buckets.get(bucket)?).ok()?;
        while self.starts.get(n + 1).is_some_and(|&s| s <= utc_micros) {
            n += 1;
        }
        self.micros.get(n).copied()
    }
}

/// Every static text label of the rows (the test below checks they all fit inline).
#[cfg(test)]
const LABELS: [&str; 16] = [
    "Skim",
    "Read",
    "Deep Read",
    "Watch",
    "Deep Watch",
    "New",
    "Returning",
    "Loyalty",
    "Non-Loyalty",
    "< 100",
    "100 - 499",
    "500 - 999",
    "1,000 - 1,999",
    "2,000 - 2,999",
    "3,000 - 3,999",
    "4,000 or Above",
];

/// Calendar parts of a local date (SPEC.md section 3 date parts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DateParts {
    pub(crate) year: i64,
    pub(crate) month: i64,
    pub(crate) day: i64,
    pub(crate) quarter: i64,
    /// ISO 8601 week number (1 to 53; the week of the date's Thursday).
    pub(crate) iso_week: i64,
    /// `yyyymmdd`.
    pub(crate) date_id: i64,
}

impl Derive {
    /// Fails with `Error::Config` on an unknown time zone.
    pub(crate) fn new(config: &SessionizeConfig, schema: Arc<Schema>) -> Result<Derive, Error> {
        let tz = jiff::tz::TimeZone::get(&config.timezone).map_err(|e| {
            Error::Config(format!(
                "timezone {:?} is not a known IANA time zone name ({e}); use a name such as \
                 America/New_York or UTC",
                config.timezone
            ))
        })?;
        let mut widths = [0; 11];
        for t in Table::ALL {
            if let Some(w) = widths.get_mut(t as usize) {
                *w = schema.columns(t).len();
            }
        }
        Ok(Derive {
            schema,
            offsets: Offsets::of(&tz),
            tz,
            config: config.clone(),
            widths,
        })
    }

    /// The text value of a static label (every label fits inline: no allocation).
    pub(crate) fn label(&self, s: &'static str) -> Value {
        Value::str(s)
    }

    /// Column count of `table`.
    pub(crate) fn width(&self, table: Table) -> usize {
        self.widths.get(table as usize).copied().unwrap_or(0)
    }

    /// md5 hex of `apikey || '_' || visitor_site_id`.
    pub(crate) fn apikey_visitor_id(ev: &Event) -> Key {
        md5_parts(&apikey_visitor_parts(ev))
    }

    /// SPEC.md section 3 recipes, from the event's parsed values.
    pub(crate) fn pageview_key(ev: &Event) -> Key {
        md5_parts(&pageview_parts(ev))
    }

    pub(crate) fn videostart_key(ev: &Event) -> Key {
        md5_parts(&videostart_parts(ev))
    }

    pub(crate) fn parsely_session_id(ev: &Event) -> Key {
        md5_parts(&session_id_parts(ev))
    }

    pub(crate) fn utm_id(ev: &Event) -> Key {
        md5_parts(&utm_parts(ev))
    }

    /// At least one utm_* field non-empty (the event belongs to a campaign).
    pub(crate) fn has_utm(ev: &Event) -> bool {
        UTM_FIELDS
            .iter()
            .any(|&f| ev.str(f).is_some_and(|s| !s.is_empty()))
    }

    /// `metadata_canonical_url` if not null, else `url`.
    pub(crate) fn pageview_post_id(ev: &Event) -> Option<&str> {
        Derive::pageview_post_value(ev).as_str()
    }

    /// [`Derive::pageview_post_id`] as the event's value (null when there is none).
    pub(crate) fn pageview_post_value(ev: &Event) -> &Value {
        match ev.get(Field::MetadataCanonicalUrl) {
            Value::Null => ev.get(Field::Url),
            v => v,
        }
    }

    /// md5 hex of `apikey_visitor_id || '_' || <start ts_action as YYYY-MM-DD HH:MM:SS>`.
    pub(crate) fn session_key(apikey_visitor_id: &str, start_ts: i64) -> Key {
        let mut buf = StackText::new();
        buf.push(apikey_visitor_id.as_bytes());
        buf.push(b"_");
        if buf.push_value(&Value::Ts(start_ts))
            && let Some(text) = buf.bytes()
        {
            return hex_key(&Md5::digest(text));
        }
        let mut h = Md5::new();
        h.update(apikey_visitor_id.as_bytes());
        h.update(b"_");
        hash_text(&mut h, &Value::Ts(start_ts));
        hex_key(&h.finalize())
    }

    /// md5 hex of `apikey_visitor_id || '_late_' || first_event_id`.
    pub(crate) fn late_session_key(apikey_visitor_id: &str, first_event_id: &str) -> Key {
        let mut h = Md5::new();
        h.update(apikey_visitor_id.as_bytes());
        h.update(b"_late_");
        h.update(first_event_id.as_bytes());
        hex_key(&h.finalize())
    }

    /// Naive local wall-clock micros of a UTC micros instant in the reporting zone.
    pub(crate) fn local(&self, utc_micros: i64) -> i64 {
        self.try_local(utc_micros).unwrap_or(utc_micros)
    }

    /// Local wall-clock micros, or `None` for an instant outside jiff's range.
    pub(crate) fn try_local(&self, utc_micros: i64) -> Option<i64> {
        if let Some(offset) = self.offsets.get(utc_micros) {
            return utc_micros.checked_add(offset);
        }
        let ts = jiff::Timestamp::from_microsecond(utc_micros).ok()?;
        let offset = i64::from(self.tz.to_offset(ts).seconds());
        utc_micros.checked_add(offset * MICROS_PER_SEC)
    }

    /// Local day number (days since 1970-01-01) of a UTC micros instant.
    pub(crate) fn local_day(&self, utc_micros: i64) -> i32 {
        day_of_micros(self.local(utc_micros))
    }

    /// Local wall time of an epoch-ms instant, or `None` out of range.
    pub(crate) fn local_of_ms(&self, ms: i64) -> Option<i64> {
        self.try_local(ms.checked_mul(1000)?)
    }

    /// The `<name>_tz` value of a [`dpl_core::TZ_FIELDS`] field: UTC text stamps are
    /// `Value::Ts` micros, epoch-ms fields `Value::Int` ms; anything else is null.
    pub(crate) fn tz_value(&self, v: &Value) -> Value {
        let local = match v {
            Value::Ts(us) => self.try_local(*us),
            Value::Int(ms) => self.local_of_ms(*ms),
            _ => None,
        };
        local.map_or(Value::Null, Value::Ts)
    }

    /// `read_category` of a pageview's engaged seconds.
    pub(crate) fn read_category(&self, engaged_time: i64) -> &'static str {
        if engaged_time > self.config.deep_read_seconds {
            "Deep Read"
        } else if engaged_time > self.config.skim_seconds {
            "Read"
        } else {
            "Skim"
        }
    }

    /// `watch_category` of a videoview's engaged seconds.
    pub(crate) fn watch_category(&self, video_engaged_time: i64) -> &'static str {
        if video_engaged_time > self.config.video_deep_watch_seconds {
            "Deep Watch"
        } else if video_engaged_time > self.config.video_skim_seconds {
            "Watch"
        } else {
            "Skim"
        }
    }

    /// `Loyalty` when `pageviews` reaches `loyalty_pageviews`.
    pub(crate) fn engagement_level(&self, pageviews: i64) -> &'static str {
        loyalty_label(pageviews, self.config.loyalty_pageviews)
    }

    /// `Loyalty` when `pageviews` reaches `rolling_loyalty_pageviews`.
    pub(crate) fn rolling_level(&self, pageviews: i64) -> &'static str {
        loyalty_label(pageviews, self.config.rolling_loyalty_pageviews)
    }
}

/// utm_campaign, utm_medium, utm_source, utm_term, utm_content (the campaign fields).
pub(crate) const UTM_FIELDS: [Field; 5] = [
    Field::UtmCampaign,
    Field::UtmMedium,
    Field::UtmSource,
    Field::UtmTerm,
    Field::UtmContent,
];

fn loyalty_label(pageviews: i64, threshold: i64) -> &'static str {
    if pageviews >= threshold {
        "Loyalty"
    } else {
        "Non-Loyalty"
    }
}

/// `word_count_buckets` of `metadata_full_content_word_count`.
pub(crate) fn word_count_bucket(words: i64) -> &'static str {
    match words {
        i64::MIN..=99 => "< 100",
        100..=499 => "100 - 499",
        500..=999 => "500 - 999",
        1_000..=1_999 => "1,000 - 1,999",
        2_000..=2_999 => "2,000 - 2,999",
        3_000..=3_999 => "3,000 - 3,999",
        _ => "4,000 or Above",
    }
}

/// `(hours, days, weeks)` elapsed from `pub_ms` to `read_ms`, floored toward minus infinity.
pub(crate) fn since_publish(pub_ms: i64, read_ms: i64) -> Option<(i64, i64, i64)> {
    let d = read_ms.checked_sub(pub_ms)?;
    Some((
        d.div_euclid(MS_PER_HOUR),
        d.div_euclid(MS_PER_DAY),
        d.div_euclid(MS_PER_WEEK),
    ))
}

/// Day number (days since 1970-01-01) of naive micros.
pub(crate) fn day_of_micros(us: i64) -> i32 {
    // |i64 micros| / 86_400e6 is at most about 106.8 million days: always fits an i32.
    i32::try_from(us.div_euclid(MICROS_PER_DAY)).unwrap_or(i32::MAX)
}

/// Civil `(year, month, day)` of a day number (H. Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day number of a civil date (H. Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Date parts of a day number.
pub(crate) fn date_parts(days: i64) -> DateParts {
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday: weekday with Monday = 0 is (days + 3) mod 7.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (iso_year, _, _) = civil_from_days(thursday);
    let iso_week = (thursday - days_from_civil(iso_year, 1, 1)) / 7 + 1;
    DateParts {
        year,
        month,
        day,
        quarter: (month - 1) / 3 + 1,
        iso_week,
        date_id: year * 10_000 + month * 100 + day,
    }
}

/// Date parts of naive (local) micros.
pub(crate) fn date_parts_of_micros(us: i64) -> DateParts {
    date_parts(us.div_euclid(MICROS_PER_DAY))
}

/// Lowercase md5 hex of `bytes`.
pub(crate) fn md5_hex(bytes: &[u8]) -> Key {
    hex_key(&Md5::digest(bytes))
}

/// The lowercase hex of a digest, built on the stack: one allocation (the `Arc`).
fn hex_key(digest: &[u8]) -> Key {
    let nibble = |n: u8| if n < 10 { b'0' + n } else { b'a' + (n - 10) };
    let mut hex = [0u8; 32];
    for (pair, &b) in hex.chunks_exact_mut(2).zip(digest) {
        if let [hi, lo] = pair {
            *hi = nibble(b >> 4);
            *lo = nibble(b & 0x0f);
        }
    }
    // Only ASCII hex digits were written.
    Arc::from(std::str::from_utf8(&hex).unwrap_or_default())
}

/// md5 hex of the values' text forms joined by `_` (null as empty): the text is formed in a
/// stack buffer and hashed in one call when it fits (the common case), else streamed into
/// the hasher part by part.
pub(crate) fn md5_parts(parts: &[&Value]) -> Key {
    let mut buf = StackText::new();
    for (i, v) in parts.iter().enumerate() {
        if i > 0 {
            buf.push(b"_");
        }
        if !buf.push_value(v) {
            return md5_parts_streamed(parts);
        }
    }
    match buf.bytes() {
        Some(text) => hex_key(&Md5::digest(text)),
        None => md5_parts_streamed(parts),
    }
}

/// [`md5_parts`] streaming every part into the hasher (no length limit).
fn md5_parts_streamed(parts: &[&Value]) -> Key {
    let mut h = Md5::new();
    for (i, v) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"_");
        }
        hash_text(&mut h, v);
    }
    hex_key(&h.finalize())
}

/// A recipe's text on the stack, up to `STACK_TEXT` bytes (longer: `bytes` is None).
struct StackText {
    buf: [u8; STACK_TEXT],
    len: usize,
    overflow: bool,
}

/// The stack buffer of [`md5_parts`]: recipes of real events are a few hundred bytes.
const STACK_TEXT: usize = 1024;

impl StackText {
    fn new() -> StackText {
        StackText {
            buf: [0; STACK_TEXT],
            len: 0,
            overflow: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.overflow = true,
        }
    }

    /// Appends the text form of null, text, integer and time stamp values (as
    /// [`hash_text`]); false for the other kinds (the caller streams instead).
    fn push_value(&mut self, v: &Value) -> bool {
        match v {
            Value::Null => {}
            Value::Text(t) => self.push(t.as_bytes()),
            Value::Short(t) => self.push(t.as_str().as_bytes()),
            Value::Int(i) => {
                let mut digits = [0u8; 20];
                let text = int_text(*i, &mut digits);
                if *i < 0 {
                    self.push(b"-");
                }
                self.push(text);
            }
            Value::Ts(us) => match ts_seconds_text(*us) {
                Some(text) => self.push(&text),
                None => return false,
            },
            _ => return false,
        }
        true
    }

    fn bytes(&self) -> Option<&[u8]> {
        if self.overflow {
            None
        } else {
            self.buf.get(..self.len)
        }
    }
}

/// The decimal digits of `|i|`, written at the end of `buf`.
fn int_text(i: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = i.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            // n % 10 < 10.
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    buf.get(at..).unwrap_or_default()
}

/// Feeds the text form of a value (see [`push_hash_text`]) to `h`; integers and time
/// stamps are formatted on the stack.
fn hash_text(h: &mut Md5, v: &Value) {
    match v {
        Value::Null => {}
        Value::Text(t) => h.update(t.as_bytes()),
        Value::Short(t) => h.update(t.as_str().as_bytes()),
        Value::Int(i) => {
            let mut digits = [0u8; 20];
            let text = int_text(*i, &mut digits);
            if *i < 0 {
                h.update(b"-");
            }
            h.update(text);
        }
        Value::Ts(us) => match ts_seconds_text(*us) {
            Some(text) => h.update(text),
            None => {
                let mut s = String::new();
                dpl_core::write_ts_seconds(&mut s, *us);
                h.update(s.as_bytes());
            }
        },
        other => {
            let mut s = String::new();
            push_hash_text(&mut s, other);
            h.update(s.as_bytes());
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` of naive micros (fraction dropped) for years 0 to 9999, the same
/// text as [`dpl_core::write_ts_seconds`]; None outside (the caller falls back to it).
fn ts_seconds_text(us: i64) -> Option<[u8; 19]> {
    let secs = us.div_euclid(MICROS_PER_SEC);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let mut out = *b"0000-00-00 00:00:00";
    let digits = |out: &mut [u8; 19], at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            if let Some(c) = out.get_mut(i) {
                // 0 <= v % 10 < 10.
                *c = b'0' + (v % 10) as u8;
            }
            v /= 10;
        }
    };
    digits(&mut out, 0, 4, y);
    digits(&mut out, 5, 2, m);
    digits(&mut out, 8, 2, d);
    digits(&mut out, 11, 2, sod / 3600);
    digits(&mut out, 14, 2, (sod / 60) % 60);
    digits(&mut out, 17, 2, sod % 60);
    Some(out)
}

/// The md5 recipes of the event-grain keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recipe {
    /// `pageview_key`.
    Pageview = 0,
    /// `videostart_key`.
    Videostart = 1,
    /// `parsely_session_id`.
    SessionId = 2,
    /// `utm_id`.
    Utm = 3,
}

/// The event-grain keys of one session's events, each md5 computed once per distinct input.
///
/// An event whose recipe fields equal (same variant and value; texts by content) those of
/// one of the last [`KeyCache::SCAN`] distinct inputs of the session reuses that key:
/// comparing a few fields is much cheaper than md5, and a session's events mostly share
/// their pageview, session and campaign fields. Entries are event indexes into the
/// session's events, so nothing is cloned to remember them; [`KeyCache::clear`] starts a
/// session (the vectors keep their capacity).
#[derive(Debug)]
pub(crate) struct KeyCache {
    /// Per recipe: `(event index, key)` of each distinct input, in the order computed.
    entries: [Vec<(usize, Key)>; 4],
    /// The last `utm_id` input and key, kept across sessions: most sessions carry no
    /// campaign, and their `utm_id` is then the same for every session of the apikey.
    last_utm: LastKey<6>,
    /// The empty key, for a recipe without an entry list (none is).
    empty: Key,
}

/// The last input of one recipe and its key: a run of inputs with the same fields (same
/// variant and value, see [`same_text`]) computes the md5 once.
#[derive(Debug)]
pub(crate) struct LastKey<const N: usize>(Option<([Value; N], Key)>);

impl<const N: usize> Default for LastKey<N> {
    fn default() -> Self {
        LastKey(None)
    }
}

impl<const N: usize> LastKey<N> {
    pub(crate) fn key(&mut self, parts: [&Value; N]) -> Key {
        match &self.0 {
            Some((last, key)) if last.iter().zip(parts).all(|(a, b)| same_text(a, b)) => {
                key.clone()
            }
            _ => {
                let key = md5_parts(&parts);
                self.0 = Some((parts.map(Clone::clone), key.clone()));
                key
            }
        }
    }
}

/// The keys of bot rows, which come one event at a time: a crawl's events share their
/// visitor, session and campaign keys, so each is computed once per run of equal inputs.
#[derive(Debug, Default)]
pub(crate) struct BotKeys {
    avid: LastKey<2>,
    utm_id: LastKey<6>,
    pageview: LastKey<7>,
    videostart: LastKey<8>,
    session_id: LastKey<4>,
}

impl BotKeys {
    /// The keys of `ev`'s bot row: those of [`crate::rows::EventKeys::of`].
    pub(crate) fn of(&mut self, ev: &Event) -> crate::rows::EventKeys {
        crate::rows::EventKeys {
            avid: self.avid.key(apikey_visitor_parts(ev)),
            utm_id: self.utm_id.key(utm_parts(ev)),
            pageview_key: Value::Text(self.pageview.key(pageview_parts(ev))),
            videostart_key: self.videostart.key(videostart_parts(ev)),
            session_id: self.session_id.key(session_id_parts(ev)),
            session_key: Value::Null,
        }
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            entries: Default::default(),
            last_utm: LastKey::default(),
            empty: Key::from(""),
        }
    }
}

impl KeyCache {
    /// Distinct inputs compared (most recent first) before computing a key afresh.
    pub(crate) const SCAN: usize = 16;

    /// Forgets the previous session's keys.
    pub(crate) fn clear(&mut self) {
        for e in &mut self.entries {
            e.clear();
        }
    }

    /// The `recipe` key of `events[i]`; an index out of `events` gets the key of an event
    /// with every field null.
    pub(crate) fn key(&mut self, events: &[Event], i: usize, recipe: Recipe) -> Key {
        self.key_ref(events, i, recipe).clone()
    }

    /// [`KeyCache::key`], borrowed: for comparing keys without a reference count going up
    /// and down for every heartbeat.
    pub(crate) fn key_ref(&mut self, events: &[Event], i: usize, recipe: Recipe) -> &Key {
        let Some(list) = self.entries.get_mut(recipe as usize) else {
            return &self.empty;
        };
        let at = match recipe {
            Recipe::Pageview => cached(list, events, i, pageview_parts, |p| md5_parts(&p)),
            Recipe::Videostart => cached(list, events, i, videostart_parts, |p| md5_parts(&p)),
            Recipe::SessionId => cached(list, events, i, session_id_parts, |p| md5_parts(&p)),
            Recipe::Utm => cached(list, events, i, utm_parts, |p| self.last_utm.key(p)),
        };
        list.get(at).map_or(&self.empty, |(_, key)| key)
    }
}

/// See [`KeyCache::key`]: the index in `list` of the entry with the key of `events[i]`,
/// pushed when there is none (its key computed from the recipe fields by `compute`).
fn cached<const N: usize>(
    list: &mut Vec<(usize, Key)>,
    events: &[Event],
    i: usize,
    parts: fn(&Event) -> [&Value; N],
    compute: impl FnOnce([&Value; N]) -> Key,
) -> usize {
    if let Some(at) = scan(list, events, i, parts) {
        return at;
    }
    let key = match events.get(i) {
        Some(ev) => compute(parts(ev)),
        None => md5_parts(&[&Value::Null; N]),
    };
    list.push((i, key));
    list.len() - 1
}

/// The index in `list` of the latest of its last [`KeyCache::SCAN`] entries whose event has
/// the same recipe fields as `events[i]`.
fn scan<const N: usize>(
    list: &[(usize, Key)],
    events: &[Event],
    i: usize,
    parts: fn(&Event) -> [&Value; N],
) -> Option<usize> {
    let want = parts(events.get(i)?);
    let from = list.len().saturating_sub(KeyCache::SCAN);
    list.get(from..)?
        .iter()
        .rposition(|(j, _)| {
            *j == i
                || events
                    .get(*j)
                    .is_some_and(|e| parts(e).iter().zip(&want).all(|(a, b)| same_text(a, b)))
        })
        .map(|at| from + at)
}

/// Whether two values have the same text form inside a recipe, judged without forming it:
/// the same variant and value (texts by content, floats by bits). Values of different
/// variants count as different (the key is then computed, never wrongly shared).
pub(crate) fn same_text(a: &Value, b: &Value) -> bool {
    // The same value: two events stored against one base read its values in place.
    if std::ptr::eq(a, b) {
        return true;
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Text(x), Value::Text(y)) => Arc::ptr_eq(x, y) || x == y,
        (Value::Text(_) | Value::Short(_), Value::Text(_) | Value::Short(_)) => a == b,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Ts(x), Value::Ts(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Date(x), Value::Date(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        _ => false,
    }
}

fn apikey_visitor_parts(ev: &Event) -> [&Value; 2] {
    [ev.get(Field::Apikey), ev.get(Field::VisitorSiteId)]
}

fn pageview_parts(ev: &Event) -> [&Value; 7] {
    let post = if ev.get(Field::MetadataCanonicalUrl).is_null() {
        ev.get(Field::Url)
    } else {
        ev.get(Field::MetadataCanonicalUrl)
    };
    [
        ev.get(Field::PageviewId),
        ev.get(Field::Apikey),
        ev.get(Field::SessionId),
        ev.get(Field::VisitorSiteId),
        post,
        ev.get(Field::Referrer),
        ev.get(Field::TsSessionCurrent),
    ]
}

fn utm_parts(ev: &Event) -> [&Value; 6] {
    [
        ev.get(Field::Apikey),
        ev.get(Field::UtmCampaign),
        ev.get(Field::UtmMedium),
        ev.get(Field::UtmSource),
        ev.get(Field::UtmTerm),
        ev.get(Field::UtmContent),
    ]
}

fn session_id_parts(ev: &Event) -> [&Value; 4] {
    [
        ev.get(Field::Apikey),
        ev.get(Field::SessionId),
        ev.get(Field::VisitorSiteId),
        ev.get(Field::SessionTimestamp),
    ]
}

fn videostart_parts(ev: &Event) -> [&Value; 8] {
    [
        ev.get(Field::VideostartId),
        ev.get(Field::Apikey),
        ev.get(Field::SessionId),
        ev.get(Field::VisitorSiteId),
        ev.get(Field::Url),
        ev.get(Field::MetadataCanonicalUrl),
        ev.get(Field::Referrer),
        ev.get(Field::TsSessionCurrent),
    ]
}

/// The text form of a value inside an md5 recipe (see the module docs).
fn push_hash_text(s: &mut String, v: &Value) {
    match v {
        Value::Null => {}
        Value::Text(t) => s.push_str(t),
        Value::Short(t) => s.push_str(t.as_str()),
        Value::Int(i) => {
            let _ = write!(s, "{i}");
        }
        Value::Ts(us) => dpl_core::write_ts_seconds(s, *us),
        Value::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
        Value::Float(f) => {
            let _ = write!(s, "{f}");
        }
        Value::Date(d) => dpl_core::write_date(s, *d),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use dpl_core::{Arrival, Class, micros_of};

    /// UTC micros of a civil date-time.
    pub(crate) fn us(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> i64 {
        micros_of(jiff::civil::date(y, mo, d).at(h, mi, s, 0))
    }

    pub(crate) fn derive() -> Derive {
        Derive::new(&SessionizeConfig::default(), Arc::new(Schema::default())).unwrap()
    }

    fn ev() -> Event {
        let mut e = Event::empty(Class::Pageview, Arrival { object: 0, line: 1 });
        e.set(Field::Apikey, Value::text("example.com"));
        e.set(Field::VisitorSiteId, Value::text("v1"));
        e.set(Field::EventId, Value::text("e1"));
        e.set(Field::TsAction, Value::Ts(us(2024, 3, 10, 6, 59, 59)));
        e
    }

    /// The recipe event: texts, an int session id, a fractional ts_session_current.
    fn recipe_event() -> Event {
        let mut e = ev();
        e.set(Field::PageviewId, Value::text("pv1"));
        e.set(Field::SessionId, Value::Int(3));
        e.set(Field::Url, Value::text("http://example.com/a"));
        e.set(
            Field::TsSessionCurrent,
            Value::Ts(us(2024, 3, 10, 6, 0, 0) + 500_000),
        );
        e.set(Field::SessionTimestamp, Value::Int(1_710_050_400_000));
        e.set(Field::UtmCampaign, Value::text("spring"));
        e
    }

    // Golden values computed in the shell with `printf '%s' '<text>' | md5sum`.
    #[test]
    fn md5_golden_values() {
        assert_eq!(&*md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(&*md5_hex(b"a_b"), "dbf08e00b01fd58a4a5967753b43784f");
        let e = recipe_event();
        // 'example.com_v1'
        assert_eq!(
            &*Derive::apikey_visitor_id(&e),
            "4e3b6ee5be88f0f88abcd1f8d505883e"
        );
        // 'pv1_example.com_3_v1_http://example.com/a__2024-03-10 06:00:00' (fraction dropped,
        // null referrer empty, url as canonical is null)
        assert_eq!(
            &*Derive::pageview_key(&e),
            "0ceb7b1120885b79adb6cd109165ae4c"
        );
        // '_example.com_3_v1_http://example.com/a___2024-03-10 06:00:00'
        assert_eq!(
            &*Derive::videostart_key(&e),
            "4e6b8bbebc1facdba38dbeff40c41f80"
        );
        // 'example.com_3_v1_1710050400000': session_timestamp is epoch ms, in decimal
        assert_eq!(
            &*Derive::parsely_session_id(&e),
            "2138c9d4ace8c89751414f968efe45e7"
        );
        // 'example.com_spring____'
        assert_eq!(&*Derive::utm_id(&e), "0c33ef3dae44a34208a1b4d1cd528f40");
        // '4e3b..._2024-03-10 06:59:59' (micros dropped)
        assert_eq!(
            &*Derive::session_key(
                "4e3b6ee5be88f0f88abcd1f8d505883e",
                us(2024, 3, 10, 6, 59, 59) + 250_000
            ),
            "a4424622636361822fd61c64de9373b7"
        );
        // Past year 9999 the time stamp text comes from the core writer.
        let mut far = String::from("a_");
        dpl_core::write_ts_seconds(&mut far, i64::MAX);
        assert_eq!(Derive::session_key("a", i64::MAX), md5_hex(far.as_bytes()));
        assert_eq!(
            &*Derive::late_session_key("4e3b6ee5be88f0f88abcd1f8d505883e", "e1"),
            "378a5cbf1ebb5655a301a75145fd9b4e"
        );
        // The canonical url wins over url in pageview_key; the referrer is part of it.
        let mut e2 = e.clone();
        e2.set(
            Field::MetadataCanonicalUrl,
            Value::text("http://example.com/canon"),
        );
        e2.set(Field::Referrer, Value::text(FBIA_REFERRER));
        // 'pv1_example.com_3_v1_http://example.com/canon_http://facebook.com/instantarticles_2024-03-10 06:00:00'
        assert_eq!(
            &*Derive::pageview_key(&e2),
            "1871e55a39d25583e11602f7d97b128b"
        );
        // Nulls are empty parts: six parts of utm_id give five separators, four of
        // parsely_session_id three.
        let mut none = Event::empty(Class::Custom, Arrival { object: 0, line: 1 });
        none.set(Field::Apikey, Value::Null);
        // printf '%s' '_____' | md5sum
        assert_eq!(&*Derive::utm_id(&none), "4e97bce5e680a3793adca03d5cc8523f");
        assert_eq!(&*Derive::parsely_session_id(&none), &*md5_hex(b"___"));
    }

    #[test]
    fn bot_keys_are_the_event_keys_whatever_came_before() {
        let a = recipe_event();
        let mut b = recipe_event();
        b.set(Field::PageviewId, Value::text("pv2"));
        b.set(Field::Url, Value::text("http://example.com/b"));
        let mut c = recipe_event();
        c.set(Field::VisitorSiteId, Value::text("another"));
        c.set(Field::UtmCampaign, Value::Null);
        // Another variant with the same text form: computed afresh, to the same key.
        let mut d = a.clone();
        d.set(Field::SessionId, Value::text("3"));
        let mut keys = BotKeys::default();
        for e in [&a, &a, &b, &a, &c, &c, &d, &a] {
            let got = keys.of(e);
            let want = crate::rows::EventKeys::of(e, Value::Null);
            assert_eq!(got.avid, want.avid);
            assert_eq!(got.utm_id, want.utm_id);
            assert_eq!(got.pageview_key, want.pageview_key);
            assert_eq!(got.videostart_key, want.videostart_key);
            assert_eq!(got.session_id, want.session_id);
            assert!(got.session_key.is_null());
        }
        assert_ne!(keys.of(&a).avid, keys.of(&c).avid);
    }

    #[test]
    fn streamed_hash_text_equals_the_text_forms() {
        // Ints (signs, zero, extremes) and time stamps (fraction dropped, before 1970, past
        // 9999 where the core writer takes over) hash exactly as their text.
        let values = [
            Value::Int(0),
            Value::Int(-5),
            Value::Int(1_710_050_400_000),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Ts(us(2016, 8, 1, 9, 5, 7) + 999_999),
            Value::Ts(us(1969, 12, 31, 23, 59, 59) + 1),
            Value::Ts(us(2024, 2, 29, 0, 0, 0)),
            Value::Ts(i64::MAX),
            Value::Null,
            Value::text("x_y"),
            Value::Bool(false),
            Value::Float(1.5),
        ];
        for v in &values {
            let mut text = String::new();
            push_hash_text(&mut text, v);
            assert_eq!(md5_parts(&[v]), md5_hex(text.as_bytes()), "{v:?} as {text}");
            assert_eq!(md5_parts(&[v]), md5_parts_streamed(&[v]), "{v:?}");
        }
        // Texts past the stack buffer are streamed; every pair of values joins with `_`.
        let long = Value::text("x".repeat(STACK_TEXT + 3));
        let near = Value::text("y".repeat(STACK_TEXT - 1));
        for a in values.iter().chain([&long, &near]) {
            for b in values.iter().chain([&long, &near]) {
                let (mut ta, mut tb) = (String::new(), String::new());
                push_hash_text(&mut ta, a);
                push_hash_text(&mut tb, b);
                let want = md5_hex(format!("{ta}_{tb}").as_bytes());
                assert_eq!(md5_parts(&[a, b]), want, "{a:?} {b:?}");
            }
        }
        // The session key cache: equal recipe fields share a key, any change is hashed.
        let mut a = recipe_event();
        a.set(Field::EventId, Value::text("a"));
        let mut b = a.clone();
        b.set(Field::EventId, Value::text("b"));
        let mut c = a.clone();
        c.set(Field::Url, Value::text("http://example.com/other"));
        let mut d = a.clone();
        d.set(Field::PageviewId, Value::Null);
        let mut e = a.clone();
        e.set(Field::SessionId, Value::text("3"));
        let events = [a, b, c, d, e];
        let mut cache = KeyCache::default();
        for (i, ev) in events.iter().enumerate() {
            for (r, want) in [
                (Recipe::Pageview, Derive::pageview_key(ev)),
                (Recipe::Videostart, Derive::videostart_key(ev)),
                (Recipe::SessionId, Derive::parsely_session_id(ev)),
                (Recipe::Utm, Derive::utm_id(ev)),
            ] {
                assert_eq!(cache.key(&events, i, r), want, "event {i} {r:?}");
                assert_eq!(cache.key(&events, i, r), want, "event {i} {r:?} again");
            }
        }
        // Int 3 and text "3" have the same text form: the key is right either way.
        assert_eq!(
            Derive::parsely_session_id(&events[0]),
            Derive::parsely_session_id(&events[4])
        );
        assert!(!same_text(&Value::Float(0.0), &Value::Float(-0.0)));
        assert!(same_text(&Value::text("x"), &Value::text("x")));
    }

    #[test]
    fn hash_text_forms() {
        let mut s = String::new();
        for v in [
            Value::Null,
            Value::Int(-5),
            Value::Ts(us(2016, 8, 1, 9, 5, 7) + 1),
            Value::text("x_y"),
            Value::Bool(true),
        ] {
            push_hash_text(&mut s, &v);
            s.push('|');
        }
        assert_eq!(s, "|-5|2016-08-01 09:05:07|x_y|true|");
    }

    #[test]
    fn has_utm_and_post_id() {
        let mut e = ev();
        assert!(!Derive::has_utm(&e));
        e.set(Field::UtmTerm, Value::text(""));
        assert!(!Derive::has_utm(&e), "empty utm is no campaign");
        e.set(Field::SurlUtmSource, Value::text("x"));
        assert!(
            !Derive::has_utm(&e),
            "surl_utm_* are not the campaign fields"
        );
        e.set(Field::UtmContent, Value::text("c"));
        assert!(Derive::has_utm(&e));

        assert_eq!(Derive::pageview_post_id(&e), None);
        e.set(Field::Url, Value::text("u"));
        assert_eq!(Derive::pageview_post_id(&e), Some("u"));
        e.set(Field::MetadataCanonicalUrl, Value::text("c"));
        assert_eq!(Derive::pageview_post_id(&e), Some("c"));
    }

    #[test]
    fn unknown_time_zone_is_a_config_error() {
        let cfg = SessionizeConfig {
            timezone: "Mars/Olympus_Mons".to_owned(),
            ..SessionizeConfig::default()
        };
        let err = Derive::new(&cfg, Arc::new(Schema::default()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("Mars/Olympus_Mons"), "{err}");
    }

    #[test]
    fn local_time_and_dst() {
        let d = derive();
        // EST (UTC-5) in winter.
        assert_eq!(d.local(us(2024, 1, 15, 12, 0, 0)), us(2024, 1, 15, 7, 0, 0));
        // Spring forward 2024-03-10 07:00 UTC: 01:59:59 EST, then 03:00:00 EDT (02:xx never
        // appears).
        assert_eq!(
            d.local(us(2024, 3, 10, 6, 59, 59)),
            us(2024, 3, 10, 1, 59, 59)
        );
        assert_eq!(d.local(us(2024, 3, 10, 7, 0, 0)), us(2024, 3, 10, 3, 0, 0));
        // Fall back 2024-11-03 06:00 UTC: 01:30 EDT at 05:30 UTC and 01:30 EST at 06:30 UTC.
        assert_eq!(
            d.local(us(2024, 11, 3, 5, 30, 0)),
            us(2024, 11, 3, 1, 30, 0)
        );
        assert_eq!(
            d.local(us(2024, 11, 3, 6, 30, 0)),
            us(2024, 11, 3, 1, 30, 0)
        );
        assert_eq!(
            d.local(us(2024, 11, 3, 6, 0, 0) - 1),
            us(2024, 11, 3, 2, 0, 0) - 1
        );
        assert_eq!(d.local(us(2024, 11, 3, 6, 0, 0)), us(2024, 11, 3, 1, 0, 0));
        // Micros are kept.
        assert_eq!(
            d.local(us(2024, 1, 15, 12, 0, 0) + 7),
            us(2024, 1, 15, 7, 0, 0) + 7
        );
        // Local midnight: 03:59:59 UTC in summer is the previous local day.
        assert_eq!(
            d.local_day(us(2024, 7, 2, 3, 59, 59)),
            dpl_core::day_number(jiff::civil::date(2024, 7, 1))
        );
        assert_eq!(
            d.local_day(us(2024, 7, 2, 4, 0, 0)),
            dpl_core::day_number(jiff::civil::date(2024, 7, 2))
        );
        // Another zone: Asia/Kolkata is UTC+05:30 with no DST.
        let cfg = SessionizeConfig {
            timezone: "Asia/Kolkata".to_owned(),
            ..SessionizeConfig::default()
        };
        let k = Derive::new(&cfg, Arc::new(Schema::default())).unwrap();
        assert_eq!(k.local(us(2024, 7, 1, 20, 0, 0)), us(2024, 7, 2, 1, 30, 0));
    }

    #[test]
    fn offset_table_matches_jiff() {
        for zone in [
            "America/New_York",
            "Europe/London",
            "Europe/Dublin",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "Pacific/Apia",
            "America/St_Johns",
            "Africa/Casablanca",
            "UTC",
        ] {
            let cfg = SessionizeConfig {
                timezone: zone.to_owned(),
                ..SessionizeConfig::default()
            };
            let d = Derive::new(&cfg, Arc::new(Schema::default())).unwrap();
            let jiff_local = |us: i64| {
                let ts = jiff::Timestamp::from_microsecond(us).ok()?;
                us.checked_add(i64::from(d.tz.to_offset(ts).seconds()) * MICROS_PER_SEC)
            };
            // Around every transition of the table (the range edges included).
            let mut instants: Vec<i64> = d
                .offsets
                .starts
                .iter()
                .flat_map(|&s| [s - 1, s, s + 1, s + 999_999])
                .collect();
            instants.extend([d.offsets.hi - 1, d.offsets.hi, i64::MIN, i64::MAX, -1, 0]);
            // And a pseudo-random sweep from 1950 to 2120.
            let (from, to) = (-631_152_000_000_000_i64, 4_733_510_400_000_000_i64);
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                instants.push(from + (x % (to - from) as u64) as i64);
            }
            for us in instants {
                assert_eq!(d.try_local(us), jiff_local(us), "{zone} at {us}");
            }
            assert!(d.offsets.get(us(2024, 3, 10, 7, 0, 0)).is_some(), "{zone}");
            assert!(d.offsets.get(-1).is_none() && d.offsets.get(d.offsets.hi).is_none());
        }
    }

    #[test]
    fn tz_values_of_ts_and_epoch_ms() {
        let d = derive();
        // 2024-11-03 06:30:00.123 UTC as epoch ms = 1730615400123: 01:30:00.123 EST.
        assert_eq!(
            d.tz_value(&Value::Int(1_730_615_400_123)),
            Value::Ts(us(2024, 11, 3, 1, 30, 0) + 123_000)
        );
        assert_eq!(
            d.tz_value(&Value::Ts(us(2024, 11, 3, 5, 30, 0))),
            Value::Ts(us(2024, 11, 3, 1, 30, 0))
        );
        assert_eq!(d.tz_value(&Value::Null), Value::Null);
        assert_eq!(d.tz_value(&Value::Int(i64::MAX)), Value::Null);
    }

    #[test]
    fn date_parts_match_hand_worked_and_jiff() {
        let day = |y, m, d| i64::from(dpl_core::day_number(jiff::civil::date(y, m, d)));
        // (date, iso week, quarter) worked by hand from the ISO rule (week of Thursday).
        let cases = [
            // 2021-01-01 is a Friday: week 53 of 2020.
            ((2021, 1, 1), 53, 1),
            ((2021, 1, 3), 53, 1),
            ((2021, 1, 4), 1, 1),
            // 2024-12-30 is a Monday whose Thursday is 2025-01-02: week 1.
            ((2024, 12, 30), 1, 4),
            ((2024, 12, 29), 52, 4),
            // 2026-12-31 is a Thursday: week 53 of 2026.
            ((2026, 12, 31), 53, 4),
            ((2027, 1, 1), 53, 1),
            ((2024, 2, 29), 9, 1),
            ((2024, 7, 1), 27, 3),
            ((1970, 1, 1), 1, 1),
            ((1969, 12, 29), 1, 4),
        ];
        for ((y, m, d), week, quarter) in cases {
            let p = date_parts(day(y, m, d));
            assert_eq!(
                (p.year, p.month, p.day, p.iso_week, p.quarter),
                (i64::from(y), i64::from(m), i64::from(d), week, quarter),
                "{y}-{m}-{d}"
            );
            assert_eq!(
                p.date_id,
                i64::from(y) * 10_000 + i64::from(m) * 100 + i64::from(d)
            );
        }
        // Every day from 1900 to 2100 against jiff's calendar.
        for n in day(1900, 1, 1)..day(2100, 12, 31) {
            let date = dpl_core::civil_date(n).unwrap();
            let p = date_parts(n);
            let iso = date.iso_week_date();
            assert_eq!(
                (p.year, p.month, p.day, p.iso_week),
                (
                    i64::from(date.year()),
                    i64::from(date.month()),
                    i64::from(date.day()),
                    i64::from(iso.week())
                ),
                "{date}"
            );
            assert_eq!(days_from_civil(p.year, p.month, p.day), n);
        }
    }

    #[test]
    fn since_publish_floors_toward_minus_infinity() {
        let h = MS_PER_HOUR;
        assert_eq!(since_publish(0, 0), Some((0, 0, 0)));
        assert_eq!(since_publish(0, h - 1), Some((0, 0, 0)));
        assert_eq!(since_publish(0, 25 * h), Some((25, 1, 0)));
        assert_eq!(since_publish(0, 8 * 24 * h), Some((192, 8, 1)));
        // Read one ms before publish: -1 of every unit, not 0.
        assert_eq!(since_publish(1000, 999), Some((-1, -1, -1)));
        assert_eq!(since_publish(0, -25 * h), Some((-25, -2, -1)));
        assert_eq!(since_publish(i64::MIN, i64::MAX), None);
    }

    #[test]
    fn labels_fit_inline() {
        for l in LABELS {
            assert!(matches!(derive().label(l), Value::Short(_)), "{l}");
        }
    }

    #[test]
    fn labels_and_buckets() {
        let d = derive();
        for (t, want) in [
            (0, "Skim"),
            (15, "Skim"),
            (16, "Read"),
            (40, "Read"),
            (41, "Deep Read"),
        ] {
            assert_eq!(d.read_category(t), want, "{t}");
        }
        for (t, want) in [
            (15, "Skim"),
            (16, "Watch"),
            (60, "Watch"),
            (61, "Deep Watch"),
        ] {
            assert_eq!(d.watch_category(t), want, "{t}");
        }
        assert_eq!(d.engagement_level(99), "Non-Loyalty");
        assert_eq!(d.engagement_level(100), "Loyalty");
        assert_eq!(d.rolling_level(29), "Non-Loyalty");
        assert_eq!(d.rolling_level(30), "Loyalty");
        for (w, want) in [
            (-3, "< 100"),
            (99, "< 100"),
            (100, "100 - 499"),
            (499, "100 - 499"),
            (500, "500 - 999"),
            (999, "500 - 999"),
            (1000, "1,000 - 1,999"),
            (2999, "2,000 - 2,999"),
            (3000, "3,000 - 3,999"),
            (3999, "3,000 - 3,999"),
            (4000, "4,000 or Above"),
        ] {
            assert_eq!(word_count_bucket(w), want, "{w}");
        }
    }
}
