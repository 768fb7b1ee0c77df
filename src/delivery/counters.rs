//! Writing delivery outcomes into the integration's status (counters, last
//! error, auto-disable), and the Warning Event when it disables the
//! integration.
//!
//! Successes are batched per integration and written at most once per
//! `Settings::counter_flush` (the high-volume path costs no API write per
//! message); a counted failure is written at once, with the successes before
//! it, because it may disable the integration. Nothing is dropped: a batch
//! whose write fails is kept and written again after a backoff, a failure is
//! retried until it is on record (its queue waits meanwhile: the next
//! delivery must know whether the integration is still enabled), and
//! [`Delivery::flush_counters`] writes what is pending before shutdown or Lease release.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use tracing::{info, warn};

use super::Delivery;
use crate::crd::IntegrationKey;
use crate::record::{Error, Notice, backoff_delay, publish};
use crate::status::integration::{Batch, Subject, Under, auto_disabled_note, record_batch};
use crate::status::outcome::Outcome;

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
    pending: Mutex<HashMap<IntegrationKey, Pending>>,
    /// One writer per integration at a time, so that outcomes are applied in
    /// the order they happened (a success flushed after a later failure would
    /// wrongly reset `consecutiveErrors`).
    writers: Mutex<HashMap<IntegrationKey, Writer>>,
}

impl CounterBatches {
    fn writer(&self, key: &IntegrationKey) -> Writer {
        self.writers.lock().unwrap().entry(key.clone()).or_default().clone()
    }

    /// Drop the writers of integrations `keep` says are gone, unless a
    /// write is pending or in progress; how many were dropped.
    pub fn retain(&self, keep: impl Fn(&IntegrationKey) -> bool) -> usize {
        let pending = self.pending.lock().unwrap();
        let mut writers = self.writers.lock().unwrap();
        let before = writers.len();
        writers.retain(|k, w| keep(k) || pending.contains_key(k) || Arc::strong_count(w) > 1);
        before - writers.len()
    }

    pub fn writers(&self) -> usize {
        self.writers.lock().unwrap().len()
    }

    /// Successes not written yet, over all integrations.
    pub fn unwritten(&self) -> i64 {
        self.pending.lock().unwrap().values().map(|p| p.batch.delivered).sum()
    }

    fn take(&self, key: &IntegrationKey) -> (Batch, Under) {
        let mut pending = self.pending.lock().unwrap();
        match pending.remove(key) {
            Some(p) => (p.batch, p.under),
            None => (Batch::default(), Under::default()),
        }
    }

    /// Put back successes whose write failed (newer ones may have come meanwhile).
    fn put_back(&self, key: &IntegrationKey, batch: Batch, under: Under) {
        let mut pending = self.pending.lock().unwrap();
        let p = pending.entry(key.clone()).or_insert_with(|| Pending { under, ..Pending::default() });
        p.batch.delivered += batch.delivered;
        if p.batch.last_delivered.is_none() {
            p.batch.last_delivered = batch.last_delivered;
        }
        p.flush_scheduled = true;
    }
}

impl Delivery {
    /// Record `outcome` on integration `key`. Returns once a counted failure is
    /// on record (retrying API errors with backoff); successes are only queued
    /// for the next flush.
    pub async fn count(self: &Arc<Self>, key: IntegrationKey, outcome: &Outcome, under: Under) {
        match outcome {
            Outcome::Delivered => {
                let schedule = {
                    let mut pending = self.counters.pending.lock().unwrap();
                    let p = pending.entry(key.clone()).or_default();
                    p.batch.delivered += 1;
                    p.batch.last_delivered = Some(Time(jiff::Timestamp::now()));
                    p.under = under;
                    !std::mem::replace(&mut p.flush_scheduled, true)
                };
                if schedule {
                    let this = self.clone();
                    tokio::spawn(async move { this.flush_later(key).await });
                }
            }
            o if o.counts_as_error() => {
                let writer = self.counters.writer(&key);
                let _turn = writer.lock().await;
                let (mut batch, _) = self.counters.take(&key);
                batch.failure = Some(o.clone());
                let mut failures = 0;
                while let Err(e) = self.write_counters(&key.namespace, &key.name, &batch, &under).await {
                    failures += 1;
                    let wait = backoff_delay(self.settings.error_requeue, self.settings.error_requeue_max, failures);
                    warn!(integration = %key, error = %e, retry_in_ms = wait.as_millis() as u64, "could not record a failed delivery; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
            _ => {}
        }
    }

    /// Write an integration's batched successes after `counter_flush`, and again
    /// after a backoff for as long as the write fails.
    async fn flush_later(self: &Arc<Self>, key: IntegrationKey) {
        let mut wait = self.settings.counter_flush;
        let mut failures = 0;
        loop {
            tokio::time::sleep(wait).await;
            let writer = self.counters.writer(&key);
            let _turn = writer.lock().await;
            let (batch, under) = self.counters.take(&key);
            if batch.delivered == 0 {
                return;
            }
            match self.write_counters(&key.namespace, &key.name, &batch, &under).await {
                Ok(()) => return,
                Err(e) => {
                    failures += 1;
                    wait = backoff_delay(self.settings.error_requeue, self.settings.error_requeue_max, failures);
                    warn!(integration = %key, error = %e, retry_in_ms = wait.as_millis() as u64, "could not record deliveries; retrying");
                    self.counters.put_back(&key, batch, under);
                }
            }
        }
    }

    /// Write every pending batch now (before shutdown or Lease release),
    /// retrying until `deadline`; whether all were written.
    pub async fn flush_counters(&self, deadline: tokio::time::Instant) -> bool {
        let mut failures = 0;
        loop {
            let keys: Vec<IntegrationKey> = self.counters.pending.lock().unwrap().keys().cloned().collect();
            let mut all = true;
            for key in keys {
                let writer = self.counters.writer(&key);
                let _turn = writer.lock().await;
                let (batch, under) = self.counters.take(&key);
                if batch.delivered == 0 {
                    continue;
                }
                if let Err(e) = self.write_counters(&key.namespace, &key.name, &batch, &under).await {
                    warn!(integration = %key, error = %e, "could not record deliveries before stopping");
                    self.counters.put_back(&key, batch, under);
                    all = false;
                }
            }
            if all {
                return true;
            }
            failures += 1;
            let wait = backoff_delay(self.settings.error_requeue, self.settings.error_requeue_max, failures);
            if tokio::time::Instant::now() + wait >= deadline {
                return false;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Apply `batch` to the integration's status: from the watch cache (or our
    /// own newer write), re-read only on a conflict.
    async fn write_counters(&self, namespace: &str, name: &str, batch: &Batch, under: &Under) -> Result<(), Error> {
        let api = self.store.integrations.as_ref();
        let base = match self.caches.integration(namespace, name) {
            Some(cached) => self.writes.integrations.freshest(cached),
            None => match api.get(namespace, name).await.map_err(Error::Kube) {
                Ok(Some(ni)) => Arc::new(ni),
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.metrics.api_error("NotificationIntegration", e.code_label());
                    return Err(e);
                }
            },
        };
        let now = Time(jiff::Timestamp::now());
        let mut disabled = None;
        let written = self
            .writes
            .integrations
            .write(api, &self.metrics, base, |ni| {
                let current = ni.status.clone().unwrap_or_default();
                let (next, newly_disabled) = record_batch(&current, batch, under, ni, &now);
                disabled = Some(newly_disabled);
                (next != current).then(|| {
                    let mut updated = ni.clone();
                    updated.status = Some(next);
                    updated
                })
            })
            .await?;
        if let (Some(ni), Some(true)) = (written, disabled) {
            let status = ni.status.clone().unwrap_or_default();
            info!(%namespace, %name, errors = status.consecutive_errors, "integration disabled after repeated errors");
            let note = auto_disabled_note(&status, &Subject::of(&ni));
            let notice =
                Notice { warning: true, reason: "IntegrationDisabled", note, action: "Deliver", related: None };
            publish(self.store.notices.as_ref(), &ni.object_ref(&()), notice).await;
        }
        Ok(())
    }
}
