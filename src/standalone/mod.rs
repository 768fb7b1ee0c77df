//! Standalone mode: the engine without Kubernetes. Integrations, contacts
//! and Secrets come from manifest files (the ones `kubectl apply` takes),
//! reloaded when they change; events and status live in the embedded store
//! of a state folder.

pub mod get;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::manifests::{self, ManifestError, Manifests};
use crate::store::embedded::{Desired, Embedded};

/// Open the state folder and apply the manifests: invalid manifests at
/// start are an error (every problem listed). Returns the store and what
/// the applied manifests were (for [`reload`]).
pub fn open(state_dir: &Path, manifests: &Path, namespace: &str) -> anyhow::Result<(Arc<Embedded>, Fingerprint)> {
    // Taken before reading: a change made meanwhile is seen by the reload.
    let applied = fingerprint(manifests);
    // Checked before the state folder is touched.
    let desired = manifests::load(manifests, namespace).map_err(|errors| anyhow::anyhow!(listed(&errors)))?;
    let store = Embedded::open(state_dir).map_err(anyhow::Error::msg)?;
    apply(&store, desired)?;
    Ok((Arc::new(store), applied))
}

/// Read the manifests at `path` and make the store hold what they hold
/// (nothing changes when they are invalid: the error lists every problem).
pub fn apply_from(store: &Embedded, path: &Path, namespace: &str) -> anyhow::Result<()> {
    let m = manifests::load(path, namespace).map_err(|errors| anyhow::anyhow!(listed(&errors)))?;
    apply(store, m)
}

fn apply(store: &Embedded, m: Manifests) -> anyhow::Result<()> {
    let counts = (m.integrations.len(), m.contacts.len(), m.secrets.len());
    store
        .apply(Desired { integrations: m.integrations, contacts: m.contacts, secrets: m.secrets })
        .map_err(|e| anyhow::anyhow!("applying the manifests: {e}"))?;
    info!(integrations = counts.0, contacts = counts.1, secrets = counts.2, "manifests applied");
    Ok(())
}

fn listed(errors: &[ManifestError]) -> String {
    let mut s = format!("the manifests have {} problem(s):", errors.len());
    for e in errors {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s
}

/// What the manifest files held: a digest of their names and contents
/// (None when they could not be read).
pub type Fingerprint = Option<Vec<u8>>;

/// Check the manifests every `period` and apply them when they differ from
/// `applied` and have stayed the same for one more period (a file being
/// written, or a folder being replaced, is not applied half-way). Invalid
/// manifests change nothing (the last valid ones stay, as with a failed
/// `kubectl apply`) and are reported once per change; a change the store
/// could not take is tried again.
pub async fn reload(
    store: Arc<Embedded>,
    path: PathBuf,
    namespace: String,
    period: Duration,
    mut applied: Fingerprint,
) {
    let mut every = tokio::time::interval(period.max(Duration::from_millis(50)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    let mut settling: Option<Fingerprint> = None;
    loop {
        every.tick().await;
        let now = fingerprint(&path);
        if now == applied {
            settling = None;
            continue;
        }
        if settling.as_ref() != Some(&now) {
            settling = Some(now);
            continue;
        }
        match manifests::load(&path, &namespace) {
            Err(errors) => {
                warn!("the changed manifests were not applied: {}", listed(&errors));
                applied = now;
            }
            Ok(desired) => {
                // Many writes: on the blocking pool, not on a runtime worker.
                let writer = store.clone();
                let _permit = store.writer().acquire_owned().await.expect("the writer semaphore is never closed");
                match tokio::task::spawn_blocking(move || apply(&writer, desired)).await {
                    Ok(Ok(())) => applied = now,
                    Ok(Err(e)) => warn!("the changed manifests could not be applied yet: {e:#}"),
                    Err(e) => warn!("the changed manifests could not be applied yet: {e}"),
                }
            }
        }
        settling = None;
    }
}

/// The [`Fingerprint`] of the manifests at `path`.
pub fn fingerprint(path: &Path) -> Fingerprint {
    let mut h = Sha256::new();
    for file in manifests::files(path).ok()? {
        h.update(file.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&file).ok()?);
        h.update([0]);
    }
    Some(h.finalize().to_vec())
}
