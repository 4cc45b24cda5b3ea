//! SQL text: DDL of every table, the ledger and the view, and the merge statements. Shared
//! by the PostgreSQL loader, the files sink's `columns.sql` and the Redshift loader.
//!
//! Every identifier is double-quoted; the only names that are not compile-time constants are
//! the schema name (validated by [`validate_schema_name`]) and the `extra_data` column name
//! (validated by `dpl_core::Schema::new`). Values never appear in this module's SQL text
//! (the view's time zone name is validated); the Redshift loader's literals go through
//! [`crate::redshift_sql::sql_literal`].

use std::fmt::Write as _;

use dpl_core::{Column, Schema, SqlType, Table};

use crate::csv::Dialect;
use crate::error::Error;

/// Ledger table of loaded objects.
pub const LOADED_OBJECTS: &str = "dpl_loaded_objects";
/// Ledger table of runs.
pub const RUNS: &str = "dpl_runs";
/// The view with today's rolling loyalty.
pub const USERS_CURRENT: &str = "parsely_users_current";
/// Arrival-order column added to staging tables.
pub const ORD: &str = "dpl_ord";

/// Settings the `parsely_users_current` view depends on (SPEC.md section 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewOptions {
    /// Days in the rolling window, ending today inclusive (default 30).
    pub rolling_window_days: u32,
    /// Pageviews in the window that make a visitor `Loyalty` (default 30).
    pub rolling_loyalty_pageviews: u64,
    /// IANA zone whose calendar day is "today" (default `America/New_York`).
    pub timezone: String,
}

impl Default for ViewOptions {
    fn default() -> ViewOptions {
        ViewOptions {
            rolling_window_days: 30,
            rolling_loyalty_pageviews: 30,
            timezone: "America/New_York".to_owned(),
        }
    }
}

/// Checks a warehouse schema name: 1 to 63 ASCII letters, digits and `_`, not starting
/// with a digit. (Quoted, so case-sensitive on PostgreSQL.)
pub fn validate_schema_name(name: &str) -> Result<(), Error> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes().first().is_some_and(u8::is_ascii_digit);
    if ok {
        Ok(())
    } else {
        Err(Error::BadSchemaName(name.to_owned()))
    }
}

/// A double-quoted identifier (embedded quotes doubled, though validated names have none).
pub fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    push_ident(&mut s, name);
    s
}

fn push_ident(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// `"schema"."name"`.
pub fn qualified(schema_name: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema_name), quote_ident(name))
}

/// The column type in SQL.
pub fn sql_type(ty: SqlType) -> String {
    match ty {
        SqlType::Text(n) => format!("VARCHAR({n})"),
        SqlType::BigInt => "BIGINT".to_owned(),
        SqlType::Double => "DOUBLE PRECISION".to_owned(),
        SqlType::Bool => "BOOLEAN".to_owned(),
        SqlType::Timestamp => "TIMESTAMP".to_owned(),
        SqlType::Date => "DATE".to_owned(),
    }
}

/// Comma-separated quoted column names.
pub fn column_list(columns: &[Column]) -> String {
    let mut s = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        push_ident(&mut s, &c.name);
    }
    s
}

fn key_list(table: Table, prefix: &str) -> String {
    let mut s = String::new();
    for (i, k) in table.primary_key().iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(prefix);
        push_ident(&mut s, k);
    }
    s
}

/// Redshift distribution and sort choices, with the reason, for a table.
fn redshift_layout(table: Table) -> (&'static str, &'static str) {
    match table {
        Table::BotTraffic => (
            "DISTSTYLE EVEN SORTKEY (\"ts_action\")",
            "bots are kept out of sessions and users, so nothing joins it by visitor, and one \
             crawler can send most rows: a visitor DISTKEY would skew; spread evenly, sorted by \
             time",
        ),
        Table::Pageviews | Table::Videoviews | Table::CustomEvents => (
            "DISTSTYLE KEY DISTKEY (\"apikey_visitor_id\") SORTKEY (\"ts_action\")",
            "event rows of one visitor sit on one slice, next to their sessions and user; \
             time-range filters prune blocks by ts_action",
        ),
        Table::Sessions => (
            "DISTSTYLE KEY DISTKEY (\"apikey_visitor_id\") SORTKEY (\"session_start_ts\")",
            "collocated with the visitor's events and user row; sorted by session start",
        ),
        Table::Users => (
            "DISTSTYLE KEY DISTKEY (\"apikey_visitor_id\") SORTKEY (\"apikey_visitor_id\")",
            "one row per visitor, collocated with the visitor's events and sessions",
        ),
        Table::UserDaily => (
            "DISTSTYLE KEY DISTKEY (\"apikey_visitor_id\") SORTKEY (\"date\")",
            "collocated with users for the rolling-window join; the view filters on date",
        ),
        Table::PostContent | Table::VideoContent | Table::Campaigns => (
            "DISTSTYLE ALL",
            "small dimension table: a copy on every node makes joins local",
        ),
        Table::Errors => (
            "DISTSTYLE EVEN SORTKEY (\"source_object\", \"line_number\")",
            "no join partner; spread evenly, sorted for lookups by object",
        ),
    }
}

/// Longest text key column (in characters) that a PostgreSQL btree index entry surely holds:
/// entries are limited to 2704 bytes, and a character takes up to 4 bytes.
const PG_BTREE_KEY_CHARS: u32 = 676;

/// Whether the table's key has a text column too wide for a PostgreSQL btree index
/// (`parsely_post_content` and `parsely_video_content`, keyed by URLs of up to 65535
/// characters).
fn wide_key(schema: &Schema, table: Table) -> bool {
    // Hash indexes have one column; every wide key is a single column.
    table.primary_key().len() == 1
        && table.primary_key().iter().any(|k| {
            schema
                .index(table, k)
                .and_then(|i| schema.columns(table).get(i))
                .is_some_and(|c| matches!(c.ty, SqlType::Text(n) if n > PG_BTREE_KEY_CHARS))
        })
}

/// `CREATE TABLE IF NOT EXISTS` of one output table.
///
/// PostgreSQL cannot index a text longer than about 2704 bytes with a btree, so a table whose
/// key is a wide text column gets no `PRIMARY KEY` constraint there: the loader's merge keeps
/// the key unique, and a hash index (which stores only the hash) serves the lookups.
pub fn create_table(dialect: Dialect, schema_name: &str, schema: &Schema, table: Table) -> String {
    let mut s = String::new();
    let hash_key = dialect == Dialect::Postgres && wide_key(schema, table);
    match dialect {
        Dialect::Redshift => {
            let _ = writeln!(s, "-- {}: {}", table.name(), redshift_layout(table).1);
        }
        Dialect::Postgres if hash_key => {
            let _ = writeln!(
                s,
                "-- {}: the key can exceed a btree index entry (2704 bytes): the loader keeps \
                 it unique, a hash index serves lookups",
                table.name()
            );
        }
        Dialect::Postgres => {}
    }
    let _ = writeln!(
        s,
        "CREATE TABLE IF NOT EXISTS {} (",
        qualified(schema_name, table.name())
    );
    let columns = schema.columns(table);
    for (i, c) in columns.iter().enumerate() {
        let last = hash_key && i + 1 == columns.len();
        let sep = if last { "" } else { "," };
        let _ = writeln!(s, "    {} {}{sep}", quote_ident(&c.name), sql_type(c.ty));
    }
    if !hash_key {
        let _ = writeln!(s, "    PRIMARY KEY ({})", key_list(table, ""));
    }
    s.push(')');
    if dialect == Dialect::Redshift {
        s.push('\n');
        s.push_str(redshift_layout(table).0);
    }
    s.push_str(";\n");
    if hash_key {
        let _ = writeln!(
            s,
            "CREATE INDEX IF NOT EXISTS {} ON {} USING hash ({});",
            quote_ident(&format!("{}_key_hash", table.name())),
            qualified(schema_name, table.name()),
            key_list(table, "")
        );
    }
    s
}

/// Columns of the ledger tables, for DDL and for the files sink's ledger file.
pub(crate) fn ledger_columns() -> (Vec<Column>, Vec<Column>) {
    let c = |name: &str, ty| Column {
        name: name.to_owned(),
        ty,
    };
    let objects = vec![
        c("object_key", SqlType::Text(1024)),
        c("etag", SqlType::Text(256)),
        c("size_bytes", SqlType::BigInt),
        c("events", SqlType::BigInt),
        c("run_id", SqlType::Text(128)),
        c("loaded_at", SqlType::Timestamp),
    ];
    let runs = vec![
        c("run_id", SqlType::Text(128)),
        c("started_at", SqlType::Timestamp),
        c("finished_at", SqlType::Timestamp),
        c("objects", SqlType::BigInt),
        // TEXT on PostgreSQL (see create_ledger); the size bounds the Redshift column.
        c("summary", SqlType::Text(dpl_core::MAX_TEXT)),
    ];
    (objects, runs)
}

pub(crate) fn create_ledger(dialect: Dialect, schema_name: &str) -> String {
    let (objects, runs) = ledger_columns();
    let mut s = String::new();
    for (name, cols, key) in [
        (LOADED_OBJECTS, &objects, "object_key"),
        (RUNS, &runs, "run_id"),
    ] {
        if dialect == Dialect::Redshift {
            let _ = writeln!(s, "-- {name}: ledger, small: a copy on every node");
        }
        let _ = writeln!(
            s,
            "CREATE TABLE IF NOT EXISTS {} (",
            qualified(schema_name, name)
        );
        for c in cols {
            let ty = match (dialect, c.name.as_str()) {
                (Dialect::Postgres, "summary") => "TEXT".to_owned(),
                _ => sql_type(c.ty),
            };
            let _ = writeln!(s, "    {} {ty},", quote_ident(&c.name));
        }
        let _ = write!(s, "    PRIMARY KEY ({})\n)", quote_ident(key));
        if dialect == Dialect::Redshift {
            s.push_str("\nDISTSTYLE ALL");
        }
        s.push_str(";\n\n");
    }
    s
}

/// `CREATE OR REPLACE VIEW parsely_users_current`: every `parsely_users` column plus
/// `rolling_30_day_pageviews_today` (pageviews of `parsely_user_daily` in the
/// `rolling_window_days` days ending today in the reporting zone, inclusive) and
/// `rolling_30_day_user_type_today` (`Loyalty` when that is at least
/// `rolling_loyalty_pageviews`, else `Non-Loyalty`).
pub fn create_view(
    dialect: Dialect,
    schema_name: &str,
    schema: &Schema,
    view: &ViewOptions,
) -> Result<String, Error> {
    let tz_ok = !view.timezone.is_empty()
        && view.timezone.len() <= 64
        && view
            .timezone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b));
    if !tz_ok {
        return Err(Error::Config(format!(
            "timezone {:?} is not an IANA zone name",
            view.timezone
        )));
    }
    let tz = &view.timezone;
    let today = match dialect {
        Dialect::Postgres => format!("CAST(CURRENT_TIMESTAMP AT TIME ZONE '{tz}' AS DATE)"),
        Dialect::Redshift => format!("CAST(CONVERT_TIMEZONE('{tz}', GETDATE()) AS DATE)"),
    };
    let first_day = match dialect {
        Dialect::Postgres => format!("{today} - {}", view.rolling_window_days),
        Dialect::Redshift => format!("DATEADD(day, -{}, {today})", view.rolling_window_days),
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "CREATE OR REPLACE VIEW {} AS",
        qualified(schema_name, USERS_CURRENT)
    );
    s.push_str("SELECT\n");
    for c in schema.columns(Table::Users) {
        let _ = writeln!(s, "    u.{},", quote_ident(&c.name));
    }
    let _ = writeln!(
        s,
        "    COALESCE(r.\"pageviews\", 0) AS \"rolling_30_day_pageviews_today\",\n    \
         CASE WHEN COALESCE(r.\"pageviews\", 0) >= {} THEN 'Loyalty' ELSE 'Non-Loyalty' END \
         AS \"rolling_30_day_user_type_today\"",
        view.rolling_loyalty_pageviews
    );
    let _ = writeln!(s, "FROM {} u", qualified(schema_name, Table::Users.name()));
    let _ = writeln!(
        s,
        "LEFT JOIN (\n    SELECT \"apikey_visitor_id\", CAST(SUM(\"pageviews\") AS BIGINT) AS \"pageviews\"\n    \
         FROM {}\n    WHERE \"date\" > {first_day} AND \"date\" <= {today}\n    \
         GROUP BY \"apikey_visitor_id\"\n) r ON r.\"apikey_visitor_id\" = u.\"apikey_visitor_id\";",
        qualified(schema_name, Table::UserDaily.name())
    );
    Ok(s)
}

/// The DDL of the schema, every table, the ledger tables and the view, as one script of
/// `;`-terminated statements, with the view's default settings (see [`ddl_with_view`]).
pub fn ddl(dialect: Dialect, schema_name: &str, schema: &Schema) -> Result<String, Error> {
    ddl_with_view(dialect, schema_name, schema, &ViewOptions::default())
}

/// [`ddl`] with explicit settings for the `parsely_users_current` view.
pub fn ddl_with_view(
    dialect: Dialect,
    schema_name: &str,
    schema: &Schema,
    view: &ViewOptions,
) -> Result<String, Error> {
    validate_schema_name(schema_name)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "CREATE SCHEMA IF NOT EXISTS {};\n",
        quote_ident(schema_name)
    );
    for t in Table::ALL {
        s.push_str(&create_table(dialect, schema_name, schema, t));
        s.push('\n');
    }
    s.push_str(&create_ledger(dialect, schema_name));
    s.push_str(&create_view(dialect, schema_name, schema, view)?);
    Ok(s)
}

/// Name of a table's staging table.
pub fn staging_name(table: Table) -> String {
    format!("stg_{}", table.name())
}

/// The statements that replace the target rows by the staged ones, in order: delete the
/// targets' rows whose key is staged, then insert one row per staged key, the first staged
/// (lowest `dpl_ord`). Rows with a NULL key part are skipped. `staging` is the staging
/// table's (quoted, possibly qualified) name; `columns` the columns to load.
pub fn merge_statements(
    dialect: Dialect,
    schema_name: &str,
    table: Table,
    staging: &str,
    columns: &[Column],
) -> [String; 2] {
    let target = qualified(schema_name, table.name());
    let keys = key_list(table, "");
    let not_null = table
        .primary_key()
        .iter()
        .map(|k| format!("{} IS NOT NULL", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let join = table
        .primary_key()
        .iter()
        .map(|k| format!("t.{0} = s.{0}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let cols = column_list(columns);
    let delete = match dialect {
        Dialect::Postgres => format!(
            "DELETE FROM {target} t USING (SELECT DISTINCT {keys} FROM {staging} WHERE \
             {not_null}) s WHERE {join}"
        ),
        // Redshift's DELETE takes no alias for its target and only table names after
        // USING: join the staging table itself (a NULL key matches nothing; a key staged
        // twice deletes its target row once).
        Dialect::Redshift => {
            let t = quote_ident(table.name());
            let join = table
                .primary_key()
                .iter()
                .map(|k| format!("{t}.{0} = {staging}.{0}", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!("DELETE FROM {target} USING {staging} WHERE {join}")
        }
    };
    let insert = match dialect {
        Dialect::Postgres => format!(
            "INSERT INTO {target} ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM {staging} \
             WHERE {not_null} ORDER BY {keys}, {ORD}"
        ),
        Dialect::Redshift => format!(
            "INSERT INTO {target} ({cols}) SELECT {cols} FROM (SELECT {cols}, ROW_NUMBER() OVER \
             (PARTITION BY {keys} ORDER BY {ORD}) AS dpl_rn FROM {staging} WHERE {not_null}) \
             AS dpl_r WHERE dpl_rn = 1"
        ),
    };
    [delete, insert]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schema_names() {
        for good in ["public", "dpl", "Analytics_2", "_x", "a"] {
            assert!(validate_schema_name(good).is_ok(), "{good:?} rejected");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "x\"; DROP TABLE t; --",
            "é",
            "a.b",
            long.as_str(),
        ] {
            let err = ddl(Dialect::Postgres, bad, &Schema::default()).unwrap_err();
            assert!(matches!(err, Error::BadSchemaName(_)), "{bad:?} accepted");
            assert!(err.to_string().contains("invalid schema name"), "{err}");
        }
    }

    #[test]
    fn redshift_ddl_states_layout() {
        let d = ddl(Dialect::Redshift, "dw", &Schema::default()).unwrap();
        assert!(d.contains(
            "CREATE TABLE IF NOT EXISTS \"dw\".\"parsely_pageviews\" (\n    \"action\" VARCHAR(256),"
        ));
        assert!(d.contains("DISTKEY (\"apikey_visitor_id\") SORTKEY (\"ts_action\");"));
        assert!(d.contains("DISTKEY (\"apikey_visitor_id\") SORTKEY (\"session_start_ts\");"));
        let bots = d
            .split("CREATE TABLE")
            .find(|t| t.contains("parsely_bot_traffic\" ("))
            .unwrap();
        assert!(
            bots.contains(")\nDISTSTYLE EVEN SORTKEY (\"ts_action\");"),
            "{bots}"
        );
        assert!(d.contains("PRIMARY KEY (\"utm_id\")\n)\nDISTSTYLE ALL;"));
        assert!(d.contains("PRIMARY KEY (\"pageview_post_id\")"));
        assert!(d.contains("CONVERT_TIMEZONE('America/New_York', GETDATE())"));
        assert!(!d.contains("TEXT"));
    }

    #[test]
    fn postgres_wide_keys_use_a_hash_index() {
        let d = ddl(Dialect::Postgres, "s", &Schema::default()).unwrap();
        for (t, k) in [
            ("parsely_post_content", "pageview_post_id"),
            ("parsely_video_content", "metadata_canonical_url"),
        ] {
            assert!(!d.contains(&format!("PRIMARY KEY (\"{k}\")")), "{t}");
            assert!(d.contains(&format!(
                "CREATE INDEX IF NOT EXISTS \"{t}_key_hash\" ON \"s\".\"{t}\" USING hash (\"{k}\");"
            )));
        }
        assert!(d.contains("PRIMARY KEY (\"event_id\")"));
        assert!(d.contains("PRIMARY KEY (\"source_object\", \"line_number\")"));
    }

    #[test]
    fn merge_sql_shapes() {
        let schema = Schema::default();
        let cols = schema.columns(Table::UserDaily);
        let [del, ins] =
            merge_statements(Dialect::Postgres, "s", Table::UserDaily, "\"stg\"", cols);
        assert_eq!(
            del,
            "DELETE FROM \"s\".\"parsely_user_daily\" t USING (SELECT DISTINCT \
             \"apikey_visitor_id\", \"date\" FROM \"stg\" WHERE \"apikey_visitor_id\" IS NOT NULL \
             AND \"date\" IS NOT NULL) s WHERE t.\"apikey_visitor_id\" = s.\"apikey_visitor_id\" \
             AND t.\"date\" = s.\"date\""
        );
        assert!(ins.contains("SELECT DISTINCT ON (\"apikey_visitor_id\", \"date\")"));
        assert!(ins.ends_with("ORDER BY \"apikey_visitor_id\", \"date\", dpl_ord"));
        let [del, ins] =
            merge_statements(Dialect::Redshift, "s", Table::UserDaily, "\"stg\"", cols);
        assert_eq!(
            del,
            "DELETE FROM \"s\".\"parsely_user_daily\" USING \"stg\" WHERE \
             \"parsely_user_daily\".\"apikey_visitor_id\" = \"stg\".\"apikey_visitor_id\" AND \
             \"parsely_user_daily\".\"date\" = \"stg\".\"date\""
        );
        assert!(ins.contains("ROW_NUMBER() OVER (PARTITION BY \"apikey_visitor_id\", \"date\""));
    }

    #[test]
    fn hostile_timezone_rejected() {
        let v = ViewOptions {
            timezone: "UTC'; DROP TABLE x; --".to_owned(),
            ..ViewOptions::default()
        };
        assert!(create_view(Dialect::Postgres, "s", &Schema::default(), &v).is_err());
    }
}
