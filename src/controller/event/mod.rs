//! The event controller: resolve an event's targets, skip disabled ones,
//! wait for missing or unready ones until the deadline, hand ready ones to
//! the per-integration workers, write what became known, and delete
//! finished events after their TTL.
//!
//! The reconcile is the one writer of an event's status (kube-runtime never
//! runs two reconciles of one object at once): the workers only report
//! outcomes ([`outcomes`](crate::delivery::outcomes)), and outcomes that arrive while a reconcile runs
//! are written together by the next one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::controller::Context;
use crate::crd::event::{REQUESTED_VIA, REQUESTED_VIA_SEND};
use crate::crd::{
    DeliveryPhase, EventPhase, IntegrationKey, NotificationEvent, NotificationEventStatus, NotificationIntegration,
};
use crate::delivery::queues::Job;
use crate::record::Error;
use crate::status::event::{self as plan, Known, PlanInput, deadline_of, reason};
use crate::status::integration::{Receivable, receivable};
use crate::store::Objects;

fn seconds(d: jiff::SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or_default()
}

fn backoff_key(ev: &NotificationEvent) -> String {
    format!("event/{}/{}", ev.namespace().unwrap_or_default(), ev.name_any())
}

/// Reconcile one event.
pub async fn reconcile(ev: Arc<NotificationEvent>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = backoff_key(&ev);
    let result = reconcile_event(ev, &ctx).await;
    if result.is_ok() {
        ctx.api_backoff.succeeded(&key);
    }
    result
}

/// What one look at an event decided.
struct Decision {
    status: NotificationEventStatus,
    deliver: Vec<String>,
    /// The known outcomes merged into `status`.
    known: Vec<Known>,
    /// Deliveries queued or being sent when it was decided.
    in_flight: bool,
    /// The status may wait: every target is queued and the event is young.
    defer: bool,
}

/// Plan `ev` (as `base` says it is now) with the known outcomes merged in.
fn decide(base: &NotificationEvent, uid: &str, ctx: &Context, now: jiff::Timestamp) -> Decision {
    let namespace = base.namespace().unwrap_or_default();
    // In this order: a worker records its outcome before it leaves the
    // queue, so a delivery not in flight here has its outcome (if any) in
    // `known` below.
    let in_flight = ctx.delivery.queues().in_flight(&namespace, &base.name_any());
    let known = ctx.delivery.outcomes().of(uid);
    let mut current = base.status.clone().unwrap_or_default();
    let expired = now >= deadline_of(base, ctx.settings.event_deadline, now);

    let mut no_targets = None;
    let mut names: Vec<String> = if !current.deliveries.is_empty() {
        current.deliveries.iter().map(|d| d.integration.clone()).collect()
    } else if let Some(r) = &base.spec.integration_ref {
        vec![r.name.clone()]
    } else if let Some(sel) = &base.spec.integration_selector {
        match Selector::try_from(sel.clone()) {
            Ok(selector) => {
                let mut names: Vec<String> = ctx
                    .caches
                    .integrations
                    .state()
                    .into_iter()
                    .filter(|ni| ni.namespace().as_deref() == Some(namespace.as_str()) && selector.matches(ni.labels()))
                    .map(|ni| ni.name_any())
                    .collect();
                names.sort();
                if names.len() > ctx.settings.max_targets {
                    no_targets = Some((
                        reason::TOO_MANY_TARGETS,
                        format!(
                            "spec.integrationSelector matches {} integrations, more than the {} one event may target (--max-targets)",
                            names.len(),
                            ctx.settings.max_targets
                        ),
                    ));
                    names.clear();
                }
                names
            }
            Err(e) => {
                no_targets = Some((reason::INVALID_SELECTOR, format!("spec.integrationSelector is invalid: {e}")));
                Vec::new()
            }
        }
    } else {
        no_targets = Some((reason::NO_MATCHING_INTEGRATIONS, "the event names no integration".to_string()));
        Vec::new()
    };
    // An invalid selector never becomes valid, nor does a too broad one get
    // narrower: fail now rather than at the deadline.
    let expired = expired || no_targets.as_ref().is_some_and(|(r, _)| plan::never_targets(r));
    // Whatever has an outcome is a target too (the spec may have changed
    // before the first write).
    for k in &known {
        if !names.contains(&k.integration) {
            names.push(k.integration.clone());
        }
    }
    // The targets are on record from now on, with what is known of them.
    for n in &names {
        if !current.deliveries.iter().any(|d| &d.integration == n) {
            current.deliveries.push(plan::queued(n));
        }
    }
    plan::apply(&mut current, &known);

    let targets = names
        .iter()
        .map(|n| {
            let ni = ctx.caches.integration(&namespace, n).map(|ni| ctx.writes.integrations.freshest(ni));
            (n.clone(), receivable(ni.as_deref()))
        })
        .collect();
    let now_time = Time(now);
    let planned = plan::plan(PlanInput {
        current: &current,
        generation: base.meta().generation,
        targets,
        in_flight: &in_flight,
        expired,
        no_targets,
        now: &now_time,
    });
    let age = base.meta().creation_timestamp.as_ref().map(|t| now.duration_since(t.0)).unwrap_or_default();
    let young = seconds(age) < ctx.settings.queued_status_after;
    // Only a single target may wait unwritten: a selector's targets are
    // resolved once, and must be on record before any of them is sent. An
    // event made by a follower's `send` is written at once too: its caller
    // cancels it by resourceVersion, which must move when it is queued.
    let single = base.spec.integration_ref.is_some();
    let from_send = base.annotations().get(REQUESTED_VIA).is_some_and(|v| v == REQUESTED_VIA_SEND);
    let defer = single
        && !from_send
        && young
        && base.status.is_none()
        && all_queued(&planned.status, &planned.deliver, &in_flight);
    Decision { status: planned.status, deliver: planned.deliver, known, in_flight: !in_flight.is_empty(), defer }
}

/// Whether every delivery is pending only because it is queued (nothing
/// for a person to see that the phase would not say).
fn all_queued(status: &NotificationEventStatus, deliver: &[String], in_flight: &HashSet<String>) -> bool {
    !status.deliveries.is_empty()
        && status.deliveries.iter().all(|d| {
            d.phase == DeliveryPhase::Pending
                && (deliver.contains(&d.integration) || in_flight.contains(&d.integration))
        })
}

async fn reconcile_event(cached: Arc<NotificationEvent>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let final_in_cache = cached.status.as_ref().and_then(|s| s.phase).is_some_and(EventPhase::is_final);
    // Our own last write, if the watch has not shown it yet.
    let ev = ctx.writes.events.freshest(cached);
    let namespace = ev.namespace().unwrap_or_default();
    let name = ev.name_any();
    if ev.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(uid) = ev.meta().uid.clone() else { return Ok(Action::await_change()) };
    let now = jiff::Timestamp::now();
    let api = ctx.store.events.as_ref();
    let status = ev.status.clone().unwrap_or_default();
    if status.phase.is_some_and(EventPhase::is_final) {
        if final_in_cache {
            // Every view of it from now on is final: its outcomes can go.
            ctx.delivery.outcomes().forget(&uid);
        }
        return expire_finished(&ev, &status, ctx, api, now).await;
    }

    // Outcomes of a fan-out that is still going are gathered for a moment.
    let batch_wait =
        ctx.delivery.outcomes().since_last_write(&uid).and_then(|ago| ctx.settings.outcome_batch.checked_sub(ago));
    let mut held = false;
    let mut decision = None;
    let written = ctx
        .writes
        .events
        .write(api, &ctx.metrics, ev.clone(), |base| {
            let d = decide(base, &uid, ctx, now);
            // Only outcomes to add, others still in flight, written a moment ago: wait.
            let only_outcomes = base.status.as_ref().is_some_and(|s| !s.deliveries.is_empty()) && d.deliver.is_empty();
            held = only_outcomes && d.in_flight && batch_wait.is_some();
            let write = (Some(&d.status) != base.status.as_ref() && !d.defer && !held).then(|| {
                let mut next = base.clone();
                next.status = Some(d.status.clone());
                next
            });
            decision = Some(d);
            write
        })
        .await?;
    let decision = decision.expect("decide ran");
    if let Some(written) = &written {
        let on_record = written.status.as_ref().map(|s| s.deliveries.as_slice()).unwrap_or_default();
        let carried: Vec<Known> = decision
            .known
            .iter()
            .filter(|k| on_record.iter().any(|d| d.integration == k.integration && d.phase != DeliveryPhase::Pending))
            .cloned()
            .collect();
        ctx.delivery.outcomes().written(&uid, &carried);
    }
    let current = written.unwrap_or(ev.clone());
    if written_phase_is_final(&current) {
        info!(%namespace, %name, phase = ?decision.status.phase, reason = ?decision.status.reason, "event finished");
        return expire_finished(&current, &decision.status, ctx, api, now).await;
    }
    if !decision.deliver.is_empty() {
        debug!(%namespace, %name, targets = decision.deliver.len(), deferred = decision.defer, "queued for delivery");
    }
    let created = current.meta().creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    for integration in decision.deliver {
        let job = Job {
            namespace: namespace.clone(),
            event: name.clone(),
            event_uid: uid.clone(),
            integration,
            snapshot: current.clone(),
        };
        ctx.delivery.enqueue(job, created.as_millisecond());
    }
    // Outcomes and integration changes re-trigger this event; otherwise
    // look again when the status is due (deferred) or at the deadline.
    if held {
        return Ok(Action::requeue(batch_wait.unwrap_or_default().max(Duration::from_millis(10))));
    }
    let deadline = deadline_of(&current, ctx.settings.event_deadline, now);
    if now >= deadline && decision.in_flight {
        // Past the deadline with deliveries queued: each one's outcome
        // (sent, or expired without a call) triggers this event again.
        return Ok(Action::await_change());
    }
    let mut next = seconds(deadline.duration_since(now));
    if decision.defer {
        let due =
            created.checked_add(jiff::SignedDuration::try_from(ctx.settings.queued_status_after).unwrap_or_default());
        next = next.min(due.map(|due| seconds(due.duration_since(now))).unwrap_or_default());
    }
    Ok(Action::requeue(next.max(Duration::from_millis(100))))
}

fn written_phase_is_final(ev: &NotificationEvent) -> bool {
    ev.status.as_ref().and_then(|s| s.phase).is_some_and(EventPhase::is_final)
}

/// Delete a finished event once its TTL has passed.
async fn expire_finished(
    ev: &NotificationEvent,
    status: &crate::crd::NotificationEventStatus,
    ctx: &Context,
    api: &dyn Objects<NotificationEvent>,
    now: jiff::Timestamp,
) -> Result<Action, Error> {
    let ttl = match ev.spec.ttl_seconds_after_finished {
        Some(secs) => Some(Duration::from_secs(secs.max(0) as u64)),
        None => ctx.settings.event_ttl,
    };
    let (Some(ttl), Some(done)) = (ttl, status.completion_time.as_ref()) else { return Ok(Action::await_change()) };
    // A TTL beyond the representable future means "keep".
    let Some(expires) = jiff::SignedDuration::try_from(ttl).ok().and_then(|d| done.0.checked_add(d).ok()) else {
        return Ok(Action::await_change());
    };
    if now < expires {
        return Ok(Action::requeue(seconds(expires.duration_since(now))));
    }
    let preconditions = kube::api::Preconditions { uid: ev.meta().uid.clone(), resource_version: None };
    match api.delete(&ev.namespace().unwrap_or_default(), &ev.name_any(), preconditions).await {
        Ok(_) => {
            debug!(namespace = ?ev.namespace(), name = %ev.name_any(), "finished event deleted after its TTL");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Action::await_change()),
        Err(e) => {
            let e = Error::Kube(e);
            ctx.metrics.api_error("NotificationEvent", e.code_label());
            Err(e)
        }
    }
}

/// What to do after a failed reconcile: try again after a backoff that
/// grows with each failure of this event (known outcomes stay known
/// meanwhile: nothing is sent again).
pub fn error_policy(ev: Arc<NotificationEvent>, error: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.api_backoff.failed(&backoff_key(&ev));
    if error.is_conflict() {
        debug!(name = %ev.name_any(), "event status write conflicted; retrying");
    } else {
        warn!(namespace = ?ev.namespace(), name = %ev.name_any(), %error, retry_in_ms = wait.as_millis() as u64, "event reconcile failed");
    }
    ctx.metrics.reconcile_error("NotificationEvent");
    Action::requeue(wait)
}

/// What about an integration matters to its events: whether it can receive
/// and why not, and its labels (selectors). Counter updates don't change it.
type Deliverability = (Receivable, std::collections::BTreeMap<String, String>);

fn deliverability(ni: &NotificationIntegration) -> Deliverability {
    (receivable(Some(ni)), ni.labels().clone())
}

/// Remembers what of each integration matters to its events, so that only changes to it
/// (not every counter update) send its waiting events back to the controller.
#[derive(Default)]
pub struct IntegrationChanges {
    seen: std::sync::Mutex<std::collections::HashMap<IntegrationKey, Deliverability>>,
}

impl IntegrationChanges {
    /// The events to look at again because integration `ni` changed.
    pub fn events_to_retry(
        &self,
        events: &kube::runtime::reflector::Store<NotificationEvent>,
        ni: &NotificationIntegration,
    ) -> Vec<ObjectRef<NotificationEvent>> {
        let key = IntegrationKey::of(ni);
        let now = deliverability(ni);
        if self.seen.lock().unwrap().insert(key, now.clone()).as_ref() == Some(&now) {
            return Vec::new();
        }
        events_for_integration(&events.state(), ni)
    }
}

/// The events to look at again when integration `ni` changes.
pub fn events_for_integration(
    events: &[Arc<NotificationEvent>],
    ni: &NotificationIntegration,
) -> Vec<ObjectRef<NotificationEvent>> {
    let namespace = ni.namespace();
    let name = ni.name_any();
    events
        .iter()
        .filter(|ev| ev.namespace() == namespace)
        .filter(|ev| !ev.status.as_ref().and_then(|s| s.phase).is_some_and(EventPhase::is_final))
        .filter(|ev| {
            let status_names = ev.status.as_ref().is_some_and(|s| s.deliveries.iter().any(|d| d.integration == name));
            let ref_names = ev.spec.integration_ref.as_ref().is_some_and(|r| r.name == name);
            let unresolved_selector =
                ev.spec.integration_selector.is_some() && ev.status.as_ref().is_none_or(|s| s.deliveries.is_empty());
            status_names || ref_names || unresolved_selector
        })
        .map(|ev| ObjectRef::from_obj(ev.as_ref()))
        .collect()
}
