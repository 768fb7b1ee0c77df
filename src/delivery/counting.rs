//! Error counting and the auto-disable decision, as a pure function of the
//! integration's status and one delivery's outcome.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Outcome;
use crate::controller::integration::status::set_derived_conditions;
use crate::crd::conditions::{self, DISABLED};
use crate::crd::{AutoDisabled, IntegrationStatus, LastError};

/// What the delivery was made under, for the auto-disable record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveredUnder {
    pub generation: i64,
    pub secret_version: Option<String>,
    pub error_threshold: i32,
    pub manually_disabled: bool,
}

/// Deliveries to record at once: successes batched since the last write,
/// then possibly one failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub delivered: i64,
    pub last_delivered: Option<Time>,
    pub failure: Option<Outcome>,
}

/// The integration status after one delivery, and whether this delivery
/// disabled the integration. A success resets `consecutiveErrors`; a dead
/// destination or exhausted retries count; a rejected message or a missed
/// deadline leave the counters alone.
pub fn record_outcome(
    current: &IntegrationStatus,
    outcome: &Outcome,
    under: &DeliveredUnder,
    now: &Time,
) -> (IntegrationStatus, bool) {
    let batch = match outcome {
        Outcome::Delivered => Batch { delivered: 1, last_delivered: Some(now.clone()), failure: None },
        other => Batch { failure: Some(other.clone()), ..Batch::default() },
    };
    record_batch(current, &batch, under, now)
}

/// [`record_outcome`] for a batch: the successes first, then the failure.
pub fn record_batch(
    current: &IntegrationStatus,
    batch: &Batch,
    under: &DeliveredUnder,
    now: &Time,
) -> (IntegrationStatus, bool) {
    let mut next = current.clone();
    let mut changed = false;
    if batch.delivered > 0 {
        next.consecutive_errors = 0;
        next.total_delivered += batch.delivered;
        next.last_delivery_time = batch.last_delivered.clone().or_else(|| Some(now.clone()));
        changed = true;
    }
    if let Some(failure) = batch.failure.as_ref().filter(|f| f.counts_as_error()) {
        let (reason, message) = failure.failure().expect("a counted outcome is a failure");
        next.consecutive_errors += 1;
        next.total_errors += 1;
        next.last_error = Some(LastError { time: now.clone(), reason: reason.to_string(), message });
        if next.auto_disabled.is_none() && next.consecutive_errors >= i64::from(under.error_threshold.max(1)) {
            next.auto_disabled = Some(AutoDisabled {
                generation: under.generation,
                secret_resource_version: under.secret_version.clone(),
            });
        }
        changed = true;
    }
    if !changed {
        return (next, false);
    }
    let generation = current.observed_generation.or(Some(under.generation));
    set_derived_conditions(current, &mut next, under.manually_disabled, generation, now);
    let newly_disabled =
        conditions::is_true(&next.conditions, DISABLED) && !conditions::is_true(&current.conditions, DISABLED);
    (next, newly_disabled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::integration::status::{CredentialsCondition, StatusInput, desired_status};
    use crate::crd::conditions::{ConditionStatus, READY};
    use crate::notifier::classify::{Failure, reason};

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn ready_status() -> IntegrationStatus {
        let input = StatusInput {
            generation: Some(1),
            manually_disabled: false,
            credentials: CredentialsCondition {
                status: ConditionStatus::True,
                reason: "Valid".into(),
                message: "ok".into(),
            },
            secret_version: Some("10".into()),
        };
        desired_status(&IntegrationStatus::default(), &input, &t("2026-01-01T00:00:00Z"))
    }

    fn under(threshold: i32) -> DeliveredUnder {
        DeliveredUnder {
            generation: 1,
            secret_version: Some("10".into()),
            error_threshold: threshold,
            manually_disabled: false,
        }
    }

    fn dead() -> Outcome {
        Outcome::Dead(Failure::new(reason::DESTINATION_NOT_FOUND, "the webhook is gone"))
    }

    #[test]
    fn disables_at_exactly_the_threshold() {
        let now = t("2026-01-02T00:00:00Z");
        let mut s = ready_status();
        for i in 1..=2 {
            let (next, disabled) = record_outcome(&s, &dead(), &under(3), &now);
            assert!(!disabled, "not yet at {i}");
            assert_eq!(next.consecutive_errors, i);
            assert!(conditions::is_true(&next.conditions, READY));
            s = next;
        }
        let (next, disabled) = record_outcome(&s, &dead(), &under(3), &now);
        assert!(disabled);
        assert_eq!(next.consecutive_errors, 3);
        assert_eq!(next.total_errors, 3);
        let d = conditions::find(&next.conditions, DISABLED).unwrap();
        assert_eq!((d.status.as_str(), d.reason.as_str()), ("True", "ErrorThreshold"));
        assert!(!conditions::is_true(&next.conditions, READY));
        assert_eq!(next.disabled_at, Some(now.clone()));
        assert_eq!(next.auto_disabled.as_ref().unwrap().secret_resource_version.as_deref(), Some("10"));
        assert_eq!(next.last_error.as_ref().unwrap().reason, "DestinationNotFound");
        // Further failures count but don't "disable again".
        let (again, disabled) = record_outcome(&next, &dead(), &under(3), &now);
        assert!(!disabled);
        assert_eq!(again.consecutive_errors, 4);
    }

    #[test]
    fn success_resets_and_rejections_do_not_count() {
        let now = t("2026-01-02T00:00:00Z");
        let (s, _) = record_outcome(&ready_status(), &dead(), &under(5), &now);
        let rejected = Outcome::Rejected(Failure::new(reason::MESSAGE_REJECTED, "too long"));
        let (s2, _) = record_outcome(&s, &rejected, &under(5), &now);
        assert_eq!(s2, s, "a rejected message is not the integration's fault");
        let (s3, _) = record_outcome(&s2, &Outcome::Delivered, &under(5), &now);
        assert_eq!(s3.consecutive_errors, 0);
        assert_eq!(s3.total_errors, 1);
        assert_eq!(s3.total_delivered, 1);
        assert_eq!(s3.last_delivery_time, Some(now));
        assert!(s3.last_error.is_some(), "the last error stays visible");
    }

    #[test]
    fn a_batch_applies_successes_before_the_failure() {
        let now = t("2026-01-02T00:00:00Z");
        let (s, _) = record_outcome(&ready_status(), &dead(), &under(5), &now);
        let batch = Batch { delivered: 3, last_delivered: Some(now.clone()), failure: Some(dead()) };
        let (next, disabled) = record_batch(&s, &batch, &under(5), &now);
        assert!(!disabled);
        assert_eq!((next.total_delivered, next.consecutive_errors, next.total_errors), (3, 1, 2));
        let empty = record_batch(&s, &Batch::default(), &under(5), &now);
        assert_eq!(empty, (s, false));
    }

    #[test]
    fn a_new_generation_or_secret_re_enables() {
        let now = t("2026-01-02T00:00:00Z");
        let (disabled, _) = record_outcome(&ready_status(), &dead(), &under(1), &now);
        assert!(conditions::is_true(&disabled.conditions, DISABLED));
        let valid =
            CredentialsCondition { status: ConditionStatus::True, reason: "Valid".into(), message: "ok".into() };
        let same = StatusInput {
            generation: Some(1),
            manually_disabled: false,
            credentials: valid.clone(),
            secret_version: Some("10".into()),
        };
        let still = desired_status(&disabled, &same, &now);
        assert!(conditions::is_true(&still.conditions, DISABLED), "nothing changed: stays disabled");
        for input in [
            StatusInput { secret_version: Some("11".into()), ..same.clone() },
            StatusInput { generation: Some(2), ..same.clone() },
        ] {
            let enabled = desired_status(&disabled, &input, &now);
            assert!(conditions::is_true(&enabled.conditions, READY));
            assert_eq!(enabled.consecutive_errors, 0);
            assert_eq!(enabled.auto_disabled, None);
            assert_eq!(enabled.disabled_at, None);
        }
        // The manual switch wins.
        let manual = StatusInput { generation: Some(2), manually_disabled: true, ..same };
        let off = desired_status(&disabled, &manual, &now);
        assert_eq!(conditions::find(&off.conditions, DISABLED).unwrap().reason, "Manual");
    }
}
