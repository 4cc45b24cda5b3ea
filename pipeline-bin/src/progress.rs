//! Progress of a run: a bar on a terminal, periodic log lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters the pipeline bumps as work completes; read by the reporter task.
#[derive(Debug, Default)]
pub struct Progress {
    pub objects_total: AtomicU64,
    pub objects_done: AtomicU64,
    pub events: AtomicU64,
    pub bytes: AtomicU64,
}

impl Progress {
    pub fn add_object(&self) {
        self.objects_done.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add_events(&self, n: u64, bytes: u64) {
        self.events.fetch_add(n, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Reports `progress` until the returned handle is dropped or aborted: an indicatif bar
/// when stderr is a terminal, else an `info` log line every `every`.
pub fn spawn_reporter(progress: Arc<Progress>, every: Duration) -> tokio::task::JoinHandle<()> {
    let tty = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let started = Instant::now();
        let total = progress.objects_total.load(Ordering::Relaxed);
        let bar = tty.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} objects  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let tick = if tty {
            Duration::from_millis(200)
        } else {
            every
        };
        let mut interval = tokio::time::interval(tick);
        interval.tick().await;
        loop {
            interval.tick().await;
            let done = progress.objects_done.load(Ordering::Relaxed);
            let events = progress.events.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let rate = events as f64 / secs;
            match &bar {
                Some(bar) => {
                    bar.set_position(done);
                    bar.set_message(format!("{events} events  {rate:.0} events/s"));
                }
                None => tracing::info!(
                    objects_done = done,
                    objects_total = total,
                    events,
                    events_per_second = rate as u64,
                    "progress"
                ),
            }
            if done >= total {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                break;
            }
        }
    })
}
