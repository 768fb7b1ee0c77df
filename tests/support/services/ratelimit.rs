//! Rate limiters used by the emulators. They run on `tokio::time::Instant`,
//! so a test with a paused clock can advance through them.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Token bucket: `burst` requests at once, refilled at `per_sec`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_sec: f64, burst: u32) -> Self {
        let capacity = f64::from(burst.max(1));
        Self { rate: per_sec, capacity, tokens: capacity, last: Instant::now() }
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.rate <= 0.0 {
            Err(Duration::from_secs(3600))
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// Fixed window counter (Chatwork's per-token limit): `limit` requests per
/// `window`, the window starting at the first request after the last one ended.
#[derive(Clone, Debug)]
pub struct FixedWindow {
    start: Instant,
    count: u32,
}

/// The state of a fixed window after accounting one request.
#[derive(Clone, Copy, Debug)]
pub struct WindowStatus {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds at which the window resets.
    pub reset_unix: u64,
}

impl FixedWindow {
    pub fn new() -> Self {
        Self { start: Instant::now(), count: 0 }
    }

    pub fn hit(&mut self, limit: u32, window: Duration) -> WindowStatus {
        let now = Instant::now();
        if now >= self.start + window {
            self.start = now;
            self.count = 0;
        }
        let allowed = self.count < limit;
        if allowed {
            self.count += 1;
        }
        let until_reset = (self.start + window).saturating_duration_since(now);
        let reset = SystemTime::now() + until_reset;
        let reset_unix =
            reset.duration_since(UNIX_EPOCH).map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or_default();
        WindowStatus { allowed, limit, remaining: limit.saturating_sub(self.count), reset_unix }
    }
}

impl Default for FixedWindow {
    fn default() -> Self {
        Self::new()
    }
}

/// Sliding log (Chatwork's per-room post limit): at most `limit` events in
/// any `window`.
#[derive(Clone, Debug, Default)]
pub struct SlidingWindow {
    events: VecDeque<Instant>,
}

impl SlidingWindow {
    /// Records an event if allowed; otherwise says how long until one is.
    pub fn try_hit(&mut self, limit: u32, window: Duration) -> Result<(), Duration> {
        let now = Instant::now();
        while let Some(first) = self.events.front() {
            if now.saturating_duration_since(*first) >= window {
                self.events.pop_front();
            } else {
                break;
            }
        }
        if self.events.len() < limit as usize {
            self.events.push_back(now);
            Ok(())
        } else {
            let first = self.events.front().copied().unwrap_or(now);
            Err((first + window).saturating_duration_since(now))
        }
    }
}
