//! The source stage: fetch objects with bounded concurrency, hand them on in key order.

use std::sync::Arc;

use dpl_core::{ObjectMeta, RawObject, Source};
use futures_util::StreamExt;

use crate::error::Error;

/// Fetches `objects` (already numbered: `objects[i]` gets id `i`) with at most `concurrency`
/// requests in flight, and sends them to `tx` in that order, so at most `concurrency` objects
/// plus the channel's capacity are held in memory. Returns when every object is sent;
/// a fetch error, or a closed `tx`, ends it early with an `Err`.
///
/// `on_fetched` is called with each object's size after it was sent (progress, metrics).
pub async fn read_objects<S: Source>(
    source: Arc<S>,
    objects: Vec<ObjectMeta>,
    concurrency: usize,
    tx: async_channel::Sender<RawObject>,
    mut on_fetched: impl FnMut(&ObjectMeta),
) -> Result<(), ReadError<S::Error>> {
    let mut fetches = futures_util::stream::iter(objects.into_iter().enumerate())
        .map(|(i, meta)| {
            let source = source.clone();
            async move {
                let bytes = source.fetch(&meta).await;
                (i, meta, bytes)
            }
        })
        .buffered(concurrency.max(1));
    while let Some((i, meta, bytes)) = fetches.next().await {
        let bytes = bytes.map_err(ReadError::Source)?;
        let id = u32::try_from(i).map_err(|_| ReadError::Pipeline(Error::Closed))?;
        let raw = RawObject {
            id,
            key: meta.key.as_str().into(),
            bytes,
        };
        tx.send(raw)
            .await
            .map_err(|_| ReadError::Pipeline(Error::Closed))?;
        on_fetched(&meta);
    }
    Ok(())
}

/// Why [`read_objects`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Source(E),
    #[error(transparent)]
    Pipeline(Error),
}
