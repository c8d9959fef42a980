//! A bound on the provider socket's open connections. The driver keeps one connection per
//! provider; each connection may hold the `:authority` rewriter's buffers (bounded per
//! connection, see `authority`), so the number of connections bounds the memory they take. Past
//! the bound the listener stops accepting: a new client waits in the kernel's listen backlog
//! until a connection closes, and nothing already connected is affected.

use futures::Stream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::Connected;

/// A connection that holds one of the bounded places until it is dropped.
pub struct Counted<S> {
    inner: S,
    _place: OwnedSemaphorePermit,
}

/// Accepts connections on `listener`, never more than `max` open at once.
pub fn bounded(listener: UnixListener, max: usize) -> impl Stream<Item = io::Result<Counted<UnixStream>>> {
    let places = Arc::new(Semaphore::new(max.max(1)));
    futures::stream::unfold((listener, places), |(listener, places)| async move {
        let place = places.clone().acquire_owned().await.ok()?;
        let accepted = listener.accept().await.map(|(inner, _)| Counted { inner, _place: place });
        Some((accepted, (listener, places)))
    })
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
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

impl<S: Connected> Connected for Counted<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::time::Duration;

    #[tokio::test]
    async fn past_the_bound_a_client_waits_until_a_connection_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let incoming = bounded(UnixListener::bind(&path).expect("bind"), 2);
        tokio::pin!(incoming);
        let _c1 = UnixStream::connect(&path).await.expect("connect");
        let _c2 = UnixStream::connect(&path).await.expect("connect");
        let _c3 = UnixStream::connect(&path).await.expect("connect (waits in the backlog)");
        let first = incoming.next().await.expect("accepted").expect("ok");
        let _second = incoming.next().await.expect("accepted").expect("ok");
        let third = tokio::time::timeout(Duration::from_millis(200), incoming.next()).await;
        assert!(third.is_err(), "a third connection is not accepted while two are open");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), incoming.next()).await;
        assert!(matches!(third, Ok(Some(Ok(_)))), "accepted once a place is free");
    }
}
