//! Admission of objects as a Kubernetes API server does it: the structural
//! schema of a CRD (pruning, defaults, OpenAPI validation), its
//! `x-kubernetes-validations` CEL rules, `metadata` checks and Secrets'
//! normalization. The standalone mode admits manifests with it; the API
//! emulation of the tests uses the same code.

mod cause;
mod cel_rules;
pub mod object_meta;
mod schema;
pub mod secret;

pub use cause::{Cause, value_repr};
pub use cel_rules::SUPPORTED_FUNCTIONS;
pub use schema::{Schema, type_name};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// The admission of one custom resource kind, compiled from its CRD (the
/// served storage version's schema, else the first served version's).
#[derive(Debug, Clone)]
pub struct Admission {
    api_version: String,
    kind: String,
    status_subresource: bool,
    schema: Schema,
}

impl Admission {
    /// Compiles the CRD's schema and CEL rules; `Err` names what is wrong.
    pub fn new(crd: &CustomResourceDefinition) -> Result<Self, String> {
        let versions = &crd.spec.versions;
        let version = versions
            .iter()
            .find(|v| v.served && v.storage)
            .or_else(|| versions.iter().find(|v| v.served))
            .ok_or_else(|| format!("{}: spec.versions: no version is served", crd.spec.names.kind))?;
        let raw = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).ok_or_else(|| {
            format!("{}: spec.versions[{}].schema.openAPIV3Schema: Required value", crd.spec.names.kind, version.name)
        })?;
        let raw = serde_json::to_value(raw).map_err(|e| format!("{}: {e}", crd.spec.names.kind))?;
        let schema = compile_schema(&raw)
            .map_err(|e| format!("{}: spec.versions[{}].schema.{e}", crd.spec.names.kind, version.name))?;
        Ok(Admission {
            api_version: format!("{}/{}", crd.spec.group, version.name),
            kind: crd.spec.names.kind.clone(),
            status_subresource: version.subresources.as_ref().is_some_and(|s| s.status.is_some()),
            schema,
        })
    }

    /// `group/version` of the admitted objects.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The kind of the admitted objects.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Admits `object` as a create (`old` `None`) or an update of `old`
    /// through the main resource: `status` is dropped when the CRD has the
    /// status subresource, unknown fields are causes (kubectl's default
    /// strict field validation) and are pruned, defaults are applied, then
    /// `metadata`, the schema and (when the schema passes) the CEL rules are
    /// checked. `Err` lists every cause with its field path.
    pub fn admit(&self, object: &mut Value, old: Option<&Value>) -> Result<(), Vec<Cause>> {
        let Some(map) = object.as_object_mut() else {
            return Err(vec![Cause::invalid_type_name("", schema::type_name(object), "must be an object")]);
        };
        if self.status_subresource {
            map.remove("status");
        }
        let mut causes: Vec<Cause> = self
            .schema
            .prune(object)
            .into_iter()
            .map(|field| Cause::new(&field, UNKNOWN_FIELD, format!("unknown field {field:?}")))
            .collect();
        self.schema.apply_defaults(object);
        causes.extend(object_meta::validate_object_meta(object.get("metadata").unwrap_or(&Value::Null), false));
        causes.extend(validate(&self.schema, object, old));
        if causes.is_empty() { Ok(()) } else { Err(causes) }
    }
}

/// Compiles a CRD version's `openAPIV3Schema` as the API server does when
/// the CRD is written: the structural schema is parsed and checked, then its
/// CEL rules are type-checked against it (defaults must pass them too).
/// `Err` names the field at fault, from `openAPIV3Schema`.
pub fn compile_schema(raw: &Value) -> Result<Schema, String> {
    let schema = Schema::parse_root(raw)?;
    cel_rules::check(&schema)?;
    Ok(schema)
}

/// Validates an object with a schema from [`compile_schema`]: the OpenAPI
/// value checks, then (when they all pass, as on a real server) the CEL
/// rules; `old` is the stored object for transition rules (`oldSelf`).
/// Every cause, with its field path.
pub fn validate(schema: &Schema, object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let causes = schema.validate_values(object);
    if !causes.is_empty() {
        return causes;
    }
    cel_rules::validate(schema, object, old)
}

/// The reason of a cause for a field the schema does not know (the API
/// server answers these as a strict decoding error, not a field error).
pub const UNKNOWN_FIELD: &str = "FieldValueUnknown";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(spec_schema: Value) -> CustomResourceDefinition {
        serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "Widget", "plural": "widgets"},
                "scope": "Namespaced",
                "versions": [
                    {"name": "v1beta1", "served": false, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": spec_schema,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}
                ]
            }
        }))
        .unwrap()
    }

    fn widget(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})
    }

    #[test]
    fn every_crd_of_the_project_compiles() {
        for (file, crd) in crate::crd::all() {
            let a = Admission::new(&crd).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(a.api_version(), "kube-notify.io/v1alpha1");
            assert_eq!(a.kind(), crd.spec.names.kind);
        }
    }

    #[test]
    fn admit_prunes_defaults_and_validates() {
        let a = Admission::new(&crd(json!({"type": "object", "properties": {
            "size": {"type": "integer", "default": 3, "minimum": 1},
            "name": {"type": "string", "maxLength": 3}}})))
        .unwrap();
        assert_eq!(a.api_version(), "example.com/v1");
        let mut ok = widget(json!({}));
        ok["status"] = json!({"x": 1});
        a.admit(&mut ok, None).unwrap();
        assert_eq!(ok["spec"], json!({"size": 3}));
        assert!(ok.get("status").is_none(), "status is not written through the main resource");

        let mut bad = widget(json!({"size": 0, "name": "long", "other": true}));
        bad["metadata"]["name"] = json!("Not_A_Name");
        let mut causes: Vec<(String, String)> =
            a.admit(&mut bad, None).unwrap_err().into_iter().map(|c| (c.field, c.reason)).collect();
        causes.sort();
        let want = [
            ("metadata.name", "FieldValueInvalid"),
            ("spec.name", "FieldValueTooLong"),
            ("spec.other", UNKNOWN_FIELD),
            ("spec.size", "FieldValueInvalid"),
        ];
        assert_eq!(causes, want.map(|(f, r)| (f.to_string(), r.to_string())));
        assert!(bad["spec"].get("other").is_none(), "unknown fields are pruned");
    }

    #[test]
    fn cel_rules_run_after_the_schema_and_see_the_old_object() {
        let a = Admission::new(&crd(json!({"type": "object", "properties": {
            "mode": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable"}]},
            "max": {"type": "integer"}, "min": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max", "fieldPath": ".min"}]})))
        .unwrap();
        let old = widget(json!({"mode": "a", "min": 1, "max": 2}));
        a.admit(&mut old.clone(), None).unwrap();
        a.admit(&mut old.clone(), Some(&old)).unwrap();
        let causes = a.admit(&mut widget(json!({"mode": "b", "min": 3, "max": 2})), Some(&old)).unwrap_err();
        let shown: Vec<String> = causes.iter().map(Cause::to_string).collect();
        assert_eq!(
            shown,
            [
                "spec.min: Invalid value: \"object\": min must not exceed max",
                "spec.mode: Invalid value: \"string\": is immutable"
            ]
        );
        // A schema error: the rules are not evaluated.
        let causes = a.admit(&mut widget(json!({"mode": 1, "min": 3, "max": 2})), None).unwrap_err();
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.mode");
    }

    #[test]
    fn a_bad_schema_or_rule_is_refused_when_compiled() {
        let e =
            Admission::new(&crd(json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.nope == 1"}]})))
                .unwrap_err();
        assert!(
            e.contains("Widget: spec.versions[v1].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]"),
            "{e}"
        );
        assert!(e.contains("undefined field 'nope'"), "{e}");
        let e = Admission::new(&crd(json!({"properties": {"a": {"type": "string"}}}))).unwrap_err();
        assert!(e.contains("type: Required value"), "{e}");
    }

    #[test]
    fn defaults_must_pass_the_rules_and_old_self_needs_correlation() {
        let size = |default: i64| {
            json!({"type": "object", "properties": {"size": {"type": "integer", "default": default, "minimum": 0,
                "x-kubernetes-validations": [{"rule": "self < 10", "message": "too big"}]}}})
        };
        Admission::new(&crd(size(3))).unwrap();
        let e = Admission::new(&crd(size(-1))).unwrap_err();
        assert!(e.contains("properties[size].default: Invalid value: -1: "), "{e}");
        assert!(e.contains("greater than or equal to 0"), "{e}");
        let e = Admission::new(&crd(size(12))).unwrap_err();
        assert!(e.contains("properties[size].default: Invalid value: 12: Invalid value: \"integer\": too big"), "{e}");

        let list = |list_type: &str| {
            json!({"type": "object", "properties": {"items": {"type": "array", "x-kubernetes-list-type": list_type,
                "x-kubernetes-list-map-keys": if list_type == "map" { json!(["k"]) } else { Value::Null },
                "items": {"type": "object", "required": ["k"], "x-kubernetes-map-type": "atomic",
                    "properties": {"k": {"type": "string"}, "v": {"type": "string"}},
                    "x-kubernetes-validations": [{"rule": "self.v == oldSelf.v", "message": "v is immutable"}]}}}})
        };
        let a = Admission::new(&crd(list("map"))).unwrap();
        let old = widget(json!({"items": [{"k": "a", "v": "1"}]}));
        a.admit(&mut old.clone(), None).unwrap();
        let causes = a.admit(&mut widget(json!({"items": [{"k": "a", "v": "2"}]})), Some(&old)).unwrap_err();
        assert_eq!(
            causes.iter().map(Cause::to_string).collect::<Vec<_>>(),
            ["spec.items[0]: Invalid value: \"object\": v is immutable"]
        );
        let e = Admission::new(&crd(list("set"))).unwrap_err();
        assert!(e.contains("properties[items].items.x-kubernetes-validations[0]: rule: Invalid value"), "{e}");
        assert!(e.contains("uncorrelatable"), "{e}");
    }
}
