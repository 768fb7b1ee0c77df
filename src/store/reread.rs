//! Secrets without a watch (`--secret-access get`): the Secrets that
//! integrations name are read with `get`, each again every re-read period
//! (spread by ±10%), and what changed is given as a metadata watch would
//! give it. A Secret an integration starts to use is read within a second;
//! one no integration uses any more is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use tokio::time::Instant;
use tracing::debug;

use super::{Secrets, WatchStream};
use crate::crd::NotificationIntegration;

/// How often the integrations are looked at for Secrets that are due or new.
const TICK: Duration = Duration::from_secs(1);

/// The wait before a Secret is read again after the API failed to answer.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(10);

/// Reads at once.
const CONCURRENT_READS: usize = 8;

/// `(namespace, name)` of a Secret.
type Key = (String, String);

struct Known {
    /// Its resourceVersion; `None` while it does not exist.
    version: Option<String>,
    next_read: Instant,
}

struct Rereader {
    secrets: Arc<dyn Secrets>,
    integrations: reflector::Store<NotificationIntegration>,
    reread: Duration,
    known: HashMap<Key, Known>,
    started: bool,
}

/// The metadata of the Secrets `integrations` name, as a watch stream: the
/// first list once the integrations are known, then each change seen by a
/// re-read every `reread`.
pub fn watch(
    secrets: Arc<dyn Secrets>,
    integrations: reflector::Store<NotificationIntegration>,
    reread: Duration,
) -> WatchStream<PartialObjectMeta<Secret>> {
    let state = Rereader { secrets, integrations, reread, known: HashMap::new(), started: false };
    futures::stream::unfold(state, |mut s| async move {
        let events = s.next_events().await;
        Some((futures::stream::iter(events.into_iter().map(Ok)), s))
    })
    .flatten()
    .boxed()
}

fn meta(key: &Key, version: &str) -> PartialObjectMeta<Secret> {
    ObjectMeta {
        name: Some(key.1.clone()),
        namespace: Some(key.0.clone()),
        resource_version: Some(version.to_string()),
        ..Default::default()
    }
    .into_response_partial()
}

/// ±10%, so that Secrets read together drift apart.
fn jitter(wait: Duration) -> Duration {
    wait.mul_f64(0.9 + rand::random::<f64>() * 0.2)
}

impl Rereader {
    fn wanted(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .integrations
            .state()
            .iter()
            .map(|ni| (ni.namespace().unwrap_or_default(), ni.spec.secret_ref.name.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Read `keys`; each one's version (`None`: not found), or `Err` when the API did not answer.
    async fn read(&self, keys: Vec<Key>) -> Vec<(Key, Result<Option<String>, kube::Error>)> {
        futures::stream::iter(keys)
            .map(|key| async move {
                let found = self.secrets.get(&key.0, &key.1).await;
                let version = found.map(|s| s.map(|s| s.metadata.resource_version.unwrap_or_default()));
                (key, version)
            })
            .buffer_unordered(CONCURRENT_READS)
            .collect()
            .await
    }

    async fn next_events(&mut self) -> Vec<Event<PartialObjectMeta<Secret>>> {
        if !self.started {
            self.started = true;
            let _ = self.integrations.wait_until_ready().await;
            let mut events = vec![Event::Init];
            for (key, version) in self.read(self.wanted()).await {
                let version = version.unwrap_or_else(|e| {
                    debug!(namespace = %key.0, name = %key.1, error = %e, "could not read a Secret; will retry");
                    None
                });
                if let Some(v) = &version {
                    events.push(Event::InitApply(meta(&key, v)));
                }
                self.known.insert(key, Known { version, next_read: Instant::now() + jitter(self.reread) });
            }
            events.push(Event::InitDone);
            return events;
        }
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        let wanted = self.wanted();
        let mut events = Vec::new();
        // Secrets no integration names any more.
        self.known.retain(|key, known| {
            let keep = wanted.binary_search(key).is_ok();
            if let (false, Some(v)) = (keep, &known.version) {
                events.push(Event::Delete(meta(key, v)));
            }
            keep
        });
        let due: Vec<Key> =
            wanted.into_iter().filter(|key| self.known.get(key).is_none_or(|k| k.next_read <= now)).collect();
        for (key, version) in self.read(due).await {
            let previous = self.known.get(&key).and_then(|k| k.version.clone());
            let (version, next_read) = match version {
                Ok(version) => (version, Instant::now() + jitter(self.reread)),
                Err(e) => {
                    debug!(namespace = %key.0, name = %key.1, error = %e, "could not read a Secret; will retry");
                    (previous.clone(), Instant::now() + RETRY_AFTER_ERROR.min(self.reread))
                }
            };
            match (&previous, &version) {
                (_, Some(v)) if previous.as_ref() != Some(v) => events.push(Event::Apply(meta(&key, v))),
                (Some(v), None) => events.push(Event::Delete(meta(&key, v))),
                _ => {}
            }
            self.known.insert(key, Known { version, next_read });
        }
        events
    }
}
