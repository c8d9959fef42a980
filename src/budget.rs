//! The AWS call budget: this node's share of the account-wide, per-Region quotas. Every read the
//! fetcher sends to AWS is first planned as calls ([`PlannedCall`]: which API, which items) and
//! admitted here, keyed by the quota's own scope: the account and Region ([`scope_of`]) and the
//! API. Adding an API (`GetParametersByPath`, filtered `BatchGetSecretValue`) is adding it to
//! [`Api`] and to the reader's plan; the budget then covers it.
//!
//! Three rules, in this order:
//! - **Adaptive backoff.** After AWS throttled an API in a scope, re-syncs of that scope and API
//!   are deferred for a backoff that doubles on each throttle (1 s up to `backoff_max`, jittered
//!   to 50–100 %) and ends at the first success. First mounts are not deferred by it.
//! - **Re-syncs spend only what is there.** With `--aws-budget API=RATE`, each (scope, API) has a
//!   token bucket refilled at RATE per second, holding at most `max(1, RATE)` tokens. A re-sync
//!   whose calls the buckets cannot pay for now is deferred (the pod keeps its files; the driver
//!   asks again at its next poll), so re-syncs never queue in front of a first mount.
//! - **First mounts go first, with a bounded wait.** A first mount always takes its tokens, into
//!   debt if need be (the debt is repaid by re-syncs, which wait until the bucket is positive), and
//!   waits for the debt it adds at the budget's rate, never longer than `max_wait`: past that it
//!   goes anyway. A pod is never held back more than `max_wait` by the budget.

use crate::clock::SharedClock;
use crate::read::ReadItem;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The AWS read APIs the budget knows (the quotas are per API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Api {
    GetParameters,
    GetParametersByPath,
    GetSecretValue,
    BatchGetSecretValue,
}

impl Api {
    /// Every API, in a stable order.
    pub const ALL: [Api; 4] =
        [Api::GetParameters, Api::GetParametersByPath, Api::GetSecretValue, Api::BatchGetSecretValue];

    /// The AWS operation name (flags, metrics, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Api::GetParameters => "GetParameters",
            Api::GetParametersByPath => "GetParametersByPath",
            Api::GetSecretValue => "GetSecretValue",
            Api::BatchGetSecretValue => "BatchGetSecretValue",
        }
    }

    /// The API an operation name names.
    pub fn from_name(name: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// One AWS call a read will make: the API and the items it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCall {
    pub api: Api,
    pub items: Vec<ReadItem>,
}

/// Who is asking: a pod that cannot start yet, or a pod that already holds its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    First,
    Resync,
}

/// What the budget decided for a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Call now.
    Go,
    /// Call after this wait (a first mount, never longer than `max_wait`).
    Wait(Duration),
    /// Do not call: the budget (or a backoff) has nothing for a re-sync of this API now.
    Defer(Api),
}

/// `--aws-budget API=RATE`: calls per second this node may make to one API in one account and
/// Region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetRate {
    pub api: Api,
    pub per_second: f64,
}

/// A malformed `--aws-budget` value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BudgetRateError {
    #[error("expected API=RATE (for example GetParameters=0.5), got {0:?}")]
    Shape(String),
    #[error("unknown API {0:?}: one of GetParameters, GetParametersByPath, GetSecretValue, BatchGetSecretValue")]
    Api(String),
    #[error("RATE must be a number of calls per second above 0 and at most 100000, got {0:?}")]
    Rate(String),
}

impl FromStr for BudgetRate {
    type Err = BudgetRateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (api, rate) = s.split_once('=').ok_or_else(|| BudgetRateError::Shape(s.to_string()))?;
        let api = Api::from_name(api.trim()).ok_or_else(|| BudgetRateError::Api(api.to_string()))?;
        let per_second: f64 = rate.trim().parse().map_err(|_| BudgetRateError::Rate(rate.to_string()))?;
        if !(per_second > 0.0 && per_second <= 100_000.0) {
            return Err(BudgetRateError::Rate(rate.to_string()));
        }
        Ok(BudgetRate { api, per_second })
    }
}

impl fmt::Display for BudgetRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.api.as_str(), self.per_second)
    }
}

/// The budget's settings.
#[derive(Debug, Clone)]
pub struct BudgetConfig {
    /// Per-API rates (the last one given for an API wins); an API without one is not limited.
    pub rates: Vec<BudgetRate>,
    /// The longest a first mount waits for the budget.
    pub max_wait: Duration,
    /// The longest backoff after throttling.
    pub backoff_max: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig { rates: Vec::new(), max_wait: Duration::from_secs(2), backoff_max: Duration::from_secs(60) }
    }
}

impl BudgetConfig {
    fn rate(&self, api: Api) -> Option<f64> {
        self.rates.iter().rev().find(|r| r.api == api).map(|r| r.per_second)
    }
}

/// The scope a quota counts in: the account (from a role ARN; else the identity itself) and the
/// Region.
pub fn scope_of(identity: &str, region: &str) -> String {
    let account = identity
        .strip_prefix("arn:")
        .and_then(|rest| rest.split(':').nth(3))
        .filter(|a| !a.is_empty())
        .unwrap_or(identity);
    format!("{account}/{region}")
}

/// The budget's counters, by API (a bounded label set).
#[derive(Debug, Clone, Default)]
pub struct BudgetStats {
    /// First mounts that waited for the budget.
    pub waits: Family<ApiLabels, Counter>,
    /// Re-sync reads deferred (budget spent, or backing off after throttling).
    pub deferred: Family<ApiLabels, Counter>,
    /// Cached values served past their TTL because AWS (or the budget) throttled.
    pub stale_served: Counter,
}

/// An API label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: String,
}

fn labels(api: Api) -> ApiLabels {
    ApiLabels { api: api.as_str().to_string() }
}

/// One (scope, API) lane: its tokens and its backoff.
#[derive(Debug, Clone)]
struct Lane {
    tokens: f64,
    at: Instant,
    backoff: Duration,
    backoff_until: Option<Instant>,
}

/// The most lanes kept: scopes are accounts × Regions a node reads, few; past this, idle lanes
/// are dropped.
const MAX_LANES: usize = 4096;

/// The budget of one node.
#[derive(Debug)]
pub struct Budget {
    config: BudgetConfig,
    clock: SharedClock,
    lanes: Mutex<HashMap<(String, Api), Lane>>,
    jitter: Mutex<crate::jitter::Jitter>,
    pub stats: BudgetStats,
}

impl Budget {
    /// A budget on `clock`, with jitter seeded from `seed`.
    pub fn new(config: BudgetConfig, clock: SharedClock, seed: u64) -> Self {
        let jitter = Mutex::new(crate::jitter::Jitter::new(seed));
        Budget { config, clock, lanes: Mutex::default(), jitter, stats: BudgetStats::default() }
    }

    /// The longest a first mount waits for the budget.
    pub fn max_wait(&self) -> Duration {
        self.config.max_wait
    }

    /// Admits (or not) the calls of one read in `scope`.
    pub fn admit(&self, scope: &str, calls: &[PlannedCall], priority: Priority) -> Decision {
        let now = self.clock.now();
        let mut lanes = crate::sync::lock(&self.lanes);
        self.trim(&mut lanes, now);
        let mut need: Vec<(Api, f64)> = Vec::new();
        for call in calls {
            match need.iter_mut().find(|(a, _)| *a == call.api) {
                Some((_, n)) => *n += 1.0,
                None => need.push((call.api, 1.0)),
            }
        }
        if priority == Priority::Resync {
            for &(api, n) in &need {
                let lane = self.lane(&mut lanes, scope, api, now);
                let backing_off = lane.backoff_until.is_some_and(|until| now < until);
                let short = self.config.rate(api).is_some() && lane.tokens < n.min(self.capacity(api));
                if backing_off || short {
                    self.stats.deferred.get_or_create(&labels(api)).inc();
                    return Decision::Defer(api);
                }
            }
        }
        let mut wait = Duration::ZERO;
        for &(api, n) in &need {
            let Some(rate) = self.config.rate(api) else { continue };
            let lane = self.lane(&mut lanes, scope, api, now);
            let deficit = (n - lane.tokens.max(0.0)).max(0.0);
            lane.tokens -= n;
            if priority == Priority::First && deficit > 0.0 {
                self.stats.waits.get_or_create(&labels(api)).inc();
                wait = wait.max(Duration::from_secs_f64((deficit / rate).min(self.config.max_wait.as_secs_f64())));
            }
        }
        if wait.is_zero() { Decision::Go } else { Decision::Wait(wait) }
    }

    /// AWS throttled `api` in `scope`: back off (doubling, jittered) and drop any tokens left.
    pub fn throttled(&self, scope: &str, api: Api) {
        let now = self.clock.now();
        let fraction = 0.5 + 0.5 * crate::sync::lock(&self.jitter).fraction();
        let mut lanes = crate::sync::lock(&self.lanes);
        let max = self.config.backoff_max;
        let lane = self.lane(&mut lanes, scope, api, now);
        lane.backoff = (lane.backoff * 2).clamp(Duration::from_secs(1), max);
        lane.backoff_until = Some(now + lane.backoff.mul_f64(fraction));
        lane.tokens = lane.tokens.min(0.0);
        tracing::warn!(scope, api = api.as_str(), backoff = ?lane.backoff, "AWS throttled; re-syncs of this API back off");
    }

    /// AWS answered `api` in `scope`: a backoff that has run its course ends.
    pub fn succeeded(&self, scope: &str, api: Api) {
        let now = self.clock.now();
        let mut lanes = crate::sync::lock(&self.lanes);
        if let Some(lane) = lanes.get_mut(&(scope.to_string(), api))
            && lane.backoff_until.is_some_and(|until| now >= until)
        {
            lane.backoff = Duration::ZERO;
            lane.backoff_until = None;
        }
    }

    /// The tokens a bucket holds at most.
    fn capacity(&self, api: Api) -> f64 {
        self.config.rate(api).map_or(f64::INFINITY, |r| r.max(1.0))
    }

    /// The lane of (`scope`, `api`), refilled up to now.
    fn lane<'m>(
        &self,
        lanes: &'m mut HashMap<(String, Api), Lane>,
        scope: &str,
        api: Api,
        now: Instant,
    ) -> &'m mut Lane {
        let capacity = self.capacity(api);
        let start = if capacity.is_finite() { capacity } else { 0.0 };
        let lane = lanes.entry((scope.to_string(), api)).or_insert(Lane {
            tokens: start,
            at: now,
            backoff: Duration::ZERO,
            backoff_until: None,
        });
        if let Some(rate) = self.config.rate(api) {
            let elapsed = now.saturating_duration_since(lane.at).as_secs_f64();
            lane.tokens = (lane.tokens + elapsed * rate).min(capacity);
        }
        lane.at = now;
        lane
    }

    /// Drops idle lanes (full, not backing off) when there are too many.
    fn trim(&self, lanes: &mut HashMap<(String, Api), Lane>, now: Instant) {
        if lanes.len() < MAX_LANES {
            return;
        }
        lanes.retain(|_, lane| lane.backoff_until.is_some_and(|until| now < until) || lane.tokens < 0.0);
        if lanes.len() >= MAX_LANES {
            lanes.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::params::ObjectType;

    fn call(api: Api) -> PlannedCall {
        let item =
            ReadItem { name: "p".into(), object_type: ObjectType::Parameter, version_id: None, version_label: None };
        PlannedCall { api, items: vec![item] }
    }

    fn budget(rate: f64, clock: &std::sync::Arc<ManualClock>) -> Budget {
        let config = BudgetConfig {
            rates: vec![BudgetRate { api: Api::GetParameters, per_second: rate }],
            ..BudgetConfig::default()
        };
        Budget::new(config, clock.clone(), 7)
    }

    #[test]
    fn rates_parse_and_bad_ones_are_refused() {
        let rate: BudgetRate = "GetParameters=0.25".parse().expect("valid");
        assert_eq!((rate.api, rate.per_second), (Api::GetParameters, 0.25));
        assert!(matches!("GetParameters".parse::<BudgetRate>(), Err(BudgetRateError::Shape(_))));
        assert!(matches!("GetParameter=1".parse::<BudgetRate>(), Err(BudgetRateError::Api(_))));
        for bad in ["GetParameters=0", "GetParameters=-1", "GetParameters=NaN", "GetParameters=inf", "GetParameters=x"]
        {
            assert!(matches!(bad.parse::<BudgetRate>(), Err(BudgetRateError::Rate(_))), "{bad}");
        }
    }

    #[test]
    fn the_scope_is_the_account_and_region() {
        assert_eq!(scope_of("arn:aws:iam::111122223333:role/app", "eu-west-1"), "111122223333/eu-west-1");
        assert_eq!(scope_of("local", "eu-west-1"), "local/eu-west-1");
    }

    #[test]
    fn resyncs_spend_only_what_is_there_and_first_mounts_go_ahead_with_a_bounded_wait() {
        let clock = ManualClock::new();
        let budget = budget(0.1, &clock);
        let gp = [call(Api::GetParameters)];
        assert_eq!(budget.admit("a/r", &gp, Priority::Resync), Decision::Go, "a full bucket pays");
        assert_eq!(budget.admit("a/r", &gp, Priority::Resync), Decision::Defer(Api::GetParameters));
        assert_eq!(budget.admit("b/r", &gp, Priority::Resync), Decision::Go, "another account has its own bucket");
        assert_eq!(
            budget.admit("a/r", &gp, Priority::First),
            Decision::Wait(Duration::from_secs(2)),
            "bounded by max_wait"
        );
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            budget.admit("a/r", &gp, Priority::Resync),
            Decision::Defer(Api::GetParameters),
            "the first mount's debt is repaid first"
        );
        clock.advance(Duration::from_secs(10));
        assert_eq!(budget.admit("a/r", &gp, Priority::Resync), Decision::Go);
        let other = [call(Api::GetSecretValue)];
        assert_eq!(budget.admit("a/r", &other, Priority::Resync), Decision::Go, "an API without a rate is not limited");
    }

    #[test]
    fn throttling_defers_resyncs_of_the_scope_until_the_backoff_ends() {
        let clock = ManualClock::new();
        let budget = Budget::new(BudgetConfig::default(), clock.clone(), 7);
        let gsv = [call(Api::GetSecretValue)];
        budget.throttled("a/r", Api::GetSecretValue);
        assert_eq!(budget.admit("a/r", &gsv, Priority::Resync), Decision::Defer(Api::GetSecretValue));
        assert_eq!(budget.admit("a/r", &gsv, Priority::First), Decision::Go, "first mounts are not deferred");
        clock.advance(Duration::from_secs(1));
        assert_eq!(budget.admit("a/r", &gsv, Priority::Resync), Decision::Go, "1 s backoff at most, jittered");
        budget.throttled("a/r", Api::GetSecretValue);
        budget.throttled("a/r", Api::GetSecretValue);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(
            budget.admit("a/r", &gsv, Priority::Resync),
            Decision::Defer(Api::GetSecretValue),
            "doubled to 4 s, at least 2 s"
        );
        clock.advance(Duration::from_secs(3));
        budget.succeeded("a/r", Api::GetSecretValue);
        assert_eq!(budget.admit("a/r", &gsv, Priority::Resync), Decision::Go);
        budget.throttled("a/r", Api::GetSecretValue);
        clock.advance(Duration::from_secs(1));
        assert_eq!(budget.admit("a/r", &gsv, Priority::Resync), Decision::Go, "a success reset the backoff to 1 s");
    }
}
