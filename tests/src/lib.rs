//! Helpers for the end-to-end tests: find and run the `dpl` binary, connect to the test
//! PostgreSQL, create throwaway schemas, and load the files sink's output into them.
//!
//! The tests themselves are in `tests/e2e/`; they run the real binary against real files
//! and the real PostgreSQL (`DPL_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use futures_util::SinkExt;

/// URL of the test database.
pub fn pg_url() -> String {
    std::env::var("DPL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Path of the `dpl` binary next to this test executable, built on demand.
pub fn dpl_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test exe path");
        // target/<profile>/deps/e2e-xxxx -> target/<profile>/dpl
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
        let bin = profile_dir.join("dpl");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "dpl-pipeline", "--bin", "dpl"])
            .args(if profile_dir.ends_with("release") {
                &["--release"][..]
            } else {
                &[][..]
            })
            .status()
            .expect("running cargo build for the dpl binary");
        assert!(status.success(), "cargo build of dpl failed");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// Runs `dpl` with `args` in `cwd`, with no `DPL_` variables from the caller's environment.
pub fn dpl(cwd: &Path, args: &[&str]) -> Output {
    dpl_command(cwd, args).output().expect("running dpl")
}

/// The `dpl` command, not yet started: `args` in `cwd`, no `DPL_` variables inherited.
pub fn dpl_command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(dpl_bin());
    cmd.args(args).current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("DPL_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `dpl` and panics with its output unless it succeeds; returns stdout.
pub fn dpl_ok(cwd: &Path, args: &[&str]) -> String {
    let out = dpl(cwd, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dpl {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A client of the test database.
pub async fn pg() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {} ({e}); run scripts/test", pg_url()));
    tokio::spawn(conn);
    client
}

/// A new, empty schema with a unique name; dropped by [`TestSchema::drop`].
pub struct TestSchema {
    pub name: String,
}

impl TestSchema {
    pub async fn create(client: &tokio_postgres::Client, tag: &str) -> TestSchema {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "dpl_e2e_{tag}_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000
        );
        client
            .batch_execute(&format!("CREATE SCHEMA \"{name}\""))
            .await
            .unwrap();
        TestSchema { name }
    }
    pub async fn drop(self, client: &tokio_postgres::Client) {
        client
            .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", self.name))
            .await
            .unwrap();
    }
}

/// The table directories of a files-sink output, with their column lists.
pub fn sink_tables(out: &Path) -> Vec<(String, Vec<String>)> {
    let mut tables = Vec::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let entry = entry.unwrap();
        let cols = entry.path().join("columns");
        if entry.file_type().unwrap().is_dir() && cols.exists() {
            let columns = std::fs::read_to_string(cols)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            tables.push((entry.file_name().to_string_lossy().into_owned(), columns));
        }
    }
    tables.sort();
    tables
}

/// The gzip CSV parts of one table directory, sorted by name (run id, then part number).
pub fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with("part-") && name.ends_with(".csv.gz")
        })
        .collect();
    parts.sort();
    parts
}

/// Decompressed bytes of a gzip file.
pub fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// COPYs CSV bytes into `schema.table (columns)` the way the loaders do.
pub async fn copy_csv(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    columns: &[String],
    csv: Vec<u8>,
) -> u64 {
    let cols: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let sql = format!(
        "COPY \"{schema}\".\"{table}\" ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
        cols.join(",")
    );
    let sink = client.copy_in::<_, bytes::Bytes>(&sql).await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from(csv)).await.unwrap();
    sink.finish().await.unwrap()
}

/// Row count of a table.
pub async fn count(client: &tokio_postgres::Client, schema: &str, table: &str) -> i64 {
    client
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".\"{table}\""),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Every row of a table as text, sorted: for comparing whole tables.
pub async fn dump(client: &tokio_postgres::Client, schema: &str, table: &str) -> Vec<String> {
    let rows = client
        .query(
            &format!("SELECT t::text FROM \"{schema}\".\"{table}\" t ORDER BY 1"),
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Loads a files-sink output into `schema` the way the warehouse loaders merge: run by run in
/// run-id order, each run's rows replacing the rows with the same primary key, the first
/// row of a key within a run winning. Tables must exist (from `dpl ddl`).
pub async fn load_merged(client: &tokio_postgres::Client, schema: &str, out: &Path) {
    for (table, columns) in sink_tables(out) {
        let t = dpl_core::Table::ALL
            .into_iter()
            .find(|t| t.name() == table)
            .unwrap_or_else(|| panic!("unknown table dir {table}"));
        let pk: Vec<String> = t.primary_key().iter().map(|c| format!("\"{c}\"")).collect();
        let pk = pk.join(",");
        let cols: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let cols = cols.join(",");
        let mut runs: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
        for part in parts(&out.join(&table)) {
            let name = part.file_name().unwrap().to_string_lossy().into_owned();
            let run = name
                .strip_prefix("part-")
                .and_then(|r| r.rsplit_once('-'))
                .map(|(run, _)| run.to_owned())
                .unwrap_or_else(|| panic!("unexpected part name {name}"));
            runs.entry(run).or_default().push(part);
        }
        for (run, parts) in runs {
            // Keys an earlier run loaded that no longer exist: deleted before the run's rows.
            let withdrawn = out.join(&table).join(format!("withdrawn-{run}.csv.gz"));
            if withdrawn.exists() {
                let keys: Vec<String> = t.primary_key().iter().map(|c| (*c).to_owned()).collect();
                client
                    .batch_execute(&format!(
                        "DROP TABLE IF EXISTS wd; CREATE TEMP TABLE wd AS
                         SELECT {pk} FROM \"{schema}\".\"{table}\" WHERE false"
                    ))
                    .await
                    .unwrap();
                copy_csv(client, "pg_temp", "wd", &keys, gunzip(&withdrawn)).await;
                client
                    .batch_execute(&format!(
                        "DELETE FROM \"{schema}\".\"{table}\" t USING wd w WHERE ({}) = ({})",
                        prefixed("t", t.primary_key()),
                        prefixed("w", t.primary_key()),
                    ))
                    .await
                    .unwrap();
            }
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS stg; CREATE TEMP TABLE stg (LIKE \"{schema}\".\"{table}\");
                     ALTER TABLE stg ADD COLUMN dpl_ord BIGSERIAL"
                ))
                .await
                .unwrap();
            for part in parts {
                copy_csv(client, "pg_temp", "stg", &columns, gunzip(&part)).await;
            }
            client
                .batch_execute(&format!(
                    "DELETE FROM \"{schema}\".\"{table}\" t USING stg s WHERE ({}) = ({});
                     INSERT INTO \"{schema}\".\"{table}\" ({cols})
                       SELECT {cols} FROM (SELECT DISTINCT ON ({pk}) * FROM stg
                                           ORDER BY {pk}, dpl_ord) d",
                    prefixed("t", t.primary_key()),
                    prefixed("s", t.primary_key()),
                ))
                .await
                .unwrap();
        }
    }
}

fn prefixed(alias: &str, cols: &[&str]) -> String {
    let v: Vec<String> = cols.iter().map(|c| format!("{alias}.\"{c}\"")).collect();
    v.join(",")
}
