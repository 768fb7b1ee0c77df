//! Golden files for each service's payload. Regenerate after an intended
//! change with `KUBE_NOTIFY_UPDATE_GOLDEN=1 cargo test --test payloads` and
//! review the diff.

use std::path::Path;

use kube_notify::crd::{EventField, EventLink, Severity};
use kube_notify::notifier::Message;
use kube_notify::notifier::mentions::Mentioned;
use kube_notify::notifier::render;

fn full() -> Message {
    Message {
        id: "4f1c2a9e-0000-4000-8000-000000000001.team-slack".into(),
        title: Some("Payroll export failed <prod>".into()),
        text: "The nightly export to *SmartHR* failed for 3 employees & will retry.\nSee the log for details.".into(),
        severity: Severity::Error,
        fields: vec![
            EventField { name: "Job".into(), value: "payroll-export".into() },
            EventField { name: "Attempt".into(), value: "2 of 5".into() },
        ],
        links: vec![
            EventLink { text: "Logs".into(), url: "https://logs.example.com/payroll?run=42".into() },
            EventLink { text: "Runbook".into(), url: "https://wiki.example.com/runbooks/payroll".into() },
        ],
        source: Some("team-a/payroll-failed".into()),
        created_at: "2026-11-24T09:30:00Z".parse().unwrap(),
        mentions: vec![],
    }
}

fn minimal() -> Message {
    Message {
        id: "msg-2".into(),
        title: None,
        text: "Backup finished".into(),
        severity: Severity::Success,
        fields: vec![],
        links: vec![],
        source: None,
        created_at: "2026-11-24T09:30:00Z".parse().unwrap(),
        mentions: vec![],
    }
}

/// A message mentioning three people, resolved as `ids` says (the service's
/// id for each, `None` when unresolved), one of them with markup in its name.
fn mentioning(ids: [Option<&str>; 3]) -> Message {
    let people = [
        ("jane@example.com", Some("Jane Doe")),
        ("bob@example.com", None),
        ("eve@example.com", Some("<!channel> [toall] *Eve* & co")),
    ];
    let mentions = people
        .iter()
        .zip(ids)
        .map(|((email, name), id)| Mentioned {
            email: email.to_string(),
            name: name.map(str::to_string),
            id: id.map(str::to_string),
        })
        .collect();
    Message { mentions, ..full() }
}

fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("KUBE_NOTIFY_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; run KUBE_NOTIFY_UPDATE_GOLDEN=1 cargo test --test payloads", path.display())
    });
    assert_eq!(actual, expected, "{name} changed; if intended, regenerate the golden files and review the diff");
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

#[test]
fn slack_block_kit() {
    check("slack-full.json", &pretty(&render::slack::render(&full())));
    check("slack-minimal.json", &pretty(&render::slack::render(&minimal())));
}

#[test]
fn chatwork_notation() {
    check("chatwork-full.txt", &(render::chatwork::render(&full()) + "\n"));
    check("chatwork-minimal.txt", &(render::chatwork::render(&minimal()) + "\n"));
}

#[test]
fn teams_adaptive_card() {
    check("teams-full.json", &pretty(&render::teams::render(&full())));
    check("teams-minimal.json", &pretty(&render::teams::render(&minimal())));
}

#[test]
fn generic_webhook_json() {
    let message = full();
    let body = render::webhook::render(&message, "2026-11-24T09:30:00Z");
    check("webhook-full.json", &pretty(&serde_json::to_value(body).unwrap()));
}

#[test]
fn mentions_on_every_service() {
    let slack = render::slack::render(&mentioning([Some("U0JANE"), Some("U0BOB"), None]));
    check("slack-mentions.json", &pretty(&slack));
    let chatwork = render::chatwork::render(&mentioning([Some("1001"), None, Some("1003")]));
    check("chatwork-mentions.txt", &(chatwork + "\n"));
    let teams = render::teams::render(&mentioning([
        Some("jane.doe@corp.example"),
        Some("bob@example.com"),
        Some("eve@example.com"),
    ]));
    check("teams-mentions.json", &pretty(&teams));
    let message = mentioning([None, None, None]);
    let body = render::webhook::render(&message, "2026-11-24T09:30:00Z");
    check("webhook-mentions.json", &pretty(&serde_json::to_value(body).unwrap()));
}

#[test]
fn mentions_never_become_markup() {
    let slack = render::slack::render(&mentioning([Some("U0JANE"), None, None]));
    let line = slack["blocks"][1]["text"]["text"].as_str().unwrap();
    assert_eq!(line, "<@U0JANE> bob@example.com &lt;!channel&gt; [toall] *Eve* &amp; co");
    assert!(slack["text"].as_str().unwrap().starts_with("<@U0JANE> "));
    let chatwork = render::chatwork::render(&mentioning([Some("1001"), None, Some("1003")]));
    assert!(chatwork.starts_with("[To:1001] Jane Doe\nbob@example.com\n[To:1003] "), "{chatwork}");
    assert!(!chatwork.contains("[toall]"), "{chatwork}");
    let teams = render::teams::render(&mentioning([Some("j"), Some("b"), Some("e")]));
    let entities = teams["attachments"][0]["content"]["msteams"]["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 3);
    assert_eq!(entities[2]["text"], "<at>‹!channel› [toall]\u{200B} *Eve* & co</at>", "no Markdown link either");
    // Without mentions the payloads are exactly the ones without the feature.
    assert_eq!(render::slack::render(&full()), render::slack::render(&Message { mentions: vec![], ..full() }));
}

#[test]
fn severity_is_visible_the_same_way_everywhere() {
    for severity in [Severity::Info, Severity::Success, Severity::Warning, Severity::Error] {
        let m = Message { severity, ..minimal() };
        let emoji = render::severity_emoji(severity);
        assert!(render::slack::render(&m)["text"].as_str().unwrap().contains(emoji));
        assert!(render::chatwork::render(&m).contains(emoji));
        assert!(serde_json::to_string(&render::teams::render(&m)).unwrap().contains(emoji));
    }
}
