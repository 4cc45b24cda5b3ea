//! The S3 source against a real S3 HTTP server in-process (s3s-fs over a temp directory),
//! with injected throttling, server errors and bodies cut midway.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;

use common::{BUCKET, Fault, S3Server, Target, gzip, md5_hex, noise};
use dpl_core::{DayRange, ObjectMeta, Source};
use dpl_source::{Error, S3Config, S3Source, read_objects};

fn config(prefix: &str, max_attempts: u32) -> S3Config {
    S3Config {
        bucket: BUCKET.into(),
        prefix: prefix.into(),
        max_attempts,
        initial_backoff_ms: 1,
        ..S3Config::default()
    }
}

fn days(start: (i16, i8, i8), end: (i16, i8, i8)) -> DayRange {
    DayRange {
        start: jiff::civil::date(start.0, start.1, start.2),
        end: jiff::civil::date(end.0, end.1, end.2),
    }
}

fn nov(day: i8) -> DayRange {
    days((2026, 11, day), (2026, 11, day))
}

#[tokio::test]
async fn lists_past_1000_keys_in_a_day_and_across_days_sorted_without_prefix() {
    let server = S3Server::start().await;
    let mut expected: Vec<ObjectMeta> = Vec::new();
    for i in 0..1100 {
        // Upper case, lower case and a sub-folder, so byte order differs from other orders.
        let name = match i % 3 {
            0 => format!("a{i:04}.gz"),
            1 => format!("Z{i:04}.gz"),
            _ => format!("sub/{i:04}"),
        };
        let key = format!("events/2026/11/01/{name}");
        let body = format!("object number {i}");
        server.write(&format!("dpl/{key}"), body.as_bytes());
        expected.push(ObjectMeta {
            key,
            size: body.len() as u64,
            etag: md5_hex(body.as_bytes()),
        });
    }
    for name in ["x.gz", "y"] {
        let key = format!("events/2026/11/02/{name}");
        server.write(&format!("dpl/{key}"), name.as_bytes());
        expected.push(ObjectMeta {
            key,
            size: name.len() as u64,
            etag: md5_hex(name.as_bytes()),
        });
    }
    // Not in the range, or not under the prefix.
    for key in [
        "dpl/events/2026/11/03/late.gz",
        "dpl/events/2026/10/31/early.gz",
        "events/2026/11/01/at-the-root.gz",
        "other/events/2026/11/01/o.gz",
        "dpl/notevents/2026/11/01/n.gz",
    ] {
        server.write(key, b"not listed");
    }
    expected.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));

    // "dpl" without the slash means the folder dpl/.
    let source = S3Source::with_client(server.client(), &config("dpl", 3));
    let listed = source
        .list(days((2026, 11, 1), (2026, 11, 2)))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1102);
    assert_eq!(listed, expected);
    assert_eq!(listed[0].key, "events/2026/11/01/Z0001.gz");

    // Day 1 needed a second page, asked with the continuation token.
    let day1: Vec<_> = server
        .faults
        .lists()
        .into_iter()
        .filter(|s| s.query.contains("prefix=dpl%2Fevents%2F2026%2F11%2F01%2F"))
        .collect();
    assert_eq!(day1.len(), 2, "{day1:?}");
    assert!(day1[1].query.contains("continuation-token="), "{day1:?}");

    // The full key is rebuilt for the fetch.
    let last = listed.last().unwrap();
    assert_eq!(last.key, "events/2026/11/02/y");
    assert_eq!(source.fetch(last).await.unwrap().as_ref(), b"y");
}

#[tokio::test]
async fn an_empty_day_lists_nothing() {
    let server = S3Server::start().await;
    server.write("events/2026/11/02/a", b"a");
    let source = S3Source::with_client(server.client(), &config("", 3));
    assert!(source.list(nov(1)).await.unwrap().is_empty());
    assert_eq!(source.list(nov(2)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_gzip_object_arrives_byte_identical_with_its_etag() {
    let server = S3Server::start().await;
    let lines: String = (0..5000)
        .map(|i| {
            format!(
                "{{\"action\":\"pageview\",\"n\":{i},\"x\":{}}}\n",
                i * 7919 % 10007
            )
        })
        .collect();
    let gz = gzip(lines.as_bytes());
    let key = "events/2026/11/01/part-0000.gz";
    server.put(key, gz.clone()).await;

    let source = S3Source::with_client(server.client(), &config("", 3));
    let listed = source.list(nov(1)).await.unwrap();
    assert_eq!(
        listed,
        [ObjectMeta {
            key: key.into(),
            size: gz.len() as u64,
            etag: md5_hex(&gz)
        }]
    );
    let bytes = source.fetch(&listed[0]).await.unwrap();
    assert_eq!(bytes.as_ref(), gz.as_slice());
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes.as_ref())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, lines);

    let gets = server.faults.gets_of(key);
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(
        gets[0].if_match.as_deref(),
        Some(format!("\"{}\"", md5_hex(&gz)).as_str())
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let server = S3Server::start().await;
    let key = "events/2026/11/01/a.gz";
    let body = noise(64 * 1024, 1);
    server.put(key, body.clone()).await;
    server.faults.add(Target::List, Fault::internal_error(), 2);
    server.faults.add(Target::key(key), Fault::slow_down(), 3);
    server.faults.add(
        Target::key(key),
        Fault::Status {
            status: 429,
            code: "TooManyRequests",
        },
        1,
    );

    let source = S3Source::with_client(server.client(), &config("", 5));
    let listed = source.list(nov(1)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(server.faults.lists().len(), 3);
    assert_eq!(
        source.fetch(&listed[0]).await.unwrap().as_ref(),
        body.as_slice()
    );
    let gets = server.faults.gets_of(key);
    assert_eq!(gets.len(), 5, "{gets:?}");
    assert!(gets[..4].iter().all(|g| g.fault.is_some()) && gets[4].fault.is_none());
}

#[tokio::test]
async fn a_body_cut_midway_resumes_with_a_ranged_get() {
    let server = S3Server::start().await;
    let key = "events/2026/11/01/big.gz";
    let body = noise(200_000, 2);
    server.put(key, body.clone()).await;
    // Each of the first two answers breaks after 70,000 bytes of its body.
    server
        .faults
        .add(Target::key(key), Fault::Cut { after: 70_000 }, 2);

    let source = S3Source::with_client(server.client(), &config("", 5));
    let listed = source.list(nov(1)).await.unwrap();
    let bytes = source.fetch(&listed[0]).await.unwrap();
    assert_eq!(bytes.len(), body.len());
    assert!(bytes.as_ref() == body.as_slice(), "the bytes differ");

    let gets = server.faults.gets_of(key);
    let ranges: Vec<_> = gets.iter().map(|g| g.range.as_deref()).collect();
    assert_eq!(ranges, [None, Some("bytes=70000-"), Some("bytes=140000-")]);
    let etag = format!("\"{}\"", md5_hex(&body));
    assert!(
        gets.iter()
            .all(|g| g.if_match.as_deref() == Some(etag.as_str())),
        "{gets:?}"
    );
}

#[tokio::test]
async fn an_object_replaced_during_a_resume_is_an_error_not_a_splice() {
    let server = S3Server::start().await;
    let key = "events/2026/11/01/a.gz";
    let old = noise(100_000, 3);
    let new = noise(100_000, 4);
    server.write(key, &old);
    server.faults.add(
        Target::key(key),
        Fault::CutAndReplace {
            after: 30_000,
            with: new.clone(),
        },
        1,
    );

    let source = S3Source::with_client(server.client(), &config("", 5));
    let listed = source.list(nov(1)).await.unwrap();
    let err = source.fetch(&listed[0]).await.unwrap_err();
    match &err {
        Error::S3Changed {
            bucket,
            key: k,
            listed,
            found,
        } => {
            assert_eq!((bucket.as_str(), k.as_str()), (BUCKET, key));
            assert_eq!(listed, &md5_hex(&old));
            assert_eq!(found, &md5_hex(&new));
        }
        other => panic!("wanted S3Changed, got {other:?}"),
    }
    assert!(
        err.to_string().contains("changed since it was listed"),
        "{err}"
    );
    assert_eq!(server.faults.gets_of(key).len(), 2);
}

#[tokio::test]
async fn a_precondition_failed_answer_means_the_object_changed() {
    let server = S3Server::start().await;
    let key = "events/2026/11/01/a.gz";
    server.write(key, b"abc");
    server.faults.add(
        Target::key(key),
        Fault::Status {
            status: 412,
            code: "PreconditionFailed",
        },
        1,
    );
    let source = S3Source::with_client(server.client(), &config("", 5));
    let listed = source.list(nov(1)).await.unwrap();
    let err = source.fetch(&listed[0]).await.unwrap_err();
    assert!(matches!(err, Error::S3Changed { .. }), "{err:?}");
    assert_eq!(server.faults.gets_of(key).len(), 1, "not retried");
}

#[tokio::test]
async fn too_many_failures_give_a_clear_error() {
    let server = S3Server::start().await;
    let key = "events/2026/11/01/a.gz";
    server.write(key, b"some bytes");
    let source = S3Source::with_client(server.client(), &config("", 3));
    let listed = source.list(nov(1)).await.unwrap();

    server.faults.add(Target::key(key), Fault::slow_down(), 10);
    let err = source.fetch(&listed[0]).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::S3Get { attempts: 3, .. }), "{err:?}");
    assert!(
        text.contains("s3://parsely-dw-test/events/2026/11/01/a.gz"),
        "{text}"
    );
    assert!(
        text.contains("3 attempt(s)") && text.contains("SlowDown"),
        "{text}"
    );
    assert_eq!(server.faults.gets_of(key).len(), 3);

    // Bodies that keep breaking use up the attempts too.
    let key2 = "events/2026/11/01/b.gz";
    server.write(key2, &noise(50_000, 5));
    server
        .faults
        .add(Target::key(key2), Fault::Cut { after: 1000 }, 10);
    let listed = source.list(nov(1)).await.unwrap();
    let err = source.fetch(&listed[1]).await.unwrap_err().to_string();
    assert!(
        err.contains("b.gz") && err.contains("the body broke after"),
        "{err}"
    );

    // Listing too.
    server.faults.add(Target::List, Fault::internal_error(), 10);
    let lists_before = server.faults.lists().len();
    let err = source.list(nov(1)).await.unwrap_err();
    assert!(matches!(err, Error::S3List { attempts: 3, .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("s3://parsely-dw-test/events/2026/11/01/"),
        "{text}"
    );
    assert!(text.contains("InternalError"), "{text}");
    assert_eq!(server.faults.lists().len() - lists_before, 3);
}

#[tokio::test]
async fn a_missing_object_fails_at_once() {
    let server = S3Server::start().await;
    let source = S3Source::with_client(server.client(), &config("", 5));
    let gone = ObjectMeta {
        key: "events/2026/11/01/gone.gz".into(),
        size: 3,
        etag: String::new(),
    };
    let err = source.fetch(&gone).await.unwrap_err();
    assert!(matches!(err, Error::S3Get { attempts: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("NoSuchKey"), "{err}");
    assert_eq!(server.faults.gets_of(&gone.key).len(), 1);
}

#[tokio::test]
async fn new_builds_a_path_style_client_from_static_keys_and_an_endpoint() {
    let server = S3Server::start().await;
    server.write("dpl/events/2026/11/01/a.gz", b"hello");
    let mut cfg = S3Config {
        bucket: BUCKET.into(),
        prefix: "dpl/".into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(server.endpoint.clone()),
        access_key_id: Some(common::ACCESS_KEY.into()),
        secret_access_key: Some(common::SECRET_KEY.into()),
        initial_backoff_ms: 1,
        ..S3Config::default()
    };
    let source = S3Source::new(&cfg).await.unwrap();
    let listed = source.list(nov(1)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(source.fetch(&listed[0]).await.unwrap().as_ref(), b"hello");

    // A wrong secret is refused by the server; the error names the bucket, not the secret.
    cfg.secret_access_key = Some("wrong-secret-do-not-print".into());
    let source = S3Source::new(&cfg).await.unwrap();
    let err = source.list(nov(1)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::S3List { attempts: 1, .. }), "{err:?}");
    assert!(text.contains(BUCKET), "{text}");
    assert!(!text.contains("wrong-secret-do-not-print"), "{text}");
    assert!(!format!("{source:?}{cfg:?}").contains("wrong-secret-do-not-print"));
}

#[tokio::test]
async fn every_line_arrives_once_through_read_objects_despite_faults() {
    let server = S3Server::start().await;
    let mut expected_lines: Vec<String> = Vec::new();
    for day in [1, 2] {
        for o in 0..20 {
            let lines: String = (0..300)
                .map(|l| {
                    format!(
                        "{{\"day\":{day},\"object\":{o},\"line\":{l},\"pad\":\"{}\"}}\n",
                        l * 31
                    )
                })
                .collect();
            expected_lines.extend(lines.lines().map(str::to_owned));
            let (name, body) = if o % 2 == 0 {
                (format!("part-{o:02}.gz"), gzip(lines.as_bytes()))
            } else {
                (format!("part-{o:02}.json"), lines.into_bytes())
            };
            let key = format!("events/2026/11/{day:02}/{name}");
            if o % 3 == 0 {
                server.faults.add(
                    Target::key(&key),
                    Fault::Cut {
                        after: body.len() / 2,
                    },
                    1,
                );
            }
            if o % 5 == 0 {
                server.faults.add(Target::key(&key), Fault::slow_down(), 2);
            }
            if o % 7 == 0 {
                server
                    .faults
                    .add(Target::key(&key), Fault::Cut { after: 100 }, 2);
            }
            server.write(&key, &body);
        }
    }
    server.faults.add(Target::List, Fault::slow_down(), 1);
    let source = Arc::new(S3Source::with_client(server.client(), &config("", 6)));
    let objects = source
        .list(days((2026, 11, 1), (2026, 11, 2)))
        .await
        .unwrap();
    assert_eq!(objects.len(), 40);
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();

    let (tx, rx) = async_channel::bounded::<dpl_core::RawObject>(2);
    let consumer = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut lines: HashMap<String, usize> = HashMap::new();
        while let Ok(raw) = rx.recv().await {
            let mut text = String::new();
            if raw.key.ends_with(".gz") {
                flate2::read::GzDecoder::new(raw.bytes.as_ref())
                    .read_to_string(&mut text)
                    .unwrap();
            } else {
                text = String::from_utf8(raw.bytes.to_vec()).unwrap();
            }
            for line in text.lines() {
                *lines.entry(line.to_owned()).or_default() += 1;
            }
            seen.push((raw.id, raw.key.to_string()));
        }
        (seen, lines)
    });
    let mut fetched = 0;
    read_objects(source, objects, 4, tx, |_| fetched += 1)
        .await
        .unwrap();
    let (seen, lines) = consumer.await.unwrap();

    assert_eq!(fetched, 40);
    let want: Vec<(u32, String)> = keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| (i as u32, k))
        .collect();
    assert_eq!(seen, want);
    assert_eq!(lines.len(), expected_lines.len());
    for line in &expected_lines {
        assert_eq!(lines.get(line), Some(&1), "{line}");
    }
    // The faults did happen.
    let faulted = server
        .faults
        .log()
        .iter()
        .filter(|s| s.fault.is_some())
        .count();
    assert!(faulted >= 20, "{faulted}");
}
