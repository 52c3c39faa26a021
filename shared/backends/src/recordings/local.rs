//! Recordings as files: each object name (all of which start with `recordings/`) is a relative
//! path under the data directory, written
//! owner-only (0600, directories 0700) and atomically (a temporary file renamed into place), so
//! a reader never sees half a chunk. File work runs in `spawn_blocking`.
//!
//! Names come from the domain (hex, a validated id, fixed words); a name outside
//! `recordings/`, or with an empty, `.` or `..` component, is refused anyway, so no name can
//! reach another file of the data directory.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use domain::recording::{RecordingStore, StorageError};

pub struct LocalRecordings {
    root: PathBuf,
}

impl LocalRecordings {
    /// Recordings under `data_dir/recordings`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self { root: data_dir }
    }
}

fn path_of(root: &Path, name: &str) -> Result<PathBuf, StorageError> {
    let safe = name.starts_with("recordings/")
        && name
            .trim_end_matches('/')
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !safe {
        return Err(StorageError(format!("invalid object name {name:?}")));
    }
    Ok(root.join(name.trim_end_matches('/')))
}

fn io(err: std::io::Error) -> StorageError {
    StorageError(err.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError(format!("file task failed: {e}")))?
}

fn write_file(path: &Path, body: &[u8]) -> Result<(), StorageError> {
    let parent = path
        .parent()
        .ok_or_else(|| StorageError("object has no directory".into()))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(io)?;
    let suffix: u64 = rand::random();
    let temporary = parent.join(format!(".tmp-{suffix:016x}"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io)?;
    let written = file.write_all(body).and_then(|()| file.sync_data());
    if let Err(err) = written.and_then(|()| fs::rename(&temporary, path)) {
        let _ = fs::remove_file(&temporary);
        return Err(io(err));
    }
    Ok(())
}

/// Every file under `dir`, as names relative to `root`, depth first.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, limit: usize) -> std::io::Result<()> {
    let mut entries: Vec<_> = match fs::read_dir(dir) {
        Ok(entries) => entries.collect::<Result<_, _>>()?,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() >= limit {
            break;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out, limit)?;
        } else if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            if let Ok(relative) = path.strip_prefix(root) {
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    Ok(())
}

#[async_trait]
impl RecordingStore for LocalRecordings {
    async fn put(&self, name: &str, body: Bytes) -> Result<(), StorageError> {
        let path = path_of(&self.root, name)?;
        blocking(move || write_file(&path, &body)).await
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = path_of(&self.root, name)?;
        blocking(move || match fs::read(&path) {
            Ok(body) => Ok(Some(body)),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io(err)),
        })
        .await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StorageError> {
        let dir = path_of(&self.root, prefix)?;
        let root = self.root.clone();
        blocking(move || {
            let mut out = Vec::new();
            walk(&root, &dir, &mut out, limit).map_err(io)?;
            Ok(out)
        })
        .await
    }

    async fn delete(&self, names: &[String]) -> Result<(), StorageError> {
        let paths = names
            .iter()
            .map(|name| path_of(&self.root, name))
            .collect::<Result<Vec<_>, _>>()?;
        blocking(move || {
            for path in paths {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == ErrorKind::NotFound => {}
                    Err(err) => return Err(io(err)),
                }
                // Empty directories go too (a recording's chunk directory).
                if let Some(parent) = path.parent() {
                    let _ = fs::remove_dir(parent);
                }
            }
            Ok(())
        })
        .await
    }

    fn describe(&self) -> String {
        format!("files under {}", self.root.join("recordings").display())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn objects_are_private_files_listed_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalRecordings::new(dir.path().to_path_buf());
        store
            .put("recordings/a/chunks/x/00000001", Bytes::from_static(b"1"))
            .await
            .unwrap();
        store
            .put("recordings/a/chunks/x/00000000", Bytes::from_static(b"0"))
            .await
            .unwrap();
        store
            .put("recordings/a/meta/x.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let mode = fs::metadata(dir.path().join("recordings/a/chunks/x/00000000"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            store.list("recordings/a/chunks/x/", 10).await.unwrap(),
            [
                "recordings/a/chunks/x/00000000",
                "recordings/a/chunks/x/00000001"
            ]
        );
        assert_eq!(
            store.list("recordings/a/meta/", 10).await.unwrap(),
            ["recordings/a/meta/x.json"]
        );
        assert_eq!(
            store.list("recordings/b/", 10).await.unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            store.get("recordings/a/chunks/x/00000001").await.unwrap(),
            Some(b"1".to_vec())
        );
        store
            .delete(&[
                "recordings/a/chunks/x/00000000".into(),
                "recordings/a/chunks/x/00000001".into(),
            ])
            .await
            .unwrap();
        assert_eq!(
            store.get("recordings/a/chunks/x/00000001").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn names_cannot_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalRecordings::new(dir.path().to_path_buf());
        for name in [
            "recordings/../x",
            "recordings/a/../../x",
            "",
            "recordings/a//b",
            "recordings/./a",
            "sushi.db",
            "master.key",
        ] {
            assert!(store.put(name, Bytes::new()).await.is_err(), "{name}");
        }
    }
}
