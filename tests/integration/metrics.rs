//! Observability over the real wire: the admin server's `/metrics`, `/healthz` and `/readyz` of
//! the real binary, scraped after successful and failing mounts and while a mount is in flight.

use crate::support::{Moto, Provider, attrs, mount_request};
use std::io::{Read, Write};
use std::time::Duration;

const REGION: &str = "us-west-2";

/// The admin address the provider logged (`--metrics-addr 127.0.0.1:0`).
pub(crate) fn admin_addr(provider: &Provider) -> String {
    for _ in 0..200 {
        let logs = provider.logs();
        if let Some(line) = logs.lines().find(|l| l.contains("admin server listening")) {
            let addr = line.split("addr=").nth(1).unwrap_or_default();
            return addr.split_whitespace().next().unwrap_or_default().trim_matches('"').to_string();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no admin address in the log:\n{}", provider.logs());
}

/// The admin server's address once `/readyz` answers 200 (within 10 s). The socket file exists a
/// moment before the provider marks it served, so a scrape right after the socket appears may
/// still see `ready` 0.
pub(crate) fn ready_addr(provider: &Provider) -> String {
    let addr = admin_addr(provider);
    for _ in 0..400 {
        if get(&addr, "/readyz").0 == 200 {
            return addr;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("not ready within 10 s:\n{}", provider.logs());
}

/// GET `path`: (status, body).
pub(crate) fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the admin server");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of the exposition line starting with `series` (0 when absent).
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The value of the series, which must be exported (unlike [`value`], absent is a failure).
pub(crate) fn exported(metrics: &str, series: &str) -> f64 {
    let line = metrics.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
    let line = line.unwrap_or_else(|| panic!("{series} is not exported:\n{metrics}"));
    line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

async fn mount(provider: &Provider, pod: &str, objects: &str) -> Result<(), tonic::Status> {
    let target = provider.target(&format!("{pod}-uid"));
    let request = mount_request(&attrs(pod, objects, &[]), &target);
    provider.client().await.mount(request).await.map(|_| ())
}

async fn seed(moto: &Moto) {
    let sm = moto.sm(REGION);
    for (name, value) in [("a", "A"), ("b", "B")] {
        sm.create_secret().name(name).secret_string(value).send().await.expect("create_secret");
    }
    let ssm = moto.ssm(REGION);
    ssm.put_parameter()
        .name("/p")
        .value("P")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("put");
}

const GOOD: &str = "- {objectName: a, objectType: secretsmanager}\n- {objectName: b, objectType: secretsmanager}\n- {objectName: /p, objectType: ssmparameter}\n";
const BAD: &str = "- {objectName: nope, objectType: secretsmanager}\n";

#[tokio::test]
async fn counters_move_with_successful_and_failing_mounts() {
    let Some(moto) = Moto::start() else { return };
    seed(&moto).await;
    let provider = Provider::start(&moto.url(), &["--local-credentials"]);
    let addr = admin_addr(&provider);
    mount(&provider, "pod-a", GOOD).await.expect("first mount");
    mount(&provider, "pod-a", GOOD).await.expect("re-sync");
    mount(&provider, "pod-b", BAD).await.expect_err("missing secret");
    let (status, m) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    let series = [
        (r#"csi_provider_aws_mount_requests_total{outcome="success",code="",kind="first"}"#, 1.0),
        (r#"csi_provider_aws_mount_requests_total{outcome="success",code="",kind="resync"}"#, 1.0),
        (r#"csi_provider_aws_mount_requests_total{outcome="error",code="NotFound",kind="first"}"#, 1.0),
        (
            r#"csi_provider_aws_aws_calls_total{service="secretsmanager",operation="BatchGetSecretValue",outcome="success"}"#,
            1.0,
        ),
        (r#"csi_provider_aws_aws_calls_total{service="ssm",operation="GetParameters",outcome="success"}"#, 1.0),
        (
            r#"csi_provider_aws_aws_calls_total{service="secretsmanager",operation="GetSecretValue",outcome="ResourceNotFoundException"}"#,
            1.0,
        ),
        ("csi_provider_aws_cache_hits_total", 3.0),
        ("csi_provider_aws_cache_entries", 3.0),
        ("csi_provider_aws_mounts_in_flight", 0.0),
        (r#"csi_provider_aws_mount_duration_seconds_count{kind="first"}"#, 2.0),
    ];
    for (name, expected) in series {
        assert_eq!(value(&m, name), expected, "{name} in\n{m}");
    }
    assert!(value(&m, "csi_provider_aws_written_bytes_total") >= 3.0, "bytes written counted");
    assert!(m.contains("csi_provider_aws_build_info{version="), "build info");
    assert!(!m.contains("\"nope\""), "no secret names in label values by default");
}

#[tokio::test]
async fn every_series_exists_before_the_first_mount_with_the_process_metrics() {
    let Some(moto) = Moto::start() else { return };
    let provider = Provider::start(&moto.url(), &["--local-credentials", "--cache-max-entries", "77"]);
    let addr = ready_addr(&provider);
    let (status, m) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    for kind in ["first", "resync"] {
        for code in
            ["InvalidParameters", "TokenMissing", "IdentityFailed", "NotFound", "EndpointUnreachable", "Internal"]
        {
            let series =
                format!(r#"csi_provider_aws_mount_requests_total{{outcome="error",code="{code}",kind="{kind}"}}"#);
            assert_eq!(exported(&m, &series), 0.0, "{series}");
        }
        let series = format!(r#"csi_provider_aws_mount_requests_total{{outcome="success",code="",kind="{kind}"}}"#);
        assert_eq!(exported(&m, &series), 0.0);
        assert_eq!(exported(&m, &format!(r#"csi_provider_aws_mount_duration_seconds_count{{kind="{kind}"}}"#)), 0.0);
    }
    assert_eq!(exported(&m, r#"csi_provider_aws_sts_exchanges_total{outcome="success"}"#), 0.0);
    let sts =
        r#"csi_provider_aws_aws_calls_total{service="sts",operation="AssumeRoleWithWebIdentity",outcome="success"}"#;
    assert_eq!(exported(&m, sts), 0.0);
    assert_eq!(exported(&m, "csi_provider_aws_cache_bytes"), 0.0);
    assert_eq!(exported(&m, "csi_provider_aws_cache_max_entries"), 77.0);
    assert!(exported(&m, "csi_provider_aws_cache_max_bytes") > 0.0);
    assert_eq!(exported(&m, "csi_provider_aws_ready"), 1.0, "socket bound, local credentials");
    // The standard process metrics, unprefixed.
    assert!(exported(&m, "process_resident_memory_bytes") > 1_000_000.0, "{m}");
    assert!(exported(&m, "process_virtual_memory_bytes") > 0.0);
    assert!(exported(&m, "process_cpu_seconds_total") >= 0.0);
    assert!(exported(&m, "process_open_fds") >= 3.0);
    assert!(exported(&m, "process_max_fds") >= exported(&m, "process_open_fds"));
    assert!(exported(&m, "process_threads") >= 1.0);
    let started = exported(&m, "process_start_time_seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    assert!((now - 300.0..=now + 5.0).contains(&started), "started {started}, now {now}");
    // Every family has its HELP and TYPE.
    let families: std::collections::BTreeSet<&str> =
        m.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    for line in m.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family =
            families.iter().any(|f| name == *f || name.strip_prefix(f).is_some_and(|rest| rest.starts_with('_')));
        assert!(family, "{name} has no # TYPE line in\n{m}");
    }
    assert!(families.len() >= 20, "{families:?}");
    assert!(m.lines().filter(|l| l.starts_with("# HELP ")).count() >= families.len());
}

#[tokio::test]
async fn secret_names_appear_only_when_the_admin_opts_in() {
    let Some(moto) = Moto::start() else { return };
    let provider = Provider::start(&moto.url(), &["--local-credentials", "--metrics-secret-names"]);
    let addr = admin_addr(&provider);
    mount(&provider, "pod-b", BAD).await.expect_err("missing secret");
    let (_, m) = get(&addr, "/metrics");
    assert_eq!(value(&m, r#"csi_provider_aws_object_errors_total{code="NotFound",object="nope"}"#), 1.0, "{m}");
}

#[tokio::test]
async fn readiness_needs_the_socket_and_a_configured_kubernetes_api() {
    let Some(moto) = Moto::start() else { return };
    let local = Provider::start(&moto.url(), &["--local-credentials"]);
    let addr = ready_addr(&local);
    assert!(local.socket().exists());
    assert_eq!(get(&addr, "/readyz").0, 200, "socket bound, local credentials: ready");
    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".into()));
    let missing = tempfile::tempdir().expect("tempdir");
    let pod_mode = Provider::builder(&moto.url())
        .env("KUBECONFIG", missing.path().join("no-such-kubeconfig").display().to_string())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .start();
    let addr = admin_addr(&pod_mode);
    assert_eq!(get(&addr, "/readyz").0, 503, "pod identity without a Kubernetes API is not ready");
    assert_eq!(exported(&get(&addr, "/metrics").1, "csi_provider_aws_ready"), 0.0, "and says so in /metrics");
    assert_eq!(get(&addr, "/healthz").0, 200, "but alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_a_mount_is_in_flight() {
    let Some(moto) = Moto::start() else { return };
    seed(&moto).await;
    let proxy =
        crate::support::slow_proxy(moto.url().trim_start_matches("http://").to_string(), Duration::from_millis(1500))
            .await;
    let endpoint = format!("secretsmanager={proxy}");
    let provider = Provider::start(&moto.url(), &["--local-credentials", "--endpoint", &endpoint]);
    let addr = admin_addr(&provider);
    let target = provider.target("slow-uid");
    let mut client = provider.client().await;
    let request = mount_request(&attrs("slow", "- {objectName: a, objectType: secretsmanager}\n", &[]), &target);
    let in_flight = tokio::spawn(async move { client.mount(request).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (health, ready, m) = tokio::task::spawn_blocking(move || {
        (get(&addr, "/healthz").0, get(&addr, "/readyz").0, get(&addr, "/metrics").1)
    })
    .await
    .expect("scrape");
    assert_eq!((health, ready), (200, 200));
    assert_eq!(value(&m, "csi_provider_aws_mounts_in_flight"), 1.0, "{m}");
    in_flight.await.expect("join").expect("the mount finishes");
}
