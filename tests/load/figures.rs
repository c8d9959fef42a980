//! Counting calls, percentiles and writing the figures.

use crate::support::kube::KubeApi;
use crate::support::recorder::Recorder;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Calls per operation (`AssumeRoleWithWebIdentity`, `BatchGetSecretValue`, ...).
pub fn per_operation(rec: &Recorder) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for call in rec.calls() {
        let op = call.operation().rsplit('.').next().unwrap_or_default().to_string();
        *out.entry(op).or_default() += 1;
    }
    out
}

pub fn show_calls(calls: &BTreeMap<String, usize>) -> String {
    let total: usize = calls.values().sum();
    let each: Vec<String> = calls.iter().map(|(op, n)| format!("{n} {op}")).collect();
    format!("{total} ({})", if each.is_empty() { "none".to_string() } else { each.join(", ") })
}

/// Service-account GETs the Kubernetes API stand-in answered.
pub fn service_account_gets(kube: &KubeApi) -> usize {
    kube.all_requests().iter().filter(|r| r.path.contains("/serviceaccounts/")).count()
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Prints `text` and writes it to `<target>/tmp/load/<name>.md`.
pub fn report(name: &str, text: &str) {
    eprintln!("\n{text}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("load");
    let path = dir.join(format!("{name}.md"));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => eprintln!("figures written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

pub fn env_number(key: &str, default: u64) -> u64 {
    match std::env::var(key) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{key}={v:?} is not a number")),
        Err(_) => default,
    }
}
