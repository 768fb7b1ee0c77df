//! The event `send` asks for, built from its flags: the JSON body the HTTP
//! route takes, validated by the route's own validation
//! ([`crate::server::ingest::body::parse_event`]) so that one home decides
//! what a valid event is. Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::{Map, Value, json};

use super::report::invalid_text;
use crate::cli::SendArgs;
use crate::exit::{Exit, Outcome};
use crate::server::ingest::body::{self, EventRequest};

/// The request: its body (as the HTTP route takes it) and what it validated to.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub body: Value,
    pub event: EventRequest,
}

/// The body of the event from the flags and the message (from `--message`
/// or stdin), validated; an invalid one is the [`Exit::Invalid`] outcome
/// naming the field and its flag.
pub fn request(args: &SendArgs, message: String) -> Result<Request, Outcome> {
    let invalid = |flag: &str, e: String| Outcome::new(Exit::Invalid, format!("{flag}: {e}"));
    let mut body = Map::new();
    match (&args.integration, &args.selector) {
        (Some(name), None) => {
            body.insert("integration".into(), json!(name));
        }
        (None, Some(selector)) => {
            let selector = parse_selector(selector).map_err(|e| invalid("--selector", e))?;
            body.insert("integrationSelector".into(), serde_json::to_value(selector).expect("serializable"));
        }
        _ => return Err(Outcome::new(Exit::Invalid, "give exactly one of --integration or --selector")),
    }
    if let Some(title) = &args.title {
        body.insert("title".into(), json!(title));
    }
    body.insert("message".into(), json!(message));
    if let Some(severity) = &args.severity {
        body.insert("severity".into(), json!(severity));
    }
    let fields = args.field.iter().map(|f| parse_field(f)).collect::<Result<Vec<_>, _>>();
    let fields = fields.map_err(|e| invalid("--field", e))?;
    if !fields.is_empty() {
        body.insert("fields".into(), Value::Array(fields));
    }
    let links: Vec<Value> = args.link.iter().map(|l| parse_link(l)).collect();
    if !links.is_empty() {
        body.insert("links".into(), Value::Array(links));
    }
    let mentions: Vec<Value> = args.mention.iter().map(|m| parse_mention(m)).collect();
    if !mentions.is_empty() {
        body.insert("mentions".into(), Value::Array(mentions));
    }
    let body = Value::Object(body);
    let bytes = serde_json::to_vec(&body).expect("serializable");
    let event = body::parse_event(&bytes).map_err(|e| {
        let text = match &e.field {
            Some(field) => invalid_text(field, &e.message),
            None => e.message.clone(),
        };
        Outcome::new(Exit::Invalid, text)
    })?;
    Ok(Request { body, event })
}

/// The message read from stdin: its text without the trailing newlines.
pub fn message_from_stdin(text: &str) -> String {
    text.trim_end_matches(['\n', '\r']).to_string()
}

/// `--field name=value`.
pub fn parse_field(s: &str) -> Result<Value, String> {
    match s.split_once('=') {
        Some((name, value)) => Ok(json!({"name": name, "value": value})),
        None => Err(format!("{s:?} is not name=value")),
    }
}

/// `--link text=url`, or a URL alone (its text is the URL).
pub fn parse_link(s: &str) -> Value {
    if s.starts_with("http://") || s.starts_with("https://") {
        return json!({"text": s, "url": s});
    }
    match s.split_once('=') {
        Some((text, url)) => json!({"text": text, "url": url}),
        // No URL: the validation names links[i].url.
        None => json!({"text": s, "url": ""}),
    }
}

/// `--mention email` or `--mention email=Name`.
pub fn parse_mention(s: &str) -> Value {
    match s.split_once('=') {
        Some((email, name)) => json!({"email": email.trim(), "name": name}),
        None => json!({"email": s.trim()}),
    }
}

/// A label selector as `kubectl -l` takes it: comma-separated `k=v`,
/// `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` and `!k`.
pub fn parse_selector(s: &str) -> Result<LabelSelector, String> {
    let mut labels = BTreeMap::new();
    let mut expressions = Vec::new();
    for part in split_top_level(s) {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("{s:?} has an empty requirement"));
        }
        let expr = |key: &str, operator: &str, values: Option<Vec<String>>| LabelSelectorRequirement {
            key: key.trim().to_string(),
            operator: operator.to_string(),
            values,
        };
        if let Some((k, v)) = part.split_once("!=") {
            expressions.push(expr(k, "NotIn", Some(vec![v.trim().to_string()])));
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            labels.insert(k.trim().to_string(), v.trim().to_string());
        } else if let Some(k) = part.strip_prefix('!') {
            expressions.push(expr(k, "DoesNotExist", None));
        } else if let Some((k, rest)) = set_requirement(part) {
            let (operator, list) = rest;
            expressions.push(expr(k, operator, Some(list)));
        } else if part.split_whitespace().count() == 1 && !part.contains(['(', ')']) {
            expressions.push(expr(part, "Exists", None));
        } else {
            return Err(format!("{part:?} is not a requirement (k=v, k!=v, k in (a,b), k notin (a,b), k, !k)"));
        }
        if expressions.last().is_some_and(|e| e.key.is_empty()) || labels.keys().any(String::is_empty) {
            return Err(format!("{part:?} has no label key"));
        }
    }
    Ok(LabelSelector {
        match_labels: (!labels.is_empty()).then_some(labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

/// `k in (a, b)` / `k notin (a,b)`: the key, the operator and the values.
fn set_requirement(part: &str) -> Option<(&str, (&'static str, Vec<String>))> {
    let open = part.find('(')?;
    let inner = part[open + 1..].strip_suffix(')')?;
    let mut head = part[..open].split_whitespace();
    let (key, op) = (head.next()?, head.next()?);
    if head.next().is_some() {
        return None;
    }
    let operator = match op {
        "in" => "In",
        "notin" => "NotIn",
        _ => return None,
    };
    let values = inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    Some((key, (operator, values)))
}

/// Split at the commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::server::ingest::body::Target;

    fn args(extra: &[&str]) -> SendArgs {
        let cli = Cli::try_parse_from(["kube-notify", "send"].iter().chain(extra)).unwrap();
        let Command::Send(args) = cli.command else { panic!("expected send") };
        *args
    }

    #[test]
    fn the_flags_become_the_body() {
        let a = args(&[
            "--integration=team-slack",
            "--title=Deploy",
            "--severity=success",
            "--field",
            "Version=v2=final",
            "--field=Env=",
            "--link=Logs=https://logs.example/run?id=4",
            "--link=https://ci.example/run/4?x=1",
            "--mention=jane@example.com=Jane Doe",
            "--mention=ops@example.com",
        ]);
        let r = request(&a, "v2 is out".into()).unwrap();
        assert_eq!(
            r.body,
            json!({
                "integration": "team-slack", "title": "Deploy", "message": "v2 is out", "severity": "success",
                "fields": [{"name": "Version", "value": "v2=final"}, {"name": "Env", "value": ""}],
                "links": [{"text": "Logs", "url": "https://logs.example/run?id=4"},
                          {"text": "https://ci.example/run/4?x=1", "url": "https://ci.example/run/4?x=1"}],
                "mentions": [{"email": "jane@example.com", "name": "Jane Doe"}, {"email": "ops@example.com"}],
            })
        );
        let spec = r.event.spec();
        assert_eq!(spec.integration_ref.unwrap().name, "team-slack");
        assert_eq!((spec.fields.len(), spec.links.len(), spec.mentions.len()), (2, 2, 2));
    }

    #[test]
    fn invalid_input_names_the_field_and_its_flag() {
        let refused = |extra: &[&str], message: &str| {
            let mut all = vec!["--integration=a"];
            all.extend_from_slice(extra);
            let o = request(&args(&all), message.into()).unwrap_err();
            assert_eq!(o.exit, Exit::Invalid);
            o.line
        };
        assert_eq!(refused(&[], ""), "invalid: message (--message): must not be empty");
        assert_eq!(
            refused(&["--severity=critical"], "m"),
            "invalid: severity (--severity): \"critical\" is not a severity: must be one of info, success, warning, error"
        );
        assert_eq!(refused(&["--field=novalue"], "m"), "invalid: --field: \"novalue\" is not name=value");
        assert_eq!(refused(&["--field==v"], "m"), "invalid: fields[0].name (--field): must not be empty");
        assert_eq!(
            refused(&["--link=Logs=ftp://x"], "m"),
            "invalid: links[0].url (--link): must be an http:// or https:// URL"
        );
        assert_eq!(refused(&["--link=Logs"], "m"), "invalid: links[0].url (--link): must not be empty");
        assert_eq!(
            refused(&["--mention=ok@example.com", "--mention=nope"], "m"),
            "invalid: mentions[1].email (--mention): must be an email address (name@domain.tld)"
        );
        let long = "t".repeat(251);
        assert!(refused(&["--title", &long], "m").starts_with("invalid: title (--title): must be at most 250"));
        let o = request(&args(&["--selector=a in ()"]), "m".into()).unwrap_err();
        assert_eq!(
            o.line,
            "invalid: integrationSelector.matchExpressions[0].values (--selector): must not be empty for operator In"
        );
    }

    #[test]
    fn selectors_as_kubectl_takes_them() {
        let s = parse_selector("team=payroll, tier==1,env!=dev,zone in (a, b),app notin (x),managed,!legacy").unwrap();
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({
                "matchLabels": {"team": "payroll", "tier": "1"},
                "matchExpressions": [
                    {"key": "env", "operator": "NotIn", "values": ["dev"]},
                    {"key": "zone", "operator": "In", "values": ["a", "b"]},
                    {"key": "app", "operator": "NotIn", "values": ["x"]},
                    {"key": "managed", "operator": "Exists"},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            })
        );
        let r = request(&args(&["-l", "team=payroll"]), "m".into()).unwrap();
        assert!(matches!(r.event.target, Target::Selector(_)));
        for bad in ["", "a,,b", "=x", "a b", "a in b", "a in (x", "a within (x)"] {
            assert!(parse_selector(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_and_exactly_one_target() {
        let a = args(&["-i", "hook"]);
        assert_eq!(a.wait, std::time::Duration::from_secs(60));
        assert_eq!((a.namespace, a.url, a.message), (None, None, None));
        assert_eq!(args(&["-i", "hook", "--wait", "2m"]).wait.as_secs(), 120);
        for bad in [&["-m", "x"][..], &["-i", "a", "-l", "b=c"], &["-i", "a", "--wait", "soon"]] {
            let e = Cli::try_parse_from(["kube-notify", "send"].iter().chain(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn stdin_messages_lose_their_trailing_newlines() {
        assert_eq!(message_from_stdin("line 1\nline 2\n\n"), "line 1\nline 2");
        assert_eq!(message_from_stdin("x\r\n"), "x");
    }
}
