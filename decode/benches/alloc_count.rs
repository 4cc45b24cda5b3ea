//! Heap allocations per line of the bare loop and the decoder on the bench data (see
//! `common/mod.rs`), counted by `stats_alloc` around the system allocator. Prints one line;
//! runs with `cargo bench -p dpl-decode` (or `--bench alloc_count`).
#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap allocations (reallocations included) made by `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let region = Region::new(GLOBAL);
    let out = f();
    let s = region.change();
    ((s.allocations + s.reallocations) as u64, out)
}

fn main() {
    let (objects, plain_bytes) = common::data();
    let decoder = common::decoder();
    let private = common::private_decoder();
    let mut state = common::BareState::new();
    // Warm the reused buffers (and the decoder's text cache) first, as in the timed runs.
    common::bare(&objects, &mut state);
    common::run(&decoder, &objects);
    let (a_bare, lines) = allocations(|| common::bare(&objects, &mut state));
    let (a_dec, events) = allocations(|| common::run(&decoder, &objects));
    let (a_priv, _) = allocations(|| common::run(&private, &objects));
    let per = |a: u64| a as f64 / lines as f64;
    println!(
        "decode alloc_count: {} objects, {plain_bytes} bytes, {lines} lines parsed, {events} \
         events; allocations per line: bare_loop {:.1}, decoder {:.1}, decoder_private {:.1}",
        objects.len(),
        per(a_bare),
        per(a_dec),
        per(a_priv),
    );
}
