//! Tests of `params::memo` (a child module of it, so they see its private items).

use super::*;

fn context(mode: u32) -> Context {
    Context { translation: Some('_'), default_mode: mode, has_failover_region: false }
}

#[test]
fn a_hit_needs_the_same_text_and_context() {
    let mut memo = Memo::default();
    let yaml = "- objectName: memo-test-only\n  objectType: secretsmanager\n";
    assert!(memo.get(yaml, context(0o644)).is_none());
    memo.put(yaml, context(0o644), &Arc::from([]));
    assert_eq!(memo.get(yaml, context(0o644)).as_deref(), Some(&[][..]));
    assert!(memo.get(yaml, context(0o600)).is_none(), "another default mode");
    assert!(memo.get(&format!("{yaml}\n"), context(0o644)).is_none(), "another text");
}

/// Regression (issue #11): distinct multi-megabyte texts each stayed in the memo (up to 512
/// of them), growing the process by gigabytes.
#[test]
fn the_memo_is_bounded_in_bytes() {
    let mut memo = Memo::default();
    let held = |memo: &Memo| memo.parsed.keys().map(String::len).sum::<usize>();
    for i in 0..40 {
        let yaml = format!("# {i}\n{}", "x".repeat(3 * 1024 * 1024));
        memo.put(&yaml, context(0o644), &Arc::from([]));
        assert!(held(&memo) <= MAX_BYTES, "{} bytes after {i} texts", held(&memo));
    }
    for i in 0..40 {
        let yaml = format!("# {i}\n{}", "x".repeat(MAX_ENTRY - 64));
        memo.put(&yaml, context(0o600), &Arc::from([]));
        assert!(memo.get(&yaml, context(0o600)).is_some(), "an entry within the bound is kept");
        assert!(held(&memo) <= MAX_BYTES && memo.bytes <= MAX_BYTES, "{} bytes after {i} texts", held(&memo));
    }
}
