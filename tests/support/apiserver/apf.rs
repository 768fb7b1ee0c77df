//! API Priority and Fairness, minimal: off by default; when on
//! ([`super::ApiServer::limit_in_flight`]), each user (flow) may have at
//! most `per_user` non-long-running requests served at once, the next
//! `queue` wait in a FIFO queue and the rest are answered 429 with
//! `Retry-After`. Watches are long-running and exempt; so are the requests
//! of `system:masters` (the admin), as by a real server's `exempt`
//! FlowSchema.
//!
//! Simplified against a real server: one priority level, one flow per user
//! (a real server distinguishes flows by user *and* namespace within a
//! flow schema), a fixed per-user concurrency instead of a level's shared
//! seats, no shuffle sharding, no borrowing between levels, no queue wait
//! timeout (a real server rejects a request that waited too long), one
//! seat per request whatever its width (a real server charges a large list
//! several seats). A request holds its seat while it is served: an injected
//! delay or hang keeps it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The in-flight limit of [`super::ApiServer::limit_in_flight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlightLimit {
    /// Requests of one user served at once.
    pub per_user: usize,
    /// Requests of one user that may wait for a seat (FIFO); more are
    /// answered 429.
    pub queue: usize,
    /// The `Retry-After` (and `details.retryAfterSeconds`) of that 429.
    pub retry_after_seconds: u64,
}

#[derive(Default)]
struct Flow {
    in_flight: usize,
    max_seen: usize,
    /// Waiting requests by ticket, oldest first.
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Flow {
    fn take_seat(&mut self) {
        self.in_flight += 1;
        self.max_seen = self.max_seen.max(self.in_flight);
    }

    /// Hands free seats to waiting requests in arrival order.
    fn dispatch(&mut self, limit: Option<InFlightLimit>) {
        while limit.is_none_or(|l| self.in_flight < l.per_user) {
            let Some((_, tx)) = self.queue.pop_front() else {
                return;
            };
            // A waiter that went away (client gone) is skipped.
            if tx.send(()).is_ok() {
                self.take_seat();
            }
        }
    }
}

#[derive(Default)]
struct State {
    limit: Option<InFlightLimit>,
    flows: HashMap<String, Flow>,
    next_ticket: u64,
}

/// The seats of one server.
#[derive(Default)]
pub(crate) struct Apf {
    state: Mutex<State>,
}

/// A seat held by a request being served; freed (and handed to the next
/// waiting request of the same user) when dropped.
pub(crate) struct Seat {
    apf: Arc<Apf>,
    user: String,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.apf.release(&self.user);
    }
}

/// A request waiting in its flow's queue. Dropped before it was given a
/// seat (the client went away), it leaves the queue; dropped after, it
/// gives the seat back.
struct Waiter {
    apf: Arc<Apf>,
    user: String,
    ticket: u64,
    rx: oneshot::Receiver<()>,
    seated: bool,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.seated {
            return;
        }
        // Seats are handed out under the lock, so this is decided.
        let mut st = self.apf.state.lock().unwrap();
        if self.rx.try_recv().is_ok() {
            drop(st);
            self.apf.release(&self.user);
        } else if let Some(f) = st.flows.get_mut(&self.user) {
            f.queue.retain(|(t, _)| *t != self.ticket);
        }
    }
}

impl Apf {
    pub fn set_limit(&self, limit: Option<InFlightLimit>) {
        let mut st = self.state.lock().unwrap();
        st.limit = limit;
        for f in st.flows.values_mut() {
            f.dispatch(limit);
        }
    }

    pub fn max_in_flight_seen(&self, user: &str) -> usize {
        self.state.lock().unwrap().flows.get(user).map_or(0, |f| f.max_seen)
    }

    fn release(&self, user: &str) {
        let mut st = self.state.lock().unwrap();
        let limit = st.limit;
        if let Some(f) = st.flows.get_mut(user) {
            f.in_flight -= 1;
            f.dispatch(limit);
        }
    }

    /// A seat for a non-long-running request of `user`, with how long it
    /// waited in the queue; `Err(retry_after_seconds)` when the queue is
    /// full. Without a limit, and for `exempt` requests, the seat is given
    /// at once (and still counted for [`Apf::max_in_flight_seen`]).
    pub async fn seat(self: &Arc<Self>, user: &str, exempt: bool) -> Result<(Seat, Duration), u64> {
        let started = tokio::time::Instant::now();
        let seat = || Seat { apf: self.clone(), user: user.to_string() };
        let (ticket, rx) = {
            let mut st = self.state.lock().unwrap();
            let limit = st.limit;
            st.next_ticket += 1;
            let ticket = st.next_ticket;
            let f = st.flows.entry(user.to_string()).or_default();
            match limit.filter(|_| !exempt) {
                Some(l) if f.in_flight >= l.per_user || !f.queue.is_empty() => {
                    if f.queue.len() >= l.queue {
                        return Err(l.retry_after_seconds);
                    }
                    let (tx, rx) = oneshot::channel();
                    f.queue.push_back((ticket, tx));
                    (ticket, rx)
                }
                _ => {
                    f.take_seat();
                    return Ok((seat(), Duration::ZERO));
                }
            }
        };
        let mut w = Waiter { apf: self.clone(), user: user.to_string(), ticket, rx, seated: false };
        // Senders are only dropped after sending.
        let _ = (&mut w.rx).await;
        w.seated = true;
        Ok((seat(), started.elapsed()))
    }
}
