//! A recording HTTP proxy on 127.0.0.1 ([`TestProxy`]): `CONNECT` tunnels (https endpoints) and
//! absolute-form forwarding (plain http endpoints, whose request headers it can see, such as
//! the user agent). Give its URL as `HTTPS_PROXY` / `HTTP_PROXY`. [`TestProxy::hold`] keeps
//! forwarded requests waiting until [`TestProxy::release`], so a test can make reads overlap.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::stand_in;

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    pub method: String,
    /// `host:port` for `CONNECT`, else the absolute URI.
    pub target: String,
    /// The `user-agent` header (absolute-form requests only: a tunnel's are encrypted).
    pub user_agent: Option<String>,
    /// The `x-amz-target` header (absolute-form requests only).
    pub amz_target: Option<String>,
}

#[derive(Default)]
struct State {
    requests: Vec<ProxyRequest>,
    waiting: usize,
}

type Body = BoxBody<Bytes, hyper::Error>;

/// The proxy; stops accepting when dropped.
pub struct TestProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    state: Arc<Mutex<State>>,
    gate: watch::Sender<bool>,
}

impl TestProxy {
    pub fn start() -> TestProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let state: Arc<Mutex<State>> = Arc::default();
        let (gate, open) = watch::channel(true);
        let client = {
            let _guard = stand_in::runtime().enter();
            Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
        };
        let shared = state.clone();
        let task = stand_in::runtime().spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (state, open, client) = (shared.clone(), open.clone(), client.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| handle(req, state.clone(), open.clone(), client.clone()));
                    let conn =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    let _ = conn.with_upgrades().await;
                });
            }
        });
        TestProxy { addr, task, state, gate }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.lock().requests.clone()
    }

    /// Forwarded (non-`CONNECT`) requests wait from now on.
    pub fn hold(&self) {
        let _ = self.gate.send(false);
    }

    /// Lets waiting and later requests through.
    pub fn release(&self) {
        let _ = self.gate.send(true);
    }

    /// Requests waiting at the gate now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        let _ = self.gate.send(true);
        self.task.abort();
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    mut open: watch::Receiver<bool>,
    client: Client<HttpConnector, Full<Bytes>>,
) -> Result<Response<Body>, Infallible> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
    let record = ProxyRequest {
        method: req.method().to_string(),
        target: req.uri().to_string(),
        user_agent: header("user-agent"),
        amz_target: header("x-amz-target"),
    };
    state.lock().unwrap_or_else(|e| e.into_inner()).requests.push(record);
    if req.method() == Method::CONNECT {
        return Ok(tunnel(req));
    }
    state.lock().unwrap_or_else(|e| e.into_inner()).waiting += 1;
    let _ = open.wait_for(|open| *open).await;
    state.lock().unwrap_or_else(|e| e.into_inner()).waiting -= 1;
    Ok(forward(req, &client).await)
}

/// Answers 200 and relays the upgraded connection to the `CONNECT` target.
fn tunnel(req: Request<Incoming>) -> Response<Body> {
    let Some(authority) = req.uri().authority().map(|a| a.to_string()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else { return };
        let Ok(mut upstream) = TcpStream::connect(authority).await else { return };
        let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await;
    });
    Response::new(Empty::new().map_err(|never| match never {}).boxed())
}

async fn forward(req: Request<Incoming>, client: &Client<HttpConnector, Full<Bytes>>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else { return status(StatusCode::BAD_REQUEST) };
    parts.headers.remove("proxy-connection");
    parts.headers.remove("proxy-authorization");
    match client.request(Request::from_parts(parts, Full::new(body))).await {
        Ok(resp) => resp.map(|b| b.boxed()),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *resp.status_mut() = code;
    resp
}
