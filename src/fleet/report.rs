//! What a fleet run measured: calls per API per second (peak, mean, throttled) in steady state
//! and during the rollout, cold-mount delays, the rotation delay, and the budget's counters.

use super::aws::Second;
use super::{FleetConfig, Timeline};
use crate::budget::{Api, ApiLabels, BudgetStats};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the tasks record while the fleet runs.
#[derive(Debug, Default)]
pub(super) struct Record {
    cold_warmup: Vec<Duration>,
    cold_steady: Vec<Duration>,
    cold_rollout: Vec<Duration>,
    rotation_at: Option<Duration>,
    rotation_pods: usize,
    rotated: usize,
    last_rotated: Option<Duration>,
    longest_pass: Duration,
}

impl Record {
    /// A first mount that took `delay`.
    pub(super) fn cold(&mut self, delay: Duration, rollout: bool, after_warmup: bool) {
        match (rollout, after_warmup) {
            (true, _) => self.cold_rollout.push(delay),
            (false, true) => self.cold_steady.push(delay),
            (false, false) => self.cold_warmup.push(delay),
        }
    }

    /// The rotation happened at `at`, with `pods` pods to reach.
    pub(super) fn rotation(&mut self, at: Duration, pods: usize) {
        self.rotation_at = Some(at);
        self.rotation_pods = pods;
    }

    /// A node's reconciler re-synced all its pods in one pass that took `took` (driver v1.5).
    pub(super) fn pass(&mut self, took: Duration) {
        self.longest_pass = self.longest_pass.max(took);
    }

    /// One more pod holds the rotated values.
    pub(super) fn rotated_pod(&mut self, at: Duration) {
        self.rotated += 1;
        self.last_rotated = Some(at);
    }
}

/// The measured windows, in whole seconds from the start.
#[derive(Debug, Clone, Copy)]
pub(super) struct Windows {
    warmup_end: u64,
    rollout: (u64, u64),
    end: u64,
}

impl Windows {
    pub(super) fn of(t: &Timeline, config: &FleetConfig) -> Self {
        let rollout_end = t.rollout + config.rollout_over + config.poll;
        Windows {
            warmup_end: t.warmup.as_secs(),
            rollout: (t.rollout.as_secs(), rollout_end.as_secs()),
            end: t.end.as_secs(),
        }
    }
}

/// Calls of one API in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ApiStats {
    /// The most calls in one second (answered and throttled).
    pub peak: u64,
    /// Calls per second on average.
    pub mean: f64,
    /// Calls AWS throttled.
    pub throttled: u64,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct FleetReport {
    pub nodes: usize,
    pub budget: bool,
    /// Steady state: from the start of a warm run (after the warm-up of a cold one) to its end,
    /// outside the rollout window.
    pub steady: BTreeMap<Api, ApiStats>,
    /// The rollout window: its 5 minutes and one poll interval after.
    pub rollout: BTreeMap<Api, ApiStats>,
    /// Calls throttled while the fleet's pods first mounted (the warm-up, not a target).
    pub warmup_throttled: u64,
    /// The rollout's first mounts: the longest and the 99th percentile delay.
    pub cold_rollout_max: Duration,
    pub cold_rollout_p99: Duration,
    /// Every first mount's longest delay (warm-up included).
    pub cold_max: Duration,
    /// A cold start of the whole fleet: how long until every pod had first mounted (`None`: some
    /// never did in the simulated time, or the run started warm), and how many had.
    pub cold_drain: Option<Duration>,
    pub cold_mounted: usize,
    /// From the rotation until every pod of the rotated app held it; `None`: some never did.
    pub rotation_delay: Option<Duration>,
    pub rotation_pods: usize,
    pub rotated_pods: usize,
    pub rotation_bound: Duration,
    pub refresh_floor: Duration,
    /// The longest pass of a node's reconciler over all its pods (driver v1.5's model; zero with
    /// per-pod polls). Longer than the poll, a node's next pass starts late.
    pub longest_pass: Duration,
    pub stale_served: u64,
    pub deferred: u64,
    pub waits: u64,
    pub simulated: Duration,
    pub wall: Duration,
}

impl FleetReport {
    /// Throttled calls of every API in steady state and in the rollout.
    pub fn throttled(&self) -> u64 {
        self.steady.values().chain(self.rollout.values()).map(|s| s.throttled).sum()
    }
}

fn window(seconds: &BTreeMap<(Api, u64), Second>, api: Api, keep: impl Fn(u64) -> bool, span: u64) -> ApiStats {
    let mut stats = ApiStats::default();
    let mut total = 0u64;
    for (_, s) in seconds.range((api, 0)..=(api, u64::MAX)).filter(|((_, t), _)| keep(*t)) {
        stats.peak = stats.peak.max(s.ok + s.throttled);
        stats.throttled += s.throttled;
        total += s.ok + s.throttled;
    }
    stats.mean = total as f64 / span.max(1) as f64;
    stats
}

fn p99(mut delays: Vec<Duration>) -> Duration {
    delays.sort();
    delays.get((delays.len() * 99 / 100).min(delays.len().saturating_sub(1))).copied().unwrap_or_default()
}

fn sum_family(stats: &[BudgetStats], pick: impl Fn(&BudgetStats) -> u64) -> u64 {
    stats.iter().map(pick).sum()
}

pub(super) fn build(
    config: &FleetConfig,
    seconds: &BTreeMap<(Api, u64), Second>,
    record: Record,
    budget: &[BudgetStats],
    w: Windows,
    wall: Duration,
) -> FleetReport {
    let in_rollout = |t: u64| t >= w.rollout.0 && t < w.rollout.1;
    let steady_span = (w.end - w.warmup_end).saturating_sub(w.rollout.1 - w.rollout.0);
    let apis = [Api::GetParameters, Api::BatchGetSecretValue, Api::GetSecretValue];
    let steady = apis
        .iter()
        .map(|&a| (a, window(seconds, a, |t| t >= w.warmup_end && t < w.end && !in_rollout(t), steady_span)))
        .collect();
    let rollout = apis.iter().map(|&a| (a, window(seconds, a, in_rollout, w.rollout.1 - w.rollout.0))).collect();
    let warmup_throttled = apis.iter().map(|&a| window(seconds, a, |t| t < w.warmup_end, 1).throttled).sum();
    let per_api = |s: &BudgetStats,
                   f: fn(
        &BudgetStats,
    ) -> &prometheus_client::metrics::family::Family<
        ApiLabels,
        prometheus_client::metrics::counter::Counter,
    >| {
        Api::ALL.iter().map(|a| f(s).get_or_create(&ApiLabels { api: a.as_str().into() }).get()).sum::<u64>()
    };
    let rotation_delay = match (record.rotation_at, record.last_rotated) {
        _ if record.rotated < record.rotation_pods => None,
        (Some(at), Some(last)) => Some(last.saturating_sub(at)),
        (Some(_), None) => Some(Duration::ZERO),
        _ => None,
    };
    let cold_mounted = record.cold_warmup.len();
    let cold_drain = (config.cold_start && cold_mounted == config.nodes * config.pods_per_node)
        .then(|| record.cold_warmup.iter().max().copied().unwrap_or_default());
    let all_cold = record.cold_warmup.iter().chain(&record.cold_steady).chain(&record.cold_rollout);
    FleetReport {
        nodes: config.nodes,
        budget: config.budget_headroom.is_some(),
        steady,
        rollout,
        warmup_throttled,
        cold_rollout_max: record.cold_rollout.iter().max().copied().unwrap_or_default(),
        cold_rollout_p99: p99(record.cold_rollout.clone()),
        cold_max: all_cold.max().copied().unwrap_or_default(),
        cold_drain,
        cold_mounted,
        rotation_delay,
        rotation_pods: record.rotation_pods,
        rotated_pods: record.rotated,
        rotation_bound: config.rotation_bound(),
        refresh_floor: config.refresh_floor(),
        longest_pass: record.longest_pass,
        stale_served: sum_family(budget, |s| s.stale_served.get()),
        deferred: sum_family(budget, |s| per_api(s, |s| &s.deferred)),
        waits: sum_family(budget, |s| per_api(s, |s| &s.waits)),
        simulated: Duration::from_secs(w.end),
        wall,
    }
}
