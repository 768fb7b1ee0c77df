//! Checking an integration's credentials: read its Secret (from its own
//! namespace only), build the notifier, ask the service. Results are kept per
//! integration and reused until the spec or the Secret changes or the slow
//! re-validation period is due, so a status write never causes a new probe.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tokio::time::Instant;

use super::status::{CredentialsCondition, reason};
use crate::controller::{Context, Error};
use crate::crd::NotificationIntegration;
use crate::crd::conditions::ConditionStatus;
use crate::notifier::{self, classify::Verdict};

/// The last check of one integration and what it was made against.
#[derive(Clone, Debug)]
struct CheckRecord {
    uid: Option<String>,
    generation: Option<i64>,
    secret_version: Option<String>,
    condition: CredentialsCondition,
    next_check: Instant,
    transient_failures: u32,
}

/// Per-integration check results, keyed by namespace/name.
#[derive(Default)]
pub struct CheckCache {
    records: Mutex<HashMap<(String, String), CheckRecord>>,
}

impl CheckCache {
    pub fn forget(&self, namespace: &str, name: &str) {
        self.records.lock().unwrap().remove(&(namespace.to_string(), name.to_string()));
    }
}

/// The credentials condition for `ni`, and when it should be checked again.
pub async fn check(ni: &NotificationIntegration, ctx: &Context) -> Result<(CredentialsCondition, Duration), Error> {
    let namespace = ni.namespace().unwrap_or_default();
    let name = ni.name_any();
    let secret_name = ni.spec.secret_ref.name.clone();
    let key = (namespace.clone(), name.clone());
    let uid = ni.meta().uid.clone();
    let generation = ni.meta().generation;
    let now = Instant::now();

    // The Secret's version as the metadata watch last saw it: no API call.
    let seen_version = ctx
        .secrets
        .get(&ObjectRef::new(&secret_name).within(&namespace))
        .and_then(|m| m.metadata.resource_version.clone());
    let previous = ctx.checks.records.lock().unwrap().get(&key).cloned();
    if let Some(rec) = &previous
        && rec.uid == uid
        && rec.generation == generation
        && rec.secret_version == seen_version
        && now < rec.next_check
    {
        return Ok((rec.condition.clone(), rec.next_check - now));
    }

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = secrets.get_opt(&secret_name).await.map_err(Error::Kube)?;
    let secret_version = secret.as_ref().and_then(|s| s.metadata.resource_version.clone());
    let same_inputs = previous
        .as_ref()
        .is_some_and(|r| r.uid == uid && r.generation == generation && r.secret_version == secret_version);
    // A transient failure keeps a valid result for the same spec and Secret.
    let was_valid = same_inputs && previous.as_ref().is_some_and(|p| p.condition.status == ConditionStatus::True);

    let (condition, wait, transient) = match secret {
        None => (
            CredentialsCondition {
                status: ConditionStatus::False,
                reason: reason::SECRET_NOT_FOUND.into(),
                message: format!("Secret {secret_name:?} was not found in namespace {namespace:?}"),
            },
            ctx.settings.revalidate_period,
            false,
        ),
        Some(secret) => {
            let data: std::collections::BTreeMap<String, Vec<u8>> =
                secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
            match notifier::build(&ni.spec, &secret_name, &data, &ctx.endpoints) {
                Err(failure) => (
                    CredentialsCondition {
                        status: ConditionStatus::False,
                        reason: failure.reason.into(),
                        message: failure.message,
                    },
                    ctx.settings.revalidate_period,
                    false,
                ),
                Ok(notifier) => {
                    ctx.validation_limiter.until_key_ready(&notifier.service()).await;
                    let verdict = notifier.validate(&ctx.http).await;
                    ctx.metrics.credential_check(notifier.service(), &verdict);
                    verdict_to_condition(verdict, previous.as_ref().filter(|_| was_valid), ctx)
                }
            }
        }
    };
    let transient_failures = match (&previous, transient) {
        (Some(p), true) if same_inputs => p.transient_failures + 1,
        (_, true) => 1,
        _ => 0,
    };
    let wait = if transient {
        wait.max(backoff(transient_failures, ctx.settings.retry_base, ctx.settings.retry_max))
    } else {
        jitter(wait)
    };
    ctx.checks.records.lock().unwrap().insert(
        key,
        CheckRecord {
            uid,
            generation,
            secret_version,
            condition: condition.clone(),
            next_check: now + wait,
            transient_failures,
        },
    );
    Ok((condition, wait))
}

/// The condition for a verdict, the time until the next check, and whether it was transient.
fn verdict_to_condition(
    verdict: Verdict,
    still_valid: Option<&CheckRecord>,
    ctx: &Context,
) -> (CredentialsCondition, Duration, bool) {
    match verdict {
        Verdict::Success => (
            CredentialsCondition {
                status: ConditionStatus::True,
                reason: reason::VALID.into(),
                message: "the service accepted the credentials".into(),
            },
            ctx.settings.revalidate_period,
            false,
        ),
        Verdict::Dead(f) | Verdict::Rejected(f) => (
            CredentialsCondition { status: ConditionStatus::False, reason: f.reason.into(), message: f.message },
            ctx.settings.revalidate_period,
            false,
        ),
        Verdict::Transient { failure, retry_after } => {
            let condition = match still_valid {
                // A passing failure never turns valid credentials into anything else.
                Some(p) => p.condition.clone(),
                None => CredentialsCondition {
                    status: ConditionStatus::Unknown,
                    reason: failure.reason.into(),
                    message: format!("could not check the credentials, will retry: {}", failure.message),
                },
            };
            (condition, retry_after.unwrap_or(Duration::ZERO), true)
        }
    }
}

/// Exponential backoff: base * 2^(n-1), at most `max`, with ±20% jitter.
pub fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    jitter(exp.min(max))
}

/// Spread a wait by ±10% so that many integrations don't line up.
fn jitter(wait: Duration) -> Duration {
    let factor = 0.9 + rand::random::<f64>() * 0.2;
    wait.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let b1 = backoff(1, base, max);
        assert!(b1 >= Duration::from_millis(900) && b1 <= Duration::from_millis(1100));
        let b3 = backoff(3, base, max);
        assert!(b3 >= Duration::from_millis(3600) && b3 <= Duration::from_millis(4400));
        let b30 = backoff(30, base, max);
        assert!(b30 <= Duration::from_secs(66));
    }
}
