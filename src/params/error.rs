//! Why a mount request's parameters were refused. Every variant carries enough context to find
//! the mistake (parameter key, object index and name, field, file name) and never a secret value
//! or token. `Display` is the detail only: the caller prefixes the code and the SPC name.

use crate::codes::ErrorCode;
use std::fmt;

/// The longest user-supplied text quoted in a message (in characters).
const MAX_QUOTED: usize = 128;

/// Quotes user-supplied text for a message: escaped like a Rust string, cut after
/// [`MAX_QUOTED`] characters.
pub(super) fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// The entry of `objects` a file comes from: an object, or one of its `jmesPath` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOwner {
    /// Position of the object in `objects` (0-based).
    pub index: usize,
    /// The object's `objectName`.
    pub name: String,
    /// Position of the `jmesPath` entry, when the file is one.
    pub jmes: Option<usize>,
}

impl fmt::Display for FileOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "objects[{}] ({})", self.index, quoted(&self.name))?;
        match self.jmes {
            Some(j) => write!(f, " jmesPath[{j}]"),
            None => Ok(()),
        }
    }
}

/// Formats `objects[i] ("name")`, or `objects[i]` when the name is unknown.
fn object_label(index: &usize, name: &Option<String>) -> String {
    match name {
        Some(name) => format!("objects[{index}] ({})", quoted(name)),
        None => format!("objects[{index}]"),
    }
}

fn no_objects(spc: &Option<String>) -> String {
    match spc {
        Some(spc) => format!("SecretProviderClass {} has no objects to mount", quoted(spc)),
        None => "the objects parameter is missing or empty: no objects to mount".to_string(),
    }
}

/// A refused parameter. See the module documentation.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    /// A request-level value (`attributes`, `secrets`, `permission`, or a parameter such as
    /// `region`) is invalid. `key` names it; `detail` completes the sentence.
    #[error("{key} {detail}")]
    Parameter { key: String, detail: String },

    /// An attribute whose value is not a JSON string (the value is never shown).
    #[error("attribute {} is not a string", quoted(.key))]
    NotAString { key: String },

    /// The service-account tokens are not in the shape kubelet sends.
    #[error(
        "the csi.storage.k8s.io/serviceAccount.tokens {origin} is malformed ({reason}); \
         check the CSIDriver's tokenRequests"
    )]
    TokensMalformed {
        /// Where the tokens came from: `attribute` or `entry of secrets`.
        origin: &'static str,
        /// The structural problem (never the token or the raw JSON).
        reason: String,
    },

    /// `objects` is missing or lists nothing.
    #[error("{}", no_objects(.spc))]
    NoObjects { spc: Option<String> },

    /// `objects` is not a YAML list of descriptors.
    #[error("objects is not a valid YAML list of object descriptors: {detail}")]
    ObjectsSyntax { detail: String },

    /// One descriptor is invalid: `field` names what, `detail` completes the sentence.
    #[error("{}: {field} {detail}", object_label(.index, .name))]
    Object {
        index: usize,
        /// `objectName`, when the descriptor has one.
        name: Option<String>,
        /// The field, e.g. `objectType` or `jmesPath[1].objectAlias`.
        field: String,
        detail: String,
    },

    /// Two files of the mount have the same name.
    #[error("{first} and {second} both resolve to file {}", quoted(.file))]
    Collision { file: String, first: Box<FileOwner>, second: Box<FileOwner> },

    /// A file's name is also a directory another file needs (`a` and `a/b`).
    #[error(
        "{owner} resolves to file {}, which {nested_owner} needs as a directory for {}",
        quoted(.file),
        quoted(.nested)
    )]
    DirectoryCollision { file: String, owner: Box<FileOwner>, nested: String, nested_owner: Box<FileOwner> },
}

impl ParamError {
    /// The stable code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParamError::TokensMalformed { .. } => ErrorCode::TokenMissing,
            _ => ErrorCode::InvalidParameters,
        }
    }

    /// An invalid request-level value.
    pub(super) fn parameter(key: &str, detail: impl Into<String>) -> Self {
        ParamError::Parameter { key: key.to_string(), detail: detail.into() }
    }
}

/// Kept small so `Result<_, ParamError>` stays cheap (clippy's `result_large_err`).
const _: () = assert!(std::mem::size_of::<ParamError>() <= 96);

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(index: usize, name: &str, jmes: Option<usize>) -> Box<FileOwner> {
        Box::new(FileOwner { index, name: name.to_string(), jmes })
    }

    #[test]
    fn display_is_the_detail_with_context() {
        let cases: Vec<(ParamError, &str)> = vec![
            (
                ParamError::parameter("usePodIdentity", "\"yes\" is not a boolean"),
                "usePodIdentity \"yes\" is not a boolean",
            ),
            (ParamError::NotAString { key: "region".into() }, "attribute \"region\" is not a string"),
            (
                ParamError::Object {
                    index: 1,
                    name: Some("db/creds".into()),
                    field: "objectType".into(),
                    detail: "\"ssm\" is not valid (use secretsmanager or ssmparameter)".into(),
                },
                "objects[1] (\"db/creds\"): objectType \"ssm\" is not valid \
                 (use secretsmanager or ssmparameter)",
            ),
            (
                ParamError::Object { index: 0, name: None, field: "objectName".into(), detail: "is required".into() },
                "objects[0]: objectName is required",
            ),
            (
                ParamError::Collision { file: "c".into(), first: owner(0, "c", None), second: owner(2, "x", Some(1)) },
                "objects[0] (\"c\") and objects[2] (\"x\") jmesPath[1] both resolve to file \"c\"",
            ),
            (
                ParamError::DirectoryCollision {
                    file: "a".into(),
                    owner: owner(0, "a", None),
                    nested: "a/b".into(),
                    nested_owner: owner(1, "/a/b", None),
                },
                "objects[0] (\"a\") resolves to file \"a\", which objects[1] (\"/a/b\") needs \
                 as a directory for \"a/b\"",
            ),
            (
                ParamError::NoObjects { spc: Some("my-spc".into()) },
                "SecretProviderClass \"my-spc\" has no objects to mount",
            ),
            (ParamError::NoObjects { spc: None }, "the objects parameter is missing or empty: no objects to mount"),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
            assert_eq!(err.code(), ErrorCode::InvalidParameters);
        }
    }

    #[test]
    fn token_problems_have_their_own_code() {
        let err = ParamError::TokensMalformed { origin: "attribute", reason: "not valid JSON".into() };
        assert_eq!(err.code(), ErrorCode::TokenMissing);
        assert_eq!(
            err.to_string(),
            "the csi.storage.k8s.io/serviceAccount.tokens attribute is malformed (not valid \
             JSON); check the CSIDriver's tokenRequests"
        );
    }

    #[test]
    fn quoted_escapes_and_truncates() {
        assert_eq!(quoted("a\nb\"c"), "\"a\\nb\\\"c\"");
        let long = "é".repeat(200);
        let shown = quoted(&long);
        assert_eq!(shown, format!("{:?}…", "é".repeat(MAX_QUOTED)));
        assert_eq!(quoted(&"x".repeat(MAX_QUOTED)), format!("\"{}\"", "x".repeat(128)));
    }
}
