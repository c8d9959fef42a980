//! Pod identity over the real wire: without `--local-credentials` every mount reads AWS as the
//! mounting pod (IRSA or EKS Pod Identity), never as the node. The real binary on its socket,
//! moto behind a recording proxy ([`Recorder`]) as AWS, stand-ins for the Kubernetes API
//! ([`KubeApi`]) and the Pod Identity agent ([`Agent`]). Every test asserts on what went over the
//! wire: who signed each AWS call, in which region, with which token. The provider's own
//! ("node") credentials are `testing`; no recorded call may carry them. Each test skips (outside
//! CI) when moto is not installed. Everything listens on 127.0.0.1 only.

use crate::support::Provider;
use crate::support::agent::{self, Agent};
use crate::support::kube::KubeApi;
use crate::support::recorder::{Call, Fault};
use crate::support::world::*;
use tonic::Code;

/// The scene most tests start from: the world ([`World`]) with service account `default/app-sa`
/// annotated with role `app`, and that account's IRSA token.
struct AppSa {
    w: World,
    token: String,
}

impl AppSa {
    /// `None` (the test skips) when moto is not installed.
    fn start() -> Option<AppSa> {
        let w = World::start()?;
        w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
        Some(AppSa { w, token: jwt("system:serviceaccount:default:app-sa", IRSA_AUDIENCE) })
    }
}

#[tokio::test]
async fn irsa_reads_with_the_role_of_the_pods_service_account() {
    let Some(AppSa { w, token }) = AppSa::start() else { return };
    w.secret(WEST, "irsa-db", "s3cr3t").await;
    let provider = w.provider().start();
    let attributes =
        pod_attrs("pod-a", "app-sa", &secret_object("irsa-db"), Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[]);

    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "irsa-db"), "s3cr3t");

    let sts = exchanges(&w.rec);
    assert_eq!(sts.len(), 1, "one web-identity exchange: {sts:#?}");
    let exchange = &sts[0];
    assert_eq!(exchange.role_arn.as_deref(), Some(role("app").as_str()), "the role of the SA annotation");
    assert!(exchange.web_identity_token_is(&token), "the pod's sts.amazonaws.com token: {exchange:?}");
    assert_eq!(exchange.region(), WEST, "STS of the region being read: {exchange:?}");
    assert!(exchange.role_session_name.as_deref().is_some_and(|s| !s.is_empty()), "a session name: {exchange:?}");
    assert_eq!(exchange.status, 200);
    let issued = exchange.issued_key.clone().expect("STS answered with a key");

    let reads = w.rec.calls_to("secretsmanager");
    assert!(!reads.is_empty(), "Secrets Manager was read");
    for call in &reads {
        assert_eq!(call.access_key.as_deref(), Some(issued.as_str()), "signed with the STS key: {call:?}");
        assert_eq!(call.role_arn_for_key.as_deref(), Some(role("app").as_str()));
        assert_eq!(call.region(), WEST);
    }
    assert_never_node_credentials(&w.rec);

    let sa_path = KubeApi::service_account_path("default", "app-sa");
    assert_eq!(w.kube.requests(&sa_path), 1, "the service account was read once: {:#?}", w.kube.all_requests());
    for req in w.kube.all_requests() {
        assert_eq!(req.method, "GET", "{req:?}");
        assert_eq!(req.authorization.as_deref(), Some("Bearer test-token"), "kubeconfig credentials: {req:?}");
    }
    assert!(!provider.logs().contains(&token), "the token never appears in the logs");
}

#[tokio::test]
async fn service_account_without_the_role_annotation_is_an_identity_error() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", None);
    w.secret(WEST, "db", "v").await;
    let provider = w.provider().start();
    let token = jwt("system:serviceaccount:default:app-sa", IRSA_AUDIENCE);
    let attributes = pod_attrs("pod-a", "app-sa", &secret_object("db"), Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[]);

    let status = expect_err(mount(&provider, "pod-a", &attributes).await, &provider);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("IdentityFailed: "), "{message}");
    assert!(message.contains("default/app-sa"), "names namespace/serviceaccount: {message}");
    assert!(message.contains("eks.amazonaws.com/role-arn"), "names the annotation: {message}");
    assert!(!message.contains(&token), "no token in errors: {message}");
    assert!(w.rec.calls().is_empty(), "no AWS call at all: {:#?}", w.rec.calls());
}

#[tokio::test]
async fn a_missing_token_says_to_configure_token_requests() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.secret(WEST, "db", "v").await;
    let provider = w.provider().start();

    // No tokens at all.
    let attributes = pod_attrs("pod-a", "app-sa", &secret_object("db"), None, &[]);
    let status = expect_err(mount(&provider, "pod-a", &attributes).await, &provider);
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("TokenMissing: "), "{message}");
    assert!(message.contains("tokenRequests") && message.contains(IRSA_AUDIENCE), "{message}");

    // A token for another audience only.
    let other = jwt("system:serviceaccount:default:app-sa", POD_IDENTITY_AUDIENCE);
    let only_other = tokens(&[(POD_IDENTITY_AUDIENCE, &other)]);
    let attributes = pod_attrs("pod-b", "app-sa", &secret_object("db"), Some(&only_other), &[]);
    let status = expect_err(mount(&provider, "pod-b", &attributes).await, &provider);
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("TokenMissing: "), "{message}");
    assert!(message.contains("tokenRequests") && message.contains(IRSA_AUDIENCE), "{message}");
    assert!(!message.contains(&other), "no token in errors: {message}");

    assert!(w.rec.calls().is_empty(), "no AWS call at all: {:#?}", w.rec.calls());
}

#[tokio::test]
async fn tokens_only_in_the_secrets_field_are_used() {
    let Some(AppSa { w, token }) = AppSa::start() else { return };
    w.secret(WEST, "db", "from-secrets-token").await;
    let provider = w.provider().start();
    let attributes = pod_attrs("pod-a", "app-sa", &secret_object("db"), None, &[]);
    let secrets = serde_json::json!({ TOKENS_KEY: tokens(&[(IRSA_AUDIENCE, &token)]) }).to_string();

    let (_, target) = expect_ok(mount_with_secrets(&provider, "pod-a", &attributes, &secrets).await, &provider, &w.rec);
    assert_eq!(read(&target, "db"), "from-secrets-token");
    let sts = exchanges(&w.rec);
    assert_eq!(sts.len(), 1, "{sts:#?}");
    assert!(sts[0].web_identity_token_is(&token), "the token from `secrets`");
    assert_eq!(sts[0].role_arn.as_deref(), Some(role("app").as_str()));
    for call in w.rec.calls_to("secretsmanager") {
        assert_eq!(call.access_key, sts[0].issued_key, "{call:?}");
    }
    assert_never_node_credentials(&w.rec);
}

#[tokio::test]
async fn pod_identity_reads_with_the_agents_credentials() {
    let Some(w) = World::start() else { return };
    // No role annotation: Pod Identity does not need one.
    w.kube.service_account("default", "app-sa", None);
    w.secret(WEST, "pi-db", "pod-identity-value").await;
    let token = jwt("system:serviceaccount:default:app-sa", POD_IDENTITY_AUDIENCE);
    let agent = Agent::start(&token, "ASIAPODIDENTITY00001");
    let provider = w.provider_with_agents(&agent.url(), &agent.url()).start();
    let attributes = pod_attrs(
        "pod-a",
        "app-sa",
        &secret_object("pi-db"),
        Some(&tokens(&[(POD_IDENTITY_AUDIENCE, &token)])),
        &[("usePodIdentity", "true")],
    );

    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "pi-db"), "pod-identity-value");

    let seen = agent.requests();
    assert!(!seen.is_empty(), "the agent was asked");
    for req in &seen {
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", agent::PATH), "{req:?}");
        assert_eq!(req.authorization.as_deref(), Some(token.as_str()), "the pod's token as Authorization");
        assert_eq!(req.status, 200);
    }
    let reads = w.rec.calls_to("secretsmanager");
    assert!(!reads.is_empty(), "Secrets Manager was read");
    for call in &reads {
        assert_eq!(call.access_key.as_deref(), Some(agent.access_key_id()), "signed with the agent's key: {call:?}");
    }
    assert!(w.rec.calls_to("sts").is_empty(), "no STS call with Pod Identity: {:#?}", w.rec.calls());
    assert_never_node_credentials(&w.rec);
    assert!(!provider.logs().contains(&token), "the token never appears in the logs");
}

#[tokio::test]
async fn pod_identity_auto_falls_back_from_ipv4_to_ipv6() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", None);
    w.secret(WEST, "pi-db", "via-ipv6").await;
    let token = jwt("system:serviceaccount:default:app-sa", POD_IDENTITY_AUDIENCE);
    let agent = Agent::start(&token, "ASIAPODIDENTITYIPV6");
    let refused = agent::refused_url();
    let provider = w.provider_with_agents(&refused, &agent.url()).start();
    let pi_attrs = |pod: &str, token: &str, address_type: &str| {
        pod_attrs(
            pod,
            "app-sa",
            &secret_object("pi-db"),
            Some(&tokens(&[(POD_IDENTITY_AUDIENCE, token)])),
            &[("usePodIdentity", "true"), ("preferredAddressType", address_type)],
        )
    };

    let (_, target) =
        expect_ok(mount(&provider, "pod-auto", &pi_attrs("pod-auto", &token, "auto")).await, &provider, &w.rec);
    assert_eq!(read(&target, "pi-db"), "via-ipv6");
    assert!(!agent.requests().is_empty(), "the IPv6 agent answered");
    for call in w.rec.calls_to("secretsmanager") {
        assert_eq!(call.access_key.as_deref(), Some(agent.access_key_id()), "{call:?}");
    }

    // ipv4 only: the refused IPv4 agent is the only one tried. A different token so no cached
    // credentials of the first pod can apply.
    let (agent_before, reads_before) = (agent.requests().len(), w.rec.calls_to("secretsmanager").len());
    // (Same service account, as the attributes say; the signature part makes it another token.)
    let other = format!("{}-v4", jwt("system:serviceaccount:default:app-sa", POD_IDENTITY_AUDIENCE));
    let status = expect_err(mount(&provider, "pod-v4", &pi_attrs("pod-v4", &other, "ipv4")).await, &provider);
    assert!(!status.message().contains(&other), "no token in errors: {status:?}");
    assert!(status.message().contains(&refused), "names the agent address tried: {status:?}");
    assert!(!status.message().contains(&agent.url()), "and only that one: {status:?}");
    assert_eq!(agent.requests().len(), agent_before, "ipv4 never tries the IPv6 agent");
    assert_eq!(w.rec.calls_to("secretsmanager").len(), reads_before, "no read without credentials");
    assert_never_node_credentials(&w.rec);
}

#[tokio::test]
async fn two_pods_with_different_roles_mounting_at_once_each_read_as_their_own_role() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "sa-a", Some(role("role-a").as_str()));
    w.kube.service_account("default", "sa-b", Some(role("role-b").as_str()));
    w.secret(WEST, "db-a", "value-a").await;
    w.secret(WEST, "db-b", "value-b").await;
    let provider = w.provider().start();
    let token_a = jwt("system:serviceaccount:default:sa-a", IRSA_AUDIENCE);
    let token_b = jwt("system:serviceaccount:default:sa-b", IRSA_AUDIENCE);
    let attrs_a = pod_attrs("pod-a", "sa-a", &secret_object("db-a"), Some(&tokens(&[(IRSA_AUDIENCE, &token_a)])), &[]);
    let attrs_b = pod_attrs("pod-b", "sa-b", &secret_object("db-b"), Some(&tokens(&[(IRSA_AUDIENCE, &token_b)])), &[]);

    let (a, b) = tokio::join!(mount(&provider, "pod-a", &attrs_a), mount(&provider, "pod-b", &attrs_b));
    let ((_, target_a), (_, target_b)) = (expect_ok(a, &provider, &w.rec), expect_ok(b, &provider, &w.rec));
    assert_eq!((read(&target_a, "db-a"), read(&target_b, "db-b")), ("value-a".into(), "value-b".into()));

    let sts = exchanges(&w.rec);
    let exchange_of = |token: &str| -> Call {
        let found: Vec<&Call> = sts.iter().filter(|c| c.web_identity_token_is(token)).collect();
        assert_eq!(found.len(), 1, "one exchange per pod token: {sts:#?}");
        found[0].clone()
    };
    let (ex_a, ex_b) = (exchange_of(&token_a), exchange_of(&token_b));
    assert_eq!(ex_a.role_arn.as_deref(), Some(role("role-a").as_str()), "pod a's token for role a");
    assert_eq!(ex_b.role_arn.as_deref(), Some(role("role-b").as_str()), "pod b's token for role b");
    let (key_a, key_b) = (ex_a.issued_key.expect("key a"), ex_b.issued_key.expect("key b"));
    assert_ne!(key_a, key_b, "moto issues distinct keys");

    for (object, key, role_arn) in [("db-a", &key_a, role("role-a")), ("db-b", &key_b, role("role-b"))] {
        let reads = reads_of(&w.rec, object);
        assert!(!reads.is_empty(), "{object} was read: {:#?}", w.rec.calls());
        for call in reads {
            assert_eq!(call.access_key.as_ref(), Some(key), "{object} read with its pod's key: {call:?}");
            assert_eq!(call.role_arn_for_key.as_deref(), Some(role_arn.as_str()), "{call:?}");
        }
    }
    assert_never_node_credentials(&w.rec);
}

#[tokio::test]
async fn region_comes_from_the_node_label_when_nothing_else_names_one() {
    let Some(AppSa { w, token }) = AppSa::start() else { return };
    w.kube.node("node-1", &[(REGION_LABEL, EAST), ("kubernetes.io/hostname", "node-1")]);
    w.secret(EAST, "east-only", "east-value").await;
    let provider =
        w.provider().env_remove("AWS_REGION").env_remove("AWS_DEFAULT_REGION").env("NODE_NAME", "node-1").start();
    let objects = secret_object("east-only");
    let tokens_json = tokens(&[(IRSA_AUDIENCE, &token)]);

    for pod in ["pod-a", "pod-b"] {
        let attributes = without(&pod_attrs(pod, "app-sa", &objects, Some(&tokens_json), &[]), "region");
        let (_, target) = expect_ok(mount(&provider, pod, &attributes).await, &provider, &w.rec);
        assert_eq!(read(&target, "east-only"), "east-value");
    }
    let reads = w.rec.calls_to("secretsmanager");
    assert!(!reads.is_empty());
    for call in &reads {
        assert_eq!(call.region(), EAST, "read in the node's region: {call:?}");
    }
    for exchange in exchanges(&w.rec) {
        assert_eq!(exchange.region(), EAST, "STS of the node's region: {exchange:?}");
    }
    assert_eq!(
        w.kube.requests(&KubeApi::node_path("node-1")),
        1,
        "the node is looked up once and cached: {:#?}",
        w.kube.all_requests()
    );
    assert_never_node_credentials(&w.rec);
}

#[tokio::test]
async fn the_region_parameter_wins_over_aws_region() {
    let Some(AppSa { w, token }) = AppSa::start() else { return };
    w.kube.node("node-1", &[(REGION_LABEL, EAST)]);
    w.secret(WEST, "west-only", "west-value").await;
    let provider = w.provider().env("AWS_REGION", EAST).env("NODE_NAME", "node-1").start();
    let attributes = pod_attrs(
        "pod-a",
        "app-sa",
        &secret_object("west-only"),
        Some(&tokens(&[(IRSA_AUDIENCE, &token)])),
        &[("region", WEST)],
    );

    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "west-only"), "west-value");
    let calls = w.rec.calls();
    assert!(calls.iter().any(|c| c.service() == "secretsmanager"));
    for call in &calls {
        assert_eq!(call.region(), WEST, "everything in the SPC's region: {call:?}");
    }
    assert_never_node_credentials(&w.rec);
}

#[tokio::test]
async fn aws_region_wins_over_the_node_label() {
    let Some(AppSa { w, token }) = AppSa::start() else { return };
    w.kube.node("node-1", &[(REGION_LABEL, EAST)]);
    w.secret(WEST, "west-only", "west-value").await;
    let provider = w.provider().env("AWS_REGION", WEST).env("NODE_NAME", "node-1").start();
    let attributes = without(
        &pod_attrs("pod-a", "app-sa", &secret_object("west-only"), Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[]),
        "region",
    );

    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "west-only"), "west-value");
    for call in w.rec.calls() {
        assert_eq!(call.region(), WEST, "the provider's AWS_REGION: {call:?}");
    }
    assert_never_node_credentials(&w.rec);
}

const FAILOVER_OBJECTS: &str = "
- objectName: db
  objectType: secretsmanager
  objectAlias: db
  failoverObject:
    objectName: db-replica
";

/// The failover world: role `app`, `db` in us-west-2 and `db-replica` in us-east-1.
async fn failover_setup(w: &World) -> (Provider, String) {
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.secret(WEST, "db", "west-value").await;
    w.secret(EAST, "db-replica", "east-value").await;
    let provider = w.provider().start();
    let token = jwt("system:serviceaccount:default:app-sa", IRSA_AUDIENCE);
    let attributes = pod_attrs(
        "pod-a",
        "app-sa",
        FAILOVER_OBJECTS,
        Some(&tokens(&[(IRSA_AUDIENCE, &token)])),
        &[("region", WEST), ("failoverRegion", EAST)],
    );
    (provider, attributes)
}

#[tokio::test]
async fn a_primary_region_outage_fails_over_to_the_failover_region() {
    let Some(w) = World::start() else { return };
    let (provider, attributes) = failover_setup(&w).await;
    w.rec.fail(Fault::unavailable().service("secretsmanager").region(WEST));

    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "db"), "east-value", "the failover region's value");

    let west = w.rec.calls_to("secretsmanager").into_iter().filter(|c| c.region() == WEST).collect::<Vec<_>>();
    assert!(!west.is_empty(), "the primary was tried first");
    assert!(west.iter().all(|c| c.injected && c.status == 503), "{west:#?}");
    let east = reads_of(&w.rec, "db-replica");
    assert!(!east.is_empty(), "the failover object was read: {:#?}", w.rec.calls());
    for call in &east {
        assert_eq!((call.region(), call.status), (EAST, 200), "{call:?}");
        assert_eq!(call.role_arn_for_key.as_deref(), Some(role("app").as_str()), "the pod's role: {call:?}");
    }
    assert_never_node_credentials(&w.rec);
}

#[tokio::test]
async fn a_primary_region_sts_outage_exchanges_the_token_in_the_failover_region() {
    let Some(w) = World::start() else { return };
    let (provider, attributes) = failover_setup(&w).await;
    w.rec.fail(Fault::sts_unavailable().service("sts").region(WEST));

    let (_, target) = expect_ok(mount(&provider, "pod-a", &attributes).await, &provider, &w.rec);
    assert_eq!(read(&target, "db"), "west-value", "Secrets Manager of the primary region still answers");

    let sts = exchanges(&w.rec);
    let west: Vec<&Call> = sts.iter().filter(|c| c.region() == WEST).collect();
    assert!(!west.is_empty() && west.iter().all(|c| c.injected && c.status == 503), "{sts:#?}");
    let east: Vec<&Call> = sts.iter().filter(|c| c.region() == EAST && c.status == 200).collect();
    assert_eq!(east.len(), 1, "one exchange in the failover region: {sts:#?}");
    assert_eq!(east[0].role_arn.as_deref(), Some(role("app").as_str()));
    let reads = reads_of(&w.rec, "db");
    assert!(!reads.is_empty(), "{:#?}", w.rec.calls());
    for call in &reads {
        assert_eq!(call.region(), WEST, "{call:?}");
        assert_eq!(call.access_key, east[0].issued_key, "signed with the failover region's STS key: {call:?}");
    }
    assert_never_node_credentials(&w.rec);
}

#[tokio::test]
async fn access_denied_in_the_primary_region_is_not_failed_over() {
    let Some(w) = World::start() else { return };
    let (provider, attributes) = failover_setup(&w).await;
    w.rec.fail(Fault::access_denied().service("secretsmanager").region(WEST));

    let status = expect_err(mount(&provider, "pod-a", &attributes).await, &provider);
    assert!(status.message().starts_with("AccessDenied: "), "{status:?}");
    assert!(
        w.rec.calls_to("secretsmanager").iter().any(|c| c.region() == WEST && c.injected),
        "the primary answered access denied: {:#?}",
        w.rec.calls()
    );
    let east: Vec<Call> = w.rec.calls().into_iter().filter(|c| c.region() == EAST).collect();
    assert!(east.is_empty(), "no call to the failover region: {east:#?}");
    assert_never_node_credentials(&w.rec);
}

#[tokio::test]
async fn service_account_lookups_are_cached() {
    let Some(AppSa { w, token }) = AppSa::start() else { return };
    w.secret(WEST, "db", "v").await;
    let provider = w.provider().start();
    let tokens_json = tokens(&[(IRSA_AUDIENCE, &token)]);
    for pod in ["pod-a", "pod-b", "pod-c"] {
        let attributes = pod_attrs(pod, "app-sa", &secret_object("db"), Some(&tokens_json), &[]);
        expect_ok(mount(&provider, pod, &attributes).await, &provider, &w.rec);
    }
    let path = KubeApi::service_account_path("default", "app-sa");
    assert_eq!(w.kube.requests(&path), 1, "one lookup for a burst of mounts: {:#?}", w.kube.all_requests());
    assert_never_node_credentials(&w.rec);
}

#[tokio::test]
async fn failover_to_the_region_being_read_is_rejected() {
    let Some(AppSa { w, token }) = AppSa::start() else { return };
    let provider = w.provider().env("AWS_REGION", WEST).start();
    // No region parameter: the region is AWS_REGION, which equals failoverRegion.
    let attributes = without(
        &pod_attrs(
            "pod-a",
            "app-sa",
            FAILOVER_OBJECTS,
            Some(&tokens(&[(IRSA_AUDIENCE, &token)])),
            &[("failoverRegion", WEST)],
        ),
        "region",
    );

    let status = expect_err(mount(&provider, "pod-a", &attributes).await, &provider);
    assert!(status.message().starts_with("InvalidParameters: "), "{status:?}");
    assert!(status.message().contains("failoverRegion"), "{status:?}");
    assert!(w.rec.calls().is_empty(), "no AWS call: {:#?}", w.rec.calls());
}

/// Regression (issue #11): with Pod Identity the cache scope came from the attributes, so a
/// request carrying pod B's token with pod A's namespace/service account was served A's cached
/// value without B ever reading it. The scope now comes from the token the agent accepted, and a
/// request whose attributes disagree with its token is refused before anything is read.
#[tokio::test]
async fn pod_identity_refuses_attributes_that_disagree_with_the_token() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "sa-a", None);
    w.kube.service_account("default", "sa-b", None);
    w.secret(WEST, "only-for-a", "a-value").await;
    let token_a = jwt("system:serviceaccount:default:sa-a", POD_IDENTITY_AUDIENCE);
    let token_b = jwt("system:serviceaccount:default:sa-b", POD_IDENTITY_AUDIENCE);
    let agent = Agent::accepting(&[&token_a, &token_b], "ASIAPODIDENTITY00002");
    let provider = w.provider_with_agents(&agent.url(), &agent.url()).start();
    let pod_identity = [("usePodIdentity", "true")];
    let objects = secret_object("only-for-a");

    let a = pod_attrs("pod-a", "sa-a", &objects, Some(&tokens(&[(POD_IDENTITY_AUDIENCE, &token_a)])), &pod_identity);
    let (_, target_a) = expect_ok(mount(&provider, "pod-a", &a).await, &provider, &w.rec);
    assert_eq!(read(&target_a, "only-for-a"), "a-value");
    let agent_calls = agent.requests().len();

    // Pod B's token, pod A's service account in the attributes.
    let forged =
        pod_attrs("pod-b", "sa-a", &objects, Some(&tokens(&[(POD_IDENTITY_AUDIENCE, &token_b)])), &pod_identity);
    let status = expect_err(mount(&provider, "pod-b", &forged).await, &provider);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("IdentityFailed: "), "{message}");
    assert!(message.contains("issued to default/sa-b") && message.contains("default/sa-a"), "{message}");
    assert!(!message.contains(&token_b), "no token in errors: {message}");
    assert_eq!(agent.requests().len(), agent_calls, "refused before the agent was asked");
    let target_b = provider.target(&crate::support::pod_uid("pod-b"));
    assert!(std::fs::read_dir(&target_b).map(|d| d.count()).unwrap_or(0) == 0, "nothing written for pod-b");
}

/// The same rule for IRSA: a token for one service account never reads with the role of the
/// service account the attributes name.
#[tokio::test]
async fn irsa_refuses_attributes_that_disagree_with_the_token() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "sa-a", Some(role("a").as_str()));
    w.kube.service_account("default", "sa-b", Some(role("b").as_str()));
    w.secret(WEST, "db", "v").await;
    let provider = w.provider().start();
    let token_b = jwt("system:serviceaccount:default:sa-b", IRSA_AUDIENCE);
    let forged = pod_attrs("pod-b", "sa-a", &secret_object("db"), Some(&tokens(&[(IRSA_AUDIENCE, &token_b)])), &[]);
    let status = expect_err(mount(&provider, "pod-b", &forged).await, &provider);
    assert!(status.message().starts_with("IdentityFailed: "), "{status:?}");
    assert!(w.rec.calls().is_empty(), "no STS exchange, no read: {:#?}", w.rec.calls());
    assert!(w.kube.all_requests().is_empty(), "not even the service account was read");
}

/// Regression (issue #11): the node's region label went into endpoint host names unchecked,
/// unlike the `region` parameter. A label that is not a region is refused with the node named.
#[tokio::test]
async fn a_node_region_label_that_is_not_a_region_is_refused() {
    let Some(AppSa { w, token }) = AppSa::start() else { return };
    w.kube.node("node-1", &[(REGION_LABEL, "evil.example.com/x")]);
    let provider =
        w.provider().env_remove("AWS_REGION").env_remove("AWS_DEFAULT_REGION").env("NODE_NAME", "node-1").start();
    let attributes = without(
        &pod_attrs("pod-a", "app-sa", &secret_object("db"), Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[]),
        "region",
    );
    let status = expect_err(mount(&provider, "pod-a", &attributes).await, &provider);
    let message = status.message();
    assert!(message.starts_with("InvalidParameters: "), "{message}");
    assert!(message.contains("node node-1") && message.contains("not a valid AWS region"), "{message}");
    assert!(w.rec.calls().is_empty(), "no AWS call: {:#?}", w.rec.calls());
}

/// Concurrent first mounts of pods of one service account share one service-account lookup:
/// before, each sent its own GET behind the `--qps 5` limiter (500 pods of 10 service accounts
/// made up to 297 GETs and waited up to a minute).
#[tokio::test]
async fn concurrent_first_mounts_of_one_service_account_make_one_lookup() {
    let Some(w) = World::start() else { return };
    w.kube.service_account("default", "app-sa", Some(role("app").as_str()));
    w.secret(WEST, "shared-db", "v").await;
    let provider = w.provider().start();
    let pods: Vec<(String, String)> = (0..20)
        .map(|i| {
            let pod = format!("pod-{i}");
            let token = format!("{}-{i}", jwt("system:serviceaccount:default:app-sa", IRSA_AUDIENCE));
            let attributes =
                pod_attrs(&pod, "app-sa", &secret_object("shared-db"), Some(&tokens(&[(IRSA_AUDIENCE, &token)])), &[]);
            (pod, attributes)
        })
        .collect();
    let mounts = pods.iter().map(|(pod, attributes)| mount(&provider, pod, attributes));
    for result in futures::future::join_all(mounts).await {
        expect_ok(result, &provider, &w.rec);
    }
    let sa_path = KubeApi::service_account_path("default", "app-sa");
    assert_eq!(w.kube.requests(&sa_path), 1, "one GET for 20 concurrent pods: {:#?}", w.kube.all_requests());
}
