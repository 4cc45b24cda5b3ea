//! The SQL text the Redshift loader sends, built without a database so tests can parse it.
//!
//! Every value that ends up inside SQL text goes through [`sql_literal`], the one audited
//! escaping function; identifiers through [`quote_ident`]. The Redshift loader sends
//! statements over the simple query protocol (no parameters: Redshift's COPY takes none),
//! so this is the whole injection surface. Config values are also validated up front
//! ([`validate_role_arn`], [`validate_bucket`], [`validate_prefix`], [`validate_region`])
//! so a mistake is reported by key rather than as SQL that COPY rejects.

use std::fmt::Write as _;

use dpl_core::{Column, Schema, Table};

use crate::config::Compression;
use crate::error::Error;
use crate::sink::{RunRecord, unique_objects, utc_micros};
use crate::sql::{self, ORD, column_list, qualified, quote_ident, sql_type, staging_name};

/// Quotes a value as a Redshift string literal: `'` doubled, `\` doubled (Redshift reads
/// backslash escapes in literals), wrapped in `'`. A NUL cannot be sent and is an error.
/// Every other character, newlines and unicode included, stays data.
///
/// ```
/// assert_eq!(dpl_sink::sql_literal("it's a\\b").unwrap(), "'it''s a\\\\b'");
/// assert!(dpl_sink::sql_literal("a\0b").is_err());
/// ```
pub fn sql_literal(value: &str) -> Result<String, Error> {
    if value.contains('\0') {
        return Err(Error::Config(
            "a value holding a NUL character cannot be put into SQL".to_owned(),
        ));
    }
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        match c {
            '\'' => s.push_str("''"),
            '\\' => s.push_str("\\\\"),
            c => s.push(c),
        }
    }
    s.push('\'');
    Ok(s)
}

/// An IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>` with IAM's name
/// characters only.
pub fn validate_role_arn(arn: &str) -> Result<(), Error> {
    let bad = || {
        Error::Config(
            "sink.iam_role must be an IAM role ARN like arn:aws:iam::123456789012:role/dpl-copy \
             (letters, digits and + = , . @ _ - / in the name)"
                .to_owned(),
        )
    };
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
    };
    let ok = matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(name_ok)
        && arn.len() <= 2048;
    if ok { Ok(()) } else { Err(bad()) }
}

/// An S3 bucket name (3 to 63 of `a-z 0-9 . -`).
pub fn validate_bucket(bucket: &str) -> Result<(), Error> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "sink.staging_bucket {bucket:?} is not an S3 bucket name (3 to 63 of a-z 0-9 . -)"
        )))
    }
}

/// A staging prefix: empty or ending in `/`, printable, no `\0`, at most 512 bytes.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    let ok = prefix.len() <= 512
        && (prefix.is_empty() || prefix.ends_with('/'))
        && !prefix.starts_with('/')
        && !prefix.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "sink.staging_prefix {prefix:?} must be empty or end with /, not start with /, \
             and hold no control characters"
        )))
    }
}

/// An AWS region name (`us-east-1`).
pub fn validate_region(region: &str) -> Result<(), Error> {
    let ok = (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "sink.region {region:?} is not an AWS region name like us-east-1"
        )))
    }
}

/// How COPY reads the staged objects.
#[derive(Clone, PartialEq, Eq)]
pub enum CopyAuth {
    /// `IAM_ROLE '<arn>'`.
    IamRole(String),
    /// `CREDENTIALS 'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'`.
    Keys {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
}

impl std::fmt::Debug for CopyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyAuth::IamRole(arn) => f.debug_tuple("IamRole").field(arn).finish(),
            CopyAuth::Keys { .. } => f.write_str("Keys(***)"),
        }
    }
}

impl CopyAuth {
    /// The credentials clause of COPY.
    fn clause(&self) -> Result<String, Error> {
        match self {
            CopyAuth::IamRole(arn) => {
                validate_role_arn(arn)?;
                Ok(format!("IAM_ROLE {}", sql_literal(arn)?))
            }
            CopyAuth::Keys {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                // `;` and `=` separate the credentials string's fields.
                let clean = |s: &str| !s.is_empty() && !s.contains([';', '=', '\0']);
                if !clean(access_key_id)
                    || !clean(secret_access_key)
                    || session_token.as_deref().is_some_and(|t| !clean(t))
                {
                    return Err(Error::Config(
                        "sink.access_key_id, sink.secret_access_key and sink.session_token \
                         must not be empty or hold ; or ="
                            .to_owned(),
                    ));
                }
                let mut creds = format!(
                    "aws_access_key_id={access_key_id};aws_secret_access_key={secret_access_key}"
                );
                if let Some(t) = session_token {
                    creds.push_str(";token=");
                    creds.push_str(t);
                }
                Ok(format!("CREDENTIALS {}", sql_literal(&creds)?))
            }
        }
    }

    /// Secret strings to scrub from any text shown to a user.
    fn secrets(&self) -> Vec<&str> {
        match self {
            CopyAuth::IamRole(_) => Vec::new(),
            CopyAuth::Keys {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                let mut v = vec![access_key_id.as_str(), secret_access_key.as_str()];
                if let Some(t) = session_token {
                    v.push(t);
                }
                v
            }
        }
    }
}

/// Replaces the credentials clause of a COPY statement (and any secret anywhere in the
/// text) by `***`, for error messages and logs.
pub fn redact(text: &str, auth: &CopyAuth) -> String {
    let mut out = text.to_owned();
    for s in auth.secrets() {
        if !s.is_empty() {
            out = out.replace(s, "***");
        }
    }
    for keyword in ["CREDENTIALS '", "IAM_ROLE '"] {
        let mut from = 0;
        while let Some(i) = out.get(from..).and_then(|t| t.find(keyword)) {
            let start = from + i + keyword.len();
            // The literal ends at the first `'` not followed by another `'`.
            let bytes = out.as_bytes();
            let mut j = start;
            while j < bytes.len() {
                if bytes.get(j) == Some(&b'\'') {
                    if bytes.get(j + 1) == Some(&b'\'') {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            out.replace_range(start..j.min(out.len()), "***");
            from = start + 3;
        }
    }
    out
}

/// `CREATE TEMP TABLE` of a table's staging table: the table's columns without
/// constraints (a NULL key is counted at merge, not refused by COPY) plus `dpl_ord`, the
/// row's arrival order in the run, which the staged CSV carries as its last field.
pub fn create_staging_table(schema: &Schema, table: Table) -> String {
    let mut s = format!("CREATE TEMP TABLE {} (", quote_ident(&staging_name(table)));
    for c in schema.columns(table) {
        let _ = write!(s, "{} {}, ", quote_ident(&c.name), sql_type(c.ty));
    }
    let _ = write!(s, "{ORD} BIGINT)");
    s
}

/// The columns of a staged CSV part: the table's, then `dpl_ord`.
pub fn staged_columns(schema: &Schema, table: Table) -> String {
    format!("{}, {ORD}", column_list(schema.columns(table)))
}

/// The COPY of one table's manifest into its staging table. Options: `MANIFEST`, `CSV`
/// (fields as [`crate::CsvEncoder`] writes them), the compression, `NULL AS '\\N'`
/// (`\N` unquoted is NULL; quoted it is text), `TIMEFORMAT 'YYYY-MM-DD HH:MI:SS'` (fractional
/// seconds are read too), `DATEFORMAT 'YYYY-MM-DD'`, `ACCEPTINVCHARS` (the text is valid
/// UTF-8 already; a safety net), `REGION` when configured, `STATUPDATE OFF` and
/// `COMPUPDATE OFF` (temporary tables: analysing them costs more than it saves).
pub fn copy_statement(
    schema: &Schema,
    table: Table,
    manifest_url: &str,
    auth: &CopyAuth,
    region: Option<&str>,
    compression: Compression,
) -> Result<String, Error> {
    if !manifest_url.starts_with("s3://") {
        return Err(Error::Config(format!(
            "manifest URL {manifest_url:?} must start with s3://"
        )));
    }
    let mut s = format!(
        "COPY {} ({}) FROM {} {}",
        quote_ident(&staging_name(table)),
        staged_columns(schema, table),
        sql_literal(manifest_url)?,
        auth.clause()?
    );
    if let Some(r) = region {
        validate_region(r)?;
        let _ = write!(s, " REGION {}", sql_literal(r)?);
    }
    let _ = write!(
        s,
        " MANIFEST CSV {} NULL AS {} TIMEFORMAT 'YYYY-MM-DD HH:MI:SS' DATEFORMAT 'YYYY-MM-DD' \
         ACCEPTINVCHARS STATUPDATE OFF COMPUPDATE OFF",
        compression.copy_keyword(),
        sql_literal("\\N")?
    );
    Ok(s)
}

/// `SELECT count(*)` of staged rows of `table` whose key has a NULL part.
pub fn count_null_keys(table: Table) -> String {
    let cond = table
        .primary_key()
        .iter()
        .map(|k| format!("{} IS NULL", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!(
        "SELECT count(*) FROM {} WHERE {cond}",
        quote_ident(&staging_name(table))
    )
}

/// Objects per ledger `INSERT`.
const LEDGER_CHUNK: usize = 500;

/// Redshift's `VARCHAR(65535)` limit for the run summary, in bytes.
fn cut_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// The ledger statements of a run: replace the `dpl_loaded_objects` rows of its objects
/// and its `dpl_runs` row (Redshift has no `ON CONFLICT`: delete, then insert).
pub fn ledger_statements(schema_name: &str, record: &RunRecord) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let objects = unique_objects(&record.objects);
    let mut finished = String::new();
    dpl_core::write_ts(&mut finished, utc_micros(record.finished_at));
    let mut started = String::new();
    dpl_core::write_ts(&mut started, utc_micros(record.started_at));
    let run_id = sql_literal(&record.run_id)?;
    let finished = sql_literal(&finished)?;
    let started = sql_literal(&started)?;
    let loaded = qualified(schema_name, sql::LOADED_OBJECTS);
    for chunk in objects.chunks(LEDGER_CHUNK) {
        let keys = chunk
            .iter()
            .map(|o| sql_literal(&o.key))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(format!(
            "DELETE FROM {loaded} WHERE \"object_key\" IN ({})",
            keys.join(", ")
        ));
        let mut values = Vec::with_capacity(chunk.len());
        for (o, key) in chunk.iter().zip(&keys) {
            values.push(format!(
                "({key}, {}, {}, {}, {run_id}, {finished})",
                sql_literal(&o.etag)?,
                i64::try_from(o.size).unwrap_or(i64::MAX),
                i64::try_from(o.events).unwrap_or(i64::MAX),
            ));
        }
        out.push(format!(
            "INSERT INTO {loaded} (\"object_key\", \"etag\", \"size_bytes\", \"events\", \
             \"run_id\", \"loaded_at\") VALUES {}",
            values.join(", ")
        ));
    }
    let runs = qualified(schema_name, sql::RUNS);
    let summary = record.summary_json.replace('\0', "");
    let summary = sql_literal(cut_bytes(&summary, dpl_core::MAX_TEXT as usize))?;
    out.push(format!("DELETE FROM {runs} WHERE \"run_id\" = {run_id}"));
    out.push(format!(
        "INSERT INTO {runs} (\"run_id\", \"started_at\", \"finished_at\", \"objects\", \
         \"summary\") VALUES ({run_id}, {started}, {finished}, {}, {summary})",
        i64::try_from(objects.len()).unwrap_or(i64::MAX)
    ));
    Ok(out)
}

/// `SELECT 1` from `dpl_runs` for a run id.
pub fn run_committed_query(schema_name: &str, run_id: &str) -> Result<String, Error> {
    Ok(format!(
        "SELECT 1 FROM {} WHERE \"run_id\" = {}",
        qualified(schema_name, sql::RUNS),
        sql_literal(run_id)?
    ))
}

/// The rows of `stl_load_errors` for the session's last COPY (at most 20).
pub const LOAD_ERRORS_QUERY: &str = "SELECT TRIM(filename), line_number, TRIM(colname), \
     TRIM(type), TRIM(raw_field_value), err_code, TRIM(err_reason) FROM stl_load_errors \
     WHERE query = pg_last_copy_id() ORDER BY starttime, line_number LIMIT 20";

/// The ledger's objects and their ETags.
pub fn loaded_objects_query(schema_name: &str) -> String {
    format!(
        "SELECT \"object_key\", \"etag\" FROM {}",
        qualified(schema_name, sql::LOADED_OBJECTS)
    )
}

/// Drops the view, when `CREATE OR REPLACE VIEW` cannot change its columns.
pub fn drop_view(schema_name: &str) -> String {
    format!(
        "DROP VIEW IF EXISTS {}",
        qualified(schema_name, sql::USERS_CURRENT)
    )
}

/// The cluster's slice count.
pub const SLICES_QUERY: &str = "SELECT count(*) FROM stv_slices";

/// What the loader does with a statement's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// Run it; nothing to read.
    Exec,
    /// A COPY into the staging table of this table; a failure reads `stl_load_errors`.
    Copy(Table),
    /// A count of this table's staged rows with a NULL key part.
    CountNullKeys(Table),
    /// The merge `INSERT` of this table: its row count is the rows loaded.
    Insert(Table),
}

/// One statement of the load transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub sql: String,
    pub kind: StepKind,
}

/// One table's staged data, as the load needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableLoad {
    pub table: Table,
    /// `s3://bucket/key` of the table's manifest.
    pub manifest_url: String,
}

/// Every statement of a run's load, in order: `BEGIN`, per staged table its temporary
/// staging table and COPY, then per table the null-key count, the merge
/// ([`crate::merge_statements`] for Redshift) and the staging table's `DROP`, the ledger,
/// `COMMIT`.
pub fn load_steps(
    schema_name: &str,
    schema: &Schema,
    tables: &[TableLoad],
    auth: &CopyAuth,
    region: Option<&str>,
    compression: Compression,
    record: &RunRecord,
) -> Result<Vec<Step>, Error> {
    sql::validate_schema_name(schema_name)?;
    let step = |sql: String, kind| Step { sql, kind };
    let mut steps = vec![step("BEGIN".to_owned(), StepKind::Exec)];
    for t in tables {
        // No `DROP TABLE IF EXISTS` first: with no temporary table of that name it would
        // find a permanent one on the search path. Each load has a new session, and the
        // temporary tables are dropped before COMMIT (a rollback undoes their creation).
        steps.push(step(create_staging_table(schema, t.table), StepKind::Exec));
        steps.push(step(
            copy_statement(schema, t.table, &t.manifest_url, auth, region, compression)?,
            StepKind::Copy(t.table),
        ));
    }
    for t in tables {
        steps.push(step(
            count_null_keys(t.table),
            StepKind::CountNullKeys(t.table),
        ));
        let stg = quote_ident(&staging_name(t.table));
        let [delete, insert] = sql::merge_statements(
            crate::csv::Dialect::Redshift,
            schema_name,
            t.table,
            &stg,
            schema.columns(t.table),
        );
        steps.push(step(delete, StepKind::Exec));
        steps.push(step(insert, StepKind::Insert(t.table)));
        steps.push(step(format!("DROP TABLE {stg}"), StepKind::Exec));
    }
    for s in ledger_statements(schema_name, record)? {
        steps.push(step(s, StepKind::Exec));
    }
    steps.push(step("COMMIT".to_owned(), StepKind::Exec));
    Ok(steps)
}

/// The statements that make a Redshift schema ready: the schema, tables, ledger and view
/// ([`crate::ddl_with_view`] for Redshift, one statement each).
pub fn ddl_statements(
    schema_name: &str,
    schema: &Schema,
    view: &sql::ViewOptions,
) -> Result<Vec<String>, Error> {
    let script = sql::ddl_with_view(crate::csv::Dialect::Redshift, schema_name, schema, view)?;
    Ok(split_script(&script))
}

/// `ALTER TABLE ADD COLUMN` for a column missing from an existing table.
pub fn add_column(schema_name: &str, table: Table, column: &Column) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        qualified(schema_name, table.name()),
        quote_ident(&column.name),
        sql_type(column.ty)
    )
}

/// The existing columns of the schema's tables.
pub fn existing_columns_query(schema_name: &str) -> Result<String, Error> {
    Ok(format!(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = {}",
        sql_literal(schema_name)?
    ))
}

/// Splits a DDL script of this crate (statements end with `;` at the end of a line; `--`
/// comment lines) into statements.
fn split_script(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in script.lines() {
        if line.trim_start().starts_with("--") || line.trim().is_empty() {
            continue;
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(line);
        if line.trim_end().ends_with(';') {
            let stmt = cur.trim_end().trim_end_matches(';').to_owned();
            out.push(stmt);
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// `DELETE` statements that remove withdrawn keys (see `dpl_core::RowBatch::withdraw`) from
/// their target tables, at most 500 keys a statement; values are escaped literals cast to the
/// key column's type.
pub fn withdraw_statements(
    schema_name: &str,
    schema: &Schema,
    keys: &[(Table, Vec<Option<String>>)],
) -> Result<Vec<String>, Error> {
    sql::validate_schema_name(schema_name)?;
    let mut out = Vec::new();
    for t in Table::ALL {
        let cols = crate::sink::key_columns(schema, t);
        let rows: Vec<&Vec<Option<String>>> = keys
            .iter()
            .filter(|(k, _)| *k == t)
            .map(|(_, v)| v)
            .collect();
        for chunk in rows.chunks(500) {
            let mut conds = Vec::with_capacity(chunk.len());
            for key in chunk {
                let mut parts = Vec::with_capacity(cols.len());
                for (c, v) in cols.iter().zip(key.iter()) {
                    parts.push(match v {
                        Some(v) => format!(
                            "{} = CAST({} AS {})",
                            quote_ident(&c.name),
                            sql_literal(v)?,
                            sql_type(c.ty)
                        ),
                        None => format!("{} IS NULL", quote_ident(&c.name)),
                    });
                }
                conds.push(format!("({})", parts.join(" AND ")));
            }
            out.push(format!(
                "DELETE FROM {} WHERE {}",
                qualified(schema_name, t.name()),
                conds.join(" OR ")
            ));
        }
    }
    Ok(out)
}
