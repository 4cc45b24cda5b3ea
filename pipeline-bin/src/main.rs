//! `dpl`: turns Parse.ly Data Pipeline raw events into analytics tables.
//!
//! The binary is thin: it parses flags, loads the configuration, sets up logging, wires the
//! stages (source -> decode -> sessionize -> sink) over bounded channels and maps errors to
//! exit codes. The logic lives in the stage crates.

mod bench;
mod config;
mod progress;
mod run;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Overrides};

/// mimalloc instead of the system allocator: the decode workers allocate what the sessionizer
/// threads free, and glibc's per-thread arenas then hold on to freed memory (a 1-million-event
/// run peaked 15% lower with two arenas only); mimalloc returns it and is as fast.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option, by its place in mimalloc 3's `mi_option_e` (`mimalloc.h`):
/// the Rust bindings do not name it. A test checks that the place holds the documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the process before mimalloc returns it to the system.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` sets it.
///
/// mimalloc returns freed memory to the system 1 s after it is freed, with `madvise`. With
/// threads on several cores, every such call interrupts the other cores to flush their TLBs,
/// and the memory, soon used again, faults in afresh: on two cores `dpl run` spent 7% of its
/// time sending and taking those interrupts. Ten seconds keeps the memory a steady run
/// reuses, and still returns what a burst left: `dpl run` on two cores took about 8% less
/// time (docs/performance.md).
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores the value; mimalloc allows setting an option at any
    // time, and the place is checked by `tests::purge_delay_option_is_at_its_place`.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

#[derive(Parser, Debug)]
#[command(
    name = "dpl",
    version,
    about = "Turn Parse.ly Data Pipeline raw events into analytics tables",
    long_about = "Turn Parse.ly Data Pipeline (DPL) raw events into a star schema: users, \
sessions, pageviews, videoviews, content, campaigns, custom events, bot traffic and errors.\n\n\
Start with `dpl demo`: it generates a sample and runs the whole pipeline on it, with no \
service needed. Then `dpl run --source-dir DIR --start-date D --end-date D` on your own data.\n\n\
Configuration comes from dpl.toml (or --config FILE), then DPL_ environment variables \
(nested keys joined by __, e.g. DPL_SINK__KIND=postgres), then flags."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (error, warn, info, debug, trace, or a RUST_LOG-style directive).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "warn")]
    log_level: String,
    /// Log format on stderr: `text` for people, `json` for log shippers.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read a day range of DPL objects and load the tables.
    Run(RunArgs),
    /// Generate a deterministic sample of realistic DPL files.
    Gen(GenArgs),
    /// Generate a sample into ./dpl-demo/ and run the pipeline on it (files sink).
    Demo(DemoArgs),
    /// Print the DDL of every table for a sink.
    Ddl(DdlArgs),
    /// Measure each stage and the whole pipeline on generated data.
    Bench(BenchArgs),
    /// Print the effective configuration (file, environment, defaults), secrets as ***.
    Config(ConfigArgs),
}

#[derive(Args, Debug)]
struct ConfigArgs {
    /// Configuration file (default: ./dpl.toml when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Event lines to generate (data is reused when it exists).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Days the events span.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where generated data and scratch output go.
    #[arg(long, value_name = "DIR", default_value = "dpl-bench")]
    dir: PathBuf,
    /// PostgreSQL for the sink-versus-psql figures (fresh schemas, dropped after); skipped
    /// when no server answers.
    #[arg(
        long,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,
}

#[derive(Args, Debug, Default)]
struct RunArgs {
    /// Configuration file (default: ./dpl.toml when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Root directory holding events/YYYY/MM/DD/ (source.dir).
    #[arg(long, value_name = "DIR")]
    source_dir: Option<PathBuf>,
    /// First UTC day to read, YYYY-MM-DD (start_date; default: end date).
    #[arg(long, value_name = "YYYY-MM-DD")]
    start_date: Option<String>,
    /// Last UTC day to read, inclusive, YYYY-MM-DD (end_date; default: yesterday).
    #[arg(long, value_name = "YYYY-MM-DD")]
    end_date: Option<String>,
    /// Where rows go (sink.kind).
    #[arg(long, value_enum)]
    sink: Option<SinkArg>,
    /// Output directory of the files sink (sink.out).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// PostgreSQL URL for the postgres sink, postgres://user@host:port/db (sink.pg_url).
    #[arg(long, value_name = "URL")]
    pg_url: Option<String>,
    /// Warehouse schema for the tables (sink.schema).
    #[arg(long, value_name = "NAME")]
    schema: Option<String>,
    /// Directory of the sessionizer checkpoint (state_dir).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Also write the run's figures (events, bytes, time, peak RSS) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SinkArg {
    Files,
    Postgres,
    Redshift,
    Null,
}

impl SinkArg {
    fn as_str(self) -> &'static str {
        match self {
            SinkArg::Files => "files",
            SinkArg::Postgres => "postgres",
            SinkArg::Redshift => "redshift",
            SinkArg::Null => "null",
        }
    }
}

#[derive(Args, Debug)]
struct GenArgs {
    /// Output directory (the events/YYYY/MM/DD/ layout is created under it).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of event lines to write (valid, duplicate and malformed together).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// First UTC day.
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2026-11-01")]
    start_date: String,
    /// Number of days.
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Random seed: the same seed gives the same files, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Objects per day (each covers an equal slice of the day's deliveries).
    #[arg(long, default_value_t = 24)]
    objects_per_day: u32,
    /// Visitors the sessions are drawn from (default: events / 20). Keep it fixed to compare
    /// runs of different lengths with the same visitor activity.
    #[arg(long)]
    visitors: Option<u64>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Number of event lines to generate.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Demo directory (data, output and state go under it; output and state are replaced).
    #[arg(long, value_name = "DIR", default_value = "dpl-demo")]
    dir: PathBuf,
}

#[derive(Args, Debug)]
struct DdlArgs {
    /// Which warehouse dialect to print.
    #[arg(long, value_enum, default_value = "postgres")]
    sink: DdlSink,
    /// Schema name to create the tables in (default: sink.schema of the configuration).
    #[arg(long, value_name = "NAME")]
    schema: Option<String>,
    /// Configuration file (default: ./dpl.toml when present); gives extra_data_column and
    /// the rolling window of the view.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DdlSink {
    Postgres,
    Redshift,
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    init_tracing(&cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<run::Interrupted>().is_some() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_tracing(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Serves Prometheus metrics on `metrics.listen` when it is set.
fn install_metrics(config: &Config) -> anyhow::Result<()> {
    if let Some(addr) = config.metrics.listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("serving metrics on {addr} (metrics.listen)"))?;
    }
    Ok(())
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => {
            let config = Config::load(args.config.as_deref(), &overrides(&args))?;
            install_metrics(&config)?;
            let outcome = run::run(config).await?;
            summary::print(&outcome);
            if let Some(path) = &args.summary_json {
                let json = serde_json::to_string_pretty(&summary::figures(&outcome))?;
                std::fs::write(path, json)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(args) => {
            let config = Config::load(args.config.as_deref(), &Overrides::default())?;
            print!("{}", config.to_redacted_toml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            bench::bench(bench::BenchOptions {
                events: args.events,
                days: args.days,
                seed: args.seed,
                dir: args.dir,
                pg_url: args.pg_url,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Gen(args) => {
            let start = parse_date(&args.start_date, "--start-date")?;
            let mut cfg = dpl_gen::GenConfig::new(args.events, start, args.days, args.seed);
            cfg.objects_per_day = args.objects_per_day;
            cfg.visitors = args.visitors;
            let summary = dpl_gen::generate_to_dir(&cfg, &args.out)
                .with_context(|| format!("generating into {}", args.out.display()))?;
            println!(
                "wrote {} objects, {} lines under {}",
                summary.objects,
                summary.lines,
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo(args).await,
        Command::Ddl(args) => {
            let overrides = Overrides {
                schema: args.schema.clone(),
                ..Overrides::default()
            };
            let config = Config::load(args.config.as_deref(), &overrides)?;
            let schema = dpl_core::Schema::new(&config.extra_data_column)?;
            let dialect = match args.sink {
                DdlSink::Postgres => dpl_sink::Dialect::Postgres,
                DdlSink::Redshift => dpl_sink::Dialect::Redshift,
            };
            let ddl =
                dpl_sink::ddl_with_view(dialect, &config.sink.schema, &schema, &config.sink.view)?;
            print!("{ddl}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn overrides(args: &RunArgs) -> Overrides {
    Overrides {
        source_dir: args.source_dir.clone(),
        start_date: args.start_date.clone(),
        end_date: args.end_date.clone(),
        sink: args.sink.map(|s| s.as_str().to_owned()),
        out: args.out.clone(),
        pg_url: args.pg_url.clone(),
        schema: args.schema.clone(),
        state_dir: args.state_dir.clone(),
    }
}

fn parse_date(text: &str, what: &str) -> anyhow::Result<jiff::civil::Date> {
    text.parse::<jiff::civil::Date>()
        .with_context(|| format!("{what} {text:?} is not a date: use YYYY-MM-DD"))
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let start = jiff::civil::date(2026, 11, 1);
    let days = 3;
    let data = args.dir.join("data");
    let out = args.dir.join("out");
    let state = args.dir.join("state");
    for dir in [&out, &state, &data] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("clearing the previous demo in {}", dir.display()))?;
        }
    }
    println!(
        "generating {} events over {days} days into {} ...",
        args.events,
        data.display()
    );
    let cfg = dpl_gen::GenConfig::new(args.events, start, days, 1);
    let generated = dpl_gen::generate_to_dir(&cfg, &data)?;
    println!(
        "wrote {} objects, {} lines\n",
        generated.objects, generated.lines
    );
    let overrides = Overrides {
        source_dir: Some(data),
        start_date: Some(start.to_string()),
        end_date: Some(
            start
                .checked_add(jiff::Span::new().days(i64::from(days) - 1))?
                .to_string(),
        ),
        sink: Some("files".to_owned()),
        out: Some(out.clone()),
        state_dir: Some(state),
        ..Overrides::default()
    };
    let config = Config::load(None, &overrides)?;
    let outcome = run::run(config).await?;
    summary::print(&outcome);
    println!(
        "\nThe tables are in {}: one folder per table of gzip CSV parts, with a `columns` file \
and `columns.sql` to load them.",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// The place `MI_OPTION_PURGE_DELAY` names holds mimalloc's purge delay: its documented
    /// default (1000 ms in mimalloc 3), then what `tune_allocator` sets. Another option there
    /// would hold another default.
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_option_is_at_its_place() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one of mimalloc's options.
        let get = || unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(get(), 1000);
        super::tune_allocator();
        assert_eq!(get(), super::PURGE_DELAY_MS);
    }
}
