//! The reconcilers and what they share.

pub mod event;
pub mod integration;

use std::sync::Arc;
use std::time::Duration;

use crate::caches::Caches;
use crate::crd::IntegrationKey;
use crate::delivery::{Delivery, DeliverySettings};
use crate::metrics::Metrics;
use crate::notifier::ServiceEndpoints;
use crate::notifier::http::HttpClient;
use crate::record::{ErrorBackoff, Notice, StatusWriters};

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
    /// Reconciles each controller runs at once (API calls in flight).
    pub reconcile_concurrency: u16,
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
    /// Who reads Secrets, and the ClusterRole a namespace binds to let it
    /// (named in `SecretForbidden` messages).
    pub secret_reader: crate::status::integration::SecretReader,
    /// The deadline of one synchronous send (`--send-timeout`): a test
    /// message's too.
    pub send_timeout: Duration,
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
            reconcile_concurrency: 16,
            mentions: Default::default(),
            mention_warning_period: Duration::from_secs(3600),
            max_targets: DEFAULT_MAX_TARGETS,
            secret_access: crate::store::SecretAccess::Watch,
            secret_reader: Default::default(),
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// What every reconcile needs: where state lives and what is known of it,
/// the delivery machinery, and the controllers' own memory.
pub struct Context {
    /// Where state lives: the Kubernetes API or the embedded database.
    pub store: crate::store::Store,
    /// The caches every replica keeps warm.
    pub caches: Caches,
    /// Sends messages and puts their outcomes on record.
    pub delivery: Arc<Delivery>,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// The status writers' memory of their own writes.
    writes: Arc<StatusWriters>,
    /// The integration controller's credential checks.
    credentials: integration::credentials::Credentials,
    /// Waits after API errors, per event and per integration.
    api_backoff: ErrorBackoff,
    /// Test message outcomes not on record yet.
    test_messages: integration::test_message::KnownOutcomes,
}

impl Context {
    pub fn new(
        store: crate::store::Store,
        caches: Caches,
        endpoints: ServiceEndpoints,
        http: HttpClient,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        let writes = Arc::new(StatusWriters::default());
        let delivery_settings = DeliverySettings {
            endpoints,
            secret_access: settings.secret_access,
            retry: settings.retry.clone(),
            mentions: settings.mentions.clone(),
            event_deadline: settings.event_deadline,
            counter_flush: settings.counter_flush,
            error_requeue: settings.error_requeue,
            error_requeue_max: settings.error_requeue_max,
            mention_warning_period: settings.mention_warning_period,
        };
        let delivery =
            Delivery::new(store.clone(), caches.clone(), writes.clone(), metrics.clone(), http, delivery_settings);
        Context {
            credentials: integration::credentials::Credentials::new(settings.validation_rate),
            api_backoff: ErrorBackoff::new(settings.error_requeue, settings.error_requeue_max),
            test_messages: Default::default(),
            delivery: Arc::new(delivery),
            store,
            caches,
            metrics,
            settings,
            writes,
        }
    }

    /// The last credential check of each integration.
    pub fn credential_checks(&self) -> &integration::credentials::CheckCache {
        self.credentials.checks()
    }

    /// Drop what is kept in memory per integration (notifiers, credential
    /// check records, counter writers) for integrations no longer in the
    /// watch cache. Run periodically: deletions need no finalizer for it.
    pub fn prune_deleted(&self) -> usize {
        let live: std::collections::HashSet<IntegrationKey> =
            self.caches.integrations.state().iter().map(|ni| IntegrationKey::of(ni)).collect();
        let exists = |k: &IntegrationKey| live.contains(k);
        let dropped = self.delivery.forget_deleted(exists)
            + self.credentials.checks().retain(exists)
            + self.test_messages.retain(exists);
        self.writes.forget_old();
        if dropped > 0 {
            tracing::debug!(dropped, "forgot deleted integrations");
        }
        dropped
    }

    /// What next steps about `ni` name, with the configured Secret reader.
    pub fn subject(&self, ni: &crate::crd::NotificationIntegration) -> crate::status::integration::Subject {
        crate::status::integration::Subject::of(ni).read_by(&self.settings.secret_reader)
    }

    /// Publish a Kubernetes Event about `object`.
    async fn publish(&self, object: &k8s_openapi::api::core::v1::ObjectReference, notice: Notice<'_>) {
        crate::record::publish(self.store.notices.as_ref(), object, notice).await
    }
}
