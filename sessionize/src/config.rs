//! Configuration of the sessionizer (SPEC.md section 7 defaults).

use dpl_core::Schema;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

/// Settings of sessions, users, labels and state windows. Every field has the SPEC.md
/// section 7 default.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionizeConfig {
    /// Idle gap that ends a session; a gap exactly this long does not split (default 30m).
    pub idle_timeout: SignedDuration,
    /// How far behind the largest `ts_action` seen an event may arrive and still be
    /// sessionized on time (default 1h); older ones are stragglers.
    pub allowed_lateness: SignedDuration,
    /// How long event ids are remembered for dedupe, measured in `ts_action` (default 48h).
    pub dedupe_window: SignedDuration,
    /// IANA name of the reporting time zone (default America/New_York).
    pub timezone: String,
    /// Lifetime pageviews that make a visitor `Loyalty` (default 100).
    pub loyalty_pageviews: i64,
    /// Pageviews within the rolling window that make a visitor rolling-`Loyalty` (default 30).
    pub rolling_loyalty_pageviews: i64,
    /// Length of the rolling loyalty window in days (default 30).
    pub rolling_window_days: i64,
    /// Engaged seconds above which a pageview is a `Read` (default 15).
    pub skim_seconds: i64,
    /// Engaged seconds above which a pageview is a `Deep Read` (default 40).
    pub deep_read_seconds: i64,
    /// Video seconds above which a videoview is a `Watch` (default 15).
    pub video_skim_seconds: i64,
    /// Video seconds above which a videoview is a `Deep Watch` (default 60).
    pub video_deep_watch_seconds: i64,
    /// Days of per-visitor daily activity kept in state for `parsely_user_daily` (default 35).
    pub daily_retention_days: i64,
    /// Rows per emitted RowBatch (default 2048); a wide table's batches hold fewer, so that
    /// a batch's values stay within 448 KiB (about 120 page view rows).
    pub batch_rows: usize,
}

impl Default for SessionizeConfig {
    fn default() -> Self {
        SessionizeConfig {
            idle_timeout: SignedDuration::from_mins(30),
            allowed_lateness: SignedDuration::from_hours(1),
            dedupe_window: SignedDuration::from_hours(48),
            timezone: "America/New_York".to_owned(),
            loyalty_pageviews: 100,
            rolling_loyalty_pageviews: 30,
            rolling_window_days: 30,
            skim_seconds: 15,
            deep_read_seconds: 40,
            video_skim_seconds: 15,
            video_deep_watch_seconds: 60,
            daily_retention_days: 35,
            batch_rows: 2048,
        }
    }
}

impl SessionizeConfig {
    /// Checks the settings that have a valid range.
    pub fn validate(&self) -> Result<(), crate::error::Error> {
        let bad = |m: &str| Err(crate::error::Error::Config(m.to_owned()));
        if self.idle_timeout <= SignedDuration::ZERO {
            return bad("idle_timeout must be positive (for example \"30m\")");
        }
        if self.allowed_lateness < SignedDuration::ZERO {
            return bad("allowed_lateness must not be negative (for example \"1h\")");
        }
        if self.dedupe_window <= SignedDuration::ZERO {
            return bad("dedupe_window must be positive (for example \"48h\")");
        }
        if self.rolling_window_days < 1 {
            return bad("rolling_window_days must be at least 1");
        }
        if self.daily_retention_days < self.rolling_window_days {
            return bad(
                "daily_retention_days must be at least rolling_window_days (the users' rolling \
                 pageviews are read from the kept days)",
            );
        }
        if self.batch_rows == 0 {
            return bad("batch_rows must be at least 1");
        }
        Ok(())
    }
}

/// The settings the saved state depends on: written in the checkpoint and compared when a
/// run loads it (a changed one would silently mix two definitions of a session or a day).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Settings {
    idle_timeout_us: i64,
    allowed_lateness_us: i64,
    dedupe_window_us: i64,
    timezone: String,
    loyalty_pageviews: i64,
    rolling_loyalty_pageviews: i64,
    rolling_window_days: i64,
    daily_retention_days: i64,
    extra_data_column: String,
}

fn us(d: SignedDuration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn duration(us: i64) -> String {
    format!("{:#}", SignedDuration::from_micros(us))
}

impl Settings {
    pub(crate) fn of(c: &SessionizeConfig, schema: &Schema) -> Settings {
        Settings {
            idle_timeout_us: us(c.idle_timeout),
            allowed_lateness_us: us(c.allowed_lateness),
            dedupe_window_us: us(c.dedupe_window),
            timezone: c.timezone.clone(),
            loyalty_pageviews: c.loyalty_pageviews,
            rolling_loyalty_pageviews: c.rolling_loyalty_pageviews,
            rolling_window_days: c.rolling_window_days,
            daily_retention_days: c.daily_retention_days,
            extra_data_column: schema.extra_column().to_owned(),
        }
    }

    /// The first setting that differs from `now`: its name, old and new values.
    pub(crate) fn changed(&self, now: &Settings) -> Option<(&'static str, String, String)> {
        let d = |name, a: i64, b: i64| (a != b).then(|| (name, duration(a), duration(b)));
        let n = |name, a: i64, b: i64| (a != b).then(|| (name, a.to_string(), b.to_string()));
        let t =
            |name, a: &str, b: &str| (a != b).then(|| (name, format!("{a:?}"), format!("{b:?}")));
        d("idle_timeout", self.idle_timeout_us, now.idle_timeout_us)
            .or_else(|| {
                d(
                    "allowed_lateness",
                    self.allowed_lateness_us,
                    now.allowed_lateness_us,
                )
            })
            .or_else(|| d("dedupe_window", self.dedupe_window_us, now.dedupe_window_us))
            .or_else(|| t("timezone", &self.timezone, &now.timezone))
            .or_else(|| {
                n(
                    "loyalty_pageviews",
                    self.loyalty_pageviews,
                    now.loyalty_pageviews,
                )
            })
            .or_else(|| {
                n(
                    "rolling_loyalty_pageviews",
                    self.rolling_loyalty_pageviews,
                    now.rolling_loyalty_pageviews,
                )
            })
            .or_else(|| {
                n(
                    "rolling_window_days",
                    self.rolling_window_days,
                    now.rolling_window_days,
                )
            })
            .or_else(|| {
                n(
                    "daily_retention_days",
                    self.daily_retention_days,
                    now.daily_retention_days,
                )
            })
            .or_else(|| {
                t(
                    "extra_data_column",
                    &self.extra_data_column,
                    &now.extra_data_column,
                )
            })
    }
}
