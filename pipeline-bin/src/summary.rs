//! The run summary printed at the end of `dpl run`.

use dpl_core::{ALL_FIELDS, Class, ErrorReason};

use crate::bench::{RunFigures, peak_rss_bytes};
use crate::run::{Outcome, tables};

const CLASSES: [Class; 6] = [
    Class::Pageview,
    Class::Heartbeat,
    Class::Videostart,
    Class::Vheartbeat,
    Class::Custom,
    Class::Bot,
];

/// Prints the summary to stdout.
pub fn print(o: &Outcome) {
    print!("{}", render(o));
}

/// The summary as text.
pub fn render(o: &Outcome) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<28} {v}\n"));
    if let Some((a, b)) = o.range {
        line("run", format!("{} ({a} to {b})", o.run_id));
    }
    line(
        "objects",
        format!(
            "{} listed, {} already loaded, {} read ({:.1} MB)",
            o.objects_listed,
            o.objects_skipped,
            o.objects_read,
            o.bytes_read as f64 / 1e6
        ),
    );
    line("lines", o.decode.lines.to_string());
    for c in CLASSES {
        line(
            &format!("events: {}", c.as_str()),
            o.decode.events[c as usize].to_string(),
        );
    }
    if o.decode.unlisted_custom > 0 {
        line(
            "custom not listed (dropped)",
            o.decode.unlisted_custom.to_string(),
        );
    }
    line("duplicates (dropped)", o.sessionize.duplicates.to_string());
    line("stragglers", o.sessionize.stragglers.to_string());
    line("late sessions", o.sessionize.late_sessions.to_string());
    let errors: u64 = o.errors.values().sum();
    line("errors", errors.to_string());
    for r in ErrorReason::ALL {
        if let Some(n) = o.errors.get(&r) {
            line(&format!("  {}", r.as_str()), n.to_string());
        }
    }
    let coerced: Vec<String> = ALL_FIELDS
        .iter()
        .filter_map(|f| {
            let n = o.decode.coerced[*f as usize];
            (n > 0).then(|| format!("{} {n}", f.name()))
        })
        .collect();
    if !coerced.is_empty() {
        line("coerced to null", coerced.join(", "));
    }
    s.push_str("  rows loaded\n");
    for t in tables() {
        let n = o.load.rows.get(&t).copied().unwrap_or(0);
        s.push_str(&format!("    {:<26} {n}\n", t.name()));
    }
    let withdrawn: u64 = o.load.withdrawn.values().sum();
    if withdrawn > 0 {
        s.push_str(&format!("  {:<28} {withdrawn}\n", "rows withdrawn"));
    }
    let dups: u64 = o.load.duplicate_keys.values().sum();
    if dups > 0 {
        s.push_str(&format!("  {:<28} {dups}\n", "repeated keys not loaded"));
    }
    let cut: u64 = o.load.cut_values.values().sum();
    if cut > 0 {
        s.push_str(&format!("  {:<28} {cut}\n", "values cut to column size"));
    }
    s.push_str(&format!(
        "  {:<28} {:.2} s\n",
        "time",
        o.elapsed.as_secs_f64()
    ));
    s.push_str(&format!(
        "  {:<28} {:.0} MiB\n",
        "peak memory (RSS)",
        peak_rss_bytes() as f64 / 1048576.0
    ));
    s
}

/// The figures of a run for `--summary-json` (and `dpl bench`).
pub fn figures(o: &Outcome) -> RunFigures {
    RunFigures {
        events: o.decode.events.iter().sum(),
        lines: o.decode.lines,
        compressed_bytes: o.bytes_read,
        decompressed_bytes: o.decode.bytes,
        rows: o.load.rows.values().sum(),
        elapsed_seconds: o.elapsed.as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    }
}
