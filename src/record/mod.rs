//! Putting things on record in the store: status writes by their one writer
//! in this process ([`status_writes`]), Kubernetes Events ([`publish`]), and
//! the API errors of both with the waits after them ([`ErrorBackoff`]).

pub mod status_writes;

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;

use crate::store::Notices;
pub use status_writes::{StatusWriters, StatusWrites};

/// Errors of a reconcile or a write: Kubernetes API failures. Service
/// failures are not errors; they are outcomes recorded in status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("gave up after repeated write conflicts on {0}")]
    Conflict(String),
}

impl Error {
    /// Whether the API refused a write because the object changed meanwhile.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409) || matches!(self, Error::Conflict(_))
    }

    /// The HTTP code of the API's answer, or `transport` when there was none
    /// (refused or reset connection, timeout); a metric label.
    pub fn code_label(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(s)) => s.code.to_string(),
            Error::Kube(_) => "transport".to_string(),
            Error::Conflict(_) => "409".to_string(),
        }
    }
}

/// Exponential, capped waits after API errors, per object (or per delivery
/// queue): the first error waits `base`, each further one twice as long up
/// to `max`, with ±20% jitter; a success starts over.
pub struct ErrorBackoff {
    base: Duration,
    max: Duration,
    failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl ErrorBackoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        ErrorBackoff { base, max: max.max(base), failures: Default::default() }
    }

    /// The wait after one more failure of `key`.
    pub fn failed(&self, key: &str) -> Duration {
        let n = {
            let mut failures = self.failures.lock().unwrap();
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        backoff_delay(self.base, self.max, n)
    }

    /// `key` succeeded: its next failure waits `base` again.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap();
        if !failures.is_empty() {
            failures.remove(key);
        }
    }
}

/// The wait after the `n`th consecutive failure (n >= 1).
pub fn backoff_delay(base: Duration, max: Duration, n: u32) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(30)));
    let capped = exp.min(max);
    let jitter = rand::random_range(0.8..1.2);
    capped.mul_f64(jitter).min(max)
}

/// One Kubernetes Event about one of our objects.
pub struct Notice<'a> {
    pub warning: bool,
    pub reason: &'a str,
    pub note: String,
    pub action: &'a str,
    /// Events of the same reason about the same object and related object
    /// within minutes are folded into one series (kube-runtime's recorder),
    /// which keeps the first note: a related object tells them apart.
    pub related: Option<ObjectReference>,
}

/// The Events API refuses notes over 1 KB.
const NOTE_MAX_BYTES: usize = 1024;

/// `note` within the Events API's limit. A problem's note ends with its next
/// step (one sentence): a long one is cut in the middle, so that the step is
/// kept.
fn fit_note(note: &str) -> String {
    use crate::notifier::render::truncate_bytes;
    if note.len() <= NOTE_MAX_BYTES {
        return note.to_string();
    }
    match note.trim_end().rfind(". ").map(|i| &note[i + 2..]) {
        Some(step) if step.len() <= NOTE_MAX_BYTES / 2 => {
            let head = truncate_bytes(&note[..note.len() - step.len()], NOTE_MAX_BYTES - step.len() - 1);
            format!("{head} {step}")
        }
        _ => truncate_bytes(note, NOTE_MAX_BYTES),
    }
}

/// Publish `notice` about `object`; a failure is logged, never fatal.
pub async fn publish(notices: &dyn Notices, object: &ObjectReference, notice: Notice<'_>) {
    let event = kube::runtime::events::Event {
        type_: if notice.warning {
            kube::runtime::events::EventType::Warning
        } else {
            kube::runtime::events::EventType::Normal
        },
        reason: notice.reason.to_string(),
        note: Some(fit_note(&notice.note)),
        action: notice.action.to_string(),
        secondary: notice.related,
    };
    if let Err(e) = notices.publish(object, event).await {
        tracing::warn!(name = ?object.name, namespace = ?object.namespace, error = %e, "could not publish a Kubernetes Event");
    }
}

#[cfg(test)]
mod note_tests {
    use super::*;

    #[test]
    fn a_long_note_keeps_its_next_step() {
        let step = "Create Secret team-a/slack with key webhookUrl, or fix spec.secretRef.name.";
        let note = format!("SecretNotFound: {}. {step}", "é".repeat(900));
        let fitted = fit_note(&note);
        assert!(fitted.len() <= NOTE_MAX_BYTES, "{}", fitted.len());
        assert!(fitted.ends_with(step), "{fitted}");
        assert!(fitted.starts_with("SecretNotFound: éé") && fitted.contains(crate::notifier::render::TRUNCATED));
        assert_eq!(fit_note("short. Do this."), "short. Do this.");
        // No sentence to keep: cut at the end.
        let plain = "x".repeat(2000);
        assert_eq!(fit_note(&plain).len(), NOTE_MAX_BYTES);
    }
}
