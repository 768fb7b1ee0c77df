//! Requests that wait for an event to finish (`?wait=`, and `send` on a
//! follower, which goes through the leader as an event) are answered from
//! one watch of events per process, shared by all of them: the number of
//! API watches does not grow with the number of waiting requests, and the
//! watch restarts with backoff after errors (never a tight re-list loop).
//!
//! A waiter registers first and then reads the event once, so that a change
//! before it registered is not missed; it is woken when the watch shows the
//! event final or deleted, and forgotten when it stops waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::crd::NotificationEvent;
use crate::store::{Objects, StoreResult};

type Key = (String, String);
type Wake = oneshot::Sender<Option<Box<NotificationEvent>>>;
/// The waiters of each event, each with its id.
type Waiting = Mutex<HashMap<Key, Vec<(u64, Wake)>>>;

/// The waiting requests and the one watch that answers them.
pub struct Waiters {
    events: Arc<dyn Objects<NotificationEvent>>,
    waiting: Arc<Waiting>,
    next: AtomicU64,
    /// The watch, started with the first waiter; ended with the waiters.
    watch: OnceLock<tokio::task::JoinHandle<()>>,
}

/// How a wait ended.
#[derive(Debug)]
pub enum Waited {
    /// Final (`Some`), or deleted (`None`).
    Finished(Option<Box<NotificationEvent>>),
    /// Not final by the deadline.
    TimedOut,
}

impl Waiters {
    pub fn new(events: Arc<dyn Objects<NotificationEvent>>) -> Self {
        Waiters { events, waiting: Default::default(), next: AtomicU64::new(0), watch: OnceLock::new() }
    }

    /// Wait until event `name` of `namespace` is final or deleted, at most until `deadline`.
    pub async fn until_finished(&self, namespace: &str, name: &str, deadline: Instant) -> StoreResult<Waited> {
        self.watch.get_or_init(|| tokio::spawn(watch(self.events.clone(), self.waiting.clone())));
        let key = (namespace.to_string(), name.to_string());
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (wake, woken) = oneshot::channel();
        self.waiting.lock().unwrap().entry(key.clone()).or_default().push((id, wake));
        let _registered = Registered { waiting: &self.waiting, key: key.clone(), id };
        // What happened before this waiter registered.
        match self.events.get(namespace, name).await? {
            None => return Ok(Waited::Finished(None)),
            Some(ev) if is_finished(&ev) => return Ok(Waited::Finished(Some(Box::new(ev)))),
            Some(_) => {}
        }
        match tokio::time::timeout_at(deadline, woken).await {
            Ok(Ok(event)) => Ok(Waited::Finished(event)),
            // The watch ended (the process is stopping) or the deadline passed.
            Ok(Err(_)) | Err(_) => Ok(Waited::TimedOut),
        }
    }

    /// How many requests wait right now.
    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Waiters {
    fn drop(&mut self) {
        if let Some(watch) = self.watch.get() {
            watch.abort();
        }
    }
}

/// Removes a waiter that stops waiting (answered, timed out, or its caller gone).
struct Registered<'a> {
    waiting: &'a Waiting,
    key: Key,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut waiting = self.waiting.lock().unwrap();
        if let Some(list) = waiting.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                waiting.remove(&self.key);
            }
        }
    }
}

/// Whether an event's delivery is over.
pub fn is_finished(ev: &NotificationEvent) -> bool {
    ev.status.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_final())
}

/// The one watch: wakes the waiters of each event seen final or deleted.
async fn watch(events: Arc<dyn Objects<NotificationEvent>>, waiting: Arc<Waiting>) {
    let wake = |ev: &NotificationEvent, finished: Option<Box<NotificationEvent>>| {
        let key = (ev.metadata.namespace.clone().unwrap_or_default(), ev.metadata.name.clone().unwrap_or_default());
        let woken = waiting.lock().unwrap().remove(&key);
        for (_, wake) in woken.into_iter().flatten() {
            let _ = wake.send(finished.clone());
        }
    };
    let mut stream = std::pin::pin!(events.watch().default_backoff());
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(ev) | watcher::Event::InitApply(ev)) if is_finished(&ev) => {
                wake(&ev, Some(Box::new(ev.clone())))
            }
            Ok(watcher::Event::Delete(ev)) => wake(&ev, None),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "the waiters' watch of events failed; retrying with backoff"),
        }
    }
}
