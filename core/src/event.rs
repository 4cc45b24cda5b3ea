//! The decoded event.

use std::sync::Arc;

use crate::field::{ALL_FIELDS, FIELD_COUNT, Field};
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
/// Only the non-null fields are stored, in field order, with each field's place among them:
/// a typical event leaves a few dozen of the 122 fields null, and open sessions hold events
/// for hours. [`Event::get`] of a field that is not set is [`Value::Null`].
///
/// Invariant for events that leave the decoder: `apikey`, `event_id`, `visitor_site_id` are
/// non-empty text and `ts_action` is a time stamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Per field, its index in `values`, or [`UNSET`].
    slots: [u8; FIELD_COUNT],
    /// The non-null values, in field order.
    values: Vec<Value>,
    pub class: Class,
    /// `custom_extra_data`: the configured key of `extra_data` (SPEC.md section 3).
    pub extra: Value,
    pub arrival: Arrival,
}

static NULL: Value = Value::Null;
const UNSET: u8 = u8::MAX;

const _: () = assert!(FIELD_COUNT < UNSET as usize, "a slot index fits in a u8");

impl Event {
    /// An event with every field null (the decoder and tests fill it in).
    pub fn empty(class: Class, arrival: Arrival) -> Event {
        Event::with_capacity(class, arrival, 0)
    }
    /// An event with every field null and room for `fields` non-null ones.
    pub fn with_capacity(class: Class, arrival: Arrival, fields: usize) -> Event {
        Event {
            slots: [UNSET; FIELD_COUNT],
            values: Vec::with_capacity(fields),
            class,
            extra: Value::Null,
            arrival,
        }
    }
    pub fn get(&self, f: Field) -> &Value {
        match self.slots[f as usize] {
            UNSET => &NULL,
            i => self.values.get(usize::from(i)).unwrap_or(&NULL),
        }
    }
    /// Sets field `f` (null removes it). Setting fields in field order appends.
    pub fn set(&mut self, f: Field, v: Value) {
        let f = f as usize;
        let slot = self.slots[f];
        if slot != UNSET {
            let i = usize::from(slot);
            if v.is_null() {
                self.values.remove(i);
                self.slots[f] = UNSET;
                self.slots[f + 1..]
                    .iter_mut()
                    .filter(|s| **s != UNSET)
                    .for_each(|s| *s -= 1);
            } else {
                self.values[i] = v;
            }
            return;
        }
        if v.is_null() {
            return;
        }
        // Fields after `f` that are set move up by one; in field order there are none.
        let i = self.slots[..f]
            .iter()
            .rev()
            .find(|s| **s != UNSET)
            .map_or(0, |s| usize::from(*s) + 1);
        if i == self.values.len() {
            self.values.push(v);
        } else {
            self.values.insert(i, v);
            self.slots[f + 1..]
                .iter_mut()
                .filter(|s| **s != UNSET)
                .for_each(|s| *s += 1);
        }
        self.slots[f] = i as u8;
    }
    /// Every field's value in schema order ([`FIELD_COUNT`] of them, null where not set).
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> + '_ {
        self.slots.iter().map(|&s| match s {
            UNSET => &NULL,
            i => self.values.get(usize::from(i)).unwrap_or(&NULL),
        })
    }
    /// The non-null fields with their values, in field order.
    pub fn fields(&self) -> impl Iterator<Item = (Field, &Value)> + '_ {
        ALL_FIELDS
            .iter()
            .zip(&self.slots)
            .filter(|(_, s)| **s != UNSET)
            .filter_map(|(f, &s)| Some((*f, self.values.get(usize::from(s))?)))
    }
    /// How many fields are non-null.
    pub fn field_count(&self) -> usize {
        self.values.len()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival() -> Arrival {
        Arrival { object: 0, line: 1 }
    }

    #[test]
    fn fields_set_in_any_order_read_back_and_compare_equal() {
        let mut a = Event::empty(Class::Pageview, arrival());
        let mut b = Event::empty(Class::Pageview, arrival());
        let set = [
            (Field::Url, Value::text("u")),
            (Field::Action, Value::text("pageview")),
            (Field::TsAction, Value::Ts(5)),
            (Field::SessionId, Value::Int(3)),
        ];
        for (f, v) in set.iter().cloned() {
            a.set(f, v);
        }
        for (f, v) in set.iter().rev().cloned() {
            b.set(f, v);
        }
        assert_eq!(a, b);
        assert_eq!(a.field_count(), 4);
        for (f, v) in &set {
            assert_eq!(a.get(*f), v);
        }
        assert_eq!(a.get(Field::Apikey), &Value::Null);
        let dense: Vec<&Value> = a.values().collect();
        assert_eq!(dense.len(), FIELD_COUNT);
        assert_eq!(dense[Field::Url as usize], &Value::text("u"));
        assert_eq!(dense.iter().filter(|v| !v.is_null()).count(), 4);
        let stored: Vec<Field> = a.fields().map(|(f, _)| f).collect();
        let mut sorted = stored.clone();
        sorted.sort();
        assert_eq!(stored, sorted);
    }

    #[test]
    fn setting_null_removes_and_replacing_keeps_one_value() {
        let mut a = Event::empty(Class::Heartbeat, arrival());
        a.set(Field::Url, Value::text("u"));
        a.set(Field::Url, Value::text("v"));
        a.set(Field::Action, Value::text("heartbeat"));
        assert_eq!(a.get(Field::Url), &Value::text("v"));
        a.set(Field::Action, Value::Null);
        a.set(Field::Apikey, Value::Null);
        let mut b = Event::empty(Class::Heartbeat, arrival());
        b.set(Field::Url, Value::text("v"));
        assert_eq!(a, b);
        // The last field (bit 121) works like any other.
        let last = ALL_FIELDS[FIELD_COUNT - 1];
        a.set(last, Value::Int(1));
        assert_eq!(a.get(last), &Value::Int(1));
        assert_eq!(a.values().last(), Some(&Value::Int(1)));
    }
}
