//! `Status` errors shaped like the real API server's.

use serde_json::{Value, json};

/// One entry of `details.causes[]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cause {
    pub field: String,
    pub reason: String,
    pub message: String,
}

/// How Go's `%#v`-ish rendering used in field errors shows a value.
pub(crate) fn value_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        Value::Object(_) => "\"object\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        other => other.to_string(),
    }
}

impl Cause {
    pub fn new(field: &str, reason: &str, message: String) -> Cause {
        Cause { field: field.to_string(), reason: reason.to_string(), message }
    }
    pub fn required(field: &str, detail: &str) -> Cause {
        let message =
            if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        Cause::new(field, "FieldValueRequired", message)
    }
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
        Cause::new(field, "FieldValueInvalid", format!("Invalid value: {}: {detail}", value_repr(value)))
    }
    pub fn invalid_type_name(field: &str, type_name: &str, detail: &str) -> Cause {
        Cause::new(field, "FieldValueInvalid", format!("Invalid value: {type_name:?}: {detail}"))
    }
    pub fn not_supported(field: &str, value: &Value, supported: &[Value]) -> Cause {
        let list: Vec<String> = supported.iter().map(value_repr).collect();
        Cause::new(
            field,
            "FieldValueNotSupported",
            format!("Unsupported value: {}: supported values: {}", value_repr(value), list.join(", ")),
        )
    }
    pub fn forbidden(field: &str, detail: &str) -> Cause {
        Cause::new(field, "FieldValueForbidden", format!("Forbidden: {detail}"))
    }
    pub fn too_long(field: &str, max: u64) -> Cause {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Cause::new(field, "FieldValueTooLong", format!("Too long: may not be more than {max} {unit}"))
    }
    pub fn too_many(field: &str, actual: usize, max: u64) -> Cause {
        Cause::new(field, "FieldValueTooMany", format!("Too many: {actual}: must have at most {max} items"))
    }
    pub fn duplicate(field: &str, value: &Value) -> Cause {
        Cause::new(field, "FieldValueDuplicate", format!("Duplicate value: {}", value_repr(value)))
    }
    pub fn full(&self) -> String {
        if self.field.is_empty() { self.message.clone() } else { format!("{}: {}", self.field, self.message) }
    }
    pub fn to_json(&self) -> Value {
        json!({"reason": self.reason, "message": self.message, "field": self.field})
    }
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
            causes[0].full()
        } else {
            format!("[{}]", causes.iter().map(Cause::full).collect::<Vec<_>>().join(", "))
        };
        ApiError::new(422, "Invalid", format!("{what} {name:?} is invalid: {errs}")).with_details(json!({
            "name": name,
            "group": group,
            "kind": kind,
            "causes": causes.iter().map(Cause::to_json).collect::<Vec<_>>(),
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
