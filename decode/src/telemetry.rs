//! Metrics of the decode stage, all in one place. Without an installed recorder these are
//! no-ops.

use dpl_core::{DecodedBatch, ErrorReason};

/// Counts one batch: `dpl_decode_lines_total`, `dpl_decode_bytes_total`,
/// `dpl_decode_events_total{class}`, `dpl_decode_errors_total{reason}`,
/// `dpl_decode_unlisted_custom_total`, `dpl_decode_coerced_total`.
pub(crate) fn record(batch: &DecodedBatch) {
    let s = &batch.stats;
    metrics::counter!("dpl_decode_lines_total").increment(s.lines);
    metrics::counter!("dpl_decode_bytes_total").increment(s.bytes);
    metrics::counter!("dpl_decode_unlisted_custom_total").increment(s.unlisted_custom);
    let coerced: u64 = s.coerced.iter().map(|&c| u64::from(c)).sum();
    metrics::counter!("dpl_decode_coerced_total").increment(coerced);
    const CLASSES: [&str; 6] = [
        "pageview",
        "heartbeat",
        "videostart",
        "vheartbeat",
        "custom",
        "bot",
    ];
    for (class, n) in CLASSES.iter().zip(s.events) {
        if n > 0 {
            metrics::counter!("dpl_decode_events_total", "class" => *class).increment(n);
        }
    }
    for reason in ErrorReason::ALL {
        let n = batch.errors.iter().filter(|e| e.reason == reason).count() as u64;
        if n > 0 {
            metrics::counter!("dpl_decode_errors_total", "reason" => reason.as_str()).increment(n);
        }
    }
}
