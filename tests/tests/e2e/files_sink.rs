//! `dpl run` with the embedded default (local source, files sink), loaded into PostgreSQL
//! with the project's DDL: row counts per class match what the generator injected.

use dpl_tests::*;

const START: &str = "2026-11-01";
const END: &str = "2026-11-03";

#[tokio::test(flavor = "multi_thread")]
async fn files_sink_output_loads_into_postgres_with_the_generated_counts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = dpl_gen::GenConfig::new(20_000, jiff::civil::date(2026, 11, 1), 3, 7);
    let expected = dpl_gen::generate_to_dir(&cfg, &root.join("data")).unwrap();

    let stdout = dpl_ok(
        root,
        &[
            "run",
            "--source-dir",
            "data",
            "--start-date",
            START,
            "--end-date",
            END,
            "--sink",
            "files",
            "--out",
            "out",
            "--state-dir",
            "state",
        ],
    );
    assert!(
        stdout.contains("events: pageview"),
        "no summary in:\n{stdout}"
    );

    let client = pg().await;
    let schema = TestSchema::create(&client, "files").await;
    let ddl = dpl_ok(
        root,
        &["ddl", "--sink", "postgres", "--schema", &schema.name],
    );
    client.batch_execute(&ddl).await.unwrap();
    let tables = sink_tables(&root.join("out"));
    assert!(tables.len() >= 11, "tables written: {tables:?}");
    for (table, columns) in &tables {
        for part in parts(&root.join("out").join(table)) {
            copy_csv(&client, &schema.name, table, columns, gunzip(&part)).await;
        }
    }
    let s = &schema.name;
    let errors: u64 = expected.errors.values().sum();
    assert_eq!(count(&client, s, "parsely_errors").await as u64, errors);
    assert_eq!(
        count(&client, s, "parsely_bot_traffic").await as u64,
        expected.bots
    );
    assert_eq!(
        count(&client, s, "parsely_custom_events").await as u64,
        expected.custom
    );
    let real_pageviews: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{s}\".parsely_pageviews WHERE pageview_counter = 1"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(real_pageviews as u64, expected.pageviews);
    let real_videoviews: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{s}\".parsely_videoviews WHERE videostart_counter = 1"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(real_videoviews as u64, expected.videostarts);
    assert_eq!(
        count(&client, s, "parsely_users").await as u64,
        expected.visitors
    );
    schema.drop(&client).await;

    // A second run over the same days finds every object in the ledger and loads nothing.
    let again = dpl_ok(
        root,
        &[
            "run",
            "--source-dir",
            "data",
            "--start-date",
            START,
            "--end-date",
            END,
            "--sink",
            "files",
            "--out",
            "out",
            "--state-dir",
            "state",
        ],
    );
    assert!(
        again.contains(&format!("{} already loaded, 0 read", expected.objects)),
        "{again}"
    );
}

#[test]
fn a_bad_config_names_the_key_and_the_accepted_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dpl.toml"), "[sink]\nkind = \"mysql\"\n").unwrap();
    let out = dpl(dir.path(), &["run", "--start-date", START]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sink.kind") || err.contains("kind"), "{err}");
    assert!(err.contains("postgres") && err.contains("files"), "{err}");

    std::fs::write(dir.path().join("dpl.toml"), "idle_timeot = \"5m\"\n").unwrap();
    let out = dpl(dir.path(), &["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("idle_timeot"),
        "{err}"
    );
}

#[test]
fn gen_cli_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        dpl_ok(
            dir.path(),
            &[
                "gen",
                "--out",
                sub,
                "--events",
                "3000",
                "--start-date",
                START,
                "--days",
                "2",
                "--seed",
                "5",
            ],
        );
    }
    let list = |sub: &str| {
        let mut files = Vec::new();
        let mut stack = vec![dir.path().join(sub)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(dir.path().join(sub)).unwrap().to_owned();
                    files.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        files.sort();
        files
    };
    let a = list("a");
    assert!(a.len() > 2);
    assert_eq!(a, list("b"));
}

/// Regression: figment filters environment keys before lower-casing them, so every `DPL_`
/// variable was once ignored.
#[test]
fn dpl_environment_variables_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dpl_command(dir.path(), &["config"])
        .env("DPL_STATE_DIR", "from-env")
        .env("DPL_SESSIONIZE__IDLE_TIMEOUT", "45m")
        .env("DPL_SINK__KIND", "null")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("state_dir = \"from-env\""), "{text}");
    assert!(text.contains("idle_timeout = \"PT45M\""), "{text}");
    assert!(text.contains("kind = \"null\""), "{text}");
    let bad = dpl_command(dir.path(), &["config"])
        .env("DPL_SINK__KIND", "mysql")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("postgres"));
}
