//! One reason an object is not admitted, shaped like an entry of a
//! Kubernetes `Status`'s `details.causes[]`.

use serde_json::Value;
use std::fmt;

/// One field error: the field's path (`spec.errorThreshold`, `data[token]`;
/// empty for the object itself), the API server's reason
/// (`FieldValueInvalid`, `FieldValueRequired`...) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The field's path, as the API server writes it.
    pub field: String,
    /// The API server's cause type, e.g. `FieldValueInvalid`.
    pub reason: String,
    /// What is wrong, e.g. `Required value`.
    pub message: String,
}

/// How the API server's field errors show a value (Go's `%#v`-ish).
pub fn value_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        Value::Object(_) => "\"object\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        other => other.to_string(),
    }
}

impl Cause {
    /// A cause with a given reason and message.
    pub fn new(field: &str, reason: &str, message: String) -> Cause {
        Cause { field: field.to_string(), reason: reason.to_string(), message }
    }
    /// `Required value[: detail]`.
    pub fn required(field: &str, detail: &str) -> Cause {
        let message =
            if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        Cause::new(field, "FieldValueRequired", message)
    }
    /// `Invalid value: <value>: detail`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
        Cause::new(field, "FieldValueInvalid", format!("Invalid value: {}: {detail}", value_repr(value)))
    }
    /// `Invalid value: "<type>": detail`, for values not to be repeated.
    pub fn invalid_type_name(field: &str, type_name: &str, detail: &str) -> Cause {
        Cause::new(field, "FieldValueInvalid", format!("Invalid value: {type_name:?}: {detail}"))
    }
    /// `Unsupported value: <value>: supported values: ...`.
    pub fn not_supported(field: &str, value: &Value, supported: &[Value]) -> Cause {
        let list: Vec<String> = supported.iter().map(value_repr).collect();
        Cause::new(
            field,
            "FieldValueNotSupported",
            format!("Unsupported value: {}: supported values: {}", value_repr(value), list.join(", ")),
        )
    }
    /// `Forbidden: detail`.
    pub fn forbidden(field: &str, detail: &str) -> Cause {
        Cause::new(field, "FieldValueForbidden", format!("Forbidden: {detail}"))
    }
    /// `Too long: may not be more than <max> bytes`.
    pub fn too_long(field: &str, max: u64) -> Cause {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Cause::new(field, "FieldValueTooLong", format!("Too long: may not be more than {max} {unit}"))
    }
    /// `Too many: <actual>: must have at most <max> items`.
    pub fn too_many(field: &str, actual: usize, max: u64) -> Cause {
        Cause::new(field, "FieldValueTooMany", format!("Too many: {actual}: must have at most {max} items"))
    }
    /// `Duplicate value: <value>`.
    pub fn duplicate(field: &str, value: &Value) -> Cause {
        Cause::new(field, "FieldValueDuplicate", format!("Duplicate value: {}", value_repr(value)))
    }
}

/// `field: message`, or the message alone for the object itself.
impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.field, self.message) }
    }
}
