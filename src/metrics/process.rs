//! The standard process metrics, under their standard unprefixed names
//! (`process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_cpu_seconds_total`,
//! `process_open_fds`, `process_max_fds`, `process_threads`, `process_start_time_seconds`), read
//! from `/proc/self` at each scrape. Where `/proc` cannot be read (not Linux), a series is left
//! out rather than reported as 0; the start time then falls back to when the registry was built.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::time::{SystemTime, UNIX_EPOCH};

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, which Linux fixes at 100 in
/// its user-space ABI on the architectures we build for (x86_64, aarch64).
const USER_HZ: f64 = 100.0;

/// Bytes read from one `/proc` file at most (each is a few KiB; this bounds a surprise).
const MAX_PROC_FILE: u64 = 64 * 1024;

/// Collects the process metrics at each scrape.
#[derive(Debug)]
pub(crate) struct ProcessCollector {
    /// Seconds since the epoch when the registry was built: the start time when `/proc` says none.
    fallback_start: f64,
}

impl ProcessCollector {
    pub(crate) fn new() -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
        ProcessCollector { fallback_start: now }
    }
}

/// What one scrape read from `/proc`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Sample {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) resident_bytes: Option<i64>,
    pub(crate) virtual_bytes: Option<i64>,
    pub(crate) threads: Option<i64>,
    pub(crate) open_fds: Option<i64>,
    pub(crate) max_fds: Option<i64>,
}

fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path).ok()?.take(MAX_PROC_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

/// `utime + stime` (in seconds) and `starttime` (in ticks after boot) from `/proc/self/stat`.
/// The command name (field 2) may hold spaces and parentheses: fields are counted after the last `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<(f64, f64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field N is fields[N - 3].
    let ticks = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let cpu = (ticks(14)? + ticks(15)?) as f64 / USER_HZ;
    Some((cpu, ticks(22)? as f64))
}

/// A `Name:   value kB` line of `/proc/self/status`, in bytes (or as a count without `kB`).
pub(crate) fn status_value(status: &str, name: &str) -> Option<i64> {
    let line = status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?;
    let mut words = line.split_whitespace();
    let value: i64 = words.next()?.parse().ok()?;
    Some(if words.next() == Some("kB") { value.checked_mul(1024)? } else { value })
}

/// The soft `Max open files` limit of `/proc/self/limits` (`unlimited` is left out).
pub(crate) fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
pub(crate) fn boot_time(stat: &str) -> Option<f64> {
    stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

fn sample() -> Sample {
    let stat = read_small("/proc/self/stat").and_then(|s| parse_stat(&s));
    let boot = read_small("/proc/stat").and_then(|s| boot_time(&s));
    let status = read_small("/proc/self/status").unwrap_or_default();
    Sample {
        cpu_seconds: stat.map(|(cpu, _)| cpu),
        start_time_seconds: stat.zip(boot).map(|((_, ticks), boot)| boot + ticks / USER_HZ),
        resident_bytes: status_value(&status, "VmRSS"),
        virtual_bytes: status_value(&status, "VmSize"),
        threads: status_value(&status, "Threads"),
        open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as i64),
        max_fds: read_small("/proc/self/limits").and_then(|l| max_open_files(&l)),
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: Option<i64>) -> std::fmt::Result {
    let Some(value) = value else { return Ok(()) };
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = sample();
        if let Some(cpu) = s.cpu_seconds {
            let metric = ConstCounter::new(cpu);
            let help = "Total user and system CPU time spent in seconds";
            metric.encode(encoder.encode_descriptor("process_cpu_seconds", help, None, metric.metric_type())?)?;
        }
        let start = ConstGauge::new(s.start_time_seconds.unwrap_or(self.fallback_start));
        let help = "Start time of the process since unix epoch in seconds";
        start.encode(encoder.encode_descriptor("process_start_time_seconds", help, None, start.metric_type())?)?;
        gauge(&mut encoder, "process_resident_memory_bytes", "Resident memory size in bytes", s.resident_bytes)?;
        gauge(&mut encoder, "process_virtual_memory_bytes", "Virtual memory size in bytes", s.virtual_bytes)?;
        gauge(&mut encoder, "process_open_fds", "Number of open file descriptors", s.open_fds)?;
        gauge(&mut encoder, "process_max_fds", "Maximum number of open file descriptors", s.max_fds)?;
        gauge(&mut encoder, "process_threads", "Number of OS threads in the process", s.threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 9 0 123456 0 0";
        assert_eq!(parse_stat(stat), Some((4.0, 123456.0)));
        assert_eq!(parse_stat("4242 (truncated"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None, "too few fields");
    }

    #[test]
    fn status_limits_and_boot_time_are_read() {
        let status = "Name:\tcsi\nVmSize:\t  20480 kB\nVmRSS:\t   1024 kB\nThreads:\t7\n";
        assert_eq!(status_value(status, "VmRSS"), Some(1024 * 1024));
        assert_eq!(status_value(status, "VmSize"), Some(20480 * 1024));
        assert_eq!(status_value(status, "Threads"), Some(7));
        assert_eq!(status_value(status, "VmSwap"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1048576));
        assert_eq!(max_open_files("Max open files            unlimited unlimited files"), None);
        assert_eq!(boot_time("cpu 1 2\nbtime 1764979200\n"), Some(1764979200.0));
    }

    #[test]
    fn this_process_is_sampled_on_linux() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let s = sample();
        assert!(s.resident_bytes.unwrap_or_default() > 0, "{s:?}");
        assert!(s.open_fds.unwrap_or_default() > 0, "{s:?}");
        assert!(s.start_time_seconds.unwrap_or_default() > 1.0e9, "{s:?}");
        assert!(s.cpu_seconds.is_some() && s.threads.unwrap_or_default() >= 1, "{s:?}");
    }
}
