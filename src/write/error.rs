//! The errors of [`super`]: they name the relative path and the I/O error, never contents.

use crate::codes::ErrorCode;
use std::io;

/// Why a target was rejected or a set could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target path is not acceptable (not under `<kubelet>/pods`, not clean, a symlink…).
    #[error("target path {path}: {reason}")]
    InvalidTarget { path: String, reason: String },
    /// A requested file cannot be written as asked (bad path, collision). Paths are validated
    /// when the request is parsed, so this is a bug upstream.
    #[error("file {path:?} rejected: {reason}")]
    InvalidFile { path: String, reason: String },
    /// An entry in the target is not what the layout allows (e.g. `..data` is not a symlink).
    #[error("{path:?} in the target {reason}")]
    Layout { path: String, reason: String },
    /// A filesystem operation failed; `path` is relative to the target.
    #[error("cannot {op} {path:?}: {error}")]
    Io { op: &'static str, path: String, error: io::Error },
}

impl WriteError {
    /// The stable error code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            WriteError::InvalidTarget { .. } => ErrorCode::InvalidTarget,
            WriteError::InvalidFile { .. } => ErrorCode::Internal,
            WriteError::Layout { .. } | WriteError::Io { .. } => ErrorCode::WriteFailed,
        }
    }
}

/// Wraps an I/O error of `op` on `path` (relative to the target), for `map_err`.
pub(super) fn io_err(op: &'static str, path: impl Into<String>) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.into();
    move |error| WriteError::Io { op, path, error }
}

/// A layout error on `path` (relative to the target).
pub(super) fn layout(path: impl Into<String>, reason: impl Into<String>) -> WriteError {
    WriteError::Layout { path: path.into(), reason: reason.into() }
}
