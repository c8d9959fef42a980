//! A bare HTTP/2 gRPC client on the provider socket ([`unary`]) that sends exactly the headers it
//! is given and never gives up on its own: a tonic client enforces a `grpc-timeout` it sends
//! (it cancels the stream at the deadline), so only a client like this one shows whether the
//! provider itself answers at the deadline.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// What came back on stream 1.
#[derive(Debug, Default)]
pub struct RawAnswer {
    /// DATA payloads, concatenated.
    pub data: Vec<u8>,
    /// Response headers and trailers, decoded, in order.
    pub headers: Vec<(String, String)>,
    /// The stream or the connection was reset or closed before the trailers.
    pub reset: bool,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `grpc-status`.
    pub fn status(&self) -> Option<&str> {
        self.header("grpc-status")
    }
}

/// Calls `path` (`/v1alpha1.CSIDriverProvider/Mount`) with one protobuf `message` and the
/// `extra` headers (e.g. `grpc-timeout: 1500m`), as driver v1.6 would (`:authority` localhost);
/// reads until the trailers or a reset, for at most `wait`.
pub fn unary(socket: &Path, path: &str, message: &[u8], extra: &[(&str, &str)], wait: Duration) -> RawAnswer {
    let mut stream = UnixStream::connect(socket).expect("connect to the provider socket");
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    let mut headers: Vec<(&[u8], &[u8])> = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    .iter()
    .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
    .collect();
    headers.extend(extra.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    let block = fluke_hpack::Encoder::new().encode(headers);
    let mut grpc = vec![0u8];
    grpc.extend_from_slice(&u32::try_from(message.len()).expect("small message").to_be_bytes());
    grpc.extend_from_slice(message);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    out.extend(frame(0x1, 0x4, 1, &block)); // HEADERS, END_HEADERS
    out.extend(frame(0x0, 0x1, 1, &grpc)); // DATA, END_STREAM
    stream.write_all(&out).expect("send the call");
    read_answer(&mut stream)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small frame");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads frames until stream 1 ends (acknowledging the server's SETTINGS and answering PINGs).
fn read_answer(stream: &mut UnixStream) -> RawAnswer {
    let mut decoder = fluke_hpack::Decoder::new();
    let mut answer = RawAnswer::default();
    loop {
        let mut head = [0u8; 9];
        if stream.read_exact(&mut head).is_err() {
            answer.reset = true;
            return answer;
        }
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).is_err() {
            answer.reset = true;
            return answer;
        }
        let (kind, flags) = (head[3], head[4]);
        match kind {
            0x0 => answer.data.extend_from_slice(&payload),
            0x1 => {
                let decoded = decoder.decode(&payload).expect("server headers decode");
                answer.headers.extend(
                    decoded
                        .into_iter()
                        .map(|(k, v)| (String::from_utf8_lossy(&k).into(), String::from_utf8_lossy(&v).into())),
                );
            }
            0x3 | 0x7 => {
                answer.reset = true; // RST_STREAM, GOAWAY
                return answer;
            }
            0x4 if flags & 0x1 == 0 => stream.write_all(&frame(0x4, 0x1, 0, &[])).expect("SETTINGS ack"),
            0x6 if flags & 0x1 == 0 => stream.write_all(&frame(0x6, 0x1, 0, &payload)).expect("PING ack"),
            _ => {}
        }
        if flags & 0x1 != 0 && (kind == 0x1 || kind == 0x0) && answer.status().is_some() {
            return answer;
        }
    }
}
