//! Injected faults: what a real API server does under load (429 from API
//! Priority and Fairness, 500/503), when it is slow or hangs, and during
//! restarts (connections closed without an answer).
//!
//! A fault applies to the requests matching its [`RequestMatcher`] that
//! arrive after it was injected, in injection order (the first matching
//! fault with applications left wins). Faults are checked after
//! authentication, so unauthenticated requests (401) are never faulted.

use super::{RecordedRequest, RequestMatcher};
use std::sync::Mutex;
use std::time::Duration;

/// The `code` recorded for a request that got no answer: a [`FaultKind::Reset`],
/// a [`FaultKind::Hang`] while it hangs, or a request refused by
/// [`super::ApiServer::refuse_connections`].
pub const NO_ANSWER: u16 = 0;

/// What a fault does to each request it matches.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answered with a `Status` body of this code/reason instead of being
    /// served; `retry_after` adds a `Retry-After: <seconds>` header and
    /// `details.retryAfterSeconds` (as API Priority and Fairness does with
    /// 429). kube's client retries 429/503/504 up to 15 times by itself,
    /// honouring `Retry-After`.
    Status { code: u16, reason: String, retry_after: Option<u64> },
    /// Served normally, but only after this delay.
    Delay(Duration),
    /// Never answered while the fault is in place (the client sees a hung
    /// request); released (served) when the fault is cleared, also after its
    /// `times` ran out. Recorded with [`NO_ANSWER`] when it starts hanging,
    /// and once more with its real code if released and served.
    Hang,
    /// The connection is closed without any answer (as during an API server
    /// restart), with a TCP reset. A watch is answered `200` first and its
    /// stream is then cut the same way (no clean end). Recorded with
    /// [`NO_ANSWER`].
    Reset,
}

/// Names one injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

struct Fault {
    id: FaultId,
    matcher: RequestMatcher,
    kind: FaultKind,
    /// Applications left; `None`: until cleared.
    remaining: Option<usize>,
    hits: usize,
    cleared: bool,
}

/// Every fault injected into one server (cleared ones too, for their hits).
pub(crate) struct Faults {
    list: Mutex<(u64, Vec<Fault>)>,
    /// Bumped on every clear: hung requests re-check their fault.
    cleared_tx: tokio::sync::watch::Sender<u64>,
}

impl Faults {
    pub fn new() -> Faults {
        Faults { list: Mutex::new((0, Vec::new())), cleared_tx: tokio::sync::watch::channel(0).0 }
    }

    pub fn inject(&self, matcher: RequestMatcher, kind: FaultKind, times: Option<usize>) -> FaultId {
        let mut l = self.list.lock().unwrap();
        l.0 += 1;
        let id = FaultId(l.0);
        l.1.push(Fault { id, matcher, kind, remaining: times, hits: 0, cleared: false });
        id
    }

    /// The fault that applies to `r`, counted as hit.
    pub fn take(&self, r: &RecordedRequest) -> Option<(FaultId, FaultKind)> {
        let mut l = self.list.lock().unwrap();
        let f = l.1.iter_mut().find(|f| !f.cleared && f.remaining != Some(0) && f.matcher.matches(r))?;
        if let Some(n) = f.remaining.as_mut() {
            *n -= 1;
        }
        f.hits += 1;
        Some((f.id, f.kind.clone()))
    }

    pub fn clear(&self, id: FaultId) {
        self.clear_where(|f| f.id == id);
    }

    pub fn clear_all(&self) {
        self.clear_where(|_| true);
    }

    fn clear_where(&self, pred: impl Fn(&Fault) -> bool) {
        for f in self.list.lock().unwrap().1.iter_mut().filter(|f| pred(f)) {
            f.cleared = true;
        }
        self.cleared_tx.send_modify(|n| *n += 1);
    }

    pub fn hits(&self, id: FaultId) -> usize {
        self.list.lock().unwrap().1.iter().find(|f| f.id == id).map_or(0, |f| f.hits)
    }

    /// Returns once `id` is cleared.
    pub async fn until_cleared(&self, id: FaultId) {
        let mut rx = self.cleared_tx.subscribe();
        loop {
            if self.list.lock().unwrap().1.iter().all(|f| f.id != id || f.cleared) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}
