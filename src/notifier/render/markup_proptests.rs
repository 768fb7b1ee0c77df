//! Property tests of "no user string becomes markup": every user field of a
//! message (title, text, field names and values, link texts and URLs,
//! mention names and ids) is filled with hostile strings built from each
//! service's markup, random Unicode and control characters; the payload of
//! every renderer holds only the markup the message asked for.

use proptest::prelude::*;
use serde_json::Value;

use super::{Message, TRUNCATED, chatwork, markup, slack, teams, webhook};
use crate::crd::{EventField, EventLink, Severity};
use crate::notifier::mentions::{self, Mentioned};

/// Pieces of markup of every service, and characters that end or split it.
const FRAGMENTS: &[&str] = &[
    "[toall]",
    "[To:123]",
    "[info]",
    "[/info]",
    "[title]",
    "[/title]",
    "[code]",
    "[/code]",
    "[hr]",
    "[qt]",
    "[piconname:123]",
    "[picon:1]",
    "[rp aid=1 to=2-3]",
    "[",
    "]",
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0ABC>",
    "<#C0ABC>",
    "<!subteam^S0ABC>",
    "<https://evil.example|click>",
    "<mailto:a@b.c|x>",
    "<at>Jane Doe</at>",
    "<AT>x</AT>",
    "</at>",
    "<",
    ">",
    "|",
    "&",
    "&lt;",
    "&gt;",
    "&amp;",
    "%5B",
    "\u{200B}",
    "\n",
    "\r\n",
    "\t",
    "\0",
    "\u{7f}",
    "\u{1b}[31m",
    "\u{202e}",
    "é",
    "日本",
    "😀",
    " ",
    "*bold*",
    "[Reset password](https://evil.example)",
    "![p](https://evil.example/p.png)",
    "[x][r]",
    "[r]: https://evil.example",
    "[x][]",
    "](",
    "![",
    "(",
    ")",
    "!",
    "_",
    "#",
    "```",
    "`",
    "\\",
    "\"",
];

fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
        2 => any::<char>().prop_map(String::from),
        1 => "\\PC{0,12}",
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

/// A non-empty hostile string (the CRD refuses empty names and link texts).
fn hostile_nonempty() -> impl Strategy<Value = String> {
    hostile().prop_map(|s| if s.is_empty() { "[toall]".to_string() } else { s })
}

/// An http(s) URL (as the CRD accepts them: only the scheme is checked) with hostile parts.
fn hostile_url() -> impl Strategy<Value = String> {
    let host = prop::sample::select(&["a.example", "[::1]:8080", "例え.jp", "a b", "x.example:443", ""][..]);
    (prop::sample::select(&["https://", "http://"][..]), host, hostile())
        .prop_map(|(s, h, rest)| format!("{s}{h}{rest}"))
}

/// A mention's id: none, an id of the service's shape, or a hostile one.
fn mention_id() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("U0JANE".to_string())),
        Just(Some("1003".to_string())),
        Just(Some("jane@corp.example".to_string())),
        hostile().prop_map(Some),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let text = prop_oneof![
        4 => hostile(),
        // Long enough to be cut: the cut must not expose markup either.
        1 => (hostile_nonempty(), 1usize..3000).prop_map(|(s, n)| s.repeat(n)),
    ];
    let fields = prop::collection::vec(
        (hostile_nonempty(), hostile()).prop_map(|(name, value)| EventField { name, value }),
        0..4,
    );
    let links = prop::collection::vec(
        (hostile_nonempty(), hostile_url()).prop_map(|(text, url)| EventLink { text, url }),
        0..4,
    );
    let mentions = prop::collection::vec(
        (hostile(), prop::option::of(hostile_nonempty()), mention_id()).prop_map(|(email, name, id)| Mentioned {
            email,
            name,
            id,
        }),
        0..4,
    );
    (prop::option::of(hostile_nonempty()), text, fields, links, mentions).prop_map(
        |(title, text, fields, links, mentions)| Message {
            id: "m".into(),
            title,
            text,
            severity: Severity::Warning,
            fields,
            links,
            mentions,
            source: Some("ns/e".into()),
            created_at: jiff::Timestamp::UNIX_EPOCH,
        },
    )
}

/// A Markdown link, image or reference definition in `text`: a `]` right
/// before `(`, `[` or `:`.
fn markdown_link(text: &str) -> Option<&str> {
    text.match_indices(']').find_map(|(i, _)| {
        let next = &text[i + 1..];
        next.starts_with(['(', '[', ':']).then(|| &text[i.saturating_sub(30)..(i + 30).min(text.len())])
    })
}

/// Every `open` in `text` is neutralized (followed by a zero-width space) or
/// cut right there by a truncation, once the allowed markup is removed.
fn only_neutralized(text: &str, open: char, allowed: &[String]) -> Result<(), String> {
    let mut rest = text.to_string();
    for a in allowed {
        rest = rest.replacen(a.as_str(), "", 1);
    }
    for (i, _) in rest.match_indices(open) {
        let after = &rest[i + open.len_utf8()..];
        if !(after.starts_with('\u{200B}') || after.starts_with(TRUNCATED)) {
            return Err(format!("markup at {i}: {:?} in {text:?}", &rest[i..(i + 40).min(rest.len())]));
        }
    }
    Ok(())
}

fn chatwork_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// Slack mrkdwn: each `<…>` is a resolved mention or one of the links, and no other `<` or `>` appears.
fn slack_markup_is_asked_for(text: &str, message: &Message) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find(['<', '>']) {
        if rest[start..].starts_with('>') {
            return Err(format!("a stray > in {text:?}"));
        }
        let Some(len) = rest[start..].find('>') else { return Err(format!("an unclosed < in {text:?}")) };
        let inner = &rest[start + 1..start + len];
        let mention = inner.strip_prefix('@').is_some_and(|id| {
            mentions::is_slack_user_id(id) && message.mentions.iter().any(|m| m.id.as_deref() == Some(id))
        });
        let link = inner.split_once('|').is_some_and(|(url, label)| {
            message.links.iter().any(|l| markup::slack_link_url(&l.url) == url) && !label.contains(['<', '|'])
        });
        if !(mention || link) {
            return Err(format!("<{inner}> was not asked for, in {text:?}"));
        }
        rest = &rest[start + len + 1..];
    }
    Ok(())
}

/// Every string of a JSON value.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// A rendered link URL: no markup character, whitespace or control
/// character (but an IPv6 host's brackets); a URL going where the original
/// went when the original was one.
fn url_is_clean(rendered: &str, original: &str) -> Result<(), String> {
    let parsed = url::Url::parse(rendered);
    let after_host = match &parsed {
        Ok(u) if matches!(u.host(), Some(url::Host::Ipv6(_))) => &u[url::Position::AfterPort..],
        _ => rendered,
    };
    if after_host.contains(|c: char| "[]|<>".contains(c) || c.is_whitespace() || c.is_control()) {
        return Err(format!("{rendered:?} has markup or whitespace"));
    }
    if let Ok(before) = url::Url::parse(original) {
        let after = parsed.map_err(|e| format!("{rendered:?} is no URL: {e}"))?;
        if after.host() != before.host() || after.port() != before.port() {
            return Err(format!("{rendered:?} does not go where {original:?} went"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::property_tests::config())]

    #[test]
    fn chatwork_tags_only_where_asked(message in message()) {
        let body = chatwork::render(&message);
        prop_assert!(body.chars().count() <= chatwork::MAX_BODY_CHARS);
        // In the order they appear: the mentions, the block, the rules, the links.
        let mut allowed: Vec<String> = message
            .mentions
            .iter()
            .filter_map(|m| m.id.as_deref().filter(|id| chatwork_id(id)).map(|id| format!("[To:{id}]")))
            .collect();
        allowed.extend(["[info]", "[title]", "[/title]"].map(str::to_string));
        let rules = usize::from(!message.fields.is_empty()) + usize::from(!message.links.is_empty());
        allowed.extend(std::iter::repeat_n("[hr]".to_string(), rules));
        // Checked by url_is_clean below (an IPv6 host keeps its brackets).
        allowed.extend(message.links.iter().map(|l| markup::link_url(&l.url)));
        allowed.push("[/info]".to_string());
        only_neutralized(&body, '[', &allowed).map_err(TestCaseError::fail)?;
        prop_assert_eq!(body.matches("[info]").count(), 1, "{}", body);
        if body.chars().count() < chatwork::MAX_BODY_CHARS {
            prop_assert!(body.ends_with("[/info]") && body.matches("[/info]").count() == 1, "{}", body);
        }
        for l in &message.links {
            url_is_clean(&markup::link_url(&l.url), &l.url).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn slack_mentions_and_links_only_where_asked(message in message()) {
        let payload = slack::render(&message);
        prop_assert!(payload["blocks"].as_array().unwrap().len() <= slack::MAX_BLOCKS);
        let mut mrkdwn: Vec<&str> = vec![payload["text"].as_str().unwrap()];
        for block in payload["blocks"].as_array().unwrap() {
            match block["type"].as_str().unwrap() {
                // plain_text: Slack parses no markup there.
                "header" => prop_assert_eq!(&block["text"]["type"], "plain_text"),
                "section" if block.get("fields").is_some() => {
                    mrkdwn.extend(block["fields"].as_array().unwrap().iter().map(|f| f["text"].as_str().unwrap()))
                }
                "section" => mrkdwn.push(block["text"]["text"].as_str().unwrap()),
                "context" => mrkdwn.extend(block["elements"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap())),
                other => prop_assert!(false, "unexpected block {}", other),
            }
        }
        for text in mrkdwn {
            slack_markup_is_asked_for(text, &message).map_err(TestCaseError::fail)?;
            prop_assert!(text.chars().count() <= slack::MAX_TEXT_CHARS);
        }
        for l in &message.links {
            url_is_clean(&markup::link_url(&l.url), &l.url).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn teams_mentions_only_where_asked_and_no_markdown_links(message in message()) {
        let payload = teams::render(&message);
        // The generated fields and links are small: the text's cut makes it fit.
        prop_assert!(serde_json::to_vec(&payload).unwrap().len() <= teams::MAX_BODY_BYTES);
        let card = &payload["attachments"][0]["content"];
        let resolved: Vec<&Mentioned> = message.mentions.iter().filter(|m| m.id.is_some()).collect();
        let entities = card["msteams"]["entities"].as_array().cloned().unwrap_or_default();
        prop_assert_eq!(entities.len(), resolved.len());
        let allowed: Vec<String> = resolved.iter().map(|m| mentions::teams(m)).collect();
        for (entity, text) in entities.iter().zip(&allowed) {
            prop_assert_eq!(entity["text"].as_str(), Some(text.as_str()));
            only_neutralized(entity["mentioned"]["name"].as_str().unwrap(), '<', &[]).map_err(TestCaseError::fail)?;
        }
        let mut texts: Vec<&str> = strings(&card["body"]);
        if let Some(actions) = card["actions"].as_array() {
            for (action, link) in actions.iter().zip(&message.links) {
                texts.push(action["title"].as_str().unwrap());
                url_is_clean(action["url"].as_str().unwrap(), &link.url).map_err(TestCaseError::fail)?;
            }
        }
        // The mentions' `<at>…</at>` are allowed once, in the mention line only.
        let line = mentions::line(&message.mentions, " ", mentions::teams);
        for text in &texts {
            let allowed_here = if line.as_deref() == Some(*text) { allowed.as_slice() } else { &[] };
            only_neutralized(text, '<', allowed_here).map_err(TestCaseError::fail)?;
        }
        // No Markdown link or image from user text, anywhere in the card.
        for entity in &entities {
            texts.push(entity["text"].as_str().unwrap());
            texts.push(entity["mentioned"]["name"].as_str().unwrap());
        }
        for text in texts {
            only_neutralized(text, ']', &[]).map_err(TestCaseError::fail)?;
            prop_assert!(markdown_link(text).is_none(), "a Markdown link in {:?}", text);
        }
    }

    #[test]
    fn webhook_carries_user_strings_as_data(message in message()) {
        let bytes = serde_json::to_vec(&webhook::render(&message, "2026-11-24T09:30:00Z")).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let data = &v["data"];
        prop_assert_eq!(data["message"].as_str(), Some(message.text.as_str()));
        prop_assert_eq!(data["title"].as_str(), message.title.as_deref());
        let fields: Vec<EventField> = serde_json::from_value(data["fields"].clone()).unwrap();
        prop_assert_eq!(fields, message.fields.clone());
        let links: Vec<EventLink> = serde_json::from_value(data["links"].clone()).unwrap();
        prop_assert_eq!(links, message.links.clone());
    }

    #[test]
    fn link_urls_keep_their_destination(url in hostile_url()) {
        url_is_clean(&markup::link_url(&url), &url).map_err(TestCaseError::fail)?;
        url_is_clean(&markup::slack_link_url(&url).replace("&amp;", "&"), &url).map_err(TestCaseError::fail)?;
    }
}
