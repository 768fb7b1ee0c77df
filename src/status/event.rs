//! An event's status as pure functions: which deliveries to start and what
//! the status says, from its current status and its targets' states, and
//! the known delivery outcomes merged into it.

use std::collections::HashSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{Delivery, DeliveryPhase, EventPhase, NotificationEvent, NotificationEventStatus};
use crate::status::integration::Receivable;
use crate::status::outcome::{Outcome, Report};

/// Reasons on events and deliveries.
pub mod reason {
    pub const QUEUED: &str = "Queued";
    pub const DELIVERED: &str = "Delivered";
    pub const PARTIALLY_DELIVERED: &str = "PartiallyDelivered";
    pub const INTEGRATION_NOT_FOUND: &str = "IntegrationNotFound";
    pub const INTEGRATION_DISABLED: &str = "IntegrationDisabled";
    pub const NO_MATCHING_INTEGRATIONS: &str = "NoMatchingIntegrations";
    pub const INVALID_SELECTOR: &str = "InvalidSelector";
    pub const TOO_MANY_TARGETS: &str = "TooManyTargets";
    pub use crate::status::outcome::reason::EXPIRED;
}

/// The inputs of a plan.
pub struct PlanInput<'a> {
    pub current: &'a NotificationEventStatus,
    pub generation: Option<i64>,
    /// Each target (named in the status already, or newly resolved) and its state.
    pub targets: Vec<(String, Receivable)>,
    /// Deliveries queued or running now.
    pub in_flight: &'a HashSet<String>,
    /// The deadline has passed.
    pub expired: bool,
    /// Why there are no targets, when there are none.
    pub no_targets: Option<(&'static str, String)>,
    pub now: &'a Time,
}

/// The status to write and the deliveries to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: NotificationEventStatus,
    pub deliver: Vec<String>,
}

/// A delivery to `integration` that is not done yet.
pub fn queued(integration: &str) -> Delivery {
    Delivery {
        integration: integration.to_string(),
        phase: DeliveryPhase::Pending,
        attempts: 0,
        last_error: None,
        reason: Some(reason::QUEUED.into()),
        delivered_at: None,
        unresolved_mentions: Vec::new(),
    }
}

fn pending(d: &mut Delivery, reason: &str, message: String) {
    d.phase = DeliveryPhase::Pending;
    d.reason = Some(reason.to_string());
    d.last_error = Some(message);
}

/// The event's deadline: creation plus `--event-deadline`.
pub fn deadline_of(ev: &NotificationEvent, deadline: std::time::Duration, now: jiff::Timestamp) -> jiff::Timestamp {
    let created = ev.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    // A deadline beyond the representable future never passes.
    jiff::SignedDuration::try_from(deadline)
        .ok()
        .and_then(|d| created.checked_add(d).ok())
        .unwrap_or(jiff::Timestamp::MAX)
}

/// Whether an event with no targets for `reason` can never get any (an
/// invalid selector, or one matching more than `--max-targets`): it fails at once.
pub fn never_targets(reason: &str) -> bool {
    reason == reason::INVALID_SELECTOR || reason == reason::TOO_MANY_TARGETS
}

/// Plan an event that is not finished yet.
pub fn plan(input: PlanInput<'_>) -> Plan {
    let mut status = input.current.clone();
    status.observed_generation = input.generation;
    let mut deliver = Vec::new();
    for (name, state) in &input.targets {
        if !status.deliveries.iter().any(|d| &d.integration == name) {
            status.deliveries.push(queued(name));
        }
        let d = status.deliveries.iter_mut().find(|d| &d.integration == name).expect("just ensured");
        if d.phase != DeliveryPhase::Pending {
            continue;
        }
        if input.in_flight.contains(name) {
            pending(d, reason::QUEUED, format!("queued for delivery to integration {name:?}"));
            continue;
        }
        match state {
            Receivable::Missing => pending(
                d,
                reason::INTEGRATION_NOT_FOUND,
                format!(
                    "integration {name:?} does not exist (yet): create it in this namespace, or fix the event's \
                     target; the event waits until its deadline"
                ),
            ),
            Receivable::Disabled { reason, message } => {
                d.phase = DeliveryPhase::Skipped;
                d.reason = Some(reason::INTEGRATION_DISABLED.into());
                d.last_error = Some(format!(
                    "integration {name:?} is disabled ({reason}): {message} This event is not sent later: create \
                     it again once the integration is enabled."
                ));
            }
            Receivable::NotReady { reason, message } => {
                pending(d, reason, format!("integration {name:?} is not ready: {message}"))
            }
            Receivable::Ready if input.expired => {
                pending(d, reason::QUEUED, "it was not delivered in time".to_string());
            }
            Receivable::Ready => {
                pending(d, reason::QUEUED, format!("queued for delivery to integration {name:?}"));
                deliver.push(name.clone());
            }
        }
        // Past the deadline, whatever it is still waiting for ends it, and says so.
        if input.expired && d.phase == DeliveryPhase::Pending {
            let why = d.last_error.take().unwrap_or_default();
            d.phase = DeliveryPhase::Failed;
            d.reason = Some(reason::EXPIRED.into());
            d.last_error = Some(format!("the event's deadline passed: {why}"));
        }
    }
    summarize(&mut status, input.no_targets.as_ref().map(|(r, m)| (*r, m.as_str())), input.expired, input.now);
    Plan { status, deliver }
}

/// Set `phase`, `reason`, `message` and `completionTime` from the deliveries.
pub fn summarize(status: &mut NotificationEventStatus, no_targets: Option<(&str, &str)>, expired: bool, now: &Time) {
    let n = status.deliveries.len();
    let count = |p: DeliveryPhase| status.deliveries.iter().filter(|d| d.phase == p).count();
    let (delivered, failed, skipped) =
        (count(DeliveryPhase::Delivered), count(DeliveryPhase::Failed), count(DeliveryPhase::Skipped));
    let first = |p: DeliveryPhase| status.deliveries.iter().find(|d| d.phase == p);
    let (phase, reason, message) = if n == 0 {
        let (r, m) = no_targets.unwrap_or((
            reason::NO_MATCHING_INTEGRATIONS,
            "no integration matches the selector: label an integration of this namespace to match \
             spec.integrationSelector (kubectl get ni --show-labels)",
        ));
        if never_targets(r) {
            (EventPhase::Failed, r.to_string(), m.to_string())
        } else if expired {
            (EventPhase::Failed, reason::EXPIRED.to_string(), format!("the event's deadline passed: {m}"))
        } else {
            (EventPhase::Pending, r.to_string(), m.to_string())
        }
    } else if let Some(p) = first(DeliveryPhase::Pending) {
        (EventPhase::Pending, p.reason.clone().unwrap_or_default(), p.last_error.clone().unwrap_or_default())
    } else if delivered == n {
        (EventPhase::Delivered, reason::DELIVERED.into(), format!("delivered to {n} integration(s)"))
    } else if skipped == n {
        let s = first(DeliveryPhase::Skipped).expect("n > 0");
        (EventPhase::Skipped, s.reason.clone().unwrap_or_default(), s.last_error.clone().unwrap_or_default())
    } else if delivered > 0 {
        (
            EventPhase::PartiallyDelivered,
            reason::PARTIALLY_DELIVERED.into(),
            format!("delivered to {delivered} of {n} integrations ({failed} failed, {skipped} skipped)"),
        )
    } else {
        let f = first(DeliveryPhase::Failed).or(first(DeliveryPhase::Skipped)).expect("n > 0");
        (EventPhase::Failed, f.reason.clone().unwrap_or_default(), f.last_error.clone().unwrap_or_default())
    };
    if phase.is_final() && status.completion_time.is_none() {
        status.completion_time = Some(now.clone());
    }
    status.phase = Some(phase);
    status.reason = Some(reason);
    status.message = Some(message);
}

/// One known outcome of the delivery of an event to an integration.
#[derive(Clone, Debug, PartialEq)]
pub struct Known {
    pub integration: String,
    pub report: Report,
    /// When the service answered.
    pub at: Time,
    /// The emails of the mentions the message showed unresolved.
    pub unresolved: Vec<String>,
}

/// Put known outcomes into `status`. An outcome replaces only a
/// delivery that is still `Pending`: what is on record already stays.
pub fn apply(status: &mut NotificationEventStatus, known: &[Known]) {
    for k in known {
        let Some(d) = status.deliveries.iter_mut().find(|d| d.integration == k.integration) else { continue };
        if d.phase != DeliveryPhase::Pending {
            continue;
        }
        d.attempts = d.attempts.saturating_add(i32::try_from(k.report.attempts).unwrap_or(i32::MAX));
        d.unresolved_mentions = k.unresolved.clone();
        match &k.report.outcome {
            Outcome::Delivered => {
                d.phase = DeliveryPhase::Delivered;
                d.reason = Some(reason::DELIVERED.into());
                d.last_error = None;
                d.delivered_at = Some(k.at.clone());
            }
            other => {
                let (why, message) = other.failure().expect("not delivered");
                d.phase = DeliveryPhase::Failed;
                d.reason = Some(why.to_string());
                d.last_error = Some(message);
            }
        }
    }
}

/// A known outcome for tests: two attempts, at a fixed time.
#[cfg(test)]
pub(crate) fn known(name: &str, outcome: crate::status::outcome::Outcome) -> Known {
    Known {
        integration: name.into(),
        report: crate::status::outcome::Report { outcome, attempts: 2 },
        at: Time("2026-01-01T00:00:00Z".parse().unwrap()),
        unresolved: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifier::classify::{Failure, reason as failure};

    fn t() -> Time {
        Time("2026-01-01T00:00:00Z".parse().unwrap())
    }

    fn run(current: &NotificationEventStatus, targets: Vec<(&str, Receivable)>, expired: bool) -> Plan {
        let none = HashSet::new();
        plan(PlanInput {
            current,
            generation: Some(1),
            targets: targets.into_iter().map(|(n, s)| (n.to_string(), s)).collect(),
            in_flight: &none,
            expired,
            no_targets: None,
            now: &t(),
        })
    }

    fn pending(name: &str) -> Delivery {
        Delivery {
            integration: name.into(),
            phase: DeliveryPhase::Pending,
            attempts: 0,
            last_error: None,
            reason: Some("Queued".into()),
            delivered_at: None,
            unresolved_mentions: Vec::new(),
        }
    }

    #[test]
    fn outcomes_fill_pending_deliveries_only() {
        let mut s = NotificationEventStatus { deliveries: vec![pending("a"), pending("b")], ..Default::default() };
        s.deliveries[1].phase = DeliveryPhase::Delivered;
        let dead = Outcome::Dead(Failure::new(failure::UNAUTHORIZED, "revoked"));
        let dead = Known { unresolved: vec!["jane@example.com".into()], ..known("a", dead) };
        apply(&mut s, &[dead, known("b", Outcome::Rejected(Failure::new("X", "y"))), known("zz", Outcome::Delivered)]);
        assert_eq!(s.deliveries[0].unresolved_mentions, vec!["jane@example.com".to_string()]);
        assert_eq!(s.deliveries[0].phase, DeliveryPhase::Failed);
        assert_eq!(s.deliveries[0].reason.as_deref(), Some("Unauthorized"));
        assert_eq!(s.deliveries[0].attempts, 2);
        assert_eq!(s.deliveries[1].phase, DeliveryPhase::Delivered, "what is on record stays");
        assert_eq!(s.deliveries.len(), 2);
    }

    #[test]
    fn ready_targets_are_queued_and_the_event_is_pending() {
        let p = run(&Default::default(), vec![("a", Receivable::Ready)], false);
        assert_eq!(p.deliver, ["a"]);
        assert_eq!(p.status.phase, Some(EventPhase::Pending));
        assert_eq!(p.status.reason.as_deref(), Some(reason::QUEUED));
        assert_eq!(p.status.completion_time, None);
    }

    #[test]
    fn a_disabled_target_is_skipped_without_delivery() {
        let disabled = Receivable::Disabled { reason: "ErrorThreshold".into(), message: "m".into() };
        let p = run(&Default::default(), vec![("a", disabled)], false);
        assert!(p.deliver.is_empty());
        assert_eq!(p.status.phase, Some(EventPhase::Skipped));
        assert_eq!(p.status.reason.as_deref(), Some(reason::INTEGRATION_DISABLED));
        let message = p.status.message.unwrap();
        assert!(message.contains("ErrorThreshold") && message.ends_with("once the integration is enabled."));
        assert_eq!(p.status.completion_time, Some(t()));
    }

    #[test]
    fn missing_or_not_ready_targets_wait_until_the_deadline() {
        let p = run(&Default::default(), vec![("a", Receivable::Missing)], false);
        assert_eq!(p.status.phase, Some(EventPhase::Pending));
        assert_eq!(p.status.reason.as_deref(), Some(reason::INTEGRATION_NOT_FOUND));
        let p2 = run(&p.status, vec![("a", Receivable::Missing)], true);
        assert_eq!(p2.status.phase, Some(EventPhase::Failed));
        assert_eq!(p2.status.reason.as_deref(), Some(reason::EXPIRED));
        assert!(p2.status.message.unwrap().contains("does not exist"));
        let not_ready = Receivable::NotReady { reason: "Unauthorized".into(), message: "revoked".into() };
        let p3 = run(&Default::default(), vec![("a", not_ready)], false);
        assert_eq!(p3.status.reason.as_deref(), Some("Unauthorized"));
    }

    #[test]
    fn fan_out_with_mixed_results_is_partially_delivered() {
        let mut s = NotificationEventStatus::default();
        for (name, phase) in
            [("a", DeliveryPhase::Delivered), ("b", DeliveryPhase::Failed), ("c", DeliveryPhase::Skipped)]
        {
            s.deliveries.push(Delivery {
                integration: name.into(),
                phase,
                attempts: 1,
                last_error: None,
                reason: Some("r".into()),
                delivered_at: None,
                unresolved_mentions: Vec::new(),
            });
        }
        summarize(&mut s, None, false, &t());
        assert_eq!(s.phase, Some(EventPhase::PartiallyDelivered));
        assert!(s.message.unwrap().contains("1 of 3"));
    }

    #[test]
    fn a_selector_matching_nothing_waits_then_expires() {
        let p = run(&Default::default(), vec![], false);
        assert_eq!(p.status.phase, Some(EventPhase::Pending));
        assert_eq!(p.status.reason.as_deref(), Some(reason::NO_MATCHING_INTEGRATIONS));
        let p = run(&p.status, vec![], true);
        assert_eq!(p.status.phase, Some(EventPhase::Failed));
        assert_eq!(p.status.reason.as_deref(), Some(reason::EXPIRED));
    }

    #[test]
    fn a_selector_that_can_never_target_fails_at_once_with_its_reason() {
        for why in [reason::TOO_MANY_TARGETS, reason::INVALID_SELECTOR] {
            let mut s = NotificationEventStatus::default();
            summarize(&mut s, Some((why, "spec.integrationSelector matches 1001 integrations")), false, &t());
            assert_eq!(s.phase, Some(EventPhase::Failed));
            assert_eq!(s.reason.as_deref(), Some(why));
            assert!(s.message.unwrap().starts_with("spec.integrationSelector"));
            assert_eq!(s.completion_time, Some(t()));
        }
    }

    #[test]
    fn the_deadline_counts_from_creation_and_a_huge_one_never_passes() {
        let ev: NotificationEvent = serde_json::from_value(serde_json::json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationEvent",
            "metadata": {"name": "e", "namespace": "n", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"integrationRef": {"name": "a"}, "message": "m"},
        }))
        .unwrap();
        let now: jiff::Timestamp = "2026-01-01T00:30:00Z".parse().unwrap();
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(deadline_of(&ev, hour, now), "2026-01-01T01:00:00Z".parse().unwrap());
        assert_eq!(deadline_of(&ev, std::time::Duration::MAX, now), jiff::Timestamp::MAX);
    }

    #[test]
    fn replanning_is_stable() {
        let p1 = run(&Default::default(), vec![("a", Receivable::Missing)], false);
        let p2 = run(&p1.status, vec![("a", Receivable::Missing)], false);
        assert_eq!(p1.status, p2.status);
    }
}
