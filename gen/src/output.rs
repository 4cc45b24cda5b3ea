//! Delivery: late arrivals, duplicate copies, malformed and blank lines, the split into
//! objects, the summary, and gzip.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use flate2::Compression;
use flate2::write::GzEncoder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{GenConfig, GenObject, GenSummary};
use crate::error::Error;
use crate::json::{civil_from_days, push_padded};
use crate::plan::{self, Bad, DAY, Ev, HOUR, Kind, MIN, NO_PLAY, Plan, SEC, mix};
use crate::render::{Renderer, parsed_ts};

/// Name of the summary file [`generate_to_dir`] writes next to `events/`.
pub const SUMMARY_FILE: &str = "dpl-gen-summary.json";

/// Generates everything in memory; objects sorted by key.
pub fn generate(cfg: &GenConfig) -> (Vec<GenObject>, GenSummary) {
    let mut objects = Vec::new();
    let summary = match produce(cfg, &mut |o| {
        objects.push(o);
        Ok::<(), std::convert::Infallible>(())
    }) {
        Ok(s) => s,
        Err(never) => match never {},
    };
    (objects, summary)
}

/// Writes the objects under `out` (creating directories) and `out/dpl-gen-summary.json`;
/// returns the summary. Objects are written as they are made, so memory stays bounded by
/// the planned events rather than the output size.
pub fn generate_to_dir(cfg: &GenConfig, out: &Path) -> Result<GenSummary, Error> {
    let summary = produce(cfg, &mut |o: GenObject| {
        let path = out.join(&o.key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, &o.bytes).map_err(|source| Error::Io { path, source })
    })?;
    let json = serde_json::to_vec_pretty(&summary)?;
    let path = out.join(SUMMARY_FILE);
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    std::fs::write(&path, json).map_err(|source| Error::Io { path, source })?;
    Ok(summary)
}

/// Where the lines of one object come from.
struct ObjectSpec {
    key: String,
    /// Range of `order` holding its lines.
    lines: std::ops::Range<usize>,
    plain: bool,
    members: u8,
}

fn produce<E>(
    cfg: &GenConfig,
    sink: &mut dyn FnMut(GenObject) -> Result<(), E>,
) -> Result<GenSummary, E> {
    let mut plan = plan::build(cfg);
    deliver(cfg, &mut plan);
    let per_day = cfg.objects_per_day.clamp(1, 1440);
    let bin_len = DAY / i64::from(per_day);
    let days = cfg.days.max(1);
    let n_bins = days as usize * per_day as usize;

    // Arrival order: object (delivery slice), then delivery time, then planning order.
    let mut order: Vec<(u32, i64, u32)> = plan
        .evs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let off = (e.delivery_ms - plan.start_ms).clamp(0, plan.end_ms - plan.start_ms - 1);
            let day = off / DAY;
            let slot = ((off % DAY) / bin_len).min(i64::from(per_day) - 1);
            let bin = day * i64::from(per_day) + slot;
            (bin as u32, e.delivery_ms, i as u32)
        })
        .collect();
    order.sort_unstable();

    let summary_body = summarize(&plan, &order);
    let objects = object_specs(cfg, &plan, &order, per_day, bin_len, n_bins);
    let summary = GenSummary {
        objects: objects.len() as u64,
        ..summary_body
    };
    render_objects(cfg, &plan, &order, &objects, sink)?;
    Ok(summary)
}

/// Delivery times, stragglers, duplicate copies, malformed and blank lines.
fn deliver(cfg: &GenConfig, plan: &mut Plan) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xde11_7e27);
    let (start, end) = (plan.start_ms, plan.end_ms);
    let (_, _, n_dup, n_bad) = plan::budget(cfg.events);
    for e in &mut plan.evs {
        let delay = match rng.random_range(0..100) {
            0..=79 => rng.random_range(200..20 * SEC),
            80..=97 => rng.random_range(20 * SEC..2 * MIN),
            _ => rng.random_range(2 * MIN..4 * MIN),
        };
        e.delivery_ms = (e.ts_ms + delay).min(end - 1);
    }

    // A handful of events held back for more than an hour: stragglers.
    let (human, valid) = (plan.human, plan.valid);
    let mut late = ((valid as f64) * 0.0005).round() as usize;
    if human >= 1000 {
        late = late.max(1);
    }
    if !cfg.stragglers {
        late = 0;
    }
    let mut tries = 0;
    while late > 0 && human > 0 && tries < 50 * late + 100 {
        tries += 1;
        let Some(e) = plan.evs.get_mut(rng.random_range(0..human)) else {
            continue;
        };
        if e.ts_ms + 3 * HOUR < end && e.delivery_ms < e.ts_ms + HOUR {
            e.delivery_ms = e.ts_ms + rng.random_range(65 * MIN..150 * MIN);
            late -= 1;
        }
    }

    let per_day = i64::from(cfg.objects_per_day.clamp(1, 1440));
    let bin_len = DAY / per_day;
    let mut next_id = plan.next_id;
    if valid > 0 {
        for _ in 0..n_dup {
            let Some(orig) = plan.evs.get(rng.random_range(0..valid)).copied() else {
                continue;
            };
            let delay = rng.random_range(bin_len..bin_len + 6 * HOUR);
            plan.evs.push(Ev {
                delivery_ms: (orig.delivery_ms + delay).min(end - 1),
                dup: true,
                ..orig
            });
        }
        let pool = if human > 0 { human } else { valid };
        for i in 0..n_bad {
            let Some(t) = plan.evs.get(rng.random_range(0..pool)).copied() else {
                continue;
            };
            let bad = Bad::ALL[i as usize % Bad::ALL.len()];
            next_id += 1;
            plan.evs.push(Ev {
                ts_ms: t.ts_ms,
                delivery_ms: (t.ts_ms + rng.random_range(SEC..MIN)).min(end - 1),
                id: next_id,
                page: t.page,
                play: NO_PLAY,
                kind: Kind::Bad(bad),
                inc: 0,
                dup: false,
            });
        }
    }
    let blanks = cfg.events / 1000 + u64::from(cfg.days.max(1));
    for _ in 0..blanks {
        next_id += 1;
        plan.evs.push(Ev {
            ts_ms: start,
            delivery_ms: rng.random_range(start..end),
            id: next_id,
            page: 0,
            play: NO_PLAY,
            kind: Kind::Blank,
            inc: 0,
            dup: false,
        });
    }
}

/// Counts over the lines in arrival order (SPEC.md sections 2 and 4).
fn summarize(plan: &Plan, order: &[(u32, i64, u32)]) -> GenSummary {
    let mut s = GenSummary::default();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut active = vec![false; plan.visitors.len()];
    let mut max_ts: Option<i64> = None;
    let lateness = HOUR * 1000;
    for &(_, _, i) in order {
        let Some(e) = plan.evs.get(i as usize) else {
            continue;
        };
        match e.kind {
            Kind::Blank => {
                s.blank_lines += 1;
                continue;
            }
            Kind::Bad(b) => {
                s.lines += 1;
                *errors.entry(b.reason().as_str().to_owned()).or_default() += 1;
                continue;
            }
            _ => s.lines += 1,
        }
        if e.dup {
            s.duplicates += 1;
            continue;
        }
        match e.kind {
            Kind::Pageview => s.pageviews += 1,
            Kind::Heartbeat => s.heartbeats += 1,
            Kind::Videostart => s.videostarts += 1,
            Kind::Vheartbeat => s.vheartbeats += 1,
            Kind::Custom(_) => s.custom += 1,
            Kind::Bot | Kind::Bad(_) | Kind::Blank => {
                s.bots += 1;
                continue;
            }
        }
        let visitor = plan
            .pages
            .get(e.page as usize)
            .and_then(|p| plan.sessions.get(p.session as usize))
            .map(|s| s.visitor as usize);
        if let Some(a) = visitor.and_then(|v| active.get_mut(v)) {
            *a = true;
        }
        let ts = parsed_ts(plan, e);
        if let Some(max) = max_ts
            && ts < max - lateness
        {
            s.stragglers += 1;
        }
        max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
    }
    s.errors = errors;
    s.visitors = active.iter().filter(|a| **a).count() as u64;
    s
}

fn object_specs(
    cfg: &GenConfig,
    plan: &Plan,
    order: &[(u32, i64, u32)],
    per_day: u32,
    bin_len: i64,
    n_bins: usize,
) -> Vec<ObjectSpec> {
    let mut specs = Vec::with_capacity(n_bins);
    let mut pos = 0;
    let day0 = plan.start_ms.div_euclid(DAY);
    let mut seq = 0;
    let mut prev_hour = -1;
    for bin in 0..n_bins {
        let day = (bin / per_day as usize) as i64;
        let slot = (bin % per_day as usize) as i64;
        let hour = slot * bin_len / HOUR;
        seq = if hour == prev_hour { seq + 1 } else { 1 };
        prev_hour = hour;
        let end = pos + order[pos..].partition_point(|(b, _, _)| (*b as usize) == bin);
        let (y, m, d) = civil_from_days(day0 + day);
        let plain = per_day >= 2
            && mix(cfg.seed ^ (day as u64).wrapping_mul(0x9e37)) % u64::from(per_day)
                == slot as u64;
        let members = if !plain && mix(cfg.seed ^ bin as u64 ^ 0x33).is_multiple_of(4) {
            2
        } else {
            1
        };
        let mut key = Vec::with_capacity(64);
        key.extend_from_slice(b"events/");
        push_padded(&mut key, y.max(0) as u64, 4);
        key.push(b'/');
        push_padded(&mut key, u64::from(m), 2);
        key.push(b'/');
        push_padded(&mut key, u64::from(d), 2);
        key.extend_from_slice(b"/site-");
        push_padded(&mut key, y.max(0) as u64, 4);
        key.push(b'-');
        push_padded(&mut key, u64::from(m), 2);
        key.push(b'-');
        push_padded(&mut key, u64::from(d), 2);
        key.push(b'-');
        push_padded(&mut key, hour as u64, 2);
        key.push(b'-');
        push_padded(&mut key, seq as u64, 4);
        key.extend_from_slice(if plain { b".json" } else { b".gz" });
        specs.push(ObjectSpec {
            key: String::from_utf8_lossy(&key).into_owned(),
            lines: pos..end,
            plain,
            members,
        });
        pos = end;
    }
    specs
}

fn render_object(
    renderer: &mut Renderer<'_>,
    cfg: &GenConfig,
    plan: &Plan,
    order: &[(u32, i64, u32)],
    spec: &ObjectSpec,
) -> GenObject {
    let lines = order.get(spec.lines.clone()).unwrap_or(&[]);
    let mut raw = Vec::with_capacity(lines.len() * 4400);
    let mut mid = 0;
    for (n, &(_, _, i)) in lines.iter().enumerate() {
        if n == lines.len() / 2 {
            mid = raw.len();
        }
        if let Some(e) = plan.evs.get(i as usize) {
            renderer.line(e, &cfg.apikey, &mut raw);
        }
        raw.push(b'\n');
    }
    let bytes = if spec.plain {
        raw
    } else if spec.members == 2 {
        let (a, b) = raw.split_at(mid.min(raw.len()));
        let mut out = gzip(a);
        out.extend_from_slice(&gzip(b));
        out
    } else {
        gzip(&raw)
    };
    GenObject {
        key: spec.key.clone(),
        bytes,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 5 + 64), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Renders and compresses objects on a few threads, handing them to `sink` in key order.
fn render_objects<E>(
    cfg: &GenConfig,
    plan: &Plan,
    order: &[(u32, i64, u32)],
    specs: &[ObjectSpec],
    sink: &mut dyn FnMut(GenObject) -> Result<(), E>,
) -> Result<(), E> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    if workers == 1 || specs.len() < 2 {
        let mut r = Renderer::new(plan, &cfg.apikey);
        for spec in specs {
            sink(render_object(&mut r, cfg, plan, order, spec))?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<(usize, GenObject)>(workers * 2);
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                let mut r = Renderer::new(plan, &cfg.apikey);
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    let obj = render_object(&mut r, cfg, plan, order, spec);
                    if tx.send((i, obj)).is_err() {
                        break;
                    }
                }
            });
        }
        // The workers hold the remaining senders; the channel closes when they finish.
        drop(tx);
        let mut pending: BTreeMap<usize, GenObject> = BTreeMap::new();
        let mut want = 0;
        for (i, obj) in rx.iter() {
            pending.insert(i, obj);
            while let Some(obj) = pending.remove(&want) {
                want += 1;
                if let Err(e) = sink(obj) {
                    // Returning drops the receiver, which ends the workers' sends.
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(())
    })
}
