//! Each subcommand wired from its arguments: `main` parses them and calls
//! one of these, and nothing else.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::cli::{EngineArgs, GetArgs, RunArgs, SendArgs, SidecarArgs, StandaloneArgs, TestArgs, TlsArgs};
use crate::controller::Settings;
use crate::delivery::RetryPolicy;
use crate::leader::LeaderConfig;
use crate::metrics::Metrics;
use crate::notifier::ServiceEndpoints;
use crate::notifier::endpoint::EndpointPolicy;
use crate::operator::{self, Backend, Operator, OperatorConfig, RunConfig};
use crate::server::ingest::token::{Token, TokenAccess};
use crate::server::listen::Limits;
use crate::server::tls::{self, ServerTls};
use crate::server::{ingest, sidecar};
use crate::{standalone, telemetry};

/// The engine's configuration from its flags (the same on a cluster and standalone).
pub fn engine_config(
    args: &EngineArgs,
    namespace: Option<String>,
    instance: Option<String>,
) -> anyhow::Result<(OperatorConfig, ingest::IngestConfig)> {
    let policy = EndpointPolicy::new(&args.allow_endpoint).map_err(anyhow::Error::msg)?;
    let operator = OperatorConfig {
        namespace: namespace.clone(),
        endpoints: ServiceEndpoints {
            slack_api: args.slack_api_url.clone(),
            chatwork_api: args.chatwork_api_url.clone(),
            policy,
        },
        http_timeout: args.http_timeout,
        resolver: Default::default(),
        proxy_for_webhooks: args.allow_proxy_for_webhooks,
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
            max_targets: args.max_targets,
            send_timeout: args.send_timeout,
            ..Settings::default()
        },
        instance,
    };
    let ingest = ingest::IngestConfig {
        max_body_bytes: args.max_body_bytes,
        max_in_flight_bytes: args.max_in_flight_bytes,
        rate: args.ingest_rate,
        burst: args.ingest_burst,
        send_timeout: args.send_timeout,
        namespace,
        ..ingest::IngestConfig::default()
    };
    Ok((operator, ingest))
}

async fn listen(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("{what}: cannot listen on {addr}"))
}

/// TLS for HTTP ingestion from `--tls-cert-file` and `--tls-key-file`, loaded now.
fn server_tls(args: &TlsArgs) -> anyhow::Result<Option<ServerTls>> {
    let Some(files) = args.files()? else { return Ok(None) };
    Ok(Some(ServerTls::load(files, tls::RELOAD_PERIOD).map_err(anyhow::Error::msg)?))
}

/// `kube-notify run`: the operator on a cluster.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(&args.engine.log);
    let instance = operator::instance_name(args.instance.clone(), std::env::var("HOSTNAME").ok());
    let (mut operator, mut ingest) = engine_config(&args.engine, args.namespace.clone(), Some(instance.clone()))?;
    operator.settings.secret_access = args.secret_access()?;
    let pod_namespace = std::fs::read_to_string(sidecar::NAMESPACE_FILE).ok().map(|ns| ns.trim().to_string());
    operator.settings.secret_reader = args.secret_reader(pod_namespace.as_deref());
    ingest.review_cache_ttl = args.review_cache_ttl;
    ingest.review_cache_size = args.review_cache_size;
    ingest.bad_token_budget = args.bad_token_budget;
    ingest.token_audience = args.token_audience.clone();
    let leader = args.leader_election.then(|| {
        let namespace =
            args.leader_election_namespace.clone().or(pod_namespace).unwrap_or_else(|| "default".to_string());
        LeaderConfig::new(namespace, args.lease_name.clone(), crate::leader::lease_identity(&instance))
    });
    let tls = server_tls(&args.tls)?;
    let admin = listen(args.admin_addr, "admin endpoints").await?;
    let http = listen(args.http_addr, "HTTP ingestion").await?;
    let kubeconfig = kube::Config::infer().await.context(
        "no Kubernetes configuration (KUBECONFIG or in-cluster); without a cluster, run `kube-notify standalone`",
    )?;
    let client = kube::Client::try_from(kubeconfig.clone()).context("building the Kubernetes client")?;
    // The Lease gets connections of its own: renewals never wait behind bulk requests.
    let lease_client = match leader {
        Some(_) => {
            kube::Client::try_from(kubeconfig.clone()).context("building the Lease's Kubernetes client")?;
            let make: crate::leader::LeaseClient = Arc::new(move || {
                kube::Client::try_from(kubeconfig.clone()).expect("the same configuration built a client at start")
            });
            Some(make)
        }
        None => None,
    };
    let config = RunConfig { operator, leader, lease_client, ingest, admin, http, limits: Limits::default(), tls };
    Operator::new(Backend::Kubernetes(client), config, Arc::new(Metrics::default())).run(shutdown_signal()).await
}

/// `kube-notify standalone`: the same engine on the embedded store.
pub async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    telemetry::init(&args.engine.log);
    let access = match &args.token_file {
        Some(path) => TokenAccess::Required(Token::from_file(path).map_err(anyhow::Error::msg)?),
        None if args.http_addr.ip().is_loopback() => TokenAccess::LoopbackOnly,
        None => anyhow::bail!(
            "--http-addr {} is not a loopback address: give --token-file, so that the network cannot send without a token",
            args.http_addr
        ),
    };
    let (operator, ingest) = engine_config(&args.engine, None, Some("standalone".to_string()))?;
    let tls = server_tls(&args.tls)?;
    let (store, applied) = standalone::open(&args.state_dir, &args.manifests, &args.namespace)?;
    let admin = listen(args.admin_addr, "admin endpoints").await?;
    let http = listen(args.http_addr, "HTTP ingestion").await?;
    let reload =
        standalone::reload(store.clone(), args.manifests.clone(), args.namespace.clone(), args.reload_period, applied);
    let config =
        RunConfig { operator, leader: None, lease_client: None, ingest, admin, http, limits: Limits::default(), tls };
    let operator = Operator::new(Backend::Embedded { store, access }, config, Arc::new(Metrics::default()));
    tokio::select! {
        res = operator.run(shutdown_signal()) => res,
        () = reload => anyhow::bail!("the manifest reload stopped"),
    }
}

/// `kube-notify get`: what `kubectl get` would print, from a state folder.
pub fn get(args: GetArgs) -> anyhow::Result<()> {
    standalone::get::print(&args)
}

/// `kube-notify sidecar`.
pub async fn sidecar(args: SidecarArgs) -> anyhow::Result<()> {
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
        () = shutdown_signal() => Ok(()),
    }
}

/// `kube-notify send`: prints the outcome (one line, and one per target of
/// a fan-out) and exits with its code (see [`crate::exit::Exit`]).
pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    exit_with(crate::client::send(&args).await)
}

/// `kube-notify test`.
pub async fn test(args: TestArgs) -> anyhow::Result<()> {
    exit_with(crate::client::test_message::test(args.namespace, &args.name, args.wait).await)
}

/// Print a client command's outcome and exit with its code.
fn exit_with(outcome: crate::exit::Outcome) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for line in outcome.lines() {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
    std::process::exit(outcome.code().into())
}

/// `kube-notify crd`: the CRDs as YAML on stdout.
pub fn crds() -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for (_, crd) in crate::crd::all() {
        match out.write_all(crate::crd::to_yaml(&crd).as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
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
    tracing::info!("shutting down");
}
