//! 500 concurrent mounts, then 500 concurrent re-syncs.

use crate::figures::{ms, per_operation, percentile, report, service_account_gets, show_calls};
use crate::pods::{Client, Kubelet, Pod, all_at_once, latencies, service_accounts};
use crate::process::{Usage, raise_fd_limit, rss_margin_kib, sample, warnings};
use crate::set::{read_whole_set, seed};
use crate::support::Provider;
use crate::support::world::World;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
/// connections, about one per call that was in flight at once to each AWS endpoint and to the
/// Kubernetes API (with one lookup per service account, ten of those); 9–11 have been seen. A
/// descriptor leaked per mount would be hundreds.
const LOAD_FD_MARGIN: usize = 32;
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
pub async fn five_hundred_concurrent_mounts() {
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
