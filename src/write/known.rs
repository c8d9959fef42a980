//! The sets this process wrote (or found unchanged), by target: a digest of each set and the
//! name of its directory. A re-sync whose files hash to the digest of the set `..data` still
//! points at, with every visible entry in place, is decided unchanged from one `readlink` and
//! one directory listing instead of reading every file back. Nothing else trusts this record:
//! any mismatch (another set, a missing entry, a restart) falls back to reading the files.
//!
//! Once the target directory has been seen unchanged, its inode and change time are kept too:
//! adding, removing or renaming any entry in it (`..data` swapped, a visible link removed)
//! changes its ctime, so while one `lstat` shows the same stamp the listing is not needed. A
//! stamp is kept only when its ctime is older than [`SETTLE`] at the time it is read: the kernel
//! takes ctime from a coarse clock (one tick is at most 10 ms), and a change made in the same tick
//! as the stamped one would otherwise keep the same ctime.

use super::target::DirStamp;
#[cfg(test)]
use super::target::stamp_of;
use super::{DATA, OutFile, effective_mode};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Targets remembered at most; beyond it the record starts over (entries are only a shortcut).
const MAX_TARGETS: usize = 16_384;

/// How old a target's ctime must be before its stamp stands in for a listing.
pub const SETTLE: Duration = Duration::from_millis(100);

/// What was last written into one target.
#[derive(Clone, PartialEq, Eq)]
struct Known {
    /// The set directory `..data` pointed to.
    set: String,
    /// [`digest`] of the set's files.
    digest: [u8; 32],
    /// The target directory as last seen holding exactly that set, once settled.
    stamp: Option<DirStamp>,
}

/// The sets known to be in place, by target path. Holds digests, never contents.
pub struct KnownSets {
    targets: Mutex<HashMap<PathBuf, Known>>,
    settle: Duration,
}

impl Default for KnownSets {
    fn default() -> Self {
        Self::with_settle(SETTLE)
    }
}

impl std::fmt::Debug for KnownSets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownSets").field("targets", &self.lock().len()).finish()
    }
}

impl KnownSets {
    /// A record whose stamps stand in for a listing once their ctime is `settle` old.
    pub fn with_settle(settle: Duration) -> Self {
        KnownSets { targets: Mutex::default(), settle }
    }

    /// Is `files` exactly the set in `target`, as this process last wrote or read it? True only
    /// when `..data` still points to that set and every visible name is a symlink: shown by the
    /// target's unchanged stamp, else by reading the link and listing the directory.
    #[cfg(test)]
    pub fn unchanged(&self, target: &Path, files: &[OutFile]) -> bool {
        self.unchanged_at(target, stamp_of(target), files)
    }

    /// [`unchanged`](Self::unchanged) with `target`'s stamp already taken (by the target check,
    /// just before).
    pub fn unchanged_at(&self, target: &Path, stamp: Option<DirStamp>, files: &[OutFile]) -> bool {
        if !self.knows(target) {
            return false;
        }
        let digest = digest(files);
        let known = {
            let map = self.lock();
            let Some(known) = map.get(target).filter(|k| k.digest == digest) else { return false };
            // The stamp was taken before the checks below, so a change made during them shows
            // next time.
            if stamp.is_some() && stamp == known.stamp {
                return true;
            }
            known.clone()
        };
        if !data_points_to(target, &known.set) || !visible_links_present(target, files) {
            return false;
        }
        if let Some(stamp) = stamp.filter(|s| self.settled(s)) {
            self.set_stamp(target, &known, stamp);
        }
        true
    }

    /// Is the stamp's ctime old enough that no later change can share it?
    fn settled(&self, stamp: &DirStamp) -> bool {
        let (secs, nanos) = stamp.ctime;
        let (Ok(secs), Ok(nanos)) = (u64::try_from(secs), u32::try_from(nanos)) else { return false };
        let ctime = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        SystemTime::now().duration_since(ctime).is_ok_and(|age| age >= self.settle)
    }

    /// Keeps `stamp` for `target` if the record is still the one it was checked against.
    fn set_stamp(&self, target: &Path, checked: &Known, stamp: DirStamp) {
        let mut map = self.lock();
        if let Some(known) = map.get_mut(target).filter(|k| k.set == checked.set && k.digest == checked.digest) {
            known.stamp = Some(stamp);
        }
    }

    /// Whether a set is recorded for `target`.
    pub fn knows(&self, target: &Path) -> bool {
        self.lock().contains_key(target)
    }

    /// Records that `target`'s `..data` points to `set`, holding `files`.
    pub fn remember(&self, target: &Path, set: String, files: &[OutFile]) {
        let known = Known { set, digest: digest(files), stamp: None };
        let mut map = self.lock();
        if map.len() >= MAX_TARGETS && !map.contains_key(target) {
            map.clear();
        }
        map.insert(target.to_path_buf(), known);
    }

    /// Drops what is known of `target` (it is being rewritten, or it failed).
    pub fn forget(&self, target: &Path) {
        self.lock().remove(target);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Known>> {
        crate::sync::lock(&self.targets)
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
