//! The one shared HTTP client: no redirects, a timeout, a bounded body read,
//! and transport errors turned into transient verdicts without the URL.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use super::classify::{Failure, Verdict, reason};

/// The most of a response body that is read.
const MAX_BODY: usize = 64 * 1024;

/// A service's answer.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// The shared client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    pub fn new(timeout: Duration) -> Self {
        let inner = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kube-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client configuration is static and valid");
        HttpClient { inner }
    }

    /// The underlying client, to build requests with.
    pub fn request(&self, method: reqwest::Method, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.inner.request(method, url)
    }

    /// Send a request. A transport failure becomes a transient verdict whose
    /// message names no URL.
    pub async fn send(&self, request: reqwest::RequestBuilder, service: &str) -> Result<HttpResponse, Verdict> {
        let mut response = request.send().await.map_err(|e| transport_verdict(e, service))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body = read_bounded(response).await.map_err(|e| transport_verdict(e, service))?;
        Ok(HttpResponse { status, headers, body })
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_BODY {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn transport_verdict(error: reqwest::Error, service: &str) -> Verdict {
    let error = error.without_url();
    let (reason, what) = if error.is_timeout() {
        (reason::TIMEOUT, "timed out")
    } else if error.is_connect() {
        (reason::SERVICE_UNAVAILABLE, "could not connect")
    } else {
        (reason::SERVICE_UNAVAILABLE, "connection failed")
    };
    Verdict::Transient { failure: Failure::new(reason, format!("{service}: {what}")), retry_after: None }
}
