//! The decoded event.

use std::sync::Arc;

use crate::field::{FIELD_COUNT, Field};
use crate::value::Value;

/// What the decoder made of a line that parsed (SPEC.md section 2, less duplicates, which
/// only the stateful sessionizer can tell).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Pageview,
    Heartbeat,
    Videostart,
    Vheartbeat,
    /// Any other action (and listed in `custom_actions` when that is set).
    Custom,
    /// Matched a bot rule; goes to `parsely_bot_traffic` only.
    Bot,
}

impl Class {
    /// Standard actions and custom events are activity for sessions and users.
    pub fn is_activity(self) -> bool {
        !matches!(self, Class::Bot)
    }
    pub fn is_standard(self) -> bool {
        matches!(
            self,
            Class::Pageview | Class::Heartbeat | Class::Videostart | Class::Vheartbeat
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Pageview => "pageview",
            Class::Heartbeat => "heartbeat",
            Class::Videostart => "videostart",
            Class::Vheartbeat => "vheartbeat",
            Class::Custom => "custom",
            Class::Bot => "bot",
        }
    }
}

/// Where an event arrived: the run-wide index of its object (objects are numbered in key
/// order) and its 1-based line number. Arrival order is `(object, line)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Arrival {
    pub object: u32,
    pub line: u64,
}

/// A decoded event: every schema field (null when missing or coerced), its class, and the
/// value of the configured `extra_data` key.
///
/// Invariant for events that leave the decoder: `apikey`, `event_id`, `visitor_site_id` are
/// non-empty text and `ts_action` is a time stamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Indexed by `Field as usize`; always [`FIELD_COUNT`] long.
    pub values: Box<[Value]>,
    pub class: Class,
    /// `custom_extra_data`: the configured key of `extra_data` (SPEC.md section 3).
    pub extra: Value,
    pub arrival: Arrival,
}

impl Event {
    /// An event with every field null (the decoder and tests fill it in).
    pub fn empty(class: Class, arrival: Arrival) -> Event {
        Event {
            values: vec![Value::Null; FIELD_COUNT].into_boxed_slice(),
            class,
            extra: Value::Null,
            arrival,
        }
    }
    pub fn get(&self, f: Field) -> &Value {
        &self.values[f as usize]
    }
    pub fn set(&mut self, f: Field, v: Value) {
        self.values[f as usize] = v;
    }
    pub fn str(&self, f: Field) -> Option<&str> {
        self.get(f).as_str()
    }
    pub fn text(&self, f: Field) -> Option<&Arc<str>> {
        match self.get(f) {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn int(&self, f: Field) -> Option<i64> {
        self.get(f).as_int()
    }
    pub fn ts(&self, f: Field) -> Option<i64> {
        self.get(f).as_ts()
    }
    /// `ts_action` in UTC microseconds (required, so always present after decoding).
    pub fn ts_action(&self) -> i64 {
        self.ts(Field::TsAction).unwrap_or(i64::MIN)
    }
    /// `event_id` (required, so always present after decoding).
    pub fn event_id(&self) -> &str {
        self.str(Field::EventId).unwrap_or("")
    }
    pub fn apikey(&self) -> &str {
        self.str(Field::Apikey).unwrap_or("")
    }
    pub fn visitor_site_id(&self) -> &str {
        self.str(Field::VisitorSiteId).unwrap_or("")
    }
    /// The order used for "first", "last", "latest", "before": `ts_action`, then `event_id`
    /// in byte order.
    pub fn time_key(&self) -> (i64, &str) {
        (self.ts_action(), self.event_id())
    }
}
