//! Secrets never leak (issue 6, docs/security.md): the real `dpl` binary, at `trace` log
//! level, given recognisable fake secrets (PostgreSQL password, the sink's and the S3
//! source's AWS keys and session tokens, the IP hashing salt) once in `dpl.toml` and once in
//! `DPL_` environment variables, runs the files sink, the PostgreSQL sink, `dpl config`,
//! `dpl --help`, `dpl run --help` and a run that fails to connect. Then every byte it wrote
//! (stdout, stderr, the state dirs, the files sink output gunzipped, the `--summary-json`
//! file, every row of every table, view and ledger table of the PostgreSQL schema) is
//! searched: no secret, and (with `visitor_ip = "hash"`) no raw `visitor_ip` of the input.
//!
//! Not covered here: metric labels (served only while a run lasts) and the Redshift path
//! (`sink-redshift/tests/secrets.rs`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use dpl_tests::*;

const START: &str = "2026-11-01";
const END: &str = "2026-11-02";
/// Every fake secret starts with this, so a partial leak is caught too.
const MARK: &str = "FAKE-SECRET";

/// The fake secrets of one scenario; `tag` tells the scenarios apart in a failure.
struct Secrets {
    pg_password: String,
    fail_password: String,
    flag_password: String,
    pgpassword: String,
    rs_password: String,
    sink_key_id: String,
    sink_secret: String,
    sink_token: String,
    source_key_id: String,
    source_secret: String,
    source_token: String,
    salt: String,
}

impl Secrets {
    fn new(tag: &str) -> Secrets {
        Secrets {
            pg_password: format!("FAKE-SECRET-PG-7731-{tag}"),
            fail_password: format!("FAKE-SECRET-PGFAIL-4410-{tag}"),
            flag_password: format!("FAKE-SECRET-PGFLAG-1298-{tag}"),
            pgpassword: format!("FAKE-SECRET-PGPASSWORD-6071-{tag}"),
            rs_password: format!("FAKE-SECRET-RSQUERY-3902-{tag}"),
            sink_key_id: format!("FAKE-SECRET-AWSID-5120-{tag}"),
            sink_secret: format!("FAKE-SECRET-AWS-9182-{tag}"),
            sink_token: format!("FAKE-SECRET-TOKEN-3307-{tag}"),
            source_key_id: format!("FAKE-SECRET-S3ID-6604-{tag}"),
            source_secret: format!("FAKE-SECRET-S3KEY-2291-{tag}"),
            source_token: format!("FAKE-SECRET-S3TOKEN-8853-{tag}"),
            salt: format!("FAKE-SECRET-SALT-0123456789abcdef-{tag}"),
        }
    }

    fn all(&self) -> Vec<&str> {
        vec![
            &self.pg_password,
            &self.fail_password,
            &self.flag_password,
            &self.pgpassword,
            &self.rs_password,
            &self.sink_key_id,
            &self.sink_secret,
            &self.sink_token,
            &self.source_key_id,
            &self.source_secret,
            &self.source_token,
            &self.salt,
        ]
    }

    /// What to search for: the marker, each secret, and each secret's distinctive tail
    /// (a redaction that keeps the end of a value still leaks it).
    fn needles(&self) -> Vec<String> {
        let mut v = vec![MARK.to_owned()];
        for s in self.all() {
            v.push(s.to_owned());
            v.push(s.trim_start_matches("FAKE-SECRET-").to_owned());
        }
        v
    }
}

/// `url` with `password` put into its authority (`scheme://user:password@host...`).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = authority
        .rsplit_once('@')
        .unwrap_or(("postgres", authority));
    let user = user.split_once(':').map_or(user, |(u, _)| u);
    format!("{scheme}://{user}:{password}@{host}{tail}")
}

/// The `dpl.toml` holding every secret.
fn config_toml(s: &Secrets, pg_url: &str) -> String {
    format!(
        r#"[source.s3]
bucket = "parsely-dw-example"
access_key_id = "{}"
secret_access_key = "{}"
session_token = "{}"

[decode.privacy]
visitor_ip = "hash"
ip_hash_salt = "{}"

[sink]
pg_url = "{pg_url}"
redshift_url = "postgres://loader@cluster.example:5439/dw?sslmode=require&password={}"
access_key_id = "{}"
secret_access_key = "{}"
session_token = "{}"
"#,
        s.source_key_id,
        s.source_secret,
        s.source_token,
        s.salt,
        s.rs_password,
        s.sink_key_id,
        s.sink_secret,
        s.sink_token
    )
}

type EnvVars = Vec<(String, String)>;

/// The same settings as `DPL_` environment variables.
fn config_env(s: &Secrets, pg_url: &str) -> EnvVars {
    let rs_url = format!(
        "postgres://loader@cluster.example:5439/dw?sslmode=require&password={}",
        s.rs_password
    );
    [
        ("DPL_SOURCE__S3__BUCKET", "parsely-dw-example"),
        ("DPL_SOURCE__S3__ACCESS_KEY_ID", &s.source_key_id),
        ("DPL_SOURCE__S3__SECRET_ACCESS_KEY", &s.source_secret),
        ("DPL_SOURCE__S3__SESSION_TOKEN", &s.source_token),
        ("DPL_DECODE__PRIVACY__VISITOR_IP", "hash"),
        ("DPL_DECODE__PRIVACY__IP_HASH_SALT", &s.salt),
        ("DPL_SINK__PG_URL", pg_url),
        ("DPL_SINK__REDSHIFT_URL", &rs_url),
        ("DPL_SINK__ACCESS_KEY_ID", &s.sink_key_id),
        ("DPL_SINK__SECRET_ACCESS_KEY", &s.sink_secret),
        ("DPL_SINK__SESSION_TOKEN", &s.sink_token),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Everything the pipeline wrote, as (where, text) pairs.
#[derive(Default)]
struct Written(Vec<(String, String)>);

impl Written {
    fn add(&mut self, label: impl Into<String>, bytes: &[u8]) {
        self.0
            .push((label.into(), String::from_utf8_lossy(bytes).into_owned()));
    }

    fn add_output(&mut self, what: &str, out: &Output) {
        self.add(format!("{what}: stdout"), &out.stdout);
        self.add(format!("{what}: stderr"), &out.stderr);
    }

    /// Every file under `dir` (its relative path too), `.gz` files decompressed.
    fn add_dir(&mut self, root: &Path, dir: &Path) {
        let mut n = 0;
        for path in files_under(dir) {
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let bytes = std::fs::read(&path).unwrap();
            let text = if rel.ends_with(".gz") {
                gunzip(&path)
            } else {
                bytes
            };
            self.add(format!("file name {rel}"), rel.as_bytes());
            self.add(format!("file {rel}"), &text);
            n += 1;
        }
        assert!(n > 0, "nothing written under {}", dir.display());
    }

    /// Every row of every table and view of `schema`, one label per table.
    async fn add_schema(&mut self, client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
        let tables: Vec<String> = client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
                 ORDER BY 1",
                &[&schema],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for t in &tables {
            let rows = dump(client, schema, t).await;
            self.add(format!("table {schema}.{t}"), rows.join("\n").as_bytes());
        }
        tables
    }

    /// Every place a needle occurs, with the line around it.
    fn hits(&self, needles: &[String]) -> Vec<String> {
        let mut hits = Vec::new();
        for (label, text) in &self.0 {
            for n in needles {
                if let Some(i) = text.find(n.as_str()) {
                    hits.push(format!("{n:?} in {label}: {}", line_around(text, i)));
                }
            }
        }
        hits
    }

    /// Panics naming every place a needle occurs.
    fn assert_free_of(&self, needles: &[String], what: &str) {
        let hits = self.hits(needles);
        assert!(hits.is_empty(), "{what} leaked:\n{}", hits.join("\n"));
    }

    /// Every place (at most 20) a raw IP address of `ips` occurs as a whole token.
    fn ip_hits(&self, ips: &BTreeSet<String>) -> Vec<String> {
        let mut hits = Vec::new();
        for (label, text) in &self.0 {
            let tokens: BTreeSet<&str> = ip_tokens(text).collect();
            for token in tokens {
                if ips.contains(token) && hits.len() < 20 {
                    let i = text.find(token).unwrap_or(0);
                    hits.push(format!("{token} in {label}: {}", line_around(text, i)));
                }
            }
        }
        hits
    }

    /// Panics naming every place a raw IP address occurs.
    fn assert_no_ip(&self, ips: &BTreeSet<String>) {
        let hits = self.ip_hits(ips);
        assert!(
            hits.is_empty(),
            "raw visitor_ip values written with visitor_ip = \"hash\":\n{}",
            hits.join("\n")
        );
    }
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The line of `text` holding byte `i`, cut to 300 characters.
fn line_around(text: &str, i: usize) -> String {
    let start = text[..i].rfind('\n').map_or(0, |p| p + 1);
    let end = text[i..].find('\n').map_or(text.len(), |p| i + p);
    text[start..end].chars().take(300).collect()
}

/// Maximal runs of IPv4 characters (digits, `.`) and of IPv6 characters (hex digits, `:`,
/// `.`): a raw address in CSV, JSON or a log line is one of these tokens.
fn ip_tokens(text: &str) -> impl Iterator<Item = &str> {
    let v4 = text.split(|c: char| !(c.is_ascii_digit() || c == '.'));
    let v6 = text.split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'));
    v4.chain(v6).filter(|t| t.len() >= 2)
}

/// The distinct valid `visitor_ip` values of the generated input.
fn raw_ips(data: &Path) -> BTreeSet<String> {
    let mut ips = BTreeSet::new();
    let key = "\"visitor_ip\":\"";
    for path in files_under(data) {
        if !path.to_string_lossy().ends_with(".gz") {
            continue;
        }
        let text = String::from_utf8_lossy(&gunzip(&path)).into_owned();
        for (i, _) in text.match_indices(key) {
            let rest = &text[i + key.len()..];
            let Some(end) = rest.find('"') else { continue };
            let ip = &rest[..end];
            if ip.parse::<std::net::IpAddr>().is_ok() {
                ips.insert(ip.to_owned());
            }
        }
    }
    ips
}

/// `dpl --log-level trace ARGS` in `root` with `env` set.
fn dpl_env(root: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let mut all = vec!["--log-level", "trace"];
    all.extend_from_slice(args);
    let mut cmd = dpl_command(root, &all);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running dpl")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    File,
    Env,
}

async fn secrets_are_never_written(via: Via) {
    let tag = match via {
        Via::File => "FILE",
        Via::Env => "ENV",
    };
    let secrets = Secrets::new(tag);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = dpl_gen::GenConfig::new(4_000, jiff::civil::date(2026, 11, 1), 2, 23);
    dpl_gen::generate_to_dir(&cfg, &root.join("data")).unwrap();
    let ips = raw_ips(&root.join("data"));
    assert!(ips.len() >= 20, "too few raw IPs in the input: {ips:?}");
    assert!(
        ips.iter().any(|ip| ip.contains(':')),
        "no IPv6 in the input"
    );

    let pg_url = with_password(&pg_url(), &secrets.pg_password);
    let fail_url = with_password(
        "postgres://postgres@127.0.0.1:1/test",
        &secrets.fail_password,
    );
    let (env, fail_env, fail_args): (EnvVars, EnvVars, Vec<&str>) = match via {
        Via::File => {
            std::fs::write(root.join("dpl.toml"), config_toml(&secrets, &pg_url)).unwrap();
            std::fs::write(root.join("fail.toml"), config_toml(&secrets, &fail_url)).unwrap();
            (Vec::new(), Vec::new(), vec!["--config", "fail.toml"])
        }
        Via::Env => (
            config_env(&secrets, &pg_url),
            config_env(&secrets, &fail_url),
            Vec::new(),
        ),
    };

    // The search must find what it looks for.
    let mut control = Written::default();
    control.add("control", config_toml(&secrets, &pg_url).as_bytes());
    control.add("control", fail_url.as_bytes());
    control.add("control", secrets.flag_password.as_bytes());
    control.add("control", secrets.pgpassword.as_bytes());
    control.add(
        "control",
        format!("{:?}", config_env(&secrets, &pg_url)).as_bytes(),
    );
    for s in secrets.all() {
        assert!(
            !control.hits(&[s.to_owned()]).is_empty(),
            "the search misses {s}"
        );
    }

    let mut written = Written::default();
    let run_args = |sink: &'static str, state: &'static str| {
        vec![
            "run",
            "--source-dir",
            "data",
            "--start-date",
            START,
            "--end-date",
            END,
            "--sink",
            sink,
            "--state-dir",
            state,
        ]
    };

    // The files sink.
    let mut args = run_args("files", "state-files");
    args.extend(["--out", "out", "--summary-json", "summary.json"]);
    let out = dpl_env(root, &args, &env);
    assert_ok(&out, "dpl run --sink files");
    written.add_output("run --sink files", &out);
    written.add_dir(root, &root.join("out"));
    written.add_dir(root, &root.join("state-files"));
    written.add(
        "summary.json",
        &std::fs::read(root.join("summary.json")).unwrap(),
    );
    // visitor_ip was hashed: 64 hex digits in the pageviews output.
    let pv = std::fs::read_dir(root.join("out/parsely_pageviews"))
        .unwrap()
        .count();
    assert!(pv > 0);
    let hashed = written.0.iter().any(|(label, text)| {
        label.contains("parsely_pageviews/part-")
            && text.split([',', '\n']).any(|f| {
                f.len() == 64
                    && f.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
    });
    assert!(hashed, "no hashed visitor_ip in the pageviews output");

    // The PostgreSQL sink.
    let client = pg().await;
    let schema = TestSchema::create(&client, &format!("secrets_{}", tag.to_lowercase())).await;
    let mut args = run_args("postgres", "state-pg");
    args.extend(["--schema", &schema.name]);
    let out = dpl_env(root, &args, &env);
    assert_ok(&out, "dpl run --sink postgres");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TRACE"),
        "no trace logging from the postgres run"
    );
    written.add_output("run --sink postgres", &out);
    written.add_dir(root, &root.join("state-pg"));
    let tables = written.add_schema(&client, &schema.name).await;
    for t in [
        "dpl_loaded_objects",
        "dpl_runs",
        "parsely_pageviews",
        "parsely_users",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} missing: {tables:?}");
        assert!(count(&client, &schema.name, t).await > 0, "{t} is empty");
    }
    let ip_hashes: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{}\".parsely_pageviews WHERE visitor_ip ~ '^[0-9a-f]{{64}}$'",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ip_hashes > 0, "no hashed visitor_ip in PostgreSQL");

    // `dpl config`: the effective configuration, secrets as ***.
    let out = dpl_env(root, &["config"], &env);
    assert_ok(&out, "dpl config");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains("visitor_ip = \"hash\""), "{shown}");
    assert!(shown.matches("\"***\"").count() >= 7, "{shown}");
    assert!(shown.contains("postgres:***@"), "{shown}");
    assert!(shown.contains("cluster.example:5439"), "{shown}");
    written.add_output("config", &out);

    // Help texts, with the secrets in the environment (clap can show `env` values).
    for args in [&["--help"][..], &["run", "--help"], &["config", "--help"]] {
        let out = dpl_env(root, args, &env);
        assert_ok(&out, &format!("dpl {args:?}"));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
        written.add_output(&format!("{args:?}"), &out);
    }

    // Runs that cannot connect: the error must not show the password, whether it is in
    // the configured URL, in a `--pg-url` flag or in PGPASSWORD.
    let flag_url = with_password(
        "postgres://postgres@127.0.0.1:1/test",
        &secrets.flag_password,
    );
    let mut pgpassword_env = fail_env.clone();
    pgpassword_env.push(("PGPASSWORD".to_owned(), secrets.pgpassword.clone()));
    let failing: [(&str, Vec<&str>, &EnvVars); 3] = [
        ("configured URL", fail_args, &fail_env),
        ("--pg-url", vec!["--pg-url", &flag_url], &fail_env),
        (
            "PGPASSWORD",
            vec!["--pg-url", "postgres://postgres@127.0.0.1:1/test"],
            &pgpassword_env,
        ),
    ];
    for (i, (what, extra, env)) in failing.into_iter().enumerate() {
        let state = format!("state-fail-{i}");
        let mut args = run_args("postgres", "unused");
        *args.last_mut().unwrap() = &state;
        args.extend(extra);
        let out = dpl_env(root, &args, env);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "a run against 127.0.0.1:1 ({what}) succeeded:\n{err}"
        );
        assert!(
            err.contains("connect"),
            "{what}: no connection error:\n{err}"
        );
        written.add_output(&format!("failing run, password in {what}"), &out);
        if root.join(&state).exists() {
            for p in files_under(&root.join(&state)) {
                written.add(p.display().to_string(), &std::fs::read(&p).unwrap());
            }
        }
    }

    written.assert_free_of(&secrets.needles(), "secrets");
    written.assert_no_ip(&ips);
    schema.drop(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_from_the_config_file_are_never_written() {
    secrets_are_never_written(Via::File).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_from_the_environment_are_never_written() {
    secrets_are_never_written(Via::Env).await;
}

#[test]
fn the_leak_search_works() {
    let s = Secrets::new("T");
    assert_eq!(
        with_password("postgres://postgres@127.0.0.1:5432/test", "pw"),
        "postgres://postgres:pw@127.0.0.1:5432/test"
    );
    assert_eq!(
        with_password("postgres://u:old@h/db?sslmode=disable", "pw"),
        "postgres://u:pw@h/db?sslmode=disable"
    );
    let mut w = Written::default();
    w.add("a", b"password=***, ok 10.1.2.30x 2600:1700::1b");
    w.assert_free_of(&s.needles(), "none");
    w.assert_no_ip(&["10.1.2.3".to_owned(), "2600:1700::1".to_owned()].into());
    w.add("b", b"key=AWS-9182-T;");
    assert_eq!(w.hits(&s.needles()).len(), 1);
    let mut w = Written::default();
    w.add("c", b"x,10.1.2.3,y\n\"visitor_ip\":\"2600:1700::1\"");
    let ips: BTreeSet<String> = ["10.1.2.3".to_owned(), "2600:1700::1".to_owned()].into();
    assert_eq!(w.ip_hits(&ips).len(), 2);
}
