//! A new leader (a restart, a hand-over) over many integrations: it takes a
//! valid credential check on record over for the same spec and Secret
//! version, so it becomes useful without one API call per integration, and
//! reads a Secret only when an integration is checked again or first
//! delivers.

use kube_notify::crd::EventPhase;
use serde_json::json;

use crate::support::apiserver::RecordedRequest;
use crate::support::operator::{OPERATOR_USER, WAIT, World};

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
