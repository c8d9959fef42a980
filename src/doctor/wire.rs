//! The raw steps of `doctor`'s endpoint checks: connect to exactly the addresses resolved (or
//! the proxy, then `CONNECT` through it), and a TLS handshake with the same trust roots as every
//! AWS connection (system roots plus `--ca-bundle`).

use crate::net::{CaBundle, UrlHost};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The first of `addrs` (on `port`) that accepts a connection, or every failure.
pub async fn connect(addrs: &[IpAddr], port: u16, timeout: Duration) -> Result<(TcpStream, SocketAddr), String> {
    let mut failures = Vec::new();
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, addr)),
            Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
            Err(_) => failures.push(format!("{addr}: no answer within {timeout:?}")),
        }
    }
    Err(failures.join("; "))
}

/// Opens a tunnel to `target` through a connected proxy (`CONNECT`); `Ok` with the status line.
pub async fn tunnel(
    stream: &mut TcpStream,
    target: &UrlHost,
    authorization: Option<&str>,
    timeout: Duration,
) -> Result<String, String> {
    let auth = authorization.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("sending CONNECT: {e}"))?;
        read_head(stream).await
    };
    let head = tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("no answer within {timeout:?}"))??;
    let status = head.lines().next().unwrap_or_default().trim().to_string();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(status),
        _ => Err(format!("the proxy answered {status:?}")),
    }
}

/// Reads an HTTP response head (up to the blank line, at most 16 KiB).
async fn read_head(stream: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err("the proxy's answer is too long".into());
        }
        match stream.read(&mut byte).await {
            Ok(0) => return Err("the proxy closed the connection".into()),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("reading the proxy's answer: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate was not accepted (untrusted issuer, wrong name, expired...).
    Certificate(String),
    Other(String),
}

/// A TLS handshake with `host` over `stream`; `Ok` with the protocol version negotiated.
pub async fn handshake(
    stream: TcpStream,
    host: &str,
    ca_bundle: Option<&CaBundle>,
    timeout: Duration,
) -> Result<String, TlsFailure> {
    let config = client_config(ca_bundle).map_err(TlsFailure::Other)?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| TlsFailure::Other(format!("{host:?}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let done = tokio::time::timeout(timeout, connector.connect(name, stream))
        .await
        .map_err(|_| TlsFailure::Other(format!("no handshake within {timeout:?}")))?;
    match done {
        Ok(tls) => Ok(tls.get_ref().1.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default()),
        Err(e) => Err(classify(&e)),
    }
}

fn classify(err: &std::io::Error) -> TlsFailure {
    match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls @ rustls::Error::InvalidCertificate(_)) => TlsFailure::Certificate(tls.to_string()),
        Some(other) => TlsFailure::Other(other.to_string()),
        None => TlsFailure::Other(err.to_string()),
    }
}

/// The system roots plus the bundle, as the AWS clients use them.
fn client_config(ca_bundle: Option<&CaBundle>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for cert in ca_bundle.map(CaBundle::certificates).unwrap_or_default() {
        roots.add(cert).map_err(|e| format!("--ca-bundle: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
