//! The connect-time SSRF guard through the real operator: names that resolve
//! to internal addresses (the operator's resolver is the test's) are refused
//! at the credential check and at delivery; an `--allow-endpoint` prefix
//! permits them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use kube_notify::crd::EventPhase;
use kube_notify::notifier::destination::{Resolve, Resolver};
use kube_notify::notifier::endpoint::EndpointPolicy;
use serde_json::json;

use crate::support::operator::{World, assert_no_secret, captured_logs, condition};

/// A resolver whose answers the test changes while the operator runs.
#[derive(Clone, Default)]
struct Answers(Arc<Mutex<HashMap<String, Vec<IpAddr>>>>);

impl Answers {
    fn set(&self, host: &str, addrs: &[&str]) {
        let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
        self.0.lock().unwrap().insert(host.to_string(), addrs);
    }
}

impl Resolve for Answers {
    fn lookup(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let found = self.0.lock().unwrap().get(host.trim_end_matches('.')).cloned();
        async move { found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host")) }.boxed()
    }
}

/// A world whose operator resolves names with `answers` and also allows `allow`.
async fn world(answers: &Answers, allow: impl FnOnce(u16) -> Vec<String>) -> (World, u16) {
    let mut w = World::without_operator().await;
    let port = url::Url::parse(&w.webhook.url()).unwrap().port().unwrap();
    let mut prefixes = vec![format!("{}/", w.slack.url()), format!("{}/", w.teams.url())];
    prefixes.extend(allow(port));
    w.config.endpoints.policy = EndpointPolicy::new(&prefixes).unwrap();
    w.config.resolver = Resolver::new(answers.clone());
    w.start_operator();
    (w, port)
}

fn webhook(secret: &str) -> serde_json::Value {
    json!({"service": "webhook", "secretRef": {"name": secret}})
}

#[tokio::test]
async fn names_resolving_to_internal_addresses_are_invalid_credentials() {
    let answers = Answers::default();
    let hosts = [
        ("loop", "127.0.0.1"),
        ("ten", "10.0.0.9"),
        ("metadata", "169.254.169.254"),
        ("mapped", "::ffff:10.0.0.1"),
        ("cgnat", "100.64.3.4"),
    ];
    for (name, addr) in hosts {
        answers.set(&format!("{name}.example"), &[addr]);
    }
    let (w, port) = world(&answers, |_| Vec::new()).await;
    let mut urls = Vec::new();
    for (name, _) in hosts {
        let url = format!("https://{name}.example:{port}/hooks/secret-{name}?token=t0ken");
        w.put_secret(name, &[("webhookUrl", &url)]).await;
        w.create_integration(name, webhook(name)).await;
        urls.push(url);
    }
    // The literal forms are refused before any lookup.
    w.put_secret("literal", &[("webhookUrl", "https://[::ffff:10.0.0.1]/hooks/secret-literal")]).await;
    w.create_integration("literal", webhook("literal")).await;
    for (name, _) in hosts {
        let ni = w.wait_condition(name, "CredentialsValid", "False", Some("EndpointNotAllowed")).await;
        let message = condition(&ni, "CredentialsValid").unwrap().2;
        assert!(message.contains(&format!("{name}.example")) && message.contains("--allow-endpoint"), "{message}");
        assert!(!message.contains("secret-") && !message.contains("t0ken"), "{message}");
        assert_eq!(condition(&ni, "Ready").unwrap().0, "False");
    }
    w.wait_condition("literal", "CredentialsValid", "False", Some("EndpointNotAllowed")).await;
    assert!(w.webhook.requests().is_empty(), "nothing was connected to");
    let secrets: Vec<&str> = urls.iter().map(String::as_str).collect();
    assert_no_secret(&captured_logs(), &secrets, "the logs");
}

/// DNS rebinding: a name that was public at the check and resolves to the
/// emulator's loopback address at delivery is refused at connect time. The
/// delivery fails for good with the refusal, not with a TLS error.
#[tokio::test]
async fn a_name_rebound_to_loopback_is_refused_at_delivery() {
    let answers = Answers::default();
    answers.set("rebind.example", &["93.184.215.14"]);
    let (w, port) = world(&answers, |_| Vec::new()).await;
    let url = format!("https://rebind.example:{port}/hooks/secret-path");
    w.put_secret("rebind", &[("webhookUrl", &url)]).await;
    w.create_integration("rebind", webhook("rebind")).await;
    w.wait_condition("rebind", "Ready", "True", None).await;
    answers.set("rebind.example", &["127.0.0.1"]);
    w.create_event("ev", json!({"integrationRef": {"name": "rebind"}, "message": "hello"})).await;
    let ev = w.wait_event_phase("ev", EventPhase::Failed).await;
    let status = ev.status.unwrap();
    let delivery = &status.deliveries[0];
    assert_eq!(delivery.reason.as_deref(), Some("EndpointNotAllowed"), "{delivery:?}");
    assert_eq!(delivery.attempts, 1, "a refusal is not retried");
    assert_no_secret(&serde_json::to_string(&status).unwrap(), &[&url, "secret-path"], "the event's status");
    assert!(w.webhook.requests().is_empty(), "nothing was connected to");
}

/// An `--allow-endpoint` prefix permits an internal name, through the same resolver.
#[tokio::test]
async fn an_allowed_prefix_reaches_an_internal_name() {
    let answers = Answers::default();
    answers.set("hooks.corp.example", &["127.0.0.1"]);
    let (w, port) = world(&answers, |port| vec![format!("http://hooks.corp.example:{port}/hooks/")]).await;
    let path = w.webhook.add_endpoint("/hooks/a");
    let url = format!("http://hooks.corp.example:{port}{}", url::Url::parse(&path).unwrap().path());
    w.put_secret("corp", &[("webhookUrl", &url)]).await;
    w.create_integration("corp", webhook("corp")).await;
    w.wait_condition("corp", "Ready", "True", None).await;
    w.create_event("ev", json!({"integrationRef": {"name": "corp"}, "message": "hello"})).await;
    w.wait_event_phase("ev", EventPhase::Delivered).await;
    assert_eq!(w.webhook.messages()[0].json().unwrap()["data"]["message"], "hello");
}
