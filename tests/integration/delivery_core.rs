//! The delivery core under what real clusters do: fan-out to many
//! integrations while others write the same event, API errors, 429s and
//! refused connections for a while, watches that end on their own. Each
//! receiver gets each message exactly once, every event ends in a visible
//! final state, and the hot path costs one status write per event.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube_notify::crd::{DeliveryPhase, EventPhase};
use serde_json::json;

use crate::support::apiserver::{FaultKind, RequestMatcher};
use crate::support::operator::{NS, OPERATOR_USER, WAIT, World, metric_value};

/// `n` ready webhook integrations labelled `team=<team>`; their endpoint paths.
async fn webhooks(w: &World, team: &str, n: usize) -> Vec<String> {
    let mut paths = Vec::new();
    for i in 0..n {
        let name = format!("{team}-{i:02}");
        let path = format!("/hooks/{name}");
        let url = w.webhook.add_endpoint(&path);
        w.put_secret(&name, &[("webhookUrl", &url)]).await;
        w.create_integration_labeled(
            &name,
            json!({"team": team}),
            json!({"service": "webhook", "secretRef": {"name": name}}),
        )
        .await;
        paths.push(path);
    }
    for i in 0..n {
        w.wait_condition(&format!("{team}-{i:02}"), "Ready", "True", None).await;
    }
    paths
}

/// Posts per endpoint path.
fn posts_by_path(w: &World) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for r in w.webhook.requests() {
        *by.entry(r.path.clone()).or_default() += 1;
    }
    by
}

fn event_status_writes(w: &World, name: &str) -> usize {
    w.api.writes_to("notificationevents", "status", NS, name)
}

/// Requests the operator made with `verb` on `resource`.
fn operator_calls(w: &World, verb: &str, resource: &str) -> usize {
    w.api.requests().iter().filter(|r| r.user == OPERATOR_USER && r.verb == verb && r.resource == resource).count()
}

#[tokio::test]
async fn fan_out_to_25_integrations_sends_each_exactly_once_while_others_write_the_event() {
    let w = World::start().await;
    // Watches end on their own, as a real server's request timeout makes them.
    w.api.set_watch_lifetime(Some(Duration::from_millis(400)));
    let paths = webhooks(&w, "payroll", 25).await;
    // The first status writes are slow to be served, so the other writer's
    // changes land in between and those writes conflict.
    let writes = RequestMatcher::any().resource("notificationevents").subresource("status").verb("update");
    let slow = w.api.inject(writes, FaultKind::Delay(Duration::from_millis(150)), Some(6));
    let events = ["fan-a", "fan-b", "fan-c"];
    for name in events {
        w.create_event(name, json!({"integrationSelector": {"matchLabels": {"team": "payroll"}}, "message": name}))
            .await;
    }
    // Another writer on the same objects (labels: a new resourceVersion each
    // time), until the events are done, so status writes conflict.
    let meddler = {
        let api = w.events();
        tokio::spawn(async move {
            for i in 0..300 {
                for name in events {
                    let patch = json!({"metadata": {"labels": {"touched": i.to_string()}}});
                    let _ = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await;
                }
                let done = futures::future::join_all(events.map(|n| api.get(n))).await;
                if done.iter().all(|e| {
                    e.as_ref().ok().and_then(|e| e.status.as_ref()).and_then(|s| s.phase) == Some(EventPhase::Delivered)
                }) {
                    return i + 1;
                }
            }
            300
        })
    };
    for name in events {
        let ev = w.wait_event_phase(name, EventPhase::Delivered).await;
        let status = ev.status.unwrap();
        assert_eq!(status.deliveries.len(), 25);
        assert!(status.deliveries.iter().all(|d| d.phase == DeliveryPhase::Delivered && d.attempts == 1));
    }
    let rounds = meddler.await.unwrap();
    assert!(rounds > 0, "the other writer ran");
    let posts = posts_by_path(&w);
    for path in &paths {
        assert_eq!(posts.get(path), Some(&3), "{path}: each of the 3 events exactly once; all: {posts:?}");
    }
    // Conflicts happened and were resolved by re-reading, not by re-sending.
    let conflicts: usize = w
        .api
        .requests()
        .iter()
        .filter(|r| r.user == OPERATOR_USER && r.resource == "notificationevents" && r.code == 409)
        .count();
    assert!(w.api.fault_hits(slow) > 0);
    assert!(conflicts > 0, "the other writer made status writes conflict");
}

#[tokio::test]
async fn status_write_errors_for_a_while_never_cause_a_second_send() {
    let w = World::start().await;
    let paths = webhooks(&w, "ops", 1).await;
    // Every status write of events fails for a while: 500s, and 429s with a wait hint.
    let writes = || RequestMatcher::any().resource("notificationevents").subresource("status").verb("update");
    let failing = w.api.inject(
        writes(),
        FaultKind::Status { code: 500, reason: "InternalError".into(), retry_after: None },
        None,
    );
    w.create_event("e1", json!({"integrationRef": {"name": "ops-00"}, "message": "once"})).await;
    w.webhook.wait_for_requests(1, WAIT).await;
    let started = tokio::time::Instant::now();
    assert!(w.api.wait_until(WAIT, |api| api.fault_hits(failing) >= 4).await, "the writer retries");
    // Backoff (50 ms doubling, test settings): four tries take at least 50+100+200 ms, less jitter.
    assert!(started.elapsed() >= Duration::from_millis(250), "retries back off: {:?}", started.elapsed());
    // Then 429s with a wait hint: injected before the 500s are cleared, so
    // the next write meets them (faults match in the order injected).
    let limited = w.api.inject(
        writes(),
        FaultKind::Status { code: 429, reason: "TooManyRequests".into(), retry_after: Some(1) },
        Some(3),
    );
    w.api.clear_fault(failing);
    let ev = w.wait_event_phase("e1", EventPhase::Delivered).await;
    assert_eq!(ev.status.unwrap().deliveries[0].attempts, 1);
    assert_eq!(w.api.fault_hits(limited), 3, "every 429 was met before the write went through");
    assert_eq!(posts_by_path(&w).get(&paths[0]), Some(&1), "sent once, whatever the API said");
    let errors = metric_value(&w.metrics.render(), "kube_notify_api_errors_total", "NotificationEvent");
    assert!(errors >= 4, "API errors are counted: {errors}");
}

#[tokio::test]
async fn an_api_server_that_refuses_connections_for_a_while_loses_and_duplicates_nothing() {
    let w = World::start().await;
    let paths = webhooks(&w, "night", 2).await;
    for i in 0..6 {
        w.create_event(
            &format!("n{i}"),
            json!({"integrationRef": {"name": format!("night-{:02}", i % 2)}, "message": "m"}),
        )
        .await;
    }
    // Down as soon as the first message went out: the rest is sent from the
    // caches, and the outcomes wait for the API to come back.
    w.webhook.wait_for_requests(1, WAIT).await;
    w.api.refuse_connections(true);
    w.webhook.wait_for_requests(6, WAIT).await;
    w.api.refuse_connections(false);
    for i in 0..6 {
        w.wait_event_phase(&format!("n{i}"), EventPhase::Delivered).await;
    }
    let posts = posts_by_path(&w);
    assert_eq!((posts.get(&paths[0]), posts.get(&paths[1])), (Some(&3), Some(&3)), "{posts:?}");
    for i in 0..2 {
        w.wait_integration(&format!("night-{i:02}"), "totalDelivered 3", |ni| {
            ni.status.as_ref().is_some_and(|s| s.total_delivered == 3)
        })
        .await;
    }
}

#[tokio::test]
async fn a_single_target_event_costs_one_status_write_and_no_reads() {
    let w = World::start().await;
    webhooks(&w, "cheap", 1).await;
    let (gets_before, integration_gets_before) =
        (operator_calls(&w, "get", "notificationevents"), operator_calls(&w, "get", "notificationintegrations"));
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    for name in &names {
        w.create_event(name, json!({"integrationRef": {"name": "cheap-00"}, "message": name})).await;
    }
    for name in &names {
        w.wait_event_phase(name, EventPhase::Delivered).await;
    }
    for name in &names {
        assert_eq!(event_status_writes(&w, name), 1, "{name}: the final status is its only write");
    }
    assert_eq!(operator_calls(&w, "get", "notificationevents"), gets_before, "no read of events");
    assert_eq!(
        operator_calls(&w, "get", "notificationintegrations"),
        integration_gets_before,
        "no read of integrations"
    );
    w.wait_integration("cheap-00", "totalDelivered 10", |ni| {
        ni.status.as_ref().is_some_and(|s| s.total_delivered == 10)
    })
    .await;
    let counter_writes = w.api.writes_to("notificationintegrations", "status", NS, "cheap-00");
    assert!(counter_writes < 10, "successes are batched: {counter_writes} integration status writes");
}

#[tokio::test]
async fn an_event_that_waits_in_its_queue_shows_pending_then_one_final_write() {
    let w = World::start_with(|c| c.settings.queued_status_after = Duration::from_millis(200)).await;
    let paths = webhooks(&w, "slow", 1).await;
    // The receiver holds the first message, so the second waits in the queue.
    w.webhook.push_response(
        crate::support::services::RequestMatcher::path(&paths[0]),
        crate::support::services::ScriptedResponse::delayed_passthrough(Duration::from_millis(1500)),
    );
    w.create_event("first", json!({"integrationRef": {"name": "slow-00"}, "message": "1"})).await;
    w.webhook.wait_for_requests(1, WAIT).await;
    w.create_event("second", json!({"integrationRef": {"name": "slow-00"}, "message": "2"})).await;
    let waiting = w.wait_event_phase("second", EventPhase::Pending).await;
    assert_eq!(waiting.status.unwrap().reason.as_deref(), Some("Queued"), "the wait is visible, with its reason");
    w.wait_event_phase("second", EventPhase::Delivered).await;
    assert_eq!(event_status_writes(&w, "second"), 2, "Pending, then the final state");
}

#[tokio::test]
async fn a_failed_counter_write_is_retried_and_nothing_is_dropped() {
    let w = World::start().await;
    webhooks(&w, "count", 1).await;
    let counters = RequestMatcher::any().resource("notificationintegrations").subresource("status").verb("update");
    let fault = w.api.inject(
        counters,
        FaultKind::Status { code: 500, reason: "InternalError".into(), retry_after: None },
        Some(3),
    );
    for i in 0..3 {
        w.create_event(&format!("k{i}"), json!({"integrationRef": {"name": "count-00"}, "message": "m"})).await;
    }
    for i in 0..3 {
        w.wait_event_phase(&format!("k{i}"), EventPhase::Delivered).await;
    }
    w.wait_integration("count-00", "totalDelivered 3", |ni| ni.status.as_ref().is_some_and(|s| s.total_delivered == 3))
        .await;
    assert_eq!(w.api.fault_hits(fault), 3);
    // A conflict (another writer) is resolved by reading the integration again.
    let counters = RequestMatcher::any().resource("notificationintegrations").subresource("status").verb("update");
    let conflict =
        w.api.inject(counters, FaultKind::Status { code: 409, reason: "Conflict".into(), retry_after: None }, Some(1));
    w.create_event("k3", json!({"integrationRef": {"name": "count-00"}, "message": "m"})).await;
    w.wait_integration("count-00", "totalDelivered 4", |ni| ni.status.as_ref().is_some_and(|s| s.total_delivered == 4))
        .await;
    assert_eq!(w.api.fault_hits(conflict), 1);
    assert!(operator_calls(&w, "get", "notificationintegrations") > 0, "re-read after the conflict");
}

#[tokio::test]
async fn drain_writes_batched_counters_before_the_lease_goes() {
    let w = World::start_with(|c| c.settings.counter_flush = Duration::from_secs(3600)).await;
    webhooks(&w, "drain", 1).await;
    w.create_event("d1", json!({"integrationRef": {"name": "drain-00"}, "message": "m"})).await;
    w.wait_event_phase("d1", EventPhase::Delivered).await;
    let ni = w.integrations().get("drain-00").await.unwrap();
    assert_eq!(ni.status.unwrap().total_delivered, 0, "still batched");
    assert!(w.context().delivery.drain(WAIT).await, "drained");
    let ni = w.integrations().get("drain-00").await.unwrap();
    assert_eq!(ni.status.unwrap().total_delivered, 1, "flushed by the drain");
    assert_eq!(w.context().delivery.counters().unwritten(), 0);
}

#[tokio::test]
async fn known_outcomes_are_forgotten_once_their_events_are_final() {
    let w = World::start().await;
    webhooks(&w, "mem", 3).await;
    for i in 0..6 {
        w.create_event(
            &format!("m{i}"),
            json!({"integrationSelector": {"matchLabels": {"team": "mem"}}, "message": "m"}),
        )
        .await;
    }
    for i in 0..6 {
        w.wait_event_phase(&format!("m{i}"), EventPhase::Delivered).await;
    }
    let ctx = w.context();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ctx.delivery.outcomes().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "outcomes of final events are kept");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn events_queued_past_their_deadline_expire_without_a_call_or_a_requeue_storm() {
    // The head is sent well within its deadline, and held (within the HTTP
    // timeout) well past the others'.
    let w = World::start_with(|c| {
        c.settings.event_deadline = Duration::from_millis(1500);
        c.http_timeout = Duration::from_secs(10);
    })
    .await;
    let paths = webhooks(&w, "late", 1).await;
    // The first message holds the queue well past the others' deadline.
    w.webhook.push_response(
        crate::support::services::RequestMatcher::path(&paths[0]),
        crate::support::services::ScriptedResponse::delayed_passthrough(Duration::from_secs(4)),
    );
    w.create_event("head", json!({"integrationRef": {"name": "late-00"}, "message": "head"})).await;
    w.webhook.wait_for_requests(1, WAIT).await;
    let before = metric_value(&w.metrics.render(), "kube_notify_reconciliations_total", "NotificationEvent");
    for i in 0..8 {
        w.create_event(&format!("q{i}"), json!({"integrationRef": {"name": "late-00"}, "message": "late"})).await;
    }
    for i in 0..8 {
        let ev = w.wait_event_phase(&format!("q{i}"), EventPhase::Failed).await;
        assert_eq!(ev.status.unwrap().reason.as_deref(), Some("Expired"));
    }
    w.wait_event_phase("head", EventPhase::Delivered).await;
    assert_eq!(w.webhook.requests().len(), 1, "expired deliveries make no call");
    let reconciles =
        metric_value(&w.metrics.render(), "kube_notify_reconciliations_total", "NotificationEvent") - before;
    // A few per event (created, queued, outcome, final), not ten a second each while they wait.
    assert!(reconciles < 80, "{reconciles} reconciles for 8 events");
}
