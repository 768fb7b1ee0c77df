//! The integration controller: validate credentials, compute the status,
//! write it only when it changed, publish an Event on each bad transition.

pub mod counters;
pub mod credentials;
pub mod status;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::controller::{Context, Error};
use crate::crd::NotificationIntegration;
use status::{StatusInput, desired_status, transition_events};

/// Reconcile one integration.
pub async fn reconcile(ni: Arc<NotificationIntegration>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = ni.namespace().unwrap_or_default();
    let name = ni.name_any();
    if ni.meta().deletion_timestamp.is_some() {
        ctx.checks.forget(&namespace, &name);
        ctx.notifiers.forget(&namespace, &name);
        return Ok(Action::await_change());
    }
    let checked = credentials::check(&ni, &ctx).await?;
    let recheck_in = checked.recheck_in;
    let input = StatusInput {
        generation: ni.meta().generation,
        manually_disabled: ni.spec.disabled,
        credentials: checked.condition,
        secret_version: checked.secret_version,
    };
    let current = ni.status.clone().unwrap_or_default();
    let desired = desired_status(&current, &input, &Time(jiff::Timestamp::now()));
    if desired != current {
        let mut updated = (*ni).clone();
        updated.status = Some(desired.clone());
        let api: Api<NotificationIntegration> = Api::namespaced(ctx.client.clone(), &namespace);
        api.replace_status(&name, &PostParams::default(), &updated).await.map_err(Error::Kube)?;
        ctx.metrics.status_write("NotificationIntegration");
        info!(%namespace, %name, ready = ?status::ready_of(&desired), "integration status updated");
        for ev in transition_events(&current, &desired) {
            ctx.publish(&ni.object_ref(&()), ev.warning, ev.reason, ev.note, "ValidateCredentials").await;
        }
    } else {
        debug!(%namespace, %name, "integration status unchanged");
    }
    Ok(Action::requeue(recheck_in))
}

/// What to do after a failed reconcile: try again soon.
pub fn error_policy(ni: Arc<NotificationIntegration>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        debug!(name = %ni.name_any(), "status write conflicted; retrying with the newer object");
    } else {
        warn!(namespace = ?ni.namespace(), name = %ni.name_any(), %error, "reconcile failed");
    }
    ctx.metrics.reconcile_error("NotificationIntegration");
    Action::requeue(ctx.settings.error_requeue)
}
