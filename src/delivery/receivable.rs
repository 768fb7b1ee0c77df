//! The one place that decides whether an integration can receive a message
//! now: used by the event planner, the delivery workers and the synchronous
//! `send` route alike.

use kube::Resource;

use crate::crd::NotificationIntegration;
use crate::crd::conditions::{self, ConditionStatus, DISABLED, READY};

/// The reason given while a spec has not been checked yet.
pub const CHECKING: &str = "Checking";
/// The reason given while `spec.disabled` is true.
pub const MANUAL: &str = "Manual";

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
        return Receivable::Disabled { reason: MANUAL.into(), message: "spec.disabled is true".into() };
    }
    if let Some(d) = conditions::find(conds, DISABLED).filter(|d| d.status == ConditionStatus::True.as_str()) {
        return Receivable::Disabled { reason: d.reason.clone(), message: d.message.clone() };
    }
    match conditions::find(conds, READY) {
        Some(r) if r.status != ConditionStatus::True.as_str() => {
            Receivable::NotReady { reason: r.reason.clone(), message: r.message.clone() }
        }
        Some(r) if r.observed_generation == ni.meta().generation => Receivable::Ready,
        Some(_) => Receivable::NotReady {
            reason: CHECKING.into(),
            message: "the changed spec has not been checked yet".into(),
        },
        None => {
            Receivable::NotReady { reason: CHECKING.into(), message: "the integration has not been checked yet".into() }
        }
    }
}

#[cfg(test)]
mod tests {
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
