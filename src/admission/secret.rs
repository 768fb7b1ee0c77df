//! Secrets as the API server admits them: `stringData` merged into `data`,
//! `type` defaulted, keys, size and per-type required keys checked. No
//! cause ever repeats a value of `data` (credentials); keys are named.

use super::Cause;
use super::object_meta::is_config_key;
use base64::Engine;
use serde_json::{Value, json};

/// The largest total size of a Secret's data (1 MiB), as on a real server.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Create-time mutation: each `stringData` entry is base64-encoded into
/// `data` (replacing a key already there), `stringData` is removed, and
/// `type` defaults to `Opaque`.
pub fn normalize(secret: &mut Value) {
    let Some(object) = secret.as_object_mut() else { return };
    if let Some(Value::Object(string_data)) = object.remove("stringData") {
        let data = object.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        for (key, value) in string_data {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_str().unwrap_or("").as_bytes());
            data[key] = Value::String(encoded);
        }
    }
    if object.get("type").and_then(Value::as_str).unwrap_or("").is_empty() {
        object.insert("type".into(), json!("Opaque"));
    }
}

/// The `data` keys whose value is not valid base64 (what the API server's
/// decoder refuses); the values themselves are never returned.
pub fn invalid_base64_keys(secret: &Value) -> Vec<String> {
    let Some(data) = secret.get("data").and_then(Value::as_object) else { return Vec::new() };
    data.iter()
        .filter(|(_, v)| v.as_str().is_none_or(|s| base64::engine::general_purpose::STANDARD.decode(s).is_err()))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Validates a normalized Secret (`old` is the stored one on update): data
/// keys, total size, the keys its `type` requires, `type` and `immutable`.
pub fn validate(secret: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let data = secret.get("data").and_then(Value::as_object);
    for key in data.into_iter().flat_map(|d| d.keys()) {
        if !is_config_key(key) {
            causes.push(Cause::invalid(
                &format!("data[{key}]"),
                &json!(key),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
    }
    let size: usize = data.into_iter().flat_map(|d| d.iter()).map(|(k, v)| k.len() + decoded_len(v)).sum();
    if size > MAX_DATA_BYTES {
        causes.push(Cause::too_long("data", MAX_DATA_BYTES as u64));
    }
    let ty = type_of(secret);
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    match ty {
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    causes.push(Cause::required(&format!("data[{k}]"), ""));
                }
            }
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            causes.push(Cause::required("data[.dockerconfigjson]", ""));
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            causes.push(Cause::required("data[username]", ""));
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            causes.push(Cause::required("data[ssh-privatekey]", ""));
        }
        _ => {}
    }
    if let Some(old) = old {
        if type_of(old) != ty {
            causes.push(Cause::invalid("type", &json!(ty), "field is immutable"));
        }
        if old.get("immutable").and_then(Value::as_bool) == Some(true) {
            if secret.get("immutable").and_then(Value::as_bool) != Some(true) {
                causes.push(Cause::forbidden("immutable", "field is immutable when `immutable` is set"));
            }
            if old.get("data") != secret.get("data") {
                causes.push(Cause::forbidden("data", "field is immutable when `immutable` is set"));
            }
        }
    }
    causes
}

fn type_of(secret: &Value) -> &str {
    secret.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The size of a base64 value once decoded (its length when it is not
/// base64: the emulation stores what it was given).
fn decoded_len(v: &Value) -> usize {
    let s = v.as_str().unwrap_or("");
    base64::engine::general_purpose::STANDARD.decode(s).map(|b| b.len()).unwrap_or(s.len())
}
