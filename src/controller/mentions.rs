//! Mentions on both delivery paths (NotificationEvents and the synchronous
//! `send`): resolved just before the send with the namespace's
//! NotificationContacts (from the watch, so a new or fixed contact applies
//! to the next delivery), then counted and reported: a Warning Event
//! `MentionUnresolved` on the integration (at most one per integration and
//! email per [`Settings::mention_warning_period`](super::Settings)), and
//! `MentionLookupNotAllowed` once when a Slack token cannot look people up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

use super::Context;
use crate::crd::{Mention, NotificationContact, NotificationIntegration, Service};
use crate::notifier::Notifier;
use crate::notifier::mentions::{Resolution, Unresolved, contact_field, why};

pub const MENTION_UNRESOLVED: &str = "MentionUnresolved";
pub const MENTION_LOOKUP_NOT_ALLOWED: &str = "MentionLookupNotAllowed";

/// Resolve `mentions` for `notifier`'s service with the contacts of `namespace`.
pub async fn resolve(ctx: &Context, namespace: &str, notifier: &dyn Notifier, mentions: &[Mention]) -> Resolution {
    if mentions.is_empty() {
        return Resolution::default();
    }
    let contacts: Vec<Arc<NotificationContact>> =
        ctx.contacts.state().into_iter().filter(|c| c.metadata.namespace.as_deref() == Some(namespace)).collect();
    ctx.mentioner.resolve(&ctx.http, &notifier.mention_directory(), mentions, &contacts).await
}

/// When each (namespace, integration, email) was last warned about.
#[derive(Default)]
pub struct Warned {
    last: Mutex<HashMap<(String, String, String), Instant>>,
}

impl Warned {
    /// Whether a warning about `key` is due now (and note it as given).
    fn due(&self, key: (String, String, String), period: Duration) -> bool {
        let mut last = self.last.lock().unwrap();
        let now = Instant::now();
        if last.len() >= 10_000 {
            last.retain(|_, at| now.duration_since(*at) < period);
        }
        match last.get(&key) {
            Some(at) if now.duration_since(*at) < period => false,
            _ => {
                last.insert(key, now);
                true
            }
        }
    }
}

/// Count the resolution in the metrics and publish its Warning Events (in
/// the background: the delivery's queue does not wait for the API).
pub fn report(ctx: &Arc<Context>, ni: &NotificationIntegration, service: Service, resolution: &Resolution) {
    if resolution.mentions.is_empty() {
        return;
    }
    ctx.metrics.mentions(service, "resolved", resolution.resolved() as u64);
    ctx.metrics.mentions(service, "unresolved", resolution.unresolved.len() as u64);
    let namespace = ni.namespace().unwrap_or_default();
    let name = ni.name_any();
    let mut events = Vec::new();
    if resolution.lookup_not_allowed {
        events.push((
            MENTION_LOOKUP_NOT_ALLOWED,
            "the Slack bot token lacks the users:read.email scope, so people cannot be looked up by email: add the \
             scope to the Slack app and reinstall it, or map each person with a NotificationContact \
             (spec.slack.userId); until then only NotificationContacts resolve mentions"
                .to_string(),
        ));
    }
    let period = ctx.settings.mention_warning_period;
    for u in &resolution.unresolved {
        if ctx.mention_warnings.due((namespace.clone(), name.clone(), u.email.to_ascii_lowercase()), period) {
            events.push((MENTION_UNRESOLVED, unresolved_note(service, &namespace, u)));
        }
    }
    if events.is_empty() {
        return;
    }
    let object = ni.object_ref(&());
    let ctx = ctx.clone();
    tokio::spawn(async move {
        for (reason, note) in events {
            ctx.publish(&object, true, reason, note, "Mention").await;
        }
    });
}

/// What a person reads in the Warning Event: who, why, and how to fix it.
pub fn unresolved_note(service: Service, namespace: &str, u: &Unresolved) -> String {
    let fix = match (u.why, contact_field(service)) {
        (why::NOT_IN_ROOM, _) => "add the account to the room, or fix the NotificationContact".to_string(),
        (_, Some(field)) => {
            format!("add a NotificationContact in namespace {namespace} with spec.email {} and {field}", u.email)
        }
        (_, None) => "nothing maps mentions on this service".to_string(),
    };
    format!("{} was shown without a mention on {service} ({}: {}); {fix}", u.email, u.why, u.detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_due_once_per_period() {
        let warned = Warned::default();
        let key = || ("ns".to_string(), "ni".to_string(), "a@b.co".to_string());
        assert!(warned.due(key(), Duration::from_secs(3600)));
        assert!(!warned.due(key(), Duration::from_secs(3600)));
        assert!(warned.due(("ns".into(), "other".into(), "a@b.co".into()), Duration::from_secs(3600)));
        assert!(warned.due(key(), Duration::ZERO), "a zero period warns every time");
    }

    #[test]
    fn the_note_says_how_to_add_a_contact() {
        let u = Unresolved { email: "jane@example.com".into(), why: why::NOT_FOUND, detail: "no Slack user".into() };
        let note = unresolved_note(Service::Slack, "team-a", &u);
        assert!(note.contains("NotificationContact") && note.contains("spec.slack.userId"), "{note}");
        assert!(note.contains("team-a") && note.contains("jane@example.com"), "{note}");
    }
}
