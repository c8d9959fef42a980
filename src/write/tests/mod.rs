//! Tests of the atomic writer (the `..data` layout) and of the target check.

mod known;
mod layout;
mod readers;
mod target;

use super::*;
use crate::codes::ErrorCode;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::SystemTime;

fn file(path: &str, mode: u32, contents: &str) -> OutFile {
    OutFile { path: path.to_string(), mode, contents: SecretBytes::from(contents) }
}

/// A fresh target directory (kept alive by the returned guard).
fn target() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mount");
    fs::create_dir(&target).unwrap();
    (dir, target)
}

fn written(changed: &[&str]) -> WriteOutcome {
    WriteOutcome::Written { changed: changed.iter().map(|path| path.to_string()).collect() }
}

/// Where `..data` points.
fn data_link(target: &Path) -> String {
    fs::read_link(target.join(DATA)).unwrap().to_str().unwrap().to_string()
}

fn link_of(path: &Path) -> String {
    let meta = fs::symlink_metadata(path).unwrap();
    assert!(meta.file_type().is_symlink(), "{} is not a symlink", path.display());
    fs::read_link(path).unwrap().to_str().unwrap().to_string()
}

/// The exact mode of `path` itself (lstat).
fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn read(path: &Path) -> String {
    String::from_utf8(fs::read(path).unwrap()).unwrap()
}

/// The names directly in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// Every path under `root` (root included, symlinks not followed) with its mtime and inode.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (SystemTime, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        }
        out.insert(path, (meta.modified().unwrap(), meta.ino()));
    }
    out
}

/// The shape of a set directory name: `..YYYY_MM_DD_HH_MM_SS.<digits>`.
fn is_timestamped(name: &str) -> bool {
    let Some((stamp, random)) = name.strip_prefix("..").and_then(|rest| rest.split_once('.')) else {
        return false;
    };
    let shape_ok = stamp.len() == 19
        && stamp.char_indices().all(|(at, c)| match at {
            4 | 7 | 10 | 13 | 16 => c == '_',
            _ => c.is_ascii_digit(),
        });
    shape_ok && !random.is_empty() && random.chars().all(|c| c.is_ascii_digit())
}

#[test]
fn timestamp_has_the_atomic_writer_format() {
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_738_325_045);
    assert_eq!(stage::timestamp(at), "2025_01_31_12_04_05");
}

#[test]
fn error_codes_and_messages() {
    let (_dir, target) = target();
    let error = write_atomic(&target, &[file("a", 0o600, "x"), file("a/b", 0o600, "hunter2")]).unwrap_err();
    assert_eq!(error.code(), ErrorCode::Internal);
    assert!(error.to_string().contains("\"a\""), "{error}");
    let error =
        WriteError::Io { op: "create", path: "app/config".into(), error: io::ErrorKind::PermissionDenied.into() };
    assert_eq!(error.code(), ErrorCode::WriteFailed);
    assert_eq!(error.to_string(), "cannot create \"app/config\": permission denied");
}
