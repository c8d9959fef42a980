//! The validated `objects` of recently seen requests. Every pod of a SecretProviderClass sends
//! the same `objects` text on every mount and every re-sync; parsing that YAML is most of a
//! re-sync's CPU. A hit needs the same text and the same request context (path translation,
//! default mode, failover region), so it returns exactly what parsing would. Only successes are
//! kept, and only descriptors (names, aliases, modes): never a value or a token.

use super::ObjectSpec;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

/// Distinct `objects` texts kept at most; beyond it the memo starts over.
const MAX_TEXTS: usize = 512;

/// What of the request, besides the text, a parse depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Context {
    pub translation: Option<char>,
    pub default_mode: u32,
    pub has_failover_region: bool,
}

type Memo = HashMap<String, Vec<(Context, Arc<[ObjectSpec]>)>>;

static MEMO: LazyLock<Mutex<Memo>> = LazyLock::new(Mutex::default);

fn memo() -> MutexGuard<'static, Memo> {
    MEMO.lock().unwrap_or_else(|p| p.into_inner())
}

/// The objects parsed earlier from `yaml` in `context`.
pub(super) fn get(yaml: &str, context: Context) -> Option<Arc<[ObjectSpec]>> {
    let memo = memo();
    let parsed = memo.get(yaml)?;
    parsed.iter().find(|(c, _)| *c == context).map(|(_, objects)| objects.clone())
}

/// Remembers what `yaml` parsed to in `context`.
pub(super) fn put(yaml: &str, context: Context, objects: &Arc<[ObjectSpec]>) {
    let mut memo = memo();
    if memo.len() >= MAX_TEXTS && !memo.contains_key(yaml) {
        memo.clear();
    }
    let parsed = memo.entry(yaml.to_string()).or_default();
    if !parsed.iter().any(|(c, _)| *c == context) {
        parsed.push((context, objects.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(mode: u32) -> Context {
        Context { translation: Some('_'), default_mode: mode, has_failover_region: false }
    }

    #[test]
    fn a_hit_needs_the_same_text_and_context() {
        let yaml = "- objectName: memo-test-only\n  objectType: secretsmanager\n";
        assert!(get(yaml, context(0o644)).is_none());
        put(yaml, context(0o644), &Arc::from([]));
        assert_eq!(get(yaml, context(0o644)).as_deref(), Some(&[][..]));
        assert!(get(yaml, context(0o600)).is_none(), "another default mode");
        assert!(get(&format!("{yaml}\n"), context(0o644)).is_none(), "another text");
    }
}
