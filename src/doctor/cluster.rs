//! `doctor`'s node and cluster checks: the socket directory and the socket (something answers
//! `Version`), the Kubernetes API (reachable, `get serviceaccounts` allowed, `get nodes` when the
//! region comes from the node's label), the CSIDriver's token audiences and `requiresRepublish`,
//! and where the region comes from.

use super::DoctorIdentity;
use super::report::{Check, Status};
use crate::k8s::{Access, K8s, K8sError, REGION_LABEL};
use std::path::Path;
use std::time::Duration;

/// The token audience IRSA needs.
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";
/// The token audience EKS Pod Identity needs.
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";

/// Something answers `Version` on the provider socket.
pub async fn socket(path: &Path, timeout: Duration) -> Check {
    let (name, target) = ("provider socket", path.display().to_string());
    match crate::client::version(path, timeout).await {
        Ok(v) => Check::pass(name, target, format!("answers Version: {} {}", v.runtime_name, v.runtime_version)),
        Err(reason) => Check::fail(
            name,
            target,
            reason,
            "start the provider on this node with the same --provider-volume and --provider-name (the driver dials this path); with two providers, check each with its --provider-name",
        ),
    }
}

/// The driver's CSIDriver: it exists, requests a token for each audience the identities need,
/// and has `requiresRepublish` (without it, rotation never reaches mounted files).
pub async fn csi_driver(k8s: &K8s, name: &str, identity: DoctorIdentity) -> Vec<Check> {
    let wanted: Vec<(&str, &str)> = match identity {
        DoctorIdentity::Irsa => vec![(IRSA_AUDIENCE, "IRSA")],
        DoctorIdentity::PodIdentity => vec![(POD_IDENTITY_AUDIENCE, "Pod Identity")],
        DoctorIdentity::Both => vec![(IRSA_AUDIENCE, "IRSA"), (POD_IDENTITY_AUDIENCE, "Pod Identity")],
    };
    let driver = match k8s.csi_driver(name).await {
        Ok(Some(driver)) => driver,
        Ok(None) => {
            let hint = "install the Secrets Store CSI driver (its chart creates the CSIDriver), or pass --csi-driver with its name";
            return vec![Check::fail("csidriver", name, "not found", hint)];
        }
        Err(e) => return vec![Check::skip("csidriver", name, format!("not read: {e}"))],
    };
    let mut rows = Vec::new();
    for (audience, who) in wanted {
        let row = format!("token audience {audience}");
        rows.push(if driver.audiences.iter().any(|a| a == audience) {
            Check::pass(row, name, format!("requested ({who})"))
        } else {
            let hint = format!(
                "add it to the driver's tokenRequests (its chart: --set 'tokenRequests[N].audience={audience}'); without it every {who} mount fails with TokenMissing"
            );
            Check::fail(row, name, format!("not requested; the CSIDriver asks for {:?}", driver.audiences), hint)
        });
    }
    rows.push(if driver.requires_republish {
        Check::pass("requiresRepublish", name, "true: mounted volumes are re-synced")
    } else {
        Check::new(Status::Warn, "requiresRepublish", name, "false: rotated values never reach mounted files")
            .with_hint("install the driver with enableSecretRotation=true (its chart sets requiresRepublish)")
    });
    rows
}

/// `get nodes` is allowed: the region comes from the node's label.
pub async fn node_access(k8s: &K8s, node: &str) -> Check {
    let (name, target) = ("get nodes", node.to_string());
    match k8s.can_get_nodes(node).await {
        Ok(Access::Allowed(how)) => Check::pass(name, target, how),
        Ok(Access::Denied(why)) => Check::fail(
            name,
            target,
            format!("denied: {why}"),
            "bind a ClusterRole with get on nodes to the provider's ServiceAccount (the chart's does), or set AWS_REGION",
        ),
        Err(e) => Check::skip(name, target, format!("not attempted: {e}")),
    }
}

/// The socket directory exists, is a directory and is writable (a file is created and removed).
pub fn socket_dir(dir: &Path) -> Check {
    let name = "socket directory";
    let target = dir.display().to_string();
    let hint = "mount the driver's provider directory (hostPath /var/run/secrets-store-csi-providers, or /etc/kubernetes/secrets-store-csi-providers on some distributions) and pass it with --provider-volume";
    match std::fs::metadata(dir) {
        Err(e) => return Check::fail(name, target, format!("does not exist: {e}"), hint),
        Ok(meta) if !meta.is_dir() => return Check::fail(name, target, "is not a directory", hint),
        Ok(_) => {}
    }
    let probe = dir.join(format!(".csi-provider-aws-doctor-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Check::pass(name, target, "exists and is writable")
        }
        Err(e) => Check::fail(
            name,
            target,
            format!("not writable: {e}"),
            "run as a user that may create the socket there (the DaemonSet runs as root), and check the mount is not read-only",
        ),
    }
}

/// Two rows: the API answers, and `get serviceaccounts` is allowed.
pub async fn kubernetes(k8s: &K8s) -> Vec<Check> {
    let rbac = "get serviceaccounts";
    match k8s.can_get_service_accounts().await {
        Ok(access) => {
            let reachable = Check::pass("kubernetes api", "-", "reachable");
            let row = match access {
                Access::Allowed(how) => Check::pass(rbac, "all namespaces", how),
                Access::Denied(why) => Check::fail(
                    rbac,
                    "all namespaces",
                    format!("denied: {why}"),
                    "bind a ClusterRole with get on serviceaccounts (and nodes) to the provider's ServiceAccount",
                ),
            };
            vec![reachable, row]
        }
        Err(e) => vec![api_failure(&e), Check::skip(rbac, "all namespaces", "not attempted: the API is not reachable")],
    }
}

fn api_failure(err: &K8sError) -> Check {
    let hint = match err {
        K8sError::NoClient(_) => "run in the cluster (in-cluster service account) or set KUBECONFIG",
        K8sError::Api { .. } => {
            "check that the API server is reachable from the node (its address, NetworkPolicy, proxy settings)"
        }
        K8sError::Invalid { .. } => "fix the object named above",
    };
    Check::fail("kubernetes api", "-", err.to_string(), hint)
}

/// The node whose label gives the region: `NODE_NAME`, when neither `--region` nor
/// `AWS_REGION` (`AWS_DEFAULT_REGION`) gives one.
pub fn region_node(flag: Option<&str>, env: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let given = |v: Option<String>| v.is_some_and(|r| !r.is_empty());
    if flag.is_some_and(|r| !r.is_empty()) || given(env("AWS_REGION")) || given(env("AWS_DEFAULT_REGION")) {
        return None;
    }
    env("NODE_NAME").filter(|n| !n.is_empty())
}

/// Where the region comes from: `--region`, else `AWS_REGION` (`AWS_DEFAULT_REGION`), else the
/// node's label (`NODE_NAME` and the API).
pub async fn region(flag: Option<&str>, env: &impl Fn(&str) -> Option<String>, k8s: &K8s) -> (Check, Option<String>) {
    let name = "region";
    if let Some(region) = flag.filter(|r| !r.is_empty()) {
        return (Check::pass(name, region, "from --region"), Some(region.to_string()));
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(region) = env(var).filter(|r| !r.is_empty()) {
            return (Check::pass(name, &region, format!("from {var}")), Some(region));
        }
    }
    let hint = "set AWS_REGION on the provider, or NODE_NAME (downward API spec.nodeName) so the node's topology.kubernetes.io/region label is used";
    let Some(node) = env("NODE_NAME").filter(|n| !n.is_empty()) else {
        return (Check::fail(name, "-", "no --region, AWS_REGION or NODE_NAME", hint), None);
    };
    match k8s.node_region(&node).await {
        Ok(Some(region)) => {
            (Check::pass(name, &region, format!("from node {node} label {REGION_LABEL}")), Some(region))
        }
        Ok(None) => (Check::fail(name, "-", format!("node {node} has no {REGION_LABEL} label"), hint), None),
        Err(e) => (Check::fail(name, "-", format!("node {node}: {e}"), hint), None),
    }
}
