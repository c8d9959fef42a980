//! EKS Pod Identity: the agent exchanges the pod's token (in the `Authorization` header) for
//! credentials. `preferredAddressType` `auto` really tries IPv4 and then IPv6 when IPv4 fails.

use super::tokens::TokenSubject;
use super::{IdentityError, PodCredentials};
use crate::aws::AwsCredentials;
use crate::params::{AddressType, MountParams, ServiceAccountToken, limits};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The most of an agent answer we read.
const MAX_BODY: usize = 64 * 1024;
/// The longest access key id or secret access key accepted from the agent.
const MAX_KEY: usize = 128;
/// The longest session token accepted from the agent (STS's are around 1 KiB).
const MAX_SESSION_TOKEN: usize = 16 * 1024;

/// Calls the Pod Identity agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    ipv4: String,
    ipv6: String,
    timeout: Duration,
}

/// What the agent answers.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentAnswer {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    account_id: Option<String>,
    expiration: Option<String>,
}

/// One failed try: refused (the agent answered no) or unreachable (try the next address).
enum Try {
    Refused(String),
    Unreachable(String),
}

impl AgentClient {
    pub fn new(ipv4: String, ipv6: String, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        AgentClient { client, ipv4, ipv6, timeout }
    }

    /// The agent URLs to try, in order.
    fn urls(&self, preference: AddressType) -> Vec<&str> {
        match preference {
            AddressType::Ipv4 => vec![&self.ipv4],
            AddressType::Ipv6 => vec![&self.ipv6],
            AddressType::Auto if self.ipv4 == self.ipv6 => vec![&self.ipv4],
            AddressType::Auto => vec![&self.ipv4, &self.ipv6],
        }
    }

    async fn try_once(&self, url: &str, token: &ServiceAccountToken) -> Result<AgentAnswer, Try> {
        let request = http::Request::get(url)
            .header(http::header::AUTHORIZATION, token.token.expose())
            .body(Empty::new())
            .map_err(|_| Try::Refused("the token is not a valid header value".into()))?;
        let call = async {
            let response = self.client.request(request).await.map_err(|e| Try::Unreachable(e.to_string()))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| Try::Unreachable(e.to_string()))?
                .to_bytes();
            answer(status, &body)
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(Try::Unreachable(format!("no answer within {:?}", self.timeout))))
    }
}

fn answer(status: http::StatusCode, body: &[u8]) -> Result<AgentAnswer, Try> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_string();
    if status.is_server_error() {
        return Err(Try::Unreachable(format!("HTTP {status}: {}", text())));
    }
    if !status.is_success() {
        return Err(Try::Refused(format!("HTTP {status}: {}", text())));
    }
    let answer: AgentAnswer = serde_json::from_slice(body)
        .map_err(|_| Try::Refused("the answer is not the credentials JSON expected".into()))?;
    let within = |text: &str, max: usize| limits::text_problem(text, max).is_none();
    let sizes_ok = within(&answer.access_key_id, MAX_KEY)
        && within(&answer.secret_access_key, MAX_KEY)
        && answer.token.as_deref().is_none_or(|t| within(t, MAX_SESSION_TOKEN));
    if !sizes_ok {
        return Err(Try::Refused("the answer's credentials are larger than AWS credentials can be".into()));
    }
    Ok(answer)
}

/// The pod's credentials from the agent, trying the addresses `preferredAddressType` allows.
pub(super) async fn credentials(
    agent: &AgentClient,
    params: &MountParams,
    token: &ServiceAccountToken,
    subject: &TokenSubject,
) -> Result<PodCredentials, IdentityError> {
    let urls = agent.urls(params.preferred_address_type);
    let mut reasons = Vec::new();
    for url in &urls {
        match agent.try_once(url, token).await {
            Ok(answer) => return Ok(grant(answer, subject)),
            Err(Try::Refused(reason)) => return Err(IdentityError::AgentRefused { url: url.to_string(), reason }),
            Err(Try::Unreachable(reason)) => {
                tracing::debug!(url, %reason, "Pod Identity agent unreachable");
                reasons.push(format!("{url}: {reason}"));
            }
        }
    }
    Err(IdentityError::AgentUnreachable { tried: urls.join(", "), reason: reasons.join("; ") })
}

/// The credentials and their scope: the account the agent answered (when it is an account id)
/// and the service account of the token it accepted.
fn grant(answer: AgentAnswer, subject: &TokenSubject) -> PodCredentials {
    let account = answer.account_id.clone().filter(|a| is_account_id(a)).unwrap_or_else(|| "unknown-account".into());
    let identity = format!("{account}:{}/{}", subject.namespace, subject.name);
    let credentials = AwsCredentials::fixed(
        &answer.access_key_id,
        &answer.secret_access_key,
        answer.token.as_deref(),
        &format!("pod-identity {identity}"),
    );
    let expires = answer.expiration.as_deref().and_then(|e| humantime::parse_rfc3339_weak(e).ok());
    PodCredentials { credentials, identity, expires, obtained: std::time::SystemTime::now() }
}

/// An AWS account id: twelve digits.
fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether an agent answer with this HTTP `status` and `body` is accepted as credentials: the
/// parser `credentials` uses, exposed for the `agent_answer` fuzz target (not API).
#[doc(hidden)]
pub fn parse_agent_answer(status: u16, body: &[u8]) -> bool {
    http::StatusCode::from_u16(status).is_ok_and(|status| answer(status, body).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_is_the_accepted_token_subject() {
        let answer = AgentAnswer {
            access_key_id: "ASIA".into(),
            secret_access_key: "s".into(),
            token: None,
            account_id: Some("123456789012".into()),
            expiration: None,
        };
        let subject = TokenSubject { namespace: "ns-b".into(), name: "sa-b".into() };
        assert_eq!(grant(answer, &subject).identity, "123456789012:ns-b/sa-b");
        assert!(!is_account_id("12345678901\n") && !is_account_id("1234567890123") && is_account_id("000000000000"));
    }

    fn agent() -> AgentClient {
        AgentClient::new("http://a/v1/credentials".into(), "http://b/v1/credentials".into(), Duration::from_secs(1))
    }

    #[test]
    fn auto_tries_ipv4_then_ipv6() {
        assert_eq!(agent().urls(AddressType::Auto), ["http://a/v1/credentials", "http://b/v1/credentials"]);
        assert_eq!(agent().urls(AddressType::Ipv6), ["http://b/v1/credentials"]);
        assert_eq!(agent().urls(AddressType::Ipv4), ["http://a/v1/credentials"]);
    }

    #[test]
    fn answers_are_classified() {
        let ok = br#"{"AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","AccountId":"1","Expiration":"2030-01-01T00:00:00Z"}"#;
        assert!(answer(http::StatusCode::OK, ok).is_ok());
        assert!(matches!(answer(http::StatusCode::UNAUTHORIZED, b"bad token"), Err(Try::Refused(_))));
        assert!(matches!(answer(http::StatusCode::SERVICE_UNAVAILABLE, b""), Err(Try::Unreachable(_))));
        assert!(matches!(answer(http::StatusCode::OK, b"<html>"), Err(Try::Refused(_))));
    }
}
