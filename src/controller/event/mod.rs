//! The event controller: resolve an event's targets, skip disabled ones,
//! wait for missing or unready ones until the deadline, hand ready ones to
//! the per-integration workers, and delete finished events after their TTL.

pub mod plan;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::controller::{Context, Error};
use crate::crd::conditions::{self, DISABLED, READY};
use crate::crd::{EventPhase, NotificationEvent, NotificationIntegration};
use plan::{PlanInput, TargetState, reason};
use worker::Job;

/// The state of integration `name` for delivery.
fn target_state(ni: Option<Arc<NotificationIntegration>>) -> TargetState {
    let Some(ni) = ni else { return TargetState::Missing };
    let conds = ni.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    if ni.spec.disabled {
        return TargetState::Disabled { reason: "Manual".into(), message: "spec.disabled is true".into() };
    }
    if let Some(d) = conditions::find(&conds, DISABLED).filter(|d| d.status == "True") {
        return TargetState::Disabled { reason: d.reason.clone(), message: d.message.clone() };
    }
    match conditions::find(&conds, READY) {
        Some(r) if r.status == "True" => TargetState::Ready,
        Some(r) => TargetState::NotReady { reason: r.reason.clone(), message: r.message.clone() },
        None => TargetState::NotReady {
            reason: "Checking".into(),
            message: "the integration has not been checked yet".into(),
        },
    }
}

fn seconds(d: jiff::SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or_default()
}

/// Reconcile one event.
pub async fn reconcile(ev: Arc<NotificationEvent>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = ev.namespace().unwrap_or_default();
    let name = ev.name_any();
    if ev.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = jiff::Timestamp::now();
    let status = ev.status.clone().unwrap_or_default();
    let api: Api<NotificationEvent> = Api::namespaced(ctx.client.clone(), &namespace);

    if status.phase.is_some_and(EventPhase::is_final) {
        return expire_finished(&ev, &status, &ctx, &api, now).await;
    }

    let created = ev.meta().creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    // A deadline beyond the representable future never passes.
    let deadline = jiff::SignedDuration::try_from(ctx.settings.event_deadline)
        .ok()
        .and_then(|d| created.checked_add(d).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    let expired = now >= deadline;

    let mut no_targets = None;
    let names: Vec<String> = if !status.deliveries.is_empty() {
        status.deliveries.iter().map(|d| d.integration.clone()).collect()
    } else if let Some(r) = &ev.spec.integration_ref {
        vec![r.name.clone()]
    } else if let Some(sel) = &ev.spec.integration_selector {
        match Selector::try_from(sel.clone()) {
            Ok(selector) => {
                let mut names: Vec<String> = ctx
                    .integrations
                    .state()
                    .into_iter()
                    .filter(|ni| ni.namespace().as_deref() == Some(namespace.as_str()) && selector.matches(ni.labels()))
                    .map(|ni| ni.name_any())
                    .collect();
                names.sort();
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
    // An invalid selector never becomes valid: fail now rather than at the deadline.
    let expired = expired || no_targets.as_ref().is_some_and(|(r, _)| *r == reason::INVALID_SELECTOR);

    let targets = names
        .iter()
        .map(|n| (n.clone(), target_state(ctx.integrations.get(&ObjectRef::new(n).within(&namespace)))))
        .collect();
    let in_flight = ctx.dispatcher.in_flight(&namespace, &name);
    let now_time = Time(now);
    let planned = plan::plan(PlanInput {
        current: &status,
        generation: ev.meta().generation,
        targets,
        in_flight: &in_flight,
        expired,
        no_targets,
        now: &now_time,
    });

    let mut written = (*ev).clone();
    if planned.status != status {
        written.status = Some(planned.status.clone());
        written = api.replace_status(&name, &PostParams::default(), &written).await.map_err(Error::Kube)?;
        ctx.metrics.status_write("NotificationEvent");
        debug!(%namespace, %name, phase = ?planned.status.phase, "event status updated");
    }
    if planned.status.phase.is_some_and(EventPhase::is_final) {
        info!(%namespace, %name, phase = ?planned.status.phase, reason = ?planned.status.reason, "event finished");
        return expire_finished(&written, &planned.status, &ctx, &api, now).await;
    }
    if let Some(uid) = ev.meta().uid.clone() {
        for integration in planned.deliver {
            let job = Job { namespace: namespace.clone(), event: name.clone(), event_uid: uid.clone(), integration };
            ctx.dispatcher.enqueue(&ctx, job, created.as_millisecond());
        }
    }
    // Integration changes re-trigger this event; otherwise look again at the deadline.
    Ok(Action::requeue(seconds(deadline.duration_since(now)).max(Duration::from_millis(100))))
}

/// Delete a finished event once its TTL has passed.
async fn expire_finished(
    ev: &NotificationEvent,
    status: &crate::crd::NotificationEventStatus,
    ctx: &Context,
    api: &Api<NotificationEvent>,
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
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: ev.meta().uid.clone(), resource_version: None }),
        ..DeleteParams::default()
    };
    match api.delete(&ev.name_any(), &params).await {
        Ok(_) => {
            debug!(namespace = ?ev.namespace(), name = %ev.name_any(), "finished event deleted after its TTL");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// What to do after a failed reconcile: try again soon.
pub fn error_policy(ev: Arc<NotificationEvent>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        debug!(name = %ev.name_any(), "event status write conflicted; retrying");
    } else {
        warn!(namespace = ?ev.namespace(), name = %ev.name_any(), %error, "event reconcile failed");
    }
    ctx.metrics.reconcile_error("NotificationEvent");
    Action::requeue(ctx.settings.error_requeue)
}

/// What about an integration matters to its events: whether it can be
/// delivered to and why not, and its labels (selectors). Counter updates
/// don't change it.
type Deliverability = (Vec<(String, String, String)>, bool, std::collections::BTreeMap<String, String>);

fn deliverability(ni: &NotificationIntegration) -> Deliverability {
    let conds = ni.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let state = [READY, DISABLED]
        .iter()
        .filter_map(|t| conditions::find(conds, t))
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect();
    (state, ni.spec.disabled, ni.labels().clone())
}

/// Remembers what of each integration matters to its events, so that only changes to it
/// (not every counter update) send its waiting events back to the controller.
#[derive(Default)]
pub struct IntegrationChanges {
    seen: std::sync::Mutex<std::collections::HashMap<(Option<String>, String), Deliverability>>,
}

impl IntegrationChanges {
    /// The events to look at again because integration `ni` changed.
    pub fn events_to_retry(
        &self,
        events: &[Arc<NotificationEvent>],
        ni: &NotificationIntegration,
    ) -> Vec<ObjectRef<NotificationEvent>> {
        let key = (ni.namespace(), ni.name_any());
        let now = deliverability(ni);
        if self.seen.lock().unwrap().insert(key, now.clone()).as_ref() == Some(&now) {
            return Vec::new();
        }
        events_for_integration(events, ni)
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
