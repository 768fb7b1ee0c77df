//! A generic receiver of Standard Webhooks.
//!
//! Endpoints are paths registered with `add_endpoint`; unknown paths 404,
//! methods other than POST 405. With a signing secret (`whsec_<base64>`) the
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` headers are
//! verified (401 when missing, stale or wrong). `set_gone` makes an endpoint
//! answer 410. Success is 200 unless changed with `set_success_status`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde_json::Value;
use sha2::Sha256;

use super::recorder::RecordedRequest;
use super::script::path_of_url;
use super::server::{Emulator, Handled, Reply, Service};
use super::unix_now;

/// How far `webhook-timestamp` may be from now (Standard Webhooks' default).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

pub type WebhookEmulator = Emulator<Webhooks>;

/// A delivery the receiver accepted (2xx).
#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    pub path: String,
    pub webhook_id: Option<String>,
    pub timestamp: Option<i64>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl WebhookDelivery {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Endpoint {
    key: Option<Vec<u8>>,
    gone: bool,
    success_status: u16,
}

struct State {
    endpoints: HashMap<String, Endpoint>,
    tolerance: Duration,
}

/// The receiver state. Set it up through `WebhookEmulator` methods.
pub struct Webhooks {
    state: Mutex<State>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Self { state: Mutex::new(State { endpoints: HashMap::new(), tolerance: DEFAULT_TOLERANCE }) }
    }
}

/// The HMAC key of a `whsec_<base64>` secret (the prefix is optional).
pub fn secret_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).unwrap_or_else(|e| panic!("signing secret is not whsec_<base64>: {e}"))
}

/// A fresh random `whsec_<base64>` secret.
pub fn generate_secret() -> String {
    let key: [u8; 24] = rand::random();
    format!("whsec_{}", STANDARD.encode(key))
}

/// `v1,<base64(HMAC-SHA256(key, id.timestamp.body))>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(signature_bytes(&secret_key(secret), id, timestamp, body)))
}

fn signature_bytes(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn normalize(path: &str) -> String {
    let path = path_of_url(path);
    if path.starts_with('/') { path } else { format!("/{path}") }
}

impl Emulator<Webhooks> {
    pub async fn start() -> Self {
        Self::launch(Webhooks::default()).await
    }

    /// Registers an endpoint at `path` (e.g. `/hooks/a`); returns its URL.
    pub fn add_endpoint(&self, path: &str) -> String {
        let path = normalize(path);
        self.state().endpoints.insert(path.clone(), Endpoint { key: None, gone: false, success_status: 200 });
        format!("{}{path}", self.url())
    }

    /// Requires valid Standard Webhooks signatures made with `secret`
    /// (`whsec_<base64>`).
    pub fn set_signing_secret(&self, path: &str, secret: &str) {
        let key = secret_key(secret);
        self.endpoint(path, |e| e.key = Some(key));
    }

    /// The endpoint answers 410 Gone from now on.
    pub fn set_gone(&self, path: &str) {
        self.endpoint(path, |e| e.gone = true);
    }

    /// Status of a successful delivery (200 by default; e.g. 202, 204).
    pub fn set_success_status(&self, path: &str, status: u16) {
        self.endpoint(path, |e| e.success_status = status);
    }

    pub fn set_timestamp_tolerance(&self, tolerance: Duration) {
        self.state().tolerance = tolerance;
    }

    /// `webhook-id` of every request to `path` (accepted or not), in order.
    pub fn webhook_ids(&self, path: &str) -> Vec<String> {
        let path = normalize(path);
        self.requests()
            .iter()
            .filter(|r| r.path == path)
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect()
    }

    fn endpoint(&self, path: &str, f: impl FnOnce(&mut Endpoint)) {
        let path = normalize(path);
        let mut state = self.state();
        let endpoint = state.endpoints.get_mut(&path).unwrap_or_else(|| panic!("unknown endpoint {path}"));
        f(endpoint);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.service().state.lock().unwrap()
    }
}

fn verify(key: &[u8], tolerance: Duration, request: &RecordedRequest) -> Result<(), &'static str> {
    let (Some(id), Some(ts), Some(signatures)) =
        (request.header("webhook-id"), request.header("webhook-timestamp"), request.header("webhook-signature"))
    else {
        return Err("missing webhook-id, webhook-timestamp or webhook-signature");
    };
    let ts: i64 = ts.trim().parse().map_err(|_| "invalid webhook-timestamp")?;
    if (unix_now() - ts).unsigned_abs() > tolerance.as_secs() {
        return Err("webhook-timestamp outside tolerance");
    }
    let expected = signature_bytes(key, id, ts, &request.body);
    let matched = signatures
        .split_whitespace()
        .any(|s| s.strip_prefix("v1,").and_then(|b64| STANDARD.decode(b64).ok()).is_some_and(|sig| sig == expected));
    if matched { Ok(()) } else { Err("no matching signature") }
}

impl Service for Webhooks {
    type Message = WebhookDelivery;

    fn handle(&self, request: &RecordedRequest) -> Handled<WebhookDelivery> {
        let state = self.state.lock().unwrap();
        let Some(endpoint) = state.endpoints.get(&request.path) else {
            return Reply::text(404, "not found").into();
        };
        if endpoint.gone {
            return Reply::text(410, "gone").into();
        }
        if request.method != "POST" {
            return Reply::text(405, "method not allowed").header("allow", "POST").into();
        }
        if let Some(key) = &endpoint.key
            && let Err(why) = verify(key, state.tolerance, request)
        {
            return Reply::text(401, why).into();
        }
        let status = endpoint.success_status;
        let reply = Reply::empty(status);
        if !(200..300).contains(&status) {
            return reply.into();
        }
        Handled::posted(
            reply,
            WebhookDelivery {
                path: request.path.clone(),
                webhook_id: request.header("webhook-id").map(str::to_owned),
                timestamp: request.header("webhook-timestamp").and_then(|t| t.trim().parse().ok()),
                headers: request.headers.clone(),
                body: request.body.clone(),
            },
        )
    }
}
