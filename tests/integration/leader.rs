//! Leader election over a Lease: one leader at a time, hand-over on exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube_notify::leader::{LeaderConfig, run_as_leader};

use crate::support::operator::{OPERATOR_TOKEN, World};

fn config(identity: &str) -> LeaderConfig {
    LeaderConfig {
        namespace: "kube-notify".into(),
        lease_name: "kube-notify".into(),
        identity: identity.into(),
        duration_seconds: 3,
    }
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_hand_over() {
    let w = World::without_operator().await;
    let leading = Arc::new(AtomicUsize::new(0));
    let (stop_first, first_stopped) = tokio::sync::oneshot::channel::<()>();
    let (first_leads, first_leading) = tokio::sync::oneshot::channel::<()>();
    let l = leading.clone();
    let first = tokio::spawn(run_as_leader(w.api.client_as(OPERATOR_TOKEN), config("pod-a"), async move {
        l.fetch_add(1, Ordering::SeqCst);
        let _ = first_leads.send(());
        let _ = first_stopped.await;
        l.fetch_sub(1, Ordering::SeqCst);
    }));
    tokio::time::timeout(Duration::from_secs(10), first_leading).await.unwrap().unwrap();

    let (second_leads, second_leading) = tokio::sync::oneshot::channel::<()>();
    let l = leading.clone();
    let second = tokio::spawn(run_as_leader(w.api.client_as(OPERATOR_TOKEN), config("pod-b"), async move {
        assert_eq!(l.fetch_add(1, Ordering::SeqCst), 0, "two leaders at once");
        let _ = second_leads.send(());
        futures::future::pending::<()>().await
    }));
    // The second candidate waits while the first holds the Lease.
    let mut second_leading = second_leading;
    assert!(
        tokio::time::timeout(Duration::from_secs(4), &mut second_leading).await.is_err(),
        "pod-b took a held Lease"
    );

    let _ = stop_first.send(());
    first.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), second_leading).await.expect("pod-b never took over").unwrap();
    let lease = w.api.object("coordination.k8s.io", "v1", "leases", "kube-notify", "kube-notify").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "pod-b");
    second.abort();
}
