//! AWS error classification, done once: the stable code (which decides `UNAVAILABLE`, failover
//! and retries), the AWS error code, and a reason that never holds a value.

use crate::codes::ErrorCode;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// A failed AWS call, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    /// The AWS error code (`ResourceNotFoundException`), when AWS answered with one.
    pub aws_code: Option<String>,
    /// What went wrong, for the pod owner: the AWS message or the connection failure.
    pub reason: String,
}

/// Error codes that mean "the object (or the version asked for) does not exist".
const NOT_FOUND: &[&str] =
    &["ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound", "ParameterVersionLabelNotFound"];
/// Error codes that mean "not allowed".
const DENIED: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "KMSAccessDeniedException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
];
/// Error codes that mean "slow down".
const THROTTLED: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];
/// Error codes that mean "AWS had a problem": transient.
const SERVER: &[&str] = &[
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// The stable code for an AWS error code and HTTP status.
pub fn code_for(aws_code: Option<&str>, status: u16) -> ErrorCode {
    let is = |list: &[&str]| aws_code.is_some_and(|c| list.contains(&c));
    if is(NOT_FOUND) {
        ErrorCode::NotFound
    } else if is(DENIED) {
        ErrorCode::AccessDenied
    } else if is(THROTTLED) || status == 429 {
        ErrorCode::Throttled
    } else if is(SERVER) || status >= 500 {
        ErrorCode::EndpointUnreachable
    } else if status == 403 {
        ErrorCode::AccessDenied
    } else {
        ErrorCode::AwsError
    }
}

/// Classifies any SDK error.
pub fn classify<E>(err: &SdkError<E, Response>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(refusal) = super::guard::refusal_in(err) {
        return Failure { code: ErrorCode::PublicEndpointRefused, aws_code: None, reason: refusal.to_string() };
    }
    if let Some(problem) = super::guard::certificate_problem_in(err) {
        return transport(certificate_reason(&problem));
    }
    match err {
        SdkError::ServiceError(service) => from_metadata(service.err(), service.raw().status().as_u16()),
        SdkError::ResponseError(resp) => from_unparsable(resp.raw().status().as_u16(), err),
        SdkError::TimeoutError(_) => transport(format!("timed out: {}", causes(err))),
        SdkError::DispatchFailure(_) => transport(format!("could not reach the endpoint: {}", causes(err))),
        _ => Failure { code: ErrorCode::Internal, aws_code: None, reason: causes(err) },
    }
}

fn from_metadata(err: &impl ProvideErrorMetadata, status: u16) -> Failure {
    let aws_code = err.code().map(str::to_string);
    let message = err.message().unwrap_or("no message");
    let reason = match &aws_code {
        Some(c) => format!("{c}: {message}"),
        None => format!("HTTP {status}: {message}"),
    };
    Failure { code: code_for(aws_code.as_deref(), status), aws_code, reason }
}

fn from_unparsable<E>(status: u16, err: &SdkError<E, Response>) -> Failure
where
    E: std::error::Error + 'static,
{
    let reason = format!("unexpected response (HTTP {status}): {}", causes(err));
    Failure { code: code_for(None, status), aws_code: None, reason }
}

/// A certificate failure, said as one, with the usual fix.
pub fn certificate_reason(problem: &str) -> String {
    format!(
        "TLS certificate problem: {problem}. The endpoint's certificate is not trusted: if a TLS-inspecting proxy or a private CA signs it, give that CA certificate with --ca-bundle FILE (or AWS_CA_BUNDLE); otherwise check that the endpoint URL names the host its certificate is for"
    )
}

/// The error's causes by their `Display` (never the `Debug` dump the SDK's
/// `DisplayErrorContext` appends).
fn causes<E: std::error::Error + 'static>(err: &E) -> String {
    crate::error_text::causes(err)
}

fn transport(reason: String) -> Failure {
    Failure { code: ErrorCode::EndpointUnreachable, aws_code: None, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_stable_classes() {
        assert_eq!(code_for(Some("ResourceNotFoundException"), 400), ErrorCode::NotFound);
        assert_eq!(code_for(Some("ParameterNotFound"), 400), ErrorCode::NotFound);
        assert_eq!(code_for(Some("AccessDeniedException"), 400), ErrorCode::AccessDenied);
        assert_eq!(code_for(Some("ThrottlingException"), 400), ErrorCode::Throttled);
        assert_eq!(code_for(None, 429), ErrorCode::Throttled);
        assert_eq!(code_for(Some("InternalServiceError"), 500), ErrorCode::EndpointUnreachable);
        assert_eq!(code_for(None, 503), ErrorCode::EndpointUnreachable);
        assert_eq!(code_for(Some("DecryptionFailure"), 400), ErrorCode::AwsError);
        assert_eq!(code_for(None, 403), ErrorCode::AccessDenied);
        assert!(code_for(None, 502).is_transient());
        assert!(!code_for(Some("AccessDeniedException"), 400).is_transient());
    }
}
