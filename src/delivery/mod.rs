//! The delivery engine both paths share (NotificationEvents and the
//! synchronous HTTP route): rate limits per destination, retries with
//! backoff that honour the service's wait hints. What an outcome does to
//! an integration's status is [`crate::status::integration`]'s.

pub mod counters;
pub mod mentions;
pub mod notifiers;
pub mod outcomes;
pub mod queues;
pub mod ratelimit;
pub mod retry;

pub use retry::RetryPolicy;

use crate::notifier::http::HttpClient;
use crate::notifier::{Message, Notifier};
use crate::status::outcome::Report;

/// Sends messages: waits for the destination's rate limits, retries
/// transient failures. Shared by every worker.
pub struct Engine {
    pub http: HttpClient,
    pub limits: ratelimit::Limits,
    pub policy: RetryPolicy,
}

impl Engine {
    pub fn new(http: HttpClient, policy: RetryPolicy) -> Self {
        Engine { http, limits: ratelimit::Limits::default(), policy }
    }

    /// Deliver `message` through `notifier`, giving up at `deadline`.
    pub async fn deliver(&self, notifier: &dyn Notifier, message: &Message, deadline: tokio::time::Instant) -> Report {
        retry::deliver_with_retries(self, notifier, message, deadline).await
    }
}
