//! Leader election with a `coordination.k8s.io/v1` Lease (kube-lease-manager):
//! only the leader runs the controllers, so with several replicas nothing is
//! delivered twice and status is written by one writer.
//!
//! kube-lease-manager renews the Lease but cannot say in time that renewals
//! stopped working: on an error it retries, and a hung request hangs it. So
//! the leader also watches its own Lease and steps down (stops starting
//! deliveries, drains, then campaigns again as a follower) when no renewal
//! was seen within the renew deadline, before the Lease can have expired for
//! the others. The deadline counts from this replica's own acquisition and
//! only ever moves forward.
//!
//! The Lease is read and written with a client of its own (its own
//! connections; see `RunConfig::lease_client`), so renewals never wait
//! behind the operator's other requests in the client.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
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
    /// The holder identity written in the Lease: the pod name and what
    /// this start of the process adds ([`lease_identity`]).
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

/// The Lease holder identity of this start of the process: the replica's
/// name (the pod name) and a random suffix, as controller-runtime does
/// (`<pod>_<random>`). A restarted container keeps its pod name; with the
/// suffix, no two processes ever hold the Lease under one identity (also
/// when `--instance` is set alike on several replicas by mistake), and the
/// Lease still says which pod holds it. The cost: after a crash, the new
/// start takes the Lease over once it has expired (`lease_duration`, 15 s,
/// no longer than the kubelet's first restart back-off of 10 s plus a few
/// seconds); after a graceful stop the Lease is released and taken at once.
pub fn lease_identity(instance: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase();
    format!("{instance}_{suffix}")
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

/// How one term as the leader ended.
enum End {
    Work(anyhow::Result<()>),
    Shutdown,
    /// Another holder was seen, or the Lease expired.
    Lost,
    /// No renewal confirmed within the renew deadline.
    NotRenewed,
}

/// What the process does after a term.
enum After {
    /// Stop with this result (shutdown, or the work ended).
    Stop(anyhow::Result<()>),
    /// Stepped down: campaign again as a follower (the caches stay warm and
    /// every server keeps serving).
    Rejoin,
}

/// Makes the client the Lease is read and written with. It is called on the
/// Lease's own thread (see [`run_as_leader`]), so that the client's
/// connections and its request buffer live there, not on the runtime the
/// operator's other work keeps busy.
pub type LeaseClient = Arc<dyn Fn() -> Client + Send + Sync>;

/// Campaign for the Lease and run `work()` whenever this replica leads,
/// until `shutdown` resolves or the work ends.
///
/// A leader that loses its Lease, or cannot renew it within the renew
/// deadline, steps down: it stops starting deliveries, drains, and then
/// campaigns again as a follower in the same process. So no loss of the
/// Lease (an API outage, a slow API server, a hand-over) ends the process or
/// becomes a crash loop; a single replica leads again on its own as soon as
/// the API server answers.
///
/// Everything that reads or writes the Lease (campaign, renewals, the
/// watchdog, the release) runs on a runtime of its own, on its own thread,
/// with its own client (`lease_client`): however busy the operator's runtime
/// is (thousands of integrations starting), renewals are never starved.
///
/// `drain(budget)` must stop new deliveries at once and then wait at most
/// `budget` for those in flight. On shutdown (and when the work ends) it runs
/// while the Lease is still renewed, with an unbounded budget the caller
/// bounds, and the Lease is released after it. After a step-down it gets
/// what is left until the Lease may expire for the others, and the Lease is
/// not touched until the next campaign.
pub async fn run_as_leader<M, W, F, D>(
    lease_client: LeaseClient,
    config: LeaderConfig,
    shutdown: impl Future<Output = ()>,
    mut work: M,
    mut drain: F,
) -> anyhow::Result<()>
where
    M: FnMut() -> W,
    W: Future<Output = anyhow::Result<()>>,
    F: FnMut(Duration) -> D,
    D: Future<Output = ()>,
{
    let params = config.lease_params()?;
    let lease_runtime = LeaseRuntime::start()?;
    let mut shutdown = pin!(shutdown);
    loop {
        let keeper = Keeper::start(&lease_runtime, lease_client.clone(), &config, &params);
        match term(keeper, &config, shutdown.as_mut(), &mut work, &mut drain).await {
            After::Stop(result) => return result,
            After::Rejoin => info!(identity = %config.identity, "rejoining as a follower"),
        }
    }
}

/// A current-thread runtime on a thread of its own, for the Lease; stopped when dropped.
struct LeaseRuntime {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl LeaseRuntime {
    fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("lease".into()).spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            })
        })?;
        Ok(LeaseRuntime { handle, _stop: stop })
    }
}

/// What the Lease's side of a term tells the operator's side.
enum Says {
    /// The Lease is ours, renewed just now.
    Leading,
    /// Lost or not renewed in time; the Lease may expire for the others after `left`.
    SteppedDown { why: End, left: Duration },
}

/// The Lease's side of one term, running on the Lease's runtime: it
/// campaigns, says when this replica leads, renews and watches its renewals
/// until it steps down or is told to release the Lease.
struct Keeper {
    says: tokio::sync::mpsc::UnboundedReceiver<Says>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Keeper {
    fn start(runtime: &LeaseRuntime, lease_client: LeaseClient, config: &LeaderConfig, params: &LeaseParams) -> Self {
        let (tell, says) = tokio::sync::mpsc::unbounded_channel();
        let (release, released) = tokio::sync::oneshot::channel();
        let (config, params) = (config.clone(), params.clone());
        let task = runtime.handle.spawn(async move {
            let client = lease_client();
            keep_lease(&client, &config, &params, tell, released).await
        });
        Keeper { says, release: Some(release), task }
    }

    /// The next thing the Lease's side says; `None` once it has ended.
    async fn next(&mut self) -> Option<Says> {
        self.says.recv().await
    }

    /// Release the Lease (if held) and wait for the Lease's side to end.
    async fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Lease's side of one term (see [`Keeper`]).
async fn keep_lease(
    client: &Client,
    config: &LeaderConfig,
    params: &LeaseParams,
    tell: tokio::sync::mpsc::UnboundedSender<Says>,
    mut released: tokio::sync::oneshot::Receiver<()>,
) {
    let manager = tokio::select! {
        manager = campaign(client, config, params) => manager,
        _ = &mut released => return,
    };
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
        _ = &mut released => {
            // Release it in case it was just taken; a follower holds nothing.
            let _ = tokio::time::timeout(config.retry_period, manager.release()).await;
            return;
        }
    }
    // kube-lease-manager has just written the Lease (we never hold it on
    // entry, see `campaign`): the renew deadline counts from here.
    let mut last_renewal = Instant::now();
    let _ = tell.send(Says::Leading);
    let why = {
        let renewing = keep_renewing(&manager, config);
        let watchdog = watch_renewals(client, config, &mut last_renewal);
        tokio::select! {
            _ = renewing => End::Lost,
            _ = watchdog => End::NotRenewed,
            _ = &mut released => {
                if tokio::time::timeout(config.retry_period, manager.release()).await.is_err() {
                    warn!("the Lease was not released in time; it will expire");
                }
                return;
            }
        }
    };
    // The Lease may expire for the others `lease_duration` after the last renewal.
    let left = (last_renewal + config.lease_duration).saturating_duration_since(Instant::now());
    let _ = tell.send(Says::SteppedDown { why, left });
}

/// One campaign and, once elected, one term as the leader (the operator's side).
async fn term<M, W, F, D>(
    mut keeper: Keeper,
    config: &LeaderConfig,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    work: &mut M,
    drain: &mut F,
) -> After
where
    M: FnMut() -> W,
    W: Future<Output = anyhow::Result<()>>,
    F: FnMut(Duration) -> D,
    D: Future<Output = ()>,
{
    info!(lease = %config.lease_name, namespace = %config.namespace, identity = %config.identity, "waiting for leadership");
    tokio::select! {
        said = keeper.next() => match said {
            Some(Says::Leading) => {}
            // The Lease's side ended before leading (it never does by itself).
            _ => return After::Rejoin,
        },
        _ = shutdown.as_mut() => {
            keeper.release().await;
            return After::Stop(Ok(()));
        }
    }
    info!(identity = %config.identity, "became the leader");
    let end = tokio::select! {
        res = work() => Ok(End::Work(res)),
        _ = shutdown.as_mut() => Ok(End::Shutdown),
        said = keeper.next() => Err(stepped_down(said)),
    };
    match end {
        Ok(end) => {
            // Keep the Lease while deliveries in flight finish: it must not
            // expire for the others before they are recorded.
            let stepped = tokio::select! {
                _ = drain(Duration::MAX) => None,
                said = keeper.next() => Some(stepped_down(said)),
            };
            if let Some((why, _)) = stepped {
                return After::Stop(Err(step_down_error(config, &why)));
            }
            keeper.release().await;
            After::Stop(match end {
                End::Work(res) => res.and(Err(anyhow::anyhow!("the controllers stopped"))),
                _ => Ok(()),
            })
        }
        Err((why, left)) => {
            warn!(identity = %config.identity, "{}: no new delivery starts", step_down_error(config, &why));
            drain(left).await;
            After::Rejoin
        }
    }
}

/// Why and with how much time left the Lease's side stepped down (it ending
/// without a word counts as not renewed, with no time left).
fn stepped_down(said: Option<Says>) -> (End, Duration) {
    match said {
        Some(Says::SteppedDown { why, left }) => (why, left),
        _ => (End::NotRenewed, Duration::ZERO),
    }
}

/// A Lease manager for a new campaign, once the API server answers (an API
/// outage at start or after a step-down is waited out, never an exit).
///
/// A Lease that names our own identity is first released: it was written by
/// an earlier life of this identity (a restarted container keeps its pod
/// name; a replica that stepped down keeps its identity) and says nothing
/// about now. kube-lease-manager would take such a Lease for held, without
/// writing it, and report us the leader on a renewal that may be minutes
/// old. Released, it is taken over like any free Lease: written with a new
/// `acquireTime` and `renewTime` and counted as a transition, before this
/// replica calls itself the leader.
async fn campaign(client: &Client, config: &LeaderConfig, params: &LeaseParams) -> LeaseManager {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut wait = config.retry_period;
    loop {
        let ready = async {
            release_if_ours(&api, config).await?;
            LeaseManagerBuilder::new(client.clone(), &config.lease_name)
                .with_namespace(&config.namespace)
                .with_parameters(params.clone())
                .build()
                .await
                .map_err(anyhow::Error::from)
        };
        match ready.await {
            Ok(manager) => return manager,
            Err(e) => {
                warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "leader election: the Lease cannot be read; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(config.lease_duration);
            }
        }
    }
}

/// Release the Lease if it names `config.identity` (see [`campaign`]); with
/// its `resourceVersion`, so a Lease another replica has just taken is left
/// alone.
async fn release_if_ours(api: &Api<Lease>, config: &LeaderConfig) -> anyhow::Result<()> {
    let Some(mut lease) = api.get_opt(&config.lease_name).await? else { return Ok(()) };
    let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    info!(lease = %config.lease_name, renewed = ?spec.renew_time.as_ref().map(|t| t.0), "the Lease names this identity from an earlier start; taking it over anew");
    spec.holder_identity = None;
    spec.acquire_time = None;
    spec.renew_time = None;
    spec.lease_duration_seconds = None;
    match api.replace(&config.lease_name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        // Someone else wrote it meanwhile: campaign against what is there now.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
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
                        // Only forward: an older renewTime (a watch that shows an
                        // earlier state first) never brings the deadline closer.
                        let renewed = Instant::now().checked_sub(age).unwrap_or(*last_renewal);
                        *last_renewal = (*last_renewal).max(renewed);
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
