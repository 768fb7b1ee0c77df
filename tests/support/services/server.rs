//! The loopback HTTP server shared by every emulator: recording, scripted
//! responses, connection faults. Each service only implements [`Service`].

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::recorder::{RecordedRequest, Recorder};
use super::script::{BodyFault, CUT_FILLER, RequestMatcher, ScriptAction, ScriptedResponse};

/// A response computed by a service.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn empty(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Bytes::new() }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self::empty(status).header("content-type", "text/plain; charset=utf-8").body(body.to_owned())
    }

    pub fn json(status: u16, body: &Value) -> Self {
        Self::empty(status).header("content-type", "application/json; charset=utf-8").body(body.to_string())
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn headers(mut self, headers: impl IntoIterator<Item = (String, String)>) -> Self {
        self.headers.extend(headers);
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// A reply plus the message it posted, if it posted one.
pub struct Handled<M> {
    pub reply: Reply,
    pub message: Option<M>,
}

impl<M> From<Reply> for Handled<M> {
    fn from(reply: Reply) -> Self {
        Self { reply, message: None }
    }
}

impl<M> Handled<M> {
    pub fn posted(reply: Reply, message: M) -> Self {
        Self { reply, message: Some(message) }
    }
}

/// The behaviour of one emulated service. Synchronous: delays and faults are
/// the core's business.
pub trait Service: Send + Sync + 'static {
    /// What a successful post records.
    type Message: Clone + Send + Sync + 'static;

    fn handle(&self, request: &RecordedRequest) -> Handled<Self::Message>;
}

struct Core<S: Service> {
    service: S,
    recorder: Recorder<S::Message>,
    script: Mutex<VecDeque<(RequestMatcher, ScriptedResponse)>>,
}

#[derive(Debug)]
struct Aborted;

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection aborted by script")
    }
}

impl std::error::Error for Aborted {}

impl<S: Service> Core<S> {
    fn take_script(&self, method: &str, path: &str) -> Option<ScriptedResponse> {
        let mut script = self.script.lock().unwrap();
        let pos = script.iter().position(|(m, _)| m.matches(method, path))?;
        script.remove(pos).map(|(_, r)| r)
    }

    async fn dispatch(
        &self,
        request: Request<Incoming>,
        control: &std::net::TcpStream,
    ) -> Result<Response<ReplyBody>, Aborted> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map_err(|_| Aborted)?.to_bytes();
        let method = parts.method.as_str().to_owned();
        let path = parts.uri.path().to_owned();
        let scripted = self.take_script(&method, &path);
        let recorded = RecordedRequest {
            seq: 0,
            method,
            path,
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body,
            received_at: SystemTime::now(),
            scripted: scripted.as_ref().is_some_and(|s| s.action != ScriptAction::Passthrough),
            status: None,
        };
        let index = self.recorder.record(recorded.clone());
        let body_fault = scripted.as_ref().map(|s| s.body_fault).unwrap_or_default();

        if let Some(delay) = scripted.as_ref().and_then(|s| s.delay) {
            tokio::time::sleep(delay).await;
        }
        let reply = match scripted {
            Some(s) if s.action == ScriptAction::Respond => {
                let reply = Reply { status: s.status, headers: s.headers, body: Bytes::from(s.body) };
                self.recorder.set_status(index, Some(reply.status));
                reply
            }
            Some(s) if s.action == ScriptAction::Close => return Err(Aborted),
            Some(s) if s.action == ScriptAction::Reset => {
                // Closing a socket with SO_LINGER 0 sends RST instead of FIN.
                let _ = socket2::SockRef::from(control).set_linger(Some(Duration::ZERO));
                return Err(Aborted);
            }
            _ => {
                let handled = self.service.handle(&recorded);
                self.recorder.set_status(index, Some(handled.reply.status));
                if let Some(message) = handled.message {
                    self.recorder.push_message(message);
                }
                handled.reply
            }
        };
        Ok(build_response(reply, body_fault))
    }
}

fn build_response(reply: Reply, fault: BodyFault) -> Response<ReplyBody> {
    let mut builder = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(ReplyBody::new(reply.body, fault))
        .unwrap_or_else(|e| panic!("emulator built an invalid response: {e}"))
}

/// An answer's body, whole or cut short as a [`BodyFault`] says. Its size
/// (`content-length`) is always the whole body's.
struct ReplyBody {
    /// What is sent, in one frame.
    sent: Option<Bytes>,
    size: u64,
    end: BodyEnd,
}

enum BodyEnd {
    /// The body is whole once `sent` went out.
    Whole,
    /// Nothing more, ever.
    Stall,
    /// The connection is closed, once what was sent was flushed.
    Drop { flushed: bool },
}

impl ReplyBody {
    fn new(body: Bytes, fault: BodyFault) -> Self {
        let cut = |end| {
            let body = if body.is_empty() { Bytes::from(vec![b' '; CUT_FILLER]) } else { body.clone() };
            ReplyBody { size: body.len() as u64, sent: Some(body.slice(..body.len() / 2)), end }
        };
        match fault {
            BodyFault::None => ReplyBody { size: body.len() as u64, sent: Some(body), end: BodyEnd::Whole },
            BodyFault::Huge(filler) => {
                let mut huge = Vec::with_capacity(body.len() + filler);
                huge.extend_from_slice(&body);
                huge.resize(body.len() + filler, b' ');
                ReplyBody { size: huge.len() as u64, sent: Some(huge.into()), end: BodyEnd::Whole }
            }
            BodyFault::Stall => cut(BodyEnd::Stall),
            BodyFault::Drop => cut(BodyEnd::Drop { flushed: false }),
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        if let Some(sent) = self.sent.take().filter(|b| !b.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(sent))));
        }
        match &mut self.end {
            BodyEnd::Whole => Poll::Ready(None),
            BodyEnd::Stall => Poll::Pending,
            // hyper flushes what it has whenever the body is pending, so
            // yield once before failing (which closes the connection).
            BodyEnd::Drop { flushed: false } => {
                self.end = BodyEnd::Drop { flushed: true };
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            BodyEnd::Drop { flushed: true } => Poll::Ready(Some(Err(Aborted))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.end, BodyEnd::Whole) && self.sent.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size)
    }
}

async fn serve_connection<S: Service>(core: Arc<Core<S>>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // Keep a second handle on the socket so a script can set SO_LINGER 0
    // before hyper drops the connection.
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let Ok(control) = std_stream.try_clone() else {
        return;
    };
    let Ok(stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    let control = Arc::new(control);
    let service = service_fn(move |request| {
        let core = core.clone();
        let control = control.clone();
        async move { core.dispatch(request, &control).await }
    });
    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

/// A running emulator. Service-specific set-up lives in `impl Emulator<X>`
/// blocks next to each service; the server stops when this is dropped.
pub struct Emulator<S: Service> {
    core: Arc<Core<S>>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl<S: Service> Drop for Emulator<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Service> Emulator<S> {
    /// Binds 127.0.0.1:0 and serves `service` until dropped.
    pub async fn launch(service: S) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind emulator on loopback");
        let addr = listener.local_addr().expect("emulator address");
        let core = Arc::new(Core { service, recorder: Recorder::new(), script: Mutex::new(VecDeque::new()) });
        let accept_core = core.clone();
        let task = tokio::spawn(async move {
            // Owning the connections here means aborting this task ends them.
            let mut connections: JoinSet<()> = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            connections.spawn(serve_connection(accept_core.clone(), stream));
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self { core, addr, task }
    }

    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service state, for the service-specific set-up methods.
    pub fn service(&self) -> &S {
        &self.core.service
    }

    /// Every request received so far, scripted or not, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.core.recorder.requests()
    }

    /// The successfully posted messages only, in order.
    pub fn messages(&self) -> Vec<S::Message> {
        self.core.recorder.messages()
    }

    /// Forgets recorded requests and messages (not the script or state).
    pub fn clear_records(&self) {
        self.core.recorder.clear();
    }

    /// Queues a one-shot response for the next request matching `matcher`
    /// (a `&str` is a path suffix).
    pub fn push_response(&self, matcher: impl Into<RequestMatcher>, response: ScriptedResponse) {
        self.core.script.lock().unwrap().push_back((matcher.into(), response));
    }

    /// Queues the same response `times` times.
    pub fn push_responses(&self, matcher: impl Into<RequestMatcher>, response: ScriptedResponse, times: usize) {
        let matcher = matcher.into();
        for _ in 0..times {
            self.push_response(matcher.clone(), response.clone());
        }
    }

    /// Scripted responses not consumed yet.
    pub fn pending_responses(&self) -> usize {
        self.core.script.lock().unwrap().len()
    }

    pub fn clear_script(&self) {
        self.core.script.lock().unwrap().clear();
    }

    /// Waits until at least `n` requests arrived; `None` on timeout.
    pub async fn try_wait_for_requests(&self, n: usize, timeout: Duration) -> Option<Vec<RecordedRequest>> {
        self.core.recorder.wait_requests(n, timeout).await
    }

    /// Waits until at least `n` requests arrived; panics on timeout.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        match self.try_wait_for_requests(n, timeout).await {
            Some(requests) => requests,
            None => panic!(
                "timed out after {timeout:?} waiting for {n} requests; got {}: {:?}",
                self.requests().len(),
                summarize(&self.requests())
            ),
        }
    }

    /// Waits until at least `n` messages were posted; `None` on timeout.
    pub async fn try_wait_for_messages(&self, n: usize, timeout: Duration) -> Option<Vec<S::Message>> {
        self.core.recorder.wait_messages(n, timeout).await
    }

    /// Waits until at least `n` messages were posted; panics on timeout.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<S::Message> {
        match self.try_wait_for_messages(n, timeout).await {
            Some(messages) => messages,
            None => panic!(
                "timed out after {timeout:?} waiting for {n} messages; got {}; requests: {:?}",
                self.messages().len(),
                summarize(&self.requests())
            ),
        }
    }
}

/// `METHOD path -> status` lines, without the query (Teams' `sig`) and with
/// a Slack webhook secret masked.
fn summarize(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            let status = r.status.map_or_else(|| "no response".to_owned(), |s| s.to_string());
            format!("{} {} -> {}", r.method, redact_path(&r.path), status)
        })
        .collect()
}

fn redact_path(path: &str) -> String {
    match path.strip_prefix("/services/") {
        Some(rest) => {
            let mut parts: Vec<&str> = rest.splitn(3, '/').collect();
            if parts.len() == 3 {
                parts[2] = "***";
            }
            format!("/services/{}", parts.join("/"))
        }
        None => path.to_owned(),
    }
}
