//! The Go provider's call pattern on the same inputs, computed: it keeps no cache, so every
//! mount and every re-sync of every pod calls `GetSecretValue` once per secret and
//! `GetParameters` once per batch of 10 parameters (`/work/shared/spec/compatibility.md`; the
//! provider's `secrets_manager_provider.go` and `ssm_provider.go`).

use super::FleetConfig;
use super::aws::Quotas;
use crate::budget::Api;

/// The Go pattern's figures for one API.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoFigures {
    /// Steady state: calls per second (every pod re-syncs once per poll).
    pub steady: f64,
    /// During the rollout: steady plus the new pods' first mounts and re-syncs.
    pub rollout_peak: f64,
    /// Calls per second past the quota in steady state (throttled, retried by the SDK).
    pub throttled_per_second: f64,
}

/// Calls one pod's mount (or re-sync) makes, per API.
pub fn calls_per_mount(config: &FleetConfig, api: Api) -> f64 {
    match api {
        Api::GetSecretValue => config.secrets_per_spc as f64,
        Api::GetParameters => config.params_per_spc.div_ceil(10) as f64,
        _ => 0.0,
    }
}

/// The Go pattern's figures for `api` at `nodes` nodes.
pub fn figures(config: &FleetConfig, nodes: usize, quotas: &Quotas, api: Api) -> GoFigures {
    let per_mount = calls_per_mount(config, api);
    let pods = (nodes * config.pods_per_node) as f64;
    let steady = pods * per_mount / config.poll.as_secs_f64();
    let rollout = config.rollout_replicas as f64 * per_mount / config.rollout_over.as_secs_f64();
    let rollout_peak = steady + rollout;
    GoFigures { steady, rollout_peak, throttled_per_second: (steady - quotas.of(api)).max(0.0) }
}

/// The fewest nodes at which the Go pattern's steady state exceeds a quota.
pub fn first_throttling_nodes(config: &FleetConfig, quotas: &Quotas) -> usize {
    [Api::GetParameters, Api::GetSecretValue]
        .into_iter()
        .filter(|api| calls_per_mount(config, *api) > 0.0)
        .map(|api| {
            let per_node = config.pods_per_node as f64 * calls_per_mount(config, api) / config.poll.as_secs_f64();
            (quotas.of(api) / per_node).floor() as usize + 1
        })
        .min()
        .unwrap_or(usize::MAX)
}
