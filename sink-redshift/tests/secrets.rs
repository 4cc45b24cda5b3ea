//! Secrets never leak on the Redshift path (issue 6, docs/security.md): rows staged through
//! the Redshift stager against the in-process S3 server, with a config holding keys, a
//! session token and URL passwords. Every staged object and manifest (read back from the
//! server, parts decompressed, their key names too), the S3 requests' paths and queries,
//! the `Debug` of the config, stager, run, staged tables and COPY credentials, and every SQL
//! statement of the load (the COPY statements after `redshift_sql::redact`) hold none of
//! them. The raw COPY statements must hold them (Redshift needs them), and their redacted
//! form must not. A COPY whose server error quotes the credentials, and `stl_load_errors`
//! rows that hold them, come back redacted; so do the errors of opening the sink.
//!
//! The S3 server accepts only the keys of `common` ([`ACCESS_KEY`], [`SECRET_KEY`]), so
//! those are the fake AWS keys searched for; the session token and passwords are
//! `FAKE-SECRET-...` values.
#![allow(clippy::unwrap_used)]

mod common;
mod pgutil;

use std::io::Read as _;
use std::sync::Arc;

use common::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use dpl_core::{RowBatch, Schema, Table, Value};
use dpl_sink::redshift_sql::{self as rsql, StepKind, TableLoad};
use dpl_sink::staging::{S3Stager, StageOptions, StagedTable, s3_client};
use dpl_sink::{
    Compression, CopyAuth, Error, RunRecord, Sink, SinkConfig, SinkKind, Sse, quote_ident,
    run_load_steps, sql_literal,
};
use pgutil::{DropSchema, batch, client, row, schema_name, ts};

const TOKEN: &str = "FAKE-SECRET-TOKEN-5521";
const RS_PASSWORD: &str = "FAKE-SECRET-RS-8812";
const PG_PASSWORD: &str = "FAKE-SECRET-PG-7731";

fn secrets() -> [&'static str; 5] {
    [ACCESS_KEY, SECRET_KEY, TOKEN, RS_PASSWORD, PG_PASSWORD]
}

/// Every place a secret occurs in `texts` (label, text), with some context.
fn hits(texts: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (label, text) in texts {
        for s in secrets() {
            if let Some(i) = text.find(s) {
                let from = text[..i].char_indices().rev().nth(80).map_or(0, |(j, _)| j);
                let ctx: String = text[from..].chars().take(200).collect();
                out.push(format!("{s:?} in {label}: ...{ctx}..."));
            }
        }
    }
    out
}

fn assert_no_secret(texts: &[(String, String)]) {
    let found = hits(texts);
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
}

fn config(server: &S3Server) -> SinkConfig {
    config_for(&server.endpoint)
}

fn config_for(endpoint: &str) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::Redshift,
        pg_url: Some(format!("postgres://u:{PG_PASSWORD}@127.0.0.1:1/db")),
        redshift_url: Some(format!("postgres://loader:{RS_PASSWORD}@127.0.0.1:1/dw")),
        staging_bucket: Some(BUCKET.to_owned()),
        staging_prefix: "dpl-staging/".to_owned(),
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
        session_token: Some(TOKEN.to_owned()),
        region: Some("us-east-1".to_owned()),
        s3_endpoint_url: Some(endpoint.to_owned()),
        part_bytes: 1024,
        parts_per_table: Some(2),
        sse: Sse::S3,
        ..SinkConfig::default()
    }
}

fn auth() -> CopyAuth {
    CopyAuth::Keys {
        access_key_id: ACCESS_KEY.to_owned(),
        secret_access_key: SECRET_KEY.to_owned(),
        session_token: Some(TOKEN.to_owned()),
    }
}

fn record() -> RunRecord {
    RunRecord {
        run_id: "run-1".to_owned(),
        started_at: "2026-11-01T00:00:00Z".parse().unwrap(),
        finished_at: "2026-11-01T00:01:00Z".parse().unwrap(),
        objects: vec![dpl_sink::LoadedObject {
            key: "events/2026/11/01/a.gz".to_owned(),
            etag: "e1".to_owned(),
            size: 10,
            events: 3,
        }],
        summary_json: "{\"events\":3}".to_owned(),
    }
}

fn input(schema: &Schema) -> Vec<RowBatch> {
    let mut out = Vec::new();
    for b in 0..4 {
        let rows: Vec<Vec<Value>> = (0..30)
            .map(|j| {
                let i = b * 30 + j;
                row(
                    schema,
                    Table::Pageviews,
                    &[
                        ("event_id", Value::text(format!("ev{i}"))),
                        ("action", Value::text("pageview")),
                        ("apikey_visitor_id", Value::text(format!("v{}", i % 5))),
                        ("ts_action", ts(2026, 11, 1, (i % 24) as i8, 1, 2, 0)),
                    ],
                )
            })
            .collect();
        out.push(batch(schema, Table::Pageviews, &rows));
    }
    out.push(batch(
        schema,
        Table::Errors,
        &[row(
            schema,
            Table::Errors,
            &[
                ("source_object", Value::text("events/2026/11/01/a.gz")),
                ("line_number", Value::Int(1)),
                ("reason", Value::text("invalid_json")),
                ("raw", Value::text("{not json")),
            ],
        )],
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

/// Every object in the bucket: (key, body), parts decompressed.
async fn bucket_contents(server: &S3Server) -> Vec<(String, String)> {
    let c = server.client();
    let listed = c.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert!(!listed.is_truncated().unwrap_or(false));
    let mut out = Vec::new();
    for o in listed.contents() {
        let key = o.key().unwrap().to_owned();
        let got = c
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap();
        let body = got.body.collect().await.unwrap().into_bytes().to_vec();
        let body = if key.ends_with(".gz") {
            gunzip(&body)
        } else {
            body
        };
        out.push((key, String::from_utf8_lossy(&body).into_owned()));
    }
    out
}

#[tokio::test]
async fn staged_objects_manifests_debug_and_sql_hold_no_secret() {
    let schema = Arc::new(Schema::default());
    let server = S3Server::start().await;
    let config = config(&server);
    config.validate().unwrap();
    let st = S3Stager::new(
        s3_client(&config).await,
        schema.clone(),
        StageOptions::from_config(&config, 1),
    )
    .unwrap();
    let mut run = st.begin("run-1").unwrap();
    for b in input(&schema) {
        run.write(b).await.unwrap();
    }
    let mut texts: Vec<(String, String)> = vec![
        ("Debug of SinkConfig".to_owned(), format!("{config:?}")),
        ("Debug of RunStage".to_owned(), format!("{run:?}")),
        ("Debug of CopyAuth".to_owned(), format!("{:?}", auth())),
    ];
    let (staged, _) = run.finish().await.unwrap();
    texts.push(("Debug of StagedTable".to_owned(), format!("{staged:?}")));
    assert_eq!(
        staged.iter().map(|s| s.table).collect::<Vec<_>>(),
        vec![Table::Pageviews, Table::Errors]
    );

    // Everything in the bucket: the parts and the manifests, names and bodies.
    let objects = bucket_contents(&server).await;
    let manifests = objects
        .iter()
        .filter(|(k, _)| k.ends_with(".manifest"))
        .count();
    assert_eq!(
        manifests,
        2,
        "{:?}",
        objects.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    assert!(objects.len() >= 4, "{} objects", objects.len());
    let pv_rows: usize = objects
        .iter()
        .filter(|(k, _)| k.contains("parsely_pageviews/part-"))
        .map(|(_, body)| body.lines().count())
        .sum();
    assert_eq!(pv_rows, 120, "the parts hold the staged rows");
    for (key, body) in objects {
        texts.push((format!("object name {key}"), key.clone()));
        texts.push((format!("object {key}"), body));
    }
    // The requests as the server saw them: no credential in a path or query string.
    let log = server.faults.log();
    assert!(log.iter().any(|s| s.method == "PUT"));
    texts.push(("S3 request log".to_owned(), format!("{log:?}")));

    // The load's statements: only COPY carries the credentials, and redact removes them.
    let tables: Vec<TableLoad> = staged
        .iter()
        .map(|s| TableLoad {
            table: s.table,
            manifest_url: s.manifest_url.clone(),
        })
        .collect();
    let auth = auth();
    let steps = rsql::load_steps(
        "dw",
        &schema,
        &tables,
        &auth,
        Some("us-east-1"),
        Compression::Gzip,
        &record(),
    )
    .unwrap();
    let mut copies = 0;
    for (i, step) in steps.iter().enumerate() {
        match step.kind {
            StepKind::Copy(t) => {
                copies += 1;
                for s in [ACCESS_KEY, SECRET_KEY, TOKEN] {
                    assert!(step.sql.contains(s), "COPY lacks {s}: {}", step.sql);
                }
                let redacted = rsql::redact(&step.sql, &auth);
                assert!(redacted.contains("CREDENTIALS '***'"), "{redacted}");
                let url = staged.iter().find(|s| s.table == t).unwrap();
                assert!(
                    redacted.contains(&format!("FROM '{}'", url.manifest_url)),
                    "redaction keeps the rest of the statement: {redacted}"
                );
                texts.push((format!("redacted step {i}"), redacted));
            }
            _ => texts.push((format!("step {i}"), step.sql.clone())),
        }
    }
    assert_eq!(copies, 2);
    assert_no_secret(&texts);

    // The search finds what it looks for.
    let raw_copy = steps.iter().find(|s| matches!(s.kind, StepKind::Copy(_)));
    let control = vec![("raw COPY".to_owned(), raw_copy.unwrap().sql.clone())];
    assert_eq!(hits(&control).len(), 3, "{:?}", hits(&control));
}

/// `Debug` of the stager (a public type) shows its options, not the SDK client's
/// credentials.
#[tokio::test]
async fn stager_debug_shows_no_key() {
    let config = SinkConfig {
        s3_endpoint_url: Some("http://127.0.0.1:1".to_owned()),
        ..config_for("http://127.0.0.1:1")
    };
    let st = S3Stager::new(
        s3_client(&config).await,
        Arc::new(Schema::default()),
        StageOptions::from_config(&config, 1),
    )
    .unwrap();
    let shown = format!("{st:?}");
    assert!(shown.contains(BUCKET), "{shown}");
    assert_no_secret(&[("Debug of S3Stager".to_owned(), shown)]);
}

/// A COPY whose server error quotes the statement, and `stl_load_errors` rows holding the
/// credentials: the loader's error shows neither. PostgreSQL stands in for Redshift: the
/// COPY step runs `SELECT '<the COPY statement>'::int`, whose error quotes the value, and a
/// view `stl_load_errors` with a function `pg_last_copy_id()` in the session's schema
/// answer the loader's query.
#[tokio::test]
async fn failed_copy_errors_and_load_error_rows_are_redacted() {
    let schema = Arc::new(Schema::default());
    let c = client().await;
    let name = schema_name("secrets");
    let _drop = DropSchema(name.clone());
    let q = quote_ident(&name);
    let reason = sql_literal(&format!(
        "S3 error with aws_secret_access_key={SECRET_KEY};token={TOKEN}"
    ))
    .unwrap();
    let file = sql_literal(&format!(
        "s3://{BUCKET}/dpl-staging/run-1/p?X-Amz-Credential={ACCESS_KEY}"
    ))
    .unwrap();
    let raw = sql_literal(SECRET_KEY).unwrap();
    c.batch_execute(&format!(
        "CREATE SCHEMA {q};
         CREATE VIEW {q}.stl_load_errors AS SELECT 1 AS query, now() AS starttime,
           {file}::text AS filename, 12 AS line_number, 'first_seen_ts'::text AS colname,
           'timestamp'::text AS type, {raw}::text AS raw_field_value, 1206 AS err_code,
           {reason}::text AS err_reason;
         CREATE FUNCTION {q}.pg_last_copy_id() RETURNS int LANGUAGE sql AS 'SELECT 1';
         SET search_path = {q};"
    ))
    .await
    .unwrap();

    let staged = vec![StagedTable {
        table: Table::Users,
        manifest_key: "dpl-staging/run-1/parsely_users.manifest".to_owned(),
        manifest_url: format!("s3://{BUCKET}/dpl-staging/run-1/parsely_users.manifest"),
        parts: Vec::new(),
        rows: 0,
    }];
    let tables = vec![TableLoad {
        table: Table::Users,
        manifest_url: staged[0].manifest_url.clone(),
    }];
    let auth = auth();
    let steps = rsql::load_steps(
        &name,
        &schema,
        &tables,
        &auth,
        None,
        Compression::Gzip,
        &record(),
    )
    .unwrap();
    let echo = |sql: &str| format!("SELECT {}::int", sql_literal(sql).unwrap());

    // Unredacted, the server's message does quote the credentials.
    let copy = steps
        .iter()
        .find(|s| matches!(s.kind, StepKind::Copy(_)))
        .unwrap();
    let direct = c.simple_query(&echo(&copy.sql)).await.unwrap_err();
    let direct = direct.as_db_error().unwrap().message().to_owned();
    assert!(direct.contains(SECRET_KEY), "{direct}");

    let err = run_load_steps(&c, &steps, &staged, &auth, |step, _| {
        let c = &c;
        let sql = echo(&step.sql);
        async move { c.simple_query(&sql).await.map(drop) }
    })
    .await
    .unwrap_err();
    let rows = match &err {
        Error::LoadFailed {
            table,
            message,
            rows,
        } => {
            assert_eq!(*table, "parsely_users");
            assert!(message.contains("22P02"), "{message}");
            assert!(message.contains("CREDENTIALS '***'"), "{message}");
            rows.clone()
        }
        other => panic!("{other}"),
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].line, 12);
    assert_eq!(rows[0].column, "first_seen_ts");
    assert_eq!(rows[0].raw_value, "***");
    assert_no_secret(&[
        ("error Display".to_owned(), err.to_string()),
        ("error Debug".to_owned(), format!("{err:?}")),
    ]);
}

/// Opening the Redshift sink fails (nothing listens on port 1; or PostgreSQL, which
/// refuses the Redshift DDL or the TLS); no error shows a secret.
#[tokio::test]
async fn failing_to_open_the_redshift_sink_shows_no_secret() {
    let server = S3Server::start().await;
    let pg = pgutil::pg_url();
    let (_, rest) = pg.split_once("://").unwrap();
    let host_db = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let name = schema_name("secrets_open");
    let _drop = DropSchema(name.clone());
    let mut texts = Vec::new();
    for (url, sslmode, expected) in [
        (
            format!("postgres://loader:{RS_PASSWORD}@127.0.0.1:1/dw"),
            None,
            "connect to redshift",
        ),
        // PostgreSQL refuses the Redshift DDL.
        (
            format!("postgres://postgres:{RS_PASSWORD}@{host_db}"),
            Some(dpl_sink::SslMode::Disable),
            "create tables",
        ),
        // The test server's certificate (if any) is not trusted for this name.
        (
            format!("postgres://postgres:{RS_PASSWORD}@{host_db}"),
            Some(dpl_sink::SslMode::VerifyFull),
            "sslmode=verify-full",
        ),
        (
            format!("postgres://loader:{RS_PASSWORD}@h:99999999/dw"),
            None,
            "sink.redshift_url is not a PostgreSQL URL",
        ),
        (
            format!("host=h user=loader password={RS_PASSWORD} port=x"),
            None,
            "sink.redshift_url is not a PostgreSQL URL",
        ),
    ] {
        let config = SinkConfig {
            redshift_url: Some(url.clone()),
            sslmode,
            schema: name.clone(),
            ..config(&server)
        };
        let result = Sink::open(&config, Arc::new(Schema::default())).await;
        let shown = match &result {
            Err(e) => format!("{e}\n{e:?}"),
            Ok(sink) => format!("{sink:?}"),
        };
        assert!(result.is_err(), "opened with {url}: {shown}");
        assert!(shown.contains(expected), "{url}: {shown}");
        texts.push((format!("opening with {url}"), shown));
    }
    assert_no_secret(&texts);
}

/// `Debug` of the config hides a password given as a URL parameter too (tokio-postgres,
/// like libpq, accepts `?password=`), in either URL key.
#[test]
fn config_debug_hides_a_password_parameter() {
    let config = SinkConfig {
        pg_url: Some(format!("postgres://u@h/db?password={PG_PASSWORD}")),
        redshift_url: Some(format!(
            "postgres://loader@cluster:5439/dw?sslmode=require&password={RS_PASSWORD}"
        )),
        ..SinkConfig::default()
    };
    let shown = format!("{config:?}");
    assert!(shown.contains("cluster:5439"), "{shown}");
    assert_no_secret(&[("Debug of SinkConfig".to_owned(), shown)]);
}
