//! jmesPath extraction: one string out of a JSON secret. Errors name the expression, never a
//! value.

use crate::secret::SecretBytes;

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
}

/// Evaluates `path` against the JSON document `value` and returns the string it selects.
pub fn extract(value: &[u8], path: &str) -> Result<SecretBytes, JmesError> {
    let json: serde_json::Value =
        serde_json::from_slice(value).map_err(|_| JmesError::NotJson { path: path.to_string() })?;
    let expr = jmespath::compile(path)
        .map_err(|e| JmesError::BadExpression { path: path.to_string(), reason: e.reason.to_string() })?;
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
}
