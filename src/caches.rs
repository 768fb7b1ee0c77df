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

/// The in-memory annotation that marks an event whose content (message,
/// fields, links) was dropped from this process's memory by
/// [`trim_event_content`]; never written (status writes go to `/status`,
/// which ignores metadata).
pub const CONTENT_TRIMMED: &str = "kube-notify.io/content-trimmed";

/// Events whose content is larger than this (UTF-8 bytes of the message,
/// fields and links) are kept without it: a delivery reads it with one GET.
/// A maximum-size event is about 0.5 MB; kept whole, some hundred pending
/// ones would take the operator past its memory limit.
pub const KEEP_CONTENT_UP_TO: usize = 8 * 1024;

/// The bytes of an event's content: what [`trim_event_content`] may drop.
pub fn content_bytes(spec: &crate::crd::NotificationEventSpec) -> usize {
    spec.message.len()
        + spec.fields.iter().map(|f| f.name.len() + f.value.len()).sum::<usize>()
        + spec.links.iter().map(|l| l.text.len() + l.url.len()).sum::<usize>()
}

/// What the event caches keep of an event: everything but a large
/// content, which is dropped and marked [`CONTENT_TRIMMED`]. The planner
/// needs only the target, the mentions and the times; the content is read
/// again when the event is delivered.
pub fn trim_event_content(ev: &mut NotificationEvent) {
    if content_bytes(&ev.spec) <= KEEP_CONTENT_UP_TO {
        return;
    }
    ev.spec.message = String::new();
    ev.spec.fields = Vec::new();
    ev.spec.links = Vec::new();
    ev.metadata.annotations.get_or_insert_default().insert(CONTENT_TRIMMED.to_string(), "true".to_string());
}

/// Whether `ev` is kept without its content (see [`trim_event_content`]).
pub fn is_trimmed(ev: &NotificationEvent) -> bool {
    ev.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(CONTENT_TRIMMED))
}
