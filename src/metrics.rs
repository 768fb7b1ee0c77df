//! Prometheus metrics, served on the admin port at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::crd::Service;
use crate::notifier::classify::Verdict;

type Labels = Vec<(&'static str, String)>;

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciliations: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
    status_writes: Family<Labels, Counter>,
    credential_checks: Family<Labels, Counter>,
    deliveries: Family<Labels, Counter>,
    mentions: Family<Labels, Counter>,
    ingest_requests: Family<Labels, Counter>,
    api_errors: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kube_notify");
        let reconciliations = Family::<Labels, Counter>::default();
        let reconcile_errors = Family::<Labels, Counter>::default();
        let status_writes = Family::<Labels, Counter>::default();
        let credential_checks = Family::<Labels, Counter>::default();
        registry.register("reconciliations", "Reconciles run, by kind", reconciliations.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed with an API error, by kind",
            reconcile_errors.clone(),
        );
        registry.register("status_writes", "Status subresource writes, by kind", status_writes.clone());
        registry.register(
            "credential_checks",
            "Credential checks against a service, by service and result",
            credential_checks.clone(),
        );
        let deliveries = Family::<Labels, Counter>::default();
        registry.register("deliveries", "Finished deliveries, by service and outcome", deliveries.clone());
        let mentions = Family::<Labels, Counter>::default();
        registry.register(
            "mentions",
            "Mentions in messages sent, by service and result (resolved, or unresolved: shown by name or email)",
            mentions.clone(),
        );
        let ingest_requests = Family::<Labels, Counter>::default();
        registry.register(
            "ingest_requests",
            "HTTP ingestion and sidecar requests, by method, route pattern and status code",
            ingest_requests.clone(),
        );
        let api_errors = Family::<Labels, Counter>::default();
        registry.register(
            "api_errors",
            "Kubernetes API calls that failed, by the kind of object and the HTTP code (`transport` when there was no answer)",
            api_errors.clone(),
        );
        Metrics {
            registry,
            reconciliations,
            reconcile_errors,
            status_writes,
            credential_checks,
            deliveries,
            mentions,
            ingest_requests,
            api_errors,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &str) {
        self.reconciliations.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    pub fn reconcile_error(&self, kind: &str) {
        self.reconcile_errors.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    pub fn status_write(&self, kind: &str) {
        self.status_writes.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    pub fn credential_check(&self, service: Service, verdict: &Verdict) {
        let result = match verdict {
            Verdict::Success => "valid",
            Verdict::Dead(_) | Verdict::Rejected(_) => "invalid",
            Verdict::Transient { .. } => "unknown",
        };
        self.credential_checks
            .get_or_create(&vec![("service", service.to_string()), ("result", result.to_string())])
            .inc();
    }

    pub fn delivery(&self, service: Service, outcome: &str) {
        self.deliveries.get_or_create(&vec![("service", service.to_string()), ("outcome", outcome.to_string())]).inc();
    }

    /// `n` mentions of a message to `service` were `result` (`resolved` or `unresolved`).
    pub fn mentions(&self, service: Service, result: &str, n: u64) {
        let counter =
            self.mentions.get_or_create(&vec![("service", service.to_string()), ("result", result.to_string())]);
        counter.inc_by(n);
    }

    /// One answered ingestion request; `route` is the route's pattern (or
    /// `unmatched`), never the raw path, so that the series stay few.
    pub fn ingest_request(&self, method: &str, route: &str, code: u16) {
        self.ingest_requests
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("route", route.to_string()),
                ("code", code.to_string()),
            ])
            .inc();
    }

    /// One failed Kubernetes API call about an object of `kind`; `code` is
    /// the HTTP code of the answer, or `transport` when there was none.
    pub fn api_error(&self, kind: &str, code: String) {
        self.api_errors.get_or_create(&vec![("kind", kind.to_string()), ("code", code)]).inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
