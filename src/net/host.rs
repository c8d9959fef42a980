//! Hosts: the host and port of an endpoint URL, and the `--allowed-endpoint-host` patterns a
//! SecretProviderClass endpoint must match. A pattern is an exact host (`vpce-1.example.com`,
//! `10.0.0.5`) or uses `*` for whole labels: a leading `*` stands for one or more labels
//! (`*.vpce.amazonaws.com` matches `vpce-0a-b.secretsmanager.us-west-2.vpce.amazonaws.com`), any
//! other `*` for exactly one (`*.secretsmanager.*.vpce.amazonaws.com`). Matching ignores case
//! and a trailing dot; partial-label wildcards (`vpce-*`) are refused.

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
}

impl HostPattern {
    /// Whether `host` (any case, trailing dot allowed) matches.
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

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for HostPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = normalize(s);
        if text.contains("://") || text.contains('/') || (text.contains(':') && text.parse::<IpAddr>().is_err()) {
            return Err(format!("{s:?}: give a host or host pattern such as *.vpce.amazonaws.com, not a URL"));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(HostPattern { text, ip: Some(ip), leading_wildcard: false, labels: Vec::new() });
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
        Ok(HostPattern { text, ip: None, leading_wildcard, labels })
    }
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
