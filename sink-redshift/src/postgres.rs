//! The PostgreSQL loader: `COPY FROM STDIN` into temporary staging tables, then one
//! transaction that replaces target rows by primary key and writes the ledger.
//!
//! A run holds one dedicated connection (not returned to the pool) with one open
//! transaction from `begin` to `commit`. Dropping the loader, an error, or a new `begin`
//! before `commit` rolls the transaction back (closing the connection makes the server roll
//! it back too), so a run either changes everything or nothing.
//!
//! Speed (measured by `dpl bench` against psql's own `COPY` of the same CSV): batches are
//! encoded as they come into one CSV buffer per table, and each buffer is sent as one `COPY`
//! once it holds a chunk (1 MiB) and at commit, so a table's rows take one statement per
//! chunk however small the batches (the sessionizer's page view batches are about 120
//! rows); staging tables do not toast rows that fit in a page (`toast_tuple_target`),
//! since the merge reads each staged row once and toasts it for the target anyway; the
//! merge analyzes only the staging tables' key columns and raises `work_mem` for its own
//! transaction (never lowers it) so its sort by key stays in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bb8::Pool;
use bb8_postgres::PostgresConnectionManager;
use bytes::Bytes;
use dpl_core::{RowBatch, Schema, Table};
use futures_util::{SinkExt as _, pin_mut};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::SinkConfig;
use crate::csv::{CsvEncoder, Dialect, check_shape};
use crate::error::Error;
use crate::sink::{LoadStats, RunRecord, unique_objects, utc_micros};
use crate::sql::{self, ORD, column_list, qualified, quote_ident, sql_type, staging_name};
use crate::tls::SslMode;

type Manager = PostgresConnectionManager<MakeRustlsConnect>;

/// Bytes per `CopyData` message.
const COPY_CHUNK: usize = 1 << 20;

/// What `toast_tuple_target` of the staging tables is below the server's block size: the
/// largest value allowed (a heap page's usable size, 8160 with the usual 8 kB blocks), so
/// only rows that cannot fit in a page are toasted in staging.
const PAGE_OVERHEAD: i32 = 32;

/// `work_mem` of the merge, unless the server's is larger: the merge sorts every staged
/// row of a table by key (`DISTINCT ON`), which spills to disk with PostgreSQL's 4 MB
/// default. Only the run's transaction is affected (`SET LOCAL`).
const MERGE_WORK_MEM: &str = "256MB";

/// Loads runs into a PostgreSQL schema. See the module docs.
pub struct PostgresLoader {
    pool: Pool<Manager>,
    schema: Arc<Schema>,
    schema_name: String,
    view: sql::ViewOptions,
    run: Option<Box<PgRun>>,
}

impl std::fmt::Debug for PostgresLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLoader")
            .field("schema_name", &self.schema_name)
            .field("run", &self.run.as_ref().map(|r| &r.run_id))
            .finish_non_exhaustive()
    }
}

struct PgRun {
    run_id: String,
    /// A dedicated connection inside `BEGIN`; dropping it ends the session, which rolls the
    /// transaction back on the server.
    client: Client,
    encoder: CsvEncoder,
    /// Rows copied into each staging table, indexed by `Table as usize`.
    staged: [u64; Table::ALL.len()],
    /// CSV of each table's rows not copied yet, indexed by `Table as usize`.
    pending: [Vec<u8>; Table::ALL.len()],
    /// Target rows deleted by withdrawals, indexed by `Table as usize`.
    withdrawn: [u64; Table::ALL.len()],
}

impl PostgresLoader {
    pub(crate) async fn open(
        config: &SinkConfig,
        schema: Arc<Schema>,
    ) -> Result<PostgresLoader, Error> {
        let url = config.pg_url.as_deref().unwrap_or_default();
        let (pg_config, tls, mode) =
            crate::tls::connector(url, "sink.pg_url", config.sslmode, SslMode::Prefer)?;
        let manager = Manager::new(pg_config, tls);
        // One direct connection first, so a wrong URL or a database that is down reports
        // the server's reason instead of a pool timeout.
        let first = bb8::ManageConnection::connect(&manager)
            .await
            .map_err(Error::pg(format!("connect (sslmode={mode})")))?;
        let pool = Pool::builder()
            .max_size(config.pool_size)
            .connection_timeout(Duration::from_secs(30))
            .build_unchecked(manager);
        if pool.add(first).is_err() {
            tracing::debug!("pool full; the first connection is dropped");
        }
        let loader = PostgresLoader {
            pool,
            schema,
            schema_name: config.schema.clone(),
            view: config.view.clone(),
            run: None,
        };
        loader.create_objects().await?;
        Ok(loader)
    }

    /// Creates the schema, tables, ledger and view if missing and adds missing columns, in
    /// one transaction serialized by an advisory lock on the schema name.
    async fn create_objects(&self) -> Result<(), Error> {
        let mut conn = self.pool.get().await.map_err(Error::pool("connect"))?;
        let tx = conn.transaction().await.map_err(Error::pg("begin ddl"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('dpl_ddl_' || $1::text))",
            &[&self.schema_name],
        )
        .await
        .map_err(Error::pg("lock schema for ddl"))?;
        let mut script = format!(
            "CREATE SCHEMA IF NOT EXISTS {};\n",
            quote_ident(&self.schema_name)
        );
        for t in Table::ALL {
            script.push_str(&sql::create_table(
                Dialect::Postgres,
                &self.schema_name,
                &self.schema,
                t,
            ));
        }
        script.push_str(&sql::create_ledger(Dialect::Postgres, &self.schema_name));
        tx.batch_execute(&script)
            .await
            .map_err(Error::pg("create tables"))?;

        let rows = tx
            .query(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1",
                &[&self.schema_name],
            )
            .await
            .map_err(Error::pg("read existing columns"))?;
        let existing: std::collections::HashSet<(String, String)> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for t in Table::ALL {
            for c in self.schema.columns(t) {
                if !existing.contains(&(t.name().to_owned(), c.name.clone())) {
                    tracing::info!(table = t.name(), column = %c.name, "adding column");
                    let stmt = format!(
                        "ALTER TABLE {} ADD COLUMN {} {}",
                        qualified(&self.schema_name, t.name()),
                        quote_ident(&c.name),
                        sql_type(c.ty)
                    );
                    tx.batch_execute(&stmt).await.map_err(Error::pg(format!(
                        "add column {}.{}",
                        t.name(),
                        c.name
                    )))?;
                }
            }
        }

        let view = sql::create_view(
            Dialect::Postgres,
            &self.schema_name,
            &self.schema,
            &self.view,
        )?;
        // CREATE OR REPLACE VIEW cannot reorder columns; a new users column in the middle
        // needs the view dropped and made again.
        tx.batch_execute("SAVEPOINT dpl_view")
            .await
            .map_err(Error::pg("create view"))?;
        if tx.batch_execute(&view).await.is_err() {
            let drop = format!(
                "ROLLBACK TO SAVEPOINT dpl_view; DROP VIEW IF EXISTS {};",
                qualified(&self.schema_name, sql::USERS_CURRENT)
            );
            tx.batch_execute(&drop)
                .await
                .map_err(Error::pg("drop view"))?;
            tx.batch_execute(&view)
                .await
                .map_err(Error::pg("create view"))?;
        }
        tx.commit().await.map_err(Error::pg("commit ddl"))
    }

    pub(crate) async fn loaded_objects(&self) -> Result<HashMap<String, String>, Error> {
        let conn = self.pool.get().await.map_err(Error::pool("connect"))?;
        let q = format!(
            "SELECT object_key, etag FROM {}",
            qualified(&self.schema_name, sql::LOADED_OBJECTS)
        );
        let rows = conn
            .query(&q, &[])
            .await
            .map_err(Error::pg("read ledger"))?;
        rows.iter()
            .map(|r| {
                let k: Option<String> = r.try_get(0).map_err(Error::pg("read ledger"))?;
                let e: Option<String> = r.try_get(1).map_err(Error::pg("read ledger"))?;
                Ok((k.unwrap_or_default(), e.unwrap_or_default()))
            })
            .collect()
    }

    /// Whether `dpl_runs` has a row for `run_id`.
    pub(crate) async fn run_committed(&self, run_id: &str) -> Result<bool, Error> {
        let conn = self.pool.get().await.map_err(Error::pool("connect"))?;
        let q = format!(
            "SELECT 1 FROM {} WHERE run_id = $1",
            qualified(&self.schema_name, sql::RUNS)
        );
        let rows = conn
            .query(&q, &[&run_id])
            .await
            .map_err(Error::pg("read dpl_runs"))?;
        Ok(!rows.is_empty())
    }

    pub(crate) async fn begin(&mut self, run_id: &str) -> Result<(), Error> {
        if let Some(old) = self.run.take() {
            old.rollback().await;
        }
        let client = self
            .pool
            .dedicated_connection()
            .await
            .map_err(Error::pg("connect"))?;
        let block: i32 = client
            .query_one("SELECT current_setting('block_size')::int", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(Error::pg("read block_size"))?;
        let toast_target = block - PAGE_OVERHEAD;
        let mut script = String::from("BEGIN;\n");
        for t in Table::ALL {
            let stg = quote_ident(&staging_name(t));
            script.push_str(&format!(
                "CREATE TEMP TABLE {stg} (LIKE {}) ON COMMIT DROP;\n\
                 ALTER TABLE {stg} ADD COLUMN {ORD} BIGSERIAL",
                qualified(&self.schema_name, t.name())
            ));
            // Keys may be NULL in staging; such rows are counted and skipped at merge.
            for k in t.primary_key() {
                script.push_str(&format!(", ALTER COLUMN {} DROP NOT NULL", quote_ident(k)));
            }
            // Staged rows are read once, by the merge: toasting them (compressing wide
            // values, one column at a time until the row fits in 2 kB) cost more than the
            // COPY itself, and the merge's INSERT toasts them again for the target anyway.
            // Only rows too big for a page are toasted here.
            script.push_str(&format!(", SET (toast_tuple_target = {toast_target})"));
            script.push_str(";\n");
        }
        client
            .batch_execute(&script)
            .await
            .map_err(Error::pg("create staging tables"))?;
        self.run = Some(Box::new(PgRun {
            run_id: run_id.to_owned(),
            client,
            encoder: CsvEncoder::new(Dialect::Postgres),
            staged: [0; Table::ALL.len()],
            pending: Default::default(),
            withdrawn: [0; Table::ALL.len()],
        }));
        Ok(())
    }

    pub(crate) async fn write(&mut self, batch: RowBatch) -> Result<(), Error> {
        let run = self
            .run
            .as_mut()
            .ok_or(Error::State("write before begin"))?;
        let result = run.copy(&self.schema, &batch).await;
        if result.is_err() {
            // The transaction is unusable now: discard the run.
            if let Some(run) = self.run.take() {
                run.rollback().await;
            }
        }
        result
    }

    /// Deletes withdrawn keys from the target inside the run's transaction (invisible until
    /// commit; the run's own rows are merged after).
    pub(crate) async fn withdraw(&mut self, batch: RowBatch) -> Result<(), Error> {
        let run = self
            .run
            .as_mut()
            .ok_or(Error::State("write before begin"))?;
        let result = run.withdraw(&self.schema_name, &self.schema, &batch).await;
        if result.is_err()
            && let Some(run) = self.run.take()
        {
            run.rollback().await;
        }
        result
    }

    pub(crate) async fn commit(&mut self, record: &RunRecord) -> Result<LoadStats, Error> {
        let mut run = self.run.take().ok_or(Error::State("commit before begin"))?;
        if run.run_id != record.run_id {
            run.rollback().await;
            return Err(Error::State("commit of a run id other than the one begun"));
        }
        match run.merge(&self.schema_name, &self.schema, record).await {
            Ok(stats) => Ok(stats),
            Err(e) => {
                run.rollback().await;
                Err(e)
            }
        }
    }
}

impl PgRun {
    async fn withdraw(
        &mut self,
        schema_name: &str,
        schema: &Schema,
        batch: &RowBatch,
    ) -> Result<(), Error> {
        let table = batch.table;
        let keys = crate::sink::key_columns(schema, table);
        let cond: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "{} = CAST(${}::text AS {})",
                    quote_ident(&c.name),
                    i + 1,
                    sql_type(c.ty)
                )
            })
            .collect();
        let stmt = format!(
            "DELETE FROM {} WHERE {}",
            qualified(schema_name, table.name()),
            cond.join(" AND ")
        );
        let what = format!("withdraw keys of {}", table.name());
        let prepared = self
            .client
            .prepare(&stmt)
            .await
            .map_err(Error::pg(what.clone()))?;
        for row in batch.values.chunks_exact(keys.len().max(1)) {
            let texts: Vec<Option<String>> = row.iter().map(crate::sink::key_text).collect();
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = texts
                .iter()
                .map(|t| t as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let n = self
                .client
                .execute(&prepared, &params)
                .await
                .map_err(Error::pg(what.clone()))?;
            if let Some(w) = self.withdrawn.get_mut(table as usize) {
                *w += n;
            }
        }
        Ok(())
    }

    /// Encodes `batch` into its table's pending CSV, copying the CSV into the staging table
    /// once it holds a chunk. An error midway fails the COPY and the caller discards the run.
    async fn copy(&mut self, schema: &Schema, batch: &RowBatch) -> Result<(), Error> {
        let columns = schema.columns(batch.table);
        check_shape(columns, batch)?;
        let t = batch.table;
        for row in batch.values.chunks_exact(columns.len().max(1)) {
            let Some(buf) = self.pending.get_mut(t as usize) else {
                break;
            };
            if buf.capacity() == 0 {
                buf.reserve(COPY_CHUNK + COPY_CHUNK / 4);
            }
            self.encoder.encode_row(t, columns, row, buf)?;
            if buf.len() >= COPY_CHUNK {
                self.flush(schema, t).await?;
            }
        }
        Ok(())
    }

    /// Copies every table's pending CSV into its staging table.
    async fn flush_all(&mut self, schema: &Schema) -> Result<(), Error> {
        for t in Table::ALL {
            self.flush(schema, t).await?;
        }
        Ok(())
    }

    /// Copies `table`'s pending CSV into its staging table with one `COPY`.
    async fn flush(&mut self, schema: &Schema, table: Table) -> Result<(), Error> {
        let Some(pending) = self.pending.get_mut(table as usize) else {
            return Ok(());
        };
        if pending.is_empty() {
            return Ok(());
        }
        // Room for the next chunk is made when a row comes for it (none does after commit).
        let csv = std::mem::take(pending);
        let started = std::time::Instant::now();
        let name = table.name();
        let stmt = format!(
            "COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
            quote_ident(&staging_name(table)),
            column_list(schema.columns(table))
        );
        let sink = self
            .client
            .copy_in::<_, Bytes>(&stmt)
            .await
            .map_err(Error::pg(format!("copy into staging {name}")))?;
        pin_mut!(sink);
        sink.send(Bytes::from(csv))
            .await
            .map_err(Error::pg(format!("copy into staging {name}")))?;
        let copied = sink
            .finish()
            .await
            .map_err(Error::pg(format!("copy into staging {name}")))?;
        if let Some(s) = self.staged.get_mut(table as usize) {
            *s += copied;
        }
        tracing::debug!(table = name, rows = copied, elapsed = ?started.elapsed(), "staged");
        Ok(())
    }

    async fn merge(
        &mut self,
        schema_name: &str,
        schema: &Schema,
        record: &RunRecord,
    ) -> Result<LoadStats, Error> {
        self.flush_all(schema).await?;
        let mut stats = LoadStats::default();
        self.client
            .batch_execute(&format!(
                "SELECT set_config('work_mem', '{MERGE_WORK_MEM}', true) WHERE \
                 pg_size_bytes(current_setting('work_mem')) < pg_size_bytes('{MERGE_WORK_MEM}')"
            ))
            .await
            .map_err(Error::pg("set work_mem"))?;
        for t in Table::ALL {
            let withdrawn = self.withdrawn.get(t as usize).copied().unwrap_or(0);
            if withdrawn > 0 {
                stats.withdrawn.insert(t, withdrawn);
            }
        }
        for t in Table::ALL {
            let staged = self.staged.get(t as usize).copied().unwrap_or(0);
            if staged == 0 {
                continue;
            }
            let name = t.name();
            let stg = quote_ident(&staging_name(t));
            let mut step = std::time::Instant::now();
            let mut lap = || {
                let e = step.elapsed();
                step = std::time::Instant::now();
                e
            };
            // Statistics of the key columns only: the merge's plans need the row count and
            // the keys' distribution, and analyzing every column of a wide table (pageviews
            // has over 160) cost more than loading it.
            let keys = t
                .primary_key()
                .iter()
                .map(|k| quote_ident(k))
                .collect::<Vec<_>>()
                .join(", ");
            self.client
                .batch_execute(&format!("ANALYZE {stg} ({keys})"))
                .await
                .map_err(Error::pg(format!("analyze staging {name}")))?;
            let analyze = lap();
            let null_cond = t
                .primary_key()
                .iter()
                .map(|k| format!("{} IS NULL", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(" OR ");
            let nulls: i64 = self
                .client
                .query_one(
                    &format!("SELECT count(*) FROM {stg} WHERE {null_cond}"),
                    &[],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(Error::pg(format!("count null keys of {name}")))?;
            let count = lap();
            let [delete, insert] =
                sql::merge_statements(Dialect::Postgres, schema_name, t, &stg, schema.columns(t));
            self.client
                .execute(&delete, &[])
                .await
                .map_err(Error::pg(format!("delete replaced rows of {name}")))?;
            let deleted = lap();
            let inserted = self
                .client
                .execute(&insert, &[])
                .await
                .map_err(Error::pg(format!("insert rows of {name}")))?;
            tracing::debug!(table = name, rows = inserted, ?analyze, ?count, delete = ?deleted,
                insert = ?lap(), "merged");
            let nulls = u64::try_from(nulls).unwrap_or(0);
            stats.rows.insert(t, inserted);
            let dups = staged.saturating_sub(nulls).saturating_sub(inserted);
            if dups > 0 {
                stats.duplicate_keys.insert(t, dups);
            }
            if nulls > 0 {
                stats.null_keys.insert(t, nulls);
            }
        }
        self.write_ledger(schema_name, record).await?;
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(Error::pg("commit"))?;
        stats.add_encode(&self.encoder.take_stats());
        Ok(stats)
    }

    async fn write_ledger(&self, schema_name: &str, record: &RunRecord) -> Result<(), Error> {
        let mut finished = String::new();
        dpl_core::write_ts(&mut finished, utc_micros(record.finished_at));
        let mut started = String::new();
        dpl_core::write_ts(&mut started, utc_micros(record.started_at));
        let objects = unique_objects(&record.objects);
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        let etags: Vec<&str> = objects.iter().map(|o| o.etag.as_str()).collect();
        let sizes: Vec<i64> = objects
            .iter()
            .map(|o| i64::try_from(o.size).unwrap_or(i64::MAX))
            .collect();
        let events: Vec<i64> = objects
            .iter()
            .map(|o| i64::try_from(o.events).unwrap_or(i64::MAX))
            .collect();
        let upsert = format!(
            "INSERT INTO {} (object_key, etag, size_bytes, events, run_id, loaded_at) \
             SELECT k, e, s, n, $5::text, $6::text::timestamp \
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS x(k, e, s, n) \
             ON CONFLICT (object_key) DO UPDATE SET etag = EXCLUDED.etag, \
             size_bytes = EXCLUDED.size_bytes, events = EXCLUDED.events, \
             run_id = EXCLUDED.run_id, loaded_at = EXCLUDED.loaded_at",
            qualified(schema_name, sql::LOADED_OBJECTS)
        );
        self.client
            .execute(
                &upsert,
                &[&keys, &etags, &sizes, &events, &record.run_id, &finished],
            )
            .await
            .map_err(Error::pg("write dpl_loaded_objects"))?;
        let n_objects = i64::try_from(objects.len()).unwrap_or(i64::MAX);
        let runs = format!(
            "INSERT INTO {} (run_id, started_at, finished_at, objects, summary) \
             VALUES ($1::text, $2::text::timestamp, $3::text::timestamp, $4::bigint, $5::text) \
             ON CONFLICT (run_id) DO UPDATE SET started_at = EXCLUDED.started_at, \
             finished_at = EXCLUDED.finished_at, objects = EXCLUDED.objects, \
             summary = EXCLUDED.summary",
            qualified(schema_name, sql::RUNS)
        );
        // PostgreSQL text cannot hold NUL.
        let summary = record.summary_json.replace('\0', "");
        self.client
            .execute(
                &runs,
                &[&record.run_id, &started, &finished, &n_objects, &summary],
            )
            .await
            .map_err(Error::pg("write dpl_runs"))?;
        Ok(())
    }

    /// Best effort: the server rolls back anyway when the connection closes on drop.
    async fn rollback(self) {
        if let Err(e) = self.client.batch_execute("ROLLBACK").await {
            tracing::debug!(error = %e, "rollback failed; the connection closes anyway");
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the real PostgreSQL (`DPL_TEST_PG_URL`, else the local test database), like
    //! `tests/sink.rs`: what the staging settings and the chunked COPY must not change.
    #![allow(clippy::unwrap_used)]

    use dpl_core::Value;

    use super::*;
    use crate::config::SinkKind;
    use crate::sink::Sink;

    fn pg_url() -> String {
        std::env::var("DPL_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// Drops the test's schema when the test ends, passed or failed.
    struct DropSchema(String);

    impl Drop for DropSchema {
        fn drop(&mut self) {
            let stmt = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&self.0));
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
                        .await
                        .unwrap();
                    tokio::spawn(conn);
                    c.batch_execute(&stmt).await.unwrap();
                });
            })
            .join();
        }
    }

    /// Text that compresses badly (pseudo-random letters), `len` characters.
    fn noise(seed: u64, len: usize) -> String {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect()
    }

    const WIDE: [&str; 3] = ["extra_data", "metadata_authors", "metadata_tags"];

    fn pageview(schema: &Schema, id: &str, text: &str) -> Vec<Value> {
        let t = Table::Pageviews;
        let mut r = vec![Value::Null; schema.columns(t).len()];
        r[schema.index(t, "event_id").unwrap()] = Value::text(id);
        for c in WIDE {
            r[schema.index(t, c).unwrap()] = Value::text(text);
        }
        r
    }

    fn batch(rows: impl IntoIterator<Item = Vec<Value>>, width: usize) -> RowBatch {
        let mut b = RowBatch::new(Table::Pageviews, width);
        for r in rows {
            b.values.extend(r);
        }
        b
    }

    fn record(run_id: &str) -> RunRecord {
        let now = jiff::Timestamp::now();
        RunRecord {
            run_id: run_id.to_owned(),
            started_at: now,
            finished_at: now,
            objects: Vec::new(),
            summary_json: "{}".to_owned(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_wider_than_a_page_many_chunks_and_a_failed_copy() {
        let schema = Arc::new(Schema::default());
        let nanos = jiff::Timestamp::now().as_nanosecond() % 1_000_000_000;
        let name = format!("dpl_t_pgstage_{}_{nanos}", std::process::id());
        let _drop = DropSchema(name.clone());
        let config = SinkConfig {
            kind: SinkKind::Postgres,
            pg_url: Some(pg_url()),
            schema: name.clone(),
            pool_size: 2,
            ..SinkConfig::default()
        };
        let width = schema.columns(Table::Pageviews).len();
        let mut sink = Sink::open(&config, schema.clone()).await.unwrap();

        // More than one COPY chunk of rows between 2 kB and a page wide, then a value the
        // column cannot hold: the COPY fails midway and the run is discarded.
        let rows = |tag: &str| {
            (0..400u64)
                .map(|i| pageview(&schema, &format!("{tag}{i}"), &noise(i, 1000)))
                .collect::<Vec<_>>()
        };
        const { assert!(400 * 3000 > COPY_CHUNK) };
        sink.begin("r1").await.unwrap();
        let mut bad = rows("x");
        bad[399][schema.index(Table::Pageviews, "ts_action").unwrap()] = Value::text("soon");
        let err = sink.write(batch(bad, width)).await.unwrap_err();
        assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
        assert!(matches!(
            sink.commit(&record("r1")).await,
            Err(Error::State(_))
        ));

        // Rows wider than a page (toasted even in staging), rows of a few kB, and a key staged
        // twice: the first staged row wins.
        sink.begin("r2").await.unwrap();
        let huge = noise(7, 20_000);
        sink.write(batch([pageview(&schema, "big", &huge)], width))
            .await
            .unwrap();
        sink.write(batch(rows("m"), width)).await.unwrap();
        sink.write(batch([pageview(&schema, "big", "later")], width))
            .await
            .unwrap();
        let stats = sink.commit(&record("r2")).await.unwrap();
        assert_eq!(stats.rows.get(&Table::Pageviews), Some(&401));
        assert_eq!(stats.duplicate_keys.get(&Table::Pageviews), Some(&1));

        let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let q = format!(
            "SELECT event_id::text, extra_data::text, metadata_authors::text, \
             metadata_tags::text FROM {} ORDER BY event_id",
            qualified(&name, Table::Pageviews.name())
        );
        let got = c.query(&q, &[]).await.unwrap();
        assert_eq!(got.len(), 401);
        for r in &got {
            let id: String = r.get(0);
            let want = match id.strip_prefix('m') {
                Some(i) => noise(i.parse().unwrap(), 1000),
                None => {
                    assert_eq!(id, "big");
                    huge.clone()
                }
            };
            for i in 1..=3 {
                assert_eq!(r.get::<_, String>(i), want, "{id}");
            }
        }
    }
}
