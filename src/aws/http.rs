//! The one HTTP client every AWS call goes through (one connection pool per timeout setting):
//! rustls with the system roots plus `--ca-bundle`, `HTTPS_PROXY`/`NO_PROXY`, and name
//! resolution through [`Resolver`] (`--resolve`, then DNS).
//!
//! Under `--require-private-endpoints` every request first resolves the host it will dial (the
//! proxy when one applies, else the endpoint; an address literal as itself) and is refused,
//! before anything is sent, if any address is public. The addresses checked are kept for a short
//! while and the connector's resolver hands out exactly those, so a connection only ever goes to
//! addresses that were checked (a host is checked again when its entry expires).

use crate::net::{Dialled, NetworkSettings, ProxySettings, PublicAddressRefused, Resolver, UrlHost, resolve};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Connector, HttpClientError};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long checked addresses are reused before the host is resolved and checked again.
const CHECKED_TTL: Duration = Duration::from_secs(30);

/// Builds the shared client.
pub(super) fn client(net: &NetworkSettings) -> SharedHttpClient {
    let dialler = Dialler::new(net);
    SharedHttpClient::new(NetClient { net: Arc::new(net.clone()), dialler, connectors: Mutex::default() })
}

/// Connectors keyed by their timeouts (the SDK asks per client configuration).
type ConnectorKey = (Option<Duration>, Option<Duration>);

#[derive(Debug)]
struct NetClient {
    net: Arc<NetworkSettings>,
    dialler: Dialler,
    connectors: Mutex<HashMap<ConnectorKey, SharedHttpConnector>>,
}

impl HttpClient for NetClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = crate::sync::lock(&self.connectors);
        connectors.entry(key).or_insert_with(|| guarded(&self.net, &self.dialler, settings, Some(components))).clone()
    }
}

/// A connector for one timeout setting, behind the private-address check when it is on.
fn guarded(
    net: &NetworkSettings,
    dialler: &Dialler,
    settings: &HttpConnectorSettings,
    components: Option<&RuntimeComponents>,
) -> SharedHttpConnector {
    let inner = SharedHttpConnector::new(connector(net, dialler, settings, components));
    match net.require_private {
        true => SharedHttpConnector::new(GuardedConnector { inner, dialler: dialler.clone() }),
        false => inner,
    }
}

/// A connector on its own, with the same roots, proxy, resolver and check (`doctor`'s probe).
pub(super) fn standalone(net: &NetworkSettings, settings: &HttpConnectorSettings) -> SharedHttpConnector {
    guarded(net, &Dialler::new(net), settings, None)
}

/// A connector with our TLS roots, proxy and resolver.
fn connector(
    net: &NetworkSettings,
    dialler: &Dialler,
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
        .build_with_resolver(dialler.clone())
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

/// Addresses checked recently, per host.
type Checked = Arc<Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>>;

/// Resolves the hosts connections go to: `--resolve`, then DNS; under
/// `--require-private-endpoints` only addresses that passed the check (see the module docs).
#[derive(Debug, Clone)]
struct Dialler {
    resolver: Resolver,
    proxy: ProxySettings,
    require_private: bool,
    proxy_host: Option<String>,
    checked: Checked,
}

/// Why a request was stopped before anything was sent.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error(transparent)]
    Refused(#[from] PublicAddressRefused),
    #[error(transparent)]
    Unresolved(#[from] resolve::ResolveError),
}

impl Dialler {
    fn new(net: &NetworkSettings) -> Self {
        Dialler {
            resolver: net.resolver.clone(),
            proxy: net.proxy.clone(),
            require_private: net.require_private,
            proxy_host: net.proxy.proxy_host().map(|h| h.host),
            checked: Checked::default(),
        }
    }

    /// The host a request to `uri` dials (the proxy when one applies), and what it is.
    fn dialled(&self, uri: &str) -> Option<(UrlHost, Dialled)> {
        match self.proxy.proxy_for(uri) {
            Some(proxy) => Some((proxy, Dialled::Proxy)),
            None => UrlHost::parse(uri).ok().map(|endpoint| (endpoint, Dialled::Endpoint)),
        }
    }

    /// Checks the host a request to `uri` will dial.
    async fn check(&self, uri: &str) -> Result<(), Stopped> {
        let Some((target, dialled)) = self.dialled(uri) else { return Ok(()) };
        match target.ip() {
            Some(ip) => Ok(resolve::require_private(&target.host, &[ip], dialled)?),
            None => self.addresses(&target.host, dialled).await.map(|_| ()),
        }
    }

    /// The addresses of `host`: recently checked ones, else resolved (and checked when required).
    async fn addresses(&self, host: &str, dialled: Dialled) -> Result<Vec<IpAddr>, Stopped> {
        if let Some(addrs) = self.fresh(host) {
            return Ok(addrs);
        }
        let resolved = self.resolver.lookup(host).await?;
        tracing::debug!(host, addrs = %resolve::describe_addrs(&resolved.addrs), source = resolved.source.as_str(), "resolved");
        if self.require_private {
            resolve::require_private(host, &resolved.addrs, dialled)?;
            let mut checked = crate::sync::lock(&self.checked);
            checked.retain(|_, (at, _)| at.elapsed() < CHECKED_TTL);
            checked.insert(host.to_string(), (Instant::now(), resolved.addrs.clone()));
        }
        Ok(resolved.addrs)
    }

    fn fresh(&self, host: &str) -> Option<Vec<IpAddr>> {
        let checked = crate::sync::lock(&self.checked);
        checked.get(host).filter(|(at, _)| at.elapsed() < CHECKED_TTL).map(|(_, addrs)| addrs.clone())
    }
}

impl ResolveDns for Dialler {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let dialled = if self.proxy_host.as_deref() == Some(name) { Dialled::Proxy } else { Dialled::Endpoint };
        DnsFuture::new(async move { self.addresses(name, dialled).await.map_err(ResolveDnsError::new) })
    }
}

/// Checks the dialled host of every request before handing it to the real connector; a refusal
/// is a user error (never retried) that names the host, the addresses and the fix.
#[derive(Debug, Clone)]
struct GuardedConnector {
    inner: SharedHttpConnector,
    dialler: Dialler,
}

impl HttpConnector for GuardedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, dialler) = (self.inner.clone(), self.dialler.clone());
        HttpConnectorFuture::new(async move {
            match dialler.check(request.uri()).await {
                Ok(()) => inner.call(request).await,
                Err(Stopped::Refused(refused)) => Err(ConnectorError::user(Box::new(refused))),
                Err(Stopped::Unresolved(e)) => Err(ConnectorError::io(Box::new(e))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ResolveFlag;

    fn net(resolve: &[&str], proxy: Option<&str>) -> NetworkSettings {
        let flags: Vec<ResolveFlag> = resolve.iter().map(|f| f.parse().unwrap()).collect();
        let proxy = proxy.map(str::to_string);
        NetworkSettings {
            require_private: true,
            resolver: Resolver::new(&flags),
            proxy: ProxySettings::from_env(move |k| (k == "HTTPS_PROXY").then(|| proxy.clone()).flatten()).unwrap(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_dialled_host_is_checked_proxy_and_literals_included() {
        let d = Dialler::new(&net(&["vpce.internal=10.0.0.5", "mixed.internal=10.0.0.6,203.0.113.10"], None));
        assert!(d.check("https://vpce.internal/").await.is_ok());
        assert!(d.check("https://10.0.0.9:8443/").await.is_ok());
        assert!(matches!(d.check("https://mixed.internal/").await, Err(Stopped::Refused(_))));
        assert!(matches!(d.check("https://203.0.113.10/").await, Err(Stopped::Refused(_))));
        let proxied = Dialler::new(&net(&["proxy.internal=198.51.100.7"], Some("http://proxy.internal:3128")));
        match proxied.check("https://vpce.internal/").await {
            Err(Stopped::Refused(r)) => assert_eq!((r.host.as_str(), r.dialled), ("proxy.internal", Dialled::Proxy)),
            other => panic!("expected the proxy to be refused, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connections_get_exactly_the_addresses_checked() {
        let d = Dialler::new(&net(&["vpce.internal=10.0.0.5,fd00::5"], None));
        d.check("https://vpce.internal/").await.unwrap();
        let ips: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        assert_eq!(d.fresh("vpce.internal"), Some(ips.clone()));
        assert_eq!(d.resolve_dns("vpce.internal").await.unwrap(), ips);
        assert!(d.resolve_dns("nowhere.invalid").await.is_err());
    }
}
