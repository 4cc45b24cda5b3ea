//! Serde forms of the core types kept in the checkpoint (`dpl_core::Value` and `Event` are
//! not serde types, so the state converts them on save and load).

use dpl_core::{ALL_FIELDS, Arrival, Class, Event, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Mirror of [`Value`] for reading the checkpoint; written as [`VRef`], which has the same
/// encoding.
#[derive(Deserialize)]
pub(crate) enum V {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(TextV),
    Ts(i64),
    Date(i32),
}

/// [`V`] borrowed from a [`Value`], for writing: the same variants in the same order, so
/// the same bytes, without touching a text's reference count.
#[derive(Serialize)]
#[serde(rename = "V")]
pub(crate) enum VRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
    Ts(i64),
    Date(i32),
}

/// A text [`Value`] (either form), stored as a plain string; read back in the form
/// [`Value::str`] picks.
pub(crate) struct TextV(Value);

impl<'de> Deserialize<'de> for TextV {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TextV, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = TextV;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TextV, E> {
                Ok(TextV(Value::str(s)))
            }
        }
        d.deserialize_str(Text)
    }
}

impl<'a> From<&'a Value> for VRef<'a> {
    fn from(v: &'a Value) -> VRef<'a> {
        match v {
            Value::Null => VRef::Null,
            Value::Bool(b) => VRef::Bool(*b),
            Value::Int(i) => VRef::Int(*i),
            Value::Float(f) => VRef::Float(*f),
            Value::Text(_) | Value::Short(_) => VRef::Text(v.as_str().unwrap_or_default()),
            Value::Ts(t) => VRef::Ts(*t),
            Value::Date(d) => VRef::Date(*d),
        }
    }
}

impl From<V> for Value {
    fn from(v: V) -> Value {
        match v {
            V::Null => Value::Null,
            V::Bool(b) => Value::Bool(b),
            V::Int(i) => Value::Int(i),
            V::Float(f) => Value::Float(f),
            V::Text(TextV(t)) => t,
            V::Ts(t) => Value::Ts(t),
            V::Date(d) => Value::Date(d),
        }
    }
}

/// `#[serde(with = "value")]` for a [`Value`] field.
pub(crate) mod value {
    use super::*;
    pub(crate) fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        VRef::from(v).serialize(s)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        V::deserialize(d).map(Value::from)
    }
}

/// `#[serde(with = "values")]` for a `Box<[Value]>` field.
pub(crate) mod values {
    use super::*;
    pub(crate) fn serialize<S: Serializer>(v: &[Value], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(VRef::from))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[Value]>, D::Error> {
        let v: Vec<V> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(Value::from).collect())
    }
}

/// `#[serde(with = "values5")]` for a `[Value; 5]` field.
pub(crate) mod values5 {
    use super::*;
    pub(crate) fn serialize<S: Serializer>(v: &[Value; 5], s: S) -> Result<S::Ok, S::Error> {
        // An array is a tuple in serde (no length), as `deserialize` reads it.
        v.each_ref().map(VRef::from).serialize(s)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[Value; 5], D::Error> {
        let [a, b, c, e, f]: [V; 5] = <[V; 5]>::deserialize(d)?;
        Ok([a.into(), b.into(), c.into(), e.into(), f.into()])
    }
}

/// An event as stored: only its non-null fields, by field index. Read as this, written as
/// [`StoredEventRef`].
#[derive(Deserialize)]
pub(crate) struct StoredEvent {
    class: u8,
    object: u32,
    line: u64,
    extra: V,
    values: Vec<(u8, V)>,
}

/// [`StoredEvent`] borrowed from an [`Event`], for writing: the same fields in the same
/// order, so the same bytes, with nothing copied or allocated.
#[derive(Serialize)]
#[serde(rename = "StoredEvent")]
pub(crate) struct StoredEventRef<'a> {
    class: u8,
    object: u32,
    line: u64,
    extra: VRef<'a>,
    values: FieldValues<'a>,
}

/// An event's non-null fields as `(field index, value)` pairs.
struct FieldValues<'a>(&'a Event);

impl Serialize for FieldValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(self.0.field_count()))?;
        for (f, v) in self.0.fields() {
            seq.serialize_element(&(f as u8, VRef::from(v)))?;
        }
        seq.end()
    }
}

const CLASSES: [Class; 6] = [
    Class::Pageview,
    Class::Heartbeat,
    Class::Videostart,
    Class::Vheartbeat,
    Class::Custom,
    Class::Bot,
];

impl<'a> StoredEventRef<'a> {
    pub(crate) fn of(ev: &'a Event) -> StoredEventRef<'a> {
        StoredEventRef {
            class: CLASSES.iter().position(|&c| c == ev.class).unwrap_or(0) as u8,
            object: ev.arrival.object,
            line: ev.arrival.line,
            extra: VRef::from(&ev.extra),
            values: FieldValues(ev),
        }
    }
}

impl StoredEvent {
    /// The event, or `None` when the stored form names an unknown class or field.
    pub(crate) fn into_event(self) -> Option<Event> {
        let class = *CLASSES.get(usize::from(self.class))?;
        let arrival = Arrival {
            object: self.object,
            line: self.line,
        };
        let mut ev = Event::with_capacity(class, arrival, self.values.len());
        ev.extra = self.extra.into();
        for (i, v) in self.values {
            ev.set(*ALL_FIELDS.get(usize::from(i))?, v.into());
        }
        Some(ev)
    }
}

/// `#[serde(with = "sorted_map")]` for a `HashMap`: stored as pairs in key order, so the
/// same state always encodes to the same bytes.
pub(crate) mod sorted_map {
    use std::hash::Hash;

    use crate::derive::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<K, V, S>(m: &HashMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord,
        V: Serialize,
        S: Serializer,
    {
        let mut pairs: Vec<(&K, &V)> = m.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        s.collect_seq(pairs)
    }

    pub(crate) fn deserialize<'de, K, V, D>(d: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let pairs: Vec<(K, V)> = Vec::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}
