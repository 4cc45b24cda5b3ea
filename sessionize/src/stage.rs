//! The sessionize stage: restores arrival order and runs the sessionizer on blocking
//! threads.
//!
//! With one shard, everything runs on one thread. With `n` shards:
//!
//! ```text
//! decoded batches --> router: reorder, gate --> shard 0 --\
//!   (any order)       (arrival order)         shard 1 ----> collector --> row batches
//!                                             ...      --/   (content totals)
//! ```
//!
//! The router sends every shard its part of every batch (possibly empty), and each shard
//! answers every part with its rows and a closing message carrying its content delta; the
//! collector takes the shards' answers in shard order, batch by batch. So the output order
//! depends only on the input and the number of shards, never on thread timing, and the
//! run end keeps its steps across shards: every shard's open sessions, then every shard's
//! late sessions, withdrawals and user rows, then the content and campaign rows.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use dpl_core::{DecodedBatch, RowBatch};

use crate::checkpoint::Checkpoint;
use crate::error::Error;
use crate::gate::{Gate, Routed};
use crate::sessionizer::{Content, SessionizeStats, Sessionizer, end_of_run};
use crate::shard::{Shard, ShardEnd};
use crate::state::ContentTotals;

/// Receives `DecodedBatch`es, possibly out of order (parallel decoders), restores arrival
/// order by `(object, seq)` (objects numbered 0.. in key order, each ending with `last`),
/// runs the sessionizer (its shards on threads of their own, see [`Sessionizer::sharded`])
/// and sends its rows to `tx`.
///
/// Returns when `rx` is closed and drained; the sender side of `tx` is dropped on return.
/// An error means the run is incomplete: a batch is missing, the row channel closed, or a
/// task failed; nothing of the run may be committed then.
pub async fn run(
    sessionizer: Sessionizer,
    run_id: String,
    rx: async_channel::Receiver<DecodedBatch>,
    tx: async_channel::Sender<RowBatch>,
) -> Result<(Checkpoint, SessionizeStats), Error> {
    let result = if sessionizer.shards.len() <= 1 {
        tokio::task::spawn_blocking(move || run_blocking(sessionizer, &run_id, &rx, &tx))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    } else {
        run_sharded(sessionizer, &run_id, rx, tx).await
    };
    if let Ok((_, stats)) = &result {
        record(stats);
    }
    result
}

/// Restores arrival order: feeds `f` every batch in `(object, seq)` order.
struct Reorder {
    pending: BTreeMap<(u32, u32), DecodedBatch>,
    next: (u32, u32),
}

impl Reorder {
    fn new() -> Reorder {
        Reorder {
            pending: BTreeMap::new(),
            next: (0, 0),
        }
    }

    fn accept(
        &mut self,
        batch: DecodedBatch,
        f: &mut dyn FnMut(DecodedBatch) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let at = (batch.object, batch.seq);
        if at < self.next || self.pending.contains_key(&at) {
            return Err(Error::DuplicateBatch {
                object: at.0,
                seq: at.1,
            });
        }
        self.pending.insert(at, batch);
        while let Some(b) = self.pending.remove(&self.next) {
            self.next = if b.last {
                (self.next.0.saturating_add(1), 0)
            } else {
                (self.next.0, self.next.1.saturating_add(1))
            };
            f(b)?;
        }
        Ok(())
    }

    fn end(&self) -> Result<(), Error> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(Error::MissingBatch {
                object: self.next.0,
                seq: self.next.1,
                pending: self.pending.len(),
            })
        }
    }
}

fn run_blocking(
    mut s: Sessionizer,
    run_id: &str,
    rx: &async_channel::Receiver<DecodedBatch>,
    tx: &async_channel::Sender<RowBatch>,
) -> Result<(Checkpoint, SessionizeStats), Error> {
    let closed = Cell::new(false);
    let mut send = |rb: RowBatch| {
        if !closed.get() && tx.send_blocking(rb).is_err() {
            closed.set(true);
        }
    };
    let mut order = Reorder::new();
    while let Ok(batch) = rx.recv_blocking() {
        order.accept(batch, &mut |b| {
            s.push(b, &mut send);
            Ok(())
        })?;
        if closed.get() {
            return Err(Error::OutputClosed);
        }
    }
    order.end()?;
    let result = s.finish(run_id, &mut send);
    if closed.get() {
        return Err(Error::OutputClosed);
    }
    Ok(result)
}

/// Router to shard.
enum ToShard {
    Batch(Routed),
    /// The input is complete: run the run-end steps.
    Finish,
}

/// Shard to collector: rows, then one closing message per step.
enum FromShard {
    Rows(RowBatch),
    /// The end of a batch, or of the late step, with what it added to content.
    Step(ContentTotals),
    /// The end of the open-sessions step, with the open sessions' content (an overlay).
    Open(ContentTotals),
    /// The shard's part of the state.
    End(Box<ShardEnd>),
}

/// Batches queued per shard, each way.
const SHARD_QUEUE: usize = 4;

async fn run_sharded(
    sessionizer: Sessionizer,
    run_id: &str,
    rx: async_channel::Receiver<DecodedBatch>,
    tx: async_channel::Sender<RowBatch>,
) -> Result<(Checkpoint, SessionizeStats), Error> {
    let (gate, shards, content, settings) = sessionizer.into_parts();
    let mut to_shards = Vec::with_capacity(shards.len());
    let mut from_shards = Vec::with_capacity(shards.len());
    let mut workers = Vec::with_capacity(shards.len());
    for shard in shards {
        let (in_tx, in_rx) = sync_channel::<ToShard>(SHARD_QUEUE);
        let (out_tx, out_rx) = sync_channel::<FromShard>(SHARD_QUEUE * 4);
        to_shards.push(in_tx);
        from_shards.push(out_rx);
        workers.push(tokio::task::spawn_blocking(move || {
            shard_loop(shard, &in_rx, &out_tx)
        }));
    }
    let router = tokio::task::spawn_blocking(move || route(gate, &rx, &to_shards));
    let collector = tokio::task::spawn_blocking(move || collect(content, &from_shards, &tx));
    let task = |e: tokio::task::JoinError| Error::Task(e.to_string());
    let routed = router.await.map_err(task)?;
    let collected = collector.await.map_err(task)?;
    for w in workers {
        w.await.map_err(task)?;
    }
    // The router's error says why the shards stopped early; report it first.
    let gate = routed?;
    let (content, ends) = collected?;
    Ok(end_of_run(run_id, settings, gate, ends, content))
}

/// The router: reorders, runs the gate and hands every shard its part of every batch.
fn route(
    mut gate: Gate,
    rx: &async_channel::Receiver<DecodedBatch>,
    shards: &[SyncSender<ToShard>],
) -> Result<Gate, Error> {
    let mut routed: Vec<Routed> = shards.iter().map(|_| Routed::default()).collect();
    let mut order = Reorder::new();
    while let Ok(batch) = rx.recv_blocking() {
        order.accept(batch, &mut |b| {
            gate.route(b, &mut routed);
            for (tx, part) in shards.iter().zip(&mut routed) {
                tx.send(ToShard::Batch(std::mem::take(part)))
                    .map_err(|_| Error::OutputClosed)?;
            }
            Ok(())
        })?;
    }
    order.end()?;
    for tx in shards {
        tx.send(ToShard::Finish).map_err(|_| Error::OutputClosed)?;
    }
    Ok(gate)
}

/// A shard's thread. Returns quietly when a channel closes: the router or the collector
/// says why.
fn shard_loop(mut shard: Shard, rx: &Receiver<ToShard>, tx: &SyncSender<FromShard>) {
    let closed = Cell::new(false);
    let mut send = |rb: RowBatch| {
        if !closed.get() && tx.send(FromShard::Rows(rb)).is_err() {
            closed.set(true);
        }
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            ToShard::Batch(mut part) => {
                shard.process(&mut part, &mut send);
                let delta = shard.take_delta();
                if closed.get() || tx.send(FromShard::Step(delta)).is_err() {
                    return;
                }
            }
            ToShard::Finish => {
                let open = shard.finish_open(&mut send);
                if closed.get() || tx.send(FromShard::Open(open)).is_err() {
                    return;
                }
                let late = shard.finish_late(&mut send);
                if closed.get() || tx.send(FromShard::Step(late)).is_err() {
                    return;
                }
                let _ = tx.send(FromShard::End(Box::new(shard.into_end())));
                return;
            }
        }
    }
}

/// The collector: forwards the shards' rows in shard order, step by step, folds their
/// content deltas, then emits the run-end content and campaign rows.
fn collect(
    mut content: Content,
    shards: &[Receiver<FromShard>],
    tx: &async_channel::Sender<RowBatch>,
) -> Result<(Content, Vec<ShardEnd>), Error> {
    let closed = Cell::new(false);
    let mut send = |rb: RowBatch| {
        if !closed.get() && tx.send_blocking(rb).is_err() {
            closed.set(true);
        }
    };
    let mut ends = Vec::with_capacity(shards.len());
    while ends.len() < shards.len() {
        for rx in shards {
            loop {
                match rx.recv() {
                    Ok(FromShard::Rows(rb)) => send(rb),
                    Ok(FromShard::Step(delta)) => {
                        content.state.fold(delta, false);
                        break;
                    }
                    Ok(FromShard::Open(delta)) => {
                        content.state.fold(delta, true);
                        break;
                    }
                    Ok(FromShard::End(end)) => {
                        ends.push(*end);
                        break;
                    }
                    // The router stopped (its error is the one to report) or a shard failed.
                    Err(_) => return Err(Error::Task("a sessionize shard stopped early".into())),
                }
                if closed.get() {
                    return Err(Error::OutputClosed);
                }
            }
        }
        if closed.get() {
            return Err(Error::OutputClosed);
        }
    }
    content.finish(&mut send);
    if closed.get() {
        return Err(Error::OutputClosed);
    }
    Ok((content, ends))
}

/// Run counters as metrics (`dpl_sessionize_*`).
fn record(stats: &SessionizeStats) {
    metrics::counter!("dpl_sessionize_duplicates_total").increment(stats.duplicates);
    metrics::counter!("dpl_sessionize_stragglers_total").increment(stats.stragglers);
    metrics::counter!("dpl_sessionize_late_sessions_total").increment(stats.late_sessions);
    metrics::counter!("dpl_sessionize_withdrawn_keys_total").increment(stats.withdrawn);
    metrics::counter!("dpl_sessionize_user_daily_too_old_total")
        .increment(stats.user_daily_too_old);
    for (table, n) in &stats.rows {
        metrics::counter!("dpl_sessionize_rows_total", "table" => table.name()).increment(*n);
    }
    metrics::gauge!("dpl_sessionize_open_sessions").set(stats.open_sessions as f64);
    metrics::gauge!("dpl_sessionize_users").set(stats.users as f64);
    metrics::gauge!("dpl_sessionize_state_bytes").set(stats.state_bytes as f64);
}
