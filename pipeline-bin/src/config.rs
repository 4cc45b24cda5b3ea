//! The `dpl` configuration: `dpl.toml` (or `--config FILE`), then `DPL_` environment
//! variables (nested keys joined by `__`, e.g. `DPL_SINK__KIND=postgres`), then flags.

use std::path::{Path, PathBuf};

use anyhow::bail;
use dpl_decode::DecodeConfig;
use dpl_sessionize::SessionizeConfig;
use dpl_sink::SinkConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Top-level sections and keys; anything else in the file or the environment is an error.
const TOP_LEVEL_KEYS: &[&str] = &[
    "start_date",
    "end_date",
    "state_dir",
    "extra_data_column",
    "reload_changed",
    "source",
    "decode",
    "sessionize",
    "sink",
    "pipeline",
    "metrics",
];

/// The whole configuration. Every key has a default (SPEC.md section 7).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// First UTC delivery day to read (inclusive). Default: `end_date`.
    pub start_date: Option<jiff::civil::Date>,
    /// Last UTC delivery day to read (inclusive). Default: yesterday (UTC).
    pub end_date: Option<jiff::civil::Date>,
    /// Where the sessionizer keeps its checkpoint between runs.
    pub state_dir: PathBuf,
    /// Column name for the configured `extra_data` key (default `custom_extra_data`).
    pub extra_data_column: String,
    /// Reload objects whose ETag changed since they were loaded, instead of stopping.
    pub reload_changed: bool,
    pub source: SourceConfig,
    pub decode: DecodeConfig,
    pub sessionize: SessionizeConfig,
    pub sink: SinkConfig,
    pub pipeline: PipelineConfig,
    pub metrics: MetricsConfig,
}

/// Prometheus metrics.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address to serve `/metrics` on, e.g. `127.0.0.1:9898` (default: not served).
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            start_date: None,
            end_date: None,
            state_dir: PathBuf::from("dpl-state"),
            extra_data_column: "custom_extra_data".to_owned(),
            reload_changed: false,
            source: SourceConfig::default(),
            decode: DecodeConfig::default(),
            sessionize: SessionizeConfig::default(),
            sink: SinkConfig::default(),
            pipeline: PipelineConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Where the raw DPL objects are.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// `local` (a directory with the `events/YYYY/MM/DD/` layout) or `s3`.
    pub kind: SourceKind,
    /// Root directory of the `local` source (holds `events/`).
    pub dir: PathBuf,
    /// Objects fetched at once.
    pub concurrency: usize,
    /// The `s3` source: bucket, prefix, region, endpoint, credentials, retries.
    pub s3: dpl_source::S3Config,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Local,
            dir: PathBuf::from("."),
            concurrency: 8,
            s3: dpl_source::S3Config::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Local,
    S3,
}

/// Parallelism and buffering between stages.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Decode workers (default: the machine's cores).
    pub decode_workers: usize,
    /// Sessionizer shards, each a thread owning the visitors whose hash falls to it
    /// (default: the machine's cores). The rows do not depend on it.
    pub sessionize_shards: usize,
    /// Capacity of each channel between stages, in batches.
    pub channel_batches: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            decode_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            sessionize_shards: std::thread::available_parallelism().map_or(2, |n| n.get()),
            channel_batches: 4,
        }
    }
}

/// Values given on the command line; each one overrides file and environment.
#[derive(Debug, Default)]
pub struct Overrides {
    pub source_dir: Option<PathBuf>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub sink: Option<String>,
    pub out: Option<PathBuf>,
    pub pg_url: Option<String>,
    pub schema: Option<String>,
    pub state_dir: Option<PathBuf>,
}

impl Config {
    /// Loads the configuration. `file`: an explicit `--config` (must exist); otherwise
    /// `dpl.toml` in the working directory when present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut fig = Figment::new();
        match file {
            Some(path) => {
                if !path.is_file() {
                    bail!("config file {} not found", path.display());
                }
                fig = fig.merge(Toml::file(path));
            }
            None => {
                if Path::new("dpl.toml").is_file() {
                    fig = fig.merge(Toml::file("dpl.toml"));
                }
            }
        }
        fig = fig.merge(Env::prefixed("DPL_").split("__").filter(|k| {
            let top = k.as_str().split('.').next().unwrap_or("");
            // figment filters before it lower-cases the keys.
            TOP_LEVEL_KEYS.iter().any(|t| t.eq_ignore_ascii_case(top))
        }));
        let o = overrides;
        for (flag, value) in [("--start-date", &o.start_date), ("--end-date", &o.end_date)] {
            if let Some(v) = value
                && let Err(e) = v.parse::<jiff::civil::Date>()
            {
                bail!("{flag} {v:?} is not a date: use YYYY-MM-DD ({e})");
            }
        }
        let mut set = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                fig = std::mem::take(&mut fig).merge(Serialized::global(key, v));
            }
        };
        set(
            "source.dir",
            o.source_dir.as_ref().map(|p| p.display().to_string()),
        );
        set("start_date", o.start_date.clone());
        set("end_date", o.end_date.clone());
        set("sink.kind", o.sink.clone());
        set("sink.out", o.out.as_ref().map(|p| p.display().to_string()));
        set("sink.pg_url", o.pg_url.clone());
        set("sink.schema", o.schema.clone());
        set(
            "state_dir",
            o.state_dir.as_ref().map(|p| p.display().to_string()),
        );
        let config: Config = fig.extract().map_err(|e| {
            // figment names the key path and the accepted values; one line per error.
            let lines: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("invalid configuration: {}", lines.join("; "))
        })?;
        let mut config = config;
        config.check()?;
        // The view parsely_users_current computes rolling loyalty with the same settings
        // as the sessionizer.
        config.sink.view = dpl_sink::ViewOptions {
            rolling_window_days: u32::try_from(config.sessionize.rolling_window_days)
                .map_err(|_| anyhow::anyhow!("invalid configuration: sessionize.rolling_window_days must be between 0 and 4294967295"))?,
            rolling_loyalty_pageviews: u64::try_from(config.sessionize.rolling_loyalty_pageviews)
                .map_err(|_| anyhow::anyhow!("invalid configuration: sessionize.rolling_loyalty_pageviews must not be negative"))?,
            timezone: config.sessionize.timezone.clone(),
        };
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.pipeline.decode_workers == 0 {
            bail!("invalid configuration: pipeline.decode_workers must be at least 1");
        }
        if self.pipeline.sessionize_shards == 0 {
            bail!("invalid configuration: pipeline.sessionize_shards must be at least 1");
        }
        if self.pipeline.channel_batches == 0 {
            bail!("invalid configuration: pipeline.channel_batches must be at least 1");
        }
        if self.source.concurrency == 0 {
            bail!("invalid configuration: source.concurrency must be at least 1");
        }
        let (start, end) = self.day_range_bounds();
        if start > end {
            bail!("invalid configuration: start_date {start} is after end_date {end}");
        }
        Ok(())
    }

    /// The inclusive day range to read: defaults as documented on the fields.
    pub fn day_range_bounds(&self) -> (jiff::civil::Date, jiff::civil::Date) {
        let end = self.end_date.unwrap_or_else(|| {
            let today = jiff::Timestamp::now()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date();
            today.yesterday().unwrap_or(today)
        });
        (self.start_date.unwrap_or(end), end)
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.state_dir.join("checkpoint.bin")
    }
}

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "session_token",
    "ip_hash_salt",
    "password",
];
/// Keys holding connection URLs, which may carry a password.
const URL_KEYS: &[&str] = &["pg_url", "redshift_url"];

impl Config {
    /// The effective configuration as TOML, secrets shown as `***` (`dpl config`).
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut value = toml::Value::try_from(self)?;
        redact(&mut value);
        Ok(toml::to_string_pretty(&value)?)
    }
}

fn redact(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) {
                    if let toml::Value::String(s) = v
                        && !s.is_empty()
                    {
                        *s = "***".to_owned();
                    }
                } else if URL_KEYS.contains(&k.as_str()) {
                    if let toml::Value::String(s) = v {
                        *s = dpl_sink::redact_url(s);
                    }
                } else {
                    redact(v);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        for (url, want) in [
            (
                "postgres://u:s3cret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgres://u:p%40ss@h/db?sslmode=require",
                "postgres://u:***@h/db?sslmode=require",
            ),
            (
                "postgres://h/db?user=u&password=s3cret&x=1",
                "postgres://h/db?user=u&password=***&x=1",
            ),
            (
                "host=h user=u password=s3cret dbname=d",
                "host=h user=u password=*** dbname=d",
            ),
        ] {
            assert_eq!(dpl_sink::redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn the_printed_configuration_holds_no_secret() {
        let mut config = Config::default();
        config.sink.pg_url = Some("postgres://dpl:FAKE-PG-SECRET@db:5432/w".to_owned());
        config.sink.secret_access_key = Some("FAKE-AWS-SECRET".to_owned());
        config.source.s3.secret_access_key = Some("FAKE-S3-SECRET".to_owned());
        config.source.s3.session_token = Some("FAKE-S3-TOKEN".to_owned());
        config.decode.privacy.ip_hash_salt = Some("FAKE-SALT-0123456789".into());
        let text = config.to_redacted_toml().expect("serializes");
        for secret in [
            "FAKE-PG-SECRET",
            "FAKE-AWS-SECRET",
            "FAKE-S3-SECRET",
            "FAKE-S3-TOKEN",
            "FAKE-SALT",
        ] {
            assert!(!text.contains(secret), "{secret} printed:\n{text}");
        }
        assert!(text.contains("postgres://dpl:***@db:5432/w"), "{text}");
        assert!(
            text.contains("idle_timeout"),
            "defaults are printed too:\n{text}"
        );
    }
}
