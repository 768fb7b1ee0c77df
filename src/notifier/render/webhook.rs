//! A generic webhook: the event as JSON, in the Standard Webhooks shape
//! `{"type", "timestamp", "data"}`; `data.mentions` lists the people
//! mentioned (`email`, `name`) when there are any.

use serde::Serialize;

use super::Message;
use crate::crd::{EventField, EventLink};
use crate::notifier::mentions::Mentioned;

/// The JSON body, borrowed from the message (serialized straight to bytes on
/// the hot path). Keys are declared in alphabetical order: the bytes are the
/// same as a `serde_json::Value` of it would give.
#[derive(Serialize)]
pub struct Body<'a> {
    data: Data<'a>,
    timestamp: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Data<'a> {
    fields: &'a [EventField],
    id: &'a str,
    links: &'a [EventLink],
    /// `{email, name?}` of each mention, as data: the receiver resolves them.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    mentions: &'a [Mentioned],
    message: &'a str,
    severity: &'static str,
    source: &'a Option<String>,
    title: &'a Option<String>,
}

/// The JSON body. `timestamp` is the time of the message (fixed across retries).
pub fn render<'a>(message: &'a Message, timestamp: &'a str) -> Body<'a> {
    Body {
        kind: "kube-notify.notification",
        timestamp,
        data: Data {
            id: &message.id,
            source: &message.source,
            title: &message.title,
            message: &message.text,
            severity: message.severity.as_str(),
            fields: &message.fields,
            links: &message.links,
            mentions: &message.mentions,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Severity;

    #[test]
    fn bytes_are_those_of_the_sorted_json_value() {
        let m = Message {
            id: "id-1".into(),
            title: None,
            text: "hi \"there\"".into(),
            severity: Severity::Warning,
            fields: vec![EventField { name: "a".into(), value: "b".into() }],
            links: vec![EventLink { text: "t".into(), url: "https://x".into() }],
            source: Some("ns/e".into()),
            created_at: jiff::Timestamp::UNIX_EPOCH,
            mentions: vec![],
        };
        let bytes = serde_json::to_vec(&render(&m, "2026-11-24T09:30:00Z")).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&value).unwrap());
    }
}
