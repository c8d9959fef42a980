//! A gRPC client for the provider socket, as the driver dials it (used by the `mount`
//! subcommand and by tests).

use crate::pb::csi_driver_provider_client::CsiDriverProviderClient;
use crate::pb::{MountRequest, MountResponse};
use crate::secret::SecretBytes;
use crate::telemetry::LogArgs;
use crate::units::Dur;
use crate::write::{OutFile, WriteOutcome};
use clap::Args;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tonic::transport::{Channel, Endpoint};

/// Connects to the provider's unix socket. The URI is a placeholder: the connector ignores it
/// and the `:authority` sent is `localhost`, as driver v1.6 sends.
pub async fn connect(socket: &Path) -> Result<CsiDriverProviderClient<Channel>, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(CsiDriverProviderClient::new(channel))
}

/// What a provider answered to `Version`: its runtime name and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderVersion {
    /// `runtime_name`, e.g. `csi-provider-aws`.
    pub runtime_name: String,
    /// `runtime_version`, the provider's version.
    pub runtime_version: String,
}

/// Calls `Version` on the socket, as the driver does before each mount (for `doctor`).
pub async fn version(socket: &Path, timeout: std::time::Duration) -> Result<ProviderVersion, String> {
    let call = async {
        let mut client =
            connect(socket).await.map_err(|e| format!("cannot connect: {}", crate::error_text::causes(&e)))?;
        let request = crate::pb::VersionRequest { version: "v1alpha1".into() };
        let answer = client.version(request).await.map_err(|s| format!("Version failed: {}", s.message()))?;
        let answer = answer.into_inner();
        Ok(ProviderVersion { runtime_name: answer.runtime_name, runtime_version: answer.runtime_version })
    };
    tokio::time::timeout(timeout, call).await.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// Flags of the `mount` client.
#[derive(Debug, Clone, Args)]
pub struct MountArgs {
    /// SecretProviderClass manifest (YAML): its `spec.parameters` become the attributes.
    #[arg(long)]
    pub(crate) spc: PathBuf,
    /// Target directory for the files (a relative path is made absolute). A provider that
    /// writes checks it lies under its `--kubelet-path`/pods.
    #[arg(long)]
    pub(crate) target: PathBuf,
    /// Provider socket to dial, as the driver does.
    #[arg(long, default_value = "/var/run/secrets-store-csi-providers/aws.sock")]
    pub(crate) socket: PathBuf,
    /// The pod's namespace (`csi.storage.k8s.io/pod.namespace`), unless the manifest names one.
    #[arg(long, default_value = "default")]
    pub(crate) namespace: String,
    /// The pod's name (`csi.storage.k8s.io/pod.name`).
    #[arg(long, default_value = "mount-cli")]
    pub(crate) pod: String,
    /// The pod's UID (`csi.storage.k8s.io/pod.uid`).
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    pub(crate) pod_uid: String,
    /// The pod's service account (`csi.storage.k8s.io/serviceAccount.name`): whose identity
    /// (IRSA role annotation, Pod Identity association) the provider reads AWS as.
    #[arg(long, default_value = "default")]
    pub(crate) service_account: String,
    /// A service-account token for an audience, `AUDIENCE=FILE` (e.g.
    /// `sts.amazonaws.com=/tmp/token`), passed as the driver passes `tokenRequests`. Repeatable.
    #[arg(long = "token")]
    pub(crate) tokens: Vec<TokenFlag>,
    /// Expect the provider to return the files (a provider run with `--driver-writes-secrets`)
    /// and write them here with the driver's layout; an error if the provider wrote them itself.
    #[arg(long)]
    pub(crate) driver_writes: bool,
    /// Repeat the mount at this interval, as the driver's rotation does, e.g. `--watch 30s`
    /// (stop with Ctrl-C). Each round prints whether anything changed.
    #[arg(long)]
    pub(crate) watch: Option<Dur>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// One `--token AUDIENCE=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenFlag {
    pub(crate) audience: String,
    pub(crate) file: PathBuf,
}

impl FromStr for TokenFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((aud, file)) if !aud.is_empty() && !file.is_empty() => {
                Ok(TokenFlag { audience: aud.to_string(), file: PathBuf::from(file) })
            }
            _ => Err(format!("token {s:?}: expected AUDIENCE=FILE")),
        }
    }
}

/// A failed `mount` subcommand.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The manifest could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The manifest is not a SecretProviderClass.
    #[error("{path} is not a SecretProviderClass manifest: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The provider socket did not answer.
    #[error("cannot connect to {path}: {reason}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The provider refused the mount.
    #[error("Mount failed: {message} (gRPC: {})", code.description())]
    Mount {
        /// The gRPC status code.
        code: tonic::Code,
        /// The provider's message.
        message: String,
    },
    /// `--driver-writes` against a provider that writes the files itself.
    #[error(
        "--driver-writes: the provider at {socket} wrote the files itself and returned none (it runs without --driver-writes-secrets); drop --driver-writes, or restart the provider with --driver-writes-secrets"
    )]
    ProviderWrote {
        /// The provider's socket.
        socket: PathBuf,
    },
    /// `--target` is not usable.
    #[error("--target {path}: {reason}")]
    Target {
        /// The target as given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The provider returned a file path the driver would refuse.
    #[error("the provider returned an invalid file path {path:?}: {reason}")]
    BadPath {
        /// The path as returned.
        path: String,
        /// Why the driver would refuse it.
        reason: String,
    },
    /// The returned files could not be written.
    #[error("writing the returned files failed: {0}")]
    Write(String),
    /// The response carries no object versions.
    #[error("the response carries no object versions (the driver fails such a mount)")]
    NoVersions,
}

/// The parts of a SecretProviderClass manifest the driver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpcManifest {
    pub name: String,
    pub namespace: Option<String>,
    pub parameters: BTreeMap<String, String>,
}

/// Parses a SecretProviderClass manifest (YAML).
pub(crate) fn parse_manifest(text: &str) -> Result<SpcManifest, String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    if doc.get("kind").and_then(|k| k.as_str()) != Some("SecretProviderClass") {
        return Err("kind is not SecretProviderClass".into());
    }
    let meta = doc.get("metadata");
    let text_at = |v: Option<&serde_yaml_ng::Value>, key: &str| {
        v.and_then(|m| m.get(key)).and_then(|n| n.as_str()).map(str::to_string)
    };
    let name = text_at(meta, "name").ok_or("metadata.name is missing")?;
    let mut parameters = BTreeMap::new();
    if let Some(map) = doc.get("spec").and_then(|s| s.get("parameters")).and_then(|p| p.as_mapping()) {
        for (k, v) in map {
            let (Some(k), Some(v)) = (k.as_str(), scalar_text(v)) else {
                return Err("spec.parameters values must be strings".into());
            };
            parameters.insert(k.to_string(), v);
        }
    }
    Ok(SpcManifest { name, namespace: text_at(meta, "namespace"), parameters })
}

fn scalar_text(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The attributes JSON the driver would send for this pod and SecretProviderClass.
pub(crate) fn driver_attributes(spc: &SpcManifest, args: &MountArgs, tokens: Option<String>) -> String {
    let mut attrs: BTreeMap<String, String> = spc.parameters.clone();
    let namespace = spc.namespace.clone().unwrap_or_else(|| args.namespace.clone());
    attrs.insert("secretProviderClass".into(), spc.name.clone());
    attrs.insert("csi.storage.k8s.io/pod.name".into(), args.pod.clone());
    attrs.insert("csi.storage.k8s.io/pod.namespace".into(), namespace);
    attrs.insert("csi.storage.k8s.io/pod.uid".into(), args.pod_uid.clone());
    attrs.insert("csi.storage.k8s.io/serviceAccount.name".into(), args.service_account.clone());
    attrs.insert("csi.storage.k8s.io/ephemeral".into(), "true".into());
    if let Some(tokens) = tokens {
        attrs.insert("csi.storage.k8s.io/serviceAccount.tokens".into(), tokens);
    }
    serde_json::to_string(&attrs).unwrap_or_else(|_| "{}".into())
}

/// The tokens JSON from `--token AUDIENCE=FILE` flags.
fn tokens_json(args: &MountArgs) -> Result<Option<String>, ClientError> {
    if args.tokens.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    for t in &args.tokens {
        let token =
            std::fs::read_to_string(&t.file).map_err(|source| ClientError::Read { path: t.file.clone(), source })?;
        map.insert(t.audience.clone(), serde_json::json!({"token": token.trim(), "expirationTimestamp": ""}));
    }
    Ok(Some(serde_json::Value::Object(map).to_string()))
}

/// `csi-provider-aws mount`: one mount, or one per `--watch` interval.
pub async fn mount_command(mut args: MountArgs) -> Result<(), ClientError> {
    args.target = std::path::absolute(&args.target)
        .map_err(|e| ClientError::Target { path: args.target.clone(), reason: e.to_string() })?;
    let text =
        std::fs::read_to_string(&args.spc).map_err(|source| ClientError::Read { path: args.spc.clone(), source })?;
    let spc = parse_manifest(&text).map_err(|reason| ClientError::Manifest { path: args.spc.clone(), reason })?;
    let mut client = connect(&args.socket)
        .await
        .map_err(|e| ClientError::Connect { path: args.socket.clone(), reason: crate::error_text::causes(&e) })?;
    loop {
        let request = MountRequest {
            attributes: driver_attributes(&spc, &args, tokens_json(&args)?),
            secrets: "null".into(),
            target_path: args.target.display().to_string(),
            permission: "420".into(),
            current_object_version: Vec::new(),
        };
        let before = data_link(&args.target);
        let response = client
            .mount(request)
            .await
            .map_err(|s| ClientError::Mount { code: s.code(), message: s.message().to_string() })?
            .into_inner();
        let outcome = apply(&args.target, &response)?;
        let delivery = match outcome {
            Some(outcome) => Delivery::Returned(outcome),
            None if args.driver_writes => return Err(ClientError::ProviderWrote { socket: args.socket.clone() }),
            None => Delivery::ProviderWrote { changed: data_link(&args.target) != before },
        };
        print_summary(&args.target, &response, delivery);
        match args.watch {
            Some(every) => tokio::time::sleep(every.0).await,
            None => return Ok(()),
        }
    }
}

/// Where `..data` points in `target` (the provider swaps it when it writes a new set).
fn data_link(target: &Path) -> Option<PathBuf> {
    std::fs::read_link(target.join("..data")).ok()
}

/// How the files of one mount reached the target.
enum Delivery {
    /// The provider wrote them (provider-writes mode); `changed`: `..data` was swapped.
    ProviderWrote { changed: bool },
    /// The provider returned them and this client wrote them, as the driver would.
    Returned(WriteOutcome),
}

/// Checks the response as the driver does and writes returned files with its layout.
fn apply(target: &Path, response: &MountResponse) -> Result<Option<WriteOutcome>, ClientError> {
    if response.object_version.is_empty() {
        return Err(ClientError::NoVersions);
    }
    if response.files.is_empty() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for f in &response.files {
        crate::params::validate_relative_path(&f.path)
            .map_err(|e| ClientError::BadPath { path: f.path.clone(), reason: e.to_string() })?;
        files.push(OutFile {
            path: f.path.clone(),
            mode: f.mode as u32,
            contents: SecretBytes::new(f.contents.clone()),
        });
    }
    Ok(Some(crate::write::write_atomic(target, &files).map_err(|e| ClientError::Write(e.to_string()))?))
}

fn print_summary(target: &Path, response: &MountResponse, delivery: Delivery) {
    let how = match delivery {
        Delivery::ProviderWrote { changed: true } => "written by the provider",
        Delivery::ProviderWrote { changed: false } => "unchanged: the provider wrote nothing",
        Delivery::Returned(WriteOutcome::Unchanged) => "returned by the provider; unchanged: nothing written",
        Delivery::Returned(WriteOutcome::Written { .. }) => "returned by the provider; written",
    };
    println!("mounted {} object(s) in {} ({how})", response.object_version.len(), target.display());
    for v in &response.object_version {
        let size = std::fs::metadata(target.join(&v.id)).map(|m| m.len().to_string()).unwrap_or_else(|_| "?".into());
        println!("  {:<40} {:>8} bytes  version {}", v.id, size, v.version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPC: &str = r#"
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app-secrets
spec:
  provider: aws
  parameters:
    region: us-west-2
    usePodIdentity: "true"
    objects: |
      - objectName: db/creds
        objectType: secretsmanager
"#;

    #[test]
    fn manifest_parameters_become_driver_attributes() {
        let spc = parse_manifest(SPC).expect("parses");
        assert_eq!(spc.name, "app-secrets");
        assert_eq!(spc.parameters["usePodIdentity"], "true");
        assert!(spc.parameters["objects"].contains("db/creds"));
        assert!(parse_manifest("kind: Pod\nmetadata: {name: x}").is_err());
    }
}
