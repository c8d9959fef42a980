//! Issue #17's additions over the real wire (the real binary, its socket, moto as AWS):
//! `jsonKeys`, jmesPath results that are not strings, `objectEncoding`, and the bulk
//! descriptors (`objectPath`, `filters`) with `maxObjects` and `--max-objects-per-mount`. Bad
//! input and bounds fail the mount with a clear error and write nothing.

use crate::mount::{put_secret, start};
use crate::support::{Moto, Provider, attrs, mount_request};
use csi_provider_aws::pb::MountResponse;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

const REGION: &str = "us-west-2";

async fn mount(provider: &Provider, target: &Path, objects: &str) -> Result<MountResponse, tonic::Status> {
    let mut client = provider.client().await;
    client.mount(mount_request(&attrs("pod-a", objects, &[]), target)).await.map(|r| r.into_inner())
}

fn versions(resp: &MountResponse) -> BTreeMap<String, String> {
    resp.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect()
}

fn read(target: &Path, name: &str) -> String {
    std::fs::read_to_string(target.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// Every visible file under `target` (relative paths, directories walked), without `..data`.
fn listing(target: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("..") {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).expect("under root").display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(target, target, &mut out);
    out.sort();
    out
}

fn data_dir(target: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_link(target.join("..data")).ok()
}

#[tokio::test]
async fn json_keys_write_one_file_per_key_and_combine_with_jmes_entries() {
    let Some((moto, provider)) = start(&["--cache-ttl", "0"]).await else { return };
    let v = put_secret(&moto, "app/db", r#"{"username":"u","port":5432,"tls":{"ca":"x"},"a/b":"s"}"#).await;
    let objects = "- objectName: app/db\n  objectType: secretsmanager\n  jsonKeys: true\n  objectAlias: db\n  \
                   jmesPath: [{path: username, objectAlias: login}]\n";
    let target = provider.target("keys");
    let resp = mount(&provider, &target, objects).await.expect("mount");
    assert_eq!(listing(&target), ["db/a_b", "db/port", "db/tls", "db/username", "login"]);
    assert_eq!((read(&target, "db/username"), read(&target, "db/port")), ("u".into(), "5432".into()));
    assert_eq!(read(&target, "db/tls"), r#"{"ca":"x"}"#, "non-strings as JSON text");
    let want: BTreeMap<String, String> =
        ["db/a_b", "db/port", "db/tls", "db/username", "login"].iter().map(|f| (f.to_string(), v.clone())).collect();
    assert_eq!(versions(&resp), want, "one version per file");
    // A re-sync with nothing changed reports the same versions and writes nothing.
    let before = data_dir(&target);
    let again = mount(&provider, &target, objects).await.expect("re-sync");
    assert_eq!((versions(&again), data_dir(&target)), (want, before));
    // A key that appears or disappears changes the set atomically.
    let v2 = put_secret(&moto, "app/db", r#"{"username":"u2","extra":"e"}"#).await;
    let resp = mount(&provider, &target, objects).await.expect("rotated");
    assert_eq!(listing(&target), ["db/extra", "db/username", "login"]);
    assert!(versions(&resp).values().all(|v| *v == v2));
}

#[tokio::test]
async fn jmes_results_that_are_not_strings_are_json_text() {
    let Some((moto, provider)) = start(&[]).await else { return };
    put_secret(&moto, "cfg", r#"{"port":5432,"on":true,"hosts":["a","b"],"db":{"name":"x"}}"#).await;
    let objects = "- objectName: cfg\n  objectType: secretsmanager\n  jmesPath:\n    - {path: port, objectAlias: port}\n    \
                   - {path: 'on', objectAlias: 'on'}\n    - {path: hosts, objectAlias: hosts}\n    - {path: db, objectAlias: db}\n";
    let target = provider.target("nonstring");
    mount(&provider, &target, objects).await.expect("mount");
    let got: Vec<String> = ["port", "on", "hosts", "db"].iter().map(|f| read(&target, f)).collect();
    assert_eq!(got, ["5432", "true", r#"["a","b"]"#, r#"{"name":"x"}"#]);
}

#[tokio::test]
async fn object_encoding_decodes_objects_and_entries() {
    let Some((moto, provider)) = start(&[]).await else { return };
    // {"key":"68656C6C6F"} in base64 without padding; the entry's hex is "hello".
    put_secret(&moto, "enc", "eyJrZXkiOiI2ODY1NkM2QzZGIn0").await;
    put_secret(&moto, "bin", "AP8").await;
    let objects = "- objectName: enc\n  objectType: secretsmanager\n  objectEncoding: base64\n  \
                   jmesPath: [{path: key, objectAlias: key, objectEncoding: hex}]\n\
                   - {objectName: bin, objectType: secretsmanager, objectEncoding: base64}\n";
    let target = provider.target("enc");
    mount(&provider, &target, objects).await.expect("mount");
    assert_eq!(read(&target, "enc"), r#"{"key":"68656C6C6F"}"#);
    assert_eq!(read(&target, "key"), "hello");
    assert_eq!(std::fs::read(target.join("bin")).expect("bin"), [0x00, 0xff]);
}

#[tokio::test]
async fn bad_values_and_bounds_fail_clearly_and_write_nothing() {
    let Some((moto, provider)) = start(&["--max-objects-per-mount=3"]).await else { return };
    put_secret(&moto, "ok", "fine").await;
    put_secret(&moto, "text", "not base64 at all").await;
    put_secret(&moto, "many", r#"{"a":1,"b":2,"c":3,"d":4}"#).await;
    put_secret(&moto, "list", r#"["a"]"#).await;
    put_secret(&moto, "dots", r#"{"..data":"x"}"#).await;
    put_secret(&moto, "small", r#"{"x":"1"}"#).await;
    let target = provider.target("bad");
    mount(&provider, &target, "- {objectName: ok, objectType: secretsmanager}\n").await.expect("first mount");
    let before = (data_dir(&target), listing(&target));
    let cases: [(&str, tonic::Code, &str); 8] = [
        (
            "- {objectName: text, objectType: secretsmanager, objectEncoding: base64}",
            tonic::Code::InvalidArgument,
            "InvalidParameters: object \"text\" (objects[0]): the value is not valid base64",
        ),
        (
            "- {objectName: ok, objectType: secretsmanager, objectEncoding: base32}",
            tonic::Code::InvalidArgument,
            "objects[0] (\"ok\"): objectEncoding \"base32\" is not valid (use base64, hex or utf-8)",
        ),
        (
            "- {objectName: many, objectType: secretsmanager, jsonKeys: true, maxObjects: 2}",
            tonic::Code::InvalidArgument,
            "object \"many\" (objects[0]): gives 4 files, more than its maxObjects 2",
        ),
        (
            "- {objectName: many, objectType: secretsmanager, jsonKeys: true}",
            tonic::Code::InvalidArgument,
            "give 4 files, more than --max-objects-per-mount 3",
        ),
        (
            "- {objectName: many, objectType: secretsmanager, jsonKeys: true, maxObjects: 4}",
            tonic::Code::InvalidArgument,
            "maxObjects 4 is above this provider's --max-objects-per-mount 3",
        ),
        (
            "- {objectName: list, objectType: secretsmanager, jsonKeys: true}",
            tonic::Code::InvalidArgument,
            "JmesPathFailed: object \"list\" (objects[0]): jsonKeys: the value is JSON but not an object (a list)",
        ),
        (
            "- {objectName: dots, objectType: secretsmanager, jsonKeys: true}",
            tonic::Code::InvalidArgument,
            "key \"..data\": gives file name \"..data\" which starts with \"..\"",
        ),
        (
            "- {objectName: ok, objectType: secretsmanager}\n- {objectName: small, objectType: secretsmanager, jsonKeys: true, objectAlias: ok}",
            tonic::Code::InvalidArgument,
            "InvalidParameters: object \"ok\" (objects[0]): resolves to file \"ok\", which objects[1] (\"small\") key \"x\" needs as a directory",
        ),
    ];
    for (objects, code, message) in cases {
        let err = mount(&provider, &target, objects).await.expect_err(objects);
        assert_eq!(err.code(), code, "{objects}: {}", err.message());
        assert!(err.message().contains(message), "{objects}: {:?} lacks {message:?}", err.message());
        assert!(!err.message().contains("not base64 at all"), "no value in errors: {}", err.message());
        assert_eq!((data_dir(&target), listing(&target)), before, "{objects}: nothing written");
    }
}

async fn put_param(moto: &Moto, name: &str, value: &str, secure: bool) {
    let kind = if secure {
        aws_sdk_ssm::types::ParameterType::SecureString
    } else {
        aws_sdk_ssm::types::ParameterType::String
    };
    let ssm = moto.ssm(REGION);
    ssm.put_parameter().name(name).value(value).r#type(kind).overwrite(true).send().await.expect("put_parameter");
}

#[tokio::test]
async fn object_path_mounts_every_parameter_under_it_and_a_resync_swaps_the_set() {
    let Some((moto, provider)) = start(&["--cache-ttl", "0"]).await else { return };
    put_param(&moto, "/app/prod/db/user", "u", false).await;
    put_param(&moto, "/app/prod/db/pass", "p", true).await;
    put_param(&moto, "/app/prod/flag", "on", false).await;
    put_param(&moto, "/app/other", "x", false).await;
    let target = provider.target("bypath");
    let flat = "- {objectPath: /app/prod, objectAlias: prod}\n";
    let resp = mount(&provider, &target, flat).await.expect("non-recursive");
    assert_eq!(listing(&target), ["prod/flag"]);
    assert_eq!(versions(&resp), BTreeMap::from([("prod/flag".to_string(), "1".to_string())]));
    let deep = "- {objectPath: /app/prod/, recursive: true}\n- {objectName: /app/other, objectType: ssmparameter}\n";
    let resp = mount(&provider, &target, deep).await.expect("recursive");
    assert_eq!(listing(&target), ["_app_other", "db_pass", "db_user", "flag"]);
    assert_eq!(read(&target, "db_pass"), "p", "SecureStrings are decrypted");
    assert_eq!(versions(&resp).len(), 4, "one version per file");
    // An unchanged re-sync reports the same versions and writes nothing.
    let before = data_dir(&target);
    let again = mount(&provider, &target, deep).await.expect("unchanged");
    assert_eq!((versions(&again), data_dir(&target)), (versions(&resp), before.clone()));
    // An item that appears, one that disappears and one that changes: one atomic swap.
    put_param(&moto, "/app/prod/new", "n", false).await;
    moto.ssm(REGION).delete_parameter().name("/app/prod/flag").send().await.expect("delete");
    put_param(&moto, "/app/prod/db/user", "u2", false).await;
    let resp = mount(&provider, &target, deep).await.expect("re-sync");
    assert_eq!(listing(&target), ["_app_other", "db_pass", "db_user", "new"]);
    assert_ne!(data_dir(&target), before, "a new ..data set");
    assert_eq!(read(&target, "db_user"), "u2");
    let got = versions(&resp);
    assert_eq!((got["db_user"].as_str(), got["new"].as_str(), got.contains_key("flag")), ("2", "1", false));
}

#[tokio::test]
async fn filters_mount_every_matching_secret() {
    let Some((moto, provider)) = start(&[]).await else { return };
    let a = put_secret(&moto, "team/a", "va").await;
    let b = put_secret(&moto, "team/sub/b", "vb").await;
    put_secret(&moto, "other", "vo").await;
    let tagged = moto.sm(REGION).create_secret().name("tagged").secret_string("vt");
    let tag = aws_sdk_secretsmanager::types::Tag::builder().key("owner").value("me").build();
    tagged.tags(tag).send().await.expect("tagged secret");
    let target = provider.target("filters");
    let objects = "- objectType: secretsmanager\n  objectAlias: team\n  filters: [{key: name, values: [team/]}]\n\
                   - filters: [{key: tag-key, values: [owner]}]\n";
    let resp = mount(&provider, &target, objects).await.expect("mount");
    assert_eq!(listing(&target), ["tagged", "team/a", "team/sub_b"]);
    assert_eq!((read(&target, "team/a"), read(&target, "team/sub_b")), ("va".into(), "vb".into()));
    let got = versions(&resp);
    assert_eq!((got["team/a"].as_str(), got["team/sub_b"].as_str()), (a.as_str(), b.as_str()));
}

#[tokio::test]
async fn bulk_bounds_and_refusals_fail_clearly_and_write_nothing() {
    let Some((moto, provider)) = start(&["--max-objects-per-mount=3"]).await else { return };
    for i in 0..4 {
        put_param(&moto, &format!("/many/p{i}"), "v", false).await;
    }
    put_param(&moto, "/clash/x", "v", false).await;
    put_param(&moto, "/keep", "k", false).await;
    let target = provider.target("bulkbad");
    mount(&provider, &target, "- {objectName: /keep, objectType: ssmparameter}\n").await.expect("first mount");
    let before = (data_dir(&target), listing(&target));
    let cases: [(&str, &str, &str); 5] = [
        (
            "- {objectPath: /many, maxObjects: 2}",
            "",
            "object \"/many\" (ssmparameter, us-west-2): lists more than 2 items",
        ),
        ("- {objectPath: /many}", "", "lists more than 3 items"),
        ("- {objectPath: /many, maxObjects: 5}", "", "maxObjects 5 is above this provider's --max-objects-per-mount 3"),
        (
            "- {objectPath: /many, objectAlias: m, failoverObject: {objectName: /x}}",
            "eu-west-1",
            "failoverObject is not allowed here: bulk descriptors have no failover",
        ),
        (
            "- {objectName: /keep, objectType: ssmparameter, objectAlias: x}\n- {objectPath: /clash}",
            "",
            "resolves to file \"x\", which objects[0] (\"/keep\") also resolves to",
        ),
    ];
    for (objects, failover, message) in cases {
        let mut client = provider.client().await;
        let extra: Vec<(&str, &str)> = if failover.is_empty() { vec![] } else { vec![("failoverRegion", failover)] };
        let request = mount_request(&attrs("pod-a", objects, &extra), &target);
        let err = client.mount(request).await.expect_err(objects);
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{objects}: {}", err.message());
        assert!(err.message().contains(message), "{objects}: {:?} lacks {message:?}", err.message());
        assert_eq!((data_dir(&target), listing(&target)), before, "{objects}: nothing written");
    }
}

/// Every SecretProviderClass under `deploy/examples/` is accepted by the provider's own parser
/// (the chart check only validates its shape), so the examples of the new fields stay true.
#[test]
fn every_example_secret_provider_class_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(doc).expect("YAML");
            if value.get("kind").and_then(|k| k.as_str()) != Some("SecretProviderClass") {
                continue;
            }
            let params = value["spec"]["parameters"].as_mapping().expect("parameters");
            let extra: Vec<(&str, &str)> =
                params.iter().filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?))).collect();
            let objects = extra.iter().find(|(k, _)| *k == "objects").map(|(_, v)| *v).unwrap_or_default();
            let attributes = attrs("pod-a", objects, &extra);
            let parsed = csi_provider_aws::params::parse_mount_request(&attributes, "null", "420");
            let name = format!("{}: {:?}", path.display(), value["metadata"]["name"]);
            let parsed = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
            seen.push((path.file_name().expect("name").to_string_lossy().to_string(), parsed.objects.len()));
        }
    }
    seen.sort();
    let files: Vec<&str> = seen.iter().map(|(f, _)| f.as_str()).collect();
    for wanted in ["bulk.yaml", "json-keys.yaml", "jmespath.yaml"] {
        assert!(files.contains(&wanted), "{wanted} holds a SecretProviderClass: {files:?}");
    }
}

/// An AWS (or something posing as one) that keeps paging: reading stops at the listing's bound
/// or at the page cap, after a bounded number of calls, and the mount fails naming why.
#[tokio::test]
async fn endless_paging_is_cut_at_the_bound_or_the_page_cap() {
    use crate::support::aws_stub::AwsStub;
    let empty = AwsStub::answering(200, r#"{"Parameters":[],"NextToken":"again"}"#);
    let full = AwsStub::answering(
        200,
        r#"{"Parameters":[{"Name":"/p/a","Value":"v","Version":1},{"Name":"/p/b","Value":"v","Version":1},
            {"Name":"/p/c","Value":"v","Version":1}],"NextToken":"again"}"#,
    );
    let cases = [
        (&empty, "- {objectPath: /p}", "was still paging after 30 pages", 30),
        (&full, "- {objectPath: /p, maxObjects: 7}", "lists more than 7 items (stopped reading)", 3),
    ];
    // 4 values of 1 MiB per page: 8 pages hold 32 MiB of values plus their names and versions,
    // past the bound, long before maxObjects.
    let value = "v".repeat(1 << 20);
    let item = |n: u32| format!(r#"{{"Name":"/p/{n}","Value":"{value}","Version":1}}"#);
    let big: &'static str = Box::leak(
        format!(r#"{{"Parameters":[{}],"NextToken":"again"}}"#, (0..4).map(item).collect::<Vec<_>>().join(",")).into(),
    );
    let large = AwsStub::answering(200, big);
    let cases = [
        cases[0],
        cases[1],
        (&large, "- {objectPath: /p, maxObjects: 1000}", "lists more than 32 MiB of values (stopped reading)", 8),
    ];
    for (stub, objects, message, calls) in cases {
        let provider = Provider::builder(&stub.url()).args(&["--local-credentials"]).start();
        let target = provider.target("paging");
        let err = mount(&provider, &target, objects).await.expect_err(objects);
        assert!(err.message().contains(message), "{objects}: {}", err.message());
        let pages = stub.attempts().iter().filter(|a| a.operation.ends_with("GetParametersByPath")).count();
        assert_eq!(pages, calls, "{objects}: one call per page, no more");
        assert!(data_dir(&target).is_none(), "nothing written");
    }
}
