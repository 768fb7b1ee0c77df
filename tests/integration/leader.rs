//! Leader election over a Lease: one leader at a time, drain before release,
//! hand-over on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    let drained = Arc::new(AtomicBool::new(false));

    let (stop_first, first_shutdown) = tokio::sync::watch::channel(false);
    let (first_leads, first_leading) = tokio::sync::oneshot::channel::<()>();
    let l = leading.clone();
    let first_work = async move {
        l.fetch_add(1, Ordering::SeqCst);
        let _ = first_leads.send(());
        futures::future::pending::<anyhow::Result<()>>().await
    };
    let (l, d) = (leading.clone(), drained.clone());
    let first_drain = async move {
        // Still the only leader while draining: the Lease is released after.
        l.fetch_sub(1, Ordering::SeqCst);
        d.store(true, Ordering::SeqCst);
    };
    let first = tokio::spawn(run_as_leader(
        w.api.client_as(OPERATOR_TOKEN),
        config("pod-a"),
        first_shutdown,
        first_work,
        first_drain,
    ));
    tokio::time::timeout(Duration::from_secs(10), first_leading).await.unwrap().unwrap();

    let (_keep, second_shutdown) = tokio::sync::watch::channel(false);
    let (second_leads, second_leading) = tokio::sync::oneshot::channel::<()>();
    let (l, d) = (leading.clone(), drained.clone());
    let second = tokio::spawn(run_as_leader(
        w.api.client_as(OPERATOR_TOKEN),
        config("pod-b"),
        second_shutdown,
        async move {
            assert_eq!(l.fetch_add(1, Ordering::SeqCst), 0, "two leaders at once");
            assert!(d.load(Ordering::SeqCst), "the first leader drained before releasing");
            let _ = second_leads.send(());
            futures::future::pending::<anyhow::Result<()>>().await
        },
        async {},
    ));
    // The second candidate waits while the first holds the Lease.
    let mut second_leading = second_leading;
    assert!(
        tokio::time::timeout(Duration::from_secs(4), &mut second_leading).await.is_err(),
        "pod-b took a held Lease"
    );

    // Shutting the first down drains it and hands the Lease over at once.
    stop_first.send(true).unwrap();
    first.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), second_leading).await.expect("pod-b never took over").unwrap();
    let lease = w.api.object("coordination.k8s.io", "v1", "leases", "kube-notify", "kube-notify").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "pod-b");
    second.abort();
}

#[tokio::test]
async fn a_follower_stops_at_once_on_shutdown() {
    let w = World::without_operator().await;
    let (_keep, holder_shutdown) = tokio::sync::watch::channel(false);
    let (leads, leading) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn(run_as_leader(
        w.api.client_as(OPERATOR_TOKEN),
        config("pod-a"),
        holder_shutdown,
        async move {
            let _ = leads.send(());
            futures::future::pending::<anyhow::Result<()>>().await
        },
        async {},
    ));
    tokio::time::timeout(Duration::from_secs(10), leading).await.unwrap().unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(run_as_leader(
        w.api.client_as(OPERATOR_TOKEN),
        config("pod-b"),
        shutdown,
        async { panic!("a follower never works") },
        async {},
    ));
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), follower).await.expect("the follower did not stop").unwrap().unwrap();
    holder.abort();
}
