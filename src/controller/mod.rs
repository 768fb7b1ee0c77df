//! The reconcilers and what they share.

pub mod event;
pub mod integration;
pub mod mentions;
pub mod notifiers;
pub mod per_integration;
pub mod status_writes;

use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;

use kube::runtime::reflector::ObjectRef;

use crate::crd::{IntegrationKey, NotificationContact, NotificationEvent, NotificationIntegration, Service};
use crate::delivery::Engine;
use crate::metrics::Metrics;
use crate::notifier::ServiceEndpoints;
use crate::notifier::http::HttpClient;

/// The default of [`Settings::max_targets`] (`--max-targets`).
pub const DEFAULT_MAX_TARGETS: usize = 1000;

/// Timings and limits of the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often valid credentials are checked again (spread by ±10%).
    pub revalidate_period: Duration,
    /// First wait after a transient failure; doubles up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// First wait after an API error (a failed reconcile, status or counter
    /// write); doubles with each further error up to `error_requeue_max`.
    pub error_requeue: Duration,
    pub error_requeue_max: Duration,
    /// An event whose deliveries are all queued gets no status write for this
    /// long after its creation: delivered within it, its one status write is
    /// the final one.
    pub queued_status_after: Duration,
    /// While other deliveries of an event are in flight, its known outcomes
    /// are written at most this often (the last one at once): a fan-out to
    /// many integrations takes a few status writes, not one per outcome.
    pub outcome_batch: Duration,
    /// Credential checks per second per service, across all integrations.
    pub validation_rate: std::num::NonZeroU32,
    /// How long an event may wait for its integration (and retries may run) after creation.
    pub event_deadline: Duration,
    /// Finished events are deleted this long after they finished unless
    /// their spec says otherwise; `None` keeps them.
    pub event_ttl: Option<Duration>,
    /// Retries of transient delivery failures.
    pub retry: crate::delivery::RetryPolicy,
    /// Successful deliveries are added to the integration's counters at most this often.
    pub counter_flush: Duration,
    /// Caches, limits and waits of mention resolution.
    pub mentions: crate::notifier::mentions::MentionSettings,
    /// At most one `MentionUnresolved` Warning Event per integration and email this often.
    pub mention_warning_period: Duration,
    /// The most integrations one event may target: an event whose selector
    /// matches more fails as `TooManyTargets` (its status would outgrow an
    /// object's size limit).
    pub max_targets: usize,
    /// How Secret changes are noticed (`--secret-access`).
    pub secret_access: crate::store::SecretAccess,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            revalidate_period: Duration::from_secs(6 * 3600),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            error_requeue: Duration::from_secs(1),
            error_requeue_max: Duration::from_secs(120),
            queued_status_after: Duration::from_secs(30),
            outcome_batch: Duration::from_millis(100),
            validation_rate: std::num::NonZeroU32::new(5).unwrap(),
            event_deadline: Duration::from_secs(3600),
            event_ttl: Some(Duration::from_secs(24 * 3600)),
            retry: crate::delivery::RetryPolicy::default(),
            counter_flush: Duration::from_secs(5),
            mentions: Default::default(),
            mention_warning_period: Duration::from_secs(3600),
            max_targets: DEFAULT_MAX_TARGETS,
            secret_access: crate::store::SecretAccess::Watch,
        }
    }
}

/// What every reconcile needs.
pub struct Context {
    /// Where state lives: the Kubernetes API or the embedded database.
    pub store: crate::store::Store,
    pub endpoints: ServiceEndpoints,
    pub http: HttpClient,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Secret metadata from the watch: tells when a Secret changed without reading it.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub checks: integration::credentials::CheckCache,
    /// Notifiers built from each integration's spec and Secret.
    pub notifiers: notifiers::NotifierCache,
    /// Spreads credential checks so that thousands of integrations never burst at a service.
    pub validation_limiter: DefaultKeyedRateLimiter<Service>,
    /// Every integration, from the shared watch.
    pub integrations: Store<NotificationIntegration>,
    /// Every contact (email to service accounts), from its watch.
    pub contacts: Store<NotificationContact>,
    /// Resolves mentions: lookups, their caches and rate limits.
    pub mentioner: crate::notifier::mentions::Mentioner,
    /// When each unresolved mention was last warned about.
    pub mention_warnings: mentions::Warned,
    /// Sends messages: rate limits and retries.
    pub engine: Engine,
    /// The per-integration delivery queues.
    pub dispatcher: Arc<event::worker::Dispatcher>,
    /// Successes waiting to be added to integrations' counters.
    pub counters: integration::counters::CounterBatches,
    /// Asks the event controller to look at an event again.
    pub event_triggers: Triggers<NotificationEvent>,
    /// Delivery outcomes known but not written yet.
    pub outcomes: event::outcomes::KnownOutcomes,
    /// The event status writer's memory of its own writes.
    pub event_writes: status_writes::StatusWrites<NotificationEvent>,
    /// The integration status writers' (credentials and counters) memory of their own writes.
    pub integration_writes: status_writes::StatusWrites<NotificationIntegration>,
    /// Waits after API errors, per event and per delivery queue.
    pub api_backoff: ErrorBackoff,
    /// Every event, from the event controller's watch (set when it starts):
    /// a queued delivery of an event deleted meanwhile is not sent.
    pub events: std::sync::OnceLock<Store<NotificationEvent>>,
}

/// How long our own status writes are remembered at most (for objects
/// deleted before the watch showed the write).
const REMEMBER_WRITES: Duration = Duration::from_secs(3600);

/// A way to make a controller reconcile an object now.
pub struct Triggers<K: kube::Resource>(futures::channel::mpsc::UnboundedSender<ObjectRef<K>>);

impl<K: kube::Resource> Triggers<K> {
    /// The sender, and the stream to pass to `Controller::reconcile_on`.
    pub fn new() -> (Self, futures::channel::mpsc::UnboundedReceiver<ObjectRef<K>>) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        (Triggers(tx), rx)
    }

    pub fn trigger(&self, object: ObjectRef<K>) {
        let _ = self.0.unbounded_send(object);
    }
}

impl Context {
    /// Drop what is kept in memory per integration (notifiers, credential
    /// check records, counter writers) for integrations no longer in the
    /// watch cache. Run periodically: deletions need no finalizer for it.
    pub fn prune_deleted(&self) -> usize {
        let live: std::collections::HashSet<IntegrationKey> =
            self.integrations.state().iter().map(|ni| IntegrationKey::of(ni)).collect();
        let exists = |k: &IntegrationKey| live.contains(k);
        let dropped = self.notifiers.retain(exists) + self.checks.retain(exists) + self.counters.retain(exists);
        if let Some(events) = self.events.get() {
            // Outcomes of events deleted before they were final on record.
            let live: std::collections::HashSet<String> =
                events.state().iter().filter_map(|ev| ev.metadata.uid.clone()).collect();
            let outcomes = self.outcomes.retain(|uid| live.contains(uid));
            if outcomes > 0 {
                tracing::debug!(outcomes, "forgot the outcomes of deleted events");
            }
        }
        self.event_writes.forget_older_than(REMEMBER_WRITES);
        self.integration_writes.forget_older_than(REMEMBER_WRITES);
        if dropped > 0 {
            tracing::debug!(dropped, "forgot deleted integrations");
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
        let delivered = self.dispatcher.drain(timeout).await;
        let events = event::write_known_outcomes(self, deadline).await;
        // A counter writer may be retrying a failure against an API that is down.
        let counters =
            tokio::time::timeout_at(deadline, integration::counters::flush_all(self, deadline)).await.unwrap_or(false);
        if !(delivered && events && counters) {
            tracing::warn!(delivered, events, counters, "could not put everything on record before stopping");
        }
        delivered && events && counters
    }

    /// Publish a Kubernetes Event about `object`; a failure is logged, never fatal.
    pub async fn publish(
        &self,
        object: &k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
        action: &str,
    ) {
        self.publish_about(object, None, warning, reason, note, action).await
    }

    /// [`Context::publish`] with a related object. Events of the same reason
    /// about the same object and related object within minutes are folded
    /// into one series (kube-runtime's recorder), which keeps the first note:
    /// a related object tells them apart.
    pub async fn publish_about(
        &self,
        object: &k8s_openapi::api::core::v1::ObjectReference,
        related: Option<k8s_openapi::api::core::v1::ObjectReference>,
        warning: bool,
        reason: &str,
        note: String,
        action: &str,
    ) {
        let event = kube::runtime::events::Event {
            type_: if warning {
                kube::runtime::events::EventType::Warning
            } else {
                kube::runtime::events::EventType::Normal
            },
            reason: reason.to_string(),
            // The Events API refuses notes over 1 KB.
            note: Some(crate::notifier::render::truncate_chars(&note, 500)),
            action: action.to_string(),
            secondary: related,
        };
        if let Err(e) = self.store.notices.publish(object, event).await {
            tracing::warn!(name = ?object.name, namespace = ?object.namespace, error = %e, "could not publish a Kubernetes Event");
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: crate::store::Store,
        endpoints: ServiceEndpoints,
        http: HttpClient,
        metrics: Arc<Metrics>,
        settings: Settings,
        secrets: Store<PartialObjectMeta<Secret>>,
        integrations: Store<NotificationIntegration>,
        contacts: Store<NotificationContact>,
        event_triggers: Triggers<NotificationEvent>,
    ) -> Self {
        let validation_limiter = DefaultKeyedRateLimiter::keyed(Quota::per_second(settings.validation_rate));
        let api_backoff = ErrorBackoff::new(settings.error_requeue, settings.error_requeue_max);
        let engine = Engine::new(http.clone(), settings.retry.clone());
        let mentioner = crate::notifier::mentions::Mentioner::new(settings.mentions.clone());
        Context {
            store,
            endpoints,
            http,
            metrics,
            settings,
            secrets,
            checks: Default::default(),
            notifiers: Default::default(),
            validation_limiter,
            integrations,
            contacts,
            mentioner,
            mention_warnings: Default::default(),
            engine,
            dispatcher: Default::default(),
            counters: Default::default(),
            event_triggers,
            outcomes: Default::default(),
            event_writes: status_writes::StatusWrites::new("NotificationEvent"),
            integration_writes: status_writes::StatusWrites::new("NotificationIntegration"),
            api_backoff,
            events: std::sync::OnceLock::new(),
        }
    }
}

/// Errors of a reconcile: Kubernetes API failures. Service failures are not
/// errors; they are outcomes recorded in status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("gave up after repeated write conflicts on {0}")]
    Conflict(String),
}

impl Error {
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409) || matches!(self, Error::Conflict(_))
    }

    /// The HTTP code of the API's answer, or `transport` when there was none
    /// (refused or reset connection, timeout); a metric label.
    pub fn code_label(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(s)) => s.code.to_string(),
            Error::Kube(_) => "transport".to_string(),
            Error::Conflict(_) => "409".to_string(),
        }
    }
}

/// Exponential, capped waits after API errors, per object (or per delivery
/// queue): the first error waits `base`, each further one twice as long up
/// to `max`, with ±20% jitter; a success starts over.
pub struct ErrorBackoff {
    base: Duration,
    max: Duration,
    failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl ErrorBackoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        ErrorBackoff { base, max: max.max(base), failures: Default::default() }
    }

    /// The wait after one more failure of `key`.
    pub fn failed(&self, key: &str) -> Duration {
        let n = {
            let mut failures = self.failures.lock().unwrap();
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        backoff_delay(self.base, self.max, n)
    }

    /// `key` succeeded: its next failure waits `base` again.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap();
        if !failures.is_empty() {
            failures.remove(key);
        }
    }
}

/// The wait after the `n`th consecutive failure (n >= 1).
pub fn backoff_delay(base: Duration, max: Duration, n: u32) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(30)));
    let capped = exp.min(max);
    let jitter = rand::random_range(0.8..1.2);
    capped.mul_f64(jitter).min(max)
}
