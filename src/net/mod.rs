//! The network path to AWS, without AWS SDK types: which addresses count as private, which hosts
//! a SecretProviderClass may name, how names resolve (`--resolve`, then the system), which proxy
//! applies, and the extra trust roots. The AWS clients (`aws::http`) and `doctor` share it.

pub(crate) mod address;
pub(crate) mod allow;
pub(crate) mod ca;
mod flags;
pub(crate) mod host;
pub(crate) mod proxy;
pub(crate) mod resolve;

pub use address::classify;
pub use allow::{EndpointAllowlist, EndpointRefused, SpcEndpoints};
pub use ca::CaBundle;
pub use flags::NetworkArgs;
pub use host::{HostPattern, UrlHost, check_url};
pub use proxy::{ProxyError, ProxySettings};
pub use resolve::{Dialled, PublicAddressRefused, ResolveFlag, Resolver};

/// What the admin configured about the network path to AWS (the flags of [`NetworkArgs`] plus
/// the proxy variables).
#[derive(Debug, Clone, Default)]
pub struct NetworkSettings {
    /// `--require-private-endpoints`.
    pub require_private: bool,
    /// `--use-fips-endpoint`: FIPS variants of the AWS default endpoints, STS included.
    pub use_fips: bool,
    /// `--use-dualstack-endpoint`.
    pub use_dual_stack: bool,
    /// `--ca-bundle`: extra trust roots.
    pub ca_bundle: Option<CaBundle>,
    /// `--resolve`, then the system resolver.
    pub resolver: Resolver,
    /// `HTTPS_PROXY` & co.
    pub proxy: ProxySettings,
}

impl NetworkSettings {
    /// From the flags and an injected environment (for the proxy variables).
    pub fn new(args: &NetworkArgs, env: impl Fn(&str) -> Option<String>) -> Result<Self, ProxyError> {
        Ok(NetworkSettings {
            require_private: args.require_private_endpoints,
            use_fips: args.use_fips_endpoint,
            use_dual_stack: args.use_dualstack_endpoint,
            ca_bundle: args.ca_bundle.clone(),
            resolver: Resolver::new(&args.resolve),
            proxy: ProxySettings::from_env(env)?,
        })
    }

    /// One start-up log line of what is in force.
    pub fn log(&self) {
        let overrides: Vec<String> =
            self.resolver.overrides().map(|(h, a)| format!("{h}={}", resolve::describe_addrs(a))).collect();
        tracing::info!(
            require_private = self.require_private,
            fips = self.use_fips,
            dual_stack = self.use_dual_stack,
            ca_bundle = self.ca_bundle.as_ref().map(|c| c.path().display().to_string()).unwrap_or_else(|| "(system roots)".into()),
            proxy = %self.proxy.describe(),
            resolve = %if overrides.is_empty() { "none".to_string() } else { overrides.join("; ") },
            "network to AWS"
        );
    }
}
