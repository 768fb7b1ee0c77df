//! Writing delivery outcomes into the integration's status (counters, last
//! error, auto-disable), with optimistic concurrency, and the Warning Event
//! when it disables the integration.
//!
//! Successes are batched per integration and written at most once per
//! `Settings::counter_flush` (the high-volume path costs no API write per
//! message); a counted failure is written at once, with the successes before
//! it, because it may disable the integration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

use crate::controller::{Context, Error};
use crate::crd::NotificationIntegration;
use crate::delivery::Outcome;
use crate::delivery::counting::{Batch, DeliveredUnder, record_batch};

/// What a delivery was made with: the spec generation and the Secret version
/// its notifier was built from (an auto-disable records them, so that a later
/// fix re-enables).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Under {
    pub generation: i64,
    pub secret_version: Option<String>,
}

#[derive(Default)]
struct Pending {
    batch: Batch,
    under: Under,
    flush_scheduled: bool,
}

/// Held while writing one integration's counters.
type Writer = Arc<tokio::sync::Mutex<()>>;

/// Successes waiting to be written, per integration.
#[derive(Default)]
pub struct CounterBatches {
    pending: Mutex<HashMap<(String, String), Pending>>,
    /// One writer per integration at a time, so that outcomes are applied in
    /// the order they happened (a success flushed after a later failure would
    /// wrongly reset `consecutiveErrors`).
    writers: Mutex<HashMap<(String, String), Writer>>,
}

impl CounterBatches {
    fn writer(&self, key: &(String, String)) -> Writer {
        self.writers.lock().unwrap().entry(key.clone()).or_default().clone()
    }

    /// Drop the writers of integrations `keep` says are gone, unless a
    /// write is pending or in progress; how many were dropped.
    pub fn retain(&self, keep: impl Fn(&(String, String)) -> bool) -> usize {
        let pending = self.pending.lock().unwrap();
        let mut writers = self.writers.lock().unwrap();
        let before = writers.len();
        writers.retain(|k, w| keep(k) || pending.contains_key(k) || Arc::strong_count(w) > 1);
        before - writers.len()
    }

    pub fn writers(&self) -> usize {
        self.writers.lock().unwrap().len()
    }

    fn take(&self, key: &(String, String)) -> (Batch, Under) {
        let mut pending = self.pending.lock().unwrap();
        match pending.remove(key) {
            Some(p) => (p.batch, p.under),
            None => (Batch::default(), Under::default()),
        }
    }
}

/// Record `outcome` on integration `namespace/name`.
pub async fn record(
    ctx: &Arc<Context>,
    namespace: &str,
    name: &str,
    outcome: &Outcome,
    under: Under,
) -> Result<(), Error> {
    let key = (namespace.to_string(), name.to_string());
    match outcome {
        Outcome::Delivered => {
            let schedule = {
                let mut pending = ctx.counters.pending.lock().unwrap();
                let p = pending.entry(key.clone()).or_default();
                p.batch.delivered += 1;
                p.batch.last_delivered = Some(Time(jiff::Timestamp::now()));
                p.under = under;
                !std::mem::replace(&mut p.flush_scheduled, true)
            };
            if schedule {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(ctx.settings.counter_flush).await;
                    let writer = ctx.counters.writer(&key);
                    let _turn = writer.lock().await;
                    let (batch, under) = ctx.counters.take(&key);
                    if let Err(e) = write(&ctx, &key.0, &key.1, &batch, under).await {
                        warn!(namespace = %key.0, name = %key.1, error = %e, "could not record deliveries");
                    }
                });
            }
            Ok(())
        }
        o if o.counts_as_error() => {
            let writer = ctx.counters.writer(&key);
            let _turn = writer.lock().await;
            let (mut batch, _) = ctx.counters.take(&key);
            batch.failure = Some(o.clone());
            write(ctx, namespace, name, &batch, under).await
        }
        _ => Ok(()),
    }
}

async fn write(ctx: &Context, namespace: &str, name: &str, batch: &Batch, under: Under) -> Result<(), Error> {
    let api: Api<NotificationIntegration> = Api::namespaced(ctx.client.clone(), namespace);
    for _ in 0..10 {
        let Some(mut ni) = api.get_opt(name).await.map_err(Error::Kube)? else { return Ok(()) };
        let current = ni.status.clone().unwrap_or_default();
        let under = DeliveredUnder {
            generation: under.generation,
            secret_version: under.secret_version.clone(),
            error_threshold: ni.spec.error_threshold,
            manually_disabled: ni.spec.disabled,
        };
        let (next, newly_disabled) = record_batch(&current, batch, &under, &Time(jiff::Timestamp::now()));
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
                    ctx.publish(&ni.object_ref(&()), true, "IntegrationDisabled", note, "Deliver").await;
                }
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    Err(Error::Conflict(format!("integration {namespace}/{name}")))
}
