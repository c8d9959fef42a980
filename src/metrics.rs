//! The Prometheus registry (prefix `csi_provider_aws_`): mounts by outcome and error code, mount
//! duration (first mount vs re-sync), AWS calls by service/operation/outcome with latency, STS
//! exchanges, cache hits/misses/evictions/entries/bytes and their bounds, objects rotated, bytes
//! written, in-flight mounts, readiness, build info; and the standard process metrics, unprefixed
//! ([`process`]). Every family is zero at start for its known label values, so `absent()` alerts
//! and dashboards see 0, not "no data". Secret names appear in label values only with
//! `--metrics-secret-names`, and then in at most [`MAX_OBJECT_SERIES`] series.

mod process;

use crate::budget::{Api, ApiLabels, BudgetStats};
use crate::cache::CacheStats;
use crate::codes::ErrorCode;
use crate::events::EventObserver;
use crate::read::{CallKey, CallObserver};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Series of `object_errors_total` (`--metrics-secret-names`) at most; failures of further
/// objects are counted under the object `(other)` (one more series per error code).
pub const MAX_OBJECT_SERIES: usize = 1000;

/// The object label of failures past [`MAX_OBJECT_SERIES`].
const OTHER_OBJECT: &str = "(other)";

/// The outcomes of `rotation_events_total`, zero at start.
const ROTATION_EVENT_OUTCOMES: [&str; 4] = ["sent", "failed", "rate_limited", "overloaded"];

/// The mount kinds the `kind` label takes.
const MOUNT_KINDS: [&str; 2] = ["first", "resync"];

/// The AWS operations the provider calls, zero at start (outcome `success`).
const OPERATIONS: [(&str, &str); 6] = [
    ("secretsmanager", "GetSecretValue"),
    ("secretsmanager", "BatchGetSecretValue"),
    ("ssm", "GetParameters"),
    ("ssm", "GetParametersByPath"),
    ("sts", "AssumeRoleWithWebIdentity"),
    ("sts", "AssumeRole"),
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MountLabels {
    /// `success` or `error`.
    pub outcome: String,
    /// The stable error code, empty on success.
    pub code: String,
    /// `first` or `resync`.
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: String,
    pub operation: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub service: String,
    pub operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub code: String,
    pub object: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    runtime: String,
}

/// Every metric the provider exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub mounts: Family<MountLabels, Counter>,
    pub mount_duration: Family<KindLabels, Histogram>,
    pub aws_calls: Family<CallLabels, Counter>,
    pub aws_call_duration: Family<OperationLabels, Histogram>,
    pub sts_exchanges: Family<OutcomeLabels, Counter>,
    pub objects_rotated: Counter,
    /// `--rotation-events`: events by outcome (`sent`, `failed`, `rate_limited`, `overloaded`).
    pub rotation_events: Family<OutcomeLabels, Counter>,
    pub bytes_written: Counter,
    pub in_flight: Gauge,
    /// 1 while `/readyz` answers 200, else 0 (set by the admin server).
    pub ready: Gauge,
    /// Failures by object name: only with `--metrics-secret-names`.
    pub object_errors: Option<Family<ObjectLabels, Counter>>,
    /// Series in `object_errors`.
    object_series: AtomicUsize,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    /// Registers everything, including the value cache's counters.
    pub fn new(cache: &CacheStats, budget: &BudgetStats, secret_names: bool) -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            mounts: Family::default(),
            mount_duration: Family::new_with_constructor(latency_histogram),
            aws_calls: Family::default(),
            aws_call_duration: Family::new_with_constructor(latency_histogram),
            sts_exchanges: Family::default(),
            objects_rotated: Counter::default(),
            rotation_events: Family::default(),
            bytes_written: Counter::default(),
            in_flight: Gauge::default(),
            ready: Gauge::default(),
            object_errors: secret_names.then(Family::default),
            object_series: AtomicUsize::new(0),
            registry: Registry::default(),
        };
        m.register_all(registry.sub_registry_with_prefix("csi_provider_aws"), cache);
        register_budget(registry.sub_registry_with_prefix("csi_provider_aws"), budget);
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        m.zero_known_series();
        Metrics { registry, ..m }
    }

    /// Creates every series whose label values are known in advance, at 0.
    fn zero_known_series(&self) {
        for kind in MOUNT_KINDS {
            let codes = ErrorCode::ALL.iter().map(|c| Some(c.as_str()));
            for code in std::iter::once(None).chain(codes) {
                let outcome = if code.is_some() { "error" } else { "success" };
                let labels =
                    MountLabels { outcome: outcome.into(), code: code.unwrap_or_default().into(), kind: kind.into() };
                drop(self.mounts.get_or_create(&labels));
            }
            drop(self.mount_duration.get_or_create(&KindLabels { kind: kind.into() }));
        }
        for (service, operation) in OPERATIONS {
            let labels = CallLabels { service: service.into(), operation: operation.into(), outcome: "success".into() };
            drop(self.aws_calls.get_or_create(&labels));
        }
        drop(self.sts_exchanges.get_or_create(&OutcomeLabels { outcome: "success".into() }));
        for outcome in ROTATION_EVENT_OUTCOMES {
            drop(self.rotation_events.get_or_create(&OutcomeLabels { outcome: outcome.into() }));
        }
    }

    fn register_all(&self, r: &mut Registry, cache: &CacheStats) {
        r.register(
            "mount_requests",
            "Mount requests by outcome, error code and kind (first or resync)",
            self.mounts.clone(),
        );
        r.register("mount_duration_seconds", "Mount duration by kind", self.mount_duration.clone());
        r.register("aws_calls", "AWS call attempts by service, operation and outcome", self.aws_calls.clone());
        r.register("aws_call_duration_seconds", "AWS call attempt latency", self.aws_call_duration.clone());
        r.register("sts_exchanges", "STS AssumeRoleWithWebIdentity exchanges by outcome", self.sts_exchanges.clone());
        r.register("cache_hits", "Values served from the cache", cache.hits.clone());
        r.register("cache_misses", "Values not in the cache (or too old)", cache.misses.clone());
        r.register("cache_evictions", "Values evicted (expired or over the bound)", cache.evictions.clone());
        r.register("cache_entries", "Values held in the cache", cache.entries.clone());
        r.register("cache_bytes", "Bytes the cached values count against the bound", cache.bytes.clone());
        r.register("cache_max_entries", "The bound on cached values (--cache-max-entries)", cache.max_entries.clone());
        r.register("cache_max_bytes", "The bound on cached bytes (--cache-max-bytes)", cache.max_bytes.clone());
        r.register("objects_rotated", "Files whose content changed on a re-sync", self.objects_rotated.clone());
        r.register(
            "rotation_events",
            "SecretRotated events (--rotation-events) by outcome: sent, failed, or dropped (rate_limited: over the per-node rate; overloaded: too many being sent)",
            self.rotation_events.clone(),
        );
        r.register("written_bytes", "Bytes of files written into target paths", self.bytes_written.clone());
        r.register("mounts_in_flight", "Mounts being served", self.in_flight.clone());
        r.register("ready", "1 when ready (/readyz answers 200), else 0", self.ready.clone());
        if let Some(family) = &self.object_errors {
            r.register("object_errors", "Failed objects by error code and object name", family.clone());
        }
        let build = BuildLabels { version: crate::RUNTIME_VERSION.into(), runtime: crate::RUNTIME_NAME.into() };
        r.register("build", "Build information", Info::new(build));
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        match prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            Ok(()) => out,
            Err(_) => String::from("# encoding failed\n"),
        }
    }

    /// Records one finished mount.
    pub fn mount_done(&self, kind: &str, code: Option<&str>, seconds: f64) {
        let outcome = if code.is_some() { "error" } else { "success" };
        let labels = MountLabels { outcome: outcome.into(), code: code.unwrap_or_default().into(), kind: kind.into() };
        self.mounts.get_or_create(&labels).inc();
        self.mount_duration.get_or_create(&KindLabels { kind: kind.into() }).observe(seconds);
    }

    /// Counts a failed object by name (only with `--metrics-secret-names`); past
    /// [`MAX_OBJECT_SERIES`] series, new names count as `(other)`.
    pub fn object_failed(&self, code: &str, object: &str) {
        let Some(family) = &self.object_errors else { return };
        let mut labels = ObjectLabels { code: code.into(), object: object.into() };
        if family.get(&labels).is_none() {
            let taken = self.object_series.fetch_add(1, Ordering::Relaxed);
            if taken >= MAX_OBJECT_SERIES {
                self.object_series.fetch_sub(1, Ordering::Relaxed);
                labels.object = OTHER_OBJECT.into();
            }
        }
        family.get_or_create(&labels).inc();
    }
}

impl EventObserver for Metrics {
    fn event(&self, outcome: &'static str) {
        self.rotation_events.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
    }
}

impl CallObserver for Metrics {
    fn observe(&self, key: &CallKey, seconds: f64) {
        let labels =
            CallLabels { service: key.service.clone(), operation: key.operation.clone(), outcome: key.outcome.clone() };
        self.aws_calls.get_or_create(&labels).inc();
        let op = OperationLabels { service: key.service.clone(), operation: key.operation.clone() };
        self.aws_call_duration.get_or_create(&op).observe(seconds);
        if key.operation == "AssumeRoleWithWebIdentity" {
            self.sts_exchanges.get_or_create(&OutcomeLabels { outcome: key.outcome.clone() }).inc();
        }
    }
}

/// The budget's counters, every API's series created at 0.
fn register_budget(r: &mut Registry, budget: &BudgetStats) {
    for api in Api::ALL {
        let labels = ApiLabels { api: api.as_str().into() };
        drop(budget.waits.get_or_create(&labels));
        drop(budget.deferred.get_or_create(&labels));
    }
    r.register(
        "budget_waits",
        "First mounts that waited for this node's AWS budget (--aws-budget), by API",
        budget.waits.clone(),
    );
    r.register(
        "budget_deferred",
        "Re-sync reads deferred by the AWS budget or by backoff after throttling, by API",
        budget.deferred.clone(),
    );
    r.register(
        "stale_served",
        "Cached values served past their TTL while AWS or the budget throttled (--stale-if-throttled)",
        budget.stale_served.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family_with_the_prefix() {
        let cache = CacheStats::default();
        let metrics = Metrics::new(&cache, &BudgetStats::default(), false);
        metrics.mount_done("first", None, 0.01);
        metrics.mount_done("resync", Some("NotFound"), 0.02);
        let key =
            CallKey { service: "sts".into(), operation: "AssumeRoleWithWebIdentity".into(), outcome: "success".into() };
        metrics.observe(&key, 0.003);
        cache.hits.inc();
        let text = metrics.encode();
        for needle in [
            r#"csi_provider_aws_mount_requests_total{outcome="success",code="",kind="first"} 1"#,
            r#"csi_provider_aws_mount_requests_total{outcome="error",code="NotFound",kind="resync"} 1"#,
            r#"csi_provider_aws_aws_calls_total{service="sts",operation="AssumeRoleWithWebIdentity",outcome="success"} 1"#,
            r#"csi_provider_aws_sts_exchanges_total{outcome="success"} 1"#,
            "csi_provider_aws_cache_hits_total 1",
            r#"csi_provider_aws_rotation_events_total{outcome="rate_limited"} 0"#,
            r#"csi_provider_aws_aws_calls_total{service="sts",operation="AssumeRole",outcome="success"} 0"#,
            "csi_provider_aws_mount_duration_seconds_bucket",
            "csi_provider_aws_build_info{version=",
            r#"csi_provider_aws_budget_deferred_total{api="GetParameters"} 0"#,
            "csi_provider_aws_stale_served_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(!text.contains("object_errors"), "no object names unless opted in");
        assert!(text.contains("\nprocess_resident_memory_bytes ") || !cfg!(target_os = "linux"), "{text}");
    }

    #[test]
    fn object_names_are_bounded_in_series() {
        let cache = CacheStats::default();
        let metrics = Metrics::new(&cache, &BudgetStats::default(), true);
        for i in 0..MAX_OBJECT_SERIES + 50 {
            metrics.object_failed("NotFound", &format!("secret-{i}"));
        }
        metrics.object_failed("NotFound", "secret-0");
        let text = metrics.encode();
        let series = text.lines().filter(|l| l.starts_with("csi_provider_aws_object_errors_total{")).count();
        assert_eq!(series, MAX_OBJECT_SERIES + 1, "the bound plus (other)");
        assert!(
            text.contains(r#"object_errors_total{code="NotFound",object="secret-0"} 2"#),
            "known names still count"
        );
        assert!(text.contains(r#"object_errors_total{code="NotFound",object="(other)"} 50"#), "{text}");
    }
}
