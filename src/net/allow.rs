//! Admission of the endpoint parameters a SecretProviderClass may set (`secretsManagerEndpoint`,
//! `ssmEndpoint`, `stsEndpoint` and their `failover…` variants). Pod authors can set them
//! through volume attributes, and the endpoint named would receive the pod's service-account
//! token (STS) and its signed requests, so each is refused unless its host matches an admin's
//! `--allowed-endpoint-host` pattern. None are allowed by default.

use super::host::{HostPattern, UrlHost};
use crate::params::EndpointParams;
use crate::read::ServiceUrls;

/// The admitted overrides of one mount: the primary region's and the failover region's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpcEndpoints {
    pub primary: ServiceUrls,
    pub failover: ServiceUrls,
}

/// Why an endpoint parameter was refused. Names the parameter and the host, never more of the
/// attributes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointRefused {
    #[error(
        "{parameter} names endpoint host {host:?}, which this provider does not allow: pod authors can set endpoint parameters through volume attributes, and the endpoint would receive the pod's service-account token and signed requests. {}",
        allow_hint(.host, .allowed)
    )]
    NotAllowed { parameter: &'static str, host: String, allowed: Vec<String> },
    #[error("{parameter} is not a usable endpoint URL: {reason}")]
    Invalid { parameter: &'static str, reason: String },
}

fn allow_hint(host: &str, allowed: &[String]) -> String {
    if allowed.is_empty() {
        format!(
            "No endpoint host is allowed: an admin can allow it with --allowed-endpoint-host {host} (or a pattern such as *.vpce.amazonaws.com), or configure the endpoint for everyone with --endpoint"
        )
    } else {
        format!("Allowed hosts: {}; an admin can add it with --allowed-endpoint-host", allowed.join(", "))
    }
}

/// The admin's `--allowed-endpoint-host` patterns.
#[derive(Debug, Clone, Default)]
pub struct EndpointAllowlist(Vec<HostPattern>);

impl EndpointAllowlist {
    pub fn new(patterns: Vec<HostPattern>) -> Self {
        EndpointAllowlist(patterns)
    }

    /// Admits every endpoint parameter the mount sets, or refuses the first that is not allowed.
    pub fn admit(&self, params: &EndpointParams) -> Result<SpcEndpoints, EndpointRefused> {
        let check = |parameter, value: &Option<String>| self.admit_one(parameter, value.as_deref());
        Ok(SpcEndpoints {
            primary: ServiceUrls {
                secrets_manager: check("secretsManagerEndpoint", &params.secrets_manager)?,
                ssm: check("ssmEndpoint", &params.ssm)?,
                sts: check("stsEndpoint", &params.sts)?,
            },
            failover: ServiceUrls {
                secrets_manager: check("failoverSecretsManagerEndpoint", &params.failover_secrets_manager)?,
                ssm: check("failoverSsmEndpoint", &params.failover_ssm)?,
                sts: check("failoverStsEndpoint", &params.failover_sts)?,
            },
        })
    }

    fn admit_one(&self, parameter: &'static str, url: Option<&str>) -> Result<Option<String>, EndpointRefused> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else { return Ok(None) };
        let host = UrlHost::parse(url).map_err(|reason| EndpointRefused::Invalid { parameter, reason })?;
        if !self.0.iter().any(|p| p.admits(&host)) {
            let allowed = self.0.iter().map(|p| p.to_string()).collect();
            return Err(EndpointRefused::NotAllowed { parameter, host: host.host, allowed });
        }
        if !host.https {
            let reason = "it must use https: the endpoint receives the pod's token".to_string();
            return Err(EndpointRefused::Invalid { parameter, reason });
        }
        Ok(Some(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::Service;

    const VPCE: &str = "https://vpce-0a-b.secretsmanager.us-west-2.vpce.amazonaws.com";

    fn allow(patterns: &[&str]) -> EndpointAllowlist {
        EndpointAllowlist::new(patterns.iter().map(|p| p.parse().unwrap()).collect())
    }

    #[test]
    fn refused_by_default_saying_why_and_naming_parameter_and_host() {
        let params = EndpointParams { sts: Some("https://attacker.example.com".into()), ..Default::default() };
        let err = EndpointAllowlist::default().admit(&params).expect_err("refused");
        let text = err.to_string();
        assert!(text.starts_with("stsEndpoint names endpoint host \"attacker.example.com\""), "{text}");
        assert!(text.contains("volume attributes") && text.contains("service-account token"), "{text}");
        assert!(text.contains("--allowed-endpoint-host attacker.example.com"), "{text}");
        assert_eq!(EndpointAllowlist::default().admit(&EndpointParams::default()), Ok(SpcEndpoints::default()));
    }

    #[test]
    fn allowed_hosts_are_admitted_per_region() {
        let params = EndpointParams {
            secrets_manager: Some(VPCE.into()),
            failover_ssm: Some("https://vpce-1.ssm.us-east-1.vpce.amazonaws.com".into()),
            ..Default::default()
        };
        let admitted = allow(&["*.vpce.amazonaws.com"]).admit(&params).unwrap();
        assert_eq!(admitted.primary.get(Service::SecretsManager), Some(VPCE));
        assert_eq!(admitted.primary.get(Service::Ssm), None);
        assert!(admitted.failover.get(Service::Ssm).is_some());
        let other = EndpointParams { ssm: Some("https://ssm.evil.example".into()), ..Default::default() };
        let err = allow(&["*.vpce.amazonaws.com"]).admit(&other).expect_err("not matched");
        assert!(err.to_string().contains("Allowed hosts: *.vpce.amazonaws.com"), "{err}");
    }

    #[test]
    fn plain_http_and_garbage_are_refused_even_when_allowed() {
        let http = EndpointParams { ssm: Some("http://10.0.0.5".into()), ..Default::default() };
        let err = allow(&["10.0.0.5"]).admit(&http).expect_err("http");
        assert!(matches!(err, EndpointRefused::Invalid { parameter: "ssmEndpoint", .. }), "{err}");
        let garbage = EndpointParams { ssm: Some("vpce.example.com".into()), ..Default::default() };
        assert!(allow(&["*.example.com"]).admit(&garbage).is_err());
    }
}
