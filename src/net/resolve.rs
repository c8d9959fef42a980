//! Name resolution for every AWS connection and for `doctor`: `--resolve HOST=ADDR[,ADDR]`
//! entries first (like curl's `--resolve`; tests use them to make a name resolve to any address
//! without DNS), then the system resolver. Under `--require-private-endpoints` the addresses are
//! checked before anything connects, and the connection goes to exactly the addresses checked.

use super::address::{self, AddressKind};
use super::host::normalize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

/// One `--resolve HOST=ADDR[,ADDR]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveFlag {
    pub host: String,
    pub addrs: Vec<IpAddr>,
}

impl FromStr for ResolveFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, list) = s.split_once('=').ok_or_else(|| format!("resolve {s:?}: expected HOST=ADDR[,ADDR]"))?;
        let host = normalize(host);
        if host.is_empty() || host.contains('/') || host.contains(':') {
            return Err(format!("resolve {s:?}: {host:?} is not a host name"));
        }
        let addrs = list
            .split(',')
            .map(|a| normalize(a).parse::<IpAddr>().map_err(|_| format!("resolve {s:?}: {a:?} is not an IP address")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResolveFlag { host, addrs })
    }
}

/// Where addresses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The host is an IP address.
    Literal,
    /// A `--resolve` entry.
    Override,
    /// The system resolver.
    System,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Literal => "address literal",
            Source::Override => "--resolve",
            Source::System => "DNS",
        }
    }
}

/// Addresses of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub addrs: Vec<IpAddr>,
    pub source: Source,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    #[error("{host} does not resolve: {reason}")]
    Failed { host: String, reason: String },
    #[error("{host} resolves to no address")]
    Empty { host: String },
}

/// `--resolve` entries, then the system resolver.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    overrides: Arc<BTreeMap<String, Vec<IpAddr>>>,
}

impl Resolver {
    /// Entries for one host accumulate in order.
    pub fn new(flags: &[ResolveFlag]) -> Self {
        let mut overrides: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for flag in flags {
            let addrs = overrides.entry(flag.host.clone()).or_default();
            for addr in &flag.addrs {
                if !addrs.contains(addr) {
                    addrs.push(*addr);
                }
            }
        }
        Resolver { overrides: Arc::new(overrides) }
    }

    /// The `--resolve` entries, for the start-up log.
    pub fn overrides(&self) -> impl Iterator<Item = (&String, &Vec<IpAddr>)> {
        self.overrides.iter()
    }

    /// The addresses of `host`, without checking them.
    pub async fn lookup(&self, host: &str) -> Result<Resolved, ResolveError> {
        let host = normalize(host);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Resolved { addrs: vec![ip], source: Source::Literal });
        }
        if let Some(addrs) = self.overrides.get(&host) {
            return Ok(Resolved { addrs: addrs.clone(), source: Source::Override });
        }
        let found = tokio::net::lookup_host((host.as_str(), 0))
            .await
            .map_err(|e| ResolveError::Failed { host: host.clone(), reason: e.to_string() })?;
        let mut addrs: Vec<IpAddr> = Vec::new();
        for ip in found.map(|sa| sa.ip()) {
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
        if addrs.is_empty() {
            return Err(ResolveError::Empty { host });
        }
        Ok(Resolved { addrs, source: Source::System })
    }
}

/// What a refused host was going to be used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialled {
    Endpoint,
    Proxy,
}

/// `--require-private-endpoints` refused a host because an address of it is public. Nothing was
/// sent to any of its addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PublicAddressRefused {
    pub host: String,
    pub addrs: Vec<IpAddr>,
    pub dialled: Dialled,
}

impl fmt::Display for PublicAddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.dialled {
            Dialled::Endpoint => "endpoint host",
            Dialled::Proxy => "proxy host",
        };
        write!(
            f,
            "--require-private-endpoints refused {what} {} because it resolves to public addresses ({}); nothing was sent to it. {}",
            self.host,
            describe_addrs(&self.addrs),
            self.fix()
        )
    }
}

impl PublicAddressRefused {
    fn fix(&self) -> &'static str {
        match self.dialled {
            Dialled::Endpoint => {
                "Fix: enable private DNS on the VPC interface endpoint for this service (so the AWS host name resolves to the endpoint's private addresses), or configure the interface endpoint's own URL with --endpoint SERVICE[@REGION]=https://vpce-<id>.<service>.<region>.vpce.amazonaws.com"
            }
            Dialled::Proxy => {
                "Fix: use a proxy at a private address, or add the AWS endpoint hosts to NO_PROXY and reach them through VPC interface endpoints"
            }
        }
    }
}

/// `203.0.113.10 (public), 10.0.0.5 (private, RFC 1918)`.
pub fn describe_addrs(addrs: &[IpAddr]) -> String {
    let described: Vec<String> = addrs.iter().map(|ip| format!("{ip} ({})", address::classify(*ip))).collect();
    described.join(", ")
}

/// Refuses `host` when any of its addresses is public.
pub fn require_private(host: &str, addrs: &[IpAddr], dialled: Dialled) -> Result<(), PublicAddressRefused> {
    let all_private = addrs.iter().all(|ip| address::classify(*ip) != AddressKind::Public);
    if all_private && !addrs.is_empty() {
        return Ok(());
    }
    Err(PublicAddressRefused { host: normalize(host), addrs: addrs.to_vec(), dialled })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn resolve_flags_parse_like_curl_without_the_port() {
        let flag: ResolveFlag = "Secretsmanager.us-west-2.amazonaws.com=10.0.1.5,[fd00::5]".parse().unwrap();
        assert_eq!(flag.host, "secretsmanager.us-west-2.amazonaws.com");
        assert_eq!(flag.addrs, vec![ip("10.0.1.5"), ip("fd00::5")]);
        for bad in ["host", "=10.0.0.1", "host=", "host=10.0.0.300", "https://h=10.0.0.1", "h:443=10.0.0.1"] {
            assert!(bad.parse::<ResolveFlag>().is_err(), "{bad:?} should be refused");
        }
    }

    #[tokio::test]
    async fn overrides_come_first_and_literals_need_no_lookup() {
        let flags: Vec<ResolveFlag> =
            ["a.example=10.0.0.1", "A.example=10.0.0.2,10.0.0.1"].iter().map(|f| f.parse().unwrap()).collect();
        let resolver = Resolver::new(&flags);
        let got = resolver.lookup("a.EXAMPLE.").await.unwrap();
        assert_eq!(got, Resolved { addrs: vec![ip("10.0.0.1"), ip("10.0.0.2")], source: Source::Override });
        let literal = resolver.lookup("[::1]").await.unwrap();
        assert_eq!(literal.source, Source::Literal);
        assert_eq!(resolver.lookup("localhost").await.map(|r| r.source).ok(), Some(Source::System));
    }

    #[test]
    fn any_public_address_refuses_the_host_and_the_message_says_why_and_how() {
        assert!(require_private("h", &[ip("10.0.0.1"), ip("fd00::1")], Dialled::Endpoint).is_ok());
        assert!(require_private("h", &[], Dialled::Endpoint).is_err());
        let err = require_private("vpce.example", &[ip("10.0.0.1"), ip("203.0.113.10")], Dialled::Endpoint)
            .expect_err("public");
        let text = err.to_string();
        assert!(text.contains("vpce.example"), "{text}");
        assert!(text.contains("203.0.113.10 (public)") && text.contains("10.0.0.1 (private, RFC 1918)"), "{text}");
        assert!(text.contains("enable private DNS") && text.contains("--endpoint"), "{text}");
        let proxy = require_private("proxy.example", &[ip("198.51.100.1")], Dialled::Proxy).expect_err("public");
        assert!(proxy.to_string().contains("proxy host proxy.example") && proxy.to_string().contains("NO_PROXY"));
    }
}
