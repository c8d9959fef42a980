//! Pods as the driver presents them (attributes, token, target) and their `Mount` calls.

use crate::process::tail;
use crate::set::OBJECTS;
use crate::support::kube::KubeApi;
use crate::support::world::{IRSA_AUDIENCE, b64url, pod_attrs, role, tokens};
use crate::support::{Provider, mount_request, pod_uid};
use csi_provider_aws::pb::MountRequest;
use csi_provider_aws::pb::csi_driver_provider_client::CsiDriverProviderClient;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

pub type Client = CsiDriverProviderClient<Channel>;

/// One pod volume: its own token, its service account, its target.
#[derive(Clone)]
pub struct Pod {
    pub name: String,
    pub attributes: String,
    pub target: PathBuf,
}

impl Pod {
    /// Pod `i` of service account `app-<i % accounts>`, its target under `kubelet`.
    pub fn new(kubelet: &Kubelet, i: usize, accounts: usize) -> Pod {
        let name = format!("pod-{i:04}");
        let sa = format!("app-{}", i % accounts);
        let token = token(&name, &sa);
        let attributes = pod_attrs(&name, &sa, OBJECTS, Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[]);
        Pod { target: kubelet.target(&pod_uid(&name)), name, attributes }
    }

    /// The request as driver v1.6 sends it, with kubelet's 2-minute deadline.
    pub fn request(&self) -> tonic::Request<MountRequest> {
        let mut request = tonic::Request::new(mount_request(&self.attributes, &self.target));
        request.set_timeout(Duration::from_secs(120));
        request
    }
}

/// A kubelet root on tmpfs (`/dev/shm`, where there is one), as target paths are on a node:
/// hundreds of sets are written and removed far faster there than on a disk.
pub struct Kubelet(tempfile::TempDir);

impl Kubelet {
    pub fn new() -> Kubelet {
        let shm = Path::new("/dev/shm");
        let builder = tempfile::Builder::new().prefix("csi-load-").clone();
        let dir = if shm.is_dir() { builder.tempdir_in(shm) } else { builder.tempdir() };
        Kubelet(dir.expect("kubelet temp dir"))
    }

    /// The `--kubelet-path` flag for it.
    pub fn flag(&self) -> [String; 2] {
        ["--kubelet-path".to_string(), self.0.path().display().to_string()]
    }

    /// Creates `<kubelet>/pods/<pod_uid>/volumes/kubernetes.io~csi/secrets/mount`.
    pub fn target(&self, pod_uid: &str) -> PathBuf {
        let target = self.0.path().join("pods").join(pod_uid).join("volumes/kubernetes.io~csi/secrets/mount");
        std::fs::create_dir_all(&target).expect("create target dir");
        target
    }
}

/// The service accounts `app-0` … `app-<n-1>`, each annotated with its own role.
pub fn service_accounts(kube: &KubeApi, n: usize) {
    for i in 0..n {
        kube.service_account("default", &format!("app-{i}"), Some(role(&format!("app-{i}")).as_str()));
    }
}

/// A projected token for `pod` of `sa`, shaped as kubelet's (unique per pod; moto's STS does
/// not verify it).
pub fn token(pod: &str, sa: &str) -> String {
    let header = b64url(br#"{"alg":"RS256","kid":"load"}"#);
    let payload = serde_json::json!({
        "aud": [IRSA_AUDIENCE],
        "exp": 1_893_456_000u64,
        "iat": 1_700_000_000u64,
        "iss": "https://oidc.eks.us-west-2.amazonaws.com/id/LOAD",
        "kubernetes.io": {
            "namespace": "default",
            "pod": {"name": pod, "uid": pod_uid(pod)},
            "serviceaccount": {"name": sa, "uid": format!("{sa}-uid")},
        },
        "sub": format!("system:serviceaccount:default:{sa}"),
    });
    let signature = b64url(format!("signature-of-{pod}").as_bytes());
    format!("{header}.{}.{signature}", b64url(payload.to_string().as_bytes()))
}

/// One `Mount`: its latency, or why it failed.
pub async fn mount(mut client: Client, pod: &Pod) -> Result<Duration, String> {
    let started = Instant::now();
    let response = client.mount(pod.request()).await;
    let elapsed = started.elapsed();
    let response = response.map_err(|s| format!("{}: {:?}: {}", pod.name, s.code(), s.message()))?.into_inner();
    match response.error {
        Some(e) if !e.code.is_empty() => Err(format!("{}: error code {}", pod.name, e.code)),
        _ if response.object_version.is_empty() => Err(format!("{}: no object versions", pod.name)),
        _ => Ok(elapsed),
    }
}

/// Every pod mounts at once (one task each, one connection); the wall time and each result.
pub async fn all_at_once(client: &Client, pods: &[Pod]) -> (Duration, Vec<Result<Duration, String>>) {
    let started = Instant::now();
    let tasks: Vec<_> = pods
        .iter()
        .map(|pod| {
            let (client, pod) = (client.clone(), pod.clone());
            tokio::spawn(async move { mount(client, &pod).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap_or_else(|e| Err(format!("mount task: {e}"))));
    }
    (started.elapsed(), results)
}

/// The latencies, sorted; panics with the first failures when any mount failed.
pub fn latencies(what: &str, results: Vec<Result<Duration, String>>, provider: &Provider) -> Vec<Duration> {
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let failed: Vec<String> = failed.into_iter().filter_map(Result::err).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} mount(s) failed; first: {:#?}\nprovider log (tail):\n{}",
        failed.len(),
        &failed[..failed.len().min(5)],
        tail(&provider.logs(), 40)
    );
    let mut ok: Vec<Duration> = ok.into_iter().filter_map(Result::ok).collect();
    ok.sort();
    ok
}
