//! Client set-up: one shared HTTP client and connection pool, endpoints per service and region,
//! our user agent, retries and timeouts. Reads are dispatched to the store modules.

use super::batch::BatchPolicy;
use super::{AwsCredentials, CallCounter, Endpoints, FetchError, Fetched, ReadItem, Service, UserAgentTag};
use crate::params::ObjectType;
use aws_config::BehaviorVersion;
use aws_config::Region;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::identity::SharedIdentityCache;
use std::sync::Arc;
use std::time::Duration;

/// What the admin configured for AWS access.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub endpoints: Endpoints,
    pub user_agent: UserAgentTag,
    /// Bound on one whole operation, retries included.
    pub operation_timeout: Duration,
    /// Counts every call attempt.
    pub calls: CallCounter,
}

/// Reads objects from AWS with given credentials in a given region.
#[derive(Debug, Clone)]
pub struct AwsReader {
    http: SharedHttpClient,
    settings: AwsSettings,
    pub(super) batch: Arc<BatchPolicy>,
}

/// The common parts of every service client's configuration.
pub(super) struct ClientParts {
    pub region: Region,
    pub endpoint: Option<String>,
    pub http: SharedHttpClient,
    pub retry: RetryConfig,
    pub timeouts: TimeoutConfig,
    pub user_agent: UserAgentTag,
    pub calls: CallCounter,
}

impl AwsReader {
    pub fn new(settings: AwsSettings) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https();
        AwsReader { http, settings, batch: Arc::new(BatchPolicy::default()) }
    }

    /// The call counter every client reports to.
    pub fn calls(&self) -> &CallCounter {
        &self.settings.calls
    }

    /// The endpoint configuration in force.
    pub fn endpoints(&self) -> &Endpoints {
        &self.settings.endpoints
    }

    pub(super) fn parts(&self, service: Service, region: &str) -> ClientParts {
        let endpoint = self.settings.endpoints.resolve(service, region, None).map(|e| e.url);
        ClientParts {
            region: Region::new(region.to_string()),
            endpoint,
            http: self.http.clone(),
            retry: RetryConfig::standard().with_max_attempts(3),
            timeouts: TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(self.settings.operation_timeout)
                .build(),
            user_agent: self.settings.user_agent.clone(),
            calls: self.settings.calls.clone(),
        }
    }

    /// Reads every item; one result per item, in order. Secrets Manager and Parameter Store
    /// reads run concurrently.
    pub async fn read(
        &self,
        credentials: &AwsCredentials,
        identity: &str,
        region: &str,
        items: &[ReadItem],
    ) -> Vec<Result<Fetched, FetchError>> {
        let (secrets, params): (Vec<_>, Vec<_>) =
            items.iter().enumerate().partition(|(_, i)| i.object_type == ObjectType::SecretsManager);
        let sm = super::secrets_manager::read_all(self, credentials, identity, region, &secrets);
        let ssm = super::parameter_store::read_all(self, credentials, region, &params);
        let (sm, ssm) = tokio::join!(sm, ssm);
        let mut results: Vec<Option<Result<Fetched, FetchError>>> = vec![None; items.len()];
        for (index, result) in sm.into_iter().chain(ssm) {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .zip(items)
            .map(|(r, item)| r.unwrap_or_else(|| Err(FetchError::bad_response(item, region, "no result"))))
            .collect()
    }
}

impl ClientParts {
    pub fn behavior() -> BehaviorVersion {
        BehaviorVersion::latest()
    }

    pub fn identity_cache(credentials: &AwsCredentials) -> SharedIdentityCache {
        credentials.cache.clone().unwrap_or_else(aws_config::identity::IdentityCache::no_cache)
    }
}

/// Builds a service client from [`ClientParts`]; every generated SDK config builder has the
/// same setters, so one macro serves all three services.
macro_rules! build_client {
    ($sdk:ident, $parts:expr, $credentials:expr) => {{
        let parts = $parts;
        let credentials: &crate::aws::AwsCredentials = $credentials;
        let mut builder = $sdk::Config::builder()
            .behavior_version(crate::aws::clients::ClientParts::behavior())
            .region(parts.region.clone())
            .credentials_provider(credentials.provider.clone())
            .identity_cache(crate::aws::clients::ClientParts::identity_cache(credentials))
            .http_client(parts.http.clone())
            .retry_config(parts.retry.clone())
            .timeout_config(parts.timeouts.clone())
            .interceptor(parts.user_agent.clone())
            .interceptor(parts.calls.clone());
        if let Some(url) = &parts.endpoint {
            builder = builder.endpoint_url(url.clone());
        }
        $sdk::Client::from_conf(builder.build())
    }};
}
pub(super) use build_client;
