//! A small per-worker cache of text values, so repeated strings (`url_scheme`, `ua_*`,
//! `ip_country`, urls and titles of popular pages, ...) of one batch share one `Arc<str>`
//! instead of one allocation each. Nothing observable changes: values compare and print the
//! same. The cache is emptied for each batch, so strings handed on to other threads are
//! never touched by the decoder again (reference counts stay in one core's cache).
//!
//! Direct-mapped: each field has [`SLOTS`] slots, a string goes to the slot of its hash and
//! replaces what was there. So the cache is bounded (at most `SLOTS` strings of at most
//! [`MAX_LEN`] bytes per field: under 4 MiB per worker), needs no eviction bookkeeping, and
//! a field with mostly unique values costs one hash and compare per value. Fields known to
//! be unique per event, visitor or page view are not cached at all.

use std::sync::Arc;

use dpl_core::{FIELD_COUNT, Field, ShortText, Value};

/// Slots per field (a power of two).
const SLOTS: usize = 128;
/// Longer strings are not cached.
const MAX_LEN: usize = 256;

pub(crate) struct Interner {
    /// `FIELD_COUNT * SLOTS`, field-major.
    slots: Vec<Option<Arc<str>>>,
}

impl Interner {
    pub(crate) fn new() -> Interner {
        Interner {
            slots: vec![None; FIELD_COUNT * SLOTS],
        }
    }

    /// Forgets every cached string. The decoder calls it for each new batch, so it never
    /// touches the reference counts of strings already handed on (no cache line shared
    /// with the threads that consume earlier batches).
    pub(crate) fn clear(&mut self) {
        self.slots.fill(None);
    }

    /// `s` as a text value: inline when short (no allocation, nothing to share), else
    /// [`Interner::get`].
    pub(crate) fn value(&mut self, field: Field, s: &str) -> Value {
        match ShortText::new(s) {
            Some(t) => Value::Short(t),
            None => Value::Text(self.get(field, s)),
        }
    }

    /// `s` as an `Arc<str>`, shared with earlier equal values of `field` when cached.
    pub(crate) fn get(&mut self, field: Field, s: &str) -> Arc<str> {
        if s.len() > MAX_LEN || !cached(field) {
            return Arc::from(s);
        }
        let i = field as usize * SLOTS + (hash(s.as_bytes()) as usize & (SLOTS - 1));
        let Some(slot) = self.slots.get_mut(i) else {
            return Arc::from(s);
        };
        match slot {
            Some(a) if **a == *s => Arc::clone(a),
            _ => {
                let a: Arc<str> = Arc::from(s);
                *slot = Some(Arc::clone(&a));
                a
            }
        }
    }
}

/// Fields whose values repeat across events.
fn cached(field: Field) -> bool {
    !matches!(
        field,
        Field::EventId
            | Field::PageviewId
            | Field::PageloadId
            | Field::VideostartId
            | Field::VisitorSiteId
            | Field::VisitorNetworkId
            | Field::VisitorIp
    )
}

/// FxHash-style mixing, 8 bytes at a time; quality is ample for picking a slot.
fn hash(b: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        if let Some(dst) = w.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    // The low bits pick the slot: fold the well-mixed high bits down.
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_allocation_and_stay_equal() {
        let mut i = Interner::new();
        let a = i.get(Field::UrlScheme, "https");
        let b = i.get(Field::UrlScheme, "https");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*i.get(Field::UrlScheme, "http"), "http");
        // Another field does not share, unique fields and long strings are not cached.
        assert!(!Arc::ptr_eq(&a, &i.get(Field::RefScheme, "https")));
        let id = i.get(Field::EventId, "e1");
        assert!(!Arc::ptr_eq(&id, &i.get(Field::EventId, "e1")));
        let long = "x".repeat(MAX_LEN + 1);
        let l = i.get(Field::Url, &long);
        assert!(!Arc::ptr_eq(&l, &i.get(Field::Url, &long)));
        assert_eq!(*l, *long);
        // Many distinct values: every one comes back as itself (collisions replace).
        for n in 0..2000 {
            let s = format!("value-{n}");
            assert_eq!(&*i.get(Field::IpCity, &s), s);
        }
        assert_eq!(&*i.get(Field::UrlScheme, "https"), "https");
        // After `clear`, nothing is shared with what was handed out before.
        let before = i.get(Field::UrlScheme, "https");
        i.clear();
        let after = i.get(Field::UrlScheme, "https");
        assert!(!Arc::ptr_eq(&before, &after));
        assert_eq!(before, after);
        assert!(Arc::ptr_eq(&after, &i.get(Field::UrlScheme, "https")));
    }

    #[test]
    fn short_values_are_inline_and_long_ones_shared() {
        let mut i = Interner::new();
        assert!(matches!(
            i.value(Field::UrlScheme, "https"),
            Value::Short(_)
        ));
        let url = "https://example.com/2026/11/a-long-enough-path";
        let (Value::Text(a), Value::Text(b)) = (i.value(Field::Url, url), i.value(Field::Url, url))
        else {
            panic!("long text is shared text");
        };
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, url);
    }
}
