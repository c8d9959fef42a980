//! HTTP/2 wire format: frame headers, HEADERS payload layout, emitting a header block.

/// The client connection preface (RFC 9113 §3.4).
pub(super) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(super) const FRAME_HEADER_LEN: usize = 9;
/// The default `SETTINGS_MAX_FRAME_SIZE`, which tonic's server keeps.
pub(super) const MAX_FRAME_PAYLOAD: usize = 16_384;
pub(super) const PRIORITY_LEN: usize = 5;

pub(super) const HEADERS: u8 = 0x1;
pub(super) const PUSH_PROMISE: u8 = 0x5;
pub(super) const CONTINUATION: u8 = 0x9;

pub(super) const END_STREAM: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
pub(super) const PRIORITY: u8 = 0x20;

/// A parsed 9-octet frame header.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameHead {
    pub(super) len: usize,
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
}

impl FrameHead {
    pub(super) fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Self {
        Self {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    /// Writes the header; `len` must fit in 24 bits.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&[self.kind, self.flags]);
        out.extend_from_slice(&self.stream.to_be_bytes());
    }
}

/// Splits a HEADERS payload into its PRIORITY fields and header block fragment, dropping the
/// padding; `None` if the padding or priority fields do not fit.
pub(super) fn split_headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; PRIORITY_LEN]>, &[u8])> {
    let (pad, mut rest) = if flags & PADDED != 0 {
        let (&pad, rest) = payload.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let (fields, after) = rest.split_first_chunk::<PRIORITY_LEN>()?;
        priority = Some(*fields);
        rest = after;
    }
    let len = rest.len().checked_sub(pad)?;
    Some((priority, &rest[..len]))
}

/// Emits `encoded` as a HEADERS frame plus CONTINUATION frames, none over the default maximum
/// frame size; END_STREAM and PRIORITY stay on the HEADERS frame.
pub(super) fn emit_block(first: FrameHead, priority: Option<[u8; PRIORITY_LEN]>, encoded: &[u8], out: &mut Vec<u8>) {
    let priority: &[u8] = priority.as_ref().map_or(&[], |p| p);
    let first_len = encoded.len().min(MAX_FRAME_PAYLOAD - priority.len());
    let (mut chunk, mut rest) = encoded.split_at(first_len);
    let mut head = FrameHead {
        len: priority.len() + chunk.len(),
        kind: HEADERS,
        flags: first.flags & (END_STREAM | PRIORITY),
        stream: first.stream,
    };
    loop {
        if rest.is_empty() {
            head.flags |= END_HEADERS;
        }
        head.write(out);
        out.extend_from_slice(priority_if_headers(&head, priority));
        out.extend_from_slice(chunk);
        if rest.is_empty() {
            return;
        }
        (chunk, rest) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
        head = FrameHead { len: chunk.len(), kind: CONTINUATION, flags: 0, ..head };
    }
}

fn priority_if_headers<'a>(head: &FrameHead, priority: &'a [u8]) -> &'a [u8] {
    if head.kind == HEADERS { priority } else { &[] }
}
