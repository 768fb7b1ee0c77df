//! One token bucket per thing a service counts (a webhook, a channel, a room,
//! a token), shared by every worker, so the operator does not cause 429s in
//! normal operation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The limiters, created on first use from the notifier's quota.
#[derive(Default)]
pub struct Limits {
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl Limits {
    fn limiter(&self, key: &str, quota: Quota) -> Arc<DefaultDirectRateLimiter> {
        let mut map = self.limiters.lock().unwrap();
        map.entry(key.to_string()).or_insert_with(|| Arc::new(RateLimiter::direct(quota))).clone()
    }

    /// Wait until every limit allows one more request, or until `deadline`.
    /// Returns false when the deadline came first.
    pub async fn acquire(&self, limits: &[(String, Quota)], deadline: tokio::time::Instant) -> bool {
        for (key, quota) in limits {
            let limiter = self.limiter(key, *quota);
            if tokio::time::timeout_at(deadline, limiter.until_ready()).await.is_err() {
                return false;
            }
        }
        true
    }
}
