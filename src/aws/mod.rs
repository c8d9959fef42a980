//! The only area that knows AWS SDK types: client and endpoint set-up, credentials, reading
//! Secrets Manager and Parameter Store, and error classification. Everything it returns is a
//! domain type.

pub(crate) mod audit;
mod batch;
mod clients;
pub(crate) mod counting;
mod credentials;
pub(crate) mod endpoints;
pub(crate) mod errors;
mod guard;
mod http;
mod listing;
mod parameter_store;
mod plan;
pub(crate) mod probe;
mod reading;
mod secrets_manager;
mod sts;
mod user_agent;

pub use clients::{AwsReader, AwsSettings};
pub use counting::CallCounter;
pub use credentials::AwsCredentials;
pub use endpoints::{EndpointFlag, Endpoints};
pub use plan::plan_calls;
pub use sts::{AssumeRoleRequest, WebIdentityRequest};
pub use user_agent::UserAgentTag;

use crate::read::{FetchError, Fetched, ReadItem, Route, Service};

impl errors::Failure {
    /// This failure as the failed read of `item` in `region`.
    fn for_item(self, item: &ReadItem, region: &str) -> FetchError {
        FetchError::new(item, region, self.code, self.aws_code, self.reason)
    }
}

/// AWS answered, but not with what a read of `item` needs.
fn bad_response(item: &ReadItem, region: &str, reason: &str) -> FetchError {
    FetchError::new(item, region, crate::codes::ErrorCode::AwsError, None, reason.to_string())
}
