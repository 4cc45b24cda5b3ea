//! The Redshift path without a Redshift: the staged parts and manifests, read back from an
//! in-process S3 server, load into the real PostgreSQL with the same CSV options and the
//! same transaction (every statement of `load_steps` but COPY, which becomes
//! `COPY FROM STDIN`), and give the same tables as the PostgreSQL sink. Plus: every
//! statement parses with sqlparser's Redshift dialect, hostile values are refused or
//! quoted harmlessly, and staged objects are encrypted when asked, swept and deleted.
#![allow(clippy::unwrap_used)]

mod common;
mod pgutil;
#[path = "support/tls_and_ledger.rs"]
mod tls_and_ledger;

use std::io::Read as _;
use std::sync::Arc;

use bytes::Bytes;
use common::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use dpl_core::{RowBatch, Schema, Table, Value};
use dpl_sink::redshift_sql::{self as rsql, StepKind, TableLoad};
use dpl_sink::staging::{S3Stager, StageOptions, StagedTable, s3_client};
use dpl_sink::{
    Compression, CopyAuth, Dialect, Error, LoadStats, LoadedObject, RunRecord, Sink, SinkConfig,
    SinkKind, Sse, ddl, quote_ident, run_load_steps, sql_literal,
};
use futures_util::{SinkExt as _, pin_mut};
use pgutil::{DropSchema, batch, client, day, pg_url, read_table, row, schema_name, ts};
use sqlparser::dialect::RedshiftSqlDialect;
use sqlparser::parser::Parser;

fn rs_config(server: &S3Server, prefix: &str) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::Redshift,
        redshift_url: Some("postgres://loader:pw@127.0.0.1:1/dw".to_owned()),
        staging_bucket: Some(BUCKET.to_owned()),
        staging_prefix: prefix.to_owned(),
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
        region: Some("us-east-1".to_owned()),
        s3_endpoint_url: Some(server.endpoint.clone()),
        part_bytes: 2048,
        parts_per_table: Some(3),
        ..SinkConfig::default()
    }
}

async fn stager(config: &SinkConfig, schema: &Arc<Schema>) -> S3Stager {
    config.validate().unwrap();
    S3Stager::new(
        s3_client(config).await,
        schema.clone(),
        StageOptions::from_config(config, 1),
    )
    .unwrap()
}

fn record(run_id: &str) -> RunRecord {
    RunRecord {
        run_id: run_id.to_owned(),
        started_at: "2026-01-02T03:04:05.123456Z".parse().unwrap(),
        finished_at: "2026-01-02T03:05:00Z".parse().unwrap(),
        objects: vec![
            LoadedObject {
                key: "events/2026/01/01/a'b.gz".to_owned(),
                etag: "e1".to_owned(),
                size: 10,
                events: 3,
            },
            LoadedObject {
                key: "events/2026/01/01/c; --.gz".to_owned(),
                etag: "e2".to_owned(),
                size: 20,
                events: 5,
            },
        ],
        summary_json: "{\"events\":8,\"note\":\"it's\"}".to_owned(),
    }
}

const TRICKY: &[&str] = &[
    "plain",
    "a,b",
    "q\"uote",
    "line\nbreak",
    "\\N",
    "",
    " padded ",
    "\\.",
    "é ünï 🦀",
    "tab\tend\t",
    "x'; DROP TABLE t; --",
    "cr\r\nlf",
];

/// Batches of several tables: duplicate keys across batches (the first staged wins), a
/// NULL key, text that needs quoting, text too long for its column, NULs, edge dates.
fn input(schema: &Schema) -> Vec<RowBatch> {
    let mut out = Vec::new();
    for b in 0..8 {
        let mut rows = Vec::new();
        for j in 0..40 {
            let i = b * 40 + j;
            let id = if b == 5 && j < 10 {
                Value::text(format!("ev{j}"))
            } else if b == 2 && j == 7 {
                Value::Null
            } else {
                Value::text(format!("ev{i}"))
            };
            let action = if j == 3 {
                Value::text("x".repeat(300))
            } else if b == 5 {
                Value::text("later")
            } else {
                Value::text(TRICKY[i % TRICKY.len()])
            };
            rows.push(row(
                schema,
                Table::Pageviews,
                &[
                    ("event_id", id),
                    ("action", action),
                    ("apikey_visitor_id", Value::text(format!("v{}", i % 7))),
                    (
                        "ts_action",
                        ts(2016, 8, 1, (i % 24) as i8, 5, 7, (i as i32 % 3) * 250_000),
                    ),
                    ("ip_lat", Value::Float(40.712_776 + i as f64 / 1000.0)),
                    ("flags_is_amp", Value::Bool(i % 2 == 0)),
                    (
                        "read_time",
                        if i == 9 {
                            Value::Ts(i64::MAX)
                        } else {
                            Value::Null
                        },
                    ),
                ],
            ));
        }
        out.push(batch(schema, Table::Pageviews, &rows));
    }
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
    out.push(batch(
        schema,
        Table::UserDaily,
        &[
            d("a1", day(2016, 8, 1), 3),
            d("a1", day(2016, 8, 2), 0),
            d("a2", day(1, 1, 1), 1),
            d("a3", day(9999, 12, 31), 2),
        ],
    ));
    out.push(batch(
        schema,
        Table::UserDaily,
        &[d("a1", day(2016, 8, 1), 99), d("a4", Value::Null, 1)],
    ));
    let e = |line: i64, raw: &str| {
        row(
            schema,
            Table::Errors,
            &[
                ("source_object", Value::text("events/2016/08/01/a,b.gz")),
                ("line_number", Value::Int(line)),
                ("reason", Value::text("invalid_json")),
                ("raw", Value::text(raw)),
            ],
        )
    };
    out.push(batch(
        schema,
        Table::Errors,
        &[e(1, "{\"a\":\0\"b\"}"), e(2, "x\n\\.\ny"), e(3, "\\.")],
    ));
    out
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

async fn get(server: &S3Server, key: &str) -> Vec<u8> {
    let o = server
        .client()
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn list(server: &S3Server, prefix: &str) -> Vec<String> {
    let out = server
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// What COPY would do with a manifest, done with PostgreSQL: read the manifest, check its
/// entries, decompress every part and `COPY FROM STDIN` it with the same CSV options.
async fn copy_from_manifest(
    c: &tokio_postgres::Client,
    server: &S3Server,
    schema: &Schema,
    staged: &StagedTable,
    compression: Compression,
) -> Result<(), tokio_postgres::Error> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(server, &staged.manifest_key).await).unwrap();
    let entries = manifest["entries"].as_array().unwrap();
    assert_eq!(entries.len(), staged.parts.len());
    let stmt = format!(
        "COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
        quote_ident(&dpl_sink::staging_name(staged.table)),
        rsql::staged_columns(schema, staged.table)
    );
    for (e, part) in entries.iter().zip(&staged.parts) {
        let url = e["url"].as_str().unwrap();
        assert_eq!(url, format!("s3://{BUCKET}/{}", part.key));
        assert_eq!(e["mandatory"], serde_json::Value::Bool(true));
        let body = get(server, &part.key).await;
        assert_eq!(
            e["meta"]["content_length"].as_u64(),
            Some(body.len() as u64)
        );
        let csv = match compression {
            Compression::Gzip => gunzip(&body),
            Compression::Zstd => zstd::decode_all(&body[..]).unwrap(),
        };
        let sink = c.copy_in::<_, Bytes>(&stmt).await?;
        pin_mut!(sink);
        sink.send(Bytes::from(csv)).await?;
        sink.finish().await?;
    }
    Ok(())
}

async fn staged_load_matches_postgres_sink(compression: Compression, sse: Sse) {
    let schema = Arc::new(Schema::default());
    let server = S3Server::start().await;
    let c = client().await;

    // The PostgreSQL sink.
    let pg_name = schema_name("rs_pg");
    let _drop_pg = DropSchema(pg_name.clone());
    let mut pg = Sink::open(
        &SinkConfig {
            kind: SinkKind::Postgres,
            pg_url: Some(pg_url()),
            schema: pg_name.clone(),
            pool_size: 1,
            ..SinkConfig::default()
        },
        schema.clone(),
    )
    .await
    .unwrap();
    pg.begin("run-1").await.unwrap();
    for b in input(&schema) {
        pg.write(b).await.unwrap();
    }
    let pg_stats = pg.commit(&record("run-1")).await.unwrap();

    // The Redshift staging, then its transaction on PostgreSQL.
    let mut config = rs_config(&server, "dpl-staging/");
    config.compression = compression;
    config.sse = sse;
    if sse == Sse::Kms {
        config.sse_kms_key_id = Some("arn:aws:kms:us-east-1:123456789012:key/k-1".to_owned());
    }
    let st = stager(&config, &schema).await;
    let mut run = st.begin("run-1").unwrap();
    for b in input(&schema) {
        run.write(b).await.unwrap();
    }
    let (staged, encode) = run.finish().await.unwrap();
    assert_eq!(
        staged.iter().map(|s| s.table).collect::<Vec<_>>(),
        vec![Table::Pageviews, Table::UserDaily, Table::Errors]
    );
    let pv = &staged[0];
    assert!(pv.parts.len() >= 3, "{} parts", pv.parts.len());
    assert_eq!(pv.rows, 320);
    let ext = match compression {
        Compression::Gzip => ".csv.gz",
        Compression::Zstd => ".csv.zst",
    };
    for p in &pv.parts {
        assert!(
            p.key
                .starts_with("dpl-staging/run-1/parsely_pageviews/part-"),
            "{}",
            p.key
        );
        assert!(p.key.ends_with(ext), "{}", p.key);
    }
    assert_eq!(
        pv.manifest_key,
        "dpl-staging/run-1/parsely_pageviews.manifest"
    );
    assert_eq!(
        pv.manifest_url,
        format!("s3://{BUCKET}/dpl-staging/run-1/parsely_pageviews.manifest")
    );

    let rs_name = schema_name("rs_rs");
    let _drop_rs = DropSchema(rs_name.clone());
    c.batch_execute(&ddl(Dialect::Postgres, &rs_name, &schema).unwrap())
        .await
        .unwrap();
    let auth = CopyAuth::Keys {
        access_key_id: ACCESS_KEY.to_owned(),
        secret_access_key: SECRET_KEY.to_owned(),
        session_token: None,
    };
    let tables: Vec<TableLoad> = staged
        .iter()
        .map(|s| TableLoad {
            table: s.table,
            manifest_url: s.manifest_url.clone(),
        })
        .collect();
    let steps = rsql::load_steps(
        &rs_name,
        &schema,
        &tables,
        &auth,
        Some("us-east-1"),
        compression,
        &record("run-1"),
    )
    .unwrap();
    // The loader's own step runner, with COPY done from the staged parts.
    let stats = run_load_steps(&c, &steps, &staged, &auth, |_, table| {
        copy_from_manifest(&c, &server, &schema, table, compression)
    })
    .await
    .unwrap();
    let (rows, dups, nulls) = (stats.rows, stats.duplicate_keys, stats.null_keys);
    assert_eq!(rows, pg_stats.rows);
    assert_eq!(dups, pg_stats.duplicate_keys);
    assert_eq!(nulls, pg_stats.null_keys);
    assert_eq!(pg_stats.duplicate_keys.get(&Table::Pageviews), Some(&10));
    assert_eq!(pg_stats.null_keys.get(&Table::Pageviews), Some(&1));
    assert_eq!(encode.nul_removed, pg_stats.nul_removed);
    assert_eq!(encode.out_of_range, pg_stats.out_of_range);
    let cut: u64 = encode.cut_values.iter().sum();
    assert_eq!(cut, pg_stats.cut_values.values().sum::<u64>());
    assert_eq!(cut, 8);
    let _: &LoadStats = &pg_stats;

    for t in Table::ALL {
        let a = read_table(&c, &pg_name, &schema, t).await;
        let b = read_table(&c, &rs_name, &schema, t).await;
        assert_eq!(a, b, "{}", t.name());
    }
    // Spot checks of what the comparison covers.
    let pvs = read_table(&c, &rs_name, &schema, Table::Pageviews).await;
    // 320 staged, 10 of them repeat an earlier key, 1 has a NULL key.
    assert_eq!(pvs.len(), 309);
    let action = schema.index(Table::Pageviews, "action").unwrap();
    let id = schema.index(Table::Pageviews, "event_id").unwrap();
    let ev0 = pvs.iter().find(|r| r[id] == Value::text("ev0")).unwrap();
    assert_eq!(
        ev0[action],
        Value::text("plain"),
        "the first staged row wins"
    );
    for s in TRICKY {
        assert!(pvs.iter().any(|r| r[action] == Value::text(*s)), "{s:?}");
    }
    // The ledger rows too.
    for (table, cols) in [
        (
            "dpl_loaded_objects",
            "object_key, etag, size_bytes, events, run_id, loaded_at",
        ),
        (
            "dpl_runs",
            "run_id, started_at, finished_at, objects, summary",
        ),
    ] {
        let exprs: Vec<String> = cols.split(", ").map(|c| format!("{c}::text")).collect();
        let mut seen = Vec::new();
        for name in [&pg_name, &rs_name] {
            let q = format!(
                "SELECT {} FROM {}.{table} ORDER BY 1",
                exprs.join(", "),
                quote_ident(name)
            );
            let rows: Vec<Vec<Option<String>>> = c
                .query(&q, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (0..exprs.len()).map(|i| r.get(i)).collect())
                .collect();
            seen.push(rows);
        }
        assert_eq!(seen[0], seen[1], "{table}");
        assert!(!seen[0].is_empty());
    }

    // A failing COPY in a second run rolls everything back and names the table.
    let before: Vec<_> = {
        let mut v = Vec::new();
        for t in Table::ALL {
            v.push(read_table(&c, &rs_name, &schema, t).await);
        }
        v
    };
    let steps2 = rsql::load_steps(
        &rs_name,
        &schema,
        &tables,
        &auth,
        None,
        compression,
        &record("run-2"),
    )
    .unwrap();
    let err = run_load_steps(&c, &steps2, &staged, &auth, |_, table| {
        let c = &c;
        let server = &server;
        let schema = &schema;
        async move {
            if table.table == Table::UserDaily {
                let stmt = format!(
                    "COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
                    quote_ident(&dpl_sink::staging_name(table.table)),
                    rsql::staged_columns(schema, table.table)
                );
                let sink = c.copy_in::<_, Bytes>(&stmt).await?;
                pin_mut!(sink);
                sink.send(Bytes::from_static(b"a1,not-a-date,1,2,3,4,5,0\n"))
                    .await?;
                sink.finish().await.map(drop)
            } else {
                copy_from_manifest(c, server, schema, table, compression).await
            }
        }
    })
    .await
    .unwrap_err();
    match &err {
        Error::LoadFailed {
            table,
            message,
            rows,
        } => {
            assert_eq!(*table, "parsely_user_daily");
            assert!(
                message.contains("22007") || message.contains("date"),
                "{message}"
            );
            // PostgreSQL has no stl_load_errors.
            assert!(rows.is_empty());
        }
        other => panic!("{other}"),
    }
    assert!(!err.to_string().contains(SECRET_KEY));
    for (t, b) in Table::ALL.iter().zip(&before) {
        assert_eq!(
            &read_table(&c, &rs_name, &schema, *t).await,
            b,
            "{}",
            t.name()
        );
    }
    let runs: i64 = c
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.dpl_runs WHERE run_id = 'run-2'",
                quote_ident(&rs_name)
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 0);

    // SSE headers on every upload, none on other requests.
    let puts: Vec<_> = server
        .faults
        .log()
        .into_iter()
        .filter(|s| s.method == "PUT")
        .collect();
    assert_eq!(
        puts.len(),
        staged.iter().map(|s| s.parts.len() + 1).sum::<usize>()
    );
    for p in &puts {
        match sse {
            Sse::None => assert_eq!(p.sse, None),
            Sse::S3 => assert_eq!(p.sse.as_deref(), Some("AES256"), "{}", p.key),
            Sse::Kms => {
                assert_eq!(p.sse.as_deref(), Some("aws:kms"), "{}", p.key);
                assert_eq!(
                    p.sse_kms_key_id.as_deref(),
                    Some("arn:aws:kms:us-east-1:123456789012:key/k-1")
                );
            }
        }
    }

    // After the commit the loader deletes what it staged.
    assert!(!list(&server, "dpl-staging/run-1/").await.is_empty());
    run.discard().await.unwrap();
    assert_eq!(list(&server, "dpl-staging/").await, Vec::<String>::new());
}

#[tokio::test]
async fn gzip_staging_loads_like_the_postgres_sink() {
    staged_load_matches_postgres_sink(Compression::Gzip, Sse::S3).await;
}

#[tokio::test]
async fn zstd_staging_loads_like_the_postgres_sink() {
    staged_load_matches_postgres_sink(Compression::Zstd, Sse::Kms).await;
}

#[tokio::test]
async fn other_runs_are_listed_and_swept() {
    let schema = Arc::new(Schema::default());
    let server = S3Server::start().await;
    let config = rs_config(&server, "st'age; --/");
    let st = stager(&config, &schema).await;
    let mut old = st.begin("crashed-run").unwrap();
    for b in input(&schema) {
        old.write(b).await.unwrap();
    }
    let (staged, _) = old.finish().await.unwrap();
    let expected: usize = staged.iter().map(|s| s.parts.len() + 1).sum();
    drop(old); // a crash: nothing deleted
    server.write("st'age; --/not a run id/x", b"ignored");
    server.write("elsewhere/crashed-run/x", b"outside the prefix");

    let mut others = st.other_runs("new-run").await.unwrap();
    assert_eq!(others.len(), 1);
    let other = others.pop().unwrap();
    assert_eq!(other.run_id, "crashed-run");
    assert_eq!(other.keys.len(), expected);
    assert!(other.newest.is_some());
    assert!(
        other
            .keys
            .iter()
            .all(|k| k.starts_with("st'age; --/crashed-run/"))
    );
    // The current run is never listed.
    assert!(st.other_runs("crashed-run").await.unwrap().is_empty());

    st.delete_keys(&other.keys).await.unwrap();
    assert_eq!(
        list(&server, "st'age; --/crashed-run/").await,
        Vec::<String>::new()
    );
    assert_eq!(list(&server, "elsewhere/").await.len(), 1);
}

fn parse_one(sql: &str) -> String {
    let parsed = Parser::parse_sql(&RedshiftSqlDialect {}, sql)
        .unwrap_or_else(|e| panic!("does not parse as Redshift SQL: {e}\n{sql}"));
    assert_eq!(parsed.len(), 1, "{sql}");
    parsed[0].to_string()
}

fn all_tables() -> Vec<TableLoad> {
    Table::ALL
        .iter()
        .map(|t| TableLoad {
            table: *t,
            manifest_url: format!("s3://b-1/dpl-staging/run-1/{}.manifest", t.name()),
        })
        .collect()
}

#[test]
fn every_redshift_statement_parses() {
    let schema = Schema::default();
    let mut statements = Vec::new();
    let auths = [
        CopyAuth::IamRole("arn:aws:iam::123456789012:role/dpl-copy".to_owned()),
        CopyAuth::Keys {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "se/cr+et".to_owned(),
            session_token: Some("tok".to_owned()),
        },
    ];
    for (auth, region, compression) in [
        (&auths[0], None, Compression::Gzip),
        (&auths[1], Some("eu-west-1"), Compression::Zstd),
    ] {
        let steps = rsql::load_steps(
            "dw",
            &schema,
            &all_tables(),
            auth,
            region,
            compression,
            &record("run-1"),
        )
        .unwrap();
        // BEGIN, per table 2 then 4, ledger 4, COMMIT.
        assert_eq!(steps.len(), 1 + 6 * Table::ALL.len() + 4 + 1);
        assert_eq!(
            steps
                .iter()
                .filter(|s| matches!(s.kind, StepKind::Copy(_)))
                .count(),
            Table::ALL.len()
        );
        for s in steps.iter().filter(|s| s.sql.starts_with("DROP")) {
            // Only the session's own temporary tables, by exact name.
            assert!(s.sql.starts_with("DROP TABLE \"stg_parsely_"), "{}", s.sql);
        }
        statements.extend(steps.into_iter().map(|s| s.sql));
    }
    let ddl = rsql::ddl_statements("dw", &schema, &dpl_sink::ViewOptions::default()).unwrap();
    // Schema, 11 tables, 2 ledger tables, the view.
    assert_eq!(ddl.len(), 1 + Table::ALL.len() + 2 + 1);
    statements.extend(ddl);
    statements.extend([
        rsql::LOAD_ERRORS_QUERY.to_owned(),
        rsql::SLICES_QUERY.to_owned(),
        rsql::run_committed_query("dw", "run-1").unwrap(),
        rsql::existing_columns_query("dw").unwrap(),
        rsql::loaded_objects_query("dw"),
        rsql::drop_view("dw"),
        rsql::add_column("dw", Table::Users, &schema.columns(Table::Users)[0]),
        "ROLLBACK".to_owned(),
    ]);
    for s in &statements {
        let round = parse_one(s);
        // Layout clauses survive the parse (nothing was skipped).
        for clause in [
            "DISTKEY",
            "SORTKEY",
            "DISTSTYLE ALL",
            "MANIFEST",
            "IAM_ROLE",
        ] {
            if s.contains(clause) {
                assert!(round.contains(clause), "{clause} lost:\n{s}\n{round}");
            }
        }
    }
    // The parser is strict: a misspelt option or a second statement is an error.
    for bad in [
        "COPY t FROM 's3://b/k' IAM_ROLE 'r' MANIFEST CSV GZIP BOGUS",
        "COPY t FROM 's3://b/k' IAM_ROLE 'r'; DROP TABLE x; --' MANIFEST",
    ] {
        let parsed = Parser::parse_sql(&RedshiftSqlDialect {}, bad);
        assert!(parsed.is_err() || parsed.unwrap().len() != 1, "{bad}");
    }
}

#[test]
fn copy_statement_has_the_documented_options() {
    let schema = Schema::default();
    let sql = rsql::copy_statement(
        &schema,
        Table::UserDaily,
        "s3://b-1/p/run-1/parsely_user_daily.manifest",
        &CopyAuth::IamRole("arn:aws:iam::123456789012:role/dpl-copy".to_owned()),
        Some("us-west-2"),
        Compression::Gzip,
    )
    .unwrap();
    assert_eq!(
        sql,
        "COPY \"stg_parsely_user_daily\" (\"apikey_visitor_id\", \"date\", \"pageviews\", \
         \"videoviews\", \"engaged_time\", \"video_engaged_time\", \"sessions\", dpl_ord) \
         FROM 's3://b-1/p/run-1/parsely_user_daily.manifest' \
         IAM_ROLE 'arn:aws:iam::123456789012:role/dpl-copy' REGION 'us-west-2' MANIFEST CSV \
         GZIP NULL AS '\\\\N' TIMEFORMAT 'YYYY-MM-DD HH:MI:SS' DATEFORMAT 'YYYY-MM-DD' \
         ACCEPTINVCHARS STATUPDATE OFF COMPUPDATE OFF"
    );
    let parsed = parse_one(&sql);
    for opt in [
        "IAM_ROLE",
        "MANIFEST",
        "CSV",
        "GZIP",
        "NULL",
        "ACCEPTINVCHARS",
        "REGION",
    ] {
        assert!(parsed.contains(opt), "{opt} lost in {parsed}");
    }
}

#[test]
fn hostile_values_are_refused_or_quoted() {
    let schema = Schema::default();
    // The audited literal function.
    assert_eq!(sql_literal("a'b").unwrap(), "'a''b'");
    assert_eq!(
        sql_literal("a\\'; DROP TABLE x; --").unwrap(),
        "'a\\\\''; DROP TABLE x; --'"
    );
    assert_eq!(sql_literal("é\n").unwrap(), "'é\n'");
    assert!(sql_literal("a\0").is_err());

    // Role ARNs with quotes or semicolons: refused by config validation and by COPY.
    for bad in [
        "arn:aws:iam::123456789012:role/x'; DROP TABLE t; --",
        "arn:aws:iam::123456789012:role/a;b",
        "arn:aws:iam::123456789012:user/x",
        "arn:aws:iam::12345:role/x",
        "arn:aws:iam::123456789012:role/",
        "x",
    ] {
        let server_less = SinkConfig {
            kind: SinkKind::Redshift,
            redshift_url: Some("postgres://u:p@h:5439/db".to_owned()),
            staging_bucket: Some("b-1".to_owned()),
            iam_role: Some(bad.to_owned()),
            ..SinkConfig::default()
        };
        let err = server_less.validate().unwrap_err().to_string();
        assert!(err.contains("sink.iam_role"), "{bad:?}: {err}");
        let err = rsql::copy_statement(
            &schema,
            Table::Users,
            "s3://b-1/k",
            &CopyAuth::IamRole(bad.to_owned()),
            None,
            Compression::Gzip,
        )
        .unwrap_err();
        assert!(err.to_string().contains("sink.iam_role"), "{err}");
    }

    // S3 keys with quotes (a staging prefix, object keys in the ledger): quoted harmlessly.
    let url = "s3://b-1/we'ird; --/run-1/parsely_users.manifest";
    let sql = rsql::copy_statement(
        &schema,
        Table::Users,
        url,
        &CopyAuth::IamRole("arn:aws:iam::123456789012:role/r".to_owned()),
        None,
        Compression::Zstd,
    )
    .unwrap();
    assert!(sql.contains(" FROM 's3://b-1/we''ird; --/run-1/parsely_users.manifest' IAM_ROLE"));
    let parsed = parse_one(&sql);
    assert!(parsed.contains("ZSTD"), "{parsed}");
    let ledger = rsql::ledger_statements("dw", &record("r'1")).unwrap();
    assert!(ledger[0].contains("IN ('events/2026/01/01/a''b.gz', 'events/2026/01/01/c; --.gz')"));
    assert!(ledger[3].contains("'{\"events\":8,\"note\":\"it''s\"}'"));
    for s in &ledger {
        parse_one(s);
    }
    for s in &ledger[1..] {
        assert!(s.contains("'r''1'"), "{s}");
    }

    // Secret keys with quotes are quoted; with the credentials separators, refused.
    let keys = CopyAuth::Keys {
        access_key_id: "AKID".to_owned(),
        secret_access_key: "ab'c\\d".to_owned(),
        session_token: None,
    };
    let sql = rsql::copy_statement(
        &schema,
        Table::Users,
        "s3://b-1/k",
        &keys,
        None,
        Compression::Gzip,
    )
    .unwrap();
    assert!(sql.contains("CREDENTIALS 'aws_access_key_id=AKID;aws_secret_access_key=ab''c\\\\d'"));
    parse_one(&sql);
    let redacted = rsql::redact(&sql, &keys);
    assert!(
        !redacted.contains("ab'c") && !redacted.contains("ab''c"),
        "{redacted}"
    );
    assert!(redacted.contains("CREDENTIALS '***'"), "{redacted}");
    let keys = CopyAuth::Keys {
        access_key_id: "AKID".to_owned(),
        secret_access_key: "a;token=x".to_owned(),
        session_token: None,
    };
    assert!(
        rsql::copy_statement(
            &schema,
            Table::Users,
            "s3://b-1/k",
            &keys,
            None,
            Compression::Gzip
        )
        .is_err()
    );
    assert!(format!("{keys:?}").contains("***") && !format!("{keys:?}").contains("token=x"));

    // Hostile schema names and regions.
    for bad in ["x\"; DROP TABLE t; --", "a b", "é"] {
        let err = rsql::load_steps(
            bad,
            &schema,
            &all_tables(),
            &CopyAuth::IamRole("arn:aws:iam::123456789012:role/r".to_owned()),
            None,
            Compression::Gzip,
            &record("r1"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::BadSchemaName(_)), "{bad:?}: {err}");
    }
    let err = rsql::copy_statement(
        &schema,
        Table::Users,
        "s3://b-1/k",
        &CopyAuth::IamRole("arn:aws:iam::123456789012:role/r".to_owned()),
        Some("us-east-1' --"),
        Compression::Gzip,
    )
    .unwrap_err();
    assert!(err.to_string().contains("sink.region"), "{err}");
    assert!(rsql::validate_prefix("a\n/").is_err());
    assert!(rsql::validate_bucket("Bad_Bucket").is_err());
}

#[test]
fn failed_copy_error_lists_load_errors() {
    let err = Error::LoadFailed {
        table: "parsely_users",
        message: "XX000: Load into table 'stg_parsely_users' failed.".to_owned(),
        rows: vec![dpl_sink::LoadErrorRow {
            file: "s3://b/p/run/parsely_users/part-00000.csv.gz".to_owned(),
            line: 12,
            column: "first_seen_ts".to_owned(),
            column_type: "timestamp".to_owned(),
            raw_value: "20x6-01-01".to_owned(),
            code: 1206,
            reason: "Invalid timestamp format or value".to_owned(),
        }],
    };
    let text = err.to_string();
    assert!(text.starts_with(
        "redshift: COPY into the staging table of parsely_users failed: XX000: Load into table"
    ));
    assert!(text.contains(
        "s3://b/p/run/parsely_users/part-00000.csv.gz line 12 column first_seen_ts \
         (timestamp): Invalid timestamp format or value [code 1206], raw value \"20x6-01-01\""
    ));
}

#[test]
fn config_debug_hides_secrets() {
    let config = SinkConfig {
        kind: SinkKind::Redshift,
        pg_url: Some("postgres://u:pgsecret@h/db".to_owned()),
        redshift_url: Some("postgres://u:rssecret@cluster:5439/db?sslmode=verify-full".to_owned()),
        access_key_id: Some("AKIDSECRET".to_owned()),
        secret_access_key: Some("secretkey".to_owned()),
        session_token: Some("sessiontok".to_owned()),
        ..SinkConfig::default()
    };
    let shown = format!("{config:?}");
    for secret in [
        "pgsecret",
        "rssecret",
        "AKIDSECRET",
        "secretkey",
        "sessiontok",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("postgres://u:***@cluster:5439/db?sslmode=verify-full"));
}

#[test]
fn redshift_config_is_validated() {
    let base = SinkConfig {
        kind: SinkKind::Redshift,
        redshift_url: Some("postgres://u:p@h:5439/db".to_owned()),
        staging_bucket: Some("b-1".to_owned()),
        iam_role: Some("arn:aws:iam::123456789012:role/r".to_owned()),
        ..SinkConfig::default()
    };
    base.validate().unwrap();
    assert_eq!(base.effective_compression_level(), 1);
    let cases: Vec<(SinkConfig, &str)> = vec![
        (
            SinkConfig {
                iam_role: None,
                ..base.clone()
            },
            "sink.iam_role",
        ),
        (
            SinkConfig {
                staging_bucket: None,
                ..base.clone()
            },
            "sink.staging_bucket",
        ),
        (
            SinkConfig {
                compression: Compression::Zstd,
                compression_level: Some(23),
                ..base.clone()
            },
            "sink.compression_level",
        ),
        (
            SinkConfig {
                compression_level: Some(0),
                ..base.clone()
            },
            "sink.compression_level",
        ),
        (
            SinkConfig {
                staging_prefix: "no-slash".to_owned(),
                ..base.clone()
            },
            "sink.staging_prefix",
        ),
        (
            SinkConfig {
                parts_per_table: Some(0),
                ..base.clone()
            },
            "sink.parts_per_table",
        ),
        (
            SinkConfig {
                sse_kms_key_id: Some("k".to_owned()),
                ..base.clone()
            },
            "sink.sse_kms_key_id",
        ),
        (
            SinkConfig {
                access_key_id: Some("a".to_owned()),
                ..base.clone()
            },
            "sink.access_key_id",
        ),
    ];
    for (c, key) in cases {
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
    let zstd = SinkConfig {
        compression: Compression::Zstd,
        ..base.clone()
    };
    assert_eq!(zstd.effective_compression_level(), 3);
    let parsed: SinkConfig = toml::from_str(
        "kind = \"redshift\"\nsslmode = \"verify-full\"\ncompression = \"zstd\"\nsse = \"kms\"\n\
         part_bytes = 1048576\n",
    )
    .unwrap();
    assert_eq!(parsed.sslmode, Some(dpl_sink::SslMode::VerifyFull));
    assert_eq!(parsed.compression, Compression::Zstd);
    assert_eq!(parsed.sse, Sse::Kms);
    assert_eq!(parsed.part_bytes, 1 << 20);
    assert_eq!(parsed.staging_prefix, "dpl-staging/");
}

/// Withdrawn keys become DELETEs that parse as Redshift SQL and quote hostile values
/// harmlessly; a hostile schema name is refused.
#[test]
fn withdraw_statements_parse_and_quote_values() {
    let schema = Schema::default();
    let keys = vec![
        (Table::Sessions, vec![Some("k1".to_owned())]),
        (
            Table::Sessions,
            vec![Some("it's; DROP TABLE x; --".to_owned())],
        ),
        (
            Table::UserDaily,
            vec![Some("a1".to_owned()), Some("2016-08-02".to_owned())],
        ),
    ];
    let statements = rsql::withdraw_statements("dw", &schema, &keys).unwrap();
    assert_eq!(statements.len(), 2, "{statements:#?}");
    for s in &statements {
        let parsed = parse_one(s);
        assert!(parsed.starts_with("DELETE FROM"), "{parsed}");
    }
    assert!(
        statements[0].contains("'it''s; DROP TABLE x; --'"),
        "{}",
        statements[0]
    );
    assert!(rsql::withdraw_statements("dw\"; --", &schema, &keys).is_err());
}
