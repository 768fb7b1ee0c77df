//! What the command learned, as an [`Outcome`]: an event's status (final,
//! or as it was when the wait ran out), an HTTP error answer, an API error.
//! Pure. The kind always comes from a phase, a reason or an error code,
//! never from a message meant for people.

use std::time::Duration;

use serde_json::Value;

use crate::crd::{Delivery, DeliveryPhase, EventPhase, NotificationEventStatus};
use crate::exit::{Exit, Outcome, attempts};
use crate::notifier::classify::reason as why;
use crate::status::event::reason as plan;

/// The event the command created, and how a person follows it further.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub namespace: String,
    pub name: String,
    /// A command or URL that shows its status (`kubectl get nev -n NS NAME`).
    pub follow: String,
}

impl Created {
    fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `--wait 0`: created, not waited for.
pub fn created(ev: &Created) -> Outcome {
    Outcome::worded(Exit::Delivered, format!("created: {} (not waiting for its delivery: {})", ev.id(), ev.follow))
}

/// The outcome of `status`: final, or, when `waited` is set, what it was
/// when the wait of that long ran out.
pub fn of_event(ev: &Created, status: Option<&NotificationEventStatus>, waited: Option<Duration>) -> Outcome {
    let id = ev.id();
    let Some(status) = status.filter(|s| s.phase.is_some()) else {
        let within = waited.map(|d| format!(" within {}", human(d))).unwrap_or_default();
        return Outcome::new(
            Exit::TimedOut,
            format!("{id} not delivered{within} (no status yet); it may still be delivered: {}", ev.follow),
        );
    };
    let phase = status.phase.expect("filtered");
    let ds = &status.deliveries;
    let per_target = if ds.len() > 1 { ds.iter().map(target_line).collect() } else { Vec::new() };
    let reason = status.reason.clone().unwrap_or_default();
    let message = status.message.clone().unwrap_or_default();
    match phase {
        EventPhase::Delivered => {
            let text = match ds.as_slice() {
                [d] => format!("{id} to {} ({})", d.integration, attempts(d.attempts.into())),
                _ => format!("{id} to {} integrations", ds.len()),
            };
            Outcome::new(Exit::Delivered, text).with_targets(per_target)
        }
        EventPhase::PartiallyDelivered => {
            Outcome::new(Exit::Partial, format!("{id}: {message}")).with_targets(per_target)
        }
        EventPhase::Pending => {
            let waited = waited.map(human).unwrap_or_else(|| "the wait".to_string());
            let Some(d) = ds.iter().find(|d| d.phase == DeliveryPhase::Pending) else {
                // No targets yet: the integration or a match is missing.
                let exit = if reason == plan::INTEGRATION_NOT_FOUND || reason == plan::NO_MATCHING_INTEGRATIONS {
                    Exit::NotFound
                } else {
                    Exit::NotReady
                };
                return Outcome::new(
                    exit,
                    format!("{id} still waits after {waited}: {message} ({reason}); see: {}", ev.follow),
                );
            };
            let d_reason = d.reason.as_deref().unwrap_or(plan::QUEUED);
            let error = d.last_error.as_deref().unwrap_or_default();
            let (exit, text) = if d_reason == plan::QUEUED && d.attempts > 0 {
                (
                    Exit::TimedOut,
                    format!(
                        "{id} still being retried for {} after {waited} ({} so far); it may still be delivered: {}",
                        d.integration,
                        attempts(d.attempts.into()),
                        ev.follow
                    ),
                )
            } else if d_reason == plan::QUEUED {
                (
                    Exit::TimedOut,
                    format!(
                        "{id} still queued for {} after {waited}; it may still be delivered: {}",
                        d.integration, ev.follow
                    ),
                )
            } else if d_reason == plan::INTEGRATION_NOT_FOUND {
                (Exit::NotFound, format!("{id} waits for {}: {error}; see: {}", d.integration, ev.follow))
            } else {
                (
                    Exit::NotReady,
                    format!(
                        "{id} waits for {} ({d_reason}): {error}; it is delivered once the integration is ready, \
                         or fails at the event's deadline: {}",
                        d.integration, ev.follow
                    ),
                )
            };
            Outcome::new(exit, text).with_targets(per_target)
        }
        EventPhase::Failed | EventPhase::Skipped => {
            let Some(d) = ds.iter().find(|d| d.phase != DeliveryPhase::Delivered) else {
                // No targets: the selector, or a deadline passed before any existed.
                let exit = match reason.as_str() {
                    plan::INVALID_SELECTOR | plan::TOO_MANY_TARGETS => Exit::Invalid,
                    plan::EXPIRED => Exit::TimedOut,
                    plan::INTEGRATION_NOT_FOUND | plan::NO_MATCHING_INTEGRATIONS => Exit::NotFound,
                    _ => Exit::Failed,
                };
                return Outcome::new(exit, format!("{id} failed ({reason}): {message}"));
            };
            let exit = class(d);
            let text = if ds.len() == 1 {
                format!("{id} not delivered to {}", detail(d))
            } else {
                format!("{id} not delivered to any of {} integrations", ds.len())
            };
            Outcome::new(exit, text).with_targets(per_target)
        }
    }
}

/// The kind of a delivery that did not succeed, from its phase and reason.
fn class(d: &Delivery) -> Exit {
    let reason = d.reason.as_deref().unwrap_or_default();
    match d.phase {
        DeliveryPhase::Delivered => Exit::Delivered,
        DeliveryPhase::Skipped if reason == plan::INTEGRATION_DISABLED => Exit::Disabled,
        DeliveryPhase::Skipped => Exit::NotReady,
        DeliveryPhase::Pending if reason == plan::QUEUED => Exit::TimedOut,
        DeliveryPhase::Pending if reason == plan::INTEGRATION_NOT_FOUND => Exit::NotFound,
        DeliveryPhase::Pending => Exit::NotReady,
        DeliveryPhase::Failed => of_failure(reason),
    }
}

/// The kind of a failed delivery (an event's, or a test message's) from its reason.
pub fn of_failure(reason: &str) -> Exit {
    match reason {
        why::MESSAGE_REJECTED => Exit::Rejected,
        why::UNAUTHORIZED | why::FORBIDDEN | why::DESTINATION_NOT_FOUND | why::REDIRECTED => Exit::Dead,
        plan::EXPIRED => Exit::TimedOut,
        _ => Exit::Failed,
    }
}

/// `team-slack (Reason after n attempts): last error`.
fn detail(d: &Delivery) -> String {
    let reason = d.reason.as_deref().unwrap_or("Unknown");
    let mut s = match d.phase {
        DeliveryPhase::Failed if d.attempts > 0 => {
            format!("{} ({reason} after {})", d.integration, attempts(d.attempts.into()))
        }
        DeliveryPhase::Skipped if reason == plan::INTEGRATION_DISABLED => d.integration.clone(),
        _ => format!("{} ({reason})", d.integration),
    };
    if let Some(e) = d.last_error.as_deref().filter(|e| !e.is_empty()) {
        s.push_str(": ");
        s.push_str(e);
    }
    s
}

/// One target of a fan-out: `name: delivered (1 attempt)`, `name: dead (…): …`.
fn target_line(d: &Delivery) -> String {
    match d.phase {
        DeliveryPhase::Delivered => format!("{}: delivered ({})", d.integration, attempts(d.attempts.into())),
        _ => {
            let reason = d.reason.as_deref().unwrap_or("Unknown");
            let mut s = format!("{}: {}", d.integration, class(d).label());
            if d.phase == DeliveryPhase::Failed && d.attempts > 0 {
                s.push_str(&format!(" ({reason} after {})", attempts(d.attempts.into())));
            } else if !(d.phase == DeliveryPhase::Skipped && reason == plan::INTEGRATION_DISABLED) {
                s.push_str(&format!(" ({reason})"));
            }
            if let Some(e) = d.last_error.as_deref().filter(|e| !e.is_empty()) {
                s.push_str(": ");
                s.push_str(e);
            }
            s
        }
    }
}

/// A duration as people write it (`60s` reads `1m`).
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(u64::from(d.subsec_millis() > 0)))).to_string()
}

/// An error answer of the HTTP ingestion routes
/// (`{"error": {"code", "message", "field"?, "reason"?}}`) with its status.
pub fn of_http_error(status: u16, body: &Value) -> Outcome {
    let error = &body["error"];
    let code = error["code"].as_str().unwrap_or_default();
    let message = error["message"].as_str().unwrap_or_default();
    let reason = error["reason"].as_str();
    let field = error["field"].as_str();
    let with_reason = |m: &str| match reason {
        Some(r) => format!("{m} ({r})"),
        None => m.to_string(),
    };
    let exit = match (status, code) {
        (400 | 413 | 422, _) => Exit::Invalid,
        (401 | 403, _) => Exit::Unauthorized,
        (404, _) => Exit::NotFound,
        (409, "integration_disabled") => Exit::Disabled,
        (409, _) => Exit::NotReady,
        (_, "dead") => Exit::Dead,
        (_, "rejected") => Exit::Rejected,
        (_, "exhausted") => Exit::Failed,
        (_, "expired") => Exit::TimedOut,
        _ => Exit::Error,
    };
    let text = match (exit, field) {
        (Exit::Invalid, Some(f)) => invalid_text(f, message),
        _ if message.is_empty() => format!("the endpoint answered {status}"),
        _ => format!("{} (HTTP {status} {code})", with_reason(message)),
    };
    Outcome::new(exit, text)
}

/// `field (--flag): message`: the body field, and the flag that set it.
pub fn invalid_text(field: &str, message: &str) -> String {
    let top = field.split(['.', '[']).next().unwrap_or(field);
    let flag = match top {
        "message" => Some("--message"),
        "title" => Some("--title"),
        "severity" => Some("--severity"),
        "fields" => Some("--field"),
        "links" => Some("--link"),
        "mentions" => Some("--mention"),
        "integration" => Some("--integration"),
        "integrationSelector" => Some("--selector"),
        "wait" => Some("--wait"),
        _ => None,
    };
    match flag {
        Some(flag) => format!("{field} ({flag}): {message}"),
        None => format!("{field}: {message}"),
    }
}

/// A Kubernetes API error answer (its status code, reason and message).
pub fn of_api_status(code: u16, reason: &str, message: &str, what: &str) -> Outcome {
    let exit = match code {
        400 | 422 => Exit::Invalid,
        401 | 403 => Exit::Unauthorized,
        404 => Exit::NotFound,
        _ => Exit::Error,
    };
    Outcome::new(exit, format!("{what}: the Kubernetes API answered {code} {reason}: {message}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;

    fn ev() -> Created {
        Created {
            namespace: "team-a".into(),
            name: "cli-x7k2p".into(),
            follow: "kubectl get nev -n team-a cli-x7k2p".into(),
        }
    }

    fn d(name: &str, phase: DeliveryPhase, reason: &str, attempts: i32, error: Option<&str>) -> Delivery {
        Delivery {
            integration: name.into(),
            phase,
            attempts,
            last_error: error.map(str::to_string),
            reason: Some(reason.into()),
            delivered_at: (phase == DeliveryPhase::Delivered).then(|| Time("2026-12-06T04:00:00Z".parse().unwrap())),
            unresolved_mentions: vec![],
        }
    }

    /// The status `summarize` gives these deliveries (the operator's own rules).
    fn status(deliveries: Vec<Delivery>) -> NotificationEventStatus {
        let mut s = NotificationEventStatus { deliveries, ..Default::default() };
        crate::status::event::summarize(&mut s, None, false, &Time("2026-12-06T04:00:00Z".parse().unwrap()));
        s
    }

    fn no_targets(reason: &'static str, message: &str, expired: bool) -> NotificationEventStatus {
        let mut s = NotificationEventStatus::default();
        crate::status::event::summarize(
            &mut s,
            Some((reason, message)),
            expired,
            &Time("2026-12-06T04:00:00Z".parse().unwrap()),
        );
        s
    }

    /// Every outcome of `send`, from fixed fixtures.
    fn cases() -> Vec<(&'static str, Outcome)> {
        use DeliveryPhase::*;
        let e = ev();
        let minute = Some(Duration::from_secs(60));
        let disabled = "integration \"team-slack\" is disabled (ErrorThreshold): 5 consecutive delivery errors; \
                        fix the destination and change the integration or its Secret to re-enable it";
        vec![
            ("delivered", of_event(&e, Some(&status(vec![d("team-slack", Delivered, "Delivered", 1, None)])), None)),
            (
                "delivered, fan-out",
                of_event(
                    &e,
                    Some(&status(vec![
                        d("team-slack", Delivered, "Delivered", 1, None),
                        d("ops-teams", Delivered, "Delivered", 2, None),
                    ])),
                    None,
                ),
            ),
            ("created, --wait 0", created(&e)),
            (
                "disabled",
                of_event(
                    &e,
                    Some(&status(vec![d("team-slack", Skipped, "IntegrationDisabled", 0, Some(disabled))])),
                    None,
                ),
            ),
            (
                "not ready, --wait ran out",
                of_event(
                    &e,
                    Some(&status(vec![d(
                        "team-slack",
                        Pending,
                        "SecretNotFound",
                        0,
                        Some("integration \"team-slack\" is not ready: Secret \"team-slack\" not found"),
                    )])),
                    minute,
                ),
            ),
            (
                "rejected",
                of_event(
                    &e,
                    Some(&status(vec![d(
                        "team-slack",
                        Failed,
                        "MessageRejected",
                        1,
                        Some("Slack refused the message: invalid_blocks"),
                    )])),
                    None,
                ),
            ),
            (
                "dead",
                of_event(
                    &e,
                    Some(&status(vec![d(
                        "team-slack",
                        Failed,
                        "DestinationNotFound",
                        1,
                        Some("the webhook answered 410 Gone"),
                    )])),
                    None,
                ),
            ),
            (
                "failed after retries",
                of_event(
                    &e,
                    Some(&status(vec![d(
                        "team-slack",
                        Failed,
                        "ServiceUnavailable",
                        5,
                        Some("gave up after retries: the service answered 503"),
                    )])),
                    None,
                ),
            ),
            (
                "timed out, expired",
                of_event(
                    &e,
                    Some(&status(vec![d(
                        "team-slack",
                        Failed,
                        "Expired",
                        0,
                        Some("the event's deadline passed: integration \"team-slack\" is not ready: checking"),
                    )])),
                    None,
                ),
            ),
            ("timed out, no status yet", of_event(&e, None, minute)),
            (
                "timed out, queued",
                of_event(&e, Some(&status(vec![d("team-slack", Pending, "Queued", 0, None)])), minute),
            ),
            (
                "timed out, retrying",
                of_event(
                    &e,
                    Some(&status(vec![d("team-slack", Pending, "Queued", 2, Some("queued for delivery"))])),
                    minute,
                ),
            ),
            (
                "partially delivered",
                of_event(
                    &e,
                    Some(&status(vec![
                        d("team-slack", Delivered, "Delivered", 1, None),
                        d("ops-teams", Failed, "Unauthorized", 1, Some("Teams answered 401: the flow was deleted")),
                        d(
                            "hr-chatwork",
                            Skipped,
                            "IntegrationDisabled",
                            0,
                            Some("integration \"hr-chatwork\" is disabled (Manual): spec.disabled is true"),
                        ),
                    ])),
                    None,
                ),
            ),
            (
                "fan-out, none delivered",
                of_event(
                    &e,
                    Some(&status(vec![
                        d("ops-teams", Failed, "MessageRejected", 1, Some("the card is too large")),
                        d("team-slack", Failed, "DestinationNotFound", 1, Some("channel_not_found")),
                    ])),
                    None,
                ),
            ),
            (
                "not found, waiting for the integration",
                of_event(
                    &e,
                    Some(&status(vec![d(
                        "team-slack",
                        Pending,
                        "IntegrationNotFound",
                        0,
                        Some("integration \"team-slack\" does not exist (yet)"),
                    )])),
                    minute,
                ),
            ),
            (
                "not found, no match",
                of_event(
                    &e,
                    Some(&no_targets(plan::NO_MATCHING_INTEGRATIONS, "no integration matches the selector", false)),
                    minute,
                ),
            ),
            (
                "invalid selector",
                of_event(
                    &e,
                    Some(&no_targets(
                        plan::TOO_MANY_TARGETS,
                        "the selector matches 1200 integrations, at most 1000 are allowed",
                        false,
                    )),
                    None,
                ),
            ),
            (
                "HTTP 400",
                of_http_error(
                    400,
                    &json!({"error": {"code": "invalid_field", "field": "links[0].url", "message": "must be an http:// or https:// URL"}}),
                ),
            ),
            (
                "HTTP 401",
                of_http_error(
                    401,
                    &json!({"error": {"code": "unauthenticated", "message": "no Authorization: Bearer token"}}),
                ),
            ),
            (
                "HTTP 404",
                of_http_error(
                    404,
                    &json!({"error": {"code": "integration_not_found", "message": "no NotificationIntegration \"team-slack\" in namespace \"team-a\""}}),
                ),
            ),
            (
                "HTTP 409",
                of_http_error(
                    409,
                    &json!({"error": {"code": "integration_not_ready", "reason": "SecretNotFound", "message": "the integration is not ready: Secret \"team-slack\" not found"}}),
                ),
            ),
            (
                "HTTP 429",
                of_http_error(
                    429,
                    &json!({"error": {"code": "rate_limited", "message": "too many requests from \"ci\": at most 50 per second"}}),
                ),
            ),
            (
                "API 403",
                of_api_status(
                    403,
                    "Forbidden",
                    "notificationevents.kube-notify.io is forbidden: User \"ci\" cannot create resource \"notificationevents\" in the namespace \"team-a\"",
                    "creating the NotificationEvent",
                ),
            ),
        ]
    }

    #[test]
    fn golden_lines() {
        let text: String = cases()
            .iter()
            .map(|(what, o)| format!("# {what}: exit {}\n{o}\n", o.code()))
            .collect::<Vec<_>>()
            .join("\n");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cli-send.txt");
        if std::env::var_os("KUBE_NOTIFY_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; run KUBE_NOTIFY_UPDATE_GOLDEN=1 cargo test --lib client::", path.display())
        });
        assert_eq!(
            text, expected,
            "the lines of `send` changed; if intended, regenerate the golden file and review the diff"
        );
    }

    #[test]
    fn exit_codes_of_the_cases() {
        let codes: Vec<(&str, u8)> = cases().iter().map(|(w, o)| (*w, o.code())).collect();
        let expected = [
            ("delivered", 0),
            ("delivered, fan-out", 0),
            ("created, --wait 0", 0),
            ("disabled", 4),
            ("not ready, --wait ran out", 5),
            ("rejected", 6),
            ("dead", 7),
            ("failed after retries", 9),
            ("timed out, expired", 8),
            ("timed out, no status yet", 8),
            ("timed out, queued", 8),
            ("timed out, retrying", 8),
            ("partially delivered", 10),
            ("fan-out, none delivered", 6),
            ("not found, waiting for the integration", 3),
            ("not found, no match", 3),
            ("invalid selector", 2),
            ("HTTP 400", 2),
            ("HTTP 401", 11),
            ("HTTP 404", 3),
            ("HTTP 409", 5),
            ("HTTP 429", 1),
            ("API 403", 11),
        ];
        assert_eq!(codes, expected);
    }

    #[test]
    fn a_disabled_answer_over_http() {
        let o = of_http_error(
            409,
            &json!({"error": {"code": "integration_disabled", "reason": "Manual", "message": "off"}}),
        );
        assert_eq!(o.exit, Exit::Disabled);
        for (code, exit) in [
            ("dead", Exit::Dead),
            ("rejected", Exit::Rejected),
            ("exhausted", Exit::Failed),
            ("expired", Exit::TimedOut),
        ] {
            assert_eq!(of_http_error(502, &json!({"error": {"code": code, "message": "m"}})).exit, exit);
        }
        assert_eq!(of_http_error(503, &json!({})).exit, Exit::Error);
        assert_eq!(of_http_error(503, &json!({})).line, "error: the endpoint answered 503");
    }

    #[test]
    fn flags_are_named_with_the_field() {
        assert_eq!(invalid_text("fields[1].name", "must not be empty"), "fields[1].name (--field): must not be empty");
        assert_eq!(
            invalid_text("integrationSelector.matchLabels.a", "x"),
            "integrationSelector.matchLabels.a (--selector): x"
        );
        assert_eq!(invalid_text("other", "x"), "other: x");
    }
}
