//! The validated `objects` of recently seen requests, held by whoever serves mounts (the
//! mounter owns one; nothing process-wide). Every pod of a SecretProviderClass sends
//! the same `objects` text on every mount and every re-sync; parsing that YAML is most of a
//! re-sync's CPU. A hit needs the same text and the same request context (path translation,
//! default mode, failover region), so it returns exactly what parsing would. Only successes are
//! kept, and only descriptors (names, aliases, modes): never a value or a token.
//!
//! The memo is bounded in bytes (texts plus what they parsed to, [`MAX_BYTES`]) as well as in
//! texts: distinct multi-megabyte texts must not grow the process. Past either bound it starts
//! over; a text too large to be worth keeping is never kept.

use super::ObjectSpec;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Distinct `objects` texts kept at most; beyond it the memo starts over.
const MAX_TEXTS: usize = 512;
/// Bytes kept at most (texts and parsed descriptors, estimated); beyond it the memo starts over.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// The largest single entry kept (bytes, estimated): a quarter of the budget, so one huge text
/// cannot evict everything else every time it is parsed.
const MAX_ENTRY: usize = MAX_BYTES / 4;

/// What of the request, besides the text, a parse depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Context {
    pub translation: Option<char>,
    pub default_mode: u32,
    pub has_failover_region: bool,
}

/// What one text parsed to, per context.
type Parsed = Vec<(Context, Arc<[ObjectSpec]>)>;

/// The memo of `objects` texts, bounded in texts and in bytes. Shared by the mounts of one
/// service; clones of the parsed descriptors are cheap (`Arc`).
#[derive(Default)]
pub struct ObjectsMemo(Mutex<Memo>);

impl std::fmt::Debug for ObjectsMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let memo = crate::sync::lock(&self.0);
        f.debug_struct("ObjectsMemo").field("texts", &memo.parsed.len()).field("bytes", &memo.bytes).finish()
    }
}

#[derive(Default)]
struct Memo {
    parsed: HashMap<String, Parsed>,
    bytes: usize,
}

/// An estimate of the heap an entry holds: its text and every string of its descriptors.
fn size_of(yaml: &str, objects: &[ObjectSpec]) -> usize {
    let strings = |o: &ObjectSpec| {
        let failover = o.failover.as_ref().map_or(0, |f| {
            f.name.len()
                + f.version_id.as_ref().map_or(0, String::len)
                + f.version_label.as_ref().map_or(0, String::len)
        });
        let jmes: usize = o.jmes.iter().map(|j| std::mem::size_of_val(j) + j.path.len() + j.file_name.len()).sum();
        let opt = |v: &Option<String>| v.as_ref().map_or(0, String::len);
        let bulk = match &o.bulk {
            Some(super::Bulk::Path { path, .. }) => path.len(),
            Some(super::Bulk::Filters(filters)) => (filters.iter())
                .map(|f| std::mem::size_of_val(f) + f.key.len() + f.values.iter().map(|v| 24 + v.len()).sum::<usize>())
                .sum(),
            None => 0,
        };
        o.name.len()
            + o.file_name.len()
            + opt(&o.arn_region)
            + opt(&o.version_id)
            + opt(&o.version_label)
            + failover
            + jmes
            + bulk
    };
    let objects: usize = objects.iter().map(|o| std::mem::size_of_val(o) + strings(o)).sum();
    yaml.len() + objects
}

impl ObjectsMemo {
    /// The objects parsed earlier from `yaml` in `context`.
    pub(super) fn get(&self, yaml: &str, context: Context) -> Option<Arc<[ObjectSpec]>> {
        crate::sync::lock(&self.0).get(yaml, context)
    }

    /// Remembers what `yaml` parsed to in `context`.
    pub(super) fn put(&self, yaml: &str, context: Context, objects: &Arc<[ObjectSpec]>) {
        crate::sync::lock(&self.0).put(yaml, context, objects)
    }
}

impl Memo {
    fn get(&self, yaml: &str, context: Context) -> Option<Arc<[ObjectSpec]>> {
        let parsed = self.parsed.get(yaml)?;
        parsed.iter().find(|(c, _)| *c == context).map(|(_, objects)| objects.clone())
    }

    fn put(&mut self, yaml: &str, context: Context, objects: &Arc<[ObjectSpec]>) {
        let size = size_of(yaml, objects);
        if size > MAX_ENTRY {
            return;
        }
        let full = self.bytes + size > MAX_BYTES || self.parsed.len() >= MAX_TEXTS;
        if full && !self.parsed.contains_key(yaml) {
            *self = Memo::default();
        }
        let parsed = self.parsed.entry(yaml.to_string()).or_default();
        if !parsed.iter().any(|(c, _)| *c == context) {
            parsed.push((context, objects.clone()));
            self.bytes += size;
        }
    }
}

#[cfg(test)]
#[path = "tests/memo.rs"]
mod tests;
