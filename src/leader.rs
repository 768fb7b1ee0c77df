//! Leader election with a `coordination.k8s.io/v1` Lease (kube-lease-manager):
//! only the leader runs the controllers, so with several replicas nothing is
//! delivered twice and status is written by one writer.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tracing::{info, warn};

/// Where the Lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    /// Seconds a Lease is held without renewal.
    pub duration_seconds: u64,
}

/// Wait to become the leader, then run `work` until it ends, `shutdown`
/// turns true, or the leadership is lost (an error: the process should exit
/// and restart as a follower). Before the Lease is released, `drain` runs, so
/// that deliveries in flight are recorded before another leader starts.
pub async fn run_as_leader<W, D>(
    client: Client,
    config: LeaderConfig,
    mut shutdown: watch::Receiver<bool>,
    work: W,
    drain: D,
) -> anyhow::Result<()>
where
    W: Future<Output = anyhow::Result<()>>,
    D: Future<Output = ()>,
{
    let params =
        LeaseParams::new(config.identity.clone(), config.duration_seconds.max(2), (config.duration_seconds / 3).max(1));
    let manager = LeaseManagerBuilder::new(client, &config.lease_name)
        .with_namespace(&config.namespace)
        .with_parameters(params)
        .build()
        .await?;
    let (mut leader, lease_task) = manager.watch().await;
    info!(lease = %config.lease_name, namespace = %config.namespace, identity = %config.identity, "waiting for leadership");
    let became_leader = async {
        loop {
            let is_leader = *leader.borrow_and_update();
            if is_leader {
                return anyhow::Ok(());
            }
            leader.changed().await?;
        }
    };
    tokio::select! {
        res = became_leader => res?,
        _ = stopped(&mut shutdown) => {
            drop(leader);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), lease_task).await;
            return Ok(());
        }
    }
    info!(identity = %config.identity, "became the leader");
    let lost = async {
        loop {
            if leader.changed().await.is_err() {
                return;
            }
            let still = *leader.borrow_and_update();
            if !still {
                return;
            }
        }
    };
    let result = tokio::select! {
        res = work => res,
        _ = stopped(&mut shutdown) => Ok(()),
        _ = lost => {
            warn!(identity = %config.identity, "lost leadership");
            Err(anyhow::anyhow!("lost leadership of Lease {}/{}", config.namespace, config.lease_name))
        }
    };
    drain.await;
    // Closing the channel makes the manager release the Lease, so that a
    // follower takes over at once instead of waiting for it to expire.
    drop(leader);
    if tokio::time::timeout(std::time::Duration::from_secs(5), lease_task).await.is_err() {
        warn!("the Lease was not released in time; it will expire");
    }
    result
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
