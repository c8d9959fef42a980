//! Credentials a mount reads with, opaque outside the `aws` area.

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::identity::SharedIdentityCache;
use std::fmt;

/// The credentials of one mount: a pod's own, or (only with `--local-credentials`) the
/// process's default chain. `Debug` never shows them.
#[derive(Clone)]
pub struct AwsCredentials {
    pub(crate) provider: SharedCredentialsProvider,
    /// A cache shared by every client using this provider (the local chain resolves lazily);
    /// `None` for credentials that are already resolved.
    pub(crate) cache: Option<SharedIdentityCache>,
    /// A label for logs (`local`, or the role/session): never a key.
    label: String,
    /// The bytes the key material and label hold (for caches bounded in bytes).
    bytes: usize,
}

impl AwsCredentials {
    /// The process's default credential chain (environment, profile, web identity, IMDS...).
    pub async fn local_chain() -> Self {
        let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder().build().await;
        let cache = aws_config::identity::IdentityCache::lazy().build();
        let provider = SharedCredentialsProvider::new(chain);
        AwsCredentials { provider, cache: Some(cache), label: "local".into(), bytes: 0 }
    }

    /// Fixed credentials (from STS or the Pod Identity agent).
    pub fn fixed(access_key: &str, secret_key: &str, session_token: Option<&str>, label: &str) -> Self {
        let creds = aws_credential_types::Credentials::new(
            access_key,
            secret_key,
            session_token.map(str::to_string),
            None,
            "csi-provider-aws",
        );
        let bytes = access_key.len() + secret_key.len() + session_token.map_or(0, str::len) + label.len();
        AwsCredentials { provider: SharedCredentialsProvider::new(creds), cache: None, label: label.to_string(), bytes }
    }

    /// About how many heap bytes these credentials hold (key material and label).
    pub fn heap_bytes(&self) -> usize {
        self.bytes
    }
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AwsCredentials({})", self.label)
    }
}
