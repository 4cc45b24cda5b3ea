//! One run: list, filter by the ledger, then source -> decode -> sessionize -> sink over
//! bounded channels, commit, and make the checkpoint current.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dpl_core::{
    DayRange, DecodeStats, DecodedBatch, ErrorReason, ObjectMeta, RowBatch, Schema, Source, Table,
};
use dpl_decode::Decoder;
use dpl_sessionize::{Checkpoint, SessionizeStats, Sessionizer};
use dpl_sink::{LoadStats, LoadedObject, RunRecord, Sink};
use dpl_source::{LocalSource, S3Source};

use crate::config::{Config, SourceKind};
use crate::progress::{self, Progress};

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
    let mut sink = Sink::open(&config.sink, schema.clone()).await?;
    let checkpoint_path = config.checkpoint_path();
    let pending = config.state_dir.join("checkpoint.pending");
    repair_pending_checkpoint(&sink, &pending, &checkpoint_path).await?;
    let checkpoint = Checkpoint::load(&checkpoint_path)?;
    let sessionizer = Sessionizer::sharded(
        config.sessionize.clone(),
        schema.clone(),
        checkpoint,
        config.pipeline.sessionize_shards,
    )?;

    let source = Arc::new(match config.source.kind {
        SourceKind::Local => AnySource::Local(LocalSource::new(&config.source.dir)?),
        SourceKind::S3 => AnySource::S3(S3Source::new(&config.source.s3).await?),
    });
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
    // Fetched objects wait in the reader's window of `source.concurrency` fetches; the
    // channel only needs one ready for each decode worker.
    let (raw_tx, raw_rx) = async_channel::bounded(config.pipeline.decode_workers.max(1));
    let (dec_tx, dec_rx) = async_channel::bounded::<DecodedBatch>(cap);
    let (tap_tx, tap_rx) = async_channel::bounded::<DecodedBatch>(cap);
    let (row_tx, row_rx) = async_channel::bounded(cap);

    sink.begin(&run_id).await?;

    let progress = Arc::new(Progress::default());
    progress
        .objects_total
        .store(to_read.len() as u64, Ordering::Relaxed);
    metrics::gauge!("dpl_source_objects_pending").set(to_read.len() as f64);
    let reporter = progress::spawn_reporter(progress.clone(), Duration::from_secs(10));

    let reader = tokio::spawn(dpl_source::read_objects(
        source.clone(),
        to_read.clone(),
        config.source.concurrency,
        raw_tx,
        |meta| {
            metrics::counter!("dpl_source_objects_total").increment(1);
            metrics::counter!("dpl_source_bytes_total").increment(meta.size);
        },
    ));
    let decoders = tokio::spawn(dpl_decode::run(
        decoder,
        config.pipeline.decode_workers,
        raw_rx,
        dec_tx,
    ));
    let tap = tokio::spawn(tap_stats(dec_rx, tap_tx, to_read.len(), progress.clone()));
    let sessionize = tokio::spawn(dpl_sessionize::run(
        sessionizer,
        run_id.clone(),
        tap_rx,
        row_tx,
    ));
    let abort = [
        reader.abort_handle(),
        decoders.abort_handle(),
        sessionize.abort_handle(),
    ];

    let streamed = async {
        let written = write_rows(&mut sink, row_rx).await;
        // Join upstream first: the first real error explains a closed channel downstream.
        reader
            .await
            .context("source task")?
            .context("reading objects")?;
        decoders.await.context("decode task")?.context("decoding")?;
        let tapped = tap.await.context("stats task")?;
        let sessionized = sessionize
            .await
            .context("sessionize task")?
            .context("sessionizing")?;
        written.context("writing rows")?;
        anyhow::Ok((tapped, sessionized))
    };
    let result = tokio::select! {
        r = streamed => r,
        _ = shutdown_signal() => {
            for a in &abort {
                a.abort();
            }
            reporter.abort();
            return Err(Interrupted.into());
        }
    };
    reporter.abort();
    let ((decode_stats, per_object, errors), (checkpoint, sessionize_stats)) = result?;

    // Commit point. The checkpoint is written as `pending`, the load transaction commits
    // (with the run in the ledger), then the checkpoint becomes current. A crash between the
    // two is repaired at the next start by `repair_pending_checkpoint`.
    failpoint("before_commit");
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
    failpoint("after_commit");
    std::fs::rename(&pending, &checkpoint_path)
        .with_context(|| format!("making {} current", checkpoint_path.display()))?;
    metrics::counter!("dpl_sessionize_duplicates_total").increment(sessionize_stats.duplicates);
    metrics::counter!("dpl_sessionize_stragglers_total").increment(sessionize_stats.stragglers);
    metrics::gauge!("dpl_sessionize_state_bytes").set(sessionize_stats.state_bytes as f64);
    metrics::gauge!("dpl_sessionize_open_sessions").set(sessionize_stats.open_sessions as f64);

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
    progress: Arc<Progress>,
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
        progress.add_events(batch.events.len() as u64, batch.stats.bytes);
        if batch.last {
            progress.add_object();
            metrics::gauge!("dpl_source_objects_pending").decrement(1.0);
        }
        if tx.send(batch).await.is_err() {
            break;
        }
    }
    (total, per_object, errors)
}

/// The sink loop: every row batch to the sink, with per-table counts and batch latency.
async fn write_rows(sink: &mut Sink, rx: async_channel::Receiver<RowBatch>) -> anyhow::Result<()> {
    let mut written = 0u64;
    while let Ok(batch) = rx.recv().await {
        written += 1;
        if written == 3 {
            failpoint("during_write");
        }
        let table = batch.table.name();
        let rows = batch.len() as u64;
        let t = Instant::now();
        sink.write(batch).await?;
        metrics::histogram!("dpl_sink_batch_seconds", "table" => table)
            .record(t.elapsed().as_secs_f64());
        metrics::counter!("dpl_sink_rows_total", "table" => table).increment(rows);
    }
    Ok(())
}

/// A checkpoint left `pending` by a run that stopped between its load commit and making the
/// checkpoint current: promoted when the sink's ledger holds that run, discarded otherwise.
async fn repair_pending_checkpoint(
    sink: &Sink,
    pending: &std::path::Path,
    current: &std::path::Path,
) -> anyhow::Result<()> {
    let Some(checkpoint) = Checkpoint::load(pending)
        .with_context(|| format!("reading the pending checkpoint {}", pending.display()))?
    else {
        return Ok(());
    };
    if sink.run_committed(checkpoint.run_id()).await? {
        tracing::warn!(
            run_id = checkpoint.run_id(),
            "the last run committed its load but stopped before its checkpoint: making it current"
        );
        std::fs::rename(pending, current)
            .with_context(|| format!("making {} current", current.display()))?;
    } else {
        tracing::warn!(
            run_id = checkpoint.run_id(),
            "discarding the checkpoint of a run that did not commit"
        );
        std::fs::remove_file(pending).with_context(|| format!("removing {}", pending.display()))?;
    }
    Ok(())
}

/// Crash-test hook: when `DPL_FAILPOINT` names this point, the process kills itself with
/// SIGKILL, as a crash or an OOM kill would. Used by the end-to-end crash tests only.
fn failpoint(name: &str) {
    if std::env::var("DPL_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: killing the process");
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
        std::process::exit(137);
    }
}

/// Ctrl-C or SIGTERM. A second Ctrl-C exits at once.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    eprintln!("stopping: nothing from this run will be committed (Ctrl-C again to exit now)");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!(
            "interrupted twice: exiting now; the next run resumes where the last committed run ended"
        );
        std::process::exit(130);
    });
}

/// The run was stopped by a signal before its commit point.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted before the commit point: nothing from this run was committed; the next run resumes where the last committed run ended"
)]
pub struct Interrupted;

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
    let rows: Vec<String> = s
        .rows
        .iter()
        .map(|(t, n)| format!("\"{}\":{n}", t.name()))
        .collect();
    format!(
        "{{\"lines\":{},\"duplicates\":{},\"stragglers\":{},\"late_sessions\":{},\"rows\":{{{}}}}}",
        decode.lines,
        s.duplicates,
        s.stragglers,
        s.late_sessions,
        rows.join(",")
    )
}

/// A run id that sorts in time order: `YYYYMMDDTHHMMSS.ffffffZ-<pid>`.
fn new_run_id(now: jiff::Timestamp) -> String {
    let utc = now.to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "{}.{:06}Z-{}",
        utc.strftime("%Y%m%dT%H%M%S"),
        utc.subsec_nanosecond() / 1000,
        std::process::id()
    )
}

/// Every table, for summaries in a fixed order.
pub fn tables() -> [Table; 11] {
    Table::ALL
}

/// The configured source.
enum AnySource {
    Local(LocalSource),
    S3(S3Source),
}

impl Source for AnySource {
    type Error = dpl_source::Error;

    async fn list(&self, range: DayRange) -> Result<Vec<ObjectMeta>, Self::Error> {
        match self {
            AnySource::Local(s) => s.list(range).await,
            AnySource::S3(s) => s.list(range).await,
        }
    }

    async fn fetch(&self, object: &ObjectMeta) -> Result<bytes::Bytes, Self::Error> {
        match self {
            AnySource::Local(s) => s.fetch(object).await,
            AnySource::S3(s) => s.fetch(object).await,
        }
    }
}
