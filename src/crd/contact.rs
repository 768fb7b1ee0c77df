//! `NotificationContact`: one person's accounts on the chat services, so
//! that a mention by email reaches them on every integration of the
//! namespace.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::event::EMAIL_PATTERN;

/// One person: their email (as events mention them) and their account on
/// each service where the email alone does not find them. Every integration
/// in the namespace uses it; a mapping wins over a lookup by email.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kube-notify.io",
    version = "v1alpha1",
    kind = "NotificationContact",
    plural = "notificationcontacts",
    shortname = "ncontact",
    category = "notifications",
    namespaced,
    doc = "One person's accounts on the chat services: a mention of spec.email in a NotificationEvent of the same namespace mentions these accounts. A mapping wins over a lookup by email.",
    printcolumn = r#"{"name":"Email","type":"string","jsonPath":".spec.email","description":"The email events mention"}"#,
    printcolumn = r#"{"name":"Slack","type":"string","jsonPath":".spec.slack.userId","description":"The Slack user id"}"#,
    printcolumn = r#"{"name":"Chatwork","type":"string","jsonPath":".spec.chatwork.accountId","description":"The Chatwork account id"}"#,
    printcolumn = r#"{"name":"Teams","type":"string","jsonPath":".spec.msteams.id","description":"The Teams user principal name or object id"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NotificationContactSpec {
    /// The email address events mention (compared without regard to case).
    #[schemars(length(max = 254), regex(pattern = EMAIL_PATTERN))]
    pub email: String,

    /// The name shown when a mention gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub name: Option<String>,

    /// The person's Slack account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<ContactSlack>,

    /// The person's Chatwork account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chatwork: Option<ContactChatwork>,

    /// The person's Microsoft Teams account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msteams: Option<ContactTeams>,
}

/// A Slack account.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactSlack {
    /// The Slack user id, e.g. `U0123ABCD` (profile, "Copy member ID").
    #[schemars(length(max = 32), regex(pattern = r"^[UW][A-Z0-9]+$"))]
    pub user_id: String,
}

/// A Chatwork account.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactChatwork {
    /// The numeric Chatwork account id (`[To:<accountId>]`).
    #[schemars(length(max = 20), regex(pattern = r"^[0-9]+$"))]
    pub account_id: String,
}

/// A Microsoft Teams account.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactTeams {
    /// The user principal name or Entra object id to mention (the email is
    /// used as the user principal name when there is no contact).
    #[schemars(length(min = 1, max = 256))]
    pub id: String,
}
