//! One notifier per service behind the [`Notifier`] trait, the shared HTTP
//! client ([`http`]), response classification ([`classify`]) and the endpoint
//! policy ([`endpoint`]).
//!
//! [`build`] turns an integration's spec and its Secret's data into a
//! notifier (pure: shape checks, endpoint policy); the notifier then checks
//! its credentials against the service without posting a visible message.

pub mod chatwork;
pub mod classify;
pub mod destination;
pub mod endpoint;
pub mod http;
pub mod mentions;
pub mod render;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use url::Url;

use crate::crd::{NotificationIntegrationSpec, Service};
use crate::redact::{Credential, SecretUrl};
use classify::{Failure, Verdict};
use endpoint::EndpointPolicy;
use http::HttpClient;
pub use render::Message;

/// Reasons for configuration problems found before any call to a service.
pub mod reason {
    pub const SECRET_KEY_MISSING: &str = "SecretKeyMissing";
    pub const INVALID_SECRET: &str = "InvalidSecret";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const INVALID_TOKEN: &str = "InvalidToken";
    pub const INVALID_SIGNING_SECRET: &str = "InvalidSigningSecret";
}

pub const KEY_WEBHOOK_URL: &str = "webhookUrl";
pub const KEY_TOKEN: &str = "token";
pub const KEY_SIGNING_SECRET: &str = "signingSecret";

/// The Secret key that holds an integration's main credential:
/// `spec.secretRef.key`, else the service's default (`token` for Chatwork and
/// for a Slack bot with `spec.slack.channel`, `webhookUrl` otherwise).
pub fn main_key(spec: &NotificationIntegrationSpec) -> &str {
    let bot = spec.slack.as_ref().and_then(|s| s.channel.as_deref()).is_some_and(|c| !c.trim().is_empty());
    let default = match spec.service {
        Service::Slack if bot => KEY_TOKEN,
        Service::Chatwork => KEY_TOKEN,
        Service::Slack | Service::Msteams | Service::Webhook => KEY_WEBHOOK_URL,
    };
    spec.secret_ref.key.as_deref().unwrap_or(default)
}

/// Where the services live, and which other endpoints are allowed.
#[derive(Clone, Debug)]
pub struct ServiceEndpoints {
    pub slack_api: Url,
    pub chatwork_api: Url,
    pub policy: EndpointPolicy,
}

/// A configured destination that can check its credentials.
pub trait Notifier: Send + Sync {
    fn service(&self) -> Service;

    /// Check the credentials without posting a visible message. `Success`
    /// means valid, `Dead`/`Rejected` invalid, `Transient` unknown.
    fn validate<'a>(&'a self, http: &'a HttpClient) -> BoxFuture<'a, Verdict>;

    /// Whether [`Notifier::validate`] calls the service. Checks that only
    /// look at the configuration (a URL's shape) need no validation-limiter
    /// permit, so many such integrations become Ready at once.
    fn validation_calls_service(&self) -> bool {
        true
    }

    /// Post one message, once (retries are the delivery engine's job).
    fn deliver<'a>(&'a self, http: &'a HttpClient, message: &'a Message) -> BoxFuture<'a, Verdict>;

    /// Where the people its messages mention are found.
    fn mention_directory(&self) -> mentions::Directory;

    /// The rate limits that apply to this destination: `(key, quota)` pairs,
    /// the key naming what the service counts (a webhook, a room, a token)
    /// without containing a credential.
    fn rate_limits(&self) -> Vec<(String, governor::Quota)>;
}

/// A short, non-reversible name for a credential, for rate-limit keys (in memory only).
pub fn fingerprint(secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `n` per `period`, with bursts of `burst`.
pub fn quota(n: u32, period: std::time::Duration, burst: u32) -> governor::Quota {
    let per_one = period / n.max(1);
    governor::Quota::with_period(per_one)
        .expect("a rate-limit period is never zero")
        .allow_burst(std::num::NonZeroU32::new(burst.max(1)).expect("burst is at least 1"))
}

/// The Secret's value under `key`, trimmed, as text.
fn secret_value(data: &BTreeMap<String, Vec<u8>>, key: &str, secret_name: &str) -> Result<Option<Credential>, Failure> {
    let Some(bytes) = data.get(key) else { return Ok(None) };
    let text = std::str::from_utf8(bytes).map_err(|_| {
        Failure::new(reason::INVALID_SECRET, format!("key {key:?} of Secret {secret_name:?} is not UTF-8 text"))
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(Failure::new(reason::INVALID_SECRET, format!("key {key:?} of Secret {secret_name:?} is empty")));
    }
    Ok(Some(Credential::new(text)))
}

fn required_value(data: &BTreeMap<String, Vec<u8>>, key: &str, secret_name: &str) -> Result<Credential, Failure> {
    secret_value(data, key, secret_name)?.ok_or_else(|| {
        let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
        keys.sort();
        Failure::new(
            reason::SECRET_KEY_MISSING,
            format!(
                "Secret {secret_name:?} has no key {key:?} (it has: {})",
                if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
            ),
        )
    })
}

/// The Secret's value under `key`, which is sent in an HTTP header: visible
/// ASCII only (a control character, a space or a non-ASCII character could
/// not be sent, and no service's token has one).
fn header_token(data: &BTreeMap<String, Vec<u8>>, key: &str, secret_name: &str) -> Result<Credential, Failure> {
    let token = required_value(data, key, secret_name)?;
    if token.expose().bytes().all(|b| b.is_ascii_graphic()) {
        Ok(token)
    } else {
        Err(Failure::new(
            reason::INVALID_TOKEN,
            format!(
                "key {key:?} of Secret {secret_name:?} holds characters that cannot be sent in an HTTP header \
                 (control characters, spaces or non-ASCII text)"
            ),
        ))
    }
}

/// Build the notifier for an integration from its spec and its Secret's data.
/// Pure: every error names the field or key at fault, never a credential.
pub fn build(
    spec: &NotificationIntegrationSpec,
    secret_name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    endpoints: &ServiceEndpoints,
) -> Result<Box<dyn Notifier>, Failure> {
    let key_override = spec.secret_ref.key.as_deref();
    match spec.service {
        Service::Slack => {
            let slack = spec.slack.clone().unwrap_or_default();
            match slack.channel.filter(|c| !c.trim().is_empty()) {
                Some(channel) => {
                    let key = key_override.unwrap_or(KEY_TOKEN);
                    let token = header_token(data, key, secret_name)?;
                    if !token.expose().starts_with("xoxb-") {
                        return Err(Failure::new(
                            reason::INVALID_TOKEN,
                            format!(
                                "key {key:?} of Secret {secret_name:?} must hold a Slack bot token (xoxb-…) when spec.slack.channel is set"
                            ),
                        ));
                    }
                    Ok(Box::new(slack::SlackBot::new(
                        endpoints.slack_api.clone(),
                        token,
                        channel,
                        slack.username,
                        slack.icon_emoji,
                    )))
                }
                None => {
                    let key = key_override.unwrap_or(KEY_WEBHOOK_URL);
                    let raw = required_value(data, key, secret_name)?;
                    let url = endpoint::parse_url(raw.expose(), key)?;
                    endpoint::check_slack_webhook(&url, &endpoints.policy)?;
                    Ok(Box::new(slack::SlackWebhook::new(SecretUrl::new(raw, url))))
                }
            }
        }
        Service::Chatwork => {
            let room_id = spec
                .chatwork
                .as_ref()
                .map(|c| c.room_id.trim().to_string())
                .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
                .ok_or_else(|| {
                    Failure::new(
                        reason::INVALID_SPEC,
                        "spec.chatwork.roomId (a numeric room ID) is required for Chatwork",
                    )
                })?;
            let key = key_override.unwrap_or(KEY_TOKEN);
            let token = header_token(data, key, secret_name)?;
            Ok(Box::new(chatwork::Chatwork::new(endpoints.chatwork_api.clone(), token, room_id)))
        }
        Service::Msteams => {
            let key = key_override.unwrap_or(KEY_WEBHOOK_URL);
            let raw = required_value(data, key, secret_name)?;
            let url = endpoint::parse_url(raw.expose(), key)?;
            endpoint::check_teams_workflow(&url, &endpoints.policy)?;
            Ok(Box::new(teams::TeamsWorkflow::new(SecretUrl::new(raw, url))))
        }
        Service::Webhook => {
            let key = key_override.unwrap_or(KEY_WEBHOOK_URL);
            let raw = required_value(data, key, secret_name)?;
            let url = endpoint::parse_url(raw.expose(), key)?;
            endpoint::check_generic_webhook(&url, &endpoints.policy)?;
            let signing = secret_value(data, KEY_SIGNING_SECRET, secret_name)?
                .map(|s| webhook::SigningKey::parse(&s, secret_name))
                .transpose()?;
            Ok(Box::new(webhook::GenericWebhook::new(SecretUrl::new(raw, url), signing)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ChatworkSpec, SecretRef, SlackSpec};

    fn endpoints() -> ServiceEndpoints {
        ServiceEndpoints {
            slack_api: Url::parse("https://slack.com/api").unwrap(),
            chatwork_api: Url::parse("https://api.chatwork.com/v2").unwrap(),
            policy: EndpointPolicy::default(),
        }
    }

    fn spec(service: Service) -> NotificationIntegrationSpec {
        NotificationIntegrationSpec {
            service,
            secret_ref: SecretRef { name: "s".into(), key: None },
            slack: None,
            chatwork: None,
            disabled: false,
            error_threshold: 5,
        }
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    fn err(r: Result<Box<dyn Notifier>, Failure>) -> Failure {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn missing_key_names_the_key_and_lists_present_keys() {
        let e = err(build(&spec(Service::Slack), "s", &data(&[("url", "x")]), &endpoints()));
        assert_eq!(e.reason, reason::SECRET_KEY_MISSING);
        assert!(e.message.contains("\"webhookUrl\"") && e.message.contains("url"), "{}", e.message);
    }

    #[test]
    fn main_key_is_the_key_build_asks_for() {
        let mut bot = spec(Service::Slack);
        bot.slack = Some(SlackSpec { channel: Some("C1".into()), ..SlackSpec::default() });
        let mut room = spec(Service::Chatwork);
        room.chatwork = Some(ChatworkSpec { room_id: "1".into() });
        let mut overridden = spec(Service::Webhook);
        overridden.secret_ref.key = Some("endpoint".into());
        for s in [spec(Service::Slack), bot, room, spec(Service::Msteams), spec(Service::Webhook), overridden] {
            let e = err(build(&s, "s", &data(&[]), &endpoints()));
            assert_eq!(e.reason, reason::SECRET_KEY_MISSING);
            assert!(e.message.contains(&format!("{:?}", main_key(&s))), "{:?}: {}", s.service, e.message);
        }
    }

    #[test]
    fn key_override_is_used() {
        let mut s = spec(Service::Webhook);
        s.secret_ref.key = Some("endpoint".into());
        assert!(build(&s, "s", &data(&[("endpoint", "https://example.com/h")]), &endpoints()).is_ok());
    }

    #[test]
    fn errors_never_contain_the_credential() {
        let secret_url = "http://hooks.slack.com/services/T1/B2/supersecretvalue";
        let e = err(build(&spec(Service::Slack), "s", &data(&[("webhookUrl", secret_url)]), &endpoints()));
        assert!(!e.message.contains("supersecretvalue"), "{}", e.message);
        let mut s = spec(Service::Slack);
        s.slack = Some(SlackSpec { channel: Some("C1".into()), ..Default::default() });
        let e = err(build(&s, "s", &data(&[("token", "xoxp-user-secret")]), &endpoints()));
        assert_eq!(e.reason, reason::INVALID_TOKEN);
        assert!(!e.message.contains("xoxp-user-secret"));
    }

    #[test]
    fn chatwork_needs_a_numeric_room() {
        let e = err(build(&spec(Service::Chatwork), "s", &data(&[("token", "t")]), &endpoints()));
        assert_eq!(e.reason, reason::INVALID_SPEC);
        let mut s = spec(Service::Chatwork);
        s.chatwork = Some(ChatworkSpec { room_id: "123".into() });
        assert!(build(&s, "s", &data(&[("token", "t")]), &endpoints()).is_ok());
    }

    #[test]
    fn empty_and_binary_values_are_invalid() {
        let e = err(build(&spec(Service::Webhook), "s", &data(&[("webhookUrl", "  \n")]), &endpoints()));
        assert_eq!(e.reason, reason::INVALID_SECRET);
        let mut d = BTreeMap::new();
        d.insert("webhookUrl".to_string(), vec![0xff, 0xfe]);
        let e = err(build(&spec(Service::Webhook), "s", &d, &endpoints()));
        assert_eq!(e.reason, reason::INVALID_SECRET);
    }

    /// A token or URL that could not go into an HTTP request is invalid at
    /// once (no call is made), naming the key and never the value.
    #[test]
    fn header_invalid_credentials_are_invalid_naming_the_key() {
        let mut chatwork = spec(Service::Chatwork);
        chatwork.chatwork = Some(ChatworkSpec { room_id: "123".into() });
        let mut bot = spec(Service::Slack);
        bot.slack = Some(SlackSpec { channel: Some("C1".into()), ..Default::default() });
        for bad in ["zq1\nzq2", "zq1\u{7f}zq2", "zq1\u{1}zq2", "zq1 zq2", "zq1\tzq2", "zq\u{f8}1", "zq1\r\nX-Evil: 1"] {
            for (s, value) in [(&chatwork, bad.to_string()), (&bot, format!("xoxb-{bad}"))] {
                let e = err(build(s, "creds", &data(&[("token", &value)]), &endpoints()));
                assert_eq!(e.reason, reason::INVALID_TOKEN, "{bad:?}");
                assert!(e.message.contains("\"token\"") && e.message.contains("\"creds\""), "{}", e.message);
                assert!(!e.message.contains("zq"), "{}", e.message);
            }
        }
        // Surrounding whitespace is trimmed, as before.
        assert!(build(&chatwork, "creds", &data(&[("token", " abc123\n")]), &endpoints()).is_ok());
        for (service, url) in [
            (Service::Webhook, "https://example.com/hook/zq\nzq"),
            (Service::Webhook, "https://example.com/hook/zq\u{7f}zq"),
            (Service::Webhook, "https://exam\tple.com/hook/zq"),
            (Service::Slack, "https://hooks.slack.com/services/T1/B2/zq\rzq"),
            (Service::Msteams, "https://x.logic.azure.com/workflows/a/triggers/manual/paths/invoke?sig=zq\u{0}zq"),
        ] {
            let e = err(build(&spec(service), "hooks", &data(&[("webhookUrl", url)]), &endpoints()));
            assert_eq!(e.reason, endpoint::INVALID_URL, "{url:?}");
            assert!(e.message.contains("\"webhookUrl\"") && !e.message.contains("zq"), "{}", e.message);
        }
    }
}
