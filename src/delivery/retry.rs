//! Retries: exponential backoff with jitter (backon) for transient failures,
//! the service's wait hint when it gives one, and no attempt counted against
//! the budget for waiting out a rate limit.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

use super::Engine;
use crate::notifier::classify::{Failure, Verdict, reason};
use crate::notifier::{Message, Notifier};
use crate::status::outcome::{Outcome, Report};

/// How hard to try.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Calls to the service for transient failures, the first one included.
    pub attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// 429s with a wait hint waited out before giving up all the same.
    pub max_rate_limited: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_rate_limited: 20,
        }
    }
}

pub(super) async fn deliver_with_retries(
    engine: &Engine,
    notifier: &dyn Notifier,
    message: &Message,
    deadline: Instant,
) -> Report {
    let policy = &engine.policy;
    let mut backoff = ExponentialBuilder::new()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_jitter()
        .with_max_times(policy.attempts.saturating_sub(1) as usize)
        .build();
    let limits = notifier.rate_limits();
    let mut attempts = 0;
    let mut rate_limited = 0;
    let mut last: Option<Failure> = None;
    loop {
        if !engine.limits.acquire(&limits, deadline).await || Instant::now() >= deadline {
            return Report { outcome: Outcome::Expired(last), attempts };
        }
        attempts += 1;
        let (failure, hint) = match notifier.deliver(&engine.http, message).await {
            Verdict::Success => return Report { outcome: Outcome::Delivered, attempts },
            Verdict::Dead(f) => return Report { outcome: Outcome::Dead(f), attempts },
            Verdict::Rejected(f) => return Report { outcome: Outcome::Rejected(f), attempts },
            Verdict::Transient { failure, retry_after } => (failure, retry_after),
        };
        let wait = match hint {
            // Waiting for a rate limit is not a failure: it does not use up an attempt.
            Some(hint) if failure.reason == reason::RATE_LIMITED && rate_limited < policy.max_rate_limited => {
                rate_limited += 1;
                hint
            }
            _ => match backoff.next() {
                Some(delay) => delay.max(hint.unwrap_or_default()),
                None => return Report { outcome: Outcome::Exhausted(failure), attempts },
            },
        };
        tracing::debug!(
            reason = failure.reason,
            wait_ms = wait.as_millis() as u64,
            attempts,
            "transient failure; retrying"
        );
        last = Some(failure);
        if Instant::now() + wait >= deadline {
            return Report { outcome: Outcome::Expired(last), attempts };
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures::FutureExt;
    use futures::future::BoxFuture;

    use super::*;
    use crate::crd::{Service, Severity};
    use crate::notifier::http::HttpClient;

    /// A notifier that answers from a script.
    struct Scripted {
        answers: Mutex<Vec<Verdict>>,
        calls: AtomicU32,
    }

    impl Scripted {
        fn new(mut answers: Vec<Verdict>) -> Self {
            answers.reverse();
            Scripted { answers: Mutex::new(answers), calls: AtomicU32::new(0) }
        }
    }

    impl Notifier for Scripted {
        fn service(&self) -> Service {
            Service::Webhook
        }

        fn mention_directory(&self) -> crate::notifier::mentions::Directory {
            crate::notifier::mentions::Directory::Webhook
        }
        fn validate<'a>(&'a self, _: &'a HttpClient) -> BoxFuture<'a, Verdict> {
            async { Verdict::Success }.boxed()
        }
        fn deliver<'a>(&'a self, _: &'a HttpClient, _: &'a Message) -> BoxFuture<'a, Verdict> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let v = self.answers.lock().unwrap().pop().unwrap_or(Verdict::Success);
            async move { v }.boxed()
        }
        fn rate_limits(&self) -> Vec<(String, governor::Quota)> {
            vec![]
        }
    }

    fn engine(attempts: u32) -> Engine {
        Engine::new(
            HttpClient::new(Duration::from_secs(1)),
            RetryPolicy {
                attempts,
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_rate_limited: 3,
            },
        )
    }

    fn message() -> Message {
        Message {
            id: "1".into(),
            title: None,
            text: "t".into(),
            severity: Severity::Info,
            fields: vec![],
            links: vec![],
            source: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            mentions: vec![],
        }
    }

    fn transient() -> Verdict {
        Verdict::transient(reason::SERVICE_UNAVAILABLE, "503", None)
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let n = Scripted::new(vec![transient(), transient()]);
        let r = engine(5).deliver(&n, &message(), far()).await;
        assert_eq!(r, Report { outcome: Outcome::Delivered, attempts: 3 });
    }

    #[tokio::test]
    async fn retries_run_out() {
        let n = Scripted::new(vec![transient(), transient(), transient(), transient()]);
        let r = engine(3).deliver(&n, &message(), far()).await;
        assert!(matches!(r.outcome, Outcome::Exhausted(_)));
        assert_eq!(r.attempts, 3);
        assert!(r.outcome.counts_as_error());
    }

    #[tokio::test]
    async fn dead_and_rejected_are_not_retried() {
        let dead = Verdict::Dead(Failure::new(reason::UNAUTHORIZED, "x"));
        let r = engine(5).deliver(&Scripted::new(vec![dead]), &message(), far()).await;
        assert_eq!(r.attempts, 1);
        assert!(r.outcome.counts_as_error());
        let rejected = Verdict::Rejected(Failure::new(reason::MESSAGE_REJECTED, "x"));
        let r = engine(5).deliver(&Scripted::new(vec![rejected]), &message(), far()).await;
        assert_eq!(r.attempts, 1);
        assert!(!r.outcome.counts_as_error());
    }

    #[tokio::test]
    async fn rate_limit_waits_do_not_use_up_attempts() {
        let limited = || Verdict::transient(reason::RATE_LIMITED, "429", Some(Duration::from_millis(2)));
        let n = Scripted::new(vec![limited(), limited(), limited(), transient()]);
        // Two attempts allowed: three 429s and one 503 still end in success.
        let r = engine(2).deliver(&n, &message(), far()).await;
        assert_eq!(r, Report { outcome: Outcome::Delivered, attempts: 5 });
    }

    #[tokio::test]
    async fn the_deadline_stops_retries() {
        let long = Verdict::transient(reason::RATE_LIMITED, "429", Some(Duration::from_secs(60)));
        let n = Scripted::new(vec![long]);
        let r = engine(5).deliver(&n, &message(), Instant::now() + Duration::from_millis(50)).await;
        assert!(matches!(r.outcome, Outcome::Expired(Some(_))));
        assert_eq!(n.calls.load(Ordering::SeqCst), 1);
    }
}
