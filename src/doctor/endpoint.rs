//! `doctor`'s checks of one service in one region: which URL (and why), DNS (each address
//! marked private or public), TCP (to the proxy, then `CONNECT`, when one applies), TLS for
//! https, and an unsigned request that must get an AWS-shaped answer.

use super::report::{Check, Status};
use super::wire::{self, TlsFailure};
use crate::aws::Endpoints;
use crate::aws::probe::{self, ProbeError};
use crate::net::{NetworkSettings, UrlHost, classify, resolve};
use crate::read::Service;
use std::net::IpAddr;
use std::time::Duration;
use tokio::net::TcpStream;

const PRIVATE_DNS_HINT: &str = "enable private DNS on the service's VPC interface endpoint, or give its URL with --endpoint SERVICE@REGION=https://vpce-<id>.<service>.<region>.vpce.amazonaws.com";

/// One service in one region, and how to reach it.
pub struct Target<'a> {
    pub net: &'a NetworkSettings,
    pub service: Service,
    pub region: &'a str,
    pub timeout: Duration,
}

impl Target<'_> {
    fn name(&self, step: &str) -> String {
        format!("{} {}@{}", step, self.service.as_str(), self.region)
    }

    /// Every row for this service and region.
    pub async fn check(&self, endpoints: &Endpoints) -> Vec<Check> {
        let net = self.net;
        let resolved = match endpoints.url_for(self.service, self.region, net.use_fips, net.use_dual_stack).await {
            Ok(resolved) => resolved,
            Err(e) => return vec![Check::fail(self.name("endpoint"), "-", e, "check the region name")],
        };
        let url = resolved.url;
        let host = match UrlHost::parse(&url) {
            Ok(host) => host,
            Err(e) => return vec![Check::fail(self.name("endpoint"), &url, e, "fix the endpoint URL")],
        };
        let proxy = net.proxy.proxy_for(&url);
        let via = proxy.as_ref().map(|p| format!(", through proxy {p}")).unwrap_or_default();
        let mut rows =
            vec![Check::pass(self.name("endpoint"), &url, format!("from {}{via}", resolved.source.as_str()))];
        let dialled = proxy.clone().unwrap_or_else(|| host.clone());
        let (dns, addrs) = self.dns(&dialled, proxy.is_some()).await;
        rows.push(dns);
        let Some(addrs) = addrs else {
            rows.extend(self.skipped(&host, "not attempted: DNS failed or was refused"));
            return rows;
        };
        let (tcp, stream) = self.tcp(&addrs, &dialled, proxy.is_some().then_some(&host), &url).await;
        let connected = stream.is_some();
        rows.push(tcp);
        let tls = self.tls(stream, &host).await;
        let secured = tls.status != Status::Fail;
        rows.push(tls);
        rows.push(match (connected, secured) {
            (true, true) => self.answer(&url).await,
            (false, _) => Check::skip(self.name("aws"), &url, "not attempted: no connection"),
            (true, false) => Check::skip(self.name("aws"), &url, "not attempted: the TLS handshake failed"),
        });
        rows
    }

    fn skipped(&self, host: &UrlHost, why: &str) -> Vec<Check> {
        ["tcp", "tls", "aws"].iter().map(|step| Check::skip(self.name(step), host.to_string(), why)).collect()
    }

    /// The dialled host's addresses, each marked; `None` when they must not (or cannot) be used.
    async fn dns(&self, dialled: &UrlHost, is_proxy: bool) -> (Check, Option<Vec<IpAddr>>) {
        let name = self.name("dns");
        let found = match self.net.resolver.lookup(&dialled.host).await {
            Ok(found) => found,
            Err(e) => {
                let hint = "check the name (a vpce-… URL must match the interface endpoint's DNS names), the node's resolver, and the VPC's enableDnsSupport/enableDnsHostnames";
                return (Check::fail(name, &dialled.host, e.to_string(), hint), None);
            }
        };
        let detail = format!("{} (from {})", resolve::describe_addrs(&found.addrs), found.source.as_str());
        let public = found.addrs.iter().any(|ip| !classify(*ip).is_private());
        let hint = if is_proxy {
            "use a proxy at a private address, or list the AWS hosts in NO_PROXY"
        } else {
            PRIVATE_DNS_HINT
        };
        match (public, self.net.require_private) {
            (false, _) => (Check::pass(name, &dialled.host, detail), Some(found.addrs)),
            (true, true) => {
                let detail = format!("{detail}; refused by --require-private-endpoints, nothing was sent");
                (Check::fail(name, &dialled.host, detail, hint), None)
            }
            (true, false) => {
                let detail = format!("{detail}; traffic would leave the VPC (NAT gateway or internet gateway)");
                (Check::new(Status::Warn, name, &dialled.host, detail).with_hint(hint), Some(found.addrs))
            }
        }
    }

    /// A connection to the dialled host (and a tunnel through it when it is a proxy).
    async fn tcp(
        &self,
        addrs: &[IpAddr],
        dialled: &UrlHost,
        tunnel_to: Option<&UrlHost>,
        url: &str,
    ) -> (Check, Option<TcpStream>) {
        let name = self.name("tcp");
        let (mut stream, addr) = match wire::connect(addrs, dialled.port, self.timeout).await {
            Ok(connected) => connected,
            Err(e) => {
                let hint = "allow TCP from the nodes to this port (the interface endpoint's security group, network ACLs, routes), or check that the proxy runs";
                return (Check::fail(name, dialled.to_string(), e, hint), None);
            }
        };
        let Some(target) = tunnel_to else {
            return (Check::pass(name, dialled.to_string(), format!("connected to {addr}")), Some(stream));
        };
        let auth = self.net.proxy.authorization_for(url);
        match wire::tunnel(&mut stream, target, auth.as_deref(), self.timeout).await {
            Ok(status) => {
                let detail = format!("connected to proxy {addr}; CONNECT {target}: {status}");
                (Check::pass(name, dialled.to_string(), detail), Some(stream))
            }
            Err(e) => {
                let hint = "allow the AWS hosts on the proxy (CONNECT to port 443), or bypass it with NO_PROXY";
                (Check::fail(name, dialled.to_string(), format!("CONNECT {target}: {e}"), hint), None)
            }
        }
    }

    async fn tls(&self, stream: Option<TcpStream>, host: &UrlHost) -> Check {
        let name = self.name("tls");
        if !host.https {
            return Check::skip(name, host.to_string(), "plain http endpoint: no TLS");
        }
        let Some(stream) = stream else { return Check::skip(name, host.to_string(), "not attempted: no connection") };
        match wire::handshake(stream, &host.host, self.net.ca_bundle.as_ref(), self.timeout).await {
            Ok(version) => {
                Check::pass(name, host.to_string(), format!("handshake ok ({version}), certificate trusted"))
            }
            Err(TlsFailure::Certificate(e)) => Check::fail(
                name,
                host.to_string(),
                format!("certificate problem: {e}"),
                "if a TLS-inspecting proxy or a private CA signs this certificate, pass its CA with --ca-bundle FILE (or AWS_CA_BUNDLE); else check that the URL names the certificate's host",
            ),
            Err(TlsFailure::Other(e)) => Check::fail(
                name,
                host.to_string(),
                e,
                "something other than a TLS server answers on this port; check the URL's scheme and port",
            ),
        }
    }

    /// The unsigned request, through the same path as every mount.
    async fn answer(&self, url: &str) -> Check {
        let name = self.name("aws");
        match probe::unsigned(self.net, self.service, url, self.timeout).await {
            Ok(answer) if answer.is_aws() => {
                let id = answer.request_id.as_deref().unwrap_or("-");
                let error = answer.aws_error.as_deref().unwrap_or("-");
                Check::pass(name, url, format!("HTTP {}, request id {id}, error code {error}", answer.status))
            }
            Ok(answer) => Check::fail(
                name,
                url,
                format!("HTTP {} without a request id or an AWS error body", answer.status),
                "something other than AWS answered (a proxy's error page, another service): check the endpoint URL and the proxy",
            ),
            Err(e @ ProbeError::Refused(_)) => Check::fail(name, url, e.to_string(), PRIVATE_DNS_HINT),
            Err(e @ ProbeError::Certificate(_)) => {
                Check::fail(name, url, e.to_string(), "pass the signing CA with --ca-bundle FILE")
            }
            Err(e) => {
                Check::fail(name, url, e.to_string(), "see the tcp and tls rows; check the proxy and the endpoint")
            }
        }
    }
}
