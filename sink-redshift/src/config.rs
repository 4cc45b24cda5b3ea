//! Sink configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::sql::ViewOptions;
use crate::tls::SslMode;

/// Which sink loads the rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Gzip CSV parts in one directory per table, plus a ledger file; needs no service.
    #[default]
    Files,
    /// A PostgreSQL database, loaded with `COPY FROM STDIN` and merged by primary key.
    Postgres,
    /// Amazon Redshift: compressed CSV parts staged in S3, `COPY ... MANIFEST`, merged by
    /// primary key.
    Redshift,
    /// Discards every row (benchmarks).
    Null,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Files => "files",
            SinkKind::Postgres => "postgres",
            SinkKind::Redshift => "redshift",
            SinkKind::Null => "null",
        }
    }
}

/// Compression of the Redshift sink's staged CSV parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (`COPY ... GZIP`), default level 1.
    #[default]
    Gzip,
    /// Zstandard (`COPY ... ZSTD`), default level 3.
    Zstd,
}

impl Compression {
    /// The level used when `compression_level` is not set: wide rows cost more CPU to
    /// compress than to decode, so the defaults are the fast ends.
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Gzip => 1,
            Compression::Zstd => 3,
        }
    }

    /// The file name extension of a part.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }

    /// The COPY keyword.
    pub fn copy_keyword(self) -> &'static str {
        match self {
            Compression::Gzip => "GZIP",
            Compression::Zstd => "ZSTD",
        }
    }
}

/// Server-side encryption of staged objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sse {
    /// No `x-amz-server-side-encryption` header (the bucket's default encryption applies).
    #[default]
    None,
    /// SSE-S3 (`AES256`).
    S3,
    /// SSE-KMS (`aws:kms`), with `sse_kms_key_id` or the account's default KMS key.
    Kms,
}

/// The `[sink]` section of the configuration. `Debug` shows secrets as `***` and URLs
/// without their password.
/// `Serialize` writes every key (secrets included) for `dpl config`, which redacts them.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// `files` (default), `postgres`, `redshift` or `null`.
    pub kind: SinkKind,
    /// Output directory of the files sink (default `dpl-out`).
    pub out: PathBuf,
    /// Rows per gzip CSV part of the files sink (default 500,000).
    pub part_rows: usize,
    /// `postgres://user@host:port/db` of the postgres sink.
    pub pg_url: Option<String>,
    /// Warehouse schema holding the tables (default `public`): ASCII letters, digits and `_`.
    pub schema: String,
    /// Connections in the postgres pool (default 4).
    pub pool_size: u32,
    /// TLS of the postgres and redshift connections: `disable`, `prefer`, `require` or
    /// `verify-full` (see the `tls` notes in the crate docs). Default: the URL's `sslmode`
    /// parameter, else `prefer` for postgres and `require` for redshift.
    pub sslmode: Option<SslMode>,
    /// `postgres://user:password@cluster.xxxx.region.redshift.amazonaws.com:5439/db` of the
    /// redshift sink (Redshift speaks the PostgreSQL wire protocol).
    pub redshift_url: Option<String>,
    /// Bucket for the redshift sink's staged CSV parts and manifests.
    pub staging_bucket: Option<String>,
    /// Key prefix under `staging_bucket` (default `dpl-staging/`); each run stages under
    /// `<staging_prefix><run_id>/`.
    pub staging_prefix: String,
    /// ARN of the IAM role Redshift assumes to read the staged objects
    /// (`arn:aws:iam::123456789012:role/dpl-copy`). Either this or the keys below.
    pub iam_role: Option<String>,
    /// Static AWS keys: used to upload the staged objects and, when `iam_role` is not set,
    /// in COPY's `CREDENTIALS` clause. When unset, uploads use the standard AWS chain.
    pub access_key_id: Option<String>,
    /// Secret of `access_key_id`.
    pub secret_access_key: Option<String>,
    /// Session token of temporary keys.
    pub session_token: Option<String>,
    /// Region of the staging bucket (COPY's `REGION` too, needed when it differs from the
    /// cluster's); default: the AWS chain's region, else `us-east-1`.
    pub region: Option<String>,
    /// An S3-compatible endpoint for staging (tests); implies path-style addressing.
    pub s3_endpoint_url: Option<String>,
    /// `gzip` (default) or `zstd`.
    pub compression: Compression,
    /// Compression level; default 1 for gzip (1..=9), 3 for zstd (1..=22).
    pub compression_level: Option<i32>,
    /// Target uncompressed bytes of one staged part (default 64 MiB).
    pub part_bytes: u64,
    /// Minimum parts per table, so COPY spreads over every slice; default: the cluster's
    /// slice count (`SELECT count(*) FROM stv_slices`). A table with fewer rows than this
    /// many batches has fewer parts.
    pub parts_per_table: Option<u32>,
    /// Server-side encryption of staged objects: `none` (default), `s3` or `kms`.
    pub sse: Sse,
    /// KMS key id or ARN for `sse = "kms"`; default: the account's `aws/s3` key.
    pub sse_kms_key_id: Option<String>,
    /// Settings of the `parsely_users_current` view. Not read from the `[sink]` section:
    /// the binary copies them from the pipeline settings (`rolling_window_days`,
    /// `rolling_loyalty_pageviews`, `timezone`); defaults are SPEC.md's.
    #[serde(skip)]
    pub view: ViewOptions,
}

fn default_out() -> PathBuf {
    PathBuf::from("dpl-out")
}
fn default_part_rows() -> usize {
    500_000
}
fn default_schema() -> String {
    "public".to_owned()
}
fn default_pool_size() -> u32 {
    4
}
fn default_staging_prefix() -> String {
    "dpl-staging/".to_owned()
}
/// 64 MiB.
const DEFAULT_PART_BYTES: u64 = 64 << 20;

/// A connection URL with its password replaced by `***`: the `user:password@` part of a
/// `scheme://` URL and any `password=` parameter (query string or key-value form).
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let start = scheme_end + 3 + colon + 1;
            let end = scheme_end + 3 + at;
            out.replace_range(start..end, "***");
        }
    }
    let mut from = 0;
    while let Some(i) = out[from..].to_ascii_lowercase().find("password=") {
        let start = from + i + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
        from = start + 3;
    }
    out
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("SinkConfig")
            .field("kind", &self.kind)
            .field("out", &self.out)
            .field("part_rows", &self.part_rows)
            .field("pg_url", &self.pg_url.as_deref().map(redact_url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("sslmode", &self.sslmode)
            .field(
                "redshift_url",
                &self.redshift_url.as_deref().map(redact_url),
            )
            .field("staging_bucket", &self.staging_bucket)
            .field("staging_prefix", &self.staging_prefix)
            .field("iam_role", &self.iam_role)
            .field("access_key_id", &secret(&self.access_key_id))
            .field("secret_access_key", &secret(&self.secret_access_key))
            .field("session_token", &secret(&self.session_token))
            .field("region", &self.region)
            .field("s3_endpoint_url", &self.s3_endpoint_url)
            .field("compression", &self.compression)
            .field("compression_level", &self.compression_level)
            .field("part_bytes", &self.part_bytes)
            .field("parts_per_table", &self.parts_per_table)
            .field("sse", &self.sse)
            .field("sse_kms_key_id", &self.sse_kms_key_id)
            .field("view", &self.view)
            .finish()
    }
}

impl Default for SinkConfig {
    fn default() -> SinkConfig {
        SinkConfig {
            kind: SinkKind::default(),
            out: default_out(),
            part_rows: default_part_rows(),
            pg_url: None,
            schema: default_schema(),
            pool_size: default_pool_size(),
            sslmode: None,
            redshift_url: None,
            staging_bucket: None,
            staging_prefix: default_staging_prefix(),
            iam_role: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            region: None,
            s3_endpoint_url: None,
            compression: Compression::default(),
            compression_level: None,
            part_bytes: DEFAULT_PART_BYTES,
            parts_per_table: None,
            sse: Sse::default(),
            sse_kms_key_id: None,
            view: ViewOptions::default(),
        }
    }
}

impl SinkConfig {
    /// Checks the values every sink kind relies on; the message names the key.
    pub fn validate(&self) -> Result<(), Error> {
        crate::sql::validate_schema_name(&self.schema)?;
        match self.kind {
            SinkKind::Files => {
                if self.part_rows == 0 {
                    return Err(Error::Config(
                        "sink.part_rows must be at least 1".to_owned(),
                    ));
                }
                if self.out.as_os_str().is_empty() {
                    return Err(Error::Config("sink.out must name a directory".to_owned()));
                }
            }
            SinkKind::Postgres => {
                if self.pg_url.as_deref().is_none_or(str::is_empty) {
                    return Err(Error::Config(
                        "sink.pg_url is required for the postgres sink (postgres://user@host:port/db)"
                            .to_owned(),
                    ));
                }
                if self.pool_size == 0 {
                    return Err(Error::Config(
                        "sink.pool_size must be at least 1".to_owned(),
                    ));
                }
            }
            SinkKind::Redshift => self.validate_redshift()?,
            SinkKind::Null => {}
        }
        Ok(())
    }

    /// The compression level in effect.
    pub fn effective_compression_level(&self) -> i32 {
        self.compression_level
            .unwrap_or_else(|| self.compression.default_level())
    }

    fn validate_redshift(&self) -> Result<(), Error> {
        let cfg = |m: &str| Err(Error::Config(m.to_owned()));
        if self.redshift_url.as_deref().is_none_or(str::is_empty) {
            return cfg("sink.redshift_url is required for the redshift sink \
                 (postgres://user:password@cluster:5439/db)");
        }
        match self.staging_bucket.as_deref() {
            None | Some("") => return cfg("sink.staging_bucket is required for the redshift sink"),
            Some(b) => crate::redshift_sql::validate_bucket(b)?,
        }
        crate::redshift_sql::validate_prefix(&self.staging_prefix)?;
        let keys = self.access_key_id.is_some() || self.secret_access_key.is_some();
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return cfg("sink.access_key_id and sink.secret_access_key go together");
        }
        if self.session_token.is_some() && !keys {
            return cfg("sink.session_token needs sink.access_key_id and sink.secret_access_key");
        }
        match &self.iam_role {
            Some(role) => crate::redshift_sql::validate_role_arn(role)?,
            None if !keys => {
                return cfg(
                    "the redshift sink needs sink.iam_role (an IAM role ARN Redshift can \
                     assume) or sink.access_key_id and sink.secret_access_key for COPY",
                );
            }
            None => {}
        }
        if let Some(r) = &self.region {
            crate::redshift_sql::validate_region(r)?;
        }
        if let Some(url) = &self.s3_endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return cfg("sink.s3_endpoint_url must start with http:// or https://");
        }
        let level = self.effective_compression_level();
        let range = match self.compression {
            Compression::Gzip => 1..=9,
            Compression::Zstd => 1..=22,
        };
        if !range.contains(&level) {
            return Err(Error::Config(format!(
                "sink.compression_level {level} is out of range {}..={} for {:?}",
                range.start(),
                range.end(),
                self.compression
            )));
        }
        if self.part_bytes < 1024 {
            return cfg("sink.part_bytes must be at least 1024");
        }
        if self.parts_per_table == Some(0) {
            return cfg("sink.parts_per_table must be at least 1");
        }
        match (self.sse, &self.sse_kms_key_id) {
            (Sse::Kms, Some(k)) if k.is_empty() => {
                return cfg("sink.sse_kms_key_id must not be empty");
            }
            (Sse::None | Sse::S3, Some(_)) => {
                return cfg("sink.sse_kms_key_id needs sse = \"kms\"");
            }
            _ => {}
        }
        Ok(())
    }
}
