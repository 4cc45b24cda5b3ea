//! The gate: the decisions that need arrival order across every visitor, taken before the
//! split by visitor (dedupe, the watermark and with it which events are stragglers).

use std::hash::BuildHasher;

use dpl_core::{Class, DecodedBatch, ErrorRow, Event, Field};

use crate::dedupe::Dedupe;

/// What the gate made of an event on its way to its visitor's shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// An on-time activity event, with the watermark just after it.
    OnTime(i64),
    /// An activity event more than `allowed_lateness` behind the watermark.
    Straggler,
    Bot,
}

/// What one shard gets of one decoded batch, in arrival order: the events, and beside
/// them what the gate made of each. With one shard the batch's events are passed on where
/// they lie (a duplicate is taken out of them), not moved one by one.
#[derive(Default)]
pub(crate) struct Routed {
    pub errors: Vec<ErrorRow>,
    pub events: Vec<Event>,
    /// One per event of `events`.
    pub routes: Vec<Route>,
    /// The watermark after the whole batch (other shards' events move it too).
    pub watermark: i64,
}

/// Dedupe and watermark over the whole input, in arrival order.
pub(crate) struct Gate {
    pub(crate) dedupe: Dedupe,
    lateness: i64,
    /// Largest `ts_action` of the activity events so far (across runs); `i64::MIN` if none.
    pub(crate) watermark: i64,
    pub(crate) duplicates: u64,
    pub(crate) stragglers: u64,
}

/// The seed of the visitor hash: fixed, so a visitor goes to the same shard in every
/// process and the output order is reproducible.
const SHARD_SEED: u64 = 0x6470_6c5f_7368_6172;

/// The shard of the visitor `(apikey, visitor_site_id)` among `n`.
pub(crate) fn shard_of(apikey: &str, visitor_site_id: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let h = foldhash::fast::FixedState::with_seed(SHARD_SEED).hash_one((apikey, visitor_site_id));
    // The remainder is below `n`, so it fits.
    (h % n as u64) as usize
}

impl Gate {
    pub(crate) fn new(dedupe_window: i64, lateness: i64) -> Gate {
        Gate {
            dedupe: Dedupe::new(dedupe_window),
            lateness,
            watermark: i64::MIN,
            duplicates: 0,
            stragglers: 0,
        }
    }

    /// Splits a batch over `out` (one entry per shard): duplicates dropped and counted,
    /// every other event classified and sent to its visitor's shard, error rows to the
    /// shard of the object.
    pub(crate) fn route(&mut self, batch: DecodedBatch, out: &mut [Routed]) {
        let n = out.len();
        if n == 0 {
            return;
        }
        if !batch.errors.is_empty()
            && let Some(r) = out.get_mut(batch.object as usize % n)
        {
            r.errors.extend(batch.errors);
        }
        match out {
            [only] if only.events.is_empty() => {
                let mut events = batch.events;
                events.retain(|ev| match self.decide(ev) {
                    Some(route) => {
                        only.routes.push(route);
                        true
                    }
                    None => false,
                });
                only.events = events;
            }
            _ => {
                for ev in batch.events {
                    let Some(route) = self.decide(&ev) else {
                        continue;
                    };
                    let shard = shard_of(ev.apikey(), ev.visitor_site_id(), n);
                    if let Some(r) = out.get_mut(shard) {
                        r.events.push(ev);
                        r.routes.push(route);
                    }
                }
            }
        }
        self.dedupe.evict();
        for r in out.iter_mut() {
            r.watermark = self.watermark;
        }
    }

    /// Dedupes `ev` (`None`: a duplicate, counted) and says where it goes, moving the
    /// watermark.
    fn decide(&mut self, ev: &Event) -> Option<Route> {
        let ts = ev.ts_action();
        if self.dedupe.check_and_register(ev.get(Field::EventId), ts) {
            self.duplicates += 1;
            return None;
        }
        Some(if ev.class == Class::Bot {
            Route::Bot
        } else if ts < self.watermark.saturating_sub(self.lateness) {
            self.stragglers += 1;
            Route::Straggler
        } else {
            self.watermark = self.watermark.max(ts);
            Route::OnTime(self.watermark)
        })
    }
}
