//! The verdict on one call to a service: delivered, destination dead, message
//! rejected, or transient. Each service file turns its responses into a
//! [`Verdict`]; the shared parts (HTTP status classes, wait hints) live here.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// A short machine-readable reason plus a sentence for a person. The message
/// never contains credentials (notifiers scrub before building it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Failure { reason, message: message.into() }
    }
}

/// Condition/Event reasons used for failures.
pub mod reason {
    pub const UNAUTHORIZED: &str = "Unauthorized";
    pub const FORBIDDEN: &str = "Forbidden";
    pub const DESTINATION_NOT_FOUND: &str = "DestinationNotFound";
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
    pub const RATE_LIMITED: &str = "RateLimited";
    pub const TIMEOUT: &str = "Timeout";
    pub const MESSAGE_REJECTED: &str = "MessageRejected";
    pub const UNEXPECTED_RESPONSE: &str = "UnexpectedResponse";
    pub const REDIRECTED: &str = "Redirected";
}

/// What one call to a service amounted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The service accepted the message (or, for a probe, the credentials).
    Success,
    /// Credentials revoked, webhook deleted, room or channel gone: retrying cannot help.
    Dead(Failure),
    /// This payload will never be accepted; the destination is not to blame.
    Rejected(Failure),
    /// Worth retrying, after the service's wait hint when it gave one.
    Transient { failure: Failure, retry_after: Option<Duration> },
}

impl Verdict {
    pub fn transient(reason: &'static str, message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Verdict::Transient { failure: Failure::new(reason, message), retry_after }
    }
}

/// The most a wait hint may ask for; longer hints are capped.
pub const MAX_WAIT_HINT: Duration = Duration::from_secs(15 * 60);

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            // Clamp before converting: a huge hint must not overflow.
            return Some(Duration::from_secs_f64(secs.min(MAX_WAIT_HINT.as_secs_f64())));
        }
        return None;
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO).min(MAX_WAIT_HINT))
}

/// `x-ratelimit-reset` (Unix seconds, as Chatwork sends it) as a wait from `now`.
pub fn ratelimit_reset(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let value = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().parse::<i64>().ok()?;
    let wait = value.saturating_sub(now.as_second()).max(0);
    Some(Duration::from_secs(wait as u64).min(MAX_WAIT_HINT))
}

/// The classes every service shares: 429 and 5xx are transient, a redirect is
/// a failure (never followed).
pub fn classify_common(status: StatusCode, headers: &HeaderMap, service: &str) -> Option<Verdict> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(Verdict::transient(
            reason::RATE_LIMITED,
            format!("{service} answered 429 Too Many Requests"),
            retry_after(headers),
        ));
    }
    if status.is_server_error() {
        return Some(Verdict::transient(
            reason::SERVICE_UNAVAILABLE,
            format!("{service} answered HTTP {}", status.as_u16()),
            retry_after(headers),
        ));
    }
    if status.is_redirection() {
        return Some(Verdict::Dead(Failure::new(
            reason::REDIRECTED,
            format!("{service} answered a redirect (HTTP {}); redirects are not followed", status.as_u16()),
        )));
    }
    None
}

/// A service's error text, shortened for a status message.
pub fn snippet(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.starts_with('<') {
        return "(HTML body)".to_string();
    }
    let mut s: String = trimmed.chars().take(200).collect();
    if trimmed.chars().count() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", "99999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_WAIT_HINT));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "1e20".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_WAIT_HINT), "a huge hint is capped, not a panic");
    }

    #[test]
    fn ratelimit_reset_is_relative_to_now() {
        let mut h = HeaderMap::new();
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        h.insert("x-ratelimit-reset", "1010".parse().unwrap());
        assert_eq!(ratelimit_reset(&h, now), Some(Duration::from_secs(10)));
        h.insert("x-ratelimit-reset", "900".parse().unwrap());
        assert_eq!(ratelimit_reset(&h, now), Some(Duration::ZERO));
    }

    #[test]
    fn common_classes() {
        let h = HeaderMap::new();
        assert!(matches!(classify_common(StatusCode::TOO_MANY_REQUESTS, &h, "x"), Some(Verdict::Transient { .. })));
        assert!(matches!(classify_common(StatusCode::BAD_GATEWAY, &h, "x"), Some(Verdict::Transient { .. })));
        assert!(matches!(classify_common(StatusCode::FOUND, &h, "x"), Some(Verdict::Dead(_))));
        assert_eq!(classify_common(StatusCode::OK, &h, "x"), None);
        assert_eq!(snippet("<html>oops</html>"), "(HTML body)");
    }

    /// Random answers: every classifier and wait-hint parser answers every
    /// one without a panic, within the classes the services document, with a
    /// bounded sentence and a capped wait.
    mod random_input {
        use proptest::prelude::*;

        use super::*;
        use crate::notifier::http::{BodyRead, HttpResponse};
        use crate::notifier::{chatwork, slack, teams, webhook};

        const BODY_PIECES: &[&str] = &[
            "ok",
            "invalid_token",
            "no_service",
            "channel_is_archived",
            "invalid_payload",
            "rollup_error",
            "ratelimited",
            r#"{"ok":true"#,
            r#"{"ok":false,"error":""#,
            r#"{"ok":false,"error":"channel_not_found"}"#,
            r#"{"ok":true,"message":{"text":"x"}}"#,
            r#""ok":false"#,
            r#""error":"#,
            r#"{"errors":["Rate limit for message posting per room exceeded."]}"#,
            r#"{"errors":[]}"#,
            r#"{"error":{"code":"WorkflowTriggerIsNotEnabled","message":"x"}}"#,
            r#"{"error":{"code":"TriggerInputSchemaMismatch"}}"#,
            "<html><body>oops</body></html>",
            "\"",
            "{",
            "}",
            ":",
            " ",
            "\n",
            "\0",
            "é",
        ];
        const HINTS: &[&str] = &[
            "0",
            "3",
            "-1",
            "-0",
            "1.5",
            "1e400",
            "1e20",
            "NaN",
            "inf",
            "-inf",
            "99999999999999999999999",
            "9223372036854775807",
            "-9223372036854775808",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Sun, 06 Nov 1994 08:49:37 +9999",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "",
            " 5 ",
        ];

        fn body() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                4 => prop::sample::select(BODY_PIECES).prop_map(str::to_string),
                1 => "\\PC{0,30}",
                1 => (1usize..5000).prop_map(|n| "x".repeat(n)),
                1 => (1usize..500).prop_map(|n| format!(r#"{{"ok":false,"error":"{}"}}"#, "e".repeat(n))),
            ];
            prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
        }

        fn hint() -> impl Strategy<Value = Option<http::HeaderValue>> {
            prop_oneof![
                Just(None),
                prop::sample::select(HINTS).prop_map(|h| http::HeaderValue::from_str(h).ok()),
                any::<i64>().prop_map(|n| http::HeaderValue::from_str(&n.to_string()).ok()),
                any::<f64>().prop_map(|f| http::HeaderValue::from_str(&f.to_string()).ok()),
                prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| http::HeaderValue::from_bytes(&b).ok()),
            ]
        }

        fn headers() -> impl Strategy<Value = HeaderMap> {
            (hint(), hint()).prop_map(|(retry_after, reset)| {
                let mut h = HeaderMap::new();
                if let Some(v) = retry_after {
                    h.insert(http::header::RETRY_AFTER, v);
                }
                if let Some(v) = reset {
                    h.insert("x-ratelimit-reset", v);
                }
                h
            })
        }

        fn response() -> impl Strategy<Value = HttpResponse> {
            let status = prop_oneof![
                3 => prop::sample::select(&[200u16, 201, 202, 204, 301, 302, 400, 401, 403, 404, 410, 413, 429, 500, 502, 503][..]),
                1 => 100u16..1000,
            ];
            let read = prop::sample::select(
                &[BodyRead::Complete, BodyRead::TooLarge, BodyRead::TimedOut, BodyRead::CutOff][..],
            );
            (status, headers(), body(), read).prop_map(|(status, headers, body, body_read)| HttpResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers,
                body,
                body_read,
            })
        }

        /// What every service's verdict must respect, whatever the answer.
        fn sound(verdict: &Verdict, response: &HttpResponse, success_is_2xx: bool) -> Result<(), TestCaseError> {
            let status = response.status;
            match verdict {
                Verdict::Success => prop_assert!(status.is_success(), "success on HTTP {}", status),
                Verdict::Dead(f) | Verdict::Rejected(f) | Verdict::Transient { failure: f, .. } => {
                    prop_assert!(!f.reason.is_empty() && !f.message.is_empty());
                    prop_assert!(f.message.chars().count() <= 400, "a {}-character message", f.message.chars().count());
                }
            }
            if let Verdict::Transient { retry_after: Some(wait), .. } = verdict {
                prop_assert!(*wait <= MAX_WAIT_HINT);
            }
            if success_is_2xx {
                prop_assert_eq!(matches!(verdict, Verdict::Success), status.is_success());
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                prop_assert!(matches!(verdict, Verdict::Transient { .. }), "{:?} on HTTP {}", verdict, status);
            }
            if status.is_redirection() {
                prop_assert!(matches!(verdict, Verdict::Dead(_)), "{:?} on HTTP {}", verdict, status);
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(crate::property_tests::config())]

            #[test]
            fn every_answer_gets_a_sound_verdict(response in response(), now in 0i64..4_000_000_000) {
                let now = jiff::Timestamp::from_second(now).unwrap();
                sound(&slack::classify_slack_webhook_response(&response), &response, true)?;
                sound(&slack::classify_slack_api_response(&response), &response, false)?;
                sound(&chatwork::classify_chatwork_response(&response, now), &response, true)?;
                sound(&teams::classify_teams_response(&response), &response, true)?;
                sound(&webhook::classify_webhook_response(&response), &response, true)?;
            }

            #[test]
            fn wait_hints_are_capped(headers in headers(), now in any::<i64>()) {
                let now = jiff::Timestamp::from_second(now.rem_euclid(200_000_000_000) - 100_000_000_000)
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                if let Some(wait) = retry_after(&headers) {
                    prop_assert!(wait <= MAX_WAIT_HINT);
                }
                if let Some(wait) = ratelimit_reset(&headers, now) {
                    prop_assert!(wait <= MAX_WAIT_HINT);
                }
            }

            #[test]
            fn whole_seconds_are_read_as_such(secs in 0u64..2000) {
                let mut h = HeaderMap::new();
                h.insert(http::header::RETRY_AFTER, secs.into());
                prop_assert_eq!(retry_after(&h), Some(Duration::from_secs(secs).min(MAX_WAIT_HINT)));
            }
        }
    }
}
