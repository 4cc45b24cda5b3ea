//! Crash safety of a PostgreSQL load (issue 4): a run killed with SIGKILL at any point, then
//! run again, leaves tables identical to a clean run, with no duplicates and a consistent
//! ledger.

use std::time::{Duration, Instant};

use dpl_tests::*;

const DAY1: &str = "2026-11-01";
const DAY2: &str = "2026-11-02";

fn run_args<'a>(day: &'a str, schema: &'a str, state: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--source-dir",
        "data",
        "--start-date",
        day,
        "--end-date",
        day,
        "--sink",
        "postgres",
        "--pg-url",
        url,
        "--schema",
        schema,
        "--state-dir",
        state,
    ]
}

async fn tables(client: &tokio_postgres::Client, schema: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for t in dpl_core::Table::ALL {
        out.push((t.name().to_owned(), dump(client, schema, t.name()).await));
    }
    let ledger = client
        .query(
            &format!(
                "SELECT object_key || ' ' || etag || ' ' || events FROM \"{schema}\".dpl_loaded_objects ORDER BY 1"
            ),
            &[],
        )
        .await
        .unwrap();
    out.push((
        "dpl_loaded_objects".into(),
        ledger.iter().map(|r| r.get(0)).collect(),
    ));
    out
}

fn assert_same(a: &[(String, Vec<String>)], b: &[(String, Vec<String>)], what: &str) {
    for ((name, x), (_, y)) in a.iter().zip(b) {
        assert!(
            x == y,
            "{what}: table {name} differs from the clean run ({} vs {} rows)",
            x.len(),
            y.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_postgres_load_reruns_to_the_clean_result() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = dpl_gen::GenConfig::new(8_000, jiff::civil::date(2026, 11, 1), 2, 3);
    dpl_gen::generate_to_dir(&cfg, &root.join("data")).unwrap();
    let url = pg_url();
    let client = pg().await;

    let clean = TestSchema::create(&client, "clean").await;
    dpl_bin(); // built (if need be) before the clean run is timed
    let started = Instant::now();
    dpl_ok(root, &run_args(DAY1, &clean.name, "clean-state", &url));
    let clean_time = started.elapsed();
    // The next day shows whether the state carried over: sessions across midnight, user
    // totals and loyalty all depend on it.
    dpl_ok(root, &run_args(DAY2, &clean.name, "clean-state", &url));
    let expected = tables(&client, &clean.name).await;

    // Deterministic points, then kills at fractions of a clean run's duration.
    let mut cases: Vec<(String, Option<&str>, Option<Duration>)> =
        ["during_write", "before_commit", "after_commit"]
            .into_iter()
            .map(|fp| (fp.to_owned(), Some(fp), None))
            .collect();
    for frac in [0.3, 0.6, 0.9] {
        cases.push((
            format!("kill at {frac} of a run"),
            None,
            Some(clean_time.mul_f64(frac)),
        ));
    }
    for (i, (what, failpoint, delay)) in cases.into_iter().enumerate() {
        let schema = TestSchema::create(&client, &format!("crash{i}")).await;
        let state = format!("state-{i}");
        let args = run_args(DAY1, &schema.name, &state, &url);
        let mut cmd = dpl_command(root, &args);
        if let Some(fp) = failpoint {
            cmd.env("DPL_FAILPOINT", fp);
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        if let Some(delay) = delay {
            std::thread::sleep(delay);
            let _ = child.kill(); // SIGKILL
        }
        let status = child.wait().unwrap();
        if failpoint.is_some() {
            assert!(
                !status.success(),
                "{what}: the failpoint did not stop the run"
            );
        }
        dpl_ok(root, &args);
        // And once more: nothing new, nothing changes.
        let again = dpl_ok(root, &args);
        assert!(
            again.contains("0 read"),
            "{what}: a re-run read objects again:\n{again}"
        );
        dpl_ok(root, &run_args(DAY2, &schema.name, &state, &url));
        let got = tables(&client, &schema.name).await;
        assert_same(&got, &expected, &what);
        schema.drop(&client).await;
    }
    clean.drop(&client).await;
}
