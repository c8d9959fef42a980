//! Checking the target path the driver sends before anything is written into it.

use super::WriteError;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Directories remembered as proven at most; beyond it the record starts over.
const MAX_PROVEN: usize = 16_384;

/// A directory's identity and last change, from `lstat`: adding, removing or renaming any entry
/// in it changes `ctime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    pub dev: u64,
    pub ino: u64,
    pub ctime: (i64, i64),
}

/// `path`'s stamp, if it is a directory (`lstat`: a symlink is never followed).
pub fn stamp_of(path: &Path) -> Option<DirStamp> {
    let meta = fs::symlink_metadata(path).ok().filter(|m| m.is_dir())?;
    Some(DirStamp { dev: meta.dev(), ino: meta.ino(), ctime: (meta.ctime(), meta.ctime_nsec()) })
}

/// A target path accepted by [`Targets::check`], and its stamp when it was checked.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: PathBuf,
    pub stamp: Option<DirStamp>,
}

/// [`check_target`] for one kubelet directory, remembering the directories it proved: a target
/// path whose `lstat` still shows the directory (device and inode) that was proven reachable
/// through real directories only is accepted from that one `lstat`, so writes go exactly where
/// they went before. Re-sync checks cost one system call instead of two opens; a path that now
/// leads to any other directory, or to no directory, is checked again in full.
#[derive(Debug)]
pub struct Targets {
    kubelet_path: PathBuf,
    proven: Mutex<HashMap<PathBuf, (u64, u64)>>,
}

impl Targets {
    pub fn new(kubelet_path: PathBuf) -> Self {
        Targets { kubelet_path, proven: Mutex::default() }
    }

    /// The checked target, or why it is refused (see [`check_target`]).
    pub fn check(&self, target: &str) -> Result<Target, WriteError> {
        check_lexical(target)?;
        let path = Path::new(target);
        let stamp = stamp_of(path);
        if stamp.is_some_and(|s| self.lock().get(path) == Some(&(s.dev, s.ino))) {
            return Ok(Target { path: path.to_path_buf(), stamp });
        }
        let (path, proven) = prove(&self.kubelet_path, target)?;
        if let (Some(proven), Some(s)) = (proven, stamp)
            && proven == (s.dev, s.ino)
        {
            self.remember(&path, proven);
        }
        Ok(Target { path, stamp })
    }

    fn remember(&self, path: &Path, proven: (u64, u64)) {
        let mut map = self.lock();
        if map.len() >= MAX_PROVEN && !map.contains_key(path) {
            map.clear();
        }
        map.insert(path.to_path_buf(), proven);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (u64, u64)>> {
        crate::sync::lock(&self.proven)
    }
}

/// Accepts `target` only if it is absolute, lexically clean (no `.`, `..` or empty element),
/// strictly under `<kubelet_path>/pods/`, and every component from `<kubelet_path>/pods` down
/// to the target itself is a real directory (not a symlink). `kubelet_path` itself may be a
/// symlink; components above `pods` are not checked.
#[cfg(test)]
pub fn check_target(kubelet_path: &Path, target: &str) -> Result<PathBuf, WriteError> {
    check_lexical(target)?;
    prove(kubelet_path, target).map(|(path, _)| path)
}

/// [`check_target`] after its lexical check, and the device and inode of the directory
/// `openat2` reached (`None` where the component-by-component check ran instead).
fn prove(kubelet_path: &Path, target: &str) -> Result<(PathBuf, Option<(u64, u64)>), WriteError> {
    let pods = kubelet_path.join("pods");
    let target_path = PathBuf::from(target);
    let below =
        target_path.strip_prefix(&pods).map_err(|_| invalid(target, format!("not under {}", pods.display())))?;
    if below.as_os_str().is_empty() {
        return Err(invalid(target, "is the pods directory itself"));
    }
    if let Some(proven) = resolves_without_symlinks(&pods, below) {
        return Ok((target_path, Some(proven)));
    }
    // Find the component at fault, for the error (or accept, where openat2 is unavailable).
    let mut dir = pods;
    check_real_dir(&dir, target)?;
    for component in below.components() {
        dir.push(component);
        check_real_dir(&dir, target)?;
    }
    Ok((target_path, None))
}

/// Does `below` resolve from `pods` (itself not a symlink) through real directories only, the
/// last one included? If so, the device and inode of the directory reached. Two opens
/// (`openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`) instead of an `lstat` of every
/// component from the root. `None` says nothing by itself (a kernel or seccomp profile without
/// `openat2` also gives it): the caller then checks each component.
fn resolves_without_symlinks(pods: &Path, below: &Path) -> Option<(u64, u64)> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let pods_dir = rustix::fs::open(pods, flags, Mode::empty()).ok()?;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let dir = rustix::fs::openat2(&pods_dir, below, flags, Mode::empty(), resolve).ok()?;
    let stat = rustix::fs::fstat(&dir).ok()?;
    Some((stat.st_dev, stat.st_ino))
}

/// Absolute, and no empty, `.` or `..` element (so no `//` and no trailing `/` either).
fn check_lexical(target: &str) -> Result<(), WriteError> {
    let Some(rest) = target.strip_prefix('/') else {
        return Err(invalid(target, "not an absolute path"));
    };
    for element in rest.split('/') {
        match element {
            "" => return Err(invalid(target, "not clean: empty path element")),
            "." | ".." => return Err(invalid(target, format!("not clean: {element:?} element"))),
            _ => {}
        }
    }
    Ok(())
}

/// `dir` must be a directory and not a symlink (lstat).
fn check_real_dir(dir: &Path, target: &str) -> Result<(), WriteError> {
    let meta = fs::symlink_metadata(dir).map_err(|error| {
        let reason = match error.kind() {
            io::ErrorKind::NotFound => "does not exist".to_string(),
            _ => format!("cannot be inspected: {error}"),
        };
        invalid(target, format!("{} {reason}", dir.display()))
    })?;
    if meta.file_type().is_symlink() {
        return Err(invalid(target, format!("{} is a symlink", dir.display())));
    }
    if !meta.is_dir() {
        return Err(invalid(target, format!("{} is not a directory", dir.display())));
    }
    Ok(())
}

fn invalid(target: &str, reason: impl Into<String>) -> WriteError {
    WriteError::InvalidTarget { path: target.to_string(), reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-syscall path really runs here (openat2 exists on every kernel CI uses), and it
    /// refuses what the component-by-component check refuses.
    #[test]
    fn openat2_accepts_real_directories_only() {
        let root = tempfile::tempdir().unwrap();
        let pods = root.path().join("pods");
        fs::create_dir_all(pods.join("uid/volumes/v/mount")).unwrap();
        fs::create_dir_all(root.path().join("elsewhere/mount")).unwrap();
        std::os::unix::fs::symlink(root.path().join("elsewhere"), pods.join("link")).unwrap();
        std::os::unix::fs::symlink(root.path().join("elsewhere/mount"), pods.join("uid/last")).unwrap();
        let reached = resolves_without_symlinks(&pods, Path::new("uid/volumes/v/mount"));
        let meta = fs::metadata(pods.join("uid/volumes/v/mount")).unwrap();
        assert_eq!(reached, Some((meta.dev(), meta.ino())));
        assert!(resolves_without_symlinks(&pods, Path::new("link/mount")).is_none(), "a symlinked component");
        assert!(resolves_without_symlinks(&pods, Path::new("uid/last")).is_none(), "a symlinked last component");
        assert!(resolves_without_symlinks(&pods, Path::new("uid/missing")).is_none());
    }
}
