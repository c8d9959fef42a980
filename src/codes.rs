//! The stable error codes: every failure maps to exactly one. A code is the prefix of the gRPC
//! status message the pod owner sees (`NotFound: object "db/creds" …`), a metrics label and a
//! log field, so its spelling never changes.

use std::fmt;

/// A stable, user-facing classification of a failed `Mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The SecretProviderClass parameters (or the request) are invalid.
    InvalidParameters,
    /// The service-account token needed is missing or malformed.
    TokenMissing,
    /// The identity of the pod could not be established (annotation missing, STS refused).
    IdentityFailed,
    /// AWS refused access to an object.
    AccessDenied,
    /// The object (or the version asked for) does not exist.
    NotFound,
    /// AWS throttled the provider and retries did not help.
    Throttled,
    /// AWS could not be reached (connection, DNS, TLS, timeout, 5xx).
    EndpointUnreachable,
    /// `--require-private-endpoints` refused an endpoint (or the proxy) that resolves to a public
    /// address; nothing was sent.
    PublicEndpointRefused,
    /// An AWS error that fits no other code.
    AwsError,
    /// A jmesPath entry could not be extracted.
    JmesPathFailed,
    /// The target path is not acceptable.
    InvalidTarget,
    /// The files could not be written.
    WriteFailed,
    /// A bug or an unexpected state in the provider.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidParameters,
        ErrorCode::TokenMissing,
        ErrorCode::IdentityFailed,
        ErrorCode::AccessDenied,
        ErrorCode::NotFound,
        ErrorCode::Throttled,
        ErrorCode::EndpointUnreachable,
        ErrorCode::PublicEndpointRefused,
        ErrorCode::AwsError,
        ErrorCode::JmesPathFailed,
        ErrorCode::InvalidTarget,
        ErrorCode::WriteFailed,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameters => "InvalidParameters",
            ErrorCode::TokenMissing => "TokenMissing",
            ErrorCode::IdentityFailed => "IdentityFailed",
            ErrorCode::AccessDenied => "AccessDenied",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::Throttled => "Throttled",
            ErrorCode::EndpointUnreachable => "EndpointUnreachable",
            ErrorCode::PublicEndpointRefused => "PublicEndpointRefused",
            ErrorCode::AwsError => "AwsError",
            ErrorCode::JmesPathFailed => "JmesPathFailed",
            ErrorCode::InvalidTarget => "InvalidTarget",
            ErrorCode::WriteFailed => "WriteFailed",
            ErrorCode::Internal => "Internal",
        }
    }

    /// Transient failures are worth a retry (the driver retries `UNAVAILABLE` only).
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorCode::Throttled | ErrorCode::EndpointUnreachable)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
