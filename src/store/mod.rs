//! Where state lives. The engine reads and writes through a [`Store`]: the
//! Kubernetes API on a cluster ([`kubernetes`]), an embedded database in
//! standalone mode ([`embedded`]). Both speak in Kubernetes objects and
//! answer errors as the API server does (`kube::Error::Api` with its code:
//! 404 not found, 409 conflict), so the engine handles both the same way.

pub mod embedded;
pub mod kubernetes;

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::Preconditions;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;

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
    fn watch_metadata(&self) -> WatchStream<PartialObjectMeta<Secret>>;
    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, StoreResult<Option<Secret>>>;
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
    let mut stream = objects.watch_one(namespace, name);
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
