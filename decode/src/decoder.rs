//! [`Decoder`]: one object's bytes to batches of events and error rows.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, ErrorKind};
use std::sync::Arc;

use dpl_core::{
    ALL_FIELDS, Arrival, Class, DecodeStats, DecodedBatch, ErrorReason, ErrorRow, Event,
    FIELD_COUNT, Field, Kind, RawObject, RecentBases, SHARE_MAX_OWN, Value,
};
use simd_json::{Buffers, Node, StaticNode, Tape};

use crate::coerce::{Converted, Scratch, convert, convert_json, scalar_text};
use crate::config::DecodeConfig;
use crate::error::Error;
use crate::json::{Frame, lenient_field, subtree_len, write_compact, write_escaped};
use crate::privacy::{IpMode, Privacy, Redacted};
use crate::ts::parse_ts;

/// Longest line decoded; a longer one is read through and rejected as `invalid_json` with a
/// detail saying so, so one runaway line cannot take unbounded memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// `raw` of an error row is cut to this many bytes (SPEC.md section 5, `parsely_errors`).
pub const MAX_RAW_BYTES: usize = 65_536;

/// Read buffer for decompressed data.
const READ_BUF: usize = 256 << 10;

/// Decodes objects; immutable after [`Decoder::new`], so one `Arc<Decoder>` serves every
/// worker thread.
#[derive(Debug)]
pub struct Decoder {
    extra_data_key: String,
    bot_ua_browsers: Vec<String>,
    bot_patterns: Option<regex::RegexSet>,
    custom_actions: HashSet<String>,
    batch_events: usize,
    max_line: usize,
    privacy: Privacy,
}

impl Decoder {
    /// Checks the configuration: every bot pattern must compile (the error names the bad
    /// one) and `batch_events` must be at least 1.
    pub fn new(config: DecodeConfig) -> Result<Decoder, Error> {
        if config.batch_events == 0 {
            return Err(Error::ZeroBatchEvents);
        }
        let privacy = Privacy::new(config.privacy)?;
        for pattern in &config.bot_user_agent_patterns {
            regex::Regex::new(pattern).map_err(|source| Error::BadPattern {
                pattern: pattern.clone(),
                source,
            })?;
        }
        let bot_patterns = if config.bot_user_agent_patterns.is_empty() {
            None
        } else {
            Some(regex::RegexSet::new(&config.bot_user_agent_patterns).map_err(Error::PatternSet)?)
        };
        Ok(Decoder {
            extra_data_key: config.extra_data_key,
            bot_ua_browsers: config.bot_ua_browsers,
            bot_patterns,
            custom_actions: config.custom_actions.into_iter().collect(),
            batch_events: config.batch_events,
            max_line: MAX_LINE_BYTES,
            privacy,
        })
    }

    /// The same decoder with another line length limit (tests use a small one).
    #[cfg(test)]
    pub(crate) fn with_max_line(mut self, max_line: usize) -> Decoder {
        self.max_line = max_line;
        self
    }

    /// Decodes one whole object: gzip (recognised by the magic bytes `1f 8b`, any number of
    /// members) or else plain lines. Calls `emit` with batches `seq` 0, 1, ...; the last has
    /// `last = true`, and there is always at least one (possibly empty). Never panics,
    /// whatever the bytes; nothing is dropped without a count.
    pub fn decode_object(&self, object: &RawObject, emit: &mut dyn FnMut(DecodedBatch)) {
        let bytes: &[u8] = &object.bytes;
        with_parser(|parser| {
            parser.scratch.interner.clear();
            let mut run = ObjectRun {
                decoder: self,
                key: Arc::clone(&object.key),
                object: object.id,
                parser,
                out: Batcher::new(object.id, self.batch_events, emit),
            };
            if bytes.starts_with(&[0x1f, 0x8b]) {
                let gz = flate2::bufread::MultiGzDecoder::new(bytes);
                run.lines(BufReader::with_capacity(READ_BUF, gz));
            } else {
                run.lines(bytes);
            }
            run.out.finish();
        });
    }

    /// Decodes one line (without its `\n`; a trailing `\r` is removed) as line `line` of
    /// object `object` named `key`: the building block of [`Decoder::decode_object`], handy
    /// for tests and tools. Returns `None` for a blank line or a dropped unlisted custom
    /// event.
    pub fn decode_line(
        &self,
        key: &Arc<str>,
        object: u32,
        line: u64,
        bytes: &[u8],
    ) -> Option<Result<Event, ErrorRow>> {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let mut stats = DecodeStats::default();
        let arrival = Arrival { object, line };
        with_parser(
            |parser| match parser.parse(self, bytes, arrival, &mut stats) {
                Outcome::Blank | Outcome::Unlisted => None,
                Outcome::Event(e) => Some(Ok(e)),
                Outcome::Error(e) => Some(Err(e.into_row(self, key, line, bytes))),
            },
        )
    }

    fn is_bot(&self, ua_browser: Option<&str>, user_agent: Option<&str>) -> bool {
        ua_browser.is_some_and(|b| self.bot_ua_browsers.iter().any(|n| n == b))
            || matches!((&self.bot_patterns, user_agent), (Some(set), Some(ua)) if set.is_match(ua))
    }
}

/// State while one object is decoded.
struct ObjectRun<'d, 'e, 'p> {
    decoder: &'d Decoder,
    key: Arc<str>,
    object: u32,
    parser: &'p mut LineParser,
    out: Batcher<'e>,
}

thread_local! {
    /// The line parser of this thread, kept between objects so its buffers and its text
    /// cache are reused. Nothing in it depends on a decoder's settings.
    static PARSER: RefCell<Option<LineParser>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's line parser (a fresh one if it is in use already).
fn with_parser<R>(f: impl FnOnce(&mut LineParser) -> R) -> R {
    let mut parser = PARSER
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(LineParser::new);
    let out = f(&mut parser);
    // Bases are kept within one object (or line) only.
    parser.bases.clear();
    PARSER.with(|p| *p.borrow_mut() = Some(parser));
    out
}

impl ObjectRun<'_, '_, '_> {
    /// Reads every line of `reader`; a read error (corrupt or truncated gzip) ends the
    /// object with one `corrupt_gzip` row holding the partial line.
    fn lines(&mut self, mut reader: impl BufRead) {
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            let read = read_line(&mut reader, &mut line, self.decoder.max_line);
            if matches!(read, ReadLine::Eof) {
                return;
            }
            if self.out.make_room() {
                self.parser.scratch.interner.clear();
            }
            let stats = &mut self.out.batch.stats;
            match read {
                ReadLine::Eof => return,
                ReadLine::Broken { consumed } => {
                    stats.bytes += consumed;
                    let row = LineError::new(ErrorReason::CorruptGzip, None).into_row(
                        self.decoder,
                        &self.key,
                        number + 1,
                        &line,
                    );
                    self.out.batch.errors.push(row);
                    return;
                }
                ReadLine::Line { consumed, overlong } => {
                    number += 1;
                    stats.bytes += consumed;
                    let text = line.strip_suffix(b"\r").unwrap_or(&line);
                    let arrival = Arrival {
                        object: self.object,
                        line: number,
                    };
                    let outcome = if overlong {
                        stats.lines += 1;
                        let detail = format!("line longer than {} bytes", self.decoder.max_line);
                        Outcome::Error(LineError::new(ErrorReason::InvalidJson, Some(detail)))
                    } else {
                        self.parser.parse(self.decoder, text, arrival, stats)
                    };
                    match outcome {
                        Outcome::Blank | Outcome::Unlisted => {}
                        Outcome::Event(e) => self.out.batch.events.push(e),
                        Outcome::Error(e) => {
                            let row = e.into_row(self.decoder, &self.key, number, text);
                            self.out.batch.errors.push(row);
                        }
                    }
                }
            }
        }
    }
}

enum ReadLine {
    Eof,
    /// A line is in the buffer (without its `\n`); `consumed` counts the `\n` too.
    Line {
        consumed: u64,
        overlong: bool,
    },
    /// The reader failed; the buffer holds the partial line read before.
    Broken {
        consumed: u64,
    },
}

/// Reads up to the next `\n` into `line` (cleared first), keeping at most `max` bytes.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> ReadLine {
    line.clear();
    let mut consumed = 0u64;
    let mut overlong = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return ReadLine::Broken { consumed },
        };
        if buf.is_empty() {
            return if consumed == 0 {
                ReadLine::Eof
            } else {
                ReadLine::Line { consumed, overlong }
            };
        }
        let (chunk, used, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (buf.get(..i).unwrap_or(buf), i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            overlong = true;
        }
        line.extend_from_slice(chunk.get(..room).unwrap_or(chunk));
        reader.consume(used);
        consumed += used as u64;
        if done {
            return ReadLine::Line { consumed, overlong };
        }
    }
}

/// Collects rows into batches of at most `cap` rows and hands them on.
struct Batcher<'e> {
    cap: usize,
    batch: DecodedBatch,
    emit: &'e mut dyn FnMut(DecodedBatch),
}

impl<'e> Batcher<'e> {
    fn new(object: u32, cap: usize, emit: &'e mut dyn FnMut(DecodedBatch)) -> Batcher<'e> {
        Batcher {
            cap,
            batch: empty_batch(object, 0, cap),
            emit,
        }
    }

    /// Sends the current batch on if it is full, so the next row (and the line counts that
    /// go with it) land in a fresh one. Returns whether it did.
    fn make_room(&mut self) -> bool {
        if self.batch.events.len() + self.batch.errors.len() >= self.cap {
            let next = empty_batch(self.batch.object, self.batch.seq + 1, self.cap);
            let full = std::mem::replace(&mut self.batch, next);
            (self.emit)(full);
            return true;
        }
        false
    }

    fn finish(self) {
        let mut batch = self.batch;
        batch.last = true;
        (self.emit)(batch);
    }
}

fn empty_batch(object: u32, seq: u32, cap: usize) -> DecodedBatch {
    DecodedBatch {
        object,
        seq,
        last: false,
        events: Vec::with_capacity(cap.min(1024)),
        errors: Vec::new(),
        stats: DecodeStats::default(),
    }
}

/// What one line became.
enum Outcome {
    Blank,
    Unlisted,
    Event(Event),
    Error(LineError),
}

/// A rejected line before it is made into an [`ErrorRow`].
struct LineError {
    reason: ErrorReason,
    detail: Option<String>,
    /// `None` means "not known yet": for JSON that did not parse, [`LineError::into_row`]
    /// scans the raw text leniently.
    ids: Option<(Option<String>, Option<String>)>,
    /// The line re-written with its personal data redacted (see [`redacted_json`]).
    raw: Option<String>,
}

impl LineError {
    fn new(reason: ErrorReason, detail: Option<String>) -> LineError {
        LineError {
            reason,
            detail,
            ids: None,
            raw: None,
        }
    }

    fn into_row(self, dec: &Decoder, key: &Arc<str>, line: u64, raw: &[u8]) -> ErrorRow {
        let parsed = self.ids.is_some();
        let (event_id, action) = match self.ids {
            Some(ids) => ids,
            None if matches!(
                self.reason,
                ErrorReason::InvalidJson | ErrorReason::InvalidUtf8 | ErrorReason::CorruptGzip
            ) =>
            {
                lenient_ids(raw)
            }
            None => (None, None),
        };
        ErrorRow {
            source_object: Arc::clone(key),
            line,
            reason: self.reason,
            detail: self.detail,
            event_id,
            action,
            raw: match self.raw {
                Some(text) => raw_text(text.as_bytes()),
                None if parsed || dec.privacy.keeps_all() => raw_text(raw),
                None => unparsed_raw(raw, &dec.privacy),
            },
        }
    }
}

/// `raw` of a line that did not parse as JSON, with privacy settings that do not keep
/// everything: if the text (bad bytes replaced) parses, it is re-written with the personal
/// data redacted; otherwise it is kept only if it cannot hold a redacted key (neither the
/// key's name nor any `\u` escape occurs in the stored text), else replaced by
/// [`WITHHELD_RAW`].
fn unparsed_raw(raw: &[u8], privacy: &Privacy) -> String {
    let mut bytes = String::from_utf8_lossy(raw).into_owned().into_bytes();
    if let Ok(tape) = simd_json::to_tape(&mut bytes) {
        return match redacted_json(&tape.0, privacy, &mut Vec::new()) {
            Some(text) => raw_text(text.as_bytes()),
            None => raw_text(raw),
        };
    }
    let text = raw_text(raw);
    let may_hold = text.contains("\\u") || privacy.redacted_keys().any(|k| text.contains(k));
    if may_hold {
        WITHHELD_RAW.to_owned()
    } else {
        text
    }
}

/// `raw` of a rejected line that is not valid JSON and may hold a value that the privacy
/// settings do not keep.
pub const WITHHELD_RAW: &str =
    "[withheld by decode.privacy: not valid JSON, may hold visitor_ip or user_agent]";

/// The compact JSON text of a top-level object with `visitor_ip`/`user_agent` members
/// redacted as in events (a dropped field's member is left out; a value that is not kept
/// and cannot be made safe is `null`); `None` when the line is not an object or has no
/// such member, so the raw line can be kept as it is.
fn redacted_json(nodes: &[Node<'_>], privacy: &Privacy, frames: &mut Vec<Frame>) -> Option<String> {
    let Some(Node::Object { len, .. }) = nodes.first() else {
        return None;
    };
    let mut out = String::from("{");
    let mut touched = false;
    let mut pos = 1;
    for _ in 0..*len {
        let (Some(Node::String(k)), Some(v)) = (nodes.get(pos), nodes.get(pos + 1)) else {
            break;
        };
        let sub = nodes.get(pos + 1..).unwrap_or_default();
        pos += 1 + subtree_len(v);
        let replaced = match *k {
            "visitor_ip" if privacy.ip != IpMode::Keep => Some(match privacy.ip {
                IpMode::Drop => None,
                _ => Some(ip_value(privacy, Some(v)).unwrap_or(Value::Null)),
            }),
            "user_agent" if privacy.drop_user_agent => Some(None),
            _ => None,
        };
        touched |= replaced.is_some();
        if replaced == Some(None) {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        write_escaped(&mut out, k);
        out.push(':');
        match replaced {
            Some(Some(ref v)) if let Some(t) = v.as_str() => write_escaped(&mut out, t),
            Some(_) => out.push_str("null"),
            None => write_compact(&mut out, sub, frames),
        }
    }
    out.push('}');
    touched.then_some(out)
}

/// `visitor_ip` under a privacy mode other than keep: `Some(Null)` for null, empty or
/// dropped values, `None` (null, counted as coerced) for objects, arrays and, under
/// truncate, text that is not an address.
fn ip_value(privacy: &Privacy, node: Option<&Node<'_>>) -> Converted {
    if privacy.ip == IpMode::Drop {
        return Some(Value::Null);
    }
    let text = match node {
        None | Some(Node::Static(StaticNode::Null)) => return Some(Value::Null),
        Some(n) => scalar_text(n)?,
    };
    if text.trim_ascii().is_empty() {
        return Some(Value::Null);
    }
    match privacy.ip(&text) {
        Redacted::Text(t) => Some(Value::str(&t)),
        Redacted::Unparseable => None,
        Redacted::Dropped => Some(Value::Null),
    }
}

/// `event_id` and `action` of a line that is not valid JSON or not valid UTF-8: from a
/// full parse of the text with bad bytes replaced by U+FFFD if that works, else from a
/// lenient scan for the keys.
fn lenient_ids(raw: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(raw);
    let mut bytes = text.as_bytes().to_vec();
    if let Ok(tape) = simd_json::to_tape(&mut bytes) {
        if let Some(Node::Object { len, .. }) = tape.0.first() {
            let id = top_level(&tape.0, *len, "event_id")
                .and_then(|n| scalar_text(n))
                .map(|c| c.into_owned());
            let action = top_level(&tape.0, *len, "action")
                .and_then(|n| scalar_text(n))
                .map(|c| c.into_owned());
            return (id, action);
        }
        return (None, None);
    }
    (
        lenient_field(&text, "event_id"),
        lenient_field(&text, "action"),
    )
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The node of the last top-level member `key` of an object tape.
fn top_level<'t, 'a>(nodes: &'t [Node<'a>], len: usize, key: &str) -> Option<&'t Node<'a>> {
    let mut pos = 1;
    let mut found = None;
    for _ in 0..len {
        let (Some(k), Some(v)) = (nodes.get(pos), nodes.get(pos + 1)) else {
            break;
        };
        if matches!(k, Node::String(s) if *s == key) {
            found = Some(v);
        }
        pos += 1 + subtree_len(v);
    }
    found
}

/// The line as text (invalid UTF-8 replaced), cut to [`MAX_RAW_BYTES`] on a character
/// boundary.
pub(crate) fn raw_text(raw: &[u8]) -> String {
    // Every input byte gives at least one output byte, and a character is at most 4 bytes,
    // so this prefix decodes to the same first MAX_RAW_BYTES as the whole line would.
    let head = raw.get(..MAX_RAW_BYTES + 4).unwrap_or(raw);
    let text = String::from_utf8_lossy(head);
    let mut end = text.len().min(MAX_RAW_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("").to_owned()
}

/// Member positions remembered by [`LineParser::predicted`].
const MAX_PREDICTED: usize = 4 * FIELD_COUNT;

/// Where each schema field's value sits on the tape of the current line.
const ABSENT: usize = 0;

/// Per-thread parsing buffers, reused line after line.
struct LineParser {
    /// Mutable copy of the line (simd-json rewrites its input while parsing).
    bytes: Vec<u8>,
    buffers: Buffers,
    /// Kept between lines so its allocation is reused; empty while stored.
    tape: Option<Tape<'static>>,
    /// Tape index of each field's value, [`ABSENT`] if not on the line.
    slots: [usize; FIELD_COUNT],
    /// Fields present on the line, in first-seen order.
    present: Vec<Field>,
    /// The field of each member position on the previous line: lines of one object mostly
    /// list the same keys in the same order, so one string compare usually replaces the
    /// lookup by name.
    predicted: Vec<Option<Field>>,
    scratch: Scratch,
    bases: Bases,
}

/// The latest unshared events of each visitor in the current object, which the visitor's
/// later heartbeats are stored against ([`Event::sharing`]): a heartbeat repeats all but
/// about eight of its page view's hundred-odd values, so comparing them with the page view's
/// as they are read replaces building them (long texts allocated or looked up) only for the
/// sessionizer to compare and drop them. The event reads the same either way.
///
/// Emptied for every object (and when it grows past [`Bases::MAX_VISITORS`]), so it holds no
/// more than the events of the object being decoded.
#[derive(Default)]
struct Bases {
    /// Hash of `(apikey, visitor_site_id)` to the visitor's two latest bases, most recently
    /// used first. A collision only costs a comparison that fails.
    map: HashMap<u64, RecentBases, foldhash::fast::FixedState>,
}

impl Bases {
    const MAX_VISITORS: usize = 1 << 16;

    fn clear(&mut self) {
        self.map.clear();
    }

    fn visitor(apikey: &str, visitor_site_id: &str) -> u64 {
        use std::hash::BuildHasher as _;
        foldhash::fast::FixedState::default().hash_one((apikey, visitor_site_id))
    }

    fn get(&self, visitor: u64) -> RecentBases {
        self.map.get(&visitor).cloned().unwrap_or_default()
    }

    /// `base` (of `visitor`) is the most recently used.
    fn used(&mut self, visitor: u64, base: &Arc<Event>) {
        if self.map.len() >= Self::MAX_VISITORS && !self.map.contains_key(&visitor) {
            self.map.clear();
        }
        self.map.entry(visitor).or_default().used(base);
    }
}

impl LineParser {
    fn new() -> LineParser {
        LineParser {
            bytes: Vec::new(),
            buffers: Buffers::default(),
            tape: Some(Tape::null().reset()),
            slots: [ABSENT; FIELD_COUNT],
            present: Vec::with_capacity(FIELD_COUNT),
            predicted: Vec::new(),
            scratch: Scratch::new(),
            bases: Bases::default(),
        }
    }

    /// Parses one line (no `\n`, no trailing `\r`), counting it in `stats`.
    fn parse(
        &mut self,
        dec: &Decoder,
        line: &[u8],
        arrival: Arrival,
        stats: &mut DecodeStats,
    ) -> Outcome {
        stats.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return Outcome::Blank;
        }
        let LineParser {
            bytes,
            buffers,
            tape: slot,
            slots,
            present,
            predicted,
            scratch,
            bases,
        } = self;
        bytes.clear();
        bytes.extend_from_slice(line);
        let mut tape = slot.take().unwrap_or_else(Tape::null).reset();
        let outcome = match simd_json::fill_tape(bytes, buffers, &mut tape) {
            Err(_) if std::str::from_utf8(line).is_err() => {
                Outcome::Error(LineError::new(ErrorReason::InvalidUtf8, None))
            }
            Err(_) => Outcome::Error(LineError::new(ErrorReason::InvalidJson, None)),
            Ok(()) => {
                let mut ctx = Fields {
                    dec,
                    nodes: &tape.0,
                    slots,
                    present,
                    predicted,
                    scratch,
                    buffers,
                    bases,
                };
                match ctx.event(arrival, stats) {
                    Outcome::Error(mut e) if !dec.privacy.keeps_all() => {
                        e.raw = redacted_json(&tape.0, &dec.privacy, &mut Vec::new());
                        Outcome::Error(e)
                    }
                    other => other,
                }
            }
        };
        *slot = Some(tape.reset());
        outcome
    }
}

/// One parsed line's tape with the field lookup built over it.
struct Fields<'a, 'n, 'd> {
    dec: &'d Decoder,
    nodes: &'a [Node<'n>],
    slots: &'a mut [usize; FIELD_COUNT],
    present: &'a mut Vec<Field>,
    predicted: &'a mut Vec<Option<Field>>,
    scratch: &'a mut Scratch,
    buffers: &'a mut Buffers,
    bases: &'a mut Bases,
}

/// Required fields in the order they are checked (after `action`).
const REQUIRED: [Field; 4] = [
    Field::Apikey,
    Field::EventId,
    Field::VisitorSiteId,
    Field::TsAction,
];

impl<'n> Fields<'_, 'n, '_> {
    fn event(&mut self, arrival: Arrival, stats: &mut DecodeStats) -> Outcome {
        let Some(Node::Object { len, .. }) = self.nodes.first() else {
            return Outcome::Error(LineError {
                reason: ErrorReason::NotAnObject,
                detail: None,
                ids: Some((None, None)),
                raw: None,
            });
        };
        self.index(*len);
        let event_id = self.node(Field::EventId).and_then(|n| scalar_text(n));
        let action = self.node(Field::Action).and_then(|n| scalar_text(n));
        let reject = |reason, detail: Option<&str>| {
            Outcome::Error(LineError {
                reason,
                detail: detail.map(str::to_owned),
                ids: Some((non_empty(event_id.as_deref()), non_empty(action.as_deref()))),
                raw: None,
            })
        };
        let action_text = match (&action, self.node(Field::Action)) {
            (Some(a), _) if !a.is_empty() => a.as_ref(),
            (None, Some(Node::Object { .. } | Node::Array { .. })) => {
                return reject(ErrorReason::MissingAction, Some("action is not text"));
            }
            _ => return reject(ErrorReason::MissingAction, None),
        };
        let mut ts_action = 0;
        for f in REQUIRED {
            let problem = match self.node(f) {
                None | Some(Node::Static(StaticNode::Null)) | Some(Node::String("")) => {
                    Some(ErrorReason::MissingRequiredField)
                }
                Some(node) if f == Field::TsAction => match node {
                    Node::String(s) => match parse_ts(s) {
                        Some(ts) => {
                            ts_action = ts;
                            None
                        }
                        None => Some(ErrorReason::UnparseableRequiredField),
                    },
                    _ => Some(ErrorReason::UnparseableRequiredField),
                },
                Some(Node::Object { .. } | Node::Array { .. }) => {
                    Some(ErrorReason::UnparseableRequiredField)
                }
                Some(_) => None,
            };
            if let Some(reason) = problem {
                return reject(reason, Some(f.name()));
            }
        }
        let ua_browser = self.node(Field::UaBrowser).and_then(|n| scalar_text(n));
        let user_agent = self.node(Field::UserAgent).and_then(|n| scalar_text(n));
        let class = if self
            .dec
            .is_bot(ua_browser.as_deref(), user_agent.as_deref())
        {
            Class::Bot
        } else {
            match action_text {
                "pageview" => Class::Pageview,
                "heartbeat" => Class::Heartbeat,
                "videostart" => Class::Videostart,
                "vheartbeat" => Class::Vheartbeat,
                other => {
                    if !self.dec.custom_actions.is_empty()
                        && !self.dec.custom_actions.contains(other)
                    {
                        stats.unlisted_custom += 1;
                        return Outcome::Unlisted;
                    }
                    Class::Custom
                }
            }
        };
        let visitor = match (self.node(Field::Apikey), self.node(Field::VisitorSiteId)) {
            (Some(Node::String(a)), Some(Node::String(v))) if class.is_activity() => {
                Some(Bases::visitor(a, v))
            }
            _ => None,
        };
        // Heartbeats (and custom events) are tried against the visitor's bases; page views
        // and video starts are bases themselves.
        let try_share = matches!(class, Class::Heartbeat | Class::Vheartbeat | Class::Custom);
        let mut coerced = 0u128;
        let mut event = None;
        if let Some(visitor) = visitor.filter(|_| try_share) {
            for base in self.bases.get(visitor).iter() {
                coerced = 0;
                event = self.build(class, arrival, ts_action, Some(base), &mut coerced);
                if event.is_some() {
                    break;
                }
            }
        }
        let event = match event {
            Some(e) => e,
            None => {
                coerced = 0;
                let mut e = self
                    .build(class, arrival, ts_action, None, &mut coerced)
                    .unwrap_or_else(|| Event::empty(class, arrival));
                if visitor.is_some() {
                    e.make_base();
                }
                e
            }
        };
        // The base it is stored against, or the one it became.
        if let (Some(visitor), Some(base)) = (visitor, event.base()) {
            self.bases.used(visitor, base);
        }
        while coerced != 0 {
            let f = coerced.trailing_zeros() as usize;
            if let Some(n) = stats.coerced.get_mut(f) {
                *n += 1;
            }
            coerced &= coerced - 1;
        }
        stats.events[class as usize] += 1;
        Outcome::Event(event)
    }

    /// The event of the indexed line; its unparseable fields (nulled) are set in `coerced`.
    ///
    /// With `base`, the event is stored as its differences from `base`, each field compared
    /// as it is read (a text equal to the base's is never built); `None` when it cannot be:
    /// a field `base` has is missing or null here, or more than [`SHARE_MAX_OWN`] differ.
    /// Without `base` it is always `Some`.
    fn build(
        &mut self,
        class: Class,
        arrival: Arrival,
        ts_action: i64,
        base: Option<&Arc<Event>>,
        coerced: &mut u128,
    ) -> Option<Event> {
        let mut event = match base {
            Some(b) => Event::sharing(Arc::clone(b), class, arrival, SHARE_MAX_OWN),
            None => Event::with_capacity(class, arrival, self.present.len()),
        };
        let privacy = &self.dec.privacy;
        let mut own = 0;
        // In field order, so that every value is appended to the event's stored fields.
        for &f in ALL_FIELDS {
            let theirs = base.map(|b| b.get(f)).filter(|v| !v.is_null());
            let slot = self.slots[f as usize];
            let sub = match self.nodes.get(slot..) {
                Some(sub) if slot != ABSENT => sub,
                // Missing here: the event must not read the base's value.
                _ if theirs.is_some() => return None,
                _ => continue,
            };
            let value = match f {
                Field::TsAction => Some(Value::Ts(ts_action)),
                Field::VisitorIp if privacy.ip != IpMode::Keep => ip_value(privacy, sub.first()),
                Field::UserAgent if privacy.drop_user_agent => {
                    if theirs.is_some() {
                        return None;
                    }
                    continue;
                }
                Field::ExtraData => {
                    let key = Some(self.dec.extra_data_key.as_str());
                    let (value, extra) = convert_json(f, sub, key, self.scratch, self.buffers);
                    event.extra = extra;
                    value
                }
                f => match (theirs, sub.first()) {
                    // A text kept as read, equal to the base's: nothing to build.
                    (Some(t), Some(Node::String(s)))
                        if f.kind() == Kind::Str && t.as_str() == Some(*s) =>
                    {
                        continue;
                    }
                    _ => convert(f, sub, self.scratch, self.buffers),
                },
            };
            match value {
                Some(v) if !v.is_null() => {
                    if theirs == Some(&v) {
                        continue;
                    }
                    if base.is_some() {
                        own += 1;
                        if own > SHARE_MAX_OWN {
                            return None;
                        }
                    }
                    event.push(f, v);
                }
                _ if theirs.is_some() => return None,
                Some(_) => {}
                None => *coerced |= 1 << (f as usize),
            }
        }
        if base.is_some() {
            // The sessionizer holds it for the rest of its session: no room to spare.
            event.shrink_to_fit();
        }
        Some(event)
    }

    /// Fills `slots`/`present` from the top-level members (a repeated key: the last wins).
    fn index(&mut self, len: usize) {
        for f in self.present.drain(..) {
            self.slots[f as usize] = ABSENT;
        }
        let mut pos = 1;
        for i in 0..len {
            let (Some(Node::String(k)), Some(v)) = (self.nodes.get(pos), self.nodes.get(pos + 1))
            else {
                break;
            };
            let field = match self.predicted.get_mut(i) {
                Some(Some(f)) if f.name() == *k => Some(*f),
                Some(slot) => {
                    *slot = Field::from_name(k);
                    *slot
                }
                None => {
                    let f = Field::from_name(k);
                    if i < MAX_PREDICTED {
                        self.predicted.push(f);
                    }
                    f
                }
            };
            if let Some(f) = field {
                if self.slots[f as usize] == ABSENT {
                    self.present.push(f);
                }
                self.slots[f as usize] = pos + 1;
            }
            pos += 1 + subtree_len(v);
        }
    }

    fn node(&self, f: Field) -> Option<&'_ Node<'n>> {
        match self.slots[f as usize] {
            ABSENT => None,
            i => self.nodes.get(i),
        }
    }
}
