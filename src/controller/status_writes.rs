//! Status writes of one kind of object, by its one writer in this process:
//! re-reads only on a conflict, and remembers what it wrote so that a watch
//! cache that has not caught up with our own writes is never taken for the
//! truth (a stale cache would make a planner repeat finished work).
//!
//! Resource versions are opaque: they are never compared for order. What is
//! remembered instead is the set of versions each write replaced: a cached
//! object at one of those is older than our write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use crate::metrics::Metrics;

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

/// Our last status write of each object (by uid), until the cache shows it.
pub struct StatusWrites<K> {
    kind: &'static str,
    last: Mutex<HashMap<String, Written<K>>>,
}

impl<K> StatusWrites<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    pub fn new(kind: &'static str) -> Self {
        StatusWrites { kind, last: Mutex::new(HashMap::new()) }
    }

    /// The freshest version of `cached` this process knows: our own last
    /// write while the cache still shows a version that write replaced.
    pub fn freshest(&self, cached: Arc<K>) -> Arc<K> {
        let (Some(uid), rv) = (cached.meta().uid.clone(), cached.resource_version()) else { return cached };
        let mut last = self.last.lock().unwrap();
        match last.get(&uid) {
            Some(w) if rv.as_ref().is_some_and(|rv| w.replaced.contains(rv)) => w.object.clone(),
            Some(_) => {
                // The cache shows our write, or a newer one by someone else.
                last.remove(&uid);
                cached
            }
            None => cached,
        }
    }

    fn remember(&self, base: &K, written: K) -> Arc<K> {
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
        replaced.extend(base.resource_version());
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
        api: &Api<K>,
        metrics: &Metrics,
        base: Arc<K>,
        mut next: impl FnMut(&K) -> Option<K>,
    ) -> Result<Option<Arc<K>>, Error> {
        let name = base.name_any();
        let uid = base.meta().uid.clone();
        let mut base = base;
        for _ in 0..CONFLICT_RETRIES {
            let Some(wanted) = next(&base) else { return Ok(None) };
            match api.replace_status(&name, &PostParams::default(), &wanted).await {
                Ok(written) => {
                    metrics.status_write(self.kind);
                    return Ok(Some(self.remember(&base, written)));
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    metrics.api_error(self.kind, s.code.to_string());
                    match api.get_opt(&name).await {
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
