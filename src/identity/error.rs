//! Identity errors: each names what to fix; none carries a token or a credential.

use crate::codes::ErrorCode;
use crate::k8s::K8sError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "no service-account token for audience {audience:?}: configure the CSIDriver's tokenRequests with audience {audience:?}"
    )]
    TokenMissing { audience: &'static str },
    #[error("the service-account token for audience {audience:?} {problem}")]
    TokenInvalid { audience: &'static str, problem: &'static str },
    #[error(
        "the service-account token for audience {audience:?} was issued to {token}, but the request names service account {attributes}: refused"
    )]
    TokenMismatch { audience: &'static str, attributes: String, token: String },
    #[error(
        "service account {namespace}/{name} has no eks.amazonaws.com/role-arn annotation: annotate it with the IAM role the pod should use (or set usePodIdentity)"
    )]
    NoRoleAnnotation { namespace: String, name: String },
    #[error("the role of service account {namespace}/{name} could not be read: {source}")]
    Kubernetes { namespace: String, name: String, source: K8sError },
    #[error("STS AssumeRoleWithWebIdentity for role {role} ({region}) failed: {reason}")]
    Sts { role: String, region: String, code: ErrorCode, reason: String },
    #[error(
        "STS AssumeRole of assumeRoleArn {role} by {identity} ({region}) failed{}: {reason}{}",
        aws_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        assume_hint(*.code)
    )]
    AssumeRole {
        role: String,
        /// The pod's own proven identity, which signed the call.
        identity: String,
        region: String,
        code: ErrorCode,
        aws_code: Option<String>,
        reason: String,
    },
    #[error("the EKS Pod Identity agent at {url} refused the pod's token: {reason}")]
    AgentRefused { url: String, reason: String },
    #[error("the EKS Pod Identity agent could not be reached ({tried}): {reason}")]
    AgentUnreachable { tried: String, reason: String },
}

/// What to fix when STS refused a chained role.
fn assume_hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::AccessDenied | ErrorCode::IdentityFailed => {
            ". The pod's identity needs sts:AssumeRole on the role, and the role's trust policy must trust that identity (with sts:ExternalId matching assumeRoleExternalId when one is set)"
        }
        _ => "",
    }
}

impl IdentityError {
    pub fn code(&self) -> ErrorCode {
        match self {
            IdentityError::TokenMissing { .. } | IdentityError::TokenInvalid { .. } => ErrorCode::TokenMissing,
            IdentityError::TokenMismatch { .. } => ErrorCode::IdentityFailed,
            IdentityError::NoRoleAnnotation { .. } | IdentityError::AgentRefused { .. } => ErrorCode::IdentityFailed,
            IdentityError::Kubernetes { source, .. } if source.is_transient() => ErrorCode::EndpointUnreachable,
            IdentityError::Kubernetes { .. } => ErrorCode::IdentityFailed,
            IdentityError::Sts { code, .. } if code.is_transient() || *code == ErrorCode::PublicEndpointRefused => {
                *code
            }
            IdentityError::Sts { .. } => ErrorCode::IdentityFailed,
            IdentityError::AssumeRole { code, .. }
                if code.is_transient() || *code == ErrorCode::PublicEndpointRefused =>
            {
                *code
            }
            IdentityError::AssumeRole { .. } => ErrorCode::IdentityFailed,
            IdentityError::AgentUnreachable { .. } => ErrorCode::EndpointUnreachable,
        }
    }
}
