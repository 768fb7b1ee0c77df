//! One budget, across all callers, for what the POST routes keep in memory
//! while they answer: a request's body and what is parsed from it stay until
//! its answer (a `send` for up to `--send-timeout`, a `?wait=` for as long
//! as it waits). A request reserves its share before its body is read and
//! gets 429 with `Retry-After` when the budget is spent, so that no number
//! of callers, each within its own rate limit, can grow the process's memory
//! past it.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::errors::{ApiError, code};

/// The default of `--max-in-flight-bytes`.
pub const DEFAULT_IN_FLIGHT_BYTES: usize = 32 * 1024 * 1024;

/// What a request costs at least, however small its body: a waiting request
/// holds a task, its answer and its place among the waiters.
pub const MIN_COST: usize = 16 * 1024;

/// The budget is counted in units of this many bytes.
const UNIT: usize = 1024;

/// The budget of bytes in flight.
#[derive(Clone)]
pub struct InFlight {
    units: Arc<Semaphore>,
    total: usize,
}

/// A request's share of the budget, given back when dropped (once answered).
#[must_use]
pub struct Reserved(#[allow(dead_code)] OwnedSemaphorePermit);

impl InFlight {
    /// A budget of `bytes` (at least one maximum-size request's).
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).max(1);
        InFlight { units: Arc::new(Semaphore::new(units)), total: units * UNIT }
    }

    /// Reserve the share of a request with `headers` and bodies of at most
    /// `max_body` bytes: its declared `Content-Length` (the most a body may
    /// have when it declares none), at least [`MIN_COST`].
    pub fn reserve(&self, headers: &HeaderMap, max_body: usize) -> Result<Reserved, ApiError> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = declared.map_or(max_body, |n| usize::try_from(n).unwrap_or(usize::MAX).min(max_body));
        let units = bytes.max(MIN_COST).div_ceil(UNIT).min(self.total / UNIT);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        self.units.clone().try_acquire_many_owned(units).map(Reserved).map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                code::RATE_LIMITED,
                format!(
                    "kube-notify is answering as many requests as it holds in memory at once ({} MiB of bodies and waits); send again after Retry-After",
                    self.total / (1024 * 1024)
                ),
            )
            .retry_after(Duration::from_secs(1))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_length(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, n.to_string().parse().unwrap());
        h
    }

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let budget = InFlight::new(64 * 1024);
        let a = budget.reserve(&with_length(30 * 1024), 1 << 20).unwrap();
        let _b = budget.reserve(&with_length(100), 1 << 20).unwrap(); // 16 KiB at least
        let _c = budget.reserve(&with_length(100), 1 << 20).unwrap();
        let refused = budget.reserve(&with_length(100), 1 << 20).err().expect("spent");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        drop(a);
        let _again = budget.reserve(&with_length(20 * 1024), 1 << 20).unwrap();
    }

    #[test]
    fn an_undeclared_body_costs_the_most_a_body_may_have() {
        let budget = InFlight::new(1 << 20);
        let _whole = budget.reserve(&HeaderMap::new(), 1 << 20).unwrap();
        assert!(budget.reserve(&with_length(1), 1 << 20).is_err());
    }

    #[test]
    fn a_request_larger_than_the_budget_can_still_be_answered_alone() {
        let budget = InFlight::new(16 * 1024);
        let one = budget.reserve(&with_length(1 << 20), 1 << 20).unwrap();
        assert!(budget.reserve(&with_length(1), 1 << 20).is_err());
        drop(one);
    }
}
