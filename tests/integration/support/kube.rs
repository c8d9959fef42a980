//! A Kubernetes API stand-in: serves the ServiceAccounts, Nodes and CSIDrivers a test defines,
//! records the Events created (`POST /api/v1/namespaces/NS/events`, answered after an optional
//! delay), answers 403 for paths a test forbids and 404 with a Kubernetes `Status` for anything
//! else, and counts requests per path.
//!
//! ```ignore
//! let kube = KubeApi::start();
//! kube.service_account("default", "app-sa", Some("arn:aws:iam::123456789012:role/app"));
//! kube.node("node-1", &[("topology.kubernetes.io/region", "us-east-1")]);
//! let provider = Provider::builder(&moto.url()).env("KUBECONFIG", kube.kubeconfig().display().to_string());
//! // ...
//! assert_eq!(kube.requests("/api/v1/namespaces/default/serviceaccounts/app-sa"), 1);
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, Request, StatusCode};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

use super::stand_in::{self, Reply, Server};

/// The bearer token of the kubeconfig's user.
pub const TOKEN: &str = "test-token";

/// One request the stand-in received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeRequest {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: Option<String>,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    pub accept: Option<String>,
}

#[derive(Default)]
struct State {
    /// `(namespace, name)` → annotations.
    service_accounts: HashMap<(String, String), Map<String, Value>>,
    /// name → labels.
    nodes: HashMap<String, Map<String, Value>>,
    /// name → spec.
    csi_drivers: HashMap<String, Value>,
    /// Paths answered 403.
    forbidden: Vec<String>,
    /// The Events created, as sent.
    events: Vec<Value>,
    /// How long an Event creation waits before it is answered.
    event_delay: Duration,
    requests: Vec<KubeRequest>,
}

/// The stand-in API server; stops when dropped.
pub struct KubeApi {
    server: Server,
    state: Arc<Mutex<State>>,
    dir: TempDir,
    kubeconfig: PathBuf,
}

impl KubeApi {
    /// Starts serving (no objects yet) and writes a kubeconfig pointing at it.
    pub fn start() -> KubeApi {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = stand_in::serve(move |req| {
            let state = shared.clone();
            async move {
                let delay = state.lock().unwrap_or_else(|e| e.into_inner()).event_delay;
                if req.method() == Method::POST && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                answer(&state, req)
            }
        });
        let dir = tempfile::Builder::new().prefix("kube-").tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server.base_url())).expect("write kubeconfig");
        KubeApi { server, state, dir, kubeconfig }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// A kubeconfig file naming this server (plain http), a user with token [`TOKEN`], and a
    /// current context with namespace `default`. Give it to the provider as `KUBECONFIG`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.kubeconfig.clone()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Defines (or replaces) a ServiceAccount; `role_arn` becomes its
    /// `eks.amazonaws.com/role-arn` annotation.
    pub fn service_account(&self, namespace: &str, name: &str, role_arn: Option<&str>) {
        let annotations: Vec<(&str, &str)> =
            role_arn.map(|arn| ("eks.amazonaws.com/role-arn", arn)).into_iter().collect();
        self.service_account_annotated(namespace, name, &annotations);
    }

    /// Defines (or replaces) a ServiceAccount with exactly these annotations.
    pub fn service_account_annotated(&self, namespace: &str, name: &str, annotations: &[(&str, &str)]) {
        let map = annotations.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
        self.lock().service_accounts.insert((namespace.into(), name.into()), map);
    }

    /// Defines (or replaces) a Node with these labels.
    pub fn node(&self, name: &str, labels: &[(&str, &str)]) {
        let map = labels.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
        self.lock().nodes.insert(name.into(), map);
    }

    /// Defines (or replaces) a CSIDriver with these token audiences and `requiresRepublish`.
    pub fn csi_driver(&self, name: &str, audiences: &[&str], requires_republish: bool) {
        let requests: Vec<Value> = audiences.iter().map(|a| json!({"audience": a})).collect();
        let spec = json!({"attachRequired": false, "podInfoOnMount": true, "tokenRequests": requests,
                          "requiresRepublish": requires_republish, "volumeLifecycleModes": ["Ephemeral"]});
        self.lock().csi_drivers.insert(name.into(), spec);
    }

    /// The Events created so far, as the provider sent them.
    pub fn events(&self) -> Vec<Value> {
        self.lock().events.clone()
    }

    /// Waits (up to 10 s) until `count` Events were created, and returns them all.
    pub fn wait_events(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.events();
            if events.len() >= count || Instant::now() >= deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Answers every Event creation only after `delay` (a slow API server).
    pub fn delay_events(&self, delay: Duration) {
        self.lock().event_delay = delay;
    }

    /// The events path of `namespace`.
    pub fn events_path(namespace: &str) -> String {
        format!("/api/v1/namespaces/{namespace}/events")
    }

    /// Answers 403 Forbidden for `path` from now on (as RBAC would).
    pub fn forbid(&self, path: &str) {
        self.lock().forbidden.push(path.into());
    }

    /// How many requests (any method, any query) came for `path`, e.g.
    /// `/api/v1/namespaces/default/serviceaccounts/app-sa` or `/api/v1/nodes/node-1`.
    pub fn requests(&self, path: &str) -> usize {
        self.lock().requests.iter().filter(|r| r.path == path).count()
    }

    /// Every request so far, in order.
    pub fn all_requests(&self) -> Vec<KubeRequest> {
        self.lock().requests.clone()
    }

    /// The path of a ServiceAccount, for [`KubeApi::requests`].
    pub fn service_account_path(namespace: &str, name: &str) -> String {
        format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
    }

    /// The path of a Node, for [`KubeApi::requests`].
    pub fn node_path(name: &str) -> String {
        format!("/api/v1/nodes/{name}")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: stand-in
  cluster:
    server: {server}
users:
- name: tester
  user:
    token: {TOKEN}
contexts:
- name: stand-in
  context:
    cluster: stand-in
    user: tester
    namespace: default
current-context: stand-in
"
    )
}

fn answer(state: &Mutex<State>, req: Request<Bytes>) -> Reply {
    let header =
        |name: hyper::header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
    let record = KubeRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(String::from),
        authorization: header(hyper::header::AUTHORIZATION),
        accept: header(hyper::header::ACCEPT),
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.requests.push(record.clone());
    if state.forbidden.contains(&record.path) {
        return status(StatusCode::FORBIDDEN, "Forbidden", "forbidden by the test's RBAC");
    }

    let segments: Vec<&str> = record.path.trim_matches('/').split('/').collect();
    if req.method() == Method::POST
        && let ["api", "v1", "namespaces", _, "events"] = segments.as_slice()
    {
        return match serde_json::from_slice::<Value>(req.body()) {
            Ok(event) => {
                state.events.push(event.clone());
                stand_in::json(StatusCode::CREATED, &event)
            }
            Err(e) => status(StatusCode::BAD_REQUEST, "BadRequest", &format!("not JSON: {e}")),
        };
    }
    if req.method() != Method::GET {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{} is not served here", req.method()),
        );
    }
    // PartialObjectMetadata (kube's `get_metadata`) asks for it in Accept.
    let partial = record.accept.as_deref().is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    match segments.as_slice() {
        ["api", "v1", "namespaces", ns, "serviceaccounts", name] => {
            match state.service_accounts.get(&(ns.to_string(), name.to_string())) {
                Some(annotations) => {
                    let mut metadata = json!({
                        "name": name,
                        "namespace": ns,
                        "uid": format!("sa-{ns}-{name}-uid"),
                        "resourceVersion": "1",
                        "creationTimestamp": "2024-01-01T00:00:00Z",
                    });
                    if !annotations.is_empty() {
                        metadata["annotations"] = Value::Object(annotations.clone());
                    }
                    object(partial, "ServiceAccount", metadata)
                }
                None => not_found("serviceaccounts", name),
            }
        }
        ["api", "v1", "nodes", name] => match state.nodes.get(*name) {
            Some(labels) => {
                let mut metadata = json!({
                    "name": name,
                    "uid": format!("node-{name}-uid"),
                    "resourceVersion": "1",
                    "creationTimestamp": "2024-01-01T00:00:00Z",
                });
                if !labels.is_empty() {
                    metadata["labels"] = Value::Object(labels.clone());
                }
                object(partial, "Node", metadata)
            }
            None => not_found("nodes", name),
        },
        ["apis", "storage.k8s.io", "v1", "csidrivers", name] => match state.csi_drivers.get(*name) {
            Some(spec) => {
                let metadata = json!({"name": name, "uid": format!("csidriver-{name}-uid"), "resourceVersion": "1",
                                      "creationTimestamp": "2024-01-01T00:00:00Z"});
                let body =
                    json!({"kind": "CSIDriver", "apiVersion": "storage.k8s.io/v1", "metadata": metadata, "spec": spec});
                stand_in::json(StatusCode::OK, &body)
            }
            None => not_found("csidrivers.storage.k8s.io", name),
        },
        _ => status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource"),
    }
}

fn object(partial: bool, kind: &str, metadata: Value) -> Reply {
    let body = if partial {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
    } else {
        json!({"kind": kind, "apiVersion": "v1", "metadata": metadata})
    };
    stand_in::json(StatusCode::OK, &body)
}

fn not_found(resource: &str, name: &str) -> Reply {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("{resource} \"{name}\" not found"),
        "reason": "NotFound",
        "details": {"name": name, "kind": resource},
        "code": 404,
    });
    stand_in::json(StatusCode::NOT_FOUND, &body)
}

fn status(code: StatusCode, reason: &str, message: &str) -> Reply {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    stand_in::json(code, &body)
}
