//! Rotation re-sync over the real wire: the cache serves values at most `--cache-ttl` old and
//! only to the identity that read them, credentials are reused per token, batching falls back
//! when denied, a failed re-sync keeps every mounted file, and readers never see a torn set.

use crate::support::recorder::{Call, Fault, Recorder};
use crate::support::world::{
    IRSA_AUDIENCE, WEST, World, expect_err, expect_ok, jwt, mount, pod_attrs, read, role, secret_object, tokens,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A SecretProviderClass of `secrets` current secrets and `params` parameters.
fn spc(secrets: &[&str], params: &[&str]) -> String {
    let mut out = String::new();
    for s in secrets {
        out.push_str(&format!("- {{objectName: {s}, objectType: secretsmanager}}\n"));
    }
    for p in params {
        out.push_str(&format!("- {{objectName: {p}, objectType: ssmparameter}}\n"));
    }
    out
}

/// Attributes for `pod` of service account `sa`, with its own token.
fn irsa_pod(pod: &str, sa: &str, objects: &str) -> String {
    // Unique per pod (as kubelet's are): the signature part carries the pod's name.
    let token = format!("{}-{pod}", jwt(&format!("system:serviceaccount:default:{sa}"), IRSA_AUDIENCE));
    pod_attrs(pod, sa, objects, Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[])
}

/// Calls per operation (`BatchGetSecretValue`, `GetParameters`, ...), faults included.
fn per_operation(rec: &Recorder) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for call in rec.calls() {
        let op = call.operation().rsplit('.').next().unwrap_or_default().to_string();
        *out.entry(op).or_default() += 1;
    }
    out
}

fn count(rec: &Recorder, op: &str) -> usize {
    per_operation(rec).get(op).copied().unwrap_or(0)
}

async fn seed(w: &World, secrets: &[(&str, &str)], params: &[(&str, &str)]) {
    for (name, value) in secrets {
        w.secret(WEST, name, value).await;
    }
    for (name, value) in params {
        let ssm = w.moto.ssm(WEST);
        ssm.put_parameter()
            .name(*name)
            .value(*value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("put_parameter");
    }
}

#[tokio::test]
async fn a_cold_mount_costs_three_calls_and_a_warm_resync_none() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app", Some(role("app").as_str()));
    seed(&w, &[("s1", "1"), ("s2", "2"), ("s3", "3")], &[("/p1", "a"), ("/p2", "b")]).await;
    let provider = w.provider().start();
    let objects = spc(&["s1", "s2", "s3"], &["/p1", "/p2"]);
    let attributes = irsa_pod("pod-a", "app", &objects);
    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    let cold = per_operation(&w.rec);
    assert_eq!(cold.values().sum::<usize>(), 3, "cold mount: {cold:?}");
    assert_eq!(
        (
            count(&w.rec, "AssumeRoleWithWebIdentity"),
            count(&w.rec, "BatchGetSecretValue"),
            count(&w.rec, "GetParameters")
        ),
        (1, 1, 1)
    );
    let data = std::fs::read_link(target.join("..data")).expect("..data");
    w.rec.forget_calls();
    expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert!(
        w.rec.calls().is_empty(),
        "a re-sync within the TTL with the same token costs nothing: {:?}",
        per_operation(&w.rec)
    );
    assert_eq!(std::fs::read_link(target.join("..data")).expect("..data"), data, "nothing changed, nothing written");
    let other = irsa_pod("pod-b", "app", &objects);
    expect_ok(mount(&provider, "pod-b", &other).await, &provider, &w.rec);
    assert_eq!(
        per_operation(&w.rec),
        BTreeMap::from([("AssumeRoleWithWebIdentity".to_string(), 1)]),
        "a new token costs one exchange; the values are shared by the same role"
    );
}

#[tokio::test]
async fn a_cached_value_is_never_older_than_the_ttl() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app", Some(role("app").as_str()));
    seed(&w, &[("rot", "v1")], &[]).await;
    let provider = w.provider().args(&["--cache-ttl", "1s"]).start();
    let attributes = irsa_pod("pod-a", "app", &secret_object("rot"));
    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    w.moto.sm(WEST).put_secret_value().secret_id("rot").secret_string("v2").send().await.expect("rotate");
    expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "rot"), "v1", "within the TTL the cached value is served");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (resp, _) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "rot"), "v2", "past the TTL the value is read again");
    let v2 = w
        .moto
        .sm(WEST)
        .get_secret_value()
        .secret_id("rot")
        .send()
        .await
        .expect("get")
        .version_id()
        .unwrap_or_default()
        .to_string();
    assert_eq!(resp.object_version[0].version, v2, "the response carries the new version");
}

#[tokio::test]
async fn cache_hits_never_cross_roles() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "alpha", Some(role("alpha").as_str()));
    w.kube.service_account("default", "beta", Some(role("beta").as_str()));
    seed(&w, &[("shared", "v")], &[]).await;
    let provider = w.provider().start();
    let objects = secret_object("shared");
    expect_ok(mount(&provider, "pod-a", &irsa_pod("pod-a", "alpha", &objects)).await, &provider, &w.rec);
    w.rec.fail(Fault::access_denied().service("secretsmanager"));
    let denied = expect_err(mount(&provider, "pod-b", &irsa_pod("pod-b", "beta", &objects)).await, &provider);
    assert!(
        denied.message().starts_with("AccessDenied: "),
        "beta reads as beta and is denied, not served alpha's value: {}",
        denied.message()
    );
    let reads: Vec<Call> = w.rec.calls_to("secretsmanager");
    let roles: Vec<Option<String>> = reads.iter().map(|c| c.role_arn_for_key.clone()).collect();
    assert_eq!(roles, vec![Some(role("alpha")), Some(role("beta"))], "one read per role: {reads:#?}");
}

#[tokio::test]
async fn a_denied_batch_falls_back_to_single_reads_and_is_remembered() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "legacy", Some(role("legacy").as_str()));
    seed(&w, &[("a", "A"), ("b", "B")], &[]).await;
    w.rec.fail(Fault::access_denied().service("secretsmanager").operation("BatchGetSecretValue"));
    let provider = w.provider().args(&["--cache-ttl", "0"]).start();
    let attributes = irsa_pod("pod-a", "legacy", &spc(&["a", "b"], &[]));
    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!((read(&target, "a"), read(&target, "b")), ("A".into(), "B".into()));
    assert_eq!((count(&w.rec, "BatchGetSecretValue"), count(&w.rec, "GetSecretValue")), (1, 2));
    w.rec.forget_calls();
    expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(
        (count(&w.rec, "BatchGetSecretValue"), count(&w.rec, "GetSecretValue")),
        (0, 2),
        "the denial is remembered"
    );
}

#[tokio::test]
async fn a_throttled_batch_falls_back_to_single_reads() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app", Some(role("app").as_str()));
    seed(&w, &[("a", "A"), ("b", "B")], &[]).await;
    w.rec.fail(Fault::throttled().service("secretsmanager").operation("BatchGetSecretValue"));
    let provider = w.provider().args(&["--cache-ttl", "0"]).start();
    let attributes = irsa_pod("pod-a", "app", &spc(&["a", "b"], &[]));
    expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(count(&w.rec, "GetSecretValue"), 2, "{:?}", per_operation(&w.rec));
    w.rec.forget_calls();
    expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(count(&w.rec, "BatchGetSecretValue"), 0, "the throttled batch API is left alone for a while");
}

#[tokio::test]
async fn batching_off_reads_each_secret_with_get_secret_value() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app", Some(role("app").as_str()));
    seed(&w, &[("a", "A"), ("b", "B"), ("c", "C")], &[]).await;
    let provider = w.provider().args(&["--cache-ttl", "0", "--batch-get-secret-value=false"]).start();
    let attributes = irsa_pod("pod-a", "app", &spc(&["a", "b", "c"], &[]));
    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "c"), "C");
    assert_eq!(
        (count(&w.rec, "BatchGetSecretValue"), count(&w.rec, "GetSecretValue")),
        (0, 3),
        "{:?}",
        per_operation(&w.rec)
    );
}

#[tokio::test]
async fn a_resync_during_an_outage_keeps_every_mounted_file() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app", Some(role("app").as_str()));
    seed(&w, &[("a", "A"), ("b", "B")], &[("/p", "P")]).await;
    let provider = w.provider().args(&["--cache-ttl", "0"]).start();
    let attributes = irsa_pod("pod-a", "app", &spc(&["a", "b"], &["/p"]));
    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    let before = snapshot(&target);
    w.rec.fail(Fault::unavailable().service("secretsmanager"));
    let err = expect_err(mount(&provider, "pod-a", &attributes).await, &provider);
    assert_eq!(err.code(), tonic::Code::Unavailable, "{}", err.message());
    assert!(err.message().starts_with("EndpointUnreachable: "), "{}", err.message());
    assert_eq!(snapshot(&target), before, "every mounted file is exactly as it was");
}

/// `..data`'s target and every visible file's content.
fn snapshot(target: &Path) -> (std::path::PathBuf, BTreeMap<String, String>) {
    let data = std::fs::read_link(target.join("..data")).expect("..data");
    let files = std::fs::read_dir(target)
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with(".."))
        .map(|n| (n.clone(), read(target, &n)))
        .collect();
    (data, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_sees_a_pair_from_two_versions() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app", Some(role("app").as_str()));
    seed(&w, &[("pair", r#"{"username":"u-0","password":"p-0"}"#)], &[]).await;
    let provider = w.provider().args(&["--cache-ttl", "0"]).start();
    let objects = "- objectName: pair\n  objectType: secretsmanager\n  jmesPath:\n    - {path: username, objectAlias: user}\n    - {path: password, objectAlias: pass}\n";
    let attributes = irsa_pod("pod-a", "app", objects);
    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(target.clone(), stop.clone());
    for i in 1..=25 {
        let value = format!(r#"{{"username":"u-{i}","password":"p-{i}"}}"#);
        w.moto.sm(WEST).put_secret_value().secret_id("pair").secret_string(value).send().await.expect("rotate");
        expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
        assert_eq!(read(&target, "pass"), format!("p-{i}"));
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("the reader saw a torn pair");
    assert!(reads > 25, "the reader ran throughout ({reads} reads)");
}

/// Reads `user` and `pass` through one resolution of `..data` until stopped; panics on a torn pair.
fn spawn_reader(target: std::path::PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            let Ok(dir) = std::fs::read_link(target.join("..data")) else { continue };
            let (Ok(user), Ok(pass)) = (
                std::fs::read_to_string(target.join(&dir).join("user")),
                std::fs::read_to_string(target.join(&dir).join("pass")),
            ) else {
                continue; // the old set was removed after we resolved it: resolve again
            };
            assert_eq!(user.trim_start_matches("u-"), pass.trim_start_matches("p-"), "torn pair: {user} / {pass}");
            reads += 1;
        }
        reads
    })
}

/// `--aws-budget` on the real binary (its admission is unit-tested in `src/budget.rs` and run at
/// fleet scale by the simulator): with one `GetParameters` call per 1,000 s, a first mount goes at
/// once (into debt); a re-sync past the TTL finds no slot within 10 s, so its refresh is queued
/// and it is answered from the cache without an AWS call and without failing; another pod's first
/// mount still goes at once.
#[tokio::test]
async fn under_a_budget_a_resync_past_the_ttl_is_served_from_the_cache_and_first_mounts_go_at_once() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app", Some(role("app").as_str()));
    seed(&w, &[], &[("budget-one", "one"), ("budget-two", "two")]).await;
    let provider = w.provider().args(&["--cache-ttl", "1s", "--aws-budget", "GetParameters=0.001"]).start();
    let first = irsa_pod("pod-a", "app", &spc(&[], &["budget-one"]));
    let (_, target) = expect_ok(mount(&provider, "pod-a", &first).await, &provider, &w.rec);
    assert_eq!(count(&w.rec, "GetParameters"), 1, "the first mount read at once");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.rec.forget_calls();
    let started = std::time::Instant::now();
    expect_ok(mount(&provider, "pod-a", &first).await, &provider, &w.rec);
    assert!(started.elapsed() < Duration::from_secs(5), "the re-sync did not wait for a slot 1,000 s away");
    assert_eq!(count(&w.rec, "GetParameters"), 0, "the refresh is queued, not sent: {:?}", per_operation(&w.rec));
    assert_eq!(read(&target, "budget-one"), "one", "the pod keeps its value");

    let other = irsa_pod("pod-b", "app", &spc(&[], &["budget-two"]));
    let started = std::time::Instant::now();
    let (_, second) = expect_ok(mount(&provider, "pod-b", &other).await, &provider, &w.rec);
    assert!(started.elapsed() < Duration::from_secs(5), "a first mount does not wait for the budget");
    assert_eq!(read(&second, "budget-two"), "two");
    assert_eq!(
        count(&w.rec, "GetParameters"),
        1,
        "a first mount goes ahead of the budget: {:?}",
        per_operation(&w.rec)
    );
}

/// `Budget::spill` on the real binary (its rule is unit-tested in `src/budget.rs`): with
/// `BatchGetSecretValue` slots 1,000 s apart and `GetSecretValue` slots 10 ms apart, a re-sync
/// past the TTL reads the pod's three secrets one `GetSecretValue` each, at once (its first mount
/// was one batch: first mounts never split); without a budget the same re-sync is one
/// `BatchGetSecretValue`.
#[tokio::test]
async fn under_a_budget_a_batch_whose_slot_is_far_is_read_one_secret_at_a_time() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app", Some(role("app").as_str()));
    seed(&w, &[("spill-a", "a"), ("spill-b", "b"), ("spill-c", "c")], &[]).await;
    let objects = spc(&["spill-a", "spill-b", "spill-c"], &[]);
    let ttl = ["--cache-ttl", "1s"];

    let plain = w.provider().args(&ttl).start();
    let pod = irsa_pod("pod-a", "app", &objects);
    expect_ok(mount(&plain, "pod-a", &pod).await, &plain, &w.rec);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.rec.forget_calls();
    expect_ok(mount(&plain, "pod-a", &pod).await, &plain, &w.rec);
    let calls = per_operation(&w.rec);
    assert_eq!(count(&w.rec, "BatchGetSecretValue"), 1, "no budget: one batch: {calls:?}");
    assert_eq!(count(&w.rec, "GetSecretValue"), 0, "no budget: one batch: {calls:?}");

    let budget =
        ["--cache-ttl", "1s", "--aws-budget", "BatchGetSecretValue=0.001", "--aws-budget", "GetSecretValue=100"];
    let budgeted = w.provider().args(&budget).start();
    let pod = irsa_pod("pod-b", "app", &objects);
    w.rec.forget_calls();
    let (_, target) = expect_ok(mount(&budgeted, "pod-b", &pod).await, &budgeted, &w.rec);
    assert_eq!(count(&w.rec, "BatchGetSecretValue"), 1, "a first mount: one batch: {:?}", per_operation(&w.rec));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.rec.forget_calls();
    let started = std::time::Instant::now();
    expect_ok(mount(&budgeted, "pod-b", &pod).await, &budgeted, &w.rec);
    assert!(started.elapsed() < Duration::from_secs(5), "the re-sync did not wait for the batch's slot");
    let calls = per_operation(&w.rec);
    assert_eq!(count(&w.rec, "BatchGetSecretValue"), 0, "the batch's slot is far: {calls:?}");
    assert_eq!(count(&w.rec, "GetSecretValue"), 3, "one call per secret: {calls:?}");
    for (name, value) in [("spill-a", "a"), ("spill-b", "b"), ("spill-c", "c")] {
        assert_eq!(read(&target, name), value);
    }
}
