//! The garbage collector (a separate controller in Kubernetes, so it runs
//! asynchronously here too): deletes dependants whose owners are all gone,
//! drops dangling ownerReferences, and drives the `orphan` and
//! `foregroundDeletion` finalizers.

use super::Shared;
use super::ops::{self, FieldValidation, WriteCtx};
use super::store::{ObjKey, Store};
use serde_json::{Value, json};
use std::sync::Arc;

enum Action {
    Delete(ObjKey),
    StripOwnerRefs(ObjKey, Vec<String>),
    RemoveFinalizer(ObjKey, &'static str),
}

#[derive(PartialEq)]
enum Owner {
    Present,
    Absent,
    Unknown,
}

fn uid(v: &Value) -> &str {
    v.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("")
}

fn owner_refs(v: &Value) -> Vec<Value> {
    v.pointer("/metadata/ownerReferences").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn owner_status(store: &Store, dep: &ObjKey, r: &Value) -> Owner {
    let av = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = av.split_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let ruid = r.get("uid").and_then(Value::as_str).unwrap_or("");
    let Some(rt) = store.find_kind(group, kind) else {
        return Owner::Unknown;
    };
    let ns = if rt.namespaced {
        if dep.1.is_empty() {
            return Owner::Absent;
        }
        dep.1.as_str()
    } else {
        ""
    };
    if store.find_by_uid(&rt.storage_key, ns, name, ruid) { Owner::Present } else { Owner::Absent }
}

fn has_finalizer(v: &Value, f: &str) -> bool {
    v.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == f))
}

fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some_and(|x| !x.is_null())
}

fn plan(store: &Store) -> Vec<Action> {
    let mut actions = Vec::new();
    for (k, s) in &store.objects {
        let o = &s.obj;
        if deleting(o) {
            let my_uid = uid(o);
            let dependants: Vec<(&ObjKey, &Value)> = store
                .objects
                .iter()
                .filter(|(_, d)| {
                    owner_refs(&d.obj).iter().any(|r| r.get("uid").and_then(Value::as_str) == Some(my_uid))
                })
                .map(|(dk, d)| (dk, &d.obj))
                .collect();
            if has_finalizer(o, "orphan") {
                if dependants.is_empty() {
                    actions.push(Action::RemoveFinalizer(k.clone(), "orphan"));
                } else {
                    for (dk, _) in &dependants {
                        actions.push(Action::StripOwnerRefs((*dk).clone(), vec![my_uid.to_string()]));
                    }
                }
                return actions;
            }
            if has_finalizer(o, "foregroundDeletion") {
                if dependants.is_empty() {
                    actions.push(Action::RemoveFinalizer(k.clone(), "foregroundDeletion"));
                    return actions;
                }
                let pending: Vec<_> = dependants.iter().filter(|(_, d)| !deleting(d)).collect();
                if !pending.is_empty() {
                    for (dk, _) in pending {
                        actions.push(Action::Delete((*dk).clone()));
                    }
                    return actions;
                }
            }
        }
        let refs = owner_refs(o);
        if refs.is_empty() || deleting(o) {
            continue;
        }
        let states: Vec<Owner> = refs.iter().map(|r| owner_status(store, k, r)).collect();
        if states.iter().all(|s| *s == Owner::Absent) {
            actions.push(Action::Delete(k.clone()));
            return actions;
        }
        let dangling: Vec<String> = refs
            .iter()
            .zip(&states)
            .filter(|(_, s)| **s == Owner::Absent)
            .filter_map(|(r, _)| r.get("uid").and_then(Value::as_str).map(str::to_string))
            .collect();
        if !dangling.is_empty() {
            actions.push(Action::StripOwnerRefs(k.clone(), dangling));
            return actions;
        }
    }
    actions
}

fn rewrite(store: &mut Store, k: &ObjKey, f: impl FnOnce(&mut Value)) {
    let Some(s) = store.objects.get(k).cloned() else {
        return;
    };
    let mut obj = s.obj.clone();
    f(&mut obj);
    let finished =
        deleting(&obj) && obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(|a| a.is_empty());
    if finished {
        store.commit(k.clone(), None);
    } else {
        store.commit(k.clone(), Some((obj, s.managers)));
    }
}

fn execute(store: &mut Store, a: Action) {
    match a {
        Action::Delete(k) => {
            let Some(rt) = store.resources.iter().find(|r| r.storage_key == k.0 && r.storage_version).cloned() else {
                return;
            };
            let w = WriteCtx {
                rt,
                ns: k.1.clone(),
                manager: "generic-garbage-collector".into(),
                dry_run: false,
                validation: FieldValidation::Ignore,
            };
            if let Ok(mut written) = ops::delete(store, &w, &k.2, &json!({"propagationPolicy": "Background"}))
                && let Some(change) = written.crd_change.take()
            {
                ops::apply_crd_change(store, change);
            }
        }
        Action::StripOwnerRefs(k, uids) => rewrite(store, &k, |obj| {
            let refs: Vec<Value> = owner_refs(obj)
                .into_iter()
                .filter(|r| !uids.iter().any(|u| r.get("uid").and_then(Value::as_str) == Some(u)))
                .collect();
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                if refs.is_empty() {
                    m.remove("ownerReferences");
                } else {
                    m.insert("ownerReferences".into(), Value::Array(refs));
                }
            }
        }),
        Action::RemoveFinalizer(k, f) => rewrite(store, &k, |obj| {
            if let Some(a) = obj.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                a.retain(|x| x != f);
            }
        }),
    }
}

/// One GC pass until nothing is left to do. Returns whether it changed anything.
pub(crate) fn sweep(store: &mut Store) -> bool {
    let mut any = false;
    for _ in 0..10_000 {
        let actions = plan(store);
        if actions.is_empty() {
            break;
        }
        for a in actions {
            execute(store, a);
        }
        any = true;
    }
    any
}

/// How long the collector lets changes gather before a sweep. A sweep looks
/// at every object, so one per write would make every write cost the size of
/// the store (a real API server's writes cost nothing of the sort, and its
/// collector works from an informer, with a latency of its own).
const GATHER: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    loop {
        tokio::select! {
            _ = shared.gc.notified() => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        // The collector's own latency; changes meanwhile are swept together.
        tokio::select! {
            _ = tokio::time::sleep(GATHER) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let changed = sweep(&mut shared.store.lock().unwrap());
        if changed {
            shared.committed();
        }
    }
}
