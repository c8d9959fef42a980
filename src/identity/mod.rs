//! The mounting pod's own AWS identity: IRSA (the service account's role, through STS
//! `AssumeRoleWithWebIdentity` with the pod's token) or EKS Pod Identity (the agent, with the
//! pod's token). Credentials obtained for one pod are returned to that mount only.

mod error;
mod irsa;
mod pod_identity;
mod tokens;

pub use error::IdentityError;
pub use pod_identity::AgentClient;

use crate::aws::{AwsCredentials, AwsReader};
use crate::k8s::K8s;
use crate::params::MountParams;
use std::sync::Arc;

/// Token audience for IRSA.
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";
/// Token audience for EKS Pod Identity.
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";

/// Credentials obtained for one pod, with the identity AWS proved.
#[derive(Debug, Clone)]
pub struct PodCredentials {
    pub credentials: AwsCredentials,
    /// IRSA: the `AssumedRoleUser` role; Pod Identity: `ACCOUNT:namespace/serviceaccount`.
    pub identity: String,
}

/// Resolves a mount's credentials from the pod's identity.
#[derive(Debug, Clone)]
pub struct IdentityResolver {
    aws: AwsReader,
    k8s: Arc<K8s>,
    agent: AgentClient,
}

impl IdentityResolver {
    pub fn new(aws: AwsReader, k8s: Arc<K8s>, agent: AgentClient) -> Self {
        IdentityResolver { aws, k8s, agent }
    }

    /// The pod's credentials. `regions` are the regions being read, primary first: IRSA tries
    /// the next region's STS endpoint only when one fails transiently.
    pub async fn resolve(&self, params: &MountParams, regions: &[&str]) -> Result<PodCredentials, IdentityError> {
        if params.use_pod_identity {
            let token = tokens::token_for(params, POD_IDENTITY_AUDIENCE)?;
            pod_identity::credentials(&self.agent, params, token).await
        } else {
            let token = tokens::token_for(params, IRSA_AUDIENCE)?;
            irsa::credentials(&self.aws, &self.k8s, params, token, regions).await
        }
    }
}
