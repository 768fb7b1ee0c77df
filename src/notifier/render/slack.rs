//! Slack Block Kit: a header from the title, sections with the message, the
//! fields, a context line with severity and links, and a plain `text`
//! fallback. Mentions (`<@U…>`, or the name) lead both the blocks (a
//! section under the header) and the `text`. User text is escaped in every
//! `mrkdwn` text and the fallback (the header is `plain_text`, which Slack
//! does not parse); limits: 3,000 characters per section, 50
//! blocks, 150 per header, 2,000 per field, 40,000 for `text`.

use serde_json::{Value, json};

use super::{Message, TRUNCATED, severity_emoji, truncate_chars};
use crate::notifier::mentions;

pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_CHARS: usize = 3000;
pub const MAX_HEADER_CHARS: usize = 150;
pub const MAX_FIELD_CHARS: usize = 2000;
pub const MAX_FIELDS_PER_SECTION: usize = 10;
pub const MAX_TEXT_CHARS: usize = 40_000;

pub use super::markup::escape_slack as escape;
use super::markup::slack_link_url;

/// Split text into chunks of at most `max` characters, preferring line breaks.
fn chunks(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut count = 0;
    for line in text.split_inclusive('\n') {
        let len = line.chars().count();
        if count + len > max && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            count = 0;
        }
        if len > max {
            // A single long line: hard split.
            let chars: Vec<char> = line.chars().collect();
            for piece in chars.chunks(max) {
                out.push(piece.iter().collect());
            }
            continue;
        }
        current.push_str(line);
        count += len;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A link in Slack's `<url|text>` form: no `<`, `>` or `|` of the URL or the
/// text can end it early or start another.
fn link(url: &str, text: &str) -> String {
    format!("<{}|{}>", slack_link_url(url), escape(text).replace('|', "¦"))
}

/// The mentions, as many as fit whole in a section (a mention cut in the
/// middle would show its markup), [`TRUNCATED`] after them when some did not.
fn mention_line(message: &Message) -> Option<String> {
    let all = mentions::line(&message.mentions, " ", mentions::slack)?;
    if all.chars().count() <= MAX_SECTION_CHARS {
        return Some(all);
    }
    let room = MAX_SECTION_CHARS - TRUNCATED.chars().count();
    let mut line = String::new();
    for m in &message.mentions {
        let next = if line.is_empty() { mentions::slack(m) } else { format!(" {}", mentions::slack(m)) };
        if line.chars().count() + next.chars().count() > room {
            break;
        }
        line.push_str(&next);
    }
    line.push_str(TRUNCATED);
    Some(line)
}

/// The context line: severity, then the links that fit whole in a section
/// (a link cut in the middle would not be a link), [`TRUNCATED`] after them
/// when some did not.
fn context(message: &Message) -> String {
    let mut context = format!("{} *{}*", severity_emoji(message.severity), message.severity.as_str());
    let room = MAX_SECTION_CHARS - TRUNCATED.chars().count();
    let mut count = context.chars().count();
    for l in &message.links {
        let next = format!(" · {}", link(&l.url, &l.text));
        count += next.chars().count();
        if count > room {
            context.push_str(TRUNCATED);
            break;
        }
        context.push_str(&next);
    }
    context
}

/// The JSON body for a webhook or `chat.postMessage` (without `channel`).
pub fn render(message: &Message) -> Value {
    let emoji = severity_emoji(message.severity);
    let mut blocks: Vec<Value> = Vec::new();
    if let Some(title) = &message.title {
        blocks.push(json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate_chars(&format!("{emoji} {title}"), MAX_HEADER_CHARS), "emoji": true}
        }));
    }
    let mentioned = mention_line(message);
    if let Some(line) = &mentioned {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": line}}));
    }
    // Reserve room for the fields and the context line.
    let field_sections = message.fields.len().div_ceil(MAX_FIELDS_PER_SECTION);
    let reserved = blocks.len() + field_sections + 1;
    let room = MAX_BLOCKS.saturating_sub(reserved).max(1);
    let escaped = escape(&message.text);
    let mut sections = chunks(&escaped, MAX_SECTION_CHARS - TRUNCATED.chars().count());
    if sections.len() > room {
        sections.truncate(room);
        if let Some(last) = sections.last_mut() {
            last.push_str(TRUNCATED);
        }
    }
    for text in sections {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    for group in message.fields.chunks(MAX_FIELDS_PER_SECTION) {
        let fields: Vec<Value> = group
            .iter()
            .map(|f| {
                let text = format!("*{}*\n{}", escape(&f.name), escape(&f.value));
                json!({"type": "mrkdwn", "text": truncate_chars(&text, MAX_FIELD_CHARS)})
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context(message)}]}));

    let mut fallback = match &message.title {
        Some(title) => format!("{emoji} {}: {}", escape(title), escaped),
        None => format!("{emoji} {escaped}"),
    };
    if let Some(line) = mentioned {
        fallback = format!("{line}\n{fallback}");
    }
    json!({"text": truncate_chars(&fallback, MAX_TEXT_CHARS), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EventField, EventLink, Severity};

    fn msg(text: &str) -> Message {
        Message {
            id: "m1".into(),
            title: Some("Deploy <prod> & more".into()),
            text: text.into(),
            severity: Severity::Warning,
            fields: vec![],
            links: vec![],
            source: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            mentions: vec![],
        }
    }

    #[test]
    fn user_text_is_escaped() {
        let v = render(&msg("a < b && c > d"));
        assert_eq!(v["blocks"][1]["text"]["text"], "a &lt; b &amp;&amp; c &gt; d");
        assert!(v["text"].as_str().unwrap().contains("Deploy &lt;prod&gt; &amp; more"));
    }

    #[test]
    fn links_cannot_break_out_of_their_brackets() {
        let mut m = msg("x");
        m.links = vec![EventLink { text: "a|b <!here>".into(), url: "https://x.example/<!channel>|y?a=1&b=2".into() }];
        let v = render(&m);
        let context = v["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["text"].as_str().unwrap();
        assert!(
            context.ends_with(" · <https://x.example/%3C!channel%3E%7Cy?a=1&amp;b=2|a¦b &lt;!here&gt;>"),
            "{context}"
        );
    }

    #[test]
    fn long_messages_fit_the_limits_with_a_marker() {
        let v = render(&msg(&"word ".repeat(40_000)));
        let blocks = v["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= MAX_SECTION_CHARS);
            }
        }
        let last_section = blocks.iter().rev().find(|b| b["type"] == "section").unwrap();
        assert!(last_section["text"]["text"].as_str().unwrap().ends_with(TRUNCATED));
        assert!(v["text"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS);
    }

    #[test]
    fn many_fields_split_into_sections_of_ten() {
        let mut m = msg("x");
        m.fields = (0..25).map(|i| EventField { name: format!("f{i}"), value: "v".into() }).collect();
        let v = render(&m);
        let field_sections: Vec<_> =
            v["blocks"].as_array().unwrap().iter().filter(|b| b.get("fields").is_some()).collect();
        assert_eq!(field_sections.len(), 3);
        assert_eq!(field_sections[0]["fields"].as_array().unwrap().len(), 10);
    }
}
