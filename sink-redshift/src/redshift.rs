//! The Redshift loader: rows staged in S3 as compressed CSV parts ([`crate::staging`]),
//! then one transaction of `COPY ... MANIFEST` into temporary staging tables, the merge by
//! primary key, the ledger rows and `COMMIT`; the staged objects are deleted afterwards.
//!
//! Every statement comes from [`crate::redshift_sql`] and is sent over the simple query
//! protocol on one connection (TLS per `sslmode`, default `require`). A failed COPY rolls
//! the run back and reports the `stl_load_errors` rows of that COPY
//! ([`Error::LoadFailed`]); messages never hold the credentials clause.
//!
//! `begin` sweeps the staging prefix: objects of other runs that committed (their objects
//! were not deleted because of a crash) or whose newest object is older than
//! [`SWEEP_AFTER`] (a run that crashed before its commit) are deleted; younger objects of
//! uncommitted runs are left alone, as they may belong to a run still going.
//!
//! DDL: `open` creates the schema, tables, ledger and view if missing and adds missing
//! columns, one autocommitted statement at a time (Redshift has no advisory locks: two
//! loaders opening the same new schema at once may see one `CREATE` fail; run again).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dpl_core::{RowBatch, Schema, Table};
use tokio_postgres::{Client, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{Compression, SinkConfig};
use crate::error::{Error, LoadErrorRow};
use crate::redshift_sql::{self as rsql, CopyAuth, Step, StepKind, TableLoad};
use crate::sink::{LoadStats, RunRecord};
use crate::sql::ViewOptions;
use crate::staging::{RunStage, S3Stager, StageOptions, StagedTable};
use crate::tls::SslMode;

/// Age after which the staged objects of an uncommitted run count as left by a crash.
pub const SWEEP_AFTER: Duration = Duration::from_secs(6 * 3600);

/// Loads runs into a Redshift schema. See the module docs.
pub struct RedshiftLoader {
    pg_config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
    schema_name: String,
    schema: Arc<Schema>,
    view: ViewOptions,
    stager: S3Stager,
    auth: CopyAuth,
    region: Option<String>,
    compression: Compression,
    run: Option<RunStage>,
    /// Withdrawn keys of the current run (few: keys of open sessions that changed).
    withdrawn: Vec<(Table, Vec<Option<String>>)>,
}

impl std::fmt::Debug for RedshiftLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedshiftLoader")
            .field("schema_name", &self.schema_name)
            .field("sslmode", &self.mode)
            .field("staging", self.stager.options())
            .field("auth", &self.auth)
            .field("run", &self.run.as_ref().map(RunStage::run_id))
            .finish_non_exhaustive()
    }
}

/// The COPY credentials of a validated config: the role when set, else the keys.
pub(crate) fn copy_auth(config: &SinkConfig) -> Result<CopyAuth, Error> {
    if let Some(role) = &config.iam_role {
        return Ok(CopyAuth::IamRole(role.clone()));
    }
    match (&config.access_key_id, &config.secret_access_key) {
        (Some(id), Some(secret)) => Ok(CopyAuth::Keys {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            session_token: config.session_token.clone(),
        }),
        _ => Err(Error::Config(
            "the redshift sink needs sink.iam_role or sink.access_key_id and \
             sink.secret_access_key"
                .to_owned(),
        )),
    }
}

fn rs_err(
    context: impl Into<String>,
    auth: &CopyAuth,
) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let context = context.into();
    let auth = auth.clone();
    move |e| {
        let message = match e.as_db_error() {
            Some(db) => {
                let mut m = format!("{}: {}", db.code().code(), db.message());
                if let Some(d) = db.detail() {
                    m.push_str(" (");
                    m.push_str(d);
                    m.push(')');
                }
                m
            }
            None => crate::error::with_causes(&e),
        };
        Error::Redshift {
            context,
            message: rsql::redact(&message, &auth),
        }
    }
}

fn rows(messages: Vec<SimpleQueryMessage>) -> Vec<tokio_postgres::SimpleQueryRow> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn affected(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .sum()
}

fn first_int(messages: Vec<SimpleQueryMessage>) -> Option<i64> {
    rows(messages)
        .first()
        .and_then(|r| r.get(0))
        .and_then(|v| v.trim().parse().ok())
}

impl RedshiftLoader {
    pub(crate) async fn open(
        config: &SinkConfig,
        schema: Arc<Schema>,
    ) -> Result<RedshiftLoader, Error> {
        let url = config.redshift_url.as_deref().unwrap_or_default();
        let (pg_config, tls, mode) =
            crate::tls::connector(url, "sink.redshift_url", config.sslmode, SslMode::Require)?;
        let auth = copy_auth(config)?;
        let client = connect(&pg_config, &tls, mode).await?;
        let slices = match config.parts_per_table {
            Some(n) => n,
            None => client
                .simple_query(rsql::SLICES_QUERY)
                .await
                .map(first_int)
                .map_err(rs_err("count slices (stv_slices)", &auth))?
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
        };
        let stager = S3Stager::new(
            crate::staging::s3_client(config).await,
            schema.clone(),
            StageOptions::from_config(config, slices),
        )?;
        let loader = RedshiftLoader {
            pg_config,
            tls,
            mode,
            schema_name: config.schema.clone(),
            schema,
            view: config.view.clone(),
            stager,
            auth,
            region: config.region.clone(),
            compression: config.compression,
            run: None,
            withdrawn: Vec::new(),
        };
        loader.create_objects(&client).await?;
        Ok(loader)
    }

    async fn connect(&self) -> Result<Client, Error> {
        connect(&self.pg_config, &self.tls, self.mode).await
    }

    async fn create_objects(&self, client: &Client) -> Result<(), Error> {
        let statements = rsql::ddl_statements(&self.schema_name, &self.schema, &self.view)?;
        let (view, tables): (Vec<_>, Vec<_>) = statements
            .into_iter()
            .partition(|s| s.starts_with("CREATE OR REPLACE VIEW"));
        for s in &tables {
            client
                .batch_execute(s)
                .await
                .map_err(rs_err("create tables", &self.auth))?;
        }
        let q = rsql::existing_columns_query(&self.schema_name)?;
        let existing: std::collections::HashSet<(String, String)> = rows(
            client
                .simple_query(&q)
                .await
                .map_err(rs_err("read existing columns", &self.auth))?,
        )
        .iter()
        .filter_map(|r| Some((r.get(0)?.to_owned(), r.get(1)?.to_owned())))
        .collect();
        for t in Table::ALL {
            for c in self.schema.columns(t) {
                if !existing.contains(&(t.name().to_owned(), c.name.clone())) {
                    tracing::info!(table = t.name(), column = %c.name, "adding column");
                    client
                        .batch_execute(&rsql::add_column(&self.schema_name, t, c))
                        .await
                        .map_err(rs_err(
                            format!("add column {}.{}", t.name(), c.name),
                            &self.auth,
                        ))?;
                }
            }
        }
        for v in &view {
            if client.batch_execute(v).await.is_err() {
                // CREATE OR REPLACE VIEW cannot change the columns: drop and create.
                let drop = rsql::drop_view(&self.schema_name);
                client
                    .batch_execute(&drop)
                    .await
                    .map_err(rs_err("drop view", &self.auth))?;
                client
                    .batch_execute(v)
                    .await
                    .map_err(rs_err("create view", &self.auth))?;
            }
        }
        Ok(())
    }

    pub(crate) async fn loaded_objects(&self) -> Result<HashMap<String, String>, Error> {
        let client = self.connect().await?;
        let q = rsql::loaded_objects_query(&self.schema_name);
        let found = client
            .simple_query(&q)
            .await
            .map_err(rs_err("read ledger", &self.auth))?;
        Ok(rows(found)
            .iter()
            .map(|r| {
                (
                    r.get(0).unwrap_or_default().to_owned(),
                    r.get(1).unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    pub(crate) async fn run_committed(&self, run_id: &str) -> Result<bool, Error> {
        let client = self.connect().await?;
        run_committed(&client, &self.schema_name, run_id, &self.auth).await
    }

    /// Deletes staged objects of other runs that committed or are older than
    /// [`SWEEP_AFTER`].
    async fn sweep(&self, client: &Client, current: &str) -> Result<(), Error> {
        let now = SystemTime::now();
        for other in self.stager.other_runs(current).await? {
            let committed =
                run_committed(client, &self.schema_name, &other.run_id, &self.auth).await?;
            if should_sweep(committed, other.newest, now) {
                tracing::warn!(
                    run_id = %other.run_id,
                    objects = other.keys.len(),
                    committed,
                    "removing staged objects left by an earlier run"
                );
                self.stager.delete_keys(&other.keys).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn begin(&mut self, run_id: &str) -> Result<(), Error> {
        if let Some(old) = self.run.take()
            && let Err(e) = old.discard().await
        {
            tracing::warn!(error = %e, "could not delete the staged objects of a discarded run");
        }
        let client = self.connect().await?;
        if run_committed(&client, &self.schema_name, run_id, &self.auth).await? {
            return Err(Error::Config(format!(
                "run id {run_id:?} was already committed"
            )));
        }
        self.sweep(&client, run_id).await?;
        self.withdrawn.clear();
        self.run = Some(self.stager.begin(run_id)?);
        Ok(())
    }

    /// Keeps withdrawn keys; the load deletes them in its transaction before the merge.
    pub(crate) async fn withdraw(&mut self, batch: RowBatch) -> Result<(), Error> {
        if self.run.is_none() {
            return Err(Error::State("write before begin"));
        }
        let width = batch.width.max(1);
        for row in batch.values.chunks_exact(width) {
            self.withdrawn
                .push((batch.table, row.iter().map(crate::sink::key_text).collect()));
        }
        Ok(())
    }

    pub(crate) async fn write(&mut self, batch: RowBatch) -> Result<(), Error> {
        let run = self
            .run
            .as_mut()
            .ok_or(Error::State("write before begin"))?;
        let result = run.write(batch).await;
        if result.is_err()
            && let Some(run) = self.run.take()
            && let Err(e) = run.discard().await
        {
            tracing::warn!(error = %e, "could not delete the staged objects of a failed run");
        }
        result
    }

    pub(crate) async fn commit(&mut self, record: &RunRecord) -> Result<LoadStats, Error> {
        let mut run = self.run.take().ok_or(Error::State("commit before begin"))?;
        if run.run_id() != record.run_id {
            return Err(Error::State("commit of a run id other than the one begun"));
        }
        let result = self.load(&mut run, record).await;
        // Committed or not, the staged objects are of no further use; a crash before this
        // leaves them to the next run's sweep.
        if let Err(e) = run.discard().await {
            tracing::warn!(error = %e, "could not delete staged objects; the next run sweeps them");
        }
        result
    }

    async fn load(&self, run: &mut RunStage, record: &RunRecord) -> Result<LoadStats, Error> {
        let (staged, encode) = run.finish().await?;
        let tables: Vec<TableLoad> = staged
            .iter()
            .map(|s| TableLoad {
                table: s.table,
                manifest_url: s.manifest_url.clone(),
            })
            .collect();
        let mut steps = rsql::load_steps(
            &self.schema_name,
            &self.schema,
            &tables,
            &self.auth,
            self.region.as_deref(),
            self.compression,
            record,
        )?;
        // Withdrawn keys go first, right after BEGIN: the run's rows are merged after them.
        let withdrawals =
            rsql::withdraw_statements(&self.schema_name, &self.schema, &self.withdrawn)?;
        let mut withdrawn = std::collections::BTreeMap::new();
        for (t, _) in &self.withdrawn {
            *withdrawn.entry(*t).or_insert(0u64) += 1;
        }
        for (i, sql) in withdrawals.into_iter().enumerate() {
            steps.insert(
                1 + i,
                rsql::Step {
                    sql,
                    kind: rsql::StepKind::Exec,
                },
            );
        }
        let client = self.connect().await?;
        let mut stats = run_load_steps(&client, &steps, &staged, &self.auth, |step, _| {
            let client = &client;
            async move { client.simple_query(&step.sql).await.map(drop) }
        })
        .await?;
        stats.add_encode(&encode);
        stats.withdrawn = withdrawn;
        Ok(stats)
    }
}

/// Runs the statements of [`rsql::load_steps`] on `client` and returns the rows loaded,
/// duplicate keys and null keys per table (the encoder's counts are the caller's). Each
/// `Copy` step is run by `copy`: the loader sends its SQL; a test can load the staged
/// parts another way. On any failure the transaction is rolled back; a failed COPY is
/// [`Error::LoadFailed`] with the `stl_load_errors` rows of that COPY (none where the
/// table does not exist). Messages have the credentials redacted.
pub async fn run_load_steps<'a, F, Fut>(
    client: &Client,
    steps: &'a [Step],
    staged: &'a [StagedTable],
    auth: &CopyAuth,
    mut copy: F,
) -> Result<LoadStats, Error>
where
    F: FnMut(&'a Step, &'a StagedTable) -> Fut,
    Fut: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let mut stats = LoadStats::default();
    let mut nulls: HashMap<Table, u64> = HashMap::new();
    for step in steps {
        let result = match step.kind {
            StepKind::Copy(t) => match staged.iter().find(|s| s.table == t) {
                Some(table) => copy(step, table).await.map(|()| Vec::new()),
                None => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    return Err(Error::State("a COPY step for a table that was not staged"));
                }
            },
            _ => client.simple_query(&step.sql).await,
        };
        let messages = match result {
            Ok(m) => m,
            Err(e) => {
                let err = match step.kind {
                    StepKind::Copy(t) => copy_failed(client, t, e, auth).await,
                    _ => rs_err(step_context(step.kind), auth)(e),
                };
                if let Err(e) = client.batch_execute("ROLLBACK").await {
                    tracing::debug!(error = %e, "rollback failed; closing ends the run");
                }
                return Err(err);
            }
        };
        match step.kind {
            StepKind::CountNullKeys(t) => {
                let n = first_int(messages).unwrap_or(0);
                let n = u64::try_from(n).unwrap_or(0);
                nulls.insert(t, n);
                if n > 0 {
                    stats.null_keys.insert(t, n);
                }
            }
            StepKind::Insert(t) => {
                let inserted = affected(&messages);
                stats.rows.insert(t, inserted);
                let staged_rows = staged.iter().find(|s| s.table == t).map_or(0, |s| s.rows);
                let dups = staged_rows
                    .saturating_sub(nulls.get(&t).copied().unwrap_or(0))
                    .saturating_sub(inserted);
                if dups > 0 {
                    stats.duplicate_keys.insert(t, dups);
                }
            }
            StepKind::Exec | StepKind::Copy(_) => {}
        }
    }
    Ok(stats)
}

/// The error of a failed COPY, with its `stl_load_errors` rows. The transaction is
/// aborted, so the rows are read after a `ROLLBACK` (the system table is not transactional
/// and `pg_last_copy_id()` is per session).
async fn copy_failed(
    client: &Client,
    table: Table,
    e: tokio_postgres::Error,
    auth: &CopyAuth,
) -> Error {
    let message = match rs_err("copy", auth)(e) {
        Error::Redshift { message, .. } => message,
        other => other.to_string(),
    };
    let _ = client.batch_execute("ROLLBACK").await;
    let rows = match client.simple_query(rsql::LOAD_ERRORS_QUERY).await {
        Ok(m) => parse_load_errors(m, auth),
        Err(e) => {
            tracing::warn!(error = %e, "could not read stl_load_errors");
            Vec::new()
        }
    };
    Error::LoadFailed {
        table: table.name(),
        message,
        rows,
    }
}

/// Whether the staged objects of another run are deleted: it committed (a crash after its
/// commit kept it from deleting them), or its newest object is at least [`SWEEP_AFTER`] old
/// (it crashed before its commit). A young uncommitted run may still be going.
pub(crate) fn should_sweep(committed: bool, newest: Option<SystemTime>, now: SystemTime) -> bool {
    let old = newest
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|age| age >= SWEEP_AFTER);
    committed || old
}

fn step_context(kind: StepKind) -> String {
    match kind {
        StepKind::Exec => "load transaction".to_owned(),
        StepKind::Copy(t) => format!("copy into staging {}", t.name()),
        StepKind::CountNullKeys(t) => format!("count null keys of {}", t.name()),
        StepKind::Insert(t) => format!("insert rows of {}", t.name()),
    }
}

/// The rows of [`rsql::LOAD_ERRORS_QUERY`], redacted.
pub(crate) fn parse_load_errors(m: Vec<SimpleQueryMessage>, auth: &CopyAuth) -> Vec<LoadErrorRow> {
    rows(m)
        .iter()
        .map(|r| {
            let text = |i| rsql::redact(r.get(i).unwrap_or_default().trim(), auth);
            let int = |i| {
                r.get(i)
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_default()
            };
            LoadErrorRow {
                file: text(0),
                line: int(1),
                column: text(2),
                column_type: text(3),
                raw_value: text(4),
                code: int(5),
                reason: text(6),
            }
        })
        .collect()
}

async fn run_committed(
    client: &Client,
    schema_name: &str,
    run_id: &str,
    auth: &CopyAuth,
) -> Result<bool, Error> {
    let q = rsql::run_committed_query(schema_name, run_id)?;
    let found = client
        .simple_query(&q)
        .await
        .map_err(rs_err("read dpl_runs", auth))?;
    Ok(!rows(found).is_empty())
}

async fn connect(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    mode: SslMode,
) -> Result<Client, Error> {
    let (client, conn) = config
        .connect(tls.clone())
        .await
        .map_err(Error::pg(format!("connect to redshift (sslmode={mode})")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "redshift connection ended");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_rule() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert!(should_sweep(true, Some(now), now));
        assert!(!should_sweep(false, Some(now - hour), now));
        assert!(should_sweep(false, Some(now - SWEEP_AFTER), now));
        assert!(should_sweep(false, Some(now - 7 * hour), now));
        // A clock ahead of ours: not old.
        assert!(!should_sweep(false, Some(now + hour), now));
        assert!(!should_sweep(false, None, now));
    }
}
