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
#[path = "tests/error.rs"]
mod tests;
