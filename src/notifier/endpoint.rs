//! Which URLs an integration may send to: the service's official hosts, or a
//! prefix the operator was started with (`--allow-endpoint`, for self-hosted
//! endpoints and tests). Pure functions.

use url::Url;

use super::classify::Failure;

pub const INVALID_URL: &str = "InvalidURL";
pub const ENDPOINT_NOT_ALLOWED: &str = "EndpointNotAllowed";
pub const RETIRED_ENDPOINT: &str = "RetiredEndpoint";

/// Prefixes given with `--allow-endpoint`, normalised so that
/// `http://127.0.0.1:80` cannot match `http://127.0.0.1:8080/…`.
#[derive(Clone, Debug, Default)]
pub struct EndpointPolicy {
    prefixes: Vec<String>,
}

impl EndpointPolicy {
    pub fn new(prefixes: &[String]) -> Result<Self, String> {
        let prefixes = prefixes
            .iter()
            .map(|p| {
                Url::parse(p).map(|u| u.to_string()).map_err(|e| format!("--allow-endpoint {p:?} is not a URL: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(EndpointPolicy { prefixes })
    }

    /// These prefixes and `urls` (each a prefix too).
    pub fn also_allowing<'a>(mut self, urls: impl IntoIterator<Item = &'a Url>) -> Self {
        self.prefixes.extend(urls.into_iter().map(Url::to_string));
        self
    }

    /// Whether `url` starts with one of the allowed prefixes, at a path
    /// boundary: `https://h/slack` allows `https://h/slack/x`, not `https://h/slackevil`.
    pub fn allows(&self, url: &Url) -> bool {
        let s = url.as_str();
        self.prefixes.iter().any(|p| {
            s.strip_prefix(p.as_str())
                .is_some_and(|rest| p.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#']))
        })
    }
}

/// Parse a URL from a Secret, naming the key in the error (never the value).
/// Control characters are refused rather than dropped (a URL parser strips
/// tabs and newlines, which would send to another URL than the one written).
pub fn parse_url(raw: &str, key: &str) -> Result<Url, Failure> {
    if raw.trim().chars().any(char::is_control) {
        return Err(Failure::new(
            INVALID_URL,
            format!("the Secret's {key:?} holds control characters (a line break?)"),
        ));
    }
    let url = Url::parse(raw.trim())
        .map_err(|e| Failure::new(INVALID_URL, format!("the Secret's {key:?} is not a valid URL ({e})")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(Failure::new(INVALID_URL, format!("the Secret's {key:?} must be an https URL")));
    }
    if url.host_str().is_none() {
        return Err(Failure::new(INVALID_URL, format!("the Secret's {key:?} has no host")));
    }
    Ok(url)
}

fn not_allowed(what: &str, official: &str) -> Failure {
    Failure::new(
        ENDPOINT_NOT_ALLOWED,
        format!("{what} must be on {official}; other endpoints need the operator flag --allow-endpoint"),
    )
}

/// A Slack incoming webhook: `https://hooks.slack.com/services/T…/B…/<secret>`.
pub fn check_slack_webhook(url: &Url, policy: &EndpointPolicy) -> Result<(), Failure> {
    let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let shaped = segments.len() == 4
        && segments[0] == "services"
        && segments[1].starts_with('T')
        && segments[2].starts_with('B')
        && !segments[3].is_empty()
        && segments[1..].iter().all(|s| s.chars().all(|c| c.is_ascii_alphanumeric()));
    if !shaped {
        return Err(Failure::new(
            INVALID_URL,
            "a Slack webhook URL looks like https://hooks.slack.com/services/T…/B…/…",
        ));
    }
    if is_slack_webhook_host(url) || policy.allows(url) {
        Ok(())
    } else {
        Err(not_allowed("a Slack webhook", "https://hooks.slack.com"))
    }
}

fn is_slack_webhook_host(url: &Url) -> bool {
    url.scheme() == "https" && url.host_str().is_some_and(|h| h.eq_ignore_ascii_case("hooks.slack.com"))
}

fn is_teams_workflow_host(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    url.scheme() == "https"
        && (host.ends_with(".logic.azure.com") || host.ends_with(".environment.api.powerplatform.com"))
}

/// Whether `url` is on a service's official webhook host (Slack's
/// `hooks.slack.com`, Teams Workflows' Logic Apps and Power Platform hosts),
/// over https: names whose addresses the services, not an integration's
/// author, decide.
pub fn is_service_webhook_host(url: &Url) -> bool {
    is_slack_webhook_host(url) || is_teams_workflow_host(url)
}

/// A Teams Workflows URL (Power Automate / Logic Apps) with its `sig`; a
/// retired Office 365 connector URL is refused with a pointer to Workflows.
pub fn check_teams_workflow(url: &Url, policy: &EndpointPolicy) -> Result<(), Failure> {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let path = url.path();
    let retired = (host.ends_with(".webhook.office.com") && path.starts_with("/webhookb2/"))
        || (host == "outlook.office.com" && path.starts_with("/webhook/"))
        || (host == "outlook.office365.com" && path.starts_with("/webhook/"));
    if retired {
        return Err(Failure::new(
            RETIRED_ENDPOINT,
            "Office 365 connector webhooks were retired and no longer deliver; create a Workflows webhook \
             (\"When a Teams webhook request is received\") in Teams and put its URL in the Secret",
        ));
    }
    if !(path.contains("/workflows/") && path.ends_with("/triggers/manual/paths/invoke")) {
        return Err(Failure::new(
            INVALID_URL,
            "a Teams Workflows URL looks like https://….logic.azure.com:443/workflows/<id>/triggers/manual/paths/invoke?…&sig=…",
        ));
    }
    if !url.query_pairs().any(|(k, v)| k == "sig" && !v.is_empty()) {
        return Err(Failure::new(INVALID_URL, "the Teams Workflows URL has no sig parameter; copy the whole URL"));
    }
    if is_teams_workflow_host(url) || policy.allows(url) {
        Ok(())
    } else {
        Err(not_allowed("a Teams Workflows URL", "*.logic.azure.com or *.environment.api.powerplatform.com"))
    }
}

/// Whether a connection to `ip` would reach this machine, a private or
/// shared (CGNAT) network, a link-local address (cloud metadata endpoints) or
/// no single host: loopback, 10/8, 172.16/12, 192.168/16, 100.64/10,
/// 169.254/16, 0/8, 192.0.0/24 (IETF protocol assignments), 198.18/15
/// (benchmarking, used inside networks), 240/4 (reserved, broadcast
/// included) and multicast; for IPv6 ::1, ::, fc00::/7, fe80::/10, fec0::/10
/// (site-local), ff00::/8, the local-use NAT64 prefix 64:ff9b:1::/48, and the
/// IPv4 forms that carry an IPv4 address: IPv4-mapped, IPv4-compatible, NAT64
/// (64:ff9b::/96) and 6to4 (2002::/16), internal when the IPv4 they carry is.
pub fn is_internal_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => {
            let [a, b, c, _] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_multicast()
                || a == 0
                || (a == 100 && (b & 0xc0) == 64)
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b & 0xfe) == 18)
                || (a & 0xf0) == 240
        }
        std::net::IpAddr::V6(ip) => {
            let s = ip.segments();
            let v4 = |hi: u16, lo: u16| std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
            let compatible = s[..6] == [0; 6];
            let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            let local_nat64 = s[..3] == [0x64, 0xff9b, 1];
            let six_to_four = s[0] == 0x2002;
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || local_nat64
                || ((mapped || compatible || nat64) && is_internal_ip(v4(s[6], s[7]).into()))
                || (six_to_four && is_internal_ip(v4(s[1], s[2]).into()))
        }
    }
}

/// Whether a host name names this machine or something inside the cluster or
/// the cloud network: `localhost`, a single label (completed by the resolver's
/// search domains: an in-cluster Service), `kubernetes.default`, or a name
/// under `.localhost`, `.svc`, `.cluster.local`, `.local` or `.internal`
/// (`metadata.google.internal`).
pub fn is_internal_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let suffixes = [".localhost", ".svc", ".cluster.local", ".local", ".internal"];
    host == "localhost"
        || !host.contains('.')
        || host == "kubernetes.default"
        || suffixes.iter().any(|s| host.ends_with(s))
}

/// Whether the URL names an internal address ([`is_internal_ip`]) or name
/// ([`is_internal_name`]) literally.
fn is_internal_literal(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_internal_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => is_internal_ip(ip.into()),
        Some(url::Host::Domain(d)) => is_internal_name(d),
        None => true,
    }
}

/// A generic webhook: an https URL that is not an internal address, or an
/// allowed prefix (the way to reach self-hosted and in-cluster endpoints).
pub fn check_generic_webhook(url: &Url, policy: &EndpointPolicy) -> Result<(), Failure> {
    if policy.allows(url) {
        return Ok(());
    }
    if url.scheme() != "https" {
        return Err(not_allowed("a webhook URL", "https"));
    }
    if is_internal_literal(url) {
        return Err(Failure::new(
            ENDPOINT_NOT_ALLOWED,
            "a webhook URL on a loopback, private, link-local or in-cluster address needs the operator flag --allow-endpoint",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn prefixes_are_normalised() {
        let p = EndpointPolicy::new(&["http://127.0.0.1:80".into(), "http://127.0.0.1:9000/hooks".into()]).unwrap();
        assert!(p.allows(&url("http://127.0.0.1/x")));
        assert!(!p.allows(&url("http://127.0.0.1:8080/x")));
        assert!(p.allows(&url("http://127.0.0.1:9000/hooks/a")));
        assert!(!p.allows(&url("http://127.0.0.1:9000/hooksevil/a")), "prefixes end at a path boundary");
        assert!(EndpointPolicy::new(&["not a url".into()]).is_err());
    }

    #[test]
    fn slack_webhook_shape_and_host() {
        let none = EndpointPolicy::default();
        assert!(check_slack_webhook(&url("https://hooks.slack.com/services/T1/B2/abc"), &none).is_ok());
        let e = check_slack_webhook(&url("https://hooks.slack.com/services/T1/abc"), &none).unwrap_err();
        assert_eq!(e.reason, INVALID_URL);
        let e = check_slack_webhook(&url("https://evil.example/services/T1/B2/abc"), &none).unwrap_err();
        assert_eq!(e.reason, ENDPOINT_NOT_ALLOWED);
        let e = check_slack_webhook(&url("http://hooks.slack.com/services/T1/B2/abc"), &none).unwrap_err();
        assert_eq!(e.reason, ENDPOINT_NOT_ALLOWED);
    }

    #[test]
    fn teams_retired_and_workflows() {
        let none = EndpointPolicy::default();
        let e =
            check_teams_workflow(&url("https://contoso.webhook.office.com/webhookb2/abc/IncomingWebhook/x/y"), &none)
                .unwrap_err();
        assert_eq!(e.reason, RETIRED_ENDPOINT);
        assert!(e.message.contains("Workflows"));
        let ok = "https://prod-01.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=x&sv=1.0&sig=s";
        assert!(check_teams_workflow(&url(ok), &none).is_ok());
        let pp = "https://default1.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s";
        assert!(check_teams_workflow(&url(pp), &none).is_ok());
        let nosig = ok.replace("&sig=s", "");
        assert_eq!(check_teams_workflow(&url(&nosig), &none).unwrap_err().reason, INVALID_URL);
    }

    #[test]
    fn generic_webhook_needs_https_or_prefix() {
        let none = EndpointPolicy::default();
        assert!(check_generic_webhook(&url("https://example.com/x"), &none).is_ok());
        assert_eq!(
            check_generic_webhook(&url("http://example.com/x"), &none).unwrap_err().reason,
            ENDPOINT_NOT_ALLOWED
        );
        for internal in [
            "https://10.0.0.1/h",
            "https://169.254.169.254/latest",
            "https://localhost/h",
            "https://[::1]/h",
            "https://api.default.svc/h",
            "https://x.ns.svc.cluster.local/h",
            "https://[::ffff:10.0.0.1]/h",
            "https://[::ffff:a9fe:a9fe]/latest",
            "https://100.64.0.1/h",
            "https://kubernetes.default/api",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://my-service/h",
        ] {
            assert_eq!(
                check_generic_webhook(&url(internal), &none).unwrap_err().reason,
                ENDPOINT_NOT_ALLOWED,
                "{internal}"
            );
        }
        assert!(parse_url("ftp://x/y", "webhookUrl").is_err());
        assert!(parse_url("::", "webhookUrl").is_err());
    }
}
