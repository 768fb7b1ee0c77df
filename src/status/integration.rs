//! An integration's status as pure functions of what was observed: the
//! conditions the credential check and the switches give, the counters and
//! the auto-disable each delivery outcome gives, and whether the integration
//! can receive a message now (the one decision every path asks).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;

use crate::crd::conditions::{
    self, CREDENTIALS_VALID, ConditionStatus, DISABLED, DesiredCondition, READY, set_condition,
};
use crate::crd::{AutoDisabled, IntegrationStatus, LastError, NotificationIntegration, Service};
use crate::notifier::{self, classify};
use crate::status::outcome::Outcome;

/// Reasons of the integration's conditions (and of [`Receivable`]).
pub mod reason {
    pub const VALID: &str = "Valid";
    pub const READY: &str = "Ready";
    pub const MANUAL: &str = "Manual";
    pub const ERROR_THRESHOLD: &str = "ErrorThreshold";
    pub const ENABLED: &str = "Enabled";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// `--secret-access labelled` and the Secret lacks `kube-notify.io/secret=true`.
    pub const SECRET_NOT_LABELLED: &str = "SecretNotLabelled";
    /// The API server answered 403 Forbidden to reading the Secret: the
    /// operator may not read Secrets in the integration's namespace (the
    /// chart's default, `secretReadScope: namespaces`, until it opts in).
    pub const SECRET_FORBIDDEN: &str = "SecretForbidden";
    pub const CHECKING: &str = "Checking";
}

/// Reasons of the Kubernetes Events published about an integration.
pub mod event_reason {
    pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";
    pub const INTEGRATION_DISABLED: &str = "IntegrationDisabled";
    pub const INTEGRATION_READY: &str = "IntegrationReady";
    pub const MENTION_UNRESOLVED: &str = "MentionUnresolved";
    pub const MENTION_LOOKUP_NOT_ALLOWED: &str = "MentionLookupNotAllowed";
}

/// The label whose change on an integration's Secret re-enables it (any
/// change to the Secret does; this one changes nothing else).
pub const REENABLE_LABEL: &str = "kube-notify.io/reenable";

/// Who reads Secrets, and the ClusterRole a namespace binds to let it: what
/// the `SecretForbidden` next step names (`--secret-reader-role`,
/// `--service-account`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretReader {
    /// The ClusterRole with `get` on Secrets that namespaces bind to opt in.
    pub role: String,
    /// The operator's ServiceAccount: its namespace and name.
    pub service_account_namespace: String,
    pub service_account: String,
}

/// The default of `--secret-reader-role` (the chart's name for release kube-notify).
pub const DEFAULT_SECRET_READER_ROLE: &str = "kube-notify-secret-reader";

/// The default ServiceAccount name (`--service-account`; the chart's for release kube-notify).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "kube-notify";

impl Default for SecretReader {
    fn default() -> Self {
        SecretReader {
            role: DEFAULT_SECRET_READER_ROLE.into(),
            service_account_namespace: DEFAULT_SERVICE_ACCOUNT.into(),
            service_account: DEFAULT_SERVICE_ACCOUNT.into(),
        }
    }
}

impl SecretReader {
    /// The command that lets the operator read Secrets in `namespace`: a
    /// RoleBinding, named as the ClusterRole, to the ClusterRole.
    pub fn rolebinding_command(&self, namespace: &str) -> String {
        format!(
            "kubectl create rolebinding {role} -n {namespace} --clusterrole={role} --serviceaccount={}:{}",
            self.service_account_namespace,
            self.service_account,
            role = self.role,
        )
    }
}

/// What a next-step sentence names: the integration, its Secret and the key
/// of its main credential (names only, never a value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub namespace: String,
    pub name: String,
    pub service: Service,
    pub secret: String,
    /// `spec.secretRef.key`, else the service's default key.
    pub key: String,
    /// `spec.slack.channel`: Slack in bot-token mode.
    pub slack_channel: Option<String>,
    /// `spec.chatwork.roomId`.
    pub chatwork_room: Option<String>,
    /// Who reads Secrets (the default names unless [`Subject::read_by`] says otherwise).
    pub secret_reader: SecretReader,
}

impl Subject {
    /// With the default [`SecretReader`]; the controllers use the configured
    /// one ([`Subject::read_by`]).
    pub fn of(ni: &NotificationIntegration) -> Self {
        let spec = &ni.spec;
        Subject {
            namespace: ni.meta().namespace.clone().unwrap_or_default(),
            name: ni.meta().name.clone().unwrap_or_default(),
            service: spec.service,
            secret: spec.secret_ref.name.clone(),
            key: crate::notifier::main_key(spec).to_string(),
            slack_channel: spec.slack.as_ref().and_then(|s| s.channel.clone()).filter(|c| !c.trim().is_empty()),
            chatwork_room: spec.chatwork.as_ref().map(|c| c.room_id.clone()),
            secret_reader: SecretReader::default(),
        }
    }

    /// The same, with Secrets read by `reader`.
    pub fn read_by(self, reader: &SecretReader) -> Self {
        Subject { secret_reader: reader.clone(), ..self }
    }

    /// `Secret NS/NAME`.
    fn secret_ref(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.secret)
    }

    /// `key K of Secret NS/NAME`.
    fn at_key(&self) -> String {
        format!("key {} of {}", self.key, self.secret_ref())
    }

    /// What the main credential is, in words.
    fn credential(&self) -> &'static str {
        match (self.service, &self.slack_channel) {
            (Service::Slack, Some(_)) => "the Slack bot token (xoxb-…)",
            (Service::Slack, None) => "the Slack incoming webhook URL",
            (Service::Chatwork, _) => "the Chatwork API token",
            (Service::Msteams, _) => "the Teams Workflows webhook URL",
            (Service::Webhook, _) => "the webhook URL",
        }
    }

    /// How to re-enable an integration disabled after repeated errors.
    fn reenable(&self) -> String {
        format!(
            "re-enable it with any change to its spec or to {} (the fixed credential, or \
             `kubectl label secret -n {} {} {REENABLE_LABEL}=$(date +%s) --overwrite`)",
            self.secret_ref(),
            self.namespace,
            self.secret
        )
    }
}

/// Every reason that can make `CredentialsValid`, `Ready` or `Disabled`
/// report a problem (a `False` or `Unknown` condition, a Warning Event):
/// each has a [`next_step`].
pub const PROBLEM_REASONS: &[&str] = &[
    reason::MANUAL,
    reason::ERROR_THRESHOLD,
    reason::SECRET_NOT_FOUND,
    reason::SECRET_NOT_LABELLED,
    reason::SECRET_FORBIDDEN,
    reason::CHECKING,
    notifier::reason::SECRET_KEY_MISSING,
    notifier::reason::INVALID_SECRET,
    notifier::reason::INVALID_SPEC,
    notifier::reason::INVALID_TOKEN,
    notifier::reason::INVALID_SIGNING_SECRET,
    notifier::endpoint::INVALID_URL,
    notifier::endpoint::ENDPOINT_NOT_ALLOWED,
    notifier::endpoint::RETIRED_ENDPOINT,
    classify::reason::UNAUTHORIZED,
    classify::reason::FORBIDDEN,
    classify::reason::DESTINATION_NOT_FOUND,
    classify::reason::SERVICE_UNAVAILABLE,
    classify::reason::RATE_LIMITED,
    classify::reason::TIMEOUT,
    classify::reason::MESSAGE_REJECTED,
    classify::reason::UNEXPECTED_RESPONSE,
    classify::reason::REDIRECTED,
];

/// The next step for a problem, in one sentence naming the Secret key to fix
/// or how to re-enable; `None` for a reason that reports no problem.
pub fn next_step(reason: &str, s: &Subject) -> Option<String> {
    use classify::reason as service;
    use notifier::{endpoint, reason as config};
    let at = s.at_key();
    let what = s.credential();
    let bot = s.slack_channel.is_some();
    let step = match reason {
        reason::MANUAL => format!(
            "Set spec.disabled to false to enable it (`kubectl patch ni -n {} {} --type merge -p '{{\"spec\":{{\"disabled\":false}}}}'`).",
            s.namespace, s.name
        ),
        reason::ERROR_THRESHOLD => format!("Fix the cause that status.lastError names, then {}.", s.reenable()),
        reason::SECRET_NOT_FOUND => {
            format!("Create {} with key {} ({what}), or fix spec.secretRef.name.", s.secret_ref(), s.key)
        }
        reason::SECRET_NOT_LABELLED => format!(
            "Label it: `kubectl label secret -n {} {} {}=true`.",
            s.namespace,
            s.secret,
            crate::store::SECRET_LABEL
        ),
        reason::SECRET_FORBIDDEN => format!(
            "Let the operator read Secrets in namespace {} with a RoleBinding to ClusterRole {} (or install the \
             chart with secretReadScope=cluster): `{}`.",
            s.namespace,
            s.secret_reader.role,
            s.secret_reader.rolebinding_command(&s.namespace)
        ),
        reason::CHECKING => "Nothing to do: the credentials are being checked; if this lasts, see the operator's logs \
                             (is it running and the leader?)."
            .to_string(),
        config::SECRET_KEY_MISSING => {
            format!("Put {what} in {at}, or set spec.secretRef.key to the key that holds it.")
        }
        config::INVALID_SECRET => {
            format!("Put non-empty text in the key named above of {} (for example {what} in {at}).", s.secret_ref())
        }
        config::INVALID_SPEC => match s.service {
            Service::Chatwork => {
                "Set spec.chatwork.roomId to the room's number (the digits after #!rid in its URL).".into()
            }
            _ => format!("Fix the spec field named above: `kubectl edit ni -n {} {}`.", s.namespace, s.name),
        },
        config::INVALID_TOKEN => match s.service {
            Service::Slack => format!(
                "Put the bot token (xoxb-…) of the Slack app installed in the workspace in {at}, or remove \
                 spec.slack.channel to use an incoming webhook."
            ),
            Service::Chatwork => {
                format!(
                    "Put the API token of a Chatwork account in the room (Chatwork: Service integration > API token) in {at}."
                )
            }
            _ => format!("Put {what} (visible ASCII, no spaces) in {at}."),
        },
        config::INVALID_SIGNING_SECRET => format!(
            "Put whsec_ followed by base64 in key signingSecret of {}, or remove that key to send unsigned.",
            s.secret_ref()
        ),
        endpoint::INVALID_URL => match s.service {
            Service::Slack => {
                format!("Copy the whole incoming webhook URL (https://hooks.slack.com/services/…) into {at}.")
            }
            Service::Msteams => format!("Copy the whole Workflows webhook URL, with its sig parameter, into {at}."),
            _ => format!("Put an https URL in {at}."),
        },
        endpoint::ENDPOINT_NOT_ALLOWED => format!(
            "Put the service's official URL in {at}, or start the operator with --allow-endpoint and a prefix of \
             this URL (chart: config.allowEndpoints)."
        ),
        endpoint::RETIRED_ENDPOINT => format!(
            "Create a Workflows webhook in Teams (\"When a Teams webhook request is received\") and put its URL in {at}."
        ),
        service::UNAUTHORIZED => match s.service {
            Service::Slack if bot => format!(
                "The bot token was revoked (the app was uninstalled or its installer left the workspace): reinstall \
                 the Slack app and put its new bot token in {at}."
            ),
            Service::Slack => format!(
                "The webhook was revoked (for example its creator left the workspace): create a new incoming \
                 webhook and put its URL in {at}."
            ),
            Service::Chatwork => format!(
                "The API token is no longer valid (reissued, or its owner left): put a current API token of an \
                 account in the room in {at}."
            ),
            Service::Msteams => format!(
                "The workflow's URL is no longer accepted (the flow was recreated or its owner left): copy its \
                 current URL into {at}."
            ),
            Service::Webhook => format!("The receiver refuses the request: put a URL it accepts in {at}."),
        },
        service::FORBIDDEN => match s.service {
            Service::Slack if bot => format!(
                "Give the app the chat:write scope and invite the bot to channel {} (`/invite @app`), or put \
                 another bot token in {at}.",
                s.slack_channel.as_deref().unwrap_or_default()
            ),
            Service::Slack => {
                format!(
                    "Slack no longer lets this webhook post: create a new incoming webhook and put its URL in {at}."
                )
            }
            Service::Chatwork => format!(
                "Add the token's account to room {} as a member or admin (not read-only), or put the API token of \
                 such an account in {at}.",
                s.chatwork_room.as_deref().unwrap_or_default()
            ),
            Service::Msteams => format!(
                "Check that the workflow is on and its owner still has access, or create a new Workflows webhook \
                 and put its URL in {at}."
            ),
            Service::Webhook => format!("The receiver refuses the request: put a URL it accepts in {at}."),
        },
        service::DESTINATION_NOT_FOUND => match s.service {
            Service::Slack if bot => format!(
                "Unarchive channel {}, or set spec.slack.channel to the ID of a channel the bot is in.",
                s.slack_channel.as_deref().unwrap_or_default()
            ),
            Service::Slack => format!(
                "The webhook or its channel is gone (removed, archived, or its creator left): create a new \
                 incoming webhook and put its URL in {at}."
            ),
            Service::Chatwork => format!(
                "Set spec.chatwork.roomId to an existing room, or add the token's account to room {}.",
                s.chatwork_room.as_deref().unwrap_or_default()
            ),
            Service::Msteams => format!(
                "The workflow was turned off or deleted (or its owner left): turn it on again in Power Automate, \
                 or create a new Workflows webhook and put its URL in {at}."
            ),
            Service::Webhook => format!("The endpoint does not exist: put the right URL in {at}."),
        },
        service::REDIRECTED => format!("Put the URL the redirect points to in {at} (redirects are never followed)."),
        service::MESSAGE_REJECTED => {
            format!("The service refused the check: make sure {at} holds {what}, and see the answer quoted above.")
        }
        service::SERVICE_UNAVAILABLE | service::TIMEOUT | service::UNEXPECTED_RESPONSE => {
            "Nothing to do if it passes (it is retried with backoff); if it lasts, check the service's status page \
             and the operator's way out (NetworkPolicy, HTTPS_PROXY)."
                .to_string()
        }
        service::RATE_LIMITED => "Nothing to do if it passes (it is retried after the service's wait); if it lasts, \
                                  look for other senders sharing this webhook or token."
            .to_string(),
        _ => return None,
    };
    Some(step)
}

/// Why an integration is `SecretForbidden` (its next step follows): the
/// Secret and the namespace, never anything read.
pub fn secret_forbidden_message(namespace: &str, secret: &str) -> String {
    format!("the API server forbids the operator to read Secret {secret:?} in namespace {namespace:?} (403 Forbidden)")
}

/// `message` followed by the next step for `reason` (once).
pub fn with_next_step(message: &str, reason: &str, s: &Subject) -> String {
    match next_step(reason, s) {
        Some(step) if !message.ends_with(&step) => {
            let message = message.trim_end();
            let stop = if message.ends_with(['.', '!', '?']) { "" } else { "." };
            format!("{message}{stop} {step}")
        }
        _ => message.to_string(),
    }
}

/// The outcome of the credential check, as the `CredentialsValid` condition says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsCondition {
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

/// Everything the status depends on besides the current status.
#[derive(Clone, Debug)]
pub struct StatusInput {
    pub generation: Option<i64>,
    /// `spec.disabled`: the manual switch.
    pub manually_disabled: bool,
    pub credentials: CredentialsCondition,
    /// The Secret's `resourceVersion` the credentials were read from.
    pub secret_version: Option<String>,
    /// Names for the next steps the messages give.
    pub subject: Subject,
}

/// The status the integration should have. Counters and `lastError` are kept
/// as they are (the delivery engine owns them); an auto-disable ends when the
/// spec generation or the Secret changed; condition transition times and
/// `disabledAt` move only on real transitions.
pub fn desired_status(current: &IntegrationStatus, input: &StatusInput, now: &Time) -> IntegrationStatus {
    let mut next = current.clone();
    let generation = input.generation;
    next.observed_generation = generation;
    next.secret_resource_version = input.secret_version.clone();

    if let Some(auto) = &current.auto_disabled
        && (Some(auto.generation) != generation || auto.secret_resource_version != input.secret_version)
    {
        // "Fix it and register again": a new spec or new credentials re-enable.
        next.auto_disabled = None;
        next.consecutive_errors = 0;
    }

    let creds = &input.credentials;
    set_condition(
        &mut next.conditions,
        DesiredCondition::new(CREDENTIALS_VALID, creds.status, creds.reason.clone(), creds.message.clone()),
        generation,
        now,
    );
    set_derived_conditions(current, &mut next, input.manually_disabled, &input.subject, generation, now);
    next
}

/// The Warning Event `IntegrationDisabled` of an auto-disable: the last
/// error, what fixes it, and how to re-enable (the last error's message is
/// shortened so that the steps fit in an Event's 1 KB note).
pub fn auto_disabled_note(status: &IntegrationStatus, subject: &Subject) -> String {
    let mut note = format!("disabled after {} consecutive failed deliveries", status.consecutive_errors);
    if let Some(e) = &status.last_error {
        let mut message: String = e.message.chars().take(300).collect();
        if e.message.chars().count() > 300 {
            message.push('…');
        }
        note.push_str(&format!("; last error: {}: {}", e.reason, message.trim_end_matches('.')));
        // A passing failure's step ("nothing to do if it passes") does not fit here.
        let passing = [
            classify::reason::RATE_LIMITED,
            classify::reason::SERVICE_UNAVAILABLE,
            classify::reason::TIMEOUT,
            classify::reason::UNEXPECTED_RESPONSE,
        ];
        if let Some(step) = next_step(&e.reason, subject).filter(|_| !passing.contains(&e.reason.as_str())) {
            note.push_str(&format!(". To fix it: {step}"));
        }
    }
    with_next_step(&note, reason::ERROR_THRESHOLD, subject)
}

/// The `Disabled` condition's message while `spec.disabled` is true.
fn manually_disabled_message(subject: &Subject) -> String {
    with_next_step("spec.disabled is true: nothing is delivered until it is set to false", reason::MANUAL, subject)
}

/// `Disabled` and `Ready` from the manual switch, the auto-disable and the
/// `CredentialsValid` condition already in `next`; `disabledAt` with them.
fn set_derived_conditions(
    current: &IntegrationStatus,
    next: &mut IntegrationStatus,
    manually_disabled: bool,
    subject: &Subject,
    generation: Option<i64>,
    now: &Time,
) {
    let disabled = if manually_disabled {
        DesiredCondition::new(DISABLED, ConditionStatus::True, reason::MANUAL, manually_disabled_message(subject))
    } else if next.auto_disabled.is_some() {
        DesiredCondition::new(
            DISABLED,
            ConditionStatus::True,
            reason::ERROR_THRESHOLD,
            with_next_step(
                &format!(
                    "disabled after {} consecutive failed deliveries; nothing is delivered until it is re-enabled",
                    next.consecutive_errors
                ),
                reason::ERROR_THRESHOLD,
                subject,
            ),
        )
    } else {
        DesiredCondition::new(DISABLED, ConditionStatus::False, reason::ENABLED, "the integration is enabled")
    };
    let is_disabled = disabled.status == ConditionStatus::True;
    let creds = conditions::find(&next.conditions, CREDENTIALS_VALID)
        .map(|c| (ConditionStatus::of(c), c.reason.clone(), c.message.clone()));
    let ready = if is_disabled {
        DesiredCondition::new(READY, ConditionStatus::False, disabled.reason.clone(), disabled.message.clone())
    } else {
        match creds {
            Some((ConditionStatus::True, _, _)) => {
                DesiredCondition::new(READY, ConditionStatus::True, reason::READY, "notifications are delivered")
            }
            Some((status, reason, message)) => DesiredCondition::new(
                READY,
                if status == ConditionStatus::Unknown { ConditionStatus::Unknown } else { ConditionStatus::False },
                reason,
                message,
            ),
            None => DesiredCondition::new(
                READY,
                ConditionStatus::Unknown,
                reason::CHECKING,
                with_next_step("the credentials have not been checked yet", reason::CHECKING, subject),
            ),
        }
    };
    set_condition(&mut next.conditions, disabled, generation, now);
    set_condition(&mut next.conditions, ready, generation, now);
    order_conditions(&mut next.conditions);

    next.disabled_at = match (is_disabled, &current.disabled_at) {
        (true, Some(at)) if conditions::is_true(&current.conditions, DISABLED) => Some(at.clone()),
        (true, _) => Some(now.clone()),
        (false, _) => None,
    };
}

/// A stable order (`Ready`, `CredentialsValid`, `Disabled`, then others) so
/// that equal statuses compare equal.
fn order_conditions(conds: &mut [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) {
    let rank = |t: &str| match t {
        READY => 0,
        CREDENTIALS_VALID => 1,
        DISABLED => 2,
        _ => 3,
    };
    conds.sort_by(|a, b| rank(&a.type_).cmp(&rank(&b.type_)).then_with(|| a.type_.cmp(&b.type_)));
}

/// A Kubernetes Event to publish because the status changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The Events a status change deserves: a Warning on each transition to
/// invalid credentials or to disabled, a Normal one on becoming ready.
pub fn transition_events(old: &IntegrationStatus, new: &IntegrationStatus) -> Vec<TransitionEvent> {
    let turned = |t: &str, to: ConditionStatus| {
        conditions::status(&new.conditions, t) == Some(to) && conditions::status(&old.conditions, t) != Some(to)
    };
    let mut events = Vec::new();
    let cred = conditions::find(&new.conditions, CREDENTIALS_VALID);
    if let Some(c) = cred
        && turned(CREDENTIALS_VALID, ConditionStatus::False)
    {
        events.push(TransitionEvent {
            warning: true,
            reason: event_reason::CREDENTIALS_INVALID,
            note: format!("{}: {}", c.reason, c.message),
        });
    }
    if let Some(d) = conditions::find(&new.conditions, DISABLED)
        && turned(DISABLED, ConditionStatus::True)
    {
        events.push(TransitionEvent {
            warning: true,
            reason: event_reason::INTEGRATION_DISABLED,
            note: format!("{}: {}", d.reason, d.message),
        });
    }
    if turned(READY, ConditionStatus::True) {
        events.push(TransitionEvent {
            warning: false,
            reason: event_reason::INTEGRATION_READY,
            note: "notifications are delivered".into(),
        });
    }
    events
}

/// The `Ready` condition's status, for logs.
pub fn ready_of(status: &IntegrationStatus) -> Option<ConditionStatus> {
    conditions::status(&status.conditions, READY)
}

// Counting: what each delivery outcome does to the status.

/// What a delivery was made with: the spec generation and the Secret version
/// its notifier was built from (an auto-disable records them, so that a later
/// fix re-enables).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Under {
    pub generation: i64,
    pub secret_version: Option<String>,
}

/// Deliveries to record at once: successes batched since the last write,
/// then possibly one failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub delivered: i64,
    pub last_delivered: Option<Time>,
    pub failure: Option<Outcome>,
}

/// The integration status after one delivery made under `under`, with
/// `ni`'s spec as it is now (threshold, manual switch), and whether this delivery
/// disabled the integration. A success resets `consecutiveErrors`; a dead
/// destination or exhausted retries count; a rejected message or a missed
/// deadline leave the counters alone.
pub fn record_outcome(
    current: &IntegrationStatus,
    outcome: &Outcome,
    under: &Under,
    ni: &NotificationIntegration,
    now: &Time,
) -> (IntegrationStatus, bool) {
    let batch = match outcome {
        Outcome::Delivered => Batch { delivered: 1, last_delivered: Some(now.clone()), failure: None },
        other => Batch { failure: Some(other.clone()), ..Batch::default() },
    };
    record_batch(current, &batch, under, ni, now)
}

/// [`record_outcome`] for a batch: the successes first, then the failure.
pub fn record_batch(
    current: &IntegrationStatus,
    batch: &Batch,
    under: &Under,
    ni: &NotificationIntegration,
    now: &Time,
) -> (IntegrationStatus, bool) {
    let spec = &ni.spec;
    let mut next = current.clone();
    let mut changed = false;
    if batch.delivered > 0 {
        next.consecutive_errors = 0;
        next.total_delivered += batch.delivered;
        next.last_delivery_time = batch.last_delivered.clone().or_else(|| Some(now.clone()));
        changed = true;
    }
    if let Some(failure) = batch.failure.as_ref().filter(|f| f.counts_as_error()) {
        let (reason, message) = failure.failure().expect("a counted outcome is a failure");
        next.consecutive_errors += 1;
        next.total_errors += 1;
        next.last_error = Some(LastError { time: now.clone(), reason: reason.to_string(), message });
        if next.auto_disabled.is_none() && next.consecutive_errors >= i64::from(spec.error_threshold.max(1)) {
            next.auto_disabled = Some(AutoDisabled {
                generation: under.generation,
                secret_resource_version: under.secret_version.clone(),
            });
        }
        changed = true;
    }
    if !changed {
        return (next, false);
    }
    let generation = current.observed_generation.or(Some(under.generation));
    set_derived_conditions(current, &mut next, spec.disabled, &Subject::of(ni), generation, now);
    let newly_disabled =
        conditions::is_true(&next.conditions, DISABLED) && !conditions::is_true(&current.conditions, DISABLED);
    (next, newly_disabled)
}

// Receiving: whether a message may be sent to the integration now.

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
        return Receivable::Disabled {
            reason: reason::MANUAL.into(),
            message: manually_disabled_message(&Subject::of(ni)),
        };
    }
    if let Some(d) = conditions::find(conds, DISABLED).filter(|d| ConditionStatus::of(d) == ConditionStatus::True) {
        return Receivable::Disabled { reason: d.reason.clone(), message: d.message.clone() };
    }
    match conditions::find(conds, READY) {
        Some(r) if ConditionStatus::of(r) != ConditionStatus::True => {
            Receivable::NotReady { reason: r.reason.clone(), message: r.message.clone() }
        }
        Some(r) if r.observed_generation == ni.meta().generation => Receivable::Ready,
        Some(_) => Receivable::NotReady {
            reason: reason::CHECKING.into(),
            message: with_next_step("the changed spec has not been checked yet", reason::CHECKING, &Subject::of(ni)),
        },
        None => Receivable::NotReady {
            reason: reason::CHECKING.into(),
            message: with_next_step("the integration has not been checked yet", reason::CHECKING, &Subject::of(ni)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn input(status: ConditionStatus, reason: &str, disabled: bool) -> StatusInput {
        StatusInput {
            generation: Some(1),
            manually_disabled: disabled,
            credentials: CredentialsCondition { status, reason: reason.into(), message: "m".into() },
            secret_version: Some("7".into()),
            subject: subject(),
        }
    }

    fn subject() -> Subject {
        subject_for(Service::Webhook, None)
    }

    fn subject_for(service: Service, slack_channel: Option<&str>) -> Subject {
        Subject {
            namespace: "team-a".into(),
            name: "alerts".into(),
            service,
            secret: "alerts-secret".into(),
            key: if slack_channel.is_some() || service == Service::Chatwork { "token" } else { "webhookUrl" }.into(),
            slack_channel: slack_channel.map(str::to_string),
            chatwork_room: (service == Service::Chatwork).then(|| "42".into()),
            secret_reader: SecretReader::default(),
        }
    }

    fn every_kind_of_subject() -> Vec<Subject> {
        vec![
            subject_for(Service::Slack, None),
            subject_for(Service::Slack, Some("C0123")),
            subject_for(Service::Chatwork, None),
            subject_for(Service::Msteams, None),
            subject_for(Service::Webhook, None),
        ]
    }

    /// The string values of `pub const NAME: &str = "value";` lines in `src`.
    fn const_values(src: &str) -> Vec<String> {
        src.lines()
            .filter_map(|l| l.trim().strip_prefix("pub const ")?.split_once(": &str = \"")?.1.strip_suffix("\";"))
            .map(str::to_string)
            .collect()
    }

    /// The block of `src` from `start` to the first line that is `}`.
    fn block<'a>(src: &'a str, start: &str) -> &'a str {
        let from = src.find(start).expect("the block exists");
        let len = src[from..].find("\n}\n").expect("the block ends");
        &src[from..from + len]
    }

    #[test]
    fn every_problem_reason_has_a_next_step() {
        for s in every_kind_of_subject() {
            for r in PROBLEM_REASONS {
                let step = next_step(r, &s).unwrap_or_else(|| panic!("{r} has no next step for {s:?}"));
                assert!(step.ends_with('.') && step.chars().next().is_some_and(char::is_uppercase), "{r}: {step}");
                assert_eq!(step.matches(". ").count(), 0, "one sentence: {r}: {step}");
                assert!(step.len() < 400, "{r}: {step}");
            }
            for ok in [reason::VALID, reason::READY, reason::ENABLED] {
                assert_eq!(next_step(ok, &s), None, "{ok} reports no problem");
            }
        }
    }

    #[test]
    fn the_reason_list_is_complete() {
        // Every reason constant a check or a status can report is listed.
        let sources = [
            block(include_str!("integration.rs"), "pub mod reason {"),
            block(include_str!("../notifier/mod.rs"), "pub mod reason {"),
            block(include_str!("../notifier/classify.rs"), "pub mod reason {"),
            include_str!("../notifier/endpoint.rs"),
        ];
        let declared: Vec<String> = sources.iter().flat_map(|s| const_values(s)).collect();
        assert!(declared.len() >= 20, "the source scan found the constants: {declared:?}");
        for r in &declared {
            let problem = ![reason::VALID, reason::READY, reason::ENABLED].contains(&r.as_str());
            assert_eq!(PROBLEM_REASONS.contains(&r.as_str()), problem, "{r}: add it to PROBLEM_REASONS and next_step");
        }
    }

    #[test]
    fn next_steps_name_the_secret_key_or_the_switch() {
        let slack = subject_for(Service::Slack, None);
        let step = |r: &str, s: &Subject| next_step(r, s).unwrap();
        assert_eq!(
            step(reason::SECRET_NOT_FOUND, &slack),
            "Create Secret team-a/alerts-secret with key webhookUrl (the Slack incoming webhook URL), or fix spec.secretRef.name."
        );
        let revoked = step(crate::notifier::classify::reason::UNAUTHORIZED, &slack);
        assert!(revoked.contains("creator left") && revoked.contains("key webhookUrl of Secret team-a/alerts-secret"));
        let chatwork = subject_for(Service::Chatwork, None);
        assert!(step(crate::notifier::classify::reason::FORBIDDEN, &chatwork).contains("room 42"));
        assert!(step(crate::notifier::reason::SECRET_KEY_MISSING, &chatwork).contains("key token of Secret"));
        assert!(step(crate::notifier::endpoint::ENDPOINT_NOT_ALLOWED, &slack).contains("--allow-endpoint"));
        assert!(step(reason::MANUAL, &slack).starts_with("Set spec.disabled to false to enable it"));
        let reenable = step(reason::ERROR_THRESHOLD, &slack);
        assert!(reenable.contains("any change to its spec or to Secret team-a/alerts-secret"), "{reenable}");
        assert!(
            reenable.contains("kubectl label secret -n team-a alerts-secret kube-notify.io/reenable="),
            "{reenable}"
        );
    }

    #[test]
    fn secret_forbidden_ends_with_the_rolebinding_to_create() {
        let reader = SecretReader {
            role: "notify-secret-reader".into(),
            service_account_namespace: "ops".into(),
            service_account: "notifier".into(),
        };
        let line = "kubectl create rolebinding notify-secret-reader -n team-a --clusterrole=notify-secret-reader \
                    --serviceaccount=ops:notifier";
        assert_eq!(reader.rolebinding_command("team-a"), line);
        let s = subject().read_by(&reader);
        let message =
            with_next_step(&secret_forbidden_message("team-a", "alerts-secret"), reason::SECRET_FORBIDDEN, &s);
        assert!(
            message.starts_with(
                "the API server forbids the operator to read Secret \"alerts-secret\" in namespace \"team-a\" \
                 (403 Forbidden). Let the operator read Secrets in namespace team-a with a RoleBinding to \
                 ClusterRole notify-secret-reader"
            ),
            "{message}"
        );
        assert!(message.ends_with(&format!(": `{line}`.")), "{message}");
        // The defaults: the chart's names for release kube-notify in namespace kube-notify.
        assert_eq!(
            SecretReader::default().rolebinding_command("team-b"),
            "kubectl create rolebinding kube-notify-secret-reader -n team-b \
             --clusterrole=kube-notify-secret-reader --serviceaccount=kube-notify:kube-notify"
        );
    }

    #[test]
    fn with_next_step_appends_once() {
        let s = subject();
        let once = with_next_step("Secret \"x\" was not found", reason::SECRET_NOT_FOUND, &s);
        assert!(once.starts_with("Secret \"x\" was not found. Create Secret"), "{once}");
        assert_eq!(with_next_step(&once, reason::SECRET_NOT_FOUND, &s), once);
        assert_eq!(with_next_step("fine", reason::VALID, &s), "fine");
    }

    #[test]
    fn messages_with_next_steps_hold_no_credential() {
        use crate::notifier::{ServiceEndpoints, build, endpoint::EndpointPolicy};
        let endpoints = ServiceEndpoints {
            slack_api: "https://slack.com/api".parse().unwrap(),
            chatwork_api: "https://api.chatwork.com/v2".parse().unwrap(),
            policy: EndpointPolicy::default(),
        };
        let secret = "s3cr3tPart";
        let cases = [
            (
                serde_json::json!({"service": "slack"}),
                "webhookUrl",
                format!("https://evil.example/services/T1/B2/{secret}"),
            ),
            (serde_json::json!({"service": "slack"}), "webhookUrl", format!("https://hooks.slack.com/x/{secret}")),
            (serde_json::json!({"service": "slack", "slack": {"channel": "C1"}}), "token", format!("xoxp-{secret}")),
            (serde_json::json!({"service": "slack", "slack": {"channel": "C1"}}), "token", format!("xoxb-{secret} x")),
            (
                serde_json::json!({"service": "msteams"}),
                "webhookUrl",
                format!("https://a.webhook.office.com/webhookb2/{secret}"),
            ),
            (serde_json::json!({"service": "msteams"}), "webhookUrl", format!("https://x.logic.azure.com/{secret}")),
            (serde_json::json!({"service": "webhook"}), "webhookUrl", format!("http://10.0.0.1/{secret}")),
            (serde_json::json!({"service": "webhook"}), "webhookUrl", format!("https://{secret}\n.example")),
            (
                serde_json::json!({"service": "chatwork", "chatwork": {"roomId": "1"}}),
                "token",
                format!("{secret} \u{1}"),
            ),
        ];
        for (spec, key, value) in cases {
            let mut spec = spec;
            spec["secretRef"] = serde_json::json!({"name": "alerts-secret"});
            let ni: NotificationIntegration = serde_json::from_value(serde_json::json!({
                "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
                "metadata": {"name": "alerts", "namespace": "team-a"}, "spec": spec,
            }))
            .unwrap();
            let data = [(key.to_string(), value.as_bytes().to_vec())].into_iter().collect();
            let Err(f) = build(&ni.spec, "alerts-secret", &data, &endpoints) else { panic!("{value} is refused") };
            let message = with_next_step(&f.message, f.reason, &Subject::of(&ni));
            assert!(!message.contains(secret), "{message}");
            assert!(message.len() > f.message.len() && message.contains("alerts-secret"), "{message}");
        }
    }

    #[test]
    fn warning_events_end_with_the_next_step() {
        let now = t("2026-01-01T00:00:00Z");
        let empty = IntegrationStatus::default();
        let mut unauthorized = input(ConditionStatus::False, "Unauthorized", false);
        unauthorized.credentials.message = with_next_step("refused", "Unauthorized", &subject());
        let invalid = desired_status(&empty, &unauthorized, &now);
        let ev = transition_events(&empty, &invalid);
        assert!(ev[0].note.ends_with(&next_step("Unauthorized", &subject()).unwrap()), "{}", ev[0].note);
        let manual = desired_status(&invalid, &input(ConditionStatus::True, "Valid", true), &now);
        let ev = transition_events(&invalid, &manual);
        assert!(ev[0].note.ends_with(&next_step(reason::MANUAL, &subject()).unwrap()), "{}", ev[0].note);
    }

    #[test]
    fn the_auto_disable_note_fits_and_ends_with_how_to_re_enable() {
        let status = IntegrationStatus {
            consecutive_errors: 5,
            last_error: Some(LastError {
                time: t("2026-01-01T00:00:00Z"),
                reason: "Unauthorized".into(),
                message: "x".repeat(2000),
            }),
            ..IntegrationStatus::default()
        };
        let s = subject_for(Service::Slack, None);
        let note = auto_disabled_note(&status, &s);
        assert!(note.len() <= 1024, "{} bytes", note.len());
        assert!(note.contains(&next_step("Unauthorized", &s).unwrap()), "{note}");
        assert!(note.ends_with(&next_step(reason::ERROR_THRESHOLD, &s).unwrap()), "{note}");
    }

    #[test]
    fn valid_and_enabled_is_ready() {
        let s = desired_status(
            &IntegrationStatus::default(),
            &input(ConditionStatus::True, "Valid", false),
            &t("2026-01-01T00:00:00Z"),
        );
        assert!(conditions::is_true(&s.conditions, READY));
        assert!(conditions::is_true(&s.conditions, CREDENTIALS_VALID));
        assert!(!conditions::is_true(&s.conditions, DISABLED));
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(s.disabled_at, None);
        let types: Vec<_> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, CREDENTIALS_VALID, DISABLED]);
    }

    #[test]
    fn recomputing_later_changes_nothing() {
        let i = input(ConditionStatus::True, "Valid", false);
        let s1 = desired_status(&IntegrationStatus::default(), &i, &t("2026-01-01T00:00:00Z"));
        let s2 = desired_status(&s1, &i, &t("2026-01-02T00:00:00Z"));
        assert_eq!(s1, s2, "a later time alone must not change the status");
    }

    #[test]
    fn manual_disable_wins_and_sets_disabled_at_once() {
        let i = input(ConditionStatus::True, "Valid", true);
        let s1 = desired_status(&IntegrationStatus::default(), &i, &t("2026-01-01T00:00:00Z"));
        let ready = conditions::find(&s1.conditions, READY).unwrap();
        assert_eq!((ConditionStatus::of(ready), ready.reason.as_str()), (ConditionStatus::False, reason::MANUAL));
        assert_eq!(s1.disabled_at, Some(t("2026-01-01T00:00:00Z")));
        let s2 = desired_status(&s1, &i, &t("2026-01-02T00:00:00Z"));
        assert_eq!(s2.disabled_at, Some(t("2026-01-01T00:00:00Z")));
        let s3 = desired_status(&s2, &input(ConditionStatus::True, "Valid", false), &t("2026-01-03T00:00:00Z"));
        assert_eq!(s3.disabled_at, None);
        assert!(conditions::is_true(&s3.conditions, READY));
    }

    #[test]
    fn invalid_or_unknown_credentials_are_not_ready() {
        let s = desired_status(
            &IntegrationStatus::default(),
            &input(ConditionStatus::False, "SecretNotFound", false),
            &t("2026-01-01T00:00:00Z"),
        );
        let ready = conditions::find(&s.conditions, READY).unwrap();
        assert_eq!((ConditionStatus::of(ready), ready.reason.as_str()), (ConditionStatus::False, "SecretNotFound"));
        let s = desired_status(
            &IntegrationStatus::default(),
            &input(ConditionStatus::Unknown, "ServiceUnavailable", false),
            &t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(conditions::status(&s.conditions, READY), Some(ConditionStatus::Unknown));
    }

    #[test]
    fn events_only_on_transitions() {
        let now = t("2026-01-01T00:00:00Z");
        let empty = IntegrationStatus::default();
        let invalid = desired_status(&empty, &input(ConditionStatus::False, "Unauthorized", false), &now);
        let ev = transition_events(&empty, &invalid);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].reason, "CredentialsInvalid");
        assert!(transition_events(&invalid, &invalid).is_empty());
        let disabled = desired_status(&invalid, &input(ConditionStatus::False, "Unauthorized", true), &now);
        let ev = transition_events(&invalid, &disabled);
        assert_eq!(ev.iter().map(|e| e.reason).collect::<Vec<_>>(), ["IntegrationDisabled"]);
        let ready = desired_status(&disabled, &input(ConditionStatus::True, "Valid", false), &now);
        let ev = transition_events(&disabled, &ready);
        assert_eq!(ev.iter().map(|e| (e.reason, e.warning)).collect::<Vec<_>>(), [("IntegrationReady", false)]);
    }
}

#[cfg(test)]
mod counting_tests {
    use super::*;
    use crate::notifier::classify::{Failure, reason};

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn ready_status() -> IntegrationStatus {
        let input = StatusInput {
            generation: Some(1),
            manually_disabled: false,
            credentials: CredentialsCondition {
                status: ConditionStatus::True,
                reason: "Valid".into(),
                message: "ok".into(),
            },
            secret_version: Some("10".into()),
            subject: Subject::of(&spec(5)),
        };
        desired_status(&IntegrationStatus::default(), &input, &t("2026-01-01T00:00:00Z"))
    }

    fn under() -> Under {
        Under { generation: 1, secret_version: Some("10".into()) }
    }

    fn spec(threshold: i32) -> NotificationIntegration {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"service": "webhook", "secretRef": {"name": "s"}, "errorThreshold": threshold},
        }))
        .unwrap()
    }

    fn dead() -> Outcome {
        Outcome::Dead(Failure::new(reason::DESTINATION_NOT_FOUND, "the webhook is gone"))
    }

    #[test]
    fn disables_at_exactly_the_threshold() {
        let now = t("2026-01-02T00:00:00Z");
        let mut s = ready_status();
        for i in 1..=2 {
            let (next, disabled) = record_outcome(&s, &dead(), &under(), &spec(3), &now);
            assert!(!disabled, "not yet at {i}");
            assert_eq!(next.consecutive_errors, i);
            assert!(conditions::is_true(&next.conditions, READY));
            s = next;
        }
        let (next, disabled) = record_outcome(&s, &dead(), &under(), &spec(3), &now);
        assert!(disabled);
        assert_eq!(next.consecutive_errors, 3);
        assert_eq!(next.total_errors, 3);
        let d = conditions::find(&next.conditions, DISABLED).unwrap();
        assert_eq!(
            (ConditionStatus::of(d), d.reason.as_str()),
            (ConditionStatus::True, super::reason::ERROR_THRESHOLD)
        );
        assert!(!conditions::is_true(&next.conditions, READY));
        assert_eq!(next.disabled_at, Some(now.clone()));
        assert_eq!(next.auto_disabled.as_ref().unwrap().secret_resource_version.as_deref(), Some("10"));
        assert_eq!(next.last_error.as_ref().unwrap().reason, "DestinationNotFound");
        // Further failures count but don't "disable again".
        let (again, disabled) = record_outcome(&next, &dead(), &under(), &spec(3), &now);
        assert!(!disabled);
        assert_eq!(again.consecutive_errors, 4);
    }

    #[test]
    fn success_resets_and_rejections_do_not_count() {
        let now = t("2026-01-02T00:00:00Z");
        let (s, _) = record_outcome(&ready_status(), &dead(), &under(), &spec(5), &now);
        let rejected = Outcome::Rejected(Failure::new(reason::MESSAGE_REJECTED, "too long"));
        let (s2, _) = record_outcome(&s, &rejected, &under(), &spec(5), &now);
        assert_eq!(s2, s, "a rejected message is not the integration's fault");
        let (s3, _) = record_outcome(&s2, &Outcome::Delivered, &under(), &spec(5), &now);
        assert_eq!(s3.consecutive_errors, 0);
        assert_eq!(s3.total_errors, 1);
        assert_eq!(s3.total_delivered, 1);
        assert_eq!(s3.last_delivery_time, Some(now));
        assert!(s3.last_error.is_some(), "the last error stays visible");
    }

    #[test]
    fn a_batch_applies_successes_before_the_failure() {
        let now = t("2026-01-02T00:00:00Z");
        let (s, _) = record_outcome(&ready_status(), &dead(), &under(), &spec(5), &now);
        let batch = Batch { delivered: 3, last_delivered: Some(now.clone()), failure: Some(dead()) };
        let (next, disabled) = record_batch(&s, &batch, &under(), &spec(5), &now);
        assert!(!disabled);
        assert_eq!((next.total_delivered, next.consecutive_errors, next.total_errors), (3, 1, 2));
        let empty = record_batch(&s, &Batch::default(), &under(), &spec(5), &now);
        assert_eq!(empty, (s, false));
    }

    #[test]
    fn a_new_generation_or_secret_re_enables() {
        let now = t("2026-01-02T00:00:00Z");
        let (disabled, _) = record_outcome(&ready_status(), &dead(), &under(), &spec(1), &now);
        assert!(conditions::is_true(&disabled.conditions, DISABLED));
        let valid =
            CredentialsCondition { status: ConditionStatus::True, reason: "Valid".into(), message: "ok".into() };
        let same = StatusInput {
            generation: Some(1),
            manually_disabled: false,
            credentials: valid.clone(),
            secret_version: Some("10".into()),
            subject: Subject::of(&spec(5)),
        };
        let still = desired_status(&disabled, &same, &now);
        assert!(conditions::is_true(&still.conditions, DISABLED), "nothing changed: stays disabled");
        for input in [
            StatusInput { secret_version: Some("11".into()), ..same.clone() },
            StatusInput { generation: Some(2), ..same.clone() },
        ] {
            let enabled = desired_status(&disabled, &input, &now);
            assert!(conditions::is_true(&enabled.conditions, READY));
            assert_eq!(enabled.consecutive_errors, 0);
            assert_eq!(enabled.auto_disabled, None);
            assert_eq!(enabled.disabled_at, None);
        }
        // The manual switch wins.
        let manual = StatusInput { generation: Some(2), manually_disabled: true, ..same };
        let off = desired_status(&disabled, &manual, &now);
        assert_eq!(conditions::find(&off.conditions, DISABLED).unwrap().reason, "Manual");
    }
}

#[cfg(test)]
mod receiving_tests {
    use super::reason::{CHECKING, MANUAL};
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
