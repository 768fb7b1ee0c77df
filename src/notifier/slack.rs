//! Slack: incoming webhooks and the Web API with a bot token.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use http::StatusCode;
use url::Url;

use super::classify::{self, Failure, Verdict, reason, snippet};
use super::http::{HttpClient, HttpResponse, Method, Request};
use super::render::{self, Message};
use super::{Notifier, fingerprint, mentions, quota};
use crate::crd::Service;
use crate::redact::{Credential, SecretUrl, scrub};

const SERVICE: &str = "Slack";

/// The reason and verdict kind of a Slack error code (webhook body or Web API `error`).
fn classify_slack_error_code(code: &str) -> Verdict {
    // The code as shown: whatever the answer held, a short one.
    let shown = snippet(code);
    let dead =
        |r: &'static str, what: &str| Verdict::Dead(Failure::new(r, format!("Slack answered {shown:?}: {what}")));
    let rejected =
        || Verdict::Rejected(Failure::new(reason::MESSAGE_REJECTED, format!("Slack rejected the message: {shown:?}")));
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
            Verdict::transient(reason::SERVICE_UNAVAILABLE, format!("Slack answered {shown:?}"), None)
        }
        _ => rejected(),
    }
}

/// Classify an incoming-webhook response: a 2xx (200 `ok`) is a success
/// whatever its body and however its read ended; errors are bare strings in
/// the body, and the same code comes with different HTTP statuses, so the
/// body decides.
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

/// The most of a Web API answer that is read. `chat.postMessage` echoes the
/// posted message (`message.text`, `message.blocks`), so its answer is as
/// large as the message: up to 40,000 characters of text plus 50 blocks of
/// 3,000, several times that once JSON-escaped.
pub const API_MAX_BODY: usize = 4 * 1024 * 1024;

/// Classify a Web API response: HTTP 200 with `{"ok": false, "error": …}` for
/// almost every error, 429 with `Retry-After` for rate limits.
///
/// A body that is not JSON (cut off, too large, late, or malformed) is judged
/// by what was read, as Slack writes `ok` first: `{"ok":true` at the start of
/// a 2xx is a success (the message was posted: posting it again would
/// duplicate it); `"ok":false` anywhere is classified by its `error`. When
/// nothing that was read shows either, the call is a transient
/// `UnexpectedResponse` and is retried: nothing indicates that Slack accepted
/// the message, and a notification never sent is worse than a rare
/// duplicate. Only an answer that stops before its first bytes, or is not
/// Slack's, gets there: the read bound ([`API_MAX_BODY`]) never cuts an
/// answer before `ok`.
pub fn classify_slack_api_response(response: &HttpResponse) -> Verdict {
    if let Some(v) = classify::classify_common(response.status, &response.headers, SERVICE) {
        return v;
    }
    let parsed: Option<serde_json::Value> = serde_json::from_str(&response.body).ok();
    let ok = match &parsed {
        Some(v) => v.get("ok").and_then(|v| v.as_bool()),
        None => leading_ok(&response.body).or_else(|| response.body.contains(r#""ok":false"#).then_some(false)),
    };
    match ok {
        Some(true) if response.status.is_success() => Verdict::Success,
        Some(false) => {
            let code = match &parsed {
                Some(v) => v.get("error").and_then(|v| v.as_str()).map(str::to_string),
                None => error_code_in(&response.body),
            };
            classify_slack_error_code(code.as_deref().unwrap_or("unknown_error"))
        }
        _ => unexpected(response),
    }
}

/// A transient `UnexpectedResponse` saying what was wrong with the body.
fn unexpected(response: &HttpResponse) -> Verdict {
    let status = response.status.as_u16();
    let message = match response.body_read.problem() {
        None => format!("Slack answered HTTP {status} with an unexpected body"),
        Some(problem) => format!("Slack answered HTTP {status}, but {problem} and what was read shows no outcome"),
    };
    Verdict::transient(reason::UNEXPECTED_RESPONSE, message, None)
}

/// The value of `ok` when the body starts with it (`{"ok":true…`), JSON
/// whitespace allowed; `None` when it does not start so.
fn leading_ok(body: &str) -> Option<bool> {
    let rest = body.trim_start().strip_prefix('{')?.trim_start().strip_prefix(r#""ok""#)?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with("true") {
        Some(true)
    } else if rest.starts_with("false") {
        Some(false)
    } else {
        None
    }
}

/// The first `"error":"<code>"` in a (possibly partial) JSON body. A quote
/// inside a JSON string is escaped, so the pattern only matches a key.
fn error_code_in(body: &str) -> Option<String> {
    let (_, rest) = body.split_once(r#""error""#)?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let (code, _) = rest.split_once('"')?;
    Some(code.to_string())
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

    /// An incoming webhook cannot look people up: mappings only.
    fn mention_directory(&self) -> mentions::Directory {
        mentions::Directory::SlackWebhook
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

    /// A checking call (nothing is posted): its answer is needed whole.
    async fn call(&self, http: &HttpClient, request: Request) -> Result<serde_json::Value, Verdict> {
        let request = request.bearer_auth(self.token.expose()).max_body(API_MAX_BODY);
        let response = http.send(request, SERVICE).await?;
        match classify_slack_api_response(&response) {
            Verdict::Success => serde_json::from_str(&response.body).map_err(|_| unexpected(&response)),
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

    /// Mappings, then `users.lookupByEmail` with the bot token.
    fn mention_directory(&self) -> mentions::Directory {
        mentions::Directory::SlackBot { api: self.api.clone(), token: self.token.clone() }
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
                .max_body(API_MAX_BODY)
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
    use crate::notifier::http::BodyRead;
    use http::HeaderMap;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse::complete(StatusCode::from_u16(status).unwrap(), HeaderMap::new(), body)
    }

    /// An answer whose body read ended as `read`, with `body` read of it.
    fn partial(status: u16, body: &str, read: BodyRead) -> HttpResponse {
        HttpResponse { body_read: read, ..resp(status, body) }
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

    #[test]
    fn a_webhook_200_stands_however_its_body_read_ended() {
        for read in [BodyRead::TooLarge, BodyRead::TimedOut, BodyRead::CutOff] {
            assert_eq!(classify_slack_webhook_response(&partial(200, "", read)), Verdict::Success, "{read:?}");
            assert_eq!(classify_slack_webhook_response(&partial(200, "o", read)), Verdict::Success, "{read:?}");
        }
    }

    /// What was read decides: `ok` comes first in Slack's answers.
    #[test]
    fn an_api_answer_cut_short_is_judged_by_what_was_read() {
        let echo = format!(r#"{{"ok":true,"channel":"C1","ts":"1.2","message":{{"text":"{}"#, "a".repeat(1000));
        for read in [BodyRead::TooLarge, BodyRead::TimedOut, BodyRead::CutOff] {
            assert_eq!(classify_slack_api_response(&partial(200, &echo, read)), Verdict::Success, "{read:?}");
            assert_eq!(classify_slack_api_response(&partial(200, r#"{"ok":true"#, read)), Verdict::Success);
            assert_eq!(classify_slack_api_response(&partial(200, "{ \"ok\" : true,", read)), Verdict::Success);
        }
        assert_eq!(
            reason_of(&classify_slack_api_response(&partial(
                200,
                r#"{"ok":false,"error":"channel_not_found","respo"#,
                BodyRead::CutOff
            ))),
            ("dead", reason::DESTINATION_NOT_FOUND)
        );
        // `ok` not first (not Slack's habit) but readable.
        assert_eq!(
            reason_of(&classify_slack_api_response(&partial(
                200,
                r#"{"warning":"x","ok":false,"error":"msg_too_long","x"#,
                BodyRead::TooLarge
            ))),
            ("rejected", reason::MESSAGE_REJECTED)
        );
        // A 2xx that is not `ok:true` at the start is no success, even when it
        // mentions it inside a string (quotes in strings are escaped).
        let quoted = r#"{"channel":"C1","text":"\"ok\":true"#;
        assert_eq!(
            reason_of(&classify_slack_api_response(&partial(200, quoted, BodyRead::CutOff))),
            ("transient", reason::UNEXPECTED_RESPONSE)
        );
        // Nothing read: nothing shows the message was taken.
        let Verdict::Transient { failure, .. } = classify_slack_api_response(&partial(200, "", BodyRead::TimedOut))
        else {
            panic!("expected a transient verdict")
        };
        assert_eq!(failure.reason, reason::UNEXPECTED_RESPONSE);
        assert!(failure.message.contains("did not arrive in time"), "{}", failure.message);
        // The status still comes first.
        assert_eq!(
            reason_of(&classify_slack_api_response(&partial(503, r#"{"ok":true"#, BodyRead::CutOff))),
            ("transient", reason::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            reason_of(&classify_slack_api_response(&partial(404, r#"{"ok":true"#, BodyRead::CutOff))),
            ("transient", reason::UNEXPECTED_RESPONSE)
        );
    }

    #[test]
    fn leading_ok_and_error_codes_in_partial_bodies() {
        assert_eq!(leading_ok(r#"{"ok":true"#), Some(true));
        assert_eq!(leading_ok("\n { \"ok\":\tfalse"), Some(false));
        assert_eq!(leading_ok(r#"{"ok":"#), None);
        assert_eq!(leading_ok(r#"{"okay":true"#), None);
        assert_eq!(leading_ok(r#"[{"ok":true"#), None);
        assert_eq!(error_code_in(r#"{"ok":false,"error": "invalid_auth","#).as_deref(), Some("invalid_auth"));
        assert_eq!(error_code_in(r#"{"ok":false,"error":"invalid_a"#), None);
    }
}
