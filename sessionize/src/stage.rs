//! The sessionize stage: restores arrival order and runs the sessionizer on a blocking
//! thread.

use std::cell::Cell;
use std::collections::BTreeMap;

use dpl_core::{DecodedBatch, RowBatch};

use crate::checkpoint::Checkpoint;
use crate::error::Error;
use crate::sessionizer::{SessionizeStats, Sessionizer};

/// Receives `DecodedBatch`es, possibly out of order (parallel decoders), restores arrival
/// order by `(object, seq)` (objects numbered 0.. in key order, each ending with `last`),
/// runs the sessionizer on a blocking thread and sends its rows to `tx`.
///
/// Returns when `rx` is closed and drained; the sender side of `tx` is dropped on return.
/// An error means the run is incomplete: a batch is missing, the row channel closed, or the
/// task failed; nothing of the run may be committed then.
pub async fn run(
    sessionizer: Sessionizer,
    run_id: String,
    rx: async_channel::Receiver<DecodedBatch>,
    tx: async_channel::Sender<RowBatch>,
) -> Result<(Checkpoint, SessionizeStats), Error> {
    tokio::task::spawn_blocking(move || run_blocking(sessionizer, &run_id, &rx, &tx))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
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
    let mut pending: BTreeMap<(u32, u32), DecodedBatch> = BTreeMap::new();
    let mut next = (0u32, 0u32);
    while let Ok(batch) = rx.recv_blocking() {
        let at = (batch.object, batch.seq);
        if at < next || pending.contains_key(&at) {
            return Err(Error::DuplicateBatch {
                object: at.0,
                seq: at.1,
            });
        }
        pending.insert(at, batch);
        while let Some(b) = pending.remove(&next) {
            next = if b.last {
                (next.0.saturating_add(1), 0)
            } else {
                (next.0, next.1.saturating_add(1))
            };
            s.push(b, &mut send);
        }
        if closed.get() {
            return Err(Error::OutputClosed);
        }
    }
    if !pending.is_empty() {
        return Err(Error::MissingBatch {
            object: next.0,
            seq: next.1,
            pending: pending.len(),
        });
    }
    let result = s.finish(run_id, &mut send);
    if closed.get() {
        return Err(Error::OutputClosed);
    }
    record(&result.1);
    Ok(result)
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
