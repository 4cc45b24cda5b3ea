//! The decode stage: N blocking workers between the source and the sessionizer.

use std::sync::Arc;

use async_channel::{Receiver, Sender};
use dpl_core::{DecodedBatch, RawObject};

use crate::decoder::Decoder;
use crate::error::Error;
use crate::telemetry;

/// Runs `workers` (at least 1) blocking tasks, each looping: receive an object, decode it,
/// send its batches on. Returns `Ok` once `rx` is closed and drained and every batch is
/// sent; the senders of `tx` held here are dropped on return, which closes the output when
/// the caller holds no other.
///
/// If `tx` closes (the downstream stage is gone) the workers stop early, close `rx` so the
/// source stops sending too, and this returns [`Error::Closed`]. Batches of one object may
/// arrive interleaved with other objects' (`(object, seq)` orders them).
pub async fn run(
    decoder: Arc<Decoder>,
    workers: usize,
    rx: Receiver<RawObject>,
    tx: Sender<DecodedBatch>,
) -> Result<(), Error> {
    let handles: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (decoder, rx, tx) = (Arc::clone(&decoder), rx.clone(), tx.clone());
            tokio::task::spawn_blocking(move || worker(&decoder, &rx, &tx))
        })
        .collect();
    drop((rx, tx));
    let mut result = Ok(());
    for handle in handles {
        let outcome = handle
            .await
            .unwrap_or_else(|e| Err(Error::Worker(e.to_string())));
        // Keep the first failure, but a dead worker outranks a closed channel.
        match (&result, outcome) {
            (_, Ok(())) => {}
            (Ok(()), Err(e)) => result = Err(e),
            (Err(Error::Closed), Err(e @ Error::Worker(_))) => result = Err(e),
            (Err(_), Err(_)) => {}
        }
    }
    result
}

fn worker(
    decoder: &Decoder,
    rx: &Receiver<RawObject>,
    tx: &Sender<DecodedBatch>,
) -> Result<(), Error> {
    while let Ok(object) = rx.recv_blocking() {
        let mut closed = tx.is_closed();
        if !closed {
            decoder.decode_object(&object, &mut |batch| {
                if closed {
                    return;
                }
                telemetry::record(&batch);
                closed = tx.send_blocking(batch).is_err();
            });
        }
        if closed {
            rx.close();
            return Err(Error::Closed);
        }
    }
    Ok(())
}
