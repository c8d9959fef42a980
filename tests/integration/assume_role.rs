//! `assumeRoleArn` over the real wire: the pod's own IRSA credentials sign an STS `AssumeRole`
//! (role chaining) through the provider's STS endpoint, only for roles an admin's
//! `--allowed-assume-role` admits, and the chained credentials and the values read with them
//! are scoped to (the pod's proven identity, role, external id). The real binary, moto's STS
//! behind the recorder ([`Recorder`](crate::support::recorder::Recorder)), the Kubernetes
//! stand-in. Each test skips (outside CI) when moto is not installed.

use crate::support::ACCOUNT;
use crate::support::recorder::{Call, Fault};
use crate::support::world::*;
use tonic::Code;

const EXTERNAL_ID: &str = "tenant-7:team/a";

fn allow_cross() -> String {
    format!("--allowed-assume-role=arn:aws:iam::{ACCOUNT}:role/cross-*")
}

/// The attributes for `pod` of service account `sa` holding its IRSA token, reading `secret`
/// as role `cross-reader` with `extra` parameters.
fn chained(pod: &str, sa: &str, secret: &str, extra: &[(&str, &str)]) -> String {
    let token = jwt(&format!("system:serviceaccount:default:{sa}"), IRSA_AUDIENCE);
    let cross = role("cross-reader");
    let mut all = vec![("assumeRoleArn", cross.as_str())];
    all.extend_from_slice(extra);
    pod_attrs(pod, sa, &secret_object(secret), Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &all)
}

fn assume_calls(w: &World) -> Vec<Call> {
    w.rec.calls().into_iter().filter(Call::is_assume_role).collect()
}

#[tokio::test]
async fn the_chained_role_is_assumed_with_the_pods_own_credentials_and_reads() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.secret(WEST, "cross-db", "from-the-other-role").await;
    let provider = w.provider().arg(allow_cross()).start();
    let attributes = chained(
        "pod-a",
        "app-sa",
        "cross-db",
        &[("assumeRoleExternalId", EXTERNAL_ID), ("assumeRoleDurationSeconds", "900")],
    );

    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "cross-db"), "from-the-other-role");

    let web = exchanges(&w.rec);
    assert_eq!(web.len(), 1, "the pod's own identity first: {web:#?}");
    let own_key = web[0].issued_key.clone().expect("IRSA key");
    let chained = assume_calls(&w);
    assert_eq!(chained.len(), 1, "one AssumeRole: {chained:#?}");
    let call = &chained[0];
    assert_eq!(call.role_arn.as_deref(), Some(role("cross-reader").as_str()));
    assert_eq!(call.access_key.as_deref(), Some(own_key.as_str()), "signed with the pod's own key: {call:?}");
    assert_eq!(call.role_arn_for_key.as_deref(), Some(role("app").as_str()));
    assert_eq!(call.region(), WEST, "STS of the region being read: {call:?}");
    assert_eq!(call.listener_region.as_deref(), Some(WEST), "the provider's `--endpoint sts@us-west-2`: {call:?}");
    assert!(call.external_id_is(Some(EXTERNAL_ID)), "the external id was sent: {call:?}");
    assert_eq!(call.duration_seconds.as_deref(), Some("900"));
    assert!(call.role_session_name.as_deref().is_some_and(|s| s.contains("pod-a")), "{call:?}");
    let chained_key = call.issued_key.clone().expect("AssumeRole key");

    let reads = w.rec.calls_to("secretsmanager");
    assert!(!reads.is_empty());
    for read in &reads {
        assert_eq!(read.access_key.as_deref(), Some(chained_key.as_str()), "read as the chained role: {read:?}");
    }
    assert_never_node_credentials(&w.rec);
    assert!(!provider.logs().contains(EXTERNAL_ID), "the external id never reaches the logs");

    // A re-sync reuses the chained credentials and the values cached under them.
    w.rec.forget_calls();
    expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert!(assume_calls(&w).is_empty(), "chained credentials reused: {:#?}", w.rec.calls());
    assert!(reads_of(&w.rec, "cross-db").is_empty(), "the value was served from the cache");
}

/// Ten pods of one service account mounting at once, the chained role not yet cached: one
/// `AssumeRole` call, the other nine wait for it and use its credentials (each pod still proves
/// its own identity with its own token first).
#[tokio::test]
async fn concurrent_first_mounts_of_one_identity_assume_the_role_once() {
    const PODS: usize = 10;
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.secret(WEST, "cross-db", "shared").await;
    let provider = w.provider().arg(allow_cross()).start();
    // Long enough that every pod reaches the chained role while the first call is in flight.
    w.rec.delay("AssumeRole", std::time::Duration::from_millis(1500));
    let pods: Vec<(String, String)> = (0..PODS)
        .map(|i| {
            let pod = format!("pod-{i}");
            let attributes = chained(&pod, "app-sa", "cross-db", &[]);
            (pod, attributes)
        })
        .collect();
    let mounts = pods.iter().map(|(pod, attributes)| mount(&provider, pod, attributes));
    for result in futures::future::join_all(mounts).await {
        let (_, target) = expect_ok(result, &provider, &w.rec);
        assert_eq!(read(&target, "cross-db"), "shared");
    }
    assert_eq!(exchanges(&w.rec).len(), PODS, "every pod proved its own identity");
    assert_eq!(assume_calls(&w).len(), 1, "one AssumeRole for ten pods: {:#?}", assume_calls(&w));
}

/// Two pods of different identities naming the same role: each assumes it with its own
/// credentials, and neither is served the other's chained credentials or values.
#[tokio::test]
async fn chained_credentials_and_values_are_scoped_to_the_pods_own_identity() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.kube.service_account("default", "other-sa", Some(role("other").as_str()));
    w.secret(WEST, "cross-db", "v").await;
    let provider = w.provider().arg(allow_cross()).start();

    expect_ok(mount(&provider, "pod-a", &chained("pod-a", "app-sa", "cross-db", &[])).await, &provider, &w.rec);
    expect_ok(mount(&provider, "pod-b", &chained("pod-b", "other-sa", "cross-db", &[])).await, &provider, &w.rec);
    let chained_calls = assume_calls(&w);
    let signers: Vec<Option<&str>> = chained_calls.iter().map(|c| c.role_arn_for_key.as_deref()).collect();
    let (app, other) = (role("app"), role("other"));
    assert_eq!(signers, vec![Some(app.as_str()), Some(other.as_str())], "each pod assumes with its own identity");
    assert_eq!(reads_of(&w.rec, "cross-db").len(), 2, "pod-b's value is not pod-a's cached one");

    // Another external id is another scope, even for the same pod identity.
    w.rec.forget_calls();
    let with_id = chained("pod-c", "app-sa", "cross-db", &[("assumeRoleExternalId", EXTERNAL_ID)]);
    expect_ok(mount(&provider, "pod-c", &with_id).await, &provider, &w.rec);
    assert_eq!(assume_calls(&w).len(), 1, "{:#?}", w.rec.calls());
    assert_eq!(reads_of(&w.rec, "cross-db").len(), 1);
}

#[tokio::test]
async fn a_role_no_admin_allowed_is_refused_before_any_aws_call() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.secret(WEST, "cross-db", "v").await;
    for (args, expect) in [
        (vec![], "No role is allowed"),
        (vec![format!("--allowed-assume-role=arn:aws:iam::{ACCOUNT}:role/other-*")], "Allowed patterns"),
    ] {
        let provider = w.provider().args(&args).start();
        let status =
            expect_err(mount(&provider, "pod-a", &chained("pod-a", "app-sa", "cross-db", &[])).await, &provider);
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let message = status.message();
        assert!(message.starts_with("InvalidParameters: "), "{message}");
        assert!(message.contains(&format!("assumeRoleArn names role {}", role("cross-reader"))), "{message}");
        assert!(message.contains("--allowed-assume-role") && message.contains(expect), "{message}");
        assert!(w.rec.calls().is_empty(), "no AWS call at all: {:#?}", w.rec.calls());
        assert!(!std::path::Path::new(&provider.target(&crate::support::pod_uid("pod-a"))).join("cross-db").exists());
    }
}

#[tokio::test]
async fn bad_assume_role_parameters_are_refused_before_any_aws_call() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    let provider = w.provider().arg(allow_cross()).start();
    for (extra, expect) in [
        (
            vec![("assumeRoleDurationSeconds", "7200")],
            "assumeRoleDurationSeconds \"7200\" is not a number of seconds from 900 to 3600",
        ),
        (vec![("assumeRoleExternalId", "a b")], "assumeRoleExternalId has a character"),
        (vec![("assumeRoleArn", "arn:aws:iam::123:role/cross-x")], "is not an IAM role ARN"),
    ] {
        let status = expect_err(mount(&provider, "pod-a", &chained("pod-a", "app-sa", "x", &extra)).await, &provider);
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(expect), "{}", status.message());
        assert!(!status.message().contains("a b"), "the external id is not echoed: {}", status.message());
    }
    assert!(w.rec.calls().is_empty(), "no AWS call at all: {:#?}", w.rec.calls());
}

#[tokio::test]
async fn sts_refusing_the_chain_names_the_role_and_the_pods_identity() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.secret(WEST, "cross-db", "v").await;
    let provider = w.provider().arg(allow_cross()).start();
    w.rec.fail(
        Fault::new(
            403,
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error><RequestId>r</RequestId></ErrorResponse>"#,
        )
        .service("sts")
        .operation("AssumeRole"),
    );

    let status = expect_err(mount(&provider, "pod-a", &chained("pod-a", "app-sa", "cross-db", &[])).await, &provider);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("IdentityFailed: "), "{message}");
    assert!(message.contains(&role("cross-reader")), "names the role: {message}");
    assert!(
        message.contains(&format!("arn:aws:sts::{ACCOUNT}:assumed-role/app")),
        "names the pod's identity: {message}"
    );
    assert!(message.contains("(AccessDenied)") && message.contains("trust policy"), "{message}");
    assert!(!message.contains("ServiceError") && !message.contains("{ "), "no library Debug: {message}");
    assert!(w.rec.calls_to("secretsmanager").is_empty(), "nothing was read: {:#?}", w.rec.calls());
}

/// The primary region's STS failing transiently: the chain is made in the failover region's STS
/// (through its own endpoint), and the objects are still read in the primary region.
#[tokio::test]
async fn a_transient_sts_failure_chains_in_the_failover_region() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.secret(WEST, "cross-db", "v").await;
    let provider = w.provider().arg(allow_cross()).start();
    w.rec.fail(Fault::sts_unavailable().service("sts").operation("AssumeRole").region(WEST));

    let attributes = chained("pod-a", "app-sa", "cross-db", &[("failoverRegion", EAST)]);
    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "cross-db"), "v");
    let chained_calls = assume_calls(&w);
    let regions: Vec<(Option<&str>, bool)> =
        chained_calls.iter().map(|c| (c.listener_region.as_deref(), c.injected)).collect();
    assert_eq!(regions.first(), Some(&(Some(WEST), true)), "{chained_calls:#?}");
    assert_eq!(regions.last(), Some(&(Some(EAST), false)), "then the failover region's STS: {chained_calls:#?}");
    let issued = chained_calls.last().and_then(|c| c.issued_key.clone()).expect("a chained key");
    for read in w.rec.calls_to("secretsmanager") {
        assert_eq!((read.access_key.as_deref(), read.region()), (Some(issued.as_str()), WEST), "{read:?}");
    }
}

/// `AssumeRole` is made through the provider's own STS client: under
/// `--require-private-endpoints` an STS endpoint that resolves to a public address is refused
/// before anything is sent, exactly as for every other call. (Local credentials: the pod's own
/// identity needs no STS, so the chained call is the only STS call.)
#[tokio::test]
async fn the_chained_call_obeys_require_private_endpoints() {
    let Some(w) = World::start() else { return };
    w.secret(WEST, "cross-db", "v").await;
    let port = w.rec.url().rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse::<u16>().ok()).expect("port");
    let public = "203.0.113.10";
    let provider = crate::support::Provider::builder(&w.moto.url())
        .args(&["--local-credentials", "--require-private-endpoints"])
        .arg(allow_cross())
        .args(&["--resolve", &format!("sts-public.example={public}"), "--resolve", "sm-private.example=127.0.0.1"])
        .args(&["--endpoint", &format!("sts=http://sts-public.example:{port}")])
        .args(&["--endpoint", &format!("secretsmanager=http://sm-private.example:{port}")])
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .start();
    let attributes =
        crate::support::attrs("pod-a", &secret_object("cross-db"), &[("assumeRoleArn", &role("cross-reader"))]);

    let status = expect_err(mount(&provider, "pod-a", &attributes).await, &provider);
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("PublicEndpointRefused: "), "{message}");
    assert!(message.contains("STS AssumeRole of assumeRoleArn") && message.contains(public), "{message}");
    assert!(w.rec.calls().is_empty(), "nothing was sent: {:#?}", w.rec.calls());

    // Without the chain the same provider reads (the private Secrets Manager endpoint).
    let plain = crate::support::attrs("pod-b", &secret_object("cross-db"), &[]);
    let (_, target) = expect_ok(mount(&provider, "pod-b", &plain).await, &provider, &w.rec);
    assert_eq!(read(&target, "cross-db"), "v");
}
