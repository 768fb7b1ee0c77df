//! Mentions on both delivery paths (NotificationEvents and the synchronous
//! `send`): resolved just before the send with the namespace's
//! NotificationContacts (from the watch, so a new or fixed contact applies
//! to the next delivery), then counted and reported: a Warning Event
//! `MentionUnresolved` on the integration that lists the addresses no
//! warning named within [`DeliverySettings::mention_warning_period`](super::DeliverySettings)
//! (one Event per message, related to its NotificationEvent, and at most one
//! per integration per [`MENTION_EVENT_INTERVAL`]; addresses held back by
//! that are named by the next one), and `MentionLookupNotAllowed` once when
//! a Slack token cannot look people up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

use super::Delivery;
use crate::crd::{IntegrationKey, Mention, NotificationIntegration, Service};
use crate::notifier::Notifier;
use crate::notifier::http::HttpClient;
use crate::notifier::mentions::{Mentioner, Resolution, Unresolved, contact_field, why};
use crate::record::{Notice, publish};
use crate::status::integration::event_reason::{MENTION_LOOKUP_NOT_ALLOWED, MENTION_UNRESOLVED};

/// Mention resolution: lookups with their caches and rate limits, and the
/// memory of what was warned about.
pub struct Mentions {
    mentioner: Mentioner,
    http: HttpClient,
    warned: Warned,
}

impl Mentions {
    pub fn new(mentioner: Mentioner, http: HttpClient) -> Self {
        Mentions { mentioner, http, warned: Warned::default() }
    }
}

impl Delivery {
    /// Resolve `mentions` for `notifier`'s service with the contacts of `namespace`.
    pub async fn resolve_mentions(&self, namespace: &str, notifier: &dyn Notifier, mentions: &[Mention]) -> Resolution {
        if mentions.is_empty() {
            return Resolution::default();
        }
        let contacts = self.caches.contacts_in(namespace);
        let m = &self.mentions;
        m.mentioner.resolve(&m.http, &notifier.mention_directory(), mentions, &contacts).await
    }

    /// Count the resolution in the metrics and publish its Warning Events (in
    /// the background: the delivery's queue does not wait for the API).
    /// `related` is the NotificationEvent the message came from, if any.
    pub fn report_mentions(
        &self,
        ni: &NotificationIntegration,
        service: Service,
        resolution: &Resolution,
        related: Option<k8s_openapi::api::core::v1::ObjectReference>,
    ) {
        if resolution.mentions.is_empty() {
            return;
        }
        self.metrics.mentions(service, "resolved", resolution.resolved() as u64);
        self.metrics.mentions(service, "unresolved", resolution.unresolved.len() as u64);
        let namespace = ni.namespace().unwrap_or_default();
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
        let emails: Vec<String> = resolution.unresolved.iter().map(|u| u.email.clone()).collect();
        let due = self.mentions.warned.due(
            IntegrationKey::of(ni),
            &emails,
            self.settings.mention_warning_period,
            MENTION_EVENT_INTERVAL,
        );
        if !due.is_empty() {
            let named: Vec<&Unresolved> = resolution.unresolved.iter().filter(|u| due.contains(&u.email)).collect();
            events.push((MENTION_UNRESOLVED, unresolved_notes(service, &namespace, &named)));
        }
        if events.is_empty() {
            return;
        }
        let object = ni.object_ref(&());
        let notices = self.store.notices.clone();
        tokio::spawn(async move {
            for (reason, note) in events {
                let notice = Notice { warning: true, reason, note, action: "Mention", related: related.clone() };
                publish(notices.as_ref(), &object, notice).await;
            }
        });
    }
}

/// At most one `MentionUnresolved` Event per integration this often.
pub const MENTION_EVENT_INTERVAL: Duration = Duration::from_secs(60);
/// Addresses remembered as warned about, at most.
const REMEMBERED_WARNINGS: usize = 10_000;

/// When each (integration, lowercased email) was last named in a warning,
/// and when each integration last got one.
#[derive(Default)]
pub struct Warned {
    last: Mutex<HashMap<(IntegrationKey, String), Instant>>,
    integrations: Mutex<HashMap<IntegrationKey, Instant>>,
}

impl Warned {
    /// The addresses of `emails` a warning on `integration` should name now
    /// (noted as named): none while the integration had one within
    /// `interval`, else those not named within `period`.
    fn due(&self, integration: IntegrationKey, emails: &[String], period: Duration, interval: Duration) -> Vec<String> {
        let now = Instant::now();
        let mut integrations = self.integrations.lock().unwrap();
        if integrations.get(&integration).is_some_and(|at| now.duration_since(*at) < interval) {
            return Vec::new();
        }
        let mut last = self.last.lock().unwrap();
        if last.len() >= REMEMBERED_WARNINGS {
            last.retain(|_, at| now.duration_since(*at) < period);
            if last.len() >= REMEMBERED_WARNINGS {
                // Still full of live entries: forget the oldest half rather than grow.
                let mut ages: Vec<Instant> = last.values().copied().collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                last.retain(|_, at| *at > cut);
            }
        }
        let mut due = Vec::new();
        for email in emails {
            let key = (integration.clone(), email.to_ascii_lowercase());
            if last.get(&key).is_none_or(|at| now.duration_since(*at) >= period) && !due.contains(email) {
                last.insert(key, now);
                due.push(email.clone());
            }
        }
        if !due.is_empty() {
            integrations.insert(integration, now);
        }
        due
    }
}

/// One note for the addresses of one message (the Events API keeps 1 KB).
pub fn unresolved_notes(service: Service, namespace: &str, unresolved: &[&Unresolved]) -> String {
    match unresolved {
        [one] => unresolved_note(service, namespace, one),
        many => {
            let who: Vec<String> = many.iter().map(|u| format!("{} ({})", u.email, u.why)).collect();
            let fix = match contact_field(service) {
                Some(field) => format!(
                    "for each, add a NotificationContact in namespace {namespace} with spec.email and {field} (or add the account to the room)"
                ),
                None => "nothing maps mentions on this service".to_string(),
            };
            format!("{} people were shown without a mention on {service}: {}; {fix}", many.len(), who.join(", "))
        }
    }
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
    fn warnings_name_each_address_once_per_period_and_come_at_most_once_per_interval() {
        let warned = Warned::default();
        let ni = || IntegrationKey::new("ns", "ni");
        let (hour, none) = (Duration::from_secs(3600), Duration::ZERO);
        let emails = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(warned.due(ni(), &emails(&["a@b.co", "c@d.co"]), hour, none), emails(&["a@b.co", "c@d.co"]));
        assert_eq!(warned.due(ni(), &emails(&["A@b.co", "e@f.co"]), hour, none), emails(&["e@f.co"]), "named once");
        assert!(warned.due(IntegrationKey::new("ns", "other"), &emails(&["a@b.co"]), hour, none).len() == 1);
        // Within the interval nothing is named, and what was held back comes next.
        assert!(warned.due(ni(), &emails(&["g@h.co"]), hour, hour).is_empty());
        assert_eq!(warned.due(ni(), &emails(&["g@h.co"]), hour, none), emails(&["g@h.co"]));
    }

    #[test]
    fn one_note_names_every_address() {
        let a = Unresolved { email: "a@example.com".into(), why: why::NOT_FOUND, detail: "x".into() };
        let b = Unresolved { email: "b@example.com".into(), why: why::NOT_IN_ROOM, detail: "y".into() };
        let note = unresolved_notes(Service::Chatwork, "team-a", &[&a, &b]);
        assert!(note.contains("a@example.com") && note.contains("b@example.com"), "{note}");
        assert!(note.contains("NotificationContact") && note.chars().count() < 500, "{note}");
    }

    #[test]
    fn the_note_says_how_to_add_a_contact() {
        let u = Unresolved { email: "jane@example.com".into(), why: why::NOT_FOUND, detail: "no Slack user".into() };
        let note = unresolved_note(Service::Slack, "team-a", &u);
        assert!(note.contains("NotificationContact") && note.contains("spec.slack.userId"), "{note}");
        assert!(note.contains("team-a") && note.contains("jane@example.com"), "{note}");
    }
}
