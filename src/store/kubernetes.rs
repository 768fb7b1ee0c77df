//! The Kubernetes API as the store: watches through kube-runtime's watcher,
//! writes through the status subresource, Events through kube-runtime's
//! recorder.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Notices, Objects, Secrets, Store, StoreResult, WatchStream};

/// The store on the cluster `client` talks to: one namespace, or all when `None`.
pub fn store(client: Client, namespace: Option<String>, reporter: Reporter) -> Store {
    Store {
        integrations: Arc::new(Kind::new(client.clone(), namespace.clone())),
        events: Arc::new(Kind::new(client.clone(), namespace.clone()).paged(EVENT_LIST_PAGE)),
        contacts: Arc::new(Kind::new(client.clone(), namespace.clone())),
        secrets: Arc::new(Kind::<Secret>::new(client.clone(), namespace)),
        notices: Arc::new(Events(Recorder::new(client, reporter))),
    }
}

/// Events through the API with `client`'s credentials (the sidecar's: the pod's).
pub fn events(client: Client) -> Arc<dyn Objects<crate::crd::NotificationEvent>> {
    Arc::new(Kind::new(client, None))
}

/// Events are listed this many at a time: a page of maximum-size events
/// (about 0.5 MB each) is what a (re)list holds in memory at once, before the
/// cache keeps them without their large content.
pub const EVENT_LIST_PAGE: u32 = 50;

/// One kind's objects through the API.
struct Kind<K> {
    client: Client,
    namespace: Option<String>,
    /// Objects per page of a watch's (re)list (kube's default when `None`).
    page: Option<u32>,
    _kind: std::marker::PhantomData<fn() -> K>,
}

impl<K> Kind<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    fn new(client: Client, namespace: Option<String>) -> Self {
        Kind { client, namespace, page: None, _kind: std::marker::PhantomData }
    }

    fn paged(self, page: u32) -> Self {
        Kind { page: Some(page), ..self }
    }

    fn served<L>(&self) -> Api<L>
    where
        L: Resource<Scope = NamespaceResourceScope>,
        L::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    fn within(&self, namespace: &str) -> Api<K> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

impl<K> Objects<K> for Kind<K>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default,
{
    fn watch(&self) -> WatchStream<K> {
        let config = watcher::Config::default();
        let config = match self.page {
            Some(page) => config.page_size(page),
            None => config,
        };
        watcher(self.served::<K>(), config).boxed()
    }

    fn watch_one(&self, namespace: &str, name: &str) -> WatchStream<K> {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        watcher(self.within(namespace), config).boxed()
    }

    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, StoreResult<Option<K>>> {
        let api = self.within(namespace);
        let name = name.to_string();
        Box::pin(async move { api.get_opt(&name).await })
    }

    fn create(&self, namespace: &str, object: K) -> BoxFuture<'_, StoreResult<K>> {
        let api = self.within(namespace);
        Box::pin(async move { api.create(&PostParams::default(), &object).await })
    }

    fn replace_status(&self, namespace: &str, object: K) -> BoxFuture<'_, StoreResult<K>> {
        let api = self.within(namespace);
        Box::pin(async move {
            let name = object.meta().name.clone().unwrap_or_default();
            api.replace_status(&name, &PostParams::default(), &object).await
        })
    }

    fn delete(&self, namespace: &str, name: &str, preconditions: Preconditions) -> BoxFuture<'_, StoreResult<()>> {
        let api = self.within(namespace);
        let name = name.to_string();
        Box::pin(async move {
            let params = DeleteParams { preconditions: Some(preconditions), ..DeleteParams::default() };
            api.delete(&name, &params).await.map(|_| ())
        })
    }
}

impl Secrets for Kind<Secret> {
    fn watch_metadata(&self, selector: Option<&str>) -> WatchStream<PartialObjectMeta<Secret>> {
        let config = match selector {
            Some(labels) => watcher::Config::default().labels(labels),
            None => watcher::Config::default(),
        };
        watcher(self.served::<PartialObjectMeta<Secret>>(), config).boxed()
    }

    fn get(&self, namespace: &str, name: &str) -> BoxFuture<'_, StoreResult<Option<Secret>>> {
        let api = self.within(namespace);
        let name = name.to_string();
        Box::pin(async move { api.get_opt(&name).await })
    }
}

/// Kubernetes Events through kube-runtime's recorder.
struct Events(Recorder);

impl Notices for Events {
    fn publish<'a>(
        &'a self,
        about: &'a ObjectReference,
        event: kube::runtime::events::Event,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { self.0.publish(&event, about).await })
    }
}
