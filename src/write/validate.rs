//! A last check of the requested files before anything is written: the rules the driver
//! applies to the files of a `MountResponse`, plus collisions.

use super::{OutFile, WriteError};
use std::collections::HashSet;

/// The longest path element.
const MAX_ELEMENT: usize = 255;
/// The longest path.
const MAX_PATH: usize = 4096;

/// Every path valid, no path twice, no file that is also a directory of another.
pub(super) fn validate_files(files: &[OutFile]) -> Result<(), WriteError> {
    let mut paths = HashSet::new();
    let mut dirs = HashSet::new();
    for file in files {
        validate_path(&file.path).map_err(|reason| invalid(&file.path, reason))?;
        if !paths.insert(file.path.as_str()) {
            return Err(invalid(&file.path, "requested twice"));
        }
        dirs.extend(file.path.match_indices('/').map(|(at, _)| &file.path[..at]));
    }
    match paths.intersection(&dirs).next() {
        Some(path) => Err(invalid(path, "is both a file and a directory of another file")),
        None => Ok(()),
    }
}

/// Non-empty, relative, clean, first element not hidden (`..`), within the length limits.
fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.len() > MAX_PATH {
        return Err("path longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.starts_with("..") {
        return Err("first element starts with \"..\"");
    }
    if path.contains('\0') {
        return Err("NUL byte in path");
    }
    path.split('/').try_for_each(validate_element)
}

fn validate_element(element: &str) -> Result<(), &'static str> {
    match element {
        "" => Err("empty path element"),
        "." | ".." => Err("\".\" or \"..\" path element"),
        _ if element.len() > MAX_ELEMENT => Err("path element longer than 255 bytes"),
        _ => Ok(()),
    }
}

fn invalid(path: &str, reason: &str) -> WriteError {
    WriteError::InvalidFile { path: path.to_string(), reason: reason.to_string() }
}
