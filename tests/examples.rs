//! The manifests under examples/: each parses as its kind without losing a
//! field, each custom resource passes its CRD's schema (types, required,
//! enums, patterns, lengths, bounds, unknown fields, CEL rules), each
//! Secret + integration pair is accepted by the operator's own credential
//! parsing, and together they show every service, an event, a fan-out event
//! and the sidecar.

mod packaging;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
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

/// The CRD's schema for a kind (the stored version).
fn crd_schema(kind: &str) -> Value {
    for (_, crd) in kube_notify::crd::all() {
        if crd.spec.names.kind == kind {
            let json = serde_json::to_value(&crd).unwrap();
            return json["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        }
    }
    panic!("no CRD for kind {kind}")
}

/// A structural check of `value` against an OpenAPI v3 schema as the API
/// server applies it to a custom resource. `apiVersion`, `kind` and
/// `metadata` are left to the server.
fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        if schema["nullable"] != true {
            errors.push(format!("{path}: null is not allowed"));
        }
        return;
    }
    let ty = schema["type"].as_str().unwrap_or_default();
    let type_ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "" => true,
        other => panic!("{path}: schema type {other} is not handled by this check"),
    };
    if !type_ok {
        errors.push(format!("{path}: expected {ty}, got {value}"));
        return;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {options:?}"));
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| chars < m) {
            errors.push(format!("{path}: shorter than {}", schema["minLength"]));
        }
        if schema["maxLength"].as_u64().is_some_and(|m| chars > m) {
            errors.push(format!("{path}: longer than {}", schema["maxLength"]));
        }
        if let Some(pattern) = schema["pattern"].as_str()
            && !regex::Regex::new(pattern).unwrap().is_match(s)
        {
            errors.push(format!("{path}: {s:?} does not match {pattern}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            errors.push(format!("{path}: below the minimum {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            errors.push(format!("{path}: above the maximum {}", schema["maximum"]));
        }
    }
    if let Some(items) = value.as_array() {
        if schema["maxItems"].as_u64().is_some_and(|m| items.len() as u64 > m) {
            errors.push(format!("{path}: more than {} items", schema["maxItems"]));
        }
        if schema["minItems"].as_u64().is_some_and(|m| (items.len() as u64) < m) {
            errors.push(format!("{path}: fewer than {} items", schema["minItems"]));
        }
        for (i, item) in items.iter().enumerate() {
            validate(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
    }
    if let Some(fields) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            if !fields.contains_key(required.as_str().unwrap()) {
                errors.push(format!("{path}: {required} is required"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, v) in fields {
            let here = format!("{path}.{k}");
            if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue; // the API server's own business
            }
            match (props.and_then(|p| p.get(k)), schema.get("additionalProperties")) {
                (Some(sub), _) => validate(sub, v, &here, errors),
                (None, Some(extra)) if extra.is_object() => validate(extra, v, &here, errors),
                _ if schema["x-kubernetes-preserve-unknown-fields"] == true => {}
                _ => errors.push(format!("{here}: unknown field (the API server would drop it)")),
            }
        }
    }
    for rule in schema["x-kubernetes-validations"].as_array().into_iter().flatten() {
        let source = rule["rule"].as_str().unwrap();
        let program = cel::Program::compile(source).unwrap_or_else(|e| panic!("{path}: CEL {source:?}: {e:?}"));
        let mut context = cel::Context::default();
        context.add_variable("self", value.clone()).unwrap();
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(other) => errors.push(format!("{path}: {} (rule {source:?} gave {other:?})", rule["message"])),
            Err(e) => errors.push(format!("{path}: rule {source:?} failed: {e:?}")),
        }
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
                let mut errors = Vec::new();
                validate(&crd_schema(kind), obj, "", &mut errors);
                assert!(errors.is_empty(), "{file}: {} fails its CRD's schema: {errors:#?}", describe(obj));
            }
            (api, kind) => panic!("{file}: unexpected {api} {kind}"),
        }
    }
}

#[test]
fn the_schema_check_catches_mistakes() {
    let schema = crd_schema("NotificationIntegration");
    let check = |spec: Value| {
        let obj = serde_json::json!({"apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
                                     "metadata": {"name": "x"}, "spec": spec});
        let mut errors = Vec::new();
        validate(&schema, &obj, "", &mut errors);
        errors
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
