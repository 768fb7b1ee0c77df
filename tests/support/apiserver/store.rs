//! The object store: a global resourceVersion counter, objects, and the
//! change history that watches and consistent (paged / exact) lists read.

use super::ssa::ManagerEntry;
use kube_notify::admission::Schema;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a resource does besides being stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    Custom,
    Secret,
    ConfigMap,
    CoreEvent,
    EventsV1,
    Namespace,
    Pod,
    ServiceAccount,
    Lease,
    TokenReview,
    SubjectAccessReview,
    Crd,
}

#[derive(Debug)]
pub(crate) struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub behavior: Behavior,
    /// Objects of every version of one resource share one storage key.
    pub storage_key: String,
    pub schema: Option<Arc<Schema>>,
    /// Field labels usable in field selectors besides metadata.name/namespace.
    pub field_labels: Vec<String>,
    /// Whether this version is the storage version (for discovery ordering).
    pub storage_version: bool,
    /// Name of the CRD that registered it.
    pub crd_name: Option<String>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
    pub fn is_custom(&self) -> bool {
        self.behavior == Behavior::Custom
    }
    pub fn create_only(&self) -> bool {
        matches!(self.behavior, Behavior::TokenReview | Behavior::SubjectAccessReview)
    }
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.create_only() {
            vec!["create"]
        } else {
            vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        }
    }
    /// Resources whose objects carry `metadata.generation`.
    pub fn has_generation(&self) -> bool {
        matches!(self.behavior, Behavior::Custom | Behavior::Crd)
    }
}

pub(crate) type ObjKey = (String, String, String);

#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub obj: Value,
    pub managers: Vec<ManagerEntry>,
}

#[derive(Debug, Clone)]
pub(crate) struct HistEvent {
    pub rv: u64,
    pub key: ObjKey,
    /// State before the change (None for creations).
    pub prev: Option<Arc<Value>>,
    /// State after the change; for deletions the last state stamped with the
    /// deletion's resourceVersion.
    pub cur: Arc<Value>,
    pub deleted: bool,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub rv: u64,
    pub objects: BTreeMap<ObjKey, Stored>,
    pub history: Vec<HistEvent>,
    /// Watches/lists from a resourceVersion older than this get 410.
    pub compacted_rv: u64,
    /// Bumped by every compaction; open watches notice and end with 410.
    pub epoch: u64,
    pub resources: Vec<Arc<ResourceType>>,
}

pub(crate) fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            rv: 1000,
            objects: BTreeMap::new(),
            history: Vec::new(),
            compacted_rv: 1000,
            epoch: 0,
            resources: Vec::new(),
        }
    }

    pub fn find_resource(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.resources.iter().find(|r| r.group == group && r.version == version && r.plural == plural).cloned()
    }

    pub fn find_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let mut found: Vec<&Arc<ResourceType>> =
            self.resources.iter().filter(|r| r.group == group && r.kind == kind).collect();
        found.sort_by_key(|r| !r.storage_version);
        found.first().map(|r| (*r).clone())
    }

    /// Writes (or with `None` removes) an object, bumping the resourceVersion
    /// and recording the change. Returns the new resourceVersion.
    pub fn commit(&mut self, key: ObjKey, new: Option<(Value, Vec<ManagerEntry>)>) -> u64 {
        self.rv += 1;
        let rv = self.rv;
        let prev = self.objects.get(&key).map(|s| Arc::new(s.obj.clone()));
        match new {
            Some((mut obj, managers)) => {
                set_rv(&mut obj, rv);
                let cur = Arc::new(obj.clone());
                self.objects.insert(key.clone(), Stored { obj, managers });
                self.history.push(HistEvent { rv, key, prev, cur, deleted: false });
            }
            None => {
                let removed = self.objects.remove(&key);
                let mut last = removed.map(|s| s.obj).unwrap_or(Value::Null);
                set_rv(&mut last, rv);
                self.history.push(HistEvent { rv, key, prev, cur: Arc::new(last), deleted: true });
            }
        }
        rv
    }

    /// The objects of one storage key as they were at `rv` (which must not be
    /// older than the compaction point), keyed by (namespace, name).
    pub fn snapshot(&self, storage_key: &str, rv: u64) -> BTreeMap<(String, String), Arc<Value>> {
        let mut out: BTreeMap<(String, String), Arc<Value>> = self
            .objects
            .range((storage_key.to_string(), String::new(), String::new())..)
            .take_while(|(k, _)| k.0 == storage_key)
            .map(|(k, v)| ((k.1.clone(), k.2.clone()), Arc::new(v.obj.clone())))
            .collect();
        for ev in self.history.iter().rev() {
            if ev.rv <= rv {
                break;
            }
            if ev.key.0 != storage_key {
                continue;
            }
            let k = (ev.key.1.clone(), ev.key.2.clone());
            match &ev.prev {
                Some(p) => {
                    out.insert(k, p.clone());
                }
                None => {
                    out.remove(&k);
                }
            }
        }
        out
    }

    /// Index of the first history event newer than `rv`.
    pub fn history_after(&self, rv: u64) -> usize {
        self.history.partition_point(|e| e.rv <= rv)
    }

    pub fn compact(&mut self) {
        self.compacted_rv = self.rv;
        self.history.clear();
        self.epoch += 1;
    }

    /// Finds a stored object by uid within a storage key and namespace.
    pub fn find_by_uid(&self, storage_key: &str, namespace: &str, name: &str, uid: &str) -> bool {
        self.objects
            .get(&(storage_key.to_string(), namespace.to_string(), name.to_string()))
            .is_some_and(|s| s.obj.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid))
    }
}
