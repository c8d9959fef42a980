//! Finding why a request failed inside the SDK's error chains (a `--require-private-endpoints`
//! refusal, a TLS certificate problem), and no retries for either: neither changes on a second
//! attempt.

use crate::net::PublicAddressRefused;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use std::error::Error;

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

/// The `--require-private-endpoints` refusal behind `err`, if that is what failed.
pub(super) fn refusal_in<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a PublicAddressRefused> {
    crate::error_text::chain(err).find_map(|e| e.downcast_ref::<PublicAddressRefused>())
}

/// The TLS certificate failure behind `err` (`invalid peer certificate: UnknownIssuer`), if any.
pub(super) fn certificate_problem_in(err: &(dyn Error + 'static)) -> Option<String> {
    crate::error_text::chain(err).find_map(|e| match e.downcast_ref::<rustls::Error>() {
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
    use crate::net::{Dialled, resolve};

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
