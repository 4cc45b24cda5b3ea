//! Cell values shared by events and rows, and their text forms.

use std::fmt::Write as _;
use std::sync::Arc;

/// One cell of an event or a row.
///
/// Time stamps are naive: microseconds since `1970-01-01 00:00:00` of a wall clock, which is
/// UTC for the UTC columns and the reporting zone for the `_tz` columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Arc<str>),
    /// Microseconds since the epoch of a naive date-time.
    Ts(i64),
    /// Days since 1970-01-01.
    Date(i32),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
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
    /// A text value from anything string-like.
    pub fn text(s: impl Into<Arc<str>>) -> Value {
        Value::Text(s.into())
    }
    /// `Text` or `Null`.
    pub fn opt_text(s: Option<impl Into<Arc<str>>>) -> Value {
        s.map_or(Value::Null, |s| Value::Text(s.into()))
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
