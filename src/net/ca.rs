//! `--ca-bundle FILE` / `AWS_CA_BUNDLE`: extra trust roots (PEM) for every AWS connection, on top
//! of the system's. Read and checked when the flag is parsed, so a bad file stops the start with
//! a message naming it instead of failing the first mount.

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// A checked PEM bundle of one or more CA certificates.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    path: PathBuf,
    pem: Arc<Vec<u8>>,
    count: usize,
}

impl CaBundle {
    /// Reads and checks `path`: PEM, at least one certificate, each usable as a trust root.
    pub fn load(path: &Path) -> Result<CaBundle, String> {
        let pem = std::fs::read(path).map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
        let count = check(&pem).map_err(|reason| format!("CA bundle {}: {reason}", path.display()))?;
        Ok(CaBundle { path: path.to_path_buf(), pem: Arc::new(pem), count })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as read (already checked).
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// The certificates (DER).
    pub fn certificates(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(&self.pem).filter_map(Result::ok).collect()
    }
}

/// The number of certificates, each of which parses and is accepted as a root.
fn check(pem: &[u8]) -> Result<usize, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM file ({e})"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|e| format!("certificate {} is not usable as a CA: {e}", i + 1))?;
    }
    Ok(certs.len())
}

impl FromStr for CaBundle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CaBundle::load(Path::new(s))
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaBundle({}, {} certificates)", self.path.display(), self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_certificates_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = CaBundle::load(&empty).expect_err("refused");
        assert!(err.contains("empty.pem") && err.contains("no PEM certificate"), "{err}");
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        assert!(CaBundle::load(&bad).is_err());
        assert!(CaBundle::load(&dir.path().join("missing.pem")).expect_err("missing").contains("missing.pem"));
    }
}
