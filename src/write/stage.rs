//! Writing a new set directory and swapping `..data` to it.

use super::error::io_err;
use super::{DATA, DATA_TMP, DIR_MODE, OutFile, WriteError, effective_mode, open_dir_nofollow, remove_entry};
use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::hash::BuildHasher;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Attempts at finding an unused set directory name.
const NAME_ATTEMPTS: usize = 16;
/// The mode a file is created with, before it is set to the requested one.
const CREATE_MODE: u32 = 0o600;

/// Writes `files` into a new set directory and points `..data` at it; returns the directory's
/// name. On failure the new directory is removed and `..data` is untouched.
pub(super) fn stage_and_swap(target: &Path, files: &[OutFile]) -> Result<String, WriteError> {
    let name = create_set_dir(target)?;
    let dir = target.join(&name);
    let result = fill_dir(&dir, files).and_then(|()| swap_data(target, &name));
    if result.is_err()
        && let Err(error) = fs::remove_dir_all(&dir)
    {
        tracing::warn!(dir = %dir.display(), %error, "cannot remove a half-written set");
    }
    result.map(|()| name)
}

/// Creates an empty set directory `..YYYY_MM_DD_HH_MM_SS.<random>` (as `AtomicWriter` names
/// them) and returns its name.
fn create_set_dir(target: &Path) -> Result<String, WriteError> {
    let stamp = timestamp(SystemTime::now());
    let mut last = None;
    for attempt in 0..NAME_ATTEMPTS {
        let name = format!("..{stamp}.{}", random_suffix(attempt));
        match DirBuilder::new().mode(DIR_MODE).create(target.join(&name)) {
            Ok(()) => return Ok(name),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = Some(error),
            Err(error) => return Err(io_err("create directory", name)(error)),
        }
    }
    let error = last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into());
    Err(io_err("create directory", format!("..{stamp}.*"))(error))
}

/// UTC time as `YYYY_MM_DD_HH_MM_SS`.
pub(super) fn timestamp(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| *c != 'Z')
        .map(|c| if c.is_ascii_digit() { c } else { '_' })
        .collect()
}

/// A random decimal `u32` (as Go's `MkdirTemp` appends).
fn random_suffix(attempt: usize) -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((nanos, attempt, std::process::id())) as u32
}

/// Sets the set directory's mode and writes every file into it, creating parent directories.
fn fill_dir(dir: &Path, files: &[OutFile]) -> Result<(), WriteError> {
    set_dir_mode(dir, ".")?;
    let mut made = HashSet::new();
    for file in files {
        make_parents(dir, &file.path, &mut made)?;
        write_file(dir, file)?;
    }
    open_dir_nofollow(dir).and_then(|handle| handle.sync_all()).map_err(io_err("sync", "."))
}

/// Creates the missing parent directories of `path` (`made` remembers those created).
fn make_parents<'a>(dir: &Path, path: &'a str, made: &mut HashSet<&'a str>) -> Result<(), WriteError> {
    for (at, _) in path.match_indices('/') {
        let parent = &path[..at];
        if made.insert(parent) {
            let full = dir.join(parent);
            DirBuilder::new().mode(DIR_MODE).create(&full).map_err(io_err("create directory", parent))?;
            set_dir_mode(&full, parent)?;
        }
    }
    Ok(())
}

/// Sets a directory's mode exactly (regardless of umask), through a handle opened without
/// following symlinks.
fn set_dir_mode(path: &Path, rel: &str) -> Result<(), WriteError> {
    open_dir_nofollow(path)
        .and_then(|handle| handle.set_permissions(Permissions::from_mode(DIR_MODE)))
        .map_err(io_err("set the mode of", rel))
}

/// Creates one file exclusively (never through a symlink), writes it, syncs it and sets its
/// exact mode.
fn write_file(dir: &Path, file: &OutFile) -> Result<(), WriteError> {
    let rel = file.path.as_str();
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(CREATE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(rel))
        .map_err(io_err("create", rel))?;
    out.write_all(file.contents.expose()).map_err(io_err("write", rel))?;
    out.sync_all().map_err(io_err("sync", rel))?;
    out.set_permissions(Permissions::from_mode(effective_mode(file.mode))).map_err(io_err("set the mode of", rel))
}

/// Points `..data` at `name` atomically: a `..data_tmp` symlink renamed over it.
fn swap_data(target: &Path, name: &str) -> Result<(), WriteError> {
    let tmp = target.join(DATA_TMP);
    remove_entry(&tmp, DATA_TMP)?;
    symlink(name, &tmp).map_err(io_err("create symlink", DATA_TMP))?;
    if let Err(error) = fs::rename(&tmp, target.join(DATA)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("rename over", DATA)(error));
    }
    Ok(())
}
