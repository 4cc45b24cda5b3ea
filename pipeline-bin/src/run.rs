//! One run: list, filter by the ledger, then source -> decode -> sessionize -> sink over
//! bounded channels, commit, and make the checkpoint current.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dpl_core::{DayRange, DecodeStats, DecodedBatch, ErrorReason, ObjectMeta, Schema, Source, Table};
use dpl_decode::Decoder;
use dpl_sessionize::{Checkpoint, SessionizeStats, Sessionizer};
use dpl_sink::{LoadStats, LoadedObject, RunRecord, Sink};
use dpl_source::LocalSource;

use crate::config::{Config, SourceKind};

/// What a run did, for the summary.
#[derive(Debug, Default)]
pub struct Outcome {
    pub run_id: String,
    pub range: Option<(jiff::civil::Date, jiff::civil::Date)>,
    pub objects_listed: usize,
    pub objects_skipped: usize,
    pub objects_read: usize,
    pub bytes_read: u64,
    pub decode: DecodeStats,
    pub errors: BTreeMap<ErrorReason, u64>,
    pub sessionize: SessionizeStats,
    pub load: LoadStats,
    pub elapsed: Duration,
}

/// Runs the pipeline once with `config`.
pub async fn run(config: Config) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let started_at = jiff::Timestamp::now();
    let (start, end) = config.day_range_bounds();
    let range = DayRange { start, end };
    let run_id = new_run_id(started_at);
    let schema = Arc::new(Schema::new(&config.extra_data_column)?);

    let decoder = Arc::new(Decoder::new(config.decode.clone()).context("decode settings")?);
    let checkpoint_path = config.checkpoint_path();
    let checkpoint = Checkpoint::load(&checkpoint_path)?;
    let sessionizer = Sessionizer::new(config.sessionize.clone(), schema.clone(), checkpoint)?;
    let mut sink = Sink::open(&config.sink, schema.clone()).await?;

    let source = match config.source.kind {
        SourceKind::Local => Arc::new(LocalSource::new(&config.source.dir)?),
    };
    let listed = source.list(range).await?;
    let loaded = sink.loaded_objects().await?;
    let mut to_read = Vec::new();
    let mut skipped = 0;
    for object in &listed {
        match loaded.get(&object.key) {
            Some(etag) if *etag == object.etag => skipped += 1,
            Some(etag) if !config.reload_changed => bail!(
                "object {} changed since it was loaded (ETag {} then, {} now): set \
reload_changed = true (DPL_RELOAD_CHANGED=true) to load it again",
                object.key,
                etag,
                object.etag
            ),
            _ => to_read.push(object.clone()),
        }
    }
    let mut outcome = Outcome {
        run_id: run_id.clone(),
        range: Some((start, end)),
        objects_listed: listed.len(),
        objects_skipped: skipped,
        objects_read: to_read.len(),
        ..Outcome::default()
    };
    if to_read.is_empty() {
        tracing::info!("nothing new to load in {start}..={end}");
        outcome.elapsed = started.elapsed();
        return Ok(outcome);
    }
    outcome.bytes_read = to_read.iter().map(|o| o.size).sum();

    let cap = config.pipeline.channel_batches;
    let (raw_tx, raw_rx) = async_channel::bounded(config.source.concurrency.max(1));
    let (dec_tx, dec_rx) = async_channel::bounded::<DecodedBatch>(cap);
    let (tap_tx, tap_rx) = async_channel::bounded::<DecodedBatch>(cap);
    let (row_tx, row_rx) = async_channel::bounded(cap);

    sink.begin(&run_id).await?;

    let reader = tokio::spawn(dpl_source::read_objects(
        source.clone(),
        to_read.clone(),
        config.source.concurrency,
        raw_tx,
        |_| {},
    ));
    let decoders = tokio::spawn(dpl_decode::run(
        decoder,
        config.pipeline.decode_workers,
        raw_rx,
        dec_tx,
    ));
    let objects = to_read.len();
    let tap = tokio::spawn(tap_stats(dec_rx, tap_tx, objects));
    let sessionize = tokio::spawn(dpl_sessionize::run(sessionizer, run_id.clone(), tap_rx, row_tx));
    let written = dpl_sink::run(&mut sink, row_rx).await;

    // Join upstream first: the first real error explains a closed channel downstream.
    reader.await.context("source task")?.context("reading objects")?;
    decoders.await.context("decode task")?.context("decoding")?;
    let (decode_stats, per_object, errors) = tap.await.context("stats task")?;
    let (checkpoint, sessionize_stats) =
        sessionize.await.context("sessionize task")?.context("sessionizing")?;
    written.context("writing rows")?;

    // Commit point: the load transaction, then the checkpoint (issue 4 makes the pair
    // crash-safe; until then a crash between the two is repaired by re-running the day).
    let pending = config.state_dir.join("checkpoint.pending");
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state_dir {}", config.state_dir.display()))?;
    checkpoint.save(&pending)?;
    let record = RunRecord {
        run_id: run_id.clone(),
        started_at,
        finished_at: jiff::Timestamp::now(),
        objects: ledger_rows(&to_read, &per_object),
        summary_json: summary_json(&decode_stats, &sessionize_stats),
    };
    let load = sink.commit(&record).await?;
    std::fs::rename(&pending, &checkpoint_path)
        .with_context(|| format!("making {} current", checkpoint_path.display()))?;

    outcome.decode = decode_stats;
    outcome.errors = errors;
    outcome.sessionize = sessionize_stats;
    outcome.load = load;
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// Forwards decoded batches unchanged while summing their counters per object and per run.
async fn tap_stats(
    rx: async_channel::Receiver<DecodedBatch>,
    tx: async_channel::Sender<DecodedBatch>,
    objects: usize,
) -> (DecodeStats, Vec<u64>, BTreeMap<ErrorReason, u64>) {
    let mut total = DecodeStats::default();
    let mut per_object = vec![0u64; objects];
    let mut errors = BTreeMap::new();
    while let Ok(batch) = rx.recv().await {
        total.add(&batch.stats);
        if let Some(n) = per_object.get_mut(batch.object as usize) {
            *n += batch.events.len() as u64;
        }
        for e in &batch.errors {
            *errors.entry(e.reason).or_insert(0) += 1;
        }
        if tx.send(batch).await.is_err() {
            break;
        }
    }
    (total, per_object, errors)
}

fn ledger_rows(objects: &[ObjectMeta], events: &[u64]) -> Vec<LoadedObject> {
    objects
        .iter()
        .zip(events)
        .map(|(o, &events)| LoadedObject {
            key: o.key.clone(),
            etag: o.etag.clone(),
            size: o.size,
            events,
        })
        .collect()
}

fn summary_json(decode: &DecodeStats, s: &SessionizeStats) -> String {
    let rows: Vec<String> =
        s.rows.iter().map(|(t, n)| format!("\"{}\":{n}", t.name())).collect();
    format!(
        "{{\"lines\":{},\"duplicates\":{},\"stragglers\":{},\"late_sessions\":{},\"rows\":{{{}}}}}",
        decode.lines,
        s.duplicates,
        s.stragglers,
        s.late_sessions,
        rows.join(",")
    )
}

fn new_run_id(now: jiff::Timestamp) -> String {
    let utc = now.to_zoned(jiff::tz::TimeZone::UTC);
    format!("{}-{:05}", utc.strftime("%Y%m%dT%H%M%SZ"), std::process::id() % 100_000)
}

/// Every table, for summaries in a fixed order.
pub fn tables() -> [Table; 11] {
    Table::ALL
}
