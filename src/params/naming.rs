//! File names: how an object (or a `jmesPath` entry) names its file, exactly as the Go provider
//! does, which names the driver accepts, and which sets of names can coexist in one mount.

use super::ObjectSpec;
use super::error::{FileOwner, ParamError};
use std::collections::BTreeMap;

/// The longest path the driver accepts (bytes).
const MAX_PATH: usize = 4096;
/// The longest path element the driver accepts (bytes).
const MAX_ELEMENT: usize = 255;

/// The file name for `base` (the objectAlias, else the objectName).
///
/// With a translation character every `/` (a leading one included) becomes it; without one
/// (`pathTranslation: False`) a single leading `/` is stripped and inner ones make
/// subdirectories. The result still has to pass [`validate_relative_path`].
pub fn file_name(base: &str, translation: Option<char>) -> String {
    match translation {
        Some(c) => base.replace('/', c.encode_utf8(&mut [0; 4])),
        None => base.strip_prefix('/').unwrap_or(base).to_string(),
    }
}

/// Checks a relative file path against the driver's rules (and the atomic writer's layout):
/// non-empty, relative, clean (no empty, `.` or `..` element), first element not starting
/// with `..` (`..data` and friends are reserved), no NUL, elements ≤ 255 bytes, ≤ 4096 bytes.
///
/// The error completes a sentence about the path ("… is absolute") and does not repeat it.
pub fn validate_relative_path(p: &str) -> Result<(), String> {
    let problem = if p.is_empty() {
        Some("is empty")
    } else if p.starts_with('/') {
        Some("is absolute")
    } else if p.contains('\0') {
        Some("contains a NUL byte")
    } else if p.len() > MAX_PATH {
        Some("is longer than 4096 bytes")
    } else if p.starts_with("..") {
        Some("starts with \"..\" (reserved for the atomic writer's ..data layout)")
    } else {
        p.split('/').find_map(element_problem)
    };
    problem.map_or(Ok(()), |problem| Err(problem.to_string()))
}

/// What is wrong with one path element, if anything.
fn element_problem(element: &str) -> Option<&'static str> {
    match element {
        "" => Some("has an empty element (a doubled or trailing \"/\")"),
        "." => Some("has a \".\" element"),
        ".." => Some("has a \"..\" element"),
        _ if element.len() > MAX_ELEMENT => Some("has an element longer than 255 bytes"),
        _ => None,
    }
}

/// Every file of the mount known before anything is read, with the entry it comes from (the
/// files a `jsonKeys` object or a bulk descriptor gives are known, and checked, only once read).
fn files(objects: &[ObjectSpec]) -> impl Iterator<Item = (&str, FileOwner)> {
    objects.iter().flat_map(|object| {
        let owner = move |jmes| FileOwner { index: object.index, name: object.name.clone(), jmes };
        let own = (!object.expands()).then(|| (object.file_name.as_str(), owner(None))).into_iter();
        let extracted =
            (object.jmes.iter().enumerate()).map(move |(j, entry)| (entry.file_name.as_str(), owner(Some(j))));
        own.chain(extracted)
    })
}

/// The directories a path needs: `a/b/c` → `a`, `a/b`.
fn parent_dirs(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(at, _)| &path[..at])
}

/// Rejects two files with the same name, and a file whose name another file needs as a
/// directory (`a` and `a/b`): the Go provider would silently overwrite one with the other.
pub(super) fn check_collisions(objects: &[ObjectSpec]) -> Result<(), ParamError> {
    let mut seen: BTreeMap<&str, FileOwner> = BTreeMap::new();
    for (file, owner) in files(objects) {
        if let Some(first) = seen.get(file) {
            return Err(ParamError::Collision {
                file: file.to_string(),
                first: Box::new(first.clone()),
                second: Box::new(owner),
            });
        }
        seen.insert(file, owner);
    }
    for (nested, nested_owner) in &seen {
        if let Some((dir, owner)) = parent_dirs(nested).find_map(|d| seen.get_key_value(d)) {
            return Err(ParamError::DirectoryCollision {
                file: dir.to_string(),
                owner: Box::new(owner.clone()),
                nested: nested.to_string(),
                nested_owner: Box::new(nested_owner.clone()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests/naming.rs"]
mod tests;
