//! A private CA made at test time ([`TestCa`], rcgen) and a TLS front on 127.0.0.1
//! ([`TlsFront`]) that terminates TLS with a certificate the CA signed and relays the plain bytes
//! to a backend (moto or a recorder): an interface endpoint behind a private CA, or what a
//! TLS-inspecting proxy shows. Only loopback addresses are used.
//!
//! ```ignore
//! let ca = TestCa::new();
//! let front = TlsFront::start(&ca, &["localhost", "vpce-test.internal"], &rec.url());
//! let provider = Provider::builder(&moto.url())
//!     .args(&["--endpoint", &format!("secretsmanager={}", front.url("localhost"))])
//!     .args(&["--ca-bundle", &ca.pem_path().display().to_string()])
//!     .start();
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::TempDir;
use tokio::net::TcpStream;

use super::stand_in;

/// A CA whose certificate is written to a PEM file (give it to `--ca-bundle`).
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "csi-provider-aws test CA");
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA certificate");
        let dir = tempfile::Builder::new().prefix("ca-").tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("write ca.pem");
        TestCa { issuer, dir }
    }

    /// The CA certificate (PEM).
    pub fn pem_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server configuration with a certificate for `names` (host names or IP addresses).
    fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("names");
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
            .expect("server config");
        Arc::new(config)
    }
}

/// A TLS-terminating relay; stops accepting when dropped.
pub struct TlsFront {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    handshakes: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl TlsFront {
    /// Listens on 127.0.0.1 with a certificate for `names`, relaying to `backend`
    /// (`http://127.0.0.1:<port>`).
    pub fn start(ca: &TestCa, names: &[&str], backend: &str) -> TlsFront {
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config(names));
        let backend = backend.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let (handshakes, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counters = (handshakes.clone(), refused.clone());
        let task = stand_in::runtime().spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (acceptor, backend, counters) = (acceptor.clone(), backend.clone(), counters.clone());
                tokio::spawn(async move { relay(stream, acceptor, &backend, counters).await });
            }
        });
        TlsFront { addr, task, handshakes, refused }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://<host>:<port>`; `host` must be one of the certificate's names (and resolve to
    /// 127.0.0.1, through `/etc/hosts` or the provider's `--resolve`).
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    /// Completed handshakes so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Handshakes the client aborted (e.g. it did not trust the certificate).
    pub fn refused_handshakes(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    backend: &str,
    (handshakes, refused): (Arc<AtomicUsize>, Arc<AtomicUsize>),
) {
    let mut tls = match acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(_) => {
            refused.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    handshakes.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut upstream) = TcpStream::connect(backend).await {
        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
    }
}
