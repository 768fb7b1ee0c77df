//! `NotificationEvent`: one message to deliver, with its own delivery record.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation that says how an event was asked for (`send`: by a
/// follower's synchronous `send`, which waits for it and may cancel it).
pub const REQUESTED_VIA: &str = "kube-notify.io/requested-via";
/// [`REQUESTED_VIA`] of an event made by `send`.
pub const REQUESTED_VIA_SEND: &str = "send";

/// One message to deliver to an integration (or to every integration matching
/// a selector) in the same namespace. Its `status` is the delivery record.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kube-notify.io",
    version = "v1alpha1",
    kind = "NotificationEvent",
    plural = "notificationevents",
    shortname = "nev",
    category = "notifications",
    namespaced,
    doc = "One message to deliver to an integration, or to every integration matching a selector, in the same namespace. Its status is the delivery record.",
    status = "NotificationEventStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Delivery phase"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.integrationRef.name","description":"The target integration (empty for a selector)"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.integrationRef) != has(self.integrationSelector)", "message": "exactly one of spec.integrationRef or spec.integrationSelector is required"}
]))]
pub struct NotificationEventSpec {
    /// The integration to deliver to. Exactly one of `integrationRef` and `integrationSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_ref: Option<IntegrationRef>,

    /// Deliver to every integration in the namespace whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounded_selector)]
    pub integration_selector: Option<LabelSelector>,

    /// A short title, shown as the header of the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 250))]
    pub title: Option<String>,

    /// The message text.
    #[schemars(length(min = 1, max = 65535))]
    pub message: String,

    /// `info`, `success`, `warning` or `error`; shown as an emoji or colour.
    #[serde(default)]
    pub severity: Severity,

    /// Name/value pairs shown as a table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub fields: Vec<EventField>,

    /// Links shown under the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub links: Vec<EventLink>,

    /// People to mention, by email: each service shows them its own way
    /// (`NotificationContact` objects map emails to service accounts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub mentions: Vec<Mention>,

    /// Seconds after the event finished before it is deleted; the operator's
    /// `--event-ttl` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,
}

/// The most `matchExpressions` an `integrationSelector` may hold.
pub const MAX_SELECTOR_EXPRESSIONS: usize = 20;
/// The most `values` one of its expressions may hold.
pub const MAX_SELECTOR_VALUES: usize = 50;
/// The most `matchLabels` it may hold.
pub const MAX_SELECTOR_LABELS: usize = 20;
/// The longest label key (a 253-character prefix, `/`, a 63-character name).
pub const MAX_LABEL_KEY: usize = 317;
/// The longest label value (a longer one matches no label).
pub const MAX_LABEL_VALUE: usize = 63;

/// The `integrationSelector` schema with the bounds the HTTP bodies check
/// too: the API server refuses a larger selector as the routes do.
fn bounded_selector(schema: &mut schemars::Schema) {
    use serde_json::json;
    let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) else { return };
    if let Some(exprs) = props.get_mut("matchExpressions").and_then(|e| e.as_object_mut()) {
        exprs.insert("maxItems".into(), json!(MAX_SELECTOR_EXPRESSIONS));
        if let Some(item) = exprs.get_mut("items").and_then(|i| i.get_mut("properties")).and_then(|p| p.as_object_mut())
        {
            if let Some(key) = item.get_mut("key").and_then(|k| k.as_object_mut()) {
                key.insert("maxLength".into(), json!(MAX_LABEL_KEY));
            }
            if let Some(values) = item.get_mut("values").and_then(|v| v.as_object_mut()) {
                values.insert("maxItems".into(), json!(MAX_SELECTOR_VALUES));
                if let Some(value) = values.get_mut("items").and_then(|i| i.as_object_mut()) {
                    value.insert("maxLength".into(), json!(MAX_LABEL_VALUE));
                }
            }
        }
    }
    if let Some(labels) = props.get_mut("matchLabels").and_then(|l| l.as_object_mut()) {
        labels.insert("maxProperties".into(), json!(MAX_SELECTOR_LABELS));
        if let Some(value) = labels.get_mut("additionalProperties").and_then(|v| v.as_object_mut()) {
            value.insert("maxLength".into(), json!(MAX_LABEL_VALUE));
        }
    }
}

/// The name of an integration in the event's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct IntegrationRef {
    /// The integration's name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// How serious an event is.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Success,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Success => "success",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A name/value pair shown with the message.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EventField {
    /// The label.
    #[schemars(length(min = 1, max = 150))]
    pub name: String,
    /// The value.
    #[schemars(length(max = 2000))]
    pub value: String,
}

/// A link shown with the message.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EventLink {
    /// The link text.
    #[schemars(length(min = 1, max = 150))]
    pub text: String,
    /// The http(s) URL.
    #[schemars(regex(pattern = r"^https?://"), length(max = 2048))]
    pub url: String,
}

/// The shape of an email address the CRD and the HTTP bodies accept.
pub const EMAIL_PATTERN: &str = r"^[^@\s]+@[^@\s]+\.[^@\s]+$";
/// The longest email address accepted.
pub const MAX_EMAIL: usize = 254;
/// The longest display name accepted.
pub const MAX_MENTION_NAME: usize = 100;

/// A person to mention.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Mention {
    /// The person's email address: how they are found on each service.
    #[schemars(length(max = 254), regex(pattern = EMAIL_PATTERN))]
    pub email: String,
    /// The name shown for them (the contact's name, else the email, when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub name: Option<String>,
}

/// The delivery record of an event.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationEventStatus {
    /// `Pending`, `Delivered`, `PartiallyDelivered`, `Failed` or `Skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<EventPhase>,

    /// Why the event is in its phase (e.g. `IntegrationNotFound`, `Expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// A sentence for a person about the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// One entry per target integration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<Delivery>,

    /// When the event reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The phase of an event.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum EventPhase {
    Pending,
    Delivered,
    PartiallyDelivered,
    Failed,
    Skipped,
}

impl EventPhase {
    /// Whether the event is finished (no further delivery attempts).
    pub fn is_final(self) -> bool {
        !matches!(self, EventPhase::Pending)
    }
}

/// The delivery of an event to one integration.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The integration's name.
    pub integration: String,
    /// `Pending`, `Delivered`, `Failed` or `Skipped`.
    pub phase: DeliveryPhase,
    /// How many times the service was called.
    #[serde(default)]
    pub attempts: i32,
    /// Why the delivery failed, was skipped or is still pending (never contains credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// A short machine-readable reason for `lastError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the service accepted the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Time>,
    /// The emails of the mentions that could not be resolved for this
    /// integration's service: the message showed their name or email instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved_mentions: Vec<String>,
}

/// The phase of one delivery.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeliveryPhase {
    Pending,
    Delivered,
    Failed,
    Skipped,
}
