//! A generic webhook: the event as JSON, in the Standard Webhooks shape
//! `{"type", "timestamp", "data"}`.

use serde_json::{Value, json};

use super::Message;

/// The JSON body. `timestamp` is the time of the message (fixed across retries).
pub fn render(message: &Message, timestamp: &str) -> Value {
    json!({
        "type": "kube-notify.notification",
        "timestamp": timestamp,
        "data": {
            "id": message.id,
            "source": message.source,
            "title": message.title,
            "message": message.text,
            "severity": message.severity.as_str(),
            "fields": message.fields,
            "links": message.links,
        }
    })
}
