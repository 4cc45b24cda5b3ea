//! The output tables and their columns (SPEC.md section 5 and 6).
//!
//! Producers build rows by pushing values in the order [`Schema::columns`] gives; the
//! loaders read the same order. The only column name that is configured is the
//! `extra_data` column (`custom_extra_data` by default), so the column lists are static
//! with a placeholder and [`Schema::new`] fills the name in.

use crate::field::{ALL_FIELDS, Field, Kind, TZ_FIELDS};

/// An output table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Pageviews,
    Videoviews,
    Sessions,
    Users,
    UserDaily,
    PostContent,
    VideoContent,
    Campaigns,
    CustomEvents,
    BotTraffic,
    Errors,
}

impl Table {
    pub const ALL: [Table; 11] = [
        Table::Pageviews,
        Table::Videoviews,
        Table::Sessions,
        Table::Users,
        Table::UserDaily,
        Table::PostContent,
        Table::VideoContent,
        Table::Campaigns,
        Table::CustomEvents,
        Table::BotTraffic,
        Table::Errors,
    ];

    /// The table's name in the warehouse.
    pub fn name(self) -> &'static str {
        match self {
            Table::Pageviews => "parsely_pageviews",
            Table::Videoviews => "parsely_videoviews",
            Table::Sessions => "parsely_sessions",
            Table::Users => "parsely_users",
            Table::UserDaily => "parsely_user_daily",
            Table::PostContent => "parsely_post_content",
            Table::VideoContent => "parsely_video_content",
            Table::Campaigns => "parsely_campaigns",
            Table::CustomEvents => "parsely_custom_events",
            Table::BotTraffic => "parsely_bot_traffic",
            Table::Errors => "parsely_errors",
        }
    }

    /// Primary key columns.
    pub fn primary_key(self) -> &'static [&'static str] {
        match self {
            Table::Pageviews | Table::Videoviews | Table::CustomEvents | Table::BotTraffic => {
                &["event_id"]
            }
            Table::Sessions => &["session_key"],
            Table::Users => &["apikey_visitor_id"],
            Table::UserDaily => &["apikey_visitor_id", "date"],
            Table::PostContent => &["pageview_post_id"],
            Table::VideoContent => &["metadata_canonical_url"],
            Table::Campaigns => &["utm_id"],
            Table::Errors => &["source_object", "line_number"],
        }
    }

    /// Whether the table has one row per event (the tables carrying EVENT COLUMNS).
    pub fn is_event_grain(self) -> bool {
        matches!(
            self,
            Table::Pageviews | Table::Videoviews | Table::CustomEvents | Table::BotTraffic
        )
    }
}

/// A column's SQL type. `Text(n)` is `VARCHAR(n)` with `n` in characters (PostgreSQL) or
/// bytes (Redshift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    Text(u32),
    BigInt,
    Double,
    Bool,
    Timestamp,
    Date,
}

/// Size of text columns whose field has no size in the schema (Redshift's maximum).
pub const MAX_TEXT: u32 = 65_535;

/// One column of an output table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
}

const EXTRA: &str = "{extra}";
const KEY: SqlType = SqlType::Text(32);
const LABEL: SqlType = SqlType::Text(32);
const TEXT: SqlType = SqlType::Text(MAX_TEXT);
const INT: SqlType = SqlType::BigInt;
const BOOL: SqlType = SqlType::Bool;
const TS: SqlType = SqlType::Timestamp;

/// The SQL type of a raw field's column.
pub fn field_type(f: Field) -> SqlType {
    let spec = f.spec();
    match spec.kind {
        Kind::Str | Kind::Json | Kind::List => SqlType::Text(spec.max_len.unwrap_or(MAX_TEXT)),
        Kind::Bool => SqlType::Bool,
        Kind::Int | Kind::EpochMs => SqlType::BigInt,
        Kind::Float => SqlType::Double,
        Kind::TsText => SqlType::Timestamp,
    }
}

/// Derived columns every event-grain row has after its raw fields (SPEC.md section 3),
/// before the `_tz` columns (one per [`TZ_FIELDS`]) and [`EVENT_DATE_PARTS`].
pub const EVENT_DERIVED: &[(&str, SqlType)] = &[
    ("apikey_visitor_id", KEY),
    ("pageview_post_id", TEXT),
    ("utm_id", KEY),
    ("pageview_key", KEY),
    ("videostart_key", KEY),
    ("parsely_session_id", KEY),
    (EXTRA, TEXT),
    ("flag_is_fbia", BOOL),
];

/// Date parts from `ts_action_tz` and `session_date_id` from `ts_session_current_tz`;
/// after the `_tz` columns.
pub const EVENT_DATE_PARTS: &[(&str, SqlType)] = &[
    ("day", INT),
    ("month", INT),
    ("quarter", INT),
    ("year", INT),
    ("week", INT),
    ("date_id", INT),
    ("session_date_id", INT),
];

const SINCE_PUBLISH: [(&str, SqlType); 3] = [
    ("hours_since_publish", INT),
    ("days_since_publish", INT),
    ("weeks_since_publish", INT),
];

/// Columns of `parsely_pageviews` after the event columns.
pub const PAGEVIEW_COLUMNS: &[(&str, SqlType)] = &[
    ("session_key", KEY),
    ("pageview_counter", INT),
    ("pageview_match", BOOL),
    ("engaged_time", INT),
    ("videoviews", INT),
    ("video_engaged_time", INT),
    ("read_category", LABEL),
    ("pageview_sequence", INT),
    ("previous_pageview_post_id", TEXT),
    ("next_pageview_post_id", TEXT),
    ("is_entry", BOOL),
    ("is_exit", BOOL),
    ("publish_time", TS),
    ("read_time", TS),
    SINCE_PUBLISH[0],
    SINCE_PUBLISH[1],
    SINCE_PUBLISH[2],
];

/// Columns of `parsely_videoviews` after the event columns. In this table the event
/// column `pageview_key` holds the parent pageview's key (SPEC.md section 5).
pub const VIDEOVIEW_COLUMNS: &[(&str, SqlType)] = &[
    ("session_key", KEY),
    ("videostart_counter", INT),
    ("videostart_match", BOOL),
    ("video_engaged_time", INT),
    ("watch_category", LABEL),
    ("videoview_sequence", INT),
    ("publish_time", TS),
    ("watch_time", TS),
    SINCE_PUBLISH[0],
    SINCE_PUBLISH[1],
    SINCE_PUBLISH[2],
];

/// Columns of `parsely_custom_events` after the event columns.
pub const CUSTOM_EVENT_COLUMNS: &[(&str, SqlType)] = &[
    ("session_key", KEY),
    ("custom_event_counter", INT),
    ("publish_time", TS),
    ("event_time", TS),
    SINCE_PUBLISH[0],
    SINCE_PUBLISH[1],
    SINCE_PUBLISH[2],
];

/// The URL part suffixes of `entry_*`/`exit_*` in `parsely_sessions`.
pub const URL_PARTS: &[&str] = &[
    "",
    "_clean",
    "_domain",
    "_fragment",
    "_netloc",
    "_params",
    "_path",
    "_query",
    "_scheme",
];

/// The raw fields of `url`, `url_clean`, ... in [`URL_PARTS`] order.
pub const URL_FIELDS: &[Field] = &[
    Field::Url,
    Field::UrlClean,
    Field::UrlDomain,
    Field::UrlFragment,
    Field::UrlNetloc,
    Field::UrlParams,
    Field::UrlPath,
    Field::UrlQuery,
    Field::UrlScheme,
];

/// Session columns before the entry/exit columns.
pub const SESSION_HEAD: &[(&str, SqlType)] = &[
    ("session_key", KEY),
    ("parsely_session_id", KEY),
    ("apikey", SqlType::Text(256)),
    ("visitor_site_id", SqlType::Text(128)),
    ("apikey_visitor_id", KEY),
    ("user_session_number", INT),
    ("session_start_ts", TS),
    ("session_start_ts_tz", TS),
    ("session_end_ts", TS),
    ("session_end_ts_tz", TS),
    ("session_duration_seconds", INT),
    ("session_day", INT),
    ("session_week", INT),
    ("session_month", INT),
    ("session_quarter", INT),
    ("session_year", INT),
    ("session_date_id", INT),
    ("pageviews", INT),
    ("engaged_time", INT),
    ("videoviews", INT),
    ("video_engaged_time", INT),
    ("custom_events", INT),
    ("is_late_session", BOOL),
];

/// Raw fields copied from a session's first event, after `entry_*`/`exit_*`; `utm_id` and
/// `flag_is_fbia` are derived and placed as [`SESSION_FIRST_EVENT_DERIVED`] says.
pub const SESSION_FIRST_EVENT_FIELDS: &[Field] = &[
    Field::IpCity,
    Field::IpContinent,
    Field::IpCountry,
    Field::IpLat,
    Field::IpLon,
    Field::IpPostal,
    Field::IpSubdivision,
    Field::IpTimezone,
    Field::IpMarketName,
    Field::IpMarketNielsen,
    Field::IpMarketDoubleclick,
    Field::UaBrowser,
    Field::UaBrowserversion,
    Field::UaDevice,
    Field::UaDevicebrand,
    Field::UaDevicemodel,
    Field::UaDevicetouchcapable,
    Field::UaDevicetype,
    Field::UaOs,
    Field::UaOsversion,
    Field::UserAgent,
    Field::VisitorIp,
    Field::VisitorNetworkId,
    Field::FlagsIsAmp,
    Field::Referrer,
    Field::RefCategory,
    Field::RefClean,
    Field::RefDomain,
    Field::RefFragment,
    Field::RefNetloc,
    Field::RefParams,
    Field::RefPath,
    Field::RefQuery,
    Field::RefScheme,
    Field::SrefCategory,
    Field::SrefClean,
    Field::SrefDomain,
    Field::SrefFragment,
    Field::SrefNetloc,
    Field::SrefParams,
    Field::SrefPath,
    Field::SrefQuery,
    Field::SrefScheme,
    Field::SurlUtmCampaign,
    Field::SurlUtmMedium,
    Field::SurlUtmSource,
    Field::SurlUtmTerm,
    Field::SurlUtmContent,
    Field::SurlClean,
    Field::SurlDomain,
    Field::SurlFragment,
    Field::SurlNetloc,
    Field::SurlParams,
    Field::SurlPath,
    Field::SurlQuery,
    Field::SurlScheme,
    Field::SessionId,
    Field::SessionInitialReferrer,
    Field::SessionInitialUrl,
    Field::SessionLastSessionTimestamp,
    Field::SessionTimestamp,
    Field::UtmCampaign,
    Field::UtmMedium,
    Field::UtmSource,
    Field::UtmTerm,
    Field::UtmContent,
    Field::CampaignId,
];

/// Derived session columns after [`SESSION_FIRST_EVENT_FIELDS`].
pub const SESSION_FIRST_EVENT_DERIVED: &[(&str, SqlType)] =
    &[("flag_is_fbia", BOOL), ("utm_id", KEY)];

/// The user-at-the-time columns that end a session row.
pub const SESSION_TAIL: &[(&str, SqlType)] = &[
    ("session_user_type", LABEL),
    ("session_user_engagement_level", LABEL),
    ("session_rolling_30_day_user_type", LABEL),
    ("session_user_engagement_level_end", LABEL),
    ("converted_to_loyalty", BOOL),
    ("{extra}_first", TEXT),
    ("{extra}_last", TEXT),
    ("session_counter", INT),
];

/// `parsely_users`.
pub const USER_COLUMNS: &[(&str, SqlType)] = &[
    ("apikey_visitor_id", KEY),
    ("apikey", SqlType::Text(256)),
    ("visitor_site_id", SqlType::Text(128)),
    ("first_seen_ts", TS),
    ("first_seen_ts_tz", TS),
    ("last_seen_ts", TS),
    ("last_seen_ts_tz", TS),
    ("date_first_seen", SqlType::Date),
    ("date_last_seen", SqlType::Date),
    ("user_total_pageviews", INT),
    ("user_total_engaged_time", INT),
    ("user_total_videoviews", INT),
    ("user_total_video_engaged_time", INT),
    ("user_total_sessions", INT),
    ("user_total_custom_events", INT),
    ("user_type", LABEL),
    ("user_engagement_level", LABEL),
    ("rolling_30_day_pageviews", INT),
    ("rolling_30_day_user_type", LABEL),
    ("last_{extra}", TEXT),
    ("user_counter", INT),
];

/// `parsely_user_daily`.
pub const USER_DAILY_COLUMNS: &[(&str, SqlType)] = &[
    ("apikey_visitor_id", KEY),
    ("date", SqlType::Date),
    ("pageviews", INT),
    ("videoviews", INT),
    ("engaged_time", INT),
    ("video_engaged_time", INT),
    ("sessions", INT),
];

/// The metadata fields of the content tables, in column order after the key and `url`.
pub const CONTENT_METADATA_FIELDS: &[Field] = &[
    Field::MetadataAuthors,
    Field::MetadataCanonicalUrl,
    Field::MetadataCustomMetadata,
    Field::MetadataDuration,
    Field::MetadataDataSource,
    Field::MetadataFullContentWordCount,
    Field::MetadataImageUrl,
    Field::MetadataPageType,
    Field::MetadataPostId,
    Field::MetadataPubDateTmsp,
    Field::MetadataSaveDateTmsp,
    Field::MetadataSection,
    Field::MetadataShareUrls,
    Field::MetadataTags,
    Field::MetadataThumbUrl,
    Field::MetadataTitle,
    Field::MetadataUrls,
];

/// `parsely_post_content` after `pageview_post_id`, `url` and [`CONTENT_METADATA_FIELDS`].
pub const POST_CONTENT_TAIL: &[(&str, SqlType)] = &[
    ("word_count_buckets", LABEL),
    ("first_seen_ts", TS),
    ("last_seen_ts", TS),
    ("pageviews", INT),
    ("engaged_time", INT),
];

/// `parsely_video_content` after `metadata_canonical_url` (the key), `url` and the other
/// [`CONTENT_METADATA_FIELDS`] (canonical url not repeated).
pub const VIDEO_CONTENT_TAIL: &[(&str, SqlType)] = &[
    ("first_seen_ts", TS),
    ("last_seen_ts", TS),
    ("videoviews", INT),
    ("video_engaged_time", INT),
];

/// `parsely_campaigns`.
pub const CAMPAIGN_COLUMNS: &[(&str, SqlType)] = &[
    ("utm_id", KEY),
    ("apikey", SqlType::Text(256)),
    ("utm_campaign", SqlType::Text(256)),
    ("utm_medium", SqlType::Text(64)),
    ("utm_source", SqlType::Text(64)),
    ("utm_term", SqlType::Text(64)),
    ("utm_content", SqlType::Text(256)),
    ("campaign_id", SqlType::Text(256)),
    ("first_seen_ts", TS),
    ("last_seen_ts", TS),
    ("pageviews", INT),
    ("engaged_time", INT),
    ("videoviews", INT),
    ("video_engaged_time", INT),
    ("sessions", INT),
];

/// `parsely_errors`.
pub const ERROR_COLUMNS: &[(&str, SqlType)] = &[
    ("source_object", SqlType::Text(1024)),
    ("line_number", INT),
    ("reason", SqlType::Text(256)),
    ("event_id", SqlType::Text(64)),
    ("action", SqlType::Text(256)),
    ("raw", TEXT),
];

/// Error from [`Schema::new`].
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "extra_data_column {0:?} is not a valid column name: use 1 to 100 characters of a-z, 0-9 and _, starting with a letter or _"
    )]
    BadColumnName(String),
}

/// The column lists of every table, with the configured `extra_data` column name.
#[derive(Clone, Debug)]
pub struct Schema {
    tables: Vec<Vec<Column>>,
    extra_column: String,
}

impl Schema {
    /// Builds the column lists; `extra_data_column` must be a plain lowercase identifier.
    pub fn new(extra_data_column: &str) -> Result<Schema, SchemaError> {
        let valid = !extra_data_column.is_empty()
            && extra_data_column.len() <= 100
            && extra_data_column
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !extra_data_column.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(SchemaError::BadColumnName(extra_data_column.to_owned()));
        }
        let tables = Table::ALL
            .iter()
            .map(|&t| build_columns(t, extra_data_column))
            .collect();
        Ok(Schema {
            tables,
            extra_column: extra_data_column.to_owned(),
        })
    }

    /// The columns of `table` in row order.
    pub fn columns(&self, table: Table) -> &[Column] {
        &self.tables[table as usize]
    }

    /// Position of the column `name` in `table`.
    pub fn index(&self, table: Table, name: &str) -> Option<usize> {
        self.columns(table).iter().position(|c| c.name == name)
    }

    /// The configured `extra_data` column name.
    pub fn extra_column(&self) -> &str {
        &self.extra_column
    }
}

impl Default for Schema {
    fn default() -> Schema {
        // The default name is valid by construction.
        match Schema::new("custom_extra_data") {
            Ok(s) => s,
            Err(e) => unreachable!("{e}"),
        }
    }
}

/// Number of columns every event-grain row starts with (fields plus derived values).
pub fn event_column_count() -> usize {
    ALL_FIELDS.len() + EVENT_DERIVED.len() + TZ_FIELDS.len() + EVENT_DATE_PARTS.len()
}

fn build_columns(table: Table, extra: &str) -> Vec<Column> {
    let mut cols = Vec::new();
    let mut push = |name: &str, ty: SqlType| {
        cols.push(Column {
            name: name.replace(EXTRA, extra),
            ty,
        });
    };
    let event_columns = |push: &mut dyn FnMut(&str, SqlType)| {
        for &f in ALL_FIELDS {
            push(f.name(), field_type(f));
        }
        for &(n, t) in EVENT_DERIVED {
            push(n, t);
        }
        for &f in TZ_FIELDS {
            push(&format!("{}_tz", f.name()), TS);
        }
        for &(n, t) in EVENT_DATE_PARTS {
            push(n, t);
        }
    };
    let list = |push: &mut dyn FnMut(&str, SqlType), l: &[(&str, SqlType)]| {
        for &(n, t) in l {
            push(n, t);
        }
    };
    match table {
        Table::Pageviews => {
            event_columns(&mut push);
            list(&mut push, PAGEVIEW_COLUMNS);
        }
        Table::Videoviews => {
            event_columns(&mut push);
            list(&mut push, VIDEOVIEW_COLUMNS);
        }
        Table::CustomEvents => {
            event_columns(&mut push);
            list(&mut push, CUSTOM_EVENT_COLUMNS);
        }
        Table::BotTraffic => event_columns(&mut push),
        Table::Sessions => {
            list(&mut push, SESSION_HEAD);
            for side in ["entry", "exit"] {
                for (part, &f) in URL_PARTS.iter().zip(URL_FIELDS) {
                    push(&format!("{side}_url{part}"), field_type(f));
                }
                push(&format!("{side}_ts_action"), TS);
            }
            for &f in SESSION_FIRST_EVENT_FIELDS {
                push(f.name(), field_type(f));
            }
            list(&mut push, SESSION_FIRST_EVENT_DERIVED);
            list(&mut push, SESSION_TAIL);
        }
        Table::Users => list(&mut push, USER_COLUMNS),
        Table::UserDaily => list(&mut push, USER_DAILY_COLUMNS),
        Table::PostContent => {
            push("pageview_post_id", TEXT);
            push("url", field_type(Field::Url));
            for &f in CONTENT_METADATA_FIELDS {
                push(f.name(), field_type(f));
            }
            list(&mut push, POST_CONTENT_TAIL);
        }
        Table::VideoContent => {
            push(
                "metadata_canonical_url",
                field_type(Field::MetadataCanonicalUrl),
            );
            push("url", field_type(Field::Url));
            for &f in CONTENT_METADATA_FIELDS {
                if f != Field::MetadataCanonicalUrl {
                    push(f.name(), field_type(f));
                }
            }
            list(&mut push, VIDEO_CONTENT_TAIL);
        }
        Table::Campaigns => list(&mut push, CAMPAIGN_COLUMNS),
        Table::Errors => list(&mut push, ERROR_COLUMNS),
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn columns_are_unique_and_keys_exist() {
        let s = Schema::new("subscriber").expect("valid");
        for t in Table::ALL {
            let cols = s.columns(t);
            let names: HashSet<_> = cols.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names.len(), cols.len(), "duplicate column in {}", t.name());
            for k in t.primary_key() {
                assert!(names.contains(k), "{} lacks key {k}", t.name());
            }
        }
        assert!(s.index(Table::Sessions, "subscriber_first").is_some());
        assert!(s.index(Table::Users, "last_subscriber").is_some());
        assert!(s.index(Table::Pageviews, "subscriber").is_some());
        assert_eq!(s.columns(Table::BotTraffic).len(), event_column_count());
    }

    #[test]
    fn bad_extra_column_names_are_rejected() {
        for bad in ["", "1abc", "a-b", "a\"; drop table x; --", "Élan", "A"] {
            assert!(Schema::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
