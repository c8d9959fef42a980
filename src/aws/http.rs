//! The one HTTP client every AWS call goes through (one connection pool per timeout setting):
//! rustls with the system roots plus `--ca-bundle`, `HTTPS_PROXY`/`NO_PROXY`, and name
//! resolution through [`Resolver`] (`--resolve`, then DNS) that, under
//! `--require-private-endpoints`, refuses a host with a public address before anything
//! connects; the connection then goes to exactly the addresses checked. Address literals never
//! reach a resolver: [`super::guard`] checks those.

use crate::net::{Dialled, NetworkSettings, ProxySettings, Resolver, resolve};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Connector, HttpClientError};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Builds the shared client.
pub(super) fn client(net: &NetworkSettings) -> SharedHttpClient {
    SharedHttpClient::new(NetClient { net: Arc::new(net.clone()), connectors: Mutex::default() })
}

/// Connectors keyed by their timeouts (the SDK asks per client configuration).
type ConnectorKey = (Option<Duration>, Option<Duration>);

#[derive(Debug)]
struct NetClient {
    net: Arc<NetworkSettings>,
    connectors: Mutex<HashMap<ConnectorKey, SharedHttpConnector>>,
}

impl HttpClient for NetClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(|p| p.into_inner());
        connectors
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(connector(&self.net, settings, Some(components))))
            .clone()
    }
}

/// A connector with our TLS roots, proxy and resolver (also used alone by `doctor`'s probe).
pub(super) fn connector(
    net: &NetworkSettings,
    settings: &HttpConnectorSettings,
    components: Option<&RuntimeComponents>,
) -> Connector {
    let mut builder = Connector::builder().connector_settings(settings.clone());
    builder.set_sleep_impl(components.and_then(RuntimeComponents::sleep_impl));
    if let Some(proxy) = proxy_config(&net.proxy) {
        builder = builder.proxy_config(proxy);
    }
    builder
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls_context(net))
        .build_with_resolver(GuardedResolver::new(net))
}

/// The system roots plus `--ca-bundle` (already checked, so the SDK's parsing cannot fail).
fn tls_context(net: &NetworkSettings) -> TlsContext {
    let mut roots = TrustStore::default();
    if let Some(bundle) = &net.ca_bundle {
        roots.add_pem_certificate(bundle.pem().to_vec());
    }
    TlsContext::builder().with_trust_store(roots).build().unwrap_or_else(|e: HttpClientError| {
        tracing::error!(error = %e, "TLS settings rejected; using the system roots only");
        TlsContext::default()
    })
}

/// The SDK's form of our proxy settings (the same URL, scope and `NO_PROXY`).
fn proxy_config(proxy: &ProxySettings) -> Option<ProxyConfig> {
    use crate::net::proxy::ProxyScope;
    let (url, scope) = proxy.rule()?;
    let config = match scope {
        ProxyScope::All => ProxyConfig::all(url),
        ProxyScope::Http => ProxyConfig::http(url),
        ProxyScope::Https => ProxyConfig::https(url),
    };
    match config {
        Ok(config) => Some(config.no_proxy(proxy.no_proxy())),
        Err(e) => {
            tracing::error!(error = %e, "the proxy URL was refused; connecting directly");
            None
        }
    }
}

/// `--resolve`, then DNS; under `--require-private-endpoints` any public address refuses the
/// host (named as the proxy when it is the proxy's).
#[derive(Debug, Clone)]
struct GuardedResolver {
    resolver: Resolver,
    require_private: bool,
    proxy_host: Option<String>,
}

impl GuardedResolver {
    fn new(net: &NetworkSettings) -> Self {
        let proxy_host = net.proxy.proxy_host().map(|h| h.host);
        GuardedResolver { resolver: net.resolver.clone(), require_private: net.require_private, proxy_host }
    }
}

impl ResolveDns for GuardedResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        DnsFuture::new(async move {
            let resolved = self.resolver.lookup(name).await.map_err(ResolveDnsError::new)?;
            if self.require_private {
                let dialled = if self.proxy_host.as_deref() == Some(name) { Dialled::Proxy } else { Dialled::Endpoint };
                resolve::require_private(name, &resolved.addrs, dialled).map_err(ResolveDnsError::new)?;
            }
            tracing::debug!(host = name, addrs = %resolve::describe_addrs(&resolved.addrs), source = resolved.source.as_str(), "resolved");
            Ok(resolved.addrs)
        })
    }
}
