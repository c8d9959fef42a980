//! Issue #17's additions together, in one SecretProviderClass, over the real wire (the real
//! binary, its socket, moto as AWS, the Kubernetes stand-in recording Events): a bulk
//! `objectPath` and a bulk `filters` descriptor, `jsonKeys` with jmesPath entries that select
//! non-strings, `objectEncoding` on an object and on an entry, all read through `assumeRoleArn`
//! (admitted by `--allowed-assume-role`) from another account (moto keeps one world per account:
//! the values exist only in the role's), with `--rotation-events`. A re-sync after an item
//! appeared, one disappeared and a key was added swaps the whole set at once and announces it.
//! `cargo test --test integration all_features -- --nocapture` prints the files (the closing note
//! of issue #17 quotes them).

use crate::support::kube::KubeApi;
use crate::support::{Moto, Provider, attrs, mount_request, pod_uid};
use aws_sdk_ssm::types::ParameterType;
use csi_provider_aws::pb::MountResponse;
use std::collections::BTreeMap;
use std::path::Path;

const REGION: &str = "us-west-2";
const ROLE: &str = "arn:aws:iam::444455556666:role/cross-reader";

/// The SecretProviderClass's `objects`.
const OBJECTS: &str = r#"
- objectName: app/config
  objectType: secretsmanager
  jsonKeys: true
  objectAlias: config
  maxObjects: 10
  jmesPath:
    - {path: port, objectAlias: port.txt}
    - {path: tls, objectAlias: tls.json}
- objectName: app/encoded
  objectType: secretsmanager
  objectEncoding: base64
  objectAlias: encoded.json
  jmesPath:
    - {path: token, objectAlias: token, objectEncoding: hex}
- objectPath: /app/prod
  recursive: true
  objectAlias: params
- objectType: secretsmanager
  objectAlias: team
  filters:
    - {key: name, values: ["app/team/"]}
"#;

/// Secrets Manager and Parameter Store clients of the role's own account (moto keeps one world
/// per account and serves an assumed role's credentials the role's account), for seeding.
struct Account {
    sm: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
}

async fn account_of_role(moto: &Moto) -> Account {
    let out = moto.sts(REGION).assume_role().role_arn(ROLE).role_session_name("seed").send().await.expect("assume");
    let c = out.credentials.expect("credentials");
    macro_rules! client {
        ($sdk:ident) => {{
            use $sdk::config::{BehaviorVersion, Config, Credentials, Region};
            let creds = Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().into()),
                None,
                "seed",
            );
            let conf = Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(REGION))
                .endpoint_url(moto.url())
                .credentials_provider(creds)
                .build();
            $sdk::Client::from_conf(conf)
        }};
    }
    Account { sm: client!(aws_sdk_secretsmanager), ssm: client!(aws_sdk_ssm) }
}

async fn put_secret(account: &Account, name: &str, value: &str) {
    let sm = &account.sm;
    if sm.create_secret().name(name).secret_string(value).send().await.is_err() {
        sm.put_secret_value().secret_id(name).secret_string(value).send().await.expect("put_secret_value");
    }
}

async fn put_parameter(account: &Account, name: &str, value: &str, kind: ParameterType) {
    let ssm = &account.ssm;
    ssm.put_parameter().name(name).value(value).r#type(kind).overwrite(true).send().await.expect("put_parameter");
}

/// Every visible file under `target` with its contents, without `..data`.
fn files(target: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with("..") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).expect("under root").display().to_string();
                out.insert(name, std::fs::read_to_string(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(target, target, &mut out);
    out
}

fn show(label: &str, target: &Path, response: &MountResponse) {
    let versions: BTreeMap<&str, &str> =
        response.object_version.iter().map(|v| (v.id.as_str(), v.version.as_str())).collect();
    println!("{label}:");
    for (name, contents) in files(target) {
        println!("  {name:<22} {contents:<40} version {}", versions.get(name.as_str()).unwrap_or(&"?"));
    }
}

#[tokio::test]
async fn one_secret_provider_class_uses_every_addition_and_a_resync_swaps_and_announces_the_set() {
    let Some(moto) = Moto::start() else { return };
    let kube = KubeApi::start();
    let theirs = account_of_role(&moto).await;
    put_secret(&theirs, "app/config", r#"{"username":"app","password":"p1","port":5432,"tls":{"enabled":true}}"#).await;
    put_secret(&theirs, "app/encoded", "eyJ0b2tlbiI6IjY4NjU2YzZjNmYifQ").await; // {"token":"68656c6c6f"}
    put_secret(&theirs, "app/team/alpha", "a1").await;
    put_secret(&theirs, "app/team/beta/key", "b1").await;
    put_parameter(&theirs, "/app/prod/db_host", "db.internal", ParameterType::String).await;
    put_parameter(&theirs, "/app/prod/db_password", "s3cret", ParameterType::SecureString).await;
    put_parameter(&theirs, "/app/prod/flags/new_ui", "on", ParameterType::String).await;

    let provider = Provider::builder(&moto.url())
        .args(&["--local-credentials", "--cache-ttl", "0", "--rotation-events"])
        .args(&["--allowed-assume-role=arn:aws:iam::444455556666:role/cross-*"])
        .env("KUBECONFIG", kube.kubeconfig().display().to_string())
        .env("NODE_NAME", "node-1")
        .start();
    let target = provider.target(&pod_uid("pod-a"));
    let assume =
        [("assumeRoleArn", ROLE), ("assumeRoleExternalId", "team-a-prod"), ("assumeRoleDurationSeconds", "900")];
    let request = || mount_request(&attrs("pod-a", OBJECTS, &assume), &target);
    let mount = || async {
        let result = provider.client().await.mount(request()).await;
        result.unwrap_or_else(|status| panic!("mount failed: {status:?}\n{}", provider.logs())).into_inner()
    };

    let first = mount().await;
    show("first mount", &target, &first);
    let want: BTreeMap<String, String> = [
        ("config/password", "p1"),
        ("config/port", "5432"),
        ("config/tls", r#"{"enabled":true}"#),
        ("config/username", "app"),
        ("encoded.json", r#"{"token":"68656c6c6f"}"#),
        ("params/db_host", "db.internal"),
        ("params/db_password", "s3cret"),
        ("params/flags_new_ui", "on"),
        ("port.txt", "5432"),
        ("team/alpha", "a1"),
        ("team/beta_key", "b1"),
        ("tls.json", r#"{"enabled":true}"#),
        ("token", "hello"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        files(&target),
        want,
        "every addition's files, decoded, under their prefixes (slashes in item names translated, as for every name)"
    );
    let own = moto.sm(REGION).list_secrets().send().await.expect("list_secrets");
    assert!(own.secret_list().is_empty(), "nothing is in the pod's own account: every value came through the role");
    assert_eq!(first.object_version.len(), want.len(), "one version per file");

    // An item appears under the path, one disappears, a secret matches the filter, a key is added.
    put_parameter(&theirs, "/app/prod/db_port", "5432", ParameterType::String).await;
    theirs.ssm.delete_parameter().name("/app/prod/flags/new_ui").send().await.expect("delete_parameter");
    put_secret(&theirs, "app/team/gamma", "g1").await;
    put_secret(&theirs, "app/config", r#"{"username":"app","password":"p2","port":5432,"tls":{"enabled":true}}"#).await;
    let second = mount().await;
    show("re-sync", &target, &second);
    let now = files(&target);
    assert_eq!(now.get("params/db_port").map(String::as_str), Some("5432"), "the new parameter");
    assert_eq!(now.get("team/gamma").map(String::as_str), Some("g1"), "the new secret");
    assert!(!now.contains_key("params/flags_new_ui"), "the deleted parameter is gone");
    assert_eq!(now.get("config/password").map(String::as_str), Some("p2"), "the rotated key");
    assert_eq!(now.len(), want.len() + 1, "two items added, one removed: {now:#?}");

    let events = kube.wait_events(1);
    assert_eq!(events.len(), 1, "one event for the changed set: {events:#?}");
    let message = events[0]["message"].as_str().unwrap_or_default();
    println!("event: {} {message}", events[0]["reason"]);
    assert_eq!(events[0]["reason"], "SecretRotated");
    for changed in ["app/config", "/app/prod", "app/team/"] {
        assert!(message.contains(changed), "the event names {changed}: {message}");
    }
    for value in ["p2", "g1", "db.internal", "s3cret"] {
        assert!(!message.contains(&format!("{value:?}")), "no value in the event: {message}");
    }

    let calls = provider.logs();
    assert!(!calls.contains("s3cret") && !calls.contains("p2\""), "no value in the logs");
}
