//! What an unauthenticated caller may cost: requests whose bearer token
//! cannot be a Kubernetes token are refused without a TokenReview, and each
//! client address gets a small budget of refused tokens, beyond which its
//! requests that would need a TokenReview get 429 with `Retry-After`.
//!
//! A token is *plausible* when it has the syntax of an OAuth bearer token
//! (RFC 6750 `b64token`: letters, digits, `-._~+/`, then `=` padding), is at
//! most [`MAX_TOKEN_BYTES`] long, and, when it looks like a JWT (it starts
//! with `eyJ`, the encoding of `{"`, as ServiceAccount and OIDC tokens do), is
//! one: three non-empty base64url parts whose first decodes to a JSON object.
//! Static and bootstrap tokens (`abcdef.0123456789abcdef`) are plausible too.
//!
//! Budgets are keyed by the TCP peer address (never a forwarded header, which
//! a caller could set): callers behind one proxy share it. Only refused
//! tokens count, so legitimate callers never use it up.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use tokio::time::Instant;

use super::errors::{ApiError, code};

/// The longest plausible token (ServiceAccount tokens are 1-2 KiB; OIDC
/// tokens with many groups a few KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Refused tokens a client address may present at once by default.
pub const DEFAULT_BAD_TOKEN_BUDGET: u32 = 10;

/// One more refused token is allowed per client this often once the budget is spent.
pub const BAD_TOKEN_REFILL: Duration = Duration::from_secs(1);

/// Beyond this many client addresses, those with a full budget are forgotten.
const PRUNE_OVER: usize = 4096;

/// Whether `token` could be a Kubernetes bearer token (see the module doc);
/// the 401 to answer when not. The message never contains the token.
pub fn check_plausible(token: &str) -> Result<(), ApiError> {
    let refuse = |why: &str| Err(ApiError::unauthenticated(format!("the bearer token is not valid: {why}")));
    if token.len() > MAX_TOKEN_BYTES {
        return refuse("it is too long");
    }
    let body = token.trim_end_matches('=');
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)) {
        return refuse("it has characters a bearer token cannot have");
    }
    if token.starts_with("eyJ") && !is_jwt(token) {
        return refuse("it is not a well-formed JWT");
    }
    Ok(())
}

/// Three non-empty base64url parts, the first a JSON object (the JOSE header).
fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else { return false };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decodes = |part: &str| !part.is_empty() && b64.decode(part).is_ok();
    if !(decodes(payload) && decodes(signature)) {
        return false;
    }
    b64.decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .is_some_and(|h| h.is_object())
}

/// Per client address, a bucket of refused tokens: `budget` at once, one
/// more per [`BAD_TOKEN_REFILL`]. A review takes one before it starts (so
/// concurrent requests cannot overspend it) and gives it back when the token
/// was valid. (A hand-written bucket: governor's limiters cannot give back.)
pub struct BadTokenBudget {
    budget: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    /// What is left, as of `at`.
    left: f64,
    at: Instant,
}

impl BadTokenBudget {
    pub fn new(budget: NonZeroU32) -> Self {
        BadTokenBudget { budget: f64::from(budget.get()), buckets: Mutex::default() }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let refill = now.duration_since(bucket.at).as_secs_f64() / BAD_TOKEN_REFILL.as_secs_f64();
        (bucket.left + refill).min(self.budget)
    }

    /// Take one from `client`'s budget before a TokenReview: 429 with
    /// `Retry-After` when it is spent.
    pub fn take(&self, client: IpAddr) -> Result<(), ApiError> {
        let mut buckets = self.buckets.lock().unwrap();
        let now = Instant::now();
        if buckets.len() > PRUNE_OVER {
            buckets.retain(|_, b| self.refilled(b, now) < self.budget);
        }
        let bucket = buckets.entry(client).or_insert(Bucket { left: self.budget, at: now });
        let left = self.refilled(bucket, now);
        if left < 1.0 {
            let wait = BAD_TOKEN_REFILL.mul_f64(1.0 - left);
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                code::RATE_LIMITED,
                "too many requests with invalid bearer tokens from this address",
            )
            .retry_after(wait));
        }
        *bucket = Bucket { left: left - 1.0, at: now };
        Ok(())
    }

    /// Give back what [`BadTokenBudget::take`] took: the token was valid (or
    /// the review could not be made).
    pub fn give_back(&self, client: IpAddr) {
        let mut buckets = self.buckets.lock().unwrap();
        if let Some(bucket) = buckets.get_mut(&client) {
            let now = Instant::now();
            *bucket = Bucket { left: (self.refilled(bucket, now) + 1.0).min(self.budget), at: now };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.{}", b64.encode(header), b64.encode(r#"{"sub":"x"}"#), b64.encode("sig"))
    }

    #[test]
    fn kubernetes_tokens_are_plausible() {
        for token in [
            jwt(r#"{"alg":"RS256","kid":"k"}"#),
            "abcdef.0123456789abcdef".to_string(),
            "alice-token".to_string(),
            "c3RhdGlj/dG9rZW4+==".to_string(),
        ] {
            assert!(check_plausible(&token).is_ok(), "{token}");
        }
    }

    #[test]
    fn implausible_tokens_are_refused_without_echoing_them() {
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        for token in [
            "eyJnot-a-jwt",
            "eyJhbGciOiJSUzI1NiJ9.e30",
            "eyJhbGciOiJSUzI1NiJ9..c2ln",
            "eyJ%%%.e30.c2ln",
            &format!("eyJ{}", &jwt("[1]")[3..]),
            "tok en",
            "tok\u{e9}n",
            "{\"json\":1}",
            "===",
            &long,
        ] {
            let e = check_plausible(token).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED, "{token}");
            assert!(token.len() < 4 || !e.message.contains(token), "{}", e.message);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_waits_once_its_budget_is_spent_and_others_do_not() {
        let budget = BadTokenBudget::new(NonZeroU32::new(3).unwrap());
        let (flooder, other): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            budget.take(flooder).unwrap();
        }
        let e = budget.take(flooder).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after, Some(BAD_TOKEN_REFILL));
        budget.take(other).unwrap();
        // One more per second.
        tokio::time::advance(BAD_TOKEN_REFILL).await;
        budget.take(flooder).unwrap();
        assert!(budget.take(flooder).is_err());
        // A valid token gives back what its review took.
        budget.give_back(flooder);
        budget.take(flooder).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn valid_tokens_never_spend_the_budget() {
        let budget = BadTokenBudget::new(NonZeroU32::new(2).unwrap());
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..100 {
            budget.take(client).unwrap();
            budget.give_back(client);
        }
    }
}
