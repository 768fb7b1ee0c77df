//! The test message of an integration (`kube-notify.io/send-test`): sent
//! once per new value of the annotation through the synchronous send path
//! (rate limits, retries, counters, auto-disable: it counts like any
//! delivery), its outcome put on the integration's `status.testMessage`
//! and in an Event. The annotation is never removed: it is the user's.
//!
//! The reconcile decides and records `Sending`; the send and the record of
//! its outcome run in a task that a stopping leader's drain waits for (as
//! for a queued delivery), so a rollout does not cut a test short, and the
//! reconcile does not hold a controller slot for a send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::controller::Context;
use crate::crd::{IntegrationKey, NotificationIntegration, TestMessageStatus};
use crate::delivery::send_now::NotPrepared;
use crate::record::{Error, Notice, backoff_delay};
use crate::status::test_message::{self as status, Step};

/// What this process knows of test messages beyond what is on record.
#[derive(Default)]
pub struct KnownOutcomes(Mutex<HashMap<IntegrationKey, Known>>);

#[derive(Clone, Debug)]
enum Known {
    /// This process is sending `request` now: `Sending` on record is ours.
    Sending(String),
    /// The outcome, until it is on record (a failed write is retried with it).
    Finished(TestMessageStatus),
}

impl KnownOutcomes {
    fn get(&self, key: &IntegrationKey, request: &str) -> Option<Known> {
        let known = self.0.lock().unwrap();
        known
            .get(key)
            .filter(|k| match k {
                Known::Sending(r) => r == request,
                Known::Finished(t) => t.request == request,
            })
            .cloned()
    }

    fn set(&self, key: &IntegrationKey, known: Known) {
        self.0.lock().unwrap().insert(key.clone(), known);
    }

    /// `test` is on record: forget it (unless something newer replaced it).
    fn recorded(&self, key: &IntegrationKey, test: &TestMessageStatus) {
        let mut known = self.0.lock().unwrap();
        if matches!(known.get(key), Some(Known::Finished(t)) if t == test) {
            known.remove(key);
        }
    }

    /// Forget integrations that no longer exist.
    pub fn retain(&self, exists: impl Fn(&IntegrationKey) -> bool) -> usize {
        let mut known = self.0.lock().unwrap();
        let before = known.len();
        known.retain(|k, _| exists(k));
        before - known.len()
    }
}

/// Answer the integration's open test request, if any.
pub async fn answer(ni: Arc<NotificationIntegration>, ctx: &Arc<Context>) -> Result<(), Error> {
    let Some(request) = status::requested(&ni) else { return Ok(()) };
    let key = IntegrationKey::of(&ni);
    let now = || Time(jiff::Timestamp::now());
    match ctx.test_messages.get(&key, &request) {
        Some(Known::Sending(_)) => return Ok(()),
        Some(Known::Finished(test)) => return record(ni, ctx, &key, test).await,
        None => {}
    }
    let subject = ctx.subject(&ni);
    match status::next_step(&ni, &request) {
        Step::Answered | Step::Wait => Ok(()),
        Step::Skip { reason, message } => {
            record(ni, ctx, &key, status::skipped(&request, &reason, &message, &subject, &now())).await
        }
        Step::Interrupted => {
            let test = status::interrupted(&request, &now());
            let written = write(ni, ctx, &test, |b| status::sending_on_record(b, &request)).await?;
            publish(ctx, written, &test).await;
            Ok(())
        }
        Step::Send => {
            // Draining (stopping, or no longer leading): the next leader sends it.
            let Some(running) = ctx.delivery.begin() else { return Ok(()) };
            // Everything that can fail before the send happens before
            // `Sending` is on record: after it, a stop means Interrupted.
            let prepared = match ctx.delivery.prepare(ni.clone()).await {
                Ok(p) => p,
                Err(NotPrepared::Api(e)) => return Err(e),
                Err(NotPrepared::Unusable(f)) => {
                    let skipped = status::skipped(&request, f.reason, &f.message, &subject, &now());
                    return record(ni, ctx, &key, skipped).await;
                }
            };
            let sending = status::sending(&request, &now());
            // Decided again on the object the write is based on: after a
            // conflict, a fresher object may show the request answered.
            let written = write(ni, ctx, &sending, |b| status::next_step(b, &request) == Step::Send).await?;
            let Some(ni) = written else { return Ok(()) };
            ctx.test_messages.set(&key, Known::Sending(request.clone()));
            info!(integration = %key, request = %request, "sending a test message");
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let message = status::message(&key, &request, jiff::Timestamp::now());
                let deadline = Instant::now() + ctx.settings.send_timeout;
                let sent = ctx.delivery.clone().send_now(prepared, message, vec![], deadline).await;
                let test = status::finished(&request, &sent.report, &subject, &now());
                ctx.test_messages.set(&key, Known::Finished(test.clone()));
                record_until_done(ni, &ctx, &key, test).await;
                drop(running);
            });
            Ok(())
        }
    }
}

/// Record a sent test message's outcome, trying again after API errors
/// (with the controllers' backoff) up to the send's own deadline; what is
/// still not on record then is written by the integration's next reconcile.
async fn record_until_done(
    ni: Arc<NotificationIntegration>,
    ctx: &Arc<Context>,
    key: &IntegrationKey,
    test: TestMessageStatus,
) {
    let give_up = Instant::now() + ctx.settings.send_timeout;
    for attempt in 0.. {
        let base = ctx.writes.integrations.freshest(ni.clone());
        match record(base, ctx, key, test.clone()).await {
            Ok(()) => return,
            Err(e) => {
                let wait = backoff_delay(ctx.settings.error_requeue, ctx.settings.error_requeue_max, attempt);
                if Instant::now() + wait > give_up {
                    warn!(integration = %key, error = %e, "the test message's outcome is not on record yet; the next reconcile writes it");
                    return;
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Put the outcome `test` on the integration's status unless a fresher
/// object has one for its request already, then tell it in an Event.
async fn record(
    ni: Arc<NotificationIntegration>,
    ctx: &Arc<Context>,
    key: &IntegrationKey,
    test: TestMessageStatus,
) -> Result<(), Error> {
    let written = write(ni, ctx, &test, |b| !status::answered(b, &test.request)).await?;
    ctx.test_messages.recorded(key, &test);
    publish(ctx, written, &test).await;
    Ok(())
}

/// The Event of a test message that was just put on record.
async fn publish(ctx: &Arc<Context>, written: Option<Arc<NotificationIntegration>>, test: &TestMessageStatus) {
    if let (Some(written), Some((warning, reason, note))) = (written, status::notice(test)) {
        info!(namespace = ?written.namespace(), name = %written.name_any(), request = %test.request, phase = ?test.phase, "test message on record");
        let notice = Notice { warning, reason, note, action: "SendTestMessage", related: None };
        ctx.publish(&written.object_ref(&()), notice).await;
    }
}

/// Write `test` as the integration's test message through the one status
/// writer of integrations, if `may` allows it on the object the write is
/// based on (re-read after a conflict); `None` when it did not, when the
/// integration is gone, or when it says so already.
async fn write(
    ni: Arc<NotificationIntegration>,
    ctx: &Arc<Context>,
    test: &TestMessageStatus,
    may: impl Fn(&NotificationIntegration) -> bool,
) -> Result<Option<Arc<NotificationIntegration>>, Error> {
    let api = ctx.store.integrations.as_ref();
    ctx.writes
        .integrations
        .write(api, &ctx.metrics, ni, |base| if may(base) { status::with_test_message(base, test) } else { None })
        .await
}
