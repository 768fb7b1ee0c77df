//! The command line: one clap struct per subcommand, every flag with an
//! environment fallback `KUBE_NOTIFY_*`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "kube-notify",
    version,
    about = "Kubernetes notification operator: Slack, Chatwork, Microsoft Teams and webhooks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator (KUBECONFIG or in-cluster configuration).
    Run(Box<RunArgs>),
    /// Serve the `events` endpoint next to an application in its pod, on
    /// loopback, without a token: events are created with the pod's own
    /// ServiceAccount in the pod's namespace.
    Sidecar(SidecarArgs),
    /// Run without Kubernetes: integrations and Secrets from manifest files
    /// (reloaded on change), events and status in an embedded database.
    Standalone(Box<StandaloneArgs>),
    /// Print integrations, events or contacts from a standalone state
    /// folder, as `kubectl get` prints them.
    Get(GetArgs),
    /// Send a notification and wait for its delivery (for scripts and CI):
    /// creates a NotificationEvent with your kubeconfig, or posts it to
    /// kube-notify's HTTP endpoint with --url; exits 0 only when it was delivered.
    #[command(after_help = crate::exit::HELP)]
    Send(Box<SendArgs>),
    /// Send one short test message to an integration and wait for the
    /// answer: sets its annotation kube-notify.io/send-test to a new value
    /// (with your kubeconfig); the operator sends it and records the outcome
    /// in status.testMessage. Exits 0 only when it was delivered.
    #[command(after_help = crate::exit::HELP)]
    Test(TestArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--secret-access` (see [`crate::store::SecretAccess`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SecretAccessMode {
    Watch,
    Labelled,
    Get,
}

/// `--service-account`: `namespace:name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

fn parse_service_account(value: &str) -> Result<ServiceAccountRef, String> {
    match value.split_once(':') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains(':') => {
            Ok(ServiceAccountRef { namespace: namespace.into(), name: name.into() })
        }
        _ => Err(format!("expected namespace:name, e.g. kube-notify:kube-notify, got {value:?}")),
    }
}

impl RunArgs {
    /// Who reads Secrets, as `SecretForbidden` messages name it: the
    /// ServiceAccount from `--service-account`, else `kube-notify` in
    /// `pod_namespace` (the ServiceAccount's namespace file), else in `default`.
    pub fn secret_reader(&self, pod_namespace: Option<&str>) -> crate::status::integration::SecretReader {
        use crate::status::integration::{DEFAULT_SERVICE_ACCOUNT, SecretReader};
        let (namespace, name) = match &self.service_account {
            Some(sa) => (sa.namespace.clone(), sa.name.clone()),
            None => (pod_namespace.unwrap_or("default").to_string(), DEFAULT_SERVICE_ACCOUNT.to_string()),
        };
        SecretReader {
            role: self.secret_reader_role.clone(),
            service_account_namespace: namespace,
            service_account: name,
        }
    }

    /// The Secret access the flags choose.
    pub fn secret_access(&self) -> anyhow::Result<crate::store::SecretAccess> {
        use crate::store::SecretAccess;
        Ok(match self.secret_access {
            SecretAccessMode::Watch => SecretAccess::Watch,
            SecretAccessMode::Labelled => SecretAccess::Labelled,
            SecretAccessMode::Get if self.secret_reread_period.is_zero() => {
                anyhow::bail!("--secret-reread-period must be more than 0 with --secret-access get")
            }
            SecretAccessMode::Get => SecretAccess::Get { reread: self.secret_reread_period },
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "KUBE_NOTIFY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "KUBE_NOTIFY_LOG", default_value = "info,kube=warn,kube_notify=info")]
    pub log: String,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Admin endpoints: /livez, /readyz, /metrics.
    #[arg(long, env = "KUBE_NOTIFY_ADMIN_ADDR", default_value = "0.0.0.0:8081")]
    pub admin_addr: SocketAddr,

    /// HTTP ingestion endpoint.
    #[arg(long, env = "KUBE_NOTIFY_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "KUBE_NOTIFY_NAMESPACE")]
    pub namespace: Option<String>,

    /// The name Events are reported under (the pod name in a Deployment).
    #[arg(long, env = "KUBE_NOTIFY_INSTANCE")]
    pub instance: Option<String>,

    /// Run the controllers only while holding the Lease (several replicas: one leader).
    #[arg(long, env = "KUBE_NOTIFY_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// The namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "KUBE_NOTIFY_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// The name of the Lease.
    #[arg(long, env = "KUBE_NOTIFY_LEASE_NAME", default_value = "kube-notify")]
    pub lease_name: String,

    /// HTTP ingestion: how long TokenReview and SubjectAccessReview answers are reused (0 disables the cache).
    #[arg(long, env = "KUBE_NOTIFY_REVIEW_CACHE_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub review_cache_ttl: Duration,

    /// HTTP ingestion: the most TokenReview (and SubjectAccessReview) answers kept.
    #[arg(long, env = "KUBE_NOTIFY_REVIEW_CACHE_SIZE", default_value = "10000")]
    pub review_cache_size: usize,

    /// How Secret changes are noticed: `watch` every Secret's metadata (RBAC
    /// list/watch on Secrets), `labelled` (watch only Secrets labelled
    /// kube-notify.io/secret=true; the same RBAC, less memory) or `get` (no
    /// watch: re-read each used Secret every --secret-reread-period; RBAC get only).
    #[arg(long, env = "KUBE_NOTIFY_SECRET_ACCESS", value_enum, default_value = "watch")]
    pub secret_access: SecretAccessMode,

    /// With --secret-access get: how often each Secret integrations use is read again (±10%).
    #[arg(long, env = "KUBE_NOTIFY_SECRET_REREAD_PERIOD", default_value = "60s", value_parser = humantime::parse_duration)]
    pub secret_reread_period: Duration,

    /// HTTP ingestion: the audience callers' tokens must be minted for
    /// (`kubectl create token NAME --audience kube-notify`, or a projected
    /// ServiceAccount token with that audience); a token for the API server is refused (401).
    #[arg(long, env = "KUBE_NOTIFY_TOKEN_AUDIENCE", default_value = crate::server::ingest::auth::DEFAULT_TOKEN_AUDIENCE, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub token_audience: String,

    /// The ClusterRole (`get` on Secrets) a namespace binds to let the
    /// operator read its Secrets: named in the `kubectl create rolebinding`
    /// line of SecretForbidden messages.
    #[arg(long, env = "KUBE_NOTIFY_SECRET_READER_ROLE", default_value = crate::status::integration::DEFAULT_SECRET_READER_ROLE, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub secret_reader_role: String,

    /// The operator's ServiceAccount as namespace:name, for the same line
    /// (default: kube-notify in the pod's namespace, else in `default`).
    #[arg(long, env = "KUBE_NOTIFY_SERVICE_ACCOUNT", value_parser = parse_service_account)]
    pub service_account: Option<ServiceAccountRef>,

    /// HTTP ingestion: invalid bearer tokens one client address may present
    /// before its requests get 429 without a TokenReview (then one per second).
    #[arg(long, env = "KUBE_NOTIFY_BAD_TOKEN_BUDGET", default_value_t = std::num::NonZeroU32::new(crate::server::ingest::flood::DEFAULT_BAD_TOKEN_BUDGET).unwrap())]
    pub bad_token_budget: std::num::NonZeroU32,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// HTTP ingestion over TLS, on a cluster and standalone alike.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// HTTP ingestion over TLS with this PEM certificate chain (the
    /// server's certificate first), with --tls-key-file; both files are
    /// reloaded when they change. Without both: plain HTTP.
    #[arg(long, env = "KUBE_NOTIFY_TLS_CERT_FILE")]
    pub tls_cert_file: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert-file.
    #[arg(long, env = "KUBE_NOTIFY_TLS_KEY_FILE")]
    pub tls_key_file: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The files given: both or neither.
    pub fn files(&self) -> anyhow::Result<Option<crate::server::tls::TlsFiles>> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Ok(Some(crate::server::tls::TlsFiles { cert: cert.clone(), key: key.clone() })),
            (None, None) => Ok(None),
            (Some(_), None) => {
                anyhow::bail!("--tls-cert-file is given without --tls-key-file: give both (PEM) or neither")
            }
            (None, Some(_)) => {
                anyhow::bail!("--tls-key-file is given without --tls-cert-file: give both (PEM) or neither")
            }
        }
    }
}

#[derive(Args, Debug, Clone)]
/// What the delivery engine takes, on a cluster and standalone alike.
pub struct EngineArgs {
    /// Slack Web API base URL (bot-token mode).
    #[arg(long, env = "KUBE_NOTIFY_SLACK_API_URL", default_value = "https://slack.com/api")]
    pub slack_api_url: url::Url,

    /// Chatwork API base URL.
    #[arg(long, env = "KUBE_NOTIFY_CHATWORK_API_URL", default_value = "https://api.chatwork.com/v2")]
    pub chatwork_api_url: url::Url,

    /// Allow webhook URLs starting with this prefix besides the services'
    /// official hosts (repeatable; comma-separated in the environment).
    #[arg(long = "allow-endpoint", env = "KUBE_NOTIFY_ALLOW_ENDPOINT", value_delimiter = ',')]
    pub allow_endpoint: Vec<String>,

    /// Behind an egress proxy (HTTPS_PROXY): send generic webhooks (any URL
    /// outside --allow-endpoint, --slack-api-url, --chatwork-api-url and the
    /// services' own webhook hosts) through the proxy too, each refused unless
    /// its name resolves to an allowed address first; without it they connect
    /// directly, through the SSRF guard.
    #[arg(long, env = "KUBE_NOTIFY_ALLOW_PROXY_FOR_WEBHOOKS", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_proxy_for_webhooks: bool,

    /// How often valid credentials are checked again.
    #[arg(long, env = "KUBE_NOTIFY_REVALIDATE_PERIOD", default_value = "6h", value_parser = humantime::parse_duration)]
    pub revalidate_period: Duration,

    /// Credential checks per second per service, across all integrations.
    #[arg(long, env = "KUBE_NOTIFY_VALIDATION_RATE", default_value = "5")]
    pub validation_rate: std::num::NonZeroU32,

    /// Timeout of one call to a chat service.
    #[arg(long, env = "KUBE_NOTIFY_HTTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_timeout: Duration,

    /// How long an event waits for its integration (and retries run) after creation before it fails as Expired.
    #[arg(long, env = "KUBE_NOTIFY_EVENT_DEADLINE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub event_deadline: Duration,

    /// Finished events are deleted this long after finishing, unless their
    /// spec.ttlSecondsAfterFinished says otherwise; 0 keeps them.
    #[arg(long, env = "KUBE_NOTIFY_EVENT_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub event_ttl: Duration,

    /// Calls to a service for one message when it fails transiently (429 waits with a hint don't count).
    #[arg(long, env = "KUBE_NOTIFY_DELIVERY_ATTEMPTS", default_value = "5")]
    pub delivery_attempts: u32,

    /// The longest wait between two attempts (exponential backoff with jitter from 1s).
    #[arg(long, env = "KUBE_NOTIFY_RETRY_MAX_DELAY", default_value = "60s", value_parser = humantime::parse_duration)]
    pub retry_max_delay: Duration,

    /// HTTP ingestion: request bodies over this many bytes are refused (413).
    #[arg(long, env = "KUBE_NOTIFY_MAX_BODY_BYTES", default_value = "1048576")]
    pub max_body_bytes: usize,

    /// HTTP ingestion: what all POSTs together may hold in memory while they
    /// are answered (their bodies, at least 16 KiB each, until the answer of
    /// a `send` or a `?wait=`); 429 with Retry-After beyond.
    #[arg(long, env = "KUBE_NOTIFY_MAX_IN_FLIGHT_BYTES", default_value = "33554432")]
    pub max_in_flight_bytes: usize,

    /// HTTP ingestion: requests per second per caller (Kubernetes username); 429 beyond.
    #[arg(long, env = "KUBE_NOTIFY_INGEST_RATE", default_value = "50")]
    pub ingest_rate: std::num::NonZeroU32,

    /// HTTP ingestion: requests a caller may send at once before the rate applies.
    #[arg(long, env = "KUBE_NOTIFY_INGEST_BURST", default_value = "100")]
    pub ingest_burst: std::num::NonZeroU32,

    /// HTTP ingestion: the deadline of one synchronous send, rate-limit waits and retries included (504 after).
    #[arg(long, env = "KUBE_NOTIFY_SEND_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub send_timeout: Duration,

    /// The most integrations one event may target; an event whose
    /// integrationSelector matches more fails as TooManyTargets.
    #[arg(long, env = "KUBE_NOTIFY_MAX_TARGETS", default_value_t = crate::controller::DEFAULT_MAX_TARGETS)]
    pub max_targets: usize,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Args, Debug, Clone)]
pub struct StandaloneArgs {
    /// A manifest file or a folder of them (*.yaml, *.yml, *.json): the
    /// NotificationIntegration, NotificationContact and Secret objects you
    /// would `kubectl apply`. Reloaded when they change.
    #[arg(long, short = 'f', env = "KUBE_NOTIFY_MANIFESTS")]
    pub manifests: std::path::PathBuf,

    /// The state folder: the database of events and status (one process at a time).
    #[arg(long, env = "KUBE_NOTIFY_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: std::path::PathBuf,

    /// The namespace of manifests that name none.
    #[arg(long, short = 'n', env = "KUBE_NOTIFY_NAMESPACE", default_value = "default")]
    pub namespace: String,

    /// HTTP ingestion endpoint. Without --token-file only a loopback address is accepted.
    #[arg(long, env = "KUBE_NOTIFY_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Admin endpoints: /livez, /readyz, /metrics.
    #[arg(long, env = "KUBE_NOTIFY_ADMIN_ADDR", default_value = "127.0.0.1:8081")]
    pub admin_addr: SocketAddr,

    /// A file holding the bearer token callers must present (required to
    /// listen beyond loopback).
    #[arg(long, env = "KUBE_NOTIFY_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,

    /// How often the manifests are checked for changes.
    #[arg(long, env = "KUBE_NOTIFY_RELOAD_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    pub reload_period: Duration,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// The state folder when none is given.
pub const DEFAULT_STATE_DIR: &str = "kube-notify-state";

/// What `get` prints.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum GetKind {
    #[value(alias = "integration", alias = "ni", alias = "notificationintegrations")]
    Integrations,
    #[value(alias = "event", alias = "nev", alias = "notificationevents")]
    Events,
    #[value(alias = "contact", alias = "ncontact", alias = "notificationcontacts")]
    Contacts,
}

#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// integrations (ni), events (nev) or contacts (ncontact).
    #[arg(value_enum)]
    pub kind: GetKind,

    /// Only this object.
    pub name: Option<String>,

    /// The namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,

    /// Every namespace.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: crate::printer::Output,

    /// The state folder of the standalone process.
    #[arg(long, env = "KUBE_NOTIFY_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: std::path::PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct SidecarArgs {
    /// Where to listen: a loopback address only (the sidecar takes no token).
    #[arg(long, env = "KUBE_NOTIFY_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,

    /// The namespace when not running in a pod (POD_NAMESPACE, then the
    /// ServiceAccount's namespace file, come first; a different value is refused).
    #[arg(long, env = "KUBE_NOTIFY_NAMESPACE")]
    pub namespace: Option<String>,

    /// Request bodies over this many bytes are refused (413).
    #[arg(long, env = "KUBE_NOTIFY_MAX_BODY_BYTES", default_value = "1048576")]
    pub max_body_bytes: usize,

    /// Requests per second, all callers together; 429 beyond.
    #[arg(long, env = "KUBE_NOTIFY_INGEST_RATE", default_value = "50")]
    pub ingest_rate: std::num::NonZeroU32,

    /// Requests accepted at once before the rate applies.
    #[arg(long, env = "KUBE_NOTIFY_INGEST_BURST", default_value = "100")]
    pub ingest_burst: std::num::NonZeroU32,

    #[command(flatten)]
    pub log: LogArgs,
}

/// `kube-notify send`.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["integration", "selector"])))]
pub struct SendArgs {
    /// The namespace of the integration (default: the kubeconfig context's, else `default`).
    #[arg(long, short = 'n', env = "KUBE_NOTIFY_NAMESPACE")]
    pub namespace: Option<String>,

    /// The integration to deliver to.
    #[arg(long, short = 'i', env = "KUBE_NOTIFY_INTEGRATION")]
    pub integration: Option<String>,

    /// Deliver to every integration whose labels match (`team=a,tier in (1,2)`).
    #[arg(long, short = 'l', env = "KUBE_NOTIFY_SELECTOR")]
    pub selector: Option<String>,

    /// The title.
    #[arg(long, short = 't', env = "KUBE_NOTIFY_TITLE")]
    pub title: Option<String>,

    /// The message (`-` or no --message: read from stdin).
    #[arg(long, short = 'm', env = "KUBE_NOTIFY_MESSAGE")]
    pub message: Option<String>,

    /// info, success, warning or error (default info).
    #[arg(long, short = 's', env = "KUBE_NOTIFY_SEVERITY")]
    pub severity: Option<String>,

    // No environment fallback for the repeatable flags: values may hold commas.
    /// A `name=value` field (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    pub field: Vec<String>,

    /// A link, `text=url` or a URL alone (repeatable).
    #[arg(long, value_name = "TEXT=URL")]
    pub link: Vec<String>,

    /// A person to mention, `email` or `email=Name` (repeatable).
    #[arg(long, value_name = "EMAIL[=NAME]")]
    pub mention: Vec<String>,

    /// How long to wait for the delivery; `0` only creates it.
    #[arg(long, env = "KUBE_NOTIFY_WAIT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub wait: Duration,

    /// Post to kube-notify's HTTP endpoint (the operator's --http-addr or
    /// standalone's) instead of creating the event with the kubeconfig.
    #[arg(long, env = "KUBE_NOTIFY_URL")]
    pub url: Option<url::Url>,

    /// With --url: a file holding the bearer token (else the environment
    /// variable KUBE_NOTIFY_TOKEN; none for a standalone server on loopback).
    /// On a cluster, a token minted for kube-notify: `kubectl create token
    /// NAME --audience kube-notify`, or a projected ServiceAccount token with
    /// that audience (a token for the API server is refused).
    #[arg(long, env = "KUBE_NOTIFY_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

/// `kube-notify test`.
#[derive(Args, Debug, Clone)]
pub struct TestArgs {
    /// The NotificationIntegration.
    pub name: String,

    /// Its namespace (default: the kubeconfig context's, else `default`).
    #[arg(long, short = 'n', env = "KUBE_NOTIFY_NAMESPACE")]
    pub namespace: Option<String>,

    /// How long to wait for the answer; `0` only asks.
    #[arg(long, env = "KUBE_NOTIFY_WAIT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let cli = Cli::try_parse_from(["kube-notify", "run"]).unwrap();
        let Command::Run(args) = cli.command else { panic!("expected run") };
        assert_eq!(args.admin_addr.to_string(), "0.0.0.0:8081");
        assert_eq!(args.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(args.namespace, None);
        assert_eq!(args.token_audience, "kube-notify");
        let args = args.engine;
        assert_eq!(args.slack_api_url.as_str(), "https://slack.com/api");
        assert_eq!(args.chatwork_api_url.as_str(), "https://api.chatwork.com/v2");
        assert_eq!(args.revalidate_period, Duration::from_secs(6 * 3600));
        assert!(args.allow_endpoint.is_empty());
        assert_eq!(args.event_deadline, Duration::from_secs(3600));
        assert_eq!(args.event_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(args.max_body_bytes, 1024 * 1024);
        assert_eq!(args.ingest_rate.get(), 50);
        assert_eq!(args.send_timeout, Duration::from_secs(30));
        assert_eq!(args.max_targets, 1000);
        assert!(!args.allow_proxy_for_webhooks);
    }

    #[test]
    fn proxy_for_webhooks_is_a_flag() {
        let cli = Cli::try_parse_from(["kube-notify", "run", "--allow-proxy-for-webhooks"]).unwrap();
        let Command::Run(args) = cli.command else { panic!("expected run") };
        assert!(args.engine.allow_proxy_for_webhooks);
        let cli = Cli::try_parse_from(["kube-notify", "standalone", "-f", "x", "--allow-proxy-for-webhooks"]).unwrap();
        let Command::Standalone(args) = cli.command else { panic!("expected standalone") };
        assert!(args.engine.allow_proxy_for_webhooks);
    }

    #[test]
    fn the_token_audience_is_a_flag_and_never_empty() {
        let run = |extra: &[&str]| {
            let cli = Cli::try_parse_from(["kube-notify", "run"].iter().chain(extra))?;
            let Command::Run(args) = cli.command else { panic!("expected run") };
            Ok::<_, clap::Error>(args.token_audience)
        };
        assert_eq!(run(&["--token-audience", "notify.example.com"]).unwrap(), "notify.example.com");
        assert!(run(&["--token-audience="]).is_err());
    }

    #[test]
    fn secret_access_modes() {
        use crate::store::SecretAccess;
        let args = |extra: &[&str]| {
            let cli = Cli::try_parse_from(["kube-notify", "run"].iter().chain(extra)).unwrap();
            let Command::Run(args) = cli.command else { panic!("expected run") };
            args.secret_access()
        };
        assert_eq!(args(&[]).unwrap(), SecretAccess::Watch);
        assert_eq!(args(&["--secret-access", "labelled"]).unwrap(), SecretAccess::Labelled);
        assert_eq!(args(&["--secret-access", "get"]).unwrap(), SecretAccess::Get { reread: Duration::from_secs(60) });
        assert_eq!(
            args(&["--secret-access=get", "--secret-reread-period=5m"]).unwrap(),
            SecretAccess::Get { reread: Duration::from_secs(300) }
        );
        let e = args(&["--secret-access=get", "--secret-reread-period=0s"]).unwrap_err();
        assert!(e.to_string().contains("--secret-reread-period"), "{e}");
    }

    #[test]
    fn secret_reader_names() {
        let args = |extra: &[&str]| {
            let cli = Cli::try_parse_from(["kube-notify", "run"].iter().chain(extra))?;
            let Command::Run(args) = cli.command else { panic!("expected run") };
            Ok::<_, clap::Error>(args)
        };
        let reader = args(&[]).unwrap().secret_reader(Some("ops"));
        assert_eq!(reader.role, "kube-notify-secret-reader");
        assert_eq!(
            (reader.service_account_namespace.as_str(), reader.service_account.as_str()),
            ("ops", "kube-notify")
        );
        assert_eq!(args(&[]).unwrap().secret_reader(None).service_account_namespace, "default");
        let set =
            args(&["--secret-reader-role=r", "--service-account=kn:notifier"]).unwrap().secret_reader(Some("ops"));
        assert_eq!(
            set.rolebinding_command("t"),
            "kubectl create rolebinding r -n t --clusterrole=r --serviceaccount=kn:notifier"
        );
        for wrong in ["kn", "kn:", ":notifier", "a:b:c"] {
            let e = args(&["--service-account", wrong]).unwrap_err().to_string();
            assert!(e.contains("namespace:name"), "{wrong}: {e}");
        }
        assert!(args(&["--secret-reader-role="]).is_err());
    }

    #[test]
    fn tls_takes_both_files_or_neither() {
        let tls = |extra: &[&str]| {
            let cli = Cli::try_parse_from(["kube-notify", "run"].iter().chain(extra)).unwrap();
            let Command::Run(args) = cli.command else { panic!("expected run") };
            args.tls.files()
        };
        assert_eq!(tls(&[]).unwrap(), None);
        let files = tls(&["--tls-cert-file", "/tls/tls.crt", "--tls-key-file", "/tls/tls.key"]).unwrap().unwrap();
        assert_eq!((files.cert.to_str(), files.key.to_str()), (Some("/tls/tls.crt"), Some("/tls/tls.key")));
        let e = tls(&["--tls-cert-file", "/tls/tls.crt"]).unwrap_err().to_string();
        assert!(e.contains("--tls-key-file"), "{e}");
        let e = tls(&["--tls-key-file", "/tls/tls.key"]).unwrap_err().to_string();
        assert!(e.contains("--tls-cert-file"), "{e}");
        let cli = Cli::try_parse_from(["kube-notify", "standalone", "-f", "x", "--tls-cert-file", "c"]).unwrap();
        let Command::Standalone(args) = cli.command else { panic!("expected standalone") };
        assert!(args.tls.files().unwrap_err().to_string().contains("--tls-key-file"));
    }

    #[test]
    fn sidecar_defaults() {
        let cli = Cli::try_parse_from(["kube-notify", "sidecar"]).unwrap();
        let Command::Sidecar(args) = cli.command else { panic!("expected sidecar") };
        assert_eq!(args.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(args.namespace, None);
        assert_eq!(args.max_body_bytes, 1024 * 1024);
        let cli =
            Cli::try_parse_from(["kube-notify", "sidecar", "--listen", "[::1]:9000", "--namespace", "dev"]).unwrap();
        let Command::Sidecar(args) = cli.command else { panic!("expected sidecar") };
        assert_eq!(args.listen.to_string(), "[::1]:9000");
        assert_eq!(args.namespace.as_deref(), Some("dev"));
    }

    #[test]
    fn repeatable_allow_endpoint() {
        let cli = Cli::try_parse_from([
            "kube-notify",
            "run",
            "--allow-endpoint",
            "http://127.0.0.1:1/",
            "--allow-endpoint",
            "https://hooks.example/",
            "--revalidate-period",
            "30m",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else { panic!("expected run") };
        assert_eq!(args.engine.allow_endpoint.len(), 2);
        assert_eq!(args.engine.revalidate_period, Duration::from_secs(1800));
    }

    #[test]
    fn standalone_listens_on_loopback_by_default() {
        let cli = Cli::try_parse_from(["kube-notify", "standalone", "-f", "examples/"]).unwrap();
        let Command::Standalone(args) = cli.command else { panic!("expected standalone") };
        assert!(args.http_addr.ip().is_loopback() && args.admin_addr.ip().is_loopback());
        assert_eq!(args.state_dir, std::path::PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(args.namespace, "default");
        assert!(args.token_file.is_none());
        let cli = Cli::try_parse_from(["kube-notify", "get", "ni", "-A", "-o", "yaml"]).unwrap();
        let Command::Get(args) = cli.command else { panic!("expected get") };
        assert_eq!(args.kind, GetKind::Integrations);
        assert!(args.all_namespaces);
    }
}
