//! The sets this process wrote (or found unchanged), by target: a digest of each set and the
//! name of its directory. A re-sync whose files hash to the digest of the set `..data` still
//! points at, with every visible entry in place, is decided unchanged from one `readlink` and
//! one directory listing instead of reading every file back. Nothing else trusts this record:
//! any mismatch (another set, a missing entry, a restart) falls back to reading the files.

use super::{DATA, OutFile, effective_mode};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Targets remembered at most; beyond it the record starts over (entries are only a shortcut).
const MAX_TARGETS: usize = 16_384;

/// What was last written into one target.
#[derive(Clone, PartialEq, Eq)]
struct Known {
    /// The set directory `..data` pointed to.
    set: String,
    /// [`digest`] of the set's files.
    digest: [u8; 32],
}

/// The sets known to be in place, by target path. Holds digests, never contents.
#[derive(Default)]
pub struct KnownSets(Mutex<HashMap<PathBuf, Known>>);

impl std::fmt::Debug for KnownSets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownSets").field("targets", &self.lock().len()).finish()
    }
}

impl KnownSets {
    /// Is `files` exactly the set in `target`, as this process last wrote or read it? True only
    /// when `..data` still points to that set and every visible name is a symlink.
    pub fn unchanged(&self, target: &Path, files: &[OutFile]) -> bool {
        let Some(known) = self.lock().get(target).cloned() else { return false };
        if known.digest != digest(files) || !data_points_to(target, &known.set) {
            return false;
        }
        visible_links_present(target, files)
    }

    /// Records that `target`'s `..data` points to `set`, holding `files`.
    pub fn remember(&self, target: &Path, set: String, files: &[OutFile]) {
        let mut map = self.lock();
        if map.len() >= MAX_TARGETS && !map.contains_key(target) {
            map.clear();
        }
        map.insert(target.to_path_buf(), Known { set, digest: digest(files) });
    }

    /// Drops what is known of `target` (it is being rewritten, or it failed).
    pub fn forget(&self, target: &Path) {
        self.lock().remove(target);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Known>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// SHA-256 over every file's path, effective mode and contents, in path order.
fn digest(files: &[OutFile]) -> [u8; 32] {
    let mut sorted: Vec<&OutFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = Sha256::new();
    for file in sorted {
        let contents = file.contents.expose();
        hasher.update((file.path.len() as u64).to_le_bytes());
        hasher.update(file.path.as_bytes());
        hasher.update(effective_mode(file.mode).to_le_bytes());
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(contents);
    }
    hasher.finalize().into()
}

/// Does `<target>/..data` point to `set`?
fn data_points_to(target: &Path, set: &str) -> bool {
    fs::read_link(target.join(DATA)).is_ok_and(|link| link.as_os_str() == set)
}

/// Is every top-level name of `files` a symlink in `target`? (One directory listing.)
fn visible_links_present(target: &Path, files: &[OutFile]) -> bool {
    let mut missing: BTreeSet<&str> = files.iter().map(|f| f.path.split('/').next().unwrap_or_default()).collect();
    let Ok(entries) = fs::read_dir(target) else { return false };
    for entry in entries.flatten() {
        let is_link = entry.file_type().is_ok_and(|kind| kind.is_symlink());
        if is_link && let Some(name) = entry.file_name().to_str() {
            missing.remove(name);
        }
    }
    missing.is_empty()
}
