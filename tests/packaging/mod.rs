//! Helpers shared by the packaging tests (tests/chart.rs, tests/examples.rs,
//! tests/dockerfile.rs): reading multi-document YAML, checking that an object
//! survives a round trip through its Rust type, and the repository's paths.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every non-empty document of a multi-document YAML text, as JSON values.
pub fn yaml_docs(text: &str, origin: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value =
            serde_yaml::Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: document {i} is not YAML: {e}"));
        let json: Value =
            serde_json::to_value(&value).unwrap_or_else(|e| panic!("{origin}: document {i} is not JSON-like: {e}"));
        if !json.is_null() {
            docs.push(json);
        }
    }
    docs
}

/// `kind` and `metadata.name` of an object, for messages.
pub fn describe(obj: &Value) -> String {
    format!("{} {}", obj["kind"].as_str().unwrap_or("?"), obj["metadata"]["name"].as_str().unwrap_or("?"))
}

/// Deserialize `obj` as `T` and serialize it again: the result must be
/// exactly `obj`. A misspelled or misplaced field is dropped by the type, so
/// the two differ and the message names the path.
pub fn roundtrip_exact<T: DeserializeOwned + Serialize>(obj: &Value, origin: &str) -> T {
    let typed: T = serde_json::from_value(obj.clone())
        .unwrap_or_else(|e| panic!("{origin}: {} does not parse as its kind: {e}", describe(obj)));
    let again = serde_json::to_value(&typed).unwrap();
    let mut diffs = Vec::new();
    diff(obj, &again, "", true, &mut diffs);
    assert!(diffs.is_empty(), "{origin}: {} changes in a round trip through its type: {diffs:#?}", describe(obj));
    typed
}

/// Like [`roundtrip_exact`], but the type may add fields (defaults): every
/// field of `obj` must come back unchanged.
pub fn roundtrip_subset<T: DeserializeOwned + Serialize>(obj: &Value, origin: &str) -> T {
    let typed: T = serde_json::from_value(obj.clone())
        .unwrap_or_else(|e| panic!("{origin}: {} does not parse as its kind: {e}", describe(obj)));
    let again = serde_json::to_value(&typed).unwrap();
    let mut diffs = Vec::new();
    diff(obj, &again, "", false, &mut diffs);
    assert!(diffs.is_empty(), "{origin}: {} loses fields in a round trip through its type: {diffs:#?}", describe(obj));
    typed
}

/// Differences between `want` and `got`. With `exact`, fields `got` has and
/// `want` lacks count too.
fn diff(want: &Value, got: &Value, path: &str, exact: bool, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => diff(wv, gv, &format!("{path}.{k}"), exact, out),
                    None => out.push(format!("{path}.{k}: unknown field (misspelled or misplaced?)")),
                }
            }
            if exact {
                for k in g.keys().filter(|k| !w.contains_key(*k)) {
                    out.push(format!("{path}.{k}: added by the type"));
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff(wv, gv, &format!("{path}[{i}]"), exact, out);
            }
        }
        // Numbers: 1 and 1.0 are the same value.
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => {}
        _ if want == got => {}
        _ => out.push(format!("{path}: {want} became {got}")),
    }
}

/// Whether a `matchLabels`-only selector selects these labels.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(wanted) = selector.as_object() else { return false };
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}
