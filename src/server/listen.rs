//! The one way every listener serves HTTP: HTTP ingestion (on a cluster and
//! standalone), the admin endpoints and the sidecar. HTTP/1.1 with hyper and
//! an accept loop of our own, so that no client can hold more than the
//! limits allow, whatever it sends or does not send:
//!
//! - a request's head (request line and headers) must arrive within
//!   [`HEADER_READ_TIMEOUT`]: counted from the accept (TLS handshake
//!   included) for a connection's first request, from its first byte for
//!   the next ones; else the connection is closed;
//! - a kept-alive connection with no new request for [`IDLE_TIMEOUT`] is closed;
//! - a request's body must arrive within [`BODY_READ_TIMEOUT`] of its head:
//!   a handler reading it then gets [`BodyTimeout`] (the routes answer 408),
//!   and the connection is closed after the answer;
//! - a head larger than [`MAX_HEADER_BYTES`] is answered 431 and closed, and
//!   no connection buffers more than that;
//! - at most [`MAX_CONNECTIONS`] connections per listener: beyond, new
//!   connections wait in the kernel's accept queue (costing this process
//!   nothing) until one closes, and a warning is logged (at most once a minute).
//!
//! Each request carries `ConnectInfo<SocketAddr>` (the TCP peer). When the
//! [`serve`] future is dropped (the operator stopping), nothing new is
//! accepted and every connection finishes the request it is serving, then closes.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, header};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::tls::ServerTls;

/// How long a client has to send a request's head: from the accept (the
/// TLS handshake included) for the first request of a connection, from the
/// first byte for the next ones.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a kept-alive connection may wait for its next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a request's body may take to arrive, from its head (at least
/// about 35 KB/s for a body of the default `--max-body-bytes`, 1 MiB).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections one listener serves at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1024;

/// The largest request head (request line and headers; 431 beyond), and
/// the most a connection buffers. A Kubernetes token is at most 16 KiB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The limits of a listener (the constants above; tests shorten them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    /// At least 8 KiB (hyper's smallest buffer).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_header_bytes: MAX_HEADER_BYTES,
        }
    }
}

/// How a listener serves: its [`Limits`], and TLS when given.
#[derive(Clone, Default)]
pub struct Options {
    pub limits: Limits,
    pub tls: Option<ServerTls>,
}

/// The error a request body yields when it did not arrive within
/// [`Limits::body_read_timeout`] (see [`body_timeout`]).
#[derive(Debug)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body did not arrive within {}", humantime::format_duration(self.0))
    }
}

impl std::error::Error for BodyTimeout {}

/// The [`BodyTimeout`] behind an error reading a request body, if that is what it is.
pub fn body_timeout<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
    crate::causes::find(error)
}

/// Serve `router` on `listener` with `options` until this future is dropped
/// (see the module's documentation). Ends only on a TLS reload task ending,
/// which it never does.
pub async fn serve(listener: TcpListener, router: Router, options: Options) -> io::Result<()> {
    let Options { limits, tls } = options;
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // Our own deadlines (see `Phase`): hyper's would close an idle
        // kept-alive connection after the header timeout too.
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8 * 1024))
        .keep_alive(true);
    let server = Arc::new(Server { router, limits, http, tls: tls.clone() });
    let slots = Arc::new(Semaphore::new(server.limits.max_connections));
    // Dropped with this future: the connections then finish and close.
    let (stopping, stop) = watch::channel(());
    let reload = async {
        match &tls {
            Some(tls) => tls.keep_reloaded().await,
            None => std::future::pending().await,
        }
    };
    let accept = async {
        let mut warned: Option<Instant> = None;
        loop {
            let permit = match slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        warned = Some(Instant::now());
                        warn!(
                            limit = server.limits.max_connections,
                            "connection limit reached: new connections wait until one closes"
                        );
                    }
                    slots.clone().acquire_owned().await.expect("the semaphore is never closed")
                }
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    error!(error = %e, "accepting a connection failed; trying again in 1 s");
                    drop(permit);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            tokio::spawn(server.clone().connection(stream, peer, permit, stop.clone()));
        }
    };
    // Neither ends; `stopping` lives as long as this future.
    tokio::select! {
        () = accept => {}
        () = reload => {}
    }
    drop(stopping);
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// What every connection of a listener shares.
struct Server {
    router: Router,
    limits: Limits,
    http: http1::Builder,
    tls: Option<ServerTls>,
}

impl Server {
    /// One connection, holding one of the listener's slots until it closes.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        _slot: OwnedSemaphorePermit,
        stop: watch::Receiver<()>,
    ) {
        let state = Arc::new(ConnState::new());
        match &self.tls {
            None => self.drive(stream, peer, state, stop).await,
            Some(tls) => {
                let deadline = state.accepted + self.limits.header_read_timeout;
                match tokio::time::timeout_at(deadline, tls.acceptor().accept(stream)).await {
                    Ok(Ok(stream)) => self.drive(stream, peer, state, stop).await,
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    }

    /// Serve HTTP/1.1 on `io` until the client closes, a deadline passes or
    /// the listener stops.
    async fn drive<I>(&self, io: I, peer: SocketAddr, state: Arc<ConnState>, mut stop: watch::Receiver<()>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = Serve {
            router: self.router.clone(),
            peer,
            state: state.clone(),
            body_read_timeout: self.limits.body_read_timeout,
        };
        let io = TokioIo::new(Watched { io, state: state.clone() });
        let mut conn = pin!(self.http.serve_connection(io, service));
        let mut stopping = false;
        loop {
            let deadline = state.deadline(&self.limits);
            let changed = state.changed.notified();
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = sleep_until(deadline) => {
                    if state.deadline(&self.limits).is_some_and(|d| d <= Instant::now()) {
                        // No request is being answered: closed at once (hyper's
                        // graceful shutdown would wait for a head begun).
                        debug!(%peer, "closing a connection that sent no request in time");
                        return;
                    }
                }
                () = changed => {}
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is between requests, for its deadlines.
struct ConnState {
    accepted: Instant,
    phase: Mutex<Phase>,
    /// Told when a deadline may have moved earlier or appeared.
    changed: Notify,
}

struct Phase {
    /// Requests being answered (their response not fully sent).
    in_flight: usize,
    /// A request was answered on this connection.
    served: bool,
    /// When the last answer was sent.
    idle_since: Instant,
    /// The first byte of the next request's head, once read.
    head_started: Option<Instant>,
}

impl ConnState {
    fn new() -> Self {
        let now = Instant::now();
        ConnState {
            accepted: now,
            phase: Mutex::new(Phase { in_flight: 0, served: false, idle_since: now, head_started: None }),
            changed: Notify::new(),
        }
    }

    /// When the connection is to be closed unless a request comes; none
    /// while one is being answered.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let phase = self.phase.lock().unwrap();
        if phase.in_flight > 0 {
            return None;
        }
        Some(match (phase.served, phase.head_started) {
            (false, _) => self.accepted + limits.header_read_timeout,
            (true, Some(first_byte)) => first_byte + limits.header_read_timeout,
            (true, None) => phase.idle_since + limits.idle_timeout,
        })
    }

    /// Bytes were read: between requests, the next head has started.
    fn read_some(&self) {
        let mut phase = self.phase.lock().unwrap();
        if phase.in_flight == 0 && phase.served && phase.head_started.is_none() {
            phase.head_started = Some(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        let mut phase = self.phase.lock().unwrap();
        phase.in_flight += 1;
        phase.head_started = None;
    }

    fn request_finished(&self) {
        let mut phase = self.phase.lock().unwrap();
        phase.in_flight -= 1;
        if phase.in_flight == 0 {
            phase.served = true;
            phase.idle_since = Instant::now();
            phase.head_started = None;
            drop(phase);
            self.changed.notify_one();
        }
    }
}

/// A request being answered, until its response has been sent (or dropped).
struct Busy(Arc<ConnState>);

impl Busy {
    fn start(state: Arc<ConnState>) -> Self {
        state.request_started();
        Busy(state)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The connection's transport, telling [`ConnState`] when bytes arrive.
struct Watched<I> {
    io: I,
    state: Arc<ConnState>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.read_some();
        }
        res
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The router as hyper calls it, per connection: each request gets the
/// peer's address and a body with a deadline, and is tracked until its
/// response has been sent.
#[derive(Clone)]
struct Serve {
    router: Router,
    peer: SocketAddr,
    state: Arc<ConnState>,
    body_read_timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl hyper::service::Service<Request<Incoming>> for Serve {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = Busy::start(self.state.clone());
        let timed_out = Arc::new(AtomicBool::new(false));
        let limit = self.body_read_timeout;
        let body = {
            let timed_out = timed_out.clone();
            move |inner| Body::new(TimedBody { inner, deadline: Instant::now() + limit, limit, sleep: None, timed_out })
        };
        let mut request = request.map(body);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        // Router is always ready (axum documents it).
        let answer = tower_service::Service::call(&mut self.router.clone(), request);
        Box::pin(async move {
            let Ok(mut response) = answer.await;
            if timed_out.load(Ordering::Relaxed) {
                // What is left of the body may still come: not on this connection.
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| Tracked { body, _busy: busy }))
        })
    }
}

/// A response body that ends its request's [`Busy`] when dropped (hyper
/// drops it once sent).
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails with [`BodyTimeout`] once its deadline passed.
struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    limit: Duration,
    /// Made the first time the body has to be waited for.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        let deadline = this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        this.timed_out.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
