//! The manifests under examples/: each parses as its kind without losing a
//! field, each custom resource passes its CRD's admission (kube-notify's,
//! as the API server's: types, required, enums, patterns, lengths, bounds,
//! unknown fields, CEL rules), each Secret + integration pair is accepted by
//! the operator's own credential parsing, and together they show every
//! service, an event, a fan-out event and the sidecar.

mod packaging;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube_notify::admission::Admission;
use kube_notify::crd::{NotificationContact, NotificationEvent, NotificationIntegration, Service};
use kube_notify::notifier::{self, ServiceEndpoints};
use packaging::{describe, read, root, roundtrip_exact, roundtrip_subset, selects, yaml_docs};
use serde_json::Value;

struct Example {
    file: String,
    obj: Value,
}

fn examples() -> Vec<Example> {
    let dir = root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples");
    let mut out = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let docs = yaml_docs(&read(&path), &file);
        assert!(!docs.is_empty(), "{file} is empty");
        for obj in docs {
            out.push(Example { file: file.clone(), obj });
        }
    }
    out
}

/// What the CRD's admission (kube-notify's, as the API server admits:
/// unknown fields, types, required, enums, patterns, lengths, bounds, CEL
/// rules, metadata) finds wrong in `obj`.
fn admission_causes(kind: &str, obj: &Value) -> Vec<String> {
    let (_, crd) = kube_notify::crd::all()
        .into_iter()
        .find(|(_, crd)| crd.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
    let admission = Admission::new(&crd).unwrap_or_else(|e| panic!("{kind}: {e}"));
    match admission.admit(&mut obj.clone(), None) {
        Ok(()) => Vec::new(),
        Err(causes) => causes.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_example_parses_as_its_kind() {
    for Example { file, obj } in &examples() {
        assert!(obj["metadata"]["name"].is_string(), "{file}: {} has no metadata.name", describe(obj));
        assert!(
            obj["metadata"]["namespace"].is_null(),
            "{file}: {} names a namespace; examples are applied with -n",
            describe(obj)
        );
        match (obj["apiVersion"].as_str().unwrap_or_default(), obj["kind"].as_str().unwrap_or_default()) {
            ("v1", "Secret") => drop(roundtrip_exact::<Secret>(obj, file)),
            ("v1", "ServiceAccount") => drop(roundtrip_exact::<ServiceAccount>(obj, file)),
            ("v1", "Pod") => drop(roundtrip_exact::<Pod>(obj, file)),
            ("rbac.authorization.k8s.io/v1", "Role") => drop(roundtrip_exact::<Role>(obj, file)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => drop(roundtrip_exact::<RoleBinding>(obj, file)),
            (
                "kube-notify.io/v1alpha1",
                kind @ ("NotificationIntegration" | "NotificationEvent" | "NotificationContact"),
            ) => {
                match kind {
                    "NotificationIntegration" => drop(roundtrip_subset::<NotificationIntegration>(obj, file)),
                    "NotificationEvent" => drop(roundtrip_subset::<NotificationEvent>(obj, file)),
                    _ => drop(roundtrip_subset::<NotificationContact>(obj, file)),
                }
                let errors = admission_causes(kind, obj);
                assert!(errors.is_empty(), "{file}: {} fails its CRD's schema: {errors:#?}", describe(obj));
            }
            (api, kind) => panic!("{file}: unexpected {api} {kind}"),
        }
    }
}

#[test]
fn the_schema_check_catches_mistakes() {
    let check = |spec: Value| {
        let obj = serde_json::json!({"apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
                                     "metadata": {"name": "x"}, "spec": spec});
        admission_causes("NotificationIntegration", &obj)
    };
    assert!(check(serde_json::json!({"service": "slack", "secretRef": {"name": "s"}})).is_empty());
    assert!(!check(serde_json::json!({"service": "slack", "secretRef": {"nmae": "s"}})).is_empty());
    assert!(!check(serde_json::json!({"service": "teams", "secretRef": {"name": "s"}})).is_empty());
    assert!(!check(serde_json::json!({"service": "chatwork", "secretRef": {"name": "s"}})).is_empty(), "CEL rule");
    assert!(
        !check(serde_json::json!({"service": "chatwork", "secretRef": {"name": "s"}, "chatwork": {"roomId": "r1"}}))
            .is_empty()
    );
    assert!(
        !check(serde_json::json!({"service": "slack", "secretRef": {"name": "s"}, "errorThreshold": 0})).is_empty()
    );
}

fn secrets(all: &[Example]) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for ex in all.iter().filter(|e| e.obj["kind"] == "Secret") {
        let secret: Secret = serde_json::from_value(ex.obj.clone()).unwrap();
        let mut data: BTreeMap<String, Vec<u8>> =
            secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        for (k, v) in secret.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        out.insert(secret.metadata.name.unwrap(), data);
    }
    out
}

fn integrations(all: &[Example]) -> Vec<(String, NotificationIntegration)> {
    all.iter()
        .filter(|e| e.obj["kind"] == "NotificationIntegration")
        .map(|e| (e.file.clone(), serde_json::from_value(e.obj.clone()).unwrap()))
        .collect()
}

#[test]
fn every_integration_is_accepted_with_its_secret() {
    let all = examples();
    let secrets = secrets(&all);
    let endpoints = ServiceEndpoints {
        slack_api: "https://slack.com/api".parse().unwrap(),
        chatwork_api: "https://api.chatwork.com/v2".parse().unwrap(),
        policy: Default::default(),
    };
    for (file, ni) in integrations(&all) {
        let name = &ni.spec.secret_ref.name;
        let data = secrets.get(name).unwrap_or_else(|| panic!("{file}: no example Secret {name}"));
        if let Err(failure) = notifier::build(&ni.spec, name, data, &endpoints) {
            panic!("{file}: the operator refuses the example: {}: {}", failure.reason, failure.message);
        }
    }
}

#[test]
fn credentials_are_obviously_fake() {
    use base64::Engine as _;
    for (name, data) in secrets(&examples()) {
        for (key, value) in data {
            let text = String::from_utf8(value).unwrap();
            let lower = text.to_lowercase();
            // A whsec_ signing secret is base64: look inside.
            let signing_key = text.strip_prefix("whsec_").and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            });
            let fake = lower.contains("example")
                || lower.contains("xxxxxxxxxxxxxxxx")
                || signing_key.is_some_and(|k| k.contains("not real"));
            assert!(fake, "Secret {name} key {key}: example credentials must be obviously fake (say \"example\")");
        }
    }
}

#[test]
fn examples_cover_every_service_events_and_the_sidecar() {
    let all = examples();
    let integrations = integrations(&all);
    let has = |service: Service, pred: &dyn Fn(&NotificationIntegration) -> bool| {
        integrations.iter().any(|(_, ni)| ni.spec.service == service && pred(ni))
    };
    let bot = |ni: &NotificationIntegration| ni.spec.slack.as_ref().is_some_and(|s| s.channel.is_some());
    assert!(has(Service::Slack, &|ni| !bot(ni)), "a Slack incoming-webhook example");
    assert!(has(Service::Slack, &bot), "a Slack bot-token example");
    assert!(has(Service::Chatwork, &|_| true), "a Chatwork example");
    assert!(has(Service::Msteams, &|_| true), "a Teams Workflows example");
    let secrets = secrets(&all);
    assert!(
        has(Service::Webhook, &|ni| secrets
            .get(&ni.spec.secret_ref.name)
            .is_some_and(|d| d.contains_key(notifier::KEY_SIGNING_SECRET))),
        "a generic webhook example with a signingSecret"
    );

    let events: Vec<NotificationEvent> = all
        .iter()
        .filter(|e| e.obj["kind"] == "NotificationEvent")
        .map(|e| serde_json::from_value(e.obj.clone()).unwrap())
        .collect();
    let names: Vec<String> = integrations.iter().map(|(_, ni)| ni.metadata.name.clone().unwrap()).collect();
    let direct: Vec<_> = events.iter().filter_map(|e| e.spec.integration_ref.as_ref()).collect();
    assert!(!direct.is_empty(), "an event for one integration");
    for r in direct {
        assert!(names.contains(&r.name), "an example event targets {}, which no example defines", r.name);
    }
    assert!(events.iter().any(|e| !e.spec.mentions.is_empty()), "an event with mentions");
    let contacts: Vec<NotificationContact> = all
        .iter()
        .filter(|e| e.obj["kind"] == "NotificationContact")
        .map(|e| serde_json::from_value(e.obj.clone()).unwrap())
        .collect();
    assert!(
        contacts.iter().any(|c| c.spec.slack.is_some() && c.spec.chatwork.is_some() && c.spec.msteams.is_some()),
        "a contact mapping every service"
    );
    let fanout: Vec<_> = events.iter().filter_map(|e| e.spec.integration_selector.as_ref()).collect();
    assert!(!fanout.is_empty(), "a fan-out event with integrationSelector");
    for selector in fanout {
        let wanted = serde_json::to_value(selector.match_labels.clone().unwrap_or_default()).unwrap();
        let matched = integrations
            .iter()
            .filter(|(_, ni)| selects(&wanted, &serde_json::to_value(ni.metadata.labels.clone()).unwrap()))
            .count();
        assert!(matched >= 2, "the fan-out example selects {matched} example integrations; it should show several");
    }

    let pods: Vec<Pod> =
        all.iter().filter(|e| e.obj["kind"] == "Pod").map(|e| serde_json::from_value(e.obj.clone()).unwrap()).collect();
    let sidecar_pod = pods
        .iter()
        .find(|p| {
            p.spec.as_ref().unwrap().containers.iter().any(|c| {
                c.args
                    .as_deref()
                    .is_some_and(|a| a.starts_with(&["sidecar".into(), "--listen".into(), "127.0.0.1:8787".into()]))
            })
        })
        .expect("a pod with the `kube-notify sidecar --listen 127.0.0.1:8787` container");
    let spec = sidecar_pod.spec.as_ref().unwrap();
    assert!(spec.containers.len() >= 2, "the sidecar runs next to an application container");
    for c in &spec.containers {
        let args = c.args.clone().unwrap_or_default();
        if args.first().map(String::as_str) == Some("sidecar") {
            let argv = std::iter::once("kube-notify".to_string()).chain(args);
            if let Err(e) = kube_notify::cli::Cli::try_parse_from(argv) {
                panic!("the sidecar container's args do not parse: {e}");
            }
        }
    }
    let sa = spec.service_account_name.clone().expect("the sidecar pod names its ServiceAccount");
    let bound_roles: Vec<String> = all
        .iter()
        .filter(|e| e.obj["kind"] == "RoleBinding")
        .map(|e| serde_json::from_value::<RoleBinding>(e.obj.clone()).unwrap())
        .filter(|b| b.subjects.iter().flatten().any(|s| s.kind == "ServiceAccount" && s.name == sa))
        .map(|b| b.role_ref.name)
        .collect();
    let may_create_events = all
        .iter()
        .filter(|e| e.obj["kind"] == "Role")
        .map(|e| serde_json::from_value::<Role>(e.obj.clone()).unwrap())
        .filter(|r| bound_roles.contains(r.metadata.name.as_ref().unwrap()))
        .flat_map(|r| r.rules.unwrap_or_default())
        .any(|rule| {
            rule.api_groups.unwrap_or_default().contains(&"kube-notify.io".into())
                && rule.resources.unwrap_or_default().contains(&"notificationevents".into())
                && rule.verbs.contains(&"create".into())
        });
    assert!(may_create_events, "the sidecar's ServiceAccount {sa} may create NotificationEvents");
}

/// A pod that posts to the operator (`kube-notify send --url … --token-file
/// FILE`) reads its token from a projected ServiceAccount token minted for
/// kube-notify's audience (the operator refuses tokens for the API server),
/// and its arguments parse.
#[test]
fn tokens_sent_to_kube_notify_are_minted_for_it() {
    let pods: Vec<(String, Pod)> = examples()
        .into_iter()
        .filter(|e| e.obj["kind"] == "Pod")
        .map(|e| (e.file, serde_json::from_value(e.obj).unwrap()))
        .collect();
    let mut senders = 0;
    for (file, pod) in &pods {
        let spec = pod.spec.as_ref().unwrap();
        for c in &spec.containers {
            let args = c.args.clone().unwrap_or_default();
            if args.first().map(String::as_str) != Some("send") {
                continue;
            }
            senders += 1;
            let argv = std::iter::once("kube-notify".to_string()).chain(args.clone());
            if let Err(e) = kube_notify::cli::Cli::try_parse_from(argv) {
                panic!("{file}: the send container's args do not parse: {e}");
            }
            assert!(args.iter().any(|a| a == "--url"), "{file}: send --url");
            let at = args.iter().position(|a| a == "--token-file").expect("--token-file");
            let token_file = std::path::Path::new(&args[at + 1]);
            let mount = c
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| token_file.parent() == Some(std::path::Path::new(&m.mount_path)))
                .unwrap_or_else(|| panic!("{file}: {} is not in a mounted volume", token_file.display()));
            let volume = spec.volumes.iter().flatten().find(|v| v.name == mount.name).expect("the mounted volume");
            let minted = volume.projected.iter().flat_map(|p| p.sources.iter().flatten()).any(|s| {
                s.service_account_token.as_ref().is_some_and(|t| {
                    t.audience.as_deref() == Some(kube_notify::server::ingest::auth::DEFAULT_TOKEN_AUDIENCE)
                        && Some(std::ffi::OsStr::new(&t.path)) == token_file.file_name()
                })
            });
            assert!(minted, "{file}: {} is not a projected token for the audience kube-notify", token_file.display());
            assert_eq!(spec.automount_service_account_token, Some(false), "{file}: no API token where none is needed");
        }
    }
    assert!(senders > 0, "an example pod that sends over HTTP with a token for kube-notify");
}
