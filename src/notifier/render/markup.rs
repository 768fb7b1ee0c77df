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
