//! A new leader (a restart, a hand-over) over many integrations: it takes a
//! valid credential check on record over for the same spec and Secret
//! version, so it becomes useful without one API call per integration, and
//! reads a Secret only when an integration is checked again or first
//! delivers.

use std::time::Duration;

use kube_notify::crd::EventPhase;
use serde_json::json;

use crate::support::apiserver::RecordedRequest;
use crate::support::operator::{NS, OPERATOR_USER, WAIT, World};

/// The operator's requests from `from` on.
fn operator_requests(w: &World, from: usize) -> Vec<RecordedRequest> {
    w.api.requests().into_iter().skip(from).filter(|r| r.user == OPERATOR_USER).collect()
}

fn secret_reads(requests: &[RecordedRequest]) -> Vec<String> {
    requests.iter().filter(|r| r.resource == "secrets" && r.verb == "get").map(|r| r.name.clone()).collect()
}

fn status_writes(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.resource == "notificationintegrations" && matches!(r.verb.as_str(), "update" | "patch"))
        .map(|r| r.name.clone())
        .collect()
}

#[tokio::test]
async fn a_new_leader_takes_over_ready_integrations_without_reading_their_secrets() {
    const N: usize = 40;
    let mut w = World::start().await;
    let names: Vec<String> = (0..N).map(|i| format!("hook-{i}")).collect();
    for name in &names {
        let url = w.webhook.add_endpoint(&format!("/hooks/{name}"));
        w.put_secret(name, &[("webhookUrl", &url)]).await;
        w.create_integration(name, json!({"service": "webhook", "secretRef": {"name": name}})).await;
    }
    for name in &names {
        w.wait_condition(name, "Ready", "True", None).await;
    }
    // Each status names the Secret version its credentials were checked with.
    let secret = w.secrets_in(crate::support::operator::NS).get("hook-0").await.unwrap();
    let status = w.integration("hook-0").await.unwrap().status.unwrap();
    assert_eq!(status.secret_resource_version, secret.metadata.resource_version);

    w.shutdown_operator().await;
    // While no leader runs, hook-1's Secret is rotated: that one is checked anew.
    let rotated = w.webhook.add_endpoint("/hooks/hook-1-rotated");
    w.put_secret("hook-1", &[("webhookUrl", &rotated)]).await;

    let from = w.api.requests().len();
    let reconciles = w.reconciles();
    w.start_operator();
    tokio::time::timeout(WAIT, w.readiness.wait()).await.expect("ready");
    // Every integration reconciled once by the new leader.
    let all = w.api.wait_until(WAIT, |_| w.reconciles() >= reconciles + N as u64).await;
    assert!(all, "the new leader reconciled every integration");
    let rotated_version =
        w.secrets_in(crate::support::operator::NS).get("hook-1").await.unwrap().metadata.resource_version;
    w.wait_integration("hook-1", "hook-1 checked with its new Secret", |ni| {
        ni.status.as_ref().and_then(|s| s.secret_resource_version.clone()) == rotated_version
    })
    .await;
    let started = operator_requests(&w, from);
    assert_eq!(secret_reads(&started), vec!["hook-1".to_string()], "only the rotated Secret is read at start");
    assert_eq!(status_writes(&started), vec!["hook-1".to_string()], "only the rotated one's status changes");

    // A Secret is read when its integration first delivers, and kept.
    for i in 0..2 {
        w.create_event(&format!("ev-{i}"), json!({"integrationRef": {"name": "hook-39"}, "message": "hi"})).await;
        w.wait_event_phase(&format!("ev-{i}"), EventPhase::Delivered).await;
    }
    let reads = secret_reads(&operator_requests(&w, from));
    assert_eq!(reads.iter().filter(|n| *n == "hook-39").count(), 1, "read once, at the first delivery: {reads:?}");
}

/// An integration `name` as a previous leader left it: Ready, its
/// credentials checked with Secret version `secret_version`.
fn ready_on_record(name: &str, secret_version: &str) -> serde_json::Value {
    use kube_notify::crd::NotificationIntegration;
    use kube_notify::crd::conditions::ConditionStatus;
    use kube_notify::status::integration::{CredentialsCondition, StatusInput, Subject, desired_status, reason};
    let mut object = json!({
        "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"service": "webhook", "secretRef": {"name": name}},
    });
    let ni: NotificationIntegration = serde_json::from_value(object.clone()).unwrap();
    let input = StatusInput {
        generation: Some(1),
        manually_disabled: false,
        credentials: CredentialsCondition {
            status: ConditionStatus::True,
            reason: reason::VALID.into(),
            message: "the service accepted the credentials".into(),
        },
        secret_version: Some(secret_version.into()),
        subject: Subject::of(&ni),
    };
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    object["status"] = serde_json::to_value(desired_status(&Default::default(), &input, &now)).unwrap();
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_renewed_while_10000_integrations_start_on_a_slow_api() {
    use crate::support::apiserver::{FaultKind, InFlightLimit, RequestMatcher};
    use crate::support::operator::{Launch, OPERATOR_TOKEN};
    const N: usize = 10_000;
    // The API server is not starved by the operator's start (another process on a cluster).
    let w = World::with_api_apart().await;
    let url = w.webhook.add_endpoint("/hooks/all");
    let secrets: Vec<_> = (0..N)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("hook-{i}"), "namespace": NS},
                   "stringData": {"webhookUrl": url}})
        })
        .collect();
    w.api.create_objects(secrets).unwrap();
    let versions: std::collections::HashMap<String, String> = w
        .secrets_in(NS)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| (s.metadata.name.unwrap(), s.metadata.resource_version.unwrap()))
        .collect();
    let integrations = (0..N).map(|i| format!("hook-{i}")).map(|n| ready_on_record(&n, &versions[&n])).collect();
    w.api.create_objects(integrations).unwrap();

    // API Priority and Fairness: the operator's requests share one flow; the
    // Lease answers slowly, and so would every Secret read.
    w.api.limit_in_flight(Some(InFlightLimit { per_user: 4, queue: 64, retry_after_seconds: 1 }));
    let slow = |ms| FaultKind::Delay(Duration::from_millis(ms));
    w.api.inject(RequestMatcher::any().resource("leases"), slow(300), None);
    w.api.inject(RequestMatcher::any().resource("secrets").verb("get"), slow(50), None);
    let leader = kube_notify::leader::LeaderConfig {
        lease_duration: Duration::from_secs(6),
        renew_deadline: Duration::from_secs(4),
        retry_period: Duration::from_secs(1),
        ..kube_notify::leader::LeaderConfig::new("kube-notify", "kube-notify", "pod-a")
    };
    let renew_deadline = leader.renew_deadline;
    let from = w.api.requests().len();
    let reconciles = w.reconciles();
    let mut launch = Launch { leader: Some(leader), token: OPERATOR_TOKEN.into(), ..w.launch_config() };
    // Re-checks fall anywhere within the period: with a day, a few in a minute.
    launch.operator.settings.revalidate_period = Duration::from_secs(24 * 3600);
    let a = w.launch(launch);
    let long = Duration::from_secs(120);
    tokio::time::timeout(long, a.leadership.wait_until(true)).await.expect("it leads");
    let stepped_down = tokio::spawn({
        let leadership = a.leadership.clone();
        async move { leadership.wait_until(false).await }
    });
    tokio::time::timeout(long, a.readiness.wait()).await.expect("ready");
    w.create_event("to-the-last", json!({"integrationRef": {"name": format!("hook-{}", N - 1)}, "message": "hi"}))
        .await;
    let all = w.api.wait_until(long, |_| w.reconciles() >= reconciles + N as u64).await;
    assert!(all, "every integration reconciled");
    w.wait_event_phase("to-the-last", EventPhase::Delivered).await;
    // Leading on for longer than the renew deadline once all have started,
    // and never stepped down since it first led.
    let span = renew_deadline * 2;
    assert!(tokio::time::timeout(span, a.leadership.wait_until(false)).await.is_err(), "stepped down");
    if stepped_down.is_finished() {
        let logs = crate::support::operator::captured_logs();
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("leader") || l.contains("Lease") || l.contains("stepped") || l.contains("renew"))
            .collect();
        panic!("stepped down while the integrations started:\n{}", lines.join("\n"));
    }
    let started = operator_requests(&w, from);
    let reads = secret_reads(&started);
    assert!(reads.contains(&format!("hook-{}", N - 1)), "the Secret delivered to was read");
    assert!(reads.len() <= 50, "{} Secret reads at start, not one per integration", reads.len());
    let writes = status_writes(&started);
    assert!(writes.iter().all(|n| *n == format!("hook-{}", N - 1)), "only the delivery's counters: {writes:?}");
    let non_watch = started.iter().filter(|r| r.verb != "watch").count();
    assert!(non_watch < 200, "API calls at start do not grow with integrations: {non_watch}");
    let lease_waits = started.iter().filter(|r| r.resource == "leases").map(|r| r.queued).max().unwrap_or_default();
    assert!(lease_waits < renew_deadline / 2, "Lease requests waited {lease_waits:?} in the API server's queue");
    a.shutdown().await.unwrap();
}
