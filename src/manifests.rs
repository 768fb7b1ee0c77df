//! Manifests of the standalone mode: the NotificationIntegration,
//! NotificationContact and Secret YAML (or JSON) a user would `kubectl
//! apply`, admitted as the API server admits them (see [`crate::admission`]).
//!
//! A file holds one or more documents (`---`), each an object or a
//! `kind: List` with `items`. Errors never repeat a Secret's values.

use crate::admission::{Admission, Cause, UNKNOWN_FIELD, object_meta, secret, type_name};
use crate::crd::{NotificationContact, NotificationIntegration};
use k8s_openapi::api::core::v1::Secret;
use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// The admitted objects of one or more manifest files.
#[derive(Debug, Default, Clone)]
pub struct Manifests {
    /// In the order read (files by name, then documents).
    pub integrations: Vec<NotificationIntegration>,
    /// In the order read.
    pub contacts: Vec<NotificationContact>,
    /// Normalized: `stringData` merged into `data`, `type` set.
    pub secrets: Vec<Secret>,
}

/// Where an object is: its file (or origin), the document's 1-based
/// position in it and, inside a `List`, the item's 0-based index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file's path (or the origin given to [`parse`]).
    pub origin: String,
    /// The document's position in the file, from 1.
    pub document: usize,
    /// The index in a `List`'s `items`, from 0.
    pub item: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.origin, self.document)?;
        if let Some(i) = self.item {
            write!(f, ", items[{i}]")?;
        }
        Ok(())
    }
}

/// Why a manifest is not admitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ManifestError {
    /// The file or folder cannot be read.
    #[error("{origin}: cannot be read: {message}")]
    Read { origin: String, message: String },
    /// A document is not valid YAML or JSON (the rest of the file is not read).
    #[error("{origin}, document {document}: not valid YAML or JSON: {message}")]
    Syntax { origin: String, document: usize, message: String },
    /// A document is not an object, or has no kind.
    #[error("{at}: {message}")]
    NotAnObject { at: Location, message: String },
    /// A kind other than NotificationIntegration, NotificationContact, Secret (and List).
    #[error(
        "{at}: kind {kind:?} (apiVersion {api_version:?}) is not supported: only NotificationIntegration, NotificationContact and Secret (or a List of them)"
    )]
    UnsupportedKind { at: Location, api_version: String, kind: String },
    /// The apiVersion is not the one the kind is served at.
    #[error("{at}: {kind}: apiVersion {found:?} does not match the expected {expected:?}")]
    ApiVersion { at: Location, kind: String, found: String, expected: String },
    /// A field is invalid (one error per cause, the field in `cause.field`).
    #[error("{at}: {kind} {name:?}: {cause}")]
    Invalid { at: Location, kind: String, name: String, cause: Cause },
    /// One of kube-notify's own CRDs does not compile (a bug, caught by tests).
    #[error("kube-notify's CRD does not compile: {message}")]
    Crd { message: String },
    /// Two objects with the same kind, namespace and name.
    #[error("{kind} {namespace}/{name} is defined twice: at {first} and at {second}")]
    Duplicate { kind: String, namespace: String, name: String, first: Location, second: Location },
}

const SECRET_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"];

/// Reads a file, or every `*.yaml`, `*.yml` and `*.json` file directly in a
/// folder (not recursive; sorted by name), and admits its objects as the
/// API server would: only the three kinds (in `kind: List` too), the
/// apiVersion they are served at, `metadata.name` a DNS subdomain,
/// `metadata.namespace` defaulting to `default_namespace`, no object twice
/// (same kind, namespace and name), Secrets normalized (`stringData` merged
/// into `data`, `type` defaulting to `Opaque`, `data` valid base64), custom
/// resources through their CRD's [`Admission`] (unknown fields refused,
/// defaults, schema, CEL; `status` dropped). Every error is returned.
pub fn load(path: &Path, default_namespace: &str) -> Result<Manifests, Vec<ManifestError>> {
    let mut loader = Loader::new(default_namespace)?;
    let read_error =
        |p: &Path, e: std::io::Error| ManifestError::Read { origin: p.display().to_string(), message: e.to_string() };
    let files = files(path).map_err(|e| vec![read_error(path, e)])?;
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => loader.parse(&text, &file.display().to_string()),
            Err(e) => loader.errors.push(read_error(&file, e)),
        }
    }
    loader.finish()
}

/// The manifest files at `path`: the file itself, or every `*.yaml`,
/// `*.yml` and `*.json` file directly in the folder, sorted by name.
pub fn files(path: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        let manifest = p.extension().and_then(|e| e.to_str()).is_some_and(|e| ["yaml", "yml", "json"].contains(&e));
        if manifest && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Admits the objects of one file's text, as [`load`] does; `origin` names
/// the file in errors.
pub fn parse(text: &str, origin: &str, default_namespace: &str) -> Result<Manifests, Vec<ManifestError>> {
    let mut loader = Loader::new(default_namespace)?;
    loader.parse(text, origin);
    loader.finish()
}

/// The documents of a text: a JSON stream when it starts with `{` or `[`,
/// else YAML documents (empty ones skipped). Stops at the first syntax error.
fn documents(text: &str, origin: &str) -> (Vec<(usize, Value)>, Option<ManifestError>) {
    let mut out = Vec::new();
    let syntax = |document, message: String| ManifestError::Syntax { origin: origin.to_string(), document, message };
    if text.trim_start().starts_with(['{', '[']) {
        for (i, doc) in serde_json::Deserializer::from_str(text).into_iter::<Value>().enumerate() {
            match doc {
                Ok(v) => out.push((i + 1, v)),
                Err(e) => return (out, Some(syntax(i + 1, e.to_string()))),
            }
        }
        return (out, None);
    }
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let parsed = serde_yaml::Value::deserialize(doc)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()));
        match parsed {
            Ok(Value::Null) => {}
            Ok(v) => out.push((i + 1, v)),
            Err(e) => return (out, Some(syntax(i + 1, e))),
        }
    }
    (out, None)
}

/// The kinds read from manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Integration,
    Contact,
    Secret,
}

struct Loader {
    default_namespace: String,
    integrations: Admission,
    contacts: Admission,
    seen: HashMap<(Kind, String, String), Location>,
    manifests: Manifests,
    errors: Vec<ManifestError>,
}

impl Loader {
    fn new(default_namespace: &str) -> Result<Self, Vec<ManifestError>> {
        let admission = |crd| Admission::new(&crd).map_err(|message| vec![ManifestError::Crd { message }]);
        Ok(Loader {
            default_namespace: default_namespace.to_string(),
            integrations: admission(NotificationIntegration::crd())?,
            contacts: admission(NotificationContact::crd())?,
            seen: HashMap::new(),
            manifests: Manifests::default(),
            errors: Vec::new(),
        })
    }

    fn finish(self) -> Result<Manifests, Vec<ManifestError>> {
        if self.errors.is_empty() { Ok(self.manifests) } else { Err(self.errors) }
    }

    fn parse(&mut self, text: &str, origin: &str) {
        let (docs, syntax_error) = documents(text, origin);
        for (document, doc) in docs {
            let at = Location { origin: origin.to_string(), document, item: None };
            let is_list = doc.get("kind").and_then(Value::as_str).is_some_and(|k| k == "List" || k.ends_with("List"));
            match doc.get("items").filter(|_| is_list) {
                None => self.object(doc, at),
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        self.object(item.clone(), Location { item: Some(i), ..at.clone() });
                    }
                }
                Some(Value::Null) => {}
                Some(_) => self.errors.push(ManifestError::NotAnObject { at, message: "items: must be a list".into() }),
            }
        }
        self.errors.extend(syntax_error);
    }

    fn object(&mut self, mut object: Value, at: Location) {
        let Some(map) = object.as_object() else {
            let message = "must be an object (apiVersion, kind, metadata...)".to_string();
            return self.errors.push(ManifestError::NotAnObject { at, message });
        };
        let text = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (api_version, kind_name) = (text("apiVersion"), text("kind"));
        let (kind, expected) = match kind_name.as_str() {
            "NotificationIntegration" => (Kind::Integration, self.integrations.api_version().to_string()),
            "NotificationContact" => (Kind::Contact, self.contacts.api_version().to_string()),
            "Secret" => (Kind::Secret, "v1".to_string()),
            "" => return self.errors.push(ManifestError::NotAnObject { at, message: "kind: Required value".into() }),
            _ => return self.errors.push(ManifestError::UnsupportedKind { at, api_version, kind: kind_name }),
        };
        if api_version != expected {
            return self.errors.push(ManifestError::ApiVersion { at, kind: kind_name, found: api_version, expected });
        }
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let invalid = |cause: Cause| ManifestError::Invalid {
            at: at.clone(),
            kind: kind_name.clone(),
            name: name.clone(),
            cause,
        };
        let mut causes = match object.get_mut("metadata") {
            None | Some(Value::Null) => {
                object["metadata"] = json!({});
                Vec::new()
            }
            Some(Value::Object(_)) => Vec::new(),
            Some(other) => vec![Cause::invalid_type_name("metadata", type_name(other), "must be an object")],
        };
        if causes.is_empty() {
            causes = self.default_namespace(&mut object);
        }
        if causes.is_empty() {
            causes = match kind {
                Kind::Integration => self.integrations.admit(&mut object, None).err().unwrap_or_default(),
                Kind::Contact => self.contacts.admit(&mut object, None).err().unwrap_or_default(),
                Kind::Secret => admit_secret(&mut object),
            };
        }
        if !causes.is_empty() {
            return self.errors.extend(causes.into_iter().map(invalid));
        }
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string();
        let decoded = match kind {
            Kind::Integration => serde_json::from_value(object).map(|o| self.manifests.integrations.push(o)),
            Kind::Contact => serde_json::from_value(object).map(|o| self.manifests.contacts.push(o)),
            Kind::Secret => serde_json::from_value(object).map(|o| self.manifests.secrets.push(o)),
        };
        if let Err(e) = decoded {
            return self.errors.push(invalid(Cause::new("", "FieldValueInvalid", format!("cannot be decoded: {e}"))));
        }
        match self.seen.get(&(kind, namespace.clone(), name.clone())) {
            Some(first) => self.errors.push(ManifestError::Duplicate {
                kind: kind_name,
                namespace,
                name,
                first: first.clone(),
                second: at,
            }),
            None => {
                self.seen.insert((kind, namespace, name), at);
            }
        }
    }

    /// Sets `metadata.namespace` when absent; checks it is a DNS label.
    fn default_namespace(&self, object: &mut Value) -> Vec<Cause> {
        let meta = &mut object["metadata"];
        match meta.get("namespace") {
            None | Some(Value::Null) => meta["namespace"] = json!(self.default_namespace),
            Some(Value::String(s)) if s.is_empty() => meta["namespace"] = json!(self.default_namespace),
            _ => {}
        }
        match &meta["namespace"] {
            Value::String(ns) if object_meta::is_dns_label(ns) => Vec::new(),
            Value::String(ns) => vec![Cause::invalid("metadata.namespace", &json!(ns), object_meta::LABEL_MSG)],
            other => vec![Cause::invalid_type_name("metadata.namespace", type_name(other), "must be a string")],
        }
    }
}

/// A Secret's admission: strict fields, string values that `data` holds as
/// base64, then [`secret::normalize`], metadata and [`secret::validate`].
/// Causes name keys, never values.
fn admit_secret(object: &mut Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(map) = object.as_object() {
        for key in map.keys().filter(|k| !SECRET_FIELDS.contains(&k.as_str())) {
            causes.push(Cause::new(key, UNKNOWN_FIELD, format!("unknown field {key:?}")));
        }
    }
    for field in ["data", "stringData"] {
        match object.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                for (key, value) in entries {
                    if !value.is_string() {
                        let detail = "must be a string";
                        causes.push(Cause::invalid_type_name(&format!("{field}[{key}]"), type_name(value), detail));
                    }
                }
            }
            Some(other) => causes.push(Cause::invalid_type_name(field, type_name(other), "must be a map of strings")),
        }
    }
    if !causes.is_empty() {
        return causes;
    }
    for key in secret::invalid_base64_keys(object) {
        causes.push(Cause::new(
            &format!("data[{key}]"),
            "FieldValueInvalid",
            "Invalid value: the value is not valid base64 (put plain text in stringData)".to_string(),
        ));
    }
    if !causes.is_empty() {
        return causes;
    }
    secret::normalize(object);
    causes.extend(object_meta::validate_object_meta(&object["metadata"], false));
    causes.extend(secret::validate(object, None));
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const SECRET_VALUE: &str = "s3cr3t-t0ken-value";

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
    }

    fn errors(text: &str) -> Vec<ManifestError> {
        parse(text, "test.yaml", "default").expect_err("must be refused")
    }

    fn one_error(text: &str) -> ManifestError {
        let mut errs = errors(text);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        errs.remove(0)
    }

    fn causes(text: &str) -> Vec<Cause> {
        errors(text)
            .into_iter()
            .map(|e| match e {
                ManifestError::Invalid { cause, .. } => cause,
                other => panic!("not a field error: {other}"),
            })
            .collect()
    }

    const INTEGRATION: &str = "apiVersion: kube-notify.io/v1alpha1
kind: NotificationIntegration
metadata:
  name: alerts
spec:
  service: slack
  secretRef:
    name: alerts
";

    /// A fresh, empty folder for one test.
    fn folder(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kube-notify-manifests-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Every example loads; the only refusals are the kinds that are not
    /// manifests of the standalone mode (events, the sidecar's Pod and RBAC).
    #[test]
    fn the_examples_load() {
        let dir = examples_dir();
        let mut integrations = 0;
        let standalone = std::fs::read_dir(dir.join("standalone")).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap().chain(standalone) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            integrations += text.matches("\nkind: NotificationIntegration").count();
            if let Err(errs) = load(&path, "default") {
                for e in errs {
                    match &e {
                        ManifestError::UnsupportedKind { kind, .. }
                            if ["NotificationEvent", "Pod", "ServiceAccount", "Role", "RoleBinding"]
                                .contains(&kind.as_str()) => {}
                        other => panic!("{}: {other}", path.display()),
                    }
                }
            }
        }
        let errs = load(&dir, "my-team").unwrap_err();
        assert!(errs.iter().all(|e| matches!(e, ManifestError::UnsupportedKind { .. })), "{errs:#?}");
        let mut ok = folder("examples");
        for file in [
            "chatwork.yaml",
            "contact.yaml",
            "msteams-workflows.yaml",
            "slack-bot.yaml",
            "slack-webhook.yaml",
            "webhook.yaml",
        ] {
            std::fs::copy(dir.join(file), ok.join(file)).unwrap();
        }
        std::fs::copy(dir.join("standalone/local-webhook.yaml"), ok.join("local-webhook.yaml")).unwrap();
        let m = load(&ok, "my-team").unwrap();
        assert_eq!(m.integrations.len(), integrations);
        assert_eq!(m.secrets.len(), integrations);
        assert_eq!(m.contacts.len(), 1);
        assert!(m.integrations.iter().all(|i| i.metadata.namespace.as_deref() == Some("my-team")));
        std::fs::remove_dir_all(&ok).unwrap();
        ok.pop();
    }

    #[test]
    fn multi_document_yaml_list_and_json() {
        let text = format!(
            "---\n# a comment only\n---\n{INTEGRATION}---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {{name: alerts, namespace: other}}\n  stringData: {{webhookUrl: https://example.com/hook}}\n- apiVersion: kube-notify.io/v1alpha1\n  kind: NotificationContact\n  metadata: {{name: jane}}\n  spec: {{email: jane@example.com}}\n"
        );
        let m = parse(&text, "multi.yaml", "team").unwrap();
        assert_eq!(m.integrations.len(), 1);
        assert_eq!(m.integrations[0].metadata.namespace.as_deref(), Some("team"));
        assert_eq!(m.secrets[0].metadata.namespace.as_deref(), Some("other"));
        assert_eq!(m.contacts[0].spec.email, "jane@example.com");

        let json = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}, "data": {"token": "dG9rZW4="}}
{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"}}]}"#;
        let m = parse(json, "secrets.json", "default").unwrap();
        assert_eq!(m.secrets.len(), 2);
        assert_eq!(m.secrets[0].data.as_ref().unwrap()["token"].0, b"token");
    }

    #[test]
    fn a_folder_is_read_by_name_and_not_recursively() {
        let dir = folder("order");
        std::fs::write(dir.join("b.yml"), INTEGRATION.replace("alerts", "second")).unwrap();
        std::fs::write(dir.join("a.yaml"), INTEGRATION).unwrap();
        std::fs::write(dir.join("c.json"), r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alerts"}}"#)
            .unwrap();
        std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
        std::fs::create_dir(dir.join("nested")).unwrap();
        std::fs::write(dir.join("nested/x.yaml"), "kind: Pod").unwrap();
        let m = load(&dir, "default").unwrap();
        let names: Vec<_> = m.integrations.iter().map(|i| i.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["alerts", "second"]);
        assert_eq!(m.secrets.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn duplicates_name_both_places() {
        let dir = folder("duplicates");
        std::fs::write(dir.join("a.yaml"), INTEGRATION).unwrap();
        std::fs::write(dir.join("b.yaml"), format!("{INTEGRATION}---\n{INTEGRATION}")).unwrap();
        // The same name in another namespace or of another kind is no duplicate.
        std::fs::write(
            dir.join("c.yaml"),
            format!(
                "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: alerts}}\n",
                INTEGRATION.replace("name: alerts\nspec", "name: alerts\n  namespace: other\nspec")
            ),
        )
        .unwrap();
        let errs = load(&dir, "default").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:#?}");
        let text = errs[1].to_string();
        assert!(text.contains("NotificationIntegration default/alerts is defined twice"), "{text}");
        assert!(text.contains("a.yaml, document 1") && text.contains("b.yaml, document 2"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kinds_api_versions_and_syntax() {
        let e = one_error("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
        assert!(matches!(&e, ManifestError::UnsupportedKind { kind, .. } if kind == "ConfigMap"), "{e}");
        assert!(e.to_string().starts_with("test.yaml, document 1: kind \"ConfigMap\""), "{e}");

        let e = one_error(&INTEGRATION.replace("v1alpha1", "v1"));
        assert!(
            e.to_string()
                .contains("apiVersion \"kube-notify.io/v1\" does not match the expected \"kube-notify.io/v1alpha1\""),
            "{e}"
        );
        let e = one_error("kind: Secret\nmetadata: {name: x}\n");
        assert!(matches!(e, ManifestError::ApiVersion { .. }), "{e}");

        let e = one_error("metadata: {name: x}\n");
        assert_eq!(e.to_string(), "test.yaml, document 1: kind: Required value");
        let e = one_error("- a\n- b\n");
        assert!(matches!(e, ManifestError::NotAnObject { .. }), "{e}");

        let e = one_error(&format!("{INTEGRATION}---\nkind: [unclosed\n"));
        assert!(matches!(e, ManifestError::Syntax { document: 2, .. }), "{e}");
        // Duplicate keys are refused, as kubectl's strict decoding does.
        let e = one_error("apiVersion: v1\nkind: Secret\nkind: Secret\n");
        assert!(matches!(e, ManifestError::Syntax { .. }), "{e}");

        let e = one_error("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n");
        assert!(e.to_string().starts_with("test.yaml, document 1, items[0]: kind \"Pod\""), "{e}");
    }

    #[test]
    fn names_and_namespaces() {
        let c = causes(&INTEGRATION.replace("name: alerts\nspec", "labels: {team: x}\nspec"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "metadata.name");
        assert_eq!(c[0].reason, "FieldValueRequired");

        let c = causes(&INTEGRATION.replace("name: alerts\nspec", "name: Alerts_1\nspec"));
        assert_eq!((c[0].field.as_str(), c[0].reason.as_str()), ("metadata.name", "FieldValueInvalid"));

        let c = causes(&INTEGRATION.replace("name: alerts\nspec", "name: alerts\n  namespace: a.b\nspec"));
        assert_eq!(c[0].field, "metadata.namespace");

        let errs = parse(INTEGRATION, "x.yaml", "Not_A_Namespace").unwrap_err();
        assert!(errs[0].to_string().contains("metadata.namespace: Invalid value: \"Not_A_Namespace\""), "{}", errs[0]);
    }

    #[test]
    fn custom_resources_go_through_their_crd() {
        // Schema: enum, unknown fields, a bound.
        let text = INTEGRATION.replace("service: slack", "service: irc\n  extra: 1\n  errorThreshold: 0");
        let mut fields: Vec<(String, String)> = causes(&text).into_iter().map(|c| (c.field, c.reason)).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                ("spec.errorThreshold".to_string(), "FieldValueInvalid".to_string()),
                ("spec.extra".to_string(), UNKNOWN_FIELD.to_string()),
                ("spec.service".to_string(), "FieldValueNotSupported".to_string()),
            ]
        );
        // Required.
        let c = causes(&INTEGRATION.replace("  secretRef:\n    name: alerts\n", ""));
        assert_eq!((c[0].field.as_str(), c[0].reason.as_str()), ("spec.secretRef", "FieldValueRequired"));
    }

    #[test]
    fn a_cel_rule_is_enforced() {
        let c = causes(&INTEGRATION.replace("service: slack", "service: chatwork"));
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].field, "spec.chatwork");
        assert!(c[0].message.contains("spec.chatwork.roomId is required when spec.service is chatwork"), "{}", c[0]);
        let e = errors(&INTEGRATION.replace("service: slack", "service: chatwork")).remove(0);
        assert!(
            e.to_string().starts_with("test.yaml, document 1: NotificationIntegration \"alerts\": spec.chatwork: "),
            "{e}"
        );
    }

    #[test]
    fn defaults_are_applied_and_status_dropped() {
        let text = format!("{INTEGRATION}status:\n  consecutiveErrors: 7\n");
        let m = parse(&text, "d.yaml", "default").unwrap();
        let i = &m.integrations[0];
        assert_eq!(i.spec.error_threshold, 5);
        assert!(!i.spec.disabled);
        assert!(i.status.is_none());
        // The defaults come from the schema, not only from serde.
        let admission = Admission::new(&NotificationIntegration::crd()).unwrap();
        let mut v: Value = serde_yaml::from_str(INTEGRATION).unwrap();
        admission.admit(&mut v, None).unwrap();
        assert_eq!(v["spec"]["errorThreshold"], 5);
        assert_eq!(v["spec"]["disabled"], false);
    }

    #[test]
    fn secrets_merge_string_data_and_default_their_type() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  token: b2xk\n  keep: a2VlcA==\nstringData:\n  token: new\n  url: https://example.com\n";
        let m = parse(text, "s.yaml", "default").unwrap();
        let s = &m.secrets[0];
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert!(s.string_data.is_none());
        let data = s.data.as_ref().unwrap();
        assert_eq!(data["token"].0, b"new");
        assert_eq!(data["keep"].0, b"keep");
        assert_eq!(data["url"].0, b"https://example.com");
        let typed = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\n";
        let fields: Vec<String> = causes(typed).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["data[tls.crt]", "data[tls.key]"]);
    }

    #[test]
    fn no_secret_value_in_any_error() {
        let b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(SECRET_VALUE)
        };
        let docs = [
            // Not base64.
            format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s1}}\ndata:\n  token: \"{SECRET_VALUE}!\"\n"),
            // Not a string.
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: s2}}\nstringData:\n  token: {{nested: {SECRET_VALUE}}}\n"
            ),
            // An unknown field (refused before anything else, like a strict decoding error).
            format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s3}}\nextra: {SECRET_VALUE}\n"),
            // A bad key and a bad name.
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: S_3}}\nstringData:\n  'bad key': {SECRET_VALUE}\ndata:\n  ok: {b64}\n"
            ),
            // A key its type requires missing.
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: s4}}\ntype: kubernetes.io/basic-auth\nstringData:\n  token: {SECRET_VALUE}\n"
            ),
            // Too large.
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: s5}}\nstringData:\n  token: {SECRET_VALUE}{}\n",
                "x".repeat(1024 * 1024)
            ),
            // Twice.
            format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s6}}\nstringData:\n  token: {SECRET_VALUE}\n"),
            format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s6}}\nstringData:\n  token: {SECRET_VALUE}\n"),
        ];
        let errs = errors(&docs.join("---\n"));
        assert!(errs.len() >= 8, "{errs:#?}");
        let fields: Vec<String> = errs
            .iter()
            .filter_map(|e| match e {
                ManifestError::Invalid { cause, .. } => Some(cause.field.clone()),
                _ => None,
            })
            .collect();
        for f in
            ["data[token]", "stringData[token]", "data[bad key]", "metadata.name", "extra", "data[username]", "data"]
        {
            assert!(fields.contains(&f.to_string()), "{f} missing from {fields:?}");
        }
        assert!(matches!(errs.last(), Some(ManifestError::Duplicate { .. })));
        for e in &errs {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(SECRET_VALUE) && !text.contains(&b64), "{text}");
        }
    }

    #[test]
    fn every_error_is_returned() {
        let text = format!(
            "{}---\napiVersion: v1\nkind: Pod\n---\n{}",
            INTEGRATION.replace("service: slack", "service: irc"),
            INTEGRATION.replace("v1alpha1", "v2")
        );
        assert_eq!(errors(&text).len(), 3);
    }

    #[test]
    fn an_unreadable_path_is_an_error() {
        let e = load(Path::new("/nonexistent/kube-notify.yaml"), "default").unwrap_err();
        assert!(matches!(&e[0], ManifestError::Read { origin, .. } if origin.contains("/nonexistent/")), "{e:?}");
    }
}
