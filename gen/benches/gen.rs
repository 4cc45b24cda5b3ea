//! Generation throughput in events (lines) per second, in memory, gzip included.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let events = 20_000;
    let cfg = dpl_gen::GenConfig::new(events, jiff::civil::date(2026, 11, 1), 1, 1);
    let mut group = c.benchmark_group("gen");
    group.throughput(Throughput::Elements(events));
    group.sample_size(10);
    group.bench_function("generate_20k", |b| b.iter(|| dpl_gen::generate(&cfg)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
