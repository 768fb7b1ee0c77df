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
use super::destination::{self, ConnectResolver, DestinationGuard, Resolver, Unchecked};
use super::endpoint::is_service_webhook_host;

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
/// guard's resolver let through (and never to an internal IP literal). A
/// proxy resolves names itself, after any check of ours, so behind one only
/// destinations whose addresses the operator or a service decides go
/// through it: the guard's trusted prefixes (unchecked) and the services'
/// official webhook hosts ([`is_service_webhook_host`], checked first). Any
/// other (a generic webhook) connects directly through the guard, unless
/// [`proxying_untrusted`](Self::proxying_untrusted) lets it through the proxy
/// too. A destination checked before it is handed to the proxy must resolve
/// to a permitted address then: one that does not resolve is not sent.
#[derive(Clone, Debug)]
pub struct HttpClient {
    direct: Direct,
    /// The environment's (or a given) proxy.
    proxy: Option<reqwest::Client>,
    guard: Option<DestinationGuard>,
    /// Behind a proxy, destinations the guard does not trust go through it
    /// too (checked, failing closed) instead of directly.
    proxy_untrusted: bool,
    timeout: Duration,
}

#[derive(Clone, Debug)]
struct Direct {
    /// For trusted destinations (or every one, without a guard).
    open: Client<Connector, Full<Bytes>>,
    /// For the others: connects only where the guard's resolver allows.
    guarded: Option<Box<Client<Connector, Full<Bytes>>>>,
}

/// How one request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Directly; through the guard's resolver when `guarded`.
    Direct { guarded: bool },
    /// Through the proxy; the host checked first (failing closed) when `checked`.
    Proxy { checked: bool },
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
            tracing::info!("a proxy is configured in the environment: requests go through it");
            Self::proxied(timeout, None)
        } else {
            Self::direct(timeout)
        }
    }

    /// Like [`new`](Self::new), checking every destination `guard` does not
    /// trust (behind a proxy: see [`HttpClient`]).
    pub fn guarded(timeout: Duration, guard: DestinationGuard) -> Self {
        let client = Self::direct_guarded(timeout, guard);
        if proxy_configured(|name| std::env::var(name).ok()) {
            tracing::info!(
                "a proxy is configured in the environment: the services' hosts and --allow-endpoint prefixes are \
                 reached through it, other webhooks directly (--allow-proxy-for-webhooks sends them through it)"
            );
            client.through(Self::proxy_client(timeout, None))
        } else {
            client
        }
    }

    /// Direct connections only, checking every destination `guard` does not
    /// trust; names are looked up with the guard's resolver.
    pub fn direct_guarded(timeout: Duration, guard: DestinationGuard) -> Self {
        let direct = Direct {
            open: pooled(guard.open_resolver(), timeout),
            guarded: Some(Box::new(pooled(guard.guarded_resolver(), timeout))),
        };
        HttpClient { direct, proxy: None, guard: Some(guard), proxy_untrusted: false, timeout }
    }

    /// Direct connections only, no destination checked.
    pub fn direct(timeout: Duration) -> Self {
        let direct = Direct { open: pooled(ConnectResolver::open(Resolver::default()), timeout), guarded: None };
        HttpClient { direct, proxy: None, guard: None, proxy_untrusted: false, timeout }
    }

    /// This client, reaching destinations through `proxy` as [`HttpClient`] says.
    fn through(self, proxy: reqwest::Client) -> Self {
        HttpClient { proxy: Some(proxy), ..self }
    }

    /// Behind a proxy, send destinations the guard does not trust (generic
    /// webhooks) through it too, each checked first and refused when its
    /// name does not resolve (`--allow-proxy-for-webhooks`); without,
    /// they connect directly through the guard. No effect without a proxy.
    pub fn proxying_untrusted(self, allow: bool) -> Self {
        HttpClient { proxy_untrusted: allow, ..self }
    }

    /// How a request to `target` goes.
    fn route(&self, target: &str) -> Route {
        let Some(guard) = &self.guard else {
            return match self.proxy {
                Some(_) => Route::Proxy { checked: false },
                None => Route::Direct { guarded: false },
            };
        };
        let trusted = guard.trusts(target);
        if self.proxy.is_none() {
            return Route::Direct { guarded: !trusted };
        }
        let service_host = url::Url::parse(target).is_ok_and(|u| is_service_webhook_host(&u));
        match (trusted, service_host || self.proxy_untrusted) {
            (true, _) => Route::Proxy { checked: false },
            (false, true) => Route::Proxy { checked: true },
            (false, false) => Route::Direct { guarded: true },
        }
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

    /// Through `proxy` (a URL), or the environment's proxy settings when
    /// `None`; no destination is checked.
    pub fn proxied(timeout: Duration, proxy: Option<&str>) -> Self {
        Self::direct(timeout).through(Self::proxy_client(timeout, proxy))
    }

    /// [`direct_guarded`](Self::direct_guarded), behind `proxy` (a URL) as [`HttpClient`] says.
    pub fn proxied_guarded(timeout: Duration, proxy: &str, guard: DestinationGuard) -> Self {
        Self::direct_guarded(timeout, guard).through(Self::proxy_client(timeout, Some(proxy)))
    }

    fn proxy_client(timeout: Duration, proxy: Option<&str>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT);
        if let Some(proxy) = proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy).expect("a valid proxy URL"));
        }
        builder.build().expect("the HTTP client configuration is static and valid")
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
        let route = self.route(&request.target);
        let refused = |f: destination::Forbidden| Verdict::Dead(f.failure(service));
        let mut headers = request.headers;
        headers.entry(header::USER_AGENT).or_insert(HeaderValue::from_static(USER_AGENT));
        headers.entry(header::ACCEPT).or_insert(HeaderValue::from_static("*/*"));
        let head = async {
            match (route, &self.proxy) {
                (Route::Proxy { checked }, Some(client)) => {
                    let url = reqwest::Url::parse(&request.target).map_err(|_| unusable())?;
                    if let (true, Some(guard)) = (checked, &self.guard) {
                        guard.check_resolving(&url).await.map_err(|e| match e {
                            Unchecked::Forbidden(f) => refused(f),
                            Unchecked::Unresolved(host) => unresolved(&host, service),
                        })?;
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
                (route, _) => {
                    // Without a proxy, a destination meant for one is guarded like any other.
                    let guarded = match route {
                        Route::Direct { guarded } => guarded,
                        Route::Proxy { .. } => self.guard.is_some(),
                    };
                    let Direct { open, guarded: guarded_client } = &self.direct;
                    // The connector resolves names through the guard; IP literals it connects to as they are.
                    let host = uri.host().unwrap_or_default();
                    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
                    if let (true, Ok(ip)) = (guarded, literal) {
                        destination::check_literal(host, ip).map_err(refused)?;
                    }
                    let mut outgoing = hyper::Request::new(Full::new(request.body));
                    *outgoing.method_mut() = request.method;
                    *outgoing.uri_mut() = uri;
                    *outgoing.headers_mut() = headers;
                    let sent = match (guarded, guarded_client) {
                        (true, Some(guarded)) => guarded.request(outgoing).await,
                        _ => open.request(outgoing).await,
                    };
                    let response = sent.map_err(|e| match destination::forbidden_in(&e) {
                        Some(f) => refused(f.clone()),
                        None => transport_verdict(reason::SERVICE_UNAVAILABLE, connect_or_not(e.is_connect()), service),
                    })?;
                    let (parts, body) = response.into_parts();
                    Ok((parts.status, parts.headers, IncomingBody::Direct(body)))
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

/// A destination that was to be handed to the proxy and did not resolve: not
/// sent (the proxy would resolve it unchecked), a transient failure naming
/// the host only.
fn unresolved(host: &str, service: &str) -> Verdict {
    let what = format!(
        "{host} did not resolve: behind a proxy, a destination is sent only once the operator resolved it \
         to an allowed address"
    );
    transport_verdict(reason::SERVICE_UNAVAILABLE, &what, service)
}

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

    /// A proxy that records the head of every request it gets and answers
    /// 204 (a CONNECT: 502). Returns its URL and the heads.
    async fn recording_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = format!("http://{}", listener.local_addr().unwrap());
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if socket.read_exact(&mut byte).await.is_err() {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let answer: &[u8] = if head.starts_with("CONNECT ") {
                        b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 204 No Content\r\n\r\n"
                    };
                    seen.lock().unwrap().push(head);
                    let _ = socket.write_all(answer).await;
                });
            }
        });
        (proxy, heads)
    }

    /// A guarded client behind `proxy`, trusting `allow` (and the default API bases).
    fn guarded_behind(proxy: &str, resolver: super::destination::StaticResolver, allow: &[String]) -> HttpClient {
        let endpoints = super::super::ServiceEndpoints {
            slack_api: url::Url::parse("https://slack.com/api").unwrap(),
            chatwork_api: url::Url::parse("https://api.chatwork.com/v2").unwrap(),
            policy: super::super::endpoint::EndpointPolicy::new(allow).unwrap(),
        };
        let guard = super::super::destination::DestinationGuard::new(&endpoints, Resolver::new(resolver));
        HttpClient::proxied_guarded(Duration::from_secs(2), proxy, guard)
    }

    /// Which destinations go through a proxy: the trusted ones (unchecked),
    /// the services' official hosts (checked); generic webhooks directly
    /// through the guard unless allowed through it (then checked).
    #[test]
    fn behind_a_proxy_only_destinations_we_or_a_service_decide_go_through_it() {
        let client = guarded_behind("http://proxy.invalid:3128", Default::default(), &["https://hooks.corp/".into()]);
        let slack_hook = "https://hooks.slack.com/services/T1/B2/secret";
        let teams = "https://prod-1.westeurope.logic.azure.com:443/workflows/a/triggers/manual/paths/invoke?sig=s";
        let cases = [
            ("https://slack.com/api/chat.postMessage", Route::Proxy { checked: false }),
            ("https://api.chatwork.com/v2/rooms/1/messages", Route::Proxy { checked: false }),
            ("https://hooks.corp/a", Route::Proxy { checked: false }),
            (slack_hook, Route::Proxy { checked: true }),
            (teams, Route::Proxy { checked: true }),
            ("http://hooks.slack.com/services/T1/B2/x", Route::Direct { guarded: true }),
            ("https://hooks.example.com/h", Route::Direct { guarded: true }),
            ("https://10.0.0.1/h", Route::Direct { guarded: true }),
        ];
        for (target, route) in cases {
            assert_eq!(client.route(target), route, "{target}");
        }
        let allowing = client.clone().proxying_untrusted(true);
        assert_eq!(allowing.route("https://hooks.example.com/h"), Route::Proxy { checked: true });
        assert_eq!(allowing.route("https://hooks.corp/a"), Route::Proxy { checked: false });
        // Without a proxy: direct, guarded unless trusted; the flag changes nothing.
        let direct = guarded(Default::default(), &[]).proxying_untrusted(true);
        assert_eq!(direct.route(slack_hook), Route::Direct { guarded: true });
        assert_eq!(direct.route("https://slack.com/api/x"), Route::Direct { guarded: false });
        // Unguarded clients (tools): everything through the proxy.
        let tool = HttpClient::proxied(Duration::from_secs(1), Some("http://proxy.invalid:3128"));
        assert_eq!(tool.route("https://hooks.example.com/h"), Route::Proxy { checked: false });
    }

    /// Behind a proxy, a generic webhook never reaches the proxy (which would
    /// resolve its name again, unchecked): it connects directly, through the
    /// guard, which refuses an internal destination.
    #[tokio::test]
    async fn behind_a_proxy_generic_webhooks_connect_directly_through_the_guard() {
        use super::super::destination::StaticResolver;
        let (proxy, heads) = recording_proxy().await;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let resolver = StaticResolver::default().with("loop.example", &[ip("127.0.0.1")]);
        let client = guarded_behind(&proxy, resolver, &[]);
        for target in ["http://loop.example/hook/secret", "http://10.1.1.1/hook/secret", "https://api.default.svc/x"] {
            let Err(Verdict::Dead(failure)) = post(&client, target, None).await else {
                panic!("{target}: expected a refusal")
            };
            assert_eq!(failure.reason, super::super::endpoint::ENDPOINT_NOT_ALLOWED);
            assert!(!failure.message.contains("secret"), "{}", failure.message);
        }
        // A name that does not resolve fails to connect, directly.
        let Err(Verdict::Transient { .. }) = post(&client, "http://nowhere.example/hook", None).await else {
            panic!("expected a transient failure")
        };
        assert!(heads.lock().unwrap().is_empty(), "nothing reached the proxy: {:?}", heads.lock().unwrap());
    }

    /// Behind a proxy, a destination handed to it is checked first, failing
    /// closed: internal is refused, a name that does not resolve is not sent
    /// (a transient failure naming the host only), a public one goes through.
    #[tokio::test]
    async fn behind_a_proxy_a_checked_destination_must_resolve() {
        use super::super::destination::StaticResolver;
        let (proxy, heads) = recording_proxy().await;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let resolver = StaticResolver::default()
            .with("hooks.slack.com", &[ip("10.0.0.1")])
            .with("public.example", &[ip("93.184.215.14")])
            .with("ten.example", &[ip("10.0.0.2")]);
        let client = guarded_behind(&proxy, resolver, &[]);
        // The official host, resolving to an internal address: refused before the proxy.
        let slack = "https://hooks.slack.com/services/T1/B2/secret";
        let Err(Verdict::Dead(failure)) = post(&client, slack, None).await else { panic!("expected a refusal") };
        assert_eq!(failure.reason, super::super::endpoint::ENDPOINT_NOT_ALLOWED);
        // A Teams host that does not resolve: not sent.
        let teams = "https://prod-1.westeurope.logic.azure.com/workflows/a/triggers/manual/paths/invoke?sig=s3cret";
        let Err(Verdict::Transient { failure, .. }) = post(&client, teams, None).await else {
            panic!("expected a transient failure")
        };
        assert_eq!(failure.reason, reason::SERVICE_UNAVAILABLE);
        assert!(failure.message.contains("prod-1.westeurope.logic.azure.com did not resolve"), "{}", failure.message);
        assert!(!failure.message.contains("s3cret") && !failure.message.contains("workflows"), "{}", failure.message);
        assert!(heads.lock().unwrap().is_empty(), "nothing reached the proxy");

        // --allow-proxy-for-webhooks: generic webhooks go through it too, checked the same way.
        let client = client.proxying_untrusted(true);
        let Err(Verdict::Transient { failure, .. }) = post(&client, "http://nowhere.example/hook", None).await else {
            panic!("expected a transient failure")
        };
        assert!(failure.message.contains("nowhere.example did not resolve"), "{}", failure.message);
        let Err(Verdict::Dead(_)) = post(&client, "http://ten.example/hook", None).await else {
            panic!("expected a refusal")
        };
        assert!(heads.lock().unwrap().is_empty(), "nothing refused reached the proxy");
        let response = post(&client, "http://public.example/hook/x", None).await.unwrap();
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(heads[0].starts_with("POST http://public.example/hook/x HTTP/1.1\r\n"), "{heads:?}");
    }

    /// A trusted destination (an --allow-endpoint prefix, the API bases) goes
    /// through the proxy as it is: the operator chose it.
    #[tokio::test]
    async fn behind_a_proxy_trusted_destinations_go_through_it_unchecked() {
        let (proxy, heads) = recording_proxy().await;
        let client = guarded_behind(&proxy, Default::default(), &["http://hooks.corp.example/".into()]);
        let response = post(&client, "http://hooks.corp.example/a", None).await.unwrap();
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        let Err(Verdict::Transient { .. }) = post(&client, "https://slack.com/api/chat.postMessage", None).await else {
            panic!("the recording proxy refuses CONNECT")
        };
        let heads = heads.lock().unwrap().clone();
        assert!(heads[0].starts_with("POST http://hooks.corp.example/a HTTP/1.1\r\n"), "{heads:?}");
        assert!(heads[1].starts_with("CONNECT slack.com:443 HTTP/1.1\r\n"), "{heads:?}");
    }
}
