//! The one place that turns credentials into safe text.
//!
//! Webhook URLs, tokens and signing secrets never reach logs, status,
//! Kubernetes Events or error messages. Values that hold them are wrapped in
//! [`Credential`], whose `Debug` and `Display` print `***`; text that may
//! contain them (a service's error body, a transport error) goes through
//! [`scrub`] before it leaves the notifier.

use std::fmt;

use url::Url;

/// A secret string (a URL with a secret in it, a token, a signing key).
/// Formatting it never shows the value; [`Credential::expose`] does, for the
/// one place that needs it (building the request).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub fn new(value: impl Into<String>) -> Self {
        Credential(value.into())
    }

    /// The secret value itself. Use only to build a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(***)")
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A webhook URL with a secret in it, parsed once (when the notifier is
/// built) and sent as is. Formats as `***`, like [`Credential`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    raw: Credential,
    url: Url,
}

impl SecretUrl {
    /// `raw` as the Secret holds it, and `url`, what it parsed to.
    pub fn new(raw: Credential, url: Url) -> Self {
        SecretUrl { raw, url }
    }

    /// The URL to send to. Use only to build a request.
    pub fn expose(&self) -> &Url {
        &self.url
    }

    /// Every form of the secret a text may quote (the Secret's value, the
    /// parsed URL), for [`scrub`].
    pub fn forms(&self) -> [&str; 2] {
        [self.raw.expose(), self.url.as_str()]
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretUrl(***)")
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL safe to show: scheme, host and port, with the path and query (where
/// webhook secrets live) replaced by `***`. Slack webhooks keep their
/// documented shape `https://hooks.slack.com/services/T…/B…/***`.
pub fn redact_url(raw: &str) -> String {
    let Ok(url) = Url::parse(raw) else {
        return "<unparseable URL>".to_string();
    };
    let origin = url.origin().ascii_serialization();
    if url.path().starts_with("/services/") {
        return format!("{origin}/services/T…/B…/***");
    }
    if url.path() == "/" && url.query().is_none() {
        return origin;
    }
    format!("{origin}/***")
}

/// Replace every occurrence of each secret (and of the secret's URL-encoded
/// and path-segment forms) in `text` by `***`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "***");
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        if encoded != *secret {
            out = out.replace(&encoded, "***");
        }
        // A URL's secret parts may show up on their own (e.g. a path segment or
        // a `sig` query value quoted by a service).
        if let Ok(url) = Url::parse(secret) {
            for segment in url.path_segments().into_iter().flatten() {
                if segment.len() >= 8 {
                    out = out.replace(segment, "***");
                }
            }
            for (_, value) in url.query_pairs() {
                if value.len() >= 8 {
                    out = out.replace(value.as_ref(), "***");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_never_formats_its_value() {
        let c = Credential::new("xoxb-123-secret");
        assert_eq!(format!("{c}"), "***");
        assert_eq!(format!("{c:?}"), "Credential(***)");
        assert_eq!(c.expose(), "xoxb-123-secret");
    }

    #[test]
    fn secret_url_never_formats_its_value() {
        let raw = " https://Example.com/hook/abcdef123456 ";
        let u = SecretUrl::new(Credential::new(raw), Url::parse(raw.trim()).unwrap());
        assert_eq!(format!("{u}"), "***");
        assert_eq!(format!("{u:?}"), "SecretUrl(***)");
        assert_eq!(u.expose().as_str(), "https://example.com/hook/abcdef123456");
        assert_eq!(u.forms(), [raw, "https://example.com/hook/abcdef123456"]);
    }

    #[test]
    fn slack_webhook_keeps_its_documented_shape() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"),
            "https://hooks.slack.com/services/T…/B…/***"
        );
    }

    #[test]
    fn other_urls_keep_only_their_origin() {
        let teams = "https://prod-01.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=SIGSIGSIG";
        let red = redact_url(teams);
        assert_eq!(red, "https://prod-01.westeurope.logic.azure.com/***");
        assert!(!red.contains("SIG"));
        assert_eq!(redact_url("not a url"), "<unparseable URL>");
    }

    #[test]
    fn scrub_removes_secrets_and_their_parts() {
        let url = "https://example.com/hook/abcdef123456?sig=topsecretsig";
        let text = format!("error sending to {url}: sig topsecretsig rejected; path abcdef123456");
        let out = scrub(&text, &[url]);
        assert!(!out.contains("topsecretsig"), "{out}");
        assert!(!out.contains("abcdef123456"), "{out}");
        let out = scrub("token xoxb-1-2-3 invalid", &["xoxb-1-2-3"]);
        assert_eq!(out, "token *** invalid");
    }
}
