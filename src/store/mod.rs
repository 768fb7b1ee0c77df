//! Where state lives. The engine reads and writes through a [`Store`]: the
//! Kubernetes API on a cluster ([`kubernetes`]), an embedded database in
//! standalone mode ([`embedded`]). Both speak in Kubernetes objects and
//! answer errors as the API server does (`kube::Error::Api` with its code:
//! 404 not found, 409 conflict), so the engine handles both the same way.

pub mod embedded;
pub mod kubernetes;
pub mod reread;

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::Preconditions;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};

use crate::crd::{NotificationContact, NotificationEvent, NotificationIntegration};

/// Every object, then each change, as kube-runtime's watcher yields them.
pub type WatchStream<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// A store's answer; errors as the Kubernetes API gives them.
pub type StoreResult<T> = Result<T, kube::Error>;

/// One kind's objects.
pub trait Objects<K>: Send + Sync + 'static {
    /// Every object the store serves (one namespace or all), then each change.
    fn watch(&self) -> WatchStream<K>;
    /// One object's changes, from its current state.
    fn watch_one(&self, namespace: &str, name: &str) -> WatchStream<K>;
    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, StoreResult<Option<K>>>;
    /// Create `object` in `namespace` (`metadata.generateName` honoured).
    fn create(&self, namespace: &str, object: K) -> BoxFuture<'_, StoreResult<K>>;
    /// Replace the status of `object`: 409 unless its `resourceVersion` is
    /// the stored one, 404 when it is gone.
    fn replace_status(&self, namespace: &str, object: K) -> BoxFuture<'_, StoreResult<K>>;
    /// Delete the object named `name` if it meets `preconditions` (409
    /// when it does not, 404 when there is none).
    fn delete(&self, namespace: &str, name: &str, preconditions: Preconditions) -> BoxFuture<'_, StoreResult<()>>;
}

/// Secrets: their metadata watched (to notice a change without holding the
/// data), their data read when a notifier is built.
pub trait Secrets: Send + Sync + 'static {
    /// The metadata of the Secrets served; those with the label `selector`
    /// (e.g. `kube-notify.io/secret=true`) only, when given.
    fn watch_metadata(&self, selector: Option<&str>) -> WatchStream<PartialObjectMeta<Secret>>;
    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, StoreResult<Option<Secret>>>;
}

/// How the operator learns that a Secret changed (`--secret-access`). Every
/// mode reads an integration's Secret with `get` in its own namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecretAccess {
    /// Watch the metadata of every Secret served (RBAC: `list`, `watch`).
    #[default]
    Watch,
    /// Watch only Secrets labelled [`SECRET_LABEL`]`=true`; an integration
    /// whose Secret lacks the label is not valid. Less memory; the same RBAC
    /// (a Role cannot restrict `list` to a label).
    Labelled,
    /// No watch: each Secret integrations use is read again every `reread`
    /// (spread by ±10%); RBAC `get` only.
    Get { reread: std::time::Duration },
}

/// The label `--secret-access labelled` watches (`kube-notify.io/secret=true`).
pub const SECRET_LABEL: &str = "kube-notify.io/secret";

impl SecretAccess {
    /// The label selector of the Secret watch, if it has one.
    pub fn watch_selector(&self) -> Option<String> {
        matches!(self, SecretAccess::Labelled).then(|| format!("{SECRET_LABEL}=true"))
    }

    /// Whether an integration may use `secret` (labelled mode: it has the label).
    pub fn admits(&self, secret: &Secret) -> bool {
        match self {
            SecretAccess::Labelled => {
                secret.metadata.labels.as_ref().and_then(|l| l.get(SECRET_LABEL)).is_some_and(|v| v == "true")
            }
            _ => true,
        }
    }
}

/// The Secret metadata worth keeping: name, namespace and resourceVersion
/// (what tells a change). Annotations go (kubectl's
/// `last-applied-configuration` holds a Secret's data), and so do labels,
/// managedFields and the rest.
pub fn keep_used_metadata(secret: &mut PartialObjectMeta<Secret>) {
    let meta = std::mem::take(&mut secret.metadata);
    secret.metadata = kube::api::ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        resource_version: meta.resource_version,
        ..Default::default()
    };
}

/// Where Kubernetes Events about our objects go (`kubectl describe` on a
/// cluster; the log in standalone mode).
pub trait Notices: Send + Sync + 'static {
    fn publish<'a>(
        &'a self,
        about: &'a ObjectReference,
        event: kube::runtime::events::Event,
    ) -> BoxFuture<'a, StoreResult<()>>;
}

/// Everything the engine reads and writes.
#[derive(Clone)]
pub struct Store {
    pub integrations: Arc<dyn Objects<NotificationIntegration>>,
    pub events: Arc<dyn Objects<NotificationEvent>>,
    pub contacts: Arc<dyn Objects<NotificationContact>>,
    pub secrets: Arc<dyn Secrets>,
    pub notices: Arc<dyn Notices>,
}

/// Wait until `condition` holds for the object (None: it does not exist),
/// as kube-runtime's `await_condition`; its state then.
pub async fn await_condition<K>(
    objects: &dyn Objects<K>,
    namespace: &str,
    name: &str,
    condition: impl Fn(Option<&K>) -> bool,
) -> StoreResult<Option<K>>
where
    K: Clone + Send + 'static,
{
    // Restarted with backoff after an error (429s and 5xx under load), never in a tight loop.
    let mut stream = std::pin::pin!(objects.watch_one(namespace, name).default_backoff());
    // The object as of the last complete view (None until it is seen).
    let mut current: Option<K> = None;
    let mut initial: Option<Option<K>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => initial = Some(None),
            Ok(watcher::Event::InitApply(obj)) => initial = Some(Some(obj)),
            Ok(watcher::Event::InitDone) => current = initial.take().flatten(),
            Ok(watcher::Event::Apply(obj)) => current = Some(obj),
            Ok(watcher::Event::Delete(_)) => current = None,
            // The watch restarts itself; what was seen stays.
            Err(_) => continue,
        }
        if initial.is_none() && condition(current.as_ref()) {
            return Ok(current);
        }
    }
    Err(kube::Error::Service("the watch ended".into()))
}

/// The error the API gives for `code` (404, 409, ...), with its reason.
pub fn api_error(code: u16, reason: &str, message: String) -> kube::Error {
    kube::Error::Api(kube::core::Status::failure(&message, reason).with_code(code).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(labels: serde_json::Value) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "namespace": "n", "resourceVersion": "7", "uid": "u", "labels": labels,
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{}}"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
        }))
        .unwrap()
    }

    #[test]
    fn only_name_namespace_and_version_are_kept() {
        use kube::core::PartialObjectMetaExt;
        let mut meta = secret(serde_json::json!({"a": "b"})).metadata.into_response_partial::<Secret>();
        keep_used_metadata(&mut meta);
        assert_eq!(
            meta.metadata,
            kube::api::ObjectMeta {
                name: Some("s".into()),
                namespace: Some("n".into()),
                resource_version: Some("7".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn labelled_mode_admits_only_labelled_secrets() {
        let labelled = secret(serde_json::json!({SECRET_LABEL: "true"}));
        let other = secret(serde_json::json!({SECRET_LABEL: "yes"}));
        assert!(SecretAccess::Labelled.admits(&labelled) && !SecretAccess::Labelled.admits(&other));
        assert!(SecretAccess::Watch.admits(&other));
        assert_eq!(SecretAccess::Labelled.watch_selector().as_deref(), Some("kube-notify.io/secret=true"));
        assert_eq!(SecretAccess::Get { reread: std::time::Duration::from_secs(1) }.watch_selector(), None);
    }
}
