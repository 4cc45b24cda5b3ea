//! Dedupe by `event_id` within `dedupe_window` of the largest `ts_action` seen.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use dpl_core::Value;
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use crate::derive::HashMap;

/// Event ids with their `ts_action`, exact (no hashing-only set), evicted by time.
///
/// Only ids whose `ts_action` is within the window of the largest one registered count, and
/// ids out of the window are swept out of memory each time the window has moved on by an
/// eighth of itself, within a run as across runs: memory follows the traffic of the last
/// `dedupe_window` (and an eighth), not the length of the run.
///
/// A day of 5 million events keeps 5 million ids, so they are held compactly: an id in the
/// canonical UUID form (36 characters, lowercase hex and dashes, as DPL writes them) as its
/// 128 bits; any other id as its text.
pub(crate) struct Dedupe {
    window: i64,
    /// Largest `ts_action` registered (activity and bots).
    max: i64,
    uuids: HashMap<u128, i64>,
    others: HashMap<Arc<str>, i64>,
    /// The floor when ids were last swept.
    swept: i64,
}

impl Dedupe {
    pub(crate) fn new(window: i64) -> Dedupe {
        Dedupe {
            window,
            max: i64::MIN,
            uuids: HashMap::default(),
            others: HashMap::default(),
            swept: i64::MIN,
        }
    }

    fn floor(&self) -> i64 {
        self.max.saturating_sub(self.window)
    }

    /// Whether a copy of `id` was kept within the window (decided from timestamps, not
    /// from when ids were swept, so the answer does not depend on batch sizes); if not,
    /// remembers `id` at `ts`.
    pub(crate) fn check_and_register(&mut self, id: &Value, ts: i64) -> bool {
        let floor = self.floor();
        let text = id.as_str().unwrap_or_default();
        let duplicate = match uuid_bits(text) {
            Some(bits) => seen(self.uuids.entry(bits), floor, ts),
            None => seen(
                self.others
                    .entry(id.to_arc().unwrap_or_else(|| Arc::from(text))),
                floor,
                ts,
            ),
        };
        if !duplicate {
            self.max = self.max.max(ts);
        }
        duplicate
    }

    /// Forgets the ids that left the window, once it has moved on by an eighth of itself
    /// since the last time.
    pub(crate) fn evict(&mut self) {
        let floor = self.floor();
        if floor < self.swept.saturating_add(self.window / 8) {
            return;
        }
        self.uuids.retain(|_, ts| *ts >= floor);
        self.others.retain(|_, ts| *ts >= floor);
        self.swept = floor;
    }

    pub(crate) fn max(&self) -> i64 {
        self.max
    }
    pub(crate) fn set_max(&mut self, max: i64) {
        self.max = max;
    }
    /// Ids held in memory (within the window or not swept yet).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.uuids.len() + self.others.len()
    }
    /// The ids within the window with their `ts_action`, in id order: what the checkpoint
    /// keeps.
    pub(crate) fn entries(&self) -> DedupeIds {
        let floor = self.floor();
        // Sized once: a day holds millions of ids, and growing by doubling copied and
        // freshly faulted in the vector several times over.
        let mut uuids: Vec<(u128, i64)> = Vec::with_capacity(self.uuids.len());
        uuids.extend(
            self.uuids
                .iter()
                .filter(|(_, ts)| **ts >= floor)
                .map(|(k, ts)| (*k, *ts)),
        );
        uuids.sort_unstable();
        let mut others: Vec<(Arc<str>, i64)> = Vec::with_capacity(self.others.len());
        others.extend(
            self.others
                .iter()
                .filter(|(_, ts)| **ts >= floor)
                .map(|(k, ts)| (Arc::clone(k), *ts)),
        );
        others.sort_unstable();
        DedupeIds { uuids, others }
    }
    /// Restores the ids of a checkpoint.
    pub(crate) fn restore(&mut self, ids: DedupeIds) {
        self.uuids.reserve(ids.uuids.len());
        self.others.reserve(ids.others.len());
        for (bits, ts) in ids.uuids {
            self.uuids.insert(bits, ts);
            self.max = self.max.max(ts);
        }
        for (id, ts) in ids.others {
            self.others.insert(id, ts);
            self.max = self.max.max(ts);
        }
    }
    /// Approximate bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.uuids.len() * 32 + self.others.keys().map(|k| k.len() + 16 + 32).sum::<usize>()
    }
}

/// Whether the id of `entry` is held at `floor` or later; if not, holds it at `ts`.
fn seen<K>(entry: Entry<'_, K, i64>, floor: i64, ts: i64) -> bool {
    match entry {
        Entry::Occupied(o) if *o.get() >= floor => true,
        Entry::Occupied(mut o) => {
            o.insert(ts);
            false
        }
        Entry::Vacant(v) => {
            v.insert(ts);
            false
        }
    }
}

/// The ids a checkpoint keeps, in id order; serialized as the sequence of `(id, ts_action)`
/// with every id as its text.
#[derive(Default)]
pub(crate) struct DedupeIds {
    uuids: Vec<(u128, i64)>,
    others: Vec<(Arc<str>, i64)>,
}

impl DedupeIds {
    pub(crate) fn len(&self) -> usize {
        self.uuids.len() + self.others.len()
    }
    /// The ids as the checkpoint stores them.
    pub(crate) fn from_texts(ids: Vec<(Arc<str>, i64)>) -> DedupeIds {
        let mut out = DedupeIds::default();
        for (id, ts) in ids {
            match uuid_bits(&id) {
                Some(bits) => out.uuids.push((bits, ts)),
                None => out.others.push((id, ts)),
            }
        }
        out
    }
}

impl Serialize for DedupeIds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        let (mut u, mut o) = (self.uuids.iter().peekable(), self.others.iter().peekable());
        loop {
            let take_uuid = match (u.peek(), o.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((bits, _)), Some((text, _))) => {
                    uuid_text(*bits).as_slice().cmp(text.as_bytes()) == Ordering::Less
                }
            };
            if take_uuid {
                if let Some((bits, ts)) = u.next() {
                    let text = uuid_text(*bits);
                    let text = std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?;
                    seq.serialize_element(&(text, *ts))?;
                }
            } else if let Some((text, ts)) = o.next() {
                seq.serialize_element(&(&**text, *ts))?;
            }
        }
        seq.end()
    }
}

const UUID_DASHES: [usize; 4] = [8, 13, 18, 23];

/// The places of the first and the last 16 hex digits of the canonical UUID form.
const UUID_HIGH: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17];
const UUID_LOW: [usize; 16] = [
    19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
];

/// Per byte, its value as a lowercase hex digit, or `0xff`.
static HEX_DIGIT: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};

/// The 128 bits of an id in the canonical UUID form (32 lowercase hex digits in groups of
/// 8-4-4-4-12), whose text [`uuid_text`] gives back byte for byte; `None` for any other id.
/// The bits order as the texts do.
///
/// Digits are looked up in a table and checked once at the end: a branch per digit (is it
/// 0-9 or a-f?) went the wrong way for about half of a random id's digits.
fn uuid_bits(id: &str) -> Option<u128> {
    let b: &[u8; 36] = id.as_bytes().try_into().ok()?;
    if UUID_DASHES.iter().any(|&i| b.get(i) != Some(&b'-')) {
        return None;
    }
    let mut invalid = 0u8;
    let mut half = |places: &[usize; 16]| {
        places.iter().fold(0u64, |bits, &i| {
            let digit = b.get(i).map_or(0xff, |&c| HEX_DIGIT[usize::from(c)]);
            invalid |= digit;
            bits << 4 | u64::from(digit & 0xf)
        })
    };
    let (high, low) = (half(&UUID_HIGH), half(&UUID_LOW));
    (invalid & 0xf0 == 0).then_some(u128::from(high) << 64 | u128::from(low))
}

fn uuid_text(bits: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut shift = 128;
    for (i, c) in out.iter_mut().enumerate() {
        if UUID_DASHES.contains(&i) {
            continue;
        }
        shift -= 4;
        *c = HEX[((bits >> shift) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    fn seen(d: &mut Dedupe, id: &str, ts: i64) -> bool {
        d.check_and_register(&Value::str(id), ts)
    }

    #[test]
    fn ids_leave_memory_once_the_window_passes_them() {
        for uuids in [false, true] {
            // The same story with ids held as text and as UUID bits.
            let id = |s: &str| {
                if uuids {
                    format!("{:0>8}-0000-0000-0000-000000000000", s.as_bytes()[0])
                } else {
                    s.to_owned()
                }
            };
            let (a, b, c, d_) = (id("a"), id("b"), id("c"), id("d"));
            let mut d = Dedupe::new(2 * H);
            assert!(!seen(&mut d, &a, 0));
            assert!(!seen(&mut d, &b, H));
            d.evict();
            assert_eq!(d.len(), 2);
            assert!(seen(&mut d, &a, 5), "a copy within the window");
            // The largest ts moves to 2h + 1us: "a" (at 0) is out of the window, "b" is not.
            assert!(!seen(&mut d, &c, 2 * H + 1));
            assert!(seen(&mut d, &b, 0));
            d.evict();
            assert_eq!(d.len(), 2, "a swept within the run");
            // A copy of "a" arriving now is a new event (SPEC.md: its row shares a key, which
            // the sink counts); held out of the window until the window moves on by an eighth.
            assert!(!seen(&mut d, &a, 0));
            d.evict();
            assert_eq!(d.len(), 3);
            assert_eq!(d.entries().len(), 2, "the checkpoint keeps the window only");
            assert!(!seen(&mut d, &d_, 3 * H + 1));
            d.evict();
            assert!(!seen(&mut d, &b, H + 2), "b left the window");
            assert!(seen(&mut d, &c, 0));
            d.evict();
            assert_eq!(d.len(), 3, "a swept; b (again), c and d stay");
        }
    }

    #[test]
    fn uuid_ids_are_held_as_bits_and_give_back_their_text() {
        let id = "8672db75-fbd1-1bdb-3c25-89acc270e4a3";
        let bits = uuid_bits(id).expect("canonical");
        assert_eq!(&uuid_text(bits), id.as_bytes());
        for other in [
            "8672DB75-fbd1-1bdb-3c25-89acc270e4a3",
            "8672db75fbd1-1bdb-3c25-89acc270e4a3-",
            "8672db75-fbd1-1bdb-3c25-89acc270e4a",
            "8672db75-fbd1-1bdb-3c25-89acc270e4a3a",
            "8672db75-fbd1-1bdb-3c25-89acc270e4g3",
            "8672db75+fbd1-1bdb-3c25-89acc270e4a3",
        ] {
            assert_eq!(uuid_bits(other), None, "{other}");
        }
    }

    /// The naive reading of the canonical form: dashes at their places, the rest lowercase
    /// hex digits read as one number.
    fn naive_uuid_bits(id: &str) -> Option<u128> {
        let b = id.as_bytes();
        let shape = b.len() == 36
            && b.iter().enumerate().all(|(i, c)| {
                if UUID_DASHES.contains(&i) {
                    *c == b'-'
                } else {
                    c.is_ascii_digit() || (b'a'..=b'f').contains(c)
                }
            });
        shape
            .then(|| u128::from_str_radix(&id.replace('-', ""), 16).ok())
            .flatten()
    }

    proptest::proptest! {
        #[test]
        fn uuid_bits_reads_as_the_naive_parse(
            id in "[0-9a-fA-Fg-][0-9a-f-]{7}[-+][0-9a-f]{4}-[0-9a-f]{4}-[0-9a-fG]{4}-[0-9a-f]{11,13}",
            any in ".{0,40}",
        ) {
            for id in [&id, &any] {
                let bits = uuid_bits(id);
                proptest::prop_assert_eq!(bits, naive_uuid_bits(id), "{}", id);
                if let Some(bits) = bits {
                    proptest::prop_assert_eq!(&uuid_text(bits), id.as_bytes());
                }
            }
        }
    }

    #[test]
    fn entries_come_in_id_order() {
        let ids = [
            "b",
            "a",
            "ab",
            "ab\0",
            "ab\0c",
            "a\0x",
            "",
            "0123456789abcdefZ",
            "0123456789abcdefA",
            "0123456789abcdef",
            "\u{e9}t\u{e9}",
            "zz",
            "0123456789abcdeg",
            "01234567-89ab-cdef-0123-456789abcdef",
            "01234567-89ab-cdef-0123-456789abcdeF",
            "01234567-89ab-cdef-0123-456789abcdef0",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "00000000-0000-0000-0000-000000000000",
            "0123456789abcdef-",
            "a0000000-0000-0000-0000-000000000000",
        ];
        let mut d = Dedupe::new(i64::MAX);
        for (i, id) in ids.iter().enumerate() {
            assert!(!seen(&mut d, id, i as i64));
        }
        let stored = postcard::to_stdvec(&d.entries()).expect("encodes");
        let got: Vec<(String, i64)> = postcard::from_bytes(&stored).expect("decodes");
        let mut want: Vec<(String, i64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| ((*id).to_owned(), i as i64))
            .collect();
        want.sort();
        assert_eq!(got, want);
        // Restored, the same ids come out again.
        let texts = got.into_iter().map(|(k, ts)| (Arc::from(k), ts)).collect();
        let mut again = Dedupe::new(i64::MAX);
        again.restore(DedupeIds::from_texts(texts));
        assert_eq!(
            postcard::to_stdvec(&again.entries()).expect("encodes"),
            stored
        );
    }
}
