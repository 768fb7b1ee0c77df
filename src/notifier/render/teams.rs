//! Teams Workflows: the message envelope with an Adaptive Card (1.4): the
//! title, the mentions (`<at>Name</at>` with their `msteams.entities`), the
//! message, a FactSet for the fields, OpenUrl actions for links, under 28 KB.
//! User text is [`neutralize`]d (no `<at>` but the resolved mentions', no
//! Markdown link or image); link URLs are [`link_url`]s.

use serde_json::{Value, json};

use super::markup::{link_url, neutralize_teams as neutralize};
use super::{Message, severity_emoji, truncate_chars};
use crate::crd::Severity;
use crate::notifier::mentions;

/// Teams refuses cards of about 28 KB; stay under with room for the envelope.
pub const MAX_BODY_BYTES: usize = 27 * 1024;

fn color(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "Accent",
        Severity::Success => "Good",
        Severity::Warning => "Warning",
        Severity::Error => "Attention",
    }
}

fn envelope(message: &Message, text: &str) -> Value {
    let emoji = severity_emoji(message.severity);
    let heading = match &message.title {
        Some(t) => format!("{emoji} {}", neutralize(t)),
        None => format!("{emoji} {}", message.severity.as_str()),
    };
    let mut body = vec![
        json!({"type": "TextBlock", "text": heading, "weight": "Bolder", "size": "Medium", "wrap": true, "color": color(message.severity)}),
    ];
    if let Some(line) = mentions::line(&message.mentions, " ", mentions::teams) {
        body.push(json!({"type": "TextBlock", "text": line, "wrap": true}));
    }
    body.push(json!({"type": "TextBlock", "text": neutralize(text), "wrap": true}));
    if !message.fields.is_empty() {
        let facts: Vec<Value> = message
            .fields
            .iter()
            .map(|f| json!({"title": neutralize(&f.name), "value": neutralize(&f.value)}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    let mut msteams = json!({"width": "Full"});
    let entities = mentions::teams_entities(&message.mentions);
    if !entities.is_empty() {
        msteams["entities"] = Value::Array(entities);
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": msteams,
    });
    if !message.links.is_empty() {
        let actions: Vec<Value> = message
            .links
            .iter()
            .map(|l| json!({"type": "Action.OpenUrl", "title": neutralize(&l.text), "url": link_url(&l.url)}))
            .collect();
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}],
    })
}

/// The request body; the message text is cut (with a marker) to stay under
/// the size limit: the longest cut that fits, measured as serialized.
pub fn render(message: &Message) -> Value {
    let fits = |card: &Value| serde_json::to_vec(card).is_ok_and(|b| b.len() <= MAX_BODY_BYTES);
    let full = envelope(message, &message.text);
    if fits(&full) {
        return full;
    }
    // Binary search over the kept characters: `fit` fits (or is 0), `too_long` does not.
    let (mut fit, mut too_long) = (0, message.text.chars().count());
    while too_long - fit > 1 {
        let mid = fit + (too_long - fit) / 2;
        if fits(&envelope(message, &truncate_chars(&message.text, mid))) {
            fit = mid;
        } else {
            too_long = mid;
        }
    }
    envelope(message, &truncate_chars(&message.text, fit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifier::render::TRUNCATED;

    #[test]
    fn user_text_makes_no_mention() {
        let m = Message {
            id: "1".into(),
            title: Some("<at>Jane</at>".into()),
            text: "hi <at>Jane</at>".into(),
            severity: Severity::Info,
            fields: vec![crate::crd::EventField { name: "<at>a</at>".into(), value: "<at>b</at>".into() }],
            links: vec![crate::crd::EventLink { text: "<at>c</at>".into(), url: "https://x.example/<at>".into() }],
            source: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            mentions: vec![],
        };
        let v = render(&m);
        let json = serde_json::to_string(&v).unwrap();
        assert!(!json.contains("<at>") && !json.contains("</at>"), "{json}");
        assert!(v["attachments"][0]["content"]["msteams"].get("entities").is_none());
        assert_eq!(v["attachments"][0]["content"]["actions"][0]["url"], "https://x.example/%3Cat%3E");
    }

    /// `[Reset password](https://evil.example)` in any user string stays
    /// text: no `](`, `][` or `]:` is left in the card.
    #[test]
    fn user_text_makes_no_link_or_image() {
        let evil =
            "[Reset password](https://evil.example) ![p](https://evil.example/p.png) [x][r] [r]: https://evil.example";
        let m = Message {
            id: "1".into(),
            title: Some(evil.into()),
            text: evil.into(),
            severity: Severity::Info,
            fields: vec![crate::crd::EventField { name: evil.into(), value: evil.into() }],
            links: vec![crate::crd::EventLink { text: evil.into(), url: "https://x.example/".into() }],
            source: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            mentions: vec![
                mentions::Mentioned { email: "a@x.example".into(), name: Some(evil.into()), id: Some("29:1".into()) },
                mentions::Mentioned { email: "b@x.example".into(), name: Some(evil.into()), id: None },
            ],
        };
        let json = serde_json::to_string(&render(&m)).unwrap();
        for link in ["](", "][", "]:"] {
            assert!(!json.contains(link), "{link} in {json}");
        }
        assert!(json.contains("[Reset password]\u{200B}(https://evil.example)"), "the text still reads the same");
    }

    #[test]
    fn large_cards_are_cut_under_the_limit() {
        let m = Message {
            id: "1".into(),
            title: None,
            text: "é".repeat(40_000),
            severity: Severity::Error,
            fields: vec![],
            links: vec![],
            source: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            mentions: vec![],
        };
        let v = render(&m);
        assert!(serde_json::to_vec(&v).unwrap().len() <= MAX_BODY_BYTES);
        let text = v["attachments"][0]["content"]["body"].as_array().unwrap().last().unwrap()["text"].as_str().unwrap();
        assert!(text.ends_with(TRUNCATED));
        // The most that fits is kept (é is two bytes): not far from the limit.
        assert!(text.chars().count() > (MAX_BODY_BYTES - 1024) / 2, "{}", text.chars().count());
    }
}
