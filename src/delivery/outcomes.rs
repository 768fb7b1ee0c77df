//! Delivery outcomes known to this process. A worker puts an outcome here
//! the moment the service has answered, before anything else, and it stays
//! until the event is final on record (or gone): whatever view of the event
//! a reconcile has (a stale cache, a re-read after a conflict), the outcome
//! is merged into it, so a delivery whose outcome is known is never queued
//! or sent again. Each outcome also says whether a status write carried it,
//! so that a stopping operator writes exactly what is not on record yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector::ObjectRef;
use tracing::debug;

use super::Delivery;
use crate::crd::NotificationEvent;
use crate::record::backoff_delay;
use crate::status::event::{self as plan, Known};

struct Entry {
    known: Known,
    /// A successful status write carried it.
    written: bool,
}

#[derive(Default)]
struct ForEvent {
    /// The event as the worker had it: where the drain writes to.
    event: Option<Arc<NotificationEvent>>,
    entries: Vec<Entry>,
    /// When a status write last carried some of them.
    last_written: Option<std::time::Instant>,
}

/// Known outcomes by event uid.
#[derive(Default)]
pub struct KnownOutcomes {
    by_event: Mutex<HashMap<String, ForEvent>>,
}

impl KnownOutcomes {
    /// Keep an outcome (until its event is final on record or gone).
    pub fn record(&self, event: Arc<NotificationEvent>, uid: &str, known: Known) {
        let mut map = self.by_event.lock().unwrap();
        let entry = map.entry(uid.to_string()).or_default();
        entry.event.get_or_insert(event);
        entry.entries.retain(|e| e.known.integration != known.integration);
        entry.entries.push(Entry { known, written: false });
    }

    /// Every known outcome of event `uid`.
    pub fn of(&self, uid: &str) -> Vec<Known> {
        let map = self.by_event.lock().unwrap();
        map.get(uid).map(|e| e.entries.iter().map(|e| e.known.clone()).collect()).unwrap_or_default()
    }

    /// Whether the delivery of event `uid` to `integration` has a known outcome.
    pub fn has(&self, uid: &str, integration: &str) -> bool {
        let map = self.by_event.lock().unwrap();
        map.get(uid).is_some_and(|e| e.entries.iter().any(|e| e.known.integration == integration))
    }

    /// A successful status write carried `written`.
    pub fn written(&self, uid: &str, written: &[Known]) {
        let mut map = self.by_event.lock().unwrap();
        if let Some(entry) = map.get_mut(uid) {
            for e in entry.entries.iter_mut().filter(|e| written.contains(&e.known)) {
                e.written = true;
            }
            if !written.is_empty() {
                entry.last_written = Some(std::time::Instant::now());
            }
        }
    }

    /// How long ago a status write last carried outcomes of event `uid`.
    pub fn since_last_write(&self, uid: &str) -> Option<std::time::Duration> {
        let map = self.by_event.lock().unwrap();
        map.get(uid).and_then(|e| e.last_written).map(|t| t.elapsed())
    }

    /// Event `uid` is final on record, or gone: its outcomes are no longer needed.
    pub fn forget(&self, uid: &str) {
        self.by_event.lock().unwrap().remove(uid);
    }

    /// Keep only the events `keep` says still exist; how many were dropped.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> usize {
        let mut map = self.by_event.lock().unwrap();
        let before = map.len();
        map.retain(|uid, _| keep(uid));
        before - map.len()
    }

    /// Events with outcomes no write carried yet, with the event as the
    /// worker had it and those outcomes.
    pub fn unwritten(&self) -> Vec<(String, Arc<NotificationEvent>, Vec<Known>)> {
        let map = self.by_event.lock().unwrap();
        map.iter()
            .filter_map(|(uid, e)| {
                let known: Vec<Known> = e.entries.iter().filter(|e| !e.written).map(|e| e.known.clone()).collect();
                (!known.is_empty()).then(|| Some((uid.clone(), e.event.clone()?, known)))?
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_event.lock().unwrap().is_empty()
    }
}

impl Delivery {
    /// Write the known outcomes no write carried yet, without the planner (the
    /// controllers may have stopped): what a stopping operator does after its
    /// last deliveries, so that the next leader does not send them again.
    /// Returns whether everything was written by `deadline`.
    pub async fn write_known_outcomes(&self, deadline: tokio::time::Instant) -> bool {
        let mut attempt = 0;
        loop {
            let mut all = true;
            for (uid, snapshot, known) in self.outcomes.unwritten() {
                let api = self.store.events.as_ref();
                // The watch's view if there is one (the worker's may be old), and ours over it.
                let cached =
                    self.caches.events().and_then(|events| events.get(&ObjectRef::from_obj(snapshot.as_ref())));
                let base = self.writes.events.freshest(cached.unwrap_or(snapshot));
                let now = Time(jiff::Timestamp::now());
                let write = self.writes.events.write(api, &self.metrics, base, |base| {
                    let mut status = base.status.clone().unwrap_or_default();
                    for k in &known {
                        if !status.deliveries.iter().any(|d| d.integration == k.integration) {
                            status.deliveries.push(plan::queued(&k.integration));
                        }
                    }
                    plan::apply(&mut status, &known);
                    plan::summarize(&mut status, None, false, &now);
                    (Some(&status) != base.status.as_ref()).then(|| {
                        let mut next = base.clone();
                        next.status = Some(status);
                        next
                    })
                });
                match tokio::time::timeout_at(deadline, write).await {
                    // Written, nothing to write, or the event is gone: either way on record.
                    Ok(Ok(_)) => self.outcomes.written(&uid, &known),
                    Ok(Err(e)) => {
                        all = false;
                        debug!(error = %e, "could not write a known outcome yet");
                    }
                    Err(_) => return false,
                }
            }
            if all {
                return true;
            }
            attempt += 1;
            let wait = backoff_delay(Duration::from_millis(100), Duration::from_secs(2), attempt);
            if tokio::time::Instant::now() + wait >= deadline {
                return false;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::outcome::Outcome;

    use crate::status::event::known;

    #[test]
    fn an_outcome_is_kept_until_its_event_is_final_or_gone() {
        let outcomes = KnownOutcomes::default();
        let ev = Arc::new(
            serde_json::from_value::<NotificationEvent>(serde_json::json!({
                "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationEvent",
                "metadata": {"name": "e", "namespace": "n", "uid": "u1"},
                "spec": {"integrationRef": {"name": "a"}, "message": "m"},
            }))
            .unwrap(),
        );
        outcomes.record(ev.clone(), "u1", known("a", Outcome::Delivered));
        outcomes.record(ev, "u1", known("b", Outcome::Delivered));
        let first = outcomes.of("u1");
        assert_eq!(first.len(), 2);
        assert!(outcomes.has("u1", "a") && !outcomes.has("u1", "c"));
        outcomes.written("u1", &first[..1]);
        assert_eq!(outcomes.of("u1").len(), 2, "written outcomes stay known");
        assert_eq!(outcomes.unwritten()[0].2, first[1..]);
        outcomes.written("u1", &first[1..]);
        assert!(outcomes.unwritten().is_empty());
        assert_eq!(outcomes.retain(|uid| uid != "u1"), 1);
        assert!(outcomes.is_empty());
    }
}
