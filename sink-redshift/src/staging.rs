//! S3 staging of the Redshift loader: compressed CSV parts and one manifest per table under
//! `<staging_prefix><run_id>/`.
//!
//! Rows are encoded with [`CsvEncoder`] (Redshift dialect: text cut by bytes) plus a last
//! field, `dpl_ord`, the row's arrival order within the run and table, which the merge
//! uses to keep the first staged row of a key. Each table has `parts_per_table` lanes;
//! batches go to the lanes in turn, so a table of at least that many batches gives COPY at
//! least one file per slice. A lane is compressed in memory and uploaded as a part when it
//! holds `part_bytes` of CSV; when all lanes together buffer more than
//! [`MAX_BUFFERED_BYTES`] compressed bytes, the largest is uploaded early, which bounds the
//! memory. Compression runs on the blocking pool. Layout:
//!
//! ```text
//! <prefix><run_id>/<table>/part-00000.csv.gz   (or .csv.zst)
//! <prefix><run_id>/<table>.manifest            {"entries":[{"url":"s3://b/k","mandatory":true,
//!                                               "meta":{"content_length":N}}]}
//! ```

use std::io::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier, ServerSideEncryption};
use dpl_core::{RowBatch, Schema, Table};
use flate2::write::GzEncoder;

use crate::config::{Compression, SinkConfig, Sse};
use crate::csv::{CsvEncoder, Dialect, EncodeStats, check_shape};
use crate::error::Error;

/// Compressed bytes all lanes of a run may buffer before the largest is uploaded early.
pub const MAX_BUFFERED_BYTES: u64 = 256 << 20;

/// Where and how a run is staged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageOptions {
    pub bucket: String,
    /// Ends with `/` or is empty.
    pub prefix: String,
    pub compression: Compression,
    pub level: i32,
    /// Uncompressed CSV bytes per part (target).
    pub part_bytes: u64,
    /// Lanes per table (at least 1).
    pub parts_per_table: u32,
    pub sse: Sse,
    pub sse_kms_key_id: Option<String>,
}

impl StageOptions {
    /// The options of a validated config; `parts_per_table` is the config's, else `slices`.
    pub fn from_config(config: &SinkConfig, slices: u32) -> StageOptions {
        StageOptions {
            bucket: config.staging_bucket.clone().unwrap_or_default(),
            prefix: config.staging_prefix.clone(),
            compression: config.compression,
            level: config.effective_compression_level(),
            part_bytes: config.part_bytes,
            parts_per_table: config.parts_per_table.unwrap_or(slices).max(1),
            sse: config.sse,
            sse_kms_key_id: config.sse_kms_key_id.clone(),
        }
    }
}

/// One uploaded part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedPart {
    pub key: String,
    /// Compressed bytes (the manifest's `content_length`).
    pub bytes: u64,
    pub rows: u64,
}

/// One table's staged data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedTable {
    pub table: Table,
    pub manifest_key: String,
    /// `s3://bucket/manifest_key`.
    pub manifest_url: String,
    pub parts: Vec<StagedPart>,
    pub rows: u64,
}

/// Objects left under the staging prefix by another run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherRun {
    pub run_id: String,
    /// The newest `LastModified` of its objects.
    pub newest: Option<SystemTime>,
    pub keys: Vec<String>,
}

/// Uploads staged objects and removes them.
#[derive(Clone)]
pub struct S3Stager {
    client: Client,
    opts: StageOptions,
    schema: Arc<Schema>,
}

/// By hand: the S3 client's `Debug` would show the access key id.
impl std::fmt::Debug for S3Stager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Stager")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Builds the S3 client of the staging bucket: static keys when configured, else the
/// standard AWS chain; `region`, else the chain's, else `us-east-1`; `s3_endpoint_url`
/// with path-style addressing.
pub async fn s3_client(config: &SinkConfig) -> Client {
    use aws_config::meta::region::RegionProviderChain;
    let region = match &config.region {
        Some(r) => RegionProviderChain::first_try(Region::new(r.clone())),
        None => RegionProviderChain::default_provider().or_else(Region::from_static("us-east-1")),
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            id.clone(),
            secret.clone(),
            config.session_token.clone(),
            None,
            "dpl-sink-config",
        ));
    }
    if let Some(url) = &config.s3_endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    let shared = loader.load().await;
    let s3 = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(config.s3_endpoint_url.is_some())
        .build();
    Client::from_conf(s3)
}

fn s3_err<E>(context: impl Into<String>) -> impl FnOnce(E) -> Error
where
    E: std::error::Error + 'static,
{
    let context = context.into();
    move |e| Error::S3 {
        context,
        message: DisplayErrorContext(&e).to_string(),
    }
}

impl S3Stager {
    pub fn new(client: Client, schema: Arc<Schema>, opts: StageOptions) -> Result<S3Stager, Error> {
        crate::redshift_sql::validate_bucket(&opts.bucket)?;
        crate::redshift_sql::validate_prefix(&opts.prefix)?;
        if opts.part_bytes == 0 || opts.parts_per_table == 0 {
            return Err(Error::Config(
                "part_bytes and parts_per_table must be at least 1".to_owned(),
            ));
        }
        Ok(S3Stager {
            client,
            opts,
            schema,
        })
    }

    pub fn options(&self) -> &StageOptions {
        &self.opts
    }

    /// `<prefix><run_id>/`.
    pub fn run_prefix(&self, run_id: &str) -> String {
        format!("{}{run_id}/", self.opts.prefix)
    }

    /// Starts staging a run (nothing is uploaded until a part fills or [`RunStage::finish`]).
    pub fn begin(&self, run_id: &str) -> Result<RunStage, Error> {
        crate::sink::validate_run_id(run_id)?;
        let lanes = self.opts.parts_per_table as usize;
        Ok(RunStage {
            stager: self.clone(),
            run_id: run_id.to_owned(),
            prefix: self.run_prefix(run_id),
            state: Some(Box::new(StageState {
                schema: self.schema.clone(),
                opts: self.opts.clone(),
                prefix: self.run_prefix(run_id),
                encoder: CsvEncoder::new(Dialect::Redshift),
                row: Vec::new(),
                lanes: Table::ALL
                    .iter()
                    .map(|_| (0..lanes).map(|_| None).collect())
                    .collect(),
                next_lane: [0; Table::ALL.len()],
                next_part: [0; Table::ALL.len()],
                ord: [0; Table::ALL.len()],
            })),
            parts: Table::ALL.iter().map(|_| Vec::new()).collect(),
        })
    }

    /// Runs with objects under the staging prefix, other than `current`.
    pub async fn other_runs(&self, current: &str) -> Result<Vec<OtherRun>, Error> {
        let mut runs: Vec<OtherRun> = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.opts.bucket)
                .prefix(&self.opts.prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(s3_err("list the staging prefix"))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let rest = key.get(self.opts.prefix.len()..).unwrap_or_default();
                let Some((run_id, _)) = rest.split_once('/') else {
                    continue;
                };
                if run_id == current || crate::sink::validate_run_id(run_id).is_err() {
                    continue;
                }
                let modified = o
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok());
                let i = match runs.iter().position(|r| r.run_id == run_id) {
                    Some(i) => i,
                    None => {
                        runs.push(OtherRun {
                            run_id: run_id.to_owned(),
                            newest: None,
                            keys: Vec::new(),
                        });
                        runs.len() - 1
                    }
                };
                if let Some(r) = runs.get_mut(i) {
                    r.keys.push(key.to_owned());
                    r.newest = r.newest.max(modified);
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(runs)
    }

    /// Deletes objects, 1,000 per request.
    pub async fn delete_keys(&self, keys: &[String]) -> Result<(), Error> {
        for chunk in keys.chunks(1000) {
            let ids = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(s3_err("delete staged objects"))?;
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(s3_err("delete staged objects"))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.opts.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(s3_err("delete staged objects"))?;
            if let Some(e) = out.errors().first() {
                return Err(Error::S3 {
                    context: "delete staged objects".to_owned(),
                    message: format!(
                        "{} of {} not deleted, first {:?}: {}",
                        out.errors().len(),
                        chunk.len(),
                        e.key().unwrap_or_default(),
                        e.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), Error> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.opts.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        match self.opts.sse {
            Sse::None => {}
            Sse::S3 => req = req.server_side_encryption(ServerSideEncryption::Aes256),
            Sse::Kms => {
                req = req
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .set_ssekms_key_id(self.opts.sse_kms_key_id.clone());
            }
        }
        req.send()
            .await
            .map_err(s3_err(format!("upload s3://{}/{key}", self.opts.bucket)))?;
        Ok(())
    }
}

enum Compressor {
    Gzip(GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Compressor {
    fn new(c: Compression, level: i32) -> Result<Compressor, Error> {
        Ok(match c {
            Compression::Gzip => Compressor::Gzip(GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
            Compression::Zstd => Compressor::Zstd(
                zstd::stream::write::Encoder::new(Vec::new(), level).map_err(|e| Error::Io {
                    path: "zstd".into(),
                    source: e,
                })?,
            ),
        })
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Compressor::Gzip(g) => g.write_all(b),
            Compressor::Zstd(z) => z.write_all(b),
        }
    }

    fn compressed_len(&self) -> usize {
        match self {
            Compressor::Gzip(g) => g.get_ref().len(),
            Compressor::Zstd(z) => z.get_ref().len(),
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

struct Lane {
    z: Compressor,
    raw_bytes: u64,
    rows: u64,
}

/// A closed part waiting for upload.
struct Finished {
    table: Table,
    key: String,
    body: Vec<u8>,
    rows: u64,
}

/// The blocking half: encoding and compression.
struct StageState {
    schema: Arc<Schema>,
    opts: StageOptions,
    prefix: String,
    encoder: CsvEncoder,
    row: Vec<u8>,
    /// Per table, its lanes.
    lanes: Vec<Vec<Option<Lane>>>,
    next_lane: [usize; Table::ALL.len()],
    next_part: [u32; Table::ALL.len()],
    /// Next `dpl_ord` per table.
    ord: [i64; Table::ALL.len()],
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: what.into(),
        source,
    }
}

impl StageState {
    fn write(&mut self, batch: &RowBatch) -> Result<Vec<Finished>, Error> {
        let schema = self.schema.clone();
        let columns = schema.columns(batch.table);
        check_shape(columns, batch)?;
        let t = batch.table as usize;
        let lanes = self.lanes.get(t).map_or(1, Vec::len).max(1);
        let lane_ix = self.next_lane.get(t).copied().unwrap_or(0) % lanes;
        if let Some(n) = self.next_lane.get_mut(t) {
            *n = (lane_ix + 1) % lanes;
        }
        let mut done = Vec::new();
        for row in batch.values.chunks_exact(columns.len()) {
            self.row.clear();
            self.encoder
                .encode_row(batch.table, columns, row, &mut self.row)?;
            self.row.pop();
            let ord = self.ord.get(t).copied().unwrap_or(0);
            if let Some(o) = self.ord.get_mut(t) {
                *o += 1;
            }
            let _ = writeln!(self.row, ",{ord}");
            let (opts_c, level, part_bytes) =
                (self.opts.compression, self.opts.level, self.opts.part_bytes);
            let slot = self
                .lanes
                .get_mut(t)
                .and_then(|l| l.get_mut(lane_ix))
                .ok_or(Error::State("unknown staging lane"))?;
            if slot.is_none() {
                *slot = Some(Lane {
                    z: Compressor::new(opts_c, level)?,
                    raw_bytes: 0,
                    rows: 0,
                });
            }
            let lane = slot.as_mut().ok_or(Error::State("lane not open"))?;
            lane.z.write_all(&self.row).map_err(io_err("compress"))?;
            lane.raw_bytes += self.row.len() as u64;
            lane.rows += 1;
            if lane.raw_bytes >= part_bytes {
                done.push(self.close(batch.table, lane_ix)?);
            }
        }
        // Bound memory: upload the largest lane early while all buffer too much.
        while self.buffered() > MAX_BUFFERED_BYTES {
            let Some((tt, l)) = self.largest() else { break };
            done.push(self.close(tt, l)?);
        }
        Ok(done)
    }

    fn buffered(&self) -> u64 {
        self.lanes
            .iter()
            .flatten()
            .flatten()
            .map(|l| l.z.compressed_len() as u64)
            .sum()
    }

    fn largest(&self) -> Option<(Table, usize)> {
        let mut best: Option<(Table, usize, usize)> = None;
        for t in Table::ALL {
            for (i, l) in self.lanes.get(t as usize)?.iter().enumerate() {
                if let Some(l) = l {
                    let n = l.z.compressed_len();
                    if best.is_none_or(|b| n > b.2) {
                        best = Some((t, i, n));
                    }
                }
            }
        }
        best.map(|(t, i, _)| (t, i))
    }

    fn close(&mut self, table: Table, lane_ix: usize) -> Result<Finished, Error> {
        let t = table as usize;
        let lane = self
            .lanes
            .get_mut(t)
            .and_then(|l| l.get_mut(lane_ix))
            .and_then(Option::take)
            .ok_or(Error::State("closing a lane that is not open"))?;
        let n = self.next_part.get(t).copied().unwrap_or(0);
        if let Some(p) = self.next_part.get_mut(t) {
            *p += 1;
        }
        let key = format!(
            "{}{}/part-{n:05}.csv.{}",
            self.prefix,
            table.name(),
            self.opts.compression.extension()
        );
        let body = lane.z.finish().map_err(io_err("compress"))?;
        Ok(Finished {
            table,
            key,
            body,
            rows: lane.rows,
        })
    }

    fn close_all(&mut self) -> Result<Vec<Finished>, Error> {
        let mut out = Vec::new();
        for t in Table::ALL {
            let n = self.lanes.get(t as usize).map_or(0, Vec::len);
            for i in 0..n {
                let open = self
                    .lanes
                    .get(t as usize)
                    .and_then(|l| l.get(i))
                    .is_some_and(Option::is_some);
                if open {
                    out.push(self.close(t, i)?);
                }
            }
        }
        Ok(out)
    }
}

/// A run being staged. Dropping it leaves what was uploaded for the next run's sweep; call
/// [`RunStage::discard`] to delete it now.
pub struct RunStage {
    stager: S3Stager,
    run_id: String,
    prefix: String,
    /// `None` only while a blocking task holds it.
    state: Option<Box<StageState>>,
    /// Uploaded parts per table, indexed by `Table as usize`.
    parts: Vec<Vec<StagedPart>>,
}

impl std::fmt::Debug for RunStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStage")
            .field("run_id", &self.run_id)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))
}

impl RunStage {
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// `<prefix><run_id>/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn with_state<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut StageState) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let mut state = self
            .state
            .take()
            .ok_or(Error::State("staging used after a failure"))?;
        let (state, r) = blocking(move || {
            let r = f(&mut state);
            (state, r)
        })
        .await?;
        if r.is_ok() {
            self.state = Some(state);
        }
        r
    }

    /// Encodes, compresses and (when parts fill) uploads one batch.
    pub async fn write(&mut self, batch: RowBatch) -> Result<(), Error> {
        let done = self.with_state(move |s| s.write(&batch)).await?;
        self.upload(done).await
    }

    async fn upload(&mut self, done: Vec<Finished>) -> Result<(), Error> {
        for f in done {
            let bytes = f.body.len() as u64;
            let ct = match self.stager.opts.compression {
                Compression::Gzip => "application/gzip",
                Compression::Zstd => "application/zstd",
            };
            self.stager.put(&f.key, f.body, ct).await?;
            if let Some(p) = self.parts.get_mut(f.table as usize) {
                p.push(StagedPart {
                    key: f.key,
                    bytes,
                    rows: f.rows,
                });
            }
        }
        Ok(())
    }

    /// Uploads the open parts and one manifest per table with rows; returns the staged
    /// tables (in `Table::ALL` order) and the encoder's counts.
    pub async fn finish(&mut self) -> Result<(Vec<StagedTable>, EncodeStats), Error> {
        let (done, stats) = self
            .with_state(|s| Ok((s.close_all()?, s.encoder.take_stats())))
            .await?;
        self.upload(done).await?;
        let bucket = self.stager.opts.bucket.clone();
        let mut out = Vec::new();
        for t in Table::ALL {
            let parts = self.parts.get(t as usize).cloned().unwrap_or_default();
            if parts.is_empty() {
                continue;
            }
            let manifest_key = format!("{}{}.manifest", self.prefix, t.name());
            let body = manifest(&bucket, &parts)?;
            self.stager
                .put(&manifest_key, body, "application/json")
                .await?;
            out.push(StagedTable {
                table: t,
                manifest_url: format!("s3://{bucket}/{manifest_key}"),
                manifest_key,
                rows: parts.iter().map(|p| p.rows).sum(),
                parts,
            });
        }
        Ok((out, stats))
    }

    /// Every key this run uploaded so far (parts and manifests once finished).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.parts.iter().flatten().map(|p| p.key.clone()).collect();
        for t in Table::ALL {
            if self.parts.get(t as usize).is_some_and(|p| !p.is_empty()) {
                keys.push(format!("{}{}.manifest", self.prefix, t.name()));
            }
        }
        keys
    }

    /// Deletes what the run uploaded (manifests that were never written are skipped by
    /// S3's delete).
    pub async fn discard(self) -> Result<(), Error> {
        let keys = self.keys();
        self.stager.delete_keys(&keys).await
    }
}

/// The manifest JSON of a table's parts.
pub fn manifest(bucket: &str, parts: &[StagedPart]) -> Result<Vec<u8>, Error> {
    let entries: Vec<serde_json::Value> = parts
        .iter()
        .map(|p| {
            serde_json::json!({
                "url": format!("s3://{bucket}/{}", p.key),
                "mandatory": true,
                "meta": {"content_length": p.bytes},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "entries": entries }))
        .map_err(|e| Error::Config(format!("manifest: {e}")))
}
