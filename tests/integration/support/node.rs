//! One node's directories outliving the providers that serve it ([`Node`]): the socket
//! directory and the kubelet pods directory stay while a provider is killed or restarted and a
//! fresh one starts on the same socket, as a DaemonSet pod restart does. Also: SIGKILL
//! ([`Provider::sigkill`]), the admin server's metrics ([`Provider::scrape_metric`]), and a target's
//! `..data` layout read back ([`SetView`]).
//!
//! ```ignore
//! let node = Node::new();
//! let mut first = Provider::builder(&moto.url()).arg("--local-credentials").start_on(&node);
//! let target = node.target("pod-uid");
//! // ... mount ...
//! first.sigkill();
//! let second = Provider::builder(&moto.url()).arg("--local-credentials").start_on(&node);
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Provider, ProviderBuilder};

/// A node's socket directory and kubelet root.
pub struct Node {
    dir: TempDir,
}

impl Default for Node {
    fn default() -> Self {
        Node::new()
    }
}

impl Node {
    pub fn new() -> Node {
        let dir = tempfile::Builder::new().prefix("node-").tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("providers")).expect("providers dir");
        std::fs::create_dir_all(dir.path().join("kubelet/pods")).expect("kubelet pods dir");
        Node { dir }
    }

    /// The `--provider-volume` of every provider on this node.
    pub fn providers(&self) -> PathBuf {
        self.dir.path().join("providers")
    }

    /// The `--kubelet-path` of every provider on this node.
    pub fn kubelet(&self) -> PathBuf {
        self.dir.path().join("kubelet")
    }

    /// `<providers>/aws.sock`.
    pub fn socket(&self) -> PathBuf {
        self.providers().join("aws.sock")
    }

    /// Creates `<kubelet>/pods/<pod_uid>/volumes/kubernetes.io~csi/secrets/mount`.
    pub fn target(&self, pod_uid: &str) -> PathBuf {
        let target = self.kubelet().join("pods").join(pod_uid).join("volumes/kubernetes.io~csi/secrets/mount");
        std::fs::create_dir_all(&target).expect("create target dir");
        target
    }
}

impl ProviderBuilder {
    /// Starts the provider on `node`'s socket directory and kubelet root (its log stays in a
    /// temp dir of its own) and waits until its socket accepts connections (a socket left by a
    /// killed provider is there at once, but refuses them).
    pub fn start_on(self, node: &Node) -> Provider {
        let dir = tempfile::Builder::new().prefix("csi-").tempdir().expect("temp dir");
        let mut first = vec!["--provider-volume".to_string(), node.providers().display().to_string()];
        first.extend(["--kubelet-path".to_string(), node.kubelet().display().to_string()]);
        if !super::has_flag(&self.args, "--log-level") {
            first.extend(["--log-level".to_string(), "debug".to_string()]);
        }
        let mut provider = self.spawn(first, dir, node.socket());
        provider.wait_serving();
        provider
    }
}

impl Provider {
    fn wait_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("csi-provider-aws exited before serving ({status}):\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "{} refuses connections after 30 s:\n{}",
                self.socket.display(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn sigkill(&mut self) -> ExitStatus {
        self.child.kill().expect("kill -KILL");
        self.child.wait().expect("wait")
    }

    /// The admin server's address, from the startup log (`--metrics-addr 127.0.0.1:0`).
    pub fn admin_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.logs();
            if let Some(line) = logs.lines().find(|l| l.contains("admin server listening")) {
                let addr = line.split("addr=").nth(1).unwrap_or_default();
                return addr.split_whitespace().next().unwrap_or_default().trim_matches('"').to_string();
            }
            assert!(Instant::now() < deadline, "no admin address in the log:\n{logs}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of one series of `/metrics` (0 when absent), e.g.
    /// `csi_provider_aws_mounts_in_flight`.
    pub fn scrape_metric(&self, series: &str) -> f64 {
        let addr = self.admin_addr();
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect to the admin server");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read /metrics");
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// A target as a pod sees it: where `..data` points, the set behind it, the visible entries,
/// and every other `..` entry (leftovers of interrupted writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetView {
    /// The `..data` link's target (`None`: no `..data`).
    pub data: Option<String>,
    /// The inode of the set directory `..data` points to.
    pub data_inode: Option<u64>,
    /// Every file under the set directory: path → contents (`None` when unreadable as UTF-8).
    pub files: BTreeMap<String, Option<String>>,
    /// Visible entries (names not starting with `..`): name → link target (`None`: not a link).
    pub visible: BTreeMap<String, Option<String>>,
    /// `..` entries other than `..data` and the set it points to.
    pub other: Vec<String>,
}

impl SetView {
    pub fn read(target: &Path) -> SetView {
        let data = std::fs::read_link(target.join("..data")).ok().map(|l| l.display().to_string());
        let set_dir = data.as_ref().map(|d| target.join(d));
        let data_inode = set_dir.as_ref().and_then(|d| std::fs::symlink_metadata(d).ok()).map(|m| m.ino());
        let mut files = BTreeMap::new();
        if let Some(dir) = &set_dir {
            walk(dir, "", &mut files);
        }
        let mut visible = BTreeMap::new();
        let mut other = Vec::new();
        for entry in std::fs::read_dir(target).expect("list the target").flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.starts_with("..") {
                visible.insert(name, std::fs::read_link(entry.path()).ok().map(|l| l.display().to_string()));
            } else if name != "..data" && Some(&name) != data.as_ref() {
                other.push(name);
            }
        }
        other.sort();
        SetView { data, data_inode, files, visible, other }
    }

    /// Whether every visible entry is `name -> ..data/name` and every top-level name of the set
    /// is visible.
    pub fn links_consistent(&self) -> bool {
        let top: std::collections::BTreeSet<&str> =
            self.files.keys().map(|p| p.split('/').next().unwrap_or_default()).collect();
        let links_ok = self.visible.iter().all(|(name, link)| link.as_deref() == Some(&format!("..data/{name}")));
        links_ok && top.iter().all(|name| self.visible.contains_key(*name))
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Option<String>>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), &rel, out);
        } else {
            out.insert(rel, std::fs::read_to_string(entry.path()).ok());
        }
    }
}
