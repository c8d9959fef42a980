//! The inbound HTTP/2 frame transformer: a synchronous state machine fed with whatever bytes the
//! socket produced.

use super::hpack::{BlockCodec, MAX_BLOCK};
use super::wire::{
    CONTINUATION, END_HEADERS, FRAME_HEADER_LEN, FrameHead, HEADERS, PREFACE, PRIORITY_LEN, PUSH_PROMISE, emit_block,
    split_headers_payload,
};

/// Scratch buffers keep at most this much capacity between header blocks.
const KEEP_CAPACITY: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
enum State {
    /// Checking and forwarding the client preface; the number of octets seen so far.
    Preface(usize),
    /// Accumulating a frame header.
    Head { buf: [u8; FRAME_HEADER_LEN], have: usize },
    /// Forwarding the payload of a non-header frame; octets left.
    Forward(usize),
    /// Buffering the payload of a HEADERS / CONTINUATION frame; octets left.
    Collect(usize),
    /// Rewriting gave up, or is not needed on this connection: everything passes through
    /// unchanged.
    Passthrough,
}

impl State {
    const HEAD: State = State::Head { buf: [0; FRAME_HEADER_LEN], have: 0 };
}

/// A header block being collected.
struct OpenBlock {
    /// The HEADERS frame that opened the block.
    first: FrameHead,
    /// The frame whose payload is being collected.
    current: FrameHead,
    /// The PRIORITY fields of the HEADERS frame, if any.
    priority: Option<[u8; PRIORITY_LEN]>,
    /// Where the current frame's payload starts in `raw`.
    payload_start: usize,
}

/// Rewrites the `:authority` of every inbound header block of one HTTP/2 connection (see the
/// module docs); everything else passes through byte for byte.
///
/// Feed it the client's bytes in any chunking with [`feed`](Self::feed); the output does not
/// depend on the chunking. At end of input call [`finish`](Self::finish).
pub struct FrameRewriter {
    state: State,
    codec: BlockCodec,
    block: Option<OpenBlock>,
    /// The original octets of the open block's frames, emitted as they are if rewriting fails.
    raw: Vec<u8>,
    /// The open block's header block fragments, padding and priority removed.
    fragment: Vec<u8>,
    /// The re-encoded block.
    encoded: Vec<u8>,
    /// Whether a header block has been rewritten on this connection (from then on every block
    /// must be, since h2's HPACK table no longer follows the client's).
    rewriting: bool,
}

impl Default for FrameRewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameRewriter {
    /// A rewriter for a new connection, expecting the client preface first.
    pub fn new() -> Self {
        Self {
            state: State::Preface(0),
            codec: BlockCodec::new(),
            block: None,
            raw: Vec::new(),
            fragment: Vec::new(),
            encoded: Vec::new(),
            rewriting: false,
        }
    }

    /// Processes `input`, appending whatever can be emitted to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            let used = self.step(input, out);
            input = &input[used..];
        }
    }

    /// End of input: emits whatever is buffered unchanged (a truncated frame for h2 to reject).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let (buf, have) = match self.state {
            State::Head { buf, have } => (buf, have),
            _ => ([0; FRAME_HEADER_LEN], 0),
        };
        if have > 0 || !self.raw.is_empty() {
            self.give_up(&buf[..have], out, "connection closed mid-frame");
        }
        self.state = State::Passthrough;
    }

    /// How many upcoming input octets will pass through unchanged, so a caller may move them
    /// itself and report them with [`consume_verbatim`](Self::consume_verbatim).
    pub fn verbatim_len(&self) -> usize {
        match self.state {
            State::Forward(left) => left,
            State::Passthrough => usize::MAX,
            _ => 0,
        }
    }

    /// Records that `n` (at most [`verbatim_len`](Self::verbatim_len)) octets were passed on.
    pub fn consume_verbatim(&mut self, n: usize) {
        if let State::Forward(left) = self.state {
            let left = left.saturating_sub(n);
            self.state = if left == 0 { State::HEAD } else { State::Forward(left) };
        }
    }

    /// Consumes a non-empty prefix of `input`; returns its length.
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        match self.state {
            State::Preface(seen) => self.preface(seen, input, out),
            State::Head { buf, have } => self.head(buf, have, input, out),
            State::Forward(left) => {
                let n = left.min(input.len());
                out.extend_from_slice(&input[..n]);
                self.consume_verbatim(n);
                n
            }
            State::Collect(left) => self.collect(left, input, out),
            State::Passthrough => {
                out.extend_from_slice(input);
                input.len()
            }
        }
    }

    fn preface(&mut self, seen: usize, input: &[u8], out: &mut Vec<u8>) -> usize {
        let n = (PREFACE.len() - seen).min(input.len());
        out.extend_from_slice(&input[..n]);
        self.state = if input[..n] != PREFACE[seen..seen + n] {
            tracing::debug!("no HTTP/2 client preface; not rewriting :authority");
            State::Passthrough
        } else if seen + n == PREFACE.len() {
            State::HEAD
        } else {
            State::Preface(seen + n)
        };
        n
    }

    fn head(&mut self, mut buf: [u8; FRAME_HEADER_LEN], have: usize, input: &[u8], out: &mut Vec<u8>) -> usize {
        let n = (FRAME_HEADER_LEN - have).min(input.len());
        buf[have..have + n].copy_from_slice(&input[..n]);
        if have + n < FRAME_HEADER_LEN {
            self.state = State::Head { buf, have: have + n };
        } else {
            self.on_frame_head(&buf, out);
        }
        n
    }

    fn on_frame_head(&mut self, bytes: &[u8; FRAME_HEADER_LEN], out: &mut Vec<u8>) {
        let head = FrameHead::parse(bytes);
        if let Some(block) = &self.block {
            if head.kind != CONTINUATION || head.stream != block.first.stream {
                return self.give_up(bytes, out, "header block interrupted");
            }
            return self.begin_block_frame(head, bytes, out);
        }
        match head.kind {
            HEADERS => self.begin_block_frame(head, bytes, out),
            CONTINUATION | PUSH_PROMISE => self.give_up(bytes, out, "unexpected frame type"),
            _ => {
                out.extend_from_slice(bytes);
                self.state = match head.len {
                    0 => State::HEAD,
                    len => State::Forward(len),
                };
            }
        }
    }

    /// Starts buffering a HEADERS (opening a block) or CONTINUATION frame.
    fn begin_block_frame(&mut self, head: FrameHead, bytes: &[u8], out: &mut Vec<u8>) {
        if self.raw.len() + FRAME_HEADER_LEN + head.len > MAX_BLOCK {
            return self.give_up(bytes, out, "header block too large");
        }
        self.raw.extend_from_slice(bytes);
        let block =
            self.block.get_or_insert(OpenBlock { first: head, current: head, priority: None, payload_start: 0 });
        block.current = head;
        block.payload_start = self.raw.len();
        self.state = State::Collect(head.len);
        if head.len == 0 {
            self.end_block_frame(out);
        }
    }

    fn collect(&mut self, left: usize, input: &[u8], out: &mut Vec<u8>) -> usize {
        let n = left.min(input.len());
        self.raw.extend_from_slice(&input[..n]);
        self.state = State::Collect(left - n);
        if n == left {
            self.end_block_frame(out);
        }
        n
    }

    /// The current header-block frame is complete.
    fn end_block_frame(&mut self, out: &mut Vec<u8>) {
        self.state = State::HEAD;
        let Some(block) = self.block.as_mut() else {
            return;
        };
        let payload = &self.raw[block.payload_start..];
        let fragment = if block.current.kind == HEADERS {
            match split_headers_payload(block.current.flags, payload) {
                Some((priority, fragment)) => {
                    block.priority = priority;
                    fragment
                }
                None => return self.give_up(&[], out, "malformed HEADERS padding"),
            }
        } else {
            payload
        };
        self.fragment.extend_from_slice(fragment);
        if block.current.flags & END_HEADERS != 0 {
            self.end_block(out);
        }
    }

    /// The block is complete: re-encode it and emit it, or give up. A first block whose
    /// `:authority` is usable goes out as the client sent it, and the connection passes through
    /// from then on (see the module docs).
    fn end_block(&mut self, out: &mut Vec<u8>) {
        self.encoded.clear();
        match self.codec.rewrite(&self.fragment, &mut self.encoded) {
            Ok(false) if !self.rewriting => {
                tracing::trace!("usable :authority; passing this connection through");
                out.extend_from_slice(&self.raw);
                self.block = None;
                self.reset_block();
                self.state = State::Passthrough;
            }
            Ok(_) => {
                self.rewriting = true;
                if let Some(block) = self.block.take() {
                    emit_block(block.first, block.priority, &self.encoded, out);
                }
                self.reset_block();
            }
            Err(err) => self.give_up(&[], out, &err.to_string()),
        }
    }

    /// Stops rewriting for good: emits the open block's original octets and `extra`, then passes
    /// everything through, so h2 sees the client's bytes and reports its own error.
    fn give_up(&mut self, extra: &[u8], out: &mut Vec<u8>, reason: &str) {
        if !matches!(self.state, State::Passthrough) {
            tracing::debug!(reason, "stopped rewriting :authority on this connection");
        }
        out.extend_from_slice(&self.raw);
        out.extend_from_slice(extra);
        self.block = None;
        self.reset_block();
        self.state = State::Passthrough;
    }

    fn reset_block(&mut self) {
        for buf in [&mut self.raw, &mut self.fragment, &mut self.encoded] {
            buf.clear();
            if buf.capacity() > KEEP_CAPACITY {
                buf.shrink_to(KEEP_CAPACITY);
            }
        }
    }
}
