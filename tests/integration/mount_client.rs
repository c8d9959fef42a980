//! The `mount` subcommand (a driver-like client) as a user runs it: the real binary dialling the
//! real provider over its unix socket, moto as AWS. It says what happened (written, or nothing
//! written), prints each error once, refuses `--driver-writes` against a provider that writes,
//! and takes a relative `--target`.

use crate::support::{Moto, Provider, REGION};
use std::path::Path;
use std::process::Command;

/// What one run printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `csi-provider-aws mount` against `provider` with a manifest reading `secret`, from `cwd`.
fn mount_cli(provider: &Provider, cwd: &Path, target: &str, secret: &str, extra: &[&str]) -> Run {
    let spc = provider.dir().join(format!("spc-{secret}.yaml"));
    let manifest = format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: cli-spc\nspec:\n  provider: aws\n  parameters:\n    region: {REGION}\n    objects: |\n      - objectName: {secret}\n        objectType: secretsmanager\n"
    );
    std::fs::write(&spc, manifest).expect("write manifest");
    let out = Command::new(env!("CARGO_BIN_EXE_csi-provider-aws"))
        .current_dir(cwd)
        .args(["mount", "--socket", &provider.socket().display().to_string(), "--spc"])
        .arg(&spc)
        .args(["--target", target, "--pod-uid", "cli-uid", "--log-level", "warn"])
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .expect("run csi-provider-aws mount");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn seed(moto: &Moto, name: &str, value: &str) {
    let sm = moto.sm(REGION);
    sm.create_secret().name(name).secret_string(value).send().await.expect("create_secret");
}

#[tokio::test]
async fn provider_writes_a_relative_target_and_says_when_nothing_was_written() {
    let Some(moto) = Moto::start() else { return };
    seed(&moto, "cli-secret", "v1").await;
    let provider = Provider::start(&moto.url(), &["--local-credentials"]);
    let target = provider.target("cli-uid");
    let cwd = provider.kubelet();
    let relative = target.strip_prefix(&cwd).expect("target under the kubelet dir").display().to_string();

    let first = mount_cli(&provider, &cwd, &relative, "cli-secret", &[]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(first.stdout.contains(&format!("in {} (written by the provider)", target.display())), "{}", first.stdout);
    assert_eq!(std::fs::read_to_string(target.join("cli-secret")).expect("file"), "v1");

    let again = mount_cli(&provider, &cwd, &relative, "cli-secret", &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("(unchanged: the provider wrote nothing)"), "{}", again.stdout);

    let wrong = mount_cli(&provider, &cwd, &relative, "cli-secret", &["--driver-writes"]);
    assert_eq!(wrong.code, 1, "{}", wrong.stdout);
    assert!(wrong.stderr.contains("--driver-writes: the provider at"), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("--driver-writes-secrets"), "{}", wrong.stderr);
    assert_eq!(wrong.stderr.lines().filter(|l| !l.trim().is_empty()).count(), 1, "once:\n{}", wrong.stderr);
}

#[tokio::test]
async fn a_failed_mount_is_reported_once_with_its_code() {
    let Some(moto) = Moto::start() else { return };
    let provider = Provider::start(&moto.url(), &["--local-credentials"]);
    let target = provider.target("cli-uid").display().to_string();
    let run = mount_cli(&provider, provider.dir(), &target, "missing-secret", &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line:\n{}", run.stderr);
    assert!(lines[0].starts_with("error: Mount failed: NotFound"), "{}", lines[0]);
    assert!(lines[0].contains("missing-secret"), "{}", lines[0]);
}

#[tokio::test]
async fn driver_writes_returns_files_the_client_writes_once() {
    let Some(moto) = Moto::start() else { return };
    seed(&moto, "cli-returned", "v1").await;
    let provider = Provider::start(&moto.url(), &["--local-credentials", "--driver-writes-secrets"]);
    let target = provider.target("cli-uid").display().to_string();
    let first = mount_cli(&provider, provider.dir(), &target, "cli-returned", &["--driver-writes"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("(returned by the provider; written)"), "{}", first.stdout);
    let again = mount_cli(&provider, provider.dir(), &target, "cli-returned", &["--driver-writes"]);
    assert!(again.stdout.contains("(returned by the provider; unchanged: nothing written)"), "{}", again.stdout);
}

#[test]
fn every_mount_flag_is_described() {
    let out = Command::new(env!("CARGO_BIN_EXE_csi-provider-aws")).args(["mount", "--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = help.lines().collect();
    let flags = ["--spc", "--target", "--socket", "--namespace", "--pod", "--pod-uid", "--service-account"];
    for flag in flags.into_iter().chain(["--token", "--driver-writes", "--watch"]) {
        let at = lines.iter().position(|l| l.trim_start().split(' ').next() == Some(flag));
        let at = at.unwrap_or_else(|| panic!("{flag} is not in\n{help}"));
        // Long help: the flag on its line, its description on the next (a bare `[default: …]`
        // or the next flag there means it has none).
        let next = lines.get(at + 1).map(|l| l.trim()).unwrap_or_default();
        let described = !next.is_empty() && !next.starts_with('[') && !next.starts_with('-');
        assert!(described, "{flag} has no description in\n{help}");
    }
}
