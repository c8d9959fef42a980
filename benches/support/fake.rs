//! An in-process fake of the AWS endpoints and the Kubernetes API the provider talks to, on
//! 127.0.0.1: one HTTP/1.1 server (hyper 1) that answers every request at once and counts it by
//! operation, so the benchmark counts AWS calls on the wire.
//!
//! - STS (query protocol): `Action=AssumeRoleWithWebIdentity` → XML with a distinct
//!   `AccessKeyId` per call, `AssumedRoleUser` `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`
//!   and an `Expiration` one hour ahead. The key is remembered with its role.
//! - Secrets Manager (JSON 1.1): `secretsmanager.GetSecretValue` and
//!   `secretsmanager.BatchGetSecretValue`; every secret exists.
//! - Parameter Store (JSON 1.1): `AmazonSSM.GetParameters`; every parameter exists.
//! - Kubernetes API: `GET /api/v1/namespaces/NS/serviceaccounts/NAME` for the service accounts
//!   registered with [`FakeAws::service_account`] (with their `eks.amazonaws.com/role-arn`
//!   annotation); [`FakeAws::kubeconfig`] points at it (plain http, token auth).
//!
//! Values depend on the role whose key signed the read ([`value_for`]), so a file that holds
//! another role's value is detected.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Sub;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-west-2";
/// The bearer token of the kubeconfig's user.
const KUBE_TOKEN: &str = "bench-token";

/// Calls seen on the wire, by operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sts: u64,
    pub get_secret_value: u64,
    pub batch_get_secret_value: u64,
    pub get_parameters: u64,
    /// Any other AWS-looking request (answered with an error).
    pub other_aws: u64,
    /// Kubernetes API requests (not AWS calls).
    pub kube: u64,
}

impl Counts {
    /// Every AWS call (Kubernetes requests excluded).
    pub fn aws(&self) -> u64 {
        self.sts + self.get_secret_value + self.batch_get_secret_value + self.get_parameters + self.other_aws
    }

    /// `0 STS · 2 Batch · 0 GSV · 2 GetParameters`, plus the rest only when non-zero.
    pub fn breakdown(&self) -> String {
        let mut out = format!(
            "{} STS · {} Batch · {} GSV · {} GetParameters",
            self.sts, self.batch_get_secret_value, self.get_secret_value, self.get_parameters
        );
        if self.other_aws > 0 {
            out.push_str(&format!(" · {} other", self.other_aws));
        }
        out
    }
}

impl Sub for Counts {
    type Output = Counts;
    fn sub(self, rhs: Counts) -> Counts {
        Counts {
            sts: self.sts - rhs.sts,
            get_secret_value: self.get_secret_value - rhs.get_secret_value,
            batch_get_secret_value: self.batch_get_secret_value - rhs.batch_get_secret_value,
            get_parameters: self.get_parameters - rhs.get_parameters,
            other_aws: self.other_aws - rhs.other_aws,
            kube: self.kube - rhs.kube,
        }
    }
}

#[derive(Default)]
struct Counters {
    sts: AtomicU64,
    get_secret_value: AtomicU64,
    batch_get_secret_value: AtomicU64,
    get_parameters: AtomicU64,
    other_aws: AtomicU64,
    kube: AtomicU64,
}

struct State {
    value_len: usize,
    counters: Counters,
    next_key: AtomicU64,
    /// Access key id → role name it was issued for.
    keys: Mutex<HashMap<String, String>>,
    /// (namespace, service account) → role ARN.
    service_accounts: Mutex<HashMap<(String, String), String>>,
}

/// The running fake; stops serving when dropped.
pub struct FakeAws {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeAws {
    /// Binds 127.0.0.1 on a free port and serves on `runtime`; secret and parameter values are
    /// `value_len` bytes long.
    pub fn start(runtime: &tokio::runtime::Handle, value_len: usize) -> std::io::Result<FakeAws> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            value_len,
            counters: Counters::default(),
            next_key: AtomicU64::new(1),
            keys: Mutex::default(),
            service_accounts: Mutex::default(),
        });
        let shared = state.clone();
        let task = runtime.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            Ok::<_, std::convert::Infallible>(answer(&state, Request::from_parts(parts, body)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FakeAws { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Defines a service account annotated with `role_arn`.
    pub fn service_account(&self, namespace: &str, name: &str, role_arn: &str) {
        lock(&self.state.service_accounts).insert((namespace.to_string(), name.to_string()), role_arn.to_string());
    }

    /// Writes a kubeconfig naming this server (plain http, token auth) to `path`.
    pub fn kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: bench\n  user:\n    token: {KUBE_TOKEN}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: bench\n    namespace: default\ncurrent-context: fake\n",
            self.url()
        );
        std::fs::write(path, yaml)
    }

    /// What has been counted so far.
    pub fn counts(&self) -> Counts {
        self.counter().counts()
    }

    /// A handle that reads the counts, for tasks.
    pub fn counter(&self) -> Counter {
        Counter(self.state.clone())
    }
}

/// Reads a fake's counts.
#[derive(Clone)]
pub struct Counter(Arc<State>);

impl Counter {
    pub fn counts(&self) -> Counts {
        let c = &self.0.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Counts {
            sts: get(&c.sts),
            get_secret_value: get(&c.get_secret_value),
            batch_get_secret_value: get(&c.batch_get_secret_value),
            get_parameters: get(&c.get_parameters),
            other_aws: get(&c.other_aws),
            kube: get(&c.kube),
        }
    }
}

/// The value of secret or parameter `name` as read by `role`: `role:name:` padded to `len`
/// bytes with a pattern.
pub fn value_for(role: &str, name: &str, len: usize) -> String {
    let mut value = format!("{role}:{name}:");
    let pattern = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut i = 0;
    while value.len() < len {
        value.push(char::from(pattern[i % pattern.len()]));
        i += 1;
    }
    value
}

/// The Secrets Manager VersionId the fake reports for `name`.
pub fn version_id(name: &str) -> String {
    let n = name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    format!("00000000-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff)
}

type Reply = Response<Full<Bytes>>;

fn answer(state: &State, req: Request<Bytes>) -> Reply {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let counters = &state.counters;
    if req.uri().path().starts_with("/api/") || req.uri().path().starts_with("/apis/") {
        counters.kube.fetch_add(1, Ordering::SeqCst);
        return kube(state, &req);
    }
    let target = header("x-amz-target");
    let access_key = access_key(&header("authorization"));
    match target.as_str() {
        "secretsmanager.GetSecretValue" => {
            counters.get_secret_value.fetch_add(1, Ordering::SeqCst);
            with_role(state, access_key, |role| get_secret_value(state, role, req.body()))
        }
        "secretsmanager.BatchGetSecretValue" => {
            counters.batch_get_secret_value.fetch_add(1, Ordering::SeqCst);
            with_role(state, access_key, |role| batch_get_secret_value(state, role, req.body()))
        }
        "AmazonSSM.GetParameters" => {
            counters.get_parameters.fetch_add(1, Ordering::SeqCst);
            with_role(state, access_key, |role| get_parameters(state, role, req.body()))
        }
        "" => {
            let form = form_pairs(req.body());
            let field = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            if field("Action").as_deref() == Some("AssumeRoleWithWebIdentity") {
                counters.sts.fetch_add(1, Ordering::SeqCst);
                assume_role_with_web_identity(state, field("RoleArn"), field("RoleSessionName"))
            } else {
                counters.other_aws.fetch_add(1, Ordering::SeqCst);
                json_error(StatusCode::BAD_REQUEST, "InvalidAction", "not served by the benchmark's fake")
            }
        }
        _ => {
            counters.other_aws.fetch_add(1, Ordering::SeqCst);
            json_error(StatusCode::BAD_REQUEST, "UnknownOperationException", "not served by the benchmark's fake")
        }
    }
}

/// Runs `read` as the role whose STS key signed the call; unknown or missing keys are refused.
fn with_role(state: &State, access_key: Option<String>, read: impl FnOnce(&str) -> Reply) -> Reply {
    let role = access_key.and_then(|key| lock(&state.keys).get(&key).cloned());
    match role {
        Some(role) => read(&role),
        None => json_error(
            StatusCode::BAD_REQUEST,
            "UnrecognizedClientException",
            "the security token included in the request is invalid",
        ),
    }
}

/// The access key id of a SigV4 `Authorization` header.
fn access_key(authorization: &str) -> Option<String> {
    let rest = authorization.split("Credential=").nth(1)?;
    rest.split('/').next().filter(|k| !k.is_empty()).map(str::to_string)
}

fn assume_role_with_web_identity(state: &State, role_arn: Option<String>, session: Option<String>) -> Reply {
    let (Some(role_arn), Some(session)) = (role_arn, session) else {
        return xml_error("ValidationError", "RoleArn and RoleSessionName are required");
    };
    let role = role_arn.rsplit_once(":role/").map(|(_, name)| name.to_string()).unwrap_or_default();
    let role = role.rsplit('/').next().unwrap_or_default().to_string();
    if role.is_empty() {
        return xml_error("ValidationError", "RoleArn is not a role ARN");
    }
    let n = state.next_key.fetch_add(1, Ordering::SeqCst);
    let key = format!("ASIABENCH{n:011}");
    lock(&state.keys).insert(key.clone(), role.clone());
    let expiration = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    let body = format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:bench:{role}</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}</Arn>
      <AssumedRoleId>AROABENCH{n:011}:{session}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>bench-session-token-{n}</SessionToken>
      <SecretAccessKey>bench-secret-key-{n}</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>{key}</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.{REGION}.amazonaws.com/id/BENCH</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>00000000-0000-4000-8000-{n:012}</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
"#
    );
    reply(StatusCode::OK, "text/xml", body)
}

fn secret_entry(state: &State, role: &str, name: &str) -> Value {
    json!({
        "ARN": format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"),
        "Name": name,
        "VersionId": version_id(name),
        "SecretString": value_for(role, name, state.value_len),
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1_700_000_000.0,
    })
}

fn get_secret_value(state: &State, role: &str, body: &[u8]) -> Reply {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match request.get("SecretId").and_then(Value::as_str) {
        Some(id) => aws_json(&secret_entry(state, role, id)),
        None => json_error(StatusCode::BAD_REQUEST, "InvalidParameterException", "SecretId is required"),
    }
}

/// The strings of the array `key` of a JSON request (none when absent).
fn string_list<'a>(request: &'a Value, key: &str) -> Vec<&'a str> {
    request
        .get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn batch_get_secret_value(state: &State, role: &str, body: &[u8]) -> Reply {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let ids = string_list(&request, "SecretIdList");
    if ids.is_empty() || ids.len() > 20 {
        return json_error(StatusCode::BAD_REQUEST, "InvalidParameterException", "SecretIdList must name 1 to 20");
    }
    let values: Vec<Value> = ids.iter().map(|id| secret_entry(state, role, id)).collect();
    aws_json(&json!({ "SecretValues": values, "Errors": [] }))
}

fn get_parameters(state: &State, role: &str, body: &[u8]) -> Reply {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let names = string_list(&request, "Names");
    if names.is_empty() || names.len() > 10 {
        return json_error(StatusCode::BAD_REQUEST, "ValidationException", "Names must name 1 to 10");
    }
    let parameters: Vec<Value> = names
        .iter()
        .map(|name| {
            let arn_name = name.strip_prefix('/').unwrap_or(name);
            json!({
                "Name": name,
                "Type": "SecureString",
                "Value": value_for(role, name, state.value_len),
                "Version": 1,
                "LastModifiedDate": 1_700_000_000.0,
                "ARN": format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{arn_name}"),
                "DataType": "text",
            })
        })
        .collect();
    aws_json(&json!({ "Parameters": parameters, "InvalidParameters": [] }))
}

fn kube(state: &State, req: &Request<Bytes>) -> Reply {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {KUBE_TOKEN}")) {
        return kube_status(StatusCode::UNAUTHORIZED, "Unauthorized", "bad token");
    }
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    if let ["api", "v1", "namespaces", ns, "serviceaccounts", name] = segments.as_slice()
        && let Some(role) = lock(&state.service_accounts).get(&(ns.to_string(), name.to_string())).cloned()
    {
        let body = json!({
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": format!("sa-{ns}-{name}"),
                "resourceVersion": "1",
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "annotations": { "eks.amazonaws.com/role-arn": role },
            },
        });
        return reply(StatusCode::OK, "application/json", body.to_string());
    }
    kube_status(StatusCode::NOT_FOUND, "NotFound", "not found")
}

fn kube_status(code: StatusCode, reason: &str, message: &str) -> Reply {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    reply(code, "application/json", body.to_string())
}

fn aws_json(value: &Value) -> Reply {
    reply(StatusCode::OK, "application/x-amz-json-1.1", value.to_string())
}

fn json_error(code: StatusCode, kind: &str, message: &str) -> Reply {
    reply(code, "application/x-amz-json-1.1", json!({ "__type": kind, "message": message }).to_string())
}

fn xml_error(code: &str, message: &str) -> Reply {
    let body = format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>0</RequestId></ErrorResponse>"
    );
    reply(StatusCode::BAD_REQUEST, "text/xml", body)
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_str(content_type).expect("ascii"));
    let request_id = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    if let Ok(id) = hyper::header::HeaderValue::from_str(&format!("bench-{request_id}")) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// The pairs of an `application/x-www-form-urlencoded` body, percent-decoded.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? << 4 | hex(bytes[i + 2])?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
