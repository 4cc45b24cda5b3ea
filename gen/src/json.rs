//! A small, fast JSON-lines writer: the generator writes ~120 fields per line and must
//! produce hundreds of thousands of lines per second, so it formats by hand into one buffer.

use dpl_core::Field;

/// Replaces one field's value on a line, to make a malformed line on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Override {
    Omit,
    Null,
    Empty,
    Text(&'static str),
}

/// `"name":` of every field, indexed by `Field as usize`, built once.
fn key_texts() -> &'static [Box<[u8]>] {
    static KEYS: std::sync::OnceLock<Vec<Box<[u8]>>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        dpl_core::ALL_FIELDS
            .iter()
            .map(|f| format!("\"{}\":", f.name()).into_bytes().into_boxed_slice())
            .collect()
    })
}

/// Writes the members of one JSON object into `buf` (the caller writes the braces).
pub(crate) struct Obj<'a> {
    pub buf: &'a mut Vec<u8>,
    first: bool,
    ov: Option<(Field, Override)>,
    keys: &'static [Box<[u8]>],
}

impl<'a> Obj<'a> {
    pub fn new(buf: &'a mut Vec<u8>, ov: Option<(Field, Override)>) -> Obj<'a> {
        Obj {
            buf,
            first: true,
            ov,
            keys: key_texts(),
        }
    }

    /// Writes `"name":`; returns false when an override already wrote (or omitted) the value.
    fn key(&mut self, f: Field) -> bool {
        if let Some((of, ov)) = self.ov
            && of == f
        {
            if ov == Override::Omit {
                return false;
            }
            self.field_key(f);
            match ov {
                Override::Null | Override::Omit => self.buf.extend_from_slice(b"null"),
                Override::Empty => self.buf.extend_from_slice(b"\"\""),
                Override::Text(s) => push_str(self.buf, s),
            }
            return false;
        }
        self.field_key(f);
        true
    }

    fn field_key(&mut self, f: Field) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        match self.keys.get(f as usize) {
            Some(k) => self.buf.extend_from_slice(k),
            None => {
                self.buf.push(b'"');
                self.buf.extend_from_slice(f.name().as_bytes());
                self.buf.extend_from_slice(b"\":");
            }
        }
    }

    /// Writes `"name":` for a key that is not a schema field.
    pub fn raw_key(&mut self, name: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// Appends members already rendered as `"a":1,"b":2` (no braces).
    pub fn fragment(&mut self, members: &str) {
        if members.is_empty() {
            return;
        }
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.extend_from_slice(members.as_bytes());
    }

    pub fn str(&mut self, f: Field, v: &str) {
        if self.key(f) {
            push_str(self.buf, v);
        }
    }

    pub fn opt_str(&mut self, f: Field, v: Option<&str>) {
        match v {
            Some(v) => self.str(f, v),
            None => self.null(f),
        }
    }

    pub fn null(&mut self, f: Field) {
        if self.key(f) {
            self.buf.extend_from_slice(b"null");
        }
    }

    pub fn int(&mut self, f: Field, v: i64) {
        if self.key(f) {
            push_i64(self.buf, v);
        }
    }

    /// An integer written as a numeric string with `_` separators (leniency the decoder must
    /// accept: `"1_470_045_600_000"`).
    pub fn int_sep_str(&mut self, f: Field, v: i64) {
        if self.key(f) {
            self.buf.push(b'"');
            push_i64_sep(self.buf, v);
            self.buf.push(b'"');
        }
    }

    /// An integer written as a plain numeric string.
    pub fn int_str(&mut self, f: Field, v: i64) {
        if self.key(f) {
            self.buf.push(b'"');
            push_i64(self.buf, v);
            self.buf.push(b'"');
        }
    }

    /// `true`/`false`, or when `word` is set one of the bool words the decoder accepts.
    pub fn bool(&mut self, f: Field, v: bool, word: Option<u64>) {
        if self.key(f) {
            match word {
                None => self
                    .buf
                    .extend_from_slice(if v { b"true" } else { b"false" }),
                Some(w) => {
                    let words: [&[u8]; 5] = if v {
                        [b"\"yes\"", b"\"1\"", b"\"t\"", b"\"TRUE\"", b"\"Yes\""]
                    } else {
                        [b"\"no\"", b"\"0\"", b"\"f\"", b"\"FALSE\"", b"\"No\""]
                    };
                    self.buf.extend_from_slice(words[(w % 5) as usize]);
                }
            }
        }
    }

    /// A value already rendered as JSON text.
    pub fn raw(&mut self, f: Field, json: &[u8]) {
        if self.key(f) {
            self.buf.extend_from_slice(json);
        }
    }
}

/// Appends `s` as a JSON string.
pub(crate) fn push_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Fast path: most values need no escaping.
    if bytes
        .iter()
        .fold(true, |ok, &b| ok & (b >= 0x20 && b != b'"' && b != b'\\'))
    {
        buf.reserve(bytes.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(bytes);
        buf.push(b'"');
        return;
    }
    buf.push(b'"');
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[usize::from(c >> 4)]);
                buf.push(HEX[usize::from(c & 15)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(esc);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// A JSON list of strings.
pub(crate) fn push_str_list<'s>(buf: &mut Vec<u8>, items: impl IntoIterator<Item = &'s str>) {
    buf.push(b'[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        push_str(buf, s);
    }
    buf.push(b']');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

pub(crate) fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_u64(buf, v.unsigned_abs());
}

/// Decimal with `_` between groups of three digits.
pub(crate) fn push_i64_sep(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    let mut digits = Vec::with_capacity(20);
    push_u64(&mut digits, v.unsigned_abs());
    for (i, d) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            buf.push(b'_');
        }
        buf.push(*d);
    }
}

/// Zero-padded decimal of `width` digits.
pub(crate) fn push_padded(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = Vec::with_capacity(20);
    push_u64(&mut tmp, v);
    for _ in tmp.len()..width {
        buf.push(b'0');
    }
    buf.extend_from_slice(&tmp);
}

/// 128 bits as a lowercase uuid-like `8-4-4-4-12` hex string.
pub(crate) fn push_uuid(buf: &mut Vec<u8>, hi: u64, lo: u64) {
    let v = (u128::from(hi) << 64) | u128::from(lo);
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            buf.push(b'-');
        }
        let nibble = (v >> (124 - 4 * i)) & 15;
        buf.push(HEX[nibble as usize]);
    }
}

/// Civil date (year, month, day) of a day number (days since 1970-01-01).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm: exact for the proleptic Gregorian calendar.
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// How a text time stamp is written. All forms are accepted by SPEC.md section 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TsForm {
    /// `YYYY-MM-DD HH:MM:SS`: the milliseconds are dropped.
    Plain,
    /// `YYYY-MM-DD HH:MM:SS.fff`
    Millis,
    /// `YYYY-MM-DDTHH:MM:SS.fff`
    TMillis,
    /// `YYYY-MM-DDTHH:MM:SS`
    T,
    /// `YYYY-MM-DDTHH:MM:SS.fffZ`
    TMillisZ,
}

impl TsForm {
    /// The time stamp a decoder reads back, in UTC microseconds.
    pub fn parsed_micros(self, ms: i64) -> i64 {
        match self {
            TsForm::Plain | TsForm::T => ms.div_euclid(1000) * 1_000_000,
            TsForm::Millis | TsForm::TMillis | TsForm::TMillisZ => ms * 1000,
        }
    }
}

/// Appends the time stamp `ms` (epoch milliseconds, UTC) as text without quotes.
pub(crate) fn push_ts(buf: &mut Vec<u8>, ms: i64, form: TsForm) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000) as u64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u64;
    push_padded(buf, y.max(0) as u64, 4);
    buf.push(b'-');
    push_padded(buf, u64::from(m), 2);
    buf.push(b'-');
    push_padded(buf, u64::from(d), 2);
    buf.push(if matches!(form, TsForm::Plain | TsForm::Millis) {
        b' '
    } else {
        b'T'
    });
    push_padded(buf, sod / 3600, 2);
    buf.push(b':');
    push_padded(buf, (sod / 60) % 60, 2);
    buf.push(b':');
    push_padded(buf, sod % 60, 2);
    if matches!(form, TsForm::Millis | TsForm::TMillis | TsForm::TMillisZ) {
        buf.push(b'.');
        push_padded(buf, milli, 3);
    }
    if form == TsForm::TMillisZ {
        buf.push(b'Z');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strings_are_escaped_as_json() {
        for s in ["plain", "a \"q\" \\ b", "tab\tnl\n\u{1}", "Chloé — ünï"] {
            let mut buf = Vec::new();
            push_str(&mut buf, s);
            let back: String = serde_json::from_slice(&buf).unwrap();
            assert_eq!(back, s, "{}", String::from_utf8_lossy(&buf));
        }
    }

    #[test]
    fn numbers_and_ids() {
        let mut buf = Vec::new();
        push_i64_sep(&mut buf, 1_470_045_600_000);
        assert_eq!(buf, b"1_470_045_600_000");
        buf.clear();
        push_i64_sep(&mut buf, 999);
        assert_eq!(buf, b"999");
        buf.clear();
        push_i64(&mut buf, -42);
        assert_eq!(buf, b"-42");
        buf.clear();
        push_uuid(&mut buf, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        assert_eq!(buf, b"01234567-89ab-cdef-fedc-ba9876543210");
    }

    #[test]
    fn ts_forms_match_jiff() {
        // 2016-08-01 09:05:07.250 UTC and a leap day.
        let cases = [
            (1_470_042_307_250_i64, TsForm::Plain, "2016-08-01 09:05:07"),
            (1_470_042_307_250, TsForm::Millis, "2016-08-01 09:05:07.250"),
            (
                1_470_042_307_250,
                TsForm::TMillisZ,
                "2016-08-01T09:05:07.250Z",
            ),
            (1_709_164_800_000, TsForm::T, "2024-02-29T00:00:00"),
            (-1, TsForm::TMillis, "1969-12-31T23:59:59.999"),
        ];
        for (ms, form, want) in cases {
            let mut buf = Vec::new();
            push_ts(&mut buf, ms, form);
            assert_eq!(String::from_utf8(buf).unwrap(), want, "{ms} {form:?}");
        }
        assert_eq!(TsForm::Plain.parsed_micros(1_250), 1_000_000);
        assert_eq!(TsForm::Millis.parsed_micros(1_250), 1_250_000);
        for days in [-800_000_i64, -1, 0, 59, 10_957, 20_000, 2_000_000] {
            let d = jiff::civil::date(1970, 1, 1)
                .checked_add(jiff::Span::new().days(days))
                .unwrap();
            let (y, m, dd) = civil_from_days(days);
            assert_eq!(
                (y, m, dd),
                (i64::from(d.year()), d.month() as u32, d.day() as u32)
            );
        }
    }
}
