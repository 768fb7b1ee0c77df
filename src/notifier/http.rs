//! The one shared HTTP client: no redirects, a timeout, a bounded body read,
//! and transport errors turned into transient verdicts without the URL.
//!
//! An answer is returned once its head (status and headers) arrived; its body
//! is read within what is left of the timeout and up to a bound, and
//! [`HttpResponse::body_read`] says whether it was read whole. A service that
//! answered 2xx has spoken even when its body is large, slow or cut off: the
//! classifiers decide what that means.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use http::Method;

use super::classify::{Failure, Verdict, reason};
use super::destination::{self, ConnectResolver, DestinationGuard, Resolver};

/// The most of a response body that is read unless a request asks for more
/// ([`Request::max_body`]).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// A service's answer.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// What was read of the body (lossy UTF-8): all of it only when
    /// [`body_read`](Self::body_read) is [`BodyRead::Complete`].
    pub body: String,
    /// How reading the body ended.
    pub body_read: BodyRead,
}

impl HttpResponse {
    /// An answer whose body was read whole.
    pub fn complete(status: StatusCode, headers: HeaderMap, body: impl Into<String>) -> Self {
        HttpResponse { status, headers, body: body.into(), body_read: BodyRead::Complete }
    }

    /// Whether [`body`](Self::body) is the whole body.
    pub fn body_complete(&self) -> bool {
        self.body_read == BodyRead::Complete
    }
}

/// How reading a response body ended (the head had arrived in every case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyRead {
    /// Read to its end.
    Complete,
    /// Longer than the bound: reading stopped there.
    TooLarge,
    /// The timeout ran out while the body was still coming.
    TimedOut,
    /// The connection failed before the body's end.
    CutOff,
}

impl BodyRead {
    /// What happened, for a failure message (`None` when complete).
    pub fn problem(self) -> Option<&'static str> {
        match self {
            BodyRead::Complete => None,
            BodyRead::TooLarge => Some("its body was too large"),
            BodyRead::TimedOut => Some("its body did not arrive in time"),
            BodyRead::CutOff => Some("its body was cut off"),
        }
    }
}

/// A request under construction: the few things notifiers set.
pub struct Request {
    method: Method,
    /// The URL as text; parsed when sent (a bad one fails that call only).
    target: String,
    headers: HeaderMap,
    body: Bytes,
    /// The most of the answer's body that is read.
    max_body: usize,
    /// A header name or value that could not be used.
    invalid: bool,
}

impl Request {
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
            }
            _ => self.invalid = true,
        }
        self
    }

    /// `Authorization: Bearer <token>`, marked sensitive.
    pub fn bearer_auth(mut self, token: &str) -> Self {
        match HeaderValue::try_from(format!("Bearer {token}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.headers.insert(header::AUTHORIZATION, value);
            }
            Err(_) => self.invalid = true,
        }
        self
    }

    /// Append `pairs` to the URL's query, form-encoded.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        self.target.push(if self.target.contains('?') { '&' } else { '?' });
        self.target.push_str(&encoded);
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("our payloads always serialize");
        self.header(header::CONTENT_TYPE, "application/json").body(body)
    }

    /// A form body (`Content-Type: application/x-www-form-urlencoded`).
    pub fn form(self, pairs: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        self.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Read at most `bytes` of the answer's body (default [`DEFAULT_MAX_BODY`]).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector<ConnectResolver>>;

/// The shared client. Cheap to clone.
///
/// Direct connections use hyper's pooled client under rustls (https with the
/// webpki roots; plain http only where the endpoint policy allowed it): on
/// the synchronous route reqwest's per-request layers cost about a fifth of a
/// message's CPU (measured), and nothing here needs them (no redirects, no
/// cookies, no decompression). When the environment names a proxy
/// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, honouring `NO_PROXY`), requests
/// go through reqwest, which speaks to proxies.
///
/// A client built [`guarded`](Self::guarded) checks every destination its
/// guard does not trust: direct connections go only to the addresses the
/// guard's resolver let through (and never to an internal IP literal);
/// behind a proxy, which resolves names itself, the host is checked before
/// the request is handed over.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Inner,
    guard: Option<DestinationGuard>,
    timeout: Duration,
}

#[derive(Clone, Debug)]
enum Inner {
    Direct {
        /// For trusted destinations (or every one, without a guard).
        open: Client<Connector, Full<Bytes>>,
        /// For the others: connects only where the guard's resolver allows.
        guarded: Option<Box<Client<Connector, Full<Bytes>>>>,
    },
    Proxied(reqwest::Client),
}

/// A pooled client whose connector looks names up with `resolver`.
fn pooled(resolver: ConnectResolver, timeout: Duration) -> Client<Connector, Full<Bytes>> {
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout(timeout)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    // Idle connections are closed after 90 s (the timer is what enforces it).
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

/// The variables that make the client use a proxy (either case).
const PROXY_VARIABLES: [&str; 6] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// Whether `env` names a proxy.
pub fn proxy_configured(env: impl Fn(&str) -> Option<String>) -> bool {
    PROXY_VARIABLES.iter().any(|name| env(name).is_some_and(|v| !v.trim().is_empty()))
}

impl HttpClient {
    /// Direct connections, or through the environment's proxy when it names
    /// one; no destination is checked (tests and tools: the operator's client
    /// is [`guarded`](Self::guarded)).
    pub fn new(timeout: Duration) -> Self {
        if proxy_configured(|name| std::env::var(name).ok()) {
            tracing::info!("a proxy is configured in the environment: deliveries go through it");
            Self::proxied(timeout, None)
        } else {
            Self::direct(timeout)
        }
    }

    /// Like [`new`](Self::new), checking every destination `guard` does not trust.
    pub fn guarded(timeout: Duration, guard: DestinationGuard) -> Self {
        if proxy_configured(|name| std::env::var(name).ok()) {
            tracing::info!("a proxy is configured in the environment: deliveries go through it");
            HttpClient { guard: Some(guard), ..Self::proxied(timeout, None) }
        } else {
            Self::direct_guarded(timeout, guard)
        }
    }

    /// Direct connections only, checking every destination `guard` does not
    /// trust; names are looked up with the guard's resolver.
    pub fn direct_guarded(timeout: Duration, guard: DestinationGuard) -> Self {
        let inner = Inner::Direct {
            open: pooled(guard.open_resolver(), timeout),
            guarded: Some(Box::new(pooled(guard.guarded_resolver(), timeout))),
        };
        HttpClient { inner, guard: Some(guard), timeout }
    }

    /// Direct connections only, no destination checked.
    pub fn direct(timeout: Duration) -> Self {
        let inner = Inner::Direct { open: pooled(ConnectResolver::open(Resolver::default()), timeout), guarded: None };
        HttpClient { inner, guard: None, timeout }
    }

    /// Whether `url` may be sent to: `Err` with reason
    /// [`EndpointNotAllowed`](super::endpoint::ENDPOINT_NOT_ALLOWED) when the
    /// guard refuses its host, without connecting. A lookup that fails or
    /// takes longer than the timeout decides nothing: connections are checked
    /// again.
    pub async fn check_destination(&self, url: &url::Url, service: &str) -> Result<(), Failure> {
        let Some(guard) = &self.guard else { return Ok(()) };
        match tokio::time::timeout(self.timeout, guard.check(url)).await {
            Ok(checked) => checked.map_err(|f| f.failure(service)),
            Err(_) => Ok(()),
        }
    }

    /// Through `proxy` (a URL), or the environment's proxy settings when `None`.
    pub fn proxied(timeout: Duration, proxy: Option<&str>) -> Self {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT);
        if let Some(proxy) = proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy).expect("a valid proxy URL"));
        }
        let inner = builder.build().expect("the HTTP client configuration is static and valid");
        HttpClient { inner: Inner::Proxied(inner), guard: None, timeout }
    }

    /// Start a request to `url`.
    pub fn request(&self, method: Method, url: impl Into<String>) -> Request {
        Request {
            method,
            target: url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            max_body: DEFAULT_MAX_BODY,
            invalid: false,
        }
    }

    /// Send a request; redirects are not followed. Connecting and the
    /// answer's head must come within the timeout, else a transient verdict
    /// (whose message names no URL). The body is then read with what is left
    /// of the timeout, up to the request's bound: an answer is returned
    /// whatever that read does, saying how it ended.
    pub async fn send(&self, request: Request, service: &str) -> Result<HttpResponse, Verdict> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let unusable = || Verdict::Transient {
            failure: Failure::new(reason::SERVICE_UNAVAILABLE, format!("{service}: the request could not be built")),
            retry_after: None,
        };
        let uri: Uri = request.target.parse().map_err(|_| unusable())?;
        if request.invalid {
            return Err(unusable());
        }
        let max_body = request.max_body;
        // A guarded client checks the destinations its guard does not trust.
        let untrusted = self.guard.as_ref().filter(|g| !g.trusts(&request.target));
        let refused = |f: destination::Forbidden| Verdict::Dead(f.failure(service));
        let mut headers = request.headers;
        headers.entry(header::USER_AGENT).or_insert(HeaderValue::from_static(USER_AGENT));
        headers.entry(header::ACCEPT).or_insert(HeaderValue::from_static("*/*"));
        let head = async {
            match &self.inner {
                Inner::Direct { open, guarded } => {
                    // The connector resolves names through the guard; IP literals it connects to as they are.
                    let host = uri.host().unwrap_or_default();
                    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
                    if let (Some(_), Ok(ip)) = (untrusted, literal) {
                        destination::check_literal(host, ip).map_err(refused)?;
                    }
                    let mut outgoing = hyper::Request::new(Full::new(request.body));
                    *outgoing.method_mut() = request.method;
                    *outgoing.uri_mut() = uri;
                    *outgoing.headers_mut() = headers;
                    let sent = match (untrusted, guarded) {
                        (Some(_), Some(guarded)) => guarded.request(outgoing).await,
                        _ => open.request(outgoing).await,
                    };
                    let response = sent.map_err(|e| match destination::forbidden_in(&e) {
                        Some(f) => refused(f.clone()),
                        None => transport_verdict(reason::SERVICE_UNAVAILABLE, connect_or_not(e.is_connect()), service),
                    })?;
                    let (parts, body) = response.into_parts();
                    Ok((parts.status, parts.headers, IncomingBody::Direct(body)))
                }
                Inner::Proxied(client) => {
                    let url = reqwest::Url::parse(&request.target).map_err(|_| unusable())?;
                    if let Some(guard) = untrusted {
                        guard.check(&url).await.map_err(refused)?;
                    }
                    let mut outgoing = reqwest::Request::new(request.method, url);
                    *outgoing.headers_mut() = headers;
                    *outgoing.body_mut() = Some(request.body.into());
                    let mut response = client.execute(outgoing).await.map_err(|e| match e.is_timeout() {
                        true => transport_verdict(reason::TIMEOUT, "timed out", service),
                        false => {
                            transport_verdict(reason::SERVICE_UNAVAILABLE, connect_or_not(e.is_connect()), service)
                        }
                    })?;
                    let headers = std::mem::take(response.headers_mut());
                    Ok((response.status(), headers, IncomingBody::Proxied(response)))
                }
            }
        };
        let (status, headers, mut body) = tokio::time::timeout_at(deadline, head)
            .await
            .unwrap_or_else(|_| Err(transport_verdict(reason::TIMEOUT, "timed out", service)))?;
        let mut buf = Vec::new();
        let body_read =
            tokio::time::timeout_at(deadline, body.read_into(&mut buf, max_body)).await.unwrap_or(BodyRead::TimedOut);
        Ok(HttpResponse { status, headers, body: String::from_utf8_lossy(&buf).into_owned(), body_read })
    }
}

/// An answer's body on either path.
enum IncomingBody {
    Direct(Incoming),
    Proxied(reqwest::Response),
}

impl IncomingBody {
    /// The next piece of the body; `Ok(None)` at its end, else how the read ended.
    async fn chunk(&mut self) -> Result<Option<Bytes>, BodyRead> {
        match self {
            IncomingBody::Direct(body) => loop {
                match body.frame().await {
                    None => return Ok(None),
                    Some(Err(_)) => return Err(BodyRead::CutOff),
                    // Trailers carry no body.
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
            // reqwest enforces the same timeout over the whole exchange.
            IncomingBody::Proxied(response) => response.chunk().await.map_err(|e| match e.is_timeout() {
                true => BodyRead::TimedOut,
                false => BodyRead::CutOff,
            }),
        }
    }

    /// Append the body to `buf`, at most `max` bytes of it.
    async fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> BodyRead {
        loop {
            match self.chunk().await {
                Ok(None) => return BodyRead::Complete,
                Ok(Some(chunk)) => {
                    let room = max.saturating_sub(buf.len());
                    if chunk.len() > room {
                        buf.extend_from_slice(&chunk[..room]);
                        return BodyRead::TooLarge;
                    }
                    buf.extend_from_slice(&chunk);
                }
                Err(ended) => return ended,
            }
        }
    }
}

fn connect_timeout(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(10))
}

fn connect_or_not(connect: bool) -> &'static str {
    if connect { "could not connect" } else { "connection failed" }
}

const USER_AGENT: &str = concat!("kube-notify/", env!("CARGO_PKG_VERSION"));

fn transport_verdict(reason: &'static str, what: &str, service: &str) -> Verdict {
    Verdict::Transient { failure: Failure::new(reason, format!("{service}: {what}")), retry_after: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> HttpClient {
        HttpClient::direct(Duration::from_secs(2))
    }

    #[test]
    fn a_proxy_in_the_environment_is_noticed() {
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| set.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(!proxy_configured(env(&[])));
        assert!(!proxy_configured(env(&[("NO_PROXY", "*"), ("HTTPS_PROXY", " ")])));
        assert!(proxy_configured(env(&[("https_proxy", "http://proxy:3128")])));
        assert!(proxy_configured(env(&[("ALL_PROXY", "socks5://proxy")])));
    }

    /// Behind a proxy, requests go to the proxy (absolute-form for http).
    #[tokio::test]
    async fn a_proxied_client_sends_through_the_proxy() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = format!("http://{}", listener.local_addr().unwrap());
        let seen = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
            String::from_utf8(head).unwrap()
        });
        let client = HttpClient::proxied(Duration::from_secs(2), Some(&proxy));
        let request = client.request(Method::POST, "http://hooks.invalid/hook/x").json(&serde_json::json!({}));
        let response = client.send(request, "webhook").await.unwrap();
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        let head = seen.await.unwrap();
        assert!(head.starts_with("POST http://hooks.invalid/hook/x HTTP/1.1\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("user-agent: kube-notify/"), "{head}");
    }

    /// A peer that answers one request with `answer` (raw bytes), then
    /// hangs up (`hold` false) or keeps the connection open until the client
    /// closes it. Returns the URL to post to.
    async fn answering(answer: Vec<u8>, hold: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook/secret", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                socket.read_exact(&mut byte).await.unwrap();
                request.push(byte[0]);
            }
            // The requests in these tests have no body.
            socket.write_all(&answer).await.unwrap();
            socket.flush().await.unwrap();
            if hold {
                let _ = socket.read(&mut byte).await;
            }
        });
        url
    }

    fn head(status: &str, content_length: usize) -> Vec<u8> {
        format!("HTTP/1.1 {status}\r\ncontent-length: {content_length}\r\n\r\n").into_bytes()
    }

    async fn post(client: &HttpClient, url: &str, max_body: Option<usize>) -> Result<HttpResponse, Verdict> {
        let mut request = client.request(Method::POST, url);
        if let Some(max) = max_body {
            request = request.max_body(max);
        }
        client.send(request, "webhook").await
    }

    #[tokio::test]
    async fn a_whole_body_is_complete() {
        let mut answer = head("200 OK", 2);
        answer.extend_from_slice(b"ok");
        let response = post(&client(), &answering(answer, false).await, None).await.unwrap();
        assert_eq!(
            (response.status, response.body.as_str(), response.body_read),
            (StatusCode::OK, "ok", BodyRead::Complete)
        );
        assert!(response.body_complete());
    }

    /// A body over the bound is read up to it; a request may raise the bound.
    #[tokio::test]
    async fn a_body_over_the_bound_is_read_up_to_it() {
        let size = DEFAULT_MAX_BODY + 10;
        let mut answer = head("200 OK", size);
        answer.extend(std::iter::repeat_n(b'x', size));
        let response = post(&client(), &answering(answer.clone(), false).await, None).await.unwrap();
        assert_eq!((response.status, response.body_read), (StatusCode::OK, BodyRead::TooLarge));
        assert_eq!(response.body.len(), DEFAULT_MAX_BODY);
        let response = post(&client(), &answering(answer, false).await, Some(size)).await.unwrap();
        assert_eq!((response.body.len(), response.body_read), (size, BodyRead::Complete));
    }

    /// Headers arrived, the body never finishes: the answer comes back when
    /// the timeout runs out, with what was read.
    #[tokio::test]
    async fn a_stalled_body_times_out_but_the_answer_stands() {
        let mut answer = head("202 Accepted", 100);
        answer.extend_from_slice(b"{\"partial\"");
        let client = HttpClient::direct(Duration::from_millis(300));
        let response = post(&client, &answering(answer, true).await, None).await.unwrap();
        assert_eq!(response.status, StatusCode::ACCEPTED);
        assert_eq!((response.body.as_str(), response.body_read), ("{\"partial\"", BodyRead::TimedOut));
    }

    #[tokio::test]
    async fn a_body_cut_off_by_the_peer_is_reported() {
        let mut answer = head("200 OK", 100);
        answer.extend_from_slice(b"{\"ok\":true");
        let response = post(&client(), &answering(answer, false).await, None).await.unwrap();
        assert_eq!((response.status, response.body_read), (StatusCode::OK, BodyRead::CutOff));
        assert_eq!(response.body, "{\"ok\":true");
    }

    /// The timeout still covers the head: no head in time is a transient
    /// failure without the URL.
    #[tokio::test]
    async fn no_head_in_time_is_a_timeout() {
        let client = HttpClient::direct(Duration::from_millis(200));
        let Err(Verdict::Transient { failure, .. }) = post(&client, &answering(Vec::new(), true).await, None).await
        else {
            panic!("expected a transient failure")
        };
        assert_eq!(failure.reason, reason::TIMEOUT);
        assert!(!failure.message.contains("secret"), "{}", failure.message);
    }

    #[test]
    fn builder_sets_what_notifiers_need() {
        let r = client()
            .request(Method::GET, "https://slack.example/api/conversations.info")
            .query(&[("channel", "C1 &2")])
            .bearer_auth("xoxb-secret");
        assert_eq!(r.target, "https://slack.example/api/conversations.info?channel=C1+%262");
        let auth = &r.headers[header::AUTHORIZATION];
        assert!(auth.is_sensitive());
        assert!(!format!("{:?}", r.headers).contains("xoxb-secret"));
        let r = client().request(Method::POST, "https://x/a?b=1").query(&[("c", "d")]).form(&[("body", "a b")]);
        assert_eq!(r.target, "https://x/a?b=1&c=d");
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/x-www-form-urlencoded");
        assert_eq!(r.body, Bytes::from_static(b"body=a+b"));
        let r = client().request(Method::POST, "https://x/").json(&serde_json::json!({"a": 1}));
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.body, Bytes::from_static(br#"{"a":1}"#));
    }

    #[tokio::test]
    async fn unusable_requests_fail_without_a_call_or_the_url() {
        let bad_header = client().request(Method::POST, "http://127.0.0.1:9/").header("x-token", "a\nb");
        let Err(Verdict::Transient { failure, .. }) = client().send(bad_header, "webhook").await else {
            panic!("expected a transient failure")
        };
        assert_eq!(failure.message, "webhook: the request could not be built");
        let bad_url = client().request(Method::POST, "https://exa mple/secret-path");
        let Err(Verdict::Transient { failure, .. }) = client().send(bad_url, "webhook").await else {
            panic!("expected a transient failure")
        };
        assert!(!failure.message.contains("secret-path"));
    }

    /// The https path (rustls) is taken, and a peer that is not TLS is a
    /// transport failure, not a panic, with no URL in the message.
    #[tokio::test]
    async fn https_to_a_peer_that_hangs_up_is_a_transport_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
            }
        });
        let request = client().request(Method::POST, format!("https://{addr}/hook/secret")).body("{}");
        let Err(Verdict::Transient { failure, .. }) = client().send(request, "webhook").await else {
            panic!("expected a transient failure")
        };
        assert_eq!(failure.reason, reason::SERVICE_UNAVAILABLE);
        assert!(!failure.message.contains("secret"), "{}", failure.message);
    }

    /// A client guarded with `resolver`, trusting `allow` (and the default API bases).
    fn guarded(resolver: super::destination::StaticResolver, allow: &[String]) -> HttpClient {
        let endpoints = super::super::ServiceEndpoints {
            slack_api: url::Url::parse("https://slack.com/api").unwrap(),
            chatwork_api: url::Url::parse("https://api.chatwork.com/v2").unwrap(),
            policy: super::super::endpoint::EndpointPolicy::new(allow).unwrap(),
        };
        let guard = super::super::destination::DestinationGuard::new(&endpoints, Resolver::new(resolver));
        HttpClient::direct_guarded(Duration::from_secs(2), guard)
    }

    /// Names that resolve to internal addresses are refused at connect time,
    /// with a dead verdict naming the host and never the path; an IP literal
    /// too; an allowed prefix reaches the same listener through the same
    /// resolver.
    #[tokio::test]
    async fn a_guarded_client_refuses_internal_destinations_unless_allowed() {
        use super::super::destination::StaticResolver;
        let url = answering(head("204 No Content", 0), false).await;
        let port = url::Url::parse(&url).unwrap().port().unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let resolver = StaticResolver::default()
            .with("loop.example", &[ip("127.0.0.1")])
            .with("ten.example", &[ip("10.0.0.1"), ip("127.0.0.1")])
            .with("metadata.example", &[ip("169.254.169.254")])
            .with("mapped.example", &[ip("::ffff:10.0.0.1")])
            .with("cgnat.example", &[ip("100.64.0.7")])
            .with("allowed.example", &[ip("127.0.0.1")]);
        let client = guarded(resolver, &[format!("http://allowed.example:{port}/hook/")]);
        for host in [
            "loop.example",
            "ten.example",
            "metadata.example",
            "mapped.example",
            "cgnat.example",
            "127.0.0.1",
            "[::ffff:127.0.0.1]",
        ] {
            let target = format!("http://{host}:{port}/hook/secret?token=t0ken");
            let Err(Verdict::Dead(failure)) = post(&client, &target, None).await else {
                panic!("{host}: expected a refusal")
            };
            assert_eq!(failure.reason, super::super::endpoint::ENDPOINT_NOT_ALLOWED, "{host}");
            assert!(failure.message.starts_with("webhook: ") && failure.message.contains(host), "{}", failure.message);
            assert!(!failure.message.contains("secret") && !failure.message.contains("t0ken"), "{}", failure.message);
        }
        // Outside the prefix, the allowed name is checked like any other.
        let outside = format!("http://allowed.example:{port}/other");
        assert!(matches!(post(&client, &outside, None).await, Err(Verdict::Dead(_))));
        let response = post(&client, &format!("http://allowed.example:{port}/hook/secret"), None).await.unwrap();
        assert_eq!(response.status, StatusCode::NO_CONTENT);
    }

    /// An unguarded client connects anywhere (tests and tools).
    #[tokio::test]
    async fn an_unguarded_client_checks_nothing() {
        let url = answering(head("204 No Content", 0), false).await;
        assert_eq!(post(&client(), &url, None).await.unwrap().status, StatusCode::NO_CONTENT);
        assert!(client().check_destination(&url::Url::parse(&url).unwrap(), "webhook").await.is_ok());
    }

    /// Behind a proxy the host is checked before the request is handed over:
    /// a refused one never reaches the proxy.
    #[tokio::test]
    async fn a_guarded_proxied_client_checks_the_host_first() {
        use super::super::destination::StaticResolver;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = format!("http://{}", listener.local_addr().unwrap());
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let plain = guarded(StaticResolver::default().with("loop.example", &[ip("127.0.0.1")]), &[]);
        let client = HttpClient { guard: plain.guard, ..HttpClient::proxied(Duration::from_secs(2), Some(&proxy)) };
        for target in ["http://loop.example/hook/secret", "http://10.1.1.1/hook/secret", "https://api.default.svc/x"] {
            let Err(Verdict::Dead(failure)) = post(&client, target, None).await else {
                panic!("{target}: expected a refusal")
            };
            assert_eq!(failure.reason, super::super::endpoint::ENDPOINT_NOT_ALLOWED);
            assert!(!failure.message.contains("secret"), "{}", failure.message);
        }
        drop(listener);
    }
}
