//! Helpers over simd-json tapes: subtree sizes, compact JSON text, number text, and the
//! lenient key scan used to fill `event_id`/`action` of rejected lines.

use std::fmt::Write as _;

use simd_json::{Node, StaticNode};

/// Number of tape nodes of the value starting at `node` (the node itself included).
pub(crate) fn subtree_len(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        Node::String(_) | Node::Static(_) => 1,
    }
}

/// Appends the JSON text of a number or literal, as `serde_json` would write it.
pub(crate) fn write_static(out: &mut String, s: &StaticNode) {
    match s {
        StaticNode::I64(i) => {
            let _ = write!(out, "{i}");
        }
        StaticNode::U64(u) => {
            let _ = write!(out, "{u}");
        }
        StaticNode::F64(f) => write_f64(out, *f),
        StaticNode::Bool(true) => out.push_str("true"),
        StaticNode::Bool(false) => out.push_str("false"),
        StaticNode::Null => out.push_str("null"),
    }
}

/// Shortest text that reads back as the same float (`1.5`, `5.0`, `1e300`); JSON parsing
/// never yields NaN or infinities, but they would be written as `null` like `serde_json`.
pub(crate) fn write_f64(out: &mut String, f: f64) {
    if f.is_finite() {
        // Debug (unlike Display) keeps a `.0` and switches to exponents for large or tiny
        // magnitudes: always valid JSON.
        let _ = write!(out, "{f:?}");
    } else {
        out.push_str("null");
    }
}

/// Appends `s` as a JSON string literal (quotes included), escaping like `serde_json`.
pub(crate) fn write_escaped(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or(""));
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or(""));
    out.push('"');
}

/// An open container while writing compact JSON.
pub(crate) struct Frame {
    object: bool,
    /// Children written so far (keys and values both count in objects).
    pos: usize,
    /// Children in total.
    len: usize,
}

/// Appends the compact JSON text of the value whose subtree starts `nodes`. Iterative, so
/// any nesting depth simd-json accepted is fine; `stack` is a reusable scratch vector.
pub(crate) fn write_compact(out: &mut String, nodes: &[Node<'_>], stack: &mut Vec<Frame>) {
    stack.clear();
    let Some(first) = nodes.first() else {
        return;
    };
    let Some(sub) = nodes.get(..subtree_len(first)) else {
        return;
    };
    for node in sub {
        if let Some(f) = stack.last_mut() {
            if f.object && f.pos % 2 == 1 {
                out.push(':');
            } else if f.pos > 0 {
                out.push(',');
            }
            f.pos += 1;
        }
        match node {
            Node::Object { len, .. } => {
                out.push('{');
                stack.push(Frame {
                    object: true,
                    pos: 0,
                    len: len * 2,
                });
            }
            Node::Array { len, .. } => {
                out.push('[');
                stack.push(Frame {
                    object: false,
                    pos: 0,
                    len: *len,
                });
            }
            Node::String(s) => write_escaped(out, s),
            Node::Static(s) => write_static(out, s),
        }
        // Close every container that is now complete (an empty one just opened included).
        while let Some(f) = stack.last() {
            if f.pos < f.len {
                break;
            }
            out.push(if f.object { '}' } else { ']' });
            stack.pop();
        }
    }
}

/// Best-effort value of top-level-looking `"key": value` in text that is not valid JSON:
/// the first occurrence of the quoted key followed by a colon, then a JSON string (escapes
/// decoded) or a bare number. Used only to fill `event_id`/`action` of error rows.
pub(crate) fn lenient_field(text: &str, key: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(bytes.get(from..)?, quoted.as_bytes()) {
        let after = from + at + quoted.len();
        from = after;
        let rest = text.get(after..)?.trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        let rest = rest.trim_start();
        return if rest.starts_with('"') {
            json_string_prefix(rest)
        } else {
            let n = rest
                .bytes()
                .take_while(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
                .count();
            rest.get(..n).filter(|s| !s.is_empty()).map(str::to_owned)
        };
    }
    None
}

/// Decodes the JSON string literal that `text` starts with (which begins with `"`).
fn json_string_prefix(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 1;
    let end = loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => break i + 1,
            _ => i += 1,
        }
    };
    let mut lit = bytes.get(..end)?.to_vec();
    match simd_json::to_tape(&mut lit).ok()?.0.first() {
        Some(Node::String(s)) => Some((*s).to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn compact(text: &str) -> String {
        let mut b = text.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut b).unwrap();
        let mut out = String::new();
        write_compact(&mut out, &tape.0, &mut Vec::new());
        out
    }

    #[test]
    fn compact_text() {
        let cases = [
            (
                r#" { "a" : 1 , "b" : [ ] , "c" : { } } "#,
                r#"{"a":1,"b":[],"c":{}}"#,
            ),
            (
                r#"[1, -2, 1.5, 5.0, 1e3, true, false, null]"#,
                r#"[1,-2,1.5,5.0,1000.0,true,false,null]"#,
            ),
            (
                r#"{"x":[[1,[2,{"y":[]}]],3],"z":"q"}"#,
                r#"{"x":[[1,[2,{"y":[]}]],3],"z":"q"}"#,
            ),
            (
                r#"["a\"b\\c\nd\u0001é\/"]"#,
                "[\"a\\\"b\\\\c\\nd\\u0001é/\"]",
            ),
            (r#"[[[[]]]]"#, "[[[[]]]]"),
            (r#""solo""#, r#""solo""#),
            (
                r#"{"k":{"k":{"k":1}},"n":null}"#,
                r#"{"k":{"k":{"k":1}},"n":null}"#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(compact(input), want, "input {input}");
        }
    }

    #[test]
    fn floats_as_json_text() {
        let cases = [
            (1.5, "1.5"),
            (5.0, "5.0"),
            (1e300, "1e300"),
            (-0.25, "-0.25"),
            (1e-7, "1e-7"),
        ];
        for (f, want) in cases {
            let mut s = String::new();
            write_f64(&mut s, f);
            assert_eq!(s, want, "input {f}");
        }
    }

    #[test]
    fn lenient_scan() {
        let line = r#"{"x":1, "event_id" : "ab\"c", "action":pageview, "n": 12,"#;
        assert_eq!(lenient_field(line, "event_id").as_deref(), Some("ab\"c"));
        assert_eq!(lenient_field(line, "action"), None);
        assert_eq!(lenient_field(line, "n").as_deref(), Some("12"));
        assert_eq!(lenient_field(line, "missing"), None);
        // A key that is really a value (no colon after it) is skipped.
        let line = r#"{"a":"action", "action":"pageview"#;
        assert_eq!(lenient_field(line, "action"), None, "unterminated string");
        let line = r#"{"a":"action", "action":"pageview" oops"#;
        assert_eq!(lenient_field(line, "action").as_deref(), Some("pageview"));
    }
}
