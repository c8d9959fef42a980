//! Shared fixtures for integration tests: a moto server ([`Moto`]), the real provider binary on a
//! real unix socket ([`Provider`]), and the attributes the driver sends ([`attrs`],
//! [`mount_request`]). Include with `mod support;`.
//!
//! ```ignore
//! let Some(moto) = Moto::start() else { return }; // skipped locally when moto is missing
//! moto.sm("us-west-2").create_secret().name("db").secret_string("v1").send().await?;
//! let provider = Provider::start(&moto.url(), &["--local-credentials"]);
//! let target = provider.target(&pod_uid("web"));
//! let attrs = attrs("web", "- objectName: db\n  objectType: secretsmanager\n", &[]);
//! let resp = provider.client().await.mount(mount_request(&attrs, &target)).await?;
//! ```
//!
//! `Moto::start` and `Provider::start` block for the second or two their process needs to come
//! up; that is fine inside `#[tokio::test]`.
#![allow(dead_code)]

pub mod agent;
pub mod aws_stub;
pub mod kube;
pub mod node;
pub mod proxy;
pub mod raw_grpc;
pub mod recorder;
pub mod stand_in;
pub mod switch;
pub mod tls;
pub mod world;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use csi_provider_aws::pb::MountRequest;
use csi_provider_aws::pb::csi_driver_provider_client::CsiDriverProviderClient;
use tempfile::TempDir;
use tonic::transport::Channel;

/// The region every fixture uses unless a test says otherwise.
pub const REGION: &str = "us-west-2";
/// The account moto keys its state by; use it in role ARNs.
pub const ACCOUNT: &str = "123456789012";
/// The value of the `secretProviderClass` attribute [`attrs`] sends.
pub const SPC_NAME: &str = "test-spc";

const MOTO_READY_TIMEOUT: Duration = Duration::from_secs(20);
const PROVIDER_READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// moto

/// A client of `$sdk` pointed at moto with static `testing` credentials (every generated SDK
/// config builder has the same setters).
macro_rules! seed_client {
    ($sdk:ident, $moto:expr, $region:expr) => {{
        use $sdk::config::{BehaviorVersion, Config, Region};
        let conf = Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new($region.to_string()))
            .endpoint_url($moto.url())
            .credentials_provider(test_credentials())
            .build();
        $sdk::Client::from_conf(conf)
    }};
}

/// A moto server on 127.0.0.1 and a free port, killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Moto {
    /// Starts moto, or returns `None` (after printing `SKIP: ...`) when `moto_server` cannot be
    /// found outside CI. Under `CI=true` a missing moto is a test failure.
    pub fn start() -> Option<Moto> {
        let Some(bin) = find_moto_server() else {
            if is_ci() {
                panic!(
                    "moto_server not found (CI=true): set MOTO_SERVER or run scripts/test.sh, \
                     which installs it into .venv"
                );
            }
            eprintln!("SKIP: moto_server not found; run scripts/test.sh");
            return None;
        };
        let mut last_log = String::new();
        // A port picked free can be taken before moto binds it: retry a few times.
        for _ in 0..3 {
            match Moto::spawn(&bin) {
                Ok(moto) => return Some(moto),
                Err(log) => last_log = log,
            }
        }
        panic!("moto_server ({}) did not start:\n{last_log}", bin.display());
    }

    fn spawn(bin: &Path) -> Result<Moto, String> {
        let dir = tempfile::Builder::new().prefix("moto-").tempdir().expect("temp dir");
        let log_path = dir.path().join("moto.log");
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file(&log_path))
            .stderr(log_file(&log_path))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        let mut moto = Moto { child, port, dir };
        match moto.wait_ready() {
            Ok(()) => Ok(moto),
            Err(why) => Err(format!("{why}\n{}", moto.logs())),
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + MOTO_READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited early: {status}"));
            }
            if http(self.port, "GET", "/moto-api/", "").is_ok() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        Err(format!("moto_server did not answer within {MOTO_READY_TIMEOUT:?}"))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's output so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Wipes all state (`POST /moto-api/reset`).
    pub fn reset(&self) {
        self.post("/moto-api/reset", "");
    }

    /// Turns IAM enforcement on (`POST /moto-api/reset-auth` with `0`); [`Moto::auth_off`] undoes
    /// it. Mint role credentials before turning it on (see `spec/toolbox.md`).
    pub fn auth_on(&self) {
        self.post("/moto-api/reset-auth", "0");
    }

    pub fn auth_off(&self) {
        self.post("/moto-api/reset-auth", "inf");
    }

    /// A raw request to moto; returns the whole HTTP response (status line, headers, body).
    pub fn post(&self, path: &str, body: &str) -> String {
        http(self.port, "POST", path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// A Secrets Manager client for seeding, with static `testing` credentials.
    pub fn sm(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        seed_client!(aws_sdk_secretsmanager, self, region)
    }

    /// A Parameter Store client for seeding, with static `testing` credentials.
    pub fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        seed_client!(aws_sdk_ssm, self, region)
    }

    /// An STS client, with static `testing` credentials.
    pub fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        seed_client!(aws_sdk_sts, self, region)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn test_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "test-support")
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `MOTO_SERVER`, else `<crate>/.venv/bin/moto_server`, else `moto_server` on `PATH`.
fn find_moto_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("moto_server")).find(|p| p.is_file())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn log_file(path: &Path) -> File {
    File::options().create(true).append(true).open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One HTTP/1.0 request to 127.0.0.1:`port`; `Ok` with the response once any HTTP answer came.
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if response.starts_with("HTTP/") {
        Ok(response)
    } else {
        Err(std::io::Error::other(format!("not an HTTP answer: {response:?}")))
    }
}

// ---------------------------------------------------------------------------------------------
// the provider binary

/// The real `csi-provider-aws` binary serving in a fresh temp dir, killed on drop.
pub struct Provider {
    child: Child,
    dir: TempDir,
    socket: PathBuf,
}

/// Options for [`Provider`] beyond [`Provider::start`]: extra flags and environment.
pub struct ProviderBuilder {
    moto_url: String,
    args: Vec<String>,
    env: Vec<(String, Option<String>)>,
}

impl ProviderBuilder {
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Sets (or overrides a default of) an environment variable of the provider.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), Some(value.into())));
        self
    }

    /// Removes a variable, default or inherited, from the provider's environment.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.push((key.to_string(), None));
        self
    }

    pub fn start(self) -> Provider {
        let dir = tempfile::Builder::new().prefix("csi-").tempdir().expect("temp dir");
        let providers = dir.path().join("providers");
        let pods = dir.path().join("kubelet/pods");
        std::fs::create_dir_all(&providers).expect("providers dir");
        std::fs::create_dir_all(&pods).expect("kubelet pods dir");
        let socket = providers.join(format!("{}.sock", flag_value(&self.args, "--provider-name").unwrap_or("aws")));

        let mut provider = self.spawn(self.default_args(dir.path()), dir, socket);
        provider.wait_socket();
        provider
    }

    /// Runs the binary with `first` and then the test's flags, the hermetic environment and the
    /// test's variables, logging into `dir`.
    pub(crate) fn spawn(&self, first: Vec<String>, dir: TempDir, socket: PathBuf) -> Provider {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_csi-provider-aws"));
        cmd.args(first).args(&self.args);
        hermetic_env(&mut cmd, dir.path(), &self.moto_url);
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let log_path = dir.path().join("provider.log");
        cmd.stdin(Stdio::null()).stdout(log_file(&log_path)).stderr(log_file(&log_path));
        let child = cmd.spawn().expect("spawn csi-provider-aws");
        Provider { child, dir, socket }
    }

    /// Our defaults, each left out when the test passes that flag itself.
    fn default_args(&self, dir: &Path) -> Vec<String> {
        let defaults = [
            ("--provider-volume", dir.join("providers").display().to_string()),
            ("--kubelet-path", dir.join("kubelet").display().to_string()),
            ("--log-level", "debug".to_string()),
        ];
        defaults
            .into_iter()
            .filter(|(flag, _)| !has_flag(&self.args, flag))
            .flat_map(|(flag, value)| [flag.to_string(), value])
            .collect()
    }
}

/// The child sees no AWS or provider settings of the developer's machine: only moto, the test
/// region and static credentials. The admin server binds an ephemeral port so parallel tests
/// never collide on `:8989`; `NO_COLOR` keeps escape codes out of [`Provider::logs`].
fn hermetic_env(cmd: &mut Command, dir: &Path, moto_url: &str) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("AWS_") || key.starts_with("CSI_PROVIDER_AWS_") || key == "KUBECONFIG" {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.env("AWS_ENDPOINT_URL", moto_url)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("aws-config-absent"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("aws-credentials-absent"))
        .env("CSI_PROVIDER_AWS_METRICS_ADDR", "127.0.0.1:0")
        .env("NO_COLOR", "1");
}

fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag || a.strip_prefix(flag).is_some_and(|rest| rest.starts_with('=')))
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(flag).and_then(|rest| rest.strip_prefix('='))
        }
    })
}

impl Provider {
    /// Serves on `<tmp>/providers/aws.sock` against `moto_url` with `--log-level debug` plus
    /// `extra_args`, and waits for the socket.
    pub fn start(moto_url: &str, extra_args: &[&str]) -> Provider {
        Provider::builder(moto_url).args(extra_args).start()
    }

    pub fn builder(moto_url: &str) -> ProviderBuilder {
        ProviderBuilder { moto_url: moto_url.to_string(), args: Vec::new(), env: Vec::new() }
    }

    fn wait_socket(&mut self) {
        let deadline = Instant::now() + PROVIDER_READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("csi-provider-aws exited before serving ({status}):\n{}", self.logs());
            }
            let is_socket = std::fs::metadata(&self.socket).is_ok_and(|m| m.file_type().is_socket());
            if is_socket {
                return;
            }
            if Instant::now() >= deadline {
                panic!("no socket at {} after {PROVIDER_READY_TIMEOUT:?}:\n{}", self.socket.display(), self.logs());
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temp dir holding `providers/`, `kubelet/` and `provider.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `--kubelet-path` given by default.
    pub fn kubelet(&self) -> PathBuf {
        self.dir.path().join("kubelet")
    }

    /// A gRPC client on the socket, dialled as the driver does.
    pub async fn client(&self) -> CsiDriverProviderClient<Channel> {
        csi_provider_aws::client::connect(&self.socket)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}\n{}", self.socket.display(), self.logs()))
    }

    /// Creates `<kubelet>/pods/<pod_uid>/volumes/kubernetes.io~csi/secrets/mount`.
    pub fn target(&self, pod_uid: &str) -> PathBuf {
        let target = self.kubelet().join("pods").join(pod_uid).join("volumes/kubernetes.io~csi/secrets/mount");
        std::fs::create_dir_all(&target).expect("create target dir");
        target
    }

    /// Everything the provider printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (call twice for the second-signal abort).
    #[allow(unsafe_code)] // kill(2): no safe wrapper among our dependencies
    pub fn terminate(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped: `child` lives).
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {pid}: {}", std::io::Error::last_os_error());
    }

    /// Waits (blocking) up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// what the driver sends

/// The pod UID [`attrs`] sends for `pod`; pass it to [`Provider::target`].
pub fn pod_uid(pod: &str) -> String {
    format!("{pod}-uid")
}

/// The `attributes` JSON the driver sends for `pod` (namespace `default`, service account
/// `default`, UID [`pod_uid`]) with `objects` and `region` (`us-west-2`); `extra` adds keys or
/// overrides any of these.
pub fn attrs(pod: &str, objects_yaml: &str, extra: &[(&str, &str)]) -> String {
    let uid = pod_uid(pod);
    let mut map = serde_json::Map::new();
    let defaults = [
        ("objects", objects_yaml),
        ("region", REGION),
        ("csi.storage.k8s.io/pod.name", pod),
        ("csi.storage.k8s.io/pod.namespace", "default"),
        ("csi.storage.k8s.io/pod.uid", &uid),
        ("csi.storage.k8s.io/serviceAccount.name", "default"),
        ("csi.storage.k8s.io/ephemeral", "true"),
        ("secretProviderClass", SPC_NAME),
    ];
    for (key, value) in defaults.iter().chain(extra) {
        map.insert(key.to_string(), serde_json::Value::String(value.to_string()));
    }
    serde_json::Value::Object(map).to_string()
}

/// A `MountRequest` as driver v1.6 sends it: no node-publish secrets (`"null"`), permission
/// `"420"` (0644), no current object versions.
pub fn mount_request(attrs: &str, target: &Path) -> MountRequest {
    MountRequest {
        attributes: attrs.to_string(),
        secrets: "null".to_string(),
        target_path: target.display().to_string(),
        permission: "420".to_string(),
        current_object_version: Vec::new(),
    }
}

/// A TCP proxy that holds each connection for `delay` before relaying it to `upstream`.
pub async fn slow_proxy(upstream: String, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    format!("http://{addr}")
}
