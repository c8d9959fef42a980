//! Faults over the real wire: the real binary on its unix socket while what it depends on fails.
//! AWS refuses connections, answers later than the driver's deadline, or throttles; the
//! Kubernetes API and the Pod Identity agent are down; the provider is SIGKILLed in the middle of
//! a re-sync and restarted on the same socket. Each test asserts the error the pod owner sees
//! (code and what it names), that nothing was written (mounted files stay exactly as they were),
//! and that the provider serves the next mount once the fault is gone.
//!
//! Faults come from loopback stand-ins: a [`Switch`] relay in front of moto, the Kubernetes API
//! stand-in or the Pod Identity agent (up, down = connection refused, stalled = never answers),
//! and an [`AwsStub`] that throttles every call and records each attempt. Tests that need moto
//! skip outside CI when it is not installed (`Moto::start`); the throttling test needs none.

use crate::support::agent::{self, Agent};
use crate::support::aws_stub::AwsStub;
use crate::support::kube::KubeApi;
use crate::support::node::{Node, SetView};
use crate::support::raw_grpc;
use crate::support::switch::Switch;
use crate::support::world::{
    IRSA_AUDIENCE, POD_IDENTITY_AUDIENCE, WEST, World, jwt, pod_attrs, role, secret_object, tokens,
};
use crate::support::{Moto, Provider, ProviderBuilder, REGION, attrs, mount_request, pod_uid};
use csi_provider_aws::pb::MountResponse;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tonic::Code;

/// What "promptly" means for a mount against a dead dependency: the SDK's three attempts with
/// their backoff (at most 1 s + 2 s) and some scheduling slack, far below kubelet's 2 minutes.
const PROMPTLY: Duration = Duration::from_secs(10);
/// How long past its deadline a mount may take to come back (and the provider to drop it).
const DEADLINE_SLACK: Duration = Duration::from_secs(1);
/// Bound on every wait for an event.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// helpers

/// A provider reading with its own (`testing`) credentials through `aws` (a URL), no cache.
fn local_provider(aws: &str) -> ProviderBuilder {
    let mut builder = Provider::builder(aws).args(&["--local-credentials", "--cache-ttl", "0"]);
    for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        builder = builder.env_remove(var);
    }
    builder
}

fn param_object(name: &str) -> String {
    format!("- objectName: {name}\n  objectType: ssmparameter\n")
}

async fn put_secret(moto: &Moto, name: &str, value: &str) {
    let sm = moto.sm(REGION);
    if sm.create_secret().name(name).secret_string(value).send().await.is_err() {
        sm.put_secret_value().secret_id(name).secret_string(value).send().await.expect("put_secret_value");
    }
}

async fn put_param(moto: &Moto, name: &str, value: &str) {
    let kind = aws_sdk_ssm::types::ParameterType::String;
    let put = moto.ssm(REGION).put_parameter().name(name).value(value).r#type(kind).overwrite(true);
    put.send().await.expect("put_parameter");
}

/// One `Mount` of `attributes` into `target`, with `grpc-timeout` set when `deadline` is given
/// (as kubelet's NodePublishVolume deadline arrives).
async fn mount_at(
    provider: &Provider,
    target: &Path,
    attributes: &str,
    deadline: Option<Duration>,
) -> Result<MountResponse, tonic::Status> {
    let mut request = tonic::Request::new(mount_request(attributes, target));
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    provider.client().await.mount(request).await.map(tonic::Response::into_inner)
}

fn ok<T>(result: Result<T, tonic::Status>, provider: &Provider) -> T {
    result.unwrap_or_else(|s| panic!("mount failed: {s:?}\nprovider log:\n{}", provider.logs()))
}

fn err<T>(result: Result<T, tonic::Status>, provider: &Provider) -> tonic::Status {
    match result {
        Ok(_) => panic!("the mount succeeded but should have failed\nprovider log:\n{}", provider.logs()),
        Err(status) => status,
    }
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).expect("list").next().is_none()
}

/// Waits (polling, bounded by [`WAIT`] or `within`) until `ready` holds.
async fn eventually(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A kubeconfig naming `server` (plain http) with the stand-in's token user.
fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: c\n",
        crate::support::kube::TOKEN
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

// ---------------------------------------------------------------------------------------------
// 1. AWS endpoint down

#[tokio::test]
async fn aws_down_fails_promptly_as_unavailable_and_leaves_mounted_files_untouched() {
    let Some(moto) = Moto::start() else { return };
    put_secret(&moto, "down-db", "db-v1").await;
    put_param(&moto, "/down/p", "p-v1").await;
    let aws = Switch::start(&moto.url());
    let provider = local_provider(&aws.url()).start();
    let objects = format!("{}{}", secret_object("down-db"), param_object("/down/p"));
    let target = provider.target(&pod_uid("web"));
    ok(mount_at(&provider, &target, &attrs("web", &objects, &[]), None).await, &provider);
    let before = SetView::read(&target);

    aws.down();
    let started = Instant::now();
    let status = err(mount_at(&provider, &target, &attrs("web", &objects, &[]), None).await, &provider);
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "transient: the driver retries it: {status:?}");
    let message = status.message();
    assert!(message.starts_with("EndpointUnreachable: "), "{message}");
    assert!(message.contains(r#""down-db""#) || message.contains(r#""/down/p""#), "names an object: {message}");
    assert!(message.contains("could not reach the endpoint"), "says what failed: {message}");
    assert!(message.contains(&aws.addr()), "names the endpoint {}: {message}", aws.addr());
    assert!(took < PROMPTLY, "a refused endpoint fails within {PROMPTLY:?}, took {took:?}");
    assert_eq!(SetView::read(&target), before, "mounted files exactly as they were");

    let fresh = provider.target(&pod_uid("new"));
    err(mount_at(&provider, &fresh, &attrs("new", &objects, &[]), None).await, &provider);
    assert!(is_empty_dir(&fresh), "a failed first mount writes nothing");

    aws.up();
    ok(mount_at(&provider, &fresh, &attrs("new", &objects, &[]), None).await, &provider);
    assert_eq!(std::fs::read_to_string(fresh.join("down-db")).expect("read"), "db-v1", "healthy again");
}

// ---------------------------------------------------------------------------------------------
// 2. AWS endpoint slower than the deadline

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_aws_endpoint_is_abandoned_at_the_grpc_deadline_and_the_provider_stays_healthy() {
    const DEADLINE: Duration = Duration::from_millis(1500);
    const PODS: usize = 5;
    let Some(moto) = Moto::start() else { return };
    put_secret(&moto, "slow-db", "slow-v1").await;
    let aws = Switch::start(&moto.url());
    let provider = Arc::new(local_provider(&aws.url()).start());
    let objects = secret_object("slow-db");
    let web = provider.target(&pod_uid("web"));
    ok(mount_at(&provider, &web, &attrs("web", &objects, &[]), None).await, &provider);
    let before = SetView::read(&web);

    aws.stall();
    let mounts: Vec<_> = (0..PODS)
        .map(|i| {
            let (provider, objects) = (provider.clone(), objects.clone());
            let pod = if i == 0 { "web".to_string() } else { format!("slow-{i}") };
            tokio::spawn(async move {
                let target = provider.target(&pod_uid(&pod));
                let started = Instant::now();
                let result = mount_at(&provider, &target, &attrs(&pod, &objects, &[]), Some(DEADLINE)).await;
                (pod, target, result, started.elapsed())
            })
        })
        .collect();
    for handle in mounts {
        let (pod, target, result, took) = handle.await.expect("mount task");
        let status = err(result, &provider);
        assert!(
            matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
            "{pod}: the deadline fired: {status:?}"
        );
        assert!(took < DEADLINE + DEADLINE_SLACK, "{pod}: came back after {took:?} (deadline {DEADLINE:?})");
        if pod == "web" {
            assert_eq!(SetView::read(&target), before, "web: mounted files exactly as they were");
        } else {
            assert!(is_empty_dir(&target), "{pod}: nothing written");
        }
    }
    assert!(aws.accepted() > 0, "the reads reached the stalled endpoint");
    // The caller gave up at its deadline (the driver's gRPC client does too), and the provider
    // dropped the mounts with it, not only the answer: none in flight, and its connections to
    // the stalled endpoint are closed.
    eventually("no mount in flight", DEADLINE_SLACK, || {
        provider.scrape_metric("csi_provider_aws_mounts_in_flight") == 0.0
    })
    .await;
    eventually("the provider to close its stalled AWS connections", DEADLINE_SLACK, || aws.held() == 0).await;

    // The tonic client above cancels at its own deadline (so does the driver's); a client that
    // only sends `grpc-timeout` and waits gets the provider's own answer at the deadline.
    let (answer, took) = raw_mount_with_timeout(&provider, "raw", &objects, DEADLINE).await;
    assert!(!answer.reset, "an answer, not a reset: {answer:?}\nprovider log:\n{}", provider.logs());
    assert!(matches!(answer.status(), Some("1" | "4")), "CANCELLED or DEADLINE_EXCEEDED: {answer:?}");
    assert!(took < DEADLINE + DEADLINE_SLACK, "the provider answered after {took:?} (deadline {DEADLINE:?})");
    assert!(is_empty_dir(&provider.target(&pod_uid("raw"))), "raw: nothing written");
    eventually("the provider to close its stalled AWS connections", DEADLINE_SLACK, || aws.held() == 0).await;

    aws.up();
    put_secret(&moto, "slow-db", "slow-v2").await;
    ok(mount_at(&provider, &web, &attrs("web", &objects, &[]), Some(Duration::from_secs(30))).await, &provider);
    assert_eq!(std::fs::read_to_string(web.join("slow-db")).expect("read"), "slow-v2", "healthy again");
}

/// A first mount of `pod` through [`raw_grpc::unary`] with `grpc-timeout` = `deadline`; the
/// answer and how long it took.
async fn raw_mount_with_timeout(
    provider: &Provider,
    pod: &str,
    objects: &str,
    deadline: Duration,
) -> (raw_grpc::RawAnswer, Duration) {
    let request = mount_request(&attrs(pod, objects, &[]), &provider.target(&pod_uid(pod)));
    let (socket, message) = (provider.socket().to_path_buf(), prost::Message::encode_to_vec(&request));
    let timeout = format!("{}m", deadline.as_millis());
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || {
        let headers = [("grpc-timeout", timeout.as_str())];
        raw_grpc::unary(&socket, "/v1alpha1.CSIDriverProvider/Mount", &message, &headers, deadline + WAIT)
    })
    .await
    .expect("raw call");
    (answer, started.elapsed())
}

// ---------------------------------------------------------------------------------------------
// 3. Throttling

/// Ten pods mount at once, each two secrets and a parameter, and AWS throttles every call: each
/// SDK operation is tried at most 3 times (`RetryConfig::standard().with_max_attempts(3)` in
/// `src/aws/clients.rs`) with backoff between attempts, and the provider sends no more than 3
/// attempts for each call a mount needs (one `BatchGetSecretValue`, two `GetSecretValue` after
/// the batch was throttled, one `GetParameters`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_with_backoff_a_bounded_number_of_times_and_fails_as_throttled() {
    const PODS: usize = 10;
    const CALLS_PER_MOUNT: usize = 4;
    const MAX_ATTEMPTS: usize = 3;
    let stub = AwsStub::throttling();
    let provider = Arc::new(local_provider(&stub.url()).start());
    let mounts: Vec<_> = (0..PODS)
        .map(|i| {
            let provider = provider.clone();
            tokio::spawn(async move {
                let pod = format!("busy-{i}");
                let objects = format!(
                    "{}{}{}",
                    secret_object(&format!("s{i}-a")),
                    secret_object(&format!("s{i}-b")),
                    param_object(&format!("/p{i}"))
                );
                let target = provider.target(&pod_uid(&pod));
                let started = Instant::now();
                let result = mount_at(&provider, &target, &attrs(&pod, &objects, &[]), None).await;
                (i, target, result, started.elapsed())
            })
        })
        .collect();
    for handle in mounts {
        let (i, target, result, took) = handle.await.expect("mount task");
        let status = err(result, &provider);
        assert_eq!(status.code(), Code::Unavailable, "busy-{i}: transient: {status:?}");
        let message = status.message();
        assert!(message.starts_with("Throttled: "), "busy-{i}: {message}");
        assert!(message.contains("ThrottlingException") && message.contains("Rate exceeded"), "{message}");
        let own = [format!("\"s{i}-a\""), format!("\"s{i}-b\""), format!("\"/p{i}\"")];
        assert!(own.iter().any(|o| message.contains(o.as_str())), "busy-{i}: names its object: {message}");
        assert!(took < PROMPTLY, "busy-{i}: gave up after {took:?}");
        assert!(is_empty_dir(&target), "busy-{i}: nothing written");
    }

    let attempts = stub.attempts();
    let operations = stub.by_invocation();
    assert!(
        attempts.len() <= PODS * CALLS_PER_MOUNT * MAX_ATTEMPTS,
        "a retry storm: {} requests for {PODS} mounts",
        attempts.len()
    );
    for (invocation, tries) in &operations {
        assert!(!invocation.is_empty(), "every attempt carries amz-sdk-invocation-id: {tries:?}");
        assert!(tries.len() <= MAX_ATTEMPTS, "{} attempts of one operation: {tries:#?}", tries.len());
        assert!(tries.iter().all(|t| t.max == Some(MAX_ATTEMPTS as u32)), "{tries:#?}");
    }
    assert!(operations.values().any(|t| t.len() > 1), "throttling is retried: {operations:#?}");
    let mut gaps: Vec<Duration> =
        operations.values().flat_map(|t| t.windows(2).map(|w| w[1].at - w[0].at).collect::<Vec<_>>()).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    // The standard strategy waits rand(0..1) x 1 s, then rand(0..1) x 2 s: a median under 100 ms
    // across dozens of retries means no backoff.
    assert!(median >= Duration::from_millis(100), "retries back off: median gap {median:?} of {gaps:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. Kubernetes API down

#[tokio::test]
async fn kubernetes_api_down_fails_the_irsa_mount_clearly_and_the_next_one_recovers() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.secret(WEST, "k8s-db", "k8s-value").await;
    let api = Switch::start(&w.kube.url());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kubeconfig(dir.path(), &api.url());
    api.down();
    let provider = w.provider().env("KUBECONFIG", config.display().to_string()).start();
    let token = jwt("system:serviceaccount:default:app-sa", IRSA_AUDIENCE);
    let attributes =
        pod_attrs("pod-a", "app-sa", &secret_object("k8s-db"), Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[]);
    let target = provider.target(&pod_uid("pod-a"));

    let started = Instant::now();
    let status = err(mount_at(&provider, &target, &attributes, None).await, &provider);
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "transient: the driver retries it: {status:?}");
    let message = status.message();
    assert!(message.starts_with("EndpointUnreachable: "), "{message}");
    assert!(message.contains("service account default/app-sa") && message.contains("Kubernetes API"), "{message}");
    assert!(!message.contains(&token), "no token in errors: {message}");
    assert!(took < PROMPTLY, "took {took:?}");
    assert!(is_empty_dir(&target), "nothing written");
    assert!(w.rec.calls().is_empty(), "no AWS call without the role: {:#?}", w.rec.calls());

    api.up();
    ok(mount_at(&provider, &target, &attributes, None).await, &provider);
    assert_eq!(std::fs::read_to_string(target.join("k8s-db")).expect("read"), "k8s-value", "healthy again");
    let sa = KubeApi::service_account_path("default", "app-sa");
    assert_eq!(w.kube.requests(&sa), 1, "the failed lookup was not cached: {:#?}", w.kube.all_requests());
}

// ---------------------------------------------------------------------------------------------
// 5. Pod Identity agent down

#[tokio::test]
async fn pod_identity_agent_down_or_silent_fails_naming_the_agent_and_the_next_mount_recovers() {
    /// `--pod-identity-http-timeout` of [`World::provider_with_agents`].
    const AGENT_TIMEOUT: Duration = Duration::from_secs(2);
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", None);
    w.secret(WEST, "pi-db", "pi-value").await;
    let token = jwt("system:serviceaccount:default:app-sa", POD_IDENTITY_AUDIENCE);
    let agent = Agent::start(&token, "ASIAFAULTSAGENT00001");
    let switch = Switch::start(&agent.url());
    let url = format!("{}{}", switch.url(), agent::PATH);
    let provider = w.provider_with_agents(&url, &url).start();
    let attributes = pod_attrs(
        "pod-a",
        "app-sa",
        &secret_object("pi-db"),
        Some(&tokens(&[(POD_IDENTITY_AUDIENCE, &token)])),
        &[("usePodIdentity", "true")],
    );
    let target = provider.target(&pod_uid("pod-a"));

    switch.down();
    let started = Instant::now();
    let status = err(mount_at(&provider, &target, &attributes, None).await, &provider);
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("EndpointUnreachable: ") && message.contains("Pod Identity agent"), "{message}");
    assert!(message.contains(&url), "names the agent URL {url}: {message}");
    assert!(!message.contains(&token), "no token in errors: {message}");
    assert!(took < PROMPTLY, "a refused agent fails at once, took {took:?}");

    switch.stall();
    let started = Instant::now();
    let status = err(mount_at(&provider, &target, &attributes, None).await, &provider);
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(&url), "names the agent URL: {}", status.message());
    assert!(status.message().contains("no answer within"), "{}", status.message());
    assert!(took < AGENT_TIMEOUT + DEADLINE_SLACK, "bounded by --pod-identity-http-timeout, took {took:?}");

    assert!(is_empty_dir(&target), "nothing written");
    assert!(agent.requests().is_empty(), "the agent never saw a request");
    assert!(w.rec.calls().is_empty(), "no AWS call without credentials: {:#?}", w.rec.calls());

    switch.up();
    ok(mount_at(&provider, &target, &attributes, None).await, &provider);
    assert_eq!(std::fs::read_to_string(target.join("pi-db")).expect("read"), "pi-value", "healthy again");
}

// ---------------------------------------------------------------------------------------------
// 6. SIGKILL in the middle of a re-sync

/// Files in the big set: enough that writing it (one fsync per file) takes a while.
const BIG_FILES: usize = 400;

/// The big secret's JSON at `generation`: `k<i>` = `g<generation>-<i>`.
fn big_value(generation: usize) -> String {
    let fields: Vec<String> = (0..BIG_FILES).map(|i| format!(r#""k{i}":"g{generation}-{i}""#)).collect();
    format!("{{{}}}", fields.join(","))
}

/// The secret itself plus one jmesPath file per key.
fn big_objects() -> String {
    let mut out = String::from("- objectName: big\n  objectType: secretsmanager\n  jmesPath:\n");
    for i in 0..BIG_FILES {
        out.push_str(&format!("    - {{path: k{i}, objectAlias: f{i}}}\n"));
    }
    out
}

/// The generation of a complete, consistent big set (every file of one generation), else why not.
fn generation_of(view: &SetView) -> Result<usize, String> {
    if view.files.len() != BIG_FILES + 1 {
        return Err(format!("{} files, not {}", view.files.len(), BIG_FILES + 1));
    }
    if !view.links_consistent() {
        return Err(format!("visible entries do not match the set: {:?}", view.visible.keys().take(5)));
    }
    let generation_of_file = |i: usize| -> Option<usize> {
        let text = view.files.get(&format!("f{i}"))?.as_deref()?;
        text.strip_prefix('g')?.strip_suffix(&format!("-{i}"))?.parse().ok()
    };
    let first = generation_of_file(0).ok_or("f0 is missing or malformed")?;
    if (0..BIG_FILES).any(|i| generation_of_file(i) != Some(first)) {
        return Err("files of two generations".into());
    }
    let big = view.files.get("big").cloned().flatten();
    if big != Some(big_value(first)) {
        return Err("the secret's own file is not of the same generation".into());
    }
    Ok(first)
}

/// Whether `name` is a set directory (`..<digit>…`), as the writer names them.
fn is_set_dir(name: &str) -> bool {
    name.strip_prefix("..").and_then(|rest| rest.chars().next()).is_some_and(|c| c.is_ascii_digit())
}

/// A new set directory other than `current` in `target`.
fn new_set_dir(target: &Path, current: Option<&str>) -> Option<String> {
    std::fs::read_dir(target)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|name| is_set_dir(name) && Some(name.as_str()) != current)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_in_the_middle_of_a_resync_leaves_the_old_set_and_the_next_one_repairs() {
    let Some(moto) = Moto::start() else { return };
    let node = Node::new();
    let aws = Switch::start(&moto.url());
    put_secret(&moto, "big", &big_value(1)).await;
    let attributes = attrs("big", &big_objects(), &[]);
    let target = node.target(&pod_uid("big"));
    let mut provider = local_provider(&aws.url()).start_on(&node);
    ok(mount_at(&provider, &target, &attributes, None).await, &provider);
    let mounted = SetView::read(&target);
    assert_eq!(generation_of(&mounted), Ok(1));

    // Killed while it waits for AWS: nothing was written yet, nothing may change.
    put_secret(&moto, "big", &big_value(2)).await;
    aws.stall();
    let waiting = spawn_mount(&provider, &target, &attributes).await;
    eventually("the re-sync to wait on AWS", WAIT, || aws.held() > 0).await;
    provider.sigkill();
    assert!(waiting.await.expect("mount task").is_err(), "the killed provider answered");
    assert_eq!(SetView::read(&target), mounted, "killed before writing: the old set exactly");
    aws.up();

    // Killed while the new set is being written: the pod still sees one complete set.
    let mut generation = 2;
    let mut interrupted = None;
    for _ in 0..3 {
        provider = local_provider(&aws.url()).start_on(&node);
        assert!(
            provider.logs().contains("removing a stale socket"),
            "the killed provider's socket is replaced:\n{}",
            provider.logs()
        );
        let before = SetView::read(&target);
        let old = generation_of(&before).expect("a complete set before the kill");
        generation += 1;
        put_secret(&moto, "big", &big_value(generation)).await;
        let writing = spawn_mount(&provider, &target, &attributes).await;
        let current = before.data.clone();
        let deadline = Instant::now() + WAIT;
        while new_set_dir(&target, current.as_deref()).is_none() && !writing.is_finished() {
            assert!(Instant::now() < deadline, "no new set directory appeared\n{}", provider.logs());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        provider.sigkill();
        let _ = writing.await;
        let after = SetView::read(&target);
        let seen = generation_of(&after).unwrap_or_else(|why| panic!("a torn set after the kill: {why}: {after:#?}"));
        assert!(seen == old || seen == generation, "generation {seen}, neither {old} nor {generation}");
        if after.data == before.data && !after.other.is_empty() {
            assert_eq!((&after.data, &after.files, &after.visible), (&before.data, &before.files, &before.visible));
            interrupted = Some(after.other.clone());
            break;
        }
        // The write finished before the kill landed: try again with a new generation.
    }
    let leftovers = interrupted.expect("three kills all landed after the write had finished");
    assert!(leftovers.iter().any(|name| is_set_dir(name)), "a half-written set is left: {leftovers:?}");

    // A fresh provider re-syncing content equal to the set in place writes nothing: the pod's
    // view stays exactly, and what the killed write left beside it is removed.
    let kept = SetView::read(&target);
    let old = generation_of(&kept).expect("a complete set");
    put_secret(&moto, "big", &big_value(old)).await;
    let provider = local_provider(&aws.url()).start_on(&node);
    ok(mount_at(&provider, &target, &attributes, None).await, &provider);
    let unchanged = SetView::read(&target);
    assert_eq!((&unchanged.data, &unchanged.files, &unchanged.visible), (&kept.data, &kept.files, &kept.visible));
    assert!(unchanged.other.is_empty(), "the next mount repairs leftovers: {:?}", unchanged.other);

    // The next re-sync with new content writes the new set whole and removes the leftovers.
    generation += 1;
    put_secret(&moto, "big", &big_value(generation)).await;
    ok(mount_at(&provider, &target, &attributes, None).await, &provider);
    let repaired = SetView::read(&target);
    assert_eq!(generation_of(&repaired), Ok(generation), "the new set, complete");
    assert!(repaired.other.is_empty(), "no leftovers of the killed write: {:?}", repaired.other);
}

async fn spawn_mount(
    provider: &Provider,
    target: &Path,
    attributes: &str,
) -> tokio::task::JoinHandle<Result<tonic::Response<MountResponse>, tonic::Status>> {
    let mut client = provider.client().await;
    let request = mount_request(attributes, target);
    tokio::spawn(async move { client.mount(request).await })
}

// ---------------------------------------------------------------------------------------------
// 7. Provider restart

const PAIR_OBJECTS: &str = "- objectName: pair\n  objectType: secretsmanager\n  jmesPath:\n    - {path: username, objectAlias: user}\n    - {path: password, objectAlias: pass}\n- objectName: /restart/cfg\n  objectType: ssmparameter\n";

fn pair(generation: usize) -> String {
    format!(r#"{{"username":"u-{generation}","password":"p-{generation}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_socket_leaves_files_untouched_and_resyncs_write_only_changes() {
    let Some(moto) = Moto::start() else { return };
    put_secret(&moto, "pair", &pair(1)).await;
    put_param(&moto, "/restart/cfg", "cfg-1").await;
    let node = Node::new();
    let pods = ["pod-a", "pod-b"];
    let targets: Vec<PathBuf> = pods.iter().map(|p| node.target(&pod_uid(p))).collect();
    let mut first = local_provider(&moto.url()).start_on(&node);
    for (pod, target) in pods.iter().zip(&targets) {
        ok(mount_at(&first, target, &attrs(pod, PAIR_OBJECTS, &[]), None).await, &first);
    }
    let mounted: Vec<SetView> = targets.iter().map(|t| SetView::read(t)).collect();

    // Pods keep reading while the provider stops and a new one starts.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(targets[0].clone(), stop.clone());
    first.terminate();
    let exit = first.wait_exit(Duration::from_secs(15)).expect("the provider exits on SIGTERM");
    assert!(exit.success(), "a clean exit: {exit:?}\n{}", first.logs());
    assert!(!node.socket().exists(), "the socket is removed on shutdown");
    let second = local_provider(&moto.url()).start_on(&node);
    let restarted: Vec<SetView> = targets.iter().map(|t| SetView::read(t)).collect();
    assert_eq!(restarted, mounted, "files untouched across the restart");

    // The first re-sync of the new process finds every set unchanged and writes nothing.
    for (pod, target) in pods.iter().zip(&targets) {
        ok(mount_at(&second, target, &attrs(pod, PAIR_OBJECTS, &[]), None).await, &second);
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("a pod failed to read its files during the restart");
    assert!(reads > 0, "the reader ran");
    let resynced: Vec<SetView> = targets.iter().map(|t| SetView::read(t)).collect();
    assert_eq!(resynced, mounted, "an unchanged re-sync after the restart writes nothing");
    assert_eq!(second.scrape_metric("csi_provider_aws_written_bytes_total"), 0.0, "no byte written");

    // A rotation after the restart is written as one new set; then unchanged again.
    put_secret(&moto, "pair", &pair(2)).await;
    ok(mount_at(&second, &targets[0], &attrs(pods[0], PAIR_OBJECTS, &[]), None).await, &second);
    let rotated = SetView::read(&targets[0]);
    assert_ne!(rotated.data, mounted[0].data, "a new set");
    let expected: BTreeMap<String, Option<String>> = [
        ("pair", Some(pair(2))),
        ("user", Some("u-2".to_string())),
        ("pass", Some("p-2".to_string())),
        ("_restart_cfg", Some("cfg-1".to_string())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(rotated.files, expected);
    assert!(rotated.links_consistent() && rotated.other.is_empty(), "{rotated:#?}");
    ok(mount_at(&second, &targets[0], &attrs(pods[0], PAIR_OBJECTS, &[]), None).await, &second);
    assert_eq!(SetView::read(&targets[0]), rotated, "unchanged again: nothing written");
}

/// Reads `user` and `pass` through the visible names until stopped; panics on a failed read or
/// a torn pair. Returns the number of reads.
fn spawn_reader(target: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            let user = std::fs::read_to_string(target.join("user")).expect("read user");
            let pass = std::fs::read_to_string(target.join("pass")).expect("read pass");
            assert_eq!(user.trim_start_matches("u-"), pass.trim_start_matches("p-"), "torn pair: {user} / {pass}");
            reads += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        reads
    })
}
