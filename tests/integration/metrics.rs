//! `/metrics`: deliveries per integration, each integration's state from the
//! cache, the delivery histograms and the API requests; a deleted
//! integration's series go.

use std::time::Duration;

use kube_notify::crd::EventPhase;
use serde_json::json;

use crate::support::operator::{NS, Place, WAIT, World};

/// Serve the world's metrics (the operator's) and return a scraper.
async fn scraper(w: &World) -> impl Fn() -> futures::future::BoxFuture<'static, String> {
    let router = kube_notify::server::admin::router(w.readiness.clone(), w.metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    move || {
        Box::pin(async move { reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap() })
            as futures::future::BoxFuture<'static, String>
    }
}

/// The value of one series, if scraped.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

on_both_stores! { async fn metrics_per_integration_and_state(w) {
    let scrape = scraper(&w).await;
    let hook = w.webhook.add_endpoint("/hooks/seen");
    w.put_secret("seen", &[("webhookUrl", &hook)]).await;
    w.create_integration("seen", json!({"service": "webhook", "secretRef": {"name": "seen"}})).await;
    w.wait_condition("seen", "Ready", "True", None).await;
    w.put_secret("off", &[("webhookUrl", &w.webhook.add_endpoint("/hooks/off"))]).await;
    w.create_integration("off", json!({"service": "webhook", "secretRef": {"name": "off"}, "disabled": true})).await;
    w.wait_condition("off", "Disabled", "True", None).await;
    w.create_event("ev", json!({"integrationRef": {"name": "seen"}, "title": "Deploy", "message": "done"})).await;
    w.wait_event_phase("ev", EventPhase::Delivered).await;

    let delivered =
        format!(r#"kube_notify_deliveries_total{{namespace="{NS}",name="seen",service="webhook",outcome="delivered"}}"#);
    let ready = format!(r#"kube_notify_integration_state{{namespace="{NS}",name="seen",service="webhook",state="ready"}}"#);
    let off =
        format!(r#"kube_notify_integration_state{{namespace="{NS}",name="off",service="webhook",state="disabled_manual"}}"#);
    let errors = format!(r#"kube_notify_integration_consecutive_errors{{namespace="{NS}",name="seen",service="webhook"}}"#);
    // The state comes from the watch cache: it may lag the stored status a moment.
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let text = scrape().await;
        if sample(&text, &off).is_some() && sample(&text, &ready).is_some() {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "no state series in {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sample(&text, &delivered), Some(1.0), "{text}");
    assert_eq!(sample(&text, &ready), Some(1.0), "{text}");
    assert_eq!(sample(&text, &off), Some(1.0), "{text}");
    assert_eq!(sample(&text, &errors), Some(0.0), "{text}");
    assert_eq!(text.matches(r#"name="seen",service="webhook",state="#).count(), 1, "one state per integration: {text}");
    assert_eq!(sample(&text, r#"kube_notify_delivery_duration_seconds_count{service="webhook"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"kube_notify_delivery_attempts_sum{service="webhook"}"#), Some(1.0), "{text}");
    if w.place == Place::Kubernetes {
        // Every API request is counted, by verb and resource only.
        let watches = r#"kube_notify_api_requests_total{verb="watch",resource="notificationintegrations",code="200"}"#;
        assert!(sample(&text, watches).is_some_and(|n| n >= 1.0), "{text}");
        assert!(text.contains(r#"resource="notificationevents/status""#), "{text}");
    }
    assert!(!text.contains(&hook), "no credential in a label");

    // Deleted: its state goes at once (the cache), its delivery series with
    // what else is kept per integration.
    w.delete_integration("seen").await;
    let ctx = w.context();
    let key = kube::runtime::reflector::ObjectRef::new("seen").within(NS);
    let deadline = tokio::time::Instant::now() + WAIT;
    while ctx.caches.integrations.get(&key).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the watch never saw the deletion");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ctx.prune_deleted();
    let text = scrape().await;
    assert!(!text.contains(r#"name="seen""#), "{text}");
    assert_eq!(sample(&text, &off), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"kube_notify_delivery_duration_seconds_count{service="webhook"}"#), Some(1.0), "{text}");
}}

/// The leader's Lease renewals are API requests too: what the alert
/// `KubeNotifyNoLeader` counts (`patch` of `leases`, answered 2xx).
#[tokio::test]
async fn lease_renewals_are_counted() {
    let w = World::without_operator().await;
    let a =
        w.launch(crate::support::operator::Launch { leader: Some(World::leader_config("pod-a")), ..w.launch_config() });
    tokio::time::timeout(WAIT, a.leadership.wait_until(true)).await.expect("pod-a leads");
    let renewals = r#"kube_notify_api_requests_total{verb="patch",resource="leases",code="200"}"#;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = w.metrics.render();
        if sample(&text, renewals).is_some_and(|n| n >= 2.0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no renewals counted in {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
