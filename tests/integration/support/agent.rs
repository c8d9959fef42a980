//! An EKS Pod Identity agent stand-in: `GET /v1/credentials` with `Authorization: <token>` (the
//! pod's `pods.eks.amazonaws.com` token, no scheme) answers container credentials; any other
//! token gets 401, any other path 404. Every request is recorded.
//!
//! ```ignore
//! let agent = Agent::start("pod-token", "ASIAAGENTKEY0001");
//! // --pod-identity-endpoint-ipv4 agent.url()
//! assert_eq!(agent.requests()[0].authorization.as_deref(), Some("pod-token"));
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use super::stand_in::{self, Reply, Server};

/// The path the agent serves.
pub const PATH: &str = "/v1/credentials";

/// One request the agent received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRequest {
    pub method: String,
    pub path: String,
    /// The `Authorization` header as sent (the pod's token when all is well).
    pub authorization: Option<String>,
    /// The answer's status.
    pub status: u16,
}

/// The agent; stops when dropped.
pub struct Agent {
    server: Server,
    requests: Arc<Mutex<Vec<AgentRequest>>>,
    access_key_id: String,
}

impl Agent {
    /// Answers `expected_token` with credentials whose `AccessKeyId` is `access_key_id` (use a
    /// distinct one per agent to tell them apart on the wire).
    pub fn start(expected_token: &str, access_key_id: &str) -> Agent {
        Agent::accepting(&[expected_token], access_key_id)
    }

    /// Answers any of `tokens` (as the real agent answers every pod of the cluster).
    pub fn accepting(tokens: &[&str], access_key_id: &str) -> Agent {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = requests.clone();
        let tokens: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
        let key = access_key_id.to_string();
        let server = stand_in::serve(move |req| {
            let reply = answer(&req, &tokens, &key);
            let record = AgentRequest {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
                authorization: req
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from),
                status: reply.status().as_u16(),
            };
            shared.lock().unwrap_or_else(|e| e.into_inner()).push(record);
            async move { reply }
        });
        Agent { server, requests, access_key_id: access_key_id.to_string() }
    }

    /// The full credentials URL, `http://127.0.0.1:<port>/v1/credentials`.
    pub fn url(&self) -> String {
        format!("{}{PATH}", self.server.base_url())
    }

    /// The `AccessKeyId` this agent hands out.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<AgentRequest> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A credentials URL on 127.0.0.1 where nothing listens (connection refused).
pub fn refused_url() -> String {
    stand_in::refused_url(PATH)
}

fn answer(req: &Request<Bytes>, tokens: &[String], key: &str) -> Reply {
    if req.uri().path() != PATH {
        let body = json!({"code": "NotFound", "message": format!("no route for {}", req.uri().path())});
        return stand_in::json(StatusCode::NOT_FOUND, &body);
    }
    if req.method() != Method::GET {
        let body = json!({"code": "MethodNotAllowed", "message": "use GET"});
        return stand_in::json(StatusCode::METHOD_NOT_ALLOWED, &body);
    }
    let presented = req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !presented.is_some_and(|p| tokens.iter().any(|t| t == p)) {
        let body = json!({"code": "AccessDeniedException", "message": "invalid or missing service account token"});
        return stand_in::json(StatusCode::UNAUTHORIZED, &body);
    }
    let body = json!({
        "AccessKeyId": key,
        "SecretAccessKey": format!("{key}-secret"),
        "Token": format!("{key}-session-token"),
        "AccountId": "123456789012",
        "Expiration": stand_in::rfc3339(SystemTime::now() + Duration::from_secs(3600)),
    });
    stand_in::json(StatusCode::OK, &body)
}
