//! Leader election with a `coordination.k8s.io/v1` Lease (kube-lease-manager):
//! only the leader runs the controllers, so with several replicas nothing is
//! delivered twice and status is written by one writer.
//!
//! kube-lease-manager renews the Lease but cannot say in time that renewals
//! stopped working: on an error it retries, and a hung request hangs it. So
//! the leader also watches its own Lease and steps down (stops starting
//! deliveries, then ends with an error) when no renewal was seen within the
//! renew deadline, before the Lease can have expired for the others.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Where the Lease lives, who we are, and the timings (client-go's defaults).
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub lease_name: String,
    /// The holder identity written in the Lease (the pod name).
    pub identity: String,
    /// How long the Lease holds after a renewal: others take it over after this.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down.
    pub renew_deadline: Duration,
    /// How often the leader renews, and how long a candidate waits after an error.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// client-go's timings: lease 15 s, renew deadline 10 s, retry period 2 s.
    pub fn new(namespace: impl Into<String>, lease_name: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaderConfig {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// kube-lease-manager's parameters (whole seconds): it renews `grace`
    /// before expiry, so `grace = lease_duration - retry_period` renews every
    /// retry period.
    fn lease_params(&self) -> anyhow::Result<LeaseParams> {
        let (lease, renew, retry) =
            (self.lease_duration.as_secs(), self.renew_deadline.as_secs(), self.retry_period.as_secs());
        anyhow::ensure!(retry >= 1, "leader election: retry_period must be at least 1 s");
        anyhow::ensure!(renew > retry, "leader election: renew_deadline must be longer than retry_period");
        anyhow::ensure!(lease > renew, "leader election: lease_duration must be longer than renew_deadline");
        anyhow::ensure!(!self.identity.is_empty(), "leader election: identity must not be empty");
        Ok(LeaseParams::new(self.identity.clone(), lease, lease - retry))
    }
}

/// Whether this replica leads right now; shared with what behaves
/// differently on a follower (the `send` route).
#[derive(Clone, Debug)]
pub struct Leadership(Arc<watch::Sender<bool>>);

impl Default for Leadership {
    fn default() -> Self {
        Leadership(Arc::new(watch::Sender::new(false)))
    }
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    pub fn set(&self, leading: bool) {
        self.0.send_replace(leading);
    }

    /// Resolves once [`Leadership::is_leader`] is `leading`.
    pub async fn wait_until(&self, leading: bool) {
        let _ = self.0.subscribe().wait_for(|now| *now == leading).await;
    }
}

/// Why a leader stops leading.
enum End {
    Work(anyhow::Result<()>),
    Shutdown,
    /// Another holder was seen, or the Lease expired.
    Lost,
    /// No renewal confirmed within the renew deadline.
    NotRenewed,
}

/// Wait to become the leader, then run `work` until it ends, `shutdown`
/// resolves, or the leadership is lost or not renewed in time (an error: the
/// process should exit and restart as a follower).
///
/// `drain(budget)` must stop new deliveries at once and then wait at most
/// `budget` for those in flight. On shutdown (and when `work` ends) it runs
/// while the Lease is still renewed, with an unbounded budget the caller
/// bounds, and the Lease is released after it. When the leadership is lost
/// or not renewed, it gets what is left until the Lease may expire for the
/// others, and the Lease is not touched again.
pub async fn run_as_leader<W, F, D>(
    client: Client,
    config: LeaderConfig,
    shutdown: impl Future<Output = ()>,
    work: W,
    drain: F,
) -> anyhow::Result<()>
where
    W: Future<Output = anyhow::Result<()>>,
    F: FnOnce(Duration) -> D,
    D: Future<Output = ()>,
{
    let params = config.lease_params()?;
    let manager = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.namespace)
        .with_parameters(params)
        .build()
        .await?;
    let mut shutdown = pin!(shutdown);
    info!(lease = %config.lease_name, namespace = %config.namespace, identity = %config.identity, "waiting for leadership");
    let acquired = async {
        loop {
            match manager.changed().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    debug!(error = %e, "leader election: could not read or take the Lease; retrying");
                    tokio::time::sleep(config.retry_period).await;
                }
            }
        }
    };
    tokio::select! {
        _ = acquired => {}
        _ = &mut shutdown => {
            // Release it in case it was just taken; a follower holds nothing.
            let _ = tokio::time::timeout(config.retry_period, manager.release()).await;
            return Ok(());
        }
    }
    // The Lease was renewed at most now: the first deadline counts from here.
    let mut last_renewal = Instant::now();
    info!(identity = %config.identity, "became the leader");

    // Boxed, so that dropping them ends their borrows.
    let mut renewing = Box::pin(keep_renewing(&manager, &config));
    let mut watchdog = Box::pin(watch_renewals(&client, &config, &mut last_renewal));
    let end = tokio::select! {
        res = work => End::Work(res),
        _ = &mut shutdown => End::Shutdown,
        _ = &mut renewing => End::Lost,
        _ = &mut watchdog => End::NotRenewed,
    };
    match end {
        End::Work(_) | End::Shutdown => {
            // Keep the Lease while deliveries in flight finish: it must not
            // expire for the others before they are recorded.
            let stepped_down = tokio::select! {
                _ = drain(Duration::MAX) => None,
                _ = &mut renewing => Some(End::Lost),
                _ = &mut watchdog => Some(End::NotRenewed),
            };
            drop(watchdog);
            drop(renewing);
            if let Some(why) = stepped_down {
                return Err(step_down_error(&config, &why));
            }
            if tokio::time::timeout(config.retry_period, manager.release()).await.is_err() {
                warn!("the Lease was not released in time; it will expire");
            }
            match end {
                End::Work(res) => res.and(Err(anyhow::anyhow!("the controllers stopped"))),
                _ => Ok(()),
            }
        }
        End::Lost | End::NotRenewed => {
            drop(watchdog);
            drop(renewing);
            let error = step_down_error(&config, &end);
            warn!(identity = %config.identity, "{error}: no new delivery starts");
            // The Lease may expire for the others `lease_duration` after the last renewal.
            let left = (last_renewal + config.lease_duration).saturating_duration_since(Instant::now());
            drain(left).await;
            Err(error)
        }
    }
}

fn step_down_error(config: &LeaderConfig, why: &End) -> anyhow::Error {
    let (ns, name) = (&config.namespace, &config.lease_name);
    match why {
        End::NotRenewed => anyhow::anyhow!(
            "stepped down: Lease {ns}/{name} not renewed within {:?} (renew deadline)",
            config.renew_deadline
        ),
        _ => anyhow::anyhow!("lost leadership of Lease {ns}/{name}"),
    }
}

/// Drive kube-lease-manager's renewals; resolves when it reports the Lease lost.
async fn keep_renewing(manager: &LeaseManager, config: &LeaderConfig) {
    loop {
        match manager.changed().await {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                warn!(error = %e, "could not renew the Lease; retrying");
                tokio::time::sleep(config.retry_period).await;
            }
        }
    }
}

/// Watch our Lease and resolve once no renewal by us has been seen for the
/// renew deadline. A renewal counts from the `renewTime` it wrote (our own
/// clock, taken before the request was sent); `last_renewal` is kept current.
async fn watch_renewals(client: &Client, config: &LeaderConfig, last_renewal: &mut Instant) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut leases = pin!(watcher::watch_object(api, &config.lease_name).default_backoff());
    loop {
        let deadline = *last_renewal + config.renew_deadline;
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            next = leases.next() => match next {
                Some(Ok(Some(lease))) => {
                    let spec = lease.spec.as_ref();
                    let ours = spec.and_then(|s| s.holder_identity.as_deref()) == Some(config.identity.as_str());
                    if let (true, Some(renewed)) = (ours, spec.and_then(|s| s.renew_time.as_ref())) {
                        let age = jiff::Timestamp::now().duration_since(renewed.0);
                        let age = Duration::try_from(age).unwrap_or_default();
                        *last_renewal = Instant::now().checked_sub(age).unwrap_or(*last_renewal);
                    } else {
                        debug!(lease = %lease.name_any(), holder = ?spec.and_then(|s| s.holder_identity.as_ref()), "the Lease shows another holder");
                    }
                }
                Some(Ok(None)) => debug!("the Lease is gone"),
                Some(Err(e)) => debug!(error = %e, "watching the Lease failed; retrying"),
                // The watch never ends by itself; if it did, only the deadline is left.
                None => {
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
            }
        }
    }
}
