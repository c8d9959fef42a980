//! The admin HTTP server on `--metrics-addr`: `/metrics` (Prometheus text), `/healthz` (the
//! process is alive), `/readyz` (the socket is bound and serving, and the Kubernetes API and
//! credentials path are initialised).

use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::{AddrParseError, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What readiness waits for.
#[derive(Debug, Default)]
pub struct Readiness {
    socket: AtomicBool,
    backends: AtomicBool,
}

impl Readiness {
    pub fn set_socket(&self, serving: bool) {
        self.socket.store(serving, Ordering::SeqCst);
    }

    pub fn set_backends(&self, ready: bool) {
        self.backends.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.socket.load(Ordering::SeqCst) && self.backends.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on --metrics-addr {addr}: {reason}")]
pub struct AdminError {
    addr: String,
    reason: String,
}

/// The admin server's address (`--metrics-addr`): empty disables the server, port 0 picks a
/// free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<SocketAddr>);

impl FromStr for MetricsAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Ok(MetricsAddr(None));
        }
        s.trim().parse().map(|a| MetricsAddr(Some(a))).map_err(|e: AddrParseError| format!("{s:?}: {e}"))
    }
}

/// Binds `addr`; `None` when the server is disabled.
pub async fn bind(addr: MetricsAddr) -> Result<Option<tokio::net::TcpListener>, AdminError> {
    let Some(addr) = addr.0 else { return Ok(None) };
    let err = |reason: String| AdminError { addr: addr.to_string(), reason };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| err(e.to_string()))?;
    Ok(Some(listener))
}

/// Serves until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, ready: Arc<Readiness>) {
    let router = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, ready });
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "the admin server stopped");
    }
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    state.metrics.ready.set(i64::from(state.ready.is_ready()));
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.ready.is_ready() { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready\n") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_both_the_socket_and_the_backends() {
        let ready = Readiness::default();
        assert!(!ready.is_ready());
        ready.set_backends(true);
        assert!(!ready.is_ready());
        ready.set_socket(true);
        assert!(ready.is_ready());
        ready.set_socket(false);
        assert!(!ready.is_ready(), "draining is not ready");
    }
}
