//! IRSA: the service account's role annotation, then STS `AssumeRoleWithWebIdentity` with the
//! pod's token on the STS endpoint of the region being read.

use super::tokens::TokenSubject;
use super::{IdentityError, PodCredentials};
use crate::aws::{AwsReader, WebIdentityRequest};
use crate::k8s::K8s;
use crate::params::{MountParams, ServiceAccountToken};
use crate::read::Route;
use std::sync::Arc;

/// Tries each region's STS in turn, moving on only after a transient failure.
pub(super) async fn credentials(
    aws: &AwsReader,
    params: &MountParams,
    role: &str,
    token: &ServiceAccountToken,
    routes: &[Route<'_>],
) -> Result<PodCredentials, IdentityError> {
    let role = role.to_string();
    let session = session_name(&params.pod.namespace, &params.pod.name);
    let pod = format!("{}/{}", params.pod.namespace, params.pod.name);
    let mut last = None;
    for route in routes {
        let region = route.region;
        let request = WebIdentityRequest {
            route: *route,
            role_arn: &role,
            session_name: &session,
            token: &token.token,
            pod: &pod,
        };
        match aws.assume_role_with_web_identity(request).await {
            Ok(grant) => {
                return Ok(PodCredentials {
                    credentials: grant.credentials,
                    identity: role_of_assumed(&grant.assumed_role_arn),
                    expires: grant.expires,
                    obtained: std::time::SystemTime::now(),
                });
            }
            Err(f) => {
                let transient = f.code.is_transient();
                last = Some(IdentityError::Sts {
                    role: role.clone(),
                    region: region.to_string(),
                    code: f.code,
                    reason: f.reason,
                });
                if !transient {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or(IdentityError::Sts {
        role,
        region: String::new(),
        code: crate::codes::ErrorCode::Internal,
        reason: "no region to call STS in".into(),
    }))
}

/// The IRSA role of the service account the pod's token was issued to.
pub(super) async fn role_of(k8s: &Arc<K8s>, subject: &TokenSubject) -> Result<String, IdentityError> {
    let (namespace, name) = (&subject.namespace, &subject.name);
    let err = |source| IdentityError::Kubernetes { namespace: namespace.clone(), name: name.clone(), source };
    k8s.service_account_role(namespace, name)
        .await
        .map_err(err)?
        .ok_or_else(|| IdentityError::NoRoleAnnotation { namespace: namespace.clone(), name: name.clone() })
}

/// A role session name that identifies the pod: `csi-<namespace>-<pod>`, limited to STS's
/// alphabet (`[\w+=,.@-]`) and 64 characters.
pub fn session_name(namespace: &str, pod: &str) -> String {
    let raw = format!("csi-{namespace}-{pod}");
    let clean: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).collect();
    clean.chars().take(64).collect()
}

/// The role behind an `AssumedRoleUser` ARN: `arn:aws:sts::A:assumed-role/ROLE/SESSION` →
/// `arn:aws:sts::A:assumed-role/ROLE` (the session part differs per exchange).
pub fn role_of_assumed(arn: &str) -> String {
    match arn.rsplit_once('/') {
        Some((role, _session)) if arn.contains(":assumed-role/") => role.to_string(),
        _ => arn.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_identify_the_pod_within_sts_limits() {
        assert_eq!(session_name("default", "web-7d9f"), "csi-default-web-7d9f");
        let long = session_name(&"n".repeat(40), &"p".repeat(40));
        assert_eq!(long.len(), 64);
        assert_eq!(session_name("a/b", "c d"), "csi-a-b-c-d");
    }

    #[test]
    fn the_proven_role_drops_the_session() {
        assert_eq!(
            role_of_assumed("arn:aws:sts::123456789012:assumed-role/app/csi-default-web"),
            "arn:aws:sts::123456789012:assumed-role/app"
        );
        assert_eq!(role_of_assumed("arn:aws:iam::1:role/x"), "arn:aws:iam::1:role/x");
    }
}
