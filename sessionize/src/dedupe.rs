//! Dedupe by `event_id` within `dedupe_window` of the largest `ts_action` seen.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::derive::HashMap;

/// Event ids with their `ts_action`, exact (no hashing-only set), evicted by time.
///
/// Only ids whose `ts_action` is within the window of the largest one registered are kept,
/// within a run as across runs, so memory follows the traffic of the last `dedupe_window`,
/// not the length of the run.
pub(crate) struct Dedupe {
    window: i64,
    /// Largest `ts_action` registered (activity and bots).
    max: i64,
    ids: HashMap<Arc<str>, i64>,
    by_ts: BinaryHeap<Reverse<(i64, Arc<str>)>>,
}

impl Dedupe {
    pub(crate) fn new(window: i64) -> Dedupe {
        Dedupe {
            window,
            max: i64::MIN,
            ids: HashMap::default(),
            by_ts: BinaryHeap::new(),
        }
    }

    fn floor(&self) -> i64 {
        self.max.saturating_sub(self.window)
    }

    /// Whether a copy of `id` was kept within the window (decided from timestamps, not
    /// from when eviction ran, so the answer does not depend on batch sizes).
    pub(crate) fn is_duplicate(&self, id: &str) -> bool {
        self.ids.get(id).is_some_and(|&ts| ts >= self.floor())
    }

    /// Remembers a kept event.
    pub(crate) fn register(&mut self, id: Arc<str>, ts: i64) {
        self.ids.insert(id.clone(), ts);
        self.by_ts.push(Reverse((ts, id)));
        self.max = self.max.max(ts);
    }

    /// Forgets the ids that left the window.
    pub(crate) fn evict(&mut self) {
        let floor = self.floor();
        while let Some(Reverse((ts, _))) = self.by_ts.peek() {
            if *ts >= floor {
                break;
            }
            let Some(Reverse((ts, id))) = self.by_ts.pop() else {
                break;
            };
            // A later copy registered again (after leaving the window) has another ts.
            if self.ids.get(&id) == Some(&ts) {
                self.ids.remove(&id);
            }
        }
    }

    pub(crate) fn max(&self) -> i64 {
        self.max
    }
    pub(crate) fn set_max(&mut self, max: i64) {
        self.max = max;
    }
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
    /// The remembered ids with their `ts_action`, in id order (the order of the checkpoint,
    /// so that sorting them again there is a linear check). Sorted by the first 16 bytes as
    /// one integer, then by the whole id on ties: no string is read in most comparisons.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Arc<str>, i64)> {
        let mut v: Vec<(u128, &Arc<str>, i64)> =
            self.ids.iter().map(|(k, &ts)| (prefix(k), k, ts)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        v.into_iter().map(|(_, k, ts)| (k, ts))
    }
    /// Approximate bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.ids.keys().map(|k| k.len() + 16 + 24 + 8 + 24).sum()
    }
}

/// The first 16 bytes of `id`, zero-padded, as a big-endian integer: when two ids' prefixes
/// differ, they order the ids as their bytes do (a shorter id is padded with zeros, which
/// sort first, as a prefix does).
fn prefix(id: &str) -> u128 {
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(id.as_bytes()) {
        *d = *s;
    }
    u128::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    #[test]
    fn ids_leave_memory_once_the_window_passes_them() {
        let mut d = Dedupe::new(2 * H);
        d.register(Arc::from("a"), 0);
        d.register(Arc::from("b"), H);
        d.evict();
        assert_eq!(d.len(), 2);
        assert!(d.is_duplicate("a"));
        // The largest ts moves to 2h + 1us: "a" (at 0) is out of the window, "b" is not.
        d.register(Arc::from("c"), 2 * H + 1);
        assert!(
            !d.is_duplicate("a"),
            "out of the window before eviction ran"
        );
        assert!(d.is_duplicate("b"));
        d.evict();
        assert_eq!(d.len(), 2, "a evicted within the run");
        // A copy of "a" arriving now is a new event (SPEC.md: its row shares a key, which
        // the sink counts); registered, it is out of the window at once and evicted again.
        d.register(Arc::from("a"), 0);
        assert!(!d.is_duplicate("a"));
        d.evict();
        assert_eq!(d.len(), 2);
        d.register(Arc::from("d"), 3 * H + 1);
        d.evict();
        assert!(!d.is_duplicate("b"));
        assert!(d.is_duplicate("c"));
        assert_eq!(d.len(), 2, "b left, c and d stay");
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
        ];
        let mut d = Dedupe::new(i64::MAX);
        for (i, id) in ids.iter().enumerate() {
            d.register(Arc::from(*id), i as i64);
        }
        let got: Vec<(&str, i64)> = d.entries().map(|(k, ts)| (&**k, ts)).collect();
        let mut want: Vec<(&str, i64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as i64))
            .collect();
        want.sort();
        assert_eq!(got, want);
    }
}
