//! Notifiers built from an integration's spec and Secret, kept per
//! integration so that deliveries don't read the Secret each time. An entry
//! is used only while the integration's generation and the Secret's
//! `resourceVersion` (as the metadata watch sees it) are unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::{Resource, ResourceExt};

use super::Delivery;
use crate::caches::PerIntegration;
use crate::crd::{IntegrationKey, NotificationIntegration};
use crate::notifier::{self, Notifier, classify::Failure};
use crate::record::Error;
use crate::status::integration::{reason, secret_forbidden_message};

/// A notifier, or why there is none, and the Secret version it came from.
#[derive(Clone)]
pub struct Loaded {
    pub secret_version: Option<String>,
    pub notifier: Result<Arc<dyn Notifier>, Failure>,
}

#[derive(Clone)]
pub struct Entry {
    uid: Option<String>,
    generation: Option<i64>,
    loaded: Loaded,
}

/// Notifiers built per integration, reused while nothing changed.
pub type NotifierCache = PerIntegration<Entry>;

impl NotifierCache {
    /// The cached notifier if the integration and its Secret are unchanged.
    fn fresh(&self, ni: &NotificationIntegration, seen_secret_version: &Option<String>) -> Option<Loaded> {
        let entries = self.lock();
        let e = entries.get(&IntegrationKey::of(ni))?;
        (e.uid == ni.meta().uid
            && e.generation == ni.meta().generation
            && &e.loaded.secret_version == seen_secret_version)
            .then(|| e.loaded.clone())
    }
}

impl Delivery {
    /// Read the Secret (from the integration's own namespace only), build
    /// the notifier and keep it for the next deliveries.
    pub async fn load_notifier(&self, ni: &NotificationIntegration) -> Result<Loaded, Error> {
        let namespace = ni.namespace().unwrap_or_default();
        let secret_name = &ni.spec.secret_ref.name;
        let secret = {
            // Bounded: a leader that takes over thousands of integrations
            // reads their Secrets a few at a time, never all at once.
            let _permit = self.secret_reads.acquire().await.expect("never closed");
            match self.store.secrets.get(&namespace, secret_name).await {
                // RBAC says no (secretReadScope: namespaces, and this
                // namespace has not opted in): the integration's problem to
                // report, not an API error to retry blindly. Not kept: the
                // next check or delivery asks again.
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    return Ok(Loaded {
                        secret_version: None,
                        notifier: Err(Failure::new(
                            reason::SECRET_FORBIDDEN,
                            secret_forbidden_message(&namespace, secret_name),
                        )),
                    });
                }
                found => found.map_err(Error::Kube)?,
            }
        };
        let loaded = match secret {
            None => Loaded {
                secret_version: None,
                notifier: Err(Failure::new(
                    reason::SECRET_NOT_FOUND,
                    format!("Secret {secret_name:?} was not found in namespace {namespace:?}"),
                )),
            },
            Some(secret) if !self.settings.secret_access.admits(&secret) => Loaded {
                secret_version: None,
                notifier: Err(Failure::new(
                    reason::SECRET_NOT_LABELLED,
                    format!(
                        "Secret {secret_name:?} lacks the label {}=true, which --secret-access=labelled requires",
                        crate::store::SECRET_LABEL
                    ),
                )),
            },
            Some(secret) => {
                let data: BTreeMap<String, Vec<u8>> =
                    secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                Loaded {
                    secret_version: secret.metadata.resource_version,
                    notifier: notifier::build(&ni.spec, secret_name, &data, &self.settings.endpoints).map(Arc::from),
                }
            }
        };
        self.notifiers.lock().insert(
            IntegrationKey::of(ni),
            Entry { uid: ni.meta().uid.clone(), generation: ni.meta().generation, loaded: loaded.clone() },
        );
        Ok(loaded)
    }

    /// The notifier for a delivery: cached when nothing changed, loaded otherwise.
    pub async fn notifier_for(&self, ni: &NotificationIntegration) -> Result<Loaded, Error> {
        if let Some(loaded) = self.notifiers.fresh(ni, &self.caches.secret_version(ni)) {
            return Ok(loaded);
        }
        self.load_notifier(ni).await
    }
}
