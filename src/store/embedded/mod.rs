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
use sha2::{Digest, Sha256};
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
    _lock: Option<File>,
}

impl Embedded {
    /// Open (or create) the state folder `dir`, which only one process may
    /// use at a time.
    pub fn open(dir: &Path) -> Result<Embedded, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the state folder {}: {e}", dir.display()))?;
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
        let embedded = Embedded::with_db(Some(db), Some(lock))?;
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
        Embedded::with_db(None, None).expect("an empty store loads")
    }

    fn with_db(db: Option<Db>, lock: Option<File>) -> Result<Embedded, String> {
        let last = match &db {
            Some(db) => db.last_version().map_err(|e| format!("reading the state database: {e}"))?,
            None => 0,
        };
        let shared = Arc::new(Shared { db, version: AtomicU64::new(last) });
        let embedded = Embedded {
            integrations: Arc::new(Table::new("NotificationIntegration", true, shared.clone())),
            contacts: Arc::new(Table::new("NotificationContact", true, shared.clone())),
            events: Arc::new(Table::new("NotificationEvent", true, shared.clone())),
            secrets: Arc::new(Table::new("Secret", false, shared.clone())),
            notices: Arc::default(),
            shared,
            _lock: lock,
        };
        embedded.integrations.load()?;
        embedded.contacts.load()?;
        embedded.events.load()?;
        Ok(embedded)
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
    /// data does, across restarts too (the database keeps a digest of it).
    fn apply_secret(&self, mut secret: Secret) -> StoreResult<()> {
        let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        let digest = secret_digest(&secret);
        let version = match &self.shared.db {
            Some(db) => db
                .secret_version(&namespace, &name, &digest, self.shared.next_version())
                .map_err(|e| super::api_error(500, "InternalError", format!("the state database: {e}")))?,
            None => self.shared.next_version(),
        };
        if self.secrets.get(&namespace, &name).is_some_and(|s| s.resource_version() == Some(version.to_string())) {
            return Ok(());
        }
        secret.metadata.resource_version = Some(version.to_string());
        secret.metadata.uid.get_or_insert_with(table::new_uid);
        self.secrets.update(&namespace, &name, |_| Ok(Some(Write::Put(secret))))?;
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

/// SHA-256 over a Secret's type and data (never stored with the data).
fn secret_digest(secret: &Secret) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(secret.type_.as_deref().unwrap_or("Opaque").as_bytes());
    let data: BTreeMap<&String, &k8s_openapi::ByteString> = secret.data.iter().flat_map(|d| d.iter()).collect();
    for (k, v) in data {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.0.len() as u64).to_be_bytes());
        h.update(&v.0);
    }
    h.finalize().to_vec()
}

struct SecretTable(Arc<Table<Secret>>);

impl Secrets for SecretTable {
    fn watch_metadata(&self) -> WatchStream<PartialObjectMeta<Secret>> {
        let meta = |s: Secret| s.metadata.into_response_partial::<Secret>();
        self.0
            .watch_where(|_| true)
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
                warn!(kind, namespace, name, reason = %event.reason, note, "event")
            }
            kube::runtime::events::EventType::Normal => {
                info!(kind, namespace, name, reason = %event.reason, note, "event")
            }
        }
        Box::pin(async { Ok(()) })
    }
}

/// The database file of the state folder `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}
