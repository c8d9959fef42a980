//! The only area that knows AWS SDK types: client and endpoint set-up, credentials, reading
//! Secrets Manager and Parameter Store, and error classification. Everything it returns is a
//! domain type.

pub mod audit;
mod batch;
mod clients;
pub mod counting;
mod credentials;
pub mod endpoints;
pub mod errors;
mod guard;
mod http;
mod parameter_store;
pub mod probe;
mod secrets_manager;
mod sts;
mod user_agent;

pub use audit::Requesters;
pub use clients::{AwsReader, AwsSettings};
pub use counting::{CallCounter, CallKey, CallObserver};
pub use credentials::AwsCredentials;
pub use endpoints::{Endpoints, Service};
pub use sts::{WebIdentityGrant, WebIdentityRequest};
pub use user_agent::UserAgentTag;

use crate::codes::ErrorCode;
use crate::net::ServiceUrls;
use crate::params::ObjectType;
use crate::secret::SecretBytes;

/// A region to call, with the SecretProviderClass's admitted endpoints for it.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub region: &'a str,
    pub spc: &'a ServiceUrls,
}

/// No SecretProviderClass endpoints.
static NO_SPC_ENDPOINTS: ServiceUrls = ServiceUrls { secrets_manager: None, ssm: None, sts: None };

impl<'a> Route<'a> {
    pub fn new(region: &'a str, spc: &'a ServiceUrls) -> Self {
        Route { region, spc }
    }

    /// `region` with the admin's endpoints only.
    pub fn region(region: &'a str) -> Self {
        Route { region, spc: &NO_SPC_ENDPOINTS }
    }
}

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
