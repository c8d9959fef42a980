//! The visible entries of the target (`name -> ..data/name`) and the removal of old sets.

use super::error::io_err;
use super::{DATA, VISIBLE_TMP, WriteError, is_set_dir_name, remove_entry};
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Makes the visible entries match `names`: a missing or wrong entry under a requested name
/// (a regular file, a directory or a stale symlink, e.g. left by the Go provider) becomes the
/// symlink; our symlinks of names no longer requested are removed. Correct entries are not
/// touched. Other entries (not ours) are left alone.
pub(super) fn sync(target: &Path, names: &BTreeSet<&str>) -> Result<(), WriteError> {
    for name in names {
        ensure_link(target, name)?;
    }
    remove_stale_links(target, names)
}

/// What a visible symlink for `name` points to.
fn link_target(name: &str) -> PathBuf {
    Path::new(DATA).join(name)
}

/// Creates `name -> ..data/name` unless it is already there.
fn ensure_link(target: &Path, name: &str) -> Result<(), WriteError> {
    let path = target.join(name);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if fs::read_link(&path).map_err(io_err("read link", name))? == link_target(name) {
                return Ok(());
            }
        }
        // A rename cannot replace a directory with a symlink.
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path).map_err(io_err("remove", name))?,
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_err("inspect", name)(error)),
    }
    replace_with_link(target, name)
}

/// Puts the symlink in place with a temporary symlink renamed over `name`, so that whatever
/// is there (a file, a stale symlink) is replaced atomically.
fn replace_with_link(target: &Path, name: &str) -> Result<(), WriteError> {
    let tmp = target.join(VISIBLE_TMP);
    remove_entry(&tmp, VISIBLE_TMP)?;
    symlink(link_target(name), &tmp).map_err(io_err("create symlink", VISIBLE_TMP))?;
    if let Err(error) = fs::rename(&tmp, target.join(name)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("rename over", name)(error));
    }
    Ok(())
}

/// Removes the symlinks `name -> ..data/name` whose name is not in `names`.
fn remove_stale_links(target: &Path, names: &BTreeSet<&str>) -> Result<(), WriteError> {
    for entry in fs::read_dir(target).map_err(io_err("read directory", "."))? {
        let entry = entry.map_err(io_err("read directory", "."))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with("..") || names.contains(name.as_str()) {
            continue;
        }
        let kind = entry.file_type().map_err(io_err("inspect", &name))?;
        if kind.is_symlink() && fs::read_link(entry.path()).is_ok_and(|link| link == link_target(&name)) {
            fs::remove_file(entry.path()).map_err(io_err("remove", &name))?;
        }
    }
    Ok(())
}

/// Removes every set directory but `keep` (the old set, and any left by an interrupted
/// write). Best effort: the new set is already in place, so failures are only logged.
pub(super) fn remove_old_dirs(target: &Path, keep: &str) {
    let entries = match fs::read_dir(target) {
        Ok(entries) => entries,
        Err(error) => {
            return tracing::warn!(target = %target.display(), %error, "cannot list old sets");
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == keep || !is_set_dir_name(name) || !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        if let Err(error) = remove_entry(&entry.path(), name) {
            tracing::warn!(target = %target.display(), %error, "cannot remove an old set");
        }
    }
}
