//! The CSV encoding shared by the files sink, PostgreSQL `COPY` and Redshift `COPY`.
//!
//! Header-less, comma separated, `"` quoting with `""` escaping, one row per `\n`-ended
//! line. NULL is an unquoted `\N`; an empty string is `""`. A text equal to `\N`, or holding
//! `,` `"` `\r` `\n`, or equal to `\.`, or starting or ending with a space or tab, is quoted. PostgreSQL reads
//! it with `COPY t (cols) FROM STDIN WITH (FORMAT csv, NULL '\N')`.
//!
//! Values are made to fit their column rather than rejected:
//! - text longer than its `VARCHAR(n)` is cut on a character boundary (PostgreSQL counts
//!   characters, Redshift bytes) and counted per table;
//! - NUL characters, which PostgreSQL cannot store, are removed; the count is of characters;
//! - a time stamp or date outside the years 1..=9999 becomes NULL and is counted;
//! - a non-finite float becomes NULL (not counted: no warehouse type can hold it).

use std::io::Write as _;

use dpl_core::{Column, SqlType, Table, Value};

use crate::error::Error;

/// Which warehouse a statement or a CSV file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL: `VARCHAR(n)` counts characters.
    Postgres,
    /// Amazon Redshift: `VARCHAR(n)` counts bytes.
    Redshift,
}

/// `0001-01-01 00:00:00` in naive microseconds since 1970.
const MIN_TS_US: i64 = MIN_DAY as i64 * 86_400 * 1_000_000;
/// `9999-12-31 23:59:59.999999` in naive microseconds since 1970.
const MAX_TS_US: i64 = (MAX_DAY as i64 + 1) * 86_400 * 1_000_000 - 1;
/// `0001-01-01` in days since 1970-01-01.
const MIN_DAY: i32 = -719_162;
/// `9999-12-31` in days since 1970-01-01.
const MAX_DAY: i32 = 2_932_896;

/// What the encoder changed to make values fit, since it was made or last taken.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodeStats {
    /// Text values cut to their column size, indexed by `Table as usize`.
    pub cut_values: [u64; Table::ALL.len()],
    /// NUL characters removed from text values.
    pub nul_removed: u64,
    /// Time stamps and dates outside years 1..=9999, loaded as NULL.
    pub out_of_range: u64,
}

/// Encodes rows as CSV into a caller's reused buffer.
///
/// Header-less, comma separated, `"` quoting with `""` escaping, one row per `\n`-ended
/// line. NULL is an unquoted `\N`; an empty string is `""`; a text equal to `\N` or `\.`,
/// or holding `,` `"` `\r` `\n`, or starting or ending with a space or tab, is quoted.
/// PostgreSQL reads it with `COPY t (cols) FROM STDIN WITH (FORMAT csv, NULL '\N')`,
/// Redshift with `CSV NULL AS '\\N'`. Bools are `true`/`false`, time stamps
/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, dates `YYYY-MM-DD`, floats Rust's shortest round-trip
/// text. Values are made to fit rather than rejected: text longer than its column is cut
/// on a character boundary (characters or bytes by [`Dialect`]) and counted per table, NUL
/// characters are removed and counted, time stamps and dates outside years 1..=9999 become
/// NULL and are counted, non-finite floats become NULL. A value of a kind its column cannot
/// hold (a producer bug) is [`Error::TypeMismatch`].
///
/// ```
/// use dpl_core::{Schema, Table, Value, RowBatch};
/// use dpl_sink::{CsvEncoder, Dialect};
/// let schema = Schema::default();
/// let cols = schema.columns(Table::UserDaily);
/// let mut batch = RowBatch::new(Table::UserDaily, cols.len());
/// batch.values = vec![Value::text("a,b"), Value::Date(0), Value::Int(3), Value::Null,
///     Value::Int(0), Value::Null, Value::Int(1)];
/// let mut out = Vec::new();
/// CsvEncoder::new(Dialect::Postgres).encode_batch(cols, &batch, &mut out).unwrap();
/// assert_eq!(out, b"\"a,b\",1970-01-01,3,\\N,0,\\N,1\n");
/// ```
#[derive(Debug)]
pub struct CsvEncoder {
    dialect: Dialect,
    /// Reused for NUL-free copies of text.
    scratch: String,
    stats: EncodeStats,
}

impl CsvEncoder {
    pub fn new(dialect: Dialect) -> CsvEncoder {
        CsvEncoder {
            dialect,
            scratch: String::new(),
            stats: EncodeStats::default(),
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn stats(&self) -> &EncodeStats {
        &self.stats
    }

    /// Returns the counts so far and starts again from zero.
    pub fn take_stats(&mut self) -> EncodeStats {
        std::mem::take(&mut self.stats)
    }

    /// Appends every row of `batch` to `out`; returns the number of rows.
    ///
    /// `columns` must be the batch table's column list; a batch of another width is an error
    /// and appends nothing.
    pub fn encode_batch(
        &mut self,
        columns: &[Column],
        batch: &dpl_core::RowBatch,
        out: &mut Vec<u8>,
    ) -> Result<usize, Error> {
        check_shape(columns, batch)?;
        let start = out.len();
        let mut rows = 0;
        for row in batch.values.chunks_exact(columns.len()) {
            if let Err(e) = self.encode_row(batch.table, columns, row, out) {
                out.truncate(start);
                return Err(e);
            }
            rows += 1;
        }
        Ok(rows)
    }

    /// Appends one row (values in column order) and its `\n`.
    pub fn encode_row(
        &mut self,
        table: Table,
        columns: &[Column],
        row: &[Value],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        for (i, (col, v)) in columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.encode_value(table, col, v, out)?;
        }
        out.push(b'\n');
        Ok(())
    }

    fn encode_value(
        &mut self,
        table: Table,
        col: &Column,
        v: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        match (v, col.ty) {
            (Value::Null, _) => out.extend_from_slice(b"\\N"),
            (Value::Text(s), SqlType::Text(n)) => self.encode_text(table, s, n, out),
            (Value::Short(s), SqlType::Text(n)) => self.encode_text(table, s.as_str(), n, out),
            (Value::Bool(b), SqlType::Bool) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" })
            }
            // Numbers and bools in a text column are stored as their text.
            (Value::Bool(b), SqlType::Text(_)) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" })
            }
            (Value::Int(i), SqlType::BigInt | SqlType::Double | SqlType::Text(_)) => {
                let _ = write!(out, "{i}");
            }
            (Value::Float(f), SqlType::Double | SqlType::Text(_)) => {
                if f.is_finite() {
                    let _ = write!(out, "{f}");
                } else {
                    out.extend_from_slice(b"\\N");
                }
            }
            (Value::Ts(us), SqlType::Timestamp) => {
                if (MIN_TS_US..=MAX_TS_US).contains(us) {
                    write_ts(*us, out);
                } else {
                    self.stats.out_of_range += 1;
                    out.extend_from_slice(b"\\N");
                }
            }
            (Value::Date(d), SqlType::Date) => {
                if (MIN_DAY..=MAX_DAY).contains(d) {
                    write_date(i64::from(*d), out);
                } else {
                    self.stats.out_of_range += 1;
                    out.extend_from_slice(b"\\N");
                }
            }
            (v, ty) => {
                return Err(Error::TypeMismatch {
                    table: table.name(),
                    column: col.name.clone(),
                    value: value_kind(v),
                    column_type: type_name(ty),
                });
            }
        }
        Ok(())
    }

    fn encode_text(&mut self, table: Table, s: &str, max: u32, out: &mut Vec<u8>) {
        let mut text = s;
        let nuls = s.bytes().filter(|&b| b == 0).count();
        if nuls > 0 {
            self.stats.nul_removed += nuls as u64;
            self.scratch.clear();
            self.scratch.extend(s.chars().filter(|&c| c != '\0'));
            text = &self.scratch;
        }
        let end = fit(text, max as usize, self.dialect);
        if end < text.len()
            && let Some(c) = self.stats.cut_values.get_mut(table as usize)
        {
            *c += 1;
        }
        let text = text.get(..end).unwrap_or(text);
        write_text(text, out);
    }
}

/// Civil (year, month, day) of days since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn push_digits(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = v;
    for slot in buf.iter_mut().rev().take(width) {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(buf.get(10 - width..).unwrap_or(&buf));
}

/// `YYYY-MM-DD` of a day number within years 1..=9999.
fn write_date(days: i64, out: &mut Vec<u8>) {
    let (y, m, d) = civil_from_days(days);
    push_digits(out, y as u32, 4);
    out.push(b'-');
    push_digits(out, m, 2);
    out.push(b'-');
    push_digits(out, d, 2);
}

/// The text of `dpl_core::write_ts` (`YYYY-MM-DD HH:MM:SS[.ffffff]`, the fraction only
/// when non-zero) for years 1..=9999, without a `String`.
fn write_ts(us: i64, out: &mut Vec<u8>) {
    let secs = us.div_euclid(1_000_000);
    let micro = us.rem_euclid(1_000_000) as u32;
    let sod = secs.rem_euclid(86_400) as u32;
    write_date(secs.div_euclid(86_400), out);
    out.push(b' ');
    push_digits(out, sod / 3600, 2);
    out.push(b':');
    push_digits(out, (sod / 60) % 60, 2);
    out.push(b':');
    push_digits(out, sod % 60, 2);
    if micro != 0 {
        out.push(b'.');
        push_digits(out, micro, 6);
    }
}

/// Checks that a batch is rows of `columns`.
pub(crate) fn check_shape(columns: &[Column], batch: &dpl_core::RowBatch) -> Result<(), Error> {
    let n = columns.len();
    if batch.width != n || n == 0 || !batch.values.len().is_multiple_of(n) {
        return Err(Error::BadBatch {
            table: batch.table,
            width: batch.width,
            values: batch.values.len(),
            expected: n,
        });
    }
    Ok(())
}

/// Byte length of the longest prefix of `s` that fits `max` (characters for PostgreSQL,
/// bytes for Redshift), ending on a character boundary.
fn fit(s: &str, max: usize, dialect: Dialect) -> usize {
    if s.len() <= max {
        // A text of at most `max` bytes has at most `max` characters too.
        return s.len();
    }
    match dialect {
        Dialect::Postgres => s.char_indices().nth(max).map_or(s.len(), |(i, _)| i),
        Dialect::Redshift => {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            end
        }
    }
}

/// Appends a text value, quoted when CSV or the NULL marker require it.
fn write_text(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    let needs_quotes = b.is_empty()
        || b == b"\\N"
        // PostgreSQL's end-of-data marker; quoted it is data.
        || b == b"\\."
        || matches!(b.first(), Some(b' ' | b'\t'))
        || matches!(b.last(), Some(b' ' | b'\t'))
        || b.iter().any(|&c| matches!(c, b',' | b'"' | b'\r' | b'\n'));
    if !needs_quotes {
        out.extend_from_slice(b);
        return;
    }
    out.push(b'"');
    for part in b.split_inclusive(|&c| c == b'"') {
        out.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Text(_) | Value::Short(_) => "text",
        Value::Ts(_) => "timestamp",
        Value::Date(_) => "date",
    }
}

fn type_name(t: SqlType) -> &'static str {
    match t {
        SqlType::Text(_) => "VARCHAR",
        SqlType::BigInt => "BIGINT",
        SqlType::Double => "DOUBLE PRECISION",
        SqlType::Bool => "BOOLEAN",
        SqlType::Timestamp => "TIMESTAMP",
        SqlType::Date => "DATE",
    }
}

/// Reads text in this crate's CSV back into records of fields (`None` for `\N`). Used for
/// the files sink's ledger. Quoted fields may hold newlines. On error, returns the 1-based
/// line where the bad record starts and what is wrong.
pub(crate) fn parse_records(text: &str) -> Result<Vec<Vec<Option<String>>>, (usize, String)> {
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start_line = line;
        let mut fields = Vec::new();
        loop {
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            s.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                        }
                        None => return Err((start_line, "unterminated quoted field".to_owned())),
                    }
                }
                fields.push(Some(s));
                match chars.next() {
                    None | Some('\n') => break,
                    Some(',') => {}
                    Some(c) => {
                        return Err((start_line, format!("unexpected {c:?} after a quoted field")));
                    }
                }
            } else {
                let mut s = String::new();
                let mut last = true;
                for c in chars.by_ref() {
                    match c {
                        ',' => {
                            last = false;
                            break;
                        }
                        '\n' => break,
                        c => s.push(c),
                    }
                }
                fields.push(if s == "\\N" { None } else { Some(s) });
                if last {
                    break;
                }
            }
        }
        line += 1;
        records.push(fields);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn col(ty: SqlType) -> Column {
        Column {
            name: "c".to_owned(),
            ty,
        }
    }

    fn enc(d: Dialect, ty: SqlType, v: Value) -> (String, EncodeStats) {
        let mut e = CsvEncoder::new(d);
        let mut out = Vec::new();
        e.encode_value(Table::Errors, &col(ty), &v, &mut out)
            .unwrap();
        (String::from_utf8(out).unwrap(), e.take_stats())
    }

    fn pg(ty: SqlType, v: Value) -> String {
        enc(Dialect::Postgres, ty, v).0
    }

    #[test]
    fn text_quoting_and_null() {
        let t = SqlType::Text(100);
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("", "\"\""),
            ("\\N", "\"\\N\""),
            ("\\N ", "\"\\N \""),
            ("\\n", "\\n"),
            ("\\.", "\"\\.\""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("\"", "\"\"\"\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("cr\rhere", "\"cr\rhere\""),
            (" lead", "\" lead\""),
            ("trail ", "\"trail \""),
            ("tab\t", "\"tab\t\""),
            ("in side", "in side"),
            ("ünï", "ünï"),
        ];
        for (input, want) in cases {
            assert_eq!(pg(t, Value::text(*input)), *want, "input {input:?}");
        }
        assert_eq!(pg(t, Value::Null), "\\N");
        assert_eq!(pg(SqlType::BigInt, Value::Null), "\\N");
    }

    #[test]
    fn cut_on_char_boundary_per_dialect() {
        // "é" is 2 bytes, "€" 3 bytes.
        let s = "aé€b€";
        let cases: &[(Dialect, u32, &str, u64)] = &[
            (Dialect::Postgres, 5, "aé€b€", 0),
            (Dialect::Postgres, 4, "aé€b", 1),
            (Dialect::Postgres, 2, "aé", 1),
            (Dialect::Redshift, 10, "aé€b€", 0),
            (Dialect::Redshift, 9, "aé€b", 1),
            (Dialect::Redshift, 6, "aé€", 1),
            (Dialect::Redshift, 5, "aé", 1),
            (Dialect::Redshift, 4, "aé", 1),
            (Dialect::Redshift, 3, "aé", 1),
            (Dialect::Redshift, 2, "a", 1),
            (Dialect::Redshift, 0, "\"\"", 1),
        ];
        for &(d, n, want, cut) in cases {
            let (got, stats) = enc(d, SqlType::Text(n), Value::text(s));
            assert_eq!(got, want, "{d:?} VARCHAR({n})");
            assert_eq!(
                stats.cut_values[Table::Errors as usize],
                cut,
                "{d:?} VARCHAR({n})"
            );
        }
        // A cut can expose a trailing space, which must then be quoted.
        assert_eq!(pg(SqlType::Text(2), Value::text("a b")), "\"a \"");
    }

    #[test]
    fn nul_characters_are_removed_and_counted() {
        let (got, stats) = enc(Dialect::Postgres, SqlType::Text(3), Value::text("a\0b\0cd"));
        assert_eq!(got, "abc");
        assert_eq!(stats.nul_removed, 2);
        assert_eq!(stats.cut_values[Table::Errors as usize], 1);
        let (got, stats) = enc(Dialect::Postgres, SqlType::Text(3), Value::text("\0"));
        assert_eq!(got, "\"\"");
        assert_eq!(stats.nul_removed, 1);
    }

    #[test]
    fn scalars_and_times() {
        let ts = |y, mo, d, h, mi, s, ns| {
            dpl_core::micros_of(jiff::civil::date(y, mo, d).at(h, mi, s, ns))
        };
        let day = |y, mo, d| dpl_core::day_number(jiff::civil::date(y, mo, d));
        assert_eq!(pg(SqlType::Bool, Value::Bool(true)), "true");
        assert_eq!(pg(SqlType::Bool, Value::Bool(false)), "false");
        assert_eq!(pg(SqlType::BigInt, Value::Int(-42)), "-42");
        assert_eq!(
            pg(SqlType::BigInt, Value::Int(i64::MIN)),
            "-9223372036854775808"
        );
        assert_eq!(pg(SqlType::Double, Value::Float(0.1)), "0.1");
        assert_eq!(pg(SqlType::Double, Value::Float(-2.5)), "-2.5");
        assert_eq!(pg(SqlType::Double, Value::Float(3.0)), "3");
        assert_eq!(pg(SqlType::Double, Value::Float(f64::NAN)), "\\N");
        assert_eq!(pg(SqlType::Double, Value::Float(f64::INFINITY)), "\\N");
        assert_eq!(pg(SqlType::Text(10), Value::Int(7)), "7");
        let t = SqlType::Timestamp;
        assert_eq!(
            pg(t, Value::Ts(ts(2016, 8, 1, 9, 5, 7, 250_000_000))),
            "2016-08-01 09:05:07.250000"
        );
        assert_eq!(
            pg(t, Value::Ts(ts(2016, 8, 1, 9, 5, 7, 0))),
            "2016-08-01 09:05:07"
        );
        assert_eq!(
            pg(t, Value::Ts(ts(1, 1, 1, 0, 0, 0, 0))),
            "0001-01-01 00:00:00"
        );
        assert_eq!(
            pg(t, Value::Ts(ts(9999, 12, 31, 23, 59, 59, 999_999_000))),
            "9999-12-31 23:59:59.999999"
        );
        assert_eq!(
            pg(SqlType::Date, Value::Date(day(2024, 2, 29))),
            "2024-02-29"
        );
        assert_eq!(pg(SqlType::Date, Value::Date(day(1, 1, 1))), "0001-01-01");
        assert_eq!(
            pg(SqlType::Date, Value::Date(day(9999, 12, 31))),
            "9999-12-31"
        );
        assert_eq!(MIN_DAY, day(1, 1, 1));
        assert_eq!(MAX_DAY, day(9999, 12, 31));
    }

    #[test]
    fn fast_time_text_matches_core() {
        let mut cases = vec![MIN_TS_US, MAX_TS_US, 0, -1, 1, 951_782_400_000_000];
        // Every ~73 days and some seconds and microseconds across the whole range.
        let step = 6_313_131_234_567;
        let mut us = MIN_TS_US;
        while us <= MAX_TS_US {
            cases.push(us);
            us += step;
        }
        for us in cases {
            let mut want = String::new();
            dpl_core::write_ts(&mut want, us);
            let mut got = Vec::new();
            write_ts(us, &mut got);
            assert_eq!(String::from_utf8(got).unwrap(), want, "{us}");
        }
        for d in (MIN_DAY..=MAX_DAY)
            .step_by(389)
            .chain([MIN_DAY, MAX_DAY, -1, 0, 59])
        {
            let mut want = String::new();
            dpl_core::write_date(&mut want, d);
            let mut got = Vec::new();
            write_date(i64::from(d), &mut got);
            assert_eq!(String::from_utf8(got).unwrap(), want, "{d}");
        }
    }

    #[test]
    fn out_of_range_times_become_null_and_are_counted() {
        for v in [
            Value::Ts(MIN_TS_US - 1),
            Value::Ts(MAX_TS_US + 1),
            Value::Ts(i64::MIN),
            Value::Ts(i64::MAX),
        ] {
            let (got, stats) = enc(Dialect::Postgres, SqlType::Timestamp, v.clone());
            assert_eq!((got.as_str(), stats.out_of_range), ("\\N", 1), "{v:?}");
        }
        for d in [MIN_DAY - 1, MAX_DAY + 1, i32::MIN, i32::MAX] {
            let (got, stats) = enc(Dialect::Redshift, SqlType::Date, Value::Date(d));
            assert_eq!((got.as_str(), stats.out_of_range), ("\\N", 1), "{d}");
        }
    }

    #[test]
    fn kind_mismatch_is_an_error() {
        let mut e = CsvEncoder::new(Dialect::Postgres);
        let mut out = Vec::new();
        let err = e
            .encode_value(
                Table::Users,
                &col(SqlType::BigInt),
                &Value::text("x"),
                &mut out,
            )
            .unwrap_err();
        assert!(err.to_string().contains("text value"), "{err}");
    }

    #[test]
    fn bad_batch_shape_is_rejected() {
        let schema = dpl_core::Schema::default();
        let cols = schema.columns(Table::UserDaily);
        let mut b = dpl_core::RowBatch::new(Table::UserDaily, cols.len());
        b.values = vec![Value::Null; cols.len() + 1];
        let mut out = Vec::new();
        let mut e = CsvEncoder::new(Dialect::Postgres);
        assert!(matches!(
            e.encode_batch(cols, &b, &mut out),
            Err(Error::BadBatch { .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn parse_records_reads_what_is_written() {
        let texts = ["", "\\N", "a,b", "q\"q", " x ", "plain", "é", "two\nlines"];
        let mut out = Vec::new();
        for _ in 0..2 {
            for (i, t) in texts.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_text(t, &mut out);
            }
            out.extend_from_slice(b",\\N\n");
        }
        let text = String::from_utf8(out).unwrap();
        let records = parse_records(&text).unwrap();
        let mut want: Vec<Option<String>> = texts.iter().map(|t| Some(t.to_string())).collect();
        want.push(None);
        assert_eq!(records, vec![want.clone(), want]);
        assert_eq!(parse_records("a\n\"open").unwrap_err().0, 2);
        assert_eq!(
            parse_records("").unwrap(),
            Vec::<Vec<Option<String>>>::new()
        );
    }
}
