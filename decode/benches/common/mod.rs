//! What the decode benches share: the generator data, the decoders and the bare loop.
//!
//! The bare loop is the least work that turns the same bytes into the same event type, done
//! the way a careful hand-written loop would: flate2 (`MultiGzDecoder`, zlib-rs backend)
//! through a `BufReader` of the same size as the decoder's, lines split on `\n`, each line
//! copied into a reused buffer and parsed by simd-json into a reused tape (the decoder's
//! parse), then one [`Event`] with its values box: every top-level key looked up with
//! `Field::from_name`, strings as `Arc<str>`, numbers and bools as they come, objects and
//! arrays as their compact JSON text (simd-json's own writer). It does not check required
//! fields, coerce by kind, parse time stamps, classify, count or batch (each event is
//! dropped at once, which is kinder to the allocator than the decoder's batches of 4096):
//! that is the work the decoder adds, and what the ratio `bare_loop / decoder` measures.
#![allow(clippy::unwrap_used, dead_code)]

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use dpl_core::{Arrival, Class, Event, Field, RawObject, Value};
use dpl_decode::{DecodeConfig, Decoder, IpMode, PrivacyConfig, UserAgentMode};
use simd_json::prelude::*;
use simd_json::{Buffers, Tape};

/// The decoder's read buffer size.
const READ_BUF: usize = 256 << 10;

/// 20,000 generator lines of one day in 24 objects (gzip, some two-member, one plain), with
/// the generator's share of malformed, bot and duplicate lines; and their decompressed size.
pub fn data() -> (Vec<RawObject>, u64) {
    let cfg = dpl_gen::GenConfig::new(20_000, jiff::civil::date(2026, 11, 1), 1, 1);
    let (generated, _) = dpl_gen::generate(&cfg);
    let objects: Vec<RawObject> = generated
        .iter()
        .zip(0..)
        .map(|(o, id)| RawObject {
            id,
            key: Arc::from(o.key.as_str()),
            bytes: o.bytes.clone().into(),
        })
        .collect();
    let plain_bytes = objects
        .iter()
        .map(|o| {
            if o.bytes.starts_with(&[0x1f, 0x8b]) {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(&o.bytes[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out.len() as u64
            } else {
                o.bytes.len() as u64
            }
        })
        .sum();
    (objects, plain_bytes)
}

/// The default decoder.
pub fn decoder() -> Decoder {
    Decoder::new(DecodeConfig::default()).unwrap()
}

/// The decoder with `visitor_ip = "hash"` and `user_agent = "drop"`.
pub fn private_decoder() -> Decoder {
    Decoder::new(DecodeConfig {
        privacy: PrivacyConfig {
            visitor_ip: IpMode::Hash,
            user_agent: UserAgentMode::Drop,
            ip_hash_salt: Some("bench-salt-0123456789".into()),
        },
        ..DecodeConfig::default()
    })
    .unwrap()
}

/// Decodes every object; returns the number of events.
pub fn run(d: &Decoder, objects: &[RawObject]) -> usize {
    let mut events = 0;
    for o in objects {
        d.decode_object(o, &mut |batch| events += batch.events.len());
    }
    events
}

/// Buffers reused across lines and objects, as the decoder reuses its own.
pub struct BareState {
    line: Vec<u8>,
    bytes: Vec<u8>,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
}

impl BareState {
    pub fn new() -> BareState {
        BareState {
            line: Vec::new(),
            bytes: Vec::new(),
            buffers: Buffers::default(),
            tape: Some(Tape::null().reset()),
        }
    }
}

/// The bare loop over every object; returns the number of objects (lines) parsed.
pub fn bare(objects: &[RawObject], state: &mut BareState) -> usize {
    objects
        .iter()
        .map(|o| bare_object(black_box(&o.bytes), state))
        .sum()
}

fn bare_object(bytes: &[u8], state: &mut BareState) -> usize {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::bufread::MultiGzDecoder::new(bytes);
        bare_lines(BufReader::with_capacity(READ_BUF, gz), state)
    } else {
        bare_lines(bytes, state)
    }
}

fn bare_lines(mut reader: impl BufRead, state: &mut BareState) -> usize {
    let mut events = 0;
    let mut number = 0;
    loop {
        state.line.clear();
        if reader.read_until(b'\n', &mut state.line).unwrap() == 0 {
            return events;
        }
        number += 1;
        let text = state.line.strip_suffix(b"\n").unwrap_or(&state.line);
        state.bytes.clear();
        state.bytes.extend_from_slice(text);
        let mut tape = state.tape.take().unwrap().reset();
        if simd_json::fill_tape(&mut state.bytes, &mut state.buffers, &mut tape).is_ok()
            && let Some(event) = bare_event(&tape, number)
        {
            black_box(&event);
            events += 1;
        }
        state.tape = Some(tape.reset());
    }
}

fn bare_event(tape: &Tape<'_>, line: u64) -> Option<Event> {
    let object = tape.as_value();
    let object = object.as_object()?;
    let mut event = Event::empty(Class::Pageview, Arrival { object: 0, line });
    for (key, value) in object.iter() {
        let Some(field) = Field::from_name(key) else {
            continue;
        };
        let v = if let Some(s) = value.as_str() {
            Value::Text(Arc::from(s))
        } else if let Some(i) = value.as_i64() {
            Value::Int(i)
        } else if let Some(f) = value.as_f64() {
            Value::Float(f)
        } else if let Some(b) = value.as_bool() {
            Value::Bool(b)
        } else if value.is_null() {
            Value::Null
        } else {
            Value::Text(Arc::from(value.encode()))
        };
        event.set(field, v);
    }
    Some(event)
}
