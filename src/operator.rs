//! Wiring: the watches, the controllers and their shared [`Context`].

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::info;

use crate::controller::{Context, Settings, Triggers, event, integration};
use crate::crd::{NotificationEvent, NotificationIntegration};
use crate::metrics::Metrics;
use crate::notifier::ServiceEndpoints;
use crate::notifier::http::HttpClient;
use crate::server::admin::Readiness;

/// How often what is kept in memory for deleted integrations is dropped.
const PRUNE_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

/// Everything the operator needs besides the Kubernetes client.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Watch one namespace; all when `None`.
    pub namespace: Option<String>,
    pub endpoints: ServiceEndpoints,
    pub http_timeout: std::time::Duration,
    pub settings: Settings,
    /// The name Events are reported under (`reportingInstance`), e.g. the pod name.
    pub instance: Option<String>,
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run the controllers until they stop (they run until the process ends).
/// `readiness` is set once the caches have synced. The controllers' shared
/// [`Context`] goes to `started` as soon as it exists (HTTP ingestion serves
/// from it, and shutdown drains its deliveries).
pub async fn run_with(
    client: Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    started: impl FnOnce(Arc<Context>),
) {
    // Secrets: metadata only, to notice changes without holding their data.
    let (secret_store, secret_writer) = reflector::store();
    let secret_changes =
        watcher(api::<PartialObjectMeta<Secret>>(&client, &config.namespace), watcher::Config::default())
            .default_backoff()
            .reflect(secret_writer)
            .touched_objects();

    // Integrations: one watch shared by both controllers.
    let (integrations, integration_writer) = reflector::store_shared::<NotificationIntegration>(1024);
    let for_integration_controller = integration_writer.subscribe().expect("a shared store has subscribers");
    let for_event_controller = integration_writer.subscribe().expect("a shared store has subscribers");
    let integration_watch =
        watcher(api::<NotificationIntegration>(&client, &config.namespace), watcher::Config::default())
            .default_backoff()
            .reflect_shared(integration_writer)
            .for_each(|_| futures::future::ready(()));

    let (event_triggers, event_trigger_stream) = Triggers::new();
    let reporter = Reporter { controller: "kube-notify".into(), instance: config.instance.clone() };
    let ctx = Arc::new(Context::new(
        client.clone(),
        config.endpoints.clone(),
        HttpClient::new(config.http_timeout),
        Recorder::new(client.clone(), reporter),
        metrics.clone(),
        config.settings.clone(),
        secret_store.clone(),
        integrations.clone(),
        event_triggers,
    ));
    started(ctx.clone());

    let by_secret = integrations.clone();
    let integration_controller = Controller::for_shared_stream(for_integration_controller, integrations.clone())
        .watches_stream(secret_changes, move |secret| {
            let namespace = secret.namespace();
            let name = secret.name_any();
            by_secret
                .state()
                .into_iter()
                .filter(|ni| ni.namespace() == namespace && ni.spec.secret_ref.name == name)
                .map(|ni| ObjectRef::from_obj(&*ni))
                .collect::<Vec<_>>()
        })
        .run(
            |ni, ctx: Arc<Context>| {
                ctx.metrics.reconciled("NotificationIntegration");
                integration::reconcile(ni, ctx)
            },
            integration::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));

    let event_controller =
        Controller::new(api::<NotificationEvent>(&client, &config.namespace), watcher::Config::default());
    let events = event_controller.store();
    let events_ready = events.clone();
    let changes = event::IntegrationChanges::default();
    let event_controller = event_controller
        .watches_shared_stream(for_event_controller, move |ni| changes.events_to_retry(&events.state(), &ni))
        .reconcile_on(event_trigger_stream)
        .run(
            |ev, ctx: Arc<Context>| {
                ctx.metrics.reconciled("NotificationEvent");
                event::reconcile(ev, ctx)
            },
            event::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));

    let ready = async {
        let _ = integrations.wait_until_ready().await;
        let _ = secret_store.wait_until_ready().await;
        let _ = events_ready.wait_until_ready().await;
        info!("caches synced; ready");
        readiness.set_ready();
        futures::future::pending::<()>().await
    };
    let prune = {
        let ctx = ctx.clone();
        async move {
            let _ = ctx.integrations.wait_until_ready().await;
            loop {
                tokio::time::sleep(PRUNE_PERIOD).await;
                ctx.prune_deleted();
            }
        }
    };
    tokio::join!(integration_watch, integration_controller, event_controller, ready, prune);
}
