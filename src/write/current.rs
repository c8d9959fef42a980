//! Reading the current set (the files under `..data`) and comparing it with a requested one.

use super::error::{io_err, layout};
use super::{DATA, OutFile, WriteError, effective_mode, is_set_dir_name};
use crate::secret::SecretBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Reads the files of the current `..data` set, sorted by path; empty if there is no
/// `..data` (or it dangles). Symlinks inside the set are never followed: one is an error.
#[cfg(test)]
pub fn read_current(target: &Path) -> Result<Vec<OutFile>, WriteError> {
    match current_dir(target)? {
        Some(name) => read_set(target, &name),
        None => Ok(Vec::new()),
    }
}

/// The current set as [`super::write_atomic`] sees it: the name of its directory (`None`
/// without `..data`) and its files; `None` when it cannot be read (it is then simply replaced;
/// the reason is logged).
pub(super) fn load(target: &Path) -> Option<(Option<String>, Vec<OutFile>)> {
    let read = || -> Result<_, WriteError> {
        let name = current_dir(target)?;
        let files = match &name {
            Some(name) => read_set(target, name)?,
            None => Vec::new(),
        };
        Ok((name, files))
    };
    read()
        .inspect_err(|error| {
            tracing::warn!(target = %target.display(), %error, "current set unreadable; replacing it");
        })
        .ok()
}

/// Paths added, removed, or whose contents or mode differ between `current` and `wanted`.
pub(super) fn changed_paths(current: &[OutFile], wanted: &[OutFile]) -> Vec<String> {
    let old: BTreeMap<&str, &OutFile> = current.iter().map(|f| (f.path.as_str(), f)).collect();
    let new: BTreeMap<&str, &OutFile> = wanted.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut changed = BTreeSet::new();
    for (path, file) in &new {
        if old.get(path).is_none_or(|old| !same_file(old, file)) {
            changed.insert(*path);
        }
    }
    changed.extend(old.keys().filter(|path| !new.contains_key(*path)));
    changed.into_iter().map(str::to_string).collect()
}

/// Does the file on disk (`old`) hold what `new` asks for?
fn same_file(old: &OutFile, new: &OutFile) -> bool {
    old.mode == effective_mode(new.mode) && old.contents.expose() == new.contents.expose()
}

/// The name of the directory `..data` points to; `None` without `..data`. A `..data` that is
/// not a symlink to a set directory directly inside the target is an error.
fn current_dir(target: &Path) -> Result<Option<String>, WriteError> {
    let link = match fs::read_link(target.join(DATA)) {
        Ok(link) => link,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
            return Err(layout(DATA, "is not a symlink"));
        }
        Err(error) => return Err(io_err("read link", DATA)(error)),
    };
    match link.to_str() {
        Some(name) if is_set_dir_name(name) => Ok(Some(name.to_string())),
        _ => Err(layout(DATA, format!("points to {link:?}, not to a set directory"))),
    }
}

/// Reads the set directory `name`; a missing one (dangling `..data`) is an empty set.
fn read_set(target: &Path, name: &str) -> Result<Vec<OutFile>, WriteError> {
    let dir = target.join(name);
    match fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(layout(name, "is not a directory")),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_err("inspect", name)(error)),
    }
    let mut files = Vec::new();
    walk(&dir, "", &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Collects the regular files under `dir` (`prefix` is its path inside the set).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<OutFile>) -> Result<(), WriteError> {
    let shown = if prefix.is_empty() { DATA } else { prefix };
    for entry in fs::read_dir(dir).map_err(io_err("read directory", shown))? {
        let entry = entry.map_err(io_err("read directory", shown))?;
        let Ok(name) = entry.file_name().into_string() else {
            return Err(layout(shown, "holds a name that is not UTF-8"));
        };
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let kind = entry.file_type().map_err(io_err("inspect", &rel))?;
        if kind.is_dir() {
            walk(&entry.path(), &rel, out)?;
        } else if kind.is_file() {
            out.push(read_file(&entry.path(), rel)?);
        } else {
            return Err(layout(rel, "is neither a regular file nor a directory"));
        }
    }
    Ok(())
}

/// Reads one regular file (never through a symlink).
fn read_file(path: &Path, rel: String) -> Result<OutFile, WriteError> {
    let mut file =
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(io_err("open", &rel))?;
    let meta = file.metadata().map_err(io_err("inspect", &rel))?;
    if !meta.is_file() {
        return Err(layout(rel, "is not a regular file"));
    }
    // One spare byte, so that reading to the end does not reallocate (and leave a copy).
    let mut contents = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.read_to_end(&mut contents).map_err(io_err("read", &rel))?;
    let mode = meta.permissions().mode() & 0o7777;
    Ok(OutFile { path: rel, mode, contents: SecretBytes::new(contents) })
}
