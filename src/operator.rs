//! The operator, wired once for `main` and the tests: the caches every
//! replica keeps warm (integrations, Secret metadata, contacts), the admin and HTTP
//! ingestion servers every replica serves, and the controllers only the
//! leader runs.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::caches::Caches;
use crate::controller::{Context, Settings, event, integration};
use crate::crd::NotificationIntegration;
use crate::leader::{LeaderConfig, Leadership, LeaseClient, run_as_leader};
use crate::metrics::Metrics;
use crate::notifier::ServiceEndpoints;
use crate::notifier::destination::{DestinationGuard, Resolver};
use crate::notifier::http::HttpClient;
use crate::server::admin::{self, Readiness};
use crate::server::ingest::auth::Reviewer;
use crate::server::ingest::routes::Callers;
use crate::server::ingest::token::TokenAccess;
use crate::server::ingest::{self, IngestConfig};
use crate::server::listen::{Limits, Options};
use crate::server::tls::ServerTls;
use crate::store::embedded::Embedded;
use crate::store::{SecretAccess, keep_used_metadata, kubernetes, reread};

/// How often what is kept in memory for deleted integrations is dropped.
const PRUNE_PERIOD: Duration = Duration::from_secs(60);

/// The longest a stopping operator waits for deliveries in flight (within
/// the pod's default termination grace period of 30 s).
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(20);

/// What the controllers need besides the Kubernetes client.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Watch one namespace; all when `None`.
    pub namespace: Option<String>,
    pub endpoints: ServiceEndpoints,
    pub http_timeout: Duration,
    /// How deliveries look host names up (the system's resolver; tests inject theirs).
    pub resolver: Resolver,
    /// Behind a proxy, send generic webhooks through it too (checked first,
    /// a name that does not resolve refused) instead of directly
    /// (`--allow-proxy-for-webhooks`).
    pub proxy_for_webhooks: bool,
    pub settings: Settings,
    /// The name Events are reported under (`reportingInstance`), e.g. the pod name.
    pub instance: Option<String>,
}

/// Everything [`Operator::new`] needs besides the client and the metrics.
pub struct RunConfig {
    pub operator: OperatorConfig,
    /// Run the controllers only while holding this Lease; always when `None`.
    pub leader: Option<LeaderConfig>,
    /// Makes the client the Lease is read and written with, on the Lease's
    /// own thread: its own connections, so that renewals never wait behind
    /// the operator's other requests; the operator's client when `None`.
    pub lease_client: Option<LeaseClient>,
    pub ingest: IngestConfig,
    /// Where `/livez`, `/readyz` and `/metrics` are served.
    pub admin: TcpListener,
    /// Where HTTP ingestion is served.
    pub http: TcpListener,
    /// The limits of both listeners (timeouts, connections, header size).
    pub limits: Limits,
    /// HTTP ingestion over TLS (`--tls-cert-file`, `--tls-key-file`).
    pub tls: Option<ServerTls>,
}

/// The name of this replica, for the Lease and Events: `explicit`
/// (`--instance`), else `hostname_var` (`HOSTNAME`, the pod name in a pod),
/// else the system's host name.
pub fn instance_name(explicit: Option<String>, hostname_var: Option<String>) -> String {
    explicit
        .filter(|s| !s.trim().is_empty())
        .or_else(|| hostname_var.filter(|s| !s.trim().is_empty()))
        .or_else(|| hostname::get().ok().and_then(|h| h.into_string().ok()).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "kube-notify".to_string())
}

/// Where the operator keeps its state and how it knows its callers.
pub enum Backend {
    /// On a cluster: the Kubernetes API is the store and reviews callers;
    /// replicas may elect a leader.
    Kubernetes(Client),
    /// Standalone: the embedded store, and the callers' token. One process,
    /// always leading.
    Embedded { store: Arc<Embedded>, access: TokenAccess },
}

/// A built operator: its caches and [`Context`] exist, nothing runs until
/// [`Operator::run`].
pub struct Operator {
    /// For leader election (on a cluster): the Lease's own client.
    client: Option<LeaseClient>,
    leader: Option<LeaderConfig>,
    callers: Callers,
    ingest: IngestConfig,
    admin: TcpListener,
    http: TcpListener,
    limits: Limits,
    tls: Option<ServerTls>,
    ctx: Arc<Context>,
    readiness: Readiness,
    leadership: Leadership,
    integrations: Arc<Fanout<NotificationIntegration>>,
    secrets: Arc<Fanout<PartialObjectMeta<Secret>>>,
    watches: BoxFuture<'static, ()>,
}

impl Operator {
    /// Build the watches and the shared [`Context`] (no API call yet).
    pub fn new(backend: Backend, config: RunConfig, metrics: Arc<Metrics>) -> Operator {
        let RunConfig { operator: config, leader, lease_client, ingest, admin, http, limits, tls } = config;
        let reporter = Reporter { controller: "kube-notify".into(), instance: config.instance.clone() };
        // Every Kubernetes API request the operator makes is counted.
        let backend = match backend {
            Backend::Kubernetes(client) => {
                Backend::Kubernetes(crate::metrics::counting_api_requests(client, metrics.clone()))
            }
            embedded => embedded,
        };
        let (store, callers, client, leader) = match backend {
            Backend::Kubernetes(client) => (
                kubernetes::store(client.clone(), config.namespace.clone(), reporter),
                Callers::Kubernetes(Box::new(Reviewer::new(
                    client.clone(),
                    ingest.token_audience.clone(),
                    ingest.review_cache_ttl,
                    ingest.review_cache_size,
                    ingest.bad_token_budget,
                ))),
                // Its requests are counted like every other API request.
                Some({
                    let (metrics, fallback) = (metrics.clone(), client.clone());
                    let make = lease_client.unwrap_or_else(|| Arc::new(move || fallback.clone()));
                    let counted: LeaseClient =
                        Arc::new(move || crate::metrics::counting_api_requests(make(), metrics.clone()));
                    counted
                }),
                leader,
            ),
            Backend::Embedded { store, access } => (store.store(), Callers::Token(access), None, None),
        };
        let (integration_store, integration_writer) = reflector::store();
        // Secrets: the metadata that tells a change only, never their data.
        let (secret_store, secret_writer) = reflector::store();
        let secrets = Arc::new(Fanout::new(secret_store.clone()));
        let secret_watch = {
            let fanout = secrets.clone();
            let access = config.settings.secret_access;
            let changes = match access {
                SecretAccess::Get { reread } => reread::watch(store.secrets.clone(), integration_store.clone(), reread),
                _ => store.secrets.watch_metadata(access.watch_selector().as_deref()),
            };
            changes
                .default_backoff()
                .modify(keep_used_metadata)
                .reflect(secret_writer)
                .touched_objects()
                .for_each(move |secret| fanout.publish(secret))
        };
        let integrations = Arc::new(Fanout::new(integration_store.clone()));
        let integration_watch = {
            let fanout = integrations.clone();
            store
                .integrations
                .watch()
                .default_backoff()
                .modify(keep_what_is_used)
                .reflect(integration_writer)
                .touched_objects()
                .for_each(move |ni| fanout.publish(ni))
        };
        // Contacts: read at each delivery with mentions, so a new or fixed one applies to the next.
        let (contact_store, contact_writer) = reflector::store();
        let contact_watch =
            store.contacts.watch().default_backoff().modify(keep_what_is_used).reflect(contact_writer).for_each(
                |event| {
                    if let Err(e) = event {
                        debug!(error = %e, "contact watch error; retrying");
                    }
                    futures::future::ready(())
                },
            );
        // Each integration's state is exported from the cache at each scrape.
        metrics.watch_integrations(integration_store.clone());
        let caches = Caches::new(integration_store, secret_store, contact_store);
        let ctx = Arc::new(Context::new(
            store,
            caches,
            config.endpoints.clone(),
            HttpClient::guarded(config.http_timeout, DestinationGuard::new(&config.endpoints, config.resolver.clone()))
                .proxying_untrusted(config.proxy_for_webhooks),
            metrics,
            config.settings.clone(),
        ));
        let watches = Box::pin(async move {
            futures::join!(secret_watch, integration_watch, contact_watch);
        });
        Operator {
            client,
            leader,
            callers,
            ingest,
            admin,
            http,
            limits,
            tls,
            ctx,
            readiness: Readiness::default(),
            leadership: Leadership::default(),
            integrations,
            secrets,
            watches,
        }
    }

    /// The controllers' shared context (HTTP ingestion serves from its parts too).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Set once the caches have synced, on every replica.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Whether this replica runs the controllers right now.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// Serve and keep the caches warm until `shutdown` resolves; lead (run
    /// the controllers) when elected, or always without leader election. On
    /// shutdown no new delivery starts, those in flight are let finish
    /// (at most [`SHUTDOWN_DRAIN`]) and only then is the Lease released.
    /// An error means the process should exit (e.g. the leadership was lost).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Operator {
            client,
            leader,
            callers,
            ingest: ingest_config,
            admin,
            http,
            limits,
            tls,
            ctx,
            readiness,
            leadership,
            integrations,
            secrets,
            watches,
        } = self;
        let admin = admin::serve(admin, readiness.clone(), ctx.metrics.clone(), limits.clone());
        let routes = ingest::router(
            ctx.store.clone(),
            ctx.caches.clone(),
            ctx.delivery.clone(),
            ctx.metrics.clone(),
            ingest_config,
            leadership.clone(),
            callers,
        );
        let ingestion = ingest::serve(http, routes, Options { limits, tls });
        let ready = {
            let ctx = ctx.clone();
            async move {
                let _ = ctx.caches.integrations.wait_until_ready().await;
                let _ = ctx.caches.secrets.wait_until_ready().await;
                let _ = ctx.caches.contacts.wait_until_ready().await;
                info!("caches synced; ready");
                readiness.set_ready();
            }
        };
        // Each term as the leader runs the controllers anew.
        let work = {
            let (ctx, leadership) = (ctx.clone(), leadership.clone());
            move || lead(ctx.clone(), leadership.clone(), integrations.clone(), secrets.clone())
        };
        let drain = {
            let ctx = ctx.clone();
            let leadership = leadership.clone();
            move |budget: Duration| {
                let (ctx, leadership) = (ctx.clone(), leadership.clone());
                async move {
                    // From now on `send` goes through the next leader.
                    leadership.set(false);
                    if !ctx.delivery.drain(budget.min(SHUTDOWN_DRAIN)).await {
                        warn!("deliveries not on record in time; they may be sent again by the next leader");
                    }
                }
            }
        };
        let role = async move {
            match (leader, client) {
                (Some(leader), Some(client)) => run_as_leader(client, leader, shutdown, work, drain).await,
                _ => {
                    let res = tokio::select! {
                        res = work() => res,
                        _ = shutdown => Ok(()),
                    };
                    drain(SHUTDOWN_DRAIN).await;
                    res
                }
            }
        };
        tokio::select! {
            res = role => res,
            _ = futures::future::join(watches, ready) => Err(anyhow::anyhow!("the watches stopped")),
            res = admin => Err(anyhow::anyhow!("the admin server stopped: {res:?}")),
            res = ingestion => Err(anyhow::anyhow!("the HTTP ingestion server stopped: {res:?}")),
        }
    }
}

/// One term's work as the leader: the integration and event controllers and
/// the periodic prune, until they stop (they run until dropped, at the end
/// of the term).
async fn lead(
    ctx: Arc<Context>,
    leadership: Leadership,
    integrations: Arc<Fanout<NotificationIntegration>>,
    secrets: Arc<Fanout<PartialObjectMeta<Secret>>>,
) -> anyhow::Result<()> {
    // After a step-down: once the last term's deliveries have ended.
    ctx.delivery.resume().await;
    leadership.set(true);
    // Subscribed once synced, so the controllers start from the whole cache.
    let _ = ctx.caches.integrations.wait_until_ready().await;
    let _ = ctx.caches.secrets.wait_until_ready().await;
    info!("leading: starting the controllers");
    let by_secret = ctx.caches.integrations.clone();
    let integration_controller =
        Controller::for_shared_stream(integrations.subscribe(), ctx.caches.integrations.clone())
            // Secret changes from now on: every integration is reconciled at
            // the start of the term anyway, and a replay of every cached
            // Secret (each mapped by a scan of every integration) would cost
            // O(integrations x Secrets) at each start.
            .watches_shared_stream(secrets.subscribe_changes(), move |secret| {
                let namespace = secret.namespace();
                let name = secret.name_any();
                by_secret
                    .state()
                    .into_iter()
                    .filter(|ni| ni.namespace() == namespace && ni.spec.secret_ref.name == name)
                    .map(|ni| ObjectRef::from_obj(&*ni))
                    .collect::<Vec<_>>()
            })
            .with_config(bounded(&ctx.settings))
            .run(
                |ni, ctx: Arc<Context>| {
                    ctx.metrics.reconciled("NotificationIntegration");
                    integration::reconcile(ni, ctx)
                },
                integration::error_policy,
                ctx.clone(),
            )
            .for_each(|_| futures::future::ready(()));

    // A fresh list each time this replica starts leading.
    let (events, event_writer) = reflector::store();
    let event_watch = ctx
        .store
        .events
        .watch()
        .default_backoff()
        .modify(|ev| {
            keep_what_is_used(ev);
            crate::caches::trim_event_content(ev);
        })
        .reflect(event_writer)
        .applied_objects();
    let event_controller = Controller::for_stream(event_watch, events.clone());
    ctx.caches.set_events(events.clone());
    let changes = event::IntegrationChanges::default();
    let event_controller = event_controller
        .watches_shared_stream(integrations.subscribe(), move |ni| changes.events_to_retry(&events, &ni))
        .reconcile_on(ctx.delivery.event_triggers().subscribe())
        .with_config(bounded(&ctx.settings))
        .run(
            |ev, ctx: Arc<Context>| {
                ctx.metrics.reconciled("NotificationEvent");
                event::reconcile(ev, ctx)
            },
            event::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));

    let prune = async {
        let mut every = tokio::time::interval(PRUNE_PERIOD);
        every.tick().await;
        loop {
            every.tick().await;
            ctx.prune_deleted();
        }
    };
    futures::join!(integration_controller, event_controller, prune);
    anyhow::bail!("the controllers stopped")
}

/// A controller running at most `reconcile_concurrency` reconciles at once:
/// 1,000 integrations applied together make 1,000 reconciles, each with API
/// calls, and unbounded they would open as many connections to the API
/// server (and keep them, idle, in the client's pool).
fn bounded(settings: &crate::controller::Settings) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(settings.reconcile_concurrency)
}

/// The annotation `kubectl apply` fills with a copy of the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the caches keep of an object: no `managedFields` and no copy of the
/// object in the `kubectl apply` annotation, which the operator never reads
/// (status writes go through `/status`, which ignores metadata).
fn keep_what_is_used<K: kube::Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A watch's objects for subscribers that join later (the controllers, once
/// this replica leads): a new subscriber first gets every cached object, then
/// each change. With no subscriber nothing is kept.
struct Fanout<K>
where
    K: reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    subscribers: Mutex<Vec<UnboundedSender<Arc<K>>>>,
}

impl<K> Fanout<K>
where
    K: reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn new(store: Store<K>) -> Self {
        Fanout { store, subscribers: Mutex::default() }
    }

    /// Pass on an object the watch touched (already applied to the store).
    fn publish(&self, touched: Result<K, watcher::Error>) -> futures::future::Ready<()> {
        match touched {
            Ok(obj) => {
                let obj = Arc::new(obj);
                self.subscribers.lock().unwrap().retain(|s| s.unbounded_send(obj.clone()).is_ok());
            }
            Err(e) => debug!(error = %e, "watch error; retrying"),
        }
        futures::future::ready(())
    }

    /// Every cached object, then every change. Under the same lock as
    /// [`Fanout::publish`], so no change falls between the two.
    fn subscribe(&self) -> UnboundedReceiver<Arc<K>> {
        let mut subscribers = self.subscribers.lock().unwrap();
        let (tx, rx) = unbounded();
        for obj in self.store.state() {
            let _ = tx.unbounded_send(obj);
        }
        subscribers.push(tx);
        rx
    }

    /// Every change from now on.
    fn subscribe_changes(&self) -> UnboundedReceiver<Arc<K>> {
        let (tx, rx) = unbounded();
        self.subscribers.lock().unwrap().push(tx);
        rx
    }
}
