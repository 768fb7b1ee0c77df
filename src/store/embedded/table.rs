//! One kind's objects in memory, written through to the database, with the
//! API server's rules for resource versions, uids, generations, the status
//! subresource and watches.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::stream;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::Preconditions;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use super::Shared;
use super::db::Durability;
use crate::admission::Admission;
use crate::store::{Objects, StoreResult, WatchStream, api_error};

/// Changes a watcher may fall behind by before it lists again.
const WATCH_BUFFER: usize = 4096;

type Key = (String, String);

#[derive(Clone)]
enum Change<K> {
    Apply(Arc<K>),
    Delete(Arc<K>),
}

/// The objects of one kind.
pub struct Table<K> {
    kind: &'static str,
    /// Written to the database (Secrets are not).
    durable: bool,
    shared: Arc<Shared>,
    /// What the API server would check on a create (CRD schema and rules).
    admission: Option<Admission>,
    objects: Mutex<BTreeMap<Key, Arc<K>>>,
    changes: broadcast::Sender<Change<K>>,
}

/// What a write does to the stored object.
pub enum Write<K> {
    Put(K),
    Remove,
}

impl<K> Table<K>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    pub fn new(kind: &'static str, durable: bool, shared: Arc<Shared>) -> Self {
        let admission = crate::crd::all()
            .into_iter()
            .find(|(_, crd)| crd.spec.names.kind == kind)
            .map(|(_, crd)| Admission::new(&crd).expect("our CRDs compile"));
        Table {
            kind,
            durable,
            shared,
            admission,
            objects: Mutex::default(),
            changes: broadcast::channel(WATCH_BUFFER).0,
        }
    }

    /// `obj` as the API server would store it on a create: defaults applied,
    /// 422 naming every invalid field.
    fn admitted(&self, obj: K) -> StoreResult<K> {
        let Some(admission) = &self.admission else { return Ok(obj) };
        let mut v = serde_json::to_value(&obj).map_err(|e| api_error(400, "BadRequest", e.to_string()))?;
        if let Err(causes) = admission.admit(&mut v, None) {
            let name = obj.meta().name.clone().unwrap_or_default();
            let causes: Vec<String> = causes.iter().map(ToString::to_string).collect();
            return Err(api_error(422, "Invalid", format!("{} {name:?} is invalid: {}", self.kind, causes.join("; "))));
        }
        serde_json::from_value(v).map_err(|e| api_error(422, "Invalid", e.to_string()))
    }

    /// Fill from the database (at start, before anything watches).
    pub fn load(&self) -> Result<usize, String> {
        let Some(db) = self.shared.db.as_ref().filter(|_| self.durable) else { return Ok(0) };
        let rows = db.objects(self.kind).map_err(|e| format!("reading {}s: {e}", self.kind))?;
        let mut objects = self.objects.lock().unwrap();
        for body in rows {
            let obj: K =
                serde_json::from_str(&body).map_err(|e| format!("a stored {} is unreadable: {e}", self.kind))?;
            objects.insert(key(&obj), Arc::new(obj));
        }
        Ok(objects.len())
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.objects.lock().unwrap().get(&(namespace.to_string(), name.to_string())).cloned()
    }

    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects.lock().unwrap().values().cloned().collect()
    }

    /// Change the object at `namespace/name`: `decide` sees the stored
    /// object and returns the write (or an error, or None for no write).
    /// A written object gets the next resource version; the write is on
    /// disk before watchers see it and before this returns.
    pub fn update(
        &self,
        namespace: &str,
        name: &str,
        durability: Durability,
        decide: impl FnOnce(Option<&Arc<K>>) -> StoreResult<Option<Write<K>>>,
    ) -> StoreResult<Option<Arc<K>>> {
        let k = (namespace.to_string(), name.to_string());
        let mut objects = self.objects.lock().unwrap();
        let current = objects.get(&k);
        let Some(write) = decide(current)? else { return Ok(current.cloned()) };
        let version = self.shared.next_version();
        let change = match write {
            Write::Put(mut obj) => {
                // Secrets (not durable) come with the version of their data.
                if self.durable || obj.meta().resource_version.is_none() {
                    obj.meta_mut().resource_version = Some(version.to_string());
                }
                self.persist(&k, Some(&obj), version, durability)?;
                let obj = Arc::new(obj);
                objects.insert(k, obj.clone());
                Change::Apply(obj)
            }
            Write::Remove => {
                let Some(gone) = objects.remove(&k) else { return Ok(None) };
                if let Err(e) = self.persist(&k, None, version, durability) {
                    objects.insert(k, gone);
                    return Err(e);
                }
                Change::Delete(gone)
            }
        };
        let written = match &change {
            Change::Apply(obj) => Some(obj.clone()),
            Change::Delete(_) => None,
        };
        let _ = self.changes.send(change);
        Ok(written)
    }

    fn persist(&self, k: &Key, obj: Option<&K>, version: u64, durability: Durability) -> StoreResult<()> {
        let Some(db) = self.shared.db.as_ref().filter(|_| self.durable) else { return Ok(()) };
        let body = obj
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| api_error(500, "InternalError", format!("cannot encode a {}: {e}", self.kind)))?;
        db.write(self.kind, &k.0, &k.1, body.as_deref(), version, durability)
            .map_err(|e| api_error(500, "InternalError", format!("the state database refused a write: {e}")))
    }

    /// Every object `keep` accepts, then each change to one, as a watcher yields them.
    pub fn watch_where(self: &Arc<Self>, keep: impl Fn(&K) -> bool + Send + Sync + 'static) -> WatchStream<K> {
        let state = WatchState { table: self.clone(), keep: Box::new(keep), queue: VecDeque::new(), changes: None };
        Box::pin(stream::unfold(state, |mut s| async move {
            let event = s.next().await?;
            Some((Ok(event), s))
        }))
    }
}

struct WatchState<K> {
    table: Arc<Table<K>>,
    keep: Box<dyn Fn(&K) -> bool + Send + Sync>,
    queue: VecDeque<watcher::Event<K>>,
    changes: Option<broadcast::Receiver<Change<K>>>,
}

impl<K> WatchState<K>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    async fn next(&mut self) -> Option<watcher::Event<K>> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            let Some(changes) = self.changes.as_mut() else {
                self.list();
                continue;
            };
            match changes.recv().await {
                Ok(Change::Apply(obj)) if (self.keep)(&obj) => return Some(watcher::Event::Apply((*obj).clone())),
                Ok(Change::Delete(obj)) if (self.keep)(&obj) => return Some(watcher::Event::Delete((*obj).clone())),
                Ok(_) => continue,
                // Fell behind: start over with a fresh list, as a watcher does after a 410.
                Err(broadcast::error::RecvError::Lagged(_)) => self.changes = None,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The whole current state, subscribed under the same lock as writes,
    /// so that no change falls between the list and the watch.
    fn list(&mut self) {
        let objects = self.table.objects.lock().unwrap();
        self.changes = Some(self.table.changes.subscribe());
        self.queue.push_back(watcher::Event::Init);
        for obj in objects.values().filter(|o| (self.keep)(o)) {
            self.queue.push_back(watcher::Event::InitApply((**obj).clone()));
        }
        self.queue.push_back(watcher::Event::InitDone);
    }
}

fn key<K: Resource>(obj: &K) -> Key {
    (obj.meta().namespace.clone().unwrap_or_default(), obj.meta().name.clone().unwrap_or_default())
}

/// A name for `generateName`, as the API server makes one (5 characters
/// from its alphabet, without vowels).
fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}{suffix}")
}

/// A new object's uid.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The object without its status (a create or a spec update never sets it).
fn without_status<K: Serialize + DeserializeOwned>(obj: K) -> StoreResult<K> {
    let mut v = serde_json::to_value(&obj).map_err(|e| api_error(400, "BadRequest", e.to_string()))?;
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
    }
    serde_json::from_value(v).map_err(|e| api_error(400, "BadRequest", e.to_string()))
}

/// The status of `obj` (null when it has none).
fn status_of<K: Serialize>(obj: &K) -> serde_json::Value {
    serde_json::to_value(obj)
        .ok()
        .and_then(|mut v| v.get_mut("status").map(serde_json::Value::take))
        .unwrap_or_default()
}

/// `obj` with `status` (a JSON value, null for none).
fn with_status<K: Serialize + DeserializeOwned>(obj: &K, status: serde_json::Value) -> StoreResult<K> {
    let mut v = serde_json::to_value(obj).map_err(|e| api_error(400, "BadRequest", e.to_string()))?;
    if let Some(map) = v.as_object_mut() {
        if status.is_null() {
            map.remove("status");
        } else {
            map.insert("status".into(), status);
        }
    }
    serde_json::from_value(v).map_err(|e| api_error(400, "BadRequest", e.to_string()))
}

/// The spec (everything but metadata and status) of `obj`, to tell whether
/// an update changes it (and so its generation).
fn spec_of<K: Serialize>(obj: &K) -> serde_json::Value {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            map.remove(k);
        }
    }
    v
}

impl<K> Table<K>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Create: 409 AlreadyExists when the name is taken.
    pub fn create(&self, namespace: &str, obj: K) -> StoreResult<Arc<K>> {
        let mut obj = without_status(obj)?;
        let meta = obj.meta_mut();
        let (name, generated) = match (meta.name.clone().filter(|n| !n.is_empty()), meta.generate_name.clone()) {
            (Some(name), _) => (name, None),
            (None, Some(prefix)) => (generated_name(&prefix), Some(prefix)),
            (None, None) => return Err(api_error(422, "Invalid", "metadata.name: Required value".into())),
        };
        meta.name = Some(name.clone());
        meta.namespace = Some(namespace.to_string());
        meta.uid = Some(new_uid());
        meta.generation = Some(1);
        meta.creation_timestamp = Some(Time(jiff::Timestamp::now()));
        meta.managed_fields = None;
        meta.deletion_timestamp = None;
        let mut obj = self.admitted(obj)?;
        // A generated name that is taken is made again, as the API server does.
        let mut name = name;
        if let Some(prefix) = &generated {
            for _ in 0..8 {
                if self.get(namespace, &name).is_none() {
                    break;
                }
                name = generated_name(prefix);
            }
            obj.meta_mut().name = Some(name.clone());
        }
        let kind = self.kind;
        // An accepted event must survive a power loss.
        let written = self.update(namespace, &name, Durability::Synced, |current| match current {
            Some(_) => Err(api_error(
                409,
                "AlreadyExists",
                format!("{kind} {name:?} already exists in namespace {namespace:?}"),
            )),
            None => Ok(Some(Write::Put(obj))),
        })?;
        written.ok_or_else(|| api_error(500, "InternalError", "the created object is missing".into()))
    }

    /// Create or update from a manifest: the spec, labels and annotations of
    /// `obj`, keeping the stored uid, creation time and status; the
    /// generation goes up when the spec changed. No write when nothing did.
    pub fn apply(&self, obj: K) -> StoreResult<Arc<K>> {
        let (namespace, name) = key(&obj);
        let obj = without_status(obj)?;
        let written = self.update(&namespace, &name, Durability::Written, |current| {
            let Some(current) = current else {
                let mut obj = obj;
                let meta = obj.meta_mut();
                meta.uid = Some(new_uid());
                meta.generation = Some(1);
                meta.creation_timestamp = Some(Time(jiff::Timestamp::now()));
                return Ok(Some(Write::Put(obj)));
            };
            let spec_changed = spec_of(&obj) != spec_of(current.as_ref());
            let cm = current.meta();
            let (labels, annotations) = (obj.meta().labels.clone(), obj.meta().annotations.clone());
            if !spec_changed && cm.labels == labels && cm.annotations == annotations {
                return Ok(None);
            }
            let mut next = with_status(&obj, status_of(current.as_ref()))?;
            let meta = next.meta_mut();
            meta.uid = cm.uid.clone();
            meta.creation_timestamp = cm.creation_timestamp.clone();
            meta.generation = Some(cm.generation.unwrap_or(1) + i64::from(spec_changed));
            Ok(Some(Write::Put(next)))
        })?;
        written.ok_or_else(|| api_error(500, "InternalError", "the applied object is missing".into()))
    }

    /// Replace the status: 409 unless `obj` carries the stored version.
    pub fn replace_status(&self, namespace: &str, obj: K) -> StoreResult<Arc<K>> {
        let name = obj.meta().name.clone().unwrap_or_default();
        let kind = self.kind;
        let written = self.update(namespace, &name, Durability::Written, |current| {
            let Some(current) = current else {
                return Err(api_error(404, "NotFound", format!("{kind} {name:?} not found")));
            };
            if let Some(uid) = &obj.meta().uid
                && current.meta().uid.as_ref() != Some(uid)
            {
                return Err(api_error(409, "Conflict", format!("{kind} {name:?} was replaced (uid)")));
            }
            if obj.meta().resource_version.is_some() && obj.meta().resource_version != current.meta().resource_version
            {
                return Err(api_error(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {kind} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
                    ),
                ));
            }
            let status = status_of(&obj);
            if status == status_of(current.as_ref()) {
                return Ok(None);
            }
            Ok(Some(Write::Put(with_status(current.as_ref(), status)?)))
        })?;
        written.ok_or_else(|| api_error(404, "NotFound", format!("{kind} {name:?} not found")))
    }

    /// Delete, if the object meets `preconditions`.
    pub fn delete(&self, namespace: &str, name: &str, preconditions: Preconditions) -> StoreResult<()> {
        let kind = self.kind;
        let Preconditions { uid, resource_version } = preconditions;
        self.update(namespace, name, Durability::Written, |current| match current {
            None => Err(api_error(404, "NotFound", format!("{kind} {name:?} not found"))),
            Some(c) if uid.is_some() && c.meta().uid != uid => Err(api_error(
                409,
                "Conflict",
                format!("Precondition failed: UID in precondition: {uid:?}, UID in object meta: {:?}", c.meta().uid),
            )),
            Some(c) if resource_version.is_some() && c.meta().resource_version != resource_version => Err(api_error(
                409,
                "Conflict",
                format!(
                    "Precondition failed: ResourceVersion in precondition: {resource_version:?}, ResourceVersion in object meta: {:?}",
                    c.meta().resource_version
                ),
            )),
            Some(_) => Ok(Some(Write::Remove)),
        })
        .map(|_| ())
    }
}

/// A table served through [`Objects`] (every namespace).
pub struct Served<K> {
    pub table: Arc<Table<K>>,
}

impl<K> Objects<K> for Served<K>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn watch(&self) -> WatchStream<K> {
        self.table.watch_where(|_| true)
    }

    fn watch_one(&self, namespace: &str, name: &str) -> WatchStream<K> {
        let want = (namespace.to_string(), name.to_string());
        self.table.watch_where(move |o| key(o) == want)
    }

    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, StoreResult<Option<K>>> {
        let found = self.table.get(namespace, name).map(|o| (*o).clone());
        Box::pin(async move { Ok(found) })
    }

    fn create(&self, namespace: &str, object: K) -> BoxFuture<'_, StoreResult<K>> {
        let (table, namespace) = (self.table.clone(), namespace.to_string());
        off_the_runtime(self.table.shared.writer.clone(), move || {
            table.create(&namespace, object).map(|o| (*o).clone())
        })
    }

    fn replace_status(&self, namespace: &str, object: K) -> BoxFuture<'_, StoreResult<K>> {
        let (table, namespace) = (self.table.clone(), namespace.to_string());
        off_the_runtime(self.table.shared.writer.clone(), move || {
            table.replace_status(&namespace, object).map(|o| (*o).clone())
        })
    }

    fn delete(&self, namespace: &str, name: &str, preconditions: Preconditions) -> BoxFuture<'_, StoreResult<()>> {
        let (table, namespace, name) = (self.table.clone(), namespace.to_string(), name.to_string());
        off_the_runtime(self.table.shared.writer.clone(), move || table.delete(&namespace, &name, preconditions))
    }
}

/// Run a write (a commit, maybe an fsync) on the blocking pool, not on a
/// runtime worker: HTTP, timers and watches go on meanwhile. One at a time
/// (`writer`), so a burst of writes never starts a thread each.
fn off_the_runtime<T: Send + 'static>(
    writer: Arc<tokio::sync::Semaphore>,
    write: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> BoxFuture<'static, StoreResult<T>> {
    Box::pin(async move {
        let _permit = writer.acquire_owned().await.expect("the writer semaphore is never closed");
        tokio::task::spawn_blocking(write)
            .await
            .unwrap_or_else(|e| Err(api_error(500, "InternalError", format!("a store write failed: {e}"))))
    })
}
