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
}
