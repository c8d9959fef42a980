//! `assumeRoleArn`: role chaining from the pod's own credentials through `sts:AssumeRole`,
//! only for roles an admin's `--allowed-assume-role` pattern admits.
//!
//! The SecretProviderClass is untrusted, so the role it names never chooses a scope on its own:
//! assumed credentials are cached under (the pod's proven identity, role ARN, external id), and
//! the identity they read with (which scopes the value cache) is made of the same three parts.
//! A pod reaches either only after its own identity was proven, and is served another pod's
//! assumed credentials or values only when both proved the same identity.

use super::cache::{self, CredentialCache};
use super::{IdentityError, PodCredentials, Proven, irsa};
use crate::aws::{AssumeRoleRequest, AwsReader};
use crate::params::{AssumeRole, MountParams};
use crate::read::Route;
use crate::sync::Gates;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The longest pattern accepted (an IAM role ARN is at most 2048 characters).
const MAX_PATTERN: usize = 2048;

/// One `--allowed-assume-role` pattern: a role ARN in which `*` matches any run of characters
/// (`arn:aws:iam::123456789012:role/secrets-*`, `arn:aws:iam::*:role/csi-reader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePattern(String);

impl FromStr for RolePattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@:/-*".contains(c);
        if !text.starts_with("arn:") || text.len() > MAX_PATTERN {
            return Err(format!(
                "{text:?} is not a role ARN pattern (arn:aws:iam::123456789012:role/NAME, * matches any run of characters)"
            ));
        }
        match text.chars().find(|c| !allowed(*c)) {
            Some(bad) => Err(format!("{text:?} contains {bad:?}, which no role ARN can hold")),
            None => Ok(RolePattern(text.to_string())),
        }
    }
}

impl fmt::Display for RolePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl RolePattern {
    /// Whether `arn` matches, `*` standing for any run of characters (none included).
    pub fn matches(&self, arn: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = arn.strip_prefix(first) else { return false };
        let tail: Vec<&str> = parts.collect();
        let Some((last, middle)) = tail.split_last() else { return rest.is_empty() };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// Why `assumeRoleArn` was refused before any AWS call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "assumeRoleArn names role {role}, which this provider does not allow: a SecretProviderClass (or a pod's volume attributes) may only name roles an admin allowed. {}",
    allow_hint(.role, .allowed)
)]
pub struct RoleRefused {
    pub role: String,
    pub allowed: Vec<String>,
}

fn allow_hint(role: &str, allowed: &[String]) -> String {
    if allowed.is_empty() {
        format!(
            "No role is allowed: an admin can allow it with --allowed-assume-role {role} (or a pattern such as arn:aws:iam::123456789012:role/secrets-*)"
        )
    } else {
        format!("Allowed patterns: {}; an admin can add one with --allowed-assume-role", allowed.join(", "))
    }
}

/// The admin's `--allowed-assume-role` patterns; none by default, so every `assumeRoleArn` is
/// refused until an admin allows it.
#[derive(Debug, Clone, Default)]
pub struct RoleAllowlist(Vec<RolePattern>);

impl RoleAllowlist {
    pub fn new(patterns: Vec<RolePattern>) -> Self {
        RoleAllowlist(patterns)
    }

    /// Admits the mount's `assumeRoleArn` (a mount without one passes).
    pub fn admit(&self, assume: Option<&AssumeRole>) -> Result<(), RoleRefused> {
        let Some(assume) = assume else { return Ok(()) };
        if self.0.iter().any(|p| p.matches(&assume.role_arn)) {
            return Ok(());
        }
        Err(RoleRefused { role: assume.role_arn.clone(), allowed: self.0.iter().map(ToString::to_string).collect() })
    }
}

/// Assumes SecretProviderClass roles from pods' own credentials, reusing them until shortly
/// before they expire. Concurrent mounts needing one (identity, role, external id) not yet
/// cached make one `AssumeRole` call: the others wait for it and take its credentials from the
/// cache (a rollout of many replicas on one node costs STS one call, not one per pod).
#[derive(Debug, Clone)]
pub struct RoleAssumer {
    aws: AwsReader,
    cache: Arc<CredentialCache>,
    in_flight: Arc<Gates<cache::CredentialKey>>,
}

impl RoleAssumer {
    /// An assumer calling STS through `aws` (its client construction, endpoints, proxy, CA
    /// bundle and private-endpoint guarantee), its cache expiring on `aws`'s clock.
    pub fn new(aws: AwsReader) -> Self {
        let cache = CredentialCache::new(super::MAX_CACHED_CREDENTIALS, super::MAX_CREDENTIAL_BYTES, aws.clock());
        RoleAssumer { aws, cache: Arc::new(cache), in_flight: Arc::default() }
    }

    /// The credentials of `assume`'s role, assumed with `own` (the pod's proven credentials)
    /// along `routes` (primary first; the next only after a transient failure), and the scope
    /// they read in: (own identity, role, external id).
    pub async fn assume(
        &self,
        params: &MountParams,
        assume: &AssumeRole,
        own: Proven,
        routes: &[Route<'_>],
    ) -> Result<Proven, IdentityError> {
        let external_id = assume.external_id.as_deref().unwrap_or_default();
        let key = cache::key(&["assume-role", &own.identity, &assume.role_arn, external_id]);
        let identity = scope_identity(&own.identity, assume);
        if let Some(hit) = self.cache.get(&key) {
            return Ok(Proven { credentials: hit.credentials, identity });
        }
        let turn = self.in_flight.enter(&key);
        let _one_at_a_time = turn.wait().await;
        if let Some(hit) = self.cache.get(&key) {
            return Ok(Proven { credentials: hit.credentials, identity });
        }
        let creds = self.call(params, assume, &own, routes).await?;
        self.cache.put(key, creds.clone());
        tracing::debug!(role = %assume.role_arn, by = %own.identity, "role assumed");
        Ok(Proven { credentials: creds.credentials, identity })
    }

    async fn call(
        &self,
        params: &MountParams,
        assume: &AssumeRole,
        own: &Proven,
        routes: &[Route<'_>],
    ) -> Result<PodCredentials, IdentityError> {
        let session = irsa::session_name(&params.pod.namespace, &params.pod.name);
        let pod = format!("{}/{}", params.pod.namespace, params.pod.name);
        let mut last = None;
        for route in routes {
            let request = AssumeRoleRequest {
                route: *route,
                credentials: &own.credentials,
                role_arn: &assume.role_arn,
                session_name: &session,
                external_id: assume.external_id.as_deref(),
                duration_seconds: assume.duration_seconds,
                pod: &pod,
            };
            match self.aws.assume_role(request).await {
                Ok(grant) => {
                    return Ok(PodCredentials {
                        credentials: grant.credentials,
                        identity: irsa::role_of_assumed(&grant.assumed_role_arn),
                        expires: grant.expires,
                        obtained: self.aws.clock().system_now(),
                    });
                }
                Err(f) => {
                    let transient = f.code.is_transient();
                    last = Some(IdentityError::AssumeRole {
                        role: assume.role_arn.clone(),
                        identity: own.identity.clone(),
                        region: route.region.to_string(),
                        code: f.code,
                        aws_code: f.aws_code,
                        reason: f.reason,
                    });
                    if !transient {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or(IdentityError::AssumeRole {
            role: assume.role_arn.clone(),
            identity: own.identity.clone(),
            region: String::new(),
            code: crate::codes::ErrorCode::Internal,
            aws_code: None,
            reason: "no region to call STS in".into(),
        }))
    }
}

/// The identity a mount with `assumeRoleArn` reads as: the pod's proven identity, the role and
/// a digest of the external id (never the id itself: the identity appears in debug logs).
fn scope_identity(own: &str, assume: &AssumeRole) -> String {
    match &assume.external_id {
        Some(id) => {
            let digest = Sha256::digest(id.as_bytes());
            let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("{own} → {} (external id {short})", assume.role_arn)
        }
        None => format!("{own} → {}", assume.role_arn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> RolePattern {
        text.parse().expect("pattern")
    }

    fn role(arn: &str) -> AssumeRole {
        AssumeRole { role_arn: arn.into(), external_id: None, duration_seconds: None }
    }

    #[test]
    fn patterns_match_with_wildcards_and_nothing_else() {
        let p = pattern("arn:aws:iam::111122223333:role/secrets-*");
        assert!(p.matches("arn:aws:iam::111122223333:role/secrets-reader"));
        assert!(p.matches("arn:aws:iam::111122223333:role/secrets-"));
        assert!(!p.matches("arn:aws:iam::111122223333:role/admin"));
        assert!(!p.matches("arn:aws:iam::444455556666:role/secrets-reader"));
        let any_account = pattern("arn:aws:iam::*:role/csi-*-reader");
        assert!(any_account.matches("arn:aws:iam::444455556666:role/csi-db-reader"));
        assert!(!any_account.matches("arn:aws:iam::444455556666:role/csi-db-writer"));
        let exact = pattern("arn:aws:iam::111122223333:role/r");
        assert!(exact.matches("arn:aws:iam::111122223333:role/r"));
        assert!(!exact.matches("arn:aws:iam::111122223333:role/r2"));
        assert!(pattern("arn:*ab*ab").matches("arn:xabab"));
        assert!(!pattern("arn:*abab").matches("arn:ab"), "the suffix may not overlap the prefix");
        for bad in ["", "*", "role/x", "arn:aws:iam::1:role/a b"] {
            assert!(bad.parse::<RolePattern>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn no_pattern_refuses_every_role_and_names_the_flag() {
        let refused =
            RoleAllowlist::default().admit(Some(&role("arn:aws:iam::111122223333:role/r"))).expect_err("refused");
        let message = refused.to_string();
        assert!(message.starts_with("assumeRoleArn names role arn:aws:iam::111122223333:role/r"), "{message}");
        assert!(message.contains("--allowed-assume-role arn:aws:iam::111122223333:role/r"), "{message}");
        assert_eq!(RoleAllowlist::default().admit(None), Ok(()));
        let list = RoleAllowlist::new(vec![pattern("arn:aws:iam::111122223333:role/secrets-*")]);
        assert!(list.admit(Some(&role("arn:aws:iam::111122223333:role/secrets-db"))).is_ok());
        let message = list.admit(Some(&role("arn:aws:iam::111122223333:role/admin"))).expect_err("refused").to_string();
        assert!(message.contains("Allowed patterns: arn:aws:iam::111122223333:role/secrets-*"), "{message}");
    }

    #[test]
    fn the_scope_names_identity_role_and_a_digest_of_the_external_id() {
        let mut assume = role("arn:aws:iam::111122223333:role/r");
        assert_eq!(scope_identity("local", &assume), "local → arn:aws:iam::111122223333:role/r");
        assume.external_id = Some("tenant-a".into());
        let a = scope_identity("local", &assume);
        assume.external_id = Some("tenant-b".into());
        let b = scope_identity("local", &assume);
        assert_ne!(a, b, "another external id is another scope");
        assert!(!a.contains("tenant-a"), "{a}");
        assert_ne!(scope_identity("pod-a", &assume), scope_identity("pod-b", &assume));
    }
}
