//! `dpl bench`: the pipeline's own benchmark. Generates (or reuses) data, measures each stage
//! alone on one core, then runs the whole pipeline as a user would (`dpl run`, null sink on
//! one core and on every core, then the files sink) and prints one table of figures.
//!
//! Ratios are what to read: the machine may be shared and noisy, but the figures of one bench
//! run are taken back to back on the same data.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dpl_core::{DayRange, RawObject, Schema, Source};

/// What `dpl run --summary-json` writes: the figures a benchmark needs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RunFigures {
    pub events: u64,
    pub lines: u64,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub rows: u64,
    pub elapsed_seconds: f64,
    pub peak_rss_bytes: u64,
}

/// Peak resident set size of this process (Linux `VmHWM`), or 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub struct BenchOptions {
    pub events: u64,
    pub days: u32,
    pub seed: u64,
    pub dir: PathBuf,
}

pub async fn bench(opts: BenchOptions) -> anyhow::Result<()> {
    let start = jiff::civil::date(2026, 11, 1);
    let data = opts.dir.join(format!(
        "data-{}-{}d-s{}",
        opts.events, opts.days, opts.seed
    ));
    if data.join(dpl_gen::SUMMARY_FILE).is_file() {
        println!("reusing {}", data.display());
    } else {
        println!(
            "generating {} events into {} ...",
            opts.events,
            data.display()
        );
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        let mut cfg = dpl_gen::GenConfig::new(opts.events, start, opts.days, opts.seed);
        // Objects of about 20,000 lines (a few MB compressed), as DPL delivers them.
        let per_day = opts.events / u64::from(opts.days.max(1)) / 20_000;
        cfg.objects_per_day = u32::try_from(per_day).unwrap_or(1440).clamp(24, 1440);
        dpl_gen::generate_to_dir(&cfg, &data)?;
    }
    let end = start
        .checked_add(jiff::Span::new().days(i64::from(opts.days.max(1)) - 1))
        .context("date range")?;

    // Every object in memory, so the single-core figures measure CPU, not the disk.
    let source = dpl_source::LocalSource::new(&data)?;
    let listed = source.list(DayRange { start, end }).await?;
    let mut objects = Vec::with_capacity(listed.len());
    for (i, meta) in listed.iter().enumerate() {
        objects.push(RawObject {
            id: u32::try_from(i)?,
            key: meta.key.as_str().into(),
            bytes: source.fetch(meta).await?,
        });
    }
    let compressed: u64 = objects.iter().map(|o| o.bytes.len() as u64).sum();

    let (bare_events, bare_bytes, bare_time) = tokio::task::spawn_blocking({
        let objects = objects.clone();
        move || bare_loop(&objects)
    })
    .await??;
    let stages = tokio::task::spawn_blocking({
        let objects = objects.clone();
        move || stages_alone(&objects)
    })
    .await??;
    drop(objects);

    let work = tempfile_dir(&opts.dir)?;
    let exe = std::env::current_exe()?;
    let range = [start.to_string(), end.to_string()];
    let one_core = run_child(&exe, &data, &work, "null", &range, true)?;
    let all_cores = run_child(&exe, &data, &work, "null", &range, false)?;
    let files = run_child(&exe, &data, &work, "files", &range, false)?;
    let _ = std::fs::remove_dir_all(&work);

    let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64().max(1e-9);
    let mb = |n: u64, t: Duration| n as f64 / 1e6 / t.as_secs_f64().max(1e-9);
    let bare_rate = rate(bare_events, bare_time);
    let decode_rate = rate(stages.events, stages.decode);
    let sess_rate = rate(stages.events, stages.sessionize);
    let secs = |f: &RunFigures| Duration::from_secs_f64(f.elapsed_seconds);
    println!();
    println!(
        "data: {} objects, {:.1} MB compressed, {:.1} MB of JSON lines, {} events",
        listed.len(),
        compressed as f64 / 1e6,
        bare_bytes as f64 / 1e6,
        stages.events
    );
    println!();
    println!(
        "  {:<44} {:>12} {:>10}",
        "stage (one core unless said)", "events/s", "MB/s"
    );
    let row = |name: &str, ev: f64, mbs: f64| println!("  {name:<44} {ev:>12.0} {mbs:>10.1}");
    row(
        "bare loop: gzip + simd-json parse",
        bare_rate,
        mb(bare_bytes, bare_time),
    );
    row(
        "decode stage (Decoder, no channels)",
        decode_rate,
        mb(bare_bytes, stages.decode),
    );
    row(
        "sessionize stage (rows built, not written)",
        sess_rate,
        mb(bare_bytes, stages.sessionize),
    );
    row(
        "dpl run, null sink, 1 core",
        rate(one_core.events, secs(&one_core)),
        mb(one_core.decompressed_bytes, secs(&one_core)),
    );
    row(
        "dpl run, null sink, all cores",
        rate(all_cores.events, secs(&all_cores)),
        mb(all_cores.decompressed_bytes, secs(&all_cores)),
    );
    row(
        "dpl run, files sink, all cores",
        rate(files.events, secs(&files)),
        mb(files.decompressed_bytes, secs(&files)),
    );
    println!();
    println!(
        "  decode / bare loop                 {:.2}  (target >= 0.80)",
        decode_rate / bare_rate
    );
    println!(
        "  sessionize / decode                {:.2}  (target >= 5)",
        sess_rate / decode_rate
    );
    println!(
        "  all cores / one core (null sink)   {:.2}  (target >= 1.6 on 2 cores)",
        one_core.elapsed_seconds / all_cores.elapsed_seconds.max(1e-9)
    );
    println!(
        "  peak RSS: null sink {:.0} MiB, files sink {:.0} MiB",
        all_cores.peak_rss_bytes as f64 / 1048576.0,
        files.peak_rss_bytes as f64 / 1048576.0
    );
    println!(
        "  cores available: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}

/// The floor for the decoder: decompress and parse every line with simd-json, nothing else.
fn bare_loop(objects: &[RawObject]) -> anyhow::Result<(u64, u64, Duration)> {
    let t = Instant::now();
    let mut events = 0u64;
    let mut bytes = 0u64;
    let mut line = Vec::with_capacity(1 << 16);
    let mut buffers = simd_json::Buffers::default();
    for o in objects {
        let raw: Box<dyn Read> = if o.bytes.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(&o.bytes[..]))
        } else {
            Box::new(&o.bytes[..])
        };
        let mut reader = BufReader::with_capacity(1 << 16, raw);
        loop {
            line.clear();
            let n = match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => break,
            };
            bytes += n as u64;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if simd_json::to_borrowed_value_with_buffers(&mut line, &mut buffers).is_ok() {
                events += 1;
            }
        }
    }
    Ok((events, bytes, t.elapsed()))
}

struct StageTimes {
    events: u64,
    decode: Duration,
    sessionize: Duration,
}

/// Decoder and sessionizer alone, on one thread, timed separately.
fn stages_alone(objects: &[RawObject]) -> anyhow::Result<StageTimes> {
    let decoder = dpl_decode::Decoder::new(dpl_decode::DecodeConfig::default())?;
    let schema = Arc::new(Schema::default());
    let mut sessionizer = dpl_sessionize::Sessionizer::new(
        dpl_sessionize::SessionizeConfig::default(),
        schema,
        None,
    )?;
    let mut times = StageTimes {
        events: 0,
        decode: Duration::ZERO,
        sessionize: Duration::ZERO,
    };
    let mut rows = 0u64;
    let mut out = |b: dpl_core::RowBatch| rows += b.len() as u64;
    let mut batches = Vec::new();
    for o in objects {
        let t = Instant::now();
        decoder.decode_object(o, &mut |b| batches.push(b));
        times.decode += t.elapsed();
        let t = Instant::now();
        for b in batches.drain(..) {
            times.events += b.events.len() as u64;
            sessionizer.push(b, &mut out);
        }
        times.sessionize += t.elapsed();
    }
    let t = Instant::now();
    let _ = sessionizer.finish("bench", &mut out);
    times.sessionize += t.elapsed();
    Ok(times)
}

fn tempfile_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    let dir = parent.join(format!("work-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn run_child(
    exe: &Path,
    data: &Path,
    work: &Path,
    sink: &str,
    range: &[String; 2],
    one_core: bool,
) -> anyhow::Result<RunFigures> {
    let tag = format!("{sink}-{}", if one_core { "1core" } else { "all" });
    let state = work.join(format!("state-{tag}"));
    let out = work.join(format!("out-{tag}"));
    let figures = work.join(format!("figures-{tag}.json"));
    let mut cmd = if one_core {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.arg("run")
        .arg("--source-dir")
        .arg(data)
        .args([
            "--start-date",
            &range[0],
            "--end-date",
            &range[1],
            "--sink",
            sink,
        ])
        .arg("--out")
        .arg(&out)
        .arg("--state-dir")
        .arg(&state)
        .arg("--summary-json")
        .arg(&figures)
        .stdout(std::process::Stdio::null());
    if one_core {
        cmd.env("DPL_PIPELINE__DECODE_WORKERS", "1");
    }
    let status = cmd.status().with_context(|| {
        if one_core {
            "running `taskset -c 0 dpl run` (is taskset installed?)"
        } else {
            "running dpl run"
        }
    })?;
    if !status.success() {
        bail!("dpl run ({tag}) failed: {status}");
    }
    let text = std::fs::read_to_string(&figures)?;
    Ok(serde_json::from_str(&text)?)
}
