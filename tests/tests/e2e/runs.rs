//! Runs split by day equal one run over all days (SPEC.md section 4, determinism), whatever
//! the number of sessionizer shards, which changes from run to run.

use dpl_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn three_daily_runs_equal_one_run_over_three_days_with_any_shards() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut cfg = dpl_gen::GenConfig::new(15_000, jiff::civil::date(2026, 11, 1), 3, 11);
    cfg.stragglers = false;
    let expected = dpl_gen::generate_to_dir(&cfg, &root.join("data")).unwrap();
    assert_eq!(
        expected.stragglers, 0,
        "this test needs input without stragglers"
    );

    let run = |out: &str, state: &str, start: &str, end: &str, shards: &str| {
        let args = [
            "run",
            "--source-dir",
            "data",
            "--start-date",
            start,
            "--end-date",
            end,
            "--sink",
            "files",
            "--out",
            out,
            "--state-dir",
            state,
        ];
        let result = dpl_command(root, &args)
            .env("DPL_PIPELINE__SESSIONIZE_SHARDS", shards)
            .output()
            .expect("running dpl");
        assert!(
            result.status.success(),
            "dpl {args:?} with {shards} shards failed:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
    };
    // Each daily run loads the checkpoint of the one before into another number of shards.
    for (day, shards) in [
        ("2026-11-01", "3"),
        ("2026-11-02", "1"),
        ("2026-11-03", "2"),
    ] {
        run("daily", "daily-state", day, day, shards);
    }
    run("once", "once-state", "2026-11-01", "2026-11-03", "4");

    let client = pg().await;
    let daily = TestSchema::create(&client, "daily").await;
    let once = TestSchema::create(&client, "once").await;
    for (schema, out) in [(&daily, "daily"), (&once, "once")] {
        let ddl = dpl_ok(
            root,
            &["ddl", "--sink", "postgres", "--schema", &schema.name],
        );
        client.batch_execute(&ddl).await.unwrap();
        load_merged(&client, &schema.name, &root.join(out)).await;
    }
    for t in dpl_core::Table::ALL {
        let a = dump(&client, &daily.name, t.name()).await;
        let b = dump(&client, &once.name, t.name()).await;
        assert!(
            !b.is_empty() || t == dpl_core::Table::Errors,
            "{} is empty",
            t.name()
        );
        if a != b {
            let only_a: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(3).collect();
            let only_b: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(3).collect();
            panic!(
                "{} differs ({} vs {} rows)\nonly in daily runs: {only_a:#?}\nonly in one run: {only_b:#?}",
                t.name(),
                a.len(),
                b.len()
            );
        }
    }
    daily.drop(&client).await;
    once.drop(&client).await;
}
