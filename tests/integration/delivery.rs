//! Delivering NotificationEvents: each service, each error class, retries,
//! counting and auto-disable, skip, re-enable, restarts, fan-out, expiry, TTL,
//! ordering and isolation.

use std::time::Duration;

use kube_notify::crd::{DeliveryPhase, EventPhase};
use serde_json::json;

use crate::support::operator::{NS, WAIT, World, assert_no_secret, captured_logs, condition};
use crate::support::services::{RequestMatcher, ScriptedResponse};

/// A ready Slack webhook integration; returns its URL.
async fn ready_slack(w: &World, name: &str, threshold: i32) -> String {
    let url = w.slack.add_webhook("T1", &format!("B{name}"));
    w.put_secret(name, &[("webhookUrl", &url)]).await;
    w.create_integration(name, json!({"service": "slack", "secretRef": {"name": name}, "errorThreshold": threshold}))
        .await;
    w.wait_condition(name, "Ready", "True", None).await;
    url
}

fn event_to(integration: &str, message: &str) -> serde_json::Value {
    json!({"integrationRef": {"name": integration}, "title": "Deploy", "message": message, "severity": "warning",
           "fields": [{"name": "env", "value": "prod"}], "links": [{"text": "run", "url": "https://ci.example.com/1"}]})
}

on_both_stores! { async fn slack_webhook_delivery_and_counters(w) {
    ready_slack(&w, "slack", 5).await;
    w.create_event("ev1", event_to("slack", "rolled out <v2> & done")).await;
    let ev = w.wait_event_phase("ev1", EventPhase::Delivered).await;
    let status = ev.status.unwrap();
    assert!(status.completion_time.is_some());
    let d = &status.deliveries[0];
    assert_eq!((d.integration.as_str(), d.phase, d.attempts), ("slack", DeliveryPhase::Delivered, 1));
    assert!(d.delivered_at.is_some());
    let msgs = w.slack.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].text.as_deref().unwrap().contains("rolled out &lt;v2&gt; &amp; done"));
    assert!(msgs[0].blocks.is_some());
    let ni = w
        .wait_integration("slack", "totalDelivered 1", |ni| ni.status.as_ref().is_some_and(|s| s.total_delivered == 1))
        .await;
    let s = ni.status.unwrap();
    assert_eq!(s.consecutive_errors, 0);
    assert!(s.last_delivery_time.is_some());
}}

on_both_stores! { async fn slack_bot_chatwork_and_teams_deliveries(w) {
    let token = "xoxb-9-9-deliverytoken";
    w.slack.add_bot_token(token);
    w.slack.add_channel("C0ALERTS", "alerts", false, true);
    w.put_secret("bot", &[("token", token)]).await;
    w.create_integration("bot", json!({"service": "slack", "secretRef": {"name": "bot"}, "slack": {"channel": "C0ALERTS", "iconEmoji": ":bell:"}})).await;
    w.chatwork.add_token("cw-delivery-token", 7, "bot");
    w.chatwork.add_room(42, "hr");
    w.chatwork.set_role(42, "cw-delivery-token", "member");
    w.put_secret("cw", &[("token", "cw-delivery-token")]).await;
    w.create_integration(
        "cw",
        json!({"service": "chatwork", "secretRef": {"name": "cw"}, "chatwork": {"roomId": "42"}}),
    )
    .await;
    let flow = w.teams.add_workflow();
    w.put_secret("teams", &[("webhookUrl", &flow)]).await;
    w.create_integration("teams", json!({"service": "msteams", "secretRef": {"name": "teams"}})).await;
    for n in ["bot", "cw", "teams"] {
        w.wait_condition(n, "Ready", "True", None).await;
        w.create_event(&format!("to-{n}"), event_to(n, "hello")).await;
    }
    for n in ["bot", "cw", "teams"] {
        w.wait_event_phase(&format!("to-{n}"), EventPhase::Delivered).await;
    }
    let slack = w.slack.messages();
    assert_eq!(slack[0].channel(), Some("C0ALERTS"));
    assert_eq!(slack[0].payload["icon_emoji"], ":bell:");
    let cw = w.chatwork.messages();
    assert_eq!(cw.len(), 1);
    assert!(cw[0].body.starts_with("[info][title]⚠️ Deploy[/title]hello"), "{}", cw[0].body);
    let teams = w.teams.messages();
    assert_eq!(teams.len(), 1);
    assert_eq!(teams[0].card()["type"], "AdaptiveCard");
    assert_no_secret(&captured_logs(), &[token, "cw-delivery-token", &flow], "the logs");
}}

on_both_stores! { async fn signed_webhook_with_a_stable_id_across_retries(w) {
    let url = w.webhook.add_endpoint("/hooks/signed");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    w.webhook.set_signing_secret("/hooks/signed", secret);
    w.put_secret("hook", &[("webhookUrl", &url), ("signingSecret", secret)]).await;
    w.create_integration("hook", json!({"service": "webhook", "secretRef": {"name": "hook"}})).await;
    w.wait_condition("hook", "Ready", "True", None).await;
    w.webhook.push_response(RequestMatcher::path("/hooks/signed"), ScriptedResponse::status(503));
    w.create_event("signed", event_to("hook", "payload")).await;
    let ev = w.wait_event_phase("signed", EventPhase::Delivered).await;
    assert_eq!(ev.status.unwrap().deliveries[0].attempts, 2);
    let ids = w.webhook.webhook_ids("/hooks/signed");
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], ids[1], "webhook-id must be stable across retries");
    let delivered = w.webhook.messages();
    assert_eq!(delivered.len(), 1, "the emulator verified the signature");
    assert_eq!(delivered[0].json().unwrap()["data"]["message"], "payload");
}}

on_both_stores! { async fn error_classes_count_or_not(w) {
    // Dead: the webhook dies after it was validated.
    let dead = ready_slack(&w, "dead", 5).await;
    w.slack.kill_webhook(&dead, "no_service");
    w.create_event("to-dead", event_to("dead", "x")).await;
    let ev = w.wait_event_phase("to-dead", EventPhase::Failed).await;
    assert_eq!(ev.status.unwrap().deliveries[0].reason.as_deref(), Some("DestinationNotFound"));
    let ni = w
        .wait_integration("dead", "one error", |ni| ni.status.as_ref().is_some_and(|s| s.consecutive_errors == 1))
        .await;
    let s = ni.status.unwrap();
    assert_eq!(s.total_errors, 1);
    let last = s.last_error.unwrap();
    assert_eq!(last.reason, "DestinationNotFound");
    assert!(!last.message.contains(&dead));

    // Rejected: fails the event, not the integration.
    let rejecting = ready_slack(&w, "rejecting", 5).await;
    w.slack.push_response(RequestMatcher::url(&rejecting), ScriptedResponse::text(400, "invalid_blocks"));
    w.create_event("to-rejecting", event_to("rejecting", "x")).await;
    let ev = w.wait_event_phase("to-rejecting", EventPhase::Failed).await;
    assert_eq!(ev.status.unwrap().deliveries[0].reason.as_deref(), Some("MessageRejected"));
    let ni = w.integration("rejecting").await.unwrap();
    assert_eq!(ni.status.unwrap().consecutive_errors, 0);

    // Transient until the retries run out (3 attempts in the tests): counts.
    let flaky = ready_slack(&w, "flaky", 5).await;
    w.slack.push_responses(RequestMatcher::url(&flaky), ScriptedResponse::status(502), 3);
    w.create_event("to-flaky", event_to("flaky", "x")).await;
    let ev = w.wait_event_phase("to-flaky", EventPhase::Failed).await;
    let d = &ev.status.unwrap().deliveries[0];
    assert_eq!((d.attempts, d.reason.as_deref()), (3, Some("ServiceUnavailable")));
    w.wait_integration("flaky", "one error", |ni| ni.status.as_ref().is_some_and(|s| s.consecutive_errors == 1)).await;
}}

on_both_stores! { async fn wait_hints_are_honoured_and_not_failures(w) {
    let url = ready_slack(&w, "limited", 5).await;
    // More 429s than attempts: waiting for a rate limit does not use them up.
    w.slack.push_responses(
        RequestMatcher::url(&url),
        ScriptedResponse::text(429, "rate_limited").with_retry_after(1),
        4,
    );
    let started = std::time::Instant::now();
    w.create_event("patient", event_to("limited", "x")).await;
    let ev = w.wait_event_phase("patient", EventPhase::Delivered).await;
    assert_eq!(ev.status.unwrap().deliveries[0].attempts, 5);
    assert!(started.elapsed() >= Duration::from_secs(4), "Retry-After was not honoured");
    let ni = w.integration("limited").await.unwrap();
    assert_eq!(ni.status.unwrap().total_errors, 0);
}}

on_both_stores! { async fn auto_disable_at_the_threshold_then_skip_then_re_enable(w) {
    let url = ready_slack(&w, "fragile", 2).await;
    w.slack.kill_webhook(&url, "invalid_token");
    w.create_event("f1", event_to("fragile", "1")).await;
    w.wait_event_phase("f1", EventPhase::Failed).await;
    let ni = w.integration("fragile").await.unwrap();
    assert_eq!(condition(&ni, "Disabled").unwrap().0, "False", "one error is below the threshold of 2");
    w.create_event("f2", event_to("fragile", "2")).await;
    w.wait_event_phase("f2", EventPhase::Failed).await;
    let ni = w.wait_condition("fragile", "Disabled", "True", Some("ErrorThreshold")).await;
    assert_eq!(condition(&ni, "Ready").unwrap().0, "False");
    let s = ni.status.unwrap();
    assert_eq!(s.consecutive_errors, 2);
    assert!(s.disabled_at.is_some());
    let ev = w.wait_k8s_event("fragile", "IntegrationDisabled").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));

    // Disabled: skipped without calling the service.
    let calls = w.slack.requests().len();
    w.create_event("f3", event_to("fragile", "3")).await;
    let ev = w.wait_event_phase("f3", EventPhase::Skipped).await;
    assert!(ev.status.unwrap().message.unwrap().contains("ErrorThreshold"));
    assert_eq!(w.slack.requests().len(), calls, "no call for a disabled integration");

    // Fix the destination and register again through the Secret.
    let fixed = w.slack.add_webhook("T1", "Bfixed");
    w.put_secret("fragile", &[("webhookUrl", &fixed)]).await;
    let ni = w.wait_condition("fragile", "Ready", "True", None).await;
    assert_eq!(ni.status.unwrap().consecutive_errors, 0);
    w.create_event("f4", event_to("fragile", "4")).await;
    w.wait_event_phase("f4", EventPhase::Delivered).await;

    // Again, and re-enable through the spec.
    w.slack.kill_webhook(&fixed, "no_service");
    for i in 5..7 {
        w.create_event(&format!("f{i}"), event_to("fragile", "x")).await;
        w.wait_event_phase(&format!("f{i}"), EventPhase::Failed).await;
    }
    w.wait_condition("fragile", "Disabled", "True", Some("ErrorThreshold")).await;
    w.slack.revive_webhook(&fixed);
    w.patch_integration("fragile", json!({"spec": {"errorThreshold": 3}})).await;
    let ni = w.wait_condition("fragile", "Ready", "True", None).await;
    assert_eq!(ni.status.unwrap().consecutive_errors, 0);

    // Again, fixed on the service's side: touching the Secret (a label) re-enables.
    w.slack.kill_webhook(&fixed, "no_service");
    for i in 7..10 {
        w.create_event(&format!("f{i}"), event_to("fragile", "x")).await;
        w.wait_event_phase(&format!("f{i}"), EventPhase::Failed).await;
    }
    w.wait_condition("fragile", "Disabled", "True", Some("ErrorThreshold")).await;
    w.slack.revive_webhook(&fixed);
    w.label_secret("fragile", json!({"kube-notify.io/reenable": "1"})).await;
    let ni = w.wait_condition("fragile", "Ready", "True", None).await;
    assert_eq!(ni.status.unwrap().consecutive_errors, 0);
}}

on_both_stores! { async fn manual_disable_wins_over_everything(w) {
    ready_slack(&w, "off", 5).await;
    w.patch_integration("off", json!({"spec": {"disabled": true}})).await;
    w.wait_condition("off", "Disabled", "True", Some("Manual")).await;
    let calls = w.slack.requests().len();
    w.create_event("muted", event_to("off", "x")).await;
    w.wait_event_phase("muted", EventPhase::Skipped).await;
    assert_eq!(w.slack.requests().len(), calls);
}}

on_both_stores! { async fn a_restart_never_sends_twice(w) {
    ready_slack(&w, "once", 5).await;
    w.create_event("once", event_to("once", "only once")).await;
    w.wait_event_phase("once", EventPhase::Delivered).await;
    w.stop_operator();
    w.start_operator();
    // The restarted operator re-lists and reconciles everything.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !w.readiness.is_ready() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.wait_reconciles_beyond(0).await;
    w.create_event("after", event_to("once", "second")).await;
    w.wait_event_phase("after", EventPhase::Delivered).await;
    let texts: Vec<String> = w.slack.messages().iter().filter_map(|m| m.text.clone()).collect();
    assert_eq!(texts.iter().filter(|t| t.contains("only once")).count(), 1, "{texts:?}");
}}

on_both_stores! { async fn fan_out_with_mixed_results(w) {
    for name in ["live", "dying", "off"] {
        let url = w.slack.add_webhook("T1", &format!("B{name}"));
        w.put_secret(name, &[("webhookUrl", &url)]).await;
        w.create_integration_labeled(
            name,
            json!({"team": "payroll"}),
            json!({"service": "slack", "secretRef": {"name": name}, "disabled": name == "off"}),
        )
        .await;
        if name == "dying" {
            w.wait_condition(name, "Ready", "True", None).await;
            w.slack.kill_webhook(&url, "channel_is_archived");
        }
    }
    w.create_integration_labeled(
        "other-team",
        json!({"team": "sales"}),
        json!({"service": "slack", "secretRef": {"name": "live"}}),
    )
    .await;
    w.wait_condition("live", "Ready", "True", None).await;
    w.wait_condition("off", "Disabled", "True", None).await;
    w.create_event(
        "fan",
        json!({"integrationSelector": {"matchLabels": {"team": "payroll"}}, "message": "to everyone"}),
    )
    .await;
    let ev = w.wait_event_phase("fan", EventPhase::PartiallyDelivered).await;
    let status = ev.status.unwrap();
    let phases: Vec<(String, DeliveryPhase)> =
        status.deliveries.iter().map(|d| (d.integration.clone(), d.phase)).collect();
    assert_eq!(
        phases,
        [
            ("dying".to_string(), DeliveryPhase::Failed),
            ("live".to_string(), DeliveryPhase::Delivered),
            ("off".to_string(), DeliveryPhase::Skipped)
        ]
    );
}}

on_both_stores! { async fn waiting_events_expire_at_the_deadline(w, |c| c.settings.event_deadline = Duration::from_secs(2)) {
    // creationTimestamp has whole seconds: a 2 s deadline is 1-2 s after creation.
    w.create_event("lost", event_to("nobody", "x")).await;
    let ev = w.wait_event_phase("lost", EventPhase::Failed).await;
    let s = ev.status.unwrap();
    assert_eq!(s.reason.as_deref(), Some("Expired"));
    assert!(s.message.unwrap().contains("does not exist"));
}}

on_both_stores! { async fn a_pending_event_is_delivered_once_its_integration_appears(w) {
    w.create_event("early", event_to("later", "x")).await;
    let ev = w
        .wait_event("early", "pending", |ev| ev.status.as_ref().and_then(|s| s.phase) == Some(EventPhase::Pending))
        .await;
    let status = ev.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("IntegrationNotFound"));
    assert!(status.message.unwrap().contains("\"later\" does not exist"));
    ready_slack(&w, "later", 5).await;
    w.wait_event_phase("early", EventPhase::Delivered).await;
}}

on_both_stores! { async fn finished_events_are_deleted_after_their_ttl(w) {
    ready_slack(&w, "ttl", 5).await;
    let mut spec = event_to("ttl", "x");
    spec["ttlSecondsAfterFinished"] = json!(0);
    let ev = w.create_event("short-lived", spec).await;
    w.wait_event_deleted("short-lived", ev.metadata.uid.as_deref().unwrap()).await;
    assert_eq!(w.slack.messages().len(), 1);
    // Without a TTL (and the operator's default off in tests) it stays.
    w.create_event("kept", event_to("ttl", "y")).await;
    w.wait_event_phase("kept", EventPhase::Delivered).await;
}}

on_both_stores! { async fn one_integration_in_creation_order_and_others_not_held_up(w, |c| c.http_timeout = Duration::from_secs(10)) {
    let slow = ready_slack(&w, "slow", 5).await;
    ready_slack(&w, "fast", 5).await;
    w.slack.push_response(RequestMatcher::url(&slow), ScriptedResponse::delayed_passthrough(Duration::from_secs(5)));
    for i in 0..4 {
        w.create_event(&format!("slow-{i}"), event_to("slow", &format!("s{i}"))).await;
    }
    w.create_event("fast-0", event_to("fast", "f0")).await;
    let fast_done = tokio::time::Instant::now();
    w.wait_event_phase("fast-0", EventPhase::Delivered).await;
    assert!(fast_done.elapsed() < Duration::from_secs(4), "a slow integration held up another one");
    for i in 0..4 {
        w.wait_event_phase(&format!("slow-{i}"), EventPhase::Delivered).await;
    }
    let order: Vec<String> = w
        .slack
        .messages()
        .iter()
        .filter_map(|m| m.text.clone())
        .filter(|t| t.contains(": s"))
        .map(|t| t.rsplit(": ").next().unwrap().to_string())
        .collect();
    assert_eq!(order, ["s0", "s1", "s2", "s3"]);
}}

on_both_stores! { async fn the_operator_stays_within_chatworks_room_limit(w) {
    w.chatwork.add_token("cw-rate-token", 8, "bot");
    w.chatwork.add_room(5, "busy");
    w.chatwork.set_role(5, "cw-rate-token", "member");
    w.put_secret("busy", &[("token", "cw-rate-token")]).await;
    w.create_integration(
        "busy",
        json!({"service": "chatwork", "secretRef": {"name": "busy"}, "chatwork": {"roomId": "5"}}),
    )
    .await;
    w.wait_condition("busy", "Ready", "True", None).await;
    for i in 0..11 {
        w.create_event(&format!("burst-{i:02}"), event_to("busy", &format!("m{i}"))).await;
    }
    for i in 0..11 {
        w.wait_event_phase(&format!("burst-{i:02}"), EventPhase::Delivered).await;
    }
    let limited = w.chatwork.requests().iter().filter(|r| r.status == Some(429)).count();
    assert_eq!(limited, 0, "the operator's own rate limiter should prevent 429s");
    assert_eq!(w.chatwork.messages().len(), 11);
}}

on_both_stores! { async fn a_stopping_operator_finishes_deliveries_in_flight(w) {
    let url = ready_slack(&w, "draining", 5).await;
    w.slack.push_response(RequestMatcher::url(&url), ScriptedResponse::delayed_passthrough(Duration::from_millis(800)));
    let before = w.slack.requests().len();
    w.create_event("in-flight", event_to("draining", "x")).await;
    // The service has the request; the operator is told to stop.
    w.slack.wait_for_requests(before + 1, WAIT).await;
    assert!(w.context().delivery.drain(WAIT).await, "drained");
    // Drained means sent and recorded: the next leader won't send it again.
    let ev = w.event("in-flight").await.unwrap();
    assert_eq!(ev.status.unwrap().phase, Some(EventPhase::Delivered));
}}

// What the operator keeps in memory per integration (notifier, credential
// check record, counter writer) goes once the integration is deleted.
on_both_stores! { async fn a_deleted_integration_is_forgotten(w) {
    for name in ["kept", "gone"] {
        ready_slack(&w, name, 5).await;
        w.create_event(&format!("ev-{name}"), event_to(name, "hello")).await;
        w.wait_event_phase(&format!("ev-{name}"), EventPhase::Delivered).await;
        w.wait_integration(name, "totalDelivered 1", |ni| ni.status.as_ref().is_some_and(|s| s.total_delivered == 1))
            .await;
    }
    let ctx = w.context();
    assert_eq!((ctx.delivery.notifiers().len(), ctx.credential_checks().len(), ctx.delivery.counters().writers()), (2, 2, 2));
    assert_eq!(ctx.prune_deleted(), 0, "nothing is dropped while both exist");

    w.delete_integration("gone").await;
    let key = kube::runtime::reflector::ObjectRef::new("gone").within(NS);
    let deadline = tokio::time::Instant::now() + WAIT;
    while ctx.caches.integrations.get(&key).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the watch never saw the deletion");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ctx.prune_deleted(), 3);
    assert_eq!((ctx.delivery.notifiers().len(), ctx.credential_checks().len(), ctx.delivery.counters().writers()), (1, 1, 1));
    // The one left still delivers.
    w.create_event("ev-kept-2", event_to("kept", "again")).await;
    w.wait_event_phase("ev-kept-2", EventPhase::Delivered).await;
}}

on_both_stores! { async fn an_event_may_target_at_most_max_targets_integrations(w, |c| c.settings.max_targets = 3) {
    for i in 0..4 {
        let name = format!("wide-{i}");
        let url = w.webhook.add_endpoint(&format!("/wide/{i}"));
        w.put_secret(&name, &[("webhookUrl", &url)]).await;
        let labels = if i < 3 { json!({"team": "wide", "fits": "yes"}) } else { json!({"team": "wide"}) };
        w.create_integration_labeled(&name, labels, json!({"service": "webhook", "secretRef": {"name": name}})).await;
    }
    for i in 0..4 {
        w.wait_condition(&format!("wide-{i}"), "Ready", "True", None).await;
    }
    w.create_event("too-wide", json!({"integrationSelector": {"matchLabels": {"team": "wide"}}, "message": "m"})).await;
    let ev = w.wait_event_phase("too-wide", EventPhase::Failed).await;
    let status = ev.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("TooManyTargets"));
    let message = status.message.unwrap();
    assert!(message.contains("spec.integrationSelector") && message.contains("matches 4") && message.contains("--max-targets"), "{message}");
    assert!(status.deliveries.is_empty());
    assert!(status.completion_time.is_some());

    w.create_event("fits", json!({"integrationSelector": {"matchLabels": {"fits": "yes"}}, "message": "m"})).await;
    let ev = w.wait_event_phase("fits", EventPhase::Delivered).await;
    assert_eq!(ev.status.unwrap().deliveries.len(), 3);
    assert_eq!(w.webhook.requests().len(), 3, "nothing was sent for the event that targets too many");
}}

/// A ready generic webhook integration `name` (labelled `labels`); its path on the emulator.
async fn ready_webhook_labelled(w: &World, name: &str, labels: serde_json::Value) -> String {
    let path = format!("/hooks/{name}");
    let url = w.webhook.add_endpoint(&path);
    w.put_secret(name, &[("webhookUrl", &url)]).await;
    w.create_integration_labeled(name, labels, json!({"service": "webhook", "secretRef": {"name": name}})).await;
    w.wait_condition(name, "Ready", "True", None).await;
    path
}

on_both_stores! { async fn a_large_event_is_kept_without_its_content_and_delivered_whole(w) {
    // Kept in the leader's memory without its content (over 8 KiB), read
    // once when delivered, and sent whole: to one target and to a fan-out.
    for i in 0..4 {
        ready_webhook_labelled(&w, &format!("big-{i}"), json!({"size": "big"})).await;
    }
    let message = format!("start {} end", "é".repeat(30_000));
    let fields: Vec<_> = (0..25).map(|i| json!({"name": format!("f{i}"), "value": "v".repeat(2000)})).collect();
    let reads_before = event_reads(&w);
    w.create_event("one", json!({"integrationRef": {"name": "big-0"}, "message": message, "fields": fields})).await;
    w.create_event("all", json!({"integrationSelector": {"matchLabels": {"size": "big"}}, "message": message, "fields": fields})).await;
    w.wait_event_phase("one", EventPhase::Delivered).await;
    let all = w.wait_event_phase("all", EventPhase::Delivered).await;
    assert_eq!(all.status.unwrap().deliveries.len(), 4);
    let bodies: Vec<serde_json::Value> =
        w.webhook.messages().iter().map(|m| serde_json::from_slice(&m.body).unwrap()).collect();
    assert_eq!(bodies.len(), 5);
    for body in &bodies {
        assert_eq!(body["data"]["message"], message, "the whole message was sent");
        assert_eq!(body["data"]["fields"].as_array().map(Vec::len), Some(25));
    }
    if let Some(reads) = event_reads(&w).zip(reads_before).map(|(now, before)| now - before) {
        assert_eq!(reads, 2, "each large event was read once for its content, the fan-out's too");
    }
}}

/// The operator's GETs of single events so far (cluster store only).
fn event_reads(w: &World) -> Option<usize> {
    w.standalone.is_none().then(|| {
        w.api
            .requests()
            .iter()
            .filter(|r| r.user == crate::support::operator::OPERATOR_USER)
            .filter(|r| r.resource == "notificationevents" && r.verb == "get")
            .count()
    })
}
