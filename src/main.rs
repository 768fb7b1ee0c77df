use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use kube_notify::cli::{Cli, Command, RunArgs, SidecarArgs};
use kube_notify::controller::Settings;
use kube_notify::delivery::RetryPolicy;
use kube_notify::leader::LeaderConfig;
use kube_notify::metrics::Metrics;
use kube_notify::notifier::ServiceEndpoints;
use kube_notify::notifier::endpoint::EndpointPolicy;
use kube_notify::operator::{self, Backend, Operator, OperatorConfig, RunConfig};
use kube_notify::server::{ingest, sidecar};
use kube_notify::{crd, telemetry};
use tokio::net::TcpListener;

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
    let instance = operator::instance_name(args.instance.clone(), std::env::var("HOSTNAME").ok());
    let operator = OperatorConfig {
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
        instance: Some(instance.clone()),
    };
    let leader = args.leader_election.then(|| {
        let namespace = args.leader_election_namespace.clone().unwrap_or_else(|| {
            std::fs::read_to_string(sidecar::NAMESPACE_FILE)
                .map(|ns| ns.trim().to_string())
                .unwrap_or_else(|_| "default".to_string())
        });
        LeaderConfig::new(namespace, args.lease_name.clone(), instance)
    });
    let ingest = ingest::IngestConfig {
        max_body_bytes: args.max_body_bytes,
        rate: args.ingest_rate,
        burst: args.ingest_burst,
        send_timeout: args.send_timeout,
        review_cache_ttl: args.review_cache_ttl,
        review_cache_size: args.review_cache_size,
        namespace: args.namespace.clone(),
    };
    let admin = TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("admin endpoints: cannot listen on {}", args.admin_addr))?;
    let http = TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("HTTP ingestion: cannot listen on {}", args.http_addr))?;
    let client = kube::Client::try_default().await.context("no Kubernetes configuration (KUBECONFIG or in-cluster)")?;
    let config = RunConfig { operator, leader, ingest, admin, http };
    Operator::new(Backend::Kubernetes(client), config, Arc::new(Metrics::default()))
        .run(async {
            shutdown_signal().await;
            tracing::info!("shutting down");
        })
        .await
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
