//! Owner-only files under `DATA_DIR`.
//!
//! `DATA_DIR` holds the embedded store (`sushi.db` and SQLite's `-wal`/`-shm` beside it), the
//! local key file and the generated JWT secret: together enough to guess master passwords
//! offline. So the directory is created 0700 and every file 0600, with explicit modes rather
//! than whatever umask the process inherited (0022 makes files world-readable). SQLite creates
//! its `-wal` and `-shm` files with the database file's own mode, so creating `sushi.db` 0600
//! before SQLite opens it covers them too.
//!
//! An existing directory keeps its mode (it may be a home or a shared parent the operator
//! chose) and is only reported; existing files written by an older build are tightened.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Create `dir` (and missing parents) 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format_args!("{mode:o}"),
                "DATA_DIR is readable by other users; its files are 0600, but 0700 is advised"
            );
        }
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Make sure `path` exists as an owner-only file (created 0600, or tightened to 0600), without
/// truncating it. For files another library then opens by name (SQLite).
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    tighten(&file.metadata()?, path)
}

/// Tighten `path` to 0600 when it exists with a wider mode (files an older build left).
pub fn tighten_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) => tighten(&meta, path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

fn tighten(meta: &std::fs::Metadata, path: &Path) -> io::Result<()> {
    if meta.permissions().mode() & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_and_files_are_owner_only_whatever_the_umask() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        let file = dir.join("f");
        ensure_private_file(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
    }

    #[test]
    fn a_world_readable_file_from_an_older_build_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("old.db");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        ensure_private_file(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
}
