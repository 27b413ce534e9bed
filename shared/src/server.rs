//! The HTTP/1 front door both servers run (the native server and edge-host; feature `server`): binding with a
//! listen backlog sized for bursts, a cap on open connections, header and body read timeouts, limits on the
//! request head answered in the contract's shape, accept errors backed off, graceful shutdown.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::request::Parts;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::accept::AcceptBackoff;
use crate::error::{ApiError, ErrorKind};

/// Longest request target (path and query) answered; longer ones get 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes (names and values) answered; more get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header fields answered; more get 431.
pub const MAX_HEADERS: usize = 100;
/// hyper's own limits sit above ours, so that a head between the two still gets a JSON answer; only a head past
/// these gets hyper's bare 431.
const HYPER_MAX_HEADERS: usize = 4 * MAX_HEADERS;
const HYPER_MAX_BUF: usize = 4 * (MAX_HEADER_BYTES + MAX_URI_BYTES);

/// How long shutdown waits for in-flight requests before giving up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Per-connection limits; every front end exposes them as flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client may take to send a request's headers, from connecting or from the previous answer on a
    /// kept-alive connection (so it is also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body; a body that stalls longer gets 408.
    pub body_read_timeout: Duration,
    /// Open connections at most; one more is answered 503 and closed at once.
    pub max_connections: usize,
    /// Connections the kernel queues before they are accepted (capped by `net.core.somaxconn`).
    pub listen_backlog: u32,
}

/// The defaults of every front end's connection flags.
pub const CONNECTION_DEFAULTS: ConnectionLimits = ConnectionLimits {
    header_read_timeout: Duration::from_secs(10),
    body_read_timeout: Duration::from_secs(30),
    max_connections: 10_000,
    listen_backlog: 4096,
};

impl Default for ConnectionLimits {
    fn default() -> Self {
        CONNECTION_DEFAULTS
    }
}

/// A listener on `host:port` with `backlog` places in its accept queue (std's and tokio's `bind` use 128 and
/// 1024, which reset connections in a burst).
pub async fn bind(host: &str, port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for address in tokio::net::lookup_host((host, port)).await? {
        match bind_address(address, backlog) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("`{host}` resolves to no address"),
        )
    }))
}

fn bind_address(address: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}

/// The contract's answer to a request head over our limits, checked before anything else.
pub fn check_head(parts: &Parts) -> Result<(), ApiError> {
    let uri = parts
        .uri
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri > MAX_URI_BYTES {
        return Err(ApiError::new(
            ErrorKind::UriTooLong,
            format!("the request target is {uri} bytes, more than the limit of {MAX_URI_BYTES}"),
        ));
    }
    let count = parts.headers.len();
    let bytes: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if count > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            ErrorKind::HeadersTooLarge,
            format!(
                "the request has {count} headers of {bytes} bytes; the limits are {MAX_HEADERS} headers and \
                 {MAX_HEADER_BYTES} bytes"
            ),
        ));
    }
    Ok(())
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting and lets in-flight requests
/// finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve<S, B>(
    listener: TcpListener,
    limits: ConnectionLimits,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(connection) => {
                backoff.succeeded();
                connection
            }
            Err(e) => {
                let failure = backoff.failed(&e, Instant::now());
                if let Some(line) = failure.log {
                    tracing::warn!("{line}");
                }
                tokio::select! {
                    () = tokio::time::sleep(failure.wait) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        // A response whose body comes after its headers (edge-host streams the component's) is two writes; with
        // Nagle's algorithm the second waits for the client's delayed ACK of the first, 40 ms on Linux.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
        }
        // Without a timer hyper never times out a client that trickles or withholds its headers.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(HYPER_MAX_HEADERS)
            .max_buf_size(HYPER_MAX_BUF)
            .serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}");
    }
}

/// Answers a connection over the cap with 503 and closes it, reading (and dropping) what the client already
/// sent for a moment so that the close does not reset the answer away.
async fn refuse(mut stream: TcpStream, max_connections: usize) {
    let error = ApiError::new(
        ErrorKind::Unavailable,
        format!("the server has {max_connections} open connections, its limit; retry later"),
    );
    let body = error.to_json();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let answer = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes and systemd send).
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Why a request body stopped arriving.
#[derive(Debug)]
pub enum BodyReadError {
    /// No frame came for this long.
    Idle(Duration),
    /// The transport's own error.
    Transport(Box<dyn Error + Send + Sync>),
}

impl std::fmt::Display for BodyReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyReadError::Idle(after) => write!(f, "no body data for {after:?}"),
            BodyReadError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl Error for BodyReadError {}

impl BodyReadError {
    /// The contract's answer: 408 for a stalled body, 400 for a broken one.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            BodyReadError::Idle(after) => ApiError::new(
                ErrorKind::RequestTimeout,
                format!(
                    "the request body stalled: nothing arrived for {} s",
                    after.as_secs()
                ),
            ),
            BodyReadError::Transport(_) => {
                ApiError::invalid("body", "could not read the request body")
            }
        }
    }
}

/// A body that fails with [`BodyReadError::Idle`] when its next frame takes longer than `idle`.
pub struct IdleTimeoutBody<B> {
    inner: B,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleTimeoutBody<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleTimeoutBody {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = BodyReadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(|e| BodyReadError::Transport(e.into()))))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyReadError::Idle(this.idle)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, headers: &[(&str, String)]) -> Parts {
        let mut request = http::Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn heads_within_the_limits_pass() {
        assert!(check_head(&head("/v1/classify", &[("host", "x".into())])).is_ok());
    }

    #[test]
    fn a_long_target_is_414_and_many_headers_431() {
        let long = format!("/v1/classify?q={}", "a".repeat(MAX_URI_BYTES));
        assert_eq!(check_head(&head(&long, &[])).unwrap_err().status(), 414);
        let many: Vec<_> = (0..=MAX_HEADERS)
            .map(|i| (["x-a", "x-b", "x-c"][i % 3], i.to_string()))
            .collect();
        assert_eq!(check_head(&head("/", &many)).unwrap_err().status(), 431);
        let big = [("x-big", "b".repeat(MAX_HEADER_BYTES))];
        assert_eq!(check_head(&head("/", &big)).unwrap_err().status(), 431);
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_and_a_flowing_one_does_not() {
        use http_body_util::BodyExt;
        let (mut sender, stalled) = http_body_util::channel::Channel::<bytes::Bytes>::new(1);
        let reading = tokio::spawn(async move {
            IdleTimeoutBody::new(stalled, Duration::from_millis(100))
                .collect()
                .await
        });
        sender
            .send_data(bytes::Bytes::from_static(b"abc"))
            .await
            .unwrap();
        let error = reading.await.unwrap().err().unwrap();
        assert!(matches!(error, BodyReadError::Idle(_)));
        assert_eq!(error.to_api_error().status(), 408);

        let full = http_body_util::Full::new(bytes::Bytes::from_static(b"abc"));
        let read = IdleTimeoutBody::new(full, Duration::from_secs(5))
            .collect()
            .await
            .unwrap();
        assert_eq!(read.to_bytes().as_ref(), b"abc");
    }
}
