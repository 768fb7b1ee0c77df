//! An integration's status as pure functions of what was observed: the
//! conditions the credential check and the switches give, the counters and
//! the auto-disable each delivery outcome gives, and whether the integration
//! can receive a message now (the one decision every path asks).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;

use crate::crd::conditions::{
    self, CREDENTIALS_VALID, ConditionStatus, DISABLED, DesiredCondition, READY, set_condition,
};
use crate::crd::{AutoDisabled, IntegrationStatus, LastError, NotificationIntegration, NotificationIntegrationSpec};
use crate::status::outcome::Outcome;

/// Reasons of the integration's conditions (and of [`Receivable`]).
pub mod reason {
    pub const VALID: &str = "Valid";
    pub const READY: &str = "Ready";
    pub const MANUAL: &str = "Manual";
    pub const ERROR_THRESHOLD: &str = "ErrorThreshold";
    pub const ENABLED: &str = "Enabled";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// `--secret-access labelled` and the Secret lacks `kube-notify.io/secret=true`.
    pub const SECRET_NOT_LABELLED: &str = "SecretNotLabelled";
    pub const CHECKING: &str = "Checking";
}

/// Reasons of the Kubernetes Events published about an integration.
pub mod event_reason {
    pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";
    pub const INTEGRATION_DISABLED: &str = "IntegrationDisabled";
    pub const INTEGRATION_READY: &str = "IntegrationReady";
    pub const MENTION_UNRESOLVED: &str = "MentionUnresolved";
    pub const MENTION_LOOKUP_NOT_ALLOWED: &str = "MentionLookupNotAllowed";
}

/// The outcome of the credential check, as the `CredentialsValid` condition says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsCondition {
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

/// Everything the status depends on besides the current status.
#[derive(Clone, Debug)]
pub struct StatusInput {
    pub generation: Option<i64>,
    /// `spec.disabled`: the manual switch.
    pub manually_disabled: bool,
    pub credentials: CredentialsCondition,
    /// The Secret's `resourceVersion` the credentials were read from.
    pub secret_version: Option<String>,
}

/// The status the integration should have. Counters and `lastError` are kept
/// as they are (the delivery engine owns them); an auto-disable ends when the
/// spec generation or the Secret changed; condition transition times and
/// `disabledAt` move only on real transitions.
pub fn desired_status(current: &IntegrationStatus, input: &StatusInput, now: &Time) -> IntegrationStatus {
    let mut next = current.clone();
    let generation = input.generation;
    next.observed_generation = generation;

    if let Some(auto) = &current.auto_disabled
        && (Some(auto.generation) != generation || auto.secret_resource_version != input.secret_version)
    {
        // "Fix it and register again": a new spec or new credentials re-enable.
        next.auto_disabled = None;
        next.consecutive_errors = 0;
    }

    let creds = &input.credentials;
    set_condition(
        &mut next.conditions,
        DesiredCondition::new(CREDENTIALS_VALID, creds.status, creds.reason.clone(), creds.message.clone()),
        generation,
        now,
    );
    set_derived_conditions(current, &mut next, input.manually_disabled, generation, now);
    next
}

/// `Disabled` and `Ready` from the manual switch, the auto-disable and the
/// `CredentialsValid` condition already in `next`; `disabledAt` with them.
fn set_derived_conditions(
    current: &IntegrationStatus,
    next: &mut IntegrationStatus,
    manually_disabled: bool,
    generation: Option<i64>,
    now: &Time,
) {
    let disabled = if manually_disabled {
        DesiredCondition::new(
            DISABLED,
            ConditionStatus::True,
            reason::MANUAL,
            "spec.disabled is true: nothing is delivered until it is set to false",
        )
    } else if next.auto_disabled.is_some() {
        DesiredCondition::new(
            DISABLED,
            ConditionStatus::True,
            reason::ERROR_THRESHOLD,
            format!(
                "disabled after {} consecutive failed deliveries; fix the destination, then change the Secret or the spec to enable it again",
                next.consecutive_errors
            ),
        )
    } else {
        DesiredCondition::new(DISABLED, ConditionStatus::False, reason::ENABLED, "the integration is enabled")
    };
    let is_disabled = disabled.status == ConditionStatus::True;
    let creds = conditions::find(&next.conditions, CREDENTIALS_VALID)
        .map(|c| (ConditionStatus::of(c), c.reason.clone(), c.message.clone()));
    let ready = if is_disabled {
        DesiredCondition::new(READY, ConditionStatus::False, disabled.reason.clone(), disabled.message.clone())
    } else {
        match creds {
            Some((ConditionStatus::True, _, _)) => {
                DesiredCondition::new(READY, ConditionStatus::True, reason::READY, "notifications are delivered")
            }
            Some((status, reason, message)) => DesiredCondition::new(
                READY,
                if status == ConditionStatus::Unknown { ConditionStatus::Unknown } else { ConditionStatus::False },
                reason,
                message,
            ),
            None => DesiredCondition::new(
                READY,
                ConditionStatus::Unknown,
                reason::CHECKING,
                "the credentials have not been checked yet",
            ),
        }
    };
    set_condition(&mut next.conditions, disabled, generation, now);
    set_condition(&mut next.conditions, ready, generation, now);
    order_conditions(&mut next.conditions);

    next.disabled_at = match (is_disabled, &current.disabled_at) {
        (true, Some(at)) if conditions::is_true(&current.conditions, DISABLED) => Some(at.clone()),
        (true, _) => Some(now.clone()),
        (false, _) => None,
    };
}

/// A stable order (`Ready`, `CredentialsValid`, `Disabled`, then others) so
/// that equal statuses compare equal.
fn order_conditions(conds: &mut [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) {
    let rank = |t: &str| match t {
        READY => 0,
        CREDENTIALS_VALID => 1,
        DISABLED => 2,
        _ => 3,
    };
    conds.sort_by(|a, b| rank(&a.type_).cmp(&rank(&b.type_)).then_with(|| a.type_.cmp(&b.type_)));
}

/// A Kubernetes Event to publish because the status changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The Events a status change deserves: a Warning on each transition to
/// invalid credentials or to disabled, a Normal one on becoming ready.
pub fn transition_events(old: &IntegrationStatus, new: &IntegrationStatus) -> Vec<TransitionEvent> {
    let turned = |t: &str, to: ConditionStatus| {
        conditions::status(&new.conditions, t) == Some(to) && conditions::status(&old.conditions, t) != Some(to)
    };
    let mut events = Vec::new();
    let cred = conditions::find(&new.conditions, CREDENTIALS_VALID);
    if let Some(c) = cred
        && turned(CREDENTIALS_VALID, ConditionStatus::False)
    {
        events.push(TransitionEvent {
            warning: true,
            reason: event_reason::CREDENTIALS_INVALID,
            note: format!("{}: {}", c.reason, c.message),
        });
    }
    if let Some(d) = conditions::find(&new.conditions, DISABLED)
        && turned(DISABLED, ConditionStatus::True)
    {
        events.push(TransitionEvent {
            warning: true,
            reason: event_reason::INTEGRATION_DISABLED,
            note: format!("{}: {}", d.reason, d.message),
        });
    }
    if turned(READY, ConditionStatus::True) {
        events.push(TransitionEvent {
            warning: false,
            reason: event_reason::INTEGRATION_READY,
            note: "notifications are delivered".into(),
        });
    }
    events
}

/// The `Ready` condition's status, for logs.
pub fn ready_of(status: &IntegrationStatus) -> Option<ConditionStatus> {
    conditions::status(&status.conditions, READY)
}

// Counting: what each delivery outcome does to the status.

/// What a delivery was made with: the spec generation and the Secret version
/// its notifier was built from (an auto-disable records them, so that a later
/// fix re-enables).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Under {
    pub generation: i64,
    pub secret_version: Option<String>,
}

/// Deliveries to record at once: successes batched since the last write,
/// then possibly one failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub delivered: i64,
    pub last_delivered: Option<Time>,
    pub failure: Option<Outcome>,
}

/// The integration status after one delivery made under `under`, with
/// `spec` as it is now (threshold, manual switch), and whether this delivery
/// disabled the integration. A success resets `consecutiveErrors`; a dead
/// destination or exhausted retries count; a rejected message or a missed
/// deadline leave the counters alone.
pub fn record_outcome(
    current: &IntegrationStatus,
    outcome: &Outcome,
    under: &Under,
    spec: &NotificationIntegrationSpec,
    now: &Time,
) -> (IntegrationStatus, bool) {
    let batch = match outcome {
        Outcome::Delivered => Batch { delivered: 1, last_delivered: Some(now.clone()), failure: None },
        other => Batch { failure: Some(other.clone()), ..Batch::default() },
    };
    record_batch(current, &batch, under, spec, now)
}

/// [`record_outcome`] for a batch: the successes first, then the failure.
pub fn record_batch(
    current: &IntegrationStatus,
    batch: &Batch,
    under: &Under,
    spec: &NotificationIntegrationSpec,
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
        if next.auto_disabled.is_none() && next.consecutive_errors >= i64::from(spec.error_threshold.max(1)) {
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
    set_derived_conditions(current, &mut next, spec.disabled, generation, now);
    let newly_disabled =
        conditions::is_true(&next.conditions, DISABLED) && !conditions::is_true(&current.conditions, DISABLED);
    (next, newly_disabled)
}

// Receiving: whether a message may be sent to the integration now.

/// Whether an integration can receive, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receivable {
    /// No such integration (yet).
    Missing,
    /// Disabled by hand or after repeated errors: deliveries are skipped.
    Disabled { reason: String, message: String },
    /// Not ready for another reason (credentials invalid, or not checked for
    /// this spec yet): deliveries wait.
    NotReady { reason: String, message: String },
    /// Ready for its current spec.
    Ready,
}

impl Receivable {
    pub fn is_ready(&self) -> bool {
        matches!(self, Receivable::Ready)
    }
}

/// Decide from the integration as last seen. `Ready` needs the `Ready`
/// condition `True` for the integration's current generation: a changed
/// spec is used only once it was checked.
pub fn receivable(ni: Option<&NotificationIntegration>) -> Receivable {
    let Some(ni) = ni else { return Receivable::Missing };
    let conds = ni.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    if ni.spec.disabled {
        return Receivable::Disabled { reason: reason::MANUAL.into(), message: "spec.disabled is true".into() };
    }
    if let Some(d) = conditions::find(conds, DISABLED).filter(|d| ConditionStatus::of(d) == ConditionStatus::True) {
        return Receivable::Disabled { reason: d.reason.clone(), message: d.message.clone() };
    }
    match conditions::find(conds, READY) {
        Some(r) if ConditionStatus::of(r) != ConditionStatus::True => {
            Receivable::NotReady { reason: r.reason.clone(), message: r.message.clone() }
        }
        Some(r) if r.observed_generation == ni.meta().generation => Receivable::Ready,
        Some(_) => Receivable::NotReady {
            reason: reason::CHECKING.into(),
            message: "the changed spec has not been checked yet".into(),
        },
        None => Receivable::NotReady {
            reason: reason::CHECKING.into(),
            message: "the integration has not been checked yet".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn input(status: ConditionStatus, reason: &str, disabled: bool) -> StatusInput {
        StatusInput {
            generation: Some(1),
            manually_disabled: disabled,
            credentials: CredentialsCondition { status, reason: reason.into(), message: "m".into() },
            secret_version: Some("7".into()),
        }
    }

    #[test]
    fn valid_and_enabled_is_ready() {
        let s = desired_status(
            &IntegrationStatus::default(),
            &input(ConditionStatus::True, "Valid", false),
            &t("2026-01-01T00:00:00Z"),
        );
        assert!(conditions::is_true(&s.conditions, READY));
        assert!(conditions::is_true(&s.conditions, CREDENTIALS_VALID));
        assert!(!conditions::is_true(&s.conditions, DISABLED));
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(s.disabled_at, None);
        let types: Vec<_> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, CREDENTIALS_VALID, DISABLED]);
    }

    #[test]
    fn recomputing_later_changes_nothing() {
        let i = input(ConditionStatus::True, "Valid", false);
        let s1 = desired_status(&IntegrationStatus::default(), &i, &t("2026-01-01T00:00:00Z"));
        let s2 = desired_status(&s1, &i, &t("2026-01-02T00:00:00Z"));
        assert_eq!(s1, s2, "a later time alone must not change the status");
    }

    #[test]
    fn manual_disable_wins_and_sets_disabled_at_once() {
        let i = input(ConditionStatus::True, "Valid", true);
        let s1 = desired_status(&IntegrationStatus::default(), &i, &t("2026-01-01T00:00:00Z"));
        let ready = conditions::find(&s1.conditions, READY).unwrap();
        assert_eq!((ConditionStatus::of(ready), ready.reason.as_str()), (ConditionStatus::False, reason::MANUAL));
        assert_eq!(s1.disabled_at, Some(t("2026-01-01T00:00:00Z")));
        let s2 = desired_status(&s1, &i, &t("2026-01-02T00:00:00Z"));
        assert_eq!(s2.disabled_at, Some(t("2026-01-01T00:00:00Z")));
        let s3 = desired_status(&s2, &input(ConditionStatus::True, "Valid", false), &t("2026-01-03T00:00:00Z"));
        assert_eq!(s3.disabled_at, None);
        assert!(conditions::is_true(&s3.conditions, READY));
    }

    #[test]
    fn invalid_or_unknown_credentials_are_not_ready() {
        let s = desired_status(
            &IntegrationStatus::default(),
            &input(ConditionStatus::False, "SecretNotFound", false),
            &t("2026-01-01T00:00:00Z"),
        );
        let ready = conditions::find(&s.conditions, READY).unwrap();
        assert_eq!((ConditionStatus::of(ready), ready.reason.as_str()), (ConditionStatus::False, "SecretNotFound"));
        let s = desired_status(
            &IntegrationStatus::default(),
            &input(ConditionStatus::Unknown, "ServiceUnavailable", false),
            &t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(conditions::status(&s.conditions, READY), Some(ConditionStatus::Unknown));
    }

    #[test]
    fn events_only_on_transitions() {
        let now = t("2026-01-01T00:00:00Z");
        let empty = IntegrationStatus::default();
        let invalid = desired_status(&empty, &input(ConditionStatus::False, "Unauthorized", false), &now);
        let ev = transition_events(&empty, &invalid);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].reason, "CredentialsInvalid");
        assert!(transition_events(&invalid, &invalid).is_empty());
        let disabled = desired_status(&invalid, &input(ConditionStatus::False, "Unauthorized", true), &now);
        let ev = transition_events(&invalid, &disabled);
        assert_eq!(ev.iter().map(|e| e.reason).collect::<Vec<_>>(), ["IntegrationDisabled"]);
        let ready = desired_status(&disabled, &input(ConditionStatus::True, "Valid", false), &now);
        let ev = transition_events(&disabled, &ready);
        assert_eq!(ev.iter().map(|e| (e.reason, e.warning)).collect::<Vec<_>>(), [("IntegrationReady", false)]);
    }
}

#[cfg(test)]
mod counting_tests {
    use super::*;
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

    fn under() -> Under {
        Under { generation: 1, secret_version: Some("10".into()) }
    }

    fn spec(threshold: i32) -> NotificationIntegrationSpec {
        serde_json::from_value(serde_json::json!({
            "service": "webhook", "secretRef": {"name": "s"}, "errorThreshold": threshold,
        }))
        .unwrap()
    }

    fn dead() -> Outcome {
        Outcome::Dead(Failure::new(reason::DESTINATION_NOT_FOUND, "the webhook is gone"))
    }

    #[test]
    fn disables_at_exactly_the_threshold() {
        let now = t("2026-01-02T00:00:00Z");
        let mut s = ready_status();
        for i in 1..=2 {
            let (next, disabled) = record_outcome(&s, &dead(), &under(), &spec(3), &now);
            assert!(!disabled, "not yet at {i}");
            assert_eq!(next.consecutive_errors, i);
            assert!(conditions::is_true(&next.conditions, READY));
            s = next;
        }
        let (next, disabled) = record_outcome(&s, &dead(), &under(), &spec(3), &now);
        assert!(disabled);
        assert_eq!(next.consecutive_errors, 3);
        assert_eq!(next.total_errors, 3);
        let d = conditions::find(&next.conditions, DISABLED).unwrap();
        assert_eq!(
            (ConditionStatus::of(d), d.reason.as_str()),
            (ConditionStatus::True, super::reason::ERROR_THRESHOLD)
        );
        assert!(!conditions::is_true(&next.conditions, READY));
        assert_eq!(next.disabled_at, Some(now.clone()));
        assert_eq!(next.auto_disabled.as_ref().unwrap().secret_resource_version.as_deref(), Some("10"));
        assert_eq!(next.last_error.as_ref().unwrap().reason, "DestinationNotFound");
        // Further failures count but don't "disable again".
        let (again, disabled) = record_outcome(&next, &dead(), &under(), &spec(3), &now);
        assert!(!disabled);
        assert_eq!(again.consecutive_errors, 4);
    }

    #[test]
    fn success_resets_and_rejections_do_not_count() {
        let now = t("2026-01-02T00:00:00Z");
        let (s, _) = record_outcome(&ready_status(), &dead(), &under(), &spec(5), &now);
        let rejected = Outcome::Rejected(Failure::new(reason::MESSAGE_REJECTED, "too long"));
        let (s2, _) = record_outcome(&s, &rejected, &under(), &spec(5), &now);
        assert_eq!(s2, s, "a rejected message is not the integration's fault");
        let (s3, _) = record_outcome(&s2, &Outcome::Delivered, &under(), &spec(5), &now);
        assert_eq!(s3.consecutive_errors, 0);
        assert_eq!(s3.total_errors, 1);
        assert_eq!(s3.total_delivered, 1);
        assert_eq!(s3.last_delivery_time, Some(now));
        assert!(s3.last_error.is_some(), "the last error stays visible");
    }

    #[test]
    fn a_batch_applies_successes_before_the_failure() {
        let now = t("2026-01-02T00:00:00Z");
        let (s, _) = record_outcome(&ready_status(), &dead(), &under(), &spec(5), &now);
        let batch = Batch { delivered: 3, last_delivered: Some(now.clone()), failure: Some(dead()) };
        let (next, disabled) = record_batch(&s, &batch, &under(), &spec(5), &now);
        assert!(!disabled);
        assert_eq!((next.total_delivered, next.consecutive_errors, next.total_errors), (3, 1, 2));
        let empty = record_batch(&s, &Batch::default(), &under(), &spec(5), &now);
        assert_eq!(empty, (s, false));
    }

    #[test]
    fn a_new_generation_or_secret_re_enables() {
        let now = t("2026-01-02T00:00:00Z");
        let (disabled, _) = record_outcome(&ready_status(), &dead(), &under(), &spec(1), &now);
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

#[cfg(test)]
mod receiving_tests {
    use super::reason::{CHECKING, MANUAL};
    use super::*;
    use crate::crd::conditions::{DesiredCondition, set_condition};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn integration(
        disabled: bool,
        generation: i64,
        conds: &[(&'static str, ConditionStatus, i64)],
    ) -> NotificationIntegration {
        let mut ni: NotificationIntegration = serde_json::from_value(serde_json::json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
            "metadata": {"name": "a", "namespace": "n", "generation": generation},
            "spec": {"service": "webhook", "secretRef": {"name": "s"}, "disabled": disabled},
        }))
        .unwrap();
        let mut status = crate::crd::IntegrationStatus::default();
        let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
        for (t, s, g) in conds {
            set_condition(&mut status.conditions, DesiredCondition::new(t, *s, "R", "m"), Some(*g), &now);
        }
        ni.status = Some(status);
        ni
    }

    #[test]
    fn ready_only_for_the_checked_generation() {
        assert_eq!(receivable(None), Receivable::Missing);
        let ok = integration(false, 2, &[(READY, ConditionStatus::True, 2)]);
        assert!(receivable(Some(&ok)).is_ready());
        let stale = integration(false, 3, &[(READY, ConditionStatus::True, 2)]);
        assert!(matches!(receivable(Some(&stale)), Receivable::NotReady { reason, .. } if reason == CHECKING));
        let unchecked = integration(false, 1, &[]);
        assert!(matches!(receivable(Some(&unchecked)), Receivable::NotReady { reason, .. } if reason == CHECKING));
        let invalid = integration(false, 1, &[(READY, ConditionStatus::False, 1)]);
        assert!(matches!(receivable(Some(&invalid)), Receivable::NotReady { reason, .. } if reason == "R"));
    }

    #[test]
    fn disabled_wins() {
        let manual = integration(true, 1, &[(READY, ConditionStatus::True, 1)]);
        assert!(matches!(receivable(Some(&manual)), Receivable::Disabled { reason, .. } if reason == MANUAL));
        let auto = integration(false, 1, &[(READY, ConditionStatus::False, 1), (DISABLED, ConditionStatus::True, 1)]);
        assert!(matches!(receivable(Some(&auto)), Receivable::Disabled { reason, .. } if reason == "R"));
    }
}
