//! `doctor`'s node checks: the socket directory, the Kubernetes API (reachable, `get
//! serviceaccounts` allowed) and where the region comes from.

use super::report::Check;
use crate::k8s::{Access, K8s, K8sError, REGION_LABEL};
use std::path::Path;

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
