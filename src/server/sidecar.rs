//! `kube-notify sidecar`: next to an application in its pod, on loopback
//! only, the `events` endpoint without a token. Events are created in the
//! pod's own namespace with the pod's own ServiceAccount credentials, so the
//! cluster's RBAC still decides (a 403 from the API is a 403 to the caller).
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/events` | create a NotificationEvent in the pod's namespace: `202 {"namespace", "name"}` |
//! | `POST /v1/namespaces/{ns}/events` | the same, only for the pod's own namespace (403 otherwise) |
//! | `GET /v1/events/{name}`, `GET /v1/namespaces/{ns}/events/{name}` | the event's status (needs `get` in RBAC) |
//! | `GET /livez` | `ok` |
//!
//! Like standalone mode without a token, it serves programs in the pod, not
//! web pages: a request with an `Origin`, a cross-site `Sec-Fetch-Site` or a
//! `Host` that is not a loopback name gets 403 (one check for both,
//! [`token::from_this_machine`]).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kube::Client;
use serde_json::Value;
use tracing::info;

use super::ingest::errors::{self, ApiError, code};
use super::ingest::routes::{self as ingest_routes, Acting};
use super::ingest::{body, count, read_body, token};
use super::listen::{Limits, Options};
use crate::crd::NotificationEvent;
use crate::metrics::Metrics;
use crate::store::Objects;

/// Where Kubernetes mounts the pod's namespace.
pub const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Settings of the sidecar.
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    /// The pod's namespace: the only one events are created in.
    pub namespace: String,
    pub max_body_bytes: usize,
    /// Requests per second, all callers together.
    pub rate: NonZeroU32,
    pub burst: NonZeroU32,
}

struct Sidecar {
    events: Arc<dyn Objects<NotificationEvent>>,
    config: SidecarConfig,
    limiter: DefaultDirectRateLimiter,
}

/// Refuse any address but a loopback one: without a token, the sidecar must
/// be reachable from its own pod only.
pub fn check_listen(addr: &SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "--listen {addr} is not a loopback address: the sidecar takes requests without a token, so it listens \
             on 127.0.0.1 or [::1] only (e.g. --listen 127.0.0.1:8787)"
        ))
    }
}

/// The pod's namespace: `POD_NAMESPACE`, else the ServiceAccount's namespace
/// file, else `--namespace`. A `--namespace` that contradicts the pod's is refused.
pub fn resolve_namespace(env: Option<String>, file: Option<String>, flag: Option<String>) -> Result<String, String> {
    let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (env, file, flag) = (clean(env), clean(file), clean(flag));
    let pod = env.or(file);
    let namespace = match (pod, flag) {
        (Some(pod), Some(flag)) if pod != flag => {
            return Err(format!(
                "--namespace {flag:?} differs from the pod's namespace {pod:?}: the sidecar creates events in its \
                 own pod's namespace only"
            ));
        }
        (Some(ns), _) | (None, Some(ns)) => ns,
        (None, None) => {
            return Err(format!(
                "no namespace: set POD_NAMESPACE (the downward API's metadata.namespace), run in a pod with a \
                 ServiceAccount token ({NAMESPACE_FILE}), or pass --namespace"
            ));
        }
    };
    if !body::is_dns_label(&namespace) {
        return Err(format!("{namespace:?} is not a namespace name"));
    }
    Ok(namespace)
}

/// The sidecar's routes, creating events with `client` (the pod's credentials).
pub fn router(client: Client, config: SidecarConfig, metrics: Arc<Metrics>) -> Router {
    let limiter = RateLimiter::direct(Quota::per_second(config.rate).allow_burst(config.burst));
    let state = Arc::new(Sidecar { events: crate::store::kubernetes::events(client), config, limiter });
    Router::new()
        .route("/v1/events", post(create_own).fallback(errors::wrong_method))
        .route("/v1/namespaces/{ns}/events", post(create_in).fallback(errors::wrong_method))
        .route("/v1/events/{name}", get(get_own).fallback(errors::wrong_method))
        .route("/v1/namespaces/{ns}/events/{name}", get(get_in).fallback(errors::wrong_method))
        .route("/livez", get(|| async { "ok" }))
        .fallback(errors::no_route)
        .with_state(state)
        .layer(middleware::from_fn(only_programs))
        .layer(middleware::from_fn_with_state(metrics, count))
}

/// 403 for what a web page could send (see the module's documentation).
async fn only_programs(request: Request, next: Next) -> Response {
    let hint = "the sidecar takes no token, so only programs in its pod may call (not web pages)";
    match token::from_this_machine(request.headers(), hint) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Serve the sidecar on `addr` (which must be loopback) until the task is dropped.
pub async fn serve(addr: SocketAddr, router: Router) -> anyhow::Result<()> {
    check_listen(&addr).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, router, Limits::default()).await
}

/// [`serve`] on a bound `listener` (which must be loopback), with `limits`.
pub async fn serve_on(listener: tokio::net::TcpListener, router: Router, limits: Limits) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    check_listen(&addr).map_err(anyhow::Error::msg)?;
    info!(%addr, "sidecar listening");
    super::listen::serve(listener, router, Options { limits, tls: None }).await?;
    Ok(())
}

impl Sidecar {
    fn check_rate(&self) -> Result<(), ApiError> {
        self.limiter.check().map_err(|not_until| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                code::RATE_LIMITED,
                format!("too many requests: at most {} per second", self.config.rate),
            )
            .retry_after(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    fn own(&self, ns: &str) -> Result<(), ApiError> {
        if ns == self.config.namespace {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this sidecar creates and reads events only in its pod's namespace {:?}",
                self.config.namespace
            )))
        }
    }

    async fn create(&self, headers: &HeaderMap, body: Body, prefix: &str) -> Result<Response, ApiError> {
        self.check_rate()?;
        let bytes = read_body(headers, body, self.config.max_body_bytes).await?;
        let request = body::parse_event(&bytes)?;
        let ns = &self.config.namespace;
        let name =
            ingest_routes::create(self.events.as_ref(), ns, &request, "sidecar-", Default::default(), Acting::Caller)
                .await?;
        info!(namespace = %ns, event = %name, "event created");
        Ok(ingest_routes::accepted(ns, &name, prefix))
    }

    async fn read(&self, name: &str) -> Result<Json<Value>, ApiError> {
        self.check_rate()?;
        ingest_routes::read(self.events.as_ref(), &self.config.namespace, name, Acting::Caller).await.map(Json)
    }
}

async fn create_own(State(s): State<Arc<Sidecar>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    s.create(&headers, body, "").await
}

async fn create_in(
    State(s): State<Arc<Sidecar>>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    s.own(&ns)?;
    s.create(&headers, body, "/v1/namespaces").await
}

async fn get_own(State(s): State<Arc<Sidecar>>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    s.read(&name).await
}

async fn get_in(
    State(s): State<Arc<Sidecar>>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    s.own(&ns)?;
    s.read(&name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_on_loopback_only() {
        for ok in ["127.0.0.1:8787", "127.0.0.2:1", "[::1]:8787"] {
            assert!(check_listen(&ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:8787", "10.0.0.5:8787", "[::]:8787"] {
            let e = check_listen(&bad.parse().unwrap()).unwrap_err();
            assert!(e.contains("not a loopback address"), "{e}");
        }
    }

    #[test]
    fn namespace_from_the_pod() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(resolve_namespace(s("team-a"), s("other"), None).unwrap(), "team-a");
        assert_eq!(resolve_namespace(None, s("team-b\n"), None).unwrap(), "team-b");
        assert_eq!(resolve_namespace(s(" "), s("team-b"), None).unwrap(), "team-b");
        assert_eq!(resolve_namespace(None, None, s("dev")).unwrap(), "dev");
        assert_eq!(resolve_namespace(s("team-a"), None, s("team-a")).unwrap(), "team-a");
        assert!(resolve_namespace(s("team-a"), None, s("kube-system")).unwrap_err().contains("differs"));
        assert!(resolve_namespace(None, None, None).unwrap_err().contains("POD_NAMESPACE"));
        assert!(resolve_namespace(s("Not_A_Namespace"), None, None).is_err());
    }
}
