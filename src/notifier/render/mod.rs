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

/// `text` cut to at most `max` characters, with [`TRUNCATED`] at the end when
/// cut (without it when `max` is shorter than the marker).
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let marker = TRUNCATED.chars().count();
    if max < marker {
        return text.chars().take(max).collect();
    }
    let mut out: String = text.chars().take(max - marker).collect();
    out.push_str(TRUNCATED);
    out
}

/// `text` cut to at most `max` bytes of UTF-8 at a character boundary, with
/// [`TRUNCATED`] at the end when cut (without it when `max` is shorter than
/// the marker). For limits in bytes, such as a Kubernetes Event's note.
pub fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let marker = if max < TRUNCATED.len() { "" } else { TRUNCATED };
    let keep = max - marker.len();
    let end = (0..=keep).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}{marker}", &text[..end])
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
        assert_eq!(truncate_chars("hello", 3), "hel", "no room for the marker");
    }

    #[test]
    fn byte_truncation_keeps_characters_whole() {
        assert_eq!(truncate_bytes("héllo", 6), "héllo");
        // 300 three-byte characters: 900 bytes, cut to 500 bytes at a boundary.
        let cut = truncate_bytes(&"日".repeat(300), 500);
        assert!(cut.len() <= 500 && cut.ends_with(TRUNCATED));
        assert_eq!(cut, format!("{}{TRUNCATED}", "日".repeat(161)));
        let emoji = truncate_bytes(&"🚨".repeat(600), 1024);
        assert!(emoji.len() <= 1024 && emoji.starts_with("🚨") && emoji.ends_with(TRUNCATED));
        assert_eq!(truncate_bytes("日本", 4), "日", "no room for the marker");
    }

    proptest::proptest! {
        #![proptest_config(crate::property_tests::config())]

        /// Both cuts stay within their limit, keep a prefix of the text, and mark the cut.
        #[test]
        fn truncation_keeps_limits_and_boundaries(text in "\\PC{0,80}|.{0,40}", max in 0usize..100) {
            let chars = truncate_chars(&text, max);
            proptest::prop_assert!(chars.chars().count() <= max);
            let bytes = truncate_bytes(&text, max);
            proptest::prop_assert!(bytes.len() <= max);
            for (cut, room_for_marker) in [(&chars, max >= TRUNCATED.chars().count()), (&bytes, max >= TRUNCATED.len())] {
                if *cut == text {
                    continue;
                }
                let kept = cut.strip_suffix(TRUNCATED).filter(|_| room_for_marker).unwrap_or(cut);
                proptest::prop_assert!(text.starts_with(kept), "{:?} is not a prefix of {:?}", kept, text);
                proptest::prop_assert_eq!(cut.ends_with(TRUNCATED), room_for_marker);
            }
        }
    }
}
