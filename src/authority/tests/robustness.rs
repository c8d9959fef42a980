//! Chunking, pass-through, malformed input, limits, authority shapes, HPACK integers.

use super::*;

#[test]
fn oversized_table_update_passes_through() {
    let block = [vec![0x3f, 0xe2, 0x1f], indexed(3)].concat(); // 4097 > 4096
    let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &block), frame(DATA, 0, 1, b"x")]);
    assert_eq!(rewrite(&input), input);
}

#[test]
fn bad_padding_passes_through() {
    let block = encode(&mut Encoder::new(), &request(DRIVER_SOCKET));
    let payload = [&[200u8][..], &block].concat();
    let input = with_preface(&[frame(HEADERS, PADDED | END_HEADERS, 1, &payload)]);
    assert_eq!(rewrite(&input), input);
}

#[test]
fn chunking_does_not_change_output() {
    let input = mixed_input();
    let whole = rewrite(&input);
    assert_eq!(decode_output(&whole).len(), 2);
    assert_eq!(rewrite_in_chunks(&input, std::iter::repeat(1)), whole);
    let mut seed = 12345u32;
    let sizes = std::iter::from_fn(|| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        Some((seed >> 16) as usize % 50)
    });
    assert_eq!(rewrite_in_chunks(&input, sizes), whole);
}

#[test]
fn non_header_frames_pass_unchanged() {
    let input = with_preface(&[
        settings(),
        frame(DATA, 0, 1, &[1, 2, 3]),
        frame(DATA, PADDED | END_STREAM, 1, &[2, 9, 0, 0]),
        frame(0x6, 0, 0, &[1; 8]),
        frame(WINDOW_UPDATE, 0, 1, &[0, 0, 1, 0]),
        frame(0x3, 0, 1, &[0, 0, 0, 8]),
    ]);
    assert_eq!(rewrite(&input), input);
    let out = rewrite(&mixed_input());
    let data = frame(DATA, 0, 1, &[0x5a; 16_000]);
    assert!(out.windows(data.len()).any(|w| w == data));
}

#[test]
fn garbage_passes_through() {
    let bad_hpack = with_preface(&[frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
    let truncated_size_update = with_preface(&[frame(HEADERS, END_HEADERS, 1, &[0x3f])]);
    let interrupted =
        with_preface(&[frame(HEADERS, 0, 1, &indexed(2)), settings(), frame(HEADERS, END_HEADERS, 3, &indexed(2))]);
    let stray_continuation = with_preface(&[frame(CONTINUATION, END_HEADERS, 1, &indexed(2))]);
    let not_http2 = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let block = encode(&mut Encoder::new(), &request(DRIVER_SOCKET));
    let truncated = with_preface(&[frame(HEADERS, END_HEADERS, 1, &block)[..20].to_vec()]);
    for input in [bad_hpack, truncated_size_update, interrupted, stray_continuation, not_http2, truncated] {
        assert_eq!(rewrite(&input), input);
        assert_eq!(rewrite_in_chunks(&input, std::iter::repeat(1)), input);
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut seed = 7u64;
    for len in 0..300 {
        let garbage: Vec<u8> = (0..len * 7)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 56) as u8
            })
            .collect();
        let out = rewrite(&with_preface(std::slice::from_ref(&garbage)));
        assert!(out.len() >= 24);
        // Frame-shaped garbage: HEADERS frames carrying random HPACK.
        let _ = rewrite(&with_preface(&[frame(HEADERS, END_HEADERS, 1, &garbage)]));
    }
}

#[test]
fn rewriting_stops_after_giving_up() {
    let good = encode(&mut Encoder::new(), &request(DRIVER_SOCKET));
    let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &[0xff]), frame(HEADERS, END_HEADERS, 3, &good)]);
    assert_eq!(rewrite(&input), input);
}

#[test]
fn oversized_block_passes_through() {
    let block = encode(&mut Encoder::new(), &request(DRIVER_SOCKET));
    let mut parts = vec![frame(HEADERS, 0, 1, &block)];
    parts.extend((0..70).map(|_| frame(CONTINUATION, 0, 1, &[0; 16_000])));
    parts.push(frame(CONTINUATION, END_HEADERS, 1, &[]));
    let input = with_preface(&parts);
    assert_eq!(rewrite(&input), input);
}

#[test]
fn indexed_blowup_is_bounded() {
    // ~4 KB entry referenced 400 times: 1.6 MB decoded from a tiny block.
    let first = literal_indexed_name(58, &"u".repeat(4000));
    let second = [vec![indexed(62); 400].concat(), indexed(2)].concat();
    let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &first), frame(HEADERS, END_HEADERS, 3, &second)]);
    let out = rewrite(&input);
    assert!(out.ends_with(&frame(HEADERS, END_HEADERS, 3, &second)));
}

#[test]
fn authority_shapes() {
    let good = ["localhost", "localhost:50051", "a.b-c_d~e", "[::1]", "[fe80::1]:443", "1.2.3.4:0", "x!$&'()*+,;="];
    let bad = [
        "",
        DRIVER_SOCKET,
        "/tmp/aws.sock",
        "unix:///tmp/x.sock",
        "%2Ftmp%2Fx",
        "a b",
        "host:",
        "host:port",
        "h:1:2",
        "user@host",
        "[::1",
        "[::1]x",
        "[]",
        "h:123456",
        "é",
        "a/b:80",
        "[g::1]",
    ];
    for s in good {
        assert!(is_authority_shaped(s.as_bytes()), "{s:?} should be kept");
    }
    for s in bad {
        assert!(!is_authority_shaped(s.as_bytes()), "{s:?} should be replaced");
    }
}

#[test]
fn kept_authorities_are_accepted_by_http() {
    use tonic::codegen::http::uri::Authority;
    let mut candidates: Vec<String> = (0u8..128).map(|b| format!("a{}b", b as char)).collect();
    candidates.extend(["[1:2:3:4:5:6:7:8]:1", "[1:2:3:4:5:6:7::]:99999", "[::]", "a:1"].map(String::from));
    for s in candidates.iter().filter(|s| is_authority_shaped(s.as_bytes())) {
        let parsed = Authority::from_maybe_shared(bytes::Bytes::copy_from_slice(s.as_bytes()));
        assert!(parsed.is_ok(), "{s:?} kept but rejected by http");
    }
    assert!(Authority::from_maybe_shared(bytes::Bytes::from(DRIVER_SOCKET)).is_err());
}

#[test]
fn hpack_integers_and_structure() {
    for (value, prefix) in [(0, 5), (30, 5), (31, 5), (1337, 5), (4096, 5), (127, 7), (1 << 20, 7)] {
        let mut buf = Vec::new();
        encode_int(value, prefix, &mut buf);
        assert_eq!(decode_int(&buf, prefix).unwrap(), (value, buf.len()));
    }
    assert!(decode_int(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x01], 5).is_err());
    assert!(check_structure(&[0x3f]).is_err());
    assert!(check_structure(&[0x82, 0x20]).is_err(), "size update after a field");
    assert!(check_structure(&[0x00, 0x05, b'a']).is_err(), "string past the end");
    assert!(check_structure(&[0x20, 0x82, 0x0f, 0x2f, 0x01, b'x']).is_ok());
}
