//! A generic webhook, optionally signed the Standard Webhooks way.

use base64::Engine;
use futures::FutureExt;
use futures::future::BoxFuture;
use http::StatusCode;

use super::classify::{self, Failure, Verdict, reason};
use super::http::{HttpClient, HttpResponse, Method};
use hmac::{Hmac, Mac};

use super::render::{self, Message};
use super::slack::scrub_verdict;
use super::{KEY_SIGNING_SECRET, Notifier, mentions};
use crate::crd::Service;
use crate::redact::{Credential, SecretUrl};

const SERVICE: &str = "webhook";

/// Classify a generic webhook response: 2xx success whatever its body and
/// however its read ended (the receiver took the message), 3xx failure (never
/// followed), 410 gone, 429 and 5xx transient, other 4xx rejected (401/403/404
/// dead: the endpoint refuses us whatever we send).
pub fn classify_webhook_response(response: &HttpResponse) -> Verdict {
    let status = response.status;
    if status.is_success() {
        return Verdict::Success;
    }
    if let Some(v) = classify::classify_common(status, &response.headers, SERVICE) {
        return v;
    }
    match status {
        StatusCode::GONE | StatusCode::NOT_FOUND => Verdict::Dead(Failure::new(
            reason::DESTINATION_NOT_FOUND,
            format!("the webhook endpoint answered HTTP {}", status.as_u16()),
        )),
        StatusCode::UNAUTHORIZED => {
            Verdict::Dead(Failure::new(reason::UNAUTHORIZED, "the webhook endpoint answered HTTP 401"))
        }
        StatusCode::FORBIDDEN => {
            Verdict::Dead(Failure::new(reason::FORBIDDEN, "the webhook endpoint answered HTTP 403"))
        }
        // The body is not shown: a generic endpoint's answer does not belong in status.
        _ => Verdict::Rejected(Failure::new(
            reason::MESSAGE_REJECTED,
            format!("the webhook endpoint answered HTTP {}", status.as_u16()),
        )),
    }
}

/// A Standard Webhooks signing key, written `whsec_<base64>`.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn parse(secret: &Credential, secret_name: &str) -> Result<Self, Failure> {
        let raw = secret.expose();
        let b64 = raw.strip_prefix("whsec_").unwrap_or(raw);
        base64::engine::general_purpose::STANDARD.decode(b64).map(SigningKey).map_err(|_| {
            Failure::new(
                super::reason::INVALID_SIGNING_SECRET,
                format!("key {KEY_SIGNING_SECRET:?} of Secret {secret_name:?} must be whsec_ followed by base64"),
            )
        })
    }

    pub fn key(&self) -> &[u8] {
        &self.0
    }
}

/// A generic webhook endpoint.
pub struct GenericWebhook {
    url: SecretUrl,
    signing_key: Option<SigningKey>,
}

impl GenericWebhook {
    pub fn new(url: SecretUrl, signing_key: Option<SigningKey>) -> Self {
        GenericWebhook { url, signing_key }
    }
}

impl Notifier for GenericWebhook {
    fn service(&self) -> Service {
        Service::Webhook
    }

    fn mention_directory(&self) -> mentions::Directory {
        mentions::Directory::Webhook
    }

    /// No probe (an endpoint would take it as an event): the URL was checked
    /// against the endpoint policy when the notifier was built, and its host
    /// is checked against the client's destination guard here (a lookup, no
    /// connection).
    fn validate<'a>(&'a self, http: &'a HttpClient) -> BoxFuture<'a, Verdict> {
        async move {
            let verdict = match http.check_destination(self.url.expose(), SERVICE).await {
                Ok(()) => Verdict::Success,
                Err(refused) => Verdict::Dead(refused),
            };
            scrub_verdict(verdict, &self.url.forms())
        }
        .boxed()
    }

    /// The URL's shape was checked when the notifier was built; nothing to ask.
    fn validation_calls_service(&self) -> bool {
        false
    }

    fn deliver<'a>(&'a self, http: &'a HttpClient, message: &'a Message) -> BoxFuture<'a, Verdict> {
        async move {
            let timestamp = message.created_at.to_string();
            let body = serde_json::to_vec(&render::webhook::render(message, &timestamp))
                .expect("a JSON value always serializes");
            let mut request = http
                .request(Method::POST, self.url.expose().as_str())
                .header(http::header::CONTENT_TYPE, "application/json");
            if let Some(key) = &self.signing_key {
                let timestamp = jiff::Timestamp::now().as_second();
                request = request
                    .header("webhook-id", &message.id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", sign(key, &message.id, timestamp, &body));
            }
            let verdict = match http.send(request.body(body), SERVICE).await {
                Ok(response) => classify_webhook_response(&response),
                Err(v) => v,
            };
            scrub_verdict(verdict, &self.url.forms())
        }
        .boxed()
    }

    /// Generic receivers publish no rate: none is applied; a receiver that
    /// wants fewer requests answers 429 with `Retry-After`, which is honoured.
    fn rate_limits(&self) -> Vec<(String, governor::Quota)> {
        Vec::new()
    }
}

/// `v1,<base64(HMAC-SHA256(key, id.timestamp.body))>` (Standard Webhooks).
pub fn sign(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.key()).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifier::http::BodyRead;
    use http::HeaderMap;

    fn resp(status: u16) -> HttpResponse {
        HttpResponse::complete(StatusCode::from_u16(status).unwrap(), HeaderMap::new(), "")
    }

    #[test]
    fn classes() {
        assert_eq!(classify_webhook_response(&resp(204)), Verdict::Success);
        assert!(matches!(classify_webhook_response(&resp(302)), Verdict::Dead(_)));
        assert!(matches!(classify_webhook_response(&resp(410)), Verdict::Dead(_)));
        assert!(matches!(classify_webhook_response(&resp(503)), Verdict::Transient { .. }));
        assert!(matches!(classify_webhook_response(&resp(429)), Verdict::Transient { .. }));
        assert!(matches!(classify_webhook_response(&resp(422)), Verdict::Rejected(_)));
    }

    /// The receiver took the message: a large, late or cut-off body changes nothing.
    #[test]
    fn a_2xx_is_a_delivery_however_its_body_read_ended() {
        for read in [BodyRead::TooLarge, BodyRead::TimedOut, BodyRead::CutOff] {
            for status in [200, 202, 204] {
                let response = HttpResponse { body: "<html>".repeat(10), body_read: read, ..resp(status) };
                assert_eq!(classify_webhook_response(&response), Verdict::Success, "{status} {read:?}");
            }
        }
        let cut_error = HttpResponse { body_read: BodyRead::CutOff, ..resp(503) };
        assert!(matches!(classify_webhook_response(&cut_error), Verdict::Transient { .. }));
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification's reference tests.
        let key = SigningKey::parse(&Credential::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "s").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn signing_key_format() {
        assert!(SigningKey::parse(&Credential::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "s").is_ok());
        let e = SigningKey::parse(&Credential::new("whsec_***not base64"), "s").err().unwrap();
        assert!(!e.message.contains("not base64"));
    }
}
