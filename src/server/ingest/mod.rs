//! HTTP ingestion: send notifications without writing Kubernetes objects
//! yourself, with the caller's own Kubernetes identity and RBAC deciding.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/namespaces/{ns}/events` | create a NotificationEvent (`generateName`); `202 {"namespace", "name"}` once it exists |
//! | `POST /v1/namespaces/{ns}/integrations/{name}/send` | deliver now through the delivery engine; `200 {"delivered": true, "attempts"}` (on a follower: through the leader, see [`routes`]) |
//! | `GET /v1/namespaces/{ns}/events/{name}` | the event's status |
//!
//! Every request carries `Authorization: Bearer <token>` (a Kubernetes
//! token): a TokenReview authenticates it (401; an implausible token, or one
//! from an address that sent too many invalid ones, is refused before any
//! review: 401 or 429, see [`flood`]), a rate limit per username
//! applies (429 with `Retry-After`), then a SubjectAccessReview decides
//! whether the caller may `create` (POST) or `get` (GET)
//! `notificationevents.kube-notify.io` in the namespace (403). Only then is
//! the body read (413 over `--max-body-bytes`) and validated like the CRD
//! validates a spec (400 naming the field). Nothing refused reaches a chat
//! service. Errors are `{"error": {"code", "message", "field"?, "reason"?}}`.

pub mod auth;
pub mod body;
pub mod budget;
pub mod errors;
pub mod finish;
pub mod flood;
pub mod routes;
pub mod token;
pub mod waiters;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use futures::StreamExt;

use super::listen::{Options, body_timeout};
use crate::caches::Caches;
use crate::delivery::Delivery;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use errors::{ApiError, code};

/// Settings of the ingestion endpoints.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Bodies over this are refused with 413.
    pub max_body_bytes: usize,
    /// Requests per second per username (after authentication).
    pub rate: NonZeroU32,
    /// Requests a username may send at once before the rate applies.
    pub burst: NonZeroU32,
    /// How long the synchronous route may take (rate limits and retries included).
    pub send_timeout: Duration,
    /// How long TokenReview and SubjectAccessReview answers are reused (0: never).
    pub review_cache_ttl: Duration,
    /// How many answers of each kind are kept at most.
    pub review_cache_size: usize,
    /// Serve only this namespace (the operator's `--namespace`); all when `None`.
    pub namespace: Option<String>,
    /// Invalid bearer tokens one client address may present before its
    /// requests get 429 without a TokenReview (then one more per second).
    pub bad_token_budget: NonZeroU32,
    /// What all POSTs together may hold in memory while they are answered
    /// (their bodies, at least [`budget::MIN_COST`] each); 429 beyond.
    pub max_in_flight_bytes: usize,
    /// The audience callers' tokens must be minted for (`--token-audience`):
    /// TokenReviews ask for it, and a token for another (the API server's) is 401.
    pub token_audience: String,
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            rate: NonZeroU32::new(50).unwrap(),
            burst: NonZeroU32::new(100).unwrap(),
            send_timeout: Duration::from_secs(30),
            review_cache_ttl: Duration::from_secs(10),
            review_cache_size: 10_000,
            namespace: None,
            bad_token_budget: NonZeroU32::new(flood::DEFAULT_BAD_TOKEN_BUDGET).unwrap(),
            max_in_flight_bytes: budget::DEFAULT_IN_FLIGHT_BYTES,
            token_audience: auth::DEFAULT_TOKEN_AUDIENCE.to_string(),
        }
    }
}

/// The ingestion routes, served next to the operator, sharing its store,
/// caches and [`Delivery`]. Every replica serves them; on a follower
/// (`leadership` false) `send` goes through the leader as a NotificationEvent.
pub fn router(
    store: crate::store::Store,
    caches: Caches,
    delivery: Arc<Delivery>,
    metrics: Arc<Metrics>,
    config: IngestConfig,
    leadership: Leadership,
    callers: routes::Callers,
) -> Router {
    routes::router(Arc::new(routes::Ingest::new(store, caches, delivery, config, leadership, callers)))
        .layer(middleware::from_fn_with_state(metrics, count))
}

/// Serve `router` on `listener` until the task is dropped. Each request
/// carries its peer's address, which keys the budget of invalid tokens
/// ([`routes::Caller`]).
pub async fn serve(listener: tokio::net::TcpListener, router: Router, options: Options) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = ?addr, scheme, "HTTP ingestion listening");
    super::listen::serve(listener, router, options).await
}

/// Count requests by method, route (the route's pattern, never the raw path)
/// and status code, each from a closed set (see [`Metrics::ingest_request`]).
pub async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.ingest_request(&method, route.as_ref().map(MatchedPath::as_str), response.status().as_u16());
    response
}

/// The body, at most `limit` bytes (413 beyond, without reading the rest;
/// 408 when it does not arrive within the listener's body timeout).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::BODY_TOO_LARGE,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| match body_timeout(&e) {
            // The listener closes the connection after this answer.
            Some(timeout) => ApiError::new(StatusCode::REQUEST_TIMEOUT, code::BODY_TIMEOUT, timeout.to_string()),
            None => ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_JSON, format!("could not read the body: {e}")),
        })?;
        if out.len() + chunk.len() > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
