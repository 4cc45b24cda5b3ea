//! The CSV encoding every sink shares, with and without gzip: rows/s and bytes/s of wide
//! pageview rows shaped like real ones (about a third of the columns NULL, URLs and titles
//! of realistic length, some text needing quotes).

use std::io::Write as _;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dpl_core::{RowBatch, Schema, SqlType, Table, Value};
use dpl_sink::{CsvEncoder, Dialect};

fn rows(schema: &Schema, n: usize) -> RowBatch {
    let cols = schema.columns(Table::Pageviews);
    let mut batch = RowBatch::new(Table::Pageviews, cols.len());
    let url: Value =
        Value::text("https://www.example.com/2026/11/a-long-post-title-about-the-news-123");
    let title: Value = Value::text("A title, with a comma and \"quotes\" in it");
    for r in 0..n {
        for (i, c) in cols.iter().enumerate() {
            let v = if (i + r) % 3 == 0 {
                Value::Null
            } else {
                match c.ty {
                    SqlType::Text(n) if n <= 64 => Value::text("d41d8cd98f00b204e9800998ecf8427e"),
                    SqlType::Text(_) if i % 2 == 0 => url.clone(),
                    SqlType::Text(_) => title.clone(),
                    SqlType::BigInt => Value::Int(1_700_000_000_000 + r as i64),
                    SqlType::Double => Value::Float(40.7128),
                    SqlType::Bool => Value::Bool(r % 2 == 0),
                    SqlType::Timestamp => Value::Ts(1_790_000_000_000_000 + r as i64 * 1_000_123),
                    SqlType::Date => Value::Date(20_400),
                }
            };
            batch.values.push(v);
        }
    }
    batch
}

fn encode(c: &mut Criterion) {
    let schema = Schema::default();
    let batch = rows(&schema, 2_000);
    let cols = schema.columns(Table::Pageviews);
    let mut out = Vec::new();
    let mut enc = CsvEncoder::new(Dialect::Redshift);
    enc.encode_batch(cols, &batch, &mut out).expect("encodes");
    let csv_bytes = out.len() as u64;

    let mut g = c.benchmark_group("sink_encode");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("csv_pageviews_rows", |b| {
        b.iter(|| {
            out.clear();
            enc.encode_batch(cols, &batch, &mut out).expect("encodes");
            out.len()
        })
    });
    g.throughput(Throughput::Bytes(csv_bytes));
    g.bench_function("csv_plus_gzip1_bytes", |b| {
        b.iter(|| {
            out.clear();
            enc.encode_batch(cols, &batch, &mut out).expect("encodes");
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&out).expect("compresses");
            gz.finish().expect("compresses").len()
        })
    });
    g.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
