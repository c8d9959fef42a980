//! `--rotation-events` over the real wire: after a re-sync that swapped in a changed set, the
//! real binary creates a `SecretRotated` Event on the pod in the Kubernetes stand-in
//! ([`KubeApi`]), naming the objects and their new versions and never a value; none when the
//! flag is off, when the set did not change, when the pod's UID is not the target path's, or
//! past the per-node rate; and a slow or refusing API server never delays or fails a mount.
//! moto as AWS (`--local-credentials`, `--cache-ttl 0` so every re-sync reads). Each test skips
//! (outside CI) when moto is not installed.

use crate::metrics::{admin_addr, exported, get};
use crate::support::kube::KubeApi;
use crate::support::{Moto, Provider, ProviderBuilder, attrs, mount_request, pod_uid};
use serde_json::Value;
use std::time::{Duration, Instant};

const REGION: &str = "us-west-2";
const OBJECTS: &str =
    "- {objectName: db, objectType: secretsmanager}\n- {objectName: /app/key, objectType: ssmparameter}\n";

struct Scene {
    moto: Moto,
    kube: KubeApi,
}

impl Scene {
    async fn start() -> Option<Scene> {
        let moto = Moto::start()?;
        moto.sm(REGION).create_secret().name("db").secret_string("v1-SECRET").send().await.expect("create_secret");
        moto.ssm(REGION)
            .put_parameter()
            .name("/app/key")
            .value("k1-SECRET")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("put_parameter");
        Some(Scene { moto, kube: KubeApi::start() })
    }

    fn provider(&self, args: &[&str]) -> ProviderBuilder {
        Provider::builder(&self.moto.url())
            .args(&["--local-credentials", "--cache-ttl", "0"])
            .args(args)
            .env("KUBECONFIG", self.kube.kubeconfig().display().to_string())
            .env("NODE_NAME", "node-1")
    }

    /// Rotates `db`; its new VersionId.
    async fn rotate(&self, value: &str) -> String {
        let put = self.moto.sm(REGION).put_secret_value().secret_id("db").secret_string(value).send().await;
        put.expect("put_secret_value").version_id.expect("a VersionId")
    }
}

/// Mounts `pod` (attributes as kubelet sends them, `extra` overriding) into its target path.
async fn mount(provider: &Provider, pod: &str, extra: &[(&str, &str)]) {
    let target = provider.target(&pod_uid(pod));
    let request = mount_request(&attrs(pod, OBJECTS, extra), &target);
    let result = provider.client().await.mount(request).await;
    result.unwrap_or_else(|status| panic!("mount of {pod} failed: {status:?}\n{}", provider.logs()));
}

fn events_for<'a>(events: &'a [Value], pod: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["involvedObject"]["name"] == pod).collect()
}

#[tokio::test]
async fn a_resync_that_swaps_in_a_changed_set_emits_one_event_on_the_pod() {
    let Some(scene) = Scene::start().await else { return };
    let provider = scene.provider(&["--rotation-events"]).start();
    mount(&provider, "pod-a", &[]).await;
    mount(&provider, "pod-a", &[]).await;
    let version = scene.rotate("v2-SECRET").await;
    mount(&provider, "pod-a", &[]).await;

    let events = scene.kube.wait_events(1);
    assert_eq!(
        events.len(),
        1,
        "one event, for the changed re-sync only (not the first mount, not the unchanged re-sync): {events:#?}"
    );
    let event = &events[0];
    assert_eq!(event["reason"], "SecretRotated");
    assert_eq!(event["type"], "Normal");
    let involved = &event["involvedObject"];
    assert_eq!((&involved["kind"], &involved["apiVersion"]), (&Value::from("Pod"), &Value::from("v1")));
    assert_eq!((&involved["name"], &involved["namespace"]), (&Value::from("pod-a"), &Value::from("default")));
    assert_eq!(involved["uid"], pod_uid("pod-a"));
    assert_eq!(event["metadata"]["namespace"], "default");
    assert_eq!(event["source"]["component"], "csi-provider-aws");
    assert_eq!(event["source"]["host"], "node-1");
    let message = event["message"].as_str().expect("a message");
    assert_eq!(message, format!(r#"Rotated 1 object in volume secrets: "db" (version {version})"#));
    let text = event.to_string();
    assert!(!text.contains("SECRET"), "never a value: {text}");
    let requests = scene.kube.all_requests();
    assert!(requests.iter().all(|r| r.method != "POST" || r.path == KubeApi::events_path("default")), "{requests:#?}");
}

#[tokio::test]
async fn no_event_when_the_flag_is_off_or_the_pod_uid_is_not_the_target_paths() {
    let Some(scene) = Scene::start().await else { return };
    let off = scene.provider(&[]).start();
    let on = scene.provider(&["--rotation-events=true"]).start();
    for pod in ["pod-off", "pod-mismatch", "pod-ok"] {
        let provider = if pod == "pod-off" { &off } else { &on };
        mount(provider, pod, &[]).await;
    }
    scene.rotate("v2-SECRET").await;
    mount(&off, "pod-off", &[]).await;
    // The attributes name another pod UID than the target path's.
    mount(&on, "pod-mismatch", &[("csi.storage.k8s.io/pod.uid", "someone-elses-uid")]).await;
    mount(&on, "pod-ok", &[]).await;

    let events = scene.kube.wait_events(1);
    let pods: Vec<&Value> = events.iter().map(|e| &e["involvedObject"]["name"]).collect();
    assert_eq!(pods, vec![&Value::from("pod-ok")], "only the matching pod of the enabled provider: {events:#?}");
    assert!(on.logs().contains("the pod's name and UID do not match the target path"), "{}", on.logs());
}

#[tokio::test]
async fn past_the_per_node_rate_events_are_dropped_and_counted() {
    let Some(scene) = Scene::start().await else { return };
    let provider =
        scene.provider(&["--rotation-events", "--rotation-events-burst=2", "--rotation-events-qps=0.001"]).start();
    let pods = ["pod-1", "pod-2", "pod-3", "pod-4"];
    for pod in pods {
        mount(&provider, pod, &[]).await;
    }
    scene.rotate("v2-SECRET").await;
    for pod in pods {
        mount(&provider, pod, &[]).await;
    }
    let events = scene.kube.wait_events(2);
    let addr = admin_addr(&provider);
    let metrics = get(&addr, "/metrics").1;
    assert_eq!(events.len(), 2, "the burst, then nothing: {events:#?}");
    assert_eq!(exported(&metrics, r#"csi_provider_aws_rotation_events_total{outcome="rate_limited"}"#), 2.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while exported(&get(&addr, "/metrics").1, r#"csi_provider_aws_rotation_events_total{outcome="sent"}"#) < 2.0 {
        assert!(Instant::now() < deadline, "two events counted as sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    for pod in &pods[..2] {
        assert_eq!(events_for(&events, pod).len(), 1, "{events:#?}");
    }
}

#[tokio::test]
async fn a_slow_or_refusing_api_server_never_delays_or_fails_a_mount() {
    let Some(scene) = Scene::start().await else { return };
    let provider = scene.provider(&["--rotation-events"]).start();
    mount(&provider, "pod-a", &[]).await;
    mount(&provider, "pod-b", &[]).await;
    scene.kube.delay_events(Duration::from_secs(5));
    scene.rotate("v2-SECRET").await;
    let started = Instant::now();
    mount(&provider, "pod-a", &[]).await;
    assert!(started.elapsed() < Duration::from_secs(3), "the re-sync waited for the event: {:?}", started.elapsed());

    scene.kube.delay_events(Duration::ZERO);
    scene.kube.forbid(&KubeApi::events_path("default"));
    scene.rotate("v3-SECRET").await;
    mount(&provider, "pod-b", &[]).await;
    let addr = admin_addr(&provider);
    let deadline = Instant::now() + Duration::from_secs(10);
    while exported(&get(&addr, "/metrics").1, r#"csi_provider_aws_rotation_events_total{outcome="failed"}"#) < 1.0 {
        assert!(Instant::now() < deadline, "the refused event is counted as failed:\n{}", provider.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(provider.logs().contains("rotation event not sent"), "{}", provider.logs());
}

/// Driver-writes mode (`--driver-writes-secrets`): the provider writes nothing, so a rotation
/// is a version that differs from what the driver says the pod holds (`current_object_version`).
#[tokio::test]
async fn in_driver_writes_mode_a_version_the_pod_does_not_hold_is_announced() {
    let Some(scene) = Scene::start().await else { return };
    let provider = scene.provider(&["--rotation-events", "--driver-writes-secrets"]).start();
    let target = provider.target(&pod_uid("pod-a"));
    let request = mount_request(&attrs("pod-a", OBJECTS, &[]), &target);
    let first = provider.client().await.mount(request.clone()).await.expect("first mount").into_inner();
    let mut resync = request.clone();
    resync.current_object_version = first.object_version.clone();
    provider.client().await.mount(resync.clone()).await.expect("unchanged re-sync");
    let version = scene.rotate("v2-SECRET").await;
    provider.client().await.mount(resync).await.expect("changed re-sync");

    let events = scene.kube.wait_events(1);
    assert_eq!(events.len(), 1, "only the changed re-sync: {events:#?}");
    assert_eq!(events[0]["message"], format!(r#"Rotated 1 object in volume secrets: "db" (version {version})"#));
}
