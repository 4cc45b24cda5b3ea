//! Tests of the sinks against the real PostgreSQL (`DPL_TEST_PG_URL`, else
//! `postgres://postgres@127.0.0.1:5432/test`). Each test uses its own schema, dropped at the end.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dpl_core::{RowBatch, Schema, SqlType, Table, Value};
use dpl_sink::{
    Dialect, Error, LoadedObject, RunRecord, Sink, SinkConfig, SinkKind, ddl, quote_ident,
};
use tokio_postgres::{Client, NoTls};

fn pg_url() -> String {
    std::env::var("DPL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn schema_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = jiff::Timestamp::now().as_nanosecond() % 1_000_000_000;
    format!(
        "dpl_t_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn client() -> Client {
    let (client, conn) = tokio_postgres::connect(&pg_url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Drops the test's schema when the test ends, passed or failed.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let stmt = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&self.0));
        // A runtime of its own: the test's runtime may be shutting down or busy.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c = client().await;
                c.batch_execute(&stmt).await.unwrap();
            });
        })
        .join();
    }
}

fn pg_config(schema: &str) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::Postgres,
        pg_url: Some(pg_url()),
        schema: schema.to_owned(),
        pool_size: 2,
        ..SinkConfig::default()
    }
}

/// A row of `table` with the named columns set and every other column NULL.
fn row(schema: &Schema, table: Table, set: &[(&str, Value)]) -> Vec<Value> {
    let mut r = vec![Value::Null; schema.columns(table).len()];
    for (name, v) in set {
        let i = schema
            .index(table, name)
            .unwrap_or_else(|| panic!("{} has no {name}", table.name()));
        r[i] = v.clone();
    }
    r
}

fn batch(schema: &Schema, table: Table, rows: &[Vec<Value>]) -> RowBatch {
    let mut b = RowBatch::new(table, schema.columns(table).len());
    for r in rows {
        b.values.extend(r.iter().cloned());
    }
    b
}

fn record(run_id: &str, objects: &[(&str, &str)]) -> RunRecord {
    RunRecord {
        run_id: run_id.to_owned(),
        started_at: "2026-01-02T03:04:05.123456Z".parse().unwrap(),
        finished_at: "2026-01-02T03:05:00Z".parse().unwrap(),
        objects: objects
            .iter()
            .map(|(k, e)| LoadedObject {
                key: (*k).to_owned(),
                etag: (*e).to_owned(),
                size: 10,
                events: 3,
            })
            .collect(),
        summary_json: "{\"events\":3}".to_owned(),
    }
}

/// Every row of a table as Values, ordered by primary key.
async fn read_table(
    c: &Client,
    schema_name: &str,
    schema: &Schema,
    table: Table,
) -> Vec<Vec<Value>> {
    let cols = schema.columns(table);
    let exprs: Vec<String> = cols
        .iter()
        .map(|col| {
            let q = quote_ident(&col.name);
            match col.ty {
                SqlType::Timestamp => format!("(EXTRACT(EPOCH FROM {q}) * 1000000)::bigint"),
                SqlType::Date => format!("({q} - DATE '1970-01-01')"),
                _ => q,
            }
        })
        .collect();
    let keys: Vec<String> = table.primary_key().iter().map(|k| quote_ident(k)).collect();
    let q = format!(
        "SELECT {} FROM {}.{} ORDER BY {}",
        exprs.join(", "),
        quote_ident(schema_name),
        quote_ident(table.name()),
        keys.join(", ")
    );
    let rows = c.query(&q, &[]).await.unwrap();
    rows.iter()
        .map(|r| {
            cols.iter()
                .enumerate()
                .map(|(i, col)| match col.ty {
                    SqlType::Text(_) => Value::opt_text(r.get::<_, Option<String>>(i)),
                    SqlType::BigInt => r.get::<_, Option<i64>>(i).map_or(Value::Null, Value::Int),
                    SqlType::Double => r.get::<_, Option<f64>>(i).map_or(Value::Null, Value::Float),
                    SqlType::Bool => r.get::<_, Option<bool>>(i).map_or(Value::Null, Value::Bool),
                    SqlType::Timestamp => r.get::<_, Option<i64>>(i).map_or(Value::Null, Value::Ts),
                    SqlType::Date => r.get::<_, Option<i32>>(i).map_or(Value::Null, Value::Date),
                })
                .collect()
        })
        .collect()
}

fn ts(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8, us: i32) -> Value {
    Value::Ts(dpl_core::micros_of(jiff::civil::date(y, mo, d).at(
        h,
        mi,
        s,
        us * 1000,
    )))
}

fn day(y: i16, mo: i8, d: i8) -> Value {
    Value::Date(dpl_core::day_number(jiff::civil::date(y, mo, d)))
}

/// Input rows for a few tables, and the rows expected back after cuts and NUL removal.
#[derive(Clone)]
struct Fixture {
    input: Vec<(Table, Vec<Vec<Value>>)>,
    expected: Vec<(Table, Vec<Vec<Value>>)>,
}

fn fixture(schema: &Schema) -> Fixture {
    let long: String = "é".repeat(300);
    let cut: String = "é".repeat(256);
    let u = |id: &str, apikey: &str, site: Value, extra: Value| {
        row(
            schema,
            Table::Users,
            &[
                ("apikey_visitor_id", Value::text(id)),
                ("apikey", Value::text(apikey)),
                ("visitor_site_id", site),
                ("first_seen_ts", ts(2016, 8, 1, 9, 5, 7, 250_000)),
                ("last_seen_ts", ts(2016, 8, 2, 0, 0, 0, 0)),
                ("date_first_seen", day(2016, 8, 1)),
                ("user_total_pageviews", Value::Int(42)),
                ("user_type", Value::text("Returning, \"quoted\"\nnew line")),
                ("last_custom_extra_data", extra),
                ("user_counter", Value::Int(1)),
            ],
        )
    };
    let users_in = vec![
        u("a1", &long, Value::text(""), Value::text("\\N")),
        u("a2", "site.com", Value::Null, Value::text(" padded ")),
    ];
    let users_out = vec![
        u("a1", &cut, Value::text(""), Value::text("\\N")),
        u("a2", "site.com", Value::Null, Value::text(" padded ")),
    ];
    let d = |id: &str, date: Value, pv: i64| {
        row(
            schema,
            Table::UserDaily,
            &[
                ("apikey_visitor_id", Value::text(id)),
                ("date", date),
                ("pageviews", Value::Int(pv)),
                ("sessions", Value::Int(1)),
            ],
        )
    };
    let daily = vec![
        d("a1", day(2016, 8, 1), 3),
        d("a1", day(2016, 8, 2), 0),
        d("a2", day(1, 1, 1), 1),
    ];
    let e = |line: i64, raw: &str, event_id: Value| {
        row(
            schema,
            Table::Errors,
            &[
                ("source_object", Value::text("events/2016/08/01/a,b.gz")),
                ("line_number", Value::Int(line)),
                ("reason", Value::text("invalid_json")),
                ("event_id", event_id),
                ("raw", Value::text(raw)),
            ],
        )
    };
    let errors_in = vec![
        e(1, "{\"a\":\0\"b\"}", Value::Null),
        e(2, "x\n\\.\ny", Value::text("")),
        e(3, "\\.", Value::text("e3")),
    ];
    let errors_out = vec![
        e(1, "{\"a\":\"b\"}", Value::Null),
        e(2, "x\n\\.\ny", Value::text("")),
        e(3, "\\.", Value::text("e3")),
    ];
    let pv = row(
        schema,
        Table::Pageviews,
        &[
            ("event_id", Value::text("ev1")),
            ("action", Value::text("pageview")),
            ("ip_lat", Value::Float(40.712_776)),
            ("ip_lon", Value::Float(-0.1)),
            ("flags_is_amp", Value::Bool(false)),
            ("flag_is_fbia", Value::Bool(true)),
            ("ts_action", ts(2016, 8, 1, 23, 59, 59, 999_999)),
            ("ts_action_tz", ts(2016, 8, 1, 19, 59, 59, 999_999)),
            ("metadata_pub_date_tmsp", Value::Int(1_470_045_600_000)),
            ("read_time", Value::Ts(i64::MAX)),
        ],
    );
    // A URL key longer than a btree index entry can hold (2704 bytes), hard to compress.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let long_url: String = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789/"[(x % 37) as usize])
        })
        .collect();
    let post = row(
        schema,
        Table::PostContent,
        &[
            (
                "pageview_post_id",
                Value::text(format!("https://x.com/{long_url}")),
            ),
            ("pageviews", Value::Int(2)),
        ],
    );
    let mut pv_out = pv.clone();
    pv_out[schema.index(Table::Pageviews, "read_time").unwrap()] = Value::Null;
    Fixture {
        input: vec![
            (Table::Users, users_in),
            (Table::UserDaily, daily.clone()),
            (Table::Errors, errors_in),
            (Table::Pageviews, vec![pv]),
            (Table::PostContent, vec![post.clone()]),
        ],
        expected: vec![
            (Table::Users, users_out),
            (Table::UserDaily, daily),
            (Table::Errors, errors_out),
            (Table::Pageviews, vec![pv_out]),
            (Table::PostContent, vec![post]),
        ],
    }
}

async fn load(
    sink: &mut Sink,
    schema: &Schema,
    run_id: &str,
    rows: &[(Table, Vec<Vec<Value>>)],
    objects: &[(&str, &str)],
) -> dpl_sink::LoadStats {
    sink.begin(run_id).await.unwrap();
    for (t, rs) in rows {
        sink.write(batch(schema, *t, rs)).await.unwrap();
    }
    sink.commit(&record(run_id, objects)).await.unwrap()
}

async fn snapshot(c: &Client, name: &str, schema: &Schema) -> Vec<Vec<Vec<Value>>> {
    let mut all = Vec::new();
    for t in Table::ALL {
        all.push(read_table(c, name, schema, t).await);
    }
    all
}

#[tokio::test]
async fn postgres_round_trip_keeps_values() {
    let schema = Arc::new(Schema::default());
    let name = schema_name("rt");
    let _drop = DropSchema(name.clone());
    let c = client().await;
    let mut sink = Sink::open(&pg_config(&name), schema.clone()).await.unwrap();
    let f = fixture(&schema);
    let stats = load(
        &mut sink,
        &schema,
        "run-1",
        &f.input,
        &[("events/2016/08/01/a.gz", "e1")],
    )
    .await;
    for (t, want) in &f.expected {
        assert_eq!(
            &read_table(&c, &name, &schema, *t).await,
            want,
            "table {}",
            t.name()
        );
        assert_eq!(
            stats.rows.get(t),
            Some(&(want.len() as u64)),
            "rows of {}",
            t.name()
        );
    }
    assert_eq!(stats.cut_values.get(&Table::Users), Some(&1));
    assert_eq!(stats.nul_removed, 1);
    assert_eq!(stats.out_of_range, 1);
    assert!(stats.duplicate_keys.is_empty());
    let ledger = sink.loaded_objects().await.unwrap();
    assert_eq!(
        ledger,
        HashMap::from([("events/2016/08/01/a.gz".to_owned(), "e1".to_owned())])
    );
    let run = c
        .query_one(
            &format!(
                "SELECT run_id, started_at::text, objects, summary FROM {}.dpl_runs",
                quote_ident(&name)
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "run-1");
    assert_eq!(run.get::<_, String>(1), "2026-01-02 03:04:05.123456");
    assert_eq!(run.get::<_, i64>(2), 1);
    assert_eq!(run.get::<_, String>(3), "{\"events\":3}");
    drop(sink);
}

#[tokio::test]
async fn postgres_load_is_idempotent_and_later_runs_replace() {
    let schema = Arc::new(Schema::default());
    let name = schema_name("idem");
    let _drop = DropSchema(name.clone());
    let c = client().await;
    let mut sink = Sink::open(&pg_config(&name), schema.clone()).await.unwrap();
    let f = fixture(&schema);
    load(&mut sink, &schema, "run-1", &f.input, &[("k1", "e1")]).await;
    let first = snapshot(&c, &name, &schema).await;
    load(&mut sink, &schema, "run-2", &f.input, &[("k1", "e1")]).await;
    assert_eq!(
        snapshot(&c, &name, &schema).await,
        first,
        "the same load twice changed tables"
    );

    // Within one run the first staged row of a key wins; the later run replaces it.
    let d = |pv: i64| {
        row(
            &schema,
            Table::UserDaily,
            &[
                ("apikey_visitor_id", Value::text("a1")),
                ("date", day(2016, 8, 1)),
                ("pageviews", Value::Int(pv)),
            ],
        )
    };
    let stats = load(
        &mut sink,
        &schema,
        "run-3",
        &[(Table::UserDaily, vec![d(7), d(8)])],
        &[("k1", "e2"), ("k2", "x")],
    )
    .await;
    assert_eq!(stats.rows.get(&Table::UserDaily), Some(&1));
    assert_eq!(stats.duplicate_keys.get(&Table::UserDaily), Some(&1));
    let daily = read_table(&c, &name, &schema, Table::UserDaily).await;
    assert_eq!(daily.len(), 3, "replacing must not add rows");
    assert_eq!(daily[0], d(7));
    // Other tables untouched.
    assert_eq!(
        read_table(&c, &name, &schema, Table::Users).await,
        first[Table::Users as usize]
    );
    let ledger = sink.loaded_objects().await.unwrap();
    assert_eq!(ledger.get("k1").map(String::as_str), Some("e2"));
    assert_eq!(ledger.len(), 2);
    drop(sink);
}

#[tokio::test]
async fn postgres_uncommitted_run_changes_nothing() {
    let schema = Arc::new(Schema::default());
    let name = schema_name("rb");
    let _drop = DropSchema(name.clone());
    let c = client().await;
    let f = fixture(&schema);
    {
        let mut sink = Sink::open(&pg_config(&name), schema.clone()).await.unwrap();
        load(&mut sink, &schema, "run-1", &f.input[..1], &[("k1", "e1")]).await;
    }
    let before = snapshot(&c, &name, &schema).await;
    {
        // Dropped before commit.
        let mut sink = Sink::open(&pg_config(&name), schema.clone()).await.unwrap();
        sink.begin("run-2").await.unwrap();
        for (t, rs) in &f.input {
            sink.write(batch(&schema, *t, rs)).await.unwrap();
        }
    }
    assert_eq!(snapshot(&c, &name, &schema).await, before);
    // A failed write discards the run: commit is refused and nothing changed.
    let mut sink = Sink::open(&pg_config(&name), schema.clone()).await.unwrap();
    sink.begin("run-3").await.unwrap();
    sink.write(batch(&schema, Table::UserDaily, &f.input[1].1))
        .await
        .unwrap();
    let mut bad = batch(&schema, Table::Users, &f.input[0].1);
    bad.values[0] = Value::Int(5);
    bad.values[1] = Value::Ts(0);
    assert!(matches!(
        sink.write(bad).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(
        sink.commit(&record("run-3", &[("k9", "e9")]))
            .await
            .is_err()
    );
    assert_eq!(snapshot(&c, &name, &schema).await, before);
    let ledger = sink.loaded_objects().await.unwrap();
    assert_eq!(ledger.keys().collect::<Vec<_>>(), ["k1"]);
    drop(sink);
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn files_sink_parts_load_into_postgres() {
    use futures_util::SinkExt as _;
    use std::os::unix::fs::PermissionsExt as _;

    let schema = Arc::new(Schema::default());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = SinkConfig {
        out: out.clone(),
        part_rows: 2,
        ..SinkConfig::default()
    };
    let f = fixture(&schema);
    // A run that never commits leaves no parts behind.
    {
        let mut sink = Sink::open(&config, schema.clone()).await.unwrap();
        sink.begin("crashed").await.unwrap();
        sink.write(batch(&schema, Table::Users, &f.input[0].1))
            .await
            .unwrap();
    }
    let mut sink = Sink::open(&config, schema.clone()).await.unwrap();
    assert!(!out.join(".staging-crashed").exists(), "stale staging kept");
    sink.begin("r1").await.unwrap();
    for (t, rs) in &f.input {
        sink.write(batch(&schema, *t, rs)).await.unwrap();
    }
    let users_dir = out.join("parsely_users");
    let parts_in = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("part-"))
            .collect();
        v.sort();
        v
    };
    assert!(
        parts_in(&users_dir).is_empty(),
        "parts visible before commit"
    );
    let stats = sink
        .commit(&record("r1", &[("events/2016/08/01/x.gz", "\"etag,1\"")]))
        .await
        .unwrap();
    assert_eq!(stats.rows.get(&Table::UserDaily), Some(&3));
    assert_eq!(stats.cut_values.get(&Table::Users), Some(&1));
    let daily_dir = out.join("parsely_user_daily");
    assert_eq!(
        parts_in(&daily_dir),
        ["part-r1-00000.csv.gz", "part-r1-00001.csv.gz"],
        "3 rows at 2 per part"
    );
    let lines = |p: &str| {
        gunzip(&daily_dir.join(p))
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    };
    assert_eq!(
        (lines("part-r1-00000.csv.gz"), lines("part-r1-00001.csv.gz")),
        (2, 1)
    );
    let mode = std::fs::metadata(daily_dir.join("part-r1-00000.csv.gz"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(&daily_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let columns = std::fs::read_to_string(daily_dir.join("columns")).unwrap();
    assert_eq!(
        columns,
        "apikey_visitor_id\ndate\npageviews\nvideoviews\nengaged_time\nvideo_engaged_time\nsessions\n"
    );
    assert!(
        std::fs::read_to_string(daily_dir.join("columns.sql"))
            .unwrap()
            .contains("CREATE TABLE IF NOT EXISTS \"public\".\"parsely_user_daily\"")
    );
    assert!(!out.join(".staging-r1").exists());

    // Load every table's parts with COPY into tables made from ddl(Postgres).
    let name = schema_name("files");
    let _drop = DropSchema(name.clone());
    let c = client().await;
    c.batch_execute(&ddl(Dialect::Postgres, &name, &schema).unwrap())
        .await
        .unwrap();
    for t in Table::ALL {
        let dir = out.join(t.name());
        let cols: Vec<String> = std::fs::read_to_string(dir.join("columns"))
            .unwrap()
            .lines()
            .map(quote_ident)
            .collect();
        for p in parts_in(&dir) {
            let stmt = format!(
                "COPY {}.{} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
                quote_ident(&name),
                quote_ident(t.name()),
                cols.join(", ")
            );
            let sink = c.copy_in(&stmt).await.unwrap();
            futures_util::pin_mut!(sink);
            sink.send(bytes::Bytes::from(gunzip(&dir.join(p))))
                .await
                .unwrap();
            sink.finish().await.unwrap();
        }
    }
    for (t, want) in &f.expected {
        assert_eq!(
            &read_table(&c, &name, &schema, *t).await,
            want,
            "table {}",
            t.name()
        );
    }
    let ledger = sink.loaded_objects().await.unwrap();
    assert_eq!(
        ledger,
        HashMap::from([("events/2016/08/01/x.gz".to_owned(), "\"etag,1\"".to_owned())])
    );
    // A second run appends; a key listed again takes its new ETag.
    sink.begin("r2").await.unwrap();
    sink.commit(&record(
        "r2",
        &[("events/2016/08/01/x.gz", "e2"), ("y", "e3")],
    ))
    .await
    .unwrap();
    let ledger = sink.loaded_objects().await.unwrap();
    assert_eq!(
        ledger.get("events/2016/08/01/x.gz").map(String::as_str),
        Some("e2")
    );
    assert_eq!(ledger.len(), 2);
    assert_eq!(
        std::fs::read_to_string(out.join("_dpl_runs.csv"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    // A committed run id cannot be reused: its part names would replace the old parts.
    assert!(sink.begin("r1").await.is_err());
    // A failed write discards the run: nothing of it reaches the tables' directories.
    sink.begin("r3").await.unwrap();
    sink.write(batch(&schema, Table::UserDaily, &f.input[1].1))
        .await
        .unwrap();
    let mut bad = batch(&schema, Table::UserDaily, &f.input[1].1);
    bad.values[2] = Value::text("not a number");
    assert!(matches!(
        sink.write(bad).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(sink.commit(&record("r3", &[("z", "e")])).await.is_err());
    assert_eq!(parts_in(&daily_dir).len(), 2);
    assert!(!out.join(".staging-r3").exists());
    assert!(!sink.loaded_objects().await.unwrap().contains_key("z"));
}

#[tokio::test]
async fn ddl_executes_and_view_gives_todays_rolling_loyalty() {
    let schema = Arc::new(Schema::new("subscriber").unwrap());
    let name = schema_name("ddl");
    let _drop = DropSchema(name.clone());
    let c = client().await;
    let script = ddl(Dialect::Postgres, &name, &schema).unwrap();
    c.batch_execute(&script).await.unwrap();
    c.batch_execute(&script).await.unwrap(); // repeatable
    let rows = c
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = $1",
            &[&name],
        )
        .await
        .unwrap();
    let have: std::collections::HashSet<(String, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for t in Table::ALL {
        for col in schema.columns(t) {
            assert!(
                have.contains(&(t.name().to_owned(), col.name.clone())),
                "{}.{} missing",
                t.name(),
                col.name
            );
        }
    }
    for (t, col) in [
        ("dpl_loaded_objects", "etag"),
        ("dpl_runs", "summary"),
        ("parsely_users_current", "rolling_30_day_user_type_today"),
        ("parsely_users_current", "last_subscriber"),
    ] {
        assert!(
            have.contains(&(t.to_owned(), col.to_owned())),
            "{t}.{col} missing"
        );
    }

    // An existing table lacking a column gets it at open; the view then has today's counts.
    c.batch_execute(&format!(
        "ALTER TABLE {}.parsely_users DROP COLUMN user_counter CASCADE",
        quote_ident(&name)
    ))
    .await
    .unwrap();
    let mut sink = Sink::open(&pg_config(&name), schema.clone()).await.unwrap();
    let today = dpl_core::day_number(jiff::Zoned::now().in_tz("America/New_York").unwrap().date());
    let u = |id: &str| {
        row(
            &schema,
            Table::Users,
            &[
                ("apikey_visitor_id", Value::text(id)),
                ("user_counter", Value::Int(1)),
            ],
        )
    };
    let d = |id: &str, ago: i32, pv: i64| {
        row(
            &schema,
            Table::UserDaily,
            &[
                ("apikey_visitor_id", Value::text(id)),
                ("date", Value::Date(today - ago)),
                ("pageviews", Value::Int(pv)),
            ],
        )
    };
    load(
        &mut sink,
        &schema,
        "r1",
        &[
            (Table::Users, vec![u("loyal"), u("lapsed"), u("none")]),
            (
                Table::UserDaily,
                vec![
                    d("loyal", 0, 20),
                    d("loyal", 29, 10),
                    d("loyal", 30, 500),
                    d("lapsed", 30, 100),
                    d("lapsed", 2, 29),
                ],
            ),
        ],
        &[],
    )
    .await;
    let rows = c
        .query(
            &format!("SELECT apikey_visitor_id, rolling_30_day_pageviews_today, rolling_30_day_user_type_today, user_counter FROM {}.parsely_users_current ORDER BY 1", quote_ident(&name)),
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, i64, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        [
            ("lapsed".to_owned(), 29, "Non-Loyalty".to_owned(), 1),
            ("loyal".to_owned(), 30, "Loyalty".to_owned(), 1),
            ("none".to_owned(), 0, "Non-Loyalty".to_owned(), 1),
        ]
    );
    drop(sink);
    // The view follows the configured threshold.
    let mut cfg = pg_config(&name);
    cfg.view.rolling_loyalty_pageviews = 31;
    let sink = Sink::open(&cfg, schema.clone()).await.unwrap();
    let loyal: String = c
        .query_one(
            &format!(
                "SELECT rolling_30_day_user_type_today FROM {}.parsely_users_current \
                 WHERE apikey_visitor_id = 'loyal'",
                quote_ident(&name)
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(loyal, "Non-Loyalty");
    drop(sink);
}

#[tokio::test]
async fn bad_configs_are_refused() {
    let schema = Arc::new(Schema::default());
    for bad in ["x; DROP SCHEMA public", "a\"b", "", "9lives"] {
        let err = Sink::open(&pg_config(bad), schema.clone())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadSchemaName(_)), "{bad:?}: {err}");
    }
    let cfg = SinkConfig {
        kind: SinkKind::Redshift,
        ..SinkConfig::default()
    };
    let err = Sink::open(&cfg, schema.clone()).await.unwrap_err();
    assert!(err.to_string().contains("sink.redshift_url"), "{err}");
    let cfg = SinkConfig {
        kind: SinkKind::Postgres,
        ..SinkConfig::default()
    };
    let err = Sink::open(&cfg, schema.clone()).await.unwrap_err();
    assert!(err.to_string().contains("sink.pg_url"), "{err}");
    let mut null = Sink::open(
        &SinkConfig {
            kind: SinkKind::Null,
            ..SinkConfig::default()
        },
        schema.clone(),
    )
    .await
    .unwrap();
    assert!(matches!(
        null.begin("../etc").await,
        Err(Error::BadRunId(_))
    ));
    null.begin("n1").await.unwrap();
    let f = fixture(&schema);
    let (tx, rx) = async_channel::bounded(2);
    let input = f.input.clone();
    let s2 = schema.clone();
    let producer = tokio::spawn(async move {
        for (t, rs) in &input {
            tx.send(batch(&s2, *t, rs)).await.unwrap();
        }
    });
    dpl_sink::run(&mut null, rx).await.unwrap();
    producer.await.unwrap();
    let stats = null.commit(&record("n1", &[])).await.unwrap();
    assert_eq!(stats.rows.get(&Table::UserDaily), Some(&3));
    let cfg = SinkConfig {
        pg_url: Some("postgres://postgres@127.0.0.1:1/test".to_owned()),
        ..pg_config("public")
    };
    let err = Sink::open(&cfg, schema.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Postgres { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("postgres: connect (sslmode=prefer): "),
        "{err}"
    );
    let toml_err = toml::from_str::<SinkConfig>("kind = \"oracle\"").unwrap_err();
    assert!(toml_err.to_string().contains("postgres"), "{toml_err}");
}

/// A session emitted while open whose key changed later is withdrawn: PostgreSQL deletes it
/// in the run's transaction, before the run's rows replace theirs; the files sink writes the
/// keys next to the parts.
#[tokio::test]
async fn withdrawn_keys_are_deleted_in_the_runs_transaction() {
    let schema = Arc::new(Schema::default());
    let name = schema_name("withdraw");
    let _drop = DropSchema(name.clone());
    let c = client().await;
    let mut sink = Sink::open(&pg_config(&name), schema.clone()).await.unwrap();
    let s = |key: &str| {
        row(
            &schema,
            Table::Sessions,
            &[("session_key", Value::text(key))],
        )
    };
    let d = |date: Value| {
        row(
            &schema,
            Table::UserDaily,
            &[("apikey_visitor_id", Value::text("a1")), ("date", date)],
        )
    };
    let first = [
        (Table::Sessions, vec![s("old"), s("keep")]),
        (
            Table::UserDaily,
            vec![d(day(2016, 8, 1)), d(day(2016, 8, 2))],
        ),
    ];
    load(&mut sink, &schema, "run-1", &first, &[]).await;

    sink.begin("run-2").await.unwrap();
    let mut w = RowBatch::withdrawals(Table::Sessions);
    w.values
        .extend([Value::text("old"), Value::text("never-loaded")]);
    sink.write(w).await.unwrap();
    let mut w = RowBatch::withdrawals(Table::UserDaily);
    w.values.extend([Value::text("a1"), day(2016, 8, 2)]);
    sink.write(w).await.unwrap();
    sink.write(batch(&schema, Table::Sessions, &[s("new")]))
        .await
        .unwrap();
    // Before the commit, readers still see the old rows.
    assert_eq!(
        read_table(&c, &name, &schema, Table::Sessions).await.len(),
        2
    );
    let stats = sink.commit(&record("run-2", &[])).await.unwrap();
    assert_eq!(stats.withdrawn.get(&Table::Sessions), Some(&1));
    assert_eq!(stats.withdrawn.get(&Table::UserDaily), Some(&1));
    let keys: Vec<Value> = read_table(&c, &name, &schema, Table::Sessions)
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(keys, vec![Value::text("keep"), Value::text("new")]);
    assert_eq!(
        read_table(&c, &name, &schema, Table::UserDaily).await,
        vec![d(day(2016, 8, 1))]
    );

    // A withdrawal batch of the wrong width is refused.
    sink.begin("run-3").await.unwrap();
    let mut bad = RowBatch::withdrawals(Table::UserDaily);
    bad.width = 1;
    bad.values.push(Value::text("a1"));
    assert!(sink.write(bad).await.is_err());
    drop(sink);

    // Files sink: the keys land in withdrawn-<run>.csv.gz, in the crate's CSV encoding.
    let dir = tempfile::tempdir().unwrap();
    let config = SinkConfig {
        kind: SinkKind::Files,
        out: dir.path().to_owned(),
        ..SinkConfig::default()
    };
    let mut files = Sink::open(&config, schema.clone()).await.unwrap();
    files.begin("run-9").await.unwrap();
    let mut w = RowBatch::withdrawals(Table::Sessions);
    w.values.extend([Value::text("old"), Value::text("a,b")]);
    files.write(w).await.unwrap();
    let stats = files.commit(&record("run-9", &[])).await.unwrap();
    assert_eq!(stats.withdrawn.get(&Table::Sessions), Some(&2));
    let text = gunzip(
        &dir.path()
            .join("parsely_sessions")
            .join("withdrawn-run-9.csv.gz"),
    );
    assert_eq!(String::from_utf8(text).unwrap(), "old\n\"a,b\"\n");
}
