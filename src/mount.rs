//! One `Mount`, end to end: parameters → region → credentials → fetch (with failover) →
//! render → write into the target path, or return the files in driver-writes mode.

use crate::budget::Priority;
use crate::codes::ErrorCode;
use crate::events::{Rotation, RotationEvents};
use crate::fetch::{Fetcher, Scope};
use crate::identity::{CredentialSource, IdentityError, Proven, RoleAllowlist, RoleAssumer, RoleRefused};
use crate::k8s::K8s;
use crate::net::{EndpointAllowlist, EndpointRefused, SpcEndpoints};
use crate::params::{self, MountParams, ObjectSpec, ObjectsMemo, ParamError};
use crate::read::{FetchError, Fetched, Got, Listed, Listing, ReadItem, ReadResult, Route};
use crate::render::{self, FileVersion, RenderError};
use crate::write::{self, KnownSets, OutFile, Target, Targets, WriteError, WriteOutcome};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the server was configured with that shapes every mount.
#[derive(Debug, Clone)]
pub struct MountConfig {
    pub kubelet_path: PathBuf,
    pub driver_writes: bool,
    /// `AWS_REGION` of the provider, used when the SecretProviderClass names no region.
    pub default_region: Option<String>,
    /// `NODE_NAME`: this node, whose region label is the last resort for the region.
    pub node_name: Option<String>,
    /// `--allowed-endpoint-host`: the hosts a SecretProviderClass's endpoint parameters may name.
    pub allowed_endpoints: EndpointAllowlist,
    /// `--max-objects-per-mount`: the most files the `jsonKeys` objects and bulk descriptors of
    /// one mount may give, and the largest `maxObjects` accepted.
    pub max_objects_per_mount: usize,
    /// `--allowed-assume-role`: the roles a SecretProviderClass's `assumeRoleArn` may name.
    pub allowed_assume_roles: RoleAllowlist,
}

/// One `Mount` request in domain terms.
#[derive(Debug, Clone)]
pub struct MountInput {
    pub attributes: String,
    pub secrets: String,
    pub target_path: String,
    pub permission: String,
    /// What the driver says the pod holds (v1.5 only): a hint, never relied on.
    pub current_versions: Vec<FileVersion>,
}

/// What happened to the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Written into the target path; these paths changed, with this many bytes.
    Written { changed: Vec<String>, bytes: u64 },
    /// The target path already held exactly these files: nothing was written.
    Unchanged,
    /// Returned to the driver (driver-writes mode).
    Returned,
}

/// A successful mount.
#[derive(Debug)]
pub struct MountOutput {
    pub versions: Vec<FileVersion>,
    /// The files, only in driver-writes mode.
    pub files: Vec<OutFile>,
    pub delivery: Delivery,
    /// How many objects, for logs.
    pub objects: usize,
}

/// A failed mount. Every variant has one stable [`ErrorCode`]; none carries a value or token.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{mount}: {source}")]
    Params { mount: String, source: ParamError },
    #[error("{mount}: {message}")]
    Region { mount: String, message: String },
    #[error("{mount}: {source}")]
    Endpoint { mount: String, source: EndpointRefused },
    #[error("{mount}: {source}")]
    AssumeRoleRefused { mount: String, source: RoleRefused },
    #[error("{mount}: {source}")]
    Identity { mount: String, source: Box<IdentityError> },
    #[error("{first}{more}")]
    Fetch { first: Box<FetchError>, more: String },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl MountError {
    /// The object a fetch or jmesPath failure is about, if any.
    pub fn object(&self) -> Option<&str> {
        match self {
            MountError::Fetch { first, .. } => Some(&first.object),
            MountError::Render(e) => Some(&e.object),
            _ => None,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            MountError::Params { source, .. } => source.code(),
            MountError::Region { .. } | MountError::Endpoint { .. } | MountError::AssumeRoleRefused { .. } => {
                ErrorCode::InvalidParameters
            }
            MountError::Identity { source, .. } => source.code(),
            MountError::Fetch { first, .. } => first.code,
            MountError::Render(e) if e.is_json() => ErrorCode::JmesPathFailed,
            MountError::Render(_) => ErrorCode::InvalidParameters,
            MountError::Write(e) => e.code(),
            MountError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Serves mounts.
#[derive(Debug)]
pub struct Mounter {
    config: MountConfig,
    fetcher: Fetcher,
    credentials: CredentialSource,
    /// `assumeRoleArn`: chained roles, cached per (pod identity, role, external id).
    assumer: RoleAssumer,
    k8s: Arc<K8s>,
    targets: Targets,
    locks: TargetLocks,
    /// The sets written into each target, to decide an unchanged re-sync without reading back.
    known: Arc<KnownSets>,
    /// The `objects` texts recently parsed (most of a re-sync's CPU otherwise).
    memo: ObjectsMemo,
    /// `--rotation-events`: announces re-syncs that swapped in a changed set.
    events: Option<Arc<RotationEvents>>,
}

impl Mounter {
    pub fn new(config: MountConfig, fetcher: Fetcher, credentials: CredentialSource, k8s: Arc<K8s>) -> Self {
        let targets = Targets::new(config.kubelet_path.clone());
        let (locks, known, memo) = (TargetLocks::default(), Arc::default(), ObjectsMemo::default());
        let assumer = RoleAssumer::new(fetcher.aws().clone());
        Mounter { config, fetcher, credentials, assumer, k8s, targets, locks, known, memo, events: None }
    }

    /// With `--rotation-events`: a `SecretRotated` event on the pod after each re-sync that
    /// swapped in a changed set.
    pub fn with_rotation_events(mut self, events: RotationEvents) -> Self {
        self.events = Some(Arc::new(events));
        self
    }

    /// The fetcher (its cache and AWS call counts).
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub fn config(&self) -> &MountConfig {
        &self.config
    }

    /// `resync` when the pod already holds files (versions the v1.5 driver reports, a set this
    /// process wrote there, or else a `..data` set in the target), else `first`. The target is
    /// looked into only once the target check accepted it: a path outside the kubelet's pods
    /// directory (or through a symlink) is never probed, and its mount is a `first`.
    pub fn kind(&self, input: &MountInput) -> &'static str {
        if !input.current_versions.is_empty() {
            return "resync";
        }
        let Ok(Target { path: target, .. }) = self.targets.check(&input.target_path) else { return "first" };
        let has_set = self.known.knows(&target) || std::fs::symlink_metadata(target.join("..data")).is_ok();
        if has_set { "resync" } else { "first" }
    }

    /// Runs one mount of `kind` (what [`Mounter::kind`] said of `input`, looked up once per
    /// mount by the caller, which also labels its span and metrics with it). On any error
    /// nothing is written.
    pub async fn mount(&self, input: MountInput, kind: &'static str) -> Result<MountOutput, MountError> {
        let priority = match kind {
            // Driver v1.5's rotation reconciler says what the pod holds and re-syncs a node's pods
            // one after another: a re-sync waiting for the budget holds up the rest.
            "resync" if !input.current_versions.is_empty() => Priority::ResyncInTurn,
            "resync" => Priority::Resync,
            _ => Priority::First,
        };
        let parsed = params::parse_mount_request_with(&self.memo, &input.attributes, &input.secrets, &input.permission);
        let params = match parsed {
            Ok(params) => {
                let spc = params.spc_name.as_deref().unwrap_or_default();
                record_who(&params.pod.namespace, &params.pod.name, spc);
                params
            }
            Err(source) => {
                let who = RawWho::read(&input.attributes);
                record_who(&who.namespace, &who.pod, &who.spc);
                return Err(MountError::Params { mount: who.mount_name(), source });
            }
        };
        let target = self.target(&input.target_path)?;
        let region = self.region(&params).await?;
        check_arn_regions(&params, &region)?;
        self.check_max_objects(&params)?;
        if params.failover_region.as_deref() == Some(region.as_str()) {
            return Err(region_error(&params, format!("failoverRegion {region} must differ from the region")));
        }
        let endpoints = self.admit_endpoints(&params)?;
        self.config
            .allowed_assume_roles
            .admit(params.assume_role.as_ref())
            .map_err(|source| MountError::AssumeRoleRefused { mount: params.describe(), source })?;
        let proven = self.credentials(&params, &region, &endpoints).await?;
        let pod = format!("{}/{}", params.pod.namespace, params.pod.name);
        let scope = Scope::new(&proven.credentials, &proven.identity, Route::new(&region, &endpoints.primary), &pod);
        let fetched = self.fetch(&params, &scope, &endpoints, priority).await?;
        let rendered = render::render(&fetched, self.config.max_objects_per_mount)?;
        let resync = priority != Priority::First;
        let delivery = self.deliver(target, &rendered.files).await?;
        if let Some(events) = &self.events {
            self.announce(events, &params, &input, &rendered, &delivery, resync);
        }
        let files = if delivery == Delivery::Returned { rendered.files } else { Vec::new() };
        Ok(MountOutput { versions: rendered.versions, files, delivery, objects: params.objects.len() })
    }

    /// Every `maxObjects` within `--max-objects-per-mount`, checked before any AWS call.
    fn check_max_objects(&self, params: &MountParams) -> Result<(), MountError> {
        let ceiling = self.config.max_objects_per_mount;
        match params.objects.iter().find(|o| o.max_objects_set.is_some_and(|max| max > ceiling)) {
            Some(o) => Err(MountError::Params {
                mount: params.describe(),
                source: ParamError::Object {
                    index: o.index,
                    name: Some(o.name.clone()),
                    field: "maxObjects".into(),
                    detail: format!("{} is above this provider's --max-objects-per-mount {ceiling}", o.max_objects()),
                },
            }),
            None => Ok(()),
        }
    }

    /// The checked target path, or `None` in driver-writes mode (the driver checks and writes).
    fn target(&self, target: &str) -> Result<Option<Target>, MountError> {
        if self.config.driver_writes {
            return Ok(None);
        }
        Ok(Some(self.targets.check(target)?))
    }

    /// The SecretProviderClass `region`, else the provider's `AWS_REGION`, else this node's
    /// `topology.kubernetes.io/region` label.
    async fn region(&self, params: &MountParams) -> Result<String, MountError> {
        if let Some(region) = params.region.clone().or_else(|| self.config.default_region.clone()) {
            return Ok(region);
        }
        let Some(node) = &self.config.node_name else {
            return Err(region_error(params, "no region: set the region parameter, AWS_REGION on the provider, or NODE_NAME so the node's topology.kubernetes.io/region label is used".into()));
        };
        match self.k8s.node_region(node).await {
            Ok(Some(region)) => Ok(region),
            Ok(None) => Err(region_error(
                params,
                format!("no region: node {node} has no topology.kubernetes.io/region label; set the region parameter"),
            )),
            Err(e) => {
                Err(region_error(params, format!("no region parameter, and the region of node {node} is unknown: {e}")))
            }
        }
    }

    /// The SecretProviderClass's endpoint parameters, admitted by `--allowed-endpoint-host`
    /// before anything (STS included) could send the pod's token there.
    fn admit_endpoints(&self, params: &MountParams) -> Result<SpcEndpoints, MountError> {
        let admitted = self
            .config
            .allowed_endpoints
            .admit(&params.endpoints)
            .map_err(|source| MountError::Endpoint { mount: params.describe(), source })?;
        if admitted != SpcEndpoints::default() {
            tracing::debug!(mount = %params.describe(), endpoints = ?admitted, "SecretProviderClass endpoints admitted");
        }
        Ok(admitted)
    }

    /// The credentials to read with, and the identity they prove (the cache scope): the pod's
    /// own, or with `assumeRoleArn` the role's, assumed with the pod's own.
    async fn credentials(
        &self,
        params: &MountParams,
        region: &str,
        endpoints: &SpcEndpoints,
    ) -> Result<Proven, MountError> {
        let mut routes = vec![Route::new(region, &endpoints.primary)];
        routes.extend(params.failover_region.as_deref().map(|r| Route::new(r, &endpoints.failover)));
        let failed = |source| MountError::Identity { mount: params.describe(), source: Box::new(source) };
        let own = self.credentials.prove(params, &routes).await.map_err(failed)?;
        match &params.assume_role {
            Some(assume) => self.assumer.assume(params, assume, own, &routes).await.map_err(failed),
            None => Ok(own),
        }
    }

    /// Reads every object in the primary region (the scope's route); objects that failed
    /// transiently are read again in the failover region (and only those, and only then). Each
    /// value is paired with its object by the item it answers.
    async fn fetch<'p>(
        &self,
        params: &'p MountParams,
        scope: &Scope<'_>,
        endpoints: &SpcEndpoints,
        priority: Priority,
    ) -> Result<Vec<(&'p ObjectSpec, Got)>, MountError> {
        let ceiling = self.config.max_objects_per_mount;
        let items: Vec<ReadItem> = params.objects.iter().map(|o| primary_item(o, ceiling)).collect();
        let answers = self.fetcher.fetch(scope, items, priority).await;
        let region = scope.route.region;
        let mut results: Vec<(&ObjectSpec, ReadResult)> =
            params.objects.iter().map(|o| (o, answers.get(&primary_item(o, ceiling), region))).collect();
        if let Some(failover_region) = &params.failover_region {
            let failover = scope.along(Route::new(failover_region, &endpoints.failover));
            self.fail_over(&failover, &mut results, priority).await;
        }
        collect(results)?.into_iter().map(|(o, f)| got(o, f).map(|g| (o, g))).collect()
    }

    /// Bulk descriptors have no failover: only single objects are read again.
    async fn fail_over(&self, failover: &Scope<'_>, results: &mut [(&ObjectSpec, ReadResult)], priority: Priority) {
        let failover_region = failover.route.region;
        let ceiling = self.config.max_objects_per_mount;
        let retry: Vec<usize> = (0..results.len())
            .filter(|&i| results[i].0.bulk.is_none() && matches!(&results[i].1, Err(e) if e.code.is_transient()))
            .collect();
        if retry.is_empty() {
            return;
        }
        tracing::warn!(
            objects = retry.len(),
            region = failover_region,
            "primary region failed transiently; reading from the failover region"
        );
        let items: Vec<ReadItem> = retry.iter().map(|&i| failover_item(results[i].0, ceiling)).collect();
        let second = self.fetcher.fetch(failover, items, priority).await;
        for i in retry {
            let (object, primary) = &mut results[i];
            let first = primary.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
            *primary = second.get(&failover_item(object, ceiling), failover_region).map_err(|mut e| {
                e.reason = format!("{}; the primary region failed first: {first}", e.reason);
                e
            });
        }
    }

    async fn deliver(&self, target: Option<Target>, files: &[OutFile]) -> Result<Delivery, MountError> {
        let Some(Target { path: target, stamp }) = target else { return Ok(Delivery::Returned) };
        let lock = self.locks.get(&target);
        let guard = lock.lock().await;
        // An unchanged re-sync of a set this process wrote: decided from the stamp the target
        // check took (else one readlink and one listing), cheap enough not to leave the runtime
        // thread.
        let outcome = if self.known.unchanged_at(&target, stamp, files) {
            WriteOutcome::Unchanged
        } else {
            let (owned, path, known) = (files.to_vec(), target.clone(), self.known.clone());
            tokio::task::spawn_blocking(move || write::write_known(&path, &owned, &known))
                .await
                .map_err(|e| MountError::Internal(format!("the write task failed: {e}")))??
        };
        drop(guard);
        self.locks.release(&target);
        Ok(match outcome {
            WriteOutcome::Unchanged => Delivery::Unchanged,
            WriteOutcome::Written { changed } => {
                let bytes = files.iter().filter(|f| changed.contains(&f.path)).map(|f| f.contents.len() as u64).sum();
                Delivery::Written { changed, bytes }
            }
        })
    }
}

impl Mounter {
    /// Announces the objects whose files this re-sync changed (the files written, or in
    /// driver-writes mode the versions that differ from what the driver says the pod holds),
    /// only for a pod whose validated name and UID match the target path. Never waits.
    fn announce(
        &self,
        events: &RotationEvents,
        params: &MountParams,
        input: &MountInput,
        rendered: &render::Rendered,
        delivery: &Delivery,
        resync: bool,
    ) {
        let changed = |file: &str, version: &str| match delivery {
            Delivery::Written { changed, .. } => resync && changed.iter().any(|c| c == file),
            Delivery::Returned => {
                !input.current_versions.is_empty()
                    && !input.current_versions.iter().any(|held| held.id == file && held.version == version)
            }
            Delivery::Unchanged => false,
        };
        let mut objects: Vec<(String, String)> = Vec::new();
        for (file, object) in rendered.sources() {
            let pair = (object.to_string(), file.version.clone());
            if changed(&file.id, &file.version) && !objects.contains(&pair) {
                objects.push(pair);
            }
        }
        if objects.is_empty() {
            return;
        }
        let Some(volume) = self.pod_of_target(params, &input.target_path) else {
            tracing::debug!("no rotation event: the pod's name and UID do not match the target path");
            return;
        };
        let pod = &params.pod;
        let (namespace, name, uid) = (pod.namespace.clone(), pod.name.clone(), pod.uid.clone());
        events.announce(Rotation { namespace, pod: name, uid, volume, objects });
    }

    /// The volume of `target` (`<kubelet>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount`)
    /// when the pod's (validated) name, namespace and UID are given and the UID is the target
    /// path's; `None` when they do not match.
    fn pod_of_target(&self, params: &MountParams, target: &str) -> Option<Option<String>> {
        let pod = &params.pod;
        if pod.name.is_empty() || pod.namespace.is_empty() || pod.uid.is_empty() {
            return None;
        }
        let pods = self.config.kubelet_path.join("pods");
        let relative = Path::new(target).strip_prefix(&pods).ok()?;
        let parts: Vec<&str> = relative.iter().filter_map(|c| c.to_str()).collect();
        match parts.as_slice() {
            [uid, "volumes", _, volume, ..] if *uid == pod.uid => Some(Some(volume.to_string())),
            [uid, ..] if *uid == pod.uid => Some(None),
            _ => None,
        }
    }
}

/// What to read for `object`; a bulk descriptor lists at most its `maxObjects`, never more
/// than `ceiling` (`--max-objects-per-mount`).
fn primary_item(object: &ObjectSpec, ceiling: usize) -> ReadItem {
    let listing = (object.bulk.clone()).map(|bulk| Listing { bulk, max: object.max_objects().min(ceiling) });
    ReadItem {
        name: object.name.clone(),
        object_type: object.object_type,
        version_id: object.version_id.clone(),
        version_label: object.version_label.clone(),
        listing,
    }
}

fn failover_item(object: &ObjectSpec, ceiling: usize) -> ReadItem {
    match &object.failover {
        Some(f) => ReadItem {
            name: f.name.clone(),
            object_type: object.object_type,
            version_id: f.version_id.clone(),
            version_label: f.version_label.clone(),
            listing: None,
        },
        None => primary_item(object, ceiling),
    }
}

/// What was read for `object`: its value, or the items its listing found.
fn got(object: &ObjectSpec, fetched: Fetched) -> Result<Got, MountError> {
    if object.bulk.is_none() {
        return Ok(Got::One(fetched));
    }
    Listed::unpack(&fetched).map(Got::Many).ok_or_else(|| {
        MountError::Internal(format!("the listing of objects[{}] is not in its framed form", object.index))
    })
}

/// All values, each beside what it answers, or the most telling failure: a permanent one before
/// a transient one (a retry cannot fix a mount in which anything failed permanently).
fn collect<T>(results: Vec<(T, ReadResult)>) -> Result<Vec<(T, Fetched)>, MountError> {
    let mut errors: Vec<FetchError> = results.iter().filter_map(|(_, r)| r.as_ref().err().cloned()).collect();
    if errors.is_empty() {
        return Ok(results.into_iter().filter_map(|(t, r)| r.ok().map(|f| (t, f))).collect());
    }
    errors.sort_by_key(|e| e.code.is_transient());
    let first = errors.remove(0);
    let more = match errors.len() {
        0 => String::new(),
        n => {
            let names: Vec<String> = errors.iter().map(|e| format!("{:?}", e.object)).collect();
            format!(" (and {n} more failed: {})", names.join(", "))
        }
    };
    Err(MountError::Fetch { first: Box::new(first), more })
}

fn region_error(params: &MountParams, message: String) -> MountError {
    MountError::Region { mount: params.describe(), message }
}

/// Every ARN objectName must be in the mount's region, as the Go provider requires.
fn check_arn_regions(params: &MountParams, region: &str) -> Result<(), MountError> {
    for object in params.objects.iter() {
        if let Some(arn_region) = object.arn_region.as_deref().filter(|r| *r != region) {
            let message = format!(
                "objects[{}] ({:?}): ARN region {arn_region} must match region {region}",
                object.index, object.name
            );
            return Err(region_error(params, message));
        }
    }
    Ok(())
}

/// Records who mounts in the current (`mount`) span: every log line of the mount carries it.
fn record_who(namespace: &str, pod: &str, spc: &str) {
    let span = tracing::Span::current();
    span.record("namespace", namespace);
    span.record("pod", pod);
    span.record("spc", spc);
}

/// Who mounts, from raw attributes that could not be parsed as a whole (empty where missing):
/// read once, for the span and for the error.
struct RawWho {
    namespace: String,
    spc: String,
    pod: String,
}

impl RawWho {
    fn read(attributes: &str) -> Self {
        let parsed: Option<HashMap<String, serde_json::Value>> = serde_json::from_str(attributes).ok();
        let get = |k: &str| parsed.as_ref().and_then(|m| m.get(k)).and_then(|v| v.as_str()).unwrap_or("").to_string();
        RawWho {
            namespace: get("csi.storage.k8s.io/pod.namespace"),
            spc: get("secretProviderClass"),
            pod: get("csi.storage.k8s.io/pod.name"),
        }
    }

    /// Names the mount in its error.
    fn mount_name(&self) -> String {
        let RawWho { namespace: ns, spc, pod } = self;
        match (spc.is_empty(), pod.is_empty()) {
            (false, _) => format!("SecretProviderClass {ns}/{spc}"),
            (true, false) => format!("pod {ns}/{pod}"),
            (true, true) => "mount request".to_string(),
        }
    }
}

/// One lock per target path, so a driver retry never races a write still in progress.
#[derive(Debug, Default)]
struct TargetLocks(Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>);

impl TargetLocks {
    fn get(&self, target: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = crate::sync::lock(&self.0);
        map.entry(target.to_path_buf()).or_default().clone()
    }

    fn release(&self, target: &Path) {
        let mut map = crate::sync::lock(&self.0);
        if map.get(target).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;

    fn failed(object: &str, code: ErrorCode) -> ((), ReadResult) {
        (
            (),
            Err(FetchError {
                code,
                object: object.into(),
                store: "secretsmanager",
                region: "us-west-2".into(),
                aws_code: None,
                reason: "r".into(),
            }),
        )
    }

    #[test]
    fn a_permanent_failure_wins_over_a_transient_one() {
        let ok = ((), Ok(Fetched { value: SecretBytes::from("v"), version: "1".into() }));
        let err =
            collect(vec![ok, failed("a", ErrorCode::Throttled), failed("b", ErrorCode::NotFound)]).expect_err("fails");
        assert_eq!(err.code(), ErrorCode::NotFound);
        assert_eq!(err.to_string(), r#"object "b" (secretsmanager, us-west-2): r (and 1 more failed: "a")"#);
    }

    #[test]
    fn unparsable_attributes_still_name_the_mount() {
        assert_eq!(
            RawWho::read(r#"{"secretProviderClass":"spc","csi.storage.k8s.io/pod.namespace":"ns"}"#).mount_name(),
            "SecretProviderClass ns/spc"
        );
        assert_eq!(RawWho::read("not json").mount_name(), "mount request");
    }

    fn mounter(kubelet_path: &Path) -> Mounter {
        use crate::aws::{AwsCredentials, AwsReader, AwsSettings, CallCounter, Endpoints, UserAgentTag};
        let settings = AwsSettings {
            endpoints: Endpoints::default(),
            user_agent: UserAgentTag::new(""),
            operation_timeout: std::time::Duration::from_secs(1),
            calls: CallCounter::new(),
            network: crate::net::NetworkSettings::default(),
            audit: false,
            batch_get_secret_value: true,
            clock: crate::clock::system(),
        };
        let cache = crate::cache::ValueCache::new(std::time::Duration::from_secs(60), 10, 1 << 20);
        let config = MountConfig {
            kubelet_path: kubelet_path.to_path_buf(),
            driver_writes: false,
            default_region: Some("us-west-2".into()),
            node_name: None,
            allowed_endpoints: EndpointAllowlist::default(),
            max_objects_per_mount: 1000,
            allowed_assume_roles: RoleAllowlist::default(),
        };
        let credentials = CredentialSource::Local(AwsCredentials::fixed("AKID", "secret", None, "test"));
        let k8s = Arc::new(K8s::new(5, 10, std::time::Duration::from_secs(30), crate::clock::system()));
        let budget = crate::budget::Budget::new(Default::default(), crate::clock::system(), 1);
        Mounter::new(config, Fetcher::new(AwsReader::new(settings), cache, budget), credentials, k8s)
    }

    fn input(target: &Path) -> MountInput {
        let (attributes, secrets, permission) = ("{}".into(), "null".into(), "420".into());
        MountInput {
            attributes,
            secrets,
            target_path: target.display().to_string(),
            permission,
            current_versions: vec![],
        }
    }

    /// Regression: the kind was decided from a `..data` entry of the raw target path, before
    /// the target check accepted it, so any path the driver named was probed.
    #[tokio::test]
    async fn the_kind_looks_into_a_target_only_after_the_target_check_accepted_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubelet = dir.path().join("kubelet");
        let inside = kubelet.join("pods/uid-1/volumes/kubernetes.io~csi/secrets/mount");
        let outside = dir.path().join("elsewhere");
        for target in [&inside, &outside] {
            std::fs::create_dir_all(target).expect("mkdir");
            std::os::unix::fs::symlink("..2026_01_01", target.join("..data")).expect("symlink");
        }
        let mounter = mounter(&kubelet);
        assert_eq!(mounter.kind(&input(&outside)), "first", "a refused target is not looked into");
        assert_eq!(mounter.kind(&input(&inside)), "resync", "an accepted target holding a set");
        std::fs::remove_file(inside.join("..data")).expect("rm");
        assert_eq!(mounter.kind(&input(&inside)), "first");
    }
}
