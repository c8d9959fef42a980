//! Flags of `doctor`: the serve flags that shape networking, the region(s) to check, and the
//! socket directory.

use super::{Dur, EndpointFlag, LogArgs, NetworkArgs};
use clap::Args;
use std::path::PathBuf;

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
    pub endpoints: Vec<EndpointFlag>,
    /// The region to check; else `AWS_REGION`, else the node's `topology.kubernetes.io/region`
    /// label (`NODE_NAME` and the Kubernetes API).
    #[arg(long)]
    pub region: Option<String>,
    /// A second region to check (a SecretProviderClass's `failoverRegion`).
    #[arg(long)]
    pub failover_region: Option<String>,
    /// The socket directory the provider serves in.
    #[arg(long, env = "CSI_PROVIDER_AWS_PROVIDER_VOLUME", default_value = "/var/run/secrets-store-csi-providers")]
    pub provider_volume: PathBuf,
    /// The provider name whose socket is checked: `<provider-volume>/<provider-name>.sock`
    /// (a second provider installed beside the first has its own name).
    #[arg(long, env = "CSI_PROVIDER_AWS_PROVIDER_NAME", default_value = "aws", value_parser = super::parse_provider_name)]
    pub provider_name: String,
    /// Which identities the SecretProviderClasses use: the CSIDriver must request a token for
    /// each (`sts.amazonaws.com` for IRSA, `pods.eks.amazonaws.com` for Pod Identity).
    #[arg(long, value_enum, default_value = "both")]
    pub identity: DoctorIdentity,
    /// The CSIDriver object of the Secrets Store CSI driver.
    #[arg(long, default_value = "secrets-store.csi.k8s.io")]
    pub csi_driver: String,
    /// Bound on each network step (DNS, connect, handshake, request).
    #[arg(long, default_value = "5s")]
    pub timeout: Dur,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub log: LogArgs,
}
