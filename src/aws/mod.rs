//! The only area that knows AWS SDK types: client and endpoint set-up, credentials, reading
//! Secrets Manager and Parameter Store, and error classification. Everything it returns is a
//! domain type.

mod batch;
mod clients;
pub mod counting;
mod credentials;
pub mod endpoints;
pub mod errors;
mod parameter_store;
mod secrets_manager;
mod sts;
mod user_agent;

pub use clients::{AwsReader, AwsSettings};
pub use counting::{CallCounter, CallKey};
pub use credentials::AwsCredentials;
pub use endpoints::{Endpoints, Service};
pub use sts::WebIdentityGrant;
pub use user_agent::UserAgentTag;

use crate::codes::ErrorCode;
use crate::params::ObjectType;
use crate::secret::SecretBytes;

/// One object to read: what and which version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadItem {
    pub name: String,
    pub object_type: ObjectType,
    pub version_id: Option<String>,
    pub version_label: Option<String>,
}

/// A value read from AWS with its version (Secrets Manager VersionId, Parameter Store number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub value: SecretBytes,
    pub version: String,
}

/// A failed read of one object, with the context the pod owner needs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("object {object:?} ({store}, {region}): {reason}")]
pub struct FetchError {
    pub code: ErrorCode,
    pub object: String,
    pub store: &'static str,
    pub region: String,
    pub aws_code: Option<String>,
    pub reason: String,
}

impl FetchError {
    fn new(item: &ReadItem, region: &str, failure: errors::Failure) -> Self {
        FetchError {
            code: failure.code,
            object: item.name.clone(),
            store: item.object_type.as_str(),
            region: region.to_string(),
            aws_code: failure.aws_code,
            reason: failure.reason,
        }
    }

    fn bad_response(item: &ReadItem, region: &str, reason: &str) -> Self {
        let failure = errors::Failure { code: ErrorCode::AwsError, aws_code: None, reason: reason.to_string() };
        Self::new(item, region, failure)
    }
}
