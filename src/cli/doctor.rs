//! Flags of `doctor`: the serve flags that shape networking, the region(s) to check, and the
//! socket directory.

use super::{Dur, EndpointFlag, LogArgs, NetworkArgs};
use clap::Args;
use std::path::PathBuf;

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
    /// Bound on each network step (DNS, connect, handshake, request).
    #[arg(long, default_value = "5s")]
    pub timeout: Dur,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub log: LogArgs,
}
