//! Load and soak on the real binary (issue 11): the provider as on a node (IRSA, each pod its own
//! token, service accounts on the Kubernetes API stand-in, moto behind the recording proxy as AWS),
//! driven over one connection as the driver does.
//!
//! - [`five_hundred_concurrent_mounts`] (runs in `cargo test`): 500 pods mount at once, then
//!   re-sync at once; every target holds a complete, correct set, no mount fails, the AWS and
//!   Kubernetes calls are counted, the provider's RSS and descriptors stay bounded and its log has
//!   no warning.
//! - [`soak`] (`#[ignore]`d; `scripts/soak.sh`, default 600 s, and `scripts/test.sh soak`, 60 s):
//!   pods re-sync in a loop while a rotator changes the values in moto every few seconds and
//!   reader threads check that every read sees one consistent set; RSS and descriptors are
//!   sampled and must stay flat.
//!
//! Each test prints its figures and writes them to `<target>/tmp/load/<test>.md`.

mod support;

use csi_provider_aws::pb::MountRequest;
use csi_provider_aws::pb::csi_driver_provider_client::CsiDriverProviderClient;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::kube::KubeApi;
use support::recorder::Recorder;
use support::world::{IRSA_AUDIENCE, WEST, World, b64url, pod_attrs, role, tokens};
use support::{Provider, mount_request, pod_uid};
use tonic::transport::Channel;

type Client = CsiDriverProviderClient<Channel>;

// ---------------------------------------------------------------------------------------------
// the set every pod mounts

/// One JSON secret mounted whole (`pair`) and through three jmesPath entries (`user`, `pass`,
/// `gen`), which all carry the same generation in every set written; a plain secret and a
/// SecureString parameter (`param`, `g-<n>`) beside them.
const OBJECTS: &str = "\
- objectName: app/pair
  objectType: secretsmanager
  objectAlias: pair
  jmesPath:
    - {path: username, objectAlias: user}
    - {path: password, objectAlias: pass}
    - {path: generation, objectAlias: gen}
- objectName: app/plain
  objectType: secretsmanager
  objectAlias: plain
- objectName: /app/param
  objectType: ssmparameter
  objectAlias: param
";
const FILES: [&str; 6] = ["pair", "user", "pass", "gen", "plain", "param"];
const PAIR: &str = "app/pair";
const PLAIN: &str = "app/plain";
const PARAM: &str = "/app/param";

fn pair_value(generation: u64) -> String {
    serde_json::json!({
        "generation": generation.to_string(),
        "username": format!("u-{generation}"),
        "password": format!("p-{generation}"),
        "padding": "x".repeat(512),
    })
    .to_string()
}

fn plain_value() -> String {
    "plain-".repeat(40)
}

fn param_value(generation: u64) -> String {
    format!("g-{generation}")
}

async fn seed(w: &World) {
    w.secret(WEST, PAIR, &pair_value(0)).await;
    w.secret(WEST, PLAIN, &plain_value()).await;
    put_param(w, 0).await;
}

async fn put_param(w: &World, generation: u64) {
    w.moto
        .ssm(WEST)
        .put_parameter()
        .name(PARAM)
        .value(param_value(generation))
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("put_parameter");
}

/// The secret at `generation`, then the parameter (in a call of its own).
async fn rotate(w: &World, generation: u64) {
    let sm = w.moto.sm(WEST);
    sm.put_secret_value().secret_id(PAIR).secret_string(pair_value(generation)).send().await.expect("rotate");
    put_param(w, generation).await;
}

/// The generation a set's files carry, or what is wrong with them. The parameter is rotated in
/// its own call, so it only has to be well formed.
fn check_set(files: &HashMap<&str, String>) -> Result<u64, String> {
    let generation: u64 = files["gen"].parse().map_err(|_| format!("gen is {:?}", files["gen"]))?;
    let pair = check_pair(&files["pair"])?;
    let agree = files["user"] == format!("u-{generation}") && files["pass"] == format!("p-{generation}");
    if !agree || pair != generation {
        return Err(format!("torn set: gen {generation}, user {}, pass {}, pair {pair}", files["user"], files["pass"]));
    }
    check_plain(&files["plain"])?;
    check_param(&files["param"])?;
    Ok(generation)
}

/// The generation of a `pair` file that is whole and agrees with itself.
fn check_pair(text: &str) -> Result<u64, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("pair is not JSON ({e})"))?;
    let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let generation: u64 = field("generation").parse().map_err(|_| "pair has no generation".to_string())?;
    if field("username") != format!("u-{generation}") || field("password") != format!("p-{generation}") {
        return Err(format!("pair disagrees with itself: {text}"));
    }
    Ok(generation)
}

fn check_plain(text: &str) -> Result<(), String> {
    if text == plain_value() { Ok(()) } else { Err(format!("plain is {} bytes, not the value", text.len())) }
}

fn check_param(text: &str) -> Result<u64, String> {
    text.strip_prefix("g-").and_then(|n| n.parse().ok()).ok_or_else(|| format!("param is {text:?}"))
}

/// One file read alone through its visible link: whole and well formed.
fn check_file(name: &str, text: &str) -> Result<(), String> {
    let number = |prefix: &str| text.strip_prefix(prefix).is_some_and(|n| n.parse::<u64>().is_ok());
    let ok = match name {
        "pair" => return check_pair(text).map(drop),
        "plain" => return check_plain(text),
        "param" => return check_param(text).map(drop),
        "user" => number("u-"),
        "pass" => number("p-"),
        _ => number(""),
    };
    if ok { Ok(()) } else { Err(format!("{name} is {text:?}")) }
}

// ---------------------------------------------------------------------------------------------
// pods and mounts

/// One pod volume: its own token, its service account, its target.
#[derive(Clone)]
struct Pod {
    name: String,
    attributes: String,
    target: PathBuf,
}

impl Pod {
    /// Pod `i` of service account `app-<i % accounts>`, its target under `kubelet`.
    fn new(kubelet: &Kubelet, i: usize, accounts: usize) -> Pod {
        let name = format!("pod-{i:04}");
        let sa = format!("app-{}", i % accounts);
        let token = token(&name, &sa);
        let attributes = pod_attrs(&name, &sa, OBJECTS, Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[]);
        Pod { target: kubelet.target(&pod_uid(&name)), name, attributes }
    }

    /// The request as driver v1.6 sends it, with kubelet's 2-minute deadline.
    fn request(&self) -> tonic::Request<MountRequest> {
        let mut request = tonic::Request::new(mount_request(&self.attributes, &self.target));
        request.set_timeout(Duration::from_secs(120));
        request
    }
}

/// A kubelet root on tmpfs (`/dev/shm`, where there is one), as target paths are on a node:
/// hundreds of sets are written and removed far faster there than on a disk.
struct Kubelet(tempfile::TempDir);

impl Kubelet {
    fn new() -> Kubelet {
        let shm = Path::new("/dev/shm");
        let builder = tempfile::Builder::new().prefix("csi-load-").clone();
        let dir = if shm.is_dir() { builder.tempdir_in(shm) } else { builder.tempdir() };
        Kubelet(dir.expect("kubelet temp dir"))
    }

    /// The `--kubelet-path` flag for it.
    fn flag(&self) -> [String; 2] {
        ["--kubelet-path".to_string(), self.0.path().display().to_string()]
    }

    /// Creates `<kubelet>/pods/<pod_uid>/volumes/kubernetes.io~csi/secrets/mount`.
    fn target(&self, pod_uid: &str) -> PathBuf {
        let target = self.0.path().join("pods").join(pod_uid).join("volumes/kubernetes.io~csi/secrets/mount");
        std::fs::create_dir_all(&target).expect("create target dir");
        target
    }
}

/// The service accounts `app-0` … `app-<n-1>`, each annotated with its own role.
fn service_accounts(kube: &KubeApi, n: usize) {
    for i in 0..n {
        kube.service_account("default", &format!("app-{i}"), Some(role(&format!("app-{i}")).as_str()));
    }
}

/// A projected token for `pod` of `sa`, shaped as kubelet's (unique per pod; moto's STS does
/// not verify it).
fn token(pod: &str, sa: &str) -> String {
    let header = b64url(br#"{"alg":"RS256","kid":"load"}"#);
    let payload = serde_json::json!({
        "aud": [IRSA_AUDIENCE],
        "exp": 1_893_456_000u64,
        "iat": 1_700_000_000u64,
        "iss": "https://oidc.eks.us-west-2.amazonaws.com/id/LOAD",
        "kubernetes.io": {
            "namespace": "default",
            "pod": {"name": pod, "uid": pod_uid(pod)},
            "serviceaccount": {"name": sa, "uid": format!("{sa}-uid")},
        },
        "sub": format!("system:serviceaccount:default:{sa}"),
    });
    let signature = b64url(format!("signature-of-{pod}").as_bytes());
    format!("{header}.{}.{signature}", b64url(payload.to_string().as_bytes()))
}

/// One `Mount`: its latency, or why it failed.
async fn mount(mut client: Client, pod: &Pod) -> Result<Duration, String> {
    let started = Instant::now();
    let response = client.mount(pod.request()).await;
    let elapsed = started.elapsed();
    let response = response.map_err(|s| format!("{}: {:?}: {}", pod.name, s.code(), s.message()))?.into_inner();
    match response.error {
        Some(e) if !e.code.is_empty() => Err(format!("{}: error code {}", pod.name, e.code)),
        _ if response.object_version.is_empty() => Err(format!("{}: no object versions", pod.name)),
        _ => Ok(elapsed),
    }
}

/// Every pod mounts at once (one task each, one connection); the wall time and each result.
async fn all_at_once(client: &Client, pods: &[Pod]) -> (Duration, Vec<Result<Duration, String>>) {
    let started = Instant::now();
    let tasks: Vec<_> = pods
        .iter()
        .map(|pod| {
            let (client, pod) = (client.clone(), pod.clone());
            tokio::spawn(async move { mount(client, &pod).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap_or_else(|e| Err(format!("mount task: {e}"))));
    }
    (started.elapsed(), results)
}

/// The latencies, sorted; panics with the first failures when any mount failed.
fn latencies(what: &str, results: Vec<Result<Duration, String>>, provider: &Provider) -> Vec<Duration> {
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let failed: Vec<String> = failed.into_iter().filter_map(Result::err).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} mount(s) failed; first: {:#?}\nprovider log (tail):\n{}",
        failed.len(),
        &failed[..failed.len().min(5)],
        tail(&provider.logs(), 40)
    );
    let mut ok: Vec<Duration> = ok.into_iter().filter_map(Result::ok).collect();
    ok.sort();
    ok
}

/// The files of `target` read through their visible links (no swap in progress), checked as one set.
fn read_whole_set(target: &Path) -> Result<u64, String> {
    let files: HashMap<&str, String> = FILES
        .iter()
        .map(|name| std::fs::read_to_string(target.join(name)).map(|text| (*name, text)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", target.display()))?;
    check_set(&files).map_err(|e| format!("{}: {e}", target.display()))
}

// ---------------------------------------------------------------------------------------------
// the provider process

/// The provider's resident memory, open descriptors and threads (`/proc/<pid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    rss_kib: u64,
    fds: usize,
    threads: u64,
}

impl Usage {
    fn of(pid: u32) -> Usage {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/<pid>/fd").count();
        Usage { rss_kib: field("VmRSS:"), fds, threads: field("Threads:") }
    }

    fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RSS {:.1} MiB, {} fds, {} threads", self.rss_mib(), self.fds, self.threads)
    }
}

/// Samples the provider every `every` until `stop`; the samples, with the seconds since start.
fn sample(pid: u32, every: Duration, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<(f64, Usage)>> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            samples.push((started.elapsed().as_secs_f64(), Usage::of(pid)));
            tokio::time::sleep(every).await;
        }
        samples
    })
}

/// The test's soft descriptor limit raised to its hard limit (capped at 65,536), so the test
/// process (which also runs the recording proxy) and the provider it spawns are not limited by a
/// low default; returns the limit now in force.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0, "getrlimit");
    let wanted = limit.rlim_max.min(65_536);
    if limit.rlim_cur < wanted {
        limit.rlim_cur = wanted;
        // SAFETY: setrlimit reads one rlimit we own; raising the soft limit up to the hard one
        // needs no privilege.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0, "setrlimit");
    }
    limit.rlim_cur
}

/// The provider's log lines (JSON format) at `WARN` or `ERROR`.
fn warnings(logs: &str) -> Vec<String> {
    logs.lines()
        .filter(|line| {
            let level = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("level").and_then(|l| l.as_str()).map(str::to_string));
            // A line that is not JSON is not one of ours (a panic message): count it.
            level.is_none_or(|l| l == "WARN" || l == "ERROR")
        })
        .map(str::to_string)
        .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Calls per operation (`AssumeRoleWithWebIdentity`, `BatchGetSecretValue`, ...).
fn per_operation(rec: &Recorder) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for call in rec.calls() {
        let op = call.operation().rsplit('.').next().unwrap_or_default().to_string();
        *out.entry(op).or_default() += 1;
    }
    out
}

fn show_calls(calls: &BTreeMap<String, usize>) -> String {
    let total: usize = calls.values().sum();
    let each: Vec<String> = calls.iter().map(|(op, n)| format!("{n} {op}")).collect();
    format!("{total} ({})", if each.is_empty() { "none".to_string() } else { each.join(", ") })
}

/// Service-account GETs the Kubernetes API stand-in answered.
fn service_account_gets(kube: &KubeApi) -> usize {
    kube.all_requests().iter().filter(|r| r.path.contains("/serviceaccounts/")).count()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Prints `text` and writes it to `<target>/tmp/load/<name>.md`.
fn report(name: &str, text: &str) {
    eprintln!("\n{text}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("load");
    let path = dir.join(format!("{name}.md"));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => eprintln!("figures written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

fn env_number(key: &str, default: u64) -> u64 {
    match std::env::var(key) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{key}={v:?} is not a number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------------
// 500 concurrent mounts

const LOAD_PODS: usize = 500;
/// Ten Deployments of fifty: ten roles.
const LOAD_ACCOUNTS: usize = 10;
/// Long enough that nothing read by the first mounts expires before the re-syncs, however slow
/// the machine: the re-sync round must then cost no AWS call.
const LOAD_CACHE_TTL: &str = "10m";
/// RSS bound after the 500 mounts and re-syncs (debug build; it idles at about 32 MiB and has
/// ended at 54–80 MiB: the credentials, sets and values of 500 pods, and the allocator arenas of
/// the threads that wrote them).
const LOAD_MAX_RSS_MIB: f64 = 128.0;
/// Descriptors the provider may keep after the burst beyond its idle count: kept-alive
/// connections to each AWS endpoint and the Kubernetes API (ten have been seen).
const LOAD_FD_MARGIN: usize = 16;
/// The soft descriptor limit many hosts still default to; the provider does not raise its own.
const COMMON_SOFT_FD_LIMIT: usize = 1024;

/// One round of all the pods mounting at once.
struct Round {
    wall: Duration,
    latencies: Vec<Duration>,
    calls: BTreeMap<String, usize>,
    service_account_gets: usize,
    after: Usage,
}

impl Round {
    /// Every pod mounts at once; the calls and lookups it cost are counted, then forgotten.
    async fn run(what: &str, w: &World, provider: &Provider, client: &Client, pods: &[Pod]) -> Round {
        let gets_before = service_account_gets(&w.kube);
        let (wall, results) = all_at_once(client, pods).await;
        let latencies = latencies(what, results, provider);
        let calls = per_operation(&w.rec);
        w.rec.forget_calls();
        let service_account_gets = service_account_gets(&w.kube) - gets_before;
        Round { wall, latencies, calls, service_account_gets, after: Usage::of(provider.pid()) }
    }

    fn row(&self, what: &str) -> String {
        let rate = self.latencies.len() as f64 / self.wall.as_secs_f64();
        let max = self.latencies.last().copied().unwrap_or_default();
        format!(
            "| {what} | {:.2} s | {rate:.0} | {} | {} | {} | {} | {} |",
            self.wall.as_secs_f64(),
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 99.0)),
            ms(max),
            show_calls(&self.calls),
            self.service_account_gets
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_mounts() {
    let fd_limit = raise_fd_limit();
    let Some(w) = World::start() else { return };
    seed(&w).await;
    service_accounts(&w.kube, LOAD_ACCOUNTS);
    let kubelet = Kubelet::new();
    let flags = ["--log-level", "info", "--log-format", "json", "--cache-ttl", LOAD_CACHE_TTL];
    let provider = w.provider().args(&kubelet.flag()).args(&flags).start();
    let pods: Vec<Pod> = (0..LOAD_PODS).map(|i| Pod::new(&kubelet, i, LOAD_ACCOUNTS)).collect();
    let client = provider.client().await;
    let idle = Usage::of(provider.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(provider.pid(), Duration::from_millis(20), stop.clone());
    let cold = Round::run("first mounts", &w, &provider, &client, &pods).await;
    let resync = Round::run("re-syncs", &w, &provider, &client, &pods).await;
    stop.store(true, Ordering::Relaxed);
    let peak = peak(idle, &sampler.await.expect("sampler"));
    for pod in &pods {
        assert_eq!(read_whole_set(&pod.target), Ok(0), "{}", pod.name);
    }
    report("five_hundred_concurrent_mounts", &load_figures(&cold, &resync, idle, peak, fd_limit));
    assert_load(&provider, &cold, &resync, idle, peak);
}

/// The largest of each measure over `samples` and `idle`.
fn peak(idle: Usage, samples: &[(f64, Usage)]) -> Usage {
    samples.iter().fold(idle, |a, (_, b)| Usage {
        rss_kib: a.rss_kib.max(b.rss_kib),
        fds: a.fds.max(b.fds),
        threads: a.threads.max(b.threads),
    })
}

fn load_figures(cold: &Round, resync: &Round, idle: Usage, peak: Usage, fd_limit: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {LOAD_PODS} concurrent mounts (debug build, {LOAD_ACCOUNTS} roles, one token per pod)\n");
    let _ = writeln!(out, "| | wall | mounts/s | p50 | p99 | max | AWS calls | service-account GETs |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|---:|");
    let _ = writeln!(out, "{}", cold.row("first mount"));
    let _ = writeln!(out, "{}", resync.row("re-sync"));
    let _ = writeln!(out, "\n- provider idle: {idle}");
    let _ = writeln!(out, "- peak while mounting (sampled every 20 ms): {peak}");
    let _ = writeln!(out, "- after the first mounts: {}", cold.after);
    let _ = writeln!(out, "- after the re-syncs: {}", resync.after);
    let _ = writeln!(out, "- descriptor limit (soft) of the test and the provider: {fd_limit}");
    out
}

fn assert_load(provider: &Provider, cold: &Round, resync: &Round, idle: Usage, peak: Usage) {
    let problems = warnings(&provider.logs());
    let first = &problems[..3.min(problems.len())];
    assert!(problems.is_empty(), "the provider logged {} warning(s); first: {first:#?}", problems.len());
    let after = resync.after;
    assert!(after.rss_mib() < LOAD_MAX_RSS_MIB, "RSS after the mounts: {after} (bound {LOAD_MAX_RSS_MIB} MiB)");
    assert!(
        after.rss_kib <= cold.after.rss_kib + rss_margin_kib(cold.after.rss_kib),
        "RSS grew on a re-sync round: {} → {after}",
        cold.after
    );
    assert!(after.fds <= idle.fds + LOAD_FD_MARGIN, "descriptors left open: idle {idle}, after {after}");
    assert!(peak.fds < COMMON_SOFT_FD_LIMIT, "descriptors at the peak: {peak}");
    let resync_calls: usize = resync.calls.values().sum();
    assert_eq!(resync_calls, 0, "re-syncs within the TTL, same tokens, read nothing: {}", show_calls(&resync.calls));
    for (what, round) in [("first mounts", cold), ("re-syncs", resync)] {
        assert!(
            round.service_account_gets <= LOAD_ACCOUNTS,
            "{what}: {} service-account GETs for {LOAD_ACCOUNTS} service accounts: concurrent mounts of one \
             service account should share one lookup (at the default --qps 5 each extra GET queues the rest \
             200 ms longer)",
            round.service_account_gets
        );
    }
}

// ---------------------------------------------------------------------------------------------
// soak

/// The soak's knobs, from the environment.
#[derive(Debug, Clone, Copy)]
struct SoakPlan {
    /// `SOAK_SECONDS` (default 60; `scripts/soak.sh` passes 600).
    duration: Duration,
    /// `SOAK_PODS` (default 16), of two service accounts.
    pods: usize,
    /// `SOAK_ROTATE_MS` (default 3000): how often the values change in moto.
    rotate_every: Duration,
    /// `SOAK_RESYNC_MS` (default 250): how often each pod calls `Mount` again.
    resync_every: Duration,
    /// `SOAK_READERS` (default 2): reader threads.
    readers: usize,
}

impl SoakPlan {
    fn from_env() -> SoakPlan {
        let ms = |key, default| Duration::from_millis(env_number(key, default));
        SoakPlan {
            duration: Duration::from_secs(env_number("SOAK_SECONDS", 60)),
            pods: env_number("SOAK_PODS", 16) as usize,
            rotate_every: ms("SOAK_ROTATE_MS", 3000),
            resync_every: ms("SOAK_RESYNC_MS", 250),
            readers: env_number("SOAK_READERS", 2) as usize,
        }
    }
}

/// How long a value may be served from the provider's cache during the soak: short, so most
/// rotations reach the pods and sets are swapped all the time.
const SOAK_CACHE_TTL: &str = "1s";
const SOAK_ACCOUNTS: usize = 2;
/// How often the provider's RSS and descriptors are sampled.
const SOAK_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What the soak counted; every problem's first few descriptions are kept.
#[derive(Default)]
struct Tally {
    mounts: AtomicU64,
    failed_mounts: AtomicU64,
    /// Whole sets read through one resolution of `..data` and checked.
    sets_checked: AtomicU64,
    /// Files read alone through their visible links and checked.
    files_checked: AtomicU64,
    /// Sets replaced and removed while being read (the reader resolves `..data` again).
    sets_gone: AtomicU64,
    /// Times a reader found a pod's set at a newer generation than it last saw there.
    swaps_seen: AtomicU64,
    /// Torn sets, malformed or missing files: the atomic swap failed.
    inconsistent: AtomicU64,
    /// A set older than one the same reader saw before in the same pod.
    regressions: AtomicU64,
    problems: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn problem(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        if problems.len() < 10 {
            problems.push(what);
        }
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A set read through one resolution of `..data`: the directory is opened once and every file
/// opened relative to it, so all of them come from the same set (what an application that reads
/// `..data/<file>` after resolving it gets). The reader pauses between files, so it is often
/// still reading a set when the next one is swapped in and the old one removed.
enum SetRead {
    Generation(u64),
    /// The set was replaced and removed while it was read.
    Gone,
}

/// The pause between two files of one set.
const BETWEEN_FILES: Duration = Duration::from_millis(1);

fn read_through_data(target: &Path) -> Result<SetRead, String> {
    let dir = match File::open(target.join("..data")) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("..data is missing".into()),
        Err(e) => return Err(format!("open ..data: {e}")),
    };
    let mut files = HashMap::new();
    for name in FILES {
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&dir, name, flags, rustix::fs::Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(SetRead::Gone),
            Err(e) => return Err(format!("open ..data/{name}: {e}")),
        };
        let mut text = String::new();
        File::from(fd).read_to_string(&mut text).map_err(|e| format!("read ..data/{name}: {e}"))?;
        files.insert(name, text);
        std::thread::sleep(BETWEEN_FILES);
    }
    check_set(&files).map(SetRead::Generation)
}

/// Every file read alone through its visible link: each must be there, whole and well formed.
fn read_visible(target: &Path) -> Result<(), String> {
    for name in FILES {
        let text = std::fs::read_to_string(target.join(name)).map_err(|e| format!("{name}: {e}"))?;
        check_file(name, &text)?;
    }
    Ok(())
}

/// A reader thread: visits every pod in turn until `stop`, reading its set both ways.
fn reader(targets: Arc<Vec<PathBuf>>, tally: Arc<Tally>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last_seen = vec![0u64; targets.len()];
        while !stop.load(Ordering::Relaxed) {
            for (i, target) in targets.iter().enumerate() {
                read_pod(i, target, &mut last_seen[i], &tally);
            }
        }
    })
}

fn read_pod(i: usize, target: &Path, last_seen: &mut u64, tally: &Tally) {
    match read_through_data(target) {
        Ok(SetRead::Generation(g)) => {
            tally.sets_checked.fetch_add(1, Ordering::Relaxed);
            if g < *last_seen {
                tally.problem(&tally.regressions, format!("pod {i}: generation {g} after {last_seen}"));
            } else if g > *last_seen {
                tally.swaps_seen.fetch_add(1, Ordering::Relaxed);
                *last_seen = g;
            }
        }
        Ok(SetRead::Gone) => {
            tally.sets_gone.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tally.problem(&tally.inconsistent, format!("pod {i} via ..data: {e}")),
    }
    match read_visible(target) {
        Ok(()) => {
            tally.files_checked.fetch_add(FILES.len() as u64, Ordering::Relaxed);
        }
        Err(e) => tally.problem(&tally.inconsistent, format!("pod {i} via its links: {e}")),
    }
}

/// One pod re-syncing every `every` until `until`; the latencies of its mounts.
async fn resync_loop(client: Client, pod: Pod, until: Instant, every: Duration, tally: Arc<Tally>) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while Instant::now() < until {
        match mount(client.clone(), &pod).await {
            Ok(latency) => latencies.push(latency),
            Err(e) => tally.problem(&tally.failed_mounts, e),
        }
        tally.mounts.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(every).await;
    }
    latencies
}

/// Rotates every `every` until `until`; the last generation written.
async fn rotator(w: &World, until: Instant, every: Duration) -> u64 {
    let mut generation = 0;
    let mut next = Instant::now() + every;
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        generation += 1;
        rotate(w, generation).await;
        next += every;
    }
    generation
}

/// Whether a series stayed flat: the last quarter's maximum is not above the first quarter's
/// maximum by more than `margin`. The first quarter holds the warm-up (allocator arenas, pools,
/// caches filling), so only growth that continues after it counts.
fn quarters(values: &[u64]) -> (u64, u64) {
    let quarter = (values.len() / 4).max(1);
    let first = values[..quarter].iter().copied().max().unwrap_or(0);
    let last = values[values.len() - quarter..].iter().copied().max().unwrap_or(0);
    (first, last)
}

/// RSS may end at most this far above the first quarter's peak: 4 MiB or 5 %, whichever is more
/// (allocator noise: freed memory stays in glibc's per-thread arenas, and which arena serves a
/// request depends on the thread; a leak of even one set per mount grows by far more, see
/// the figures).
fn rss_margin_kib(first_quarter_max: u64) -> u64 {
    (4 * 1024).max(first_quarter_max / 20)
}

/// Descriptors may end at most this many above the first quarter's peak (an AWS or Kubernetes
/// connection opened by a call in flight at the moment of the sample).
const FD_MARGIN: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "one minute or more: scripts/soak.sh (SOAK_SECONDS, default 600) or scripts/test.sh soak (60 s)"]
async fn soak() {
    let plan = SoakPlan::from_env();
    raise_fd_limit();
    let Some(w) = World::start() else { return };
    seed(&w).await;
    service_accounts(&w.kube, SOAK_ACCOUNTS);
    let kubelet = Kubelet::new();
    let provider = w
        .provider()
        .args(&kubelet.flag())
        .args(&["--log-level", "info", "--log-format", "json", "--cache-ttl", SOAK_CACHE_TTL])
        .start();
    let pods: Vec<Pod> = (0..plan.pods).map(|i| Pod::new(&kubelet, i, SOAK_ACCOUNTS)).collect();
    let client = provider.client().await;
    let (_, first) = all_at_once(&client, &pods).await;
    latencies("first mounts", first, &provider);
    w.rec.forget_calls();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let targets = Arc::new(pods.iter().map(|p| p.target.clone()).collect::<Vec<_>>());
    let readers: Vec<_> = (0..plan.readers).map(|_| reader(targets.clone(), tally.clone(), stop.clone())).collect();
    let sampler = sample(provider.pid(), SOAK_SAMPLE_EVERY, stop.clone());
    let started = Instant::now();
    let until = started + plan.duration;
    let drivers: Vec<_> = pods
        .iter()
        .map(|pod| tokio::spawn(resync_loop(client.clone(), pod.clone(), until, plan.resync_every, tally.clone())))
        .collect();
    let last_generation = rotator(&w, until, plan.rotate_every).await;
    let mut mount_latencies = Vec::new();
    for driver in drivers {
        mount_latencies.extend(driver.await.expect("driver task"));
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader thread");
    }
    let samples = sampler.await.expect("sampler");
    let calls = per_operation(&w.rec);

    // The last rotation reaches every pod on its next re-sync past the cache TTL.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, last) = all_at_once(&client, &pods).await;
    latencies("final re-syncs", last, &provider);
    let finals: Vec<Result<u64, String>> = pods.iter().map(|p| read_whole_set(&p.target)).collect();
    mount_latencies.sort();

    let figures = soak_figures(&plan, elapsed, last_generation, &tally, &mount_latencies, &calls, &samples);
    report("soak", &figures);

    let problems: Vec<String> = tally.problems.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(Tally::get(&tally.failed_mounts), 0, "failed mounts: {problems:#?}");
    assert_eq!(Tally::get(&tally.inconsistent), 0, "inconsistent reads: {problems:#?}");
    assert_eq!(Tally::get(&tally.regressions), 0, "sets went back in time: {problems:#?}");
    assert!(Tally::get(&tally.sets_checked) > 0, "the readers checked no set");
    assert!(Tally::get(&tally.swaps_seen) > 0 || last_generation == 0, "the readers never saw a rotation");
    for (pod, found) in pods.iter().zip(&finals) {
        assert_eq!(found, &Ok(last_generation), "{}: the last rotation after the soak", pod.name);
    }
    let logged = warnings(&provider.logs());
    assert!(
        logged.is_empty(),
        "the provider logged {} warning(s); first: {:#?}",
        logged.len(),
        &logged[..3.min(logged.len())]
    );
    assert_flat(&samples);
}

fn assert_flat(samples: &[(f64, Usage)]) {
    assert!(samples.len() >= 8, "too few samples to judge ({})", samples.len());
    let rss: Vec<u64> = samples.iter().map(|(_, u)| u.rss_kib).collect();
    let fds: Vec<u64> = samples.iter().map(|(_, u)| u.fds as u64).collect();
    let (rss_first, rss_last) = quarters(&rss);
    assert!(
        rss_last <= rss_first + rss_margin_kib(rss_first),
        "RSS grew: first quarter max {rss_first} KiB, last quarter max {rss_last} KiB"
    );
    let (fds_first, fds_last) = quarters(&fds);
    assert!(fds_last <= fds_first + FD_MARGIN, "descriptors grew: first quarter max {fds_first}, last {fds_last}");
}

fn soak_figures(
    plan: &SoakPlan,
    elapsed: Duration,
    rotations: u64,
    tally: &Tally,
    latencies: &[Duration],
    calls: &BTreeMap<String, usize>,
    samples: &[(f64, Usage)],
) -> String {
    let secs = elapsed.as_secs_f64();
    let total_calls: usize = calls.values().sum();
    let mounts = Tally::get(&tally.mounts);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Soak: {:.0} s, {} pods re-syncing every {} ms, a rotation every {} ms, --cache-ttl {SOAK_CACHE_TTL}, \
         {} readers (debug build)\n",
        secs,
        plan.pods,
        plan.resync_every.as_millis(),
        plan.rotate_every.as_millis(),
        plan.readers
    );
    let _ = writeln!(out, "- rotations: {rotations}");
    let _ = writeln!(
        out,
        "- mounts: {mounts} ({:.0}/s), failed: {}; p50 {}, p99 {}",
        mounts as f64 / secs,
        Tally::get(&tally.failed_mounts),
        ms(percentile(latencies, 50.0)),
        ms(percentile(latencies, 99.0))
    );
    let _ = writeln!(
        out,
        "- sets read through `..data` and checked: {}; files read through their links and checked: {}; \
         sets replaced while read (read again): {}; new generations seen by readers: {}",
        Tally::get(&tally.sets_checked),
        Tally::get(&tally.files_checked),
        Tally::get(&tally.sets_gone),
        Tally::get(&tally.swaps_seen)
    );
    let _ = writeln!(
        out,
        "- inconsistent reads: {}; sets older than one seen before: {}",
        Tally::get(&tally.inconsistent),
        Tally::get(&tally.regressions)
    );
    let _ = writeln!(out, "- AWS calls: {} = {:.1}/s", show_calls(calls), total_calls as f64 / secs);
    let _ = writeln!(out, "{}", usage_figures(samples));
    out
}

/// First, last and maximum of the samples, and the quarters [`assert_flat`] compares.
fn usage_figures(samples: &[(f64, Usage)]) -> String {
    let (Some((_, first)), Some((t, last))) = (samples.first(), samples.last()) else {
        return "- no samples".to_string();
    };
    let max_rss = samples.iter().map(|(_, u)| u.rss_kib).max().unwrap_or(0);
    let max_fds = samples.iter().map(|(_, u)| u.fds).max().unwrap_or(0);
    let rss: Vec<u64> = samples.iter().map(|(_, u)| u.rss_kib).collect();
    let fds: Vec<u64> = samples.iter().map(|(_, u)| u.fds as u64).collect();
    let ((rss_q1, rss_q4), (fds_q1, fds_q4)) = (quarters(&rss), quarters(&fds));
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    format!(
        "- provider ({} samples over {t:.0} s): first {first}; last {last}; max RSS {}, max {max_fds} fds\n\
         - flat: RSS first-quarter max {} → last-quarter max {} (margin {}); fds {fds_q1} → {fds_q4} (margin {FD_MARGIN})",
        samples.len(),
        mib(max_rss),
        mib(rss_q1),
        mib(rss_q4),
        mib(rss_margin_kib(rss_q1))
    )
}
