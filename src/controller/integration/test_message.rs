//! The test message of an integration (`kube-notify.io/send-test`): sent
//! once per new value of the annotation through the synchronous send path
//! (rate limits, retries, counters, auto-disable: it counts like any
//! delivery), its outcome put on the integration's `status.testMessage`
//! and in an Event. The annotation is never removed: it is the user's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};
use tokio::time::Instant;
use tracing::info;

use crate::controller::Context;
use crate::crd::{IntegrationKey, NotificationIntegration, TestMessageStatus};
use crate::delivery::send_now::NotPrepared;
use crate::record::{Error, Notice};
use crate::status::test_message::{self as status, Step};

/// Outcomes known to this process and not yet on record (their write
/// failed): written by the next reconcile instead of `Interrupted`.
#[derive(Default)]
pub struct KnownOutcomes(Mutex<HashMap<IntegrationKey, TestMessageStatus>>);

impl KnownOutcomes {
    fn take(&self, key: &IntegrationKey, request: &str) -> Option<TestMessageStatus> {
        let mut known = self.0.lock().unwrap();
        match known.get(key) {
            Some(t) if t.request == request => known.remove(key),
            Some(_) => {
                // A newer request replaced it: the old outcome no longer shows.
                known.remove(key);
                None
            }
            None => None,
        }
    }

    fn keep(&self, key: IntegrationKey, test: TestMessageStatus) {
        self.0.lock().unwrap().insert(key, test);
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
    if let Some(known) = ctx.test_messages.take(&key, &request) {
        return record(ni, ctx, &key, known).await;
    }
    match status::next_step(&ni, &request) {
        Step::Answered | Step::Wait => Ok(()),
        Step::Skip { reason, message } => {
            record(ni, ctx, &key, status::skipped(&request, &reason, &message, &now())).await
        }
        Step::Interrupted => record(ni, ctx, &key, status::interrupted(&request, &now())).await,
        Step::Send => {
            // Everything that can fail before the send happens before
            // `Sending` is on record: after it, a stop means Interrupted.
            let prepared = match ctx.delivery.prepare(ni.clone()).await {
                Ok(p) => p,
                Err(NotPrepared::Api(e)) => return Err(e),
                Err(NotPrepared::Unusable(f)) => {
                    let skipped = status::skipped(&request, f.reason, &f.message, &now());
                    return record(ni, ctx, &key, skipped).await;
                }
            };
            let Some(ni) = write(ni, ctx, &status::sending(&request, &now())).await? else { return Ok(()) };
            info!(integration = %key, request = %request, "sending a test message");
            let message = status::message(&key, &request, jiff::Timestamp::now());
            let deadline = Instant::now() + ctx.settings.send_timeout;
            let sent = ctx.delivery.clone().send_now(prepared, message, vec![], deadline).await;
            record(ni, ctx, &key, status::finished(&request, &sent.report, &now())).await
        }
    }
}

/// Put `test` on the integration's status, then tell it in an Event. A failed
/// write keeps `test` for the next reconcile.
async fn record(
    ni: Arc<NotificationIntegration>,
    ctx: &Arc<Context>,
    key: &IntegrationKey,
    test: TestMessageStatus,
) -> Result<(), Error> {
    let written = match write(ni, ctx, &test).await {
        Ok(written) => written,
        Err(e) => {
            ctx.test_messages.keep(key.clone(), test);
            return Err(e);
        }
    };
    if let (Some(written), Some((warning, reason, note))) = (written, status::notice(&test)) {
        info!(integration = %key, request = %test.request, phase = ?test.phase, "test message on record");
        let notice = Notice { warning, reason, note, action: "SendTestMessage", related: None };
        ctx.publish(&written.object_ref(&()), notice).await;
    }
    Ok(())
}

/// Write `test` as the integration's test message (through the one status
/// writer of integrations); `None` when the integration is gone or says so already.
async fn write(
    ni: Arc<NotificationIntegration>,
    ctx: &Arc<Context>,
    test: &TestMessageStatus,
) -> Result<Option<Arc<NotificationIntegration>>, Error> {
    let api = ctx.store.integrations.as_ref();
    let name = ni.name_any();
    let written =
        ctx.writes.integrations.write(api, &ctx.metrics, ni, |base| status::with_test_message(base, test)).await?;
    if written.is_none() {
        tracing::debug!(%name, "test message status unchanged or integration gone");
    }
    Ok(written)
}
