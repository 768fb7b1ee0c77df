//! Leader election with a `coordination.k8s.io/v1` Lease (kube-lease-manager):
//! only the leader runs the controllers, so with several replicas nothing is
//! delivered twice and status is written by one writer.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
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

/// Wait to become the leader, then run `work` until it ends or the
/// leadership is lost (an error: the process should exit and restart as a
/// follower, never keep running controllers without the Lease).
pub async fn run_as_leader<F>(client: Client, config: LeaderConfig, work: F) -> anyhow::Result<()>
where
    F: Future<Output = ()>,
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
    while !*leader.borrow_and_update() {
        leader.changed().await?;
    }
    info!(identity = %config.identity, "became the leader");
    let lost = async {
        loop {
            if leader.changed().await.is_err() || !*leader.borrow_and_update() {
                return;
            }
        }
    };
    let result = tokio::select! {
        _ = work => Ok(()),
        _ = lost => {
            warn!(identity = %config.identity, "lost leadership");
            Err(anyhow::anyhow!("lost leadership of Lease {}/{}", config.namespace, config.lease_name))
        }
    };
    // Closing the channel makes the manager release the Lease, so that a
    // follower takes over at once instead of waiting for it to expire.
    drop(leader);
    if tokio::time::timeout(std::time::Duration::from_secs(5), lease_task).await.is_err() {
        warn!("the Lease was not released in time; it will expire");
    }
    result
}
