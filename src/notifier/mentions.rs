//! Mentions: the people an event names by email, resolved for one
//! destination's service and rendered the way that service shows them.
//!
//! Resolution order: a `NotificationContact` of the namespace that maps the
//! email on the service (a mapping always wins), then what the service can
//! find by itself (Slack with a bot token: `users.lookupByEmail`; Teams:
//! the email is the user principal name). Whatever is not resolved is shown
//! as the plain name or email and reported: a mention never fails or delays
//! a delivery beyond [`MentionSettings::lookup_wait`].
//!
//! The Slack lookups are cached (found for [`MentionSettings::found_ttl`],
//! not found for [`MentionSettings::not_found_ttl`]) and rate limited per
//! token, shared by every integration using the same token. Chatwork has no
//! lookup: a mapped account must be a member of the integration's room
//! (`GET /rooms/{id}/members`, cached for [`MentionSettings::members_ttl`]).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::{debug, warn};
use url::Url;

use super::classify::{self, Verdict};
use super::fingerprint;
use super::http::{HttpClient, Method};
use super::render::markup::{escape_slack as escape, neutralize_chatwork as neutralize};
use crate::crd::{Mention, NotificationContact, Service};
use crate::redact::{Credential, scrub};

/// A person a message mentions, as the destination's service will show them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mentioned {
    pub email: String,
    /// The name to show: the mention's, else the contact's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The service's id for them (Slack user id, Chatwork account id, Teams
    /// UPN or object id); `None` when unresolved.
    #[serde(skip)]
    pub id: Option<String>,
}

impl Mentioned {
    /// A mention not resolved (yet): shown by name or email.
    pub fn unresolved(mention: &Mention) -> Self {
        Mentioned {
            email: mention.email.clone(),
            name: mention.name.clone().filter(|n| !n.trim().is_empty()),
            id: None,
        }
    }

    /// What is shown for the person: their name, else their email.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.email)
    }
}

/// Where the people of a destination are found.
#[derive(Clone, Debug)]
pub enum Directory {
    /// Slack with a bot token: mappings, then `users.lookupByEmail`.
    SlackBot { api: Url, token: Credential },
    /// A Slack incoming webhook: mappings only.
    SlackWebhook,
    /// A Chatwork room: mappings only, checked against the room's members.
    Chatwork { api: Url, token: Credential, room_id: String },
    /// Teams Workflows: a mapping's id, else the email as the user principal name.
    Teams,
    /// A generic webhook: the mentions are data; nothing to resolve.
    Webhook,
}

impl Directory {
    pub fn service(&self) -> Service {
        match self {
            Directory::SlackBot { .. } | Directory::SlackWebhook => Service::Slack,
            Directory::Chatwork { .. } => Service::Chatwork,
            Directory::Teams => Service::Msteams,
            Directory::Webhook => Service::Webhook,
        }
    }
}

/// Why a mention was not resolved (a short machine-readable reason).
pub mod why {
    /// No NotificationContact maps the email on this service, and the service cannot look it up.
    pub const NO_CONTACT: &str = "NoContact";
    /// The service has no user with this email.
    pub const NOT_FOUND: &str = "NotFound";
    /// The token may not look people up (Slack scope `users:read.email`).
    pub const LOOKUP_NOT_ALLOWED: &str = "LookupNotAllowed";
    /// Lookups are rate limited (by us or by the service) right now.
    pub const LOOKUP_RATE_LIMITED: &str = "LookupRateLimited";
    /// The lookup failed (the service did not answer usefully); tried again next time.
    pub const LOOKUP_FAILED: &str = "LookupFailed";
    /// The mapped Chatwork account is not a member of the integration's room.
    pub const NOT_IN_ROOM: &str = "NotInRoom";
}

/// A mention shown by name or email instead of as a mention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    pub email: String,
    /// One of [`why`].
    pub why: &'static str,
    /// For a person: what went wrong (never a credential).
    pub detail: String,
}

/// The mentions of one message to one destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Every mention, in the event's order, resolved or not.
    pub mentions: Vec<Mentioned>,
    pub unresolved: Vec<Unresolved>,
    /// The token was found unable to look people up, for the first time:
    /// a configuration problem to report once.
    pub lookup_not_allowed: bool,
}

impl Resolution {
    /// The emails of the unresolved mentions, for the delivery's status.
    pub fn unresolved_emails(&self) -> Vec<String> {
        self.unresolved.iter().map(|u| u.email.clone()).collect()
    }

    /// How many mentions were resolved.
    pub fn resolved(&self) -> usize {
        self.mentions.len() - self.unresolved.len()
    }
}

/// Caches, limits and waits of mention resolution.
#[derive(Clone, Debug)]
pub struct MentionSettings {
    /// How long a Slack user found by email is remembered.
    pub found_ttl: Duration,
    /// How long "no Slack user has this email" is remembered.
    pub not_found_ttl: Duration,
    /// How long a Chatwork room's member list is reused.
    pub members_ttl: Duration,
    /// Slack `users.lookupByEmail` calls per minute per token (the method's tier 3: about 50).
    pub lookups_per_minute: NonZeroU32,
    /// Lookups a token may make at once before the rate applies.
    pub lookup_burst: NonZeroU32,
    /// The longest one message waits for lookups (rate limit and calls
    /// together); mentions not resolved by then are shown unresolved.
    pub lookup_wait: Duration,
}

impl Default for MentionSettings {
    fn default() -> Self {
        MentionSettings {
            found_ttl: Duration::from_secs(3600),
            not_found_ttl: Duration::from_secs(300),
            members_ttl: Duration::from_secs(300),
            lookups_per_minute: NonZeroU32::new(50).unwrap(),
            lookup_burst: NonZeroU32::new(20).unwrap(),
            lookup_wait: Duration::from_secs(5),
        }
    }
}

/// How many cache entries trigger a sweep of the expired ones.
const SWEEP_AT: usize = 10_000;

/// Answers by (token fingerprint, what was asked), each remembered until it expires.
struct TtlCache<V> {
    entries: Mutex<HashMap<(String, String), (V, Instant)>>,
}

impl<V: Clone> Default for TtlCache<V> {
    fn default() -> Self {
        TtlCache { entries: Mutex::default() }
    }
}

impl<V: Clone> TtlCache<V> {
    fn get(&self, key: &(String, String)) -> Option<V> {
        let entries = self.entries.lock().unwrap();
        entries.get(key).filter(|(_, until)| *until > Instant::now()).map(|(v, _)| v.clone())
    }

    fn insert(&self, key: (String, String), value: V, ttl: Duration) {
        let mut entries = self.entries.lock().unwrap();
        let now = Instant::now();
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, (_, until)| *until > now);
        }
        entries.insert(key, (value, now + ttl));
    }
}

/// Resolves mentions; one per operator, shared by every delivery path.
pub struct Mentioner {
    settings: MentionSettings,
    /// Slack lookups by (token fingerprint, lowercased email).
    slack_users: TtlCache<Option<String>>,
    /// Slack lookups allowed per token fingerprint.
    limiter: DefaultKeyedRateLimiter<String>,
    /// Tokens whose lookups wait (Slack answered 429, or lacks the scope) until then.
    paused: Mutex<HashMap<String, Instant>>,
    /// Tokens whose missing scope was reported (until a lookup works again).
    scope_reported: Mutex<HashSet<String>>,
    /// Chatwork room members by (token fingerprint, room id).
    /// A room's members; `None`: they could not be read (trusted mappings), kept briefly.
    room_members: TtlCache<Option<HashSet<String>>>,
}

impl Mentioner {
    pub fn new(settings: MentionSettings) -> Self {
        let period = Duration::from_secs(60) / settings.lookups_per_minute.get();
        let quota = Quota::with_period(period).expect("a positive period").allow_burst(settings.lookup_burst);
        Mentioner {
            settings,
            slack_users: TtlCache::default(),
            limiter: RateLimiter::keyed(quota),
            paused: Mutex::default(),
            scope_reported: Mutex::default(),
            room_members: TtlCache::default(),
        }
    }

    pub fn settings(&self) -> &MentionSettings {
        &self.settings
    }

    /// Resolve `mentions` for `directory` with the namespace's `contacts`.
    pub async fn resolve(
        &self,
        http: &HttpClient,
        directory: &Directory,
        mentions: &[Mention],
        contacts: &[Arc<NotificationContact>],
    ) -> Resolution {
        let mut resolution = Resolution::default();
        if mentions.is_empty() {
            return resolution;
        }
        let service = directory.service();
        let deadline = Instant::now() + self.settings.lookup_wait;
        let mut mapped_in_room = Vec::new();
        for mention in mentions {
            let mut m = Mentioned::unresolved(mention);
            let contact = contact_for(contacts, service, &mention.email);
            if m.name.is_none() {
                m.name = contact.name.clone();
            }
            let outcome = match (contact.id, directory) {
                (_, Directory::Webhook) => Ok(None),
                (Some(id), Directory::Chatwork { .. }) => {
                    mapped_in_room.push(resolution.mentions.len());
                    Ok(Some(id))
                }
                (Some(id), _) => Ok(Some(id)),
                (None, Directory::Teams) => Ok(Some(mention.email.clone())),
                (None, Directory::SlackBot { api, token }) => {
                    self.slack_lookup(http, api, token, &mention.email, deadline, &mut resolution).await
                }
                (None, Directory::SlackWebhook) => Err((
                    why::NO_CONTACT,
                    "a Slack incoming webhook cannot look people up, and no NotificationContact maps this email"
                        .to_string(),
                )),
                (None, Directory::Chatwork { .. }) => Err((
                    why::NO_CONTACT,
                    "Chatwork cannot look people up by email, and no NotificationContact maps this email".to_string(),
                )),
            };
            match outcome {
                Ok(id) => m.id = id,
                Err((why, detail)) => {
                    resolution.unresolved.push(Unresolved { email: mention.email.clone(), why, detail })
                }
            }
            resolution.mentions.push(m);
        }
        if let Directory::Chatwork { api, token, room_id } = directory
            && !mapped_in_room.is_empty()
            && let Some(members) = self.room_members(http, api, token, room_id).await
        {
            for i in mapped_in_room {
                let m = &mut resolution.mentions[i];
                if m.id.as_ref().is_some_and(|id| !members.contains(id)) {
                    m.id = None;
                    resolution.unresolved.push(Unresolved {
                        email: m.email.clone(),
                        why: why::NOT_IN_ROOM,
                        detail: format!("the mapped Chatwork account is not a member of room {room_id}"),
                    });
                }
            }
        }
        // In the event's order, whatever found them unresolved.
        let position = |email: &str| mentions.iter().position(|m| m.email == email);
        resolution.unresolved.sort_by_key(|u| position(&u.email));
        resolution
    }

    /// The Slack user id of `email`: cached, else looked up within the rate
    /// limit and `deadline`.
    async fn slack_lookup(
        &self,
        http: &HttpClient,
        api: &Url,
        token: &Credential,
        email: &str,
        deadline: Instant,
        resolution: &mut Resolution,
    ) -> Result<Option<String>, (&'static str, String)> {
        let key = fingerprint(token.expose());
        let cache_key = (key.clone(), email.to_ascii_lowercase());
        let not_found = || (why::NOT_FOUND, "no Slack user has this email".to_string());
        if let Some(hit) = self.slack_users.get(&cache_key) {
            return hit.map(Some).ok_or_else(not_found);
        }
        let paused = self.paused.lock().unwrap().get(&key).copied().filter(|until| *until > Instant::now());
        if paused.is_some() {
            return Err(if self.scope_reported.lock().unwrap().contains(&key) {
                lookup_not_allowed()
            } else {
                (why::LOOKUP_RATE_LIMITED, "Slack lookups are rate limited right now".to_string())
            });
        }
        if tokio::time::timeout_at(deadline, self.limiter.until_key_ready(&key)).await.is_err() {
            return Err((why::LOOKUP_RATE_LIMITED, "too many Slack lookups by email right now".to_string()));
        }
        let url = format!("{}/users.lookupByEmail", api.as_str().trim_end_matches('/'));
        let request = http.request(Method::GET, url).bearer_auth(token.expose()).query(&[("email", email)]);
        let response = match tokio::time::timeout_at(deadline, http.send(request, "Slack")).await {
            Err(_) => return Err((why::LOOKUP_FAILED, "the Slack lookup did not answer in time".to_string())),
            Ok(Err(v)) => return Err((why::LOOKUP_FAILED, verdict_text(&v, token))),
            Ok(Ok(response)) => response,
        };
        if response.status == http::StatusCode::TOO_MANY_REQUESTS {
            let wait = classify::retry_after(&response.headers)
                .unwrap_or(Duration::from_secs(60))
                .min(classify::MAX_WAIT_HINT);
            self.pause(&key, wait);
            debug!(retry_after_s = wait.as_secs(), "Slack rate limits lookups by email; pausing them");
            return Err((why::LOOKUP_RATE_LIMITED, "Slack rate limited the lookup (HTTP 429)".to_string()));
        }
        let body: Option<Value> = serde_json::from_str(&response.body).ok();
        let ok = body.as_ref().and_then(|b| b.get("ok")).and_then(Value::as_bool);
        // Only an id of Slack's shape is ever put into `<@…>`.
        let user =
            body.as_ref().and_then(|b| b.pointer("/user/id")).and_then(Value::as_str).filter(|id| is_slack_user_id(id));
        let code = body.as_ref().and_then(|b| b.get("error")).and_then(Value::as_str).unwrap_or_default();
        match (ok, user, code) {
            (Some(true), Some(id), _) => {
                self.scope_reported.lock().unwrap().remove(&key);
                self.slack_users.insert(cache_key, Some(id.to_string()), self.settings.found_ttl);
                Ok(Some(id.to_string()))
            }
            (Some(false), _, "users_not_found") => {
                self.slack_users.insert(cache_key, None, self.settings.not_found_ttl);
                Err(not_found())
            }
            (Some(false), _, "missing_scope") => {
                // No lookup with this token for a while; reported once.
                self.pause(&key, self.settings.found_ttl);
                if self.scope_reported.lock().unwrap().insert(key) {
                    warn!("the Slack token lacks the users:read.email scope: mentions use NotificationContacts only");
                    resolution.lookup_not_allowed = true;
                }
                Err(lookup_not_allowed())
            }
            (Some(false), _, "ratelimited" | "rate_limited") => {
                self.pause(&key, Duration::from_secs(60));
                Err((why::LOOKUP_RATE_LIMITED, "Slack rate limited the lookup".to_string()))
            }
            (Some(false), _, code) => {
                Err((why::LOOKUP_FAILED, format!("Slack answered {:?} to the lookup", classify::snippet(code))))
            }
            _ => Err((
                why::LOOKUP_FAILED,
                format!("Slack answered HTTP {} with an unexpected body to the lookup", response.status.as_u16()),
            )),
        }
    }

    fn pause(&self, key: &str, wait: Duration) {
        let until = Instant::now() + wait;
        self.paused.lock().unwrap().insert(key.to_string(), until);
    }

    /// The account ids of the room's members (cached); `None` when they could
    /// not be read (the mappings are then trusted).
    async fn room_members(
        &self,
        http: &HttpClient,
        api: &Url,
        token: &Credential,
        room_id: &str,
    ) -> Option<HashSet<String>> {
        let key = (fingerprint(token.expose()), room_id.to_string());
        if let Some(hit) = self.room_members.get(&key) {
            return hit;
        }
        // A read that failed is not tried again for a while: it would cost
        // every delivery a wait, and the token's request budget.
        let unreadable = |this: &Self| {
            this.room_members.insert(key.clone(), None, MEMBERS_UNREADABLE_TTL.min(this.settings.members_ttl));
            None
        };
        let url = format!("{}/rooms/{room_id}/members", api.as_str().trim_end_matches('/'));
        let request = http.request(Method::GET, url).header("x-chatworktoken", token.expose());
        let deadline = Instant::now() + self.settings.lookup_wait;
        let response = match tokio::time::timeout_at(deadline, http.send(request, "Chatwork")).await {
            Ok(Ok(r)) if r.status.is_success() => r,
            Ok(Ok(r)) => {
                debug!(status = r.status.as_u16(), room = room_id, "could not read the Chatwork room's members");
                return unreadable(self);
            }
            Ok(Err(v)) => {
                debug!(error = %verdict_text(&v, token), room = room_id, "could not read the Chatwork room's members");
                return unreadable(self);
            }
            Err(_) => return unreadable(self),
        };
        let Ok(listed) = serde_json::from_str::<Vec<Value>>(&response.body) else { return unreadable(self) };
        let members: HashSet<String> = listed
            .iter()
            .filter_map(|m| match m.get("account_id")? {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        self.room_members.insert(key, Some(members.clone()), self.settings.members_ttl);
        Some(members)
    }
}

fn lookup_not_allowed() -> (&'static str, String) {
    (
        why::LOOKUP_NOT_ALLOWED,
        "the Slack token lacks the users:read.email scope needed to look people up by email".to_string(),
    )
}

/// A failed call's message, without the token.
fn verdict_text(verdict: &Verdict, token: &Credential) -> String {
    let message = match verdict {
        Verdict::Success => "no answer".to_string(),
        Verdict::Dead(f) | Verdict::Rejected(f) | Verdict::Transient { failure: f, .. } => f.message.clone(),
    };
    scrub(&message, &[token.expose()])
}

/// What the namespace's contacts say about `email`.
#[derive(Default)]
struct ContactInfo {
    /// The id on the service.
    id: Option<String>,
    /// The name of a contact with this email.
    name: Option<String>,
}

/// The contacts of `email` (case-insensitive), in name order: the first that
/// maps `service` gives the id, the first with a name gives the name.
fn contact_for(contacts: &[Arc<NotificationContact>], service: Service, email: &str) -> ContactInfo {
    let mut matching: Vec<&NotificationContact> =
        contacts.iter().map(|c| c.as_ref()).filter(|c| c.spec.email.eq_ignore_ascii_case(email)).collect();
    matching.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let id_of = |c: &NotificationContact| match service {
        Service::Slack => c.spec.slack.as_ref().map(|s| s.user_id.clone()),
        Service::Chatwork => c.spec.chatwork.as_ref().map(|s| s.account_id.clone()),
        Service::Msteams => c.spec.msteams.as_ref().map(|s| s.id.clone()),
        Service::Webhook => None,
    };
    ContactInfo {
        id: matching.iter().find_map(|c| id_of(c).filter(|id| !id.trim().is_empty())),
        name: matching.iter().find_map(|c| c.spec.name.clone().filter(|n| !n.trim().is_empty())),
    }
}

/// The field of a NotificationContact that maps a person on `service`.
pub fn contact_field(service: Service) -> Option<&'static str> {
    match service {
        Service::Slack => Some("spec.slack.userId"),
        Service::Chatwork => Some("spec.chatwork.accountId"),
        Service::Msteams => Some("spec.msteams.id"),
        Service::Webhook => None,
    }
}

// ------------------------------------------------------------ rendering

/// Slack: `<@U…>` for a resolved mention (an id of Slack's shape only), the
/// escaped name or email otherwise.
pub fn slack(m: &Mentioned) -> String {
    match &m.id {
        Some(id) if is_slack_user_id(id) => format!("<@{id}>"),
        _ => escape(m.label()),
    }
}

/// Chatwork: `[To:<account id>] Name` for a resolved mention (a numeric
/// account id only), the name or email (tags neutralized) otherwise.
pub fn chatwork(m: &Mentioned) -> String {
    match &m.id {
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            format!("[To:{id}] {}", neutralize(m.label()))
        }
        _ => neutralize(m.label()),
    }
}

/// Teams: the name as it appears between `<at>` and `</at>` (no angle
/// brackets, which would end the tag; no Markdown link or image).
fn teams_name(m: &Mentioned) -> String {
    crate::notifier::render::markup::break_markdown_links(&m.label().replace('<', "‹").replace('>', "›"))
}

/// Teams: `<at>Name</at>` for a resolved mention, the name otherwise.
pub fn teams(m: &Mentioned) -> String {
    match &m.id {
        Some(_) => format!("<at>{}</at>", teams_name(m)),
        None => teams_name(m),
    }
}

/// Teams: the `msteams.entities` of the resolved mentions.
pub fn teams_entities(mentions: &[Mentioned]) -> Vec<Value> {
    mentions
        .iter()
        .filter_map(|m| {
            let id = m.id.as_ref()?;
            Some(json!({"type": "mention", "text": teams(m), "mentioned": {"id": id, "name": teams_name(m)}}))
        })
        .collect()
}

/// Every mention rendered by `render` and joined by `separator`; `None` without mentions.
pub fn line(mentions: &[Mentioned], separator: &str, render: fn(&Mentioned) -> String) -> Option<String> {
    (!mentions.is_empty()).then(|| mentions.iter().map(render).collect::<Vec<_>>().join(separator))
}

/// How long a room whose members could not be read is not asked again.
const MEMBERS_UNREADABLE_TTL: Duration = Duration::from_secs(60);

/// `U…` or `W…` followed by capital letters and digits, as Slack user ids are.
pub fn is_slack_user_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('U' | 'W'))
        && id.len() > 1
        && id.len() <= 32
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_slack_shaped_ids_are_mentioned() {
        assert!(super::is_slack_user_id("U0123ABC") && super::is_slack_user_id("W9"));
        for bad in ["", "U", "u123", "U12>", "<!here>", "U1 <!channel>", "C123"] {
            assert!(!super::is_slack_user_id(bad), "{bad}");
        }
    }

    use super::*;
    use crate::crd::{ContactChatwork, ContactSlack, ContactTeams, NotificationContactSpec};

    fn contact(name: &str, email: &str, spec: impl FnOnce(&mut NotificationContactSpec)) -> Arc<NotificationContact> {
        let mut s =
            NotificationContactSpec { email: email.into(), name: None, slack: None, chatwork: None, msteams: None };
        spec(&mut s);
        let mut c = NotificationContact::new(name, s);
        c.metadata.namespace = Some("ns".into());
        Arc::new(c)
    }

    fn mention(email: &str, name: Option<&str>) -> Mention {
        Mention { email: email.into(), name: name.map(str::to_string) }
    }

    fn resolve(directory: Directory, mentions: &[Mention], contacts: &[Arc<NotificationContact>]) -> Resolution {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mentioner = Mentioner::new(MentionSettings::default());
        rt.block_on(mentioner.resolve(&HttpClient::new(Duration::from_secs(1)), &directory, mentions, contacts))
    }

    #[test]
    fn mappings_resolve_per_service_and_case_insensitively() {
        let contacts = [
            contact("b-jane", "Jane@Example.com", |s| s.slack = Some(ContactSlack { user_id: "U2".into() })),
            contact("a-jane", "jane@example.com", |s| {
                s.name = Some("Jane Doe".into());
                s.slack = Some(ContactSlack { user_id: "U1".into() });
                s.msteams = Some(ContactTeams { id: "jane.doe@corp.example".into() });
            }),
        ];
        let mentions = [mention("jane@example.com", None), mention("bob@example.com", Some("Bob"))];
        let r = resolve(Directory::SlackWebhook, &mentions, &contacts);
        assert_eq!(
            r.mentions[0],
            Mentioned { email: "jane@example.com".into(), name: Some("Jane Doe".into()), id: Some("U1".into()) }
        );
        assert_eq!(r.unresolved_emails(), vec!["bob@example.com".to_string()]);
        assert_eq!(r.unresolved[0].why, why::NO_CONTACT);
        assert_eq!(r.resolved(), 1);
        let r = resolve(Directory::Teams, &mentions, &contacts);
        assert_eq!(r.mentions[0].id.as_deref(), Some("jane.doe@corp.example"));
        assert_eq!(r.mentions[1].id.as_deref(), Some("bob@example.com"), "the email is the UPN");
        assert!(r.unresolved.is_empty());
        let r = resolve(Directory::Webhook, &mentions, &contacts);
        assert!(r.unresolved.is_empty() && r.mentions.iter().all(|m| m.id.is_none()));
    }

    #[test]
    fn chatwork_without_members_trusts_the_mapping() {
        let contacts =
            [contact("bob", "bob@example.com", |s| s.chatwork = Some(ContactChatwork { account_id: "42".into() }))];
        // The members cannot be read (nothing listens there): the mapping stands.
        let directory = Directory::Chatwork {
            api: "http://127.0.0.1:9/v2".parse().unwrap(),
            token: Credential::new("t"),
            room_id: "1".into(),
        };
        let r = resolve(directory, &[mention("bob@example.com", None), mention("amy@example.com", None)], &contacts);
        assert_eq!(r.mentions[0].id.as_deref(), Some("42"));
        assert_eq!(r.unresolved_emails(), vec!["amy@example.com".to_string()]);
    }

    #[tokio::test(start_paused = true)]
    async fn cached_answers_expire() {
        let cache = TtlCache::default();
        let key = || ("token".to_string(), "a@b.co".to_string());
        cache.insert(key(), Some("U1".to_string()), Duration::from_secs(300));
        assert_eq!(cache.get(&key()), Some(Some("U1".to_string())));
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(cache.get(&key()).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.get(&key()), None);
    }

    #[test]
    fn user_text_never_becomes_markup() {
        let sneaky = Mentioned { email: "x@example.com".into(), name: Some("<!channel> [toall] <b>".into()), id: None };
        assert_eq!(slack(&sneaky), "&lt;!channel&gt; [toall] &lt;b&gt;");
        assert!(!chatwork(&sneaky).contains("[toall]"));
        assert_eq!(teams(&sneaky), "‹!channel› [toall]\u{200B} ‹b›", "no tag, no Markdown link");
        let resolved = Mentioned { id: Some("U1".into()), ..sneaky.clone() };
        assert_eq!(slack(&resolved), "<@U1>");
        // An id not of the service's shape (a contact not validated by the CRD) is no mention.
        let bad_id = Mentioned { id: Some("U1> <!channel".into()), ..sneaky.clone() };
        assert_eq!(slack(&bad_id), slack(&sneaky));
        let bad_id = Mentioned { id: Some("1][toall".into()), ..sneaky.clone() };
        assert_eq!(chatwork(&bad_id), chatwork(&sneaky));
        let resolved = Mentioned { id: Some("7".into()), ..sneaky };
        assert!(chatwork(&resolved).starts_with("[To:7] ") && !chatwork(&resolved).contains("[toall]"));
        let entities = teams_entities(std::slice::from_ref(&resolved));
        assert_eq!(entities[0]["text"], teams(&resolved));
        assert_eq!(entities[0]["mentioned"]["id"], "7");
    }
}
