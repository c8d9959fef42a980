//! jmesPath extraction: one value out of a JSON secret (a string as its text, anything else
//! as JSON text), and the top-level keys of a JSON object (`jsonKeys`). Errors name the
//! expression, never a value.
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
    #[error("jmesPath {path:?}: the match cannot be written as JSON text")]
    NotWritable { path: String },
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

/// Evaluates `path` against the JSON document `value` and returns what it selects: a string as
/// its text; a number, boolean, object or list as JSON text (the Go provider refused those, so no
/// working SecretProviderClass changes). Nothing matched (or `null`) is an error.
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
        None => serde_json::to_vec(&*found)
            .map(SecretBytes::new)
            .map_err(|_| JmesError::NotWritable { path: path.to_string() }),
    }
}

/// Why a value's top-level keys could not be listed (`jsonKeys`); never shows a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("jsonKeys: the value is not JSON")]
    NotJson,
    #[error("jsonKeys: the value is JSON but not an object (a {kind})")]
    NotAnObject { kind: &'static str },
}

/// The top-level keys of the JSON object `value`, each with its value: a string as its text,
/// anything else as JSON text. Keys come in sorted order (a later duplicate key wins).
pub fn top_level(value: &[u8]) -> Result<Vec<(String, SecretBytes)>, KeysError> {
    let json: serde_json::Value = serde_json::from_slice(value).map_err(|_| KeysError::NotJson)?;
    let serde_json::Value::Object(map) = json else {
        return Err(KeysError::NotAnObject { kind: kind_of(&json) });
    };
    let text = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => SecretBytes::new(s.into_bytes()),
        other => SecretBytes::new(other.to_string().into_bytes()),
    };
    Ok(map.into_iter().map(|(k, v)| (k, text(v))).collect())
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "object",
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

    /// Issue #17 item 5: numbers, booleans, objects and lists are written as JSON text.
    #[test]
    fn non_strings_are_json_text() {
        let text = |path: &str| extract(RDS, path).map(|v| String::from_utf8(v.expose().to_vec()).expect("utf-8"));
        assert_eq!(text("port"), Ok("5432".into()));
        assert_eq!(text("tls"), Ok("true".into()));
        assert_eq!(text("nested"), Ok(r#"{"k":"v"}"#.into()));
        assert_eq!(text("[username, port]"), Ok(r#"["u",5432]"#.into()));
        let float = extract(br#"{"f":1.5,"big":12345678901234567890}"#, "[f, big]").expect("numbers");
        assert_eq!(float.expose(), br#"[1.5,12345678901234567890]"#);
    }

    #[test]
    fn top_level_keys_are_listed_with_strings_as_text_and_the_rest_as_json() {
        let keys = top_level(RDS).expect("object");
        let shown: Vec<(&str, &[u8])> = keys.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(
            shown,
            [
                ("nested", &br#"{"k":"v"}"#[..]),
                ("password", b"p"),
                ("port", b"5432"),
                ("tls", b"true"),
                ("username", b"u")
            ]
        );
        assert_eq!(top_level(b"[1]").map(|_| ()), Err(KeysError::NotAnObject { kind: "list" }));
        assert_eq!(top_level(b"hunter2").map(|_| ()), Err(KeysError::NotJson));
    }

    #[test]
    fn errors_name_the_path_never_the_value() {
        assert_eq!(extract(RDS, "missing"), Err(JmesError::Missing { path: "missing".into() }));
        assert_eq!(extract(RDS, "nested.none"), Err(JmesError::Missing { path: "nested.none".into() }));
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
