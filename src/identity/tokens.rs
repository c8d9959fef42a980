//! Picks the service-account token for an audience from what the driver passed, and reads
//! which service account a token was issued to.
//!
//! The token's claims are read without checking its signature: the provider never trusts them
//! on their own. They are checked against the pod's attributes (a mount whose attributes name
//! another service account than its token is refused), and a scope is taken from them only
//! once AWS or the Pod Identity agent has accepted the token, which proves them.

use super::IdentityError;
use crate::params::{MountParams, ServiceAccountToken, limits};
use base64::Engine;

/// The longest token whose claims are read (Kubernetes tokens are 1–2 KiB).
const MAX_TOKEN: usize = 16 * 1024;

/// The token for `audience`, or an error that says to configure `tokenRequests`.
pub fn token_for<'a>(
    params: &'a MountParams,
    audience: &'static str,
) -> Result<&'a ServiceAccountToken, IdentityError> {
    params.tokens.get(audience).filter(|t| !t.token.expose().is_empty()).ok_or(IdentityError::TokenMissing { audience })
}

/// The service account a token names in its `sub` claim (`system:serviceaccount:NS:NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSubject {
    pub namespace: String,
    pub name: String,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: Option<String>,
}

/// Reads the `sub` claim of a Kubernetes service-account token (a JWT); the error says what is
/// wrong with the token's shape, never what it holds.
pub fn subject(token: &str) -> Result<TokenSubject, &'static str> {
    if token.len() > MAX_TOKEN {
        return Err("is longer than 16 KiB");
    }
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("is not a JWT (three base64url parts)");
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "has a payload that is not base64url")?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| "has a payload that is not a JSON object")?;
    let sub = claims.sub.ok_or("has no sub claim")?;
    let rest = sub.strip_prefix("system:serviceaccount:").ok_or("is not a service-account token")?;
    match rest.split_once(':') {
        Some((namespace, name)) if limits::is_dns_label(namespace) && limits::is_dns_subdomain(name) => {
            Ok(TokenSubject { namespace: namespace.to_string(), name: name.to_string() })
        }
        _ => Err("has a sub claim that is not system:serviceaccount:NAMESPACE:NAME"),
    }
}

/// The token's service account, which must be the one the attributes name (when they name
/// one): a request may not pair one pod's token with another's namespace or service account.
pub fn checked_subject(
    params: &MountParams,
    token: &ServiceAccountToken,
    audience: &'static str,
) -> Result<TokenSubject, IdentityError> {
    let subject = subject(token.token.expose()).map_err(|problem| IdentityError::TokenInvalid { audience, problem })?;
    let pod = &params.pod;
    let agrees = |claimed: &str, proven: &str| claimed.is_empty() || claimed == proven;
    if agrees(&pod.namespace, &subject.namespace) && agrees(&pod.service_account, &subject.name) {
        return Ok(subject);
    }
    Err(IdentityError::TokenMismatch {
        audience,
        attributes: format!("{}/{}", pod.namespace, pod.service_account),
        token: format!("{}/{}", subject.namespace, subject.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", b64(r#"{"alg":"RS256"}"#), b64(payload), b64("sig"))
    }

    #[test]
    fn the_subject_is_the_service_account() {
        let token = jwt(r#"{"sub":"system:serviceaccount:shop:web","aud":["pods.eks.amazonaws.com"]}"#);
        assert_eq!(subject(&token), Ok(TokenSubject { namespace: "shop".into(), name: "web".into() }));
    }

    #[test]
    fn malformed_tokens_are_refused_without_showing_them() {
        let cases = [
            ("not-a-jwt".to_string(), "is not a JWT (three base64url parts)"),
            ("a.b.c.d".to_string(), "is not a JWT (three base64url parts)"),
            ("a.!!!.c".to_string(), "has a payload that is not base64url"),
            (jwt("[1]"), "has a payload that is not a JSON object"),
            (jwt("{}"), "has no sub claim"),
            (jwt(r#"{"sub":"system:node:n1"}"#), "is not a service-account token"),
            (
                jwt(r#"{"sub":"system:serviceaccount:../../nodes:x"}"#),
                "has a sub claim that is not system:serviceaccount:NAMESPACE:NAME",
            ),
            (
                jwt(r#"{"sub":"system:serviceaccount:ns"}"#),
                "has a sub claim that is not system:serviceaccount:NAMESPACE:NAME",
            ),
            (format!("a.{}.c", "A".repeat(MAX_TOKEN)), "is longer than 16 KiB"),
        ];
        for (token, want) in cases {
            assert_eq!(subject(&token), Err(want), "{token:.40}");
        }
    }
}
