//! The release provider binary, started as a node would run it (no `--local-credentials`: every
//! mount reads AWS as its pod), with every AWS endpoint and the Kubernetes API on the fake.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the provider may take to bind its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running provider in its own directory; killed (and its directory removed) on drop.
pub struct Provider {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

/// The provider binary: `PROVIDER_BIN`, else `<target>/release/csi-provider-aws`.
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("PROVIDER_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    target_dir().join("release/csi-provider-aws")
}

/// `CARGO_TARGET_DIR`, else `<crate>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

impl Provider {
    /// Starts the provider with the fake at `fake_url` as STS, Secrets Manager and Parameter
    /// Store, `kubeconfig` for the Kubernetes API, and `extra` flags; returns once its socket
    /// is bound. The directory (socket, kubelet path, log) is on /dev/shm when it exists (a
    /// tmpfs, as real target paths are), else in the temp dir.
    pub fn start(fake_url: &str, kubeconfig: &Path, extra: &[&str]) -> Result<Provider, String> {
        let bin = binary();
        if !bin.is_file() {
            return Err(format!("{} not found: run `cargo build --release` (or set PROVIDER_BIN)", bin.display()));
        }
        let shm = Path::new("/dev/shm");
        let builder = tempfile::Builder::new().prefix("csi-bench-").to_owned();
        let dir = if shm.is_dir() { builder.tempdir_in(shm) } else { builder.tempdir() }
            .map_err(|e| format!("temp dir: {e}"))?;
        let providers = dir.path().join("providers");
        let kubelet = dir.path().join("kubelet");
        std::fs::create_dir_all(&providers).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(kubelet.join("pods")).map_err(|e| e.to_string())?;
        let socket = providers.join("aws.sock");

        let mut cmd = Command::new(&bin);
        cmd.arg("--provider-volume").arg(&providers).arg("--kubelet-path").arg(&kubelet);
        for service in ["secretsmanager", "ssm", "sts"] {
            cmd.arg("--endpoint").arg(format!("{service}={fake_url}"));
        }
        cmd.args(extra);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            let proxy = key.to_ascii_lowercase().ends_with("_proxy");
            if key.starts_with("AWS_") || key.starts_with("CSI_PROVIDER_AWS_") || key == "KUBECONFIG" || proxy {
                cmd.env_remove(&key);
            }
        }
        cmd.env("KUBECONFIG", kubeconfig)
            .env("AWS_REGION", super::fake::REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.path().join("aws-config-absent"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("aws-credentials-absent"))
            .env("CSI_PROVIDER_AWS_METRICS_ADDR", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .env_remove("NODE_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let log = std::fs::File::create(dir.path().join("provider.log")).map_err(|e| e.to_string())?;
        let (lines_tx, lines_rx) = mpsc::channel::<()>();
        // Drains the provider's log into provider.log for its whole life; each line is an
        // event on which readiness is checked (the socket is bound before "serving" is logged).
        std::thread::spawn(move || {
            let mut log = std::io::BufWriter::new(log);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                let _ = lines_tx.send(());
            }
            let _ = log.flush();
        });
        let mut provider = Provider { child, dir, socket };
        provider.wait_ready(&lines_rx)?;
        Ok(provider)
    }

    fn wait_ready(&mut self, lines: &mpsc::Receiver<()>) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if std::fs::metadata(&self.socket).is_ok_and(|m| m.file_type().is_socket()) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(()) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("no socket after {READY_TIMEOUT:?}:\n{}", self.logs()));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!("the provider exited before serving ({status}):\n{}", self.logs()));
                }
            }
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `<kubelet>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount`, created as kubelet does.
    pub fn target(&self, pod_uid: &str, volume: &str) -> PathBuf {
        let target = self
            .dir
            .path()
            .join("kubelet/pods")
            .join(pod_uid)
            .join("volumes/kubernetes.io~csi")
            .join(volume)
            .join("mount");
        std::fs::create_dir_all(&target).unwrap_or_else(|e| panic!("create {}: {e}", target.display()));
        target
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(&format!("{field}:")))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_of_pid(pid: u32) -> Option<Duration> {
    cpu_of(&format!("/proc/{pid}/stat"))
}

/// CPU time (user + system) of this process so far.
pub fn own_cpu() -> Option<Duration> {
    cpu_of("/proc/self/stat")
}

/// `utime + stime` of a `/proc/<pid>/stat` file.
#[allow(unsafe_code)] // sysconf: no safe wrapper among our dependencies
fn cpu_of(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command (which may contain spaces) start at field 3 (state).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|&t| t > 0)?;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
}
