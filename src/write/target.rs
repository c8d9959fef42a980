//! Checking the target path the driver sends before anything is written into it.

use super::WriteError;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Accepts `target` only if it is absolute, lexically clean (no `.`, `..` or empty element),
/// strictly under `<kubelet_path>/pods/`, and every component from `<kubelet_path>/pods` down
/// to the target itself is a real directory (not a symlink). `kubelet_path` itself may be a
/// symlink; components above `pods` are not checked.
pub fn check_target(kubelet_path: &Path, target: &str) -> Result<PathBuf, WriteError> {
    check_lexical(target)?;
    let pods = kubelet_path.join("pods");
    let target_path = PathBuf::from(target);
    let below =
        target_path.strip_prefix(&pods).map_err(|_| invalid(target, format!("not under {}", pods.display())))?;
    if below.as_os_str().is_empty() {
        return Err(invalid(target, "is the pods directory itself"));
    }
    if resolves_without_symlinks(&pods, below) {
        return Ok(target_path);
    }
    // Find the component at fault, for the error (or accept, where openat2 is unavailable).
    let mut dir = pods;
    check_real_dir(&dir, target)?;
    for component in below.components() {
        dir.push(component);
        check_real_dir(&dir, target)?;
    }
    Ok(target_path)
}

/// Does `below` resolve from `pods` (itself not a symlink) through real directories only, the
/// last one included? Two opens (`openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`) instead
/// of an `lstat` of every component from the root. `false` says nothing by itself (a kernel
/// or seccomp profile without `openat2` also gives it): the caller then checks each component.
fn resolves_without_symlinks(pods: &Path, below: &Path) -> bool {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(pods_dir) = rustix::fs::open(pods, flags, Mode::empty()) else { return false };
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(&pods_dir, below, flags, Mode::empty(), resolve).is_ok()
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
        assert!(resolves_without_symlinks(&pods, Path::new("uid/volumes/v/mount")));
        assert!(!resolves_without_symlinks(&pods, Path::new("link/mount")), "a symlinked component");
        assert!(!resolves_without_symlinks(&pods, Path::new("uid/last")), "a symlinked last component");
        assert!(!resolves_without_symlinks(&pods, Path::new("uid/missing")));
    }
}
