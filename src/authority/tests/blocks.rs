//! Header blocks: what comes out for well-formed input.

use super::*;

#[test]
fn path_authority_becomes_localhost() {
    let mut enc = Encoder::new();
    let block = encode(&mut enc, &request(DRIVER_SOCKET));
    let out = rewrite(&with_preface(&[settings(), frame(HEADERS, END_HEADERS, 1, &block)]));
    let blocks = decode_output(&out);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].headers, request("localhost"));
    assert_eq!((blocks[0].stream, blocks[0].flags), (1, END_HEADERS));
    assert_eq!(&out[24..24 + 15], &settings()[..]);
}

#[test]
fn valid_authorities_are_kept() {
    for authority in ["localhost", "example.com:443", "[::1]:50051", "10.0.0.1"] {
        let block = encode(&mut Encoder::new(), &request(authority));
        let input = with_preface(&[frame(HEADERS, END_HEADERS | END_STREAM, 3, &block)]);
        assert_eq!(rewrite(&input), input, "{authority}");
    }
}

#[test]
fn dynamic_table_across_requests() {
    let mut enc = Encoder::new();
    let first = encode(&mut enc, &request(DRIVER_SOCKET));
    let second = encode(&mut enc, &request(DRIVER_SOCKET));
    assert!(second.contains(&0xbe), "second block should use the dynamic table: {second:02x?}");
    let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &first), frame(HEADERS, END_HEADERS, 3, &second)]);
    let blocks = decode_output(&rewrite(&input));
    assert_eq!(blocks[0].headers, request("localhost"));
    assert_eq!(blocks[1].headers, request("localhost"));
}

#[test]
fn rfc7541_huffman_requests_with_dynamic_table() {
    // RFC 7541 C.4.1 and C.4.2: Huffman-coded strings, the second block references entry 62.
    // A path authority first (literal without indexing: the table is untouched) so the
    // connection is rewritten.
    let path = [vec![0x01], string(DRIVER_SOCKET.as_bytes())].concat();
    let first = hex("828684418cf1e3c2e5f23a6ba0ab90f4ff");
    let second = hex("828684be5886a8eb10649cbf");
    let ref_authority = indexed(63); // cache-control is 62 now
    let input = with_preface(&[
        frame(HEADERS, END_HEADERS, 7, &path),
        frame(HEADERS, END_HEADERS, 1, &first),
        frame(HEADERS, END_HEADERS, 3, &second),
        frame(HEADERS, END_HEADERS, 5, &ref_authority),
    ]);
    let mut blocks = decode_output(&rewrite(&input));
    assert_eq!(blocks.remove(0).headers, vec![(":authority".to_string(), "localhost".to_string())]);
    let base = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
    let base: HeaderList = base.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    assert_eq!(blocks[0].headers, base);
    let mut with_cache = base.clone();
    with_cache.push(("cache-control".into(), "no-cache".into()));
    assert_eq!(blocks[1].headers, with_cache);
    assert_eq!(blocks[2].headers, vec![(":authority".to_string(), "www.example.com".to_string())]);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn path_authority_from_dynamic_table_is_replaced() {
    let first = [indexed(3), literal_indexed_name(1, DRIVER_SOCKET)].concat();
    let second = [indexed(3), indexed(62)].concat();
    let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &first), frame(HEADERS, END_HEADERS, 3, &second)]);
    let blocks = decode_output(&rewrite(&input));
    for block in blocks {
        assert_eq!(block.headers[1], (":authority".into(), "localhost".into()));
    }
}

#[test]
fn size_updates_are_followed_not_forwarded() {
    let first = [vec![0x20], indexed(3), literal_indexed_name(1, DRIVER_SOCKET)].concat();
    // Table size 0 evicts everything; 4096 again (0x3f 0xe1 0x1f); then a new entry is 62.
    let second = [vec![0x20, 0x3f, 0xe1, 0x1f], literal_indexed_name(1, "b.example"), indexed(62)].concat();
    let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &first), frame(HEADERS, END_HEADERS, 3, &second)]);
    let blocks = decode_output(&rewrite(&input));
    assert_eq!(blocks[0].headers[1].1, "localhost");
    assert_eq!(blocks[1].headers[0].1, "b.example");
    assert_eq!(blocks[1].headers[1].1, "b.example");
}

/// A usable `:authority` in the first block: that block and the rest of the connection pass
/// through byte for byte (dynamic-table references included), whatever later blocks hold.
#[test]
fn usable_first_authority_passes_the_connection_through() {
    let mut enc = Encoder::new();
    let first = encode(&mut enc, &request("localhost"));
    let second = encode(&mut enc, &request("localhost"));
    assert!(second.contains(&0xbe), "second block should use the dynamic table: {second:02x?}");
    let later = encode(&mut enc, &request(DRIVER_SOCKET));
    let input = with_preface(&[
        settings(),
        frame(HEADERS, END_HEADERS, 1, &first),
        frame(DATA, END_STREAM, 1, b"x"),
        frame(HEADERS, END_HEADERS, 3, &second),
        frame(HEADERS, END_HEADERS, 5, &later),
    ]);
    assert_eq!(rewrite(&input), input);
    assert_eq!(rewrite_in_chunks(&input, std::iter::repeat(7)), input);
}

/// A path `:authority` first: every later block is rewritten too, a usable one included, since
/// h2's table no longer follows the client's.
#[test]
fn rewriting_once_rewrites_the_rest_of_the_connection() {
    let mut enc = Encoder::new();
    let first = encode(&mut enc, &request(DRIVER_SOCKET));
    let second = encode(&mut enc, &request("localhost"));
    let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &first), frame(HEADERS, END_HEADERS, 3, &second)]);
    let blocks = decode_output(&rewrite(&input));
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].headers, request("localhost"));
    assert_eq!(blocks[1].headers, request("localhost"));
}

#[test]
fn continuation_frames_are_joined() {
    let block = encode(&mut Encoder::new(), &request(DRIVER_SOCKET));
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(40);
    let input = with_preface(&[
        frame(HEADERS, END_STREAM, 1, a),
        frame(CONTINUATION, 0, 1, b),
        frame(CONTINUATION, 0, 1, &[]),
        frame(CONTINUATION, END_HEADERS, 1, c),
    ]);
    let out = rewrite(&input);
    assert_eq!(parse_frames(&out[24..]).len(), 1);
    let blocks = decode_output(&out);
    assert_eq!(blocks[0].headers, request("localhost"));
    assert_eq!(blocks[0].flags, END_STREAM | END_HEADERS);
}

#[test]
fn large_block_is_split_into_continuations() {
    let mut headers = request(DRIVER_SOCKET);
    headers.push(("x-big".into(), "v".repeat(40_000)));
    let block = encode(&mut Encoder::new(), &headers);
    let parts: Vec<Vec<u8>> = block
        .chunks(16_000)
        .enumerate()
        .map(|(i, chunk)| {
            let last = (i + 1) * 16_000 >= block.len();
            let (kind, flags) = if i == 0 { (HEADERS, PRIORITY) } else { (CONTINUATION, 0) };
            let payload = if i == 0 { [&[0, 0, 0, 0, 15][..], chunk].concat() } else { chunk.to_vec() };
            frame(kind, flags | if last { END_HEADERS } else { 0 }, 7, &payload)
        })
        .collect();
    let out = rewrite(&with_preface(&parts));
    let frames = parse_frames(&out[24..]);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].payload.len(), 16_384);
    assert_eq!(frames[1].payload.len(), 16_384);
    assert_eq!(frames.iter().map(|f| f.kind).collect::<Vec<_>>(), [HEADERS, CONTINUATION, CONTINUATION]);
    let blocks = decode_output(&out);
    assert_eq!(blocks[0].priority.as_deref(), Some(&[0, 0, 0, 0, 15][..]));
    let mut expected = request("localhost");
    expected.push(("x-big".into(), "v".repeat(40_000)));
    assert_eq!(blocks[0].headers, expected);
}

#[test]
fn padded_headers_with_priority() {
    let block = encode(&mut Encoder::new(), &request(DRIVER_SOCKET));
    let priority = [0x80, 0, 0, 3, 200];
    let payload = [&[7u8][..], &priority, &block, &[0; 7]].concat();
    let flags = PADDED | PRIORITY | END_HEADERS | END_STREAM;
    let out = rewrite(&with_preface(&[frame(HEADERS, flags, 5, &payload)]));
    let blocks = decode_output(&out);
    assert_eq!(blocks[0].headers, request("localhost"));
    assert_eq!(blocks[0].priority.as_deref(), Some(&priority[..]));
    assert_eq!(blocks[0].flags, PRIORITY | END_HEADERS | END_STREAM);
}
