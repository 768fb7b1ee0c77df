//! Golden files for each service's payload. Regenerate after an intended
//! change with `KUBE_NOTIFY_UPDATE_GOLDEN=1 cargo test --test payloads` and
//! review the diff.

use std::path::Path;

use kube_notify::crd::{EventField, EventLink, Severity};
use kube_notify::notifier::Message;
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
fn severity_is_visible_the_same_way_everywhere() {
    for severity in [Severity::Info, Severity::Success, Severity::Warning, Severity::Error] {
        let m = Message { severity, ..minimal() };
        let emoji = render::severity_emoji(severity);
        assert!(render::slack::render(&m)["text"].as_str().unwrap().contains(emoji));
        assert!(render::chatwork::render(&m).contains(emoji));
        assert!(serde_json::to_string(&render::teams::render(&m)).unwrap().contains(emoji));
    }
}
