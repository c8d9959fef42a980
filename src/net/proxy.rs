//! `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` (upper or lower case), read from an
//! injected environment. AWS endpoints are https, so `HTTPS_PROXY` is the one that matters; one
//! proxy URL is used (the SDK's connector takes one), and `NO_PROXY` follows curl's rules
//! (domains match their subdomains, IPs and CIDRs, `*`).

use super::host::UrlHost;
use hyper_util::client::proxy::matcher::Matcher;
use std::fmt;

/// Which endpoint schemes the proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScope {
    All,
    Http,
    Https,
}

/// The proxy in force: its URL (possibly with credentials: never log it, use
/// [`ProxySettings::describe`]), scope and bypass list.
#[derive(Clone, Default)]
pub struct ProxySettings {
    rule: Option<(String, ProxyScope)>,
    no_proxy: String,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ProxyError {
    pub variable: &'static str,
    pub reason: String,
}

fn first(env: &impl Fn(&str) -> Option<String>, names: [&'static str; 2]) -> Option<(&'static str, String)> {
    names.into_iter().find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v.trim().to_string())))
}

impl ProxySettings {
    /// Reads the proxy variables; a URL without a scheme means `http://`.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, ProxyError> {
        let all = first(&env, ["ALL_PROXY", "all_proxy"]);
        let https = first(&env, ["HTTPS_PROXY", "https_proxy"]).or_else(|| all.clone());
        let http = first(&env, ["HTTP_PROXY", "http_proxy"]).or(all);
        let rule = match (https, http) {
            (Some((var, a)), Some((_, b))) if a == b => Some((var, a, ProxyScope::All)),
            (Some((var, url)), other) => {
                if other.is_some() {
                    tracing::warn!(
                        "HTTP_PROXY differs from HTTPS_PROXY: AWS endpoints are https, so HTTPS_PROXY is used and plain-http endpoints connect directly"
                    );
                }
                Some((var, url, ProxyScope::Https))
            }
            (None, Some((var, url))) => Some((var, url, ProxyScope::Http)),
            (None, None) => None,
        };
        let rule = match rule {
            Some((var, url, scope)) => Some((checked_url(var, &url)?, scope)),
            None => None,
        };
        let no_proxy = first(&env, ["NO_PROXY", "no_proxy"]).map(|(_, v)| v).unwrap_or_default();
        Ok(ProxySettings { rule, no_proxy })
    }

    /// The proxy URL and scope, when one is configured.
    pub fn rule(&self) -> Option<(&str, ProxyScope)> {
        self.rule.as_ref().map(|(url, scope)| (url.as_str(), *scope))
    }

    /// The proxy's host and port, when one is configured.
    pub fn proxy_host(&self) -> Option<UrlHost> {
        self.rule.as_ref().and_then(|(url, _)| UrlHost::parse(&without_userinfo(url)).ok())
    }

    pub fn no_proxy(&self) -> &str {
        &self.no_proxy
    }

    /// The proxy that a request to `url` goes through, if any (`NO_PROXY` applied).
    pub fn proxy_for(&self, url: &str) -> Option<UrlHost> {
        let intercept = self.matcher()?.intercept(&url.parse().ok()?)?;
        UrlHost::parse(&without_userinfo(&intercept.uri().to_string())).ok()
    }

    /// The `Proxy-Authorization` value for a tunnel to `url`, when the proxy URL carries
    /// credentials.
    pub fn authorization_for(&self, url: &str) -> Option<String> {
        let intercept = self.matcher()?.intercept(&url.parse().ok()?)?;
        intercept.basic_auth()?.to_str().ok().map(str::to_string)
    }

    /// The same matcher the SDK's connector builds from this rule.
    fn matcher(&self) -> Option<Matcher> {
        let (proxy, scope) = self.rule.as_ref()?;
        let builder = Matcher::builder().no(self.no_proxy.clone());
        let builder = match scope {
            ProxyScope::All => builder.all(proxy.clone()),
            ProxyScope::Http => builder.http(proxy.clone()),
            ProxyScope::Https => builder.https(proxy.clone()),
        };
        Some(builder.build())
    }

    /// The proxy for logs: scheme, host and port only (never credentials), and `NO_PROXY`.
    pub fn describe(&self) -> String {
        match &self.rule {
            None => "none".to_string(),
            Some((_, scope)) => {
                let target = self.proxy_host().map(|h| h.to_string()).unwrap_or_else(|| "?".into());
                format!("{target} for {scope:?} endpoints, NO_PROXY={:?}", self.no_proxy)
            }
        }
    }
}

impl fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxySettings({})", self.describe())
    }
}

/// `http://user:pw@host:1/` → `http://host:1/`.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// The proxy URL with a scheme, checked: http(s), a host, no path.
fn checked_url(variable: &'static str, raw: &str) -> Result<String, ProxyError> {
    let url = if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") };
    let bad = |reason: &str| ProxyError { variable, reason: reason.to_string() };
    let uri: http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("the proxy URL must be http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("the proxy URL names no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    const SM: &str = "https://secretsmanager.us-west-2.amazonaws.com";

    #[test]
    fn https_proxy_applies_to_aws_endpoints_and_no_proxy_bypasses() {
        let p = ProxySettings::from_env(env(&[
            ("https_proxy", "proxy.corp:3128"),
            ("NO_PROXY", ".vpce.amazonaws.com,10.0.0.0/8"),
        ]))
        .unwrap();
        assert_eq!(p.rule(), Some(("http://proxy.corp:3128", ProxyScope::Https)));
        assert_eq!(p.proxy_for(SM).map(|h| h.to_string()), Some("proxy.corp:3128".into()));
        assert_eq!(p.proxy_for("https://vpce-1.secretsmanager.us-west-2.vpce.amazonaws.com"), None);
        assert_eq!(p.proxy_for("https://10.1.2.3"), None);
        assert_eq!(p.proxy_for("http://127.0.0.1:5000"), None, "HTTPS_PROXY alone leaves http alone");
    }

    #[test]
    fn all_proxy_and_equal_variables_cover_both_schemes() {
        let p = ProxySettings::from_env(env(&[("ALL_PROXY", "http://user:pw@10.0.0.9:8080")])).unwrap();
        assert_eq!(p.rule().map(|r| r.1), Some(ProxyScope::All));
        assert_eq!(p.proxy_for("http://127.0.0.1:5000").map(|h| h.to_string()), Some("10.0.0.9:8080".into()));
        assert!(!p.describe().contains("pw"), "{}", p.describe());
        assert_eq!(p.authorization_for(SM).as_deref(), Some("Basic dXNlcjpwdw=="));
        assert!(!format!("{p:?}").contains("user"));
        let none = ProxySettings::from_env(env(&[("HTTPS_PROXY", " ")])).unwrap();
        assert_eq!(none.proxy_for(SM), None);
    }

    #[test]
    fn bad_proxy_urls_are_refused_naming_the_variable() {
        let err = ProxySettings::from_env(env(&[("HTTPS_PROXY", "socks5://p:1080")])).expect_err("refused");
        assert_eq!(err.variable, "HTTPS_PROXY");
    }
}
