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
    let mut dir = pods;
    check_real_dir(&dir, target)?;
    for component in below.components() {
        dir.push(component);
        check_real_dir(&dir, target)?;
    }
    Ok(target_path)
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
