//! get / list / create / update / patch / delete with the real server's
//! admission pipeline: decoding (pruning, defaulting), the status
//! subresource strategy, generation, validation, preconditions and no-op
//! detection.

use super::builtin::{self, core_to_events, events_to_core};
use super::crd;
use super::errors::{ApiError, ApiResult, Cause};
use super::meta::{self, new_uid, normalize_object_meta, now_rfc3339, random_suffix};
use super::selectors::{FieldSelector, LabelSelector};
use super::ssa::{self, ManagerEntry};
use super::store::{Behavior, ObjKey, ResourceType, Store, set_rv};
use base64::Engine;
use kube_notify::admission;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

pub(crate) struct WriteCtx {
    pub rt: Arc<ResourceType>,
    pub ns: String,
    pub manager: String,
    pub dry_run: bool,
    pub validation: FieldValidation,
}

pub(crate) struct Written {
    pub obj: Value,
    pub code: u16,
    pub warnings: Vec<String>,
    /// Whether anything was stored (false for no-ops and dry runs).
    pub committed: bool,
    /// Resource types to (re)register / unregister (CRD writes).
    pub crd_change: Option<CrdChange>,
}

pub(crate) enum CrdChange {
    Register(String, Vec<Arc<ResourceType>>),
    Unregister(String),
}

pub(crate) fn obj_key(rt: &ResourceType, ns: &str, name: &str) -> ObjKey {
    (rt.storage_key.clone(), if rt.namespaced { ns.to_string() } else { String::new() }, name.to_string())
}

fn sv<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// The stored object as served by `rt` (apiVersion/kind of the requested
/// version, event conversion, schema defaults and pruning on read).
pub(crate) fn present(rt: &ResourceType, stored: &Value) -> Value {
    let mut v = if rt.behavior == Behavior::EventsV1 { core_to_events(stored) } else { stored.clone() };
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), json!(rt.api_version()));
        o.insert("kind".into(), json!(rt.kind));
    }
    if let Some(schema) = &rt.schema {
        schema.prune(&mut v);
        schema.apply_defaults(&mut v);
    }
    v
}

fn to_storage(rt: &ResourceType, v: Value) -> Value {
    if rt.behavior == Behavior::EventsV1 { events_to_core(&v) } else { v }
}

fn check_type_meta(rt: &ResourceType, body: &mut Value) -> ApiResult<()> {
    let want_av = rt.api_version();
    let raw = body.to_string();
    let o = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"))?;
    match o.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            if rt.is_custom() {
                return Err(ApiError::bad_request(format!("Object 'apiVersion' is missing in '{raw}'")));
            }
            o.insert("apiVersion".into(), json!(want_av));
        }
        Some(av) if av != want_av => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
        _ => {}
    }
    match o.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            if rt.is_custom() {
                return Err(ApiError::bad_request(format!("Object 'Kind' is missing in '{raw}'")));
            }
            o.insert("kind".into(), json!(rt.kind));
        }
        Some(k) if k != rt.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        _ => {}
    }
    match o.get("metadata") {
        None | Some(Value::Null) => {
            o.insert("metadata".into(), json!({}));
        }
        Some(Value::Object(_)) => {}
        Some(_) => {
            return Err(ApiError::bad_request("error decoding request body: metadata must be an object"));
        }
    }
    Ok(())
}

fn set_meta(v: &mut Value, key: &str, val: Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if val.is_null() {
            m.remove(key);
        } else {
            m.insert(key.to_string(), val);
        }
    }
}

fn meta_of(v: &Value, key: &str) -> Value {
    v.pointer(&format!("/metadata/{key}")).cloned().unwrap_or(Value::Null)
}

/// Decoding: typed decode for built-ins; for custom resources metadata
/// decode, pruning of unknown fields (per fieldValidation) and defaults.
fn decode(w: &WriteCtx, v: Value, warnings: &mut Vec<String>) -> ApiResult<Value> {
    let mut v = if w.rt.is_custom() { v } else { builtin::typed_normalize(w.rt.behavior, &v)? };
    let m = normalize_object_meta(&v["metadata"])
        .map_err(|e| ApiError::bad_request(format!("error decoding metadata: {e}")))?;
    v["metadata"] = m;
    if let Some(schema) = &w.rt.schema {
        let dropped = schema.prune(&mut v);
        if !dropped.is_empty() {
            match w.validation {
                FieldValidation::Strict => {
                    let list: Vec<String> = dropped.iter().map(|d| format!("unknown field \"{d}\"")).collect();
                    return Err(ApiError::bad_request(format!("strict decoding error: {}", list.join(", "))));
                }
                FieldValidation::Warn => {
                    warnings.extend(dropped.iter().map(|d| format!("unknown field \"{d}\"")));
                }
                FieldValidation::Ignore => {}
            }
        }
        schema.apply_defaults(&mut v);
    }
    Ok(v)
}

/// etcd's default `--max-request-bytes` (1.5 MiB): a larger object cannot
/// be stored and the real server answers 500 "etcdserver: request is too
/// large" (not 4xx; see kubernetes/kubernetes#112152).
pub(crate) const MAX_STORED_OBJECT_BYTES: usize = 1536 * 1024;

fn check_storable(v: &Value) -> ApiResult<()> {
    if serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0) > MAX_STORED_OBJECT_BYTES {
        return Err(ApiError::internal("etcdserver: request is too large"));
    }
    Ok(())
}

fn strip_for_compare(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    c
}

fn without(v: &Value, keys: &[&str]) -> Value {
    let mut c = v.clone();
    if let Some(o) = c.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
    c
}

/// Strategy + validation for a write. `old` is the current object (API
/// shape) on update.
fn admit(w: &WriteCtx, old: Option<&Value>, mut new: Value, sub: &str) -> ApiResult<(Value, Option<CrdChange>)> {
    let rt = &w.rt;
    let name = sv(&new, "/metadata/name").to_string();
    match old {
        None => {
            if rt.status_subresource
                && let Some(o) = new.as_object_mut()
            {
                o.remove("status");
            }
            builtin::mutate(rt.behavior, &mut new);
            set_meta(&mut new, "uid", json!(new_uid()));
            set_meta(&mut new, "creationTimestamp", json!(now_rfc3339()));
            set_meta(&mut new, "deletionTimestamp", Value::Null);
            set_meta(&mut new, "deletionGracePeriodSeconds", Value::Null);
            set_meta(&mut new, "resourceVersion", Value::Null);
            set_meta(&mut new, "selfLink", Value::Null);
            set_meta(&mut new, "generation", if rt.has_generation() { json!(1) } else { Value::Null });
            if rt.behavior == Behavior::Namespace {
                let mut labels = meta_of(&new, "labels");
                if !labels.is_object() {
                    labels = json!({});
                }
                labels["kubernetes.io/metadata.name"] = json!(name);
                set_meta(&mut new, "labels", labels);
            }
        }
        Some(old) => {
            if rt.behavior == Behavior::Secret {
                builtin::mutate(rt.behavior, &mut new);
            }
            if sub == "status" {
                // Only status may change: everything else comes from old.
                let status = new.get("status").cloned();
                let mut merged = old.clone();
                match status {
                    Some(s) if !s.is_null() => merged["status"] = s,
                    _ => {
                        if let Some(o) = merged.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                new = merged;
            } else {
                if rt.status_subresource {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(o) = new.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                }
                for k in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "selfLink",
                ] {
                    set_meta(&mut new, k, meta_of(old, k));
                }
                if rt.behavior == Behavior::Namespace {
                    let mut labels = meta_of(&new, "labels");
                    if !labels.is_object() {
                        labels = json!({});
                    }
                    labels["kubernetes.io/metadata.name"] = json!(name);
                    set_meta(&mut new, "labels", labels);
                }
            }
            if rt.has_generation() {
                let skip: &[&str] = if rt.status_subresource { &["metadata", "status"] } else { &["metadata"] };
                let mut generation_no = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                if without(old, skip) != without(&new, skip) {
                    generation_no += 1;
                }
                set_meta(&mut new, "generation", json!(generation_no));
            }
        }
    }

    // Validation.
    let mut causes =
        meta::validate_object_meta(new.get("metadata").unwrap_or(&Value::Null), rt.behavior == Behavior::Namespace);
    if let Some(old) = old
        && !sv(old, "/metadata/deletionTimestamp").is_empty()
    {
        let old_f: Vec<Value> = meta_of(old, "finalizers").as_array().cloned().unwrap_or_default();
        let new_f: Vec<Value> = meta_of(&new, "finalizers").as_array().cloned().unwrap_or_default();
        if new_f.iter().any(|f| !old_f.contains(f)) {
            causes.push(Cause::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if let Some(schema) = &rt.schema {
        causes.extend(admission::validate(schema, &new, old));
    }
    causes.extend(builtin::validate(rt.behavior, &new, old, &w.ns));
    let mut crd_change = None;
    if rt.behavior == Behavior::Crd && causes.is_empty() {
        match crd::parse_crd(&new) {
            Ok(types) => {
                let mut accepted = new.pointer("/spec/names").cloned().unwrap_or(json!({}));
                if accepted.get("singular").is_none() {
                    accepted["singular"] = json!(types.first().map(|t| t.singular.clone()).unwrap_or_default());
                }
                if accepted.get("listKind").is_none() {
                    accepted["listKind"] = json!(types.first().map(|t| t.list_kind.clone()).unwrap_or_default());
                }
                let storage: Vec<Value> = new
                    .pointer("/spec/versions")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                            .filter_map(|v| v.get("name").cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                let now = now_rfc3339();
                new["status"] = json!({
                    "acceptedNames": accepted,
                    "storedVersions": storage,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
                    ],
                });
                crd_change = Some(CrdChange::Register(name.clone(), types));
            }
            Err(e) => causes.push(Cause::new("", "FieldValueInvalid", e)),
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(&rt.kind, &rt.group, &name, &causes));
    }
    Ok((new, crd_change))
}

fn status_split(rt: &ResourceType) -> bool {
    rt.status_subresource
}

/// POST.
pub(crate) fn create(
    store: &mut Store,
    w: &WriteCtx,
    mut body: Value,
    apply_managers: Option<Vec<ManagerEntry>>,
) -> ApiResult<Written> {
    check_type_meta(&w.rt, &mut body)?;
    let rt = w.rt.clone();
    let mut warnings = Vec::new();
    let ns_in_body = sv(&body, "/metadata/namespace").to_string();
    if rt.namespaced {
        if ns_in_body.is_empty() {
            set_meta(&mut body, "namespace", json!(w.ns));
        } else if ns_in_body != w.ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    } else {
        set_meta(&mut body, "namespace", Value::Null);
    }
    if !sv(&body, "/metadata/resourceVersion").is_empty() {
        return Err(ApiError::internal("resourceVersion should not be set on objects to be created"));
    }
    let mut name = sv(&body, "/metadata/name").to_string();
    if name.is_empty() {
        let gen_name = sv(&body, "/metadata/generateName").to_string();
        if gen_name.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                "",
                &[Cause::required("metadata.name", "name or generateName is required")],
            ));
        }
        let base: String = gen_name.chars().take(58).collect();
        for _ in 0..16 {
            name = format!("{base}{}", random_suffix());
            if !store.objects.contains_key(&obj_key(&rt, &w.ns, &name)) {
                break;
            }
        }
        set_meta(&mut body, "name", json!(name));
    }
    let body = decode(w, body, &mut warnings)?;
    let (mut new, crd_change) = admit(w, None, body, "")?;
    let key = obj_key(&rt, &w.ns, &name);
    if store.objects.contains_key(&key) {
        return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
    }
    if let Some(CrdChange::Register(_, types)) = &crd_change {
        check_crd_names(store, &name, types)?;
    }
    let now = now_rfc3339();
    let managers = match apply_managers {
        Some(m) => m,
        None => {
            let mut e = Vec::new();
            ssa::record_update(
                &mut e,
                None,
                &new,
                rt.schema.as_deref(),
                &w.manager,
                "",
                &rt.api_version(),
                status_split(&rt),
                &now,
            );
            e
        }
    };
    set_meta(&mut new, "managedFields", ssa::render(&managers));
    if w.dry_run {
        return Ok(Written { obj: new, code: 201, warnings, committed: false, crd_change: None });
    }
    check_storable(&new)?;
    let rv = store.commit(key, Some((to_storage(&rt, new.clone()), managers)));
    set_rv(&mut new, rv);
    Ok(Written { obj: new, code: 201, warnings, committed: true, crd_change })
}

fn check_crd_names(store: &Store, crd_name: &str, types: &[Arc<ResourceType>]) -> ApiResult<()> {
    for t in types {
        if store
            .resources
            .iter()
            .any(|r| r.group == t.group && r.plural == t.plural && r.crd_name.as_deref() != Some(crd_name))
        {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                crd_name,
                &[Cause::new(
                    "spec.names.plural",
                    "FieldValueInvalid",
                    format!("Invalid value: {:?}: is already in use", t.plural),
                )],
            ));
        }
    }
    Ok(())
}

/// PUT (and the update half of every patch).
#[allow(clippy::too_many_arguments)]
pub(crate) fn update(
    store: &mut Store,
    w: &WriteCtx,
    name: &str,
    sub: &str,
    mut body: Value,
    require_rv: bool,
    apply_managers: Option<Vec<ManagerEntry>>,
) -> ApiResult<Written> {
    let rt = w.rt.clone();
    check_type_meta(&rt, &mut body)?;
    let body_name = sv(&body, "/metadata/name").to_string();
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let ns_in_body = sv(&body, "/metadata/namespace").to_string();
    if rt.namespaced {
        if ns_in_body.is_empty() {
            set_meta(&mut body, "namespace", json!(w.ns));
        } else if ns_in_body != w.ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    } else {
        set_meta(&mut body, "namespace", Value::Null);
    }
    let key = obj_key(&rt, &w.ns, name);
    let Some(stored) = store.objects.get(&key).cloned() else {
        return Err(ApiError::not_found(&rt.group, &rt.plural, name));
    };
    let old = present(&rt, &stored.obj);
    let old_rv = sv(&old, "/metadata/resourceVersion").to_string();
    let body_rv = sv(&body, "/metadata/resourceVersion").to_string();
    if body_rv.is_empty() {
        if require_rv {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                name,
                &[Cause::invalid("metadata.resourceVersion", &json!(0), "must be specified for an update")],
            ));
        }
    } else if body_rv != old_rv {
        return Err(ApiError::stale(&rt.group, &rt.plural, name));
    }
    let body_uid = sv(&body, "/metadata/uid").to_string();
    let old_uid = sv(&old, "/metadata/uid").to_string();
    if !body_uid.is_empty() && body_uid != old_uid {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            name,
            &format!("Precondition failed: UID in precondition: {body_uid}, UID in object meta: {old_uid}"),
        ));
    }
    let mut warnings = Vec::new();
    let body = decode(w, body, &mut warnings)?;
    let (mut new, crd_change) = admit(w, Some(&old), body, sub)?;
    set_meta(&mut new, "resourceVersion", json!(old_rv));
    if strip_for_compare(&old) == strip_for_compare(&new) {
        return Ok(Written { obj: old, code: 200, warnings, committed: false, crd_change: None });
    }
    if let Some(CrdChange::Register(_, types)) = &crd_change {
        check_crd_names(store, name, types)?;
    }
    let now = now_rfc3339();
    let managers = match apply_managers {
        Some(m) => m,
        None => {
            let mut e = stored.managers.clone();
            ssa::record_update(
                &mut e,
                Some(&old),
                &new,
                rt.schema.as_deref(),
                &w.manager,
                sub,
                &rt.api_version(),
                status_split(&rt),
                &now,
            );
            e
        }
    };
    set_meta(&mut new, "managedFields", ssa::render(&managers));
    if w.dry_run {
        return Ok(Written { obj: new, code: 200, warnings, committed: false, crd_change: None });
    }
    let finished = !sv(&new, "/metadata/deletionTimestamp").is_empty()
        && meta_of(&new, "finalizers").as_array().is_none_or(|f| f.is_empty());
    if finished {
        let rv = store.commit(key, None);
        let mut last = present(&rt, &stored.obj);
        set_rv(&mut last, rv);
        let change = if rt.behavior == Behavior::Crd { Some(CrdChange::Unregister(name.to_string())) } else { None };
        return Ok(Written { obj: last, code: 200, warnings, committed: true, crd_change: change });
    }
    check_storable(&new)?;
    let rv = store.commit(key, Some((to_storage(&rt, new.clone()), managers)));
    set_rv(&mut new, rv);
    Ok(Written { obj: new, code: 200, warnings, committed: true, crd_change })
}

fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        let t = target.as_object_mut().expect("object");
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

pub(crate) struct PatchArgs<'a> {
    pub content_type: &'a str,
    pub body: &'a [u8],
    pub force: bool,
    pub field_manager: Option<&'a str>,
}

/// PATCH (merge, JSON patch, strategic (built-ins only), apply).
pub(crate) fn patch(store: &mut Store, w: &WriteCtx, name: &str, sub: &str, args: PatchArgs) -> ApiResult<Written> {
    let rt = w.rt.clone();
    let ct = args.content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let key = obj_key(&rt, &w.ns, name);
    let current = store.objects.get(&key).cloned();
    let not_found = || ApiError::not_found(&rt.group, &rt.plural, name);
    let parse_json = |b: &[u8]| -> ApiResult<Value> {
        serde_json::from_slice(b)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: invalid character in patch body: {e}")))
    };
    match ct.as_str() {
        "application/json-patch+json" => {
            let cur = current.ok_or_else(not_found)?;
            let ops: json_patch::Patch = serde_json::from_slice(args.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut doc = present(&rt, &cur.obj);
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
                .with_details(
                    json!({"causes": [{"reason": "FieldValueInvalid", "message": e.to_string(), "field": "patch"}]}),
                )
            })?;
            update(store, w, name, sub, doc, false, None)
        }
        "application/merge-patch+json" => {
            let cur = current.ok_or_else(not_found)?;
            let p = parse_json(args.body)?;
            let mut doc = present(&rt, &cur.obj);
            merge_patch(&mut doc, &p);
            update(store, w, name, sub, doc, false, None)
        }
        "application/strategic-merge-patch+json" => {
            if rt.is_custom() {
                return Err(ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for custom resources: {})",
                    rt.kind
                )));
            }
            let cur = current.ok_or_else(not_found)?;
            let p = parse_json(args.body)?;
            let mut doc = present(&rt, &cur.obj);
            merge_patch(&mut doc, &p);
            update(store, w, name, sub, doc, false, None)
        }
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            apply_patch(store, w, name, sub, args, current.map(|c| (c.obj, c.managers)))
        }
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{} (got {other:?})",
            if rt.is_custom() { "" } else { ", application/strategic-merge-patch+json" }
        ))),
    }
}

fn apply_patch(
    store: &mut Store,
    w: &WriteCtx,
    name: &str,
    sub: &str,
    args: PatchArgs,
    current: Option<(Value, Vec<ManagerEntry>)>,
) -> ApiResult<Written> {
    let rt = w.rt.clone();
    let Some(manager) = args.field_manager.filter(|m| !m.is_empty()) else {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            &[Cause::required("fieldManager", "is required for apply patch")],
        ));
    };
    let text =
        std::str::from_utf8(args.body).map_err(|_| ApiError::bad_request("error decoding YAML: invalid utf-8"))?;
    let mut applied: Value =
        serde_yaml::from_str(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !applied.is_object() {
        return Err(ApiError::bad_request("error decoding YAML: the apply configuration must be an object"));
    }
    let av = sv(&applied, "/apiVersion").to_string();
    let kind = sv(&applied, "/kind").to_string();
    if av.is_empty() {
        return Err(ApiError::bad_request("apiVersion must be set in the apply configuration"));
    }
    if kind.is_empty() {
        return Err(ApiError::bad_request("kind must be set in the apply configuration"));
    }
    check_type_meta(&rt, &mut applied)?;
    if applied.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let body_name = sv(&applied, "/metadata/name").to_string();
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let ns_in_body = sv(&applied, "/metadata/namespace").to_string();
    if rt.namespaced && !ns_in_body.is_empty() && ns_in_body != w.ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    // Decode the applied configuration like any request body.
    let mut warnings = Vec::new();
    if rt.is_custom() {
        if let Some(schema) = &rt.schema {
            let dropped = schema.prune(&mut applied);
            if !dropped.is_empty() {
                match w.validation {
                    FieldValidation::Strict => {
                        return Err(ApiError::bad_request(format!(
                            "strict decoding error: {}",
                            dropped.iter().map(|d| format!("unknown field \"{d}\"")).collect::<Vec<_>>().join(", ")
                        )));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(dropped.iter().map(|d| format!("unknown field \"{d}\"")));
                    }
                    FieldValidation::Ignore => {}
                }
            }
        }
    } else {
        builtin::typed_normalize(rt.behavior, &applied)?;
    }
    let precondition_rv = sv(&applied, "/metadata/resourceVersion").to_string();
    let now = now_rfc3339();
    let live = match &current {
        Some((obj, _)) => present(&rt, obj),
        None => {
            if sub == "status" {
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            }
            let mut m = json!({"name": name});
            if rt.namespaced {
                m["namespace"] = json!(w.ns);
            }
            json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": m})
        }
    };
    if !precondition_rv.is_empty() && precondition_rv != sv(&live, "/metadata/resourceVersion") {
        if current.is_none() {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        }
        return Err(ApiError::stale(&rt.group, &rt.plural, name));
    }
    let entries = current.as_ref().map(|c| c.1.clone()).unwrap_or_default();
    let (mut merged, new_entries) = ssa::apply(
        &live,
        &entries,
        &applied,
        rt.schema.as_deref(),
        manager,
        sub,
        &rt.api_version(),
        status_split(&rt),
        args.force,
        &now,
    )
    .map_err(|conflicts| {
        let n = conflicts.len();
        let lines: Vec<String> = conflicts
            .iter()
            .map(|c| format!("conflict with {:?} using {}: {}", c.manager, c.api_version, c.path))
            .collect();
        let msg = if n == 1 {
            format!("Apply failed with 1 conflict: {}", lines[0])
        } else {
            format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
        };
        ApiError::new(409, "Conflict", msg).with_details(json!({
            "causes": conflicts.iter().map(|c| json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {:?} using {}", c.manager, c.api_version),
                "field": c.path,
            })).collect::<Vec<_>>()
        }))
    })?;
    match current {
        None => {
            if let Some(m) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            let mut out = create(store, w, merged, Some(new_entries))?;
            out.warnings.extend(warnings);
            Ok(out)
        }
        Some(_) => {
            set_meta(&mut merged, "resourceVersion", meta_of(&live, "resourceVersion"));
            let mut out = update(store, w, name, sub, merged, false, Some(new_entries))?;
            out.warnings.extend(warnings);
            Ok(out)
        }
    }
}

/// DELETE of one object.
pub(crate) fn delete(store: &mut Store, w: &WriteCtx, name: &str, opts: &Value) -> ApiResult<Written> {
    let rt = w.rt.clone();
    let key = obj_key(&rt, &w.ns, name);
    let Some(stored) = store.objects.get(&key).cloned() else {
        return Err(ApiError::not_found(&rt.group, &rt.plural, name));
    };
    let obj = present(&rt, &stored.obj);
    if let Some(pre) = opts.get("preconditions").filter(|p| !p.is_null()) {
        if let Some(uid) = pre.get("uid").and_then(Value::as_str)
            && uid != sv(&obj, "/metadata/uid")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    sv(&obj, "/metadata/uid")
                ),
            ));
        }
        if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str)
            && rv != sv(&obj, "/metadata/resourceVersion")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    sv(&obj, "/metadata/resourceVersion")
                ),
            ));
        }
    }
    let policy = match opts.get("propagationPolicy").and_then(Value::as_str) {
        Some(p) => p.to_string(),
        None => match opts.get("orphanDependents").and_then(Value::as_bool) {
            Some(true) => "Orphan".to_string(),
            _ => "Background".to_string(),
        },
    };
    let add_finalizer = match policy.as_str() {
        "Background" => None,
        "Foreground" => Some("foregroundDeletion"),
        "Orphan" => Some("orphan"),
        other => {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                &[Cause::not_supported(
                    "propagationPolicy",
                    &json!(other),
                    &[json!("Foreground"), json!("Background"), json!("Orphan")],
                )],
            ));
        }
    };
    let mut finalizers: Vec<Value> = meta_of(&obj, "finalizers").as_array().cloned().unwrap_or_default();
    let deleting = !sv(&obj, "/metadata/deletionTimestamp").is_empty();
    if !finalizers.is_empty() || add_finalizer.is_some() {
        let needs_add = add_finalizer.is_some_and(|f| !finalizers.contains(&json!(f)));
        if deleting && !needs_add {
            return Ok(Written { obj, code: 200, warnings: vec![], committed: false, crd_change: None });
        }
        let mut new = obj.clone();
        if !deleting {
            set_meta(&mut new, "deletionTimestamp", json!(now_rfc3339()));
            set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
        }
        if needs_add && let Some(f) = add_finalizer {
            finalizers.push(json!(f));
        }
        set_meta(&mut new, "finalizers", Value::Array(finalizers));
        if w.dry_run {
            return Ok(Written { obj: new, code: 200, warnings: vec![], committed: false, crd_change: None });
        }
        let rv = store.commit(key, Some((to_storage(&rt, new.clone()), stored.managers)));
        set_rv(&mut new, rv);
        return Ok(Written { obj: new, code: 200, warnings: vec![], committed: true, crd_change: None });
    }
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": sv(&obj, "/metadata/uid")},
    });
    if w.dry_run {
        return Ok(Written { obj: status, code: 200, warnings: vec![], committed: false, crd_change: None });
    }
    store.commit(key, None);
    Ok(Written {
        obj: status,
        code: 200,
        warnings: vec![],
        committed: true,
        crd_change: if rt.behavior == Behavior::Crd { Some(CrdChange::Unregister(name.to_string())) } else { None },
    })
}

/// Applies a CRD change to the registry (and drops the objects of an
/// unregistered CRD). Returns whether anything was committed.
pub(crate) fn apply_crd_change(store: &mut Store, change: CrdChange) -> bool {
    match change {
        CrdChange::Register(name, types) => {
            store.resources.retain(|r| r.crd_name.as_deref() != Some(name.as_str()));
            store.resources.extend(types);
            false
        }
        CrdChange::Unregister(name) => {
            let keys: Vec<String> = store
                .resources
                .iter()
                .filter(|r| r.crd_name.as_deref() == Some(name.as_str()))
                .map(|r| r.storage_key.clone())
                .collect();
            store.resources.retain(|r| r.crd_name.as_deref() != Some(name.as_str()));
            let doomed: Vec<ObjKey> = store.objects.keys().filter(|k| keys.contains(&k.0)).cloned().collect();
            let any = !doomed.is_empty();
            for k in doomed {
                store.commit(k, None);
            }
            any
        }
    }
}

/// Query parameters of a list/watch.
pub(crate) struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    pub fn parse(rt: &ResourceType, q: &BTreeMap<String, String>) -> ApiResult<Selection> {
        Ok(Selection {
            labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
            fields: FieldSelector::parse(
                q.get("fieldSelector").map(String::as_str).unwrap_or(""),
                &rt.field_labels,
                rt.is_custom(),
            )?,
        })
    }
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

pub(crate) fn parse_rv(s: &str) -> ApiResult<u64> {
    s.parse::<u64>().map_err(|_| {
        ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[Cause::invalid("resourceVersion", &json!(s), "must be a valid resource version")],
        )
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

/// Renders an object for the response: metadata-only when asked.
pub(crate) fn as_partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// LIST.
pub(crate) fn list(
    store: &Store,
    rt: &ResourceType,
    ns: &str,
    q: &BTreeMap<String, String>,
    meta_only: bool,
) -> ApiResult<Value> {
    let sel = Selection::parse(rt, q)?;
    if q.contains_key("sendInitialEvents") {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[Cause::forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list")],
        ));
    }
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?),
        None => None,
    }
    .filter(|l| *l > 0)
    .map(|l| l as usize);
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let rv_match = q.get("resourceVersionMatch").cloned().unwrap_or_default();
    let cont = q.get("continue").cloned().unwrap_or_default();
    let invalid = |field: &str, v: &str, msg: &str| {
        ApiError::invalid("ListOptions", "meta.k8s.io", "", &[Cause::invalid(field, &json!(v), msg)])
    };
    if !rv_match.is_empty() {
        if rv_param.is_empty() {
            return Err(invalid(
                "resourceVersionMatch",
                &rv_match,
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if !cont.is_empty() {
            return Err(invalid(
                "resourceVersionMatch",
                &rv_match,
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if rv_match != "Exact" && rv_match != "NotOlderThan" {
            return Err(ApiError::invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                &[Cause::not_supported(
                    "resourceVersionMatch",
                    &json!(rv_match),
                    &[json!("Exact"), json!("NotOlderThan")],
                )],
            ));
        }
        if rv_match == "Exact" && rv_param == "0" {
            return Err(invalid(
                "resourceVersionMatch",
                &rv_match,
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    let (snapshot_rv, start_after) = if !cont.is_empty() {
        if !rv_param.is_empty() && rv_param != "0" {
            return Err(invalid(
                "resourceVersion",
                &rv_param,
                "specifying resource version is not allowed when using continue",
            ));
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cont.as_bytes())
            .ok()
            .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
                )
            })?;
        if raw.rv < store.compacted_rv {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            ));
        }
        (raw.rv, Some((raw.ns, raw.name)))
    } else if rv_param.is_empty() || rv_param == "0" {
        (store.rv, None)
    } else {
        let n = parse_rv(&rv_param)?;
        if n > store.rv {
            return Err(ApiError::too_large_rv(n, store.rv));
        }
        let exact = rv_match == "Exact" || (rv_match.is_empty() && limit.is_some());
        if exact {
            if n < store.compacted_rv {
                return Err(ApiError::expired(format!(
                    "The resourceVersion for the provided list is too old. (requested {n}, compacted {})",
                    store.compacted_rv
                )));
            }
            (n, None)
        } else {
            (store.rv, None)
        }
    };
    let snap = store.snapshot(&rt.storage_key, snapshot_rv);
    let mut items = Vec::new();
    let mut next: Option<(String, String)> = None;
    let mut remaining = 0usize;
    for ((ons, oname), obj) in &snap {
        if rt.namespaced && !ns.is_empty() && ons != ns {
            continue;
        }
        if let Some((sns, sname)) = &start_after
            && (ons, oname) <= (sns, sname)
        {
            continue;
        }
        let shown = present(rt, obj);
        if !sel.matches(&shown) {
            continue;
        }
        if let Some(l) = limit
            && items.len() >= l
        {
            remaining += 1;
            continue;
        }
        if limit.is_some_and(|l| items.len() + 1 == l) {
            next = Some((ons.clone(), oname.clone()));
        }
        items.push(shown);
    }
    let mut list_meta = json!({"resourceVersion": snapshot_rv.to_string()});
    if remaining > 0
        && let Some((ns_last, name_last)) = next
    {
        let token = ContinueToken { rv: snapshot_rv, ns: ns_last, name: name_last };
        list_meta["continue"] =
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("token")));
        if sel.labels.is_empty() && sel.fields.is_empty() {
            list_meta["remainingItemCount"] = json!(remaining);
        }
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut o| {
            if meta_only {
                as_partial(&o)
            } else {
                if !rt.is_custom()
                    && let Some(m) = o.as_object_mut()
                {
                    // Typed lists of built-ins carry no per-item TypeMeta.
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            }
        })
        .collect();
    Ok(if meta_only {
        json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "items": items})
    } else {
        json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": list_meta, "items": items})
    })
}

/// GET of one object.
pub(crate) fn get(
    store: &Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    q: &BTreeMap<String, String>,
) -> ApiResult<Value> {
    if let Some(rv) = q.get("resourceVersion").filter(|r| !r.is_empty() && *r != "0") {
        let n = parse_rv(rv)?;
        if n > store.rv {
            return Err(ApiError::too_large_rv(n, store.rv));
        }
    }
    store
        .objects
        .get(&obj_key(rt, ns, name))
        .map(|s| present(rt, &s.obj))
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
}

/// Makes sure a namespace object exists (every namespace name is accepted).
pub(crate) fn ensure_namespace(store: &mut Store, ns: &str) -> bool {
    if ns.is_empty() || !meta::is_dns_label(ns) {
        return false;
    }
    let key = ("core/namespaces".to_string(), String::new(), ns.to_string());
    if store.objects.contains_key(&key) {
        return false;
    }
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": ns,
            "uid": new_uid(),
            "creationTimestamp": now_rfc3339(),
            "labels": {"kubernetes.io/metadata.name": ns},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    });
    store.commit(key, Some((obj, Vec::new())));
    true
}
