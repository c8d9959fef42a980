//! The fleet simulator of issue 16 (`scripts/bench.sh fleet`): the provider's fetch, cache,
//! batching and budget code for N nodes in one process on tokio's paused clock, against a
//! simulated AWS that enforces the quotas. Prints one markdown table (and writes it to
//! `target/bench/fleet.md`): 100, 1,000 and 5,000 nodes, ours with today's defaults and with the
//! budget the chart computes, against the Go provider's call pattern on the same inputs.
//!
//!   cargo bench --bench fleet                  # the table (a few minutes)
//!   cargo bench --bench fleet -- 5000 budget   # one configuration
//!   FLEET_QUOTAS=higher cargo bench --bench fleet -- 5000 budget   # Parameter Store higher throughput
//!   cargo bench --bench fleet -- 1000 cold     # every node and pod starting at once: drain time
//!   cargo bench --bench fleet -- 5000 cold budget   # only the budget's cold start
//!   FLEET_HEADROOM=0.9 cargo bench --bench fleet -- 5000 budget   # another fleet.budgetHeadroom
//!   FLEET_HEADROOM_API=none cargo bench --bench fleet -- 5000 budget   # no fleet.budgetHeadroomByApi
//!   FLEET_AWS_BURST=10 cargo bench --bench fleet -- 1000   # AWS buckets of 10 s of quota (default 1)
//!   FLEET_QUOTAS=higher FLEET_BATCH=off cargo bench --bench fleet -- 5000 budget   # secrets read
//!                                    # one GetSecretValue each (--batch-get-secret-value=false)
//!   FLEET_POLLS=pod cargo bench --bench fleet -- 1000 budget   # each pod re-synced at its own
//!                                    # phase (driver v1.6); default: a node's round at once (v1.5)
//!
//! The steady-state rows start from a running fleet: every pod mounted, every cache warm with
//! values aged evenly across the TTL, each node's reconciler at its own phase; measured from the
//! first simulated second to the end, less the rollout window (its 5 minutes and one poll).

use csi_provider_aws::fleet::aws::Quotas;
use csi_provider_aws::fleet::{FleetConfig, FleetReport, go};
use std::fmt::Write as _;

/// The budget's headroom: the chart's `fleet.budgetHeadroom` (`FLEET_HEADROOM` overrides it) and
/// `fleet.budgetHeadroomByApi` (`FLEET_HEADROOM_API=GetSecretValue=0.8,...` overrides it; `none`:
/// every API at `FLEET_HEADROOM`).
const HEADROOM: f64 = csi_provider_aws::fleet::CHART_HEADROOM;

fn run(config: FleetConfig) -> FleetReport {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
    runtime.block_on(csi_provider_aws::fleet::run(config))
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}

fn row(out: &mut String, label: &str, r: &FleetReport) {
    use csi_provider_aws::fleet::ApiStats;
    let api = |m: &std::collections::BTreeMap<_, ApiStats>, name| {
        let s = m.iter().find(|(a, _)| format!("{a:?}") == name).map(|(_, s)| *s).unwrap_or_default();
        format!("{} / {:.1}", s.peak, s.mean)
    };
    let rotation = r
        .rotation_delay
        .map_or(format!("> {} ({} of {} pods)", secs(r.simulated), r.rotated_pods, r.rotation_pods), secs);
    let _ = writeln!(
        out,
        "| {} | {label} | {} | {} | {} | {} | {} | {} / {} | {} (bound {}) | {} | {} |",
        r.nodes,
        api(&r.steady, "GetParameters"),
        api(&r.steady, "BatchGetSecretValue"),
        api(&r.rollout, "GetParameters"),
        r.steady.values().map(|s| s.throttled).sum::<u64>(),
        r.rollout.values().map(|s| s.throttled).sum::<u64>(),
        secs(r.cold_rollout_p99),
        secs(r.cold_rollout_max),
        rotation,
        secs(r.rotation_bound),
        r.stale_served,
        secs(r.wall),
    );
}

fn go_row(out: &mut String, nodes: usize, config: &FleetConfig) {
    let q = &config.quotas;
    let gp = go::figures(config, nodes, q, csi_provider_aws_api("GetParameters"));
    let gsv = go::figures(config, nodes, q, csi_provider_aws_api("GetSecretValue"));
    let throttled = gp.throttled_per_second + gsv.throttled_per_second;
    let rotation =
        if throttled > 0.0 { "unbounded (re-syncs fail while throttled)".to_string() } else { secs(config.poll) };
    let _ = writeln!(
        out,
        "| {nodes} | Go pattern (computed) | {:.0} / {:.1} | GSV {:.0} / {:.1} | {:.0} | {:.0}/s | {:.0}/s | {} | {rotation} | — | — |",
        gp.steady,
        gp.steady,
        gsv.steady,
        gsv.steady,
        gp.rollout_peak,
        throttled,
        throttled,
        if throttled > 0.0 { "throttled" } else { "0 s" },
    );
}

/// The chart's `fleet.budgetHeadroomByApi`, or `FLEET_HEADROOM_API`'s.
fn headroom_by_api() -> Vec<(csi_provider_aws::fleet::Api, f64)> {
    match std::env::var("FLEET_HEADROOM_API") {
        Ok(list) => list
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (csi_provider_aws_api(k), v.parse().expect("a headroom")))
            .collect(),
        Err(_) => csi_provider_aws::fleet::CHART_HEADROOM_BY_API.to_vec(),
    }
}

fn csi_provider_aws_api(name: &str) -> csi_provider_aws::fleet::Api {
    csi_provider_aws::fleet::Api::ALL.into_iter().find(|a| a.as_str() == name).expect("known API")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let mut quotas = if std::env::var("FLEET_QUOTAS").as_deref() == Ok("higher") {
        Quotas::higher_throughput()
    } else {
        Quotas::standard()
    };
    // FLEET_QUOTA_SCALE=0.2: every quota scaled (1,000 nodes at 0.2 run each node's budget as
    // 5,000 nodes do, in a fifth of the time).
    if let Some(scale) = std::env::var("FLEET_QUOTA_SCALE").ok().and_then(|s| s.parse::<f64>().ok()) {
        quotas.0.values_mut().for_each(|q| *q *= scale);
    }
    let nodes: Vec<usize> = match args.first().and_then(|a| a.parse().ok()) {
        Some(n) => vec![n],
        None => vec![100, 1000, 5000],
    };
    let headroom = std::env::var("FLEET_HEADROOM").ok().and_then(|h| h.parse::<f64>().ok()).unwrap_or(HEADROOM);
    let burst = std::env::var("FLEET_AWS_BURST").ok().and_then(|b| b.parse::<f64>().ok()).unwrap_or(1.0);
    let cold = args.get(1).map(String::as_str) == Some("cold");
    let modes: Vec<bool> = match args.get(1).map(String::as_str) {
        Some("budget") => vec![true],
        Some("defaults") => vec![false],
        _ => vec![false, true],
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| nodes | provider | GetParameters/s steady peak / mean | BatchGetSecretValue/s steady peak / mean | GetParameters/s rollout peak / mean | throttled steady | throttled rollout | rollout cold mount p99 / max | rotation delay | stale served | wall |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &nodes {
        let base = FleetConfig {
            quotas: quotas.clone(),
            aws_burst: std::time::Duration::from_secs_f64(burst),
            cold_start: cold,
            ..FleetConfig::issue(n)
        };
        // FLEET_STALE=SECONDS: another --stale-if-throttled (an experiment; default 300).
        // FLEET_ROTATED_APP=1: rotate an app whose nodes run no rollout pod (default 0: the busiest).
        let base = match std::env::var("FLEET_ROTATED_APP").ok().and_then(|s| s.parse::<usize>().ok()) {
            Some(rotated_app) => FleetConfig { rotated_app, ..base },
            None => base,
        };
        // FLEET_BATCH=off: --batch-get-secret-value=false (one GetSecretValue per secret).
        let base = FleetConfig { batch_secrets: std::env::var("FLEET_BATCH").as_deref() != Ok("off"), ..base };
        // FLEET_POLLS=pod: each pod re-synced at its own phase (driver v1.6's kubelet republish);
        // default: each node's whole round at once (driver v1.5's reconciler).
        let base = FleetConfig { per_pod_polls: std::env::var("FLEET_POLLS").as_deref() == Ok("pod"), ..base };
        // FLEET_RESYNC_WAIT=SECONDS: another longest wait of a re-sync for its slot (an experiment).
        let base = match std::env::var("FLEET_RESYNC_WAIT").ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(s) => FleetConfig { resync_wait: std::time::Duration::from_secs(s), ..base },
            None => base,
        };
        let base = FleetConfig { budget_headroom_by_api: headroom_by_api(), ..base };
        let base = match std::env::var("FLEET_STALE").ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(s) => FleetConfig { stale_if_throttled: std::time::Duration::from_secs(s), ..base },
            None => base,
        };
        if cold {
            // `cold budget` / `cold defaults`: one of the two.
            let only = args.get(2).map(String::as_str);
            let budgets: Vec<bool> =
                [false, true].into_iter().filter(|b| only.is_none_or(|o| (o == "budget") == *b)).collect();
            for budget in budgets {
                let config = if budget { base.clone().with_budget(headroom) } else { base.clone() };
                let r = run(config);
                eprintln!("{r:?}");
                let drain = r.cold_drain.map_or(
                    format!("> {} ({} of {} pods)", secs(r.simulated), r.cold_mounted, n * base.pods_per_node),
                    secs,
                );
                let _ = writeln!(
                    out,
                    "| {n} | cold start, {} | drain {drain} (R / Q {}) | throttled in the warm-up {} | wall {} |",
                    if budget { "--aws-budget" } else { "defaults" },
                    secs(r.refresh_floor),
                    r.warmup_throttled,
                    secs(r.wall),
                );
                println!("{}", out.lines().last().unwrap_or_default());
            }
            continue;
        }
        go_row(&mut out, n, &base);
        for &budget in &modes {
            let config = if budget { base.clone().with_budget(headroom) } else { base.clone() };
            let label = if budget {
                let by_api: String =
                    base.budget_headroom_by_api.iter().map(|(a, h)| format!("; {} {h}", a.as_str())).collect();
                format!("ours, --aws-budget ({headroom} × quota / {n}{by_api})")
            } else {
                "ours, defaults (no budget)".into()
            };
            let report = run(config);
            eprintln!("{report:?}");
            row(&mut out, &label, &report);
            println!("{}", out.lines().last().unwrap_or_default());
        }
    }
    let base = FleetConfig { quotas: quotas.clone(), ..FleetConfig::issue(1) };
    let _ = writeln!(
        out,
        "\nGo pattern first throttles at {} nodes (steady state).",
        go::first_throttling_nodes(&base, &quotas)
    );
    println!("{out}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("fleet.md"), out);
}
