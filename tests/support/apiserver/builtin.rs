//! Built-in resources: registration, typed decoding (unknown fields dropped,
//! wrong types rejected as the real server's decoder does), the
//! events.k8s.io <-> core/v1 event conversion, and per-kind validation.

use super::errors::{ApiError, ApiResult, Cause};
use super::meta::{is_config_key, is_qualified_name};
use super::store::{Behavior, ResourceType};
use kube_notify::admission::secret;
use serde_json::{Map, Value, json};
use std::sync::Arc;

#[allow(clippy::too_many_arguments)]
fn rt(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
    behavior: Behavior,
    storage_key: &str,
    field_labels: &[&str],
    short: &[&str],
) -> Arc<ResourceType> {
    Arc::new(ResourceType {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        status_subresource: status,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        behavior,
        storage_key: storage_key.into(),
        schema: None,
        field_labels: field_labels.iter().map(|s| s.to_string()).collect(),
        storage_version: true,
        crd_name: None,
    })
}

pub(crate) fn builtin_resources() -> Vec<Arc<ResourceType>> {
    let event_fields = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];
    let events_v1_fields = [
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reason",
        "reportingController",
        "type",
    ];
    vec![
        rt("", "v1", "secrets", "Secret", true, false, Behavior::Secret, "core/secrets", &["type"], &[]),
        rt("", "v1", "configmaps", "ConfigMap", true, false, Behavior::ConfigMap, "core/configmaps", &[], &["cm"]),
        rt("", "v1", "events", "Event", true, false, Behavior::CoreEvent, "core/events", &event_fields, &["ev"]),
        rt(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            true,
            Behavior::Namespace,
            "core/namespaces",
            &["status.phase"],
            &["ns"],
        ),
        rt(
            "",
            "v1",
            "pods",
            "Pod",
            true,
            true,
            Behavior::Pod,
            "core/pods",
            &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            &["po"],
        ),
        rt(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            false,
            Behavior::ServiceAccount,
            "core/serviceaccounts",
            &[],
            &["sa"],
        ),
        rt(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            false,
            Behavior::EventsV1,
            "core/events",
            &events_v1_fields,
            &["ev"],
        ),
        rt(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            false,
            Behavior::Lease,
            "coordination.k8s.io/leases",
            &[],
            &[],
        ),
        rt(
            "authentication.k8s.io",
            "v1",
            "tokenreviews",
            "TokenReview",
            false,
            false,
            Behavior::TokenReview,
            "authentication.k8s.io/tokenreviews",
            &[],
            &[],
        ),
        rt(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            false,
            false,
            Behavior::SubjectAccessReview,
            "authorization.k8s.io/subjectaccessreviews",
            &[],
            &[],
        ),
        rt(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
            Behavior::Crd,
            "apiextensions.k8s.io/customresourcedefinitions",
            &[],
            &["crd", "crds"],
        ),
    ]
}

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> ApiResult<Value> {
    let t: T = serde_json::from_value(v.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: json: {e}")))?;
    serde_json::to_value(t).map_err(|e| ApiError::internal(e.to_string()))
}

/// Decodes a built-in object through its typed representation.
pub(crate) fn typed_normalize(behavior: Behavior, v: &Value) -> ApiResult<Value> {
    use k8s_openapi::api;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    match behavior {
        Behavior::Custom => Ok(v.clone()),
        Behavior::Secret => roundtrip::<api::core::v1::Secret>(v),
        Behavior::ConfigMap => roundtrip::<api::core::v1::ConfigMap>(v),
        Behavior::CoreEvent => roundtrip::<api::core::v1::Event>(v),
        Behavior::EventsV1 => roundtrip::<api::events::v1::Event>(v),
        Behavior::Namespace => roundtrip::<api::core::v1::Namespace>(v),
        Behavior::Pod => roundtrip::<api::core::v1::Pod>(v),
        Behavior::ServiceAccount => roundtrip::<api::core::v1::ServiceAccount>(v),
        Behavior::Lease => roundtrip::<api::coordination::v1::Lease>(v),
        Behavior::TokenReview => roundtrip::<api::authentication::v1::TokenReview>(v),
        Behavior::SubjectAccessReview => roundtrip::<api::authorization::v1::SubjectAccessReview>(v),
        Behavior::Crd => roundtrip::<CustomResourceDefinition>(v),
    }
}

const EVENT_RENAMES: &[(&str, &str)] = &[
    // (core/v1, events.k8s.io/v1)
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// events.k8s.io/v1 shape -> storage (core/v1) shape.
pub(crate) fn events_to_core(v: &Value) -> Value {
    let mut out = Map::new();
    if let Some(m) = v.as_object() {
        for (k, x) in m {
            let nk =
                EVENT_RENAMES.iter().find(|(_, e)| e == k).map(|(c, _)| c.to_string()).unwrap_or_else(|| k.clone());
            out.insert(nk, x.clone());
        }
    }
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// Storage (core/v1) shape -> events.k8s.io/v1 shape.
pub(crate) fn core_to_events(v: &Value) -> Value {
    let mut out = Map::new();
    if let Some(m) = v.as_object() {
        for (k, x) in m {
            let nk =
                EVENT_RENAMES.iter().find(|(c, _)| c == k).map(|(_, e)| e.to_string()).unwrap_or_else(|| k.clone());
            out.insert(nk, x.clone());
        }
    }
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// Create-time mutations of built-ins (Secret stringData, defaults).
pub(crate) fn mutate(behavior: Behavior, v: &mut Value) {
    match behavior {
        Behavior::Secret => secret::normalize(v),
        Behavior::Namespace => {
            if s(v, "/status/phase").is_empty() {
                v["status"] = json!({"phase": "Active"});
            }
            if v.pointer("/spec/finalizers").is_none() {
                v["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        Behavior::Pod if s(v, "/status/phase").is_empty() => {
            v["status"] = json!({"phase": "Pending"});
        }
        _ => {}
    }
}

fn data_size(v: &Value) -> usize {
    ["data", "binaryData"]
        .iter()
        .filter_map(|f| v.get(*f).and_then(Value::as_object))
        .flat_map(|m| m.iter())
        .map(|(k, x)| k.len() + x.as_str().map(str::len).unwrap_or(0))
        .sum()
}

/// Kind-specific validation. `old` is the stored object on update.
pub(crate) fn validate(behavior: Behavior, v: &Value, old: Option<&Value>, namespace: &str) -> Vec<Cause> {
    let mut c = Vec::new();
    match behavior {
        Behavior::Secret => c.extend(secret::validate(v, old)),
        Behavior::ConfigMap => {
            for field in ["data", "binaryData"] {
                if let Some(m) = v.get(field).and_then(Value::as_object) {
                    for k in m.keys() {
                        if !is_config_key(k) {
                            c.push(Cause::invalid(
                                &format!("{field}[{k}]"),
                                &json!(k),
                                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                            ));
                        }
                    }
                }
            }
            if let (Some(d), Some(b)) =
                (v.get("data").and_then(Value::as_object), v.get("binaryData").and_then(Value::as_object))
            {
                for k in d.keys().filter(|k| b.contains_key(*k)) {
                    c.push(Cause::invalid(&format!("data[{k}]"), &json!(k), "duplicate of key present in binaryData"));
                }
            }
            if data_size(v) > 1024 * 1024 {
                c.push(Cause::too_long("data", 1024 * 1024));
            }
            if let Some(old) = old
                && old.get("immutable").and_then(Value::as_bool) == Some(true)
            {
                if v.get("immutable").and_then(Value::as_bool) != Some(true) {
                    c.push(Cause::forbidden("immutable", "field is immutable when `immutable` is set"));
                }
                for f in ["data", "binaryData"] {
                    if old.get(f) != v.get(f) {
                        c.push(Cause::forbidden(f, "field is immutable when `immutable` is set"));
                    }
                }
            }
        }
        Behavior::Pod => {
            let containers = v.pointer("/spec/containers").and_then(Value::as_array);
            match containers {
                None => c.push(Cause::required("spec.containers", "")),
                Some(cs) if cs.is_empty() => c.push(Cause::required("spec.containers", "")),
                Some(cs) => {
                    for (i, ct) in cs.iter().enumerate() {
                        if s(ct, "/name").is_empty() {
                            c.push(Cause::required(&format!("spec.containers[{i}].name"), ""));
                        }
                        if s(ct, "/image").is_empty() {
                            c.push(Cause::required(&format!("spec.containers[{i}].image"), ""));
                        }
                    }
                }
            }
        }
        Behavior::Lease => {
            if let Some(d) = v.pointer("/spec/leaseDurationSeconds").and_then(Value::as_i64)
                && d <= 0
            {
                c.push(Cause::invalid("spec.leaseDurationSeconds", &json!(d), "must be greater than 0"));
            }
            if let Some(t) = v.pointer("/spec/leaseTransitions").and_then(Value::as_i64)
                && t < 0
            {
                c.push(Cause::invalid("spec.leaseTransitions", &json!(t), "must be greater than or equal to 0"));
            }
        }
        Behavior::CoreEvent => {
            let ns = s(v, "/involvedObject/namespace");
            if !ns.is_empty() && ns != namespace {
                c.push(Cause::invalid("involvedObject.namespace", &json!(ns), "does not match event.namespace"));
            }
        }
        Behavior::EventsV1 => validate_events_v1(v, old, namespace, &mut c),
        _ => {}
    }
    c
}

/// The events.k8s.io/v1 rules (ValidateEventCreate/ValidateEventUpdate).
fn validate_events_v1(v: &Value, old: Option<&Value>, namespace: &str, c: &mut Vec<Cause>) {
    if v.get("eventTime").is_none_or(Value::is_null) {
        c.push(Cause::required("eventTime", ""));
    }
    if let Some(series) = v.get("series").filter(|x| !x.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            c.push(Cause::invalid("series.count", &series["count"], "should be at least 2"));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            c.push(Cause::required("series.lastObservedTime", ""));
        }
    }
    let rc = s(v, "/reportingController");
    if rc.is_empty() {
        c.push(Cause::required("reportingController", ""));
    } else if !is_qualified_name(rc) {
        c.push(Cause::invalid("reportingController", &json!(rc), "must be a qualified name"));
    }
    let ri = s(v, "/reportingInstance");
    if ri.is_empty() {
        c.push(Cause::required("reportingInstance", ""));
    } else if ri.len() > 128 {
        c.push(Cause::too_long("reportingInstance", 128));
    }
    for f in ["action", "reason"] {
        let x = s(v, &format!("/{f}"));
        if x.is_empty() {
            c.push(Cause::required(f, ""));
        } else if x.len() > 128 {
            c.push(Cause::too_long(f, 128));
        }
    }
    if s(v, "/note").len() > 1024 {
        c.push(Cause::too_long("note", 1024));
    }
    let ty = s(v, "/type");
    if ty != "Normal" && ty != "Warning" {
        c.push(Cause::not_supported("type", &json!(ty), &[json!("Normal"), json!("Warning")]));
    }
    let rns = s(v, "/regarding/namespace");
    if !rns.is_empty() && rns != namespace {
        // Stricter than a real server, which only checks the empty case.
        c.push(Cause::invalid("regarding.namespace", &json!(rns), "does not match event.namespace"));
    }
    if rns.is_empty() && namespace != "default" && namespace != "kube-system" {
        // An event about a cluster-scoped object lives in default or
        // kube-system (the real server names the internal field).
        c.push(Cause::invalid("involvedObject.namespace", &json!(rns), "does not match event.namespace"));
    }
    if old.is_none() {
        // ValidateEventCreate: the deprecated core/v1 fields must be unset
        // (the real server names them by their internal names).
        let set = |f: &str| v.get(f).is_some_and(|x| !x.is_null());
        for (f, internal) in
            [("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp")]
        {
            if set(f) {
                c.push(Cause::invalid(internal, &json!(""), "needs to be unset"));
            }
        }
        if v.get("deprecatedCount").and_then(Value::as_i64).unwrap_or(0) != 0 {
            c.push(Cause::invalid("count", &json!(""), "needs to be unset"));
        }
        if !s(v, "/deprecatedSource/component").is_empty() || !s(v, "/deprecatedSource/host").is_empty() {
            c.push(Cause::invalid("source", &json!(""), "needs to be unset"));
        }
    }
    if let Some(old) = old {
        for f in [
            "reason",
            "action",
            "regarding",
            "related",
            "reportingController",
            "reportingInstance",
            "type",
            "eventTime",
            "note",
        ] {
            if old.get(f) != v.get(f) {
                c.push(Cause::invalid(f, v.get(f).unwrap_or(&Value::Null), "field is immutable"));
            }
        }
    }
}
