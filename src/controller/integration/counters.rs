//! Writing one delivery's outcome into the integration's status (counters,
//! last error, auto-disable), with optimistic concurrency, and the Warning
//! Event when it disables the integration.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use crate::controller::{Context, Error};
use crate::crd::NotificationIntegration;
use crate::delivery::Outcome;
use crate::delivery::counting::{DeliveredUnder, record_outcome};

/// Record `outcome` on integration `namespace/name`. Retries on conflicts.
pub async fn record(
    ctx: &Arc<Context>,
    namespace: &str,
    name: &str,
    outcome: &Outcome,
    secret_version: Option<String>,
) -> Result<(), Error> {
    if !(matches!(outcome, Outcome::Delivered) || outcome.counts_as_error()) {
        return Ok(());
    }
    let api: Api<NotificationIntegration> = Api::namespaced(ctx.client.clone(), namespace);
    for _ in 0..10 {
        let Some(mut ni) = api.get_opt(name).await.map_err(Error::Kube)? else { return Ok(()) };
        let current = ni.status.clone().unwrap_or_default();
        let under = DeliveredUnder {
            generation: ni.meta().generation.unwrap_or_default(),
            secret_version: secret_version.clone(),
            error_threshold: ni.spec.error_threshold,
            manually_disabled: ni.spec.disabled,
        };
        let (next, newly_disabled) = record_outcome(&current, outcome, &under, &Time(jiff::Timestamp::now()));
        if next == current {
            return Ok(());
        }
        ni.status = Some(next.clone());
        match api.replace_status(name, &PostParams::default(), &ni).await {
            Ok(_) => {
                ctx.metrics.status_write("NotificationIntegration");
                if newly_disabled {
                    info!(%namespace, %name, errors = next.consecutive_errors, "integration disabled after repeated errors");
                    let note = format!(
                        "disabled after {} consecutive failed deliveries; last error: {}",
                        next.consecutive_errors,
                        next.last_error.as_ref().map(|e| format!("{}: {}", e.reason, e.message)).unwrap_or_default()
                    );
                    let event = Event {
                        type_: EventType::Warning,
                        reason: "IntegrationDisabled".into(),
                        note: Some(note),
                        action: "Deliver".into(),
                        secondary: None,
                    };
                    if let Err(e) = ctx.recorder.publish(&event, &ni.object_ref(&())).await {
                        warn!(%namespace, %name, error = %e, "could not publish a Kubernetes Event");
                    }
                }
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    warn!(%namespace, %name, "gave up recording a delivery outcome after repeated conflicts");
    Ok(())
}
