//! Cell values shared by events and rows, and their text forms.

use std::fmt::Write as _;
use std::sync::Arc;

/// One cell of an event or a row.
///
/// Text is held in one of two forms that read and compare the same: [`Value::Short`] inline
/// for up to [`ShortText::CAPACITY`] bytes (no allocation, no reference count: copying,
/// comparing and dropping it touch nothing but the value), [`Value::Text`] shared otherwise.
/// [`Value::text`] picks the form; code that reads text uses [`Value::as_str`].
///
/// Time stamps are naive: microseconds since `1970-01-01 00:00:00` of a wall clock, which is
/// UTC for the UTC columns and the reporting zone for the `_tz` columns.
#[derive(Clone, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Arc<str>),
    /// Text of at most [`ShortText::CAPACITY`] bytes, inline.
    Short(ShortText),
    /// Microseconds since the epoch of a naive date-time.
    Ts(i64),
    /// Days since 1970-01-01.
    Date(i32),
}

// Inline text must not make cells bigger: a row is a flat run of them.
const _: () = assert!(std::mem::size_of::<Value>() == 24);

/// Text that fits in a [`Value`] itself. Most text fields of an event are short (codes,
/// names, places, flags, browser and device labels): about 70% of them in generated data.
/// The default is the empty text.
#[derive(Clone, Copy, Default)]
pub struct ShortText {
    len: u8,
    bytes: [u8; ShortText::CAPACITY],
}

impl ShortText {
    /// The most bytes held inline.
    pub const CAPACITY: usize = 22;

    /// `s` inline, or `None` when it is longer than [`ShortText::CAPACITY`].
    pub fn new(s: &str) -> Option<ShortText> {
        let len = s.len();
        if len > Self::CAPACITY {
            return None;
        }
        let mut bytes = [0; Self::CAPACITY];
        bytes[..len].copy_from_slice(s.as_bytes());
        Some(ShortText {
            len: len as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Built from a `&str` of exactly these bytes, so always valid UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for ShortText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Debug for Value {
    /// Text prints as `Text("...")` in either form, as it compares.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(b) => f.debug_tuple("Bool").field(b).finish(),
            Value::Int(i) => f.debug_tuple("Int").field(i).finish(),
            Value::Float(x) => f.debug_tuple("Float").field(x).finish(),
            Value::Text(_) | Value::Short(_) => f
                .debug_tuple("Text")
                .field(&self.as_str().unwrap_or_default())
                .finish(),
            Value::Ts(t) => f.debug_tuple("Ts").field(t).finish(),
            Value::Date(d) => f.debug_tuple("Date").field(d).finish(),
        }
    }
}

impl PartialEq for Value {
    /// Text compares by content, whatever its form.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Short(a), Value::Short(b)) => {
                a.len == b.len && a.bytes[..usize::from(a.len)] == b.bytes[..usize::from(b.len)]
            }
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Text(a), Value::Short(b)) | (Value::Short(b), Value::Text(a)) => {
                **a == *b.as_str()
            }
            (Value::Ts(a), Value::Ts(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            Value::Short(s) => Some(s.as_str()),
            _ => None,
        }
    }
    /// The text as a shared string: the same one for [`Value::Text`], a new one for
    /// [`Value::Short`]; `None` for other values.
    pub fn to_arc(&self) -> Option<Arc<str>> {
        match self {
            Value::Text(s) => Some(Arc::clone(s)),
            Value::Short(s) => Some(Arc::from(s.as_str())),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_ts(&self) -> Option<i64> {
        match self {
            Value::Ts(t) => Some(*t),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// A text value from a string slice: inline when short, else a new shared string.
    pub fn str(s: &str) -> Value {
        match ShortText::new(s) {
            Some(t) => Value::Short(t),
            None => Value::Text(Arc::from(s)),
        }
    }
    /// A text value from a shared string: inline when short, else that string.
    pub fn text(s: impl Into<Arc<str>>) -> Value {
        let s: Arc<str> = s.into();
        match ShortText::new(&s) {
            Some(t) => Value::Short(t),
            None => Value::Text(s),
        }
    }
    /// `Text` (or `Short`) or `Null`.
    pub fn opt_text(s: Option<impl Into<Arc<str>>>) -> Value {
        s.map_or(Value::Null, Value::text)
    }
}

const MICROS_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Splits naive microseconds into (days since epoch, second of day, microsecond).
fn split_micros(us: i64) -> (i64, i64, i64) {
    let secs = us.div_euclid(MICROS_PER_SEC);
    let micro = us.rem_euclid(MICROS_PER_SEC);
    (
        secs.div_euclid(SECS_PER_DAY),
        secs.rem_euclid(SECS_PER_DAY),
        micro,
    )
}

/// The civil date of a day number (days since 1970-01-01), or `None` out of jiff's range.
pub fn civil_date(days: i64) -> Option<jiff::civil::Date> {
    let epoch = jiff::civil::date(1970, 1, 1);
    let span = jiff::Span::new().try_days(days).ok()?;
    epoch.checked_add(span).ok()
}

/// Days since 1970-01-01 of a civil date.
pub fn day_number(d: jiff::civil::Date) -> i32 {
    // Dates in jiff's range are within +-3.7 million days, so this always fits.
    let epoch = jiff::civil::date(1970, 1, 1);
    (d - epoch).get_days()
}

/// Appends `YYYY-MM-DD HH:MM:SS[.ffffff]` (fraction only when non-zero).
pub fn write_ts(out: &mut String, us: i64) {
    write_ts_inner(out, us, true);
}

/// Appends `YYYY-MM-DD HH:MM:SS`, fraction dropped: the text form used inside the md5 keys.
pub fn write_ts_seconds(out: &mut String, us: i64) {
    write_ts_inner(out, us, false);
}

fn write_ts_inner(out: &mut String, us: i64, fraction: bool) {
    let (days, sod, micro) = split_micros(us);
    let Some(d) = civil_date(days) else {
        // Out of range for a calendar: cannot come from parsed input; keep it visible.
        let _ = write!(out, "{us}");
        return;
    };
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        d.year(),
        d.month(),
        d.day(),
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if fraction && micro != 0 {
        let _ = write!(out, ".{micro:06}");
    }
}

/// Appends `YYYY-MM-DD`.
pub fn write_date(out: &mut String, days: i32) {
    match civil_date(i64::from(days)) {
        Some(d) => {
            let _ = write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
        }
        None => {
            let _ = write!(out, "{days}");
        }
    }
}

/// Naive microseconds of a civil date-time.
pub fn micros_of(dt: jiff::civil::DateTime) -> i64 {
    let days = i64::from(day_number(dt.date()));
    let sod = i64::from(dt.hour()) * 3600 + i64::from(dt.minute()) * 60 + i64::from(dt.second());
    (days * SECS_PER_DAY + sod) * MICROS_PER_SEC + i64::from(dt.subsec_nanosecond()) / 1000
}

/// The civil date-time of naive microseconds, or `None` out of range.
pub fn datetime_of(us: i64) -> Option<jiff::civil::DateTime> {
    let (days, sod, micro) = split_micros(us);
    let d = civil_date(days)?;
    let t = jiff::civil::Time::new(
        (sod / 3600) as i8,
        ((sod / 60) % 60) as i8,
        (sod % 60) as i8,
        (micro * 1000) as i32,
    )
    .ok()?;
    Some(d.to_datetime(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_read_and_compare_the_same() {
        let short = "example.com";
        let long = "https://example.com/a/long/path/to/a/page";
        assert!(matches!(Value::str(short), Value::Short(_)));
        assert!(matches!(Value::str(long), Value::Text(_)));
        assert!(matches!(
            Value::text(Arc::<str>::from(short)),
            Value::Short(_)
        ));
        for s in ["", short, "x".repeat(ShortText::CAPACITY).as_str(), long] {
            let shared = Value::Text(Arc::from(s));
            assert_eq!(Value::str(s), shared);
            assert_eq!(shared, Value::str(s));
            assert_eq!(Value::str(s).as_str(), Some(s));
            assert_eq!(Value::str(s).to_arc().as_deref(), Some(s));
        }
        assert_ne!(Value::str("ab"), Value::str("abc"));
        assert_ne!(Value::str("ab"), Value::Text(Arc::from("ac")));
        assert_ne!(Value::str("1"), Value::Int(1));
        // Debug output does not tell the forms apart either (tests key rows by it).
        assert_eq!(format!("{:?}", Value::str("ab")), r#"Text("ab")"#);
        assert_eq!(
            format!("{:?}", Value::Text(Arc::from("ab"))),
            r#"Text("ab")"#
        );
        assert_eq!(
            ShortText::new(&"é".repeat(11)).map(|t| t.as_str().len()),
            Some(22)
        );
        assert!(ShortText::new(&"x".repeat(ShortText::CAPACITY + 1)).is_none());
    }

    #[test]
    fn ts_text_forms() {
        let dt = jiff::civil::date(2016, 8, 1).at(9, 5, 7, 250_000_000);
        let us = micros_of(dt);
        let mut s = String::new();
        write_ts(&mut s, us);
        assert_eq!(s, "2016-08-01 09:05:07.250000");
        s.clear();
        write_ts_seconds(&mut s, us);
        assert_eq!(s, "2016-08-01 09:05:07");
        assert_eq!(datetime_of(us), Some(dt));
        s.clear();
        write_ts(&mut s, -1);
        assert_eq!(s, "1969-12-31 23:59:59.999999");
        s.clear();
        write_date(&mut s, day_number(jiff::civil::date(2024, 2, 29)));
        assert_eq!(s, "2024-02-29");
    }
}
