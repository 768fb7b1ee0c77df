//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Ownership is tracked per (manager, operation, subresource) as sets of
//! field paths. Lists are atomic unless the schema says
//! `x-kubernetes-list-type: set|map`; `metadata.finalizers` is a set and
//! `metadata.ownerReferences` a map keyed by uid, as in Kubernetes.

use kube_notify::admission::Schema;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathElem {
    Field(String),
    Key(String),
    Value(String),
}

pub(crate) type FieldPath = Vec<PathElem>;

#[derive(Debug, Clone)]
pub(crate) struct ManagerEntry {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<FieldPath>,
}

#[derive(Clone, Copy)]
enum ListKind<'a> {
    Atomic,
    Set,
    Map(&'a [String]),
}

static OWNER_REF_KEYS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| vec!["uid".to_string()]);

/// Where we are in the object, to decide how lists merge.
#[derive(Clone, Copy)]
enum Cursor<'a> {
    None,
    Schema(&'a Schema),
    Metadata,
}

impl<'a> Cursor<'a> {
    fn child(self, key: &str) -> Cursor<'a> {
        match self {
            Cursor::Schema(s) => s.property(key).map(Cursor::Schema).unwrap_or(Cursor::None),
            _ => Cursor::None,
        }
    }
    fn items(self) -> Cursor<'a> {
        match self {
            Cursor::Schema(s) => s.items().map(Cursor::Schema).unwrap_or(Cursor::None),
            _ => Cursor::None,
        }
    }
    fn list_kind(self, key: &str) -> ListKind<'a> {
        match self {
            Cursor::Metadata => match key {
                "finalizers" => ListKind::Set,
                "ownerReferences" => ListKind::Map(&OWNER_REF_KEYS),
                _ => ListKind::Atomic,
            },
            Cursor::Schema(s) => match s.property(key) {
                Some(c) => match c.list_type() {
                    Some("set") => ListKind::Set,
                    Some("map") => ListKind::Map(c.list_map_keys()),
                    _ => ListKind::Atomic,
                },
                None => ListKind::Atomic,
            },
            Cursor::None => ListKind::Atomic,
        }
    }
    fn atomic_map(self) -> bool {
        matches!(self, Cursor::Schema(s) if s.map_type() == Some("atomic"))
    }
}

fn canon(v: &Value) -> String {
    v.to_string()
}

fn key_of(item: &Value, keys: &[String]) -> String {
    let mut o = Map::new();
    for k in keys {
        o.insert(k.clone(), item.get(k).cloned().unwrap_or(Value::Null));
    }
    canon(&Value::Object(o))
}

fn collect(v: &Value, cur: Cursor, lk: ListKind, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(map) if !map.is_empty() && !cur.atomic_map() => {
            for (k, c) in map {
                if c.is_null() {
                    continue;
                }
                path.push(PathElem::Field(k.clone()));
                collect(c, cur.child(k), cur.list_kind(k), path, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match lk {
            ListKind::Atomic => {
                out.insert(path.clone());
            }
            ListKind::Set => {
                for it in items {
                    path.push(PathElem::Value(canon(it)));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListKind::Map(keys) => {
                let ic = cur.items();
                for it in items {
                    path.push(PathElem::Key(key_of(it, keys)));
                    match it.as_object() {
                        Some(o) if !o.is_empty() => {
                            for (k, c) in o {
                                path.push(PathElem::Field(k.clone()));
                                collect(c, ic.child(k), ic.list_kind(k), path, out);
                                path.pop();
                            }
                        }
                        _ => {
                            out.insert(path.clone());
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The field paths of an object that a manager can own. `status_only`
/// restricts to `.status`; `skip_status` leaves it out.
pub(crate) fn owned_fields(
    obj: &Value,
    schema: Option<&Schema>,
    status_only: bool,
    skip_status: bool,
) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    let root = schema.map(Cursor::Schema).unwrap_or(Cursor::None);
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" || v.is_null() {
            continue;
        }
        if status_only != (k == "status") {
            continue;
        }
        if skip_status && k == "status" {
            continue;
        }
        let mut path = vec![PathElem::Field(k.clone())];
        if k == "metadata" {
            if let Some(m) = v.as_object() {
                for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(mv) = m.get(mk).filter(|x| !x.is_null()) {
                        path.push(PathElem::Field(mk.to_string()));
                        collect(mv, Cursor::None, Cursor::Metadata.list_kind(mk), &mut path, &mut out);
                        path.pop();
                    }
                }
            }
            continue;
        }
        collect(v, root.child(k), root.list_kind(k), &mut path, &mut out);
    }
    out
}

/// The value at a field path, if present.
pub(crate) fn get_at<'a>(v: &'a Value, path: &[PathElem]) -> Option<&'a Value> {
    let mut cur = v;
    for e in path {
        cur = match e {
            PathElem::Field(f) => cur.get(f)?,
            PathElem::Key(k) => {
                let want: Value = serde_json::from_str(k).ok()?;
                let keys: Vec<String> = want.as_object()?.keys().cloned().collect();
                cur.as_array()?
                    .iter()
                    .find(|it| keys.iter().all(|kk| it.get(kk).unwrap_or(&Value::Null) == &want[kk]))?
            }
            PathElem::Value(x) => {
                let want: Value = serde_json::from_str(x).ok()?;
                cur.as_array()?.iter().find(|it| **it == want)?
            }
        };
    }
    Some(cur)
}

/// Removes the field at a path (a list element for Key/Value paths; the
/// whole element when a key field of a map-list element is removed).
pub(crate) fn remove_at(v: &mut Value, path: &[PathElem]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    // A key field of a map-list element: remove the element itself.
    if let (PathElem::Field(f), Some(PathElem::Key(k))) = (last, parent_path.last())
        && serde_json::from_str::<Value>(k)
            .ok()
            .and_then(|kv| kv.as_object().map(|o| o.contains_key(f)))
            .unwrap_or(false)
    {
        remove_at(v, parent_path);
        return;
    }
    let mut cur = v;
    for e in parent_path {
        let next = match e {
            PathElem::Field(f) => cur.get_mut(f),
            PathElem::Key(k) => {
                let Ok(want) = serde_json::from_str::<Value>(k) else {
                    return;
                };
                let keys: Vec<String> = want.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                cur.as_array_mut().and_then(|a| {
                    a.iter_mut().find(|it| keys.iter().all(|kk| it.get(kk).unwrap_or(&Value::Null) == &want[kk]))
                })
            }
            PathElem::Value(x) => {
                let Ok(want) = serde_json::from_str::<Value>(x) else {
                    return;
                };
                cur.as_array_mut().and_then(|a| a.iter_mut().find(|it| **it == want))
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        PathElem::Field(f) => {
            if let Some(o) = cur.as_object_mut() {
                o.remove(f);
            }
        }
        PathElem::Key(k) => {
            if let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(k), cur.as_array_mut()) {
                let keys: Vec<String> = want.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                a.retain(|it| !keys.iter().all(|kk| it.get(kk).unwrap_or(&Value::Null) == &want[kk]));
            }
        }
        PathElem::Value(x) => {
            if let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(x), cur.as_array_mut()) {
                a.retain(|it| *it != want);
            }
        }
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(_, x)| !x.is_null()).map(|(k, x)| (k.clone(), strip_nulls(x))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

fn merge_applied(live: &mut Value, applied: &Value, cur: Cursor, lk: ListKind) {
    match (live.is_object(), applied) {
        (true, Value::Object(am)) if !cur.atomic_map() => {
            let lm = live.as_object_mut().expect("object");
            for (k, av) in am {
                if av.is_null() {
                    continue;
                }
                let child = cur.child(k);
                let clk = cur.list_kind(k);
                match lm.get_mut(k) {
                    Some(lv) => merge_applied(lv, av, child, clk),
                    None => {
                        lm.insert(k.clone(), strip_nulls(av));
                    }
                }
            }
            return;
        }
        _ => {}
    }
    match (live.as_array_mut(), applied, lk) {
        (Some(la), Value::Array(aa), ListKind::Set) => {
            for a in aa {
                if !la.contains(a) {
                    la.push(a.clone());
                }
            }
        }
        (Some(la), Value::Array(aa), ListKind::Map(keys)) => {
            let ic = cur.items();
            for a in aa {
                let k = key_of(a, keys);
                match la.iter_mut().find(|x| key_of(x, keys) == k) {
                    Some(x) => merge_applied(x, a, ic, ListKind::Atomic),
                    None => la.push(strip_nulls(a)),
                }
            }
        }
        _ => *live = strip_nulls(applied),
    }
}

/// Merges an applied configuration into the live object. Metadata lists
/// (finalizers, ownerReferences) merge as sets/maps.
pub(crate) fn merge_apply(live: &mut Value, applied: &Value, schema: Option<&Schema>) {
    let Some(am) = applied.as_object() else {
        return;
    };
    let root = schema.map(Cursor::Schema).unwrap_or(Cursor::None);
    let lm = match live.as_object_mut() {
        Some(m) => m,
        None => return,
    };
    for (k, av) in am {
        if av.is_null() || k == "apiVersion" || k == "kind" {
            continue;
        }
        let (child, clk) =
            if k == "metadata" { (Cursor::Metadata, ListKind::Atomic) } else { (root.child(k), root.list_kind(k)) };
        match lm.get_mut(k) {
            Some(lv) if k == "metadata" => {
                if let (Some(lvm), Some(avm)) = (lv.as_object_mut(), av.as_object()) {
                    for (mk, mv) in avm {
                        if mv.is_null()
                            || !["labels", "annotations", "finalizers", "ownerReferences"].contains(&mk.as_str())
                        {
                            continue;
                        }
                        match lvm.get_mut(mk) {
                            Some(x) => merge_applied(x, mv, Cursor::None, Cursor::Metadata.list_kind(mk)),
                            None => {
                                lvm.insert(mk.clone(), strip_nulls(mv));
                            }
                        }
                    }
                }
            }
            Some(lv) => merge_applied(lv, av, child, clk),
            None => {
                lm.insert(k.clone(), strip_nulls(av));
            }
        }
    }
}

pub(crate) fn path_string(p: &FieldPath) -> String {
    let mut s = String::new();
    for e in p {
        match e {
            PathElem::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathElem::Key(k) => s.push_str(&format!("[{k}]")),
            PathElem::Value(x) => s.push_str(&format!("[={x}]")),
        }
    }
    s
}

/// `metadata.managedFields` as the server renders them.
pub(crate) fn render(entries: &[ManagerEntry]) -> Value {
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut fields = Value::Object(Map::new());
            for p in &e.fields {
                let mut cur = &mut fields;
                for el in p {
                    let key = match el {
                        PathElem::Field(f) => format!("f:{f}"),
                        PathElem::Key(k) => format!("k:{k}"),
                        PathElem::Value(x) => format!("v:{x}"),
                    };
                    cur = cur.as_object_mut().expect("object").entry(key).or_insert_with(|| Value::Object(Map::new()));
                }
            }
            let mut o = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            });
            if !e.subresource.is_empty() {
                o["subresource"] = json!(e.subresource);
            }
            o
        })
        .collect();
    Value::Array(list)
}

/// Records an Update-style write by `manager`: it owns the fields it
/// changed; other managers lose them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_update(
    entries: &mut Vec<ManagerEntry>,
    old: Option<&Value>,
    new: &Value,
    schema: Option<&Schema>,
    manager: &str,
    subresource: &str,
    api_version: &str,
    status_split: bool,
    now: &str,
) {
    let status_only = subresource == "status";
    let skip_status = status_split && !status_only;
    let new_f = owned_fields(new, schema, status_only, skip_status);
    let old_f = old.map(|o| owned_fields(o, schema, status_only, skip_status)).unwrap_or_default();
    let mut changed: BTreeSet<FieldPath> =
        new_f.iter().filter(|p| old.and_then(|o| get_at(o, p)) != get_at(new, p)).cloned().collect();
    changed.extend(old_f.difference(&new_f).cloned());
    if changed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        if !(e.manager == manager && e.operation == "Update" && e.subresource == subresource) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    let gained: BTreeSet<FieldPath> = changed.intersection(&new_f).cloned().collect();
    match entries.iter_mut().find(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource) {
        Some(e) => {
            e.fields.retain(|p| new_f.contains(p));
            e.fields.extend(gained);
            e.time = now.to_string();
        }
        None if !gained.is_empty() => entries.push(ManagerEntry {
            manager: manager.to_string(),
            operation: "Update".into(),
            subresource: subresource.to_string(),
            api_version: api_version.to_string(),
            time: now.to_string(),
            fields: gained,
        }),
        None => {}
    }
    entries.retain(|e| !e.fields.is_empty());
}

pub(crate) struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
}

/// Server-side apply. Returns the merged object and the new entries, or
/// the conflicts (when not forced).
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply(
    live: &Value,
    entries: &[ManagerEntry],
    applied: &Value,
    schema: Option<&Schema>,
    manager: &str,
    subresource: &str,
    api_version: &str,
    status_split: bool,
    force: bool,
    now: &str,
) -> Result<(Value, Vec<ManagerEntry>), Vec<Conflict>> {
    let status_only = subresource == "status";
    let skip_status = status_split && !status_only;
    let new_owned = owned_fields(applied, schema, status_only, skip_status);
    let is_me = |e: &ManagerEntry| e.manager == manager && e.operation == "Apply" && e.subresource == subresource;
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !is_me(e)) {
        for p in &new_owned {
            if e.fields.contains(p) && get_at(live, p) != get_at(applied, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: path_string(p),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut merged = live.clone();
    // Scope the applied config to what this endpoint may change.
    let mut scoped = applied.clone();
    if let Some(m) = scoped.as_object_mut() {
        if status_only {
            m.retain(|k, _| k == "status");
        } else if skip_status {
            m.remove("status");
        }
    }
    merge_apply(&mut merged, &scoped, schema);
    let previously: BTreeSet<FieldPath> =
        entries.iter().find(|e| is_me(e)).map(|e| e.fields.clone()).unwrap_or_default();
    for p in previously.difference(&new_owned) {
        let owned_by_other = entries.iter().any(|e| !is_me(e) && e.fields.contains(p));
        if !owned_by_other {
            remove_at(&mut merged, p);
        }
    }
    let mut out: Vec<ManagerEntry> = entries.to_vec();
    if force {
        for e in out.iter_mut().filter(|e| !is_me(e)) {
            e.fields.retain(|p| !(new_owned.contains(p) && get_at(live, p) != get_at(applied, p)));
        }
    }
    match out.iter_mut().find(|e| is_me(e)) {
        Some(e) => {
            if e.fields != new_owned {
                e.time = now.to_string();
            }
            e.fields = new_owned;
        }
        None => out.push(ManagerEntry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            subresource: subresource.to_string(),
            api_version: api_version.to_string(),
            time: now.to_string(),
            fields: new_owned,
        }),
    }
    out.retain(|e| !e.fields.is_empty());
    Ok((merged, out))
}
