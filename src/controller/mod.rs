//! The reconcilers and what they share.

pub mod integration;

use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::crd::Service;
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            revalidate_period: Duration::from_secs(6 * 3600),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            error_requeue: Duration::from_secs(5),
            validation_rate: std::num::NonZeroU32::new(5).unwrap(),
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
    /// Spreads credential checks so that thousands of integrations never burst at a service.
    pub validation_limiter: DefaultKeyedRateLimiter<Service>,
}

impl Context {
    pub fn new(
        client: Client,
        endpoints: ServiceEndpoints,
        http: HttpClient,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        settings: Settings,
        secrets: Store<PartialObjectMeta<Secret>>,
    ) -> Self {
        let validation_limiter = DefaultKeyedRateLimiter::keyed(Quota::per_second(settings.validation_rate));
        Context {
            client,
            endpoints,
            http,
            recorder,
            metrics,
            settings,
            secrets,
            checks: Default::default(),
            validation_limiter,
        }
    }
}

/// Errors of a reconcile: Kubernetes API failures. Service failures are not
/// errors; they are outcomes recorded in status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
}

impl Error {
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409)
    }
}
