//! The socket server over the real wire: driver v1.5's path-shaped `:authority`, graceful
//! shutdown with a mount in flight, and a drain cut short (a second signal, the grace period
//! running out) exiting non-zero.

use crate::support::{Moto, Provider, attrs, mount_request};
use csi_provider_aws::pb::MountResponse;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Encodes an HPACK string literal (no Huffman), with a 7-bit prefixed length.
fn hpack_string(out: &mut Vec<u8>, s: &str) {
    let len = s.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        let mut rest = len - 127;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }
    out.extend_from_slice(s.as_bytes());
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The bytes of one gRPC `Version` call with the given `:authority`, as a raw HTTP/2 client.
fn version_call(authority: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/v1alpha1.CSIDriverProvider/Version"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0x00); // literal without indexing, new name
        hpack_string(&mut block, name);
        hpack_string(&mut block, value);
    }
    let message = [&[0x0a, 8][..], b"v1alpha1"].concat(); // VersionRequest{version: "v1alpha1"}
    let mut grpc = vec![0u8];
    grpc.extend_from_slice(&(message.len() as u32).to_be_bytes());
    grpc.extend_from_slice(&message);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    out.extend(frame(0x1, 0x4, 1, &block)); // HEADERS, END_HEADERS
    out.extend(frame(0x0, 0x1, 1, &grpc)); // DATA, END_STREAM
    out
}

/// Reads frames until stream 1 ends; returns (DATA payload, trailers decoded, reset seen).
fn read_answer(stream: &mut UnixStream) -> (Vec<u8>, Vec<(String, String)>, bool) {
    let mut decoder = fluke_hpack::Decoder::new();
    let (mut data, mut headers) = (Vec::new(), Vec::new());
    loop {
        let mut head = [0u8; 9];
        if stream.read_exact(&mut head).is_err() {
            return (data, headers, true);
        }
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).expect("frame payload");
        let (kind, flags) = (head[3], head[4]);
        match kind {
            0x0 => data.extend_from_slice(&payload),
            0x1 => {
                let decoded = decoder.decode(&payload).expect("server headers decode");
                headers.extend(
                    decoded
                        .into_iter()
                        .map(|(k, v)| (String::from_utf8_lossy(&k).into(), String::from_utf8_lossy(&v).into())),
                );
            }
            0x3 | 0x7 => return (data, headers, true), // RST_STREAM, GOAWAY
            _ => {}
        }
        if flags & 0x1 != 0 && (kind == 0x1 || kind == 0x0) && headers.iter().any(|(k, _)| k == "grpc-status") {
            return (data, headers, false);
        }
    }
}

fn call_version_raw(provider: &Provider, authority: &str) -> (Vec<u8>, Vec<(String, String)>, bool) {
    let mut stream = UnixStream::connect(provider.socket()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(&version_call(authority)).expect("send");
    read_answer(&mut stream)
}

#[test]
fn both_driver_generations_authorities_are_served() {
    let Some(moto) = Moto::start() else { return };
    let provider = Provider::start(&moto.url(), &["--local-credentials"]);
    let path = provider.socket().display().to_string();
    for authority in ["localhost", path.as_str(), "%2Fvar%2Frun%2Fsecrets-store-csi-providers%2Faws.sock"] {
        let (data, trailers, reset) = call_version_raw(&provider, authority);
        assert!(!reset, "{authority}: the stream was reset");
        assert!(trailers.contains(&("grpc-status".into(), "0".into())), "{authority}: {trailers:?}");
        assert!(data.windows(16).any(|w| w == b"csi-provider-aws"), "{authority}: VersionResponse carries our name");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_mount_finish_refuses_new_ones_and_removes_the_socket() {
    let Some(moto) = Moto::start() else { return };
    moto.sm("us-west-2").create_secret().name("slow").secret_string("v").send().await.expect("seed");
    let proxy =
        crate::support::slow_proxy(moto.url().trim_start_matches("http://").to_string(), Duration::from_millis(1500))
            .await;
    let endpoint = format!("secretsmanager={proxy}");
    let mut provider = Provider::start(
        &moto.url(),
        &["--local-credentials", "--shutdown-grace-period", "20s", "--endpoint", &endpoint],
    );
    let target = provider.target("slow");
    let mut client = provider.client().await;
    let request = mount_request(&attrs("pod-slow", "- {objectName: slow, objectType: secretsmanager}\n", &[]), &target);
    let in_flight = tokio::spawn(async move { client.mount(request).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    provider.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!provider.socket().exists(), "the socket is removed at once");
    assert!(UnixStream::connect(provider.socket()).is_err(), "new connections are refused");
    let started = Instant::now();
    let result = in_flight.await.expect("join");
    assert!(result.is_ok(), "the in-flight mount finished: {result:?}");
    let status = provider.wait_exit(Duration::from_secs(15)).expect("the provider exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(std::fs::read_to_string(target.join("slow")).expect("file"), "v");
}

/// A slow in-flight mount, and the provider given `grace` to drain.
async fn provider_with_a_slow_mount(
    moto: &Moto,
    grace: &str,
) -> (Provider, tokio::task::JoinHandle<Result<tonic::Response<MountResponse>, tonic::Status>>) {
    moto.sm("us-west-2").create_secret().name("slow").secret_string("v").send().await.expect("seed");
    let proxy =
        crate::support::slow_proxy(moto.url().trim_start_matches("http://").to_string(), Duration::from_secs(5)).await;
    let endpoint = format!("secretsmanager={proxy}");
    let provider = Provider::start(
        &moto.url(),
        &["--local-credentials", "--shutdown-grace-period", grace, "--endpoint", &endpoint],
    );
    let target = provider.target("slow");
    let mut client = provider.client().await;
    let request = mount_request(&attrs("pod-slow", "- {objectName: slow, objectType: secretsmanager}\n", &[]), &target);
    let in_flight = tokio::spawn(async move { client.mount(request).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    (provider, in_flight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_aborts_the_in_flight_mount_and_exits_non_zero() {
    let Some(moto) = Moto::start() else { return };
    let (mut provider, in_flight) = provider_with_a_slow_mount(&moto, "20s").await;
    provider.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    provider.terminate();
    let status = provider.wait_exit(Duration::from_secs(3)).expect("the provider exits at the second signal");
    assert!(!status.success(), "mounts were abandoned: exit status {status:?}\n{}", provider.logs());
    assert!(in_flight.await.expect("join").is_err(), "the in-flight mount did not complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_period_that_runs_out_exits_non_zero() {
    let Some(moto) = Moto::start() else { return };
    let (mut provider, in_flight) = provider_with_a_slow_mount(&moto, "300ms").await;
    provider.terminate();
    let status = provider.wait_exit(Duration::from_secs(3)).expect("the provider exits when the grace period ends");
    assert!(!status.success(), "mounts were abandoned: exit status {status:?}\n{}", provider.logs());
    assert!(in_flight.await.expect("join").is_err(), "the in-flight mount did not complete");
}
