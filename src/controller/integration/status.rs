//! The integration's desired status, as a pure function of what was observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::IntegrationStatus;
use crate::crd::conditions::{
    self, CREDENTIALS_VALID, ConditionStatus, DISABLED, DesiredCondition, READY, set_condition,
};

/// Condition reasons the integration controller writes.
pub mod reason {
    pub const VALID: &str = "Valid";
    pub const READY: &str = "Ready";
    pub const MANUAL: &str = "Manual";
    pub const ERROR_THRESHOLD: &str = "ErrorThreshold";
    pub const ENABLED: &str = "Enabled";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const CHECKING: &str = "Checking";
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
pub fn set_derived_conditions(
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
    let creds = conditions::find(&next.conditions, CREDENTIALS_VALID).map(|c| {
        let status = match c.status.as_str() {
            "True" => ConditionStatus::True,
            "False" => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        };
        (status, c.reason.clone(), c.message.clone())
    });
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
    let status_of = |s: &IntegrationStatus, t: &str| conditions::find(&s.conditions, t).map(|c| c.status.clone());
    let mut events = Vec::new();
    let cred = conditions::find(&new.conditions, CREDENTIALS_VALID);
    if let Some(c) = cred
        && c.status == "False"
        && status_of(old, CREDENTIALS_VALID).as_deref() != Some("False")
    {
        events.push(TransitionEvent {
            warning: true,
            reason: "CredentialsInvalid",
            note: format!("{}: {}", c.reason, c.message),
        });
    }
    if let Some(d) = conditions::find(&new.conditions, DISABLED)
        && d.status == "True"
        && status_of(old, DISABLED).as_deref() != Some("True")
    {
        events.push(TransitionEvent {
            warning: true,
            reason: "IntegrationDisabled",
            note: format!("{}: {}", d.reason, d.message),
        });
    }
    if conditions::is_true(&new.conditions, READY) && !conditions::is_true(&old.conditions, READY) {
        events.push(TransitionEvent {
            warning: false,
            reason: "IntegrationReady",
            note: "notifications are delivered".into(),
        });
    }
    events
}

/// The `Ready` condition's status, for logs.
pub fn ready_of(status: &IntegrationStatus) -> Option<&str> {
    conditions::find(&status.conditions, READY).map(|c| c.status.as_str())
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
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", reason::MANUAL));
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
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "SecretNotFound"));
        let s = desired_status(
            &IntegrationStatus::default(),
            &input(ConditionStatus::Unknown, "ServiceUnavailable", false),
            &t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(conditions::find(&s.conditions, READY).unwrap().status, "Unknown");
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
