//! Slack: incoming webhooks and the Web API with a bot token.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use http::StatusCode;
use url::Url;

use super::classify::{self, Failure, Verdict, reason, snippet};
use super::http::{HttpClient, HttpResponse, Method, Request};
use super::render::{self, Message};
use super::{Notifier, fingerprint, quota};
use crate::crd::Service;
use crate::redact::{Credential, SecretUrl, scrub};

const SERVICE: &str = "Slack";

/// The reason and verdict kind of a Slack error code (webhook body or Web API `error`).
fn classify_slack_error_code(code: &str) -> Verdict {
    let dead = |r: &'static str, what: &str| Verdict::Dead(Failure::new(r, format!("Slack answered {code:?}: {what}")));
    let rejected =
        || Verdict::Rejected(Failure::new(reason::MESSAGE_REJECTED, format!("Slack rejected the message: {code:?}")));
    match code {
        "invalid_token" | "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" | "token_expired"
        | "no_team" | "team_disabled" => dead(reason::UNAUTHORIZED, "the credentials are no longer valid"),
        "action_prohibited" | "posting_to_general_channel_denied" | "missing_scope" | "restricted_action" => {
            dead(reason::FORBIDDEN, "the app may not post there")
        }
        "no_service"
        | "no_active_hooks"
        | "channel_not_found"
        | "channel_is_archived"
        | "is_archived"
        | "not_in_channel" => dead(reason::DESTINATION_NOT_FOUND, "the webhook or channel is gone"),
        "ratelimited" | "rate_limited" => Verdict::transient(reason::RATE_LIMITED, "Slack is rate limiting", None),
        "internal_error" | "service_unavailable" | "fatal_error" | "request_timeout" | "rollup_error" => {
            Verdict::transient(reason::SERVICE_UNAVAILABLE, format!("Slack answered {code:?}"), None)
        }
        _ => rejected(),
    }
}

/// Classify an incoming-webhook response: errors are bare strings in the body,
/// and the same code comes with different HTTP statuses, so the body decides.
pub fn classify_slack_webhook_response(response: &HttpResponse) -> Verdict {
    let status = response.status;
    let body = response.body.trim();
    if status.is_success() {
        return Verdict::Success;
    }
    if let Some(v) = classify::classify_common(status, &response.headers, SERVICE) {
        return v;
    }
    let code = if body.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !body.is_empty() { body } else { "" };
    if !code.is_empty() {
        return classify_slack_error_code(code);
    }
    match status {
        StatusCode::NOT_FOUND | StatusCode::GONE => Verdict::Dead(Failure::new(
            reason::DESTINATION_NOT_FOUND,
            format!("Slack answered HTTP {}", status.as_u16()),
        )),
        StatusCode::UNAUTHORIZED => Verdict::Dead(Failure::new(reason::UNAUTHORIZED, "Slack answered HTTP 401")),
        StatusCode::FORBIDDEN => Verdict::Dead(Failure::new(reason::FORBIDDEN, "Slack answered HTTP 403")),
        _ => Verdict::Rejected(Failure::new(
            reason::MESSAGE_REJECTED,
            format!("Slack answered HTTP {}: {}", status.as_u16(), snippet(body)),
        )),
    }
}

/// Classify a Web API response: HTTP 200 with `{"ok": false, "error": …}` for
/// almost every error, 429 with `Retry-After` for rate limits.
pub fn classify_slack_api_response(response: &HttpResponse) -> Verdict {
    if let Some(v) = classify::classify_common(response.status, &response.headers, SERVICE) {
        return v;
    }
    let parsed: Option<serde_json::Value> = serde_json::from_str(&response.body).ok();
    let ok = parsed.as_ref().and_then(|v| v.get("ok")).and_then(|v| v.as_bool());
    match ok {
        Some(true) if response.status.is_success() => Verdict::Success,
        Some(false) => {
            let code = parsed.as_ref().and_then(|v| v.get("error")).and_then(|v| v.as_str()).unwrap_or("unknown_error");
            classify_slack_error_code(code)
        }
        _ => Verdict::transient(
            reason::UNEXPECTED_RESPONSE,
            format!("Slack answered HTTP {} with an unexpected body", response.status.as_u16()),
            None,
        ),
    }
}

/// An incoming webhook; the whole URL is the credential.
pub struct SlackWebhook {
    url: SecretUrl,
}

impl SlackWebhook {
    pub fn new(url: SecretUrl) -> Self {
        SlackWebhook { url }
    }
}

impl Notifier for SlackWebhook {
    fn service(&self) -> Service {
        Service::Slack
    }

    /// `{}` gets `no_text` from a live webhook (nothing is posted) and the
    /// dead-destination error from a dead one.
    fn validate<'a>(&'a self, http: &'a HttpClient) -> BoxFuture<'a, Verdict> {
        async move {
            let request = http.request(Method::POST, self.url.expose().as_str()).json(&serde_json::json!({}));
            let verdict = match http.send(request, SERVICE).await {
                Ok(response) => match classify_slack_webhook_response(&response) {
                    // A live webhook parses the probe and refuses it for lack of text.
                    Verdict::Rejected(_) | Verdict::Success => Verdict::Success,
                    other => other,
                },
                Err(v) => v,
            };
            scrub_verdict(verdict, &self.url.forms())
        }
        .boxed()
    }

    fn deliver<'a>(&'a self, http: &'a HttpClient, message: &'a Message) -> BoxFuture<'a, Verdict> {
        async move {
            let request = http.request(Method::POST, self.url.expose().as_str()).json(&render::slack::render(message));
            let verdict = match http.send(request, SERVICE).await {
                Ok(response) => classify_slack_webhook_response(&response),
                Err(v) => v,
            };
            scrub_verdict(verdict, &self.url.forms())
        }
        .boxed()
    }

    /// About one message per second per webhook, short bursts tolerated.
    fn rate_limits(&self) -> Vec<(String, governor::Quota)> {
        vec![(
            format!("slack-webhook:{}", fingerprint(self.url.expose().as_str())),
            quota(1, Duration::from_secs(1), 3),
        )]
    }
}

/// The Web API with a bot token, posting to one channel.
pub struct SlackBot {
    api: Url,
    token: Credential,
    channel: String,
    username: Option<String>,
    icon_emoji: Option<String>,
}

impl SlackBot {
    pub fn new(
        api: Url,
        token: Credential,
        channel: String,
        username: Option<String>,
        icon_emoji: Option<String>,
    ) -> Self {
        SlackBot { api, token, channel, username, icon_emoji }
    }

    fn method_url(&self, method: &str) -> String {
        format!("{}/{method}", self.api.as_str().trim_end_matches('/'))
    }

    async fn call(&self, http: &HttpClient, request: Request) -> Result<serde_json::Value, Verdict> {
        let response = http.send(request.bearer_auth(self.token.expose()), SERVICE).await?;
        match classify_slack_api_response(&response) {
            Verdict::Success => Ok(serde_json::from_str(&response.body).unwrap_or_default()),
            other => Err(other),
        }
    }

    async fn check(&self, http: &HttpClient) -> Verdict {
        if let Err(v) = self.call(http, http.request(Method::POST, self.method_url("auth.test"))).await {
            return v;
        }
        let info = http
            .request(Method::GET, self.method_url("conversations.info"))
            .query(&[("channel", self.channel.as_str())]);
        match self.call(http, info).await {
            Ok(body) => {
                if body.pointer("/channel/is_archived").and_then(|v| v.as_bool()) == Some(true) {
                    Verdict::Dead(Failure::new(
                        reason::DESTINATION_NOT_FOUND,
                        format!("Slack channel {} is archived", self.channel),
                    ))
                } else {
                    Verdict::Success
                }
            }
            // Without channels:read the channel cannot be checked; the token is good.
            Err(Verdict::Dead(f)) if f.message.contains("missing_scope") => Verdict::Success,
            Err(Verdict::Dead(f)) if f.reason == reason::DESTINATION_NOT_FOUND => Verdict::Dead(Failure::new(
                reason::DESTINATION_NOT_FOUND,
                format!("Slack channel {} was not found or the bot cannot see it", self.channel),
            )),
            Err(other) => other,
        }
    }
}

impl Notifier for SlackBot {
    fn service(&self) -> Service {
        Service::Slack
    }

    /// `auth.test` checks the token; `conversations.info` that the channel exists.
    fn validate<'a>(&'a self, http: &'a HttpClient) -> BoxFuture<'a, Verdict> {
        async move { scrub_verdict(self.check(http).await, &[self.token.expose()]) }.boxed()
    }

    fn deliver<'a>(&'a self, http: &'a HttpClient, message: &'a Message) -> BoxFuture<'a, Verdict> {
        async move {
            let mut body = render::slack::render(message);
            body["channel"] = serde_json::Value::String(self.channel.clone());
            if let Some(u) = &self.username {
                body["username"] = serde_json::Value::String(u.clone());
            }
            if let Some(i) = &self.icon_emoji {
                body["icon_emoji"] = serde_json::Value::String(i.clone());
            }
            let request = http
                .request(Method::POST, self.method_url("chat.postMessage"))
                .bearer_auth(self.token.expose())
                .json(&body);
            let verdict = match http.send(request, SERVICE).await {
                Ok(response) => classify_slack_api_response(&response),
                Err(v) => v,
            };
            scrub_verdict(verdict, &[self.token.expose()])
        }
        .boxed()
    }

    /// About one message per second per channel.
    fn rate_limits(&self) -> Vec<(String, governor::Quota)> {
        vec![(
            format!("slack-channel:{}:{}", fingerprint(self.token.expose()), self.channel),
            quota(1, Duration::from_secs(1), 3),
        )]
    }
}

/// Remove any secret from a verdict's message.
pub(crate) fn scrub_verdict(verdict: Verdict, secrets: &[&str]) -> Verdict {
    let fix = |f: Failure| Failure { reason: f.reason, message: scrub(&f.message, secrets) };
    match verdict {
        Verdict::Success => Verdict::Success,
        Verdict::Dead(f) => Verdict::Dead(fix(f)),
        Verdict::Rejected(f) => Verdict::Rejected(fix(f)),
        Verdict::Transient { failure, retry_after } => Verdict::Transient { failure: fix(failure), retry_after },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status: StatusCode::from_u16(status).unwrap(), headers: HeaderMap::new(), body: body.into() }
    }

    fn reason_of(v: &Verdict) -> (&'static str, &'static str) {
        match v {
            Verdict::Success => ("success", ""),
            Verdict::Dead(f) => ("dead", f.reason),
            Verdict::Rejected(f) => ("rejected", f.reason),
            Verdict::Transient { failure, .. } => ("transient", failure.reason),
        }
    }

    #[test]
    fn webhook_errors_are_classified_by_body() {
        assert_eq!(reason_of(&classify_slack_webhook_response(&resp(200, "ok"))), ("success", ""));
        assert_eq!(
            reason_of(&classify_slack_webhook_response(&resp(403, "invalid_token"))),
            ("dead", reason::UNAUTHORIZED)
        );
        assert_eq!(
            reason_of(&classify_slack_webhook_response(&resp(400, "invalid_token"))),
            ("dead", reason::UNAUTHORIZED)
        );
        assert_eq!(
            reason_of(&classify_slack_webhook_response(&resp(404, "no_service"))),
            ("dead", reason::DESTINATION_NOT_FOUND)
        );
        assert_eq!(
            reason_of(&classify_slack_webhook_response(&resp(410, "channel_is_archived"))),
            ("dead", reason::DESTINATION_NOT_FOUND)
        );
        assert_eq!(
            reason_of(&classify_slack_webhook_response(&resp(403, "action_prohibited"))),
            ("dead", reason::FORBIDDEN)
        );
        assert_eq!(
            reason_of(&classify_slack_webhook_response(&resp(400, "no_text"))),
            ("rejected", reason::MESSAGE_REJECTED)
        );
        assert_eq!(
            reason_of(&classify_slack_webhook_response(&resp(400, "invalid_payload"))),
            ("rejected", reason::MESSAGE_REJECTED)
        );
        assert_eq!(
            reason_of(&classify_slack_webhook_response(&resp(500, "rollup_error"))),
            ("transient", reason::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            reason_of(&classify_slack_webhook_response(&resp(503, "<html>down</html>"))),
            ("transient", reason::SERVICE_UNAVAILABLE)
        );
        let mut limited = resp(429, "");
        limited.headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            classify_slack_webhook_response(&limited),
            Verdict::transient(
                reason::RATE_LIMITED,
                "Slack answered 429 Too Many Requests",
                Some(std::time::Duration::from_secs(7))
            )
        );
    }

    #[test]
    fn api_errors_are_classified_by_error_code() {
        assert_eq!(reason_of(&classify_slack_api_response(&resp(200, r#"{"ok":true}"#))), ("success", ""));
        assert_eq!(
            reason_of(&classify_slack_api_response(&resp(200, r#"{"ok":false,"error":"token_revoked"}"#))),
            ("dead", reason::UNAUTHORIZED)
        );
        assert_eq!(
            reason_of(&classify_slack_api_response(&resp(200, r#"{"ok":false,"error":"channel_not_found"}"#))),
            ("dead", reason::DESTINATION_NOT_FOUND)
        );
        assert_eq!(
            reason_of(&classify_slack_api_response(&resp(200, r#"{"ok":false,"error":"msg_too_long"}"#))),
            ("rejected", reason::MESSAGE_REJECTED)
        );
        assert_eq!(
            reason_of(&classify_slack_api_response(&resp(200, r#"{"ok":false,"error":"fatal_error"}"#))),
            ("transient", reason::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            reason_of(&classify_slack_api_response(&resp(429, r#"{"ok":false,"error":"ratelimited"}"#))),
            ("transient", reason::RATE_LIMITED)
        );
        assert_eq!(
            reason_of(&classify_slack_api_response(&resp(200, "<html>"))),
            ("transient", reason::UNEXPECTED_RESPONSE)
        );
    }
}
