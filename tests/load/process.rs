//! The provider process seen from outside: RSS, descriptors and threads from `/proc`, its log,
//! and what "flat" means for a series of samples.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The provider's resident memory, open descriptors and threads (`/proc/<pid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub rss_kib: u64,
    pub fds: usize,
    pub threads: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Usage {
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

    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RSS {:.1} MiB, {} fds, {} threads", self.rss_mib(), self.fds, self.threads)
    }
}

/// Samples the provider every `every` until `stop`; the samples, with the seconds since start.
pub fn sample(pid: u32, every: Duration, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<(f64, Usage)>> {
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
#[allow(unsafe_code)] // getrlimit/setrlimit: no safe wrapper among our dependencies
pub fn raise_fd_limit() -> u64 {
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
pub fn warnings(logs: &str) -> Vec<String> {
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

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a series stayed flat: the last quarter's maximum is not above the first quarter's
/// maximum by more than `margin`. The first quarter holds the warm-up (allocator arenas, pools,
/// caches filling), so only growth that continues after it counts.
pub fn quarters(values: &[u64]) -> (u64, u64) {
    let quarter = (values.len() / 4).max(1);
    let first = values[..quarter].iter().copied().max().unwrap_or(0);
    let last = values[values.len() - quarter..].iter().copied().max().unwrap_or(0);
    (first, last)
}

/// RSS may end at most this far above the first quarter's peak: 4 MiB or 5 %, whichever is more
/// (allocator noise: freed memory stays in glibc's per-thread arenas, and which arena serves a
/// request depends on the thread; a leak of even one set per mount grows by far more, see
/// the figures).
pub fn rss_margin_kib(first_quarter_max: u64) -> u64 {
    (4 * 1024).max(first_quarter_max / 20)
}

/// Descriptors may end at most this many above the first quarter's peak: connections opened by
/// the calls in flight at the moment of a sample (AWS and Kubernetes API) come and go; samples
/// have ranged over 21–28 in one run. A descriptor leaked per mount or per rotation exceeds it
/// within seconds (60 mounts and 20 rotations a minute); a leak slower than one every few
/// minutes shows only in the ten-minute run.
pub const FD_MARGIN: u64 = 8;
