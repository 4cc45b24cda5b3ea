//! The `local` source: the `events/YYYY/MM/DD/` layout in a directory.

use std::path::{Path, PathBuf};

use dpl_core::{DayRange, ObjectMeta, Source};

use crate::error::Error;

/// Reads DPL objects from a local directory laid out like the S3 bucket
/// (`<root>/events/YYYY/MM/DD/...`). Every regular file under a day folder is an object,
/// at any depth, whatever its name.
///
/// The ETag of a local object is a fingerprint of its size and modification time
/// (`<size>-<mtime in ns>`), so a file rewritten in place is seen as changed.
#[derive(Clone, Debug)]
pub struct LocalSource {
    root: PathBuf,
}

impl LocalSource {
    /// Fails when `root` is not a directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalSource, Error> {
        let root = root.into();
        if !root.is_dir() {
            return Err(Error::NoRoot { path: root });
        }
        Ok(LocalSource { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn walk(dir: &Path, key_prefix: &str, out: &mut Vec<ObjectMeta>) -> Result<(), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::List {
                path: dir.to_owned(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| Error::List {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::BadName {
                key: format!("{key_prefix}{}", name.to_string_lossy()),
            });
        };
        let key = format!("{key_prefix}{name}");
        let meta = entry.metadata().map_err(|source| Error::List {
            path: entry.path(),
            source,
        })?;
        if meta.is_dir() {
            walk(&entry.path(), &format!("{key}/"), out)?;
        } else if meta.is_file() {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push(ObjectMeta {
                etag: format!("{}-{mtime}", meta.len()),
                key,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

impl Source for LocalSource {
    type Error = Error;

    async fn list(&self, range: DayRange) -> Result<Vec<ObjectMeta>, Error> {
        let root = self.root.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for day in range.days() {
                let prefix = DayRange::prefix(day);
                walk(&root.join(&prefix), &prefix, &mut out)?;
            }
            out.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
            Ok(out)
        });
        match task.await {
            Ok(r) => r,
            Err(e) => Err(Error::List {
                path: self.root.clone(),
                source: std::io::Error::other(e),
            }),
        }
    }

    async fn fetch(&self, object: &ObjectMeta) -> Result<bytes::Bytes, Error> {
        let path = self.root.join(&object.key);
        tokio::fs::read(&path)
            .await
            .map(bytes::Bytes::from)
            .map_err(|source| Error::Read {
                key: object.key.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn put(root: &Path, key: &str, body: &str) {
        let p = root.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    #[tokio::test]
    async fn lists_day_prefixes_of_the_range_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(r, "events/2026/11/01/b.gz", "x");
        put(r, "events/2026/11/01/a.gz", "xy");
        put(r, "events/2026/11/01/sub/Z", "z");
        put(r, "events/2026/11/02/c", "c");
        put(r, "events/2026/11/03/out-of-range", "c");
        put(r, "events/2026/10/31/before", "c");
        put(r, "other/2026/11/01/x", "c");
        let src = LocalSource::new(r).unwrap();
        let range = DayRange {
            start: jiff::civil::date(2026, 11, 1),
            end: jiff::civil::date(2026, 11, 2),
        };
        let keys: Vec<_> = src
            .list(range)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(
            keys,
            [
                "events/2026/11/01/a.gz",
                "events/2026/11/01/b.gz",
                "events/2026/11/01/sub/Z",
                "events/2026/11/02/c"
            ]
        );
        let objs = src.list(range).await.unwrap();
        assert_eq!(objs[0].size, 2);
        assert_eq!(src.fetch(&objs[0]).await.unwrap().as_ref(), b"xy");
    }

    #[tokio::test]
    async fn a_missing_root_says_what_to_do() {
        let err = LocalSource::new("/nonexistent/dpl")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--source-dir"), "{err}");
    }
}
