//! The test message an integration's annotation `kube-notify.io/send-test`
//! asks for, as pure functions: which request is open, what to do about it,
//! what the integration's `status.testMessage` and Event say afterwards.
//!
//! One test message is sent per new value of the annotation. `Sending` is
//! put on record before the message is sent, so a process that stops while
//! sending never sends it again: the next leader finds `Sending` without an
//! outcome and records the request as `Interrupted`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

use crate::crd::{
    IntegrationKey, NotificationIntegration, SEND_TEST_ANNOTATION, Severity, TEST_REQUEST_MAX_CHARS, TestMessagePhase,
    TestMessageStatus,
};
use crate::notifier::Message;
use crate::status::integration::{Receivable, Subject, reason as integration_reason, receivable, with_next_step};
use crate::status::outcome::{Outcome, Report};

/// Reasons of a test message that the engine itself decides.
pub mod reason {
    /// The process stopped after `Sending` was recorded and before the
    /// outcome was: the message may or may not have arrived.
    pub const INTERRUPTED: &str = "Interrupted";
}

/// Reasons of the Kubernetes Events about a test message.
pub mod event_reason {
    pub const DELIVERED: &str = "TestMessageDelivered";
    pub const FAILED: &str = "TestMessageFailed";
    pub const SKIPPED: &str = "TestMessageSkipped";
}

/// The open request: the annotation's value as `status.testMessage.request`
/// keeps it (trimmed; a long one as its SHA-256), or `None` without one.
pub fn requested(ni: &NotificationIntegration) -> Option<String> {
    let value = ni.metadata.annotations.as_ref()?.get(SEND_TEST_ANNOTATION)?.trim();
    if value.is_empty() {
        return None;
    }
    Some(if value.chars().count() > TEST_REQUEST_MAX_CHARS {
        format!("sha256:{:x}", Sha256::digest(value.as_bytes()))
    } else {
        value.to_string()
    })
}

/// What to do about the request `request` of `ni`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// It was answered already.
    Answered,
    /// The spec has not been checked yet: decide after the check.
    Wait,
    /// The integration cannot receive: record it as skipped, send nothing.
    Skip { reason: String, message: String },
    /// Record `Sending`, then send it.
    Send,
    /// `Sending` is on record and this process has no outcome for it.
    Interrupted,
}

/// The phase on record for `request`, if it is the one on record.
fn recorded(ni: &NotificationIntegration, request: &str) -> Option<TestMessagePhase> {
    ni.status.as_ref()?.test_message.as_ref().filter(|t| t.request == request).map(|t| t.phase)
}

/// Whether `ni` has a final answer to `request` on record: nothing may
/// replace it (an outcome written over a fresher object re-checks this).
pub fn answered(ni: &NotificationIntegration, request: &str) -> bool {
    recorded(ni, request).is_some_and(|p| p != TestMessagePhase::Sending)
}

/// Whether `ni` says `request` is being sent (by this process or one that stopped).
pub fn sending_on_record(ni: &NotificationIntegration, request: &str) -> bool {
    recorded(ni, request) == Some(TestMessagePhase::Sending)
}

/// Decide for the integration as last seen (our own writes included).
pub fn next_step(ni: &NotificationIntegration, request: &str) -> Step {
    match recorded(ni, request) {
        Some(TestMessagePhase::Sending) => return Step::Interrupted,
        Some(_) => return Step::Answered,
        None => {}
    }
    match receivable(Some(ni)) {
        Receivable::Ready => Step::Send,
        Receivable::NotReady { reason, .. } if reason == integration_reason::CHECKING => Step::Wait,
        Receivable::Disabled { reason, message } | Receivable::NotReady { reason, message } => {
            Step::Skip { reason, message }
        }
        Receivable::Missing => Step::Answered,
    }
}

/// `status.testMessage` while the message is being sent.
pub fn sending(request: &str, now: &Time) -> TestMessageStatus {
    TestMessageStatus {
        request: request.to_string(),
        phase: TestMessagePhase::Sending,
        reason: None,
        message: None,
        attempts: 0,
        time: now.clone(),
    }
}

/// `status.testMessage` once the engine reported; a failure says the next step.
pub fn finished(request: &str, report: &Report, subject: &Subject, now: &Time) -> TestMessageStatus {
    let (phase, reason, message) = match &report.outcome {
        Outcome::Delivered => (TestMessagePhase::Delivered, None, "the test message was delivered".to_string()),
        Outcome::Dead(_) | Outcome::Rejected(_) | Outcome::Exhausted(_) | Outcome::Expired(_) => {
            let (reason, message) = report.outcome.failure().unwrap_or_default();
            (TestMessagePhase::Failed, Some(reason.to_string()), with_next_step(&message, reason, subject))
        }
    };
    TestMessageStatus {
        request: request.to_string(),
        phase,
        reason,
        message: Some(message),
        attempts: report.attempts,
        time: now.clone(),
    }
}

/// `status.testMessage` when the integration could not receive it; it says the next step.
pub fn skipped(request: &str, reason: &str, message: &str, subject: &Subject, now: &Time) -> TestMessageStatus {
    TestMessageStatus {
        request: request.to_string(),
        phase: TestMessagePhase::Skipped,
        reason: Some(reason.to_string()),
        message: Some(format!("nothing was sent: {}", with_next_step(message, reason, subject))),
        attempts: 0,
        time: now.clone(),
    }
}

/// `status.testMessage` for a send this process did not see end.
pub fn interrupted(request: &str, now: &Time) -> TestMessageStatus {
    TestMessageStatus {
        request: request.to_string(),
        phase: TestMessagePhase::Failed,
        reason: Some(reason::INTERRUPTED.to_string()),
        message: Some(
            "kube-notify stopped while sending the test message: it may have arrived; set a new value on the annotation to send another"
                .to_string(),
        ),
        attempts: 0,
        time: now.clone(),
    }
}

/// The status with `test` as its test message, or `None` when it says so already.
pub fn with_test_message(ni: &NotificationIntegration, test: &TestMessageStatus) -> Option<NotificationIntegration> {
    let current = ni.status.clone().unwrap_or_default();
    if current.test_message.as_ref() == Some(test) {
        return None;
    }
    let mut next = ni.clone();
    next.status = Some(crate::crd::IntegrationStatus { test_message: Some(test.clone()), ..current });
    Some(next)
}

/// The Event that tells a finished or skipped test message: (warning, reason, note).
pub fn notice(test: &TestMessageStatus) -> Option<(bool, &'static str, String)> {
    let why =
        || format!("{}: {}", test.reason.as_deref().unwrap_or_default(), test.message.as_deref().unwrap_or_default());
    match test.phase {
        TestMessagePhase::Sending => None,
        TestMessagePhase::Delivered => Some((
            false,
            event_reason::DELIVERED,
            format!("test message {:?} delivered ({} {})", test.request, test.attempts, plural(test.attempts)),
        )),
        TestMessagePhase::Failed => {
            Some((true, event_reason::FAILED, format!("test message {:?} failed: {}", test.request, why())))
        }
        TestMessagePhase::Skipped => {
            Some((true, event_reason::SKIPPED, format!("test message {:?} not sent: {}", test.request, why())))
        }
    }
}

fn plural(attempts: u32) -> &'static str {
    if attempts == 1 { "attempt" } else { "attempts" }
}

/// The test message itself: short, plain, the same on every service.
pub fn message(key: &IntegrationKey, request: &str, now: jiff::Timestamp) -> Message {
    Message {
        id: format!("test-{:032x}", rand::random::<u128>()),
        title: Some("kube-notify test message".to_string()),
        text: format!(
            "This is a test message for the NotificationIntegration {key}: notifications sent to it arrive here."
        ),
        severity: Severity::Info,
        fields: vec![crate::crd::EventField { name: "Request".to_string(), value: request.to_string() }],
        links: vec![],
        mentions: vec![],
        source: Some(format!("{key}/test")),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::notifier::classify::Failure;

    fn now() -> Time {
        Time(jiff::Timestamp::UNIX_EPOCH)
    }

    fn integration(annotation: Option<&str>, ready: &str, disabled: bool) -> NotificationIntegration {
        let mut ni: NotificationIntegration = serde_json::from_value(json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
            "metadata": {"name": "hook", "namespace": "team-a", "generation": 2},
            "spec": {"service": "webhook", "secretRef": {"name": "s"}, "disabled": disabled},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": if ready == "True" { "Ready" } else { "SecretNotFound" },
                "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2}]}
        }))
        .unwrap();
        if let Some(v) = annotation {
            ni.metadata.annotations = Some(BTreeMap::from([(SEND_TEST_ANNOTATION.to_string(), v.to_string())]));
        }
        ni
    }

    #[test]
    fn the_request_is_the_trimmed_value_and_a_long_one_its_digest() {
        assert_eq!(requested(&integration(None, "True", false)), None);
        assert_eq!(requested(&integration(Some("  "), "True", false)), None);
        assert_eq!(
            requested(&integration(Some(" 2026-12-06T10:00 "), "True", false)).as_deref(),
            Some("2026-12-06T10:00")
        );
        let long = "x".repeat(TEST_REQUEST_MAX_CHARS + 1);
        let r = requested(&integration(Some(&long), "True", false)).unwrap();
        assert!(r.starts_with("sha256:") && r.len() == 7 + 64, "{r}");
        let exact = "y".repeat(TEST_REQUEST_MAX_CHARS);
        assert_eq!(requested(&integration(Some(&exact), "True", false)), Some(exact));
    }

    #[test]
    fn each_request_is_sent_once_and_only_to_an_integration_that_can_receive() {
        let ready = integration(Some("1"), "True", false);
        assert_eq!(next_step(&ready, "1"), Step::Send);

        let mut sending = ready.clone();
        sending.status.as_mut().unwrap().test_message = Some(self::sending("1", &now()));
        assert_eq!(next_step(&sending, "1"), Step::Interrupted);
        // A new value is a new request, whatever the old one's phase.
        assert_eq!(next_step(&sending, "2"), Step::Send);

        assert!(sending_on_record(&sending, "1") && !answered(&sending, "1"));
        let report = Report { outcome: Outcome::Delivered, attempts: 1 };
        let mut done = ready.clone();
        done.status.as_mut().unwrap().test_message = Some(finished("1", &report, &Subject::of(&ready), &now()));
        assert_eq!(next_step(&done, "1"), Step::Answered);
        assert!(answered(&done, "1") && !answered(&done, "2") && !sending_on_record(&done, "1"));

        let manual = integration(Some("1"), "True", true);
        assert!(matches!(next_step(&manual, "1"), Step::Skip { reason, .. } if reason == "Manual"));
        let invalid = integration(Some("1"), "False", false);
        assert!(matches!(next_step(&invalid, "1"), Step::Skip { reason, .. } if reason == "SecretNotFound"));

        let mut unchecked = ready.clone();
        unchecked.metadata.generation = Some(3);
        assert_eq!(next_step(&unchecked, "1"), Step::Wait, "a changed spec is tested once checked");
    }

    #[test]
    fn statuses_and_events_say_what_happened() {
        let dead = Report {
            outcome: Outcome::Dead(Failure::new("DestinationNotFound", "the webhook answered 404")),
            attempts: 1,
        };
        let subject = Subject::of(&integration(None, "True", false));
        let failed = finished("1", &dead, &subject, &now());
        assert_eq!((failed.phase, failed.reason.as_deref()), (TestMessagePhase::Failed, Some("DestinationNotFound")));
        let step = crate::status::integration::next_step("DestinationNotFound", &subject).unwrap();
        assert!(failed.message.as_deref().unwrap().ends_with(&step), "{failed:?}");
        let (warning, reason, note) = notice(&failed).unwrap();
        assert!(warning && reason == event_reason::FAILED && note.contains("DestinationNotFound"), "{note}");
        assert!(note.ends_with(&step), "the Warning says the next step: {note}");

        let ok = finished("1", &Report { outcome: Outcome::Delivered, attempts: 2 }, &subject, &now());
        assert_eq!((ok.phase, ok.attempts), (TestMessagePhase::Delivered, 2));
        assert_eq!(
            notice(&ok).unwrap(),
            (false, event_reason::DELIVERED, "test message \"1\" delivered (2 attempts)".into())
        );

        let skip = skipped("1", "Manual", "spec.disabled is true", &subject, &now());
        assert_eq!(skip.phase, TestMessagePhase::Skipped);
        let note = notice(&skip).unwrap().2;
        assert!(note.contains("Manual: nothing was sent: spec.disabled is true"), "{note}");
        assert!(note.ends_with(&crate::status::integration::next_step("Manual", &subject).unwrap()), "{note}");
        assert_eq!(notice(&sending("1", &now())), None);
        assert_eq!(interrupted("1", &now()).reason.as_deref(), Some(reason::INTERRUPTED));
    }

    #[test]
    fn writing_the_same_test_status_again_is_no_write() {
        let mut ni = integration(Some("1"), "True", false);
        let t = sending("1", &now());
        let next = with_test_message(&ni, &t).expect("a change");
        assert_eq!(next.status.as_ref().unwrap().conditions, ni.status.as_ref().unwrap().conditions, "conditions kept");
        ni = next;
        assert!(with_test_message(&ni, &t).is_none());
    }
}
