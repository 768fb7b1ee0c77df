//! The handlers, and the event creation and reading the sidecar shares.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use kube::api::ObjectMeta;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::auth::{Reviewer, User};
use super::body::{self, EventRequest, is_dns_label, is_dns_subdomain};
use super::budget::Reserved;
use super::errors::{self, ApiError, code};
use super::finish::FinishOnDrop;
use super::token::TokenAccess;
use super::waiters::{Waited, Waiters, is_finished};
use super::{IngestConfig, read_body};
use crate::caches::Caches;
use crate::crd::DeliveryPhase;
use crate::crd::{NotificationEvent, NotificationIntegration};
use crate::delivery::Delivery;
use crate::delivery::send_now::{NotPrepared, Sent};
use crate::leader::Leadership;
use crate::status::event::reason as plan;
use crate::status::integration::{Receivable, receivable};
use crate::status::outcome::{Outcome, Report};
use crate::store::{Objects, Store};

/// The annotation naming the user an event was created for over HTTP.
pub const REQUESTED_BY: &str = "kube-notify.io/requested-by";

/// The annotation saying which route created an event: `send` for a
/// synchronous send a follower passed to the leader.
pub use crate::crd::event::{REQUESTED_VIA, REQUESTED_VIA_SEND};

/// How long the event of a `send` passed to the leader is kept after it
/// finished (the caller already has the answer; this is for inspection).
pub const SEND_EVENT_TTL_SECONDS: i64 = 60;

/// Who may call the routes, and how that is checked.
pub enum Callers {
    /// On a cluster: a TokenReview and a SubjectAccessReview for each caller (cached briefly).
    Kubernetes(Box<Reviewer>),
    /// Standalone: one bearer token, or none on loopback.
    Token(TokenAccess),
}

/// The state of the ingestion routes.
pub struct Ingest {
    store: Store,
    caches: Caches,
    delivery: Arc<Delivery>,
    leadership: Leadership,
    callers: Callers,
    limiter: DefaultKeyedRateLimiter<String>,
    config: IngestConfig,
    requests: AtomicU64,
    /// What POSTs hold in memory while answered, across all callers.
    in_flight: super::budget::InFlight,
    /// Requests waiting for an event to finish, answered from one watch.
    waiters: super::waiters::Waiters,
}

impl Ingest {
    /// The routes' state: events are created in and read from `store`,
    /// integrations read from `caches`, `send` delivered by `delivery`.
    pub fn new(
        store: Store,
        caches: Caches,
        delivery: Arc<Delivery>,
        config: IngestConfig,
        leadership: Leadership,
        callers: Callers,
    ) -> Self {
        let limiter = RateLimiter::keyed(Quota::per_second(config.rate).allow_burst(config.burst));
        let in_flight = super::budget::InFlight::new(config.max_in_flight_bytes);
        let waiters = super::waiters::Waiters::new(store.events.clone());
        Ingest {
            store,
            caches,
            delivery,
            leadership,
            callers,
            limiter,
            config,
            requests: AtomicU64::new(0),
            in_flight,
            waiters,
        }
    }

    /// Authenticate (401), rate-limit by username (429), authorize (403) on NotificationEvents.
    async fn admit(&self, caller: &Caller, verb: &str, namespace: &str, name: Option<&str>) -> Result<User, ApiError> {
        self.admit_on(caller, verb, super::auth::RESOURCE, namespace, name).await
    }

    /// [`Ingest::admit`] for `resource` of the group.
    async fn admit_on(
        &self,
        caller: &Caller,
        verb: &str,
        resource: &'static str,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<User, ApiError> {
        let authorization = caller.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match &self.callers {
            Callers::Kubernetes(reviewer) => {
                let user = reviewer.authenticate(authorization, caller.addr).await?;
                self.check_rate(&user.username)?;
                reviewer.authorize_on(&user, verb, resource, namespace, name).await?;
                Ok(user)
            }
            Callers::Token(access) => {
                let user = access.admit(&caller.headers)?;
                self.check_rate(&user.username)?;
                Ok(user)
            }
        }
    }

    /// A POST's caller (allowed to `create` in `namespace`, which is served),
    /// its share of the in-flight budget (429 when spent; keep it until the
    /// answer) and its body, in that order: nothing is read for a refused caller.
    async fn admit_post(
        &self,
        caller: &Caller,
        body: Body,
        namespace: &str,
    ) -> Result<(User, Reserved, Vec<u8>), ApiError> {
        let user = self.admit(caller, "create", namespace, None).await?;
        self.served(namespace)?;
        let reserved = self.in_flight.reserve(&caller.headers, self.config.max_body_bytes)?;
        let bytes = read_body(&caller.headers, body, self.config.max_body_bytes).await?;
        Ok((user, reserved, bytes))
    }

    fn check_rate(&self, username: &str) -> Result<(), ApiError> {
        if self.requests.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = username.to_string();
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            debug!(user = %username, "rate limited");
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                code::RATE_LIMITED,
                format!("too many requests from {username:?}: at most {} per second", self.config.rate),
            )
            .retry_after(wait)
        })
    }

    /// 404 for a namespace this operator does not serve or that cannot exist.
    fn served(&self, namespace: &str) -> Result<(), ApiError> {
        if !is_dns_label(namespace) {
            return Err(ApiError::not_found(code::NOT_FOUND, format!("{namespace:?} is not a namespace name")));
        }
        match &self.config.namespace {
            Some(only) if only != namespace => Err(ApiError::not_found(
                code::NAMESPACE_NOT_SERVED,
                format!("this operator serves namespace {only:?} only"),
            )),
            _ => Ok(()),
        }
    }
}

/// A request's headers and its peer address (when served with connect info).
pub struct Caller {
    pub headers: HeaderMap,
    pub addr: Option<std::net::IpAddr>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_canonical());
        Ok(Caller { headers: parts.headers.clone(), addr })
    }
}

pub fn router(state: Arc<Ingest>) -> Router {
    Router::new()
        .route("/v1/namespaces/{ns}/events", post(create_event).fallback(errors::wrong_method))
        .route("/v1/namespaces/{ns}/events/{name}", get(get_event).fallback(errors::wrong_method))
        .route("/v1/namespaces/{ns}/integrations/{name}/send", post(send).fallback(errors::wrong_method))
        .route("/v1/namespaces/{ns}/integrations", get(list_integrations).fallback(errors::wrong_method))
        .route("/v1/integrations", get(list_all_integrations).fallback(errors::wrong_method))
        .fallback(errors::no_route)
        .with_state(state)
}

async fn create_event(
    State(s): State<Arc<Ingest>>,
    Path(ns): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let (user, _reserved, bytes) = s.admit_post(&caller, body, &ns).await?;
    let wait = s.wait_of(query.get("wait"))?;
    let request = body::parse_event(&bytes)?;
    s.has_a_target(&ns, &request.target).await?;
    let annotations = BTreeMap::from([(REQUESTED_BY.to_string(), user.username.clone())]);
    let name = create(s.store.events.as_ref(), &ns, &request, "http-", annotations, Acting::Operator).await?;
    info!(namespace = %ns, event = %name, user = %user.username, "event created over HTTP");
    let Some(wait) = wait else { return Ok(accepted(&ns, &name, "/v1/namespaces")) };
    // `?wait=`: the final status if the event finishes in time (200), else
    // its status now (202).
    let done = s.waiters.until_finished(&ns, &name, Instant::now() + wait).await;
    let (code, status) = match done {
        // Finished: the watch already brought it.
        Ok(Waited::Finished(Some(ev))) => (StatusCode::OK, event_json(&ev)),
        _ => (StatusCode::ACCEPTED, read(s.store.events.as_ref(), &ns, &name, Acting::Operator).await?),
    };
    let mut response = (code, Json(status)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/namespaces/{ns}/events/{name}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

impl Ingest {
    /// `?wait=<duration>` (e.g. `10s`), at most the send timeout.
    fn wait_of(&self, wait: Option<&String>) -> Result<Option<std::time::Duration>, ApiError> {
        let Some(text) = wait else { return Ok(None) };
        let wait = humantime::parse_duration(text.trim())
            .map_err(|e| ApiError::invalid("wait", format!("must be a duration such as 10s: {e}")))?;
        if wait > self.config.send_timeout {
            return Err(ApiError::invalid(
                "wait",
                format!("must be at most {} (--send-timeout)", humantime::format_duration(self.config.send_timeout)),
            ));
        }
        Ok(Some(wait))
    }
}

/// 404 for an integration `name` that is not in `ns`.
fn no_integration(ns: &str, name: &str) -> ApiError {
    ApiError::not_found(code::INTEGRATION_NOT_FOUND, format!("no NotificationIntegration {name:?} in namespace {ns:?}"))
}

impl Ingest {
    /// 503 unless the integration cache has synced by `deadline`: before
    /// that, "not found" would be a guess.
    async fn synced(&self, deadline: Instant) -> Result<(), ApiError> {
        match tokio::time::timeout_at(deadline, self.caches.integrations.wait_until_ready()).await {
            Ok(_) => Ok(()),
            Err(_) => Err(ApiError::unavailable("the operator is starting: its caches have not synced yet")),
        }
    }

    /// 404 now, not an event that waits an hour: the integration an HTTP
    /// caller names must exist, and a selector must match one (a
    /// NotificationEvent applied by GitOps still waits for its integration).
    async fn has_a_target(&self, ns: &str, target: &body::Target) -> Result<(), ApiError> {
        self.synced(Instant::now() + self.config.send_timeout).await?;
        match target {
            body::Target::Integration(name) => match self.caches.integration(ns, name) {
                Some(_) => Ok(()),
                None => Err(no_integration(ns, name)),
            },
            body::Target::Selector(selector) => {
                let Ok(selector) = kube::core::Selector::try_from(selector.clone()) else {
                    // The event records why it is invalid.
                    return Ok(());
                };
                use kube::core::SelectorExt as _;
                let matches = self.caches.integrations.state().into_iter().any(|ni| {
                    ni.metadata.namespace.as_deref() == Some(ns)
                        && selector.matches(ni.metadata.labels.as_ref().unwrap_or(&Default::default()))
                });
                if matches {
                    Ok(())
                } else {
                    Err(ApiError::not_found(
                        code::NO_INTEGRATION_MATCHES,
                        format!("integrationSelector matches no NotificationIntegration in namespace {ns:?}"),
                    ))
                }
            }
        }
    }
}

async fn get_event(
    State(s): State<Arc<Ingest>>,
    Path((ns, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    s.admit(&caller, "get", &ns, Some(&name)).await?;
    s.served(&ns)?;
    read(s.store.events.as_ref(), &ns, &name, Acting::Operator).await.map(Json)
}

/// The integrations of a namespace with their status, from the cache every
/// replica keeps: what `kubectl get ni -o json` would give, without the spec's
/// Secret reference resolved.
async fn list_integrations(
    State(s): State<Arc<Ingest>>,
    Path(ns): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    s.admit_on(&caller, "list", INTEGRATIONS, &ns, None).await?;
    s.served(&ns)?;
    Ok(Json(integrations(&s.caches, Some(&ns))))
}

/// [`list_integrations`] in every namespace served.
async fn list_all_integrations(State(s): State<Arc<Ingest>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match &s.config.namespace {
        Some(only) => {
            s.admit_on(&caller, "list", INTEGRATIONS, only, None).await?;
            Ok(Json(integrations(&s.caches, Some(only))))
        }
        None => {
            s.admit_on(&caller, "list", INTEGRATIONS, "", None).await?;
            Ok(Json(integrations(&s.caches, None)))
        }
    }
}

const INTEGRATIONS: &str = "notificationintegrations";

fn integrations(caches: &Caches, namespace: Option<&str>) -> Value {
    let mut items: Vec<_> = caches
        .integrations
        .state()
        .into_iter()
        .filter(|ni| namespace.is_none_or(|ns| ni.metadata.namespace.as_deref() == Some(ns)))
        .collect();
    items.sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    let items: Vec<Value> = items
        .iter()
        .map(|ni| {
            let status = ni.status.clone().unwrap_or_default();
            json!({
                "namespace": ni.metadata.namespace,
                "name": ni.metadata.name,
                "service": ni.spec.service,
                "disabled": ni.spec.disabled,
                "ready": matches!(receivable(Some(ni.as_ref())), Receivable::Ready),
                "status": status,
            })
        })
        .collect();
    json!({ "items": items })
}

async fn send(
    State(s): State<Arc<Ingest>>,
    Path((ns, name)): Path<(String, String)>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let (user, _reserved, bytes) = s.admit_post(&caller, body, &ns).await?;
    let content = body::parse_send(&bytes)?;
    let deadline = Instant::now() + s.config.send_timeout;
    s.synced(deadline).await?;
    if !is_dns_subdomain(&name) {
        return Err(no_integration(&ns, &name));
    }
    let ni = s.caches.integration(&ns, &name).ok_or_else(|| no_integration(&ns, &name))?;
    usable(&ni)?;
    let prepared = s.delivery.prepare(ni).await.map_err(|e| match e {
        NotPrepared::Api(e) => {
            warn!(namespace = %ns, integration = %name, error = %e, "could not load the integration's notifier");
            ApiError::unavailable("could not read the integration's Secret: the Kubernetes API did not answer")
        }
        NotPrepared::Unusable(f) => {
            ApiError::new(StatusCode::CONFLICT, code::INTEGRATION_NOT_READY, f.message).reason(f.reason)
        }
    })?;
    // Standalone is one process: not leading means it is stopping, and no
    // other replica would deliver (a durable event would only be sent after
    // a restart, long after this caller was told it failed).
    if !s.leadership.is_leader() && matches!(s.callers, Callers::Token(_)) {
        return Err(ApiError::unavailable("kube-notify is stopping: send again once it has restarted"));
    }
    if !s.leadership.is_leader() {
        return through_leader(s.store.events.as_ref(), &s.waiters, &ns, &name, &user, content, deadline).await;
    }
    let message = content.to_message(message_id(), Some(format!("{ns}/http")), jiff::Timestamp::now());
    // The delivery and its bookkeeping finish even when the caller hangs up;
    // a panic fails this request only (500), like a task's would.
    let sending = s.delivery.clone().send_now(prepared, message, content.mentions, deadline);
    let Sent { report, unresolved } = FinishOnDrop::new(AssertUnwindSafe(sending).catch_unwind())
        .await
        .map_err(|_| ApiError::internal("the delivery failed unexpectedly"))?;
    debug!(namespace = %ns, integration = %name, user = %user.username, attempts = report.attempts,
        outcome = report.outcome.label(), "synchronous delivery finished");
    delivered(report, unresolved)
}

/// 409 unless the integration can receive (the one decision the event
/// controller uses too: disabled, not ready, or not checked for this spec).
fn usable(ni: &NotificationIntegration) -> Result<(), ApiError> {
    match receivable(Some(ni)) {
        Receivable::Ready => Ok(()),
        Receivable::Disabled { reason, message } => Err(ApiError::new(
            StatusCode::CONFLICT,
            code::INTEGRATION_DISABLED,
            format!("the integration is disabled: {message}"),
        )
        .reason(&reason)),
        Receivable::NotReady { reason, message } => Err(ApiError::new(
            StatusCode::CONFLICT,
            code::INTEGRATION_NOT_READY,
            format!("the integration is not ready: {message}"),
        )
        .reason(&reason)),
        Receivable::Missing => {
            Err(ApiError::new(StatusCode::NOT_FOUND, code::INTEGRATION_NOT_FOUND, "no such NotificationIntegration"))
        }
    }
}

/// The answer of the synchronous route for an engine report and the
/// emails of the mentions it showed unresolved.
fn delivered(report: Report, unresolved: Vec<String>) -> Result<Response, ApiError> {
    let attempts = report.attempts;
    let class = match &report.outcome {
        Outcome::Delivered => return Ok(delivered_answer(attempts, &unresolved)),
        Outcome::Dead(_) => NotDelivered::Dead,
        Outcome::Rejected(_) => NotDelivered::Rejected,
        Outcome::Exhausted(_) => NotDelivered::Exhausted,
        Outcome::Expired(_) => NotDelivered::Expired,
    };
    let (reason, message) = report.outcome.failure().expect("not delivered");
    Err(class.answer(reason, message, attempts))
}

/// `200 {"delivered": true, "attempts", "unresolvedMentions"?}` (the emails
/// shown by name or email instead of as mentions, when there are any).
fn delivered_answer(attempts: u32, unresolved: &[String]) -> Response {
    let mut body = json!({"delivered": true, "attempts": attempts});
    if !unresolved.is_empty() {
        body["unresolvedMentions"] = json!(unresolved);
    }
    (StatusCode::OK, Json(body)).into_response()
}

/// Why a synchronous send was not delivered: its status code and error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NotDelivered {
    Dead,
    Rejected,
    Exhausted,
    Expired,
}

impl NotDelivered {
    /// The class of a failed delivery recorded in an event's status, from
    /// its reason: the reasons the notifiers give dead destinations and
    /// rejected messages, the event deadline, else retries ran out.
    fn of_recorded(reason: &str) -> Self {
        use crate::notifier::classify::reason as why;
        match reason {
            why::MESSAGE_REJECTED => NotDelivered::Rejected,
            why::UNAUTHORIZED | why::FORBIDDEN | why::DESTINATION_NOT_FOUND | why::REDIRECTED => NotDelivered::Dead,
            plan::EXPIRED => NotDelivered::Expired,
            _ => NotDelivered::Exhausted,
        }
    }

    fn answer(self, reason: &str, message: String, attempts: u32) -> ApiError {
        let (status, code) = match self {
            NotDelivered::Dead => (StatusCode::BAD_GATEWAY, code::DEAD),
            NotDelivered::Rejected => (StatusCode::BAD_GATEWAY, code::REJECTED),
            NotDelivered::Exhausted => (StatusCode::BAD_GATEWAY, code::EXHAUSTED),
            NotDelivered::Expired => (StatusCode::GATEWAY_TIMEOUT, code::EXPIRED),
        };
        ApiError::new(status, code, message)
            .reason(reason)
            .with("delivered", json!(false))
            .with("attempts", json!(attempts))
    }
}

/// `send` on a follower: the leader alone delivers (so per-destination rate
/// limits and counters stay in one place), so the message becomes a
/// NotificationEvent for the integration, annotated as coming from `send`
/// and deleted shortly after it finished; its final status is awaited
/// until `deadline` and answered as the leader's `send` would. When the
/// deadline passes first, the event is deleted so that it is not sent later
/// (unless its delivery had already started) and the answer is 504.
async fn through_leader(
    api: &dyn Objects<NotificationEvent>,
    waiters: &Waiters,
    ns: &str,
    name: &str,
    user: &User,
    content: body::Content,
    deadline: Instant,
) -> Result<Response, ApiError> {
    let request = EventRequest {
        target: body::Target::Integration(name.to_string()),
        content,
        ttl_seconds_after_finished: Some(SEND_EVENT_TTL_SECONDS),
    };
    let annotations = BTreeMap::from([
        (REQUESTED_BY.to_string(), user.username.clone()),
        (REQUESTED_VIA.to_string(), REQUESTED_VIA_SEND.to_string()),
    ]);
    let event = create(api, ns, &request, "send-", annotations, Acting::Operator).await?;
    debug!(namespace = %ns, integration = %name, event = %event, user = %user.username, "send passed to the leader");
    let lost = || ApiError::unavailable(format!("the event {event:?} of this send was deleted before it finished"));
    match waiters.until_finished(ns, &event, deadline).await {
        Ok(Waited::Finished(Some(ev))) => recorded_answer(&ev),
        Ok(Waited::Finished(None)) => Err(lost()),
        Err(e) => {
            warn!(namespace = %ns, event = %event, error = %e, "could not follow a send passed to the leader");
            Err(ApiError::unavailable(format!(
                "could not follow the delivery: see GET /v1/namespaces/{ns}/events/{event}"
            )))
        }
        Ok(Waited::TimedOut) => {
            // Cancel it unless it finished meanwhile (the preconditions make
            // the delete fail if it changed since it was read).
            let current = api.get(ns, &event).await.map_err(|e| api_error(e, ns, Acting::Operator))?;
            let Some(current) = current else { return Err(lost()) };
            if is_finished(&current) {
                return recorded_answer(&current);
            }
            let preconditions = kube::api::Preconditions {
                uid: current.metadata.uid.clone(),
                resource_version: current.metadata.resource_version.clone(),
            };
            match api.delete(ns, &event, preconditions).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    if let Some(now) = api.get(ns, &event).await.ok().flatten().filter(is_finished) {
                        return recorded_answer(&now);
                    }
                }
                Err(e) => warn!(namespace = %ns, event = %event, error = %e, "could not cancel a send that timed out"),
            }
            Err(NotDelivered::Expired.answer(
                plan::EXPIRED,
                "the leader did not deliver the message within the send timeout; it was cancelled".to_string(),
                attempts_of(&current),
            ))
        }
    }
}

fn attempts_of(ev: &NotificationEvent) -> u32 {
    let status = ev.status.as_ref();
    status.and_then(|s| s.deliveries.first()).map(|d| d.attempts.max(0) as u32).unwrap_or(0)
}

/// The answer of `send` from the final status of the event it became.
fn recorded_answer(ev: &NotificationEvent) -> Result<Response, ApiError> {
    let status = ev.status.clone().unwrap_or_default();
    let attempts = attempts_of(ev);
    let Some(delivery) = status.deliveries.first() else {
        let reason = status.reason.unwrap_or_default();
        let message = status.message.unwrap_or_else(|| "the event finished without a delivery".to_string());
        return Err(match reason.as_str() {
            plan::INTEGRATION_NOT_FOUND => ApiError::not_found(code::INTEGRATION_NOT_FOUND, message).reason(&reason),
            plan::EXPIRED => NotDelivered::Expired.answer(&reason, message, attempts),
            _ => ApiError::new(StatusCode::CONFLICT, code::INTEGRATION_NOT_READY, message).reason(&reason),
        });
    };
    let reason = delivery.reason.clone().unwrap_or_default();
    let message = delivery.last_error.clone().unwrap_or_default();
    match delivery.phase {
        DeliveryPhase::Delivered => Ok(delivered_answer(attempts, &delivery.unresolved_mentions)),
        DeliveryPhase::Failed => Err(NotDelivered::of_recorded(&reason).answer(&reason, message, attempts)),
        // Skipped: the integration became disabled or unusable after it was checked.
        DeliveryPhase::Skipped | DeliveryPhase::Pending => Err(ApiError::new(
            StatusCode::CONFLICT,
            if reason == plan::INTEGRATION_DISABLED { code::INTEGRATION_DISABLED } else { code::INTEGRATION_NOT_READY },
            if message.is_empty() { "the integration could not be used".to_string() } else { message },
        )
        .reason(&reason)),
    }
}

/// A message id no other message has (the receiver's idempotency key).
fn message_id() -> String {
    format!("http-{:032x}", rand::random::<u128>())
}

/// Whose permissions an API call ran under, which decides what its 403 means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acting {
    /// The operator, for a caller it already authorized: a 403 is the
    /// operator's own misconfiguration.
    Operator,
    /// The caller itself (the sidecar's pod): a 403 is the caller's.
    Caller,
}

/// `202 {"namespace", "name"}` with the status URL in `Location`.
pub fn accepted(ns: &str, name: &str, prefix: &str) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(json!({"namespace": ns, "name": name}))).into_response();
    let location =
        if prefix.is_empty() { format!("/v1/events/{name}") } else { format!("{prefix}/{ns}/events/{name}") };
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// Create the NotificationEvent of `request` in `ns`; returns its generated name
/// once the API server has stored it.
pub async fn create(
    events: &dyn Objects<NotificationEvent>,
    ns: &str,
    request: &EventRequest,
    generate_name: &str,
    annotations: BTreeMap<String, String>,
    acting: Acting,
) -> Result<String, ApiError> {
    let event = NotificationEvent {
        metadata: ObjectMeta {
            generate_name: Some(generate_name.to_string()),
            namespace: Some(ns.to_string()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: request.spec(),
        status: None,
    };
    let created = events.create(ns, event).await.map_err(|e| api_error(e, ns, acting))?;
    created.metadata.name.ok_or_else(|| ApiError::internal("the API server returned an event without a name"))
}

/// The event's status as JSON.
pub async fn read(
    events: &dyn Objects<NotificationEvent>,
    ns: &str,
    name: &str,
    acting: Acting,
) -> Result<Value, ApiError> {
    let not_found =
        || ApiError::not_found(code::EVENT_NOT_FOUND, format!("no NotificationEvent {name:?} in namespace {ns:?}"));
    if !is_dns_subdomain(name) {
        return Err(not_found());
    }
    let event = events.get(ns, name).await.map_err(|e| api_error(e, ns, acting))?.ok_or_else(not_found)?;
    Ok(event_json(&event))
}

/// What `GET` of an event answers.
fn event_json(event: &NotificationEvent) -> Value {
    let status = event.status.clone().unwrap_or_default();
    json!({
        "namespace": event.metadata.namespace,
        "name": event.metadata.name,
        "uid": event.metadata.uid,
        "createdAt": event.metadata.creation_timestamp,
        "phase": status.phase,
        "status": status,
    })
}

/// A Kubernetes API error as an answer to the caller.
fn api_error(e: kube::Error, ns: &str, acting: Acting) -> ApiError {
    match e {
        kube::Error::Api(s) => match (s.code, acting) {
            (403, Acting::Caller) => ApiError::forbidden(s.message).reason(s.reason),
            (403, Acting::Operator) => {
                warn!(namespace = %ns, message = %s.message, "the operator is not allowed to do this: check its RBAC");
                ApiError::internal(format!("the operator is not allowed to do this: {}", s.message)).reason(s.reason)
            }
            (404, _) => ApiError::not_found(code::NOT_FOUND, s.message).reason(s.reason),
            (400 | 422, _) => ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_FIELD, s.message).reason(s.reason),
            (429, _) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, code::RATE_LIMITED, s.message)
                .reason(s.reason)
                .retry_after(std::time::Duration::from_secs(1)),
            (401, Acting::Caller) => {
                ApiError::unavailable(format!("the Kubernetes API refused the credentials: {}", s.message))
            }
            _ => {
                ApiError::unavailable(format!("the Kubernetes API answered {}: {}", s.code, s.message)).reason(s.reason)
            }
        },
        other => {
            warn!(namespace = %ns, error = %other, "Kubernetes API call failed");
            ApiError::unavailable("the Kubernetes API did not answer")
        }
    }
}
