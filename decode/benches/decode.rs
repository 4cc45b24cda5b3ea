//! Decode throughput on generator data against a "bare loop" over the same bytes, for the
//! ratio `bare_loop / decoder` asked by issue 5 (at least 0.8 on one core). What the bare
//! loop does and does not do is in `common/mod.rs`. `decoder_private` is the decoder with
//! `visitor_ip = "hash"` and `user_agent = "drop"`.
//!
//! Throughput is in decompressed bytes (the same for every function of the group). Compare
//! times inside one run: the machine is shared and noisy. Allocation counts are printed by
//! the `alloc_count` bench (kept apart so counting does not weigh on these timings).
#![allow(clippy::unwrap_used)]

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let (objects, plain_bytes) = common::data();
    let decoder = common::decoder();
    let private = common::private_decoder();
    let mut state = common::BareState::new();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(plain_bytes));
    g.sample_size(10);
    g.bench_function("bare_loop", |b| {
        b.iter(|| common::bare(black_box(&objects), &mut state))
    });
    g.bench_function("decoder", |b| {
        b.iter(|| common::run(black_box(&decoder), &objects))
    });
    g.bench_function("decoder_private", |b| {
        b.iter(|| common::run(black_box(&private), &objects))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
