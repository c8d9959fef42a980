//! Re-sync benchmark (issue 4): what rotation costs in AWS calls, counted on the wire.
//!
//! Run it with `scripts/bench.sh` (builds the release provider, then `cargo bench --bench resync`);
//! it is not part of `scripts/test.sh`. Under `cargo test` this binary does nothing.
//!
//! # Set-up
//!
//! An in-process fake endpoint on 127.0.0.1 ([`support::fake`]) plays STS, Secrets Manager,
//! Parameter Store and the Kubernetes API; it answers at once and counts every request it
//! receives by operation. The RELEASE provider binary ([`support::provider`]) runs as on a node:
//! no `--local-credentials`, so every mount reads AWS as its pod (IRSA: the service account's
//! `eks.amazonaws.com/role-arn` annotation, the pod's own token exchanged with STS
//! `AssumeRoleWithWebIdentity`), `--kubelet-path` on /dev/shm (tmpfs, as real target paths are).
//!
//! One SecretProviderClass: 10 Secrets Manager secrets + 10 Parameter Store parameters, values
//! of a few hundred bytes. Every pod has its own target path and its own token; the pods of one
//! Deployment share a service account (and so a role).
//!
//! - Scenario A: one Deployment of 100 replicas (1 service account, 1 role).
//! - Scenario B: 10 Deployments × 10 replicas (10 service accounts, 10 roles).
//!
//! Each pod mounts once (cold, 10 mounts in flight at a time), then re-sync rounds follow in which
//! every pod calls `Mount` once, the calls spread evenly over the poll interval, the pods of the
//! Deployments interleaved. Time is scaled by 1/10: poll interval 120 s → 12 s, cache TTL
//! 60 s → 6 s (`--cache-ttl 6s`; the ratios do not change with the scale). The first round starts
//! one TTL after the cold mounts, so nothing read cold is still fresh. Two rounds run with the
//! default-equivalent configuration; a second provider with `--cache-ttl 0` runs the same pods
//! cold and one round, as a measured reference.
//!
//! # Baseline: the Go provider's pattern per `Mount`
//!
//! The Go provider (`secrets-store-csi-driver-provider-aws`) answers every `Mount`, first or
//! re-sync, with a fresh STS `AssumeRoleWithWebIdentity`, one Secrets Manager call per secret
//! (`GetSecretValue`; `DescribeSecret` instead when the driver passes current versions) and one
//! `GetParameters` per 10 parameters, with no cache between mounts:
//!
//! `baseline(mount) = 1 + secrets + ceil(parameters / 10)` = 1 + 10 + 1 = **12** here, so a round
//! of 100 pods costs 1,200 calls. This is computed, not measured (the Go provider is not run).
//!
//! # Targets (issue 4)
//!
//! - re-sync round, nothing changed: A ≥ 100× fewer AWS calls than the baseline; B ≥ 25×;
//! - cold mount of the SecretProviderClass (first mount of a fresh provider): ≤ 3 AWS calls
//!   (1 STS, 1 `BatchGetSecretValue`, 1 `GetParameters`);
//! - the tail (issue 16, [`tail`]; it replaced an absolute p99 < 5 ms, which says little on a
//!   shared machine): repetitions of 50 concurrent clients spaced past every cache lifetime, with
//!   `--cache-ttl 6s` and with `--cache-ttl 0`; the median repetition's `Mount` p99 ≤ 1.25 × the
//!   median repetition's `Version` p99, the worst repetition's `Mount` p99 ≤ 2 × the median's;
//! - peak RSS (`VmHWM`) < 30 MiB for a provider holding 1,000 cached entries of 4 KiB
//!   (50 roles × 20 objects, default `--cache-ttl` of 60 s; a second mount of every pod making no
//!   AWS call proves they are all held).
//!
//! For the analysis, not a target: 50 pods mounting concurrently, each one cold mount then 40
//! sequential re-sync mounts (with `--cache-ttl 6s` and `0`); the same 50 clients calling
//! `Version` (no work in the provider) instead of `Mount` give the gRPC floor at that
//! concurrency, and one pod re-syncing alone gives the latency without queueing.
//!
//! The table (markdown) is printed and written to `<target>/bench/resync.md`; the exit status
//! is non-zero when a target is missed or a mount fails.

mod support;
#[path = "resync/tail.rs"]
mod tail;

use csi_provider_aws::pb::csi_driver_provider_client::CsiDriverProviderClient;
use csi_provider_aws::pb::{MountRequest, VersionRequest};
use futures::StreamExt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use support::fake::{self, Counts, FakeAws};
use support::provider::{self, Provider};
use tokio::time::Instant;
use tonic::transport::Channel;

type Client = CsiDriverProviderClient<Channel>;

const SECRETS: usize = 10;
const PARAMETERS: usize = 10;
const OBJECTS: usize = SECRETS + PARAMETERS;
/// Scaled rotation poll interval (120 s / 10).
const POLL: Duration = Duration::from_secs(12);
/// Scaled cache TTL (60 s / 10), and the flag that sets it.
const TTL: Duration = Duration::from_secs(6);
const TTL_FLAG: &str = "6s";
/// Re-sync rounds with the default-equivalent configuration.
const ROUNDS: usize = 2;
/// Bytes per value in the scenarios.
const VALUE_LEN: usize = 300;
/// Cold mounts in flight at a time.
const COLD_CONCURRENCY: usize = 10;
/// Latency: pods mounting concurrently, re-sync mounts each.
const LATENCY_PODS: usize = 50;
const LATENCY_MOUNTS: usize = 40;
/// [`LATENCY_MOUNTS`], or `RESYNC_LATENCY_MOUNTS` from the environment (longer runs, for
/// profiling the provider under the concurrent load).
fn latency_mounts() -> usize {
    std::env::var("RESYNC_LATENCY_MOUNTS").ok().and_then(|v| v.parse().ok()).unwrap_or(LATENCY_MOUNTS)
}
/// Re-sync mounts of one pod mounting alone (no concurrency), for comparison.
const SERIAL_MOUNTS: usize = 200;
/// RSS: roles (one pod each) × [`OBJECTS`] values of 4 KiB = 1,000 entries.
const RSS_ROLES: usize = 50;
const RSS_VALUE_LEN: usize = 4096;
const RSS_TARGET_MIB: f64 = 30.0;
const NAMESPACE: &str = "bench";
const VOLUME: &str = "secrets-store-inline";
const TOKENS_KEY: &str = "csi.storage.k8s.io/serviceAccount.tokens";

/// The Go provider's AWS calls for one `Mount` of `secrets` secrets and `parameters` parameters.
fn baseline_per_mount(secrets: usize, parameters: usize) -> u64 {
    (1 + secrets + parameters.div_ceil(10)) as u64
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("resync: a benchmark; run it with scripts/bench.sh (cargo bench --bench resync)");
        return ExitCode::SUCCESS;
    }
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fake-aws")
        .enable_all()
        .build()
        .expect("fake endpoint runtime");
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("driver")
        .enable_all()
        .build()
        .expect("client runtime");
    let started = std::time::Instant::now();
    let sections: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if let Some(bad) = sections.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
        eprintln!("resync: unknown section {bad:?} (sections: {})", SECTIONS.join(", "));
        return ExitCode::from(2);
    }
    let mut report = Report::default();
    clients.block_on(run(servers.handle(), &sections, &mut report));
    let runtime = started.elapsed();
    let text = report.render(runtime);
    println!("{text}");
    let path = provider::target_dir().join("bench/resync.md");
    match std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).and_then(|()| std::fs::write(&path, &text)) {
        Ok(()) => eprintln!("resync: table written to {}", path.display()),
        Err(e) => eprintln!("resync: cannot write {}: {e}", path.display()),
    }
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The parts of the benchmark; `cargo bench --bench resync -- latency rss` runs only those.
const SECTIONS: [&str; 6] = ["spc", "a", "b", "latency", "rss", "tail"];

async fn run(servers: &tokio::runtime::Handle, sections: &[String], report: &mut Report) {
    let on = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let step = |report: &mut Report, what: &str, result: Result<(), String>| {
        if let Err(e) = result {
            report.errors.push(format!("{what}: {e}"));
        }
    };
    if on("spc") {
        let r = spc_cold(servers, report).await;
        step(report, "cold mount of the SecretProviderClass", r);
    }
    let scenarios = [
        ("a", Scenario { name: "A: 1 Deployment × 100", deployments: 1, replicas: 100, min_ratio: 100.0 }),
        ("b", Scenario { name: "B: 10 Deployments × 10", deployments: 10, replicas: 10, min_ratio: 25.0 }),
    ];
    for (section, spec) in scenarios.iter().filter(|(section, _)| on(section)) {
        let r = scenario(servers, spec, TTL_FLAG, ROUNDS, report).await;
        step(report, &format!("scenario {section} --cache-ttl {TTL_FLAG}"), r);
        let r = scenario(servers, spec, "0", 1, report).await;
        step(report, &format!("scenario {section} --cache-ttl 0"), r);
    }
    if on("latency") {
        report.expect_latency = true;
        for ttl in [TTL_FLAG, "0"] {
            let r = latency(servers, ttl, report).await;
            step(report, &format!("latency --cache-ttl {ttl}"), r);
        }
        let r = grpc_floor(servers, report).await;
        step(report, "gRPC floor", r);
    }
    if on("tail") {
        // TAIL_REPLICAS=1 (or 10) runs only that mix.
        let only: Option<usize> = std::env::var("TAIL_REPLICAS").ok().and_then(|v| v.parse().ok());
        report.expect_tails = only.is_none();
        for replicas in [10, 1].into_iter().filter(|r| only.is_none_or(|o| o == *r)) {
            for (ttl, lifetime) in [(TTL_FLAG, TTL), ("0", Duration::ZERO)] {
                let r = tail_run(servers, (ttl, lifetime), replicas, report).await;
                step(report, &format!("tail --cache-ttl {ttl}, Deployments of {replicas}"), r);
            }
        }
    }
    if on("rss") {
        report.expect_rss = true;
        let r = rss(servers, report).await;
        step(report, "peak RSS", r);
    }
}

// ---------------------------------------------------------------------------------------------
// pods and mounts

struct Scenario {
    name: &'static str,
    deployments: usize,
    replicas: usize,
    min_ratio: f64,
}

/// One pod volume: what the driver sends for it on every `Mount`.
#[derive(Clone)]
struct Pod {
    name: String,
    /// The role name its service account is annotated with.
    role: String,
    attributes: String,
    target: PathBuf,
}

fn secret_name(i: usize) -> String {
    format!("bench/secret-{i:02}")
}

fn parameter_name(i: usize) -> String {
    format!("/bench/param-{i:02}")
}

/// The SecretProviderClass `objects`: each object's file is its alias.
fn objects_yaml() -> String {
    let mut yaml = String::new();
    for i in 0..SECRETS {
        let _ = writeln!(
            yaml,
            "- objectName: \"{}\"\n  objectType: secretsmanager\n  objectAlias: secret-{i:02}",
            secret_name(i)
        );
    }
    for i in 0..PARAMETERS {
        let _ = writeln!(
            yaml,
            "- objectName: \"{}\"\n  objectType: ssmparameter\n  objectAlias: param-{i:02}",
            parameter_name(i)
        );
    }
    yaml
}

/// The pods of `deployments` Deployments of `replicas`, interleaved (replica 0 of every
/// Deployment, then replica 1, …), each Deployment with its own service account and role
/// (registered on the fake), each pod with its own token and target path.
fn pods(provider: &Provider, fake: &FakeAws, deployments: usize, replicas: usize) -> Vec<Pod> {
    for d in 0..deployments {
        let role_arn = format!("arn:aws:iam::{}:role/bench-app-{d}", fake::ACCOUNT);
        fake.service_account(NAMESPACE, &format!("app-{d}"), &role_arn);
    }
    let objects = objects_yaml();
    let mut pods = Vec::with_capacity(deployments * replicas);
    for r in 0..replicas {
        for d in 0..deployments {
            let name = format!("app-{d}-{r:03}");
            let uid = format!("{d:08x}-0000-4000-8000-{r:012x}");
            let sa = format!("app-{d}");
            let token = jwt(&name, &sa);
            let tokens = serde_json::json!({
                "sts.amazonaws.com": { "token": token, "expirationTimestamp": "2030-01-01T00:00:00Z" }
            });
            let attributes = serde_json::json!({
                "objects": objects,
                "region": fake::REGION,
                "csi.storage.k8s.io/pod.name": name,
                "csi.storage.k8s.io/pod.namespace": NAMESPACE,
                "csi.storage.k8s.io/pod.uid": uid,
                "csi.storage.k8s.io/serviceAccount.name": sa,
                "csi.storage.k8s.io/ephemeral": "false",
                TOKENS_KEY: tokens.to_string(),
                "secretProviderClass": "bench-spc",
            })
            .to_string();
            let target = provider.target(&uid, VOLUME);
            pods.push(Pod { name, role: format!("bench-app-{d}"), attributes, target });
        }
    }
    pods
}

/// A projected service-account token for `pod` (JWT-shaped, unique per pod; the fake STS
/// does not verify it).
fn jwt(pod: &str, sa: &str) -> String {
    let header = b64url(br#"{"alg":"RS256","kid":"bench-signing-key"}"#);
    let payload = serde_json::json!({
        "aud": ["sts.amazonaws.com"],
        "exp": 1_893_456_000u64,
        "iat": 1_700_000_000u64,
        "iss": "https://oidc.eks.us-west-2.amazonaws.com/id/BENCH",
        "kubernetes.io": {
            "namespace": NAMESPACE,
            "pod": { "name": pod, "uid": format!("uid-{pod}") },
            "serviceaccount": { "name": sa, "uid": format!("uid-{sa}") },
        },
        "nbf": 1_700_000_000u64,
        "sub": format!("system:serviceaccount:{NAMESPACE}:{sa}"),
    });
    let payload = b64url(payload.to_string().as_bytes());
    let signature = b64url(format!("signature-of-{pod}-{}", "s".repeat(200)).as_bytes());
    format!("{header}.{payload}.{signature}")
}

fn b64url(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// One `Mount` as driver v1.6 sends it (no node-publish secrets, 0644, no current versions);
/// the time from sending to the answer.
async fn mount(client: &Client, pod: &Pod) -> Result<Duration, String> {
    let request = MountRequest {
        attributes: pod.attributes.clone(),
        secrets: "null".to_string(),
        target_path: pod.target.display().to_string(),
        permission: "420".to_string(),
        current_object_version: Vec::new(),
    };
    let mut client = client.clone();
    let started = Instant::now();
    let response = client.mount(request).await;
    let elapsed = started.elapsed();
    let response = response.map_err(|s| format!("{}: {:?}: {}", pod.name, s.code(), s.message()))?.into_inner();
    if let Some(error) = response.error.filter(|e| !e.code.is_empty()) {
        return Err(format!("{}: error {}", pod.name, error.code));
    }
    if response.object_version.len() != OBJECTS {
        return Err(format!("{}: {} object versions, expected {OBJECTS}", pod.name, response.object_version.len()));
    }
    Ok(elapsed)
}

/// Every pod's first mount, [`COLD_CONCURRENCY`] at a time.
async fn cold(client: &Client, pods: &[Pod]) -> Result<(), String> {
    let results: Vec<Result<Duration, String>> = futures::stream::iter(pods.iter().map(|pod| mount(client, pod)))
        .buffer_unordered(COLD_CONCURRENCY)
        .collect()
        .await;
    first_error(results).map(|_| ())
}

/// One re-sync round: every pod mounts once, the mounts spread evenly over `poll`.
async fn round(client: &Client, pods: &[Pod], poll: Duration) -> Result<(), String> {
    let start = Instant::now();
    let slot = poll / pods.len() as u32;
    let handles: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let (client, pod) = (client.clone(), pod.clone());
            let at = start + slot * i as u32;
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                mount(&client, &pod).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.map_err(|e| format!("mount task: {e}")).and_then(|r| r));
    }
    first_error(results).map(|_| ())
}

fn first_error<T>(results: Vec<Result<T, String>>) -> Result<Vec<T>, String> {
    let failed = results.iter().filter(|r| r.is_err()).count();
    let mut ok = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(v) => ok.push(v),
            Err(e) => return Err(format!("{failed} mount(s) failed; first: {e}")),
        }
    }
    Ok(ok)
}

/// Every file of every pod holds the value its own role reads.
fn verify(pods: &[Pod], value_len: usize) -> Result<(), String> {
    for pod in pods {
        let files = (0..SECRETS)
            .map(|i| (format!("secret-{i:02}"), secret_name(i)))
            .chain((0..PARAMETERS).map(|i| (format!("param-{i:02}"), parameter_name(i))));
        for (file, object) in files {
            let path = pod.target.join(&file);
            let found = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if found != fake::value_for(&pod.role, &object, value_len) {
                return Err(format!("{}: not the value of role {} for {object}", path.display(), pod.role));
            }
        }
    }
    Ok(())
}

/// A fresh fake, a kubeconfig for it, and a provider with `flags`, connected.
struct Rig {
    fake: FakeAws,
    _kube_dir: tempfile::TempDir,
    provider: Provider,
    client: Client,
}

async fn rig(servers: &tokio::runtime::Handle, value_len: usize, flags: &[&str]) -> Result<Rig, String> {
    let fake = FakeAws::start(servers, value_len).map_err(|e| format!("fake endpoint: {e}"))?;
    let kube_dir = tempfile::Builder::new().prefix("bench-kube-").tempdir().map_err(|e| e.to_string())?;
    let kubeconfig = kube_dir.path().join("kubeconfig");
    fake.kubeconfig(&kubeconfig).map_err(|e| format!("kubeconfig: {e}"))?;
    let provider = Provider::start(&fake.url(), &kubeconfig, flags)?;
    let client = csi_provider_aws::client::connect(provider.socket())
        .await
        .map_err(|e| format!("connect {}: {e}", provider.socket().display()))?;
    Ok(Rig { fake, _kube_dir: kube_dir, provider, client })
}

impl Rig {
    /// Adds the provider's log to an error.
    fn context(&self, error: String) -> String {
        let logs = self.provider.logs();
        let tail: Vec<&str> = logs.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("{error}\n--- provider log (last lines) ---\n{}", tail.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------------
// measurements

/// The first mount of a fresh provider: one pod of the SecretProviderClass.
async fn spc_cold(servers: &tokio::runtime::Handle, report: &mut Report) -> Result<(), String> {
    let rig = rig(servers, VALUE_LEN, &["--cache-ttl", TTL_FLAG]).await?;
    let pods = pods(&rig.provider, &rig.fake, 1, 1);
    let before = rig.fake.counts();
    mount(&rig.client, &pods[0]).await.map_err(|e| rig.context(e))?;
    let counts = rig.fake.counts() - before;
    verify(&pods, VALUE_LEN)?;
    report.phases.push(Phase {
        scenario: "SecretProviderClass".into(),
        phase: "cold mount, fresh provider (1 pod)".into(),
        mounts: 1,
        counts,
        target: Target::MaxCalls(3),
    });
    Ok(())
}

/// A scenario with `--cache-ttl ttl_flag`: cold mounts, then `rounds` re-sync rounds.
async fn scenario(
    servers: &tokio::runtime::Handle,
    spec: &Scenario,
    ttl_flag: &str,
    rounds: usize,
    report: &mut Report,
) -> Result<(), String> {
    let reference = ttl_flag == "0";
    let rig = rig(servers, VALUE_LEN, &["--cache-ttl", ttl_flag]).await?;
    let pods = pods(&rig.provider, &rig.fake, spec.deployments, spec.replicas);
    let config = format!("--cache-ttl {ttl_flag}");

    let before = rig.fake.counts();
    cold(&rig.client, &pods).await.map_err(|e| rig.context(e))?;
    let cold_done = Instant::now();
    verify(&pods, VALUE_LEN)?;
    report.phases.push(Phase {
        scenario: spec.name.into(),
        phase: format!("cold: every pod's first mount, {config}"),
        mounts: pods.len() as u64,
        counts: rig.fake.counts() - before,
        target: Target::Info,
    });

    if !reference {
        // Round 1 starts with every value read cold already expired.
        tokio::time::sleep_until(cold_done + TTL).await;
    }
    for r in 1..=rounds {
        let before = rig.fake.counts();
        round(&rig.client, &pods, POLL).await.map_err(|e| rig.context(e))?;
        let target = if reference { Target::Reference } else { Target::MinRatio(spec.min_ratio) };
        report.phases.push(Phase {
            scenario: spec.name.into(),
            phase: format!("re-sync round {r}, {config}"),
            mounts: pods.len() as u64,
            counts: rig.fake.counts() - before,
            target,
        });
    }
    verify(&pods, VALUE_LEN)
}

/// What is sampled when the re-sync mounts start and end.
#[derive(Clone, Copy)]
struct Mark {
    at: Instant,
    calls: Counts,
    provider_cpu: Duration,
    bench_cpu: Duration,
}

impl Mark {
    fn now(counter: &fake::Counter, provider_pid: u32) -> Mark {
        Mark {
            at: Instant::now(),
            calls: counter.counts(),
            provider_cpu: provider::cpu_of_pid(provider_pid).unwrap_or_default(),
            bench_cpu: provider::own_cpu().unwrap_or_default(),
        }
    }
}

/// `pods` pods (Deployments of 10) mounting concurrently: one cold mount each, then, all
/// together, `mounts` sequential re-sync mounts each; every re-sync mount's latency.
async fn latency_run(
    servers: &tokio::runtime::Handle,
    ttl_flag: &str,
    pods: usize,
    mounts: usize,
) -> Result<Latency, String> {
    let rig = rig(servers, VALUE_LEN, &["--cache-ttl", ttl_flag]).await?;
    let pods = self::pods(&rig.provider, &rig.fake, pods.div_ceil(10), pods.min(10));
    let barrier = Arc::new(tokio::sync::Barrier::new(pods.len()));
    // Set by the barrier's leader once every cold mount is done.
    let start = Arc::new(std::sync::Mutex::new(None::<Mark>));
    let pid = rig.provider.pid();
    let handles: Vec<_> = pods
        .iter()
        .map(|pod| {
            let (client, pod, barrier) = (rig.client.clone(), pod.clone(), barrier.clone());
            let (counter, start) = (rig.fake.counter(), start.clone());
            tokio::spawn(async move {
                let first = mount(&client, &pod).await;
                if barrier.wait().await.is_leader() {
                    *start.lock().unwrap_or_else(|p| p.into_inner()) = Some(Mark::now(&counter, pid));
                }
                first?;
                let mut samples = Vec::with_capacity(mounts);
                for _ in 0..mounts {
                    samples.push(mount(&client, &pod).await?);
                }
                Ok::<_, String>(samples)
            })
        })
        .collect();
    let results = join_samples(handles).await;
    let end = Mark::now(&rig.fake.counter(), pid);
    let start = start.lock().unwrap_or_else(|p| p.into_inner()).take().ok_or("the barrier had no leader")?;
    let samples = first_error(results).map_err(|e| rig.context(e))?.concat();
    verify(&pods, VALUE_LEN)?;
    let label = format!("latency, --cache-ttl {ttl_flag}");
    Ok(Latency::between(label, "re-sync mount", (pods.len(), mounts), samples, start, end))
}

/// Each client task's samples (or why it failed), in task order.
async fn join_samples(
    handles: Vec<tokio::task::JoinHandle<Result<Vec<Duration>, String>>>,
) -> Vec<Result<Vec<Duration>, String>> {
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.map_err(|e| format!("client task: {e}")).and_then(|r| r));
    }
    results
}

/// The latency target's measurement with `--cache-ttl ttl_flag`, and the same with one pod
/// mounting alone (for the analysis: the latency without queueing).
async fn latency(servers: &tokio::runtime::Handle, ttl_flag: &str, report: &mut Report) -> Result<(), String> {
    let concurrent = latency_run(servers, ttl_flag, LATENCY_PODS, latency_mounts()).await?;
    report.latencies.push(concurrent);
    let alone = latency_run(servers, ttl_flag, 1, SERIAL_MOUNTS).await?;
    report.serial.push(alone);
    Ok(())
}

/// The gRPC floor: the same clients and concurrency as the latency target, each calling
/// `Version` (no work in the provider) instead of `Mount`; what any mount costs at least.
async fn grpc_floor(servers: &tokio::runtime::Handle, report: &mut Report) -> Result<(), String> {
    let rig = rig(servers, VALUE_LEN, &[]).await?;
    let pid = rig.provider.pid();
    let calls = latency_mounts();
    let start = Mark::now(&rig.fake.counter(), pid);
    let handles: Vec<_> = (0..LATENCY_PODS)
        .map(|_| {
            let client = rig.client.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let mut client = client.clone();
                    let started = Instant::now();
                    client.version(VersionRequest { version: "v1alpha1".into() }).await.map_err(|s| s.to_string())?;
                    samples.push(started.elapsed());
                }
                Ok::<_, String>(samples)
            })
        })
        .collect();
    let results = join_samples(handles).await;
    let end = Mark::now(&rig.fake.counter(), pid);
    let samples = first_error(results)?.concat();
    let label = "gRPC floor, `Version` instead of `Mount`".to_string();
    report.floor = Some(Latency::between(label, "call", (LATENCY_PODS, calls), samples, start, end));
    Ok(())
}

/// The tail's spaced repetitions with `--cache-ttl ttl_flag` (a cache of `lifetime`) and
/// [`LATENCY_PODS`] pods in Deployments of `replicas` (one service account each) ([`tail`]).
async fn tail_run(
    servers: &tokio::runtime::Handle,
    (ttl_flag, lifetime): (&str, Duration),
    replicas: usize,
    report: &mut Report,
) -> Result<(), String> {
    let mut flags = vec!["--cache-ttl", ttl_flag];
    flags.extend(tail::sa_ttl().0);
    let rig = rig(servers, VALUE_LEN, &flags).await?;
    let pods = pods(&rig.provider, &rig.fake, LATENCY_PODS.div_ceil(replicas), replicas);
    report.tails.push(tail::run(&rig, &pods, ttl_flag, lifetime).await?);
    Ok(())
}

/// Peak RSS of a provider holding [`RSS_ROLES`] × [`OBJECTS`] cached values of 4 KiB.
async fn rss(servers: &tokio::runtime::Handle, report: &mut Report) -> Result<(), String> {
    // Default --cache-ttl (60 s) so every entry stays held; a Kubernetes API rate limit that
    // does not stall 50 distinct service-account lookups (it has no effect on memory).
    let rig = rig(servers, RSS_VALUE_LEN, &["--qps", "100", "--burst", "100"]).await?;
    let idle_kib = rig.provider.status_kib("VmRSS").unwrap_or_default();
    let pods = pods(&rig.provider, &rig.fake, RSS_ROLES, 1);
    cold(&rig.client, &pods).await.map_err(|e| rig.context(e))?;
    verify(&pods, RSS_VALUE_LEN)?;
    let before = rig.fake.counts();
    cold(&rig.client, &pods).await.map_err(|e| rig.context(e))?;
    let again = rig.fake.counts() - before;
    let hwm_kib = rig.provider.status_kib("VmHWM").ok_or("no VmHWM in /proc/<pid>/status")?;
    let rss_kib = rig.provider.status_kib("VmRSS").unwrap_or_default();
    report.rss = Some(Rss { idle_kib, hwm_kib, rss_kib, entries: pods.len() * OBJECTS, second_pass: again });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// the report

enum Target {
    /// At least this many times fewer AWS calls than the baseline.
    MinRatio(f64),
    /// At most this many AWS calls.
    MaxCalls(u64),
    /// Measured for information.
    Info,
    /// The `--cache-ttl 0` reference.
    Reference,
}

struct Phase {
    scenario: String,
    phase: String,
    mounts: u64,
    counts: Counts,
    target: Target,
}

impl Phase {
    fn baseline(&self) -> u64 {
        self.mounts * baseline_per_mount(SECRETS, PARAMETERS)
    }

    fn ratio(&self) -> f64 {
        match self.counts.aws() {
            0 => f64::INFINITY,
            ours => self.baseline() as f64 / ours as f64,
        }
    }

    fn passed(&self) -> Option<bool> {
        match self.target {
            Target::MinRatio(min) => Some(self.ratio() >= min),
            Target::MaxCalls(max) => Some(self.counts.aws() <= max),
            Target::Info | Target::Reference => None,
        }
    }
}

struct Latency {
    /// What was measured, to start the line (`latency, --cache-ttl 6s`).
    label: String,
    /// What one sample is (`re-sync mount`, `call`).
    unit: &'static str,
    pods: usize,
    mounts: usize,
    samples: Vec<Duration>,
    wall: Duration,
    /// CPU used by the provider and by this process (clients and the fake) meanwhile.
    provider_cpu: Duration,
    bench_cpu: Duration,
    /// The AWS calls of the re-sync mounts.
    calls: Counts,
}

impl Latency {
    /// The samples of `clients` clients × `each` calls, with what changed from `start` to `end`.
    fn between(
        label: String,
        unit: &'static str,
        (clients, each): (usize, usize),
        samples: Vec<Duration>,
        start: Mark,
        end: Mark,
    ) -> Latency {
        Latency {
            label,
            unit,
            pods: clients,
            mounts: each,
            samples,
            wall: end.at - start.at,
            calls: end.calls - start.calls,
            provider_cpu: end.provider_cpu.saturating_sub(start.provider_cpu),
            bench_cpu: end.bench_cpu.saturating_sub(start.bench_cpu),
        }
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted.get(rank.saturating_sub(1)).copied().unwrap_or_default()
    }

    /// One line: percentiles, throughput, AWS calls and CPU per mount.
    fn describe(&self) -> String {
        let n = self.samples.len().max(1) as f64;
        let per_mount = |cpu: Duration| format!("{:.0} µs", cpu.as_secs_f64() * 1e6 / n);
        let unit = self.unit;
        format!(
            "{}: {} pod(s) concurrently × {} {unit}s ({} samples, {:.0} {unit}s/s): p50 {}, p99 {}, max {}; AWS calls meanwhile: {} ({}); CPU per {unit}: provider {}, bench client + fake {}",
            self.label,
            self.pods,
            self.mounts,
            self.samples.len(),
            n / self.wall.as_secs_f64().max(1e-9),
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            ms(self.samples.iter().max().copied().unwrap_or_default()),
            self.calls.aws(),
            self.calls.breakdown(),
            per_mount(self.provider_cpu),
            per_mount(self.bench_cpu),
        )
    }
}

struct Rss {
    idle_kib: u64,
    hwm_kib: u64,
    rss_kib: u64,
    entries: usize,
    second_pass: Counts,
}

impl Rss {
    fn passed(&self) -> bool {
        mib(self.hwm_kib) < RSS_TARGET_MIB && self.second_pass.aws() == 0
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn verdict(passed: bool) -> &'static str {
    if passed { "PASS" } else { "FAIL" }
}

#[derive(Default)]
struct Report {
    phases: Vec<Phase>,
    latencies: Vec<Latency>,
    /// The same with one pod alone (information).
    serial: Vec<Latency>,
    /// `Version` calls at the latency target's concurrency (information).
    floor: Option<Latency>,
    rss: Option<Rss>,
    /// The tail's spaced repetitions, one per cache setting.
    tails: Vec<tail::Tail>,
    errors: Vec<String>,
    expect_latency: bool,
    expect_rss: bool,
    expect_tails: bool,
}

impl Report {
    fn passed(&self) -> bool {
        self.errors.is_empty()
            && self.phases.iter().all(|p| p.passed() != Some(false))
            && (!self.expect_latency || self.latencies.len() == 2)
            && (!self.expect_rss || self.rss.as_ref().is_some_and(Rss::passed))
            && (!self.expect_tails || self.tails.len() == 4)
            && self.tails.iter().all(tail::Tail::passed)
    }

    fn render(&self, runtime: Duration) -> String {
        let per_mount = baseline_per_mount(SECRETS, PARAMETERS);
        let mut out = String::new();
        let _ = writeln!(out, "## Re-sync benchmark (benches/resync.rs)\n");
        let _ = writeln!(
            out,
            "SecretProviderClass: {SECRETS} secrets + {PARAMETERS} parameters. Time scaled 1/10: poll 120 s → {} s, cache TTL 60 s → {} s. AWS calls counted on the wire at a local fake endpoint; provider `{}`, {} CPUs.\n",
            POLL.as_secs(),
            TTL.as_secs(),
            provider::binary().display(),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        );
        let _ = writeln!(
            out,
            "Baseline = the Go provider's pattern per Mount, computed: 1 STS AssumeRoleWithWebIdentity + 1 Secrets Manager call per secret ({SECRETS}) + 1 GetParameters per 10 parameters ({}) = {per_mount} calls per Mount, no cache between mounts.\n",
            PARAMETERS.div_ceil(10)
        );
        let _ = writeln!(
            out,
            "| scenario | phase | mounts | baseline calls | our calls | ratio | target | result | our calls on the wire |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---|---|---|");
        for p in &self.phases {
            let (target, result) = match p.target {
                Target::MinRatio(min) => (format!("≥ {min:.0}× fewer"), verdict(p.passed() == Some(true))),
                Target::MaxCalls(max) => (format!("≤ {max} calls"), verdict(p.passed() == Some(true))),
                Target::Info => ("—".to_string(), "info"),
                Target::Reference => ("— (reference)".to_string(), "ref"),
            };
            let ratio = if p.ratio().is_finite() { format!("{:.1}×", p.ratio()) } else { "∞".to_string() };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {ratio} | {target} | {result} | {} |",
                p.scenario,
                p.phase,
                p.mounts,
                p.baseline(),
                p.counts.aws(),
                p.counts.breakdown()
            );
        }
        let _ = writeln!(out);
        for l in &self.latencies {
            let _ = writeln!(out, "- {} (information; the targets are the tail's ratios)", l.describe());
        }
        for l in &self.serial {
            let _ = writeln!(out, "- {} (information: no concurrency)", l.describe());
        }
        if let Some(f) = &self.floor {
            let _ = writeln!(out, "- {} (information: the transport alone at this concurrency)", f.describe());
        }
        if let Some(r) = &self.rss {
            let _ = writeln!(
                out,
                "- peak RSS (VmHWM) holding {} cached entries of {} KiB ({RSS_ROLES} roles × {OBJECTS} objects, default --cache-ttl 60s): {:.1} MiB (target < {RSS_TARGET_MIB:.0} MiB) **{}**; VmRSS idle {:.1} MiB, after {:.1} MiB; second mount of every pod: {} AWS calls (all entries held)",
                r.entries,
                RSS_VALUE_LEN / 1024,
                mib(r.hwm_kib),
                verdict(r.passed()),
                mib(r.idle_kib),
                mib(r.rss_kib),
                r.second_pass.aws(),
            );
        }
        for t in &self.tails {
            t.render(&mut out);
        }
        for e in &self.errors {
            let _ = writeln!(out, "- ERROR {e}");
        }
        let _ = writeln!(out, "\nruntime {:.1} s; overall **{}**", runtime.as_secs_f64(), verdict(self.passed()));
        out
    }
}
