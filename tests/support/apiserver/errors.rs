//! `Status` errors shaped like the real API server's.

use serde_json::{Value, json};

pub(crate) use kube_notify::admission::Cause;

/// One entry of `details.causes[]`.
fn cause_json(cause: &Cause) -> Value {
    json!({"reason": cause.reason, "message": cause.message, "field": cause.field})
}

/// An API error, rendered as a `Status` object.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError { code, reason: reason.to_string(), message: message.into(), details: None }
    }
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }
    pub fn status_json(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
    pub fn not_found(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{} {name:?} not found", qualified(group, resource)))
            .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    pub fn resource_not_found() -> ApiError {
        ApiError::new(404, "NotFound", "the server could not find the requested resource").with_details(json!({}))
    }
    pub fn already_exists(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError::new(409, "AlreadyExists", format!("{} {name:?} already exists", qualified(group, resource)))
            .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} {name:?}: {why}", qualified(group, resource)),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    pub fn stale(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[Cause]) -> ApiError {
        let what = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let errs = if causes.len() == 1 {
            causes[0].to_string()
        } else {
            format!("[{}]", causes.iter().map(Cause::to_string).collect::<Vec<_>>().join(", "))
        };
        ApiError::new(422, "Invalid", format!("{what} {name:?} is invalid: {errs}")).with_details(json!({
            "name": name,
            "group": group,
            "kind": kind,
            "causes": causes.iter().map(cause_json).collect::<Vec<_>>(),
        }))
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            .with_details(json!({}))
    }
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", message)
    }
    pub fn not_acceptable(message: impl Into<String>) -> ApiError {
        ApiError::new(406, "NotAcceptable", message)
    }
    pub fn too_large_rv(rv: u64, current: u64) -> ApiError {
        ApiError::new(504, "Timeout", format!("Too large resource version: {rv}, current: {current}")).with_details(
            json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1
            }),
        )
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
