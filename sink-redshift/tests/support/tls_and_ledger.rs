//! `sslmode` against the local PostgreSQL and `Sink::run_committed` (a module of the
//! `redshift` test binary).

use std::sync::Arc;

use crate::pgutil::{DropSchema, pg_url, schema_name};
use dpl_core::Schema;
use dpl_sink::{RunRecord, Sink, SinkConfig, SinkKind, SslMode};

fn pg(schema: &str, url: String, sslmode: Option<SslMode>) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::Postgres,
        pg_url: Some(url),
        schema: schema.to_owned(),
        pool_size: 1,
        sslmode,
        ..SinkConfig::default()
    }
}

fn with_query(url: &str, q: &str) -> String {
    if url.contains('?') {
        format!("{url}&{q}")
    } else {
        format!("{url}?{q}")
    }
}

fn record(run_id: &str) -> RunRecord {
    let now = jiff::Timestamp::now();
    RunRecord {
        run_id: run_id.to_owned(),
        started_at: now,
        finished_at: now,
        objects: vec![],
        summary_json: "{}".to_owned(),
    }
}

/// Whether the connection of `mode` is encrypted, or its connect error.
async fn encrypted(mode: SslMode) -> Result<bool, String> {
    let (config, tls, _) =
        dpl_sink::pg_connector(&pg_url(), "test", Some(mode), SslMode::Prefer).unwrap();
    let (client, conn) = config.connect(tls).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_against_the_local_server() {
    let schema = Arc::new(Schema::default());
    let name = schema_name("tls");
    let _drop = DropSchema(name.clone());
    // The local server may or may not offer TLS (a self-signed certificate if it does).
    assert_eq!(encrypted(SslMode::Disable).await, Ok(false));
    let offered = encrypted(SslMode::Prefer).await.unwrap();
    if offered {
        assert_eq!(encrypted(SslMode::Require).await, Ok(true));
    } else {
        let err = encrypted(SslMode::Require).await.unwrap_err();
        assert!(err.contains("TLS"), "{err}");
    }
    // verify-full never accepts a certificate no system root signed for 127.0.0.1.
    assert!(encrypted(SslMode::VerifyFull).await.is_err());

    // Through the sink: prefer (the postgres default) and disable always connect.
    Sink::open(&pg(&name, pg_url(), None), schema.clone())
        .await
        .unwrap();
    Sink::open(&pg(&name, pg_url(), Some(SslMode::Disable)), schema.clone())
        .await
        .unwrap();
    Sink::open(
        &pg(&name, with_query(&pg_url(), "sslmode=disable"), None),
        schema.clone(),
    )
    .await
    .unwrap();
    // require from the key or the URL: connects only when TLS is offered, and the error
    // names sslmode; the key wins over the URL.
    for (url, mode) in [
        (pg_url(), Some(SslMode::Require)),
        (with_query(&pg_url(), "sslmode=require"), None),
        (
            with_query(&pg_url(), "sslmode=disable"),
            Some(SslMode::Require),
        ),
    ] {
        let r = Sink::open(&pg(&name, url.clone(), mode), schema.clone()).await;
        match r {
            Ok(_) => assert!(offered, "{url} {mode:?} connected without TLS"),
            Err(e) => {
                let e = e.to_string();
                assert!(!offered, "{e}");
                assert!(e.contains("sslmode=require") && e.contains("TLS"), "{e}");
            }
        }
    }
    let err = Sink::open(
        &pg(&name, pg_url(), Some(SslMode::VerifyFull)),
        schema.clone(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("sslmode=verify-full"), "{err}");
    let err = Sink::open(
        &pg(&name, with_query(&pg_url(), "sslmode=verify-ca"), None),
        schema.clone(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("sslmode \"verify-ca\" is not supported"),
        "{err}"
    );
}

#[tokio::test]
async fn run_committed_reads_the_ledger() {
    let schema = Arc::new(Schema::default());
    let name = schema_name("ledger");
    let _drop = DropSchema(name.clone());
    let dir = tempfile::tempdir().unwrap();
    let files = SinkConfig {
        out: dir.path().join("out"),
        ..SinkConfig::default()
    };
    for config in [pg(&name, pg_url(), None), files] {
        let mut sink = Sink::open(&config, schema.clone()).await.unwrap();
        assert!(!sink.run_committed("r1").await.unwrap());
        sink.begin("r1").await.unwrap();
        assert!(
            !sink.run_committed("r1").await.unwrap(),
            "begun is not committed"
        );
        sink.commit(&record("r1")).await.unwrap();
        assert!(sink.run_committed("r1").await.unwrap());
        assert!(!sink.run_committed("r2").await.unwrap());
        // A run begun and dropped did not commit.
        sink.begin("r2").await.unwrap();
        drop(sink);
        let sink = Sink::open(&config, schema.clone()).await.unwrap();
        assert!(!sink.run_committed("r2").await.unwrap());
        assert!(sink.run_committed("r1").await.unwrap());
        assert!(sink.run_committed("x'; --").await.is_err());
    }
    let null = Sink::open(
        &SinkConfig {
            kind: SinkKind::Null,
            ..SinkConfig::default()
        },
        schema,
    )
    .await
    .unwrap();
    assert!(!null.run_committed("r1").await.unwrap());
}
