//! `csi-provider-aws doctor` as an admin runs it on a node: the real binary against moto behind a
//! TLS endpoint signed by a private CA, the Kubernetes API stand-in, and a socket directory; then
//! against a broken set-up, where every failing row must say what to do. Only loopback addresses
//! are dialled (`203.0.113.10` is only ever a `--resolve` result).

use crate::support::kube::KubeApi;
use crate::support::stand_in;
use crate::support::tls::{TestCa, TlsFront};
use crate::support::world::REGION_LABEL;
use crate::support::{Moto, Provider, REGION};
use std::path::Path;
use std::process::Command;

const PUBLIC: &str = "203.0.113.10";
const CSI_DRIVER: &str = "secrets-store.csi.k8s.io";

/// What one run printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The table rows whose check starts with `check` (e.g. `dns sts@us-west-2`).
    fn rows(&self, check: &str) -> Vec<&str> {
        self.stdout.lines().filter(|l| l.get(8..).is_some_and(|rest| rest.starts_with(check))).collect()
    }

    fn row(&self, check: &str) -> &str {
        let rows = self.rows(check);
        assert_eq!(rows.len(), 1, "one row for {check:?} expected:\n{}", self.stdout);
        rows[0]
    }

    fn explain(&self) -> String {
        format!("exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `doctor` with `args` and only `env` (plus PATH/HOME) from the environment.
fn doctor(args: &[String], env: &[(&str, String)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_csi-provider-aws"));
    cmd.env_clear().arg("doctor").args(args).args(["--timeout", "3s", "--log-level", "warn"]);
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.env("NO_COLOR", "1").env("AWS_EC2_METADATA_DISABLED", "true");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().expect("run csi-provider-aws doctor");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_healthy_node_passes_every_check_and_exits_0() {
    let Some(moto) = Moto::start() else { return };
    let ca = TestCa::new();
    // `localhost`: moto answers an unsigned request by its Host header and fails (HTTP 500) for
    // host names it reads as S3 buckets; real AWS answers any unsigned request with an error.
    let front = TlsFront::start(&ca, &["localhost"], &moto.url());
    let kube = KubeApi::start();
    kube.node("node-1", &[(REGION_LABEL, REGION)]);
    kube.csi_driver(CSI_DRIVER, &["sts.amazonaws.com", "pods.eks.amazonaws.com"], true);
    let provider = Provider::start(&moto.url(), &["--local-credentials"]);
    let sockets = provider.socket().parent().expect("the socket's directory");
    let url = front.url("localhost");
    let mut list = args(&["--require-private-endpoints", "--resolve", "localhost=127.0.0.1"]);
    for service in ["secretsmanager", "ssm", "sts"] {
        list.extend(args(&["--endpoint", &format!("{service}={url}")]));
    }
    list.extend(args(&["--ca-bundle", &path(&ca.pem_path()), "--provider-volume", &path(sockets)]));
    list.extend(args(&["--failover-region", "us-east-1"]));
    let run = doctor(&list, &[("KUBECONFIG", path(&kube.kubeconfig())), ("NODE_NAME", "node-1".into())]);

    assert_eq!(run.code, 0, "{}", run.explain());
    assert!(run.row("region").contains(&format!("from node node-1 label {REGION_LABEL}")), "{}", run.explain());
    assert!(run.row("socket directory").starts_with("pass"), "{}", run.explain());
    assert!(run.row("kubernetes api").starts_with("pass"));
    assert!(run.row("get serviceaccounts").starts_with("pass"));
    let socket = run.row("provider socket");
    assert!(socket.starts_with("pass") && socket.contains("answers Version: csi-provider-aws"), "{socket}");
    for audience in ["sts.amazonaws.com", "pods.eks.amazonaws.com"] {
        assert!(run.row(&format!("token audience {audience}")).starts_with("pass"), "{}", run.explain());
    }
    assert!(run.row("requiresRepublish").starts_with("pass"), "{}", run.explain());
    assert!(run.row("get nodes").starts_with("pass"), "region from the node's label: {}", run.explain());
    for region in [REGION, "us-east-1"] {
        for service in ["sts", "secretsmanager", "ssm"] {
            for step in ["endpoint", "dns", "tcp", "tls", "aws"] {
                let row = run.row(&format!("{step} {service}@{region}"));
                assert!(row.starts_with("pass"), "{row}\n{}", run.explain());
            }
            let dns = run.row(&format!("dns {service}@{region}"));
            assert!(dns.contains("127.0.0.1 (private, loopback) (from --resolve)"), "{dns}");
            assert!(run.row(&format!("aws {service}@{region}")).contains("request id"));
        }
    }
    assert!(run.stdout.contains("0 failed"), "{}", run.explain());
    assert!(front.handshakes() >= 6, "TLS was checked through the front for every service and region");
}

#[test]
fn a_broken_node_fails_with_a_hint_on_every_failing_row_and_exits_1() {
    let ca = TestCa::new();
    let not_aws = KubeApi::start();
    let front = TlsFront::start(&ca, &["vpce-test.internal"], &not_aws.url());
    let unreachable = tempfile::tempdir().expect("temp dir");
    let kubeconfig = unreachable.path().join("kubeconfig");
    let server = stand_in::refused_url("");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
    );
    std::fs::write(&kubeconfig, config).expect("write kubeconfig");
    let list = args(&[
        "--region",
        REGION,
        "--provider-volume",
        &path(&unreachable.path().join("missing")),
        "--require-private-endpoints",
        "--use-fips-endpoint",
        "--resolve",
        &format!("sts-fips.us-west-2.amazonaws.com={PUBLIC}"),
        "--resolve",
        "vpce-test.internal=127.0.0.1",
        "--endpoint",
        &format!("secretsmanager={}", front.url("vpce-test.internal")),
        "--endpoint",
        &format!("ssm={}", not_aws.url()),
    ]);
    let run = doctor(&list, &[("KUBECONFIG", path(&kubeconfig))]);

    assert_eq!(run.code, 1, "{}", run.explain());
    let failing: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(failing.iter().all(|row| row.contains(" | hint: ")), "every failure has a hint:\n{}", run.explain());
    assert!(run.row("socket directory").contains("--provider-volume"), "{}", run.explain());
    assert!(run.row("kubernetes api").starts_with("FAIL"), "{}", run.explain());
    assert!(run.row("get serviceaccounts").starts_with("skip"));
    assert!(run.row("region").contains("from --region"));

    let dns = run.row("dns sts@us-west-2");
    assert!(dns.starts_with("FAIL") && dns.contains("sts-fips.us-west-2.amazonaws.com"), "FIPS reaches STS: {dns}");
    assert!(dns.contains("203.0.113.10 (public)") && dns.contains("nothing was sent"), "{dns}");
    assert!(dns.contains("enable private DNS"), "{dns}");
    for step in ["tcp", "tls", "aws"] {
        assert!(run.row(&format!("{step} sts@us-west-2")).starts_with("skip"), "{}", run.explain());
    }

    let tls = run.row("tls secretsmanager@us-west-2");
    assert!(tls.starts_with("FAIL") && tls.contains("certificate problem") && tls.contains("--ca-bundle"), "{tls}");
    assert!(run.row("aws secretsmanager@us-west-2").starts_with("skip"), "{}", run.explain());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while front.refused_handshakes() == 0 {
        assert!(std::time::Instant::now() < deadline, "the TLS endpoint never saw the aborted handshake");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let answer = run.row("aws ssm@us-west-2");
    assert!(answer.starts_with("FAIL") && answer.contains("without a request id"), "{answer}");
    assert!(run.row("tls ssm@us-west-2").starts_with("skip"), "plain http has no TLS");
}

/// The cluster-side misconfigurations an SRE meets most: a CSIDriver that requests no Pod
/// Identity token and does not republish, a ServiceAccount that may not get nodes, a second
/// provider name with nothing serving on its socket. Each row says what to fix.
#[test]
fn a_misconfigured_cluster_gets_the_fix_for_each_check() {
    let kube = KubeApi::start();
    kube.node("node-1", &[(REGION_LABEL, REGION)]);
    kube.forbid(&KubeApi::node_path("node-1"));
    kube.csi_driver(CSI_DRIVER, &["sts.amazonaws.com"], false);
    let sockets = tempfile::tempdir().expect("temp dir");
    let env = [("KUBECONFIG", path(&kube.kubeconfig())), ("NODE_NAME", "node-1".to_string())];
    let base = args(&["--provider-volume", &path(sockets.path()), "--provider-name", "aws-second"]);
    let run = doctor(&base, &env);

    assert_eq!(run.code, 1, "{}", run.explain());
    let failing: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(failing.iter().all(|row| row.contains(" | hint: ")), "every failure has a hint:\n{}", run.explain());
    let socket = run.row("provider socket");
    assert!(socket.starts_with("FAIL") && socket.contains("aws-second.sock"), "{socket}");
    assert!(socket.contains("--provider-name"), "{socket}");
    assert!(run.row("token audience sts.amazonaws.com").starts_with("pass"), "{}", run.explain());
    let pod_identity = run.row("token audience pods.eks.amazonaws.com");
    assert!(pod_identity.starts_with("FAIL") && pod_identity.contains("tokenRequests"), "{pod_identity}");
    assert!(pod_identity.contains("TokenMissing"), "{pod_identity}");
    let republish = run.row("requiresRepublish");
    assert!(republish.starts_with("warn") && republish.contains("enableSecretRotation=true"), "{republish}");
    let nodes = run.row("get nodes");
    assert!(nodes.starts_with("FAIL") && nodes.contains("get on nodes"), "{nodes}");
    assert!(run.row("region").starts_with("FAIL"), "{}", run.explain());

    // Only IRSA in use: the Pod Identity audience is not asked for.
    let mut irsa = base.clone();
    irsa.extend(args(&["--identity", "irsa", "--region", REGION]));
    let run = doctor(&irsa, &env);
    assert!(run.rows("token audience pods.eks.amazonaws.com").is_empty(), "{}", run.explain());
    assert!(run.rows("get nodes").is_empty(), "the region comes from --region: {}", run.explain());

    // No CSIDriver at all: the driver is not installed (or has another name).
    let mut other = base.clone();
    other.extend(args(&["--csi-driver", "not-installed.example.com"]));
    let run = doctor(&other, &env);
    let row = run.row("csidriver");
    assert!(row.starts_with("FAIL") && row.contains("not found") && row.contains("--csi-driver"), "{row}");
}

#[test]
fn bad_usage_exits_2() {
    let run = doctor(&args(&["--endpoint", "kms=https://kms.example.com"]), &[]);
    assert_eq!(run.code, 2, "{}", run.explain());
    assert!(run.stderr.contains("unknown service"), "{}", run.explain());
}

#[test]
fn through_a_proxy_the_proxy_is_resolved_connected_and_tunnelled() {
    let Some(moto) = Moto::start() else { return };
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, &["localhost"], &moto.url());
    let proxy = crate::support::proxy::TestProxy::start();
    let kube = KubeApi::start();
    kube.csi_driver(CSI_DRIVER, &["sts.amazonaws.com", "pods.eks.amazonaws.com"], true);
    let provider = Provider::start(&moto.url(), &["--local-credentials"]);
    let sockets = provider.socket().parent().expect("the socket's directory");
    let mut list = args(&["--region", REGION, "--require-private-endpoints", "--ca-bundle", &path(&ca.pem_path())]);
    list.extend(args(&["--provider-volume", &path(sockets), "--endpoint", &format!("AWS={}", front.url("localhost"))]));
    list.retain(|a| a != "--endpoint" && !a.starts_with("AWS="));
    let env = [
        ("KUBECONFIG", path(&kube.kubeconfig())),
        ("HTTPS_PROXY", proxy.url()),
        ("AWS_ENDPOINT_URL", front.url("localhost")),
    ];
    let run = doctor(&list, &env);

    assert_eq!(run.code, 0, "{}", run.explain());
    for service in ["sts", "secretsmanager", "ssm"] {
        let row = |step: &str| run.row(&format!("{step} {service}@{REGION}"));
        assert!(row("endpoint").contains("from AWS_ENDPOINT_URL, through proxy 127.0.0.1:"), "{}", run.explain());
        assert!(row("dns").contains("127.0.0.1 (private, loopback) (from address literal)"), "{}", run.explain());
        let tcp = row("tcp");
        assert!(tcp.starts_with("pass") && tcp.contains(&format!("CONNECT localhost:{}", front.port())), "{tcp}");
        assert!(row("tls").starts_with("pass") && row("aws").starts_with("pass"), "{}", run.explain());
    }
    let to_front = format!("localhost:{}", front.port());
    let tunnels = proxy.requests().iter().filter(|r| r.method == "CONNECT" && r.target == to_front).count();
    assert_eq!(tunnels, 6, "per service doctor's own tunnel and the request's: {:#?}", proxy.requests());
}
