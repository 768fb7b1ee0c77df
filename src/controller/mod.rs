//! The reconcilers and what they share.

pub mod event;
pub mod integration;
pub mod notifiers;
pub mod per_integration;

use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use kube::runtime::reflector::ObjectRef;

use crate::crd::{NotificationEvent, NotificationIntegration, Service};
use crate::delivery::Engine;
use crate::metrics::Metrics;
use crate::notifier::ServiceEndpoints;
use crate::notifier::http::HttpClient;

/// Timings of the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often valid credentials are checked again (spread by ±10%).
    pub revalidate_period: Duration,
    /// First wait after a transient failure; doubles up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Wait after a failed reconcile (an API error, a conflict).
    pub error_requeue: Duration,
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            revalidate_period: Duration::from_secs(6 * 3600),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            error_requeue: Duration::from_secs(5),
            validation_rate: std::num::NonZeroU32::new(5).unwrap(),
            event_deadline: Duration::from_secs(3600),
            event_ttl: Some(Duration::from_secs(24 * 3600)),
            retry: crate::delivery::RetryPolicy::default(),
            counter_flush: Duration::from_secs(1),
        }
    }
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub endpoints: ServiceEndpoints,
    pub http: HttpClient,
    pub recorder: Recorder,
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
    /// Sends messages: rate limits and retries.
    pub engine: Engine,
    /// The per-integration delivery queues.
    pub dispatcher: Arc<event::worker::Dispatcher>,
    /// Successes waiting to be added to integrations' counters.
    pub counters: integration::counters::CounterBatches,
    /// Asks the event controller to look at an event again.
    pub event_triggers: Triggers<NotificationEvent>,
}

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
        use kube::ResourceExt;
        let live: std::collections::HashSet<(String, String)> =
            self.integrations.state().iter().map(|ni| (ni.namespace().unwrap_or_default(), ni.name_any())).collect();
        let exists = |k: &(String, String)| live.contains(k);
        let dropped = self.notifiers.retain(exists) + self.checks.retain(exists) + self.counters.retain(exists);
        if dropped > 0 {
            tracing::debug!(dropped, "forgot deleted integrations");
        }
        dropped
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
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, object).await {
            tracing::warn!(name = ?object.name, namespace = ?object.namespace, error = %e, "could not publish a Kubernetes Event");
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        endpoints: ServiceEndpoints,
        http: HttpClient,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        settings: Settings,
        secrets: Store<PartialObjectMeta<Secret>>,
        integrations: Store<NotificationIntegration>,
        event_triggers: Triggers<NotificationEvent>,
    ) -> Self {
        let validation_limiter = DefaultKeyedRateLimiter::keyed(Quota::per_second(settings.validation_rate));
        let engine = Engine::new(http.clone(), settings.retry.clone());
        Context {
            client,
            endpoints,
            http,
            recorder,
            metrics,
            settings,
            secrets,
            checks: Default::default(),
            notifiers: Default::default(),
            validation_limiter,
            integrations,
            engine,
            dispatcher: Default::default(),
            counters: Default::default(),
            event_triggers,
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
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409)
    }
}
