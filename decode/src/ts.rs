//! `ts_action`-style UTC text time stamps.

const MICROS_PER_SEC: i64 = 1_000_000;

/// Parses `YYYY-MM-DD[ T]HH:MM:SS[.fraction][Z]` (UTC) into microseconds since the epoch.
///
/// Strict on purpose (SPEC.md section 1, "nothing else"): exactly four year digits, two
/// digits for every other part, a space or an upper-case `T` between date and time, a
/// fraction of 1 to 9 digits (kept to microseconds, later digits truncated), an optional
/// upper-case `Z`, and nothing around it (no whitespace, no offsets). Calendar-invalid
/// values (`2016-02-30`, hour 24, second 60) give `None`.
///
/// ```
/// assert_eq!(dpl_decode::parse_ts("1970-01-01 00:00:01.5Z"), Some(1_500_000));
/// assert_eq!(dpl_decode::parse_ts("2016-02-30 00:00:00"), None);
/// ```
pub fn parse_ts(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let head: &[u8; 19] = b.first_chunk::<19>()?;
    let year = digits(&head[0..4])?;
    let month = digits(&head[5..7])?;
    let day = digits(&head[8..10])?;
    let hour = digits(&head[11..13])?;
    let minute = digits(&head[14..16])?;
    let second = digits(&head[17..19])?;
    if head[4] != b'-' || head[7] != b'-' || !matches!(head[10], b' ' | b'T') {
        return None;
    }
    if head[13] != b':' || head[16] != b':' {
        return None;
    }
    let mut rest = b.get(19..)?;
    let mut micros = 0i64;
    if let Some((b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        for (i, c) in frac.iter().take(n).enumerate() {
            if i < 6 {
                micros = micros * 10 + i64::from(c - b'0');
            }
        }
        for _ in n..6 {
            micros *= 10;
        }
        rest = frac.get(n..)?;
    }
    if let Some((b'Z', after)) = rest.split_first() {
        rest = after;
    }
    if !rest.is_empty() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = jiff::civil::Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()?;
    let days = i64::from(dpl_core::day_number(date));
    Some((days * 86_400 + hour * 3600 + minute * 60 + second) * MICROS_PER_SEC + micros)
}

/// The value of a run of ASCII digits, or `None` if any byte is not a digit.
fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2016-08-01 00:00:00 UTC = 1_470_009_600 s.
    const AUG1: i64 = 1_470_009_600 * MICROS_PER_SEC;

    #[test]
    fn accepted_forms() {
        let cases: &[(&str, i64)] = &[
            ("2016-08-01 00:00:00", AUG1),
            ("2016-08-01T00:00:00", AUG1),
            ("2016-08-01 00:00:00Z", AUG1),
            (
                "2016-08-01T09:05:07.25Z",
                AUG1 + (9 * 3600 + 5 * 60 + 7) * MICROS_PER_SEC + 250_000,
            ),
            ("2016-08-01 00:00:00.1", AUG1 + 100_000),
            ("2016-08-01 00:00:00.123456", AUG1 + 123_456),
            // Digits past the sixth are truncated, not rounded.
            ("2016-08-01 00:00:00.123456789", AUG1 + 123_456),
            (
                "2016-08-01 23:59:59.999999999",
                AUG1 + 86_399 * MICROS_PER_SEC + 999_999,
            ),
            ("2024-02-29 00:00:00", 1_709_164_800 * MICROS_PER_SEC),
            ("1969-12-31 23:59:59", -MICROS_PER_SEC),
            ("1970-01-01 00:00:00", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_ts(text), Some(*want), "input {text:?}");
        }
    }

    #[test]
    fn rejected_forms() {
        let cases = [
            "",
            "2016-08-01",
            "2016-08-01 00:00",
            "2016-08-01  00:00:00",
            "2016-08-01t00:00:00",
            "2016-08-01 00:00:00z",
            "2016-08-01 00:00:00.",
            "2016-08-01 00:00:00.1234567890",
            "2016-08-01 00:00:00+00:00",
            "2016-08-01 00:00:00ZZ",
            " 2016-08-01 00:00:00",
            "2016-08-01 00:00:00 ",
            "2016/08/01 00:00:00",
            "16-08-01 00:00:00",
            "2016-8-01 00:00:00",
            "2016-02-30 00:00:00",
            "2023-02-29 00:00:00",
            "2016-13-01 00:00:00",
            "2016-00-01 00:00:00",
            "2016-08-00 00:00:00",
            "2016-08-01 24:00:00",
            "2016-08-01 00:60:00",
            "2016-08-01 00:00:60",
            "2016-08-01 0a:00:00",
            "1470009600000",
            "２016-08-01 00:00:00",
        ];
        for text in cases {
            assert_eq!(parse_ts(text), None, "input {text:?}");
        }
    }
}
