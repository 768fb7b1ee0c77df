//! `NotificationIntegration`: one registered destination (a Slack webhook, a
//! Chatwork room, a Teams workflow, a generic webhook) and its health.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A registered notification destination. The operator validates its
/// credentials and keeps its health in `status`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kube-notify.io",
    version = "v1alpha1",
    kind = "NotificationIntegration",
    plural = "notificationintegrations",
    shortname = "ni",
    category = "notifications",
    namespaced,
    doc = "A registered notification destination (Slack, Chatwork, Microsoft Teams or a webhook) whose credentials are in a Secret of the same namespace. The operator validates the credentials and shows the integration's health in status.",
    status = "IntegrationStatus",
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service","description":"The chat service"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether notifications are delivered"}"#,
    printcolumn = r#"{"name":"Disabled","type":"string","jsonPath":".status.conditions[?(@.type==\"Disabled\")].status","description":"Whether the integration is switched off (manually or after repeated errors)"}"#,
    printcolumn = r#"{"name":"Errors","type":"integer","jsonPath":".status.consecutiveErrors","description":"Consecutive failed deliveries"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Last Error","type":"string","priority":1,"jsonPath":".status.lastError.message","description":"The last delivery or validation error"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.service != 'chatwork' || has(self.chatwork)", "message": "spec.chatwork.roomId is required when spec.service is chatwork", "fieldPath": ".chatwork"},
    {"rule": "!has(self.slack) || self.service == 'slack'", "message": "spec.slack is only allowed when spec.service is slack", "fieldPath": ".slack"},
    {"rule": "!has(self.chatwork) || self.service == 'chatwork'", "message": "spec.chatwork is only allowed when spec.service is chatwork", "fieldPath": ".chatwork"}
]))]
pub struct NotificationIntegrationSpec {
    /// The chat service to deliver to: `slack`, `chatwork`, `msteams` or `webhook`.
    pub service: Service,

    /// The Secret (in the integration's namespace) that holds the credentials:
    /// key `webhookUrl` (Slack incoming webhook, Teams Workflows, generic webhook),
    /// `token` (Chatwork API token, or a Slack bot token used with `slack.channel`),
    /// and optionally `signingSecret` (generic webhook).
    pub secret_ref: SecretRef,

    /// Slack options. Setting `channel` selects bot-token mode (`chat.postMessage`
    /// with the Secret's `token`); without it the Secret's `webhookUrl` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackSpec>,

    /// Chatwork options; required when `service` is `chatwork`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chatwork: Option<ChatworkSpec>,

    /// The manual switch: while true, nothing is delivered and `Disabled` is
    /// True with reason `Manual`. It always wins over automatic re-enabling.
    #[serde(default)]
    pub disabled: bool,

    /// Consecutive failed deliveries after which the integration is disabled
    /// automatically (reason `ErrorThreshold`). A change to the spec or to the
    /// Secret (its resourceVersion) re-enables it.
    #[serde(default = "default_error_threshold")]
    #[schemars(range(min = 1))]
    pub error_threshold: i32,
}

fn default_error_threshold() -> i32 {
    5
}

/// The chat service an integration delivers to.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Slack,
    Chatwork,
    Msteams,
    Webhook,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Slack => "slack",
            Service::Chatwork => "chatwork",
            Service::Msteams => "msteams",
            Service::Webhook => "webhook",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to the Secret holding the credentials, in the integration's own namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name (in the integration's namespace; other namespaces are never read).
    #[schemars(length(min = 1))]
    pub name: String,
    /// The key of the main credential, overriding the default (`webhookUrl`, or
    /// `token` for Chatwork and Slack bot-token mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Slack options.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackSpec {
    /// Channel ID (e.g. `C0123456789`) to post to with a bot token (`xoxb-…`).
    /// Setting it selects bot-token mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Display name for messages posted in bot-token mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Emoji used as the icon in bot-token mode, e.g. `:bell:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
}

/// Chatwork options.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatworkSpec {
    /// The numeric ID of the room to post to.
    #[schemars(length(min = 1), regex(pattern = r"^[0-9]+$"))]
    pub room_id: String,
}

/// The observed health of an integration.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` (notifications are delivered), `CredentialsValid` (the Secret's
    /// credentials were accepted by the service) and `Disabled` (switched off
    /// manually or after repeated errors).
    #[serde(default)]
    pub conditions: Vec<Condition>,

    /// Failed deliveries since the last success; reaching `spec.errorThreshold` disables the integration.
    #[serde(default)]
    pub consecutive_errors: i64,

    /// Failed deliveries over the integration's lifetime.
    #[serde(default)]
    pub total_errors: i64,

    /// Successful deliveries over the integration's lifetime.
    #[serde(default)]
    pub total_delivered: i64,

    /// The `resourceVersion` of the Secret that `CredentialsValid` was
    /// computed from: a new leader whose Secret cache shows the same version
    /// takes a valid result over without reading the Secret again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_resource_version: Option<String>,

    /// The last delivery error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,

    /// When a message was last delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_time: Option<Time>,

    /// When the integration was disabled (manually or automatically).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Time>,

    /// Set while the integration is disabled after `errorThreshold` consecutive
    /// failed deliveries: what it was disabled under. A new spec generation or a
    /// change to the Secret re-enables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_disabled: Option<AutoDisabled>,

    /// The last test message asked for with the annotation
    /// `kube-notify.io/send-test` (or `kube-notify test`): one is sent for
    /// each new value of the annotation, and its outcome is shown here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_message: Option<TestMessageStatus>,
}

/// The annotation that asks for one test message: any new non-empty value
/// (a time, a counter, a commit) sends one. Nothing removes it.
pub const SEND_TEST_ANNOTATION: &str = "kube-notify.io/send-test";

/// The most characters of the annotation's value kept in
/// `status.testMessage.request`; a longer value is kept as its SHA-256.
pub const TEST_REQUEST_MAX_CHARS: usize = 128;

/// What became of the test message asked for by the annotation's value `request`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestMessageStatus {
    /// The annotation's value this answers (its SHA-256, `sha256:<hex>`, when
    /// longer than 128 characters).
    pub request: String,
    /// `Sending` while it is being sent; then `Delivered`, `Failed`, or
    /// `Skipped` (the integration is disabled or its credentials are invalid:
    /// nothing was sent).
    pub phase: TestMessagePhase,
    /// Why it failed or was skipped (`DestinationNotFound`, `Manual`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened, for a person (never a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Calls made to the service.
    #[serde(default)]
    pub attempts: u32,
    /// When it was asked for (`Sending`) or when it ended.
    pub time: Time,
}

/// The phase of a test message.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TestMessagePhase {
    Sending,
    Delivered,
    Failed,
    Skipped,
}

/// What an automatically disabled integration was disabled under.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoDisabled {
    /// The spec generation at the time.
    pub generation: i64,
    /// The Secret's `resourceVersion` at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_resource_version: Option<String>,
}

/// A delivery error, with credentials redacted.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// When it happened.
    pub time: Time,
    /// A short machine-readable reason, e.g. `DestinationNotFound`.
    pub reason: String,
    /// What went wrong, for a person (never contains credentials).
    pub message: String,
}

/// Names one integration: its namespace and name. Shown as `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntegrationKey {
    pub namespace: String,
    pub name: String,
}

impl IntegrationKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        IntegrationKey { namespace: namespace.into(), name: name.into() }
    }

    /// The key of `ni`.
    pub fn of(ni: &NotificationIntegration) -> Self {
        use kube::ResourceExt;
        IntegrationKey::new(ni.namespace().unwrap_or_default(), ni.name_any())
    }
}

impl std::fmt::Display for IntegrationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
