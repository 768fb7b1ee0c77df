//! The one home of "user text never becomes markup": what each service
//! needs done to text a user wrote before it goes into a payload. Used by
//! the renderers and by mention rendering alike.

/// Slack: escape `&`, `<` and `>` as Slack requires in user-supplied text
/// (so no `<!here>`, `<@U…>` or link appears that the event did not ask for).
pub fn escape_slack(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Chatwork has no escape for its tags: a zero-width space after each `[`
/// keeps user text such as `[toall]` or `[/info]` from acting as a tag.
pub fn neutralize_chatwork(text: &str) -> String {
    text.replace('[', "[\u{200B}")
}

/// Teams: a zero-width space after each `<` keeps user text such as
/// `<at>Name</at>` from becoming a mention (Teams matches an entity's
/// `<at>…</at>` text in the card), an HTML tag or an autolink (`<https://…>`),
/// and [`break_markdown_links`] keeps it from forming a Markdown link or
/// image; it reads the same.
pub fn neutralize_teams(text: &str) -> String {
    break_markdown_links(&text.replace('<', "<\u{200B}"))
}

/// A zero-width space after each `]`: Markdown (Adaptive Cards' subset and
/// CommonMark alike) forms a link or an image only from `](` (inline,
/// `[Reset password](https://evil.example)`, `![](…)`), `][` (a reference) or
/// `]:` (a reference's definition), the `]` right before it; with the space
/// between, `[text](url)` stays text and reads the same.
pub fn break_markdown_links(text: &str) -> String {
    text.replace(']', "]\u{200B}")
}

/// A link URL that stays usable and can form no markup on any service: the
/// URL as the WHATWG parser normalizes it (host in punycode, spaces and
/// non-ASCII percent-encoded, tabs and newlines removed), then `[`, `]`, `|`,
/// `<` and `>` percent-encoded after the host (an IPv6 host keeps its
/// brackets; the parser refuses them in other hosts). A URL that does not parse is percent-encoded
/// byte by byte outside the characters URLs are made of.
pub fn link_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let after_host = &parsed[url::Position::AfterPort..];
            let authority = &parsed[..url::Position::AfterPort];
            format!("{authority}{}", encode_markup(after_host))
        }
        Err(_) => encode_markup(url),
    }
}

/// Slack: a [`link_url`] with `&` written `&amp;`, as Slack reads URLs in `<url|text>`.
pub fn slack_link_url(url: &str) -> String {
    link_url(url).replace('&', "&amp;")
}

/// Percent-encode every byte outside printable ASCII, and the characters
/// that are markup on some service (`[`, `]`, `|`, `<`, `>`).
fn encode_markup(text: &str) -> String {
    let encode = |b: u8| !b.is_ascii_graphic() || b"[]|<>".contains(&b);
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if encode(b) {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_urls_stay_usable_without_markup() {
        assert_eq!(link_url("https://a.example/[toall][/info]"), "https://a.example/%5Btoall%5D%5B/info%5D");
        assert_eq!(link_url("https://ci.example/run?id=1&x=2#top"), "https://ci.example/run?id=1&x=2#top");
        assert_eq!(link_url("https://[::1]:8080/a|b"), "https://[::1]:8080/a%7Cb");
        assert_eq!(link_url("https://例え.jp/パス"), "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9");
        assert_eq!(link_url("https://a b/<x>"), "https://a%20b/%3Cx%3E", "not a URL: encoded as is");
        assert_eq!(link_url("https://x/\n[toall]"), "https://x/%5Btoall%5D", "newlines are dropped");
        assert_eq!(slack_link_url("https://x/?a=1&b=2"), "https://x/?a=1&amp;b=2");
    }

    #[test]
    fn teams_text_forms_no_link_image_or_tag() {
        let z = '\u{200B}';
        assert_eq!(
            neutralize_teams("[Reset password](https://evil.example)"),
            format!("[Reset password]{z}(https://evil.example)")
        );
        assert_eq!(
            neutralize_teams("![x](https://evil.example/a.png)"),
            format!("![x]{z}(https://evil.example/a.png)")
        );
        assert_eq!(
            neutralize_teams("[a][r]\n[r]: https://evil.example"),
            format!("[a]{z}[r]{z}\n[r]{z}: https://evil.example")
        );
        assert_eq!(neutralize_teams("<https://evil.example>"), format!("<{z}https://evil.example>"));
        assert_eq!(neutralize_teams("*bold* plain"), "*bold* plain");
    }
}
