//! `cargo run --release -p dpl-gen --example gen -- OUT EVENTS DAYS SEED`: writes files and
//! prints the summary and the rate.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).map_or("/tmp/dpl-gen-out", String::as_str);
    let events: u64 = args.get(2).map_or(Ok(100_000), |s| s.parse())?;
    let days: u32 = args.get(3).map_or(Ok(2), |s| s.parse())?;
    let seed: u64 = args.get(4).map_or(Ok(1), |s| s.parse())?;
    let cfg = dpl_gen::GenConfig::new(events, jiff::civil::date(2026, 11, 1), days, seed);
    let t = Instant::now();
    let summary = dpl_gen::generate_to_dir(&cfg, std::path::Path::new(out))?;
    let secs = t.elapsed().as_secs_f64();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    println!(
        "{events} events in {secs:.2} s: {:.0} events/s",
        events as f64 / secs
    );
    Ok(())
}
