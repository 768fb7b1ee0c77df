//! The test message: one per new value of the annotation
//! `kube-notify.io/send-test`, counted like any delivery, its outcome on the
//! integration's `status.testMessage` and in an Event; the annotation stays.

use std::time::Duration;

use kube_notify::crd::{NotificationIntegration, SEND_TEST_ANNOTATION, TestMessagePhase, TestMessageStatus};
use serde_json::json;

use crate::support::apiserver::RequestMatcher;
use crate::support::operator::{WAIT, World, metric_value};
use crate::support::services::ScriptedResponse;

async fn ready_webhook(w: &World, name: &str, threshold: i32) -> String {
    let path = format!("/hooks/{name}");
    let url = w.webhook.add_endpoint(&path);
    w.put_secret(name, &[("webhookUrl", &url)]).await;
    w.create_integration(name, json!({"service": "webhook", "secretRef": {"name": name}, "errorThreshold": threshold}))
        .await;
    w.wait_condition(name, "Ready", "True", None).await;
    path
}

async fn ask_for_a_test(w: &World, name: &str, value: &str) {
    w.patch_integration(name, json!({"metadata": {"annotations": {SEND_TEST_ANNOTATION: value}}})).await;
}

fn test_of(ni: &NotificationIntegration) -> Option<&TestMessageStatus> {
    ni.status.as_ref()?.test_message.as_ref()
}

/// The integration once its test message for `request` reached `phase`.
async fn wait_test(w: &World, name: &str, request: &str, phase: TestMessagePhase) -> NotificationIntegration {
    w.wait_integration(name, &format!("test message {request} {phase:?}"), |ni| {
        test_of(ni).is_some_and(|t| t.request == request && t.phase == phase)
    })
    .await
}

/// A ready webhook integration `hook` whose test message "1" is in flight:
/// `Sending` on record and the message at the service, which answers after
/// `answer_after`. Its path.
async fn a_test_in_flight(w: &World, answer_after: Duration) -> String {
    let path = ready_webhook(w, "hook", 5).await;
    w.webhook.push_response(path.as_str(), ScriptedResponse::delayed_passthrough(answer_after));
    ask_for_a_test(w, "hook", "1").await;
    wait_test(w, "hook", "1", TestMessagePhase::Sending).await;
    w.webhook.wait_for_requests(1, WAIT).await;
    path
}

fn posts_to(w: &World, path: &str) -> usize {
    w.webhook.requests().iter().filter(|r| r.path == path).count()
}

on_both_stores! { async fn a_test_message_is_sent_once_per_value_counted_and_recorded(w) {
    let path = ready_webhook(&w, "hook", 5).await;
    ask_for_a_test(&w, "hook", "2026-12-06T10:00:00Z").await;
    let ni = wait_test(&w, "hook", "2026-12-06T10:00:00Z", TestMessagePhase::Delivered).await;
    let test = test_of(&ni).unwrap();
    assert_eq!((test.attempts, test.reason.as_deref()), (1, None), "{test:?}");
    let posted = w.webhook.wait_for_requests(1, WAIT).await;
    let body = posted[0].json().unwrap();
    assert_eq!(body["data"]["title"], "kube-notify test message", "{body}");
    assert!(body["data"]["message"].as_str().unwrap().contains("team-a/hook"), "{body}");
    w.wait_k8s_event("hook", "TestMessageDelivered").await;
    // It counts like any delivery.
    w.wait_integration("hook", "totalDelivered 1", |ni| ni.status.as_ref().is_some_and(|s| s.total_delivered == 1))
        .await;
    // Nothing the user wrote is removed.
    let ni = w.integration("hook").await.unwrap();
    assert_eq!(ni.metadata.annotations.as_ref().unwrap()[SEND_TEST_ANNOTATION], "2026-12-06T10:00:00Z");

    // Reconciles for other reasons (a label, a Secret change) send nothing more.
    let before = w.reconciles();
    w.patch_integration("hook", json!({"metadata": {"labels": {"team": "a"}}})).await;
    let url = w.webhook.add_endpoint(&path);
    w.put_secret("hook", &[("webhookUrl", &url), ("unused", "x")]).await;
    w.wait_integration("hook", "labelled", |ni| ni.metadata.labels.as_ref().is_some_and(|l| l.contains_key("team")))
        .await;
    w.wait_reconciles_beyond(before).await;
    assert_eq!(posts_to(&w, &path), 1, "no second test message for the same value");

    // A new value is a new test.
    ask_for_a_test(&w, "hook", "second").await;
    wait_test(&w, "hook", "second", TestMessagePhase::Delivered).await;
    assert_eq!(posts_to(&w, &path), 2, "one message per value");

    // Disabled by hand: skipped, nothing sent, said in a Warning.
    w.patch_integration("hook", json!({"spec": {"disabled": true}})).await;
    w.wait_condition("hook", "Disabled", "True", Some("Manual")).await;
    ask_for_a_test(&w, "hook", "third").await;
    let ni = wait_test(&w, "hook", "third", TestMessagePhase::Skipped).await;
    assert_eq!(test_of(&ni).unwrap().reason.as_deref(), Some("Manual"));
    let ev = w.wait_k8s_event("hook", "TestMessageSkipped").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(posts_to(&w, &path), 2, "nothing sent to a disabled integration");
}}

on_both_stores! { async fn a_failed_test_message_counts_toward_auto_disable(w) {
    let path = ready_webhook(&w, "fragile", 1).await;
    w.webhook.set_gone(&path);
    ask_for_a_test(&w, "fragile", "1").await;
    let ni = wait_test(&w, "fragile", "1", TestMessagePhase::Failed).await;
    let test = test_of(&ni).unwrap();
    assert!(test.reason.is_some() && test.message.is_some(), "{test:?}");
    let ev = w.wait_k8s_event("fragile", "TestMessageFailed").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    w.wait_condition("fragile", "Disabled", "True", Some("ErrorThreshold")).await;
    let url = w.webhook.url();
    assert!(!format!("{test:?}").contains(&url), "no webhook URL in the status");
}}

#[tokio::test]
async fn a_failed_status_write_after_the_send_never_sends_the_test_again() {
    let w = World::start().await;
    // The service answers after a while: the write of `Sending` is on
    // record by then, and the write of the outcome is made to fail.
    let path = a_test_in_flight(&w, Duration::from_millis(500)).await;
    let status_writes =
        RequestMatcher::any().verb("update").resource("notificationintegrations").subresource("status").name("hook");
    w.api.fail_next(status_writes.clone(), 500, "InternalError");
    let ni = wait_test(&w, "hook", "1", TestMessagePhase::Delivered).await;
    assert_eq!(test_of(&ni).unwrap().attempts, 1);
    assert!(w.api.requests().iter().any(|r| status_writes.matches(r) && r.code == 500), "the fault was hit");
    assert_eq!(posts_to(&w, &path), 1, "sent once, whatever the failed write");
}

on_both_stores! { async fn a_shutdown_while_sending_lets_the_test_finish_and_puts_it_on_record(w) {
    let path = a_test_in_flight(&w, Duration::from_millis(500)).await;
    // As on a rollout (SIGTERM): the drain waits for the send and its record.
    w.shutdown_operator().await;
    let ni = w.integration("hook").await.unwrap();
    assert_eq!(test_of(&ni).map(|t| t.phase), Some(TestMessagePhase::Delivered), "{:?}", ni.status);
    // The next leader has nothing to send.
    w.start_operator();
    let before = w.reconciles();
    w.patch_integration("hook", json!({"metadata": {"labels": {"poke": "1"}}})).await;
    w.wait_reconciles_beyond(before).await;
    assert_eq!(posts_to(&w, &path), 1);
    assert_eq!(test_of(&w.integration("hook").await.unwrap()).map(|t| t.phase), Some(TestMessagePhase::Delivered));
}}

#[tokio::test]
async fn a_stop_while_sending_is_recorded_as_interrupted_and_not_sent_again() {
    let mut w = World::start().await;
    let path = a_test_in_flight(&w, Duration::from_secs(30)).await;
    w.stop_operator();
    w.start_operator();
    let ni = wait_test(&w, "hook", "1", TestMessagePhase::Failed).await;
    assert_eq!(test_of(&ni).unwrap().reason.as_deref(), Some("Interrupted"));
    w.wait_k8s_event("hook", "TestMessageFailed").await;
    assert_eq!(posts_to(&w, &path), 1, "an interrupted test is not sent again");
}

#[tokio::test]
async fn an_api_server_down_while_the_test_is_sent_loses_and_duplicates_nothing() {
    let w = World::start().await;
    // Down while the service has the message, back once it has answered and
    // the record of the outcome failed: it waits in memory and is written
    // when the API answers again.
    let path = a_test_in_flight(&w, Duration::from_millis(300)).await;
    w.api.refuse_connections(true);
    let delivered = || metric_value(&w.metrics.render(), "kube_notify_deliveries_total", "delivered");
    let deadline = tokio::time::Instant::now() + WAIT;
    while delivered() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the service never answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A status write of the integration found the API down.
    let failed_writes = || {
        w.metrics
            .render()
            .lines()
            .filter(|l| {
                l.starts_with("kube_notify_api_requests_total") && l.contains("notificationintegrations/status")
            })
            .filter(|l| l.contains("code=\"transport\""))
            .count()
    };
    while failed_writes() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no status write was tried while the API was down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.api.refuse_connections(false);
    let ni = wait_test(&w, "hook", "1", TestMessagePhase::Delivered).await;
    assert_eq!(test_of(&ni).unwrap().attempts, 1);
    assert_eq!(posts_to(&w, &path), 1, "sent once, whatever the API did");
}
