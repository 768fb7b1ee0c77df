//! The integration controller: validate credentials, compute the status,
//! write it only when it changed, publish an Event on each bad transition.

pub mod credentials;
pub mod test_message;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::controller::Context;
use crate::crd::{IntegrationKey, NotificationIntegration};
use crate::record::{Error, Notice};
use crate::status::integration::{StatusInput, desired_status, ready_of, transition_events};

/// Reconcile one integration.
pub async fn reconcile(ni: Arc<NotificationIntegration>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = backoff_key(&ni);
    let result = reconcile_integration(ni, &ctx).await;
    if result.is_ok() {
        ctx.api_backoff.succeeded(&key);
    }
    result
}

fn backoff_key(ni: &NotificationIntegration) -> String {
    format!("integration/{}/{}", ni.namespace().unwrap_or_default(), ni.name_any())
}

async fn reconcile_integration(cached: Arc<NotificationIntegration>, ctx: &Arc<Context>) -> Result<Action, Error> {
    // Our own last write (counters) if the watch has not shown it yet.
    let ni = ctx.writes.integrations.freshest(cached);
    let namespace = ni.namespace().unwrap_or_default();
    let name = ni.name_any();
    if ni.meta().deletion_timestamp.is_some() {
        let key = IntegrationKey::new(&namespace, &name);
        ctx.credentials.checks().forget(&key);
        ctx.delivery.notifiers().forget(&key);
        ctx.metrics.forget_integration(&key);
        return Ok(Action::await_change());
    }
    let checked = credentials::check(&ni, ctx).await?;
    let recheck_in = checked.recheck_in;
    let input = StatusInput {
        generation: ni.meta().generation,
        manually_disabled: ni.spec.disabled,
        credentials: checked.condition,
        secret_version: checked.secret_version,
        subject: ctx.subject(&ni),
    };
    let now = Time(jiff::Timestamp::now());
    let api = ctx.store.integrations.as_ref();
    // Computed from whatever the write is based on: after a conflict with a
    // counter write, from the re-read object.
    let mut transition = None;
    let written = ctx
        .writes
        .integrations
        .write(api, &ctx.metrics, ni.clone(), |base| {
            let current = base.status.clone().unwrap_or_default();
            let desired = desired_status(&current, &input, &now);
            let changed = desired != current;
            let next = changed.then(|| {
                let mut updated = base.clone();
                updated.status = Some(desired.clone());
                updated
            });
            transition = Some((current, desired));
            next
        })
        .await?;
    match (written, transition) {
        (Some(written), Some((current, desired))) => {
            info!(%namespace, %name, ready = ?ready_of(&desired), "integration status updated");
            for ev in transition_events(&current, &desired) {
                let notice = Notice {
                    warning: ev.warning,
                    reason: ev.reason,
                    note: ev.note,
                    action: "ValidateCredentials",
                    related: None,
                };
                ctx.publish(&written.object_ref(&()), notice).await;
            }
        }
        _ => debug!(%namespace, %name, "integration status unchanged"),
    }
    test_message::answer(ctx.writes.integrations.freshest(ni), ctx).await?;
    Ok(Action::requeue(recheck_in))
}

/// What to do after a failed reconcile: try again after a backoff that
/// grows with each failure of this integration.
pub fn error_policy(ni: Arc<NotificationIntegration>, error: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.api_backoff.failed(&backoff_key(&ni));
    if error.is_conflict() {
        debug!(name = %ni.name_any(), "status write conflicted; retrying with the newer object");
    } else {
        warn!(namespace = ?ni.namespace(), name = %ni.name_any(), %error, "reconcile failed");
    }
    ctx.metrics.reconcile_error("NotificationIntegration");
    Action::requeue(wait)
}
