//! Chatwork notation: `[info][title]…[/title]…[/info]` with the fields and
//! links, at most 65,535 characters. No user string forms a tag: text is
//! [`neutralize`]d, link URLs are [`link_url`]s (`[`/`]` percent-encoded). Mentions (`[To:<account id>] Name`, or
//! the name) come first, one per line, as Chatwork users write them.

use super::{Message, severity_emoji, truncate_chars};
use crate::notifier::mentions;

pub const MAX_BODY_CHARS: usize = 65_535;

use super::markup::link_url;
pub use super::markup::neutralize_chatwork as neutralize;

/// The message `body` (form field) for `POST /rooms/{id}/messages`.
pub fn render(message: &Message) -> String {
    let emoji = severity_emoji(message.severity);
    let title = match &message.title {
        Some(t) => format!("{emoji} {}", neutralize(t)),
        None => format!("{emoji} {}", message.severity.as_str()),
    };
    let mut tail = String::new();
    if !message.fields.is_empty() {
        tail.push_str("\n[hr]");
        let lines: Vec<String> =
            message.fields.iter().map(|f| format!("{}: {}", neutralize(&f.name), neutralize(&f.value))).collect();
        tail.push_str(&lines.join("\n"));
    }
    if !message.links.is_empty() {
        tail.push_str("\n[hr]");
        let lines: Vec<String> =
            message.links.iter().map(|l| format!("{}: {}", neutralize(&l.text), link_url(&l.url))).collect();
        tail.push_str(&lines.join("\n"));
    }
    let to = mentions::line(&message.mentions, "\n", mentions::chatwork).map(|l| l + "\n").unwrap_or_default();
    let head = format!("{to}[info][title]{title}[/title]");
    let end = "[/info]";
    let fixed = head.chars().count() + tail.chars().count() + end.len();
    if fixed >= MAX_BODY_CHARS {
        // Pathological fields: cut the whole body.
        return truncate_chars(&format!("{head}{}{tail}{end}", neutralize(&message.text)), MAX_BODY_CHARS);
    }
    let text = truncate_chars(&neutralize(&message.text), MAX_BODY_CHARS - fixed);
    format!("{head}{text}{tail}{end}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EventLink, Severity};
    use crate::notifier::render::TRUNCATED;

    #[test]
    fn info_block_with_links_and_limit() {
        let m = Message {
            id: "1".into(),
            title: Some("Backup".into()),
            text: "done".into(),
            severity: Severity::Success,
            fields: vec![],
            links: vec![EventLink { text: "log".into(), url: "https://example.com/log".into() }],
            source: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            mentions: vec![],
        };
        assert_eq!(render(&m), "[info][title]✅ Backup[/title]done\n[hr]log: https://example.com/log[/info]");
        let sneaky = Message { text: "[toall] hi [/info]".into(), ..m.clone() };
        let body = render(&sneaky);
        assert!(!body.contains("[toall]") && body.matches("[/info]").count() == 1, "{body}");
        let link = EventLink { text: "x".into(), url: "https://a.example/[toall][/info]".into() };
        let hostile_url = Message { links: vec![link], ..m.clone() };
        let body = render(&hostile_url);
        assert!(body.ends_with("x: https://a.example/%5Btoall%5D%5B/info%5D[/info]"), "{body}");
        let long = Message { text: "x".repeat(70_000), ..m };
        let body = render(&long);
        assert_eq!(body.chars().count(), MAX_BODY_CHARS);
        assert!(body.contains(TRUNCATED) && body.ends_with("[/info]"));
    }
}
