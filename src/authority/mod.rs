//! Accepting a path-shaped HTTP/2 `:authority`.
//!
//! Driver v1.5.x and older send the socket path (`/var/run/secrets-store-csi-providers/aws.sock`)
//! as `:authority`; h2 rejects that and resets every stream. `AuthorityFix` wraps an accepted
//! connection and rewrites the inbound byte stream so h2 sees `localhost` instead:
//!
//! - the client preface and every frame other than HEADERS / CONTINUATION pass through byte for
//!   byte; outbound bytes are never touched;
//! - a gRPC client sends one `:authority` for the whole connection (its channel's), so the first
//!   header block decides: when its `:authority` is usable (driver v1.6 sends `localhost`) that
//!   block and everything after it pass through unchanged, and the connection costs nothing more;
//! - otherwise each header block (HEADERS plus CONTINUATIONs up to END_HEADERS) is decoded with an HPACK
//!   decoder that follows the client's dynamic table; a `:authority` that is not a plain
//!   `host[:port]` becomes `localhost`; and the block is re-encoded with literals that are never
//!   indexed, so h2's HPACK table stays empty and cannot diverge from the client's. Padding is
//!   dropped, PRIORITY fields and END_STREAM kept;
//! - anything unexpected (bad preface, undecodable block, a block over 64 KiB) stops rewriting for
//!   the rest of the connection and passes the client's bytes through unchanged, so h2 reports
//!   its own protocol error.
//!
//! ```ignore
//! Server::builder()
//!     .add_service(svc)
//!     .serve_with_incoming(UnixListenerStream::new(listener).map_ok(AuthorityFix::new))
//! ```

mod frames;
mod hpack;
#[cfg(test)]
mod tests;
mod wire;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

pub use frames::FrameRewriter;

/// Largest read made while frame headers or header blocks are being parsed; payloads that pass
/// through unchanged are read straight into the caller's buffer instead.
const PARSE_READ: usize = 4096;

/// Pending output keeps at most this much capacity once drained.
const KEEP_CAPACITY: usize = 64 * 1024;

/// A server-side connection whose inbound HTTP/2 header blocks get a usable `:authority`
/// (see the [module docs](self)). Writes pass straight to the inner stream.
pub(crate) struct AuthorityFix<S> {
    inner: S,
    rewriter: FrameRewriter,
    /// Rewritten octets not yet handed to the reader, from `pending_pos` on.
    pending: Vec<u8>,
    pending_pos: usize,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    /// Wraps a freshly accepted connection (nothing read from it yet).
    pub fn new(inner: S) -> Self {
        Self { inner, rewriter: FrameRewriter::new(), pending: Vec::new(), pending_pos: 0, eof: false }
    }

    /// Moves pending rewritten octets into `buf`; whether there were any.
    fn drain_pending(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let avail = &self.pending[self.pending_pos..];
        if avail.is_empty() {
            return false;
        }
        let n = avail.len().min(buf.remaining());
        buf.put_slice(&avail[..n]);
        self.pending_pos += n;
        if self.pending_pos == self.pending.len() {
            self.pending.clear();
            self.pending.shrink_to(KEEP_CAPACITY);
            self.pending_pos = 0;
        }
        true
    }

    fn on_eof(&mut self) {
        self.eof = true;
        self.rewriter.finish(&mut self.pending);
    }
}

impl<S: AsyncRead + Unpin> AuthorityFix<S> {
    /// Reads octets that pass through unchanged straight into `buf`; how many (0 at EOF).
    fn poll_verbatim(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>, limit: usize) -> Poll<io::Result<usize>> {
        let n = ready!(poll_read_at_most(&mut self.inner, cx, buf, limit))?;
        self.rewriter.consume_verbatim(n);
        Poll::Ready(Ok(n))
    }

    /// Reads a chunk into `buf`'s free space, runs it through the rewriter into `pending` and
    /// takes it back out of `buf`; how many octets were read (0 at EOF).
    fn poll_parse(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        let start = buf.filled().len();
        let n = ready!(poll_read_at_most(&mut self.inner, cx, buf, PARSE_READ))?;
        self.rewriter.feed(&buf.filled()[start..], &mut self.pending);
        buf.set_filled(start);
        Poll::Ready(Ok(n))
    }
}

/// Reads at most `limit` octets from `reader` into `buf`; how many were read.
fn poll_read_at_most<R: AsyncRead + Unpin>(
    reader: &mut R,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
    limit: usize,
) -> Poll<io::Result<usize>> {
    if limit >= buf.remaining() {
        let before = buf.filled().len();
        ready!(Pin::new(reader).poll_read(cx, buf))?;
        return Poll::Ready(Ok(buf.filled().len() - before));
    }
    let mut limited = ReadBuf::new(buf.initialize_unfilled_to(limit));
    ready!(Pin::new(reader).poll_read(cx, &mut limited))?;
    let n = limited.filled().len();
    buf.advance(n);
    Poll::Ready(Ok(n))
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if buf.remaining() == 0 || this.drain_pending(buf) || this.eof {
                return Poll::Ready(Ok(()));
            }
            let verbatim = this.rewriter.verbatim_len();
            let n = if verbatim > 0 {
                let n = ready!(this.poll_verbatim(cx, buf, verbatim))?;
                if n > 0 {
                    return Poll::Ready(Ok(()));
                }
                n
            } else {
                ready!(this.poll_parse(cx, buf))?
            };
            if n == 0 {
                this.on_eof();
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Connection info is the inner stream's (for a `UnixStream`, tonic's `UdsConnectInfo`).
impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
