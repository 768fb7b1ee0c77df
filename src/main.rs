use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use kube_notify::cli::{Cli, Command, RunArgs};
use kube_notify::controller::Settings;
use kube_notify::delivery::RetryPolicy;
use kube_notify::metrics::Metrics;
use kube_notify::notifier::ServiceEndpoints;
use kube_notify::notifier::endpoint::EndpointPolicy;
use kube_notify::operator::{self, OperatorConfig};
use kube_notify::server::admin::{self, Readiness};
use kube_notify::{crd, telemetry};

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
    tokio::select! {
        _ = operator::run(client, config, metrics, readiness) => anyhow::bail!("the controllers stopped"),
        res = admin => anyhow::bail!("the admin server stopped: {res:?}"),
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
