//! The world pod-identity tests run in: moto behind a recording proxy as AWS, a Kubernetes API
//! stand-in, a provider without `--local-credentials`, and the tokens and attributes the driver
//! sends for a pod. Shared by the identity and re-sync suites.

use super::agent;
use super::kube::KubeApi;
use super::recorder::{Call, Recorder};
use super::{ACCOUNT, Moto, Provider, ProviderBuilder, attrs, mount_request, pod_uid};
use csi_provider_aws::pb::MountResponse;
use std::path::{Path, PathBuf};

pub const WEST: &str = "us-west-2";
pub const EAST: &str = "us-east-1";
/// The provider's own credentials (the "node's"): never to be used for a mount.
pub const NODE_KEY: &str = "testing";
pub const TOKENS_KEY: &str = "csi.storage.k8s.io/serviceAccount.tokens";
pub const SA_KEY: &str = "csi.storage.k8s.io/serviceAccount.name";
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

pub fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// moto, the recorder in front of it and the Kubernetes API stand-in.
pub struct World {
    pub moto: Moto,
    pub rec: Recorder,
    pub kube: KubeApi,
}

impl World {
    pub fn start() -> Option<World> {
        let moto = Moto::start()?;
        let rec = Recorder::start(&moto.url());
        let kube = KubeApi::start();
        Some(World { moto, rec, kube })
    }

    /// A provider without `--local-credentials`, with the node's credentials `testing`, every AWS
    /// endpoint on the recorder (per region for us-west-2 and us-east-1), the stand-in's
    /// kubeconfig, and both Pod Identity agent addresses refusing connections.
    pub fn provider(&self) -> ProviderBuilder {
        self.provider_with_agents(&agent::refused_url(), &agent::refused_url())
    }

    pub fn provider_with_agents(&self, ipv4: &str, ipv6: &str) -> ProviderBuilder {
        let mut builder = Provider::builder(&self.moto.url())
            .args(&self.rec.endpoint_args(&[WEST, EAST]))
            .args(&["--pod-identity-endpoint-ipv4", ipv4, "--pod-identity-endpoint-ipv6", ipv6])
            .args(&["--pod-identity-http-timeout", "2s"])
            .env("AWS_ENDPOINT_URL", self.rec.url())
            .env("AWS_ACCESS_KEY_ID", NODE_KEY)
            .env("AWS_SECRET_ACCESS_KEY", NODE_KEY)
            .env("KUBECONFIG", self.kube.kubeconfig().display().to_string())
            .env_remove("NODE_NAME");
        for proxy in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            builder = builder.env_remove(proxy);
        }
        builder
    }

    pub async fn secret(&self, region: &str, name: &str, value: &str) {
        self.moto.sm(region).create_secret().name(name).secret_string(value).send().await.expect("create_secret");
    }
}

/// A JWT-shaped token naming `subject` (moto's STS accepts any token).
pub fn jwt(subject: &str, audience: &str) -> String {
    let header = b64url(br#"{"alg":"RS256","kid":"test"}"#);
    let payload = b64url(
        format!(
            r#"{{"iss":"https://oidc.eks.us-west-2.amazonaws.com/id/TEST","sub":"{subject}","aud":["{audience}"],"exp":1893456000,"iat":1700000000}}"#
        )
        .as_bytes(),
    );
    let signature = b64url(format!("signature-of-{subject}").as_bytes());
    format!("{header}.{payload}.{signature}")
}

pub fn b64url(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The tokens JSON the driver sends: `{"<audience>": {"token": ..., "expirationTimestamp": ...}}`.
pub fn tokens(entries: &[(&str, &str)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(audience, token)| {
            let entry = serde_json::json!({"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"});
            (audience.to_string(), entry)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The attributes for `pod` of service account `sa` (namespace `default`) with `tokens_json`
/// (when given) and `extra`.
pub fn pod_attrs(pod: &str, sa: &str, objects: &str, tokens_json: Option<&str>, extra: &[(&str, &str)]) -> String {
    let mut all = vec![(SA_KEY, sa)];
    if let Some(t) = tokens_json {
        all.push((TOKENS_KEY, t));
    }
    all.extend_from_slice(extra);
    attrs(pod, objects, &all)
}

/// `attributes` with `key` removed (e.g. `region`, which [`attrs`] always sets).
pub fn without(attributes: &str, key: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(attributes).expect("attributes JSON");
    value.as_object_mut().expect("object").remove(key);
    value.to_string()
}

pub fn secret_object(name: &str) -> String {
    format!("- objectName: {name}\n  objectType: secretsmanager\n")
}

/// Mounts `attributes` for `pod` (the secrets field as the driver v1.6 sends it: `null`).
pub async fn mount(
    provider: &Provider,
    pod: &str,
    attributes: &str,
) -> Result<(MountResponse, PathBuf), tonic::Status> {
    mount_with_secrets(provider, pod, attributes, "null").await
}

pub async fn mount_with_secrets(
    provider: &Provider,
    pod: &str,
    attributes: &str,
    secrets: &str,
) -> Result<(MountResponse, PathBuf), tonic::Status> {
    let target = provider.target(&pod_uid(pod));
    let mut request = mount_request(attributes, &target);
    request.secrets = secrets.to_string();
    let resp = provider.client().await.mount(request).await?;
    Ok((resp.into_inner(), target))
}

pub fn read(target: &Path, name: &str) -> String {
    std::fs::read_to_string(target.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

pub fn expect_ok<T>(result: Result<T, tonic::Status>, provider: &Provider, rec: &Recorder) -> T {
    result.unwrap_or_else(|status| {
        panic!("mount failed: {status:?}\ncalls: {:#?}\nprovider log:\n{}", rec.calls(), provider.logs())
    })
}

pub fn expect_err<T>(result: Result<T, tonic::Status>, provider: &Provider) -> tonic::Status {
    match result {
        Ok(_) => panic!("mount succeeded but should have failed\nprovider log:\n{}", provider.logs()),
        Err(status) => status,
    }
}

/// The web-identity exchanges recorded.
pub fn exchanges(rec: &Recorder) -> Vec<Call> {
    rec.calls().into_iter().filter(Call::is_web_identity).collect()
}

/// No recorded call was signed with the node's credentials, and every Secrets Manager or
/// Parameter Store call was signed.
pub fn assert_never_node_credentials(rec: &Recorder) {
    let calls = rec.calls();
    let by_node: Vec<&Call> = calls.iter().filter(|c| c.access_key.as_deref() == Some(NODE_KEY)).collect();
    assert!(by_node.is_empty(), "calls signed with the node's credentials: {by_node:#?}");
    let unsigned: Vec<&Call> =
        calls.iter().filter(|c| matches!(c.service(), "secretsmanager" | "ssm") && c.access_key.is_none()).collect();
    assert!(unsigned.is_empty(), "unsigned reads: {unsigned:#?}");
}

/// The reads of `object` recorded in Secrets Manager.
pub fn reads_of(rec: &Recorder, object: &str) -> Vec<Call> {
    rec.calls_to("secretsmanager").into_iter().filter(|c| c.object_ids.iter().any(|id| id == object)).collect()
}
