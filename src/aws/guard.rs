//! `--require-private-endpoints` for hosts that are address literals (the resolver in
//! [`super::http`] never sees those), and no retries for a refusal or a certificate failure:
//! neither changes on a second attempt.

use crate::net::{Dialled, ProxySettings, PublicAddressRefused, UrlHost, resolve};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{BeforeTransmitInterceptorContextRef, InterceptorContext};
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::error::Error;

/// Refuses a request whose dialled host (the proxy when one applies, else the endpoint) is a
/// public address literal. Attached only under `--require-private-endpoints`.
#[derive(Debug, Clone)]
pub(super) struct LiteralGuard {
    pub proxy: ProxySettings,
}

impl LiteralGuard {
    pub(super) fn check(&self, uri: &str) -> Result<(), PublicAddressRefused> {
        let (target, dialled) = match self.proxy.proxy_for(uri) {
            Some(proxy) => (proxy, Dialled::Proxy),
            None => match UrlHost::parse(uri) {
                Ok(endpoint) => (endpoint, Dialled::Endpoint),
                Err(_) => return Ok(()),
            },
        };
        match target.ip() {
            Some(ip) => resolve::require_private(&target.host, &[ip], dialled),
            None => Ok(()),
        }
    }
}

impl Intercept for LiteralGuard {
    fn name(&self) -> &'static str {
        "LiteralGuard"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.check(context.request().uri()).map_err(Into::into)
    }
}

/// Forbids retrying an attempt that failed because of a refusal or a certificate problem.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NoRetryWhenRefused;

impl ClassifyRetry for NoRetryWhenRefused {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(err)) if refusal_in(err).is_some() || certificate_problem_in(err).is_some() => {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "NoRetryWhenRefused"
    }
}

/// The errors in `err`'s chain, looking inside `io::Error`s (which hide their payload from
/// `source()`).
fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => current.source(),
        };
        Some(current)
    })
}

/// The `--require-private-endpoints` refusal behind `err`, if that is what failed.
pub(super) fn refusal_in<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a PublicAddressRefused> {
    chain(err).find_map(|e| e.downcast_ref::<PublicAddressRefused>())
}

/// The TLS certificate failure behind `err` (`invalid peer certificate: UnknownIssuer`), if any.
pub(super) fn certificate_problem_in(err: &(dyn Error + 'static)) -> Option<String> {
    chain(err).find_map(|e| match e.downcast_ref::<rustls::Error>() {
        Some(
            tls @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType),
        ) => Some(tls.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_checked_as_dialled() {
        let guard = LiteralGuard { proxy: ProxySettings::default() };
        assert!(guard.check("https://10.0.0.5/").is_ok());
        assert!(guard.check("https://secretsmanager.us-west-2.amazonaws.com/").is_ok(), "names go to the resolver");
        let refused = guard.check("https://203.0.113.10:8443/").expect_err("public");
        assert_eq!((refused.host.as_str(), refused.dialled), ("203.0.113.10", Dialled::Endpoint));
        let env = |k: &str| (k == "HTTPS_PROXY").then(|| "http://198.51.100.7:3128".to_string());
        let proxied = LiteralGuard { proxy: ProxySettings::from_env(env).unwrap() };
        let refused = proxied.check("https://10.0.0.5/").expect_err("the proxy is public");
        assert_eq!(refused.dialled, Dialled::Proxy);
    }

    #[test]
    fn causes_are_found_inside_io_errors() {
        let refusal = resolve::require_private("h.example", &["203.0.113.1".parse().unwrap()], Dialled::Endpoint)
            .expect_err("public");
        let wrapped = std::io::Error::other(refusal.clone());
        let outer: Box<dyn Error + Send + Sync> = Box::new(std::io::Error::other(wrapped));
        assert_eq!(refusal_in(outer.as_ref()), Some(&refusal));
        let cert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(certificate_problem_in(&cert).is_some_and(|t| t.contains("UnknownIssuer")));
        assert!(certificate_problem_in(&std::io::Error::other("refused")).is_none());
    }
}
