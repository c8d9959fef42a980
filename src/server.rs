//! The socket's lifecycle: replace a stale socket, bind owner-only, serve, and on SIGTERM or
//! SIGINT unlink the socket (new connections are refused), let in-flight mounts finish within
//! the grace period (a second signal aborts), exit cleanly; a drain cut short exits non-zero.

use crate::admin::Readiness;
use crate::authority::AuthorityFix;
use crate::connections;
use crate::pb::csi_driver_provider_server::CsiDriverProviderServer;
use crate::service::ProviderService;
use futures::TryStreamExt;
use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create the socket directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    #[error(
        "the socket directory {path} is writable by group or others (mode {mode:04o}) without the sticky bit: another user could replace the socket; make it owner-writable only (chmod go-w) or sticky"
    )]
    UnsafeDirectory { path: PathBuf, mode: u32 },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("another provider is already serving on {path}")]
    InUse { path: PathBuf },
    #[error("cannot bind {path}: {source}")]
    Bind { path: PathBuf, source: std::io::Error },
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("{0}")]
    Admin(String),
    #[error("proxy settings: {0}")]
    Network(#[from] crate::net::ProxyError),
    /// The drain did not finish: in-flight mounts were abandoned (the process exits non-zero).
    #[error("shutdown: {0}")]
    Abandoned(&'static str),
}

/// A bound, owner-only provider socket.
#[derive(Debug)]
pub struct Socket {
    path: PathBuf,
    listener: UnixListener,
}

impl Socket {
    /// Binds `<dir>/<name>.sock`, replacing a stale socket. The socket is bound inside a fresh
    /// owner-only (0700) directory made next to it, made owner-only itself, then renamed into
    /// place: from the moment it exists nobody else can connect to it. (On Linux a `fchmod` of a
    /// socket descriptor does not change the file's mode, so binding in place would leave a
    /// window with the umask's mode.) A directory that others may write to is refused unless it
    /// is sticky: they could replace the socket.
    pub fn bind(dir: &Path, name: &str) -> Result<Socket, ServerError> {
        std::fs::create_dir_all(dir).map_err(|source| ServerError::Directory { path: dir.to_path_buf(), source })?;
        check_directory(dir)?;
        let path = dir.join(format!("{name}.sock"));
        remove_stale(&path)?;
        let bind_err = |source| ServerError::Bind { path: path.clone(), source };
        let private = dir.join(format!(".{name}.sock.{}.d", std::process::id()));
        let _ = std::fs::remove_dir_all(&private);
        std::fs::DirBuilder::new().mode(0o700).create(&private).map_err(bind_err)?;
        let temp = private.join("s");
        let bound = bind_private(&temp, &path);
        let _ = std::fs::remove_file(&temp);
        let _ = std::fs::remove_dir(&private);
        Ok(Socket { listener: bound.map_err(bind_err)?, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` resolves, then drains for at most `grace` (or until `abort`). A
    /// drain cut short (grace over, or `abort`) is an error: mounts were abandoned.
    pub async fn serve(
        self,
        service: ProviderService,
        shutdown: impl Future<Output = ()>,
        abort: impl Future<Output = ()>,
        grace: Duration,
        max_connections: usize,
        ready: Arc<Readiness>,
    ) -> Result<(), ServerError> {
        let Socket { path, listener } = self;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let incoming = connections::bounded(listener, max_connections).map_ok(AuthorityFix::new);
        let server = tonic::transport::Server::builder()
            .add_service(CsiDriverProviderServer::new(service))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            });
        tokio::pin!(server);
        ready.set_socket(true);
        tokio::select! {
            result = &mut server => return finish(&path, result),
            () = shutdown => {}
        }
        tracing::info!(grace = ?grace, "shutting down: no new connections, letting in-flight mounts finish");
        ready.set_socket(false);
        let _ = std::fs::remove_file(&path);
        let _ = stop_tx.send(());
        tokio::select! {
            result = &mut server => finish(&path, result),
            () = tokio::time::sleep(grace) => {
                tracing::warn!("grace period over; abandoning in-flight mounts");
                Err(ServerError::Abandoned("the grace period ran out with mounts in flight"))
            }
            () = abort => {
                tracing::warn!("second signal; aborting in-flight mounts");
                Err(ServerError::Abandoned("a second signal aborted the mounts in flight"))
            }
        }
    }
}

/// Binds `temp` (inside the private directory), makes it owner-only and moves it to `path`.
fn bind_private(temp: &Path, path: &Path) -> std::io::Result<UnixListener> {
    let listener = UnixListener::bind(temp)?;
    std::fs::set_permissions(temp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(temp, path)?;
    Ok(listener)
}

/// Refuses a socket directory writable by group or others unless it has the sticky bit.
fn check_directory(dir: &Path) -> Result<(), ServerError> {
    let meta = std::fs::metadata(dir).map_err(|source| ServerError::Directory { path: dir.to_path_buf(), source })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(ServerError::UnsafeDirectory { path: dir.to_path_buf(), mode });
    }
    Ok(())
}

fn finish(path: &Path, result: Result<(), tonic::transport::Error>) -> Result<(), ServerError> {
    let _ = std::fs::remove_file(path);
    result.map_err(ServerError::from)
}

/// Removes a socket left by a previous run; refuses a live socket or a non-socket file.
fn remove_stale(path: &Path) -> Result<(), ServerError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket { path: path.to_path_buf() });
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ServerError::InUse { path: path.to_path_buf() });
    }
    tracing::info!(socket = %path.display(), "removing a stale socket");
    std::fs::remove_file(path).map_err(|source| ServerError::Bind { path: path.to_path_buf(), source })
}

/// The first and the second SIGTERM or SIGINT (counted together) from this call on: the
/// handlers are installed now, so a signal is counted even before either future is polled (the
/// second one is only polled once the first has resolved).
pub fn signals() -> (impl Future<Output = ()>, impl Future<Output = ()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (count, counted) = tokio::sync::watch::channel(0usize);
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::spawn(async move {
                loop {
                    let received = tokio::select! {
                        s = term.recv() => s,
                        s = int.recv() => s,
                    };
                    if received.is_none() {
                        return;
                    }
                    count.send_modify(|n| *n += 1);
                }
            });
        }
        _ => tracing::error!("cannot install signal handlers"),
    }
    let nth = |n: usize| {
        let mut counted = counted.clone();
        async move {
            if counted.wait_for(|c| *c >= n).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    (nth(1), nth(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_owner_only_and_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stale = std::os::unix::net::UnixListener::bind(dir.path().join("aws.sock")).expect("bind");
        drop(stale);
        let socket = Socket::bind(dir.path(), "aws").expect("replaces the stale socket");
        let mode = std::fs::metadata(socket.path()).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(Socket::bind(dir.path(), "aws"), Err(ServerError::InUse { .. })));
        std::fs::write(dir.path().join("x.sock"), b"").expect("write");
        assert!(matches!(Socket::bind(dir.path(), "x"), Err(ServerError::NotASocket { .. })));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 2, "only aws.sock and x.sock: no private directory left behind: {leftovers:?}");
    }

    /// Regression (issue #11): a socket directory others may write to let them replace the
    /// socket; it is refused unless sticky (as /tmp is).
    #[tokio::test]
    async fn a_directory_others_may_write_is_refused_unless_sticky() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (mode, refused) in
            [(0o777, true), (0o775, true), (0o757, true), (0o1777, false), (0o755, false), (0o700, false)]
        {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
            let result = Socket::bind(dir.path(), "aws");
            assert_eq!(matches!(result, Err(ServerError::UnsafeDirectory { .. })), refused, "{mode:o}");
            if let Ok(socket) = result {
                let socket_mode = std::fs::metadata(socket.path()).expect("stat").permissions().mode() & 0o777;
                assert_eq!(socket_mode, 0o600, "{mode:o}");
                let _ = std::fs::remove_file(socket.path());
            }
        }
        let message = check_directory(Path::new("/nonexistent-dir-for-test")).map_err(|e| e.to_string());
        assert!(message.is_err());
    }
}
