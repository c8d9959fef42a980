//! The provider core over the real wire: the real binary, its unix socket, a gRPC client, and
//! moto as AWS. Each test skips (outside CI) when moto is not installed.

use crate::support::{Moto, Provider, attrs, mount_request};
use csi_provider_aws::pb::{MountResponse, VersionRequest};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const REGION: &str = "us-west-2";

/// Starts moto and a provider with local credentials, or skips.
pub(crate) async fn start(extra: &[&str]) -> Option<(Moto, Provider)> {
    let moto = Moto::start()?;
    let mut args = vec!["--local-credentials"];
    args.extend_from_slice(extra);
    let provider = Provider::start(&moto.url(), &args);
    Some((moto, provider))
}

/// Creates or rotates secret `name`; its new VersionId.
pub(crate) async fn put_secret(moto: &Moto, name: &str, value: &str) -> String {
    let sm = moto.sm(REGION);
    match sm.create_secret().name(name).secret_string(value).send().await {
        Ok(out) => out.version_id().unwrap_or_default().to_string(),
        Err(_) => {
            let out =
                sm.put_secret_value().secret_id(name).secret_string(value).send().await.expect("put_secret_value");
            out.version_id().unwrap_or_default().to_string()
        }
    }
}

async fn put_param(moto: &Moto, name: &str, value: &str, secure: bool) {
    let kind = if secure {
        aws_sdk_ssm::types::ParameterType::SecureString
    } else {
        aws_sdk_ssm::types::ParameterType::String
    };
    moto.ssm(REGION)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .expect("put_parameter");
}

async fn mount(
    provider: &Provider,
    target: &Path,
    objects: &str,
    extra: &[(&str, &str)],
) -> Result<MountResponse, tonic::Status> {
    let mut client = provider.client().await;
    let request = mount_request(&attrs("pod-a", objects, extra), target);
    client.mount(request).await.map(|r| r.into_inner())
}

fn versions(resp: &MountResponse) -> BTreeMap<String, String> {
    resp.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect()
}

fn read(target: &Path, name: &str) -> String {
    std::fs::read_to_string(target.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

fn mode(target: &Path, name: &str) -> u32 {
    std::fs::metadata(target.join(name)).expect("stat").permissions().mode() & 0o7777
}

fn data_dir(target: &Path) -> std::path::PathBuf {
    std::fs::read_link(target.join("..data")).expect("..data is a symlink")
}

#[tokio::test]
async fn version_answers_with_our_runtime() {
    let Some((_moto, provider)) = start(&[]).await else { return };
    let mut client = provider.client().await;
    let v = client.version(VersionRequest { version: "v1alpha1".into() }).await.expect("version").into_inner();
    assert_eq!((v.version.as_str(), v.runtime_name.as_str()), ("v1alpha1", "csi-provider-aws"));
    assert_eq!(v.runtime_version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn golden_objects_mount_with_the_go_providers_names_contents_and_modes() {
    let Some((moto, provider)) = start(&[]).await else { return };
    let db = put_secret(&moto, "db/creds", "db-value").await;
    let rds = put_secret(&moto, "rds", r#"{"username":"u","password":"p"}"#).await;
    put_param(&moto, "/app/config", "cfg-1", false).await;
    put_param(&moto, "/app/config", "cfg-2", false).await;
    put_param(&moto, "/app/key", "k", true).await;
    let arn = moto
        .sm(REGION)
        .describe_secret()
        .secret_id("db/creds")
        .send()
        .await
        .expect("describe")
        .arn()
        .unwrap_or_default()
        .to_string();
    let objects = format!(
        r#"
- objectName: db/creds
  objectType: secretsmanager
- objectName: /app/config
  objectType: ssmparameter
- objectName: /app/config
  objectType: ssmparameter
  objectVersion: "1"
  objectAlias: config-v1
- objectName: /app/key
  objectType: ssmparameter
- objectName: {arn}
  objectAlias: my.txt
  filePermission: "0600"
- objectName: rds
  objectType: secretsmanager
  jmesPath:
    - path: username
      objectAlias: user
    - Path: password
      ObjectAlias: pass
      filePermission: "0400"
"#
    );
    let target = provider.target("golden");
    let resp = mount(&provider, &target, &objects, &[]).await.expect("mount");
    assert!(resp.files.is_empty(), "provider-writes mode returns no files");
    assert_eq!(read(&target, "db_creds"), "db-value");
    assert_eq!(read(&target, "_app_config"), "cfg-2");
    assert_eq!(read(&target, "config-v1"), "cfg-1");
    assert_eq!(read(&target, "_app_key"), "k", "SecureString is decrypted");
    assert_eq!(read(&target, "my.txt"), "db-value");
    assert_eq!(read(&target, "user"), "u");
    assert_eq!(read(&target, "pass"), "p");
    assert_eq!((mode(&target, "db_creds"), mode(&target, "my.txt"), mode(&target, "pass")), (0o644, 0o600, 0o400));
    let expected: BTreeMap<String, String> = [
        ("db_creds", db.as_str()),
        ("_app_config", "2"),
        ("config-v1", "1"),
        ("_app_key", "1"),
        ("my.txt", db.as_str()),
        ("rds", rds.as_str()),
        ("user", rds.as_str()),
        ("pass", rds.as_str()),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(versions(&resp), expected);
    assert!(
        std::fs::symlink_metadata(target.join("db_creds")).expect("lstat").file_type().is_symlink(),
        "visible entries are ..data symlinks"
    );
}

#[tokio::test]
async fn path_translation_variants() {
    let Some((moto, provider)) = start(&[]).await else { return };
    put_param(&moto, "/app/config", "cfg", false).await;
    let objects = "- objectName: /app/config\n  objectType: ssmparameter\n";
    let dash = provider.target("dash");
    let resp = mount(&provider, &dash, objects, &[("pathTranslation", "-")]).await.expect("mount");
    assert_eq!((read(&dash, "-app-config"), versions(&resp).contains_key("-app-config")), ("cfg".into(), true));
    let nested = provider.target("nested");
    let resp = mount(&provider, &nested, objects, &[("pathTranslation", "False")]).await.expect("mount");
    assert_eq!(read(&nested, "app/config"), "cfg");
    assert!(versions(&resp).contains_key("app/config"));
}

#[tokio::test]
async fn rotation_swaps_the_set_and_an_unchanged_remount_writes_nothing() {
    let Some((moto, provider)) = start(&["--cache-ttl", "0"]).await else { return };
    put_secret(&moto, "rot", r#"{"username":"app","password":"v1"}"#).await;
    let objects =
        "- objectName: rot\n  objectType: secretsmanager\n  jmesPath:\n    - path: password\n      objectAlias: pass\n";
    let target = provider.target("rot");
    let first = mount(&provider, &target, objects, &[]).await.expect("mount");
    let dir1 = data_dir(&target);
    let again = mount(&provider, &target, objects, &[]).await.expect("remount");
    assert_eq!(versions(&first), versions(&again));
    assert_eq!(data_dir(&target), dir1, "nothing changed, nothing written");
    let v2 = put_secret(&moto, "rot", r#"{"username":"app","password":"v2"}"#).await;
    let rotated = mount(&provider, &target, objects, &[]).await.expect("rotated mount");
    assert_eq!(read(&target, "pass"), "v2");
    assert_ne!(data_dir(&target), dir1, "the set was swapped");
    assert!(!target.join(&dir1).exists(), "the old version directory is removed");
    assert_eq!(versions(&rotated)["pass"], v2);
    let prev = mount(
        &provider,
        &provider.target("prev"),
        "- objectName: rot\n  objectType: secretsmanager\n  objectVersionLabel: AWSPREVIOUS\n  objectAlias: rot-prev\n",
        &[],
    )
    .await
    .expect("previous");
    assert_eq!(versions(&prev)["rot-prev"], versions(&first)["rot"]);
}

#[tokio::test]
async fn files_no_longer_requested_disappear() {
    let Some((moto, provider)) = start(&[]).await else { return };
    put_secret(&moto, "a", "A").await;
    put_secret(&moto, "b", "B").await;
    let target = provider.target("drop");
    mount(
        &provider,
        &target,
        "- {objectName: a, objectType: secretsmanager}\n- {objectName: b, objectType: secretsmanager}\n",
        &[],
    )
    .await
    .expect("mount");
    mount(&provider, &target, "- {objectName: a, objectType: secretsmanager}\n", &[]).await.expect("mount");
    assert_eq!(read(&target, "a"), "A");
    assert!(std::fs::symlink_metadata(target.join("b")).is_err(), "b is gone");
}

#[tokio::test]
async fn failures_name_the_object_and_leave_mounted_files_untouched() {
    let Some((moto, provider)) = start(&[]).await else { return };
    put_secret(&moto, "ok", r#"{"a":"b"}"#).await;
    let target = provider.target("keep");
    mount(&provider, &target, "- {objectName: ok, objectType: secretsmanager}\n", &[]).await.expect("mount");
    let before = (data_dir(&target), read(&target, "ok"));
    let cases: [(&str, tonic::Code, &str); 6] = [
        (
            "- {objectName: ok, objectType: secretsmanager}\n- {objectName: db/creds, objectType: secretsmanager}\n",
            tonic::Code::NotFound,
            "NotFound: object \"db/creds\" (secretsmanager, us-west-2): ResourceNotFoundException",
        ),
        (
            "- {objectName: /missing, objectType: ssmparameter}\n",
            tonic::Code::NotFound,
            "NotFound: object \"/missing\" (ssmparameter, us-west-2)",
        ),
        (
            "- {objectName: ok, objectType: ssm}\n",
            tonic::Code::InvalidArgument,
            "InvalidParameters: SecretProviderClass default/test-spc: objects[0]",
        ),
        (
            "- {objectName: ok, objectType: secretsmanager, jmesPath: [{path: nope, objectAlias: x}]}\n",
            tonic::Code::InvalidArgument,
            "JmesPathFailed: object \"ok\" (objects[0]): jmesPath \"nope\"",
        ),
        (
            "- {objectName: ok, objectType: secretsmanager}\n- {objectName: ok, objectType: secretsmanager, objectVersionLabel: AWSPREVIOUS}\n",
            tonic::Code::InvalidArgument,
            "InvalidParameters",
        ),
        (
            "- objectName: arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-a1b2c3\n",
            tonic::Code::InvalidArgument,
            "ARN region eu-west-1 must match region us-west-2",
        ),
    ];
    for (objects, code, message) in cases {
        let err = mount(&provider, &target, objects, &[]).await.expect_err(objects);
        assert_eq!(err.code(), code, "{objects}: {}", err.message());
        assert!(err.message().contains(message), "{objects}: {:?} lacks {message:?}", err.message());
        assert_eq!((data_dir(&target), read(&target, "ok")), before, "{objects}: files untouched");
    }
    let none = mount(&provider, &target, "", &[]).await.expect_err("no objects");
    assert!(none.message().starts_with("InvalidParameters: "), "{}", none.message());
    assert!(none.message().contains("test-spc"), "names the SecretProviderClass: {}", none.message());
}

#[tokio::test]
async fn a_target_outside_the_kubelet_pods_directory_is_refused() {
    let Some((moto, provider)) = start(&[]).await else { return };
    put_secret(&moto, "ok", "v").await;
    let outside = tempfile::tempdir().expect("tempdir");
    let err = mount(&provider, outside.path(), "- {objectName: ok, objectType: secretsmanager}\n", &[])
        .await
        .expect_err("refused");
    assert!(err.message().starts_with("InvalidTarget: "), "{}", err.message());
    assert!(std::fs::read_dir(outside.path()).expect("ls").next().is_none(), "nothing written");
}

#[tokio::test]
async fn driver_writes_mode_returns_files_and_writes_nothing() {
    let Some((moto, provider)) = start(&["--driver-writes-secrets=true"]).await else { return };
    put_secret(&moto, "rds", r#"{"username":"u"}"#).await;
    let target = provider.target("dw");
    let objects = "- objectName: rds\n  objectType: secretsmanager\n  filePermission: \"0640\"\n  jmesPath: [{path: username, objectAlias: user}]\n";
    let resp = mount(&provider, &target, objects, &[]).await.expect("mount");
    let files: BTreeMap<String, (i32, Vec<u8>)> =
        resp.files.iter().map(|f| (f.path.clone(), (f.mode, f.contents.clone()))).collect();
    assert_eq!(files["rds"], (0o640, br#"{"username":"u"}"#.to_vec()));
    assert_eq!(files["user"], (0o640, b"u".to_vec()));
    assert_eq!(resp.object_version.len(), 2);
    assert!(std::fs::read_dir(&target).expect("ls").next().is_none(), "the provider wrote nothing");
}

#[tokio::test]
async fn secret_values_never_reach_the_logs() {
    let Some((moto, provider)) = start(&[]).await else { return };
    put_secret(&moto, "logged", r#"{"password":"hunter2-SECRET"}"#).await;
    let target = provider.target("logs");
    let objects = "- {objectName: logged, objectType: secretsmanager, jmesPath: [{path: password, objectAlias: p}]}\n";
    mount(&provider, &target, objects, &[]).await.expect("mount");
    let tokens = r#"{"sts.amazonaws.com":{"token":"eyJTOKEN-SHOULD-NOT-LEAK","expirationTimestamp":""}}"#;
    let _ = mount(
        &provider,
        &target,
        "- {objectName: nope, objectType: secretsmanager}\n",
        &[("csi.storage.k8s.io/serviceAccount.tokens", tokens)],
    )
    .await;
    let logs = provider.logs();
    assert!(logs.contains("mount succeeded"), "the log has mount lines");
    assert!(!logs.contains("hunter2-SECRET") && !logs.contains("eyJTOKEN"), "a value or token leaked into the log");
}
