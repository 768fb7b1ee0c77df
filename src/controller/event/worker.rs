//! One queue and one worker per integration: events for an integration are
//! delivered one at a time in creation order, and a slow or failing
//! integration never delays the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info, warn};

use super::plan::{self, reason};
use crate::controller::integration::counters;
use crate::controller::{Context, Error, notifiers};
use crate::crd::conditions::{self, READY};
use crate::crd::{DeliveryPhase, NotificationEvent, NotificationIntegration};
use crate::delivery::Outcome;
use crate::notifier::Message;

/// One delivery to do: an event to one integration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Job {
    pub namespace: String,
    pub event: String,
    pub event_uid: String,
    pub integration: String,
}

/// Creation order: creation time, then name.
type OrderKey = (i64, String);

#[derive(Default)]
struct Queue {
    waiting: BTreeMap<OrderKey, Job>,
    /// Events queued or being delivered, by name.
    members: HashSet<String>,
}

/// The per-integration queues.
#[derive(Default)]
pub struct Dispatcher {
    queues: Mutex<HashMap<(String, String), Queue>>,
    /// Set on shutdown: no new delivery starts.
    draining: std::sync::atomic::AtomicBool,
    /// Deliveries being sent right now, and a signal when one ends.
    running: std::sync::atomic::AtomicUsize,
    finished: tokio::sync::Notify,
}

impl Dispatcher {
    /// The integrations `event` is queued for or being delivered to.
    pub fn in_flight(&self, namespace: &str, event: &str) -> HashSet<String> {
        let queues = self.queues.lock().unwrap();
        queues
            .iter()
            .filter(|((ns, _), q)| ns == namespace && q.members.contains(event))
            .map(|((_, integration), _)| integration.clone())
            .collect()
    }

    /// Queue a job; start the integration's worker if it isn't running.
    pub fn enqueue(self: &Arc<Self>, ctx: &Arc<Context>, job: Job, created: i64) {
        let key = (job.namespace.clone(), job.integration.clone());
        let mut queues = self.queues.lock().unwrap();
        let start = !queues.contains_key(&key);
        let queue = queues.entry(key.clone()).or_default();
        if !queue.members.insert(job.event.clone()) {
            return;
        }
        queue.waiting.insert((created, job.event.clone()), job);
        if start {
            let this = self.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move { this.work(ctx, key).await });
        }
    }

    /// Stop starting deliveries and wait (at most `timeout`) for those in
    /// flight to be sent and recorded, so that a stopping operator leaves no
    /// send without its status write (which the next leader would repeat).
    pub async fn drain(&self, timeout: std::time::Duration) -> bool {
        use std::sync::atomic::Ordering;
        self.draining.store(true, Ordering::SeqCst);
        let wait = async {
            loop {
                let finished = self.finished.notified();
                if self.running.load(Ordering::SeqCst) == 0 {
                    return;
                }
                finished.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    async fn work(self: Arc<Self>, ctx: Arc<Context>, key: (String, String)) {
        use std::sync::atomic::Ordering;
        loop {
            let job = {
                let mut queues = self.queues.lock().unwrap();
                if self.draining.load(Ordering::SeqCst) {
                    return;
                }
                let Some(queue) = queues.get_mut(&key) else { return };
                match queue.waiting.pop_first() {
                    Some((_, job)) => job,
                    None => {
                        queues.remove(&key);
                        return;
                    }
                }
            };
            self.running.fetch_add(1, Ordering::SeqCst);
            // Its own task: a panic in one delivery must not leave the queue stuck.
            let result = match tokio::spawn({
                let ctx = ctx.clone();
                let job = job.clone();
                async move { deliver_job(&ctx, &job).await }
            })
            .await
            {
                Ok(result) => result,
                Err(e) => Err(Error::Conflict(format!("the delivery task failed: {e}"))),
            };
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.finished.notify_waiters();
            {
                let mut queues = self.queues.lock().unwrap();
                if let Some(queue) = queues.get_mut(&key) {
                    queue.members.remove(&job.event);
                }
            }
            match result {
                // A written status triggers the event controller by itself.
                Ok(true) => {}
                // Nothing written (the integration became disabled or unready,
                // the event changed): let the event controller decide again.
                Ok(false) => ctx.event_triggers.trigger(ObjectRef::new(&job.event).within(&job.namespace)),
                Err(e) => {
                    warn!(namespace = %job.namespace, event = %job.event, integration = %job.integration, error = %e, "delivery bookkeeping failed; the event will be retried");
                    ctx.event_triggers.trigger(ObjectRef::new(&job.event).within(&job.namespace));
                }
            }
        }
    }
}

/// Deliver one event to one integration and record the outcome: first in
/// the event (the record that prevents a second send), then in the
/// integration's counters.
async fn deliver_job(ctx: &Arc<Context>, job: &Job) -> Result<bool, Error> {
    let events: Api<NotificationEvent> = Api::namespaced(ctx.client.clone(), &job.namespace);
    // Read the event fresh: its status is the record of what was sent.
    let Some(event) = events.get_opt(&job.event).await.map_err(Error::Kube)? else { return Ok(false) };
    if event.meta().uid.as_deref() != Some(job.event_uid.as_str()) || !is_pending(&event, &job.integration) {
        return Ok(false);
    }
    // Read the integration fresh too: the watch may not have shown yet that
    // the previous delivery disabled it.
    let integrations: Api<NotificationIntegration> = Api::namespaced(ctx.client.clone(), &job.namespace);
    let Some(ni) = integrations.get_opt(&job.integration).await.map_err(Error::Kube)? else { return Ok(false) };
    // Ready for this very spec: a new generation is used only once it was checked.
    let status = ni.status.clone().unwrap_or_default();
    let ready_for_spec = conditions::find(&status.conditions, READY)
        .is_some_and(|c| c.status == "True" && c.observed_generation == ni.meta().generation);
    if ni.spec.disabled || !ready_for_spec {
        return Ok(false);
    }
    let loaded = notifiers::for_delivery(&ni, ctx).await?;
    let notifier = match loaded.notifier {
        Ok(n) => n,
        Err(f) => {
            debug!(reason = f.reason, "integration not usable; the integration controller will report it");
            return Ok(false);
        }
    };
    let created = event.meta().creation_timestamp.as_ref().map(|t| t.0).unwrap_or_else(jiff::Timestamp::now);
    let message = Message::from_event_spec(
        format!("{}.{}", job.event_uid, job.integration),
        &event.spec,
        Some(format!("{}/{}", job.namespace, job.event)),
        created,
    );
    let deadline = deadline_instant(created, ctx.settings.event_deadline);
    let report = ctx.engine.deliver(notifier.as_ref(), &message, deadline).await;
    info!(namespace = %job.namespace, event = %job.event, integration = %job.integration, attempts = report.attempts, outcome = ?outcome_name(&report.outcome), "delivery finished");
    ctx.metrics.delivery(notifier.service(), outcome_name(&report.outcome));
    write_delivery(ctx, &events, job, event, &report.outcome, report.attempts).await?;
    let under =
        counters::Under { generation: ni.meta().generation.unwrap_or_default(), secret_version: loaded.secret_version };
    counters::record(ctx, &job.namespace, &job.integration, &report.outcome, under).await?;
    Ok(true)
}

fn is_pending(event: &NotificationEvent, integration: &str) -> bool {
    let status = event.status.clone().unwrap_or_default();
    !status.phase.is_some_and(|p| p.is_final())
        && status.deliveries.iter().any(|d| d.integration == integration && d.phase == DeliveryPhase::Pending)
}

/// The deadline as a tokio instant.
fn deadline_instant(created: jiff::Timestamp, deadline: std::time::Duration) -> tokio::time::Instant {
    let left = created
        .checked_add(jiff::SignedDuration::try_from(deadline).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(jiff::Timestamp::MAX)
        .duration_since(jiff::Timestamp::now());
    tokio::time::Instant::now() + std::time::Duration::try_from(left).unwrap_or_default()
}

pub fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Dead(_) => "dead",
        Outcome::Rejected(_) => "rejected",
        Outcome::Exhausted(_) => "exhausted",
        Outcome::DeadlinePassed(_) => "expired",
    }
}

/// Write the delivery's result into the event's status (re-reading on conflicts).
async fn write_delivery(
    ctx: &Context,
    events: &Api<NotificationEvent>,
    job: &Job,
    read_before_send: NotificationEvent,
    outcome: &Outcome,
    attempts: u32,
) -> Result<(), Error> {
    // First try with the event as read before sending (usually still current:
    // one write, no read); after a conflict, read it again.
    let mut known = Some(read_before_send);
    for _ in 0..10 {
        let mut event = match known.take() {
            Some(event) => event,
            None => match events.get_opt(&job.event).await.map_err(Error::Kube)? {
                Some(event) => event,
                None => return Ok(()),
            },
        };
        if event.meta().uid.as_deref() != Some(job.event_uid.as_str()) {
            return Ok(());
        }
        let mut status = event.status.clone().unwrap_or_default();
        let now = Time(jiff::Timestamp::now());
        let Some(d) = status.deliveries.iter_mut().find(|d| d.integration == job.integration) else { return Ok(()) };
        d.attempts = d.attempts.saturating_add(attempts as i32);
        match outcome {
            Outcome::Delivered => {
                d.phase = DeliveryPhase::Delivered;
                d.reason = Some(reason::DELIVERED.into());
                d.last_error = None;
                d.delivered_at = Some(now.clone());
            }
            other => {
                let (why, message) = other.failure().expect("not delivered");
                d.phase = DeliveryPhase::Failed;
                d.reason =
                    Some(if matches!(other, Outcome::DeadlinePassed(_)) { reason::EXPIRED } else { why }.to_string());
                d.last_error = Some(message);
            }
        }
        plan::summarize(&mut status, None, false, &now);
        event.status = Some(status);
        match events.replace_status(&job.event, &PostParams::default(), &event).await {
            Ok(_) => {
                ctx.metrics.status_write("NotificationEvent");
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    Err(Error::Conflict(format!("event {}/{}", job.namespace, job.event)))
}
