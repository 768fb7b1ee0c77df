//! Delivery outcomes that are known but not written yet. A worker puts an
//! outcome here the moment the service has answered, before anything else;
//! the event's one writer (its reconcile, or the drain at shutdown) merges
//! them into the status and takes them out only once that write succeeded.
//! While an outcome is here, the planner treats the delivery as finished, so
//! a failed or conflicting status write never causes a second send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan::reason;
use crate::crd::{DeliveryPhase, NotificationEvent, NotificationEventStatus};
use crate::delivery::{Outcome, Report};

/// One known outcome of the delivery of an event to an integration.
#[derive(Clone, Debug, PartialEq)]
pub struct Known {
    pub integration: String,
    pub report: Report,
    /// When the service answered.
    pub at: Time,
}

#[derive(Default)]
struct ForEvent {
    /// The event as the worker had it: a base for the drain's write.
    event: Option<Arc<NotificationEvent>>,
    known: Vec<Known>,
}

/// Known, unwritten outcomes by event uid.
#[derive(Default)]
pub struct KnownOutcomes {
    by_event: Mutex<HashMap<String, ForEvent>>,
}

impl KnownOutcomes {
    /// Keep an outcome until it is written.
    pub fn record(&self, event: Arc<NotificationEvent>, uid: &str, known: Known) {
        let mut map = self.by_event.lock().unwrap();
        let entry = map.entry(uid.to_string()).or_default();
        entry.event.get_or_insert(event);
        entry.known.retain(|k| k.integration != known.integration);
        entry.known.push(known);
    }

    /// The outcomes of event `uid` not written yet.
    pub fn of(&self, uid: &str) -> Vec<Known> {
        self.by_event.lock().unwrap().get(uid).map(|e| e.known.clone()).unwrap_or_default()
    }

    /// `written` (what a successful status write contained) is on record:
    /// forget those outcomes.
    pub fn written(&self, uid: &str, written: &[Known]) {
        let mut map = self.by_event.lock().unwrap();
        if let Some(entry) = map.get_mut(uid) {
            entry.known.retain(|k| !written.contains(k));
            if entry.known.is_empty() {
                map.remove(uid);
            }
        }
    }

    /// Every event with unwritten outcomes, with the event as the worker had it.
    pub fn unwritten(&self) -> Vec<(String, Arc<NotificationEvent>)> {
        let map = self.by_event.lock().unwrap();
        map.iter().filter_map(|(uid, e)| Some((uid.clone(), e.event.clone()?))).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_event.lock().unwrap().is_empty()
    }
}

/// Put known outcomes into `status` (pure). An outcome replaces only a
/// delivery that is still `Pending`: what is on record already stays.
pub fn apply(status: &mut NotificationEventStatus, known: &[Known]) {
    for k in known {
        let Some(d) = status.deliveries.iter_mut().find(|d| d.integration == k.integration) else { continue };
        if d.phase != DeliveryPhase::Pending {
            continue;
        }
        d.attempts = d.attempts.saturating_add(i32::try_from(k.report.attempts).unwrap_or(i32::MAX));
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
                // Running out of time is the event's deadline passing, whatever the service said.
                let why = if matches!(other, Outcome::DeadlinePassed(_)) { reason::EXPIRED } else { why };
                d.reason = Some(why.to_string());
                d.last_error = Some(message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Delivery;
    use crate::notifier::classify::{Failure, reason as failure};

    fn pending(name: &str) -> Delivery {
        Delivery {
            integration: name.into(),
            phase: DeliveryPhase::Pending,
            attempts: 0,
            last_error: None,
            reason: Some("Queued".into()),
            delivered_at: None,
        }
    }

    fn known(name: &str, outcome: Outcome) -> Known {
        Known {
            integration: name.into(),
            report: Report { outcome, attempts: 2 },
            at: Time("2026-01-01T00:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn outcomes_fill_pending_deliveries_only() {
        let mut s = NotificationEventStatus { deliveries: vec![pending("a"), pending("b")], ..Default::default() };
        s.deliveries[1].phase = DeliveryPhase::Delivered;
        let dead = Outcome::Dead(Failure::new(failure::UNAUTHORIZED, "revoked"));
        apply(
            &mut s,
            &[known("a", dead), known("b", Outcome::Rejected(Failure::new("X", "y"))), known("zz", Outcome::Delivered)],
        );
        assert_eq!(s.deliveries[0].phase, DeliveryPhase::Failed);
        assert_eq!(s.deliveries[0].reason.as_deref(), Some("Unauthorized"));
        assert_eq!(s.deliveries[0].attempts, 2);
        assert_eq!(s.deliveries[1].phase, DeliveryPhase::Delivered, "what is on record stays");
        assert_eq!(s.deliveries.len(), 2);
    }

    #[test]
    fn an_outcome_is_kept_until_written() {
        let outcomes = KnownOutcomes::default();
        let ev = Arc::new(
            serde_json::from_value::<NotificationEvent>(serde_json::json!({
                "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationEvent",
                "metadata": {"name": "e", "namespace": "n", "uid": "u1"},
                "spec": {"integrationRef": {"name": "a"}, "message": "m"},
            }))
            .unwrap(),
        );
        outcomes.record(ev.clone(), "u1", known("a", Outcome::Delivered));
        outcomes.record(ev, "u1", known("b", Outcome::Delivered));
        let first = outcomes.of("u1");
        assert_eq!(first.len(), 2);
        outcomes.written("u1", &first[..1]);
        assert_eq!(outcomes.of("u1").len(), 1);
        assert_eq!(outcomes.unwritten().len(), 1);
        outcomes.written("u1", &first[1..]);
        assert!(outcomes.is_empty());
    }
}
