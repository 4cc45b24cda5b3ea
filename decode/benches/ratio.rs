//! The bare-loop ratio measured robustly on a shared machine: the bare loop and the decoder
//! (see `common/mod.rs`) run alternately for a number of rounds, and the ratio of their
//! fastest rounds is printed (the fastest round is the one least disturbed by other work;
//! alternating exposes both to the same load). Prints one line; runs with
//! `cargo bench -p dpl-decode` (or `--bench ratio`). `DPL_RATIO_ROUNDS` sets the rounds
//! (default 9).
#![allow(clippy::unwrap_used)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

fn timed(f: impl FnOnce() -> usize) -> Duration {
    let t = Instant::now();
    black_box(f());
    t.elapsed()
}

fn main() {
    let rounds: usize = std::env::var("DPL_RATIO_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    let (objects, plain_bytes) = common::data();
    let decoder = common::decoder();
    let private = common::private_decoder();
    let mut state = common::BareState::new();
    common::bare(&objects, &mut state);
    common::run(&decoder, &objects);
    let (mut bare, mut dec, mut priv_) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare.push(timed(|| common::bare(&objects, &mut state)));
        dec.push(timed(|| common::run(&decoder, &objects)));
        priv_.push(timed(|| common::run(&private, &objects)));
    }
    let mib_s = |d: Duration| plain_bytes as f64 / d.as_secs_f64() / f64::from(1 << 20);
    let min = |v: &[Duration]| v.iter().copied().min().unwrap();
    let (b, d, p) = (min(&bare), min(&dec), min(&priv_));
    println!(
        "decode ratio ({rounds} alternating rounds, fastest of each): bare_loop {:.1} ms \
         ({:.0} MiB/s), decoder {:.1} ms ({:.0} MiB/s), decoder_private {:.1} ms ({:.0} MiB/s); \
         bare_loop/decoder = {:.2}, bare_loop/decoder_private = {:.2}",
        b.as_secs_f64() * 1e3,
        mib_s(b),
        d.as_secs_f64() * 1e3,
        mib_s(d),
        p.as_secs_f64() * 1e3,
        mib_s(p),
        b.as_secs_f64() / d.as_secs_f64(),
        b.as_secs_f64() / p.as_secs_f64(),
    );
}
