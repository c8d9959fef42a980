//! The only user of `kube`: the pod's service-account role annotation and this node's region
//! label. The client is created on first use (in-cluster config, else `KUBECONFIG`), calls are
//! rate limited (`--qps`, `--burst`), service-account lookups are cached briefly (on the injected
//! clock, refreshed in the background ahead of expiry while they are in use) and the node's region
//! once. RBAC needed: `get` on serviceaccounts and nodes; with `--rotation-events`, `create` and
//! `patch` on events.

use crate::clock::SharedClock;
use crate::params::limits;
use crate::sync::Gates;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference, ServiceAccount};
use k8s_openapi::api::storage::v1::CSIDriver;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// The annotation IRSA reads the role from.
pub const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The node label the region comes from.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

#[derive(Debug, Clone, thiserror::Error)]
pub enum K8sError {
    #[error("the Kubernetes API is not configured (no in-cluster config and no usable KUBECONFIG): {0}")]
    NoClient(String),
    #[error("reading {what} from the Kubernetes API failed: {reason}")]
    Api { what: String, reason: String, transient: bool },
    #[error("{what} {reason}")]
    Invalid { what: String, reason: String },
}

/// The longest role annotation accepted (an IAM role ARN is at most 2048 characters).
const MAX_ROLE_ARN: usize = 2048;

impl K8sError {
    /// Whether a retry could help (connection problems, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        matches!(self, K8sError::Api { transient: true, .. })
    }
}

/// A role annotation (or its absence), when it was read, and whether a refresh is under way.
#[derive(Debug, Clone)]
struct CachedRole {
    at: Instant,
    role: Option<String>,
    refreshing: bool,
}

/// What the cache holds for a service account at some moment.
enum Cached {
    /// Served as it is (young, or a refresh is already under way).
    Serve(Option<String>),
    /// Served, and this caller starts the one background refresh.
    ServeAndRefresh(Option<String>),
    /// Nothing usable: the caller waits for a lookup (one per service account at a time).
    Missing,
}

/// A cached answer is refreshed in the background by its first use in the last quarter of its
/// lifetime (`--service-account-cache-ttl`): a service account in use is looked up again before
/// it expires, and an annotation change applies within the lifetime.
const REFRESH_AHEAD: u32 = 4;

/// Past its lifetime, an answer is still served, while one background refresh runs, until it is
/// this many lifetimes old (30 s → 5 min): after a quiet spell longer than the lifetime, the
/// mounts of many service accounts at once do not all wait behind `--qps` (50 accounts at
/// `--qps 5 --burst 10` would wait up to 8 s); the first of them triggers the refresh and gets
/// the answer read before the quiet spell. The annotation only chooses which role STS is asked
/// for (STS checks the token against the role's trust policy), so a stale one grants nothing.
const SERVE_STALE_LIFETIMES: u32 = 10;

/// Kubernetes lookups, shared by every mount.
pub struct K8s {
    client: OnceCell<kube::Client>,
    limiter: RateLimiter,
    sa_ttl: Duration,
    clock: SharedClock,
    service_accounts: Mutex<HashMap<(String, String), CachedRole>>,
    /// One gate per service account being looked up: concurrent first mounts of one service
    /// account wait for a single GET instead of each sending one behind the rate limiter.
    /// Entries live only while a lookup is in flight.
    lookups: Gates<(String, String)>,
    node_region: OnceCell<Option<String>>,
}

impl K8s {
    /// Lookups rate limited to `qps` (bursts of `burst`), service accounts cached for `sa_ttl`
    /// as `clock` counts it.
    pub fn new(qps: u32, burst: u32, sa_ttl: Duration, clock: SharedClock) -> Self {
        K8s {
            client: OnceCell::new(),
            limiter: RateLimiter::new(qps, burst),
            sa_ttl,
            clock,
            service_accounts: Mutex::new(HashMap::new()),
            lookups: Gates::default(),
            node_region: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<kube::Client, K8sError> {
        self.client
            .get_or_try_init(|| async {
                kube::Client::try_default().await.map_err(|e| K8sError::NoClient(e.to_string()))
            })
            .await
            .cloned()
    }

    /// Creates the client (no API call): in-cluster config, else `KUBECONFIG`.
    pub async fn configure(&self) -> Result<(), K8sError> {
        self.client().await.map(|_| ())
    }

    /// With `client` as the Kubernetes client (tests: a stand-in service).
    #[cfg(test)]
    fn with_client(mut self, client: kube::Client) -> Self {
        self.client = OnceCell::new_with(Some(client));
        self
    }

    /// The IRSA role annotation of `namespace/name` (`None` when it has none). A cached answer
    /// is served; from the last quarter of its lifetime (and past it, up to
    /// [`SERVE_STALE_LIFETIMES`]) the first caller also starts one background refresh. Without
    /// a usable answer, concurrent callers for one service account share one lookup.
    pub async fn service_account_role(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, K8sError> {
        check_names(namespace, name)?;
        let key = (namespace.to_string(), name.to_string());
        match self.cached_role(&key) {
            Cached::Serve(role) => return Ok(role),
            Cached::ServeAndRefresh(role) => {
                self.refresh_in_background(key);
                return Ok(role);
            }
            Cached::Missing => {}
        }
        let turn = self.lookups.enter(&key);
        let _one_at_a_time = turn.wait().await;
        match self.cached_role(&key) {
            Cached::Serve(role) => Ok(role),
            Cached::ServeAndRefresh(role) => {
                // Marked as refreshing by this caller: it must start the refresh.
                self.refresh_in_background(key);
                Ok(role)
            }
            Cached::Missing => self.fetch_role(key.clone()).await,
        }
    }

    /// Looks `key` up again without anyone waiting for it; on failure the cached answer stays
    /// (while it may be served) and the next caller tries again.
    fn refresh_in_background(self: &Arc<Self>, key: (String, String)) {
        let k8s = self.clone();
        tokio::spawn(async move {
            let turn = k8s.lookups.enter(&key);
            let _one_at_a_time = turn.wait().await;
            if let Err(e) = k8s.fetch_role(key.clone()).await {
                tracing::warn!(namespace = %key.0, name = %key.1, error = %e, "refreshing a service account's role failed; the cached one is used meanwhile");
                if let Some(entry) = crate::sync::lock(&k8s.service_accounts).get_mut(&key) {
                    entry.refreshing = false;
                }
            }
        });
    }

    /// GETs the service account (rate limited) and caches its role annotation.
    async fn fetch_role(&self, key: (String, String)) -> Result<Option<String>, K8sError> {
        let (namespace, name) = (&key.0, &key.1);
        self.limiter.acquire().await;
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await?, namespace);
        let sa = api.get(name).await.map_err(|e| api_error(format!("service account {namespace}/{name}"), e))?;
        let role = sa.metadata.annotations.and_then(|a| a.get(ROLE_ANNOTATION).cloned()).filter(|r| !r.is_empty());
        if let Some(role) = &role {
            check_role(namespace, name, role)?;
        }
        let now = self.clock.now();
        let mut cache = crate::sync::lock(&self.service_accounts);
        cache.retain(|_, entry| now.saturating_duration_since(entry.at) < self.serve_limit());
        cache.insert(key, CachedRole { at: now, role: role.clone(), refreshing: false });
        Ok(role)
    }

    /// What the cache holds for `key` now; marks the entry as refreshing when this caller is the
    /// one to refresh it.
    fn cached_role(&self, key: &(String, String)) -> Cached {
        let now = self.clock.now();
        let mut cache = crate::sync::lock(&self.service_accounts);
        let Some(entry) = cache.get_mut(key) else { return Cached::Missing };
        let age = now.saturating_duration_since(entry.at);
        if age >= self.serve_limit() {
            Cached::Missing
        } else if age < self.sa_ttl - self.sa_ttl / REFRESH_AHEAD || entry.refreshing {
            Cached::Serve(entry.role.clone())
        } else {
            entry.refreshing = true;
            Cached::ServeAndRefresh(entry.role.clone())
        }
    }

    /// The age past which a cached answer is not served.
    fn serve_limit(&self) -> Duration {
        self.sa_ttl * SERVE_STALE_LIFETIMES
    }

    /// The region label of `node`, looked up once (a failed lookup is retried next time).
    pub async fn node_region(&self, node: &str) -> Result<Option<String>, K8sError> {
        self.node_region
            .get_or_try_init(|| async {
                self.limiter.acquire().await;
                let api: Api<Node> = Api::all(self.client().await?);
                let found = api.get(node).await.map_err(|e| api_error(format!("node {node}"), e))?;
                let region = found.metadata.labels.and_then(|l| l.get(REGION_LABEL).cloned()).filter(|r| !r.is_empty());
                match region {
                    Some(region) if !limits::is_valid_region(&region) => Err(K8sError::Invalid {
                        what: format!("node {node}"),
                        reason: format!("has a {REGION_LABEL} label {region:?} that is not a valid AWS region"),
                    }),
                    region => Ok(region),
                }
            })
            .await
            .cloned()
    }
}

/// Names that go into an API path must be what Kubernetes allows (a DNS-1123 label namespace,
/// a DNS-1123 subdomain name): `../../nodes/x`, `sa/token` or `sa?watch=true` never reach the
/// API server.
fn check_names(namespace: &str, name: &str) -> Result<(), K8sError> {
    if limits::is_dns_label(namespace) && limits::is_dns_subdomain(name) {
        return Ok(());
    }
    let (what, reason) = (format!("service account {namespace:?}/{name:?}"), "is not a valid Kubernetes name".into());
    Err(K8sError::Invalid { what, reason })
}

/// A role annotation goes into STS calls, errors and logs: an ARN of a sane length and no
/// control characters (a namespace's users can write any annotation on their service accounts).
fn check_role(namespace: &str, name: &str, role: &str) -> Result<(), K8sError> {
    if role.starts_with("arn:") && limits::text_problem(role, MAX_ROLE_ARN).is_none() {
        return Ok(());
    }
    let what = format!("service account {namespace}/{name}");
    Err(K8sError::Invalid { what, reason: format!("has a {ROLE_ANNOTATION} annotation that is not an IAM role ARN") })
}

/// Whether this identity may `get serviceaccounts` (what IRSA needs), and how that was learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed(String),
    Denied(String),
}

/// What `doctor` reads of the driver's `CSIDriver` object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CsiDriverInfo {
    /// The audiences of `spec.tokenRequests`: the tokens the driver passes to providers.
    pub audiences: Vec<String>,
    /// `spec.requiresRepublish`: the kubelet re-publishes mounted volumes (rotation needs it).
    pub requires_republish: bool,
}

/// Audiences listed at most (a CSIDriver allows a handful; this bounds a hostile object).
const MAX_AUDIENCES: usize = 64;

impl K8s {
    /// For `doctor`: a SelfSubjectAccessReview of `get serviceaccounts` in every namespace; when
    /// the API does not serve reviews, a GET of `default/default` (found or not found both mean
    /// allowed, 403 means denied). `Err` when the API cannot be reached or configured.
    pub async fn can_get_service_accounts(&self) -> Result<Access, K8sError> {
        let client = self.client().await?;
        match self.access_review(&client, "serviceaccounts").await? {
            Some(access) => Ok(access),
            None => {
                self.limiter.acquire().await;
                let api: Api<ServiceAccount> = Api::namespaced(client, "default");
                probe_access(api.get("default").await, "GET serviceaccounts default/default")
            }
        }
    }

    /// For `doctor`: whether this identity may `get nodes` (the region from the node's label
    /// needs it), by a SelfSubjectAccessReview, else a GET of `node`.
    pub async fn can_get_nodes(&self, node: &str) -> Result<Access, K8sError> {
        let client = self.client().await?;
        match self.access_review(&client, "nodes").await? {
            Some(access) => Ok(access),
            None => {
                self.limiter.acquire().await;
                let api: Api<Node> = Api::all(client);
                probe_access(api.get(node).await, &format!("GET nodes {node}"))
            }
        }
    }

    /// For `doctor`: the `CSIDriver` named `name`, `None` when it does not exist.
    pub async fn csi_driver(&self, name: &str) -> Result<Option<CsiDriverInfo>, K8sError> {
        let client = self.client().await?;
        self.limiter.acquire().await;
        let api: Api<CSIDriver> = Api::all(client);
        let found = api.get_opt(name).await.map_err(|e| api_error(format!("CSIDriver {name}"), e))?;
        Ok(found.map(|driver| {
            let requests = driver.spec.token_requests.unwrap_or_default();
            let audiences = requests.into_iter().take(MAX_AUDIENCES).map(|r| r.audience).collect();
            CsiDriverInfo { audiences, requires_republish: driver.spec.requires_republish.unwrap_or(false) }
        }))
    }

    /// A SelfSubjectAccessReview of `get <resource>` in every namespace; `None` when the API
    /// does not serve reviews (the caller then probes with a GET).
    async fn access_review(&self, client: &kube::Client, resource: &str) -> Result<Option<Access>, K8sError> {
        self.limiter.acquire().await;
        let attributes =
            ResourceAttributes { verb: Some("get".into()), resource: Some(resource.into()), ..Default::default() };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec { resource_attributes: Some(attributes), ..Default::default() },
            ..Default::default()
        };
        let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        match reviews.create(&PostParams::default(), &review).await {
            Ok(answer) => Ok(Some(review_access(answer))),
            Err(kube::Error::Api(_)) => Ok(None),
            Err(e) => Err(api_error("a SelfSubjectAccessReview".into(), e)),
        }
    }
}

/// A `core/v1` Event about a pod (the API the driver's own events use, so `kubectl describe
/// pod` lists them together). Built by the caller from validated names; holds no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    /// `SecretRotated`.
    pub reason: &'static str,
    pub message: String,
    /// This node (`NODE_NAME`), the event's source host and reporting instance.
    pub node: Option<String>,
}

/// The component events name as their source.
const EVENT_COMPONENT: &str = "csi-provider-aws";
/// The longest event name: a DNS-1123 subdomain.
const MAX_EVENT_NAME: usize = 253;

impl K8s {
    /// Creates `event` in the pod's namespace. Not behind `--qps`: the caller rate limits
    /// events on its own, so they never delay a lookup a mount waits for.
    pub async fn create_pod_event(&self, event: &PodEvent) -> Result<(), K8sError> {
        let client = self.client().await?;
        let now = Time(k8s_openapi::jiff::Timestamp::try_from(self.clock.system_now()).unwrap_or_default());
        let nanos = self.clock.system_now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let suffix = format!(".{:x}", nanos as u64);
        let base: String = event.pod.chars().take(MAX_EVENT_NAME - suffix.len()).collect();
        let object = Event {
            metadata: ObjectMeta {
                name: Some(format!("{base}{suffix}")),
                namespace: Some(event.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(event.pod.clone()),
                namespace: Some(event.namespace.clone()),
                uid: Some(event.uid.clone()),
                ..ObjectReference::default()
            },
            reason: Some(event.reason.into()),
            message: Some(event.message.clone()),
            type_: Some("Normal".into()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource { component: Some(EVENT_COMPONENT.into()), host: event.node.clone() }),
            reporting_component: Some(EVENT_COMPONENT.into()),
            reporting_instance: event.node.clone(),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(client, &event.namespace);
        api.create(&PostParams::default(), &object).await.map(|_| ()).map_err(|e| {
            let what = format!("creating an event on pod {}/{}", event.namespace, event.pod);
            match api_error(String::new(), e) {
                K8sError::Api { reason, .. } => K8sError::Invalid { what, reason: format!("failed: {reason}") },
                other => other,
            }
        })
    }
}

/// The access a probing GET shows: found or not found both mean allowed, 403 means denied.
fn probe_access<T>(answer: Result<T, kube::Error>, what: &str) -> Result<Access, K8sError> {
    match answer {
        Ok(_) => Ok(Access::Allowed(format!("{what} answered"))),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            Ok(Access::Allowed(format!("{what}: not found, but not forbidden")))
        }
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(Access::Denied(status.message.clone())),
        Err(e) => Err(api_error(what.to_string(), e)),
    }
}

fn review_access(review: SelfSubjectAccessReview) -> Access {
    let status = review.status.unwrap_or_default();
    let reason = status.reason.filter(|r| !r.is_empty());
    if status.allowed {
        Access::Allowed(reason.unwrap_or_else(|| "SelfSubjectAccessReview: allowed".into()))
    } else {
        Access::Denied(reason.unwrap_or_else(|| "SelfSubjectAccessReview: not allowed".into()))
    }
}

impl std::fmt::Debug for K8s {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8s").field("connected", &self.client.initialized()).field("sa_ttl", &self.sa_ttl).finish()
    }
}

fn api_error(what: String, err: kube::Error) -> K8sError {
    let (reason, transient) = match &err {
        kube::Error::Api(status) => {
            let code = status.code;
            (format!("{} (HTTP {code})", status.message), code >= 500 || code == 429)
        }
        other => (other.to_string(), true),
    };
    K8sError::Api { what, reason, transient }
}

/// A token bucket: `qps` sustained, `burst` at once (client-go's default limiter shape).
#[derive(Debug)]
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    state: tokio::sync::Mutex<(f64, tokio::time::Instant)>,
}

impl RateLimiter {
    pub fn new(qps: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            qps: f64::from(qps.max(1)),
            burst,
            state: tokio::sync::Mutex::new((burst, tokio::time::Instant::now())),
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let mut state = self.state.lock().await;
        let (tokens, last) = *state;
        let now = tokio::time::Instant::now();
        let available = (tokens + now.duration_since(last).as_secs_f64() * self.qps).min(self.burst);
        if available >= 1.0 {
            *state = (available - 1.0, now);
            return;
        }
        let wait = Duration::from_secs_f64((1.0 - available) / self.qps);
        tokio::time::sleep(wait).await;
        *state = (0.0, tokio::time::Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limiter_allows_a_burst_then_qps() {
        let limiter = RateLimiter::new(5, 10);
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(1), "the burst is immediate");
        for _ in 0..5 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(990) && elapsed < Duration::from_millis(1100), "{elapsed:?}");
    }

    /// Regression (issue #11): namespace and service-account names reached API paths unchecked.
    /// Refused before any client exists (no KUBECONFIG is needed for these to fail cleanly).
    #[tokio::test]
    async fn invalid_names_never_reach_the_api() {
        let k8s = Arc::new(K8s::new(5, 10, Duration::from_secs(30), crate::clock::system()));
        for (namespace, name) in [("../../../nodes", "node-1"), ("default", "sa/token"), ("default", "sa?watch=true")] {
            let err = k8s.service_account_role(namespace, name).await.expect_err(name);
            assert!(matches!(err, K8sError::Invalid { .. }), "{err}");
            assert!(!err.is_transient());
        }
    }

    /// A Kubernetes API stand-in for service accounts: counts GETs and answers each only when
    /// the test releases an answer, with the role it holds then.
    #[derive(Clone)]
    struct StandIn {
        requests: Arc<tokio::sync::watch::Sender<usize>>,
        answers: Arc<tokio::sync::Semaphore>,
        role: Arc<Mutex<String>>,
    }

    impl StandIn {
        fn new(role: &str) -> StandIn {
            StandIn {
                requests: Arc::new(tokio::sync::watch::Sender::new(0)),
                answers: Arc::new(tokio::sync::Semaphore::new(0)),
                role: Arc::new(Mutex::new(role.into())),
            }
        }

        fn client(&self) -> kube::Client {
            let this = self.clone();
            let service = tower::service_fn(move |_: http::Request<kube::client::Body>| {
                let this = this.clone();
                async move {
                    this.requests.send_modify(|n| *n += 1);
                    this.answers.acquire().await.map(|p| p.forget()).ok();
                    let role = crate::sync::lock(&this.role).clone();
                    let body = serde_json::json!({
                        "apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": { "name": "app", "namespace": "ns", "annotations": { ROLE_ANNOTATION: role } },
                    });
                    let body = http_body_util::Full::new(bytes::Bytes::from(body.to_string()));
                    Ok::<_, std::convert::Infallible>(http::Response::new(body))
                }
            });
            kube::Client::new(service, "default")
        }

        fn requests(&self) -> usize {
            *self.requests.borrow()
        }

        /// Waits until `n` requests have arrived.
        async fn until_requests(&self, n: usize) {
            let mut requests = self.requests.subscribe();
            let arrived = requests.wait_for(|r| *r >= n);
            tokio::time::timeout(Duration::from_secs(60), arrived).await.expect("in time").expect("the stand-in");
        }
    }

    const TTL: Duration = Duration::from_secs(30);
    const ROLE: &str = "arn:aws:iam::123456789012:role/app";

    /// A provider's lookups on a manual clock, with one service account looked up and cached.
    async fn primed(stand_in: &StandIn) -> (Arc<K8s>, Arc<crate::clock::ManualClock>) {
        let clock = crate::clock::ManualClock::new();
        let k8s = Arc::new(K8s::new(5, 10, TTL, clock.clone()).with_client(stand_in.client()));
        stand_in.answers.add_permits(1);
        assert_eq!(k8s.service_account_role("ns", "app").await.expect("first lookup"), Some(ROLE.into()));
        assert_eq!(stand_in.requests(), 1);
        (k8s, clock)
    }

    /// 50 concurrent lookups of one service account, each within `within` (none waits for the
    /// API when that is short).
    async fn fifty_lookups(k8s: &Arc<K8s>, within: Duration) -> Vec<Option<String>> {
        let lookups = (0..50).map(|_| {
            let k8s = k8s.clone();
            tokio::spawn(async move { tokio::time::timeout(within, k8s.service_account_role("ns", "app")).await })
        });
        let answers = futures::future::join_all(lookups).await;
        let answers = answers.into_iter().map(|a| a.expect("task").expect("in time").expect("lookup"));
        answers.collect()
    }

    /// Issue #16: the first 50 concurrent mounts of one service account after its cached
    /// lookup expired make exactly one Kubernetes request (not 50 behind `--qps`), without
    /// waiting for it, and long past the lifetime (nothing usable) they wait for that one.
    #[tokio::test]
    async fn fifty_lookups_after_expiry_make_one_request() {
        let stand_in = StandIn::new(ROLE);
        let (k8s, clock) = primed(&stand_in).await;
        clock.advance(TTL);
        let answers = fifty_lookups(&k8s, Duration::from_secs(2)).await;
        assert!(answers.iter().all(|a| a.as_deref() == Some(ROLE)), "the cached answer, at once");
        stand_in.until_requests(2).await;
        stand_in.answers.add_permits(1);
        refreshed(&k8s, "app", ROLE).await;
        assert_eq!(stand_in.requests(), 2, "one request for the 50");

        clock.advance(TTL * SERVE_STALE_LIFETIMES);
        let lookups = tokio::spawn({
            let k8s = k8s.clone();
            async move { fifty_lookups(&k8s, Duration::from_secs(10)).await }
        });
        stand_in.until_requests(3).await;
        stand_in.answers.add_permits(1);
        let answers = lookups.await.expect("lookups");
        assert!(answers.iter().all(|a| a.as_deref() == Some(ROLE)));
        assert_eq!(stand_in.requests(), 3, "one request for the 50");
    }

    /// Waits (without sleeping) until `name`'s cached answer is a fresh `role`.
    async fn refreshed(k8s: &K8s, name: &str, role: &str) {
        let key = ("ns".to_string(), name.to_string());
        let fresh = async {
            loop {
                let age = crate::sync::lock(&k8s.service_accounts)
                    .get(&key)
                    .filter(|e| e.role.as_deref() == Some(role))
                    .map(|e| k8s.clock.now().saturating_duration_since(e.at));
                if age == Some(Duration::ZERO) {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), fresh).await.expect("the refresh lands");
    }

    /// Issue #16: 50 pods of 50 service accounts mounting together after a quiet spell longer
    /// than the lifetime: none waits (before, all 50 lookups queued behind `--qps 5 --burst 10`,
    /// the last for 8 s); each account is refreshed once in the background. (Tokio's time is
    /// paused: the limiter's waits pass at once, a lookup waiting for the API times out.)
    #[tokio::test(start_paused = true)]
    async fn fifty_service_accounts_after_a_quiet_spell_do_not_wait() {
        let stand_in = StandIn::new(ROLE);
        let clock = crate::clock::ManualClock::new();
        let k8s = Arc::new(K8s::new(5, 10, TTL, clock.clone()).with_client(stand_in.client()));
        let names: Vec<String> = (0..50).map(|i| format!("app-{i}")).collect();
        stand_in.answers.add_permits(50);
        for name in &names {
            k8s.service_account_role("ns", name).await.expect("first lookup");
        }
        clock.advance(TTL + Duration::from_secs(1));
        let lookups = names.iter().map(|name| {
            let (k8s, name) = (k8s.clone(), name.clone());
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(2), k8s.service_account_role("ns", &name)).await
            })
        });
        for answer in futures::future::join_all(lookups).await {
            assert_eq!(answer.expect("task").expect("in time").expect("lookup").as_deref(), Some(ROLE));
        }
        stand_in.until_requests(100).await;
        assert_eq!(stand_in.requests(), 100, "one refresh per service account");
    }

    /// Issue #16: a service account in use is looked up again before its cached answer expires,
    /// once, in the background: no lookup waits for the API (here the API does not answer until
    /// the test lets it), and the refreshed answer (a changed annotation) lives a full lifetime.
    #[tokio::test]
    async fn a_service_account_in_use_is_refreshed_ahead_and_nobody_waits() {
        let stand_in = StandIn::new(ROLE);
        let (k8s, clock) = primed(&stand_in).await;
        clock.advance(TTL - TTL / REFRESH_AHEAD);
        let answers = fifty_lookups(&k8s, Duration::from_secs(2)).await;
        assert!(answers.iter().all(|a| a.as_deref() == Some(ROLE)), "the cached answer, at once");
        stand_in.until_requests(2).await;
        let changed = "arn:aws:iam::123456789012:role/changed";
        *crate::sync::lock(&stand_in.role) = changed.into();
        stand_in.answers.add_permits(1);
        refreshed(&k8s, "app", changed).await;
        clock.advance(TTL / REFRESH_AHEAD + Duration::from_secs(1));
        let answers = fifty_lookups(&k8s, Duration::from_secs(2)).await;
        assert!(answers.iter().all(|a| a.as_deref() == Some(changed)), "past the first lifetime: the refreshed one");
        assert_eq!(stand_in.requests(), 2, "one refresh for the 100 lookups");
    }

    #[test]
    fn role_annotations_must_be_role_arns() {
        assert!(check_role("ns", "sa", "arn:aws:iam::123456789012:role/app").is_ok());
        assert!(check_role("ns", "sa", "arn:aws:iam::1:role/app\nforged").is_err());
        assert!(check_role("ns", "sa", "app").is_err());
        assert!(check_role("ns", "sa", &format!("arn:{}", "a".repeat(MAX_ROLE_ARN))).is_err());
    }
}
