//! Prometheus metrics, served on the admin port at `/metrics`: the one home
//! of every metric's name, labels and meaning (README "Metrics" lists them).
//!
//! Per-integration series (`namespace`, `name`) exist for the deliveries and
//! for the integration's state; the state is computed at each scrape from the
//! integration cache (never stale, gone with the integration), and the
//! delivery series of a deleted integration are removed with what else the
//! delivery engine keeps per integration. Durations and attempts are per
//! `service` only, and the API requests carry no object names.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::crd::{IntegrationKey, NotificationIntegration, Service};
use crate::notifier::classify::Verdict;
use crate::status::integration::{Receivable, reason, receivable};
use crate::status::outcome::{Report, label};

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<ServiceLabel, Histogram, fn() -> Histogram>;

/// The labels of `kube_notify_deliveries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    namespace: String,
    name: String,
    service: &'static str,
    outcome: &'static str,
}

/// The label of the per-service histograms (nothing to allocate per delivery).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: &'static str,
}

/// Each outcome's name, in the order of [`IntegrationCounters`]' slots.
const OUTCOMES: [&str; 5] = [label::DELIVERED, label::DEAD, label::REJECTED, label::EXHAUSTED, label::EXPIRED];

/// One integration's delivery counters, one per outcome seen: a delivery
/// finds its counter with one lookup and no allocation, and a deleted
/// integration's series are found to be removed.
struct IntegrationCounters {
    service: &'static str,
    by_outcome: [Option<Counter>; OUTCOMES.len()],
}

/// Buckets of `kube_notify_delivery_duration_seconds`: a quick answer to an
/// hour of retries and rate-limit waits.
const DURATION_BUCKETS: [f64; 14] =
    [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0];
/// Buckets of `kube_notify_delivery_attempts`: calls to the service per message.
const ATTEMPT_BUCKETS: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0];

/// The values of the `state` label of `kube_notify_integration_state`.
pub mod state {
    pub const READY: &str = "ready";
    pub const NOT_READY: &str = "not_ready";
    pub const DISABLED_MANUAL: &str = "disabled_manual";
    pub const DISABLED_AUTO: &str = "disabled_auto";
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciliations: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
    status_writes: Family<Labels, Counter>,
    credential_checks: Family<Labels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    /// The delivery counters of each integration: removed when it is deleted.
    delivery_counters: RwLock<HashMap<IntegrationKey, IntegrationCounters>>,
    delivery_duration: Histograms,
    delivery_attempts: Histograms,
    mentions: Family<Labels, Counter>,
    ingest_requests: Family<Labels, Counter>,
    api_requests: Family<Labels, Counter>,
    api_errors: Family<Labels, Counter>,
    integrations: IntegrationStates,
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
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Finished deliveries (queued and synchronous), by integration (namespace, name), service and outcome",
            deliveries.clone(),
        );
        let delivery_duration: Histograms =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS.iter().copied()));
        registry.register(
            "delivery_duration_seconds",
            "Seconds from the start of a delivery to its outcome (retries and rate-limit waits included), by service",
            delivery_duration.clone(),
        );
        let delivery_attempts: Histograms =
            Family::new_with_constructor(|| Histogram::new(ATTEMPT_BUCKETS.iter().copied()));
        registry.register(
            "delivery_attempts",
            "Calls to the service per finished delivery, by service",
            delivery_attempts.clone(),
        );
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
        let api_requests = Family::<Labels, Counter>::default();
        registry.register(
            "api_requests",
            "Kubernetes API requests made, by verb, resource (plural, with its subresource) and HTTP code (`transport` when there was no answer)",
            api_requests.clone(),
        );
        let api_errors = Family::<Labels, Counter>::default();
        registry.register(
            "api_errors",
            "Kubernetes API calls that failed, by the kind of object and the HTTP code (`transport` when there was no answer)",
            api_errors.clone(),
        );
        let integrations = IntegrationStates::default();
        registry.register_collector(Box::new(integrations.clone()));
        Metrics {
            registry,
            reconciliations,
            reconcile_errors,
            status_writes,
            credential_checks,
            deliveries,
            delivery_counters: RwLock::default(),
            delivery_duration,
            delivery_attempts,
            mentions,
            ingest_requests,
            api_requests,
            api_errors,
            integrations,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &'static str) {
        self.reconciliations.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    pub fn reconcile_error(&self, kind: &'static str) {
        self.reconcile_errors.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    pub fn status_write(&self, kind: &'static str) {
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

    /// One finished delivery to `integration` (a `service`), `took` from its
    /// start to its outcome: counted per integration and outcome, its
    /// duration and attempts per service.
    pub fn delivery(&self, integration: &IntegrationKey, service: Service, report: &Report, took: Duration) {
        let outcome = report.outcome.label();
        let slot = OUTCOMES.iter().position(|o| *o == outcome).expect("every outcome has a slot");
        let counted = self
            .delivery_counters
            .read()
            .unwrap()
            .get(integration)
            .and_then(|c| c.by_outcome[slot].as_ref().map(Counter::inc));
        if counted.is_none() {
            // The first of its kind: under the write lock, so that a
            // concurrent `forget_integrations` never misses its series.
            let mut all = self.delivery_counters.write().unwrap();
            let counters = all
                .entry(integration.clone())
                .or_insert_with(|| IntegrationCounters { service: service.as_str(), by_outcome: Default::default() });
            let labels = delivery_labels(integration, counters.service, outcome);
            counters.by_outcome[slot].get_or_insert_with(|| self.deliveries.get_or_create(&labels).clone()).inc();
        }
        let service = ServiceLabel { service: service.as_str() };
        self.delivery_duration.get_or_create(&service).observe(took.as_secs_f64());
        self.delivery_attempts.get_or_create(&service).observe(f64::from(report.attempts));
    }

    /// Remove the delivery series of the integrations `exists` says are gone;
    /// how many integrations' series were removed.
    pub fn forget_integrations(&self, exists: impl Fn(&IntegrationKey) -> bool) -> usize {
        let mut all = self.delivery_counters.write().unwrap();
        let gone: Vec<IntegrationKey> = all.keys().filter(|k| !exists(k)).cloned().collect();
        for key in &gone {
            let Some(counters) = all.remove(key) else { continue };
            for (outcome, counter) in OUTCOMES.iter().zip(&counters.by_outcome) {
                if counter.is_some() {
                    self.deliveries.remove(&delivery_labels(key, counters.service, outcome));
                }
            }
        }
        gone.len()
    }

    /// Remove the delivery series of one deleted integration.
    pub fn forget_integration(&self, key: &IntegrationKey) {
        self.forget_integrations(|k| k != key);
    }

    /// The integrations whose state `kube_notify_integration_state` shows at
    /// each scrape (the watch cache every replica keeps).
    pub fn watch_integrations(&self, integrations: Store<NotificationIntegration>) {
        *self.integrations.store.write().unwrap() = Some(integrations);
    }

    /// `n` mentions of a message to `service` were `result` (`resolved` or `unresolved`).
    pub fn mentions(&self, service: Service, result: &'static str, n: u64) {
        let counter =
            self.mentions.get_or_create(&vec![("service", service.to_string()), ("result", result.to_string())]);
        counter.inc_by(n);
    }

    /// One answered ingestion (or sidecar) request. Every label comes from a
    /// closed set, whatever a client sends: the method is one of
    /// [`METHODS`] or `other`, the route one of the router's patterns or
    /// `unmatched` (never the raw path), the code one our handlers answer.
    pub fn ingest_request(&self, method: &http::Method, route: Option<&str>, code: u16) {
        self.ingest_requests
            .get_or_create(&vec![
                ("method", method_label(method).to_string()),
                ("route", route.unwrap_or(UNMATCHED).to_string()),
                ("code", code_label(code)),
            ])
            .inc();
    }

    /// One Kubernetes API request: `verb` and `resource` from [`api_request`],
    /// `code` the HTTP code of the answer or `transport` when there was none.
    pub fn api_request(&self, verb: &str, resource: &str, code: String) {
        let code = bounded_code(code);
        self.api_requests
            .get_or_create(&vec![("verb", verb.to_string()), ("resource", resource.to_string()), ("code", code)])
            .inc();
    }

    /// One failed Kubernetes API call about an object of `kind`; `code` is
    /// the HTTP code of the answer, or `transport` when there was none.
    pub fn api_error(&self, kind: &'static str, code: String) {
        self.api_errors.get_or_create(&vec![("kind", kind.to_string()), ("code", bounded_code(code))]).inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The methods `kube_notify_ingest_requests_total` names; any other is `other`.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The `route` of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// A request's method as a label: one of [`METHODS`], else `other` (a
/// client may send any token as a method, up to the header size cap).
pub fn method_label(method: &http::Method) -> &'static str {
    METHODS.iter().find(|m| **m == method.as_str()).copied().unwrap_or("other")
}

/// An HTTP status code as a label: `100` to `599`, else `other`.
pub fn code_label(code: u16) -> String {
    if (100..=599).contains(&code) { code.to_string() } else { "other".to_string() }
}

/// A `code` label given as text: an HTTP status code ([`code_label`]) or `transport`.
fn bounded_code(code: String) -> String {
    match code.parse::<u16>() {
        Ok(n) => code_label(n),
        Err(_) if code == "transport" => code,
        Err(_) => "other".to_string(),
    }
}

/// The resources the operator calls the Kubernetes API about: anything
/// else is `other` in `kube_notify_api_requests_total`.
const API_RESOURCES: [&str; 10] = [
    "notificationintegrations",
    "notificationevents",
    "notificationcontacts",
    "secrets",
    "events",
    "leases",
    "tokenreviews",
    "subjectaccessreviews",
    "namespaces",
    "customresourcedefinitions",
];

/// The subresources the operator writes: anything else is `other`.
const API_SUBRESOURCES: [&str; 1] = ["status"];

fn known(set: &[&'static str], value: &str) -> &'static str {
    set.iter().find(|s| **s == value).copied().unwrap_or("other")
}

fn delivery_labels(integration: &IntegrationKey, service: &'static str, outcome: &'static str) -> DeliveryLabels {
    DeliveryLabels { namespace: integration.namespace.clone(), name: integration.name.clone(), service, outcome }
}

/// The state an integration is in, as `kube_notify_integration_state` names it.
pub fn state_of(ni: &NotificationIntegration) -> &'static str {
    match receivable(Some(ni)) {
        Receivable::Ready => state::READY,
        Receivable::Disabled { reason: r, .. } if r == reason::MANUAL => state::DISABLED_MANUAL,
        Receivable::Disabled { .. } => state::DISABLED_AUTO,
        Receivable::NotReady { .. } | Receivable::Missing => state::NOT_READY,
    }
}

/// `kube_notify_integration_state` and `kube_notify_integration_consecutive_errors`,
/// computed at each scrape from the integration cache.
#[derive(Clone, Default)]
struct IntegrationStates {
    store: Arc<RwLock<Option<Store<NotificationIntegration>>>>,
}

impl std::fmt::Debug for IntegrationStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationStates").finish_non_exhaustive()
    }
}

impl Collector for IntegrationStates {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut integrations = self.store.read().unwrap().as_ref().map(|s| s.state()).unwrap_or_default();
        integrations.sort_by_key(|ni| (ni.namespace(), ni.name_any()));
        let labels = |ni: &NotificationIntegration| -> Labels {
            vec![
                ("namespace", ni.namespace().unwrap_or_default()),
                ("name", ni.name_any()),
                ("service", ni.spec.service.to_string()),
            ]
        };
        // The descriptors are written even with no integration: the names are always there.
        let mut states = encoder.encode_descriptor(
            "integration_state",
            "Integrations by state (ready, not_ready, disabled_manual, disabled_auto): 1 for the state each integration is in",
            None,
            MetricType::Gauge,
        )?;
        for ni in &integrations {
            let mut labels = labels(ni);
            labels.push(("state", state_of(ni).to_string()));
            ConstGauge::new(1i64).encode(states.encode_family(&labels)?)?;
        }
        let mut errors = encoder.encode_descriptor(
            "integration_consecutive_errors",
            "Consecutive failed deliveries of each integration (status.consecutiveErrors)",
            None,
            MetricType::Gauge,
        )?;
        for ni in &integrations {
            let n = ni.status.as_ref().map(|s| s.consecutive_errors).unwrap_or_default();
            ConstGauge::new(n).encode(errors.encode_family(&labels(ni))?)?;
        }
        Ok(())
    }
}

/// The `verb` and `resource` labels of a Kubernetes API request: the verb
/// as RBAC names it (`get`, `list`, `watch`, `create`, `update`, `patch`,
/// `delete`, `deletecollection`), the resource as its plural with the
/// subresource (`notificationintegrations/status`), each from a closed set
/// (else `other`); never a name or a namespace.
pub fn api_request(method: &http::Method, uri: &http::Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    let rest = match rest {
        ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
        _ => rest,
    };
    // From closed sets: a path segment never becomes a label of its own.
    let (resource, named) = match rest {
        [] => ("other".to_string(), false),
        [resource] => (known(&API_RESOURCES, resource).to_string(), false),
        [resource, _name] => (known(&API_RESOURCES, resource).to_string(), true),
        [resource, _name, sub, ..] => {
            (format!("{}/{}", known(&API_RESOURCES, resource), known(&API_SUBRESOURCES, sub)), true)
        }
    };
    let watch = uri.query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if named => "delete",
        http::Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

/// `client` with every request counted in `kube_notify_api_requests_total`.
pub fn counting_api_requests(client: kube::Client, metrics: Arc<Metrics>) -> kube::Client {
    let namespace = client.default_namespace().to_string();
    let valid_until = *client.valid_until();
    kube::Client::new(CountedClient { client, metrics }, namespace).with_valid_until(valid_until)
}

/// A client's requests, each counted once it was answered (or failed).
#[derive(Clone)]
struct CountedClient {
    client: kube::Client,
    metrics: Arc<Metrics>,
}

type Answer = Result<http::Response<kube::client::Body>, kube::Error>;

impl tower_service::Service<http::Request<kube::client::Body>> for CountedClient {
    type Response = http::Response<kube::client::Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let (verb, resource) = api_request(request.method(), request.uri());
        let this = self.clone();
        Box::pin(async move {
            let answer = this.client.send(request).await;
            let code = match &answer {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "transport".to_string(),
            };
            this.metrics.api_request(verb, &resource, code);
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};

    use super::*;
    use crate::notifier::classify::Failure;
    use crate::status::outcome::Outcome;

    fn delivered(attempts: u32) -> Report {
        Report { outcome: Outcome::Delivered, attempts }
    }

    fn sample(render: &str, series: &str) -> Option<f64> {
        render.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_delivery_is_counted_per_integration_and_forgotten_with_it() {
        let metrics = Metrics::default();
        let a = IntegrationKey::new("team-a", "alerts");
        let b = IntegrationKey::new("team-b", "ops");
        metrics.delivery(&a, Service::Slack, &delivered(1), Duration::from_millis(200));
        metrics.delivery(&a, Service::Slack, &delivered(3), Duration::from_secs(4));
        let dead = Outcome::Dead(Failure { reason: "Gone", message: "m".into() });
        metrics.delivery(&b, Service::Webhook, &Report { outcome: dead, attempts: 1 }, Duration::from_secs(1));
        let out = metrics.render();
        let a_delivered =
            r#"kube_notify_deliveries_total{namespace="team-a",name="alerts",service="slack",outcome="delivered"}"#;
        let b_dead = r#"kube_notify_deliveries_total{namespace="team-b",name="ops",service="webhook",outcome="dead"}"#;
        assert_eq!(sample(&out, a_delivered), Some(2.0), "{out}");
        assert_eq!(sample(&out, b_dead), Some(1.0), "{out}");
        assert_eq!(sample(&out, r#"kube_notify_delivery_attempts_count{service="slack"}"#), Some(2.0), "{out}");
        assert_eq!(sample(&out, r#"kube_notify_delivery_attempts_sum{service="slack"}"#), Some(4.0), "{out}");
        assert_eq!(
            sample(&out, r#"kube_notify_delivery_duration_seconds_bucket{le="0.25",service="slack"}"#),
            Some(1.0),
            "{out}"
        );
        assert_eq!(sample(&out, r#"kube_notify_delivery_duration_seconds_sum{service="slack"}"#), Some(4.2), "{out}");

        // team-b/ops is deleted: its series go, the others stay.
        assert_eq!(metrics.forget_integrations(|k| *k != b), 1);
        let out = metrics.render();
        assert_eq!(sample(&out, b_dead), None, "{out}");
        assert_eq!(sample(&out, a_delivered), Some(2.0), "{out}");
        // The per-service histograms stay (bounded by the services).
        assert_eq!(sample(&out, r#"kube_notify_delivery_attempts_count{service="webhook"}"#), Some(1.0), "{out}");
        metrics.forget_integration(&a);
        assert!(!metrics.render().contains("team-a"));
    }

    fn integration(name: &str, disabled: bool, conditions: serde_json::Value, errors: i64) -> NotificationIntegration {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
            "metadata": {"name": name, "namespace": "n", "generation": 1},
            "spec": {"service": "webhook", "secretRef": {"name": "s"}, "disabled": disabled},
            "status": {"observedGeneration": 1, "consecutiveErrors": errors, "conditions": conditions},
        }))
        .unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str) -> serde_json::Value {
        serde_json::json!({"type": type_, "status": status, "reason": reason, "message": "m",
            "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn integration_states_come_from_the_cache_at_each_scrape() {
        let metrics = Metrics::default();
        let out = metrics.render();
        assert!(out.contains("# TYPE kube_notify_integration_state gauge"), "{out}");
        assert!(out.contains("# TYPE kube_notify_integration_consecutive_errors gauge"), "{out}");

        let (store, mut writer) = reflector::store();
        metrics.watch_integrations(store);
        let ready = integration("ready", false, serde_json::json!([condition("Ready", "True", "Ready")]), 0);
        let invalid = integration("invalid", false, serde_json::json!([condition("Ready", "False", "Invalid")]), 0);
        let manual = integration("manual", true, serde_json::json!([condition("Ready", "True", "Ready")]), 0);
        let auto = integration(
            "auto",
            false,
            serde_json::json!([
                condition("Ready", "False", "Disabled"),
                condition("Disabled", "True", "ErrorThreshold")
            ]),
            5,
        );
        for ni in [&ready, &invalid, &manual, &auto] {
            writer.apply_watcher_event(&watcher::Event::Apply(ni.clone()));
        }
        let out = metrics.render();
        for (name, state) in
            [("ready", "ready"), ("invalid", "not_ready"), ("manual", "disabled_manual"), ("auto", "disabled_auto")]
        {
            let series = format!(
                r#"kube_notify_integration_state{{namespace="n",name="{name}",service="webhook",state="{state}"}}"#
            );
            assert_eq!(sample(&out, &series), Some(1.0), "{series} in {out}");
            assert_eq!(out.matches(&format!(r#"name="{name}",service="webhook",state="#)).count(), 1, "{out}");
        }
        let errors = r#"kube_notify_integration_consecutive_errors{namespace="n",name="auto",service="webhook"}"#;
        assert_eq!(sample(&out, errors), Some(5.0), "{out}");

        // Deleted: gone from the next scrape.
        writer.apply_watcher_event(&watcher::Event::Delete(auto));
        let out = metrics.render();
        assert!(!out.contains(r#"name="auto""#), "{out}");
        assert!(out.contains(r#"name="ready""#), "{out}");
    }

    #[test]
    fn ingest_labels_come_from_closed_sets() {
        let metrics = Metrics::default();
        for method in METHODS {
            metrics.ingest_request(&method.parse().unwrap(), None, 404);
        }
        for i in 0..500 {
            let method: http::Method = format!("MADE-UP-{i}-{}", "X".repeat(i)).parse().unwrap();
            metrics.ingest_request(&method, None, 404);
            metrics.ingest_request(&method, Some("/v1/namespaces/{ns}/events"), 405);
        }
        metrics.ingest_request(&http::Method::GET, None, 1000);
        let out = metrics.render();
        let series: Vec<&str> = out.lines().filter(|l| l.starts_with("kube_notify_ingest_requests_total")).collect();
        assert_eq!(series.len(), METHODS.len() + 3, "{out}");
        assert_eq!(
            sample(&out, r#"kube_notify_ingest_requests_total{method="other",route="unmatched",code="404"}"#),
            Some(500.0),
            "{out}"
        );
        assert!(out.contains(r#"method="GET",route="unmatched",code="other""#), "{out}");
        assert!(!out.contains("MADE-UP"), "{out}");
        metrics.api_request("get", "secrets", "999999".into());
        metrics.api_error("Secret", "not a code".into());
        let out = metrics.render();
        assert!(out.contains(r#"kube_notify_api_requests_total{verb="get",resource="secrets",code="other"}"#), "{out}");
        assert!(out.contains(r#"kube_notify_api_errors_total{kind="Secret",code="other"}"#), "{out}");
    }

    #[test]
    fn api_requests_are_labelled_by_verb_and_resource_only() {
        let cases = [
            (
                "GET",
                "/apis/kube-notify.io/v1alpha1/namespaces/a/notificationintegrations/x",
                "get",
                "notificationintegrations",
            ),
            (
                "GET",
                "/apis/kube-notify.io/v1alpha1/notificationintegrations?watch=true&resourceVersion=1",
                "watch",
                "notificationintegrations",
            ),
            ("GET", "/apis/kube-notify.io/v1alpha1/notificationevents?limit=500", "list", "notificationevents"),
            (
                "PUT",
                "/apis/kube-notify.io/v1alpha1/namespaces/a/notificationevents/e/status",
                "update",
                "notificationevents/status",
            ),
            (
                "PATCH",
                "/apis/kube-notify.io/v1alpha1/namespaces/a/notificationintegrations/x/status",
                "patch",
                "notificationintegrations/status",
            ),
            ("GET", "/api/v1/namespaces/a/secrets/s", "get", "secrets"),
            ("POST", "/api/v1/namespaces/a/events", "create", "events"),
            ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", "create", "tokenreviews"),
            ("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/kube-notify", "update", "leases"),
            (
                "DELETE",
                "/apis/kube-notify.io/v1alpha1/namespaces/a/notificationevents/e",
                "delete",
                "notificationevents",
            ),
            ("GET", "/api/v1/namespaces/a", "get", "namespaces"),
            ("GET", "/version", "list", "other"),
            ("GET", "/api/v1/namespaces/a/made-up/x/y", "get", "other/other"),
            ("GET", "/apis/g/v1/namespaces/a/notificationevents/a/b/c", "get", "notificationevents/other"),
        ];
        for (method, uri, verb, resource) in cases {
            let got = api_request(&method.parse().unwrap(), &uri.parse().unwrap());
            assert_eq!(got, (verb, resource.to_string()), "{method} {uri}");
        }
    }
}
