//! What this process keeps in memory: the caches every replica keeps warm
//! from the watches ([`Caches`]), and what is kept per integration until it
//! is deleted ([`PerIntegration`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::{IntegrationKey, NotificationContact, NotificationEvent, NotificationIntegration};

/// The watch caches: read without an API call, shared by the controllers,
/// delivery and the HTTP routes. Cloning shares them.
#[derive(Clone)]
pub struct Caches {
    /// Every integration, from the shared watch.
    pub integrations: Store<NotificationIntegration>,
    /// Secret metadata: tells when a Secret changed without reading it.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Every contact (email to service accounts), from its watch.
    pub contacts: Store<NotificationContact>,
    /// Every event, from the event controller's watch of the current term
    /// as the leader (see [`Caches::events`]).
    events: Arc<RwLock<Option<Store<NotificationEvent>>>>,
}

impl Caches {
    /// Caches over the watches' stores; the events' comes when leading.
    pub fn new(
        integrations: Store<NotificationIntegration>,
        secrets: Store<PartialObjectMeta<Secret>>,
        contacts: Store<NotificationContact>,
    ) -> Self {
        Caches { integrations, secrets, contacts, events: Default::default() }
    }

    /// The event controller's cache of every event, from its watch of this
    /// replica's current (or last) term as the leader; `None` before the
    /// first: a queued delivery of an event deleted meanwhile is not sent.
    pub fn events(&self) -> Option<Store<NotificationEvent>> {
        self.events.read().unwrap().clone()
    }

    /// The event cache of a new term as the leader (a fresh list each term).
    pub fn set_events(&self, events: Store<NotificationEvent>) {
        *self.events.write().unwrap() = Some(events);
    }

    /// Integration `name` of `namespace`, as the watch last saw it.
    pub fn integration(&self, namespace: &str, name: &str) -> Option<Arc<NotificationIntegration>> {
        self.integrations.get(&ObjectRef::new(name).within(namespace))
    }

    /// The `resourceVersion` of the integration's Secret as the metadata
    /// watch last saw it (no API call).
    pub fn secret_version(&self, ni: &NotificationIntegration) -> Option<String> {
        let namespace = ni.namespace().unwrap_or_default();
        self.secrets
            .get(&ObjectRef::new(&ni.spec.secret_ref.name).within(&namespace))
            .and_then(|m| m.metadata.resource_version.clone())
    }

    /// The contacts of `namespace`.
    pub fn contacts_in(&self, namespace: &str) -> Vec<Arc<NotificationContact>> {
        self.contacts.state().into_iter().filter(|c| c.metadata.namespace.as_deref() == Some(namespace)).collect()
    }
}

/// A map from an integration to what is kept for it.
pub struct PerIntegration<V> {
    map: Mutex<HashMap<IntegrationKey, V>>,
}

impl<V> Default for PerIntegration<V> {
    fn default() -> Self {
        PerIntegration { map: Mutex::new(HashMap::new()) }
    }
}

impl<V> PerIntegration<V> {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<IntegrationKey, V>> {
        self.map.lock().unwrap()
    }

    pub fn forget(&self, key: &IntegrationKey) {
        self.lock().remove(key);
    }

    /// Keep only the integrations `keep` says exist; how many were dropped.
    pub fn retain(&self, keep: impl Fn(&IntegrationKey) -> bool) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|k, _| keep(k));
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
