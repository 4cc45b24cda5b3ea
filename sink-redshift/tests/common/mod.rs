//! Copied from source-s3/tests/common/mod.rs; this copy also logs the SSE headers.
//!
//! An in-process S3 server for tests: s3s-fs over a temp directory, behind a fault layer,
//! served over loopback HTTP on 127.0.0.1:0 with SigV4 checked against fake keys.
//!
//! Copy this file to reuse it. It needs, as dev-dependencies: s3s =0.14.1, s3s-fs =0.14.1,
//! hyper 1 (`server`, `http1`), hyper-util 0.1 (`tokio`), http-body-util 0.1, tokio (`net`),
//! aws-sdk-s3, tempfile, futures-util, bytes, md-5, flate2.
//!
//! ```ignore
//! let server = common::S3Server::start().await;
//! server.write("events/2026/11/01/a.gz", b"...");      // straight into the directory
//! server.faults.add(Target::key("events/2026/11/01/a.gz"), Fault::slow_down(), 2);
//! let client = server.client();
//! ```
#![allow(dead_code, clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};

pub const ACCESS_KEY: &str = "AKIDTESTDPL";
pub const SECRET_KEY: &str = "test-secret-key-dpl";
pub const BUCKET: &str = "parsely-dw-test";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// Which requests a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `GET` of this object (full key, with any prefix).
    Key(String),
    /// `ListObjectsV2` requests (any prefix).
    List,
}

impl Target {
    pub fn key(key: &str) -> Target {
        Target::Key(key.to_owned())
    }
}

/// What the server does instead of answering normally.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and S3 error code, without touching the store.
    Status { status: u16, code: &'static str },
    /// Answer normally but end the body with an error after `after` bytes of it. The bytes
    /// are flushed first (hyper drops buffered bytes when a body fails at once).
    Cut { after: usize },
    /// Like `Cut`, then overwrite the object's file with these bytes (a new version with a
    /// new ETag) before failing the body.
    CutAndReplace { after: usize, with: Vec<u8> },
}

impl Fault {
    pub fn slow_down() -> Fault {
        Fault::Status {
            status: 503,
            code: "SlowDown",
        }
    }
    pub fn internal_error() -> Fault {
        Fault::Status {
            status: 500,
            code: "InternalError",
        }
    }
}

/// One request as the server saw it, for assertions.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// The path without the bucket: the object key, or empty for a bucket request.
    pub key: String,
    pub query: String,
    pub range: Option<String>,
    pub if_match: Option<String>,
    /// `x-amz-server-side-encryption` and its KMS key id header.
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    /// The fault applied, if any.
    pub fault: Option<String>,
}

struct Rule {
    target: Target,
    fault: Fault,
    times: usize,
}

/// The fault rules and the request log, shared by the server and the test.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Seen>>,
}

impl Faults {
    /// Applies `fault` to the next `times` requests matching `target`. Rules are tried in the
    /// order added; a request gets at most one fault.
    pub fn add(&self, target: Target, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            target,
            fault,
            times,
        });
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// The `GET`s of one object so far.
    pub fn gets_of(&self, key: &str) -> Vec<Seen> {
        self.log()
            .into_iter()
            .filter(|s| s.method == "GET" && s.key == key)
            .collect()
    }

    /// The listing requests so far.
    pub fn lists(&self) -> Vec<Seen> {
        self.log()
            .into_iter()
            .filter(|s| s.query.contains("list-type=2"))
            .collect()
    }

    fn take(&self, method: &str, key: &str, query: &str) -> Option<Fault> {
        let is_list = method == "GET" && key.is_empty() && query.contains("list-type=2");
        let is_read = method == "GET" && !key.is_empty();
        let mut rules = self.rules.lock().unwrap();
        let rule = rules.iter_mut().find(|r| {
            r.times > 0
                && match &r.target {
                    Target::List => is_list,
                    Target::Key(k) => is_read && k == key,
                }
        })?;
        rule.times -= 1;
        Some(rule.fault.clone())
    }
}

/// The fault layer: a hyper service around the s3s service.
#[derive(Clone)]
struct FaultService {
    inner: s3s::service::S3Service,
    faults: Arc<Faults>,
    root: PathBuf,
}

fn full_body(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn error_response(status: u16, code: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test server</Message><RequestId>test</RequestId></Error>"
    );
    let mut resp = Response::new(full_body(Bytes::from(xml)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    resp.headers_mut()
        .insert("content-type", "application/xml".parse().unwrap());
    resp
}

/// A body that yields `head`, waits for it to be flushed, then fails.
fn cut_body(head: Bytes) -> Body {
    let first = futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(head))]);
    let fail = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err::<Frame<Bytes>, BoxError>("connection cut by the test server".into())
    });
    use futures_util::StreamExt as _;
    BodyExt::boxed(http_body_util::StreamBody::new(first.chain(fail)))
}

impl hyper::service::Service<Request<Incoming>> for FaultService {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().trim_start_matches('/');
        let key = path
            .split_once('/')
            .map(|(_, k)| k.to_owned())
            .unwrap_or_default();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let fault = self.faults.take(&method, &key, &query);
        self.faults.log.lock().unwrap().push(Seen {
            method,
            key: key.clone(),
            query,
            range: header("range"),
            if_match: header("if-match"),
            sse: header("x-amz-server-side-encryption"),
            sse_kms_key_id: header("x-amz-server-side-encryption-aws-kms-key-id"),
            fault: fault.as_ref().map(|f| format!("{f:?}")),
        });
        let inner = self.inner.clone();
        let object_path = self.root.join(BUCKET).join(&key);
        Box::pin(async move {
            if let Some(Fault::Status { status, code }) = fault {
                return Ok(error_response(status, code));
            }
            let resp = hyper::service::Service::call(&inner, req)
                .await
                .map_err(BoxError::from)?;
            let (after, replace) = match fault {
                Some(Fault::Cut { after }) => (after, None),
                Some(Fault::CutAndReplace { after, with }) => (after, Some(with)),
                _ => return Ok(resp.map(|b| b.map_err(BoxError::from).boxed())),
            };
            let (parts, body) = resp.into_parts();
            let all = body.collect().await?.to_bytes();
            let head = all.slice(..after.min(all.len()));
            if let Some(with) = replace {
                std::fs::write(&object_path, with)?;
            }
            Ok(Response::from_parts(parts, cut_body(head)))
        })
    }
}

/// A running server; it stops with the test's runtime.
pub struct S3Server {
    pub addr: SocketAddr,
    pub endpoint: String,
    pub faults: Arc<Faults>,
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server with the bucket [`BUCKET`] created and empty.
    pub async fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(dir.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let faults = Arc::new(Faults::default());
        let service = FaultService {
            inner: builder.build(),
            faults: faults.clone(),
            root: dir.path().to_owned(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    // A cut body ends the connection with an error: expected, ignored.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        S3Server {
            addr,
            endpoint: format!("http://{addr}"),
            faults,
            dir,
        }
    }

    /// The directory of the bucket: a file at `<bucket_dir>/<key>` is the object `<key>`.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join(BUCKET)
    }

    /// Writes an object straight into the store (fast; its ETag is the MD5 of the bytes).
    pub fn write(&self, key: &str, body: &[u8]) {
        let path = self.bucket_dir().join(key);
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).unwrap();
        std::fs::write(path, body).unwrap();
    }

    /// A client with static credentials, path-style, pointed at this server. Its own
    /// retries are the SDK defaults; the source turns them off per request.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_with_secret(SECRET_KEY)
    }

    pub fn client_with_secret(&self, secret: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(ACCESS_KEY, secret, None, None, "test"))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Uploads an object with `PutObject` (stores a CRC32 the SDK checks on full GETs).
    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }
}

/// The hex MD5 of `bytes`: what s3s-fs (and S3, for single-part uploads) gives as ETag.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Gzips `bytes` (the DPL objects are gzip).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Deterministic bytes that do not compress much (a xorshift stream).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
