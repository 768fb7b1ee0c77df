//! Payloads, one file per service: pure functions from a [`Message`] to what
//! the service expects, within its limits. Golden files in `tests/golden/`
//! pin them down.

pub mod chatwork;
pub mod markup;
#[cfg(test)]
mod markup_proptests;
pub mod slack;
pub mod teams;
pub mod webhook;

use super::mentions::Mentioned;
use crate::crd::{EventField, EventLink, NotificationEventSpec, Severity};

/// One notification, whatever the service.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Stable across retries of this message to this destination (the
    /// receiver's idempotency key for signed webhooks).
    pub id: String,
    pub title: Option<String>,
    pub text: String,
    pub severity: Severity,
    pub fields: Vec<EventField>,
    pub links: Vec<EventLink>,
    /// The people it mentions, resolved for its destination's service
    /// (unresolved ones are shown by name or email).
    pub mentions: Vec<Mentioned>,
    /// Where it came from (`namespace/name` of the event), when it came from an event.
    pub source: Option<String>,
    /// When the message was created (fixed across retries).
    pub created_at: jiff::Timestamp,
}

impl Message {
    /// The message of an event; its mentions are unresolved until
    /// [`Mentioner::resolve`](super::mentions::Mentioner::resolve) resolves them.
    pub fn from_event_spec(
        id: String,
        spec: &NotificationEventSpec,
        source: Option<String>,
        created_at: jiff::Timestamp,
    ) -> Self {
        Message {
            id,
            title: spec.title.clone().filter(|t| !t.trim().is_empty()),
            text: spec.message.clone(),
            severity: spec.severity,
            fields: spec.fields.clone(),
            links: spec.links.clone(),
            mentions: spec.mentions.iter().map(Mentioned::unresolved).collect(),
            source,
            created_at,
        }
    }
}

/// The emoji that shows severity, the same on every service.
pub fn severity_emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "ℹ️",
        Severity::Success => "✅",
        Severity::Warning => "⚠️",
        Severity::Error => "🚨",
    }
}

/// The marker appended where text was cut to fit a service's limit.
pub const TRUNCATED: &str = "… (truncated)";

/// `text` cut to at most `max` characters, with [`TRUNCATED`] at the end when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(TRUNCATED.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(TRUNCATED);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate_chars("hello", 10), "hello");
        let cut = truncate_chars(&"x".repeat(100), 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with(TRUNCATED));
    }
}
