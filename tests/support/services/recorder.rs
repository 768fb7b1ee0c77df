//! What an emulator received, and async waits on it.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;
use tokio::sync::watch;

/// One HTTP request as the emulator received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Arrival order across the emulator, from 0.
    pub seq: usize,
    pub method: String,
    /// Path without query, e.g. `/api/chat.postMessage`.
    pub path: String,
    /// Raw query string without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub received_at: SystemTime,
    /// Whether a scripted response (other than a pass-through) answered it.
    pub scripted: bool,
    /// Status the emulator answered with; `None` while still pending or when
    /// the connection was closed/reset without a response.
    pub status: Option<u16>,
}

impl RecordedRequest {
    pub fn body_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query.as_deref().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default()
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The body parsed as `application/x-www-form-urlencoded` (empty when it
    /// is not).
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }

    pub fn form_param(&self, name: &str) -> Option<String> {
        self.form().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Media type of the body, lower-case, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
    }

    /// `path?query`.
    pub fn uri(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }
}

pub(crate) struct Recorder<M> {
    requests: Mutex<Vec<RecordedRequest>>,
    messages: Mutex<Vec<M>>,
    request_count: watch::Sender<usize>,
    message_count: watch::Sender<usize>,
}

impl<M: Clone> Recorder<M> {
    pub(crate) fn new() -> Self {
        Self {
            requests: Mutex::new(Vec::new()),
            messages: Mutex::new(Vec::new()),
            request_count: watch::Sender::new(0),
            message_count: watch::Sender::new(0),
        }
    }

    /// Stores the request (its `seq` is assigned here) and returns its index.
    pub(crate) fn record(&self, mut request: RecordedRequest) -> usize {
        let (index, len) = {
            let mut requests = self.requests.lock().unwrap();
            let index = requests.len();
            request.seq = index;
            requests.push(request);
            (index, requests.len())
        };
        self.request_count.send_replace(len);
        index
    }

    pub(crate) fn set_status(&self, index: usize, status: Option<u16>) {
        if let Some(r) = self.requests.lock().unwrap().get_mut(index) {
            r.status = status;
        }
    }

    pub(crate) fn push_message(&self, message: M) {
        let len = {
            let mut messages = self.messages.lock().unwrap();
            messages.push(message);
            messages.len()
        };
        self.message_count.send_replace(len);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub(crate) fn messages(&self) -> Vec<M> {
        self.messages.lock().unwrap().clone()
    }

    pub(crate) fn clear(&self) {
        self.requests.lock().unwrap().clear();
        self.messages.lock().unwrap().clear();
        self.request_count.send_replace(0);
        self.message_count.send_replace(0);
    }

    /// Waits until at least `n` requests were recorded; `None` on timeout.
    pub(crate) async fn wait_requests(&self, n: usize, timeout: Duration) -> Option<Vec<RecordedRequest>> {
        let mut rx = self.request_count.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await.ok()?.ok()?;
        Some(self.requests())
    }

    /// Waits until at least `n` messages were posted; `None` on timeout.
    pub(crate) async fn wait_messages(&self, n: usize, timeout: Duration) -> Option<Vec<M>> {
        let mut rx = self.message_count.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await.ok()?.ok()?;
        Some(self.messages())
    }
}
