//! `send` with the caller's kubeconfig: check the target exists (a
//! terminal or CI user hears "no such integration" now, not after the
//! event's deadline), create the NotificationEvent, and watch it until it
//! is finished or the wait runs out.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;

use super::report::{self, Created};
use super::send::Request;
use crate::crd::event::REQUESTED_VIA;
use crate::crd::{NotificationEvent, NotificationIntegration};
use crate::exit::{Exit, Outcome};
use crate::server::ingest::body::{Target, is_dns_label};

/// Create the event in `namespace` (else the kubeconfig context's) and follow it.
pub async fn send(namespace: Option<String>, request: &Request, wait: Duration) -> Outcome {
    match connect(namespace).await {
        Ok((client, namespace)) => match send_with(client, &namespace, request, wait).await {
            Ok(o) | Err(o) => o,
        },
        Err(o) => o,
    }
}

/// A client from the kubeconfig (or in-cluster), and the namespace to use:
/// `namespace`, else the kubeconfig context's.
pub async fn connect(namespace: Option<String>) -> Result<(kube::Client, String), Outcome> {
    let config = kube::Config::infer().await.map_err(|e| {
        Outcome::new(
            Exit::Error,
            format!("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {e}"),
        )
    })?;
    let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
    if !is_dns_label(&namespace) {
        return Err(Outcome::new(Exit::Invalid, format!("--namespace: {namespace:?} is not a namespace name")));
    }
    let client = kube::Client::try_from(config)
        .map_err(|e| Outcome::new(Exit::Error, format!("the Kubernetes configuration cannot be used: {e}")))?;
    Ok((client, namespace))
}

/// [`send`] with a client, in `namespace`.
pub async fn send_with(client: kube::Client, ns: &str, request: &Request, wait: Duration) -> Result<Outcome, Outcome> {
    has_a_target(&client, ns, &request.event.target).await?;
    let events: Api<NotificationEvent> = Api::namespaced(client, ns);
    let event = NotificationEvent {
        metadata: ObjectMeta {
            generate_name: Some(super::GENERATE_NAME.to_string()),
            namespace: Some(ns.to_string()),
            annotations: Some(BTreeMap::from([(REQUESTED_VIA.to_string(), super::REQUESTED_VIA_CLI.to_string())])),
            ..Default::default()
        },
        spec: request.event.spec(),
        status: None,
    };
    let created = events
        .create(&PostParams::default(), &event)
        .await
        .map_err(|e| api_error(e, "creating the NotificationEvent"))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let ev =
        Created { namespace: ns.to_string(), name: name.clone(), follow: format!("kubectl get nev -n {ns} {name}") };
    if wait.is_zero() {
        return Ok(report::created(&ev));
    }
    // Absent counts as not finished: the watch's first list may come from a
    // cache that has not seen the new event yet. A deleted event is found
    // out when the wait runs out.
    let finished = |e: Option<&NotificationEvent>| e.is_some_and(is_finished);
    match tokio::time::timeout(wait, await_condition(events.clone(), &name, finished)).await {
        Ok(Ok(Some(done))) => Ok(report::of_event(&ev, done.status.as_ref(), None)),
        Ok(Ok(None)) => Err(Outcome::new(Exit::Error, format!("{ns}/{name} was deleted before it finished"))),
        Ok(Err(e)) => Err(watch_error(e, &format!("watching {ns}/{name} (it was created: {})", ev.follow))),
        Err(_) => {
            let now = events.get_opt(&name).await.map_err(|e| api_error(e, "reading the NotificationEvent"))?;
            let Some(now) = now else {
                return Err(Outcome::new(Exit::Error, format!("{ns}/{name} was deleted before it finished")));
            };
            Ok(report::of_event(&ev, now.status.as_ref(), (!is_finished(&now)).then_some(wait)))
        }
    }
}

/// A watch that failed while `doing` something.
pub fn watch_error(e: kube::runtime::wait::Error, doing: &str) -> Outcome {
    use kube::runtime::watcher::Error as W;
    let kube::runtime::wait::Error::ProbeFailed(e) = e;
    match e {
        W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => api_error(e, doing),
        other => Outcome::new(Exit::Error, format!("{doing}: {other}")),
    }
}

fn is_finished(ev: &NotificationEvent) -> bool {
    ev.status.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_final())
}

/// Exit 3 unless the integration exists, or the selector matches one.
async fn has_a_target(client: &kube::Client, ns: &str, target: &Target) -> Result<(), Outcome> {
    let integrations: Api<NotificationIntegration> = Api::namespaced(client.clone(), ns);
    match target {
        Target::Integration(name) => {
            let found = integrations.get_opt(name).await.map_err(|e| api_error(e, "reading the integration"))?;
            match found {
                Some(_) => Ok(()),
                None => Err(Outcome::new(
                    Exit::NotFound,
                    format!("no NotificationIntegration {name:?} in namespace {ns:?}"),
                )),
            }
        }
        Target::Selector(selector) => {
            let selector = kube::core::Selector::try_from(selector.clone())
                .map_err(|e| Outcome::new(Exit::Invalid, format!("--selector: {e}")))?;
            let text = selector.to_string();
            let params = ListParams::default().labels(&text).limit(1);
            let list = integrations.list(&params).await.map_err(|e| api_error(e, "listing integrations"))?;
            if list.items.is_empty() {
                Err(Outcome::new(
                    Exit::NotFound,
                    format!("no NotificationIntegration in namespace {ns:?} matches {text:?}"),
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// A Kubernetes API error while `doing` something.
pub fn api_error(e: kube::Error, doing: &str) -> Outcome {
    match e {
        kube::Error::Api(s) => report::of_api_status(s.code, &s.reason, &s.message, doing),
        other => Outcome::new(Exit::Error, format!("{doing}: the Kubernetes API could not be reached: {other}")),
    }
}
