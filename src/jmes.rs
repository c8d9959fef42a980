//! jmesPath extraction: one string out of a JSON secret. Errors name the expression, never a
//! value.
//!
//! The `jmespath` crate parses, evaluates and drops expressions recursively, so an expression
//! nested thousands of levels deep (`!!!…a`, `(((…)))`) would overflow a worker's stack and
//! abort the whole process. [`check`] bounds an expression's length and operators before the
//! parser ever sees it; it runs when `objects` is parsed (so a bad expression is refused before
//! any AWS call) and again before every evaluation.

use crate::secret::SecretBytes;

/// The longest jmesPath expression accepted, in bytes. Real expressions are a few dozen bytes
/// (`username`, `"db.host"`, `credentials[0].password`).
pub const MAX_EXPRESSION_LEN: usize = 1024;

/// The most operators and brackets accepted (`.`, `|`, `&`, `!`, `(`, `[`, `{`, comparisons,
/// commas; quoted text does not count). The parser, the evaluator and the drop of a parsed
/// expression all recurse once per level of the syntax tree, and every level needs one of these,
/// so this bounds the depth of all three: `tests::bounded_expressions_fit_a_small_stack` runs
/// the worst of them on a quarter of a runtime thread's stack ([`crate::WORKER_STACK_BYTES`]) in
/// a debug build, whose frames are ten times a release build's. Real expressions use a handful
/// (`credentials[0].password` uses two).
pub const MAX_OPERATORS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JmesError {
    #[error("jmesPath {path:?}: the value is not JSON")]
    NotJson { path: String },
    #[error("jmesPath {path:?}: invalid expression ({reason})")]
    BadExpression { path: String, reason: String },
    #[error("jmesPath {path:?}: no such key (the expression matched nothing)")]
    Missing { path: String },
    #[error("jmesPath {path:?}: the match is a {kind}, not a string")]
    NotAString { path: String, kind: &'static str },
    #[error("jmesPath of {len} bytes is too long (at most {MAX_EXPRESSION_LEN})")]
    TooLong { len: usize },
    #[error("jmesPath {path:?}…: more than {MAX_OPERATORS} operators and brackets")]
    TooComplex { path: String },
}

/// Whether `path` is a jmesPath expression this provider will evaluate: within the bounds and
/// valid. Cheap enough to run on every parse of `objects`.
pub fn check(path: &str) -> Result<(), JmesError> {
    compile(path).map(drop)
}

/// The compiled expression, after the bounds are checked.
fn compile(path: &str) -> Result<jmespath::Expression<'static>, JmesError> {
    if path.len() > MAX_EXPRESSION_LEN {
        return Err(JmesError::TooLong { len: path.len() });
    }
    if operators(path) > MAX_OPERATORS {
        return Err(JmesError::TooComplex { path: shorten(path) });
    }
    jmespath::compile(path)
        .map_err(|e| JmesError::BadExpression { path: path.to_string(), reason: e.reason.to_string() })
}

/// The first characters of a long expression, for messages.
fn shorten(path: &str) -> String {
    path.chars().take(64).collect()
}

/// How many operator and bracket characters `path` has outside quoted text (`"…"`, `'…'`,
/// `` `…` ``).
fn operators(path: &str) -> usize {
    let (mut count, mut quote, mut escaped) = (0usize, None, false);
    for c in path.chars() {
        match quote {
            Some(q) => (escaped, quote) = (!escaped && c == '\\', if !escaped && c == q { None } else { Some(q) }),
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None if ".|&!([{<>=,".contains(c) => count += 1,
            None => {}
        }
    }
    count
}

/// Evaluates `path` against the JSON document `value` and returns the string it selects.
pub fn extract(value: &[u8], path: &str) -> Result<SecretBytes, JmesError> {
    let expr = compile(path)?;
    let json: serde_json::Value =
        serde_json::from_slice(value).map_err(|_| JmesError::NotJson { path: path.to_string() })?;
    let found = expr
        .search(json)
        .map_err(|e| JmesError::BadExpression { path: path.to_string(), reason: e.reason.to_string() })?;
    match found.as_string() {
        Some(text) => Ok(SecretBytes::from(text.as_str())),
        None if found.is_null() => Err(JmesError::Missing { path: path.to_string() }),
        None => Err(JmesError::NotAString { path: path.to_string(), kind: kind_of(&found) }),
    }
}

fn kind_of(v: &jmespath::Variable) -> &'static str {
    if v.is_number() {
        "number"
    } else if v.is_boolean() {
        "boolean"
    } else if v.is_array() {
        "list"
    } else {
        "object"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RDS: &[u8] = br#"{"username":"u","password":"p","port":5432,"nested":{"k":"v"},"tls":true}"#;

    #[test]
    fn extracts_strings() {
        assert_eq!(extract(RDS, "username").map(|v| v.expose().to_vec()), Ok(b"u".to_vec()));
        assert_eq!(extract(RDS, "nested.k").map(|v| v.expose().to_vec()), Ok(b"v".to_vec()));
    }

    #[test]
    fn errors_name_the_path_never_the_value() {
        assert_eq!(extract(RDS, "missing"), Err(JmesError::Missing { path: "missing".into() }));
        assert_eq!(extract(RDS, "port"), Err(JmesError::NotAString { path: "port".into(), kind: "number" }));
        assert_eq!(extract(RDS, "tls"), Err(JmesError::NotAString { path: "tls".into(), kind: "boolean" }));
        assert!(matches!(extract(RDS, "nested"), Err(JmesError::NotAString { kind: "object", .. })));
        assert_eq!(extract(b"hunter2", "username"), Err(JmesError::NotJson { path: "username".into() }));
        let bad = extract(RDS, "[[").expect_err("bad expression");
        assert!(!bad.to_string().contains("password"), "{bad}");
    }

    /// Regression (issue #11): 20,000 nested levels overflowed a tokio worker's stack while
    /// compiling and aborted the process. Without the bounds these calls abort the test binary.
    #[test]
    fn deep_expressions_are_refused_before_parsing() {
        for deep in [format!("{}a", "!".repeat(20_000)), format!("{}a{}", "(".repeat(20_000), ")".repeat(20_000))] {
            assert!(matches!(check(&deep), Err(JmesError::TooLong { .. })), "length first");
            assert!(matches!(extract(RDS, &deep), Err(JmesError::TooLong { .. })));
        }
        let over = MAX_OPERATORS + 1;
        for deep in [
            format!("{}a", "!".repeat(over)),
            format!("{}a{}", "(".repeat(over), ")".repeat(over)),
            format!("a{}", ".a".repeat(over)),
            format!("a{}", "||a".repeat(over / 2 + 1)),
        ] {
            assert!(matches!(check(&deep), Err(JmesError::TooComplex { .. })), "{deep}");
        }
        let ok = format!("{}username{}", "(".repeat(MAX_OPERATORS / 2), ")".repeat(MAX_OPERATORS / 2));
        assert_eq!(extract(RDS, &ok).map(|v| v.expose().to_vec()), Ok(b"u".to_vec()));
    }

    #[test]
    fn quoted_text_does_not_count() {
        assert_eq!(operators(r#""((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((""#), 0);
        assert_eq!(operators("'[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['"), 0);
        assert_eq!(operators(r#""a\"((((""#), 0, "an escaped quote does not end the string");
        assert_eq!(operators("credentials[0].password"), 2);
        assert_eq!(operators("!(a && b)"), 4);
        assert_eq!(check(r#""key.with.dots""#), Ok(()));
    }

    /// The worst expressions within the bounds compile, evaluate and drop on a quarter of a
    /// runtime thread's stack, in a debug build (release frames are about ten times smaller).
    #[test]
    fn bounded_expressions_fit_a_small_stack() {
        let n = MAX_OPERATORS;
        let worst = [
            format!("a{}", ".a".repeat(n)),
            format!("a{}", "|a".repeat(n)),
            format!("a{}", "||a".repeat(n / 2)),
            format!("a{}", "&&a".repeat(n / 2)),
            format!("{}a", "!".repeat(n)),
            format!("{}a", "&".repeat(n)),
            format!("{}a{}", "!(".repeat(n / 3), ")".repeat(n / 3)),
            format!("{}a{}", "(".repeat(n / 2), ")".repeat(n / 2)),
            format!("{}a{}", "[".repeat(n / 2), "]".repeat(n / 2)),
            format!("a{}", "[*]".repeat(n / 2)),
            format!("{}a{}", "{b:".repeat(n / 2), "}".repeat(n / 2)),
        ];
        let doc = br#"{"a":{"a":{"a":"x"}}}"#;
        let thread = std::thread::Builder::new().stack_size(crate::WORKER_STACK_BYTES / 4).spawn(move || {
            for path in &worst {
                assert!(operators(path) <= MAX_OPERATORS, "{path}");
                let _ = check(path);
                let _ = extract(doc, path);
            }
        });
        thread.expect("spawn").join().expect("evaluation on a small stack");
    }
}
