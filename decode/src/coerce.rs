//! Turning one JSON value (a tape subtree) into the [`Value`] of a field's [`Kind`]
//! (SPEC.md section 1, leniency rules).

use std::borrow::Cow;

use dpl_core::{Field, Kind, Value};
use simd_json::{Buffers, Node, StaticNode, Tape};

use crate::intern::Interner;
use crate::json::{Frame, subtree_len, write_compact, write_static};
use crate::ts::parse_ts;

/// Reusable scratch space for conversions: a second tape for JSON given as text, and
/// text buffers. One per decoding thread.
pub(crate) struct Scratch {
    /// Mutable copy of an embedded JSON text (simd-json rewrites its input).
    nested_bytes: Vec<u8>,
    /// Kept between uses so its allocation is reused; empty while stored.
    nested_tape: Option<Tape<'static>>,
    pub(crate) text: String,
    frames: Vec<Frame>,
    /// Shared `Arc<str>` for repeated text values.
    pub(crate) interner: Interner,
}

impl Scratch {
    pub(crate) fn new() -> Scratch {
        Scratch {
            nested_bytes: Vec::new(),
            nested_tape: Some(Tape::null().reset()),
            text: String::new(),
            frames: Vec::new(),
            interner: Interner::new(),
        }
    }
}

/// The outcome of converting a field: `None` means unparseable (the caller nulls and counts
/// it, or rejects the line for a required field).
pub(crate) type Converted = Option<Value>;

/// A scalar as text: strings as they are, numbers as their JSON text, bools as
/// `true`/`false`. `None` for null, objects and arrays.
pub(crate) fn scalar_text<'a>(node: &Node<'a>) -> Option<Cow<'a, str>> {
    match node {
        Node::String(s) => Some(Cow::Borrowed(*s)),
        Node::Static(StaticNode::Null) | Node::Object { .. } | Node::Array { .. } => None,
        Node::Static(s) => {
            let mut out = String::new();
            write_static(&mut out, s);
            Some(Cow::Owned(out))
        }
    }
}

/// Converts the value whose subtree starts `nodes` (non-empty) for `field`, by its kind.
/// `Json` and `List` are handled by [`convert_json`].
pub(crate) fn convert(
    field: Field,
    nodes: &[Node<'_>],
    scratch: &mut Scratch,
    buffers: &mut Buffers,
) -> Converted {
    let node = nodes.first()?;
    if matches!(node, Node::Static(StaticNode::Null)) {
        return Some(Value::Null);
    }
    let kind = field.kind();
    match kind {
        Kind::Str => match node {
            Node::String(s) => Some(scratch.interner.value(field, s)),
            _ => scalar_text(node).map(|t| Value::str(t.as_ref())),
        },
        Kind::Int | Kind::EpochMs => match node {
            Node::Static(s) => static_int(s).map(Value::Int),
            Node::String("") => Some(Value::Null),
            Node::String(s) => str_int(s, &mut scratch.text).map(Value::Int),
            _ => None,
        },
        Kind::Float => match node {
            Node::Static(StaticNode::I64(i)) => Some(Value::Float(*i as f64)),
            Node::Static(StaticNode::U64(u)) => Some(Value::Float(*u as f64)),
            Node::Static(StaticNode::F64(f)) => Some(Value::Float(*f)),
            Node::String("") => Some(Value::Null),
            Node::String(s) => str_float(s, &mut scratch.text).map(Value::Float),
            _ => None,
        },
        Kind::Bool => match node {
            Node::Static(StaticNode::Bool(b)) => Some(Value::Bool(*b)),
            Node::Static(s) => match static_int(s) {
                Some(1) => Some(Value::Bool(true)),
                Some(0) => Some(Value::Bool(false)),
                _ => None,
            },
            Node::String("") => Some(Value::Null),
            Node::String(s) => str_bool(s).map(Value::Bool),
            _ => None,
        },
        Kind::TsText => match node {
            Node::String("") => Some(Value::Null),
            Node::String(s) => parse_ts(s).map(Value::Ts),
            _ => None,
        },
        Kind::Json | Kind::List => convert_json(field, nodes, None, scratch, buffers).0,
    }
}

/// Converts a `Json` (object) or `List` (array) field: the container itself, or a string
/// holding its JSON text, becomes compact JSON text. With `extra_key`, also returns that
/// key's value from the object (SPEC.md section 3, `custom_extra_data`).
pub(crate) fn convert_json(
    field: Field,
    nodes: &[Node<'_>],
    extra_key: Option<&str>,
    scratch: &mut Scratch,
    buffers: &mut Buffers,
) -> (Converted, Value) {
    let want_object = field.kind() == Kind::Json;
    match nodes.first() {
        None | Some(Node::Static(StaticNode::Null)) | Some(Node::String("")) => {
            (Some(Value::Null), Value::Null)
        }
        Some(Node::Object { .. }) if want_object => {
            let extra = extra_key.map_or(Value::Null, |k| object_member(nodes, k, scratch));
            (Some(compact_value(field, nodes, scratch)), extra)
        }
        Some(Node::Array { .. }) if !want_object => {
            (Some(compact_value(field, nodes, scratch)), Value::Null)
        }
        Some(Node::String(s)) => {
            let Scratch {
                nested_bytes,
                nested_tape,
                text,
                frames,
                interner,
            } = scratch;
            nested_bytes.clear();
            nested_bytes.extend_from_slice(s.as_bytes());
            let mut tape = nested_tape.take().unwrap_or_else(Tape::null).reset();
            let parsed = simd_json::fill_tape(nested_bytes, buffers, &mut tape).is_ok();
            let inner: &[Node<'_>] = &tape.0;
            let fits = matches!(
                (inner.first(), want_object),
                (Some(Node::Object { .. }), true) | (Some(Node::Array { .. }), false)
            );
            let out = if parsed && fits {
                let extra = match extra_key {
                    Some(k) => object_member_in(inner, k, text, frames),
                    None => Value::Null,
                };
                (
                    Some(compact_in(inner, text, frames, field, interner)),
                    extra,
                )
            } else {
                (None, Value::Null)
            };
            *nested_tape = Some(tape.reset());
            out
        }
        Some(_) => (None, Value::Null),
    }
}

fn compact_value(field: Field, nodes: &[Node<'_>], scratch: &mut Scratch) -> Value {
    let Scratch {
        text,
        frames,
        interner,
        ..
    } = scratch;
    compact_in(nodes, text, frames, field, interner)
}

/// The compact JSON text of the value starting `nodes`, shared through the interner.
fn compact_in(
    nodes: &[Node<'_>],
    text: &mut String,
    frames: &mut Vec<Frame>,
    field: Field,
    interner: &mut Interner,
) -> Value {
    text.clear();
    write_compact(text, nodes, frames);
    interner.value(field, text)
}

fn object_member(nodes: &[Node<'_>], key: &str, scratch: &mut Scratch) -> Value {
    object_member_in(nodes, key, &mut scratch.text, &mut scratch.frames)
}

/// The value of `key` in the object starting `nodes`: a string as is, null or absent as
/// null, anything else as compact JSON text. A repeated key: the last one wins.
fn object_member_in(
    nodes: &[Node<'_>],
    key: &str,
    text: &mut String,
    frames: &mut Vec<Frame>,
) -> Value {
    let Some(Node::Object { len, .. }) = nodes.first() else {
        return Value::Null;
    };
    let mut pos = 1;
    let mut found = None;
    for _ in 0..*len {
        let (Some(k), Some(v)) = (nodes.get(pos), nodes.get(pos + 1)) else {
            break;
        };
        if matches!(k, Node::String(s) if *s == key) {
            found = Some(pos + 1);
        }
        pos += 1 + subtree_len(v);
    }
    let Some(sub) = found.and_then(|i| nodes.get(i..)) else {
        return Value::Null;
    };
    match sub.first() {
        Some(Node::String(s)) => Value::str(s),
        None | Some(Node::Static(StaticNode::Null)) => Value::Null,
        Some(_) => {
            text.clear();
            write_compact(text, sub, frames);
            Value::str(text)
        }
    }
}

/// An integer from a JSON number: integers that fit `i64`, and floats with no fraction.
fn static_int(s: &StaticNode) -> Option<i64> {
    match s {
        StaticNode::I64(i) => Some(*i),
        StaticNode::U64(u) => i64::try_from(*u).ok(),
        StaticNode::F64(f) => float_int(*f),
        StaticNode::Bool(_) | StaticNode::Null => None,
    }
}

/// `f` as an integer if it is whole and in range (`5.0` -> 5).
fn float_int(f: f64) -> Option<i64> {
    // 2^63 as f64 is exact; every whole f64 in [-2^63, 2^63) fits i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
}

/// Shape of a numeric string once its `_` separators are removed.
#[derive(PartialEq)]
enum NumShape {
    /// `[+-]digits`
    Integer,
    /// `[+-]digits.0+`: an integer written with a zero fraction (`5.0`).
    ZeroFraction,
    /// Anything else that is a number (fraction, exponent).
    Other,
}

/// Checks the numeric string grammar `[+-]D(.D)?([eE][+-]?D)?` where `D` is ASCII digits
/// with single `_` separators between digits, and copies it without separators into `out`.
fn clean_number(s: &str, out: &mut String) -> Option<NumShape> {
    out.clear();
    let b = s.as_bytes();
    let mut i = 0;
    if let Some(&c @ (b'+' | b'-')) = b.first() {
        out.push(c as char);
        i = 1;
    }
    // Reads one run of digits with separators starting at `i`; returns (end, all zeros).
    let digits = |mut i: usize, out: &mut String| -> Option<(usize, bool)> {
        let start = i;
        let mut zeros = true;
        loop {
            match b.get(i) {
                Some(&c) if c.is_ascii_digit() => {
                    zeros &= c == b'0';
                    out.push(c as char);
                    i += 1;
                }
                Some(b'_') if i > start && b.get(i + 1).is_some_and(u8::is_ascii_digit) => i += 1,
                _ => break,
            }
        }
        (i > start).then_some((i, zeros))
    };
    let (mut i, _) = digits(i, out)?;
    let mut shape = NumShape::Integer;
    if b.get(i) == Some(&b'.') {
        out.push('.');
        let (end, zeros) = digits(i + 1, out)?;
        i = end;
        shape = if zeros {
            NumShape::ZeroFraction
        } else {
            NumShape::Other
        };
    }
    if let Some(&c @ (b'e' | b'E')) = b.get(i) {
        out.push(c as char);
        i += 1;
        if let Some(&c @ (b'+' | b'-')) = b.get(i) {
            out.push(c as char);
            i += 1;
        }
        i = digits(i, out)?.0;
        shape = NumShape::Other;
    }
    (i == b.len()).then_some(shape)
}

/// An integer from a numeric string (`"42"`, `"1_470_045_600_000"`, `"5.0"`, `"1e3"`).
fn str_int(s: &str, buf: &mut String) -> Option<i64> {
    match clean_number(s, buf)? {
        NumShape::Integer => buf.parse().ok(),
        // Parsed exactly from the integer part, not through f64.
        NumShape::ZeroFraction => buf.split('.').next()?.parse().ok(),
        NumShape::Other => float_int(buf.parse().ok()?),
    }
}

/// A float from a numeric string; overflow to infinity is unparseable.
fn str_float(s: &str, buf: &mut String) -> Option<f64> {
    clean_number(s, buf)?;
    buf.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// `true/false/t/f/1/0/yes/no`, any case.
fn str_bool(s: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "t", "1", "yes"];
    const FALSE: [&str; 4] = ["false", "f", "0", "no"];
    if TRUE.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        Some(true)
    } else if FALSE.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        Some(false)
    } else {
        None
    }
}
