//! The async adapter, and a real tonic server behind it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use fluke_hpack::{Decoder, Encoder};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;
use tonic::transport::server::Connected;

use super::super::AuthorityFix;
use super::{DATA, DRIVER_SOCKET, END_HEADERS, END_STREAM, HEADERS, PREFACE, SETTINGS};
use super::{encode, frame, mixed_input, parse_frames, request, rewrite};

const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;

/// Reads everything through the adapter with a small, odd-sized buffer.
async fn read_all<S: AsyncRead + Unpin>(fix: &mut AuthorityFix<S>) -> Vec<u8> {
    let (mut out, mut buf) = (Vec::new(), [0u8; 13]);
    loop {
        let n = fix.read(&mut buf).await.unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn adapter_matches_transformer() {
    let input = mixed_input();
    for chunk in [1, 7, 4096, input.len()] {
        let (mut client, server) = tokio::io::duplex(64);
        let data = input.clone();
        let writer = tokio::spawn(async move {
            for part in data.chunks(chunk) {
                client.write_all(part).await.unwrap();
            }
        });
        let out = read_all(&mut AuthorityFix::new(server)).await;
        writer.await.unwrap();
        assert_eq!(out, rewrite(&input), "chunk size {chunk}");
    }
}

#[tokio::test]
async fn adapter_with_large_reads() {
    let input = mixed_input();
    let (mut client, server) = tokio::io::duplex(1 << 20);
    client.write_all(&input).await.unwrap();
    drop(client);
    let mut out = Vec::new();
    AuthorityFix::new(server).read_to_end(&mut out).await.unwrap();
    assert_eq!(out, rewrite(&input));
}

#[tokio::test]
async fn writes_pass_through() {
    let (mut client, server) = tokio::io::duplex(1024);
    let mut fix = AuthorityFix::new(server);
    fix.write_all(b"server bytes, untouched").await.unwrap();
    fix.flush().await.unwrap();
    fix.shutdown().await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"server bytes, untouched");
}

#[test]
fn adapter_is_send_and_connected() {
    fn check<T: Send + Sync + Unpin + 'static + AsyncRead + AsyncWrite + Connected>() {}
    check::<AuthorityFix<UnixStream>>();
}

/// A gRPC-ish service recording the request authority and answering with an empty OK.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl NamedService for Recorder {
    const NAME: &'static str = "v1alpha1.CSIDriverProvider";
}

impl tower::Service<Request<Body>> for Recorder {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let authority = req.uri().authority().map(ToString::to_string);
        self.0.lock().unwrap().push(authority.unwrap_or_default());
        let response = Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "0")
            .body(Body::empty())
            .unwrap();
        std::future::ready(Ok(response))
    }
}

fn spawn_server<IO>(io: IO, recorder: Recorder)
where
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
{
    let incoming = futures::stream::iter([Ok::<_, std::io::Error>(io)]).chain(futures::stream::pending());
    let server = tonic::transport::Server::builder().add_service(recorder).serve_with_incoming(incoming);
    tokio::spawn(server);
}

/// Two requests as driver v1.5 sends them (path authority, the second block using the
/// client's dynamic table), then the response status or `reset` per stream.
async fn two_requests(mut client: UnixStream) -> HashMap<u32, String> {
    let mut enc = Encoder::new();
    let mut input = PREFACE.to_vec();
    input.extend(frame(SETTINGS, 0, 0, &[]));
    for stream in [1, 3] {
        let block = encode(&mut enc, &request(DRIVER_SOCKET));
        input.extend(frame(HEADERS, END_HEADERS, stream, &block));
        input.extend(frame(DATA, END_STREAM, stream, &[0, 0, 0, 0, 0]));
    }
    client.write_all(&input).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), outcomes(&mut client)).await.expect("server answered")
}

async fn outcomes(client: &mut UnixStream) -> HashMap<u32, String> {
    let (mut decoder, mut buf, mut results) = (Decoder::new(), Vec::new(), HashMap::new());
    while results.len() < 2 {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed early; got {results:?}");
        buf.extend_from_slice(&chunk[..n]);
        let complete = complete_frames_len(&buf);
        for f in parse_frames(&buf[..complete]) {
            match f.kind {
                HEADERS if !results.contains_key(&f.stream) => {
                    let headers = decoder.decode(&f.payload).unwrap();
                    let status = headers.iter().find(|(n, _)| n == b":status").map(|(_, v)| v.clone());
                    results.insert(f.stream, String::from_utf8(status.unwrap_or_default()).unwrap());
                }
                HEADERS => drop(decoder.decode(&f.payload).unwrap()),
                RST_STREAM => drop(results.insert(f.stream, "reset".to_string())),
                GOAWAY => panic!("GOAWAY: {:02x?}", f.payload),
                _ => {}
            }
        }
        buf.drain(..complete);
    }
    results
}

fn complete_frames_len(buf: &[u8]) -> usize {
    let mut at = 0;
    while buf.len() >= at + 9 {
        let len = usize::from(buf[at]) << 16 | usize::from(buf[at + 1]) << 8 | usize::from(buf[at + 2]);
        if buf.len() < at + 9 + len {
            break;
        }
        at += 9 + len;
    }
    at
}

#[tokio::test]
async fn tonic_server_accepts_path_authority_through_adapter() {
    let (client, server) = UnixStream::pair().unwrap();
    let recorder = Recorder::default();
    spawn_server(AuthorityFix::new(server), recorder.clone());
    let results = two_requests(client).await;
    assert_eq!(results[&1], "200");
    assert_eq!(results[&3], "200");
    assert_eq!(*recorder.0.lock().unwrap(), ["localhost", "localhost"]);
}

/// The control: without the adapter h2 resets both streams, so the test above can fail.
#[tokio::test]
async fn tonic_server_rejects_path_authority_without_adapter() {
    let (client, server) = UnixStream::pair().unwrap();
    let recorder = Recorder::default();
    spawn_server(server, recorder.clone());
    let results = two_requests(client).await;
    assert_eq!(results[&1], "reset");
    assert!(recorder.0.lock().unwrap().is_empty());
}
