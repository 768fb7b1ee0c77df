//! How a message gets sent and put on record, on both paths
//! (NotificationEvents and the synchronous HTTP `send`):
//!
//! - [`queues`]: one queue and one worker per integration;
//! - [`notifiers`]: the notifier built from an integration's spec and Secret, cached;
//! - [`mentions`]: mentions resolved just before the send, and reported;
//! - [`Engine`] ([`retry`], [`ratelimit`]): the send itself, rate-limited and retried;
//! - [`outcomes`]: what the service answered, kept until the event's status carries it;
//! - [`counters`]: outcomes counted into the integration's status;
//! - [`send_now`]: the synchronous path, one message sent at once.
//!
//! The controllers decide what to deliver and call [`Delivery`]; what an
//! outcome does to a status is [`crate::status`]'s.

pub mod contents;
pub mod counters;
pub mod mentions;
pub mod notifiers;
pub mod outcomes;
pub mod queues;
pub mod ratelimit;
pub mod retry;
pub mod send_now;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

pub use retry::RetryPolicy;

use crate::caches::Caches;
use crate::crd::{IntegrationKey, NotificationEvent};
use crate::metrics::Metrics;
use crate::notifier::http::HttpClient;
use crate::notifier::mentions::{MentionSettings, Mentioner};
use crate::notifier::{Message, Notifier, ServiceEndpoints};
use crate::record::{ErrorBackoff, StatusWriters};
use crate::status::outcome::Report;
use crate::store::Store;

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

/// How delivery behaves.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Where each service is, and which destinations are allowed.
    pub endpoints: ServiceEndpoints,
    /// How Secrets are read (a Secret a mode does not admit is not used).
    pub secret_access: crate::store::SecretAccess,
    /// Retries of transient delivery failures.
    pub retry: RetryPolicy,
    /// Caches, limits and waits of mention resolution.
    pub mentions: MentionSettings,
    /// How long an event may wait and be retried after its creation.
    pub event_deadline: Duration,
    /// Successful deliveries are added to the integration's counters at most this often.
    pub counter_flush: Duration,
    /// First wait after an API error; doubles with each further one up to `error_requeue_max`.
    pub error_requeue: Duration,
    pub error_requeue_max: Duration,
    /// At most one `MentionUnresolved` Warning Event per integration and email this often.
    pub mention_warning_period: Duration,
}

/// A way to make a controller reconcile an object now. Each term as the
/// leader runs a new controller, which [`Triggers::subscribe`]s anew;
/// triggers while no controller runs are dropped (a new controller starts
/// from every object anyway).
pub struct Triggers<K: kube::Resource>(std::sync::Mutex<futures::channel::mpsc::UnboundedSender<ObjectRef<K>>>);

impl<K: kube::Resource> Default for Triggers<K> {
    fn default() -> Self {
        Triggers(std::sync::Mutex::new(futures::channel::mpsc::unbounded().0))
    }
}

impl<K: kube::Resource> Triggers<K> {
    /// The stream to pass to `Controller::reconcile_on`; it replaces the
    /// previous controller's.
    pub fn subscribe(&self) -> futures::channel::mpsc::UnboundedReceiver<ObjectRef<K>> {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        *self.0.lock().unwrap() = tx;
        rx
    }

    pub fn trigger(&self, object: ObjectRef<K>) {
        let _ = self.0.lock().unwrap().unbounded_send(object);
    }
}

/// The delivery machinery, and what it reads and writes through.
pub struct Delivery {
    store: Store,
    caches: Caches,
    writes: Arc<StatusWriters>,
    metrics: Arc<Metrics>,
    settings: DeliverySettings,
    engine: Engine,
    queues: queues::Dispatcher,
    outcomes: outcomes::KnownOutcomes,
    counters: counters::CounterBatches,
    notifiers: notifiers::NotifierCache,
    /// The content of large events, read when they are delivered.
    contents: contents::Contents,
    mentions: mentions::Mentions,
    /// Asks the event controller to look at an event again.
    event_triggers: Triggers<NotificationEvent>,
    /// Waits after API errors, per delivery queue.
    backoff: ErrorBackoff,
    /// Secret reads in flight at once (credential checks and deliveries).
    secret_reads: tokio::sync::Semaphore,
}

/// The most Secret reads in flight at once.
pub const SECRET_READS_AT_ONCE: usize = 16;

impl Delivery {
    pub fn new(
        store: Store,
        caches: Caches,
        writes: Arc<StatusWriters>,
        metrics: Arc<Metrics>,
        http: HttpClient,
        settings: DeliverySettings,
    ) -> Self {
        let backoff = ErrorBackoff::new(settings.error_requeue, settings.error_requeue_max);
        Delivery {
            store,
            caches,
            writes,
            metrics,
            engine: Engine::new(http.clone(), settings.retry.clone()),
            queues: Default::default(),
            outcomes: Default::default(),
            counters: Default::default(),
            notifiers: Default::default(),
            contents: Default::default(),
            mentions: mentions::Mentions::new(Mentioner::new(settings.mentions.clone()), http),
            event_triggers: Triggers::default(),
            backoff,
            secret_reads: tokio::sync::Semaphore::new(SECRET_READS_AT_ONCE),
            settings,
        }
    }

    /// The HTTP client every notifier calls its service with.
    pub fn http(&self) -> &HttpClient {
        &self.engine.http
    }

    /// How deliveries ask the event controller to look at an event again.
    pub fn event_triggers(&self) -> &Triggers<NotificationEvent> {
        &self.event_triggers
    }

    /// The per-integration queues.
    pub fn queues(&self) -> &queues::Dispatcher {
        &self.queues
    }

    /// Delivery outcomes known but not final on record yet.
    pub fn outcomes(&self) -> &outcomes::KnownOutcomes {
        &self.outcomes
    }

    /// Successes waiting to be added to integrations' counters.
    pub fn counters(&self) -> &counters::CounterBatches {
        &self.counters
    }

    /// Notifiers built from each integration's spec and Secret.
    pub fn notifiers(&self) -> &notifiers::NotifierCache {
        &self.notifiers
    }

    /// Drop what is kept for integrations `exists` says are gone (notifiers,
    /// counter writers, delivery metrics) and the outcomes of events deleted
    /// before they were final on record; how many integrations' entries were
    /// dropped.
    pub fn forget_deleted(&self, exists: impl Fn(&IntegrationKey) -> bool) -> usize {
        let dropped = self.notifiers.retain(&exists) + self.counters.retain(&exists);
        self.metrics.forget_integrations(&exists);
        if let Some(events) = self.caches.events() {
            let live: std::collections::HashSet<String> =
                events.state().iter().filter_map(|ev| ev.metadata.uid.clone()).collect();
            let outcomes = self.outcomes.retain(|uid| live.contains(uid));
            if outcomes > 0 {
                tracing::debug!(outcomes, "forgot the outcomes of deleted events");
            }
        }
        dropped
    }

    /// Stop delivering and put on record what is known, within `timeout`:
    /// no new delivery starts, those in flight finish, their outcomes are
    /// written to their events, and batched counters are flushed. Run before
    /// the Lease is released (or the process exits), so that the next leader
    /// sends nothing again. Whether everything was written in time.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let delivered = self.queues.drain(timeout).await;
        let events = self.write_known_outcomes(deadline).await;
        // A counter writer may be retrying a failure against an API that is down.
        let counters = tokio::time::timeout_at(deadline, self.flush_counters(deadline)).await.unwrap_or(false);
        if !(delivered && events && counters) {
            tracing::warn!(delivered, events, counters, "could not put everything on record before stopping");
        }
        delivered && events && counters
    }
}
