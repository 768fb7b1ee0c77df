//! Checking an integration's credentials: read its Secret (from its own
//! namespace only), build the notifier, ask the service. Results are kept per
//! integration and reused until the spec or the Secret changes or the slow
//! re-validation period is due, so a status write never causes a new probe.

use std::time::Duration;

use kube::Resource;
use tokio::time::Instant;

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::caches::PerIntegration;
use crate::controller::Context;
use crate::crd::conditions::ConditionStatus;
use crate::crd::{IntegrationKey, NotificationIntegration, Service};
use crate::notifier::classify::Verdict;
use crate::record::Error;
use crate::status::integration::{CredentialsCondition, reason, with_next_step};

/// The last check of one integration and what it was made against.
#[derive(Clone, Debug)]
pub struct CheckRecord {
    uid: Option<String>,
    generation: Option<i64>,
    secret_version: Option<String>,
    condition: CredentialsCondition,
    next_check: Instant,
    transient_failures: u32,
}

/// The last credential check per integration.
pub type CheckCache = PerIntegration<CheckRecord>;

/// The credential checks: their results per integration, and the rate
/// that spreads them so that thousands of integrations never burst at a service.
pub struct Credentials {
    checks: CheckCache,
    limiter: DefaultKeyedRateLimiter<Service>,
}

impl Credentials {
    /// At most `rate` checks per second per service.
    pub fn new(rate: std::num::NonZeroU32) -> Self {
        Credentials { checks: CheckCache::default(), limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate)) }
    }

    /// The last check of each integration.
    pub fn checks(&self) -> &CheckCache {
        &self.checks
    }
}

/// The result of a credential check.
#[derive(Clone, Debug)]
pub struct Checked {
    pub condition: CredentialsCondition,
    /// When to check again.
    pub recheck_in: Duration,
    /// The Secret's `resourceVersion` the check used.
    pub secret_version: Option<String>,
}

/// The credentials condition for `ni`, and when it should be checked again.
pub async fn check(ni: &NotificationIntegration, ctx: &Context) -> Result<Checked, Error> {
    let key = IntegrationKey::of(ni);
    let uid = ni.meta().uid.clone();
    let generation = ni.meta().generation;
    let now = Instant::now();

    let seen_version = ctx.caches.secret_version(ni);
    let mut previous = ctx.credentials.checks.lock().get(&key).cloned();
    if previous.is_none()
        && let Some(adopted) = adopt_recorded(ni, &seen_version, ctx.settings.revalidate_period, now)
    {
        // A new leader (or a restart) trusts what is on record for the same
        // spec and Secret: no Secret read and no probe at start.
        ctx.credentials.checks.lock().insert(key.clone(), adopted.clone());
        previous = Some(adopted);
    }
    if let Some(rec) = &previous
        && rec.uid == uid
        && rec.generation == generation
        && rec.secret_version == seen_version
        && now < rec.next_check
    {
        return Ok(Checked {
            condition: rec.condition.clone(),
            recheck_in: rec.next_check - now,
            secret_version: rec.secret_version.clone(),
        });
    }

    let loaded = ctx.delivery.load_notifier(ni).await?;
    let secret_version = loaded.secret_version.clone();
    let same_inputs = previous
        .as_ref()
        .is_some_and(|r| r.uid == uid && r.generation == generation && r.secret_version == secret_version);
    // A transient failure keeps a valid result for the same spec and Secret.
    let was_valid = same_inputs && previous.as_ref().is_some_and(|p| p.condition.status == ConditionStatus::True);

    let (condition, wait, transient) = match loaded.notifier {
        // Not ours to fix, and fixed without any change we would see (a
        // RoleBinding): checked again with the transient backoff, not after
        // the re-validation period.
        Err(failure) if failure.reason == reason::SECRET_FORBIDDEN => (
            CredentialsCondition {
                status: ConditionStatus::False,
                reason: failure.reason.into(),
                message: failure.message,
            },
            Duration::ZERO,
            true,
        ),
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
            // Only calls to a service are spread by the limiter.
            if notifier.validation_calls_service() {
                ctx.credentials.limiter.until_key_ready(&notifier.service()).await;
            }
            let verdict = notifier.validate(ctx.delivery.http()).await;
            ctx.metrics.credential_check(notifier.service(), &verdict);
            verdict_to_condition(verdict, previous.as_ref().filter(|_| was_valid), ctx)
        }
    };
    // Every problem says what to do next.
    let condition = match condition.status {
        ConditionStatus::True => condition,
        _ => CredentialsCondition {
            message: with_next_step(&condition.message, &condition.reason, &ctx.subject(ni)),
            ..condition
        },
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
    ctx.credentials.checks.lock().insert(
        key,
        CheckRecord {
            uid,
            generation,
            secret_version: secret_version.clone(),
            condition: condition.clone(),
            next_check: now + wait,
            transient_failures,
        },
    );
    Ok(Checked { condition, recheck_in: wait, secret_version })
}

/// The check on record in `ni`'s status, taken over when it was valid for
/// this generation and the Secret version the cache shows now; its next
/// check falls anywhere within `revalidate`, so that a leader that takes
/// over thousands of integrations does not re-check them all at once.
/// Only a valid result is taken over: a failed one may depend on what this
/// process was started with (`--allow-endpoint`) and is checked again.
pub fn adopt_recorded(
    ni: &NotificationIntegration,
    seen_secret_version: &Option<String>,
    revalidate: Duration,
    now: Instant,
) -> Option<CheckRecord> {
    let status = ni.status.as_ref()?;
    let generation = ni.meta().generation;
    let creds = crate::crd::conditions::find(&status.conditions, crate::crd::conditions::CREDENTIALS_VALID)?;
    let valid = ConditionStatus::of(creds) == ConditionStatus::True
        && creds.observed_generation == generation
        && status.observed_generation == generation
        && seen_secret_version.is_some()
        && &status.secret_resource_version == seen_secret_version;
    valid.then(|| CheckRecord {
        uid: ni.meta().uid.clone(),
        generation,
        secret_version: seen_secret_version.clone(),
        condition: CredentialsCondition {
            status: ConditionStatus::True,
            reason: creds.reason.clone(),
            message: creds.message.clone(),
        },
        next_check: now + revalidate.mul_f64(rand::random::<f64>()),
        transient_failures: 0,
    })
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
