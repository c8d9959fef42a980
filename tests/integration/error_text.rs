//! Error text for people, on the real binary: one failure induced per error code the outside
//! can cause, and for each, neither the gRPC status message (the pod's `FailedMount` event) nor
//! the provider's `mount failed` log line holds a library type's `Debug` output; the log line
//! carries who mounted (namespace, pod, SecretProviderClass, target), the outcome, the code and a
//! rounded duration, once; endpoint errors name the URL and where it came from. Not induced here:
//! `Internal` (a bug in the provider: nothing outside can cause it) and `WriteFailed` (the writer
//! replaces whatever it finds in a target; only a full or read-only file system makes it fail,
//! which a test could only arrange with mounts of its own).

use crate::support::aws_stub::AwsStub;
use crate::support::kube::KubeApi;
use crate::support::world::{jwt, pod_attrs, tokens};
use crate::support::{Moto, Provider, SPC_NAME, attrs, mount_request, pod_uid, stand_in};
use std::path::{Path, PathBuf};

/// What must never appear in a message or a log line's error: Debug output of library types.
const DEBUG_MARKERS: [&str; 5] = ["DispatchFailure", "ConnectorError", "Os {", "kind: ", "Some("];

fn secret(name: &str) -> String {
    format!("- {{objectName: {name}, objectType: secretsmanager}}\n")
}

/// Whether `text` holds a Rust path (`hyper_util::client`, `std::io`): `word::word`.
fn has_rust_path(text: &str) -> bool {
    text.split("::").count() > 1
        && text.match_indices("::").any(|(at, _)| {
            let before = text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let after = text[at + 2..].chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            before && after
        })
}

fn assert_for_people(what: &str, text: &str) {
    for marker in DEBUG_MARKERS {
        assert!(!text.contains(marker), "{what} holds {marker:?}: {text}");
    }
    assert!(!has_rust_path(text), "{what} holds a Rust path: {text}");
}

/// The provider's JSON `mount failed` lines.
fn failure_lines(provider: &Provider) -> Vec<serde_json::Value> {
    provider
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "mount failed")
        .collect()
}

/// Mounts `attributes` at `target`, expects the failure `code`, checks the message and the new log
/// line, and returns the message.
async fn expect_failure(provider: &Provider, attributes: &str, target: &Path, code: &str) -> String {
    let before = failure_lines(provider).len();
    let status = provider
        .client()
        .await
        .mount(mount_request(attributes, target))
        .await
        .expect_err(&format!("a {code} failure expected"));
    let message = status.message().to_string();
    assert!(message.starts_with(&format!("{code}: ")), "{code}: {message}");
    assert_for_people(&format!("the {code} status message"), &message);
    let mut line = None;
    for _ in 0..100 {
        if let Some(l) = failure_lines(provider).into_iter().nth(before) {
            line = Some(l);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let line = line.unwrap_or_else(|| panic!("no mount failed line for {code}:\n{}", provider.logs()));
    assert_eq!(line["code"], code, "{line}");
    assert_eq!(line["outcome"], "error", "{line}");
    assert_for_people(&format!("the {code} log line's error"), line["error"].as_str().unwrap_or_default());
    let span = &line["span"];
    assert_eq!(span["name"], "mount", "one span per mount: {line}");
    assert_eq!(span["target"], target.display().to_string(), "{line}");
    assert_eq!(span["namespace"], "default", "{line}");
    assert!(span["pod"].as_str().is_some_and(|p| !p.is_empty()), "{line}");
    assert_eq!(span["spc"], SPC_NAME, "{line}");
    assert!(line.get("spans").is_none(), "the span once, not a span list as well: {line}");
    let ms = line["duration_ms"].as_f64().unwrap_or(-1.0);
    assert!(ms >= 0.0 && (ms * 10.0 - (ms * 10.0).round()).abs() < 1e-6, "rounded to 0.1 ms: {line}");
    message
}

fn json_provider(url: &str, extra: &[&str]) -> Provider {
    Provider::builder(url).args(&["--log-format", "json"]).args(extra).start()
}

#[tokio::test]
async fn failures_against_aws_read_as_text_and_name_the_endpoint() {
    let Some(moto) = Moto::start() else { return };
    moto.sm(crate::support::REGION)
        .create_secret()
        .name("plain")
        .secret_string("not json")
        .send()
        .await
        .expect("create");
    let provider = json_provider(&moto.url(), &["--local-credentials"]);
    let target = provider.target(&pod_uid("web"));

    let bad = attrs("web", "- {objectName: x, objectType: nosuchstore}\n", &[]);
    let message = expect_failure(&provider, &bad, &target, "InvalidParameters").await;
    assert!(message.contains("objectType"), "names the field: {message}");
    expect_failure(&provider, &attrs("web", &secret("missing"), &[]), &target, "NotFound").await;
    let jmes = "- objectName: plain\n  objectType: secretsmanager\n  jmesPath:\n    - {path: a, objectAlias: a}\n";
    expect_failure(&provider, &attrs("web", jmes, &[]), &target, "JmesPathFailed").await;
    let outside = tempfile::tempdir().expect("temp dir");
    expect_failure(&provider, &attrs("web", &secret("plain"), &[]), outside.path(), "InvalidTarget").await;

    // Nothing listens: the message names the URL and that it came from AWS_ENDPOINT_URL.
    let refused = stand_in::refused_url("");
    let down = json_provider(&refused, &["--local-credentials"]);
    let target = down.target(&pod_uid("web"));
    let message = expect_failure(&down, &attrs("web", &secret("plain"), &[]), &target, "EndpointUnreachable").await;
    assert!(message.contains(&format!("endpoint {refused}")), "names the URL: {message}");
    assert!(message.contains("from AWS_ENDPOINT_URL"), "and its source: {message}");
    let flagged = Provider::builder(&refused)
        .args(&["--log-format", "json", "--local-credentials", "--endpoint", &format!("secretsmanager={refused}")])
        .start();
    let target = flagged.target(&pod_uid("web"));
    let message = expect_failure(&flagged, &attrs("web", &secret("plain"), &[]), &target, "EndpointUnreachable").await;
    assert!(message.contains("from --endpoint SERVICE)"), "{message}");

    // The AWS default endpoint resolves to a public address: refused before anything is sent.
    let private = Provider::builder(&moto.url())
        .env_remove("AWS_ENDPOINT_URL")
        .args(&["--log-format", "json", "--local-credentials", "--require-private-endpoints"])
        .args(&["--resolve", "secretsmanager.us-west-2.amazonaws.com=203.0.113.10"])
        .start();
    let target = private.target(&pod_uid("web"));
    let message =
        expect_failure(&private, &attrs("web", &secret("plain"), &[]), &target, "PublicEndpointRefused").await;
    assert!(message.contains("https://secretsmanager.us-west-2.amazonaws.com"), "{message}");
    assert!(message.contains("from AWS default"), "{message}");
}

#[tokio::test]
async fn aws_error_answers_read_as_text() {
    let cases = [
        (AwsStub::answering(400, r#"{"__type":"AccessDeniedException","message":"not for you"}"#), "AccessDenied"),
        (AwsStub::throttling(), "Throttled"),
        (AwsStub::answering(400, r#"{"__type":"DecryptionFailure","message":"KMS says no"}"#), "AwsError"),
        (AwsStub::answering(503, r#"{"__type":"ServiceUnavailable","message":"later"}"#), "EndpointUnreachable"),
    ];
    for (stub, code) in cases {
        let provider = json_provider(&stub.url(), &["--local-credentials"]);
        let target = provider.target(&pod_uid("web"));
        let message = expect_failure(&provider, &attrs("web", &secret("s"), &[]), &target, code).await;
        assert!(message.contains(r#""s""#), "names the object: {message}");
    }
}

#[tokio::test]
async fn identity_failures_read_as_text() {
    let Some(moto) = Moto::start() else { return };
    let kube = KubeApi::start();
    kube.service_account("default", "app", None);
    let provider = Provider::builder(&moto.url())
        .args(&["--log-format", "json"])
        .env("KUBECONFIG", kube.kubeconfig().display().to_string())
        .start();
    let target = provider.target(&pod_uid("web"));
    let no_token = pod_attrs("web", "app", &secret("s"), None, &[("usePodIdentity", "true")]);
    let message = expect_failure(&provider, &no_token, &target, "TokenMissing").await;
    assert!(message.contains("pods.eks.amazonaws.com"), "names the audience: {message}");
    let other =
        tokens(&[("sts.amazonaws.com", &jwt("system:serviceaccount:default:someone-else", "sts.amazonaws.com"))]);
    let mismatch = pod_attrs("web", "app", &secret("s"), Some(&other), &[]);
    expect_failure(&provider, &mismatch, &target, "IdentityFailed").await;
}

/// The plain format: no escape codes when stderr is not a terminal (even without `NO_COLOR`),
/// the fields of who mounted once, a rounded duration.
#[tokio::test]
async fn plain_lines_have_no_colour_off_a_terminal() {
    let Some(moto) = Moto::start() else { return };
    let provider = Provider::builder(&moto.url()).env_remove("NO_COLOR").args(&["--local-credentials"]).start();
    let target: PathBuf = provider.target(&pod_uid("web"));
    let request = mount_request(&attrs("web", &secret("missing"), &[]), &target);
    provider.client().await.mount(request).await.expect_err("NotFound");
    let logs = provider.logs();
    assert!(!logs.contains('\u{1b}'), "no escape codes in a log file:\n{logs}");
    let line = logs.lines().find(|l| l.contains("mount failed")).unwrap_or_else(|| panic!("no line:\n{logs}"));
    for field in
        ["namespace=\"default\"", "pod=\"web\"", &format!("spc=\"{SPC_NAME}\""), "outcome=\"error\"", "code=NotFound"]
    {
        assert_eq!(line.matches(field).count(), 1, "{field} once in {line}");
    }
    let ms = line.split("duration_ms=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_default();
    assert!(ms.parse::<f64>().is_ok() && ms.split('.').nth(1).is_none_or(|d| d.len() <= 1), "{line}");
    assert!(!logs.lines().next().unwrap_or_default().is_empty());
    assert!(!logs.contains("resolve= "), "no empty fields at start:\n{logs}");
}
