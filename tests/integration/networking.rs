//! Private networking over the real wire: the real binary on its socket, moto as AWS behind
//! loopback stand-ins for what a private cluster has: a TLS endpoint signed by a private CA
//! ([`TlsFront`]), an HTTP proxy ([`TestProxy`]), per-region listeners ([`Recorder`]).
//! Addresses that must never be dialled (TEST-NET-3, `203.0.113.10`) appear only as
//! `--resolve` results; every connection goes to 127.0.0.1. Each test skips (outside CI) when
//! moto is not installed.

use crate::support::kube::KubeApi;
use crate::support::proxy::TestProxy;
use crate::support::recorder::{Fault, Recorder};
use crate::support::stand_in;
use crate::support::tls::{TestCa, TlsFront};
use crate::support::world::{IRSA_AUDIENCE, expect_err, jwt, mount, pod_attrs, read, role, secret_object, tokens};
use crate::support::{Moto, Provider, ProviderBuilder, REGION, attrs};
use csi_provider_aws::pb::MountResponse;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tonic::Code;

const EAST: &str = "us-east-1";
/// TEST-NET-3: a public address that is only ever a resolution result, never dialled.
const PUBLIC: &str = "203.0.113.10";
const PROXY_VARS: [&str; 8] =
    ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"];

/// A provider reading with its own (`testing`) credentials, with no proxy from the developer's
/// machine.
fn provider(moto_url: &str) -> ProviderBuilder {
    without_proxies(Provider::builder(moto_url).arg("--local-credentials"))
}

fn without_proxies(mut builder: ProviderBuilder) -> ProviderBuilder {
    for var in PROXY_VARS {
        builder = builder.env_remove(var);
    }
    builder
}

fn ca_bundle(ca: &TestCa) -> [String; 2] {
    ["--ca-bundle".to_string(), ca.pem_path().display().to_string()]
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("a URL with a port")
}

async fn secret(moto: &Moto, region: &str, name: &str, value: &str) {
    moto.sm(region).create_secret().name(name).secret_string(value).send().await.expect("create_secret");
}

async fn parameter(moto: &Moto, name: &str, value: &str) {
    let ssm = moto.ssm(REGION);
    let put = ssm.put_parameter().name(name).value(value).r#type(aws_sdk_ssm::types::ParameterType::SecureString);
    put.send().await.expect("put_parameter");
}

fn parameter_object(name: &str) -> String {
    format!("- objectName: {name}\n  objectType: ssmparameter\n")
}

async fn mount_ok(provider: &Provider, pod: &str, attributes: &str) -> (MountResponse, PathBuf) {
    mount(provider, pod, attributes)
        .await
        .unwrap_or_else(|status| panic!("mount failed: {status:?}\nprovider log:\n{}", provider.logs()))
}

/// Waits (polling) until `ready` holds, or fails with `what`.
async fn eventually(what: &str, provider: &Provider, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}\nprovider log:\n{}", provider.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_private_ca_is_trusted_with_the_ca_bundle_and_named_as_a_certificate_problem_without_it() {
    let Some(moto) = Moto::start() else { return };
    secret(&moto, REGION, "tls-db", "tls-s3cr3t").await;
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, &["vpce-test.internal"], &moto.url());
    let routing = ["--endpoint".to_string(), format!("secretsmanager={}", front.url("vpce-test.internal"))];
    let resolve = ["--resolve", "vpce-test.internal=127.0.0.1"];
    let objects = secret_object("tls-db");

    let trusted = provider(&moto.url()).args(&routing).args(&resolve).args(&ca_bundle(&ca)).start();
    let (_, target) = mount_ok(&trusted, "tls-pod", &attrs("tls-pod", &objects, &[])).await;
    assert_eq!(read(&target, "tls-db"), "tls-s3cr3t");
    assert!(front.handshakes() >= 1, "the read went through the TLS endpoint");

    let from_env = provider(&moto.url())
        .args(&routing)
        .args(&resolve)
        .env("AWS_CA_BUNDLE", ca.pem_path().display().to_string())
        .start();
    mount_ok(&from_env, "env-pod", &attrs("env-pod", &objects, &[])).await;

    let untrusted = provider(&moto.url()).args(&routing).args(&resolve).start();
    let status = expect_err(mount(&untrusted, "tls-pod-2", &attrs("tls-pod-2", &objects, &[])).await, &untrusted);
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("EndpointUnreachable: "), "{message}");
    assert!(message.contains("TLS certificate problem") && message.contains("--ca-bundle"), "{message}");
    eventually("the TLS endpoint to see the aborted handshake", &untrusted, || front.refused_handshakes() >= 1).await;
    for p in [&trusted, &from_env, &untrusted] {
        assert!(!p.logs().contains("tls-s3cr3t"), "a value was logged:\n{}", p.logs());
    }
}

#[tokio::test]
async fn each_service_and_region_goes_to_its_own_endpoint_on_the_wire() {
    let Some(moto) = Moto::start() else { return };
    secret(&moto, REGION, "routed-db", "west").await;
    secret(&moto, EAST, "routed-db", "east").await;
    parameter(&moto, "/routed/p", "param").await;
    let (sm_rec, ssm_rec) = (Recorder::start(&moto.url()), Recorder::start(&moto.url()));
    let ca = TestCa::new();
    let west_front = TlsFront::start(&ca, &["vpce-sm-west.internal"], &sm_rec.url_for(REGION));
    let provider = provider(&moto.url())
        .args(&ca_bundle(&ca))
        .args(&["--resolve", "vpce-sm-west.internal=127.0.0.1", "--cache-ttl", "0"])
        .args(&["--endpoint", &format!("secretsmanager@{REGION}={}", west_front.url("vpce-sm-west.internal"))])
        .args(&["--endpoint", &format!("secretsmanager@{EAST}={}", sm_rec.url_for(EAST))])
        .args(&["--endpoint", &format!("ssm={}", ssm_rec.url())])
        .env("AWS_ENDPOINT_URL", stand_in::refused_url(""))
        .start();
    let objects = format!("{}{}", secret_object("routed-db"), parameter_object("/routed/p"));
    let attributes = attrs("routed", &objects, &[("failoverRegion", EAST)]);

    let (_, target) = mount_ok(&provider, "routed", &attributes).await;
    assert_eq!(read(&target, "routed-db"), "west");
    sm_rec.fail(Fault::unavailable().service("secretsmanager").region(REGION));
    let (_, target) = mount_ok(&provider, "routed", &attributes).await;
    assert_eq!(read(&target, "routed-db"), "east", "failed over to the east endpoint");

    let sm_calls = sm_rec.calls();
    assert!(sm_calls.iter().all(|c| c.service() == "secretsmanager"), "{sm_calls:#?}");
    for call in &sm_calls {
        assert_eq!(call.listener_region, call.signed_region, "each region on its own endpoint: {call:#?}");
    }
    let east: Vec<_> = sm_calls.iter().filter(|c| c.region() == EAST).collect();
    assert!(east.len() == 1 && !east[0].injected, "{sm_calls:#?}");
    assert!(west_front.handshakes() >= 1, "us-west-2 Secrets Manager went through its TLS endpoint");
    let ssm_calls = ssm_rec.calls();
    assert!(!ssm_calls.is_empty() && ssm_calls.iter().all(|c| c.service() == "ssm" && c.region() == REGION));
}

#[tokio::test]
async fn an_spc_endpoint_is_refused_unless_its_host_is_allowed_and_then_takes_precedence() {
    let Some(moto) = Moto::start() else { return };
    secret(&moto, REGION, "spc-db", "spc-value").await;
    let rec = Recorder::start(&moto.url());
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, &["vpce-spc.internal"], &rec.url_for("spc-endpoint"));
    let spc_endpoint = front.url("vpce-spc.internal");
    let base = || {
        provider(&moto.url())
            .args(&ca_bundle(&ca))
            .args(&["--resolve", "vpce-spc.internal=127.0.0.1"])
            .env("AWS_ENDPOINT_URL", rec.url())
    };
    let objects = secret_object("spc-db");
    let with_endpoint = |pod: &str| attrs(pod, &objects, &[("secretsManagerEndpoint", spc_endpoint.as_str())]);

    let default = base().start();
    let status = expect_err(mount(&default, "spc-a", &with_endpoint("spc-a")).await, &default);
    assert_eq!(status.code(), Code::InvalidArgument);
    let message = status.message();
    assert!(message.starts_with("InvalidParameters: "), "{message}");
    for part in ["secretsManagerEndpoint", "\"vpce-spc.internal\"", "volume attributes", "service-account token"] {
        assert!(message.contains(part), "{part:?} missing: {message}");
    }
    assert!(rec.calls().is_empty() && front.handshakes() == 0, "nothing may be sent: {:#?}", rec.calls());

    let allowed = base().args(&["--allowed-endpoint-host", "vpce-spc.internal"]).start();
    let (_, target) = mount_ok(&allowed, "spc-b", &with_endpoint("spc-b")).await;
    assert_eq!(read(&target, "spc-db"), "spc-value");
    let calls = rec.calls();
    assert!(
        !calls.is_empty() && calls.iter().all(|c| c.listener_region.as_deref() == Some("spc-endpoint")),
        "{calls:#?}"
    );

    let other = attrs("spc-c", &objects, &[("ssmEndpoint", "https://ssm.attacker.example")]);
    let status = expect_err(mount(&allowed, "spc-c", &other).await, &allowed);
    assert!(status.message().contains("Allowed hosts: vpce-spc.internal"), "{}", status.message());
}

#[tokio::test]
async fn a_public_address_is_refused_before_any_connection_under_require_private_endpoints() {
    let Some(moto) = Moto::start() else { return };
    parameter(&moto, "/private/p", "private-value").await;
    let rec = Recorder::start(&moto.url());
    let port = port_of(&rec.url());
    let provider = provider(&moto.url())
        .arg("--require-private-endpoints")
        .args(&["--resolve", &format!("vpce-mixed.internal=127.0.0.1,{PUBLIC}")])
        .args(&["--resolve", "vpce-private.internal=127.0.0.1"])
        .args(&["--endpoint", &format!("secretsmanager=http://vpce-mixed.internal:{port}")])
        .args(&["--endpoint", &format!("secretsmanager@eu-west-1=http://{PUBLIC}:{port}")])
        .args(&["--endpoint", &format!("ssm=http://vpce-private.internal:{port}")])
        .env("AWS_ENDPOINT_URL", stand_in::refused_url(""))
        .start();

    let started = Instant::now();
    let status = expect_err(mount(&provider, "pub-a", &attrs("pub-a", &secret_object("db"), &[])).await, &provider);
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("PublicEndpointRefused: "), "{message}");
    for part in [
        "vpce-mixed.internal",
        "203.0.113.10 (public)",
        "127.0.0.1 (private, loopback)",
        "enable private DNS",
        "--endpoint",
    ] {
        assert!(message.contains(part), "{part:?} missing: {message}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not retried: {:?}", started.elapsed());
    assert!(rec.calls().is_empty(), "nothing may be sent, even to the name's private address: {:#?}", rec.calls());

    let literal = attrs("pub-b", &secret_object("db"), &[("region", "eu-west-1")]);
    let status = expect_err(mount(&provider, "pub-b", &literal).await, &provider);
    assert!(status.message().starts_with("PublicEndpointRefused: ") && status.message().contains(PUBLIC));
    assert!(rec.calls().is_empty(), "{:#?}", rec.calls());

    let (_, target) = mount_ok(&provider, "priv", &attrs("priv", &parameter_object("/private/p"), &[])).await;
    assert_eq!(read(&target, "_private_p"), "private-value");
    assert!(rec.calls().iter().all(|c| c.service() == "ssm"), "{:#?}", rec.calls());
}

#[tokio::test]
async fn fips_and_dual_stack_apply_to_every_service_sts_included() {
    let kube = KubeApi::start();
    kube.service_account("default", "app-sa", Some(role("app").as_str()));
    let fips = without_proxies(Provider::builder(&stand_in::refused_url("")))
        .env_remove("AWS_ENDPOINT_URL")
        .env("KUBECONFIG", kube.kubeconfig().display().to_string())
        .args(&["--use-fips-endpoint", "--require-private-endpoints"])
        .args(&["--resolve", &format!("sts-fips.us-west-2.amazonaws.com={PUBLIC}")])
        .start();
    let token = jwt("system:serviceaccount:default:app-sa", IRSA_AUDIENCE);
    let attributes =
        pod_attrs("fips-pod", "app-sa", &secret_object("db"), Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[]);
    let status = expect_err(mount(&fips, "fips-pod", &attributes).await, &fips);
    assert!(status.message().starts_with("PublicEndpointRefused: "), "{}", status.message());
    assert!(status.message().contains("sts-fips.us-west-2.amazonaws.com"), "STS uses FIPS: {}", status.message());

    let dual = without_proxies(Provider::builder(&stand_in::refused_url("")))
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_USE_FIPS_ENDPOINT", "true")
        .env("AWS_USE_DUALSTACK_ENDPOINT", "true")
        .args(&["--local-credentials", "--require-private-endpoints"])
        .args(&["--resolve", &format!("ssm-fips.us-west-2.api.aws={PUBLIC}")])
        .start();
    let status = expect_err(mount(&dual, "dual", &attrs("dual", &parameter_object("/p"), &[])).await, &dual);
    assert!(status.message().contains("ssm-fips.us-west-2.api.aws"), "{}", status.message());
}

#[tokio::test]
async fn https_proxy_carries_the_tunnel_no_proxy_bypasses_it_and_a_public_proxy_is_refused() {
    let Some(moto) = Moto::start() else { return };
    secret(&moto, REGION, "proxied-db", "proxied-value").await;
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, &["localhost"], &moto.url());
    let proxy = TestProxy::start();
    let proxy_port = port_of(&proxy.url());
    let base = || {
        provider(&moto.url())
            .args(&ca_bundle(&ca))
            .args(&["--endpoint", &format!("secretsmanager={}", front.url("localhost"))])
    };
    let objects = secret_object("proxied-db");

    let proxied = base()
        .arg("--require-private-endpoints")
        .args(&["--resolve", "corp-proxy.internal=127.0.0.1"])
        .env("HTTPS_PROXY", format!("corp-proxy.internal:{proxy_port}"))
        .start();
    let (_, target) = mount_ok(&proxied, "px-a", &attrs("px-a", &objects, &[])).await;
    assert_eq!(read(&target, "proxied-db"), "proxied-value");
    let tunnels = proxy.requests();
    assert!(
        tunnels.iter().any(|r| r.method == "CONNECT" && r.target == format!("localhost:{}", front.port())),
        "{tunnels:#?}"
    );

    let bypass = base().env("HTTPS_PROXY", proxy.url()).env("NO_PROXY", "localhost").start();
    mount_ok(&bypass, "px-b", &attrs("px-b", &objects, &[])).await;
    assert_eq!(proxy.requests().len(), tunnels.len(), "NO_PROXY: the proxy saw nothing new");

    let public = base()
        .arg("--require-private-endpoints")
        .args(&["--resolve", &format!("corp-proxy.internal={PUBLIC}")])
        .env("HTTPS_PROXY", format!("http://corp-proxy.internal:{proxy_port}"))
        .start();
    let status = expect_err(mount(&public, "px-c", &attrs("px-c", &objects, &[])).await, &public);
    assert!(status.message().starts_with("PublicEndpointRefused: "), "{}", status.message());
    assert!(status.message().contains("proxy host corp-proxy.internal"), "{}", status.message());
    assert_eq!(proxy.requests().len(), tunnels.len(), "nothing was sent to the refused proxy");
}

#[tokio::test]
async fn every_call_names_us_in_the_user_agent_on_the_wire() {
    let Some(moto) = Moto::start() else { return };
    secret(&moto, REGION, "ua-db", "ua-value").await;
    parameter(&moto, "/ua/p", "ua-param").await;
    let proxy = TestProxy::start();
    let provider = provider(&moto.url())
        .env("HTTP_PROXY", proxy.url())
        .args(&["--eks-addon-version", "v9.9.9-eksbuild.1"])
        .start();
    let objects = format!("{}{}", secret_object("ua-db"), parameter_object("/ua/p"));
    mount_ok(&provider, "ua", &attrs("ua", &objects, &[])).await;
    let requests = proxy.requests();
    for target in ["secretsmanager.GetSecretValue", "AmazonSSM.GetParameters"] {
        let seen = requests.iter().find(|r| r.amz_target.as_deref() == Some(target));
        let agent = seen.and_then(|r| r.user_agent.clone()).unwrap_or_else(|| panic!("no {target}: {requests:#?}"));
        let ours = format!("csi-provider-aws/{} eks-addon/v9.9.9-eksbuild.1", env!("CARGO_PKG_VERSION"));
        assert!(agent.contains(&ours), "{target} user agent {agent:?} lacks {ours:?}");
    }
}

/// The audit lines (target `audit`) of a JSON log.
fn audit_lines(provider: &Provider) -> Vec<serde_json::Value> {
    provider
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "audit")
        .collect()
}

fn audit_for<'a>(lines: &'a [serde_json::Value], operation: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["operation"] == operation).collect()
}

#[tokio::test]
async fn audit_lines_name_pods_objects_and_request_ids_for_batched_reads_never_values() {
    let Some(moto) = Moto::start() else { return };
    secret(&moto, REGION, "audit-a", "value-a-s3cr3t").await;
    secret(&moto, REGION, "audit-b", "value-b-s3cr3t").await;
    parameter(&moto, "/audit/p", "value-p-s3cr3t").await;
    let provider = provider(&moto.url()).args(&["--audit-log", "--log-format", "json"]).start();
    let objects = format!("{}{}{}", secret_object("audit-a"), secret_object("audit-b"), parameter_object("/audit/p"));
    mount_ok(&provider, "audit-pod", &attrs("audit-pod", &objects, &[])).await;

    let lines = audit_lines(&provider);
    let batch = audit_for(&lines, "BatchGetSecretValue");
    assert_eq!(batch.len(), 1, "{lines:#?}");
    assert_eq!(batch[0]["objects"], "audit-a,audit-b");
    assert_eq!(batch[0]["pods"], "default/audit-pod");
    assert_eq!((batch[0]["service"].as_str(), batch[0]["region"].as_str()), (Some("secretsmanager"), Some(REGION)));
    assert_eq!(batch[0]["endpoint"], format!("127.0.0.1:{}", moto.port()));
    assert_eq!((batch[0]["status"].as_str(), batch[0]["level"].as_str()), (Some("200"), Some("INFO")));
    assert!(batch[0]["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{:#?}", batch[0]);
    let params = audit_for(&lines, "GetParameters");
    assert_eq!((params.len(), params[0]["objects"].as_str()), (1, Some("/audit/p")), "{lines:#?}");
    assert!(!provider.logs().contains("s3cr3t"), "a value was logged:\n{}", provider.logs());
}

#[tokio::test]
async fn a_coalesced_read_is_audited_once_for_every_pod_it_served() {
    let Some(moto) = Moto::start() else { return };
    secret(&moto, REGION, "shared-db", "shared-s3cr3t").await;
    let proxy = TestProxy::start();
    let provider = provider(&moto.url()).arg("--audit-log").env("HTTP_PROXY", proxy.url()).start();
    proxy.hold();
    let request = |pod: &str| {
        let target = provider.target(&crate::support::pod_uid(pod));
        crate::support::mount_request(&attrs(pod, &secret_object("shared-db"), &[]), &target)
    };
    let (mut first, mut second) = (provider.client().await, provider.client().await);
    let leader = {
        let req = request("pod-1");
        tokio::spawn(async move { first.mount(req).await })
    };
    eventually("the leader's read at the proxy", &provider, || proxy.waiting() == 1).await;
    let follower = {
        let req = request("pod-2");
        tokio::spawn(async move { second.mount(req).await })
    };
    eventually("the second pod to follow the read", &provider, || {
        provider.logs().contains("following a read in flight")
    })
    .await;
    proxy.release();
    for handle in [leader, follower] {
        handle.await.expect("mount task").unwrap_or_else(|s| panic!("mount failed: {s:?}\n{}", provider.logs()));
    }
    let reads: Vec<String> = provider
        .logs()
        .lines()
        .filter(|l| l.contains("aws request") && l.contains("GetSecretValue"))
        .map(String::from)
        .collect();
    assert_eq!(reads.len(), 1, "one request served both pods: {reads:#?}");
    assert!(
        reads[0].contains("pods=default/pod-1,default/pod-2") && reads[0].contains("objects=shared-db"),
        "{}",
        reads[0]
    );
    assert_eq!(
        proxy.requests().iter().filter(|r| r.amz_target.as_deref() == Some("secretsmanager.GetSecretValue")).count(),
        1
    );
}
