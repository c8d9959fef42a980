//! The soak: pods re-syncing while the values rotate, readers checking every read, the provider
//! sampled.

use crate::figures::{env_number, ms, per_operation, percentile, report, show_calls};
use crate::pods::{Client, Kubelet, Pod, all_at_once, latencies, mount, service_accounts};
use crate::process::{FD_MARGIN, Usage, quarters, raise_fd_limit, rss_margin_kib, sample, warnings};
use crate::readers::{Tally, reader};
use crate::set::{read_whole_set, rotate, seed};
use crate::support::world::World;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The soak's knobs, from the environment.
#[derive(Debug, Clone, Copy)]
struct SoakPlan {
    /// `SOAK_SECONDS` (default 60; `scripts/soak.sh` passes 600).
    pub duration: Duration,
    /// `SOAK_PODS` (default 16), of two service accounts.
    pub pods: usize,
    /// `SOAK_ROTATE_MS` (default 3000): how often the values change in moto.
    pub rotate_every: Duration,
    /// `SOAK_RESYNC_MS` (default 250): how often each pod calls `Mount` again.
    pub resync_every: Duration,
    /// `SOAK_READERS` (default 2): reader threads.
    pub readers: usize,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "one minute or more: scripts/soak.sh (SOAK_SECONDS, default 600) or scripts/test.sh soak (60 s)"]
pub async fn soak() {
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
    ) + &format!("\n- over time (max of each tenth): {}", tenths(samples))
}

/// The largest RSS and descriptor count of each tenth of the run.
fn tenths(samples: &[(f64, Usage)]) -> String {
    let size = samples.len().div_ceil(10).max(1);
    let parts: Vec<String> = samples
        .chunks(size)
        .map(|chunk| {
            let rss = chunk.iter().map(|(_, u)| u.rss_kib).max().unwrap_or(0) as f64 / 1024.0;
            let fds = chunk.iter().map(|(_, u)| u.fds).max().unwrap_or(0);
            format!("{rss:.1} MiB/{fds}")
        })
        .collect();
    parts.join(", ")
}
