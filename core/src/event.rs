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
/// Only the non-null fields are stored, in field order, with each field's place among them.
/// An event can also be stored as its differences from a *base* event ([`Event::share`]):
/// a heartbeat repeats all but a handful of its page view's hundred-odd fields, and the
/// sessionizer holds open sessions' events for hours. Either way [`Event::get`] reads the
/// event's own value of a field: a field the event does not set is [`Value::Null`].
///
/// Invariant for events that leave the decoder: `apikey`, `event_id`, `visitor_site_id` are
/// non-empty text and `ts_action` is a time stamp.
#[derive(Clone)]
pub struct Event {
    /// Per field, its index in `values`, or [`UNSET`] (then the field is the base's).
    slots: [u8; FIELD_COUNT],
    /// The values stored here, in field order: all non-null.
    values: Vec<Value>,
    /// One past the last field stored here (0 when none is).
    end: u8,
    /// Where the fields not stored here are read from (a base has no base itself).
    base: Option<Arc<Event>>,
    pub class: Class,
    /// `custom_extra_data`: the configured key of `extra_data` (SPEC.md section 3).
    pub extra: Value,
    pub arrival: Arrival,
}

/// At most this many of an event's values may differ from a base's for the event to be
/// stored against it ([`Event::share`], [`Event::sharing`]). A heartbeat differs from its
/// page view in about eight (action, event id, times, engaged time); a new page view in
/// dozens, and becomes a base itself.
pub const SHARE_MAX_OWN: usize = 16;

/// The two base events a visitor's later events were last stored against (or made into),
/// most recently used first: what the decoder and the sessionizer compare a new event with
/// ([`Event::share`], [`Event::sharing`]).
#[derive(Clone, Debug, Default)]
pub struct RecentBases([Option<Arc<Event>>; 2]);

impl RecentBases {
    /// The bases, most recently used first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Event>> {
        self.0.iter().flatten()
    }

    /// Makes `base` the most recently used; a base not held yet takes the place of the least
    /// recently used.
    pub fn used(&mut self, base: &Arc<Event>) {
        let held = self
            .0
            .iter()
            .position(|b| b.as_ref().is_some_and(|b| Arc::ptr_eq(b, base)));
        match held {
            Some(at) => self.0[..=at].rotate_right(1),
            None => {
                self.0.rotate_right(1);
                self.0[0] = Some(Arc::clone(base));
            }
        }
    }
}

static NULL: Value = Value::Null;
const UNSET: u8 = u8::MAX;

const _: () = assert!(FIELD_COUNT < UNSET as usize, "a slot index fits in a u8");

/// Events are equal when every field, the class, `extra` and the arrival are: how they are
/// stored (shared or not) does not count.
impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.class == other.class
            && self.arrival == other.arrival
            && self.extra == other.extra
            && self.values().eq(other.values())
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("class", &self.class)
            .field("arrival", &self.arrival)
            .field("extra", &self.extra)
            .field("fields", &self.fields().collect::<Vec<_>>())
            .finish()
    }
}

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
            end: 0,
            base: None,
            class,
            extra: Value::Null,
            arrival,
        }
    }
    pub fn get(&self, f: Field) -> &Value {
        match self.slots[f as usize] {
            UNSET => self.base.as_deref().map_or(&NULL, |b| b.get(f)),
            i => self.values.get(usize::from(i)).unwrap_or(&NULL),
        }
    }
    /// An event stored as nothing but `base` (it reads as `base` does, with this class and
    /// arrival), with room for `own` values of its own: [`Event::push`] then sets the fields
    /// in which it differs. `base` must not itself be shared.
    ///
    /// For a builder that compares each field with `base` as it goes (the decoder, see
    /// [`Event::share`] for the rule it follows): the builder must not leave a field unset
    /// that `base` has, since the event would read `base`'s value of it.
    pub fn sharing(base: Arc<Event>, class: Class, arrival: Arrival, own: usize) -> Event {
        Event {
            base: Some(base),
            ..Event::with_capacity(class, arrival, own)
        }
    }
    /// Holds the stored values in an allocation of their exact size (as [`Event::share`]
    /// leaves them): for an event built with room to spare that is kept a long time.
    /// `Vec::shrink_to_fit` would not do: the allocator (mimalloc) keeps a block in place when
    /// it shrinks by less than half, as a heartbeat's 16 places for 9 values would.
    pub fn shrink_to_fit(&mut self) {
        if self.values.capacity() > self.values.len() {
            let mut exact = Vec::with_capacity(self.values.len());
            exact.append(&mut self.values);
            self.values = exact;
        }
    }
    /// The event this one reads its unset fields from, when it is shared.
    pub fn base(&self) -> Option<&Arc<Event>> {
        self.base.as_ref()
    }
    /// Sets field `f`, which comes after every field set so far (as the decoder sets
    /// them): the value is appended. Otherwise the same as [`Event::set`].
    pub fn push(&mut self, f: Field, v: Value) {
        let fi = f as usize;
        if fi >= usize::from(self.end) && !v.is_null() {
            self.slots[fi] = self.values.len() as u8;
            self.values.push(v);
            self.end = fi as u8 + 1;
        } else {
            self.set(f, v);
        }
    }

    /// Sets field `f` (null removes it).
    pub fn set(&mut self, f: Field, v: Value) {
        if v.is_null() && self.base.as_ref().is_some_and(|b| !b.get(f).is_null()) {
            // A shared event cannot hide a field of its base: it stops sharing.
            self.unshare();
        }
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
                self.end = self
                    .slots
                    .iter()
                    .rposition(|s| *s != UNSET)
                    .map_or(0, |p| p as u8 + 1);
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
        self.end = self.end.max(f as u8 + 1);
    }
    /// Every field's value in schema order ([`FIELD_COUNT`] of them, null where not set).
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> + '_ {
        ALL_FIELDS.iter().map(|&f| self.get(f))
    }
    /// Appends every field's value in schema order ([`FIELD_COUNT`] of them, null where not
    /// set) to `out`: [`Event::values`] cloned, without a lookup per field.
    pub fn clone_values_into(&self, out: &mut Vec<Value>) {
        out.reserve(FIELD_COUNT);
        let own = |slot: u8| self.values.get(usize::from(slot)).cloned();
        match &self.base {
            Some(base) if self.values.is_empty() => base.clone_values_into(out),
            Some(base) => {
                out.extend(
                    self.slots
                        .iter()
                        .zip(&base.slots)
                        .map(|(&s, &b)| match (s, b) {
                            (UNSET, UNSET) => Value::Null,
                            (UNSET, b) => {
                                base.values.get(usize::from(b)).cloned().unwrap_or_default()
                            }
                            (s, _) => own(s).unwrap_or_default(),
                        }),
                )
            }
            None => out.extend(self.slots.iter().map(|&s| match s {
                UNSET => Value::Null,
                s => own(s).unwrap_or_default(),
            })),
        }
    }
    /// The non-null fields with their values, in field order.
    pub fn fields(&self) -> impl Iterator<Item = (Field, &Value)> + '_ {
        ALL_FIELDS
            .iter()
            .map(|&f| (f, self.get(f)))
            .filter(|(_, v)| !v.is_null())
    }
    /// How many fields are non-null.
    pub fn field_count(&self) -> usize {
        match &self.base {
            None => self.values.len(),
            Some(_) => self.fields().count(),
        }
    }

    /// Stores this event as its differences from `base`, when it has every field `base` has
    /// and at most `max_own` of its values differ from `base`'s; returns whether it did
    /// (otherwise the event is unchanged). The event reads the same either way: only its
    /// memory changes (values equal to the base's are dropped and read from the base).
    ///
    /// `base` must not itself be shared (its own base is not followed).
    pub fn share(&mut self, base: &Arc<Event>, max_own: usize) -> bool {
        if self.base.is_some() || base.base.is_some() {
            return false;
        }
        // Bit `f` set: field `f` differs from the base's (compared once, used twice).
        let mut differs = 0u128;
        let mut own = 0;
        for (f, (mine, theirs)) in self.slots.iter().zip(&base.slots).enumerate() {
            let same = match (*mine, *theirs) {
                (UNSET, UNSET) => continue,
                (UNSET, _) => return false,
                (_, UNSET) => false,
                (i, j) => self.values.get(usize::from(i)) == base.values.get(usize::from(j)),
            };
            if !same {
                differs |= 1 << f;
                own += 1;
                if own > max_own {
                    return false;
                }
            }
        }
        // The differing values are taken out of the old array and the rest dropped where
        // they lie: moving every value out one by one cost more than comparing them.
        let mut old = std::mem::replace(&mut self.values, Vec::with_capacity(own));
        self.end = 0;
        for f in 0..FIELD_COUNT {
            let slot = self.slots[f];
            if slot == UNSET {
                continue;
            }
            if differs & (1 << f) != 0 {
                let v = old
                    .get_mut(usize::from(slot))
                    .map(std::mem::take)
                    .unwrap_or_default();
                self.slots[f] = self.values.len() as u8;
                self.values.push(v);
                self.end = f as u8 + 1;
            } else {
                self.slots[f] = UNSET;
            }
        }
        drop(old);
        self.base = Some(Arc::clone(base));
        true
    }

    /// Moves this event's values into a new base for others to [`share`](Event::share)
    /// with, leaving the event stored as nothing but that base (it reads the same), and
    /// returns the base; `None`, and the event unchanged, when it is already shared.
    pub fn make_base(&mut self) -> Option<Arc<Event>> {
        if self.base.is_some() {
            return None;
        }
        let base = Arc::new(Event {
            slots: self.slots,
            values: std::mem::take(&mut self.values),
            end: self.end,
            base: None,
            class: self.class,
            extra: self.extra.clone(),
            arrival: self.arrival,
        });
        self.slots = [UNSET; FIELD_COUNT];
        self.end = 0;
        self.base = Some(Arc::clone(&base));
        Some(base)
    }

    /// The values stored in this event itself (all of them unless it is shared).
    pub fn own_values(&self) -> &[Value] {
        &self.values
    }

    /// Whether this event reads some of its fields from a base ([`Event::share`]).
    pub fn is_shared(&self) -> bool {
        self.base.is_some()
    }

    /// Stores every field here again, dropping the base.
    fn unshare(&mut self) {
        if self.base.is_none() {
            return;
        }
        let fields: Vec<(Field, Value)> = self.fields().map(|(f, v)| (f, v.clone())).collect();
        self.base = None;
        self.slots = [UNSET; FIELD_COUNT];
        self.values = Vec::with_capacity(fields.len());
        self.end = 0;
        for (f, v) in fields {
            self.push(f, v);
        }
    }
    pub fn str(&self, f: Field) -> Option<&str> {
        self.get(f).as_str()
    }
    /// Field `f`'s text as a shared string (see [`Value::to_arc`]).
    pub fn arc(&self, f: Field) -> Option<Arc<str>> {
        self.get(f).to_arc()
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
        // push appends in field order and sets like set otherwise.
        let mut c = Event::empty(Class::Heartbeat, arrival());
        c.push(Field::Url, Value::text("v"));
        c.push(Field::Apikey, Value::text("k"));
        c.push(Field::Action, Value::Null);
        let mut d = Event::empty(Class::Heartbeat, arrival());
        d.set(Field::Apikey, Value::text("k"));
        d.set(Field::Url, Value::text("v"));
        assert_eq!(c, d);
        assert_eq!(c.values, d.values);
        c.set(Field::Url, Value::Null);
        c.push(Field::Url, Value::text("w"));
        assert_eq!(c.get(Field::Url), &Value::text("w"));
        assert_eq!(c.field_count(), 2);
        // The last field (slot 121) works like any other.
        let last = ALL_FIELDS[FIELD_COUNT - 1];
        a.set(last, Value::Int(1));
        assert_eq!(a.get(last), &Value::Int(1));
        assert_eq!(a.values().last(), Some(&Value::Int(1)));
    }

    #[test]
    fn a_shared_event_reads_like_the_original() {
        let mut page = Event::empty(Class::Pageview, arrival());
        page.set(Field::Action, Value::text("pageview"));
        page.set(Field::Url, Value::text("http://a.com/x"));
        page.set(Field::IpCity, Value::text("Boston"));
        page.set(Field::EventId, Value::text("e1"));
        let page = Arc::new(page);
        let mut beat = Event::empty(Class::Heartbeat, Arrival { object: 0, line: 2 });
        beat.set(Field::Action, Value::text("heartbeat"));
        beat.set(Field::Url, Value::text("http://a.com/x"));
        beat.set(Field::IpCity, Value::text("Boston"));
        beat.set(Field::EventId, Value::text("e2"));
        beat.set(Field::EngagedTimeInc, Value::Int(5));
        let original = beat.clone();
        // Three values differ (action, event id, engaged time): not with at most two.
        assert!(!beat.share(&page, 2));
        assert!(!beat.is_shared());
        assert_eq!(beat, original);
        let mut shared = beat;
        assert!(shared.share(&page, 3), "three own values");
        assert!(shared.is_shared());
        assert_eq!(
            shared.values.len(),
            3,
            "url and city are read from the page view"
        );
        assert_eq!(shared, original);
        assert_eq!(shared.field_count(), 5);
        assert_eq!(shared.get(Field::Url), &Value::text("http://a.com/x"));
        assert_eq!(
            shared.fields().collect::<Vec<_>>(),
            original.fields().collect::<Vec<_>>()
        );
        // Hiding a field of the base stops sharing; the event still reads right.
        shared.set(Field::IpCity, Value::Null);
        let mut expected = original.clone();
        expected.set(Field::IpCity, Value::Null);
        assert!(!shared.is_shared());
        assert_eq!(shared, expected);
        // An event without a field its base has is not shared.
        let mut bare = Event::empty(Class::Heartbeat, arrival());
        bare.set(Field::Url, Value::text("http://a.com/x"));
        assert!(!bare.share(&page, 10));
        // Nor against a shared base, nor twice.
        let mut copy = original.clone();
        assert!(copy.share(&page, 3));
        assert!(!copy.share(&page, 3));
        let other = Arc::new(copy);
        let mut again = original.clone();
        assert!(!again.share(&other, 10));
        // A base reads like the event it was made from, and so does the event.
        let base = again.make_base().expect("not shared");
        assert!(again.make_base().is_none());
        assert_eq!(*base, original);
        assert_eq!(again, original);
        assert!(again.own_values().is_empty());
        // Built against a base field by field (as the decoder does): only own values held.
        let mut built = Event::sharing(Arc::clone(&page), Class::Heartbeat, original.arrival, 3);
        built.push(Field::Action, Value::text("heartbeat"));
        built.push(Field::EventId, Value::text("e2"));
        built.push(Field::EngagedTimeInc, Value::Int(5));
        assert_eq!(built, original);
        assert_eq!(built.own_values().len(), 3);
        assert!(built.base().is_some_and(|b| Arc::ptr_eq(b, &page)));
        // Every form clones its values in schema order as `values` reads them.
        for e in [&original, &shared, &*other, &again, &built, &*page] {
            let mut dense = vec![Value::Int(7)];
            e.clone_values_into(&mut dense);
            let want: Vec<Value> = std::iter::once(Value::Int(7))
                .chain(e.values().cloned())
                .collect();
            assert_eq!(dense, want);
        }
    }

    #[test]
    fn recent_bases_keep_the_two_most_recently_used() {
        let base = |line| Arc::new(Event::empty(Class::Pageview, Arrival { object: 0, line }));
        let (a, b, c) = (base(1), base(2), base(3));
        let lines = |r: &RecentBases| r.iter().map(|e| e.arrival.line).collect::<Vec<_>>();
        let mut r = RecentBases::default();
        assert!(r.iter().next().is_none());
        r.used(&a);
        r.used(&b);
        assert_eq!(lines(&r), [2, 1]);
        r.used(&a);
        assert_eq!(lines(&r), [1, 2], "a held one moves to the front");
        r.used(&c);
        assert_eq!(
            lines(&r),
            [3, 1],
            "a new one takes the least recently used place"
        );
        assert!(r.iter().all(|e| !Arc::ptr_eq(e, &b)));
    }
}
