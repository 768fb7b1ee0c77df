//! The one error shape of the ingestion endpoints:
//! `{"error": {"code": "…", "message": "…", "field": "…", "reason": "…"}}`
//! (`field` names the offending request field, `reason` the Kubernetes or
//! service reason behind the error, each when there is one).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Machine-readable error codes.
pub mod code {
    pub const INVALID_JSON: &str = "invalid_json";
    pub const INVALID_FIELD: &str = "invalid_field";
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// 408: the body did not arrive within the listener's body timeout.
    pub const BODY_TIMEOUT: &str = "body_timeout";
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    pub const FORBIDDEN: &str = "forbidden";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const NAMESPACE_NOT_SERVED: &str = "namespace_not_served";
    pub const INTEGRATION_NOT_FOUND: &str = "integration_not_found";
    pub const NO_INTEGRATION_MATCHES: &str = "no_integration_matches";
    pub const EVENT_NOT_FOUND: &str = "event_not_found";
    pub const INTEGRATION_DISABLED: &str = "integration_disabled";
    pub const INTEGRATION_NOT_READY: &str = "integration_not_ready";
    /// Delivery outcomes of the synchronous route: the engine's outcome names.
    pub const DEAD: &str = crate::status::outcome::label::DEAD;
    pub const REJECTED: &str = crate::status::outcome::label::REJECTED;
    pub const EXHAUSTED: &str = crate::status::outcome::label::EXHAUSTED;
    pub const EXPIRED: &str = crate::status::outcome::label::EXPIRED;
    /// The Kubernetes API could not be asked (authentication, authorization or a write).
    pub const UNAVAILABLE: &str = "unavailable";
    pub const INTERNAL: &str = "internal";
}

/// An error answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub reason: Option<String>,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<Duration>,
    /// Extra top-level members next to `error` (e.g. `attempts`).
    pub extra: Option<Box<Map<String, Value>>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None, reason: None, retry_after: None, extra: None }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.get_or_insert_default().insert(key.to_string(), value);
        self
    }

    /// 400: the request field `field` is invalid.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_FIELD, message).field(field)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, code::UNAUTHENTICATED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, code::FORBIDDEN, message)
    }

    /// 503: the Kubernetes API could not be asked; worth retrying.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, message).retry_after(Duration::from_secs(1))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, message)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(f) = &self.field {
            error["field"] = json!(f);
        }
        if let Some(r) = &self.reason {
            error["reason"] = json!(r);
        }
        let mut body = self.extra.as_deref().cloned().unwrap_or_default();
        body.insert("error".into(), error);
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The answer for unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::not_found(code::NOT_FOUND, "no such route")
}

/// The answer for a known route with the wrong method.
pub async fn wrong_method() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, code::METHOD_NOT_ALLOWED, "method not allowed on this route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_headers() {
        let e = ApiError::invalid("fields[1].name", "must not be empty").with("attempts", json!(2));
        assert_eq!(
            e.body(),
            json!({"attempts": 2, "error": {"code": "invalid_field", "message": "must not be empty", "field": "fields[1].name"}})
        );
        let r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code::RATE_LIMITED, "slow down")
            .retry_after(Duration::from_millis(1200))
            .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = ApiError::unauthenticated("no token").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code::RATE_LIMITED, "x")
            .retry_after(Duration::from_millis(10))
            .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1", "never Retry-After: 0");
    }
}
