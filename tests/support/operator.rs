//! Runs the real operator against the API emulation and the service
//! emulators, with helpers to create objects and await their status.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use kube_notify::controller::Context;
use kube_notify::controller::Settings;
use kube_notify::crd::{NotificationContact, NotificationEvent, NotificationIntegration};
use kube_notify::leader::{LeaderConfig, Leadership};
use kube_notify::metrics::Metrics;
use kube_notify::notifier::ServiceEndpoints;
use kube_notify::notifier::endpoint::EndpointPolicy;
use kube_notify::operator::{Backend, Operator, OperatorConfig, RunConfig};
use kube_notify::server::admin::Readiness;
use kube_notify::server::ingest::IngestConfig;
use kube_notify::server::ingest::token::TokenAccess;
use kube_notify::store::embedded::Embedded;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::apiserver::ApiServer;
use super::services::{ChatworkEmulator, SlackEmulator, TeamsEmulator, WebhookEmulator};

pub const NS: &str = "team-a";
pub const OPERATOR_TOKEN: &str = "operator-token";
pub const OPERATOR_USER: &str = "system:serviceaccount:kube-notify:kube-notify";
/// How long any awaited condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Everything the operator logs, from every test in this binary.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture the operator's logs (debug level) for the whole test binary.
pub fn capture_logs() {
    capture_logs_at("kube_notify=debug,kube=debug")
}

/// Capture the operator's logs with `filter`, if nothing captures them yet
/// (benchmarks use production's level: debug logging is not free).
pub fn capture_logs_at(filter: &str) {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = LogWriter(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        buf
    });
}

/// What was logged so far.
pub fn captured_logs() -> String {
    LOGS.get().map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned()).unwrap_or_default()
}

/// How one operator replica is started (see [`World::launch`]).
#[derive(Clone, Debug)]
pub struct Launch {
    pub operator: OperatorConfig,
    /// Leader election; `None` runs the controllers at once.
    pub leader: Option<LeaderConfig>,
    pub ingest: IngestConfig,
    /// The bearer token the operator's client uses.
    pub token: String,
    /// The listeners' limits.
    pub limits: kube_notify::server::listen::Limits,
    /// HTTP ingestion over TLS (`https://` in [`Replica::http_url`]).
    pub tls: Option<kube_notify::server::tls::ServerTls>,
}

/// A running operator replica, started exactly as `main` starts one.
pub struct Replica {
    pub ctx: Arc<Context>,
    pub readiness: Readiness,
    pub leadership: Leadership,
    /// `http://127.0.0.1:port` of the admin endpoints (/livez, /readyz, /metrics).
    pub admin_url: String,
    /// `http://127.0.0.1:port` of HTTP ingestion.
    pub http_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    /// Shut down as on SIGTERM (drain, then release the Lease); the run's result.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.finished().await
    }

    /// Wait until the operator ends by itself (e.g. it stepped down); its result.
    pub async fn finished(&mut self) -> anyhow::Result<()> {
        let task = self.task.as_mut().expect("the replica is running");
        let res =
            tokio::time::timeout(WAIT, task).await.expect("the operator did not stop").expect("the operator panicked");
        self.task = None;
        res
    }

    /// `GET /readyz`'s status code.
    pub async fn readyz(&self) -> u16 {
        reqwest::get(format!("{}/readyz", self.admin_url)).await.unwrap().status().as_u16()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The emulated world plus a running operator.
/// Where a [`World`]'s operator keeps its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The API emulation, as on a cluster.
    Kubernetes,
    /// Standalone: the embedded store in a temporary state folder, objects
    /// from manifest files.
    Standalone,
}

/// A standalone world's state folder and manifests.
pub struct Standalone {
    pub store: Arc<Embedded>,
    /// The state folder and the manifests file in it.
    pub dir: tempfile::TempDir,
    /// The objects the manifests file holds, by (kind, namespace, name).
    documents: Mutex<std::collections::BTreeMap<(String, String, String), Value>>,
}

impl Standalone {
    pub fn manifests_path(&self) -> std::path::PathBuf {
        self.dir.path().join("manifests.yaml")
    }

    /// Put `doc` in the manifests (replacing the object of that kind and
    /// name), write the file and apply it as the reload does.
    pub fn put(&self, doc: Value) {
        let key = (
            doc["kind"].as_str().unwrap().to_string(),
            doc["metadata"]["namespace"].as_str().unwrap_or(NS).to_string(),
            doc["metadata"]["name"].as_str().unwrap().to_string(),
        );
        self.documents.lock().unwrap().insert(key, doc);
        self.write_and_apply();
    }

    /// Change the object's document with `edit`, write and apply.
    pub fn edit(&self, kind: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        {
            let mut docs = self.documents.lock().unwrap();
            let doc = docs.get_mut(&(kind.to_string(), NS.to_string(), name.to_string())).expect("in the manifests");
            edit(doc);
        }
        self.write_and_apply();
    }

    /// Remove the object from the manifests, write and apply.
    pub fn remove(&self, kind: &str, name: &str) {
        self.documents.lock().unwrap().remove(&(kind.to_string(), NS.to_string(), name.to_string()));
        self.write_and_apply();
    }

    /// The manifests file's text.
    pub fn text(&self) -> String {
        let docs = self.documents.lock().unwrap();
        docs.values().map(|d| serde_yaml::to_string(d).unwrap()).collect::<Vec<_>>().join("---\n")
    }

    fn write_and_apply(&self) {
        std::fs::write(self.manifests_path(), self.text()).unwrap();
        kube_notify::standalone::apply_from(&self.store, &self.manifests_path(), NS).expect("the manifests apply");
    }
}

pub struct World {
    pub place: Place,
    /// Set when the world is standalone.
    pub standalone: Option<Arc<Standalone>>,
    pub api: ApiServer,
    pub admin: Client,
    pub slack: SlackEmulator,
    pub chatwork: ChatworkEmulator,
    pub teams: TeamsEmulator,
    pub webhook: WebhookEmulator,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub config: OperatorConfig,
    operator: Option<Replica>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_operator();
    }
}

/// Settings that make retries and re-checks quick.
pub fn test_settings() -> Settings {
    Settings {
        revalidate_period: Duration::from_secs(3600),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(500),
        error_requeue: Duration::from_millis(50),
        error_requeue_max: Duration::from_secs(1),
        queued_status_after: Duration::from_secs(5),
        outcome_batch: Duration::from_millis(100),
        validation_rate: std::num::NonZeroU32::new(1000).unwrap(),
        event_deadline: Duration::from_secs(60),
        event_ttl: None,
        retry: kube_notify::delivery::RetryPolicy {
            attempts: 3,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_rate_limited: 10,
        },
        counter_flush: Duration::from_millis(50),
        reconcile_concurrency: 16,
        mentions: kube_notify::notifier::mentions::MentionSettings {
            lookup_wait: Duration::from_secs(2),
            ..Default::default()
        },
        mention_warning_period: Duration::from_secs(3600),
        max_targets: kube_notify::controller::DEFAULT_MAX_TARGETS,
        secret_access: kube_notify::store::SecretAccess::Watch,
        secret_reader: Default::default(),
        send_timeout: Duration::from_secs(10),
    }
}

impl World {
    /// Start the emulators and the operator with test settings.
    pub async fn start() -> World {
        Self::start_with(|_| {}).await
    }

    /// Like [`World::start`], with a chance to change the operator's config.
    pub async fn start_with(adjust: impl FnOnce(&mut OperatorConfig)) -> World {
        let mut world = Self::without_operator().await;
        adjust(&mut world.config);
        world.start_operator();
        world
    }

    /// Start on `place` with test settings and `adjust`ed config.
    pub async fn start_on(place: Place, adjust: impl FnOnce(&mut OperatorConfig)) -> World {
        let mut world = Self::without_operator_on(place).await;
        adjust(&mut world.config);
        world.start_operator();
        world
    }

    /// The emulators and CRDs, but no operator yet.
    pub async fn without_operator() -> World {
        Self::without_operator_on(Place::Kubernetes).await
    }

    /// [`World::without_operator`] on `place`.
    pub async fn without_operator_on(place: Place) -> World {
        Self::with_api(place, ApiServer::start().await).await
    }

    /// [`World::without_operator`] with the API emulation on a runtime and
    /// thread of its own, as a real API server is another process: an
    /// operator that keeps this test's runtime busy (thousands of objects
    /// starting) does not slow the API server down with it.
    pub async fn with_api_apart() -> World {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            runtime.block_on(async {
                let _ = tx.send(ApiServer::start().await);
                futures::future::pending::<()>().await
            })
        });
        Self::with_api(Place::Kubernetes, rx.await.expect("the API emulation started")).await
    }

    async fn with_api(place: Place, api: ApiServer) -> World {
        capture_logs();
        api.add_user(OPERATOR_TOKEN, OPERATOR_USER, &["system:serviceaccounts", "system:authenticated"]);
        for (_, crd) in kube_notify::crd::all() {
            api.install_crd(&crd).expect("our CRDs install");
        }
        let slack = SlackEmulator::start().await;
        let chatwork = ChatworkEmulator::start().await;
        let teams = TeamsEmulator::start().await;
        let webhook = WebhookEmulator::start().await;
        let prefixes = vec![format!("{}/", slack.url()), format!("{}/", teams.url()), format!("{}/", webhook.url())];
        let config = OperatorConfig {
            namespace: None,
            endpoints: ServiceEndpoints {
                slack_api: slack.api_url().parse().unwrap(),
                chatwork_api: chatwork.api_url().parse().unwrap(),
                policy: EndpointPolicy::new(&prefixes).unwrap(),
            },
            http_timeout: Duration::from_secs(2),
            resolver: Default::default(),
            proxy_for_webhooks: false,
            settings: test_settings(),
            instance: Some("kube-notify-test".into()),
        };
        let admin = api.client();
        let standalone = (place == Place::Standalone).then(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Embedded::open(dir.path()).unwrap());
            Arc::new(Standalone { store, dir, documents: Mutex::default() })
        });
        World {
            place,
            standalone,
            api,
            admin,
            slack,
            chatwork,
            teams,
            webhook,
            metrics: Arc::new(Metrics::default()),
            readiness: Readiness::default(),
            config,
            operator: None,
        }
    }

    /// How [`World::start_operator`] starts the operator: this world's
    /// config, no leader election, the operator's token.
    pub fn launch_config(&self) -> Launch {
        Launch {
            operator: self.config.clone(),
            leader: None,
            ingest: IngestConfig::default(),
            token: OPERATOR_TOKEN.to_string(),
            limits: Default::default(),
            tls: None,
        }
    }

    /// Leader election for a replica named `identity`, with short timings
    /// (lease 3 s, renew deadline 2 s, retry period 1 s).
    pub fn leader_config(identity: &str) -> LeaderConfig {
        LeaderConfig {
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_secs(1),
            ..LeaderConfig::new("kube-notify", "kube-notify", identity)
        }
    }

    /// Start an operator replica the way `main` does ([`Operator::new`] and
    /// [`Operator::run`]), on loopback listeners, sharing this world's metrics.
    pub fn launch(&self, launch: Launch) -> Replica {
        let listen = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            let url = format!("http://{}", l.local_addr().unwrap());
            (tokio::net::TcpListener::from_std(l).unwrap(), url)
        };
        let ((admin, admin_url), (http, http_url)) = (listen(), listen());
        let http_url = if launch.tls.is_some() { http_url.replacen("http://", "https://", 1) } else { http_url };
        // As `main` does: the Lease gets a client (connections) of its own.
        let lease_client = launch.leader.as_ref().map(|_| {
            let (api, token) = (self.api.clone(), launch.token.clone());
            let make: kube_notify::leader::LeaseClient = Arc::new(move || api.client_as(&token));
            make
        });
        let config = RunConfig {
            operator: launch.operator,
            leader: launch.leader,
            lease_client,
            ingest: launch.ingest,
            admin,
            http,
            limits: launch.limits,
            tls: launch.tls,
        };
        let backend = match &self.standalone {
            None => Backend::Kubernetes(self.api.client_as(&launch.token)),
            Some(s) => Backend::Embedded { store: s.store.clone(), access: TokenAccess::LoopbackOnly },
        };
        let operator = Operator::new(backend, config, self.metrics.clone());
        let (ctx, readiness, leadership) =
            (operator.context().clone(), operator.readiness().clone(), operator.leadership().clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(operator.run(async move {
            let _ = stopped.await;
        }));
        Replica { ctx, readiness, leadership, admin_url, http_url, stop: Some(stop), task: Some(task) }
    }

    pub fn start_operator(&mut self) {
        assert!(self.operator.is_none(), "the operator is already running");
        let replica = self.launch(self.launch_config());
        self.readiness = replica.readiness.clone();
        self.operator = Some(replica);
    }

    /// The running operator.
    pub fn replica(&self) -> &Replica {
        self.operator.as_ref().expect("the operator is running")
    }

    /// The running operator's shared context.
    pub fn context(&self) -> Arc<Context> {
        self.operator.as_ref().expect("the operator is running").ctx.clone()
    }

    pub fn stop_operator(&mut self) {
        self.operator = None;
    }

    /// Shut the operator down as on SIGTERM (it drains first).
    pub async fn shutdown_operator(&mut self) {
        if let Some(replica) = self.operator.take() {
            replica.shutdown().await.expect("a clean shutdown");
        }
    }

    /// The store the operator uses, seen with the admin's rights.
    pub fn store(&self) -> kube_notify::store::Store {
        match &self.standalone {
            Some(s) => s.store.store(),
            None => {
                let reporter = kube::runtime::events::Reporter { controller: "test".into(), instance: None };
                kube_notify::store::kubernetes::store(self.admin.clone(), Some(NS.into()), reporter)
            }
        }
    }

    pub fn integrations(&self) -> Api<NotificationIntegration> {
        Api::namespaced(self.admin.clone(), NS)
    }

    pub fn events(&self) -> Api<NotificationEvent> {
        Api::namespaced(self.admin.clone(), NS)
    }

    pub fn secrets_in(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.admin.clone(), ns)
    }

    pub fn contacts(&self) -> Api<NotificationContact> {
        Api::namespaced(self.admin.clone(), NS)
    }

    /// Create (or replace the spec of) a NotificationContact in [`NS`], and
    /// wait until the running operator's watch has it.
    pub async fn put_contact(&self, name: &str, spec: Value) -> NotificationContact {
        self.put_contact_seen_by(&self.context(), name, spec).await
    }

    /// Like [`World::put_contact`], waiting for the replica whose context is `ctx`.
    pub async fn put_contact_seen_by(&self, ctx: &Context, name: &str, spec: Value) -> NotificationContact {
        let doc = json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationContact",
            "metadata": {"name": name, "namespace": NS}, "spec": spec,
        });
        let stored = match &self.standalone {
            Some(s) => {
                s.put(doc);
                (*s.store.contacts.get(NS, name).expect("applied")).clone()
            }
            None => self.put_contact_in_the_api(name, doc).await,
        };
        let key = kube::runtime::reflector::ObjectRef::new(name).within(NS);
        let deadline = tokio::time::Instant::now() + WAIT;
        while ctx.caches.contacts.get(&key).and_then(|c| c.metadata.resource_version.clone())
            != stored.metadata.resource_version
        {
            assert!(tokio::time::Instant::now() < deadline, "the operator never saw contact {name}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stored
    }

    async fn put_contact_in_the_api(&self, name: &str, doc: Value) -> NotificationContact {
        let spec = doc["spec"].clone();
        let api = self.contacts();
        match api.get_opt(name).await.unwrap() {
            None => {
                let contact: NotificationContact = serde_json::from_value(doc).unwrap();
                api.create(&PostParams::default(), &contact).await.unwrap()
            }
            Some(mut contact) => {
                contact.spec = serde_json::from_value(spec).unwrap();
                api.replace(name, &PostParams::default(), &contact).await.unwrap()
            }
        }
    }

    /// Create (or replace the data of) a Secret in [`NS`].
    pub async fn put_secret(&self, name: &str, data: &[(&str, &str)]) {
        self.put_secret_in(NS, name, data).await
    }

    pub async fn put_secret_in(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        let string_data: serde_json::Map<String, Value> =
            data.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
        if let Some(s) = &self.standalone {
            s.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
                         "stringData": string_data}));
            return;
        }
        let api = self.secrets_in(ns);
        match api.get_opt(name).await.unwrap() {
            None => {
                let secret: Secret = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": name, "namespace": ns},
                    "stringData": string_data,
                }))
                .unwrap();
                api.create(&PostParams::default(), &secret).await.unwrap();
            }
            Some(mut secret) => {
                secret.data = None;
                secret.string_data = Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
                api.replace(name, &PostParams::default(), &secret).await.unwrap();
            }
        }
    }

    /// Merge `labels` into the labels of Secret `name` in [`NS`] (standalone:
    /// in its manifest), as `kubectl label secret` does.
    pub async fn label_secret(&self, name: &str, labels: Value) {
        let patch = json!({"metadata": {"labels": labels}});
        if let Some(s) = &self.standalone {
            s.edit("Secret", name, |doc| json_patch::merge(doc, &patch));
            return;
        }
        self.secrets_in(NS).patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    /// Create an integration in [`NS`] from a spec.
    pub async fn create_integration(&self, name: &str, spec: Value) -> NotificationIntegration {
        self.create_integration_labeled(name, json!({}), spec).await
    }

    pub async fn create_integration_labeled(&self, name: &str, labels: Value, spec: Value) -> NotificationIntegration {
        let doc = json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": spec,
        });
        if let Some(s) = &self.standalone {
            s.put(doc);
            return self.integration(name).await.expect("applied");
        }
        let ni: NotificationIntegration = serde_json::from_value(doc).unwrap();
        self.integrations().create(&PostParams::default(), &ni).await.unwrap()
    }

    /// The integration as stored now.
    pub async fn integration(&self, name: &str) -> Option<NotificationIntegration> {
        match &self.standalone {
            Some(s) => s.store.integrations.get(NS, name).map(|ni| (*ni).clone()),
            None => self.integrations().get_opt(name).await.unwrap(),
        }
    }

    /// The event as stored now.
    pub async fn event(&self, name: &str) -> Option<NotificationEvent> {
        match &self.standalone {
            Some(s) => s.store.events.get(NS, name).map(|ev| (*ev).clone()),
            None => self.events().get_opt(name).await.unwrap(),
        }
    }

    /// Merge-patch an integration (on a cluster) or its manifest (standalone).
    pub async fn patch_integration(&self, name: &str, patch: Value) {
        if let Some(s) = &self.standalone {
            s.edit("NotificationIntegration", name, |doc| json_patch::merge(doc, &patch));
            return;
        }
        self.integrations().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    /// Delete an integration (standalone: remove it from the manifests).
    pub async fn delete_integration(&self, name: &str) {
        if let Some(s) = &self.standalone {
            s.remove("NotificationIntegration", name);
            return;
        }
        self.integrations().delete(name, &Default::default()).await.unwrap();
    }

    /// Wait until the integration satisfies `pred`; fail after [`WAIT`] with its last state.
    pub async fn wait_integration(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&NotificationIntegration) -> bool,
    ) -> NotificationIntegration {
        let show = |o: &NotificationIntegration| serde_json::to_string_pretty(&o.status).unwrap();
        wait_stored(self.store().integrations.as_ref(), name, what, pred, show).await
    }

    /// Wait until the condition `type_` has `status` (and `reason`, when given).
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> NotificationIntegration {
        let what = format!("{type_}={status} reason {reason:?}");
        self.wait_integration(name, &what, |ni| {
            condition(ni, type_).is_some_and(|(s, r, _)| s == status && reason.is_none_or(|want| r == want))
        })
        .await
    }

    /// Create a NotificationEvent in [`NS`].
    pub async fn create_event(&self, name: &str, spec: Value) -> NotificationEvent {
        let ev: NotificationEvent = serde_json::from_value(json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationEvent",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }))
        .unwrap();
        if let Some(s) = &self.standalone {
            // As the HTTP routes create events in standalone mode.
            return s.store.store().events.create(NS, ev).await.unwrap();
        }
        self.events().create(&PostParams::default(), &ev).await.unwrap()
    }

    /// Wait until the event satisfies `pred`.
    pub async fn wait_event(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&NotificationEvent) -> bool,
    ) -> NotificationEvent {
        let show = |o: &NotificationEvent| serde_json::to_string_pretty(&o.status).unwrap();
        wait_stored(self.store().events.as_ref(), name, what, pred, show).await
    }

    /// Wait until the event is in `phase`.
    pub async fn wait_event_phase(&self, name: &str, phase: kube_notify::crd::EventPhase) -> NotificationEvent {
        self.wait_event(name, &format!("phase {phase:?}"), |ev| ev.status.as_ref().and_then(|s| s.phase) == Some(phase))
            .await
    }

    /// Wait until the event with this uid is deleted.
    pub async fn wait_event_deleted(&self, name: &str, uid: &str) {
        if let Some(s) = &self.standalone {
            let gone = |ev: Option<&NotificationEvent>| ev.is_none_or(|ev| ev.metadata.uid.as_deref() != Some(uid));
            let events = s.store.store().events;
            tokio::time::timeout(WAIT, kube_notify::store::await_condition(events.as_ref(), NS, name, gone))
                .await
                .unwrap_or_else(|_| panic!("event {name} was not deleted"))
                .unwrap();
            return;
        }
        let api = self.events();
        tokio::time::timeout(WAIT, await_condition(api, name, kube::runtime::wait::conditions::is_deleted(uid)))
            .await
            .unwrap_or_else(|_| panic!("event {name} was not deleted"))
            .unwrap();
    }

    /// The Kubernetes Events (events.k8s.io/v1) about `name` in [`NS`].
    pub async fn k8s_events_for(&self, name: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.admin.clone(), NS);
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect()
    }

    /// Wait until a Kubernetes Event with `reason` about `name` exists (watched, not polled).
    pub async fn wait_k8s_event(&self, name: &str, reason: &str) -> k8s_openapi::api::events::v1::Event {
        if let Some(s) = &self.standalone {
            // Standalone mode logs them, and keeps the latest.
            let found = s.store.notices.wait_for(|n| n.reason == reason && n.about.name.as_deref() == Some(name));
            let n = tokio::time::timeout(WAIT, found).await.unwrap_or_else(|_| {
                panic!("no notice about {name} with reason {reason}; notices: {:?}", s.store.notices.recent())
            });
            return k8s_openapi::api::events::v1::Event {
                reason: Some(n.reason),
                note: Some(n.note),
                type_: Some(if n.warning { "Warning" } else { "Normal" }.to_string()),
                regarding: Some(n.about),
                ..Default::default()
            };
        }
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.admin.clone(), NS);
        let reason = reason.to_string();
        let name_owned = name.to_string();
        let found = watcher(api, watcher::Config::default())
            .applied_objects()
            .filter_map(|e| async move { e.ok() })
            .filter(move |e| {
                let hit = e.reason.as_deref() == Some(reason.as_str())
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name_owned.as_str());
                async move { hit }
            })
            .boxed()
            .into_future();
        match tokio::time::timeout(WAIT, found).await {
            Ok((Some(e), _)) => e,
            _ => panic!("no Event about {name} with that reason; events: {:?}", self.k8s_events_for(name).await),
        }
    }

    /// Wait until the operator has reconciled more times than `before`
    /// (a reconcile has observably happened).
    pub async fn wait_reconciles_beyond(&self, before: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.reconciles() <= before {
            assert!(tokio::time::Instant::now() < deadline, "no reconcile happened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Reconciles of integrations so far (from the operator's metrics).
    pub fn reconciles(&self) -> u64 {
        metric_value(&self.metrics.render(), "kube_notify_reconciliations_total", "NotificationIntegration")
    }
}

/// Wait (watching, not polling) until object `name` in [`NS`] of `objects`
/// satisfies `pred`; fail after [`WAIT`] showing its last state.
pub async fn wait_stored<K>(
    objects: &dyn kube_notify::store::Objects<K>,
    name: &str,
    what: &str,
    pred: impl Fn(&K) -> bool,
    show: impl Fn(&K) -> String,
) -> K
where
    K: Clone + Send + 'static,
{
    let cond = |obj: Option<&K>| obj.is_some_and(&pred);
    match tokio::time::timeout(WAIT, kube_notify::store::await_condition(objects, NS, name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        _ => {
            let last = objects.get(NS, name).await.ok().flatten();
            panic!("{name}: timed out waiting for {what}; last state: {}", last.map(|o| show(&o)).unwrap_or_default())
        }
    }
}

/// A counter's value from the Prometheus text, for the series whose labels contain `label_value`.
pub fn metric_value(text: &str, name: &str, label_value: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("\"{label_value}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// `(status, reason, message)` of a condition.
pub fn condition(ni: &NotificationIntegration, type_: &str) -> Option<(String, String, String)> {
    let status = ni.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Assert that none of `secrets` appears in `text`.
pub fn assert_no_secret(text: &str, secrets: &[&str], where_: &str) {
    for s in secrets {
        assert!(!text.contains(s), "a credential appeared in {where_}: …{}…", &s[..s.len().min(6)]);
    }
}

/// The name of an object (for messages).
pub fn name_of<K: ResourceExt>(obj: &K) -> String {
    obj.name_any()
}
