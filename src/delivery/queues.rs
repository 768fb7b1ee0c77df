//! One queue and one worker per integration: events for an integration are
//! delivered one at a time in creation order, and a slow or failing
//! integration never delays the others.
//!
//! A worker makes no API call on the way to a send: the event comes with the
//! job (as its reconcile saw it) and the integration from the watch cache
//! (or our own newer write of it). The outcome is put in
//! [`KnownOutcomes`](super::outcomes::KnownOutcomes) the moment the service
//! answered, and the event's reconcile writes it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info, warn};

use super::Delivery;
use crate::crd::{IntegrationKey, NotificationEvent};
use crate::notifier::Message;
use crate::record::Error;
use crate::status::event::Known;
use crate::status::integration::{Under, receivable};

/// One delivery to do: an event to one integration.
#[derive(Clone, Debug)]
pub struct Job {
    pub namespace: String,
    pub event: String,
    pub event_uid: String,
    pub integration: String,
    /// The event as its reconcile saw it: what is sent.
    pub snapshot: Arc<NotificationEvent>,
}

/// Creation order: creation time, then name.
type OrderKey = (i64, String);

#[derive(Default)]
struct Queue {
    waiting: BTreeMap<OrderKey, Job>,
    /// Events queued or being delivered, by name.
    members: HashSet<String>,
}

#[derive(Default)]
struct Queues {
    by_integration: HashMap<IntegrationKey, Queue>,
    /// The integrations each (namespace, event) is queued for or being delivered to.
    by_event: HashMap<(String, String), HashSet<String>>,
}

impl Queues {
    fn leave(&mut self, key: &IntegrationKey, event: &str) {
        if let Some(queue) = self.by_integration.get_mut(key) {
            queue.members.remove(event);
        }
        let event_key = (key.namespace.clone(), event.to_string());
        if let Some(set) = self.by_event.get_mut(&event_key) {
            set.remove(&key.name);
            if set.is_empty() {
                self.by_event.remove(&event_key);
            }
        }
    }
}

/// The per-integration queues.
#[derive(Default)]
pub struct Dispatcher {
    queues: Mutex<Queues>,
    /// Set on shutdown or loss of leadership: no new delivery starts.
    draining: AtomicBool,
    /// Bumped by each [`Dispatcher::resume`]: a worker of an earlier term
    /// (asleep after an error while its term ended) stops without touching
    /// the queues of the new one.
    term: AtomicU64,
    /// Deliveries being sent right now, and a signal when one ends.
    running: AtomicUsize,
    finished: tokio::sync::Notify,
}

impl Dispatcher {
    /// The integrations `event` is queued for or being delivered to.
    pub fn in_flight(&self, namespace: &str, event: &str) -> HashSet<String> {
        let queues = self.queues.lock().unwrap();
        queues.by_event.get(&(namespace.to_string(), event.to_string())).cloned().unwrap_or_default()
    }

    /// Whether deliveries may start (false once draining).
    pub fn accepting(&self) -> bool {
        !self.draining.load(Ordering::SeqCst)
    }

    /// Add a job to its integration's queue; the queue's key and the term
    /// when its worker must be started.
    fn push(&self, job: Job, created: i64) -> Option<(IntegrationKey, u64)> {
        let key = IntegrationKey::new(&job.namespace, &job.integration);
        let mut queues = self.queues.lock().unwrap();
        let start = !queues.by_integration.contains_key(&key);
        let queue = queues.by_integration.entry(key.clone()).or_default();
        if !queue.members.insert(job.event.clone()) {
            return None;
        }
        let event_key = (job.namespace.clone(), job.event.clone());
        queue.waiting.insert((created, job.event.clone()), job);
        queues.by_event.entry(event_key).or_default().insert(key.name.clone());
        start.then(|| (key, self.term()))
    }

    /// Stop starting deliveries and wait (at most `timeout`) for those in
    /// flight to finish, so that their outcomes are known before a stopping
    /// operator writes them and releases its Lease.
    pub async fn drain(&self, timeout: std::time::Duration) -> bool {
        {
            // Under the queues' lock: a worker that took a job has counted it in `running`.
            let _queues = self.queues.lock().unwrap();
            self.draining.store(true, Ordering::SeqCst);
        }
        tokio::time::timeout(timeout, self.until_idle()).await.is_ok()
    }

    /// Start accepting deliveries again, for a new term as the leader: once
    /// every delivery of the last term has ended (so that no event is sent
    /// by two workers at once), with empty queues (the new term's event
    /// controller plans every event anew).
    pub async fn resume(&self) {
        self.until_idle().await;
        let mut queues = self.queues.lock().unwrap();
        *queues = Queues::default();
        self.term.fetch_add(1, Ordering::SeqCst);
        self.draining.store(false, Ordering::SeqCst);
    }

    /// The current term (see [`Dispatcher::resume`]).
    fn term(&self) -> u64 {
        self.term.load(Ordering::SeqCst)
    }

    /// Resolves once no delivery is running.
    async fn until_idle(&self) {
        loop {
            let finished = self.finished.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            finished.await;
        }
    }

    /// The next job of `key`'s queue, counted as running; None when the
    /// queue is empty or draining (the queue is then gone), or when the
    /// worker's `term` is over.
    fn next(&self, key: &IntegrationKey, term: u64) -> Option<Job> {
        let mut queues = self.queues.lock().unwrap();
        if term != self.term() {
            return None;
        }
        if !self.accepting() {
            queues.by_integration.remove(key);
            return None;
        }
        let queue = queues.by_integration.get_mut(key)?;
        match queue.waiting.pop_first() {
            Some((_, job)) => {
                // Counted while the lock is held: a drain that starts now waits for it.
                self.running.fetch_add(1, Ordering::SeqCst);
                Some(job)
            }
            None => {
                queues.by_integration.remove(key);
                None
            }
        }
    }

    /// A job [`Dispatcher::next`] gave is done: it leaves the queue.
    fn done(&self, key: &IntegrationKey, job: &Job) {
        self.end();
        self.queues.lock().unwrap().leave(key, &job.event);
    }

    /// Count a delivery made outside the queues (a test message) as running,
    /// unless draining: a drain then waits for it as for a queued one.
    fn begin(&self) -> bool {
        // Under the queues' lock, as in `next`: a drain that starts now waits for it.
        let _queues = self.queues.lock().unwrap();
        if !self.accepting() {
            return false;
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        true
    }

    fn end(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.finished.notify_waiters();
    }
}

/// A delivery outside the queues that a drain waits for, until dropped.
pub struct Running(Arc<Delivery>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.queues.end();
    }
}

impl Delivery {
    /// Start a delivery outside the queues (put its outcome on record before
    /// dropping the guard); `None` once draining: it is left to the next leader.
    pub fn begin(self: &Arc<Self>) -> Option<Running> {
        self.queues.begin().then(|| Running(self.clone()))
    }
}

impl Delivery {
    /// Queue a job; start the integration's worker if it isn't running.
    pub fn enqueue(self: &Arc<Self>, job: Job, created: i64) {
        // A delivery whose outcome is known is never queued again.
        if !self.queues.accepting() || self.outcomes.has(&job.event_uid, &job.integration) {
            return;
        }
        if let Some((key, term)) = self.queues.push(job, created) {
            let this = self.clone();
            tokio::spawn(async move { this.work(key, term).await });
        }
    }

    /// Start delivering again in a new term as the leader (see
    /// [`Dispatcher::resume`]).
    pub async fn resume(&self) {
        self.queues.resume().await
    }

    /// The worker of `key`'s queue, until it is empty or draining, or its term is over.
    async fn work(self: Arc<Self>, key: IntegrationKey, term: u64) {
        let backoff_key = format!("queue/{key}");
        while let Some(job) = self.queues.next(&key, term) {
            // Its own task: a panic in one delivery must not leave the queue stuck.
            let result = match tokio::spawn({
                let this = self.clone();
                let job = job.clone();
                async move { this.deliver_job(&job).await }
            })
            .await
            {
                Ok(result) => result,
                Err(e) => Err(Error::Conflict(format!("the delivery task failed: {e}"))),
            };
            // The outcome (if any) is known before the job leaves the queue:
            // the planner never sees it as neither queued nor done.
            self.queues.done(&key, &job);
            let event = ObjectRef::new(&job.event).within(&job.namespace);
            match result {
                // The outcome is known; its reconcile was triggered.
                Ok(Attempt::Sent) => self.backoff.succeeded(&backoff_key),
                // Nothing to do: the event is gone, or its outcome is known.
                Ok(Attempt::NotWanted) => {}
                // Not sent (the integration is not ready or gone): the event
                // controller decides again.
                Ok(Attempt::NotReady) => self.event_triggers.trigger(event),
                // Ready, but its notifier cannot be built (its Secret changed):
                // wait before this queue goes on, until the integration
                // controller has checked it again.
                Ok(Attempt::Unusable) => {
                    let wait = self.backoff.failed(&backoff_key);
                    self.event_triggers.trigger(event);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    // An API error before the send (reading the Secret): wait
                    // before this queue goes on, so a failing API is not hammered.
                    let wait = self.backoff.failed(&backoff_key);
                    warn!(namespace = %job.namespace, event = %job.event, integration = %job.integration, error = %e,
                        retry_in_ms = wait.as_millis() as u64, "could not prepare the delivery; retrying");
                    self.event_triggers.trigger(event);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Deliver one event to one integration.
    async fn deliver_job(self: &Arc<Self>, job: &Job) -> Result<Attempt, Error> {
        let started = tokio::time::Instant::now();
        if !self.still_wanted(job) || self.outcomes.has(&job.event_uid, &job.integration) {
            return Ok(Attempt::NotWanted);
        }
        let cached = self.caches.integration(&job.namespace, &job.integration);
        // Our own last write of the integration (a failure that disabled it) counts even before the watch shows it.
        let Some(ni) = cached.map(|ni| self.writes.integrations.freshest(ni)) else { return Ok(Attempt::NotReady) };
        if !receivable(Some(&ni)).is_ready() {
            return Ok(Attempt::NotReady);
        }
        let loaded = self.notifier_for(&ni).await.inspect_err(|e| self.metrics.api_error("Secret", e.code_label()))?;
        let notifier = match loaded.notifier {
            Ok(n) => n,
            Err(f) => {
                debug!(reason = f.reason, "integration not usable; the integration controller will report it");
                return Ok(Attempt::Unusable);
            }
        };
        let Some(event) = self.contents.of(job, self.store.events.as_ref()).await? else {
            return Ok(Attempt::NotWanted);
        };
        let event = &event;
        let created = event.meta().creation_timestamp.as_ref().map(|t| t.0).unwrap_or_else(jiff::Timestamp::now);
        let mut message = Message::from_event_spec(
            format!("{}.{}", job.event_uid, job.integration),
            &event.spec,
            Some(format!("{}/{}", job.namespace, job.event)),
            created,
        );
        let deadline = deadline_instant(created, self.settings.event_deadline);
        let resolution = self.resolve_mentions(&job.namespace, notifier.as_ref(), &event.spec.mentions).await;
        // Looking people up may have taken a moment: still wanted, still leading?
        if !event.spec.mentions.is_empty() && (!self.still_wanted(job) || !self.queues.accepting()) {
            return Ok(Attempt::NotWanted);
        }
        message.mentions = resolution.mentions.clone();
        let report = self.engine.deliver(notifier.as_ref(), &message, deadline).await;
        // First thing after the service answered: the outcome is known.
        let known = Known {
            integration: job.integration.clone(),
            report: report.clone(),
            at: Time(jiff::Timestamp::now()),
            unresolved: resolution.unresolved_emails(),
        };
        self.outcomes.record(job.snapshot.clone(), &job.event_uid, known);
        self.event_triggers.trigger(ObjectRef::new(&job.event).within(&job.namespace));
        self.report_mentions(&ni, notifier.service(), &resolution, Some(job.snapshot.object_ref(&())));
        info!(namespace = %job.namespace, event = %job.event, integration = %job.integration, attempts = report.attempts, outcome = report.outcome.label(), "delivery finished");
        let key = IntegrationKey::new(&job.namespace, &job.integration);
        self.metrics.delivery(&key, notifier.service(), &report, started.elapsed());
        let under =
            Under { generation: ni.meta().generation.unwrap_or_default(), secret_version: loaded.secret_version };
        self.count(key, &report.outcome, under).await;
        Ok(Attempt::Sent)
    }

    /// Whether the job's event still exists, as the event watch last saw it
    /// (deleted or replaced by another of the same name: cancelled).
    fn still_wanted(&self, job: &Job) -> bool {
        let Some(events) = self.caches.events() else { return true };
        events.get(&ObjectRef::new(&job.event).within(&job.namespace)).is_some_and(|ev| {
            ev.meta().uid.as_deref() == Some(job.event_uid.as_str()) && ev.meta().deletion_timestamp.is_none()
        })
    }
}

/// What became of one job.
enum Attempt {
    /// Sent: its outcome is known and its event's reconcile triggered.
    Sent,
    /// The event is gone, or the delivery's outcome is known already.
    NotWanted,
    /// The integration cannot receive now.
    NotReady,
    /// The integration looks ready, but its notifier cannot be built.
    Unusable,
}

/// The deadline as a tokio instant.
fn deadline_instant(created: jiff::Timestamp, deadline: std::time::Duration) -> tokio::time::Instant {
    let left = created
        .checked_add(jiff::SignedDuration::try_from(deadline).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(jiff::Timestamp::MAX)
        .duration_since(jiff::Timestamp::now());
    tokio::time::Instant::now() + std::time::Duration::try_from(left).unwrap_or_default()
}
