//! `csi-provider-aws doctor` (`cli.md`): checks what a node needs to serve mounts (for `sts`,
//! `secretsmanager` and `ssm` in the region and the failover region: DNS with each address
//! marked private or public, TCP, TLS, an AWS-shaped answer to an unsigned request; the socket
//! directory and that the socket answers `Version`; the Kubernetes API, `get serviceaccounts`
//! and, when the region comes from the node's label, `get nodes`; the CSIDriver's token
//! audiences and `requiresRepublish`; the region source) and prints one row per check with a
//! hint on failure. Exit 0 when all pass, 1 when any fails (2, bad usage,
//! is clap's). AWS SDK types stay in `aws`, `kube` types in `k8s`.

mod cluster;
mod endpoint;
mod report;
mod wire;

pub use report::{Check, Report, Status};

use crate::aws::{Endpoints, Service};
use crate::cli::DoctorArgs;
use crate::k8s::K8s;
use crate::net::NetworkSettings;
use futures::future::join_all;
use std::time::Duration;

/// Runs every check with flags `args` and an injected environment.
pub async fn run(args: &DoctorArgs, env: impl Fn(&str) -> Option<String>) -> Report {
    let mut report = Report::default();
    let net = match NetworkSettings::new(&args.network, &env) {
        Ok(net) => net,
        Err(e) => {
            report.push(Check::fail("proxy", e.variable, e.reason.clone(), "fix or unset the proxy variable"));
            NetworkSettings::new(&args.network, |_| None).unwrap_or_default()
        }
    };
    report.push(cluster::socket_dir(&args.provider_volume));
    let socket = args.provider_volume.join(format!("{}.sock", args.provider_name));
    report.push(cluster::socket(&socket, args.timeout.0).await);
    let k8s = K8s::new(5, 10, Duration::from_secs(30));
    let api = cluster::kubernetes(&k8s).await;
    let reachable = api.first().is_some_and(|row| row.status == Status::Pass);
    report.extend(api);
    if reachable {
        report.extend(cluster::csi_driver(&k8s, &args.csi_driver, args.identity).await);
    }
    let (region_row, region) = cluster::region(args.region.as_deref(), &env, &k8s).await;
    report.push(region_row);
    if let Some(node) = cluster::region_node(args.region.as_deref(), &env).filter(|_| reachable) {
        report.push(cluster::node_access(&k8s, &node).await);
    }
    let endpoints = Endpoints::new(&args.endpoints, &env);
    let regions: Vec<&str> = region.as_deref().into_iter().chain(args.failover_region.as_deref()).collect();
    for region in regions {
        report.extend(check_region(&net, &endpoints, region, args.timeout.0).await);
    }
    report
}

/// Every service in `region`, concurrently, rows in a fixed order.
async fn check_region(net: &NetworkSettings, endpoints: &Endpoints, region: &str, timeout: Duration) -> Vec<Check> {
    let targets: Vec<endpoint::Target<'_>> =
        Service::ALL.into_iter().map(|service| endpoint::Target { net, service, region, timeout }).collect();
    join_all(targets.iter().map(|t| t.check(endpoints))).await.into_iter().flatten().collect()
}
