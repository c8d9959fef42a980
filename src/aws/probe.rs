//! `doctor`'s unsigned request: does an AWS service answer at this URL through the same
//! connection path every mount uses (trust roots, proxy, `--resolve`, the private-only check)?
//! The request is unsigned, so AWS answers with an error and never with data; an answer is
//! AWS-shaped when it carries a request id header or an AWS error body.

use super::Service;
use super::guard;
use crate::net::NetworkSettings;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use std::time::Duration;

/// What answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    pub status: u16,
    /// `x-amzn-RequestId` or `x-amz-request-id`.
    pub request_id: Option<String>,
    /// The AWS error code in the body (`MissingAuthenticationTokenException`, ...).
    pub aws_error: Option<String>,
}

impl ProbeAnswer {
    /// Whether AWS (or something speaking its protocol) answered.
    pub fn is_aws(&self) -> bool {
        self.request_id.is_some() || self.aws_error.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Certificate(String),
    #[error("{0}")]
    Transport(String),
    #[error("the request could not be built: {0}")]
    Request(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Sends one unsigned request for `service` to `url` and reads the answer.
pub async fn unsigned(
    net: &NetworkSettings,
    service: Service,
    url: &str,
    timeout: Duration,
) -> Result<ProbeAnswer, ProbeError> {
    let settings = HttpConnectorSettings::builder().connect_timeout(timeout).read_timeout(timeout).build();
    let connector = super::http::standalone(net, &settings);
    let request = request(service, url)?;
    let response = tokio::time::timeout(timeout * 2, connector.call(request))
        .await
        .map_err(|_| ProbeError::Timeout(timeout * 2))?
        .map_err(|e| failure(&e))?;
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).map(str::to_string);
    let request_id = header("x-amzn-requestid").or_else(|| header("x-amz-request-id"));
    let body = ByteStream::new(response.into_body()).collect().await.map(|b| b.into_bytes()).unwrap_or_default();
    Ok(ProbeAnswer { status, request_id, aws_error: aws_error_code(&body) })
}

/// A harmless unsigned call per service (AWS refuses it for lack of a signature).
fn request(service: Service, url: &str) -> Result<HttpRequest, ProbeError> {
    let (content_type, target, body) = match service {
        Service::Sts => ("application/x-www-form-urlencoded", None, "Action=GetCallerIdentity&Version=2011-06-15"),
        Service::SecretsManager => ("application/x-amz-json-1.1", Some("secretsmanager.GetRandomPassword"), "{}"),
        Service::Ssm => ("application/x-amz-json-1.1", Some("AmazonSSM.DescribeParameters"), "{\"MaxResults\":1}"),
    };
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", content_type)
        .header("user-agent", format!("{}/{} doctor", crate::RUNTIME_NAME, crate::RUNTIME_VERSION));
    if let Some(target) = target {
        builder = builder.header("x-amz-target", target);
    }
    let request = builder.body(SdkBody::from(body)).map_err(|e| ProbeError::Request(e.to_string()))?;
    HttpRequest::try_from(request).map_err(|e| ProbeError::Request(e.to_string()))
}

fn failure(err: &(dyn std::error::Error + 'static)) -> ProbeError {
    if let Some(refusal) = guard::refusal_in(err) {
        return ProbeError::Refused(refusal.to_string());
    }
    if let Some(problem) = guard::certificate_problem_in(err) {
        return ProbeError::Certificate(super::errors::certificate_reason(&problem));
    }
    ProbeError::Transport(crate::error_text::causes(err))
}

/// The error code of an AWS JSON (`__type`) or XML (`<Error><Code>`) error body.
fn aws_error_code(body: &[u8]) -> Option<String> {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let code = json.get("__type").or_else(|| json.get("code")).and_then(|v| v.as_str())?;
        return Some(code.rsplit('#').next().unwrap_or(code).to_string());
    }
    let text = std::str::from_utf8(body).ok()?;
    let error = &text[text.find("<Error>")?..];
    let start = error.find("<Code>")? + "<Code>".len();
    let end = error[start..].find("</Code>")? + start;
    Some(error[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_error_bodies_are_recognised() {
        assert_eq!(
            aws_error_code(
                br#"{"__type":"com.amazon.coral.service#MissingAuthenticationTokenException","message":"x"}"#
            ),
            Some("MissingAuthenticationTokenException".into())
        );
        let xml = br#"<ErrorResponse><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code></Error></ErrorResponse>"#;
        assert_eq!(aws_error_code(xml), Some("MissingAuthenticationToken".into()));
        assert_eq!(aws_error_code(b"<html>Proxy error</html>"), None);
        assert_eq!(aws_error_code(br#"{"kind":"Status"}"#), None);
    }

    #[test]
    fn every_service_has_a_request() {
        for service in Service::ALL {
            let req = request(service, "https://example.com").expect("builds");
            assert_eq!(req.method(), "POST");
        }
        assert!(request(Service::Sts, "not a url").is_err());
    }
}
