//! The embedded store of standalone mode: integrations, contacts, events and
//! their status in a SQLite database in a state folder, Secrets in memory
//! only, all read from manifests ([`Embedded::apply`]) except events, which
//! the HTTP routes create. It follows the API server's rules the engine
//! relies on (resource versions, conflicts, generations, the status
//! subresource, watches), so the engine runs on it unchanged.

pub mod db;
pub mod table;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::ResourceExt;
use kube::api::Preconditions;
use kube::core::PartialObjectMeta;
use kube::core::PartialObjectMetaExt;
use kube::runtime::watcher;
use sha2::Sha256;
use tracing::{info, warn};

use self::db::{Access, Db};
use self::table::{Served, Table, Write};
use super::{Notices, Secrets, Store, StoreResult, WatchStream};
use crate::crd::{NotificationContact, NotificationEvent, NotificationIntegration};

/// The database file in a state folder.
pub const DB_FILE: &str = "kube-notify.db";
/// Held (locked) by the one process that uses a state folder.
pub const LOCK_FILE: &str = "lock";

/// What all tables share: the database and the resource version counter.
pub struct Shared {
    pub db: Option<Db>,
    version: AtomicU64,
    /// The key of the Secrets' digests (a keyed digest: the database alone
    /// cannot confirm a guessed credential).
    digest_key: [u8; 32],
    /// Held as long as anything uses the database: one process per folder.
    _lock: Option<File>,
    /// One write at a time leaves the runtime for the blocking pool (writes
    /// are serial anyway): a burst of writes waits here, cheaply, instead of
    /// starting a thread each.
    pub writer: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    pub fn next_version(&self) -> u64 {
        self.version.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// The objects a set of manifests holds.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub integrations: Vec<NotificationIntegration>,
    pub contacts: Vec<NotificationContact>,
    pub secrets: Vec<Secret>,
}

/// An open state folder.
pub struct Embedded {
    pub integrations: Arc<Table<NotificationIntegration>>,
    pub contacts: Arc<Table<NotificationContact>>,
    pub events: Arc<Table<NotificationEvent>>,
    secrets: Arc<Table<Secret>>,
    /// Kubernetes Events about the objects (logged; the latest kept).
    pub notices: Arc<LogNotices>,
    shared: Arc<Shared>,
}

impl Embedded {
    /// Open (or create) the state folder `dir`, which only one process may
    /// use at a time.
    pub fn open(dir: &Path) -> Result<Embedded, String> {
        // Only its owner may read the state (event messages) or the key.
        let mut folder = std::fs::DirBuilder::new();
        folder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
        folder.create(dir).map_err(|e| format!("cannot create the state folder {}: {e}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot restrict the state folder {}: {e}", dir.display()))?;
        }
        let lock = File::create(dir.join(LOCK_FILE))
            .map_err(|e| format!("cannot open {}: {e}", dir.join(LOCK_FILE).display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!("the state folder {} is in use by another kube-notify process", dir.display()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", dir.display())),
        }
        let path = dir.join(DB_FILE);
        let db = Db::open(&path, Access::ReadWrite).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        private(&path)?;
        let key = digest_key(&dir.join(DIGEST_KEY_FILE))?;
        let embedded = Embedded::with_db(Some(db), Some(lock), key)?;
        info!(
            state = %dir.display(),
            integrations = embedded.integrations.list().len(),
            events = embedded.events.list().len(),
            "state loaded"
        );
        Ok(embedded)
    }

    /// A store kept in memory only (nothing survives the process).
    pub fn in_memory() -> Embedded {
        Embedded::with_db(None, None, rand::random()).expect("an empty store loads")
    }

    fn with_db(db: Option<Db>, lock: Option<File>, digest_key: [u8; 32]) -> Result<Embedded, String> {
        let last = match &db {
            Some(db) => db.last_version().map_err(|e| format!("reading the state database: {e}"))?,
            None => 0,
        };
        let writer = Arc::new(tokio::sync::Semaphore::new(1));
        let shared = Arc::new(Shared { db, version: AtomicU64::new(last), digest_key, _lock: lock, writer });
        let embedded = Embedded {
            integrations: Arc::new(Table::new("NotificationIntegration", true, shared.clone())),
            contacts: Arc::new(Table::new("NotificationContact", true, shared.clone())),
            events: Arc::new(Table::new("NotificationEvent", true, shared.clone())),
            secrets: Arc::new(Table::new("Secret", false, shared.clone())),
            notices: Arc::default(),
            shared,
        };
        embedded.integrations.load()?;
        embedded.contacts.load()?;
        embedded.events.load()?;
        Ok(embedded)
    }

    /// The permit every write off the runtime takes (one at a time).
    pub fn writer(&self) -> Arc<tokio::sync::Semaphore> {
        self.shared.writer.clone()
    }

    /// The engine's view of this store.
    pub fn store(&self) -> Store {
        Store {
            integrations: Arc::new(Served { table: self.integrations.clone() }),
            events: Arc::new(Served { table: self.events.clone() }),
            contacts: Arc::new(Served { table: self.contacts.clone() }),
            secrets: Arc::new(SecretTable(self.secrets.clone())),
            notices: self.notices.clone(),
        }
    }

    /// Make the stored integrations, contacts and Secrets those of
    /// `desired` (the manifests): new ones created, changed ones updated
    /// (status kept; generation up when the spec changed), missing ones
    /// deleted. Events are not touched.
    pub fn apply(&self, desired: Desired) -> StoreResult<()> {
        let Desired { integrations, contacts, secrets } = desired;
        let mut keep_secrets = Vec::new();
        for secret in secrets {
            keep_secrets.push((secret.namespace().unwrap_or_default(), secret.name_any()));
            self.apply_secret(secret)?;
        }
        sync(&self.integrations, integrations)?;
        sync(&self.contacts, contacts)?;
        for gone in self.secrets.list() {
            let k = (gone.namespace().unwrap_or_default(), gone.name_any());
            if !keep_secrets.contains(&k) {
                self.secrets.delete(&k.0, &k.1, Preconditions::default())?;
            }
        }
        if let Some(db) = &self.shared.db {
            db.retain_secret_versions(&keep_secrets)
                .map_err(|e| super::api_error(500, "InternalError", format!("the state database: {e}")))?;
        }
        Ok(())
    }

    /// Store a Secret in memory. Its resource version changes only when its
    /// data or labels do, across restarts too (the database keeps a digest
    /// of them): a label change re-enables an auto-disabled integration, as
    /// on a cluster.
    fn apply_secret(&self, mut secret: Secret) -> StoreResult<()> {
        let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        let digest = secret_digest(&self.shared.digest_key, &secret);
        let unchanged = |s: &Secret| secret_digest(&self.shared.digest_key, s) == digest;
        if self.secrets.get(&namespace, &name).is_some_and(|s| unchanged(&s)) {
            return Ok(());
        }
        let version = match &self.shared.db {
            Some(db) => db
                .secret_version(&namespace, &name, &digest, self.shared.next_version())
                .map_err(|e| super::api_error(500, "InternalError", format!("the state database: {e}")))?,
            None => self.shared.next_version(),
        };
        secret.metadata.resource_version = Some(version.to_string());
        secret.metadata.uid.get_or_insert_with(table::new_uid);
        self.secrets.update(&namespace, &name, db::Durability::Written, |_| Ok(Some(Write::Put(secret))))?;
        Ok(())
    }
}

/// Create or update every object of `desired`, delete the others.
fn sync<K>(table: &Table<K>, desired: Vec<K>) -> StoreResult<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let mut keep = std::collections::HashSet::new();
    for obj in desired {
        keep.insert((obj.namespace().unwrap_or_default(), obj.name_any()));
        table.apply(obj)?;
    }
    for gone in table.list() {
        let k = (gone.namespace().unwrap_or_default(), gone.name_any());
        if !keep.contains(&k) {
            table.delete(&k.0, &k.1, Preconditions { uid: gone.meta().uid.clone(), resource_version: None })?;
        }
    }
    Ok(())
}

/// The file holding the key of the Secrets' digests, next to the database.
pub const DIGEST_KEY_FILE: &str = "digest.key";

/// Make `path` readable by its owner only.
fn private(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    }
    let _ = path;
    Ok(())
}

/// The digest key stored at `path`, made on first use.
fn digest_key(path: &Path) -> Result<[u8; 32], String> {
    if let Ok(bytes) = std::fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let key: [u8; 32] = rand::random();
    std::fs::write(path, key).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    private(path)?;
    Ok(key)
}

/// HMAC-SHA-256, keyed per state folder, over a Secret's type and data:
/// tells when a Secret changed; the database alone cannot confirm a guess.
fn secret_digest(key: &[u8; 32], secret: &Secret) -> Vec<u8> {
    use hmac::Mac as _;
    let mut h = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    h.update(secret.type_.as_deref().unwrap_or("Opaque").as_bytes());
    let data: BTreeMap<&String, &k8s_openapi::ByteString> = secret.data.iter().flat_map(|d| d.iter()).collect();
    for (k, v) in data {
        h.update(&(k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update(&(v.0.len() as u64).to_be_bytes());
        h.update(&v.0);
    }
    // Labels only when there are some: the digests of Secrets without labels
    // stay those of earlier versions (no new version on an upgrade).
    if let Some(labels) = secret.metadata.labels.as_ref().filter(|l| !l.is_empty()) {
        h.update(b"\0labels");
        for (k, v) in labels {
            h.update(&(k.len() as u64).to_be_bytes());
            h.update(k.as_bytes());
            h.update(&(v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
    }
    h.finalize().into_bytes().to_vec()
}

struct SecretTable(Arc<Table<Secret>>);

impl Secrets for SecretTable {
    fn watch_metadata(&self, selector: Option<&str>) -> WatchStream<PartialObjectMeta<Secret>> {
        let meta = |s: Secret| s.metadata.into_response_partial::<Secret>();
        // One `key=value` label, as `SecretAccess::watch_selector` gives.
        let wanted = selector.and_then(|s| s.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string()));
        self.0
            .watch_where(move |s: &Secret| {
                wanted.as_ref().is_none_or(|(k, v)| s.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
            })
            .map(move |event| {
                event.map(|e| match e {
                    watcher::Event::Apply(s) => watcher::Event::Apply(meta(s)),
                    watcher::Event::Delete(s) => watcher::Event::Delete(meta(s)),
                    watcher::Event::InitApply(s) => watcher::Event::InitApply(meta(s)),
                    watcher::Event::Init => watcher::Event::Init,
                    watcher::Event::InitDone => watcher::Event::InitDone,
                })
            })
            .boxed()
    }

    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, StoreResult<Option<Secret>>> {
        let found = self.0.get(namespace, name).map(|s| (*s).clone());
        Box::pin(async move { Ok(found) })
    }
}

/// The most recent notices kept in memory.
const RECENT_NOTICES: usize = 1000;

/// A Kubernetes Event of standalone mode: logged, and the latest kept.
#[derive(Clone, Debug)]
pub struct Notice {
    pub about: ObjectReference,
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// Kubernetes Events, in standalone mode: log lines, the latest
/// [`RECENT_NOTICES`] kept in memory.
#[derive(Default)]
pub struct LogNotices {
    recent: std::sync::Mutex<std::collections::VecDeque<Notice>>,
    published: tokio::sync::Notify,
}

impl LogNotices {
    /// The notices kept, oldest first.
    pub fn recent(&self) -> Vec<Notice> {
        self.recent.lock().unwrap().iter().cloned().collect()
    }

    /// The first kept notice `pred` accepts, waiting for it.
    pub async fn wait_for(&self, pred: impl Fn(&Notice) -> bool) -> Notice {
        loop {
            let published = self.published.notified();
            if let Some(n) = self.recent().into_iter().find(&pred) {
                return n;
            }
            published.await;
        }
    }
}

impl Notices for LogNotices {
    fn publish<'a>(
        &'a self,
        about: &'a ObjectReference,
        event: kube::runtime::events::Event,
    ) -> BoxFuture<'a, StoreResult<()>> {
        {
            let mut recent = self.recent.lock().unwrap();
            if recent.len() == RECENT_NOTICES {
                recent.pop_front();
            }
            recent.push_back(Notice {
                about: about.clone(),
                warning: matches!(event.type_, kube::runtime::events::EventType::Warning),
                reason: event.reason.clone(),
                note: event.note.clone().unwrap_or_default(),
            });
        }
        self.published.notify_waiters();
        let kind = about.kind.as_deref().unwrap_or_default();
        let namespace = about.namespace.as_deref().unwrap_or_default();
        let name = about.name.as_deref().unwrap_or_default();
        let note = event.note.as_deref().unwrap_or_default();
        match event.type_ {
            kube::runtime::events::EventType::Warning => {
                warn!(kind, namespace, name, reason = %event.reason, note, "Kubernetes Event (logged in standalone mode)")
            }
            kube::runtime::events::EventType::Normal => {
                info!(kind, namespace, name, reason = %event.reason, note, "Kubernetes Event (logged in standalone mode)")
            }
        }
        Box::pin(async { Ok(()) })
    }
}

/// The database file of the state folder `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::StreamExt;

    fn integration(name: &str, threshold: i32) -> NotificationIntegration {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"service": "webhook", "secretRef": {"name": "s"}, "errorThreshold": threshold},
        }))
        .unwrap()
    }

    fn event(spec: serde_json::Value) -> NotificationEvent {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationEvent",
            "metadata": {"generateName": "http-", "namespace": "default"}, "spec": spec,
        }))
        .unwrap()
    }

    fn secret(url: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
            "data": {"webhookUrl": base64_of(url)},
        }))
        .unwrap()
    }

    fn base64_of(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn code(e: kube::Error) -> u16 {
        match e {
            kube::Error::Api(s) => s.code,
            other => panic!("not an API error: {other}"),
        }
    }

    #[tokio::test]
    async fn the_api_servers_rules_for_versions_status_and_conflicts() {
        let store = Embedded::in_memory().store();
        let ev = store
            .events
            .create("default", event(serde_json::json!({"integrationRef": {"name": "a"}, "message": "m"})))
            .await
            .unwrap();
        let name = ev.metadata.name.clone().unwrap();
        assert!(name.starts_with("http-") && name.len() == 10, "{name}");
        assert_eq!(ev.metadata.generation, Some(1));
        assert!(ev.metadata.uid.is_some() && ev.metadata.creation_timestamp.is_some());

        // A status write on the current version goes; one on an older version is a conflict.
        let mut next = ev.clone();
        next.status = Some(crate::crd::NotificationEventStatus {
            phase: Some(crate::crd::EventPhase::Delivered),
            ..Default::default()
        });
        let written = store.events.replace_status("default", next.clone()).await.unwrap();
        assert_ne!(written.metadata.resource_version, ev.metadata.resource_version);
        assert_eq!(code(store.events.replace_status("default", next).await.unwrap_err()), 409);
        // The same status again: no write, the version stays.
        let same = store.events.replace_status("default", written.clone()).await.unwrap();
        assert_eq!(same.metadata.resource_version, written.metadata.resource_version);

        // Deletes honour preconditions.
        let wrong_uid = kube::api::Preconditions { uid: Some("other".into()), resource_version: None };
        assert_eq!(code(store.events.delete("default", &name, wrong_uid).await.unwrap_err()), 409);
        store.events.delete("default", &name, Default::default()).await.unwrap();
        assert_eq!(code(store.events.delete("default", &name, Default::default()).await.unwrap_err()), 404);
    }

    #[tokio::test]
    async fn a_create_is_admitted_as_the_api_server_would() {
        let e = Embedded::in_memory();
        let store = e.store();
        // Neither a target nor a message: the CRD's rules refuse it, naming the fields.
        let err = store.events.create("default", event(serde_json::json!({"message": "m"}))).await.unwrap_err();
        let kube::Error::Api(s) = err else { panic!() };
        assert_eq!(s.code, 422);
        // The CRD's own rule, evaluated as the API server would.
        assert!(
            s.message.contains("exactly one of spec.integrationRef or spec.integrationSelector is required"),
            "{}",
            s.message
        );
        assert!(e.events.list().is_empty(), "nothing stored for a refused create");
    }

    #[tokio::test]
    async fn manifests_keep_status_and_bump_the_generation_on_a_spec_change() {
        let e = Embedded::in_memory();
        e.apply(Desired {
            integrations: vec![integration("a", 5)],
            secrets: vec![secret("https://x/1")],
            ..Default::default()
        })
        .unwrap();
        let first = e.integrations.get("default", "a").unwrap();
        let mut with_status = (*first).clone();
        with_status.status = Some(crate::crd::IntegrationStatus { consecutive_errors: 2, ..Default::default() });
        e.store().integrations.replace_status("default", with_status).await.unwrap();
        let secret_version = e.secrets.get("default", "s").unwrap().metadata.resource_version.clone();

        // The same manifests: nothing written.
        let before = e.integrations.get("default", "a").unwrap().metadata.resource_version.clone();
        e.apply(Desired {
            integrations: vec![integration("a", 5)],
            secrets: vec![secret("https://x/1")],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(e.integrations.get("default", "a").unwrap().metadata.resource_version, before);
        assert_eq!(e.secrets.get("default", "s").unwrap().metadata.resource_version, secret_version);

        // A spec change: generation 2, uid and status kept; a Secret change: a new version.
        e.apply(Desired {
            integrations: vec![integration("a", 3)],
            secrets: vec![secret("https://x/2")],
            ..Default::default()
        })
        .unwrap();
        let now = e.integrations.get("default", "a").unwrap();
        assert_eq!(now.metadata.generation, Some(2));
        assert_eq!(now.metadata.uid, first.metadata.uid);
        assert_eq!(now.status.as_ref().unwrap().consecutive_errors, 2);
        let data_changed = e.secrets.get("default", "s").unwrap().metadata.resource_version.clone();
        assert_ne!(data_changed, secret_version);

        // A label change is a new version too (as on a cluster: it re-enables).
        let mut labelled = secret("https://x/2");
        labelled.metadata.labels = Some([("kube-notify.io/reenable".to_string(), "1".to_string())].into());
        e.apply(Desired { integrations: vec![integration("a", 3)], secrets: vec![labelled], ..Default::default() })
            .unwrap();
        assert_ne!(e.secrets.get("default", "s").unwrap().metadata.resource_version, data_changed);
        // An empty label map is no label: the digest of a Secret without labels is kept.
        let key = [7u8; 32];
        let mut empty = secret("https://x/2");
        empty.metadata.labels = Some(Default::default());
        assert_eq!(secret_digest(&key, &empty), secret_digest(&key, &secret("https://x/2")));

        // Gone from the manifests: deleted.
        e.apply(Desired::default()).unwrap();
        assert!(e.integrations.get("default", "a").is_none() && e.secrets.get("default", "s").is_none());
    }

    #[tokio::test]
    async fn a_watch_lists_then_follows_without_a_gap() {
        let e = Embedded::in_memory();
        e.apply(Desired { integrations: vec![integration("a", 5)], ..Default::default() }).unwrap();
        let mut watch = e.store().integrations.watch();
        assert!(matches!(watch.next().await, Some(Ok(watcher::Event::Init))));
        assert!(
            matches!(watch.next().await, Some(Ok(watcher::Event::InitApply(ni))) if ni.metadata.name.as_deref() == Some("a"))
        );
        assert!(matches!(watch.next().await, Some(Ok(watcher::Event::InitDone))));
        e.apply(Desired { integrations: vec![integration("a", 5), integration("b", 5)], ..Default::default() })
            .unwrap();
        assert!(
            matches!(watch.next().await, Some(Ok(watcher::Event::Apply(ni))) if ni.metadata.name.as_deref() == Some("b"))
        );
        e.apply(Desired { integrations: vec![integration("b", 5)], ..Default::default() }).unwrap();
        assert!(
            matches!(watch.next().await, Some(Ok(watcher::Event::Delete(ni))) if ni.metadata.name.as_deref() == Some("a"))
        );
    }

    #[tokio::test]
    async fn state_survives_a_reopen_and_one_process_holds_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (name, secret_version) = {
            let e = Embedded::open(dir.path()).unwrap();
            let Err(busy) = Embedded::open(dir.path()) else { panic!("a second open of the folder") };
            assert!(busy.contains("in use by another kube-notify process"), "{busy}");
            e.apply(Desired {
                integrations: vec![integration("a", 5)],
                secrets: vec![secret("https://x/1")],
                ..Default::default()
            })
            .unwrap();
            let ev = e
                .store()
                .events
                .create("default", event(serde_json::json!({"integrationRef": {"name": "a"}, "message": "m"})))
                .await
                .unwrap();
            (ev.metadata.name.unwrap(), e.secrets.get("default", "s").unwrap().metadata.resource_version.clone())
        };
        let e = Embedded::open(dir.path()).unwrap();
        assert!(e.events.get("default", &name).is_some(), "the event survived");
        // The same Secret after a restart keeps its version (nothing to check again).
        e.apply(Desired {
            integrations: vec![integration("a", 5)],
            secrets: vec![secret("https://x/1")],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(e.secrets.get("default", "s").unwrap().metadata.resource_version, secret_version);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!((mode(dir.path()) & 0o077, mode(&dir.path().join(DB_FILE)) & 0o077), (0, 0), "owner only");
        }
        let ni = e.integrations.get("default", "a").unwrap();
        // Versions only go up: a new write gets a version above every stored one.
        e.apply(Desired { integrations: vec![integration("a", 4)], ..Default::default() }).unwrap();
        let after: u64 =
            e.integrations.get("default", "a").unwrap().metadata.resource_version.clone().unwrap().parse().unwrap();
        assert!(after > ni.metadata.resource_version.clone().unwrap().parse::<u64>().unwrap());
        // No credential on disk.
        let db = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        let wal = std::fs::read(dir.path().join("kube-notify.db-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("https://x/1") && !text.contains(&base64_of("https://x/1")));
        }
    }
}
