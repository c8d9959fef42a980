//! Endpoint precedence for a service in a region (`cli.md`): SPC parameter (when admitted) >
//! `--endpoint SERVICE@REGION` > `--endpoint SERVICE` > `AWS_ENDPOINT_URL_<SERVICE>` >
//! `AWS_ENDPOINT_URL` > the AWS default for the region (left to the SDK, which applies the FIPS
//! and dual-stack variants when enabled; [`default_url`] asks it for `doctor`).

use crate::read::Service;
use std::collections::HashMap;
use std::str::FromStr;

/// One `--endpoint SERVICE[@REGION]=URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFlag {
    pub service: String,
    pub region: Option<String>,
    pub url: String,
}

/// The services `--endpoint` may name.
pub const ENDPOINT_SERVICES: [&str; 3] = ["secretsmanager", "ssm", "sts"];

impl FromStr for EndpointFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, url) = s.split_once('=').ok_or_else(|| format!("endpoint {s:?}: expected SERVICE[@REGION]=URL"))?;
        let (service, region) = match key.split_once('@') {
            Some((service, region)) => (service, Some(region.to_string())),
            None => (key, None),
        };
        if !ENDPOINT_SERVICES.contains(&service) {
            return Err(format!("endpoint {s:?}: unknown service {service:?} (use secretsmanager, ssm or sts)"));
        }
        crate::net::check_url(url).map_err(|e| format!("endpoint {s:?}: {e}"))?;
        Ok(EndpointFlag { service: service.to_string(), region, url: url.to_string() })
    }
}

/// Where an endpoint came from, for logs and `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointSource {
    SecretProviderClass,
    RegionFlag,
    ServiceFlag,
    ServiceEnv,
    GlobalEnv,
    /// No override: the AWS default for the region.
    AwsDefault,
}

impl EndpointSource {
    /// Where the endpoint came from, as an admin would write it.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointSource::SecretProviderClass => "SecretProviderClass parameter",
            EndpointSource::RegionFlag => "--endpoint SERVICE@REGION",
            EndpointSource::ServiceFlag => "--endpoint SERVICE",
            EndpointSource::ServiceEnv => "AWS_ENDPOINT_URL_<SERVICE>",
            EndpointSource::GlobalEnv => "AWS_ENDPOINT_URL",
            EndpointSource::AwsDefault => "AWS default",
        }
    }
}

/// A resolved endpoint override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEndpoint {
    pub url: String,
    pub source: EndpointSource,
}

/// The admin's endpoint configuration, resolved once at start from flags and environment.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    per_region: HashMap<(Service, String), String>,
    per_service: HashMap<Service, String>,
    service_env: HashMap<Service, String>,
    global_env: Option<String>,
}

impl Endpoints {
    /// Builds from the flags and an injected environment lookup (tests pass a map).
    pub fn new(flags: &[EndpointFlag], env: impl Fn(&str) -> Option<String>) -> Self {
        let mut endpoints = Endpoints::default();
        for flag in flags {
            let Some(service) = Service::from_flag(&flag.service) else { continue };
            match &flag.region {
                Some(region) => endpoints.per_region.insert((service, region.clone()), flag.url.clone()),
                None => endpoints.per_service.insert(service, flag.url.clone()),
            };
        }
        for service in [Service::SecretsManager, Service::Ssm, Service::Sts] {
            if let Some(url) = env(service.env_var()).filter(|u| !u.is_empty()) {
                endpoints.service_env.insert(service, url);
            }
        }
        endpoints.global_env = env("AWS_ENDPOINT_URL").filter(|u| !u.is_empty());
        endpoints
    }

    /// The override for `service` in `region`, or `None` for the AWS default. `spc` is the
    /// SecretProviderClass's own endpoint, already admitted by the allowlist.
    pub fn resolve(&self, service: Service, region: &str, spc: Option<&str>) -> Option<ResolvedEndpoint> {
        let found = |url: Option<&String>, source| url.map(|u| ResolvedEndpoint { url: u.clone(), source });
        spc.map(|u| ResolvedEndpoint { url: u.to_string(), source: EndpointSource::SecretProviderClass })
            .or_else(|| found(self.per_region.get(&(service, region.to_string())), EndpointSource::RegionFlag))
            .or_else(|| found(self.per_service.get(&service), EndpointSource::ServiceFlag))
            .or_else(|| found(self.service_env.get(&service), EndpointSource::ServiceEnv))
            .or_else(|| found(self.global_env.as_ref(), EndpointSource::GlobalEnv))
    }
}

impl Endpoints {
    /// The URL a request for `service` in `region` goes to: the override in force, else the AWS
    /// default (FIPS/dual-stack variants as asked).
    pub async fn url_for(
        &self,
        service: Service,
        region: &str,
        fips: bool,
        dual_stack: bool,
    ) -> Result<ResolvedEndpoint, String> {
        if let Some(found) = self.resolve(service, region, None) {
            return Ok(found);
        }
        let url = default_url(service, region, fips, dual_stack).await?;
        Ok(ResolvedEndpoint { url, source: EndpointSource::AwsDefault })
    }
}

/// The AWS default endpoint of `service` in `region`, as the SDK resolves it.
pub async fn default_url(service: Service, region: &str, fips: bool, dual_stack: bool) -> Result<String, String> {
    macro_rules! resolve {
        ($sdk:ident) => {{
            use $sdk::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
            let params = Params::builder()
                .region(region)
                .use_fips(fips)
                .use_dual_stack(dual_stack)
                .build()
                .map_err(|e| e.to_string())?;
            let endpoint = DefaultResolver::new().resolve_endpoint(&params).await.map_err(|e| e.to_string())?;
            Ok(endpoint.url().to_string())
        }};
    }
    match service {
        Service::SecretsManager => resolve!(aws_sdk_secretsmanager),
        Service::Ssm => resolve!(aws_sdk_ssm),
        Service::Sts => resolve!(aws_sdk_sts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(s: &str) -> EndpointFlag {
        s.parse().expect("valid flag")
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn precedence_follows_the_table() {
        let flags = [flag("secretsmanager@us-west-2=https://vpce-a.example"), flag("secretsmanager=https://b.example")];
        let e = Endpoints::new(
            &flags,
            env(&[("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://c"), ("AWS_ENDPOINT_URL", "http://d")]),
        );
        let url = |svc, region, spc| e.resolve(svc, region, spc).map(|r| r.url);
        assert_eq!(url(Service::SecretsManager, "us-west-2", Some("https://spc")), Some("https://spc".into()));
        assert_eq!(url(Service::SecretsManager, "us-west-2", None), Some("https://vpce-a.example".into()));
        assert_eq!(url(Service::SecretsManager, "eu-west-1", None), Some("https://b.example".into()));
        assert_eq!(url(Service::Ssm, "eu-west-1", None), Some("http://d".into()));
        let only_service_env =
            Endpoints::new(&[], env(&[("AWS_ENDPOINT_URL_SSM", "http://s"), ("AWS_ENDPOINT_URL", "http://d")]));
        assert_eq!(
            only_service_env.resolve(Service::Ssm, "x", None).map(|r| r.source),
            Some(EndpointSource::ServiceEnv)
        );
        assert_eq!(Endpoints::new(&[], env(&[])).resolve(Service::Sts, "us-east-1", None), None);
    }

    #[tokio::test]
    async fn defaults_follow_fips_and_dual_stack_for_every_service_sts_included() {
        let url = |svc, fips, ds| async move { default_url(svc, "us-west-2", fips, ds).await.unwrap() };
        assert_eq!(url(Service::SecretsManager, false, false).await, "https://secretsmanager.us-west-2.amazonaws.com");
        assert_eq!(url(Service::Sts, true, false).await, "https://sts-fips.us-west-2.amazonaws.com");
        assert_eq!(url(Service::Ssm, true, false).await, "https://ssm-fips.us-west-2.amazonaws.com");
        assert_eq!(url(Service::Sts, true, true).await, "https://sts-fips.us-west-2.api.aws");
        assert_eq!(url(Service::Ssm, false, true).await, "https://ssm.us-west-2.api.aws");
        let sm_dual = url(Service::SecretsManager, true, true).await;
        assert_eq!(sm_dual, "https://secretsmanager-fips.us-west-2.amazonaws.com", "already dual-stack");
        let e = Endpoints::new(&[flag("sts=http://127.0.0.1:1")], env(&[]));
        let overridden = e.url_for(Service::Sts, "us-west-2", true, false).await.unwrap();
        assert_eq!((overridden.url.as_str(), overridden.source), ("http://127.0.0.1:1", EndpointSource::ServiceFlag));
    }
}
