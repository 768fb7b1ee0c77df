use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use kube_notify::cli::{Cli, Command, RunArgs, SidecarArgs};
use kube_notify::controller::Settings;
use kube_notify::delivery::RetryPolicy;
use kube_notify::leader::{LeaderConfig, run_as_leader};
use kube_notify::metrics::Metrics;
use kube_notify::notifier::ServiceEndpoints;
use kube_notify::notifier::endpoint::EndpointPolicy;
use kube_notify::operator::{self, OperatorConfig};
use kube_notify::server::admin::{self, Readiness};
use kube_notify::server::{ingest, sidecar};
use kube_notify::{crd, telemetry};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            for (_, crd) in crd::all() {
                match out.write_all(crd::to_yaml(&crd).as_bytes()) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    other => other?,
                }
            }
            Ok(())
        }
        Command::Run(args) => run(*args).await,
        Command::Sidecar(args) => run_sidecar(args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(&args.log);
    let policy = EndpointPolicy::new(&args.allow_endpoint).map_err(anyhow::Error::msg)?;
    let config = OperatorConfig {
        namespace: args.namespace.clone(),
        endpoints: ServiceEndpoints {
            slack_api: args.slack_api_url.clone(),
            chatwork_api: args.chatwork_api_url.clone(),
            policy,
        },
        http_timeout: args.http_timeout,
        settings: Settings {
            revalidate_period: args.revalidate_period,
            validation_rate: args.validation_rate,
            event_deadline: args.event_deadline,
            event_ttl: (!args.event_ttl.is_zero()).then_some(args.event_ttl),
            retry: RetryPolicy {
                attempts: args.delivery_attempts.max(1),
                max_delay: args.retry_max_delay,
                ..RetryPolicy::default()
            },
            ..Settings::default()
        },
        instance: args.instance.clone(),
    };
    let client = kube::Client::try_default().await.context("no Kubernetes configuration (KUBECONFIG or in-cluster)")?;
    let metrics = Arc::new(Metrics::default());
    let readiness = Readiness::default();
    let admin = tokio::spawn(admin::serve(args.admin_addr, readiness.clone(), metrics.clone()));
    let ingest_config = ingest::IngestConfig {
        max_body_bytes: args.max_body_bytes,
        rate: args.ingest_rate,
        burst: args.ingest_burst,
        send_timeout: args.send_timeout,
        review_cache_ttl: args.review_cache_ttl,
        review_cache_size: args.review_cache_size,
        namespace: args.namespace.clone(),
    };
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("HTTP ingestion: cannot listen on {}", args.http_addr))?;
    let lease_client = client.clone();
    let (started, context) = tokio::sync::oneshot::channel();
    let ingestion = tokio::spawn(async move {
        let ctx = context.await.map_err(|_| std::io::Error::other("the operator did not start"))?;
        ingest::serve(listener, ingest::router(ctx, ingest_config)).await
    });
    // Kept for shutdown: deliveries in flight are let finish and recorded.
    let running: Arc<std::sync::OnceLock<Arc<kube_notify::controller::Context>>> = Arc::default();
    let slot = running.clone();
    let work = async move {
        operator::run_with(client.clone(), config, metrics, readiness, move |ctx| {
            let _ = slot.set(ctx.clone());
            let _ = started.send(ctx);
        })
        .await;
        anyhow::bail!("the controllers stopped")
    };
    let drain = async move {
        if let Some(ctx) = running.get() {
            // Within the pod's termination grace period (30 s by default).
            if !ctx.drain(std::time::Duration::from_secs(20)).await {
                tracing::warn!("deliveries not on record at exit; they may be sent again by the next leader");
            }
        }
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    let operator = async {
        if args.leader_election {
            let leader = LeaderConfig {
                namespace: args.leader_election_namespace.clone().unwrap_or_else(|| {
                    std::fs::read_to_string(sidecar::NAMESPACE_FILE)
                        .map(|ns| ns.trim().to_string())
                        .unwrap_or_else(|_| "default".to_string())
                }),
                lease_name: args.lease_name.clone(),
                identity: args.instance.clone().unwrap_or_else(|| format!("kube-notify-{}", std::process::id())),
                duration_seconds: 15,
            };
            run_as_leader(lease_client, leader, shutdown, work, drain).await
        } else {
            let mut shutdown = shutdown;
            let result = tokio::select! {
                res = work => res,
                _ = kube_notify::leader::stopped(&mut shutdown) => Ok(()),
            };
            drain.await;
            result
        }
    };
    tokio::select! {
        res = operator => res,
        res = admin => Err(anyhow::anyhow!("the admin server stopped: {res:?}")),
        res = ingestion => Err(anyhow::anyhow!("the HTTP ingestion server stopped: {res:?}")),
    }
}

async fn run_sidecar(args: SidecarArgs) -> anyhow::Result<()> {
    telemetry::init(&args.log);
    sidecar::check_listen(&args.listen).map_err(anyhow::Error::msg)?;
    let namespace = sidecar::resolve_namespace(
        std::env::var("POD_NAMESPACE").ok(),
        std::fs::read_to_string(sidecar::NAMESPACE_FILE).ok(),
        args.namespace.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let client = kube::Client::try_default().await.context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let config = sidecar::SidecarConfig {
        namespace,
        max_body_bytes: args.max_body_bytes,
        rate: args.ingest_rate,
        burst: args.ingest_burst,
    };
    let router = sidecar::router(client, config, Arc::new(Metrics::default()));
    tokio::select! {
        res = sidecar::serve(args.listen, router) => res.context("the sidecar stopped"),
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
