//! Kubernetes-style conditions: set a condition so that its
//! `lastTransitionTime` moves only on a real transition of its status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const CREDENTIALS_VALID: &str = "CredentialsValid";
pub const DISABLED: &str = "Disabled";

/// `True`, `False` or `Unknown`, as a condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }

    pub fn from_bool(b: bool) -> Self {
        if b { ConditionStatus::True } else { ConditionStatus::False }
    }

    /// A condition's `status` as written: anything but `True` or `False` is `Unknown`.
    pub fn of(condition: &Condition) -> Self {
        match condition.status.as_str() {
            "True" => ConditionStatus::True,
            "False" => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        }
    }
}

/// What a condition should say; the time is filled in by [`set_condition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

impl DesiredCondition {
    pub fn new(
        type_: &'static str,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { type_, status, reason: reason.into(), message: message.into() }
    }
}

/// Put `desired` into `conditions`, keeping `lastTransitionTime` of the
/// existing condition of that type unless its status changes.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    desired: DesiredCondition,
    observed_generation: Option<i64>,
    now: &Time,
) {
    let existing = conditions.iter().position(|c| c.type_ == desired.type_);
    let last_transition_time = match existing.map(|i| &conditions[i]) {
        Some(c) if ConditionStatus::of(c) == desired.status => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    let condition = Condition {
        type_: desired.type_.to_string(),
        status: desired.status.as_str().to_string(),
        reason: desired.reason,
        message: desired.message,
        observed_generation,
        last_transition_time,
    };
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// The condition of type `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The status of the condition of type `type_`, if present.
pub fn status(conditions: &[Condition], type_: &str) -> Option<ConditionStatus> {
    find(conditions, type_).map(ConditionStatus::of)
}

/// Whether the condition of type `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    status(conditions, type_) == Some(ConditionStatus::True)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut conds = Vec::new();
        let t1 = time("2026-01-01T00:00:00Z");
        let t2 = time("2026-01-02T00:00:00Z");
        let t3 = time("2026-01-03T00:00:00Z");
        set_condition(&mut conds, DesiredCondition::new(READY, ConditionStatus::True, "Valid", "ok"), Some(1), &t1);
        set_condition(
            &mut conds,
            DesiredCondition::new(READY, ConditionStatus::True, "Valid", "still ok"),
            Some(2),
            &t2,
        );
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, t1);
        assert_eq!(conds[0].message, "still ok");
        assert_eq!(conds[0].observed_generation, Some(2));
        set_condition(
            &mut conds,
            DesiredCondition::new(READY, ConditionStatus::False, "Disabled", "off"),
            Some(2),
            &t3,
        );
        assert_eq!(conds[0].last_transition_time, t3);
        assert!(!is_true(&conds, READY));
    }

    #[test]
    fn statuses_are_read_typed() {
        let now = time("2026-01-01T00:00:00Z");
        let mut conds = Vec::new();
        set_condition(&mut conds, DesiredCondition::new(READY, ConditionStatus::False, "R", "m"), None, &now);
        assert_eq!(status(&conds, READY), Some(ConditionStatus::False));
        assert_eq!(status(&conds, DISABLED), None);
        conds[0].status = "Maybe".into();
        assert_eq!(status(&conds, READY), Some(ConditionStatus::Unknown), "what is not True or False is Unknown");
        assert!(!is_true(&conds, READY));
    }
}
