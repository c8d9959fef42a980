//! Client set-up: one shared HTTP client and connection pool (TLS roots, proxy, resolver:
//! [`super::http`]), endpoints per service and region (the SecretProviderClass's admitted ones
//! first), FIPS/dual-stack for AWS defaults, our user agent, retries and timeouts. Reading is
//! in [`super::reading`].

use super::audit::AuditScope;
use super::batch::BatchPolicy;
use super::{AwsCredentials, CallCounter, Endpoints, Service, UserAgentTag};
use crate::clock::SharedClock;
use crate::net::NetworkSettings;
use crate::read::{Requesters, Route};
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
    /// The network path: private-only, FIPS/dual-stack, CA bundle, `--resolve`, proxy.
    pub network: NetworkSettings,
    /// `--audit-log`: one line per AWS request.
    pub audit: bool,
    /// `--batch-get-secret-value`: whether current secrets may be read with `BatchGetSecretValue`.
    pub batch_get_secret_value: bool,
    /// The clock the batch policy reads.
    pub clock: SharedClock,
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
    /// FIPS and dual-stack variants, only for the AWS default (an override is used as given).
    pub use_fips: bool,
    pub use_dual_stack: bool,
}

impl AwsReader {
    pub fn new(settings: AwsSettings) -> Self {
        let http = super::http::client(&settings.network);
        let batch = Arc::new(BatchPolicy::new(settings.clock.clone()));
        AwsReader { http, settings, batch }
    }

    /// The clock the provider reads.
    pub fn clock(&self) -> SharedClock {
        self.settings.clock.clone()
    }

    /// The network settings in force.
    pub fn network(&self) -> &NetworkSettings {
        &self.settings.network
    }

    /// Whether `--batch-get-secret-value` allows the batch API at all.
    pub(super) fn batching_enabled(&self) -> bool {
        self.settings.batch_get_secret_value
    }

    /// Whether `--audit-log` is on.
    pub(super) fn audit_enabled(&self) -> bool {
        self.settings.audit
    }

    /// Who an audit line names for a read in `region`, when `--audit-log` is on.
    pub(super) fn audit_scope<'a>(&self, region: &'a str, requesters: &'a Requesters) -> AuditScope<'a> {
        AuditScope { enabled: self.settings.audit, region, requesters }
    }

    /// The parts of a client for `service` in `region`; `spc` is the SecretProviderClass's
    /// admitted endpoint, which takes precedence.
    pub(super) fn parts(&self, service: Service, region: &str, spc: Option<&str>) -> ClientParts {
        let endpoint = self.settings.endpoints.resolve(service, region, spc).map(|e| e.url);
        let network = &self.settings.network;
        ClientParts {
            use_fips: network.use_fips && endpoint.is_none(),
            use_dual_stack: network.use_dual_stack && endpoint.is_none(),
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

    /// ` (endpoint URL, from SOURCE)`: which URL a request for `service` along `route` went to
    /// and where that URL came from (SecretProviderClass parameter, `--endpoint`,
    /// `AWS_ENDPOINT_URL*`, the AWS default), for errors about reaching it.
    pub(super) async fn endpoint_note(&self, service: Service, route: Route<'_>) -> String {
        let network = &self.settings.network;
        let resolved = match self.settings.endpoints.resolve(service, route.region, route.spc.get(service)) {
            Some(found) => Ok(found),
            None => super::endpoints::default_url(service, route.region, network.use_fips, network.use_dual_stack)
                .await
                .map(|url| super::endpoints::ResolvedEndpoint {
                    url,
                    source: super::endpoints::EndpointSource::AwsDefault,
                }),
        };
        match resolved {
            Ok(endpoint) => format!(" (endpoint {}, from {})", endpoint.url, endpoint.source.as_str()),
            Err(_) => String::new(),
        }
    }
}

/// Whether a failure is about reaching an endpoint, so its message names the endpoint.
pub(super) fn concerns_the_network(code: crate::codes::ErrorCode) -> bool {
    use crate::codes::ErrorCode;
    matches!(code, ErrorCode::EndpointUnreachable | ErrorCode::PublicEndpointRefused)
}

impl ClientParts {
    pub fn behavior() -> BehaviorVersion {
        BehaviorVersion::latest()
    }

    pub fn identity_cache(credentials: &AwsCredentials) -> SharedIdentityCache {
        credentials.cache.clone().unwrap_or_else(aws_config::identity::IdentityCache::no_cache)
    }
}

/// Applies [`ClientParts`] to an SDK config builder; every generated config builder has the
/// same setters, so one macro serves all three services (STS included, signed or not).
macro_rules! configure {
    ($builder:expr, $parts:expr) => {{
        let parts: &crate::aws::clients::ClientParts = $parts;
        let mut builder = $builder
            .behavior_version(crate::aws::clients::ClientParts::behavior())
            .region(parts.region.clone())
            .http_client(parts.http.clone())
            .retry_config(parts.retry.clone())
            .retry_classifier(crate::aws::guard::NoRetryWhenRefused)
            .timeout_config(parts.timeouts.clone())
            .use_fips(parts.use_fips)
            .use_dual_stack(parts.use_dual_stack)
            .interceptor(parts.user_agent.clone())
            .interceptor(parts.calls.clone());
        if let Some(url) = &parts.endpoint {
            builder = builder.endpoint_url(url.clone());
        }
        builder
    }};
}
pub(super) use configure;

/// Builds a signing service client from [`ClientParts`] and credentials.
macro_rules! build_client {
    ($sdk:ident, $parts:expr, $credentials:expr) => {{
        let credentials: &crate::aws::AwsCredentials = $credentials;
        let builder = crate::aws::clients::configure!($sdk::Config::builder(), &$parts)
            .credentials_provider(credentials.provider.clone())
            .identity_cache(crate::aws::clients::ClientParts::identity_cache(credentials));
        $sdk::Client::from_conf(builder.build())
    }};
}
pub(super) use build_client;
