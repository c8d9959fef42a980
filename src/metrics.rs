//! The Prometheus registry (prefix `csi_provider_aws_`): mounts by outcome and error code, mount
//! duration (first mount vs re-sync), AWS calls by service/operation/outcome with latency, STS
//! exchanges, cache hits/misses/evictions/entries, objects rotated, bytes written, in-flight
//! mounts, build info. Secret names appear in label values only with `--metrics-secret-names`.

use crate::cache::CacheStats;
use crate::read::{CallKey, CallObserver};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

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
    pub bytes_written: Counter,
    pub in_flight: Gauge,
    /// Failures by object name: only with `--metrics-secret-names`.
    pub object_errors: Option<Family<ObjectLabels, Counter>>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    /// Registers everything, including the value cache's counters.
    pub fn new(cache: &CacheStats, secret_names: bool) -> Self {
        let mut registry = Registry::with_prefix("csi_provider_aws");
        let m = Metrics {
            mounts: Family::default(),
            mount_duration: Family::new_with_constructor(latency_histogram),
            aws_calls: Family::default(),
            aws_call_duration: Family::new_with_constructor(latency_histogram),
            sts_exchanges: Family::default(),
            objects_rotated: Counter::default(),
            bytes_written: Counter::default(),
            in_flight: Gauge::default(),
            object_errors: secret_names.then(Family::default),
            registry: Registry::default(),
        };
        m.register_all(&mut registry, cache);
        Metrics { registry, ..m }
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
        r.register("objects_rotated", "Files whose content changed on a re-sync", self.objects_rotated.clone());
        r.register("written_bytes", "Bytes of files written into target paths", self.bytes_written.clone());
        r.register("mounts_in_flight", "Mounts being served", self.in_flight.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family_with_the_prefix() {
        let cache = CacheStats::default();
        let metrics = Metrics::new(&cache, false);
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
            "csi_provider_aws_mount_duration_seconds_bucket",
            "csi_provider_aws_build_info{version=",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(!text.contains("object_errors"), "no object names unless opted in");
    }
}
