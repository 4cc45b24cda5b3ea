//! Dedupe by `event_id` within `dedupe_window` of the largest `ts_action` seen.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// What [`Dedupe::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not seen within the window: keep it.
    New,
    /// A copy was seen within the window: drop it.
    Duplicate,
    /// A copy was kept earlier in this run but has left the window: the rows would share a
    /// primary key; drop it and count a key conflict.
    Conflict,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    ts: i64,
    /// Registered in this run (kept until the run ends, to detect key conflicts).
    this_run: bool,
}

/// Event ids with their `ts_action`, exact (no hashing-only set), evicted by time.
pub(crate) struct Dedupe {
    window: i64,
    /// Largest `ts_action` registered (activity and bots).
    max: i64,
    ids: HashMap<Arc<str>, Entry>,
    by_ts: BinaryHeap<Reverse<(i64, Arc<str>)>>,
}

impl Dedupe {
    pub(crate) fn new(window: i64) -> Dedupe {
        Dedupe {
            window,
            max: i64::MIN,
            ids: HashMap::new(),
            by_ts: BinaryHeap::new(),
        }
    }

    fn floor(&self) -> i64 {
        self.max.saturating_sub(self.window)
    }

    /// Whether `id` was seen (decided from timestamps, not from when eviction ran, so the
    /// answer does not depend on batch sizes).
    pub(crate) fn check(&self, id: &str) -> Seen {
        match self.ids.get(id) {
            Some(e) if e.ts >= self.floor() => Seen::Duplicate,
            Some(e) if e.this_run => Seen::Conflict,
            _ => Seen::New,
        }
    }

    /// Remembers a kept event.
    pub(crate) fn register(&mut self, id: &str, ts: i64, this_run: bool) {
        let id: Arc<str> = Arc::from(id);
        self.ids.insert(id.clone(), Entry { ts, this_run });
        self.by_ts.push(Reverse((ts, id)));
        self.max = self.max.max(ts);
    }

    /// Forgets ids that left the window, except those registered in this run.
    pub(crate) fn evict(&mut self) {
        let floor = self.floor();
        while let Some(Reverse((ts, _))) = self.by_ts.peek() {
            if *ts >= floor {
                break;
            }
            let Some(Reverse((ts, id))) = self.by_ts.pop() else {
                break;
            };
            if let Some(e) = self.ids.get(&id)
                && e.ts == ts
                && !e.this_run
            {
                self.ids.remove(&id);
            }
        }
    }

    /// End of run: forgets everything out of the window; the rest becomes "earlier run".
    pub(crate) fn end_run(&mut self) {
        let floor = self.floor();
        self.ids.retain(|_, e| e.ts >= floor);
        for e in self.ids.values_mut() {
            e.this_run = false;
        }
        self.by_ts = self
            .ids
            .iter()
            .map(|(id, e)| Reverse((e.ts, id.clone())))
            .collect();
    }

    pub(crate) fn max(&self) -> i64 {
        self.max
    }
    pub(crate) fn set_max(&mut self, max: i64) {
        self.max = max;
    }
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Arc<str>, i64)> {
        self.ids.iter().map(|(k, e)| (k, e.ts))
    }
    /// Approximate bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.ids.keys().map(|k| k.len() + 16 + 24 + 8 + 24).sum()
    }
}
