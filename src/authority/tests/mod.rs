//! Tests of the frame transformer; `io.rs` covers the async adapter and a real tonic server.

mod blocks;
mod io;
mod robustness;

use fluke_hpack::{Decoder, Encoder};

use super::FrameRewriter;
use super::hpack::{check_structure, decode_int, encode_int, is_authority_shaped};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DRIVER_SOCKET: &str = "/var/run/secrets-store-csi-providers/aws.sock";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

type HeaderList = Vec<(String, String)>;

/// A frame as parsed back out of the rewriter's output.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Parses complete frames; panics on a truncated one.
pub(super) fn parse_frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let stream = u32::from_be_bytes(bytes[5..9].try_into().unwrap()) & 0x7fff_ffff;
        let payload = bytes[9..9 + len].to_vec();
        frames.push(Frame { kind: bytes[3], flags: bytes[4], stream, payload });
        bytes = &bytes[9 + len..];
    }
    frames
}

pub(super) fn request(authority: &str) -> HeaderList {
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/v1alpha1.CSIDriverProvider/Mount"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("user-agent", "grpc-go/1.65.0"),
        ("te", "trailers"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

pub(super) fn encode(encoder: &mut Encoder<'_>, headers: &HeaderList) -> Vec<u8> {
    encoder.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_int(s.len(), 7, &mut out);
    out.extend_from_slice(s);
    out
}

/// Literal with incremental indexing, name from the table at `name_index`.
fn literal_indexed_name(name_index: usize, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_int(name_index, 6, &mut out);
    out[0] |= 0x40;
    out.extend(string(value.as_bytes()));
    out
}

fn indexed(index: usize) -> Vec<u8> {
    let mut out = Vec::new();
    encode_int(index, 7, &mut out);
    out[0] |= 0x80;
    out
}

pub(super) fn rewrite(input: &[u8]) -> Vec<u8> {
    let mut rw = FrameRewriter::new();
    let mut out = Vec::new();
    rw.feed(input, &mut out);
    rw.finish(&mut out);
    out
}

fn rewrite_in_chunks(input: &[u8], sizes: impl Iterator<Item = usize>) -> Vec<u8> {
    let (mut rw, mut out, mut rest) = (FrameRewriter::new(), Vec::new(), input);
    for size in sizes {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rw.feed(chunk, &mut out);
        rest = tail;
    }
    assert!(rest.is_empty());
    rw.finish(&mut out);
    out
}

/// Asserts the block has literal-without-indexing representations only.
fn assert_literal_only(mut block: &[u8]) {
    while !block.is_empty() {
        assert_eq!(block[0], 0x00, "not a literal without indexing: {block:02x?}");
        block = &block[1..];
        for _ in 0..2 {
            let (len, used) = decode_int(block, 7).expect("string length");
            block = &block[used + len..];
        }
    }
}

/// A decoded header block from the rewriter's output.
#[derive(Debug)]
pub(super) struct Block {
    pub stream: u32,
    pub flags: u8,
    pub priority: Option<Vec<u8>>,
    pub headers: HeaderList,
}

/// Decodes every header block of the output (after the preface) with one fresh decoder,
/// checking the blocks use literals only and that frame flags and sizes are valid.
pub(super) fn decode_output(output: &[u8]) -> Vec<Block> {
    assert_eq!(&output[..24], PREFACE);
    let (mut decoder, mut blocks, mut open) = (Decoder::new(), Vec::new(), None::<(Block, Vec<u8>)>);
    for f in parse_frames(&output[24..]) {
        assert!(f.payload.len() <= 16_384, "frame over the default max frame size");
        match f.kind {
            HEADERS => {
                assert!(open.is_none() && f.flags & PADDED == 0);
                let priority = (f.flags & PRIORITY != 0).then(|| f.payload[..5].to_vec());
                let skip = priority.as_ref().map_or(0, Vec::len);
                let (stream, flags, headers) = (f.stream, f.flags, vec![]);
                let block = Block { stream, flags, priority, headers };
                open = Some((block, f.payload[skip..].to_vec()));
            }
            CONTINUATION => {
                let (block, fragment) = open.as_mut().expect("continuation without headers");
                assert_eq!(f.stream, block.stream);
                assert_eq!(f.flags & !END_HEADERS, 0);
                fragment.extend_from_slice(&f.payload);
            }
            _ => continue,
        }
        if f.flags & END_HEADERS != 0 {
            let (mut block, fragment) = open.take().unwrap();
            assert_literal_only(&fragment);
            block.headers = decoder
                .decode(&fragment)
                .expect("output decodes")
                .into_iter()
                .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                .collect();
            blocks.push(block);
        }
    }
    assert!(open.is_none(), "unterminated header block");
    blocks
}

fn settings() -> Vec<u8> {
    frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])
}

fn with_preface(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    parts.iter().for_each(|p| out.extend_from_slice(p));
    out
}

fn mixed_input() -> Vec<u8> {
    let mut enc = Encoder::new();
    let first = encode(&mut enc, &request(DRIVER_SOCKET));
    let second = encode(&mut enc, &request(DRIVER_SOCKET));
    let (a, b) = first.split_at(first.len() / 2);
    let padded = [&[3u8][..], &[0, 0, 0, 1, 16], &second, &[0; 3]].concat();
    with_preface(&[
        settings(),
        frame(WINDOW_UPDATE, 0, 0, &[0, 0x0f, 0, 1]),
        frame(HEADERS, 0, 1, a),
        frame(CONTINUATION, END_HEADERS, 1, b),
        frame(DATA, 0, 1, &[0x5a; 16_000]),
        frame(DATA, END_STREAM, 1, &[]),
        frame(HEADERS, PADDED | PRIORITY | END_HEADERS | END_STREAM, 3, &padded),
        frame(SETTINGS, 1, 0, &[]),
    ])
}
