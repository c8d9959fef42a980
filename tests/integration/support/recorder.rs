//! A recording, fault-injecting reverse proxy in front of moto. Every AWS call the provider makes
//! goes through it (point `--endpoint` / `AWS_ENDPOINT_URL` at it); it records who signed the call
//! (access key id), for which service and region (SigV4 credential scope), the operation
//! (`X-Amz-Target`, or the STS form `Action`) and the answer, and ties the keys STS hands out
//! back to the role they were issued for.
//!
//! Unsigned calls (STS `AssumeRoleWithWebIdentity`) carry no region. For those the recorder
//! listens on one extra port per region ([`Recorder::url_for`]), so the provider's per-region
//! endpoints (`--endpoint sts@us-east-1=...`) say which region the call was made for;
//! [`Recorder::endpoint_args`] builds those flags.
//!
//! ```ignore
//! let rec = Recorder::start(&moto.url());
//! let provider = Provider::builder(&moto.url()).args(&rec.endpoint_args(&["us-west-2", "us-east-1"]));
//! rec.fail(Fault::unavailable().service("secretsmanager").region("us-west-2"));
//! // ... mount ...
//! for call in rec.calls().iter().filter(|c| c.service() == "secretsmanager") {
//!     assert_eq!(call.role_arn_for_key.as_deref(), Some(ROLE));
//! }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::stand_in::{self, Reply, Server};

/// The services the provider calls, as they appear in SigV4 credential scopes.
pub const SERVICES: [&str; 3] = ["secretsmanager", "ssm", "sts"];

/// One recorded call.
#[derive(Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// `secretsmanager`, `ssm` or `sts`: the SigV4 scope's service, else inferred from
    /// `X-Amz-Target` or the STS form `Action`.
    pub service: Option<String>,
    /// The SigV4 scope's region, else the region of the listener the call came in on.
    pub region: Option<String>,
    /// The region of the listener the call came in on (`None`: the default listener).
    pub listener_region: Option<String>,
    /// The SigV4 scope's region alone (`None` for unsigned calls).
    pub signed_region: Option<String>,
    /// `secretsmanager.GetSecretValue`, `AmazonSSM.GetParameters`, `AssumeRoleWithWebIdentity`.
    pub operation: Option<String>,
    /// The access key id that signed the call (`None`: unsigned).
    pub access_key: Option<String>,
    /// The role STS issued [`Call::access_key`] for (from an earlier recorded exchange).
    pub role_arn_for_key: Option<String>,
    /// Object names in the JSON body: `SecretId`, `SecretIdList`, `Name`, `Names`.
    pub object_ids: Vec<String>,
    /// STS form fields.
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    /// `AssumeRole`'s `DurationSeconds`.
    pub duration_seconds: Option<String>,
    /// For STS exchanges: the `AccessKeyId` the answer carried.
    pub issued_key: Option<String>,
    /// The status the provider saw.
    pub status: u16,
    /// Whether the answer came from a [`Fault`] instead of moto.
    pub injected: bool,
    /// The `WebIdentityToken` form field; kept in memory only, never printed.
    web_identity_token: Option<String>,
    /// `AssumeRole`'s `ExternalId`; never printed.
    external_id: Option<String>,
}

impl Call {
    /// [`Call::service`] or `""`.
    pub fn service(&self) -> &str {
        self.service.as_deref().unwrap_or("")
    }

    /// [`Call::region`] or `""`.
    pub fn region(&self) -> &str {
        self.region.as_deref().unwrap_or("")
    }

    /// [`Call::operation`] or `""`.
    pub fn operation(&self) -> &str {
        self.operation.as_deref().unwrap_or("")
    }

    /// Whether the operation is `op`, given in full (`secretsmanager.GetSecretValue`) or by its
    /// name alone (`GetSecretValue`).
    pub fn is(&self, op: &str) -> bool {
        op_matches(self.operation(), op)
    }

    /// Whether the call carried the form field `WebIdentityToken` equal to `token`.
    pub fn web_identity_token_is(&self, token: &str) -> bool {
        self.web_identity_token.as_deref() == Some(token)
    }

    pub fn has_web_identity_token(&self) -> bool {
        self.web_identity_token.is_some()
    }

    /// Whether the call carried exactly this `ExternalId`.
    pub fn external_id_is(&self, id: Option<&str>) -> bool {
        self.external_id.as_deref() == id
    }

    /// An STS `AssumeRole` (role chaining).
    pub fn is_assume_role(&self) -> bool {
        self.is("AssumeRole")
    }

    /// An STS web-identity exchange.
    pub fn is_web_identity(&self) -> bool {
        self.is("AssumeRoleWithWebIdentity")
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("service", &self.service)
            .field("region", &self.region)
            .field("listener_region", &self.listener_region)
            .field("operation", &self.operation)
            .field("access_key", &self.access_key)
            .field("role_arn_for_key", &self.role_arn_for_key)
            .field("object_ids", &self.object_ids)
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .field("duration_seconds", &self.duration_seconds)
            .field("external_id", &self.external_id.as_ref().map(|_| "<redacted>"))
            .field("issued_key", &self.issued_key)
            .field("web_identity_token", &self.web_identity_token.as_ref().map(|_| "<redacted>"))
            .field("status", &self.status)
            .field("injected", &self.injected)
            .field("path", &self.path)
            .finish()
    }
}

/// An injected answer for the calls a rule matches (every given field must match).
#[derive(Debug, Clone)]
pub struct Fault {
    service: Option<String>,
    region: Option<String>,
    operation: Option<String>,
    status: u16,
    content_type: String,
    body: String,
}

impl Fault {
    /// Answers `status` with `body` (content type: XML when it starts with `<`, else AWS JSON 1.1).
    pub fn new(status: u16, body: &str) -> Fault {
        let content_type = if body.trim_start().starts_with('<') { "text/xml" } else { "application/x-amz-json-1.1" };
        Fault {
            service: None,
            region: None,
            operation: None,
            status,
            content_type: content_type.to_string(),
            body: body.to_string(),
        }
    }

    /// 503 `InternalServiceError` ("down"): transient, retried, failed over.
    pub fn unavailable() -> Fault {
        Fault::new(503, r#"{"__type":"InternalServiceError","message":"down"}"#)
    }

    /// 400 `AccessDeniedException` ("denied"): not transient.
    pub fn access_denied() -> Fault {
        Fault::new(400, r#"{"__type":"AccessDeniedException","message":"denied"}"#)
    }

    /// 503 `ServiceUnavailable` in STS's XML error shape.
    pub fn sts_unavailable() -> Fault {
        Fault::new(
            503,
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>down</Message></Error><RequestId>00000000-fault-0000-0000-000000000000</RequestId></ErrorResponse>"#,
        )
    }

    /// 400 `ThrottlingException`.
    pub fn throttled() -> Fault {
        Fault::new(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)
    }

    pub fn service(mut self, service: &str) -> Fault {
        self.service = Some(service.to_string());
        self
    }

    pub fn region(mut self, region: &str) -> Fault {
        self.region = Some(region.to_string());
        self
    }

    /// In full (`secretsmanager.GetSecretValue`) or by name alone (`GetSecretValue`).
    pub fn operation(mut self, operation: &str) -> Fault {
        self.operation = Some(operation.to_string());
        self
    }

    fn matches(&self, call: &Call) -> bool {
        let service = self.service.as_deref().is_none_or(|s| call.service.as_deref() == Some(s));
        let region = self.region.as_deref().is_none_or(|r| call.region.as_deref() == Some(r));
        let operation = self.operation.as_deref().is_none_or(|op| op_matches(call.operation(), op));
        service && region && operation
    }

    fn reply(&self) -> Reply {
        let mut reply = stand_in::reply(
            StatusCode::from_u16(self.status).expect("valid status"),
            &self.content_type,
            self.body.clone(),
        );
        reply
            .headers_mut()
            .insert("x-amzn-requestid", HeaderValue::from_static("00000000-fault-0000-0000-000000000000"));
        reply
    }
}

fn op_matches(operation: &str, wanted: &str) -> bool {
    operation == wanted || operation.rsplit_once('.').is_some_and(|(_, name)| name == wanted)
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    faults: Vec<Fault>,
    /// Operations (as [`Fault::operation`] names them) forwarded only after a pause.
    delays: Vec<(String, std::time::Duration)>,
    /// Access key id → the role STS issued it for.
    issued: HashMap<String, String>,
}

type Shared = Arc<Mutex<State>>;

/// The proxy; its listeners stop when it is dropped.
pub struct Recorder {
    moto_url: String,
    state: Shared,
    client: Client<HttpConnector, Full<Bytes>>,
    default_listener: Server,
    regional: Mutex<BTreeMap<String, Server>>,
}

impl Recorder {
    /// Starts forwarding to `moto_url` (`http://127.0.0.1:<port>`).
    pub fn start(moto_url: &str) -> Recorder {
        let state: Shared = Arc::default();
        let client = {
            let _guard = stand_in::runtime().enter();
            Client::builder(TokioExecutor::new()).build_http()
        };
        let default_listener = listen(moto_url, &state, &client, None);
        Recorder {
            moto_url: moto_url.to_string(),
            state,
            client,
            default_listener,
            regional: Mutex::new(BTreeMap::new()),
        }
    }

    /// The default listener, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.default_listener.base_url()
    }

    /// A listener that attributes unsigned calls to `region` (started on first use).
    pub fn url_for(&self, region: &str) -> String {
        let mut regional = self.regional.lock().unwrap_or_else(|e| e.into_inner());
        regional
            .entry(region.to_string())
            .or_insert_with(|| listen(&self.moto_url, &self.state, &self.client, Some(region)))
            .base_url()
    }

    /// Provider flags routing every service through the recorder: for each region
    /// `--endpoint SERVICE@REGION=<url_for(region)>`, plus region-less `--endpoint SERVICE=<url>`
    /// for any other region.
    pub fn endpoint_args(&self, regions: &[&str]) -> Vec<String> {
        let mut args = Vec::new();
        for region in regions {
            let url = self.url_for(region);
            for service in SERVICES {
                args.extend(["--endpoint".to_string(), format!("{service}@{region}={url}")]);
            }
        }
        for service in SERVICES {
            args.extend(["--endpoint".to_string(), format!("{service}={}", self.url())]);
        }
        args
    }

    /// Every call so far, in order, with [`Call::role_arn_for_key`] resolved.
    pub fn calls(&self) -> Vec<Call> {
        let state = self.lock();
        state
            .calls
            .iter()
            .cloned()
            .map(|mut call| {
                call.role_arn_for_key = call.access_key.as_ref().and_then(|k| state.issued.get(k).cloned());
                call
            })
            .collect()
    }

    /// The calls to `service`.
    pub fn calls_to(&self, service: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.service() == service).collect()
    }

    /// The role STS issued `access_key` for, if a recorded exchange did.
    pub fn role_for_key(&self, access_key: &str) -> Option<String> {
        self.lock().issued.get(access_key).cloned()
    }

    /// Answers matching calls with `fault` instead of forwarding them (first matching rule wins).
    pub fn fail(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Removes every fault rule.
    pub fn clear(&self) {
        self.lock().faults.clear();
    }

    /// Forwards calls of `operation` only after `pause` (calls made at once overlap in flight).
    pub fn delay(&self, operation: &str, pause: std::time::Duration) {
        self.lock().delays.push((operation.to_string(), pause));
    }

    /// Forgets the recorded calls (keeps the issued keys and the rules).
    pub fn forget_calls(&self) {
        self.lock().calls.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn listen(moto_url: &str, state: &Shared, client: &Client<HttpConnector, Full<Bytes>>, region: Option<&str>) -> Server {
    let (moto_url, state, client) = (moto_url.to_string(), state.clone(), client.clone());
    let region = region.map(String::from);
    stand_in::serve(move |req| {
        let (moto_url, state, client, region) = (moto_url.clone(), state.clone(), client.clone(), region.clone());
        async move { handle(req, &moto_url, &state, &client, region).await }
    })
}

async fn handle(
    req: Request<Bytes>,
    moto_url: &str,
    state: &Shared,
    client: &Client<HttpConnector, Full<Bytes>>,
    listener_region: Option<String>,
) -> Reply {
    let mut call = describe(&req, listener_region);
    let (fault, delay) = {
        let state = state.lock().unwrap_or_else(|e| e.into_inner());
        let delay = state.delays.iter().find(|(op, _)| op_matches(call.operation(), op)).map(|(_, d)| *d);
        (state.faults.iter().find(|f| f.matches(&call)).cloned(), delay)
    };
    if let Some(pause) = delay {
        tokio::time::sleep(pause).await;
    }
    let reply = match fault {
        Some(fault) => {
            call.injected = true;
            fault.reply()
        }
        None => forward(req, moto_url, client).await,
    };
    call.status = reply.status().as_u16();
    let (parts, body) = reply.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    if call.service() == "sts" && call.status == 200 {
        call.issued_key = xml_text(&body, "AccessKeyId");
        if let (Some(key), Some(role)) = (&call.issued_key, &call.role_arn) {
            state.issued.insert(key.clone(), role.clone());
        }
    }
    state.calls.push(call);
    Response::from_parts(parts, Full::new(body))
}

/// Reads what identifies a call from the request.
fn describe(req: &Request<Bytes>, listener_region: Option<String>) -> Call {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let scope = header("authorization").and_then(sigv4_scope);
    let target = header("x-amz-target").map(String::from);
    let body = req.body();
    let is_form = header("content-type").is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form { stand_in::form_pairs(body) } else { Vec::new() };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let action = field("Action");

    let service = scope.as_ref().map(|s| s.service.clone()).or_else(|| {
        let from_target = target.as_deref().and_then(|t| {
            if t.starts_with("secretsmanager.") {
                Some("secretsmanager")
            } else if t.starts_with("AmazonSSM.") {
                Some("ssm")
            } else {
                None
            }
        });
        from_target.or(action.as_ref().map(|_| "sts")).map(String::from)
    });
    let signed_region = scope.as_ref().map(|s| s.region.clone());
    let object_ids = serde_json::from_slice::<serde_json::Value>(body).map(|v| json_ids(&v)).unwrap_or_default();
    Call {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        service,
        region: signed_region.clone().or(listener_region.clone()),
        listener_region,
        signed_region,
        operation: target.or(action),
        access_key: scope.map(|s| s.access_key),
        role_arn_for_key: None,
        object_ids,
        role_arn: field("RoleArn"),
        role_session_name: field("RoleSessionName"),
        duration_seconds: field("DurationSeconds"),
        issued_key: None,
        status: 0,
        injected: false,
        web_identity_token: field("WebIdentityToken"),
        external_id: field("ExternalId"),
    }
}

async fn forward(req: Request<Bytes>, moto_url: &str, client: &Client<HttpConnector, Full<Bytes>>) -> Reply {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = match format!("{moto_url}{path}").parse() {
        Ok(uri) => uri,
        Err(e) => return stand_in::text(StatusCode::BAD_GATEWAY, &format!("recorder: bad URI: {e}")),
    };
    // The body is forwarded whole: its length is known.
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    match client.request(Request::from_parts(parts, Full::new(body))).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            match body.collect().await {
                Ok(body) => {
                    parts.headers.remove(header::TRANSFER_ENCODING);
                    parts.headers.remove(header::CONTENT_LENGTH);
                    Response::from_parts(parts, Full::new(body.to_bytes()))
                }
                Err(e) => stand_in::text(StatusCode::BAD_GATEWAY, &format!("recorder: reading moto's answer: {e}")),
            }
        }
        Err(e) => stand_in::text(StatusCode::BAD_GATEWAY, &format!("recorder: forwarding to moto: {e}")),
    }
}

struct Scope {
    access_key: String,
    region: String,
    service: String,
}

/// `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=..., ...`
fn sigv4_scope(authorization: &str) -> Option<Scope> {
    let credential = authorization.split([' ', ',']).find_map(|part| part.strip_prefix("Credential="))?;
    let mut fields = credential.split('/');
    let access_key = fields.next()?.to_string();
    let _date = fields.next()?;
    let region = fields.next()?.to_string();
    let service = fields.next()?.to_string();
    Some(Scope { access_key, region, service })
}

/// The text of the first `<tag>...</tag>` in an XML body.
fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{tag}>"))? + start;
    Some(text[start..end].trim().to_string())
}

/// Object names in a Secrets Manager / Parameter Store JSON request.
fn json_ids(body: &serde_json::Value) -> Vec<String> {
    let mut ids = Vec::new();
    for key in ["SecretId", "Name"] {
        if let Some(id) = body.get(key).and_then(|v| v.as_str()) {
            ids.push(id.to_string());
        }
    }
    for key in ["SecretIdList", "Names"] {
        if let Some(list) = body.get(key).and_then(|v| v.as_array()) {
            ids.extend(list.iter().filter_map(|v| v.as_str()).map(String::from));
        }
    }
    ids
}
