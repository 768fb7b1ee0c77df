//! An in-process emulation of the Kubernetes API server, spoken to over
//! real HTTP/1.1 by a real `kube::Client`.
//!
//! It is meant to be stricter, never kinder, than a real API server. What it
//! reproduces is tested in `tests/apiserver_emulation.rs`; each part
//! documents itself (`ops`: admission pipeline, with CRD schemas, CEL
//! rules, metadata and Secret checks from the crate's `kube_notify::admission`
//! (the standalone mode admits manifests with the same code), `watch`,
//! `ssa`: managedFields and apply, `builtin`,
//! `gc`, `faults`: injected failures, `conn`: connections). Known
//! differences from a real server:
//!
//! - No RBAC: every known identity may do everything (usage is recorded so a
//!   test can compare it with the chart's RBAC instead).
//! - CEL: only the functions in `kube_notify::admission::SUPPORTED_FUNCTIONS`
//!   exist (no Kubernetes libraries such as `isURL`, `quantity`, `url`, optionals,
//!   `optionalOldSelf`); a CRD using others is refused by `install_crd`.
//!   No CEL cost estimation (a real server may refuse a rule as too
//!   expensive that is accepted here), no type checking beyond field names,
//!   `date-time` strings are plain strings in CEL (a real server gives
//!   timestamps).
//! - No validation ratcheting (stricter than 1.30+ servers).
//! - PUT always requires `metadata.resourceVersion` (real built-ins allow
//!   unconditional updates).
//! - Strategic merge patch of built-ins is a JSON merge patch.
//! - Server-side apply: lists are atomic unless the schema says
//!   `x-kubernetes-list-type: set|map` (metadata.finalizers is a set,
//!   ownerReferences a map by uid); built-in types' patch-merge keys are not
//!   known, so their lists are atomic.
//! - Namespaces spring into existence on first use and deleting one does
//!   not delete its contents; no scale subresource, no conversion webhooks.
//! - Lists (also `resourceVersion=0` ones) are always served from the
//!   current state: a real server's watch cache may answer them slightly
//!   stale. By default watches end only on `timeoutSeconds`, compaction
//!   ([`ApiServer::expire_history`]) or shutdown, never spontaneously (a
//!   real server ends them after a randomized request timeout): tests ask
//!   for that with [`ApiServer::set_watch_lifetime`] or
//!   [`ApiServer::end_watches`]. Bookmarks come every second (a real server
//!   sends them about once a minute). Objects never expire (a real server
//!   drops Events after 1 h).
//! - Limits: request bodies over 3 MiB get 413 and objects over etcd's
//!   1.5 MiB get 500, as on a real server. API Priority and Fairness is off
//!   by default; [`ApiServer::limit_in_flight`] turns on a minimal one
//!   (`apf`): each user may have `per_user` requests served at once and
//!   `queue` more waiting (FIFO), the rest get 429 with `Retry-After`;
//!   watches and `system:masters` are exempt. Simplified: one priority
//!   level, one flow per user, no shuffle sharding, no borrowing between
//!   levels, no queue timeout, one seat per request. Otherwise nothing
//!   fails on its own: 429 (with `Retry-After`), 5xx,
//!   slow, hung and reset requests happen only when injected
//!   ([`ApiServer::inject`], [`FaultKind`]), and an API server that is down
//!   only through [`ApiServer::refuse_connections`], whose connections are
//!   accepted and then reset rather than refused at connect
//!   (`ECONNREFUSED`). Faults apply per request, after authentication;
//!   the in-flight limit after them (a delayed or hung request holds its
//!   seat).
//! - Large fixtures: [`ApiServer::create_objects`] creates objects through
//!   the admission pipeline without HTTP (not recorded as requests).

mod apf;
mod builtin;
mod conn;
mod crd;
mod discovery;
mod errors;
mod faults;
mod gc;
mod meta;
mod ops;
mod reviews;
mod routes;
mod selectors;
mod ssa;
mod store;
mod watch;

use k8s_openapi::api::authorization::v1::SubjectAccessReviewSpec;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;

pub use apf::InFlightLimit;
pub use faults::{FaultId, FaultKind, NO_ANSWER};

/// The token of the built-in, unrestricted admin identity.
pub const ADMIN_TOKEN: &str = "admin-token";
/// The username of the built-in admin identity.
pub const ADMIN_USER: &str = "admin";
/// The API server's own audience (its `--api-audiences`, by default its
/// `--service-account-issuer`): what `kubectl create token NAME` mints for,
/// what a token must carry to call the API, and what a TokenReview without
/// `spec.audiences` checks.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// How a TokenReview for a token is answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenReviewAnswer {
    pub authenticated: bool,
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// The token's audiences (its `aud` claim; empty: the API server's own,
    /// as for a legacy Secret-based token). A review authenticates it only
    /// for audiences among these.
    pub audiences: Vec<String>,
    /// Optional `status.error`.
    pub error: Option<String>,
}

impl TokenReviewAnswer {
    /// A token of `username` minted for the API server (`kubectl create token NAME`).
    pub fn user(username: &str, groups: &[&str]) -> TokenReviewAnswer {
        TokenReviewAnswer {
            authenticated: true,
            username: username.to_string(),
            uid: format!("uid-{username}"),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            audiences: vec![API_AUDIENCE.to_string()],
            error: None,
        }
    }
    /// The same token minted for `audiences` instead (`kubectl create token NAME --audience A`).
    pub fn for_audiences(self, audiences: &[&str]) -> TokenReviewAnswer {
        TokenReviewAnswer { audiences: audiences.iter().map(|a| a.to_string()).collect(), ..self }
    }
    pub fn unauthenticated() -> TokenReviewAnswer {
        TokenReviewAnswer::default()
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Username, or "" when the request was not authenticated (401).
    pub user: String,
    pub method: String,
    pub path: String,
    pub query: String,
    /// get list watch create update patch delete deletecollection; for
    /// non-resource URLs (discovery, /version) the lower-case method.
    pub verb: String,
    pub group: String,
    pub version: String,
    /// Plural resource name; "" for non-resource URLs.
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    /// Object name (for create: the name that was created).
    pub name: String,
    /// The HTTP status answered; [`NO_ANSWER`] when the connection was
    /// closed instead (or while a request hangs).
    pub code: u16,
    pub content_type: String,
    pub field_manager: String,
    /// The injected fault applied to this request, if any.
    pub fault: Option<FaultId>,
    /// How long the request waited in its user's queue for a seat
    /// ([`ApiServer::limit_in_flight`]); zero when it did not wait.
    pub queued: Duration,
}

/// Selects requests for [`ApiServer::inject`]; unset fields match all.
#[derive(Debug, Clone, Default)]
pub struct RequestMatcher {
    pub user: Option<String>,
    pub verb: Option<String>,
    pub group: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl RequestMatcher {
    pub fn any() -> RequestMatcher {
        RequestMatcher::default()
    }
    pub fn user(mut self, v: &str) -> Self {
        self.user = Some(v.into());
        self
    }
    pub fn verb(mut self, v: &str) -> Self {
        self.verb = Some(v.into());
        self
    }
    pub fn group(mut self, v: &str) -> Self {
        self.group = Some(v.into());
        self
    }
    pub fn resource(mut self, v: &str) -> Self {
        self.resource = Some(v.into());
        self
    }
    pub fn subresource(mut self, v: &str) -> Self {
        self.subresource = Some(v.into());
        self
    }
    pub fn namespace(mut self, v: &str) -> Self {
        self.namespace = Some(v.into());
        self
    }
    pub fn name(mut self, v: &str) -> Self {
        self.name = Some(v.into());
        self
    }
    pub fn matches(&self, r: &RecordedRequest) -> bool {
        let m = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        m(&self.user, &r.user)
            && m(&self.verb, &r.verb)
            && m(&self.group, &r.group)
            && m(&self.resource, &r.resource)
            && m(&self.subresource, &r.subresource)
            && m(&self.namespace, &r.namespace)
            && m(&self.name, &r.name)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub username: String,
    pub groups: Vec<String>,
    /// The token's audiences: it may call the API only with [`API_AUDIENCE`] among them.
    pub audiences: Vec<String>,
}

impl Identity {
    /// Whether the token is meant for the API server itself.
    pub fn calls_the_api(&self) -> bool {
        self.audiences.iter().any(|a| a == API_AUDIENCE)
    }
}

type AccessFn = dyn Fn(&SubjectAccessReviewSpec) -> (bool, String) + Send + Sync;

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub rv_tx: tokio::sync::watch::Sender<u64>,
    pub shutdown_tx: tokio::sync::watch::Sender<bool>,
    pub users: Mutex<HashMap<String, Identity>>,
    pub token_reviews: Mutex<HashMap<String, TokenReviewAnswer>>,
    pub access_review: Mutex<Arc<AccessFn>>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub faults: faults::Faults,
    /// API Priority and Fairness seats (see [`ApiServer::limit_in_flight`]).
    pub apf: Arc<apf::Apf>,
    /// While true, connections are reset (see [`ApiServer::refuse_connections`]).
    pub refusing: tokio::sync::watch::Sender<bool>,
    /// Bumped by [`ApiServer::end_watches`]: every open watch ends.
    pub watch_ends: tokio::sync::watch::Sender<u64>,
    /// See [`ApiServer::set_watch_lifetime`].
    pub watch_lifetime: Mutex<Option<Duration>>,
    pub activity: tokio::sync::Notify,
    pub gc: tokio::sync::Notify,
}

impl Shared {
    /// Call after a committed write: wakes watches, waiters and the GC.
    pub fn committed(&self) {
        let rv = self.store.lock().unwrap().rv;
        self.rv_tx.send_replace(rv);
        self.gc.notify_one();
        self.activity.notify_waiters();
    }

    /// Records a request and wakes waiters.
    pub fn record(&self, rec: RecordedRequest) {
        self.requests.lock().unwrap().push(rec);
        self.activity.notify_waiters();
    }
}

struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    id: u64,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.shutdown_tx.send_replace(true);
        self.shared.activity.notify_waiters();
        if let Ok(dir) = std::env::var("KUBE_NOTIFY_API_USAGE_DIR")
            && !dir.is_empty()
        {
            let _ = write_usage(&self.shared, std::path::Path::new(&dir), self.id);
        }
    }
}

fn write_usage(shared: &Shared, dir: &std::path::Path, id: u64) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let reqs = shared.requests.lock().unwrap().clone();
    let users = shared.users.lock().unwrap().clone();
    let mut counts: BTreeMap<Vec<String>, (u64, BTreeSet<u16>)> = BTreeMap::new();
    for r in reqs.iter().filter(|r| !r.user.is_empty() && r.user != ADMIN_USER && !r.resource.is_empty()) {
        let name = if matches!(r.verb.as_str(), "get" | "update" | "patch" | "delete") {
            r.name.clone()
        } else {
            String::new()
        };
        let key = vec![
            r.user.clone(),
            r.verb.clone(),
            r.group.clone(),
            r.version.clone(),
            r.resource.clone(),
            r.subresource.clone(),
            r.namespace.clone(),
            name,
        ];
        let e = counts.entry(key).or_default();
        e.0 += 1;
        e.1.insert(r.code);
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let path = dir.join(format!("apiserver-usage-{}-{id}-{nanos}.jsonl", std::process::id()));
    let mut out = String::new();
    for (k, (count, codes)) in counts {
        let groups = users.values().find(|i| i.username == k[0]).map(|i| i.groups.clone()).unwrap_or_default();
        let line = serde_json::json!({
            "user": k[0], "groups": groups, "verb": k[1], "group": k[2], "version": k[3],
            "resource": k[4], "subresource": k[5], "namespace": k[6], "name": k[7],
            "count": count, "codes": codes,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(&path, out)?;
    Ok(path)
}

/// The emulated API server. Cheap to clone; serves until the last clone
/// is dropped.
#[derive(Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
    handle: Arc<Handle>,
}

static SERVER_IDS: AtomicU64 = AtomicU64::new(0);

impl ApiServer {
    /// Binds 127.0.0.1:0 and serves HTTP/1.1 on the current tokio runtime.
    pub async fn start() -> ApiServer {
        let mut store = Store::new();
        store.resources = builtin::builtin_resources();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            ops::ensure_namespace(&mut store, ns);
        }
        let rv = store.rv;
        let (rv_tx, _) = tokio::sync::watch::channel(rv);
        let (shutdown_tx, _) = tokio::sync::watch::channel(false);
        let mut users = HashMap::new();
        users.insert(
            ADMIN_TOKEN.to_string(),
            Identity {
                username: ADMIN_USER.to_string(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
                audiences: vec![API_AUDIENCE.to_string()],
            },
        );
        let deny_all: Arc<AccessFn> = Arc::new(|_| (false, "denied by default".to_string()));
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            rv_tx,
            shutdown_tx,
            users: Mutex::new(users),
            token_reviews: Mutex::new(HashMap::new()),
            access_review: Mutex::new(deny_all),
            requests: Mutex::new(Vec::new()),
            faults: faults::Faults::new(),
            apf: Arc::default(),
            refusing: tokio::sync::watch::channel(false).0,
            watch_ends: tokio::sync::watch::channel(0).0,
            watch_lifetime: Mutex::new(None),
            activity: tokio::sync::Notify::new(),
            gc: tokio::sync::Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(conn::serve(listener, shared.clone()));
        tokio::spawn(gc::run(shared.clone()));
        let id = SERVER_IDS.fetch_add(1, Ordering::Relaxed);
        ApiServer { handle: Arc::new(Handle { shared: shared.clone(), addr, id }), shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.handle.addr)
    }

    /// A client with the admin identity.
    pub fn client(&self) -> kube::Client {
        self.client_as(ADMIN_TOKEN)
    }

    /// A client sending `Authorization: Bearer <token>` (must be called
    /// inside a tokio runtime).
    pub fn client_as(&self, token: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("url"));
        config.headers.push((
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {token}")).expect("token header"),
        ));
        kube::Client::try_from(config).expect("kube client")
    }

    /// Maps a bearer token to an identity, the token minted for the API
    /// server (`kubectl create token NAME`): it calls the API, and a
    /// TokenReview for another audience refuses it.
    pub fn add_user(&self, token: &str, username: &str, groups: &[&str]) {
        self.add_user_for(token, username, groups, &[API_AUDIENCE]);
    }

    /// [`add_user`](Self::add_user) with a token minted for `audiences`
    /// (`kubectl create token NAME --audience A …`, a projected token with
    /// `audience: A`): without [`API_AUDIENCE`] among them, it cannot call the
    /// API (401), and TokenReviews authenticate it only for these audiences.
    pub fn add_user_for(&self, token: &str, username: &str, groups: &[&str], audiences: &[&str]) {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        let audiences = audiences.iter().map(|a| a.to_string()).collect();
        self.shared
            .users
            .lock()
            .unwrap()
            .insert(token.to_string(), Identity { username: username.to_string(), groups, audiences });
    }

    /// Registers a CRD's served versions (like `kubectl apply` of the CRD).
    /// Fails for anything a real server would reject, and for what this
    /// emulation cannot enforce (e.g. CEL functions it does not implement).
    pub fn install_crd(&self, crd: &CustomResourceDefinition) -> Result<(), String> {
        let mut v = serde_json::to_value(crd).map_err(|e| e.to_string())?;
        v["apiVersion"] = "apiextensions.k8s.io/v1".into();
        v["kind"] = "CustomResourceDefinition".into();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("uid");
            m.remove("creationTimestamp");
            m.remove("managedFields");
        }
        let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let rt = {
            let store = self.shared.store.lock().unwrap();
            store.find_resource("apiextensions.k8s.io", "v1", "customresourcedefinitions").expect("crd resource")
        };
        let w = ops::WriteCtx {
            rt,
            ns: String::new(),
            manager: "install_crd".into(),
            dry_run: false,
            validation: ops::FieldValidation::Strict,
        };
        let result = {
            let mut store = self.shared.store.lock().unwrap();
            let exists = store.objects.contains_key(&ops::obj_key(&w.rt, "", &name));
            let r = if exists {
                ops::update(&mut store, &w, &name, "", v, false, None)
            } else {
                ops::create(&mut store, &w, v, None)
            };
            match r {
                Ok(mut written) => {
                    if let Some(change) = written.crd_change.take() {
                        ops::apply_crd_change(&mut store, change);
                    }
                    Ok(written.committed)
                }
                Err(e) => Err(e.message),
            }
        };
        if result? {
            self.shared.committed();
        }
        Ok(())
    }

    /// Creates namespaced objects (of any installed resource; each object
    /// names its `apiVersion`, `kind` and `metadata.namespace`) as the admin
    /// would with `kubectl create` (field manager `create_objects`, strict
    /// field validation), through the same admission pipeline as an HTTP
    /// create (decoding, defaults, schema and CEL validation, Secret and
    /// metadata checks), but in-process, for large test fixtures: in a
    /// debug build about 0.1 ms per Secret; objects with CEL rules cost
    /// about 1 ms (`kube_notify::admission` compiles each rule at every
    /// evaluation). They are not recorded as requests (not API traffic).
    /// Watches are woken once, at the end.
    ///
    /// A `status` is ignored by a real create when the resource has a
    /// status subresource; here it is then applied right after the create
    /// as a `PUT .../status` would (a second write with its own
    /// resourceVersion, validated against the schema), so objects can be
    /// seeded with a status in one call.
    ///
    /// Returns how many objects were created. Stops at the first object
    /// that is refused, with an error naming it (its index, kind,
    /// namespace and name); the objects before it stay created.
    pub fn create_objects(&self, objects: Vec<Value>) -> Result<usize, String> {
        let mut created = 0;
        let result = objects.into_iter().enumerate().try_for_each(|(i, obj)| {
            let sv = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
            let (api_version, kind, ns) = (sv("/apiVersion"), sv("/kind"), sv("/metadata/namespace"));
            let name = match sv("/metadata/name") {
                n if n.is_empty() => format!("{}*", sv("/metadata/generateName")),
                n => n,
            };
            let what = format!("object #{i} ({api_version} {kind} {ns}/{name})");
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
            let mut store = self.shared.store.lock().unwrap();
            let rt = store
                .resources
                .iter()
                .find(|r| r.group == group && r.version == version && r.kind == kind)
                .cloned()
                .ok_or_else(|| format!("{what}: no such resource is installed"))?;
            if !rt.namespaced || rt.create_only() {
                return Err(format!("{what}: only namespaced, stored resources can be created this way"));
            }
            if !meta::is_dns_label(&ns) {
                return Err(format!("{what}: metadata.namespace must name a namespace"));
            }
            ops::ensure_namespace(&mut store, &ns);
            let w = ops::WriteCtx {
                rt: rt.clone(),
                ns,
                manager: "create_objects".into(),
                dry_run: false,
                validation: ops::FieldValidation::Strict,
            };
            let status = obj.get("status").filter(|s| rt.status_subresource && !s.is_null()).cloned();
            let written = ops::create(&mut store, &w, obj, None).map_err(|e| format!("{what}: {}", e.message))?;
            created += 1;
            if let Some(status) = status {
                let mut body = written.obj;
                body["status"] = status;
                let name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
                ops::update(&mut store, &w, &name, "status", body, true, None)
                    .map_err(|e| format!("{what}: status: {}", e.message))?;
            }
            Ok(())
        });
        if created > 0 {
            self.shared.committed();
        }
        result.map(|()| created)
    }

    /// How TokenReviews of `token` are answered.
    pub fn set_token_review(&self, token: &str, result: TokenReviewAnswer) {
        self.shared.token_reviews.lock().unwrap().insert(token.to_string(), result);
    }

    /// How SubjectAccessReviews are answered (default: deny all).
    pub fn set_access_review(&self, f: impl Fn(&SubjectAccessReviewSpec) -> (bool, String) + Send + Sync + 'static) {
        *self.shared.access_review.lock().unwrap() = Arc::new(f);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// (verb, group, resource, subresource) of every resource request made
    /// by `username`.
    pub fn usage_by(&self, username: &str) -> BTreeSet<(String, String, String, String)> {
        self.requests()
            .into_iter()
            .filter(|r| r.user == username && !r.resource.is_empty())
            .map(|r| (r.verb, r.group, r.resource, r.subresource))
            .collect()
    }

    /// Successful create/update/patch calls on one object.
    pub fn writes_to(&self, resource: &str, subresource: &str, namespace: &str, name: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                matches!(r.verb.as_str(), "create" | "update" | "patch")
                    && (200..300).contains(&r.code)
                    && r.resource == resource
                    && r.subresource == subresource
                    && r.namespace == namespace
                    && r.name == name
            })
            .count()
    }

    /// The next request matching `matcher` fails with `status`/`reason`
    /// (a `Status` body) instead of being served. Note that kube's client
    /// transparently retries 429/503/504.
    pub fn fail_next(&self, matcher: RequestMatcher, status: u16, reason: &str) {
        let kind = FaultKind::Status { code: status, reason: reason.to_string(), retry_after: None };
        self.inject(matcher, kind, Some(1));
    }

    /// Apply `kind` to requests matching `matcher`: to the next `times` of
    /// them, or to all until cleared when `None`. Faulted requests are
    /// recorded (with [`RecordedRequest::fault`] set) and wake
    /// [`ApiServer::wait_until`]. Note that kube's client retries
    /// 429/503/504 by itself (up to 15 times, honouring `Retry-After`): a
    /// `Status` fault with one of those codes and `times: Some(n)` is
    /// usually invisible to the caller, and one until cleared keeps it
    /// retrying for minutes.
    pub fn inject(&self, matcher: RequestMatcher, kind: FaultKind, times: Option<usize>) -> FaultId {
        self.shared.faults.inject(matcher, kind, times)
    }

    /// Turns on (or with `None` off) a minimal API Priority and Fairness:
    /// each user (one flow per user, one priority level) may have at most
    /// `per_user` non-long-running requests served at once; more wait in a
    /// FIFO queue of at most `queue` requests and are served as seats free
    /// up; beyond that they are answered 429 `TooManyRequests` with
    /// `Retry-After` and `details.retryAfterSeconds` (which kube's client
    /// honours and retries by itself). Watches are exempt, as are the
    /// requests of `system:masters` (the admin). The limit applies after
    /// authentication and injected faults: a delayed or hung request holds
    /// its seat. Raising or removing the limit serves waiting requests at
    /// once. How long each request waited: [`RecordedRequest::queued`].
    pub fn limit_in_flight(&self, limit: Option<InFlightLimit>) {
        self.shared.apf.set_limit(limit);
    }

    /// The most non-long-running (non-watch) requests of `user` served at
    /// once since the server started (with or without a limit).
    pub fn max_in_flight_seen(&self, user: &str) -> usize {
        self.shared.apf.max_in_flight_seen(user)
    }

    /// Removes one fault, releasing the requests it holds hung.
    pub fn clear_fault(&self, id: FaultId) {
        self.shared.faults.clear(id);
    }

    /// Removes every fault, releasing every hung request.
    pub fn clear_faults(&self) {
        self.shared.faults.clear_all();
    }

    /// How many requests a fault has been applied to (for tests to await
    /// "the fault was hit").
    pub fn fault_hits(&self, id: FaultId) -> usize {
        self.shared.faults.hits(id)
    }

    /// While on, the server is down: new connections are reset at once
    /// (after the TCP handshake, which the kernel completes), open
    /// connections are closed, open watches and requests in flight cut, and
    /// requests that still arrive get no answer (recorded with
    /// [`NO_ANSWER`]). Off: everything works again.
    pub fn refuse_connections(&self, on: bool) {
        self.shared.refusing.send_replace(on);
    }

    /// Ends every open watch now, cleanly (end of stream, as a real
    /// server's request timeout does); clients re-watch.
    pub fn end_watches(&self) {
        self.shared.watch_ends.send_modify(|n| *n += 1);
    }

    /// Watches started from now on end on their own, cleanly, after a
    /// random time between lifetime/2 and lifetime (or their
    /// `timeoutSeconds`, if sooner), as a real server's randomized request
    /// timeout does. `None`: only `timeoutSeconds` ends them.
    pub fn set_watch_lifetime(&self, lifetime: Option<Duration>) {
        *self.shared.watch_lifetime.lock().unwrap() = lifetime;
    }

    /// Compacts history: lists/watches from older resourceVersions get
    /// 410, and every open watch ends with an ERROR 410 event.
    pub fn expire_history(&self) {
        self.shared.store.lock().unwrap().compact();
        let rv = self.shared.store.lock().unwrap().rv;
        // Wake the watches so they notice the new epoch.
        self.shared.rv_tx.send_modify(|x| *x = rv);
        self.shared.activity.notify_waiters();
    }

    /// Writes the usage of every non-admin user as JSON lines into a new
    /// file in `dir` (what `Drop` does when `KUBE_NOTIFY_API_USAGE_DIR` is
    /// set). One line per (user, verb, group, version, resource,
    /// subresource, namespace, name-for-get/update/patch/delete).
    pub fn write_usage(&self, dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
        write_usage(&self.shared, dir, self.handle.id)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().unwrap().rv
    }

    /// A stored object as `GET` would serve it (no request is recorded).
    pub fn object(&self, group: &str, version: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.shared.store.lock().unwrap();
        let rt = store.find_resource(group, version, resource)?;
        store.objects.get(&ops::obj_key(&rt, namespace, name)).map(|s| ops::present(&rt, &s.obj))
    }

    /// Every stored object of a resource (all namespaces), as served.
    pub fn objects(&self, group: &str, version: &str, resource: &str) -> Vec<Value> {
        let store = self.shared.store.lock().unwrap();
        let Some(rt) = store.find_resource(group, version, resource) else {
            return Vec::new();
        };
        store.objects.iter().filter(|(k, _)| k.0 == rt.storage_key).map(|(_, s)| ops::present(&rt, &s.obj)).collect()
    }

    /// Waits until `cond` holds (re-checked after every request and every
    /// stored change), up to `timeout`. Returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, mut cond: impl FnMut(&ApiServer) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.activity.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return cond(self);
            }
        }
    }

    /// Waits for a recorded request matching `matcher`.
    pub async fn wait_for_request(&self, matcher: &RequestMatcher, timeout: Duration) -> Option<RecordedRequest> {
        let mut found = None;
        self.wait_until(timeout, |s| {
            found = s.requests().into_iter().find(|r| matcher.matches(r));
            found.is_some()
        })
        .await;
        found
    }

    /// Waits until a stored object satisfies `pred` (None: absent).
    pub async fn wait_for_object(
        &self,
        (group, version, resource): (&str, &str, &str),
        namespace: &str,
        name: &str,
        timeout: Duration,
        mut pred: impl FnMut(Option<&Value>) -> bool,
    ) -> bool {
        self.wait_until(timeout, |s| pred(s.object(group, version, resource, namespace, name).as_ref())).await
    }
}
