//! A fault switch ([`Switch`]): a TCP relay on a fixed 127.0.0.1 port in front of a real
//! service (moto, the Kubernetes API stand-in, the Pod Identity agent stand-in). The test flips
//! it between three states:
//!
//! - [`Switch::up`]: connections are relayed to the service;
//! - [`Switch::down`]: nothing listens on the port (connecting is refused) and every open relay
//!   is cut, so pooled keep-alive connections die too;
//! - [`Switch::stall`]: connections are accepted and held open, but nothing is relayed or
//!   answered (a service that answers later than any deadline).
//!
//! Every change cuts the connections opened before it. The port stays the same across changes,
//! so the URL given to the provider stays valid.
//!
//! ```ignore
//! let switch = Switch::start(&moto.url());
//! let provider = Provider::builder(&switch.url()).arg("--local-credentials").start();
//! switch.down(); // the next read is refused
//! switch.up();   // and this one goes through again
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use super::stand_in;

/// How long [`Switch::down`] and [`Switch::up`] wait for the port to change state.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the switch does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Up,
    Stalled,
    Down,
}

struct Inner {
    state: State,
    /// The accept loop while the port is open.
    listener: Option<AbortHandle>,
    /// Relays and held connections opened since the last change.
    connections: Vec<AbortHandle>,
    /// Connections accepted so far, in any state.
    accepted: usize,
    /// Connections accepted while stalled and not yet closed by the client.
    held: usize,
    /// Bumped by every change, so a connection of an earlier state never counts in this one.
    epoch: u64,
}

/// The relay; closes its port and every connection when dropped.
pub struct Switch {
    port: u16,
    upstream: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Switch {
    /// Relays 127.0.0.1:<a free port> to `upstream` (`http://host:port[/...]` or `host:port`).
    pub fn start(upstream: &str) -> Switch {
        let upstream = upstream_addr(upstream);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let inner = Inner { state: State::Up, listener: None, connections: Vec::new(), accepted: 0, held: 0, epoch: 0 };
        let switch = Switch { port, upstream, inner: Arc::new(Mutex::new(inner)) };
        switch.serve(listener);
        switch
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`, as error messages name it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Connections accepted so far (relayed or held).
    pub fn accepted(&self) -> usize {
        self.lock().accepted
    }

    /// Connections held by [`Switch::stall`] that the client has not closed yet: a client that
    /// gives up on its request (a deadline) closes its connection and this count drops.
    pub fn held(&self) -> usize {
        self.lock().held
    }

    /// Relays again (reopening the port if it was down); earlier connections are cut.
    pub fn up(&self) {
        self.change(State::Up);
    }

    /// Accepts and holds connections without relaying; earlier connections are cut.
    pub fn stall(&self) {
        self.change(State::Stalled);
    }

    /// Closes the port (connecting is refused) and cuts every connection. Returns once a
    /// connection attempt is refused.
    pub fn down(&self) {
        let (listener, connections) = {
            let mut inner = self.lock();
            inner.state = State::Down;
            inner.held = 0;
            inner.epoch += 1;
            (inner.listener.take(), std::mem::take(&mut inner.connections))
        };
        connections.iter().for_each(AbortHandle::abort);
        if let Some(listener) = listener {
            listener.abort();
        }
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "port {} still accepts after {SETTLE_TIMEOUT:?}", self.port);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn change(&self, state: State) {
        let (reopen, connections) = {
            let mut inner = self.lock();
            let reopen = inner.listener.is_none();
            inner.state = state;
            inner.held = 0;
            inner.epoch += 1;
            (reopen, std::mem::take(&mut inner.connections))
        };
        connections.iter().for_each(AbortHandle::abort);
        if reopen {
            self.serve(rebind(self.port));
        }
    }

    /// Runs the accept loop on `listener`; the port closes when the loop is aborted.
    fn serve(&self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking listener");
        let (inner, upstream) = (self.inner.clone(), self.upstream);
        let task = stand_in::runtime().spawn(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let mut guard = inner.lock().unwrap_or_else(|e| e.into_inner());
                guard.accepted += 1;
                guard.connections.retain(|c| !c.is_finished());
                let handle = match guard.state {
                    State::Up => tokio::spawn(relay(stream, upstream)).abort_handle(),
                    State::Stalled => {
                        guard.held += 1;
                        tokio::spawn(hold(stream, inner.clone(), guard.epoch)).abort_handle()
                    }
                    State::Down => continue,
                };
                guard.connections.push(handle);
            }
        });
        self.lock().listener = Some(task.abort_handle());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let mut inner = self.lock();
        if let Some(listener) = inner.listener.take() {
            listener.abort();
        }
        inner.connections.drain(..).for_each(|c| c.abort());
    }
}

async fn relay(mut inbound: TcpStream, upstream: SocketAddr) {
    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    }
}

/// Keeps the connection open and answers nothing; what the client sends is read and dropped.
/// When the client closes it, it no longer counts as held.
async fn hold(mut stream: TcpStream, inner: Arc<Mutex<Inner>>, epoch: u64) {
    let mut buf = [0u8; 4096];
    while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    if inner.epoch == epoch {
        inner.held = inner.held.saturating_sub(1);
    }
}

/// Binds `port` again (the port was closed a moment ago; std sets `SO_REUSEADDR`). Another
/// process taking a just-closed port is unlikely but possible: a few tries, then a clear failure.
fn rebind(port: u16) -> std::net::TcpListener {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => return listener,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot reopen 127.0.0.1:{port}: {e}"),
        }
    }
}

fn upstream_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.parse().unwrap_or_else(|e| panic!("upstream {url:?} is not http://IP:PORT: {e}"))
}
