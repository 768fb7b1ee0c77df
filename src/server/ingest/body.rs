//! Request bodies: JSON in, validated as the NotificationEvent CRD validates
//! its spec (lengths in characters, the severity enum, list limits, link
//! URLs, exactly one target), each error naming the offending field. Pure.
//!
//! `null` counts as absent (the API server prunes nulls of non-nullable
//! fields); unknown fields are refused, as `kubectl create` refuses them
//! (strict field validation).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::{Map, Value};

use super::errors::{ApiError, code};
use crate::crd::event::{
    MAX_EMAIL, MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_MENTION_NAME, MAX_SELECTOR_EXPRESSIONS, MAX_SELECTOR_LABELS,
    MAX_SELECTOR_VALUES,
};
use crate::crd::{EventField, EventLink, IntegrationRef, Mention, NotificationEventSpec, Severity};
use crate::notifier::Message;
use crate::notifier::mentions::Mentioned;

/// The CRD's limits.
pub const MAX_TITLE: usize = 250;
pub const MAX_MESSAGE: usize = 65535;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 150;
pub const MAX_FIELD_VALUE: usize = 2000;
pub const MAX_LINKS: usize = 10;
pub const MAX_LINK_TEXT: usize = 150;
pub const MAX_LINK_URL: usize = 2048;
pub const MAX_MENTIONS: usize = 25;
/// A Kubernetes object name (DNS subdomain).
pub const MAX_NAME: usize = 253;

/// The message itself, shared by both POST routes.
#[derive(Clone, Debug, PartialEq)]
pub struct Content {
    pub title: Option<String>,
    pub message: String,
    pub severity: Severity,
    pub fields: Vec<EventField>,
    pub links: Vec<EventLink>,
    pub mentions: Vec<Mention>,
}

/// Which integrations an event goes to.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Integration(String),
    Selector(LabelSelector),
}

/// `POST …/events`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRequest {
    pub target: Target,
    pub content: Content,
    pub ttl_seconds_after_finished: Option<i64>,
}

impl EventRequest {
    /// The spec of the NotificationEvent to create.
    pub fn spec(&self) -> NotificationEventSpec {
        let (integration_ref, integration_selector) = match &self.target {
            Target::Integration(name) => (Some(IntegrationRef { name: name.clone() }), None),
            Target::Selector(s) => (None, Some(s.clone())),
        };
        NotificationEventSpec {
            integration_ref,
            integration_selector,
            title: self.content.title.clone(),
            message: self.content.message.clone(),
            severity: self.content.severity,
            fields: self.content.fields.clone(),
            links: self.content.links.clone(),
            mentions: self.content.mentions.clone(),
            ttl_seconds_after_finished: self.ttl_seconds_after_finished,
        }
    }
}

impl Content {
    /// The message the engine delivers; its mentions are unresolved until
    /// [`Mentioner::resolve`](crate::notifier::mentions::Mentioner::resolve) resolves them.
    pub fn to_message(&self, id: String, source: Option<String>, created_at: jiff::Timestamp) -> Message {
        Message {
            id,
            title: self.title.clone().filter(|t| !t.trim().is_empty()),
            text: self.message.clone(),
            severity: self.severity,
            fields: self.fields.clone(),
            links: self.links.clone(),
            mentions: self.mentions.iter().map(Mentioned::unresolved).collect(),
            source,
            created_at,
        }
    }
}

/// The body of `POST /v1/namespaces/{ns}/events` (and the sidecar's).
pub fn parse_event(bytes: &[u8]) -> Result<EventRequest, ApiError> {
    let mut obj = object(bytes)?;
    let integration = take(&mut obj, "integration");
    let selector = take(&mut obj, "integrationSelector");
    let ttl = take(&mut obj, "ttlSecondsAfterFinished");
    let content = content(obj, "")?;
    let target = match (integration, selector) {
        (Some(name), None) => Target::Integration(name_string(&name, "integration")?),
        (None, Some(sel)) => Target::Selector(selector_value(&sel, "integrationSelector")?),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "integrationSelector",
                "exactly one of integration or integrationSelector is allowed, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "integration",
                "exactly one of integration (a name) or integrationSelector is required",
            ));
        }
    };
    let ttl_seconds_after_finished = match ttl {
        None => None,
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Some(n),
            _ => return Err(ApiError::invalid("ttlSecondsAfterFinished", "must be an integer of at least 0")),
        },
    };
    Ok(EventRequest { target, content, ttl_seconds_after_finished })
}

/// The body of `POST /v1/namespaces/{ns}/integrations/{name}/send`.
pub fn parse_send(bytes: &[u8]) -> Result<Content, ApiError> {
    let mut obj = object(bytes)?;
    for key in ["integration", "integrationSelector", "ttlSecondsAfterFinished"] {
        if take(&mut obj, key).is_some() {
            return Err(ApiError::invalid(
                key,
                "not allowed on this route: the integration is named in the URL and nothing is stored",
            ));
        }
    }
    content(obj, "")
}

/// The body as a JSON object.
fn object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            code::INVALID_JSON,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(obj) => Ok(obj),
        _ => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            code::INVALID_JSON,
            "the body must be a JSON object",
        )),
    }
}

/// Remove `key`; `null` counts as absent.
fn take(obj: &mut Map<String, Value>, key: &str) -> Option<Value> {
    obj.remove(key).filter(|v| !v.is_null())
}

fn path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

/// Refuse whatever is left in `obj` after the known fields were taken.
fn no_unknown(obj: Map<String, Value>, prefix: &str) -> Result<(), ApiError> {
    match obj.into_iter().find(|(_, v)| !v.is_null()) {
        Some((key, _)) => Err(ApiError::invalid(path(prefix, &key), format!("unknown field {key:?}"))),
        None => Ok(()),
    }
}

/// A string of `min..=max` characters.
fn string(value: &Value, field: &str, min: usize, max: usize) -> Result<String, ApiError> {
    let Value::String(s) = value else { return Err(ApiError::invalid(field, "must be a string")) };
    let n = s.chars().count();
    if n < min {
        return Err(ApiError::invalid(
            field,
            if min == 1 { "must not be empty".to_string() } else { format!("must be at least {min} characters") },
        ));
    }
    if n > max {
        return Err(ApiError::invalid(field, format!("must be at most {max} characters (it has {n})")));
    }
    Ok(s.clone())
}

fn required(obj: &mut Map<String, Value>, key: &str, prefix: &str) -> Result<Value, ApiError> {
    take(obj, key).ok_or_else(|| ApiError::invalid(path(prefix, key), "is required"))
}

fn name_string(value: &Value, field: &str) -> Result<String, ApiError> {
    string(value, field, 1, MAX_NAME)
}

fn content(mut obj: Map<String, Value>, prefix: &str) -> Result<Content, ApiError> {
    let message = string(&required(&mut obj, "message", prefix)?, &path(prefix, "message"), 1, MAX_MESSAGE)?;
    let title = take(&mut obj, "title").map(|v| string(&v, &path(prefix, "title"), 0, MAX_TITLE)).transpose()?;
    let severity = match take(&mut obj, "severity") {
        None => Severity::default(),
        Some(v) => severity(&v, &path(prefix, "severity"))?,
    };
    let fields = match take(&mut obj, "fields") {
        None => Vec::new(),
        Some(v) => list(&v, &path(prefix, "fields"), MAX_FIELDS, field)?,
    };
    let links = match take(&mut obj, "links") {
        None => Vec::new(),
        Some(v) => list(&v, &path(prefix, "links"), MAX_LINKS, link)?,
    };
    let mentions = match take(&mut obj, "mentions") {
        None => Vec::new(),
        Some(v) => list(&v, &path(prefix, "mentions"), MAX_MENTIONS, mention)?,
    };
    no_unknown(obj, prefix)?;
    Ok(Content { title, message, severity, fields, links, mentions })
}

fn severity(value: &Value, field: &str) -> Result<Severity, ApiError> {
    const ALLOWED: &str = "must be one of info, success, warning, error";
    match value.as_str() {
        Some("info") => Ok(Severity::Info),
        Some("success") => Ok(Severity::Success),
        Some("warning") => Ok(Severity::Warning),
        Some("error") => Ok(Severity::Error),
        Some(other) => Err(ApiError::invalid(field, format!("{other:?} is not a severity: {ALLOWED}"))),
        None => Err(ApiError::invalid(field, ALLOWED)),
    }
}

fn list<T>(
    value: &Value,
    field: &str,
    max: usize,
    item: fn(&Value, &str) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let Value::Array(items) = value else { return Err(ApiError::invalid(field, "must be a list")) };
    if items.len() > max {
        return Err(ApiError::invalid(field, format!("must have at most {max} items (it has {})", items.len())));
    }
    items.iter().enumerate().map(|(i, v)| item(v, &format!("{field}[{i}]"))).collect()
}

fn item_object(value: &Value, field: &str) -> Result<Map<String, Value>, ApiError> {
    match value {
        Value::Object(o) => Ok(o.clone()),
        _ => Err(ApiError::invalid(field, "must be an object")),
    }
}

fn field(value: &Value, at: &str) -> Result<EventField, ApiError> {
    let mut obj = item_object(value, at)?;
    let name = string(&required(&mut obj, "name", at)?, &path(at, "name"), 1, MAX_FIELD_NAME)?;
    let value = string(&required(&mut obj, "value", at)?, &path(at, "value"), 0, MAX_FIELD_VALUE)?;
    no_unknown(obj, at)?;
    Ok(EventField { name, value })
}

fn link(value: &Value, at: &str) -> Result<EventLink, ApiError> {
    let mut obj = item_object(value, at)?;
    let text = string(&required(&mut obj, "text", at)?, &path(at, "text"), 1, MAX_LINK_TEXT)?;
    let url_field = path(at, "url");
    let url = string(&required(&mut obj, "url", at)?, &url_field, 1, MAX_LINK_URL)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ApiError::invalid(url_field, "must be an http:// or https:// URL"));
    }
    no_unknown(obj, at)?;
    Ok(EventLink { text, url })
}

fn mention(value: &Value, at: &str) -> Result<Mention, ApiError> {
    let mut obj = item_object(value, at)?;
    let email_field = path(at, "email");
    let email = string(&required(&mut obj, "email", at)?, &email_field, 1, MAX_EMAIL)?;
    if !is_email(&email) {
        return Err(ApiError::invalid(email_field, "must be an email address (name@domain.tld)"));
    }
    let name = take(&mut obj, "name").map(|v| string(&v, &path(at, "name"), 0, MAX_MENTION_NAME)).transpose()?;
    no_unknown(obj, at)?;
    Ok(Mention { email, name })
}

/// Whether `s` has the shape the CRD accepts ([`EMAIL_PATTERN`](crate::crd::event::EMAIL_PATTERN)):
/// no whitespace, one `@` with text before it, and a domain with a dot inside.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    let dot_inside = domain.char_indices().any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len());
    !local.is_empty() && !domain.contains('@') && !s.chars().any(char::is_whitespace) && dot_inside
}

fn selector_value(value: &Value, at: &str) -> Result<LabelSelector, ApiError> {
    let mut obj = item_object(value, at)?;
    let match_labels = match take(&mut obj, "matchLabels") {
        None => None,
        Some(Value::Object(labels)) => {
            if labels.len() > MAX_SELECTOR_LABELS {
                return Err(ApiError::invalid(
                    path(at, "matchLabels"),
                    format!("must have at most {MAX_SELECTOR_LABELS} labels (it has {})", labels.len()),
                ));
            }
            let mut out = BTreeMap::new();
            for (k, v) in labels {
                if k.is_empty() {
                    return Err(ApiError::invalid(format!("{at}.matchLabels"), "a label key must not be empty"));
                }
                if k.chars().count() > MAX_LABEL_KEY {
                    return Err(ApiError::invalid(
                        format!("{at}.matchLabels"),
                        format!("a label key must be at most {MAX_LABEL_KEY} characters"),
                    ));
                }
                let value = string(&v, &format!("{at}.matchLabels.{k}"), 0, MAX_LABEL_VALUE)?;
                out.insert(k, value);
            }
            Some(out)
        }
        Some(_) => return Err(ApiError::invalid(path(at, "matchLabels"), "must be an object of strings")),
    };
    let match_expressions = match take(&mut obj, "matchExpressions") {
        None => None,
        Some(v) => Some(list(&v, &path(at, "matchExpressions"), MAX_SELECTOR_EXPRESSIONS, expression)?),
    };
    no_unknown(obj, at)?;
    Ok(LabelSelector { match_labels, match_expressions })
}

fn expression(value: &Value, at: &str) -> Result<LabelSelectorRequirement, ApiError> {
    let mut obj = item_object(value, at)?;
    let key = string(&required(&mut obj, "key", at)?, &path(at, "key"), 1, MAX_LABEL_KEY)?;
    let operator_field = path(at, "operator");
    let operator = string(&required(&mut obj, "operator", at)?, &operator_field, 1, 32)?;
    let values = match take(&mut obj, "values") {
        None => None,
        Some(Value::Array(items)) if items.len() > MAX_SELECTOR_VALUES => {
            return Err(ApiError::invalid(
                path(at, "values"),
                format!("must have at most {MAX_SELECTOR_VALUES} items (it has {})", items.len()),
            ));
        }
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(_) => string(v, &format!("{at}.values[{i}]"), 0, MAX_LABEL_VALUE),
                    _ => Err(ApiError::invalid(format!("{at}.values[{i}]"), "must be a string")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(ApiError::invalid(path(at, "values"), "must be a list of strings")),
    };
    let has_values = values.as_ref().is_some_and(|v| !v.is_empty());
    match operator.as_str() {
        "In" | "NotIn" if !has_values => {
            return Err(ApiError::invalid(path(at, "values"), format!("must not be empty for operator {operator}")));
        }
        "Exists" | "DoesNotExist" if has_values => {
            return Err(ApiError::invalid(path(at, "values"), format!("must be empty for operator {operator}")));
        }
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        other => {
            return Err(ApiError::invalid(
                operator_field,
                format!("{other:?} is not an operator: must be one of In, NotIn, Exists, DoesNotExist"),
            ));
        }
    }
    no_unknown(obj, at)?;
    Ok(LabelSelectorRequirement { key, operator, values })
}

/// Whether `s` is a DNS-1123 label (a namespace name).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (an object name).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= MAX_NAME
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use super::*;

    fn event(v: Value) -> Result<EventRequest, ApiError> {
        parse_event(v.to_string().as_bytes())
    }

    fn send(v: Value) -> Result<Content, ApiError> {
        parse_send(v.to_string().as_bytes())
    }

    /// The field and code of a refusal.
    fn refused(r: Result<impl std::fmt::Debug, ApiError>) -> (String, &'static str) {
        let e = r.expect_err("expected a refusal");
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e}");
        (e.field.unwrap_or_default(), e.code)
    }

    #[test]
    fn a_full_event_becomes_the_spec() {
        let r = event(json!({
            "integration": "team-slack", "title": "Deploy", "message": "done", "severity": "success",
            "fields": [{"name": "env", "value": "prod"}], "links": [{"text": "run", "url": "https://ci.example/1"}],
            "ttlSecondsAfterFinished": 60
        }))
        .unwrap();
        let spec = r.spec();
        assert_eq!(spec.integration_ref.unwrap().name, "team-slack");
        assert_eq!(spec.integration_selector, None);
        assert_eq!(spec.title.as_deref(), Some("Deploy"));
        assert_eq!(spec.message, "done");
        assert_eq!(spec.severity, Severity::Success);
        assert_eq!(spec.fields, vec![EventField { name: "env".into(), value: "prod".into() }]);
        assert_eq!(spec.links[0].url, "https://ci.example/1");
        assert_eq!(spec.ttl_seconds_after_finished, Some(60));
    }

    #[test]
    fn a_minimal_event_with_a_selector() {
        let r = event(json!({"integrationSelector": {"matchLabels": {"team": "a"}}, "message": "hi", "title": null}))
            .unwrap();
        let Target::Selector(sel) = &r.target else { panic!("a selector") };
        assert_eq!(sel.match_labels.as_ref().unwrap()["team"], "a");
        assert_eq!(r.content.severity, Severity::Info);
        assert_eq!(r.content.title, None);
        let r = event(json!({"integrationSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["1"]}]}, "message": "x"}))
            .unwrap();
        assert!(matches!(r.target, Target::Selector(_)));
    }

    #[test]
    fn broken_json_and_non_objects() {
        for body in [&b"{"[..], b"", b"not json", b"[1]", b"\"message\""] {
            let e = parse_event(body).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, code::INVALID_JSON), "{body:?}");
        }
    }

    #[test]
    fn message_is_required_and_bounded() {
        assert_eq!(refused(event(json!({"integration": "a"}))), ("message".into(), code::INVALID_FIELD));
        assert_eq!(refused(event(json!({"integration": "a", "message": null}))).0, "message");
        assert_eq!(refused(event(json!({"integration": "a", "message": ""}))).0, "message");
        assert_eq!(refused(event(json!({"integration": "a", "message": 5}))).0, "message");
        assert_eq!(refused(send(json!({}))).0, "message");
        // Characters, not bytes: 65535 three-byte characters are allowed.
        assert!(send(json!({"message": "あ".repeat(MAX_MESSAGE)})).is_ok());
        let e = send(json!({"message": "x".repeat(MAX_MESSAGE + 1)})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("message"));
        assert!(e.message.contains("65535"), "{}", e.message);
    }

    #[test]
    fn exactly_one_target() {
        assert_eq!(refused(event(json!({"message": "x"}))).0, "integration");
        assert_eq!(
            refused(event(json!({"message": "x", "integration": "a", "integrationSelector": {}}))).0,
            "integrationSelector"
        );
        assert_eq!(refused(event(json!({"message": "x", "integration": ""}))).0, "integration");
        assert_eq!(refused(event(json!({"message": "x", "integration": 3}))).0, "integration");
        // The send route names its integration in the URL.
        assert_eq!(refused(send(json!({"message": "x", "integration": "a"}))).0, "integration");
        assert_eq!(refused(send(json!({"message": "x", "ttlSecondsAfterFinished": 1}))).0, "ttlSecondsAfterFinished");
    }

    #[test]
    fn selectors_are_checked() {
        let bad = [
            (json!({"matchLabels": {"a": 1}}), "integrationSelector.matchLabels.a"),
            (json!({"matchLabels": []}), "integrationSelector.matchLabels"),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
                "integrationSelector.matchExpressions[0].operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "integrationSelector.matchExpressions[0].values",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "integrationSelector.matchExpressions[0].values",
            ),
            (json!({"matchExpressions": [{"operator": "Exists"}]}), "integrationSelector.matchExpressions[0].key"),
            (json!({"matchLabel": {}}), "integrationSelector.matchLabel"),
            (json!({"matchLabels": {"a": "v".repeat(64)}}), "integrationSelector.matchLabels.a"),
            (json!({"matchLabels": {"k".repeat(318): "v"}}), "integrationSelector.matchLabels"),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["v".repeat(64)]}]}),
                "integrationSelector.matchExpressions[0].values[0]",
            ),
            (json!("team=a"), "integrationSelector"),
        ];
        for (sel, field) in bad {
            assert_eq!(refused(event(json!({"message": "x", "integrationSelector": sel}))).0, field);
        }
    }

    /// Selectors are bounded as the CRD bounds them: at most 20 expressions
    /// of at most 50 values, 20 labels; a 400 names the list over its bound.
    #[test]
    fn selectors_are_bounded() {
        let expr = |values: usize| json!({"key": "tier", "operator": "In", "values": vec!["v"; values]});
        let sel = |exprs: usize, values: usize| json!({"matchExpressions": vec![expr(values); exprs]});
        let labels =
            |n: usize| json!({"matchLabels": (0..n).map(|i| (format!("k{i}"), json!("v"))).collect::<Map<_, _>>()});
        let ok = |s: Value| event(json!({"message": "x", "integrationSelector": s}));
        assert!(ok(sel(MAX_SELECTOR_EXPRESSIONS, MAX_SELECTOR_VALUES)).is_ok());
        assert!(ok(labels(MAX_SELECTOR_LABELS)).is_ok());
        assert_eq!(refused(ok(sel(MAX_SELECTOR_EXPRESSIONS + 1, 1))).0, "integrationSelector.matchExpressions");
        assert_eq!(refused(ok(sel(1, MAX_SELECTOR_VALUES + 1))).0, "integrationSelector.matchExpressions[0].values");
        assert_eq!(refused(ok(labels(MAX_SELECTOR_LABELS + 1))).0, "integrationSelector.matchLabels");
        // A huge list is refused by its length, before its items are looked at.
        let e = ok(sel(100_000, 1)).unwrap_err();
        assert!(e.message.contains("at most 20"), "{}", e.message);
    }

    #[test]
    fn severity_is_an_enum() {
        for s in ["info", "success", "warning", "error"] {
            assert_eq!(send(json!({"message": "x", "severity": s})).unwrap().severity.as_str(), s);
        }
        for s in [json!("critical"), json!("Info"), json!(1)] {
            let e = send(json!({"message": "x", "severity": s})).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("severity"));
            assert!(e.message.contains("info, success, warning, error"));
        }
    }

    #[test]
    fn fields_and_links_limits() {
        let f = |n: usize| (0..n).map(|i| json!({"name": format!("f{i}"), "value": "v"})).collect::<Vec<_>>();
        assert!(send(json!({"message": "x", "fields": f(MAX_FIELDS)})).is_ok());
        assert_eq!(refused(send(json!({"message": "x", "fields": f(MAX_FIELDS + 1)}))).0, "fields");
        let l = |n: usize| (0..n).map(|i| json!({"text": format!("l{i}"), "url": "http://x"})).collect::<Vec<_>>();
        assert!(send(json!({"message": "x", "links": l(MAX_LINKS)})).is_ok());
        assert_eq!(refused(send(json!({"message": "x", "links": l(MAX_LINKS + 1)}))).0, "links");
        let cases = [
            (json!({"fields": [{"name": "", "value": "v"}]}), "fields[0].name"),
            (json!({"fields": [{"name": "a", "value": "v"}, {"name": "b"}]}), "fields[1].value"),
            (json!({"fields": [{"name": "n".repeat(151), "value": ""}]}), "fields[0].name"),
            (json!({"fields": [{"name": "a", "value": "v".repeat(2001)}]}), "fields[0].value"),
            (json!({"fields": [{"name": "a", "value": "v", "colour": "red"}]}), "fields[0].colour"),
            (json!({"fields": {"a": "b"}}), "fields"),
            (json!({"fields": ["a"]}), "fields[0]"),
            (json!({"links": [{"text": "t", "url": "ftp://x"}]}), "links[0].url"),
            (json!({"links": [{"text": "t", "url": "javascript:alert(1)"}]}), "links[0].url"),
            (json!({"links": [{"text": "t", "url": format!("https://{}", "x".repeat(2048))}]}), "links[0].url"),
            (json!({"links": [{"text": "", "url": "https://x"}]}), "links[0].text"),
            (json!({"links": [{"url": "https://x"}]}), "links[0].text"),
            (json!({"title": "t".repeat(251)}), "title"),
            (json!({"mesage": "typo"}), "mesage"),
        ];
        for (mut body, field) in cases {
            body.as_object_mut().unwrap().entry("message").or_insert(json!("x"));
            assert_eq!(refused(send(body.clone())).0, field, "{body}");
        }
    }

    #[test]
    fn mentions_are_checked_field_by_field() {
        let ok = send(
            json!({"message": "x", "mentions": [{"email": "jane@example.com", "name": "Jane"}, {"email": "a@b.co"}]}),
        )
        .unwrap();
        assert_eq!(ok.mentions[0], Mention { email: "jane@example.com".into(), name: Some("Jane".into()) });
        assert_eq!(ok.mentions[1].name, None);
        let m = ok.to_message("id".into(), None, jiff::Timestamp::UNIX_EPOCH);
        assert_eq!((m.mentions[0].label(), m.mentions[1].label()), ("Jane", "a@b.co"));
        let many: Vec<Value> = (0..MAX_MENTIONS + 1).map(|i| json!({"email": format!("u{i}@example.com")})).collect();
        let cases = [
            (json!({"mentions": many}), "mentions"),
            (json!({"mentions": {"email": "a@b.co"}}), "mentions"),
            (json!({"mentions": ["a@b.co"]}), "mentions[0]"),
            (json!({"mentions": [{"email": "a@b.co"}, {"name": "Bob"}]}), "mentions[1].email"),
            (
                json!({"mentions": [{"email": "a@b.co"}, {"email": "b@b.co"}, {"email": "not an email"}]}),
                "mentions[2].email",
            ),
            (json!({"mentions": [{"email": "a@b"}]}), "mentions[0].email"),
            (json!({"mentions": [{"email": "a@@b.co"}]}), "mentions[0].email"),
            (json!({"mentions": [{"email": format!("{}@b.co", "a".repeat(250))}]}), "mentions[0].email"),
            (json!({"mentions": [{"email": "a@b.co", "name": "n".repeat(101)}]}), "mentions[0].name"),
            (json!({"mentions": [{"email": "a@b.co", "slack": "U1"}]}), "mentions[0].slack"),
        ];
        for (mut body, field) in cases {
            body.as_object_mut().unwrap().insert("message".into(), json!("x"));
            assert_eq!(refused(send(body.clone())).0, field, "{body}");
        }
        let e = event(json!({"integration": "a", "message": "x", "mentions": [{"email": "nope"}]})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("mentions[0].email"));
        assert!(e.message.contains("email address"), "{}", e.message);
        let r = event(json!({"integration": "a", "message": "x", "mentions": [{"email": "a@b.co"}]})).unwrap();
        assert_eq!(r.spec().mentions.len(), 1);
    }

    #[test]
    fn email_shape_is_the_crds() {
        for good in ["a@b.co", "first.last+tag@sub.example.com", "x@y.z.", "日本@例え.jp"] {
            assert!(is_email(good), "{good}");
        }
        for bad in ["", "a", "@b.co", "a@", "a@b", "a@.b", "a@b.", "a b@c.d", "a@b@c.d", "a@b .co"] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn ttl_must_not_be_negative() {
        for ttl in [json!(-1), json!("60"), json!(1.5)] {
            let body = json!({"integration": "a", "message": "x", "ttlSecondsAfterFinished": ttl});
            assert_eq!(refused(event(body)).0, "ttlSecondsAfterFinished");
        }
    }

    #[test]
    fn to_message_drops_blank_titles() {
        let c = send(json!({"message": "m", "title": "  "})).unwrap();
        let m = c.to_message("id".into(), Some("ns/x".into()), jiff::Timestamp::UNIX_EPOCH);
        assert_eq!((m.title, m.text.as_str(), m.source.as_deref()), (None, "m", Some("ns/x")));
    }

    #[test]
    fn names() {
        assert!(is_dns_label("team-a") && !is_dns_label("Team") && !is_dns_label("-a") && !is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("team-slack.v2") && !is_dns_subdomain("a..b") && !is_dns_subdomain("a/b"));
    }

    /// Random bodies: bytes, JSON of any shape, and objects built from the
    /// fields the routes know with values of any type.
    mod random_input {
        use proptest::prelude::*;

        use super::*;
        use crate::server::ingest::errors::code;

        const KEYS: &[&str] = &[
            "integration",
            "integrationSelector",
            "ttlSecondsAfterFinished",
            "message",
            "title",
            "severity",
            "fields",
            "links",
            "mentions",
            "name",
            "value",
            "text",
            "url",
            "email",
            "matchLabels",
            "matchExpressions",
            "key",
            "operator",
            "values",
        ];
        const STRINGS: &[&str] =
            &["", " ", "info", "error", "In", "Exists", "https://x.example", "ftp://x", "a@b.co", "a@b", "team-a"];

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_string), 1 => "\\PC{0,6}"]
        }

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
                prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_string())),
                "\\PC{0,20}".prop_map(Value::String),
                (1usize..70_000).prop_map(|n| Value::String("é".repeat(n))),
            ];
            leaf.prop_recursive(4, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                    prop::collection::btree_map(key(), inner, 0..8)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn object() -> impl Strategy<Value = Value> {
            prop::collection::btree_map(key(), json(), 0..10).prop_map(|m| Value::Object(m.into_iter().collect()))
        }

        /// Every refusal is a 400 naming the field (or saying the body is no JSON object).
        fn answered<T>(body: &[u8], parsed: Result<T, ApiError>) -> Result<Option<T>, TestCaseError> {
            match parsed {
                Ok(v) => Ok(Some(v)),
                Err(e) => {
                    prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
                    match e.code {
                        code::INVALID_JSON => prop_assert!(e.field.is_none()),
                        code::INVALID_FIELD => {
                            let field = e.field.clone().unwrap_or_default();
                            let keys: Vec<String> = match serde_json::from_slice::<Value>(body) {
                                Ok(Value::Object(o)) => o.keys().cloned().collect(),
                                _ => vec![],
                            };
                            let named =
                                keys.iter().chain(&["message".to_string(), "integration".to_string()]).any(|k| {
                                    field
                                        .strip_prefix(k.as_str())
                                        .is_some_and(|r| r.is_empty() || r.starts_with(['.', '[']))
                                });
                            prop_assert!(named, "{:?} names no field of the body", field);
                        }
                        other => prop_assert!(false, "unexpected code {}", other),
                    }
                    prop_assert!(!e.message.is_empty());
                    Ok(None)
                }
            }
        }

        /// An accepted message is within the CRD's limits.
        fn within_limits(c: &Content) -> Result<(), TestCaseError> {
            prop_assert!((1..=MAX_MESSAGE).contains(&c.message.chars().count()));
            prop_assert!(c.title.as_ref().is_none_or(|t| t.chars().count() <= MAX_TITLE));
            prop_assert!(
                c.fields.len() <= MAX_FIELDS && c.links.len() <= MAX_LINKS && c.mentions.len() <= MAX_MENTIONS
            );
            prop_assert!(c.links.iter().all(|l| l.url.starts_with("http://") || l.url.starts_with("https://")));
            prop_assert!(c.mentions.iter().all(|m| is_email(&m.email)));
            Ok(())
        }

        proptest! {
            #![proptest_config(crate::property_tests::config())]

            #[test]
            fn any_bytes_are_answered(body in prop::collection::vec(any::<u8>(), 0..200)) {
                answered(&body, parse_event(&body))?;
                answered(&body, parse_send(&body))?;
            }

            #[test]
            fn any_json_is_answered(value in json()) {
                let body = value.to_string().into_bytes();
                answered(&body, parse_event(&body))?;
                answered(&body, parse_send(&body))?;
            }

            #[test]
            fn objects_of_known_fields_are_answered(value in object(), message in prop::option::of("\\PC{1,20}")) {
                let mut value = value;
                if let Some(m) = message {
                    value["message"] = Value::String(m);
                }
                let body = value.to_string().into_bytes();
                if let Some(r) = answered(&body, parse_event(&body))? {
                    within_limits(&r.content)?;
                }
                if let Some(c) = answered(&body, parse_send(&body))? {
                    within_limits(&c)?;
                }
            }
        }

        #[test]
        fn deep_nesting_is_refused_not_a_stack_overflow() {
            for body in ["[".repeat(100_000), format!("{{\"message\":{}", "{\"a\":".repeat(100_000))] {
                let e = parse_event(body.as_bytes()).unwrap_err();
                assert_eq!(e.code, code::INVALID_JSON);
            }
        }
    }
}
