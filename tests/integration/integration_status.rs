//! Status is written only when it changes; the manual switch; readiness.

use serde_json::json;

use crate::support::operator::{NS, World, condition};

#[tokio::test]
async fn no_status_write_or_probe_when_nothing_changed() {
    let w = World::start().await;
    let url = w.slack.add_webhook("T1", "B1");
    w.put_secret("quiet", &[("webhookUrl", &url)]).await;
    w.create_integration("quiet", json!({"service": "slack", "secretRef": {"name": "quiet"}})).await;
    w.wait_condition("quiet", "Ready", "True", None).await;
    let writes = w.api.writes_to("notificationintegrations", "status", NS, "quiet");
    assert_eq!(writes, 1, "one status write from nothing to ready");
    let probes = w.slack.requests().len();

    // A label change is a new watch event and a reconcile, but nothing to write or check.
    for i in 0..3 {
        let before = w.reconciles();
        w.integrations()
            .patch(
                "quiet",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"metadata": {"labels": {"touch": i.to_string()}}})),
            )
            .await
            .unwrap();
        w.wait_reconciles_beyond(before).await;
    }
    assert_eq!(w.api.writes_to("notificationintegrations", "status", NS, "quiet"), writes);
    assert_eq!(w.slack.requests().len(), probes, "no new probe without a change");
    let ni = w.integration("quiet").await.unwrap();
    assert_eq!(ni.metadata.generation, Some(1));
}

on_both_stores! { async fn the_disabled_flag_switches_the_integration_off_and_on(w) {
    let url = w.slack.add_webhook("T1", "B1");
    w.put_secret("switch", &[("webhookUrl", &url)]).await;
    w.create_integration("switch", json!({"service": "slack", "secretRef": {"name": "switch"}})).await;
    w.wait_condition("switch", "Ready", "True", None).await;

    w.patch_integration("switch", json!({"spec": {"disabled": true}})).await;
    let ni = w.wait_condition("switch", "Disabled", "True", Some("Manual")).await;
    assert_eq!(condition(&ni, "Ready").unwrap().0, "False");
    let status = ni.status.unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert!(status.disabled_at.is_some());
    assert_eq!(condition(&w.integration("switch").await.unwrap(), "CredentialsValid").unwrap().0, "True");
    let ev = w.wait_k8s_event("switch", "IntegrationDisabled").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));

    w.patch_integration("switch", json!({"spec": {"disabled": false}})).await;
    let ni = w.wait_condition("switch", "Ready", "True", None).await;
    assert_eq!(ni.status.unwrap().disabled_at, None);
}}

#[tokio::test]
async fn ready_once_the_caches_have_synced() {
    let w = World::start().await;
    let router = kube_notify::server::admin::router(w.readiness.clone(), w.metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("http://{addr}/livez")).send().await.unwrap().status(), 200);
    let deadline = tokio::time::Instant::now() + crate::support::operator::WAIT;
    while !w.readiness.is_ready() {
        assert!(tokio::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(http.get(format!("http://{addr}/readyz")).send().await.unwrap().status(), 200);
    let hook = w.webhook.add_endpoint("/hooks/metrics");
    w.put_secret("metrics", &[("webhookUrl", &hook)]).await;
    w.create_integration("metrics", json!({"service": "webhook", "secretRef": {"name": "metrics"}})).await;
    w.wait_condition("metrics", "Ready", "True", None).await;
    let metrics = http.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
    // Readiness means the watches synced; the metrics endpoint shows the counters.
    assert!(metrics.contains("kube_notify_reconciliations_total{kind=\"NotificationIntegration\"}"), "{metrics}");
    assert!(metrics.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
}

#[tokio::test]
async fn not_ready_before_the_caches_sync() {
    let w = World::without_operator().await;
    let router = kube_notify::server::admin::router(w.readiness.clone(), w.metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let status = reqwest::get(format!("http://{addr}/readyz")).await.unwrap().status();
    assert_eq!(status, 503);
}

/// A status write that conflicts re-reads the integration (`get`) and is
/// written again on what it read: nothing is lost, and the chart's `get`
/// grant is exercised on every run, not only when a conflict happens by chance.
#[tokio::test]
async fn a_conflicting_status_write_is_made_again_on_a_fresh_read() {
    use crate::support::apiserver::RequestMatcher;
    use crate::support::operator::OPERATOR_USER;
    let w = World::start().await;
    let status_write = RequestMatcher::any()
        .user(OPERATOR_USER)
        .verb("update")
        .resource("notificationintegrations")
        .subresource("status");
    w.api.fail_next(status_write, 409, "Conflict");
    let url = w.slack.add_webhook("T1", "B2");
    w.put_secret("contested", &[("webhookUrl", &url)]).await;
    w.create_integration("contested", json!({"service": "slack", "secretRef": {"name": "contested"}})).await;
    w.wait_condition("contested", "Ready", "True", None).await;
    let reads = w
        .api
        .requests()
        .iter()
        .filter(|r| {
            r.user == OPERATOR_USER
                && r.verb == "get"
                && r.resource == "notificationintegrations"
                && r.name == "contested"
        })
        .count();
    assert_eq!(reads, 1, "one fresh read after the conflict");
}
