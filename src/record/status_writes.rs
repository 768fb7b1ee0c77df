//! Status writes of one kind of object, by its one writer in this process:
//! re-reads only on a conflict, and remembers what it wrote so that a watch
//! cache that has not caught up with our own writes is never taken for the
//! truth (a stale cache would make a planner repeat finished work).
//!
//! Which of two versions of an object is newer: resource versions are
//! opaque to clients, but every API server backed by etcd (and the test
//! emulation) hands out increasing integers, so when both parse as integers
//! they are compared; otherwise only versions this writer saw replaced
//! (every base it wrote on) count as older than its write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use crate::crd::{NotificationEvent, NotificationIntegration};
use crate::metrics::Metrics;
use crate::store::Objects;

/// Conflicts re-read and retried within one write before giving up (the
/// caller then backs off and tries again later).
const CONFLICT_RETRIES: usize = 5;
/// At most this many replaced versions are remembered per object.
const REMEMBERED_VERSIONS: usize = 32;

struct Written<K> {
    object: Arc<K>,
    /// Versions older than `object`: the bases of our writes.
    replaced: Vec<String>,
    at: Instant,
}

/// How long our own status writes are remembered at most (for objects
/// deleted before the watch showed the write).
const REMEMBER_WRITES: Duration = Duration::from_secs(3600);

/// The status writers of this process, one per kind: the event controller
/// writes events; the credential checks and the counters write integrations.
pub struct StatusWriters {
    pub events: StatusWrites<NotificationEvent>,
    pub integrations: StatusWrites<NotificationIntegration>,
}

impl Default for StatusWriters {
    fn default() -> Self {
        StatusWriters {
            // Kept as the event cache keeps events: a large content is not.
            events: StatusWrites::new("NotificationEvent").keeping(crate::caches::trim_event_content),
            integrations: StatusWrites::new("NotificationIntegration"),
        }
    }
}

impl StatusWriters {
    /// Forget writes of objects deleted before the watch showed them.
    pub fn forget_old(&self) {
        self.events.forget_older_than(REMEMBER_WRITES);
        self.integrations.forget_older_than(REMEMBER_WRITES);
    }
}

/// Our last status write of each object (by uid), until the cache shows it.
pub struct StatusWrites<K> {
    kind: &'static str,
    last: Mutex<HashMap<String, Written<K>>>,
    /// What is kept of a written object (as its watch cache keeps it).
    keep: fn(&mut K),
}

impl<K> StatusWrites<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    pub fn new(kind: &'static str) -> Self {
        StatusWrites { kind, last: Mutex::new(HashMap::new()), keep: |_| {} }
    }

    /// Keep written objects as `keep` leaves them.
    pub fn keeping(self, keep: fn(&mut K)) -> Self {
        StatusWrites { keep, ..self }
    }

    /// The freshest version of `cached` this process knows: our own last
    /// write while the cache still shows a version that write replaced.
    pub fn freshest(&self, cached: Arc<K>) -> Arc<K> {
        let (Some(uid), Some(rv)) = (cached.meta().uid.clone(), cached.resource_version()) else { return cached };
        let mut last = self.last.lock().unwrap();
        let Some(w) = last.get(&uid) else { return cached };
        let ours = w.object.resource_version().unwrap_or_default();
        let cached_is_older = match (rv.parse::<u64>(), ours.parse::<u64>()) {
            (Ok(cached), Ok(ours)) => cached < ours,
            _ => w.replaced.contains(&rv),
        };
        if cached_is_older {
            w.object.clone()
        } else {
            // The cache shows our write, or a newer one.
            last.remove(&uid);
            cached
        }
    }

    fn remember(&self, bases: &[String], mut written: K) -> Arc<K> {
        (self.keep)(&mut written);
        let written = Arc::new(written);
        let Some(uid) = written.meta().uid.clone() else { return written };
        let mut last = self.last.lock().unwrap();
        let mut replaced = match last.remove(&uid) {
            Some(previous) => {
                let mut r = previous.replaced;
                r.extend(previous.object.resource_version());
                r
            }
            None => Vec::new(),
        };
        replaced.extend(bases.iter().cloned());
        if replaced.len() > REMEMBERED_VERSIONS {
            replaced.drain(..replaced.len() - REMEMBERED_VERSIONS);
        }
        last.insert(uid, Written { object: written.clone(), replaced, at: Instant::now() });
        written
    }

    /// Forget writes older than `age` (objects deleted before the cache
    /// showed our write); how many were forgotten.
    pub fn forget_older_than(&self, age: Duration) -> usize {
        let mut last = self.last.lock().unwrap();
        let before = last.len();
        last.retain(|_, w| w.at.elapsed() < age);
        before - last.len()
    }

    /// Write the object `next` derives from `base` (None: nothing to write)
    /// through the status subresource. On a conflict the object is read
    /// again and `next` asked again, a few times. Returns the written object,
    /// or None when nothing needed writing or the object is gone (or was
    /// replaced by another of the same name).
    pub async fn write(
        &self,
        api: &dyn Objects<K>,
        metrics: &Metrics,
        base: Arc<K>,
        mut next: impl FnMut(&K) -> Option<K>,
    ) -> Result<Option<Arc<K>>, Error> {
        let name = base.name_any();
        let namespace = base.namespace().unwrap_or_default();
        let uid = base.meta().uid.clone();
        let mut base = base;
        // Every version a write was attempted on: all older than what is written.
        let mut bases = Vec::new();
        for _ in 0..CONFLICT_RETRIES {
            let Some(wanted) = next(&base) else { return Ok(None) };
            bases.extend(base.resource_version());
            match api.replace_status(&namespace, wanted).await {
                Ok(written) => {
                    metrics.status_write(self.kind);
                    return Ok(Some(self.remember(&bases, written)));
                }
                // Deleted meanwhile: nothing to write to.
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    metrics.api_error(self.kind, s.code.to_string());
                    match api.get(&namespace, &name).await {
                        Ok(Some(fresh)) if fresh.meta().uid == uid => base = Arc::new(fresh),
                        Ok(_) => return Ok(None),
                        Err(e) => {
                            let e = Error::Kube(e);
                            metrics.api_error(self.kind, e.code_label());
                            return Err(e);
                        }
                    }
                }
                Err(e) => {
                    let e = Error::Kube(e);
                    metrics.api_error(self.kind, e.code_label());
                    return Err(e);
                }
            }
        }
        Err(Error::Conflict(format!("{} {name}", self.kind)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(rv: &str, phase: Option<&str>) -> Arc<NotificationEvent> {
        let mut v = serde_json::json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationEvent",
            "metadata": {"name": "e", "namespace": "n", "uid": "u1", "resourceVersion": rv},
            "spec": {"integrationRef": {"name": "a"}, "message": "m"},
        });
        if let Some(p) = phase {
            v["status"] = serde_json::json!({"phase": p});
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn phase(ev: &NotificationEvent) -> Option<crate::crd::EventPhase> {
        ev.status.as_ref().and_then(|s| s.phase)
    }

    #[test]
    fn a_cache_behind_our_write_gives_our_write() {
        let writes = StatusWrites::<NotificationEvent>::new("NotificationEvent");
        writes.remember(&["5".into()], (*event("9", Some("Delivered"))).clone());
        // Older than ours, also a version we never saw (7): ours.
        for stale in ["5", "7"] {
            assert_eq!(phase(&writes.freshest(event(stale, None))), Some(crate::crd::EventPhase::Delivered));
        }
        // The cache caught up (or went past): the cache, and ours is forgotten.
        assert_eq!(writes.freshest(event("9", Some("Delivered"))).resource_version().as_deref(), Some("9"));
        assert_eq!(phase(&writes.freshest(event("5", None))), None, "forgotten once the cache showed it");
    }

    #[test]
    fn opaque_versions_count_as_older_only_when_replaced() {
        let writes = StatusWrites::<NotificationEvent>::new("NotificationEvent");
        writes.remember(&["a1".into(), "a2".into()], (*event("a3", Some("Delivered"))).clone());
        assert_eq!(writes.freshest(event("a1", None)).resource_version().as_deref(), Some("a3"));
        assert_eq!(writes.freshest(event("a2", None)).resource_version().as_deref(), Some("a3"));
        assert_eq!(writes.freshest(event("zz", None)).resource_version().as_deref(), Some("zz"), "unknown: newer");
    }
}
