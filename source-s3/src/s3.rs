//! The `s3` source: DPL objects in an S3 bucket (or an S3-compatible store).
//!
//! What it does:
//! - [`Source::list`] sends one paginated `ListObjectsV2` per day of the range, with the prefix
//!   `<prefix>events/YYYY/MM/DD/`, and returns every object under it (at any depth), sorted by
//!   key bytes. [`ObjectMeta::key`] is the key without the configured `prefix`, so it always
//!   starts with `events/`, like the keys of the local source; `etag` has no quotes. A store
//!   that leaves ETags out of its listings (some S3-compatible servers do) gets one
//!   `HeadObject` per such object, a few at a time, so the ledger can still tell a changed
//!   object from a loaded one.
//! - [`Source::fetch`] sends `GetObject` with `If-Match: <listed etag>` and reads the body to
//!   the end. Throttling (503 `SlowDown`, 429), other 5xx answers, timeouts and dropped
//!   connections are retried with exponential backoff and full jitter (a random pause between
//!   zero and `initial_backoff_ms * 2^(n-1)`, at most 20 s), up to `max_attempts` requests per
//!   object. A body cut midway is resumed with a ranged `GET` (`Range: bytes=<read>-`, same
//!   `If-Match`) and appended to what was read, so no byte is lost or read twice; an object
//!   that changed since it was listed fails with [`Error::S3Changed`] instead of being spliced
//!   from two versions. The result must be exactly the listed size.
//! - Listing pages are retried the same way, each page up to `max_attempts` requests.
//! - Timeouts (clients built by [`S3Source::new`]): 10 s to connect, 60 s for an answer's
//!   headers; a body that stalls is ended by the SDK's stalled-stream protection and resumed.
//!   A client given to [`S3Source::with_client`] keeps its own timeouts.
//! - An object without any ETag (neither in the listing nor from `HeadObject`) is read
//!   without `If-Match`, so a change during a resumed read cannot be seen; S3 always has one.
//!
//! What it does not do: decompress or parse (that is `dpl-decode`; a gzip object's own CRC
//! catches corruption a resumed read could not see), decide which objects were loaded before
//! (the ledger), write or delete anything in the bucket. The AWS SDK's own retry layer is
//! turned off for these requests so that `max_attempts` means what it says.
//!
//! How the client is built by [`S3Source::new`]:
//! - Credentials: `access_key_id` + `secret_access_key` (+ `session_token`) when given;
//!   otherwise the standard AWS chain of `aws-config` (environment variables, the shared
//!   config and credentials files with `AWS_PROFILE`, SSO, web identity, ECS and EC2 instance
//!   roles). Secrets never appear in errors or in `Debug` output.
//! - Region: `region` when given; otherwise the chain's region (`AWS_REGION`, the profile,
//!   instance metadata); otherwise `us-east-1`.
//! - Endpoint: `endpoint_url` points at an S3-compatible store (MinIO, Ceph, a test server)
//!   and implies path-style addressing (`<endpoint>/<bucket>/<key>`); `force_path_style`
//!   asks for path style with the AWS endpoint too.
//! - `prefix` is the part of the key before `events/`; a missing trailing `/` is added
//!   (`dpl` means the folder `dpl/`) and a leading `/` is dropped.

use std::fmt;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use dpl_core::{DayRange, ObjectMeta, Source};
use futures_util::StreamExt;
use rand::Rng;

use crate::error::Error;

/// The longest pause between two attempts, whatever the attempt number.
const MAX_BACKOFF_MS: u64 = 20_000;
/// Clients built by [`S3Source::new`]: how long to wait for a connection, and for the answer
/// to one request up to its headers (a body streams for as long as it makes progress).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// `HeadObject` requests in flight when a listing lacks ETags.
const HEAD_CONCURRENCY: usize = 8;

/// Where the DPL objects are and how to reach them (`[source.s3]` in the config).
#[derive(Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// The bucket name, e.g. `parsely-dw-example` (no `s3://`). Required.
    pub bucket: String,
    /// The key prefix before `events/` (default empty: `events/` at the bucket root).
    pub prefix: String,
    /// The bucket's region; default: the AWS chain's region, else `us-east-1`.
    pub region: Option<String>,
    /// An S3-compatible endpoint such as `http://127.0.0.1:9000`; implies path-style.
    pub endpoint_url: Option<String>,
    /// Address buckets as `<endpoint>/<bucket>` rather than `<bucket>.<endpoint>`.
    pub force_path_style: bool,
    /// Static credentials; when unset, the standard AWS credential chain is used.
    pub access_key_id: Option<String>,
    /// Goes with `access_key_id`.
    pub secret_access_key: Option<String>,
    /// For temporary credentials, with the two above.
    pub session_token: Option<String>,
    /// Requests per object (and per listing page) before giving up (default 5, at least 1).
    pub max_attempts: u32,
    /// The first retry waits up to this long, each next one up to twice as long (default 200).
    pub initial_backoff_ms: u64,
}

fn default_max_attempts() -> u32 {
    5
}

fn default_initial_backoff_ms() -> u64 {
    200
}

impl Default for S3Config {
    fn default() -> S3Config {
        S3Config {
            bucket: String::new(),
            prefix: String::new(),
            region: None,
            endpoint_url: None,
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
        }
    }
}

/// Shows whether credentials are set, never their values.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &redact(&self.access_key_id))
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .finish()
    }
}

impl S3Config {
    /// Checks what can be checked before any request.
    fn validate(&self) -> Result<(), Error> {
        let bad = |message: String| Err(Error::S3Config { message });
        let bucket = self.bucket.as_str();
        if bucket.is_empty() {
            return bad(
                "source.s3.bucket is empty: name the bucket, e.g. parsely-dw-example".into(),
            );
        }
        if bucket.contains('/') || bucket.contains(':') {
            return bad(format!(
                "source.s3.bucket {bucket:?} must be a bare bucket name such as parsely-dw-example \
                 (no s3://, no path: put a folder in source.s3.prefix)"
            ));
        }
        if self.max_attempts == 0 {
            return bad("source.s3.max_attempts must be at least 1".into());
        }
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return bad(format!(
                "source.s3.endpoint_url {url:?} must start with http:// or https://"
            ));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), Some(_)) => Ok(()),
            (None, None) if self.session_token.is_none() => Ok(()),
            _ => bad(
                "source.s3.access_key_id and secret_access_key go together (and session_token \
                 needs both); leave all unset to use the AWS credential chain"
                    .into(),
            ),
        }
    }
}

/// Lists and reads DPL objects in S3. Cheap to share behind an `Arc`; requests from several
/// tasks run concurrently on the one client.
#[derive(Clone)]
pub struct S3Source {
    client: Client,
    bucket: String,
    /// Normalized: empty or ending in `/`.
    prefix: String,
    max_attempts: u32,
    initial_backoff_ms: u64,
}

impl fmt::Debug for S3Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Source")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .finish_non_exhaustive()
    }
}

/// How one request ended when it did not succeed.
enum Attempt {
    /// Worth another try (throttling, 5xx, timeout, dropped connection); the message says why.
    Transient(String),
    /// Stops the fetch or listing now; the message says why.
    Stop(String),
    /// Stops the fetch now with this error.
    Fatal(Error),
}

/// Counts the requests of one operation and sleeps between them.
struct Tries {
    made: u32,
    max: u32,
    initial_backoff_ms: u64,
}

impl Tries {
    fn new(source: &S3Source) -> Tries {
        Tries {
            made: 0,
            max: source.max_attempts,
            initial_backoff_ms: source.initial_backoff_ms,
        }
    }

    /// Called after a transient failure: sleeps and returns true when another request may be
    /// made, false when `max_attempts` requests were made.
    async fn again(&mut self, what: &str, message: &str) -> bool {
        if self.made >= self.max {
            return false;
        }
        let exp = 1u64 << self.made.saturating_sub(1).min(30);
        let cap = self
            .initial_backoff_ms
            .saturating_mul(exp)
            .min(MAX_BACKOFF_MS);
        let pause = rand::rng().random_range(0..=cap);
        tracing::warn!(
            attempt = self.made,
            max_attempts = self.max,
            pause_ms = pause,
            "{what} failed, retrying: {message}"
        );
        tokio::time::sleep(Duration::from_millis(pause)).await;
        true
    }

    fn start(&mut self) {
        self.made = self.made.saturating_add(1);
    }
}

/// Sorts an SDK error into retry-or-stop, with its full message.
fn classify<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> (Kind, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = DisplayErrorContext(err).to_string();
    let kind = match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Kind::Transient,
        SdkError::DispatchFailure(d) if !d.is_user() => Kind::Transient,
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default();
            if status == 412 || code == "PreconditionFailed" {
                Kind::Changed
            } else if status >= 500
                || status == 429
                || matches!(
                    code,
                    "SlowDown"
                        | "Throttling"
                        | "ThrottlingException"
                        | "RequestTimeout"
                        | "InternalError"
                        | "ServiceUnavailable"
                )
            {
                Kind::Transient
            } else {
                Kind::Fatal
            }
        }
        _ => Kind::Fatal,
    };
    (kind, message)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Transient,
    Changed,
    Fatal,
}

fn unquote(etag: &str) -> &str {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag)
}

fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim_start_matches('/');
    if p.is_empty() || p.ends_with('/') {
        p.to_owned()
    } else {
        format!("{p}/")
    }
}

impl S3Source {
    /// Builds a client from the config (credentials, region and endpoint as the module docs
    /// say). Fails on a config mistake; does not contact S3, so bad credentials or a wrong
    /// bucket show up at the first `list`.
    pub async fn new(config: &S3Config) -> Result<S3Source, Error> {
        config.validate()?;
        let region = match &config.region {
            Some(r) => RegionProviderChain::first_try(Region::new(r.clone())),
            None => {
                RegionProviderChain::default_provider().or_else(Region::from_static("us-east-1"))
            }
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            let creds = Credentials::new(
                id.clone(),
                secret.clone(),
                config.session_token.clone(),
                None,
                "dpl-source-config",
            );
            loader = loader.credentials_provider(creds);
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        // No read timeout on bodies: the SDK's stalled-stream protection ends a body that
        // stops making progress, and the retry loop resumes it.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        loader = loader.timeout_config(timeouts);
        let shared = loader.load().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.force_path_style || config.endpoint_url.is_some())
            .build();
        Ok(S3Source::with_client(Client::from_conf(s3_config), config))
    }

    /// For tests and embedding: an already-built client. Uses `bucket`, `prefix`,
    /// `max_attempts` and `initial_backoff_ms` of `config`, nothing else, and does not
    /// validate (a `max_attempts` of 0 counts as 1).
    pub fn with_client(client: Client, config: &S3Config) -> S3Source {
        S3Source {
            client,
            bucket: config.bucket.clone(),
            prefix: normalize_prefix(&config.prefix),
            max_attempts: config.max_attempts.max(1),
            initial_backoff_ms: config.initial_backoff_ms,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The normalized prefix: empty or ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Our retries replace the SDK's, whatever the client was built with.
    fn no_sdk_retry() -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::config::Builder::default().retry_config(RetryConfig::disabled())
    }

    async fn list_page(
        &self,
        prefix: &str,
        token: Option<&str>,
    ) -> Result<ListObjectsV2Output, Attempt> {
        let result = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_continuation_token(token.map(str::to_owned))
            .customize()
            .config_override(Self::no_sdk_retry())
            .send()
            .await;
        result.map_err(|e| match classify(&e) {
            (Kind::Transient, message) => Attempt::Transient(message),
            (_, message) => Attempt::Stop(message),
        })
    }

    fn list_error(&self, prefix: &str, attempts: u32, message: String) -> Error {
        Error::S3List {
            bucket: self.bucket.clone(),
            prefix: prefix.to_owned(),
            attempts,
            message,
        }
    }

    /// Every object under one day prefix, keys without `self.prefix`.
    async fn list_day(&self, day_prefix: &str, out: &mut Vec<ObjectMeta>) -> Result<(), Error> {
        let mut token: Option<String> = None;
        loop {
            let mut tries = Tries::new(self);
            let page = loop {
                tries.start();
                match self.list_page(day_prefix, token.as_deref()).await {
                    Ok(page) => break page,
                    Err(Attempt::Fatal(e)) => return Err(e),
                    Err(Attempt::Stop(message)) => {
                        return Err(self.list_error(day_prefix, tries.made, message));
                    }
                    Err(Attempt::Transient(message)) => {
                        let what = format!("listing s3://{}/{day_prefix}", self.bucket);
                        if !tries.again(&what, &message).await {
                            return Err(self.list_error(day_prefix, tries.made, message));
                        }
                    }
                }
            };
            for object in page.contents() {
                let Some(full) = object.key() else { continue };
                let Some(key) = full.strip_prefix(self.prefix.as_str()) else {
                    tracing::warn!(
                        key = full,
                        "listing returned a key outside the prefix; skipped"
                    );
                    continue;
                };
                let size = u64::try_from(object.size().unwrap_or(0)).map_err(|_| {
                    self.list_error(day_prefix, 1, format!("object {full} has a negative size"))
                })?;
                let etag = object
                    .e_tag()
                    .map(|t| unquote(t).to_owned())
                    .unwrap_or_default();
                out.push(ObjectMeta {
                    key: key.to_owned(),
                    size,
                    etag,
                });
            }
            match (page.is_truncated(), page.next_continuation_token()) {
                (Some(true), Some(next)) => token = Some(next.to_owned()),
                (Some(true), None) => {
                    return Err(self.list_error(
                        day_prefix,
                        1,
                        "the listing is truncated but has no continuation token".into(),
                    ));
                }
                _ => return Ok(()),
            }
        }
    }

    /// The ETag of one object by `HeadObject`, for listings that leave it out.
    async fn head_etag(&self, key: &str) -> Result<String, Error> {
        let full = self.full_key(key);
        let mut tries = Tries::new(self);
        loop {
            tries.start();
            let result = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&full)
                .customize()
                .config_override(Self::no_sdk_retry())
                .send()
                .await;
            match result {
                Ok(head) => {
                    return Ok(head
                        .e_tag()
                        .map(|t| unquote(t).to_owned())
                        .unwrap_or_default());
                }
                Err(e) => {
                    let (kind, message) = classify(&e);
                    if kind != Kind::Transient
                        || !tries
                            .again(&format!("HEAD s3://{}/{full}", self.bucket), &message)
                            .await
                    {
                        return Err(self.get_error(&full, tries.made, message));
                    }
                }
            }
        }
    }

    fn get_error(&self, full_key: &str, attempts: u32, message: String) -> Error {
        Error::S3Get {
            bucket: self.bucket.clone(),
            key: full_key.to_owned(),
            attempts,
            message,
        }
    }

    /// One `GetObject`: the whole object when `buf` is empty, else the rest after `buf`.
    /// Appends what arrives to `buf`, also when the body breaks midway.
    async fn get_once(
        &self,
        full: &str,
        object: &ObjectMeta,
        buf: &mut Vec<u8>,
    ) -> Result<(), Attempt> {
        let read = buf.len() as u64;
        if read >= object.size {
            // Everything arrived before but the request still failed (say a checksum
            // mismatch at the end): start over rather than trust those bytes.
            buf.clear();
        }
        let resume_at = buf.len() as u64;
        let mut request = self.client.get_object().bucket(&self.bucket).key(full);
        if !object.etag.is_empty() {
            request = request.if_match(format!("\"{}\"", object.etag));
        }
        if resume_at > 0 {
            request = request.range(format!("bytes={resume_at}-"));
        }
        let output = request
            .customize()
            .config_override(Self::no_sdk_retry())
            .send()
            .await
            .map_err(|e| match classify(&e) {
                (Kind::Transient, message) => Attempt::Transient(message),
                (Kind::Changed, _) => Attempt::Fatal(self.changed(full, object, "another version")),
                (Kind::Fatal, message) => Attempt::Stop(message),
            })?;
        // The server may ignore If-Match (some S3-compatible stores do): check again here.
        if let Some(found) = output.e_tag().map(unquote)
            && !object.etag.is_empty()
            && found != object.etag
        {
            return Err(Attempt::Fatal(self.changed(full, object, found)));
        }
        if resume_at > 0 {
            match output.content_range() {
                Some(range) if range.starts_with(&format!("bytes {resume_at}-")) => {}
                // A server that ignores ranges sends the whole object again.
                None => buf.clear(),
                Some(range) => {
                    return Err(Attempt::Stop(format!(
                        "asked for bytes {resume_at}- and got Content-Range {range}"
                    )));
                }
            }
        }
        let mut body = output.body;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => buf.extend_from_slice(&bytes),
                Err(e) => {
                    return Err(Attempt::Transient(format!(
                        "the body broke after {} of {} bytes: {}",
                        buf.len(),
                        object.size,
                        DisplayErrorContext(&e)
                    )));
                }
            }
        }
        Ok(())
    }

    fn changed(&self, full: &str, object: &ObjectMeta, found: &str) -> Error {
        Error::S3Changed {
            bucket: self.bucket.clone(),
            key: full.to_owned(),
            listed: object.etag.clone(),
            found: found.to_owned(),
        }
    }
}

impl Source for S3Source {
    type Error = Error;

    async fn list(&self, range: DayRange) -> Result<Vec<ObjectMeta>, Error> {
        let mut out = Vec::new();
        for day in range.days() {
            let day_prefix = format!("{}{}", self.prefix, DayRange::prefix(day));
            self.list_day(&day_prefix, &mut out).await?;
        }
        let missing: Vec<usize> = (0..out.len())
            .filter(|&i| out.get(i).is_some_and(|o| o.etag.is_empty()))
            .collect();
        if !missing.is_empty() {
            tracing::debug!(
                count = missing.len(),
                "the listing has no ETags; asking HeadObject"
            );
            let keys: Vec<(usize, String)> = missing
                .into_iter()
                .filter_map(|i| out.get(i).map(|o| (i, o.key.clone())))
                .collect();
            let mut heads = futures_util::stream::iter(keys)
                .map(|(i, key)| async move { (i, self.head_etag(&key).await) })
                .buffer_unordered(HEAD_CONCURRENCY);
            while let Some((i, etag)) = heads.next().await {
                if let Some(o) = out.get_mut(i) {
                    o.etag = etag?;
                }
            }
        }
        out.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        Ok(out)
    }

    async fn fetch(&self, object: &ObjectMeta) -> Result<bytes::Bytes, Error> {
        let full = self.full_key(&object.key);
        // Capacity is a hint from the listing; cap it so a bogus size cannot reserve memory.
        let hint = usize::try_from(object.size.min(256 << 20)).unwrap_or(0);
        let mut buf = Vec::with_capacity(hint);
        let mut tries = Tries::new(self);
        loop {
            tries.start();
            match self.get_once(&full, object, &mut buf).await {
                Ok(()) => break,
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Stop(message)) => {
                    return Err(self.get_error(&full, tries.made, message));
                }
                Err(Attempt::Transient(message)) => {
                    let what = format!("GET s3://{}/{full}", self.bucket);
                    if !tries.again(&what, &message).await {
                        return Err(self.get_error(&full, tries.made, message));
                    }
                }
            }
        }
        let read = buf.len() as u64;
        if read != object.size {
            return Err(Error::S3Size {
                bucket: self.bucket.clone(),
                key: full,
                listed: object.size,
                read,
            });
        }
        Ok(bytes::Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(toml_text: &str) -> Result<S3Config, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c = parse("bucket = \"parsely-dw-example\"").unwrap();
        assert_eq!(c.bucket, "parsely-dw-example");
        assert_eq!(c.prefix, "");
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.initial_backoff_ms, 200);
        assert!(!c.force_path_style);
        assert!(c.validate().is_ok());
        let err = parse("bucket = \"b\"\nbuckt = \"x\"").unwrap_err();
        assert!(err.contains("buckt"), "{err}");
    }

    #[test]
    fn config_mistakes_are_refused_before_any_request() {
        let ok = S3Config {
            bucket: "parsely-dw-example".into(),
            ..S3Config::default()
        };
        let cases: Vec<(S3Config, &str)> = vec![
            (
                S3Config {
                    bucket: String::new(),
                    ..ok.clone()
                },
                "bucket is empty",
            ),
            (
                S3Config {
                    bucket: "s3://parsely-dw-x".into(),
                    ..ok.clone()
                },
                "bare bucket name",
            ),
            (
                S3Config {
                    bucket: "b/events".into(),
                    ..ok.clone()
                },
                "bare bucket name",
            ),
            (
                S3Config {
                    max_attempts: 0,
                    ..ok.clone()
                },
                "at least 1",
            ),
            (
                S3Config {
                    endpoint_url: Some("localhost:9000".into()),
                    ..ok.clone()
                },
                "http://",
            ),
            (
                S3Config {
                    access_key_id: Some("AKIA".into()),
                    ..ok.clone()
                },
                "go together",
            ),
            (
                S3Config {
                    secret_access_key: Some("s".into()),
                    ..ok.clone()
                },
                "go together",
            ),
            (
                S3Config {
                    session_token: Some("t".into()),
                    ..ok.clone()
                },
                "go together",
            ),
        ];
        for (config, want) in cases {
            let err = config.validate().map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(want), "{config:?}: {err}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = S3Config {
            bucket: "parsely-dw-example".into(),
            access_key_id: Some("AKIAEXAMPLEKEYID".into()),
            secret_access_key: Some("wJalrXUtnFEMIsecret".into()),
            session_token: Some("FwoGZXIvYXdzEtoken".into()),
            ..S3Config::default()
        };
        let shown = format!("{c:?}");
        for secret in [
            "AKIAEXAMPLEKEYID",
            "wJalrXUtnFEMIsecret",
            "FwoGZXIvYXdzEtoken",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("parsely-dw-example") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn prefixes_and_etags_are_normalized() {
        for (given, want) in [
            ("", ""),
            ("dpl", "dpl/"),
            ("dpl/", "dpl/"),
            ("/a/b", "a/b/"),
            ("/", ""),
        ] {
            assert_eq!(normalize_prefix(given), want, "{given:?}");
        }
        for (given, want) in [
            ("\"abc\"", "abc"),
            ("abc", "abc"),
            ("W/\"abc\"", "abc"),
            ("\"", "\""),
        ] {
            assert_eq!(unquote(given), want, "{given:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_and_stops_at_max_attempts() {
        let mut tries = Tries {
            made: 0,
            max: 3,
            initial_backoff_ms: 1000,
        };
        let mut made = 0;
        loop {
            tries.start();
            made += 1;
            let before = tokio::time::Instant::now();
            if !tries.again("test", "boom").await {
                break;
            }
            // Full jitter: anywhere from 0 to 1000 * 2^(n-1) ms.
            let cap = 1000u64 << (tries.made - 1);
            assert!(
                before.elapsed() <= Duration::from_millis(cap),
                "attempt {}",
                tries.made
            );
        }
        assert_eq!(made, 3);
    }
}
