//! Chatwork API v2: token in `x-chatworktoken`, one room per integration.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use http::StatusCode;
use url::Url;

use super::classify::{self, Failure, Verdict, reason, snippet};
use super::http::{HttpClient, HttpResponse, Method};
use super::render::{self, Message};
use super::slack::scrub_verdict;
use super::{Notifier, fingerprint, mentions, quota};
use crate::crd::Service;
use crate::redact::Credential;

const SERVICE: &str = "Chatwork";

/// How long to wait after the per-room posting limit (10 posts per 10 s) when
/// the response carries no reset hint.
const ROOM_LIMIT_WAIT: Duration = Duration::from_secs(10);

fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
        .map(|errors| errors.iter().filter_map(|e| e.as_str()).collect::<Vec<_>>().join("; "))
        .filter(|s| !s.is_empty())
        .map(|s| snippet(&s))
        .unwrap_or_else(|| snippet(body))
}

/// Classify a Chatwork response: any 2xx is a success, whatever its body
/// (the message was posted; its id is not needed); 401 bad token, 403 no permission and 404
/// unknown room are dead; 400 is a rejected message; 429 waits for
/// `x-ratelimit-reset` (Chatwork sends no `Retry-After`).
pub fn classify_chatwork_response(response: &HttpResponse, now: jiff::Timestamp) -> Verdict {
    let status = response.status;
    if status.is_success() {
        return Verdict::Success;
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let wait = classify::ratelimit_reset(&response.headers, now)
            .filter(|w| !w.is_zero())
            .or_else(|| classify::retry_after(&response.headers))
            .unwrap_or(ROOM_LIMIT_WAIT);
        return Verdict::transient(
            reason::RATE_LIMITED,
            format!("Chatwork rate limit: {}", error_text(&response.body)),
            Some(wait),
        );
    }
    if let Some(v) = classify::classify_common(status, &response.headers, SERVICE) {
        return v;
    }
    let text = error_text(&response.body);
    match status {
        StatusCode::UNAUTHORIZED => {
            Verdict::Dead(Failure::new(reason::UNAUTHORIZED, format!("Chatwork refused the API token: {text}")))
        }
        StatusCode::FORBIDDEN => Verdict::Dead(Failure::new(
            reason::FORBIDDEN,
            format!("the Chatwork token has no permission for the room: {text}"),
        )),
        StatusCode::NOT_FOUND => {
            Verdict::Dead(Failure::new(reason::DESTINATION_NOT_FOUND, format!("Chatwork room not found: {text}")))
        }
        _ => Verdict::Rejected(Failure::new(
            reason::MESSAGE_REJECTED,
            format!("Chatwork rejected the message (HTTP {}): {text}", status.as_u16()),
        )),
    }
}

/// A Chatwork room reached with an API token.
pub struct Chatwork {
    api: Url,
    token: Credential,
    room_id: String,
}

impl Chatwork {
    pub fn new(api: Url, token: Credential, room_id: String) -> Self {
        Chatwork { api, token, room_id }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.api.as_str().trim_end_matches('/'))
    }

    /// A checking call (nothing is posted): its answer is needed whole.
    async fn get(&self, http: &HttpClient, path: &str) -> Result<HttpResponse, Verdict> {
        let request = http.request(Method::GET, self.url(path)).header("x-chatworktoken", self.token.expose());
        let response = http.send(request, SERVICE).await?;
        match classify_chatwork_response(&response, jiff::Timestamp::now()) {
            Verdict::Success => match response.body_read.problem() {
                None => Ok(response),
                Some(problem) => Err(Verdict::transient(
                    reason::UNEXPECTED_RESPONSE,
                    format!("Chatwork answered HTTP {}, but {problem}", response.status.as_u16()),
                    None,
                )),
            },
            other => Err(other),
        }
    }

    async fn check(&self, http: &HttpClient) -> Verdict {
        if let Err(v) = self.get(http, "me").await {
            return v;
        }
        let room = match self.get(http, &format!("rooms/{}", self.room_id)).await {
            Ok(r) => r,
            Err(Verdict::Dead(f)) if f.reason == reason::DESTINATION_NOT_FOUND || f.reason == reason::FORBIDDEN => {
                return Verdict::Dead(Failure::new(
                    f.reason,
                    format!("Chatwork room {} does not exist or the token's account is not a member", self.room_id),
                ));
            }
            Err(v) => return v,
        };
        let role = serde_json::from_str::<serde_json::Value>(&room.body)
            .ok()
            .and_then(|v| v.get("role").and_then(|r| r.as_str()).map(str::to_string));
        match role.as_deref() {
            Some("readonly") => Verdict::Dead(Failure::new(
                reason::FORBIDDEN,
                format!("the token's account has a read-only role in Chatwork room {} and cannot post", self.room_id),
            )),
            _ => Verdict::Success,
        }
    }
}

impl Notifier for Chatwork {
    fn service(&self) -> Service {
        Service::Chatwork
    }

    /// Mappings only, checked against the room's members.
    fn mention_directory(&self) -> mentions::Directory {
        mentions::Directory::Chatwork {
            api: self.api.clone(),
            token: self.token.clone(),
            room_id: self.room_id.clone(),
        }
    }

    /// `GET /me` checks the token; `GET /rooms/{id}` that the room is visible and writable.
    fn validate<'a>(&'a self, http: &'a HttpClient) -> BoxFuture<'a, Verdict> {
        async move { scrub_verdict(self.check(http).await, &[self.token.expose()]) }.boxed()
    }

    fn deliver<'a>(&'a self, http: &'a HttpClient, message: &'a Message) -> BoxFuture<'a, Verdict> {
        async move {
            let body = render::chatwork::render(message);
            let request = http
                .request(Method::POST, self.url(&format!("rooms/{}/messages", self.room_id)))
                .header("x-chatworktoken", self.token.expose())
                .form(&[("body", body.as_str()), ("self_unread", "0")]);
            let verdict = match http.send(request, SERVICE).await {
                Ok(response) => classify_chatwork_response(&response, jiff::Timestamp::now()),
                Err(v) => v,
            };
            scrub_verdict(verdict, &[self.token.expose()])
        }
        .boxed()
    }

    /// 10 posts per 10 s per room, and 300 requests per 5 minutes per token,
    /// counted by Chatwork over a window: a burst `b` plus a rate of `(n - b)`
    /// per window never exceeds `n` in any window.
    fn rate_limits(&self) -> Vec<(String, governor::Quota)> {
        let token = fingerprint(self.token.expose());
        vec![
            // 2 + 7 = 9 per 10 s: one below the limit, as margin for network jitter.
            (format!("chatwork-room:{token}:{}", self.room_id), quota(7, Duration::from_secs(10), 2)),
            (format!("chatwork-token:{token}"), quota(270, Duration::from_secs(300), 30)),
        ]
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

    #[test]
    fn statuses_map_to_verdicts() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        assert_eq!(classify_chatwork_response(&resp(200, r#"{"message_id":"1"}"#), now), Verdict::Success);
        assert!(matches!(
            classify_chatwork_response(&resp(401, r#"{"errors":["Invalid API token"]}"#), now),
            Verdict::Dead(Failure { reason: reason::UNAUTHORIZED, .. })
        ));
        assert!(matches!(
            classify_chatwork_response(&resp(403, r#"{"errors":["no"]}"#), now),
            Verdict::Dead(Failure { reason: reason::FORBIDDEN, .. })
        ));
        assert!(matches!(
            classify_chatwork_response(&resp(404, r#"{"errors":["no"]}"#), now),
            Verdict::Dead(Failure { reason: reason::DESTINATION_NOT_FOUND, .. })
        ));
        assert!(matches!(classify_chatwork_response(&resp(400, r#"{"errors":["long"]}"#), now), Verdict::Rejected(_)));
    }

    #[test]
    fn rate_limits_wait_for_the_reset() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let mut r = resp(429, r#"{"errors":["Rate limit for message posting per room exceeded."]}"#);
        assert!(matches!(
            classify_chatwork_response(&r, now),
            Verdict::Transient { retry_after: Some(w), .. } if w == ROOM_LIMIT_WAIT
        ));
        r.headers.insert("x-ratelimit-reset", "1042".parse().unwrap());
        assert!(matches!(
            classify_chatwork_response(&r, now),
            Verdict::Transient { retry_after: Some(w), .. } if w == Duration::from_secs(42)
        ));
    }

    /// A 2xx means posted: a large, late or cut-off body changes nothing.
    #[test]
    fn a_post_stands_however_its_body_read_ended() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        for read in [BodyRead::TooLarge, BodyRead::TimedOut, BodyRead::CutOff] {
            assert_eq!(classify_chatwork_response(&partial(200, r#"{"message_"#, read), now), Verdict::Success);
            assert_eq!(classify_chatwork_response(&partial(200, "", read), now), Verdict::Success);
        }
        let cut = partial(401, r#"{"errors":["Inva"#, BodyRead::CutOff);
        assert!(matches!(
            classify_chatwork_response(&cut, now),
            Verdict::Dead(Failure { reason: reason::UNAUTHORIZED, .. })
        ));
    }
}
