//! The tail (issue 16): repetitions of 50 concurrent clients spaced further apart than every
//! cache lifetime the provider's mounts depend on, for `--cache-ttl 0` and the default.
//!
//! One provider per cache setting, with `--service-account-cache-ttl` shortened to
//! [`SA_TTL_FLAG`] (the 30 s default scaled 1/10, as the value cache's TTL is) so a repetition
//! starts after every cached service-account lookup, and (with the default) every cached value,
//! has expired: exactly when the first mounts of a burst used to queue behind the Kubernetes
//! client's `--qps`. Every pod is its own client with its own token; the pods of a Deployment
//! share a service account: Deployments of 10 (5 service accounts) and of 1 (50, every pod its
//! own). A repetition: the 50 clients each make [`TAIL_MOUNTS`] sequential
//! `Mount` calls, then the same 50 clients each make as many `Version` calls (no work in the
//! provider: the gRPC floor at this concurrency, measured in the same repetition).
//!
//! Targets, ratios within one run (an absolute time on a shared machine says little):
//! - the median repetition's `Mount` p99 ≤ 1.25 × the median repetition's `Version` p99;
//! - the worst repetition's `Mount` p99 ≤ 2 × the median repetition's.

use super::{Client, OBJECTS, Pod, Rig, ms, verdict};
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::Instant;

/// Repetitions per cache setting (`TAIL_REPETITIONS` overrides; the targets need at least 8).
const REPETITIONS: usize = 8;
const MIN_REPETITIONS: usize = 8;
/// Concurrent clients (pods).
const CLIENTS: usize = 50;
/// Sequential calls per client per repetition.
const TAIL_MOUNTS: usize = 20;
/// The service-account cache lifetime for this benchmark (30 s scaled 1/10).
const SA_TTL_FLAG: &str = "3s";
const SA_TTL: Duration = Duration::from_secs(3);
/// The provider's default service-account cache lifetime.
const DEFAULT_SA_TTL: Duration = Duration::from_secs(30);
/// Targets.
const MEDIAN_RATIO_TARGET: f64 = 1.25;
const WORST_RATIO_TARGET: f64 = 2.0;

/// The flags that set the service-account cache lifetime, and that lifetime: [`SA_TTL_FLAG`],
/// or with `TAIL_SA_TTL=default` no flag (the provider's 30 s; also what a build from before
/// the flag accepts) and repetitions spaced past 30 s.
pub fn sa_ttl() -> (Vec<&'static str>, Duration) {
    match std::env::var("TAIL_SA_TTL").as_deref() {
        Ok("default") => (Vec::new(), DEFAULT_SA_TTL),
        _ => (vec!["--service-account-cache-ttl", SA_TTL_FLAG], SA_TTL),
    }
}

fn repetitions() -> usize {
    std::env::var("TAIL_REPETITIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(REPETITIONS)
}

/// One repetition: every sample's latency, and the Kubernetes requests and AWS calls made.
pub struct Repetition {
    mount: Vec<Duration>,
    version: Vec<Duration>,
    kube: u64,
    aws: u64,
    started: Duration,
    /// CPU spent while the Mount calls ran, and while the Version calls ran.
    mount_cpu: Cpu,
    version_cpu: Cpu,
}

/// CPU time spent over one phase of a repetition: by the provider, and by this process (the 50
/// clients, and the fake AWS, STS and Kubernetes endpoints they and the provider call).
#[derive(Clone, Copy, Default)]
struct Cpu {
    provider: Duration,
    bench: Duration,
}

impl Cpu {
    fn now(provider_pid: u32) -> Cpu {
        Cpu {
            provider: super::provider::cpu_of_pid(provider_pid).unwrap_or_default(),
            bench: super::provider::own_cpu().unwrap_or_default(),
        }
    }

    fn since(self, start: Cpu) -> Cpu {
        Cpu { provider: self.provider.saturating_sub(start.provider), bench: self.bench.saturating_sub(start.bench) }
    }

    fn total(self) -> Duration {
        self.provider + self.bench
    }
}

/// The repetitions with one cache setting.
pub struct Tail {
    cache_ttl: String,
    /// Service accounts among the pods.
    accounts: usize,
    spacing: Duration,
    repetitions: Vec<Repetition>,
}

/// Runs the repetitions against `rig` (a provider started with `--cache-ttl cache_ttl` and
/// [`sa_ttl`]'s flags), spaced by more than `cache_lifetime` and the service-account lifetime.
pub async fn run(rig: &Rig, pods: &[Pod], cache_ttl: &str, cache_lifetime: Duration) -> Result<Tail, String> {
    super::cold(&rig.client, pods).await.map_err(|e| rig.context(e))?;
    let spacing = cache_lifetime.max(sa_ttl().1) + Duration::from_secs(1);
    let origin = Instant::now();
    let accounts = pods.iter().map(|p| &p.role).collect::<std::collections::HashSet<_>>().len();
    let mut tail = Tail { cache_ttl: cache_ttl.into(), accounts, spacing, repetitions: Vec::new() };
    for _ in 0..repetitions() {
        tokio::time::sleep(spacing).await;
        let started = origin.elapsed();
        let before = rig.fake.counts();
        let pid = rig.provider.pid();
        let cpu = Cpu::now(pid);
        let mount = concurrently(pods, |pod| mount_calls(rig.client.clone(), pod)).await.map_err(|e| rig.context(e))?;
        let between = Cpu::now(pid);
        let version = concurrently(pods, |_| version_calls(rig.client.clone())).await?;
        let (mount_cpu, version_cpu) = (between.since(cpu), Cpu::now(pid).since(between));
        let counts = rig.fake.counts() - before;
        let (kube, aws) = (counts.kube, counts.aws());
        tail.repetitions.push(Repetition { mount, version, kube, aws, started, mount_cpu, version_cpu });
    }
    super::verify(pods, super::VALUE_LEN)?;
    Ok(tail)
}

/// Every pod's calls at once, one task per pod; all samples.
async fn concurrently<F, Fut>(pods: &[Pod], calls: F) -> Result<Vec<Duration>, String>
where
    F: Fn(Pod) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Duration>, String>> + Send + 'static,
{
    let handles: Vec<_> = pods.iter().map(|pod| tokio::spawn(calls(pod.clone()))).collect();
    let results = super::join_samples(handles).await;
    Ok(super::first_error(results)?.concat())
}

async fn mount_calls(client: Client, pod: Pod) -> Result<Vec<Duration>, String> {
    let mut samples = Vec::with_capacity(TAIL_MOUNTS);
    for _ in 0..TAIL_MOUNTS {
        samples.push(super::mount(&client, &pod).await?);
    }
    Ok(samples)
}

async fn version_calls(client: Client) -> Result<Vec<Duration>, String> {
    let mut samples = Vec::with_capacity(TAIL_MOUNTS);
    for _ in 0..TAIL_MOUNTS {
        let mut client = client.clone();
        let started = Instant::now();
        let request = csi_provider_aws::pb::VersionRequest { version: "v1alpha1".into() };
        client.version(request).await.map_err(|s| s.to_string())?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// A repetition's Mount samples less each client's first call: the calls that find every cache
/// the first call filled (its first may wait for AWS and Kubernetes after the spacing).
fn later_calls(mount: &[Duration]) -> Vec<Duration> {
    mount.chunks(TAIL_MOUNTS).flat_map(|calls| calls.iter().skip(1).copied()).collect()
}

fn p99(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (0.99 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or_default()
}

/// The median of `values` (the mean of the two middle ones for an even count).
fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

impl Tail {
    fn mount_p99s(&self) -> Vec<Duration> {
        self.repetitions.iter().map(|r| p99(&r.mount)).collect()
    }

    fn later_p99s(&self) -> Vec<Duration> {
        self.repetitions.iter().map(|r| p99(&later_calls(&r.mount))).collect()
    }

    fn version_p99s(&self) -> Vec<Duration> {
        self.repetitions.iter().map(|r| p99(&r.version)).collect()
    }

    /// Median repetition's Mount p99 / median repetition's Version p99.
    fn median_ratio(&self) -> f64 {
        ratio(median(&self.mount_p99s()), median(&self.version_p99s()))
    }

    /// Worst repetition's Mount p99 / median repetition's Mount p99.
    fn worst_ratio(&self) -> f64 {
        let p99s = self.mount_p99s();
        ratio(p99s.iter().max().copied().unwrap_or_default(), median(&p99s))
    }

    pub fn passed(&self) -> bool {
        self.repetitions.len() >= MIN_REPETITIONS
            && self.median_ratio() <= MEDIAN_RATIO_TARGET
            && self.worst_ratio() <= WORST_RATIO_TARGET
    }

    /// A table of the repetitions and the two ratios with their verdicts.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n### Tail, `--cache-ttl {}`, {} service account(s): {} repetitions of {CLIENTS} concurrent clients × {TAIL_MOUNTS} calls ({OBJECTS} objects per Mount), spaced {:.0} s apart (past the value cache and the service-account cache's {} s)\n",
            self.cache_ttl,
            self.accounts,
            self.repetitions.len(),
            self.spacing.as_secs_f64(),
            sa_ttl().1.as_secs()
        );
        let _ = writeln!(
            out,
            "| repetition | at | Mount p99 | Mount max | Mount p99, each client's first call left out | Version p99 | Kubernetes requests | AWS calls |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (i, r) in self.repetitions.iter().enumerate() {
            let max = r.mount.iter().max().copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {:.0} s | {} | {} | {} | {} | {} | {} |",
                i + 1,
                r.started.as_secs_f64(),
                ms(p99(&r.mount)),
                ms(max),
                ms(p99(&later_calls(&r.mount))),
                ms(p99(&r.version)),
                r.kube,
                r.aws
            );
        }
        let (mounts, versions) = (self.mount_p99s(), self.version_p99s());
        let worst = mounts.iter().max().copied().unwrap_or_default();
        let enough = self.repetitions.len() >= MIN_REPETITIONS;
        let _ = writeln!(
            out,
            "\n- median Mount p99 {} / median Version p99 {} = **{:.2}×** (target ≤ {MEDIAN_RATIO_TARGET}×) **{}**",
            ms(median(&mounts)),
            ms(median(&versions)),
            self.median_ratio(),
            verdict(enough && self.median_ratio() <= MEDIAN_RATIO_TARGET)
        );
        let _ = writeln!(
            out,
            "- worst Mount p99 {} / median Mount p99 {} = **{:.2}×** (target ≤ {WORST_RATIO_TARGET}×) **{}**{}",
            ms(worst),
            ms(median(&mounts)),
            self.worst_ratio(),
            verdict(enough && self.worst_ratio() <= WORST_RATIO_TARGET),
            if enough { String::new() } else { format!(" (fewer than {MIN_REPETITIONS} repetitions)") }
        );
        // Not a target: where the tail comes from. A client's first call of a repetition is the
        // one that may find an expired value (and, with `--cache-ttl 0`, every call reads AWS).
        let later = median(&self.later_p99s());
        let _ = writeln!(
            out,
            "- (where the tail is) median p99 without each client's first call {} / median Version p99 {} = {:.2}×",
            ms(later),
            ms(median(&versions)),
            ratio(later, median(&versions))
        );
        self.render_cpu(out);
    }

    /// Not a target: the CPU a call costs, per phase (median repetition). With 50 closed-loop
    /// clients on a few cores every call queues behind the others' CPU, so each phase's latency
    /// scales with the CPU one call costs in all (provider, clients, fake endpoints): a Mount p99
    /// within 1.25× of Version's needs a Mount to cost about as little CPU.
    fn render_cpu(&self, out: &mut String) {
        let per_call = |cpu: fn(&Repetition) -> (Cpu, usize), part: fn(Cpu) -> Duration| {
            let values: Vec<Duration> = self
                .repetitions
                .iter()
                .map(|r| {
                    let (cpu, calls) = cpu(r);
                    part(cpu) / u32::try_from(calls.max(1)).unwrap_or(u32::MAX)
                })
                .collect();
            median(&values)
        };
        let mount = |r: &Repetition| (r.mount_cpu, r.mount.len());
        let version = |r: &Repetition| (r.version_cpu, r.version.len());
        let (mp, mb, mt) = (per_call(mount, |c| c.provider), per_call(mount, |c| c.bench), per_call(mount, Cpu::total));
        let (vp, vb, vt) =
            (per_call(version, |c| c.provider), per_call(version, |c| c.bench), per_call(version, Cpu::total));
        let _ = writeln!(
            out,
            "- (why) CPU per call, median repetition: Mount {} µs (provider {} + clients and fake endpoints {}), Version {} µs (provider {} + {}): **{:.2}×**. Every call waits behind the others' CPU, so a Mount p99 within {MEDIAN_RATIO_TARGET}× of Version's needs a Mount to cost at most about {:.0} µs of CPU in all, its AWS and Kubernetes reads included",
            mt.as_micros(),
            mp.as_micros(),
            mb.as_micros(),
            vt.as_micros(),
            vp.as_micros(),
            vb.as_micros(),
            ratio(mt, vt),
            vt.as_secs_f64() * 1e6 * MEDIAN_RATIO_TARGET,
        );
        // A provider spends at least as much on a Mount as on a Version (the same framing, larger
        // messages), and the clients' and fake endpoints' share is not the provider's to cut.
        let floor = mb + vp;
        let _ = writeln!(
            out,
            "- (why) the least a Mount could cost here, with a provider that spent on it no more than on a Version: {} µs (clients and fake endpoints {} + provider {}), {:.2}× Version's: the target is {} on this rig",
            floor.as_micros(),
            mb.as_micros(),
            vp.as_micros(),
            ratio(floor, vt),
            if ratio(floor, vt) > MEDIAN_RATIO_TARGET { "out of reach" } else { "within reach" }
        );
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}
