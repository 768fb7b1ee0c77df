//! Mentions by email: Slack lookups (cached, rate limited, scope problems
//! reported once), NotificationContacts winning over lookups and fixing the
//! next delivery, Chatwork room members, Teams entities, webhook data, and
//! unresolved mentions reported (status, Warning Event, metrics) without
//! failing the event.

use std::num::NonZeroU32;
use std::time::Duration;

use kube_notify::crd::{EventPhase, NotificationEvent};
use kube_notify::notifier::mentions::MentionSettings;
use serde_json::{Value, json};

use crate::support::operator::{WAIT, World, captured_logs, metric_value};
use crate::support::services::{ScriptedResponse, SlackMessage};

/// A ready Slack bot-token integration posting to `channel`.
async fn ready_bot(w: &World, name: &str, token: &str, channel: &str) {
    w.slack.add_channel(channel, channel, false, true);
    w.put_secret(name, &[("token", token)]).await;
    w.create_integration(name, json!({"service": "slack", "secretRef": {"name": name}, "slack": {"channel": channel}}))
        .await;
    w.wait_condition(name, "Ready", "True", None).await;
}

/// A ready Slack incoming-webhook integration.
async fn ready_slack_webhook(w: &World, name: &str) {
    let url = w.slack.add_webhook("T1", &format!("B{name}"));
    w.put_secret(name, &[("webhookUrl", &url)]).await;
    w.create_integration(name, json!({"service": "slack", "secretRef": {"name": name}})).await;
    w.wait_condition(name, "Ready", "True", None).await;
}

fn mentioning(integration: &str, mentions: Value) -> Value {
    json!({"integrationRef": {"name": integration}, "title": "Deploy", "message": "v2 is out", "mentions": mentions})
}

/// Deliver one event and return it once Delivered.
async fn deliver(w: &World, name: &str, spec: Value) -> NotificationEvent {
    w.create_event(name, spec).await;
    w.wait_event_phase(name, EventPhase::Delivered).await
}

fn unresolved(ev: &NotificationEvent) -> Vec<String> {
    ev.status.as_ref().unwrap().deliveries[0].unresolved_mentions.clone()
}

fn last_slack(w: &World) -> SlackMessage {
    w.slack.messages().last().cloned().expect("a Slack message")
}

fn mentions_metric(w: &World, result: &str) -> u64 {
    metric_value(&w.metrics.render(), "kube_notify_mentions_total", result)
}

/// Wait until the metrics counted `n` mentions as `result`: the delivery
/// that counts them has decided its reports.
async fn wait_mentions_metric(w: &World, result: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while mentions_metric(w, result) < n {
        assert!(tokio::time::Instant::now() < deadline, "{result} mentions never reached {n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn with_mentions(adjust: impl FnOnce(&mut MentionSettings)) -> impl FnOnce(&mut kube_notify::operator::OperatorConfig) {
    move |c| adjust(&mut c.settings.mentions)
}

#[tokio::test]
async fn slack_looks_each_email_up_once_for_many_events() {
    let w = World::start().await;
    let token = "xoxb-1-1-lookups";
    w.slack.add_bot_token(token);
    w.slack.add_user("jane@example.com", "U0JANE");
    ready_bot(&w, "bot", token, "C0DEPLOY").await;
    for i in 0..3 {
        let name = if i == 1 { "JANE@example.com" } else { "jane@example.com" };
        let ev = deliver(&w, &format!("ev{i}"), mentioning("bot", json!([{"email": name, "name": "Jane"}]))).await;
        assert!(unresolved(&ev).is_empty());
        let m = last_slack(&w);
        assert_eq!(m.mentions, vec!["U0JANE"], "in the blocks");
        assert_eq!(m.text_mentions, vec!["U0JANE"], "in the notification text");
    }
    assert_eq!(w.slack.lookups(), vec!["jane@example.com"], "one lookup for three events (emails without case)");
    assert_eq!(mentions_metric(&w, "resolved"), 3);
    // Emails are personal data: never at info level.
    for line in captured_logs().lines().filter(|l| l.contains(" INFO ") || l.contains(" WARN ")) {
        assert!(!line.contains("jane@example.com") && !line.contains("JANE@example.com"), "{line}");
    }
}

#[tokio::test]
async fn unresolved_mentions_are_reported_without_failing_the_event() {
    let w = World::start().await;
    let token = "xoxb-2-2-notfound";
    w.slack.add_bot_token(token);
    ready_bot(&w, "bot", token, "C0OPS").await;
    let ev = deliver(&w, "ev1", mentioning("bot", json!([{"email": "zed@example.com", "name": "Zed <ops>"}]))).await;
    assert_eq!(unresolved(&ev), vec!["zed@example.com"]);
    let m = last_slack(&w);
    assert!(m.mentions.is_empty());
    assert!(m.blocks.as_ref().unwrap()[1]["text"]["text"] == "Zed &lt;ops&gt;", "the name in its place: {m:?}");
    let warning = w.wait_k8s_event("bot", "MentionUnresolved").await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    let note = warning.note.unwrap_or_default();
    assert!(note.contains("zed@example.com") && note.contains("NotificationContact"), "{note}");
    assert!(note.contains("spec.slack.userId"), "{note}");

    // The same person again: not looked up again (remembered as not found),
    // reported in the status again, warned about once.
    w.slack.add_user("zed@example.com", "U0ZED");
    let ev = deliver(&w, "ev2", mentioning("bot", json!([{"email": "zed@example.com"}]))).await;
    assert_eq!(unresolved(&ev), vec!["zed@example.com"]);
    assert!(last_slack(&w).text.unwrap().starts_with("zed@example.com\n"), "the email in its place");
    assert_eq!(w.slack.lookups().len(), 1);
    wait_mentions_metric(&w, "unresolved", 2).await;
    let warnings: Vec<_> = w
        .k8s_events_for("bot")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("MentionUnresolved"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].series.is_none(), "published once: {warnings:?}");
    let ni = w.integrations().get("bot").await.unwrap();
    assert_eq!(ni.status.unwrap().consecutive_errors, 0, "an unresolved mention is no delivery error");
}

#[tokio::test]
async fn a_user_not_found_is_looked_up_again_once_the_negative_cache_expires() {
    let ttl = Duration::from_millis(300);
    let w = World::start_with(with_mentions(|m| m.not_found_ttl = ttl)).await;
    let token = "xoxb-3-3-expiry";
    w.slack.add_bot_token(token);
    ready_bot(&w, "bot", token, "C0EXP").await;
    let ev = deliver(&w, "ev1", mentioning("bot", json!([{"email": "new@example.com"}]))).await;
    assert_eq!(unresolved(&ev), vec!["new@example.com"]);
    w.slack.add_user("new@example.com", "U0NEW");
    // The condition is time itself: the negative answer's TTL passing.
    tokio::time::sleep(ttl).await;
    let ev = deliver(&w, "ev2", mentioning("bot", json!([{"email": "new@example.com"}]))).await;
    assert!(unresolved(&ev).is_empty());
    assert_eq!(last_slack(&w).mentions, vec!["U0NEW"]);
    assert_eq!(w.slack.lookups().len(), 2);
}

#[tokio::test]
async fn a_contact_wins_over_a_lookup() {
    let w = World::start().await;
    let token = "xoxb-4-4-mapping";
    w.slack.add_bot_token(token);
    w.slack.add_user("jane@example.com", "U0WORK");
    w.put_contact("jane", json!({"email": "Jane@Example.com", "name": "Jane Doe", "slack": {"userId": "U0RIGHT"}}))
        .await;
    ready_bot(&w, "bot", token, "C0MAP").await;
    let ev = deliver(&w, "ev1", mentioning("bot", json!([{"email": "jane@example.com"}]))).await;
    assert!(unresolved(&ev).is_empty());
    assert_eq!(last_slack(&w).mentions, vec!["U0RIGHT"]);
    assert!(w.slack.lookups().is_empty(), "a mapping needs no lookup");
}

#[tokio::test]
async fn a_contact_added_after_a_failure_fixes_the_next_delivery() {
    let w = World::start().await;
    ready_slack_webhook(&w, "hook").await;
    let ev = deliver(&w, "ev1", mentioning("hook", json!([{"email": "bob@example.com", "name": "Bob"}]))).await;
    assert_eq!(unresolved(&ev), vec!["bob@example.com"]);
    assert!(last_slack(&w).mentions.is_empty());
    let note = w.wait_k8s_event("hook", "MentionUnresolved").await.note.unwrap_or_default();
    assert!(note.contains("incoming webhook"), "{note}");
    // No restart: the contact applies to the next delivery.
    w.put_contact("bob", json!({"email": "bob@example.com", "slack": {"userId": "U0BOB"}})).await;
    let ev = deliver(&w, "ev2", mentioning("hook", json!([{"email": "bob@example.com", "name": "Bob"}]))).await;
    assert!(unresolved(&ev).is_empty());
    assert_eq!(last_slack(&w).mentions, vec!["U0BOB"]);
    // A fixed contact applies too.
    w.put_contact("bob", json!({"email": "bob@example.com", "slack": {"userId": "U0BOB2"}})).await;
    deliver(&w, "ev3", mentioning("hook", json!([{"email": "bob@example.com"}]))).await;
    assert_eq!(last_slack(&w).mentions, vec!["U0BOB2"]);
}

#[tokio::test]
async fn lookups_stay_within_the_rate_limit_shared_by_the_token() {
    let w = World::start_with(with_mentions(|m| {
        m.lookups_per_minute = NonZeroU32::new(1).unwrap();
        m.lookup_burst = NonZeroU32::new(2).unwrap();
        m.lookup_wait = Duration::from_millis(200);
    }))
    .await;
    let token = "xoxb-5-5-limited";
    w.slack.add_bot_token(token);
    for p in ["a", "b", "c", "d", "e", "f"] {
        w.slack.add_user(&format!("{p}@example.com"), &format!("U0{}", p.to_ascii_uppercase()));
    }
    // Two integrations with the same token share its lookups.
    ready_bot(&w, "one", token, "C0ONE").await;
    ready_bot(&w, "two", token, "C0TWO").await;
    let people = |ps: &[&str]| Value::Array(ps.iter().map(|p| json!({"email": format!("{p}@example.com")})).collect());
    let ev = deliver(&w, "ev1", mentioning("one", people(&["a", "b", "c"]))).await;
    assert_eq!(unresolved(&ev), vec!["c@example.com"], "the burst allowed two lookups");
    let ev = deliver(&w, "ev2", mentioning("two", people(&["a", "d"]))).await;
    assert_eq!(unresolved(&ev), vec!["d@example.com"], "a is cached; d waits for the token's limit");
    assert_eq!(w.slack.lookups(), vec!["a@example.com", "b@example.com"]);

    // Slack's own 429 pauses the token's lookups as it asks.
    let other = "xoxb-6-6-slack429";
    w.slack.add_bot_token(other);
    ready_bot(&w, "three", other, "C0THREE").await;
    w.slack.push_response(
        "users.lookupByEmail",
        ScriptedResponse::json(429, &json!({"ok": false, "error": "ratelimited"})).with_retry_after(30),
    );
    let ev = deliver(&w, "ev3", mentioning("three", people(&["e", "f"]))).await;
    assert_eq!(unresolved(&ev), vec!["e@example.com", "f@example.com"]);
    assert_eq!(w.slack.lookups().len(), 3, "f was not looked up while Slack asked to wait");
}

#[tokio::test]
async fn a_missing_lookup_scope_is_reported_once() {
    let w = World::start().await;
    let token = "xoxb-7-7-noscope";
    w.slack.add_bot_token(token);
    w.slack.remove_scope(token, "users:read.email");
    w.slack.add_user("amy@example.com", "U0AMY");
    ready_bot(&w, "bot", token, "C0SCOPE").await;
    let ev = deliver(&w, "ev1", mentioning("bot", json!([{"email": "amy@example.com"}]))).await;
    assert_eq!(unresolved(&ev), vec!["amy@example.com"]);
    let problem = w.wait_k8s_event("bot", "MentionLookupNotAllowed").await;
    assert!(problem.note.unwrap_or_default().contains("users:read.email"));
    let ev = deliver(&w, "ev2", mentioning("bot", json!([{"email": "ben@example.com"}]))).await;
    assert_eq!(unresolved(&ev), vec!["ben@example.com"]);
    wait_mentions_metric(&w, "unresolved", 2).await;
    assert_eq!(w.slack.lookups().len(), 1, "no lookup after missing_scope");
    let reports: Vec<_> = w
        .k8s_events_for("bot")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("MentionLookupNotAllowed"))
        .collect();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].series.is_none(), "reported once: {reports:?}");
}

#[tokio::test]
async fn chatwork_mentions_mapped_members_and_reports_the_others() {
    let w = World::start().await;
    w.chatwork.add_token("cw-mention-token", 7, "bot");
    w.chatwork.add_room(42, "hr");
    w.chatwork.set_role(42, "cw-mention-token", "member");
    w.chatwork.add_room_member(42, 1001, "Jane");
    w.put_secret("cw", &[("token", "cw-mention-token")]).await;
    w.create_integration(
        "cw",
        json!({"service": "chatwork", "secretRef": {"name": "cw"}, "chatwork": {"roomId": "42"}}),
    )
    .await;
    w.put_contact("jane", json!({"email": "jane@example.com", "name": "山田さん", "chatwork": {"accountId": "1001"}}))
        .await;
    w.put_contact("carl", json!({"email": "carl@example.com", "chatwork": {"accountId": "1002"}})).await;
    w.wait_condition("cw", "Ready", "True", None).await;
    let mentions = json!([{"email": "jane@example.com"}, {"email": "carl@example.com", "name": "Carl"}, {"email": "dan@example.com"}]);
    let ev = deliver(&w, "ev1", mentioning("cw", mentions.clone())).await;
    assert_eq!(unresolved(&ev), vec!["carl@example.com", "dan@example.com"], "in the event's order");
    let m = w.chatwork.messages().last().cloned().unwrap();
    assert_eq!(m.to, vec![1001]);
    assert!(m.body.starts_with("[To:1001] 山田さん\nCarl\ndan@example.com\n[info]"), "{}", m.body);
    let warning = w.wait_k8s_event("cw", "MentionUnresolved").await;
    let note = warning.note.unwrap_or_default();
    // One Event names every address of the message, and how to fix it.
    assert!(note.contains("carl@example.com") && note.contains("dan@example.com"), "{note}");
    assert!(note.contains("spec.chatwork.accountId"), "{note}");
    assert_eq!(warning.related.and_then(|r| r.name).as_deref(), Some("ev1"), "related to its NotificationEvent");
    // The member list is read once per room while it is fresh.
    deliver(&w, "ev2", mentioning("cw", mentions)).await;
    let reads = w.chatwork.requests().iter().filter(|r| r.path == "/v2/rooms/42/members").count();
    assert_eq!(reads, 1);
}

#[tokio::test]
async fn teams_and_webhooks_get_every_mention() {
    let w = World::start().await;
    let flow = w.teams.add_workflow();
    w.put_secret("teams", &[("webhookUrl", &flow)]).await;
    w.create_integration("teams", json!({"service": "msteams", "secretRef": {"name": "teams"}})).await;
    let hook = w.webhook.add_endpoint("/hooks/mentions");
    w.put_secret("hook", &[("webhookUrl", &hook)]).await;
    w.create_integration("hook", json!({"service": "webhook", "secretRef": {"name": "hook"}})).await;
    w.put_contact(
        "jane",
        json!({"email": "jane@example.com", "name": "Jane", "msteams": {"id": "8f3c0000-0000-4000-8000-00000000jane"}}),
    )
    .await;
    let mentions = json!([{"email": "jane@example.com"}, {"email": "bob@example.com", "name": "Bob"}]);
    for n in ["teams", "hook"] {
        w.wait_condition(n, "Ready", "True", None).await;
        let ev = deliver(&w, &format!("to-{n}"), mentioning(n, mentions.clone())).await;
        assert!(unresolved(&ev).is_empty());
    }
    let card = w.teams.messages().last().cloned().unwrap();
    assert_eq!(
        card.mentions(),
        vec![
            ("<at>Jane</at>".to_string(), "8f3c0000-0000-4000-8000-00000000jane".to_string(), "Jane".to_string()),
            ("<at>Bob</at>".to_string(), "bob@example.com".to_string(), "Bob".to_string()),
        ],
        "a mapping's id, else the email as the user principal name"
    );
    let data = w.webhook.messages().last().unwrap().json().unwrap()["data"].clone();
    assert_eq!(
        data["mentions"],
        json!([{"email": "jane@example.com", "name": "Jane"}, {"email": "bob@example.com", "name": "Bob"}])
    );
    assert_eq!(mentions_metric(&w, "resolved"), 4);
}

#[tokio::test]
async fn contacts_of_other_namespaces_are_not_used() {
    let w = World::start().await;
    ready_slack_webhook(&w, "hook").await;
    let other: kube::Api<kube_notify::crd::NotificationContact> = kube::Api::namespaced(w.admin.clone(), "team-b");
    let contact = serde_json::from_value(json!({
        "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationContact",
        "metadata": {"name": "bob", "namespace": "team-b"},
        "spec": {"email": "bob@example.com", "slack": {"userId": "U0ELSEWHERE"}},
    }))
    .unwrap();
    other.create(&Default::default(), &contact).await.unwrap();
    // Our own contact, created after the other one: once the operator has it, it has both.
    w.put_contact("amy", json!({"email": "amy@example.com", "slack": {"userId": "U0AMY"}})).await;
    let ev =
        deliver(&w, "ev1", mentioning("hook", json!([{"email": "bob@example.com"}, {"email": "amy@example.com"}])))
            .await;
    assert_eq!(unresolved(&ev), vec!["bob@example.com"]);
    assert_eq!(last_slack(&w).mentions, vec!["U0AMY"]);
}
