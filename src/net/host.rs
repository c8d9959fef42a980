//! Hosts: the host and port of an endpoint URL, and the `--allowed-endpoint-host` patterns a
//! SecretProviderClass endpoint must match. A pattern is an exact host (`vpce-1.example.com`,
//! `10.0.0.5`) or uses `*` for whole labels: a leading `*` stands for one or more labels
//! (`*.vpce.amazonaws.com` matches `vpce-0a-b.secretsmanager.us-west-2.vpce.amazonaws.com`), any
//! other `*` for exactly one (`*.secretsmanager.*.vpce.amazonaws.com`). Matching ignores case
//! and a trailing dot; partial-label wildcards (`vpce-*`) are refused. A pattern may end in
//! `:PORT` (`vpce-1.example.com:8443`, `[fd00::5]:443`): it then admits only that port; a pattern
//! without a port admits any port.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The host and port an endpoint URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlHost {
    /// Lower case, without IPv6 brackets or a trailing dot.
    pub host: String,
    /// The explicit port, else 443 for https and 80 for http.
    pub port: u16,
    pub https: bool,
}

impl UrlHost {
    /// Parses an absolute `http(s)://` URL.
    pub fn parse(url: &str) -> Result<UrlHost, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL ({e})"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{url:?} must start with https:// or http://")),
        };
        let authority = uri.authority().ok_or_else(|| format!("{url:?} names no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{url:?} must not carry user info"));
        }
        let host = normalize(authority.host());
        if host.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(UrlHost { host, port, https })
    }

    /// The host as an address, when it is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for UrlHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip() {
            Some(IpAddr::V6(_)) => write!(f, "[{}]:{}", self.host, self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Lower case, IPv6 brackets and a trailing dot removed.
pub fn normalize(host: &str) -> String {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// One `--allowed-endpoint-host` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    text: String,
    /// An exact address (compared as an address, so any spelling of it matches).
    ip: Option<IpAddr>,
    /// The first label is `*`, standing for one or more labels.
    leading_wildcard: bool,
    /// The labels after a leading wildcard (or all of them); `*` matches exactly one label.
    labels: Vec<String>,
    /// The only port admitted, when the pattern names one.
    port: Option<u16>,
}

impl HostPattern {
    /// Whether an endpoint's host and port match: the host as [`matches`](Self::matches) says,
    /// and the port when the pattern names one.
    pub fn admits(&self, url: &UrlHost) -> bool {
        self.matches(&url.host) && self.port.is_none_or(|port| port == url.port)
    }

    /// Whether `host` (any case, trailing dot allowed) matches, whatever the port.
    pub fn matches(&self, host: &str) -> bool {
        let host = normalize(host);
        if let Some(ip) = self.ip {
            return host.parse::<IpAddr>() == Ok(ip);
        }
        let labels: Vec<&str> = host.split('.').collect();
        if labels.iter().any(|l| l.is_empty()) {
            return false;
        }
        let fixed = self.labels.len();
        let fits = if self.leading_wildcard { labels.len() > fixed } else { labels.len() == fixed };
        fits && labels[labels.len() - fixed..].iter().zip(&self.labels).all(|(got, want)| want == "*" || got == want)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits `host:port`, `[v6]:port`, `[v6]`, a bare IPv6 address or a host into the host and the
/// port text, if any.
fn split_port(s: &str) -> (&str, Option<&str>) {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (host, after.strip_prefix(':'));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (s, None),
    }
}

impl FromStr for HostPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = split_port(s);
        let port = match port {
            Some(text) => Some(
                text.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{s:?}: the port after ':' must be a number from 1 to 65535"))?,
            ),
            None => None,
        };
        let mut pattern = host_pattern(s, normalize(host))?;
        if let Some(port) = port {
            pattern.text = match pattern.ip {
                Some(IpAddr::V6(_)) => format!("[{}]:{port}", pattern.text),
                _ => format!("{}:{port}", pattern.text),
            };
        }
        pattern.port = port;
        Ok(pattern)
    }
}

/// The host part of a pattern (`s` is the whole pattern, for messages).
fn host_pattern(s: &str, text: String) -> Result<HostPattern, String> {
    {
        if text.contains("://") || text.contains('/') || (text.contains(':') && text.parse::<IpAddr>().is_err()) {
            return Err(format!("{s:?}: give a host or host pattern such as *.vpce.amazonaws.com, not a URL"));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(HostPattern { text, ip: Some(ip), leading_wildcard: false, labels: Vec::new(), port: None });
        }
        let mut labels: Vec<String> = text.split('.').map(str::to_string).collect();
        if text.is_empty() || labels.iter().any(|l| l.is_empty()) {
            return Err(format!("{s:?}: empty host or empty label"));
        }
        if labels.iter().any(|l| l.contains('*') && l != "*") {
            return Err(format!("{s:?}: '*' must stand for a whole label (e.g. *.vpce.amazonaws.com)"));
        }
        let leading_wildcard = labels[0] == "*";
        if leading_wildcard {
            labels.remove(0);
        }
        let wildcard = leading_wildcard || labels.iter().any(|l| l == "*");
        if wildcard && labels.iter().filter(|l| *l != "*").count() < 2 {
            return Err(format!("{s:?}: too broad; name at least a domain such as *.vpce.amazonaws.com"));
        }
        Ok(HostPattern { text, ip: None, leading_wildcard, labels, port: None })
    }
}

/// An endpoint URL must be absolute http(s) with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the URL must start with https:// or http://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err("the URL must name a host (and no user info)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> HostPattern {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const VPCE: &str = "vpce-0123abcd-xyz.secretsmanager.us-west-2.vpce.amazonaws.com";

    #[test]
    fn a_leading_wildcard_stands_for_one_or_more_labels() {
        let p = pattern("*.vpce.amazonaws.com");
        assert!(p.matches(VPCE));
        assert!(p.matches("VPCE-1.SSM.EU-WEST-1.VPCE.AMAZONAWS.COM."));
        assert!(p.matches("a.vpce.amazonaws.com"));
        assert!(!p.matches("vpce.amazonaws.com"), "the wildcard needs a label");
        assert!(!p.matches("evil-vpce.amazonaws.com"));
        assert!(!p.matches("vpce.amazonaws.com.evil.example"));
        assert!(!p.matches("a..vpce.amazonaws.com"));
    }

    #[test]
    fn inner_wildcards_stand_for_exactly_one_label() {
        let p = pattern("*.secretsmanager.*.vpce.amazonaws.com");
        assert!(p.matches(VPCE));
        assert!(!p.matches("vpce-1.ssm.us-west-2.vpce.amazonaws.com"));
        assert!(!p.matches("vpce-1.secretsmanager.us.west.vpce.amazonaws.com"));
    }

    #[test]
    fn exact_hosts_and_addresses_match_exactly() {
        let p = pattern("Secrets.Internal.Example.");
        assert!(p.matches("secrets.internal.example"));
        assert!(!p.matches("x.secrets.internal.example"));
        assert!(pattern("localhost").matches("LOCALHOST"));
        let ip = pattern("10.0.0.5");
        assert!(ip.matches("10.0.0.5"));
        assert!(!ip.matches("10.0.0.50"));
        assert!(pattern("[fd00::5]").matches("[FD00:0::5]"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for bad in
            ["", "*", "*.com", "*.*.com", "vpce-*.amazonaws.com", "https://x.example.com", "x.example.com/path", "a..b"]
        {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_port_in_the_pattern_admits_only_that_port() {
        let url = |u: &str| UrlHost::parse(u).unwrap();
        let with_port = pattern("vpce-1.example.com:8443");
        assert_eq!(with_port.to_string(), "vpce-1.example.com:8443");
        assert!(with_port.admits(&url("https://vpce-1.example.com:8443")));
        assert!(!with_port.admits(&url("https://vpce-1.example.com")), "443 is another port");
        assert!(!with_port.admits(&url("https://vpce-1.example.com:8444")));
        let any_port = pattern("vpce-1.example.com");
        assert!(
            any_port.admits(&url("https://vpce-1.example.com:8443"))
                && any_port.admits(&url("https://vpce-1.example.com"))
        );
        assert!(pattern("*.vpce.amazonaws.com:443").admits(&url(&format!("https://{VPCE}"))));
        let v6 = pattern("[fd00::5]:8443");
        assert_eq!(v6.to_string(), "[fd00::5]:8443");
        assert!(v6.admits(&url("https://[fd00::5]:8443")) && !v6.admits(&url("https://[fd00::5]")));
        assert!(pattern("fd00::5").admits(&url("https://[fd00::5]:1")), "a bare IPv6 address has no port");
        assert!(pattern("10.0.0.5:443").admits(&url("https://10.0.0.5")));
        for bad in ["x.example.com:", "x.example.com:0", "x.example.com:99999", "x.example.com:https", "[fd00::5]:x"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn url_hosts() {
        let h = UrlHost::parse(&format!("https://{VPCE}")).unwrap();
        assert_eq!((h.host.as_str(), h.port, h.https), (VPCE, 443, true));
        let h = UrlHost::parse("http://127.0.0.1:5000/").unwrap();
        assert_eq!((h.host.as_str(), h.port, h.ip().is_some()), ("127.0.0.1", 5000, true));
        assert_eq!(UrlHost::parse("https://[::1]:8443").unwrap().to_string(), "[::1]:8443");
        assert!(UrlHost::parse("ftp://x").is_err());
        assert!(UrlHost::parse("https://user:pw@x.example.com").is_err());
        assert!(UrlHost::parse("not a url").is_err());
    }
}
