//! Writing a set of files into a pod's target directory, in the layout of Kubernetes'
//! `AtomicWriter` (the one the Secrets Store CSI driver uses in driver-writes mode), so that a
//! later switch of write mode is seamless:
//!
//! ```text
//! <target>/..2025_01_31_12_00_00.1234567890/   the current set (files, nested directories)
//! <target>/..data -> ..2025_01_31_12_00_00.1234567890
//! <target>/user   -> ..data/user                one visible symlink per top-level entry
//! <target>/app    -> ..data/app                 (`app/config` is a nested file)
//! ```
//!
//! A new set goes into a new timestamped directory, then `..data` is swapped to it by a rename:
//! a reader that resolves `..data` once sees one consistent set. Nothing is written when the
//! requested set equals the current one. No symlink inside the target is ever followed except
//! `..data` itself, and nothing outside the target is touched.
//!
//! Everything here blocks: call it from `spawn_blocking`.

mod current;
mod error;
mod known;
mod stage;
mod target;
mod validate;
mod visible;

#[cfg(test)]
mod tests;

#[cfg(test)]
pub use current::read_current;
pub use error::WriteError;
pub use known::KnownSets;
#[cfg(test)]
pub use target::check_target;
pub use target::{Target, Targets};

use crate::secret::SecretBytes;
use error::io_err;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    /// Relative path inside the target, `/`-separated (nested files allowed), already
    /// validated by the caller (it is checked again before anything is written).
    pub path: String,
    /// The file mode. Only the permission bits (`0o777`) apply, as in the CSI driver; setuid,
    /// setgid and sticky bits are dropped.
    pub mode: u32,
    /// The file's contents.
    pub contents: SecretBytes,
}

/// What [`write_atomic`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The requested set equals the current one: no file was written.
    Unchanged,
    /// A new set was swapped in.
    Written {
        /// Paths added, removed, or whose contents or mode changed, sorted.
        changed: Vec<String>,
    },
}

/// The symlink to the current set's directory.
const DATA: &str = "..data";
/// The temporary symlink renamed over [`DATA`].
const DATA_TMP: &str = "..data_tmp";
/// The temporary symlink renamed over a visible name.
const VISIBLE_TMP: &str = "..visible_tmp";
/// The mode of the set's directories.
const DIR_MODE: u32 = 0o755;
/// The mode bits a requested mode may set.
const MODE_MASK: u32 = 0o777;

/// Writes `files` into `target` (a directory accepted by [`check_target`]) as one atomic set,
/// replacing the current set; files no longer requested disappear. Any failure before the
/// swap of `..data` leaves the target as it was. Writers of the same target are serialized
/// by an advisory lock on the target directory.
pub fn write_atomic(target: &Path, files: &[OutFile]) -> Result<WriteOutcome, WriteError> {
    write_known(target, files, &KnownSets::default())
}

/// [`write_atomic`], recording the outcome in `known` (the sets this process wrote). The
/// shortcut itself is the caller's: ask [`KnownSets::unchanged`] first (it needs no blocking
/// task and no copy of the files); this reads the current set back and compares.
pub fn write_known(target: &Path, files: &[OutFile], known: &KnownSets) -> Result<WriteOutcome, WriteError> {
    validate::validate_files(files)?;
    known.forget(target);
    let target_dir = lock_target(target)?;
    let (current_name, current) = current::load(target).map_or((None, None), |(name, set)| (name, Some(set)));
    let names = top_level_names(files);
    if let (Some(name), Some(set)) = (current_name, &current)
        && current::changed_paths(set, files).is_empty()
    {
        visible::sync(target, &names)?;
        // Not known to this process (a restart, or a set written by another writer): a writer
        // killed mid-write may have left a half-written set beside this one.
        visible::remove_old_dirs(target, &name);
        known.remember(target, name, files);
        return Ok(WriteOutcome::Unchanged);
    }
    let changed = current::changed_paths(current.as_deref().unwrap_or_default(), files);
    let new_dir = stage::stage_and_swap(target, files)?;
    // The new set is live: drop the old one even if a visible link could not be made.
    let linked = visible::sync(target, &names);
    visible::remove_old_dirs(target, &new_dir);
    linked?;
    target_dir.sync_all().map_err(io_err("sync", "."))?;
    known.remember(target, new_dir, files);
    Ok(WriteOutcome::Written { changed })
}

/// Opens the target directory (never through a symlink) and takes its exclusive lock, held
/// until the returned handle is dropped.
fn lock_target(target: &Path) -> Result<File, WriteError> {
    let dir = open_dir_nofollow(target).map_err(|error| WriteError::InvalidTarget {
        path: target.display().to_string(),
        reason: format!("cannot open it as a directory: {error}"),
    })?;
    dir.lock().map_err(io_err("lock", "."))?;
    Ok(dir)
}

/// The first path element of each file: the names visible in the target.
fn top_level_names(files: &[OutFile]) -> BTreeSet<&str> {
    files.iter().map(|file| file.path.split('/').next().unwrap_or_default()).collect()
}

/// The mode actually written for a requested mode.
fn effective_mode(mode: u32) -> u32 {
    mode & MODE_MASK
}

/// Is `name` a set directory (`..` then the timestamp's first digit)?
fn is_set_dir_name(name: &str) -> bool {
    name.len() > 2 && name.starts_with("..") && name.as_bytes()[2].is_ascii_digit() && !name.contains('/')
}

/// Opens a directory for reading, failing (`ELOOP`) if `path` itself is a symlink.
fn open_dir_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(path)
}

/// Removes whatever is at `path` (a directory recursively, without following symlinks);
/// nothing there is fine. `rel` names it in errors.
fn remove_entry(path: &Path, rel: &str) -> Result<(), WriteError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(error) => Err(error),
    };
    match result {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(io_err("remove", rel)(error)),
        _ => Ok(()),
    }
}
