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

pub use report::Report;
pub(crate) use report::{Check, Status};

use crate::aws::EndpointFlag;
use crate::aws::Endpoints;
use crate::k8s::K8s;
use crate::net::NetworkArgs;
use crate::net::NetworkSettings;
use crate::read::Service;
use crate::telemetry::LogArgs;
use crate::units::Dur;
use clap::Args;
use futures::future::join_all;
use std::path::PathBuf;
use std::time::Duration;

/// The identities whose token audiences `doctor` expects on the CSIDriver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DoctorIdentity {
    /// IRSA only (`sts.amazonaws.com`).
    Irsa,
    /// EKS Pod Identity only (`pods.eks.amazonaws.com`).
    PodIdentity,
    /// Both.
    Both,
}

/// Flags of `doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Endpoint override, `SERVICE[@REGION]=URL`, as for serving. Repeatable.
    #[arg(long = "endpoint", env = "CSI_PROVIDER_AWS_ENDPOINT", value_delimiter = ',')]
    pub(crate) endpoints: Vec<EndpointFlag>,
    /// The region to check; else `AWS_REGION`, else the node's `topology.kubernetes.io/region`
    /// label (`NODE_NAME` and the Kubernetes API).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// A second region to check (a SecretProviderClass's `failoverRegion`).
    #[arg(long)]
    pub(crate) failover_region: Option<String>,
    /// The socket directory the provider serves in.
    #[arg(long, env = "CSI_PROVIDER_AWS_PROVIDER_VOLUME", default_value = "/var/run/secrets-store-csi-providers")]
    pub(crate) provider_volume: PathBuf,
    /// The provider name whose socket is checked: `<provider-volume>/<provider-name>.sock`
    /// (a second provider installed beside the first has its own name).
    #[arg(long, env = "CSI_PROVIDER_AWS_PROVIDER_NAME", default_value = "aws", value_parser = crate::units::parse_provider_name)]
    pub(crate) provider_name: String,
    /// Which identities the SecretProviderClasses use: the CSIDriver must request a token for
    /// each (`sts.amazonaws.com` for IRSA, `pods.eks.amazonaws.com` for Pod Identity).
    #[arg(long, value_enum, default_value = "both")]
    pub(crate) identity: DoctorIdentity,
    /// The CSIDriver object of the Secrets Store CSI driver.
    #[arg(long, default_value = "secrets-store.csi.k8s.io")]
    pub(crate) csi_driver: String,
    /// Bound on each network step (DNS, connect, handshake, request).
    #[arg(long, default_value = "5s")]
    pub(crate) timeout: Dur,
    #[command(flatten)]
    pub(crate) network: NetworkArgs,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

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
    let k8s = K8s::new(5, 10, Duration::from_secs(30), crate::clock::system());
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
