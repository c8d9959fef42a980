//! The mounting pod's own AWS identity: IRSA (the service account's role, through STS
//! `AssumeRoleWithWebIdentity` with the pod's token) or EKS Pod Identity (the agent, with the
//! pod's token). Credentials obtained for one pod are returned to that mount only.

mod assume;
mod cache;
mod error;
mod irsa;
mod pod_identity;
mod tokens;

pub(crate) use assume::{RoleAllowlist, RoleAssumer, RolePattern, RoleRefused};
pub(crate) use error::IdentityError;
pub(crate) use pod_identity::AgentClient;
#[doc(hidden)]
pub use pod_identity::parse_agent_answer;

use crate::aws::{AwsCredentials, AwsReader};
use crate::clock::SharedClock;
use crate::k8s::K8s;
use crate::params::MountParams;
use crate::read::Route;
use std::sync::Arc;
use std::time::SystemTime;

/// Token audience for IRSA.
pub(crate) const IRSA_AUDIENCE: &str = "sts.amazonaws.com";
/// Token audience for EKS Pod Identity.
pub(crate) const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";

/// Bound on cached credentials (one per live token).
const MAX_CACHED_CREDENTIALS: usize = 10_000;
/// Bound on the bytes cached credentials hold: 10,000 entries of about 1.6 KiB (an STS
/// session token is around 1 KiB).
const MAX_CREDENTIAL_BYTES: usize = 16 * 1024 * 1024;

/// Credentials obtained for one pod, with the identity AWS proved.
#[derive(Debug, Clone)]
pub(crate) struct PodCredentials {
    pub credentials: AwsCredentials,
    /// IRSA: the `AssumedRoleUser` role STS returned; Pod Identity: `ACCOUNT:namespace/name`
    /// with the account the agent answered and the service account of the token it accepted.
    pub identity: String,
    pub expires: Option<SystemTime>,
    pub obtained: SystemTime,
}

/// Credentials to read with, and the identity they prove (it scopes the value cache).
#[derive(Debug, Clone)]
pub(crate) struct Proven {
    pub credentials: AwsCredentials,
    /// `local`, or what AWS or the agent proved for the pod's token (see [`PodCredentials`]).
    pub identity: String,
}

/// Where a mount's credentials come from.
#[derive(Debug, Clone)]
pub(crate) enum CredentialSource {
    /// `--local-credentials`: the process's own chain, for every mount.
    Local(AwsCredentials),
    /// The mounting pod's own identity (IRSA or Pod Identity).
    Pod(Box<IdentityResolver>),
}

impl CredentialSource {
    /// The credentials for a mount of `params` reading along `routes` (primary first).
    pub async fn prove(&self, params: &MountParams, routes: &[Route<'_>]) -> Result<Proven, IdentityError> {
        match self {
            CredentialSource::Local(credentials) => {
                Ok(Proven { credentials: credentials.clone(), identity: "local".to_string() })
            }
            CredentialSource::Pod(resolver) => {
                let pod = resolver.resolve(params, routes).await?;
                tracing::debug!(identity = %pod.identity, "pod credentials obtained");
                Ok(Proven { credentials: pod.credentials, identity: pod.identity })
            }
        }
    }
}

/// Resolves a mount's credentials from the pod's identity.
#[derive(Debug, Clone)]
pub(crate) struct IdentityResolver {
    aws: AwsReader,
    k8s: Arc<K8s>,
    agent: AgentClient,
    cache: Arc<cache::CredentialCache>,
}

impl IdentityResolver {
    /// A resolver reading STS through `aws`, service accounts through `k8s` and the Pod
    /// Identity agent through `agent`; cached credentials expire on `clock`.
    pub fn new(aws: AwsReader, k8s: Arc<K8s>, agent: AgentClient, clock: SharedClock) -> Self {
        let cache = cache::CredentialCache::new(MAX_CACHED_CREDENTIALS, MAX_CREDENTIAL_BYTES, clock);
        IdentityResolver { aws, k8s, agent, cache: Arc::new(cache) }
    }

    /// The pod's credentials, reused while the same token is presented. The token's service
    /// account must be the one the attributes name; the scope these credentials give (their
    /// `identity`) is what AWS or the agent proved for the token, never what the attributes
    /// say. `routes` are the
    /// regions being read (with the SecretProviderClass's admitted endpoints), primary first:
    /// IRSA tries the next region's STS endpoint only when one fails transiently.
    pub async fn resolve(&self, params: &MountParams, routes: &[Route<'_>]) -> Result<PodCredentials, IdentityError> {
        if params.use_pod_identity {
            let token = tokens::token_for(params, POD_IDENTITY_AUDIENCE)?;
            let subject = tokens::checked_subject(params, token, POD_IDENTITY_AUDIENCE)?;
            let key = cache::key(&["pod-identity", token.token.expose()]);
            self.cached(key, pod_identity::credentials(&self.agent, params, token, &subject)).await
        } else {
            let token = tokens::token_for(params, IRSA_AUDIENCE)?;
            let subject = tokens::checked_subject(params, token, IRSA_AUDIENCE)?;
            let role = irsa::role_of(&self.k8s, &subject).await?;
            let key = cache::key(&["irsa", &role, token.token.expose()]);
            self.cached(key, irsa::credentials(&self.aws, params, &role, token, routes)).await
        }
    }

    async fn cached(
        &self,
        key: cache::CredentialKey,
        obtain: impl std::future::Future<Output = Result<PodCredentials, IdentityError>>,
    ) -> Result<PodCredentials, IdentityError> {
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit);
        }
        let creds = obtain.await?;
        self.cache.put(key, creds.clone());
        Ok(creds)
    }
}
