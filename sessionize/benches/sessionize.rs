//! Sessionizer throughput (events/s) and state size (1 million users, 100k open sessions).
//!
//! `cargo bench -p dpl-sessionize` prints the state sizes once, then measures throughput.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dpl_core::{Arrival, Class, DecodeStats, DecodedBatch, Event, Field, Schema, Value};
use dpl_sessionize::{SessionizeConfig, Sessionizer};

const T0: i64 = 1_714_550_400_000_000; // 2024-05-01 08:00:00 UTC in micros

fn event(class: Class, id: u64, visitor: u64, ts: i64) -> Event {
    let mut e = Event::empty(
        class,
        Arrival {
            object: 0,
            line: id,
        },
    );
    e.set(Field::Apikey, Value::text("example.com"));
    e.set(
        Field::EventId,
        Value::text(format!("{id:016x}-{visitor:08x}")),
    );
    e.set(Field::VisitorSiteId, Value::text(format!("{visitor:032x}")));
    e.set(Field::TsAction, Value::Ts(ts));
    e.set(Field::Action, Value::text(class.as_str()));
    e.set(
        Field::Url,
        Value::text(format!("https://example.com/post/{}", visitor % 1000)),
    );
    e.set(Field::SessionId, Value::Int(1));
    e.set(Field::PageviewId, Value::text(format!("pv{visitor}")));
    if class == Class::Heartbeat {
        e.set(Field::EngagedTimeInc, Value::Int(10));
    }
    e
}

fn batches(events: Vec<Event>) -> Vec<DecodedBatch> {
    let mut out = Vec::new();
    let mut it = events.into_iter().peekable();
    let mut seq = 0;
    while it.peek().is_some() {
        let chunk: Vec<Event> = it.by_ref().take(4096).collect();
        out.push(DecodedBatch {
            object: 0,
            seq,
            last: it.peek().is_none(),
            events: chunk,
            errors: Vec::new(),
            stats: DecodeStats::default(),
        });
        seq += 1;
    }
    out
}

/// Sessions of `visitors` visitors, 4 events each (pageview, 2 heartbeats, pageview) a
/// minute apart, starting `spacing` micros apart.
fn sessions(visitors: u64, first_visitor: u64, start: i64, spacing: i64) -> Vec<Event> {
    let mut ev = Vec::with_capacity(visitors as usize * 4);
    for step in 0..4u64 {
        for v in 0..visitors {
            let ts = start + (v as i64) * spacing + (step as i64) * 60_000_000;
            let class = if step == 0 || step == 3 {
                Class::Pageview
            } else {
                Class::Heartbeat
            };
            ev.push(event(class, step * 10_000_000 + v, first_visitor + v, ts));
        }
    }
    ev.sort_by_key(|e| e.ts_action());
    ev
}

fn run(config: &SessionizeConfig, events: impl Iterator<Item = Event>) -> (u64, u64, u64) {
    let mut s =
        Sessionizer::new(config.clone(), Arc::new(Schema::default()), None).expect("valid config");
    let mut rows = 0u64;
    let mut events = events.peekable();
    let mut seq = 0;
    while events.peek().is_some() {
        let chunk: Vec<Event> = events.by_ref().take(4096).collect();
        let b = DecodedBatch {
            object: 0,
            seq,
            last: events.peek().is_none(),
            events: chunk,
            errors: Vec::new(),
            stats: DecodeStats::default(),
        };
        seq += 1;
        s.push(b, &mut |r| rows += r.len() as u64);
    }
    let (ck, stats) = s.finish("bench", &mut |r| rows += r.len() as u64);
    black_box(rows);
    let dir = std::env::temp_dir().join(format!("dpl-sessionize-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("state.ckpt");
    ck.save(&path).expect("save");
    let file = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    (stats.state_bytes, file, stats.open_sessions)
}

/// One pageview for each of `users` visitors, 1 ms apart, generated lazily.
fn one_pageview_each(users: u64) -> impl Iterator<Item = Event> {
    (0..users).map(|v| event(Class::Pageview, v, v, T0 + v as i64 * 1_000))
}

fn state_size() {
    // Dedupe ids are measured apart: a tiny window keeps none.
    let config = SessionizeConfig {
        dedupe_window: jiff::SignedDuration::from_secs(1),
        ..SessionizeConfig::default()
    };
    let users = 1_000_000u64;
    let open = 100_000u64;
    let later = T0 + 3 * 3_600_000_000;
    // 1M visitors with one session each, all final by the end: a lone far event closes them.
    let closer = || std::iter::once(event(Class::Pageview, u64::MAX / 2, u64::MAX / 4, later));
    let (a_mem, a_file, a_open) = run(&config, one_pageview_each(users).chain(closer()));
    // The same, then 100k of those visitors open a new 4-event session.
    let (b_mem, b_file, b_open) = run(
        &config,
        one_pageview_each(users).chain(closer()).chain(sessions(
            open,
            0,
            later + 60_000_000,
            10_000,
        )),
    );
    println!(
        "state: {users} users, {a_open} open sessions: {a_mem} bytes in memory (estimate), \
         {a_file} bytes on disk; per user {} / {} bytes",
        a_mem / users,
        a_file / users
    );
    let extra_mem = b_mem.saturating_sub(a_mem);
    let extra_file = b_file.saturating_sub(a_file);
    println!(
        "state: + {b_open} open sessions of 4 events: + {extra_mem} bytes in memory, \
         + {extra_file} on disk; per open session {} / {} bytes",
        extra_mem / open,
        extra_file / open
    );
    let (c_mem, c_file, _) = run(&SessionizeConfig::default(), one_pageview_each(100_000));
    let (d_mem, d_file, _) = run(&config, one_pageview_each(100_000));
    println!(
        "dedupe: per remembered event id {} bytes in memory, {} on disk",
        c_mem.saturating_sub(d_mem) / 100_000,
        c_file.saturating_sub(d_file) / 100_000
    );
}

fn bench(c: &mut Criterion) {
    // The state-size runs take a minute and a few GB; DPL_BENCH_SKIP_STATE=1 skips them.
    if std::env::var_os("DPL_BENCH_SKIP_STATE").is_none() {
        state_size();
    }
    // Sessions starting a second apart: 14 hours of traffic, most sessions final before
    // the run ends (as in a daily run).
    let events = sessions(50_000, 0, T0, 1_000_000);
    let n = events.len() as u64;
    let config = SessionizeConfig::default();
    let mut g = c.benchmark_group("sessionize");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("200k_events_50k_sessions", |b| {
        b.iter_batched(
            || batches(events.clone()),
            |bs| {
                let mut s = Sessionizer::new(config.clone(), Arc::new(Schema::default()), None)
                    .expect("valid config");
                let mut rows = 0usize;
                for b in bs {
                    s.push(b, &mut |r| rows += r.len());
                }
                let out = s.finish("bench", &mut |r| rows += r.len());
                black_box((out, rows))
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
