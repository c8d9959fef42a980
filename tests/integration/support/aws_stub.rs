//! An AWS endpoint stand-in that answers every call with one fixed error ([`AwsStub`]) and
//! records each attempt: when it came, the operation (`X-Amz-Target`), and the SDK's
//! `amz-sdk-invocation-id` (the same for every attempt of one operation) and `amz-sdk-request`
//! (`attempt=N; max=M`) headers. With it a test counts attempts per operation and measures the
//! backoff between them, without moto.
//!
//! ```ignore
//! let stub = AwsStub::throttling();
//! let provider = Provider::builder(&stub.url()).arg("--local-credentials").start();
//! // ... mounts fail ...
//! for (invocation, attempts) in stub.by_invocation() { assert!(attempts.len() <= 3) }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::StatusCode;
use hyper::header::HeaderValue;

use super::stand_in::{self, Server};

/// One attempt the stub answered.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: Instant,
    /// `secretsmanager.GetSecretValue`, `AmazonSSM.GetParameters`, ...
    pub operation: String,
    /// `amz-sdk-invocation-id`.
    pub invocation: String,
    /// The `attempt=N` of `amz-sdk-request`.
    pub attempt: Option<u32>,
    /// The `max=M` of `amz-sdk-request`.
    pub max: Option<u32>,
}

/// The stand-in; stops when dropped.
pub struct AwsStub {
    server: Server,
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl AwsStub {
    /// Answers every call with HTTP 400 `ThrottlingException` ("Rate exceeded") in the AWS JSON
    /// 1.1 shape Secrets Manager and Parameter Store use.
    pub fn throttling() -> AwsStub {
        AwsStub::answering(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)
    }

    /// Answers every call with `status` and the AWS JSON 1.1 `body`.
    pub fn answering(status: u16, body: &'static str) -> AwsStub {
        let attempts: Arc<Mutex<Vec<Attempt>>> = Arc::default();
        let shared = attempts.clone();
        let status = StatusCode::from_u16(status).expect("valid status");
        let server = stand_in::serve(move |req| {
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let request = header("amz-sdk-request");
            let field = |key: &str| {
                request.split(';').find_map(|kv| kv.trim().strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            };
            let attempt = Attempt {
                at: Instant::now(),
                operation: header("x-amz-target"),
                invocation: header("amz-sdk-invocation-id"),
                attempt: field("attempt"),
                max: field("max"),
            };
            shared.lock().unwrap_or_else(|e| e.into_inner()).push(attempt);
            let mut reply = stand_in::reply(status, "application/x-amz-json-1.1", body);
            reply
                .headers_mut()
                .insert("x-amzn-requestid", HeaderValue::from_static("00000000-stub-0000-0000-000000000000"));
            async move { reply }
        });
        AwsStub { server, attempts }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// Every attempt so far, in arrival order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The attempts grouped by invocation (one SDK operation and its retries), in arrival order.
    pub fn by_invocation(&self) -> BTreeMap<String, Vec<Attempt>> {
        let mut out: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
        for attempt in self.attempts() {
            out.entry(attempt.invocation.clone()).or_default().push(attempt);
        }
        out
    }
}
