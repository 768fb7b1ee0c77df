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
        let schema = Schema::parse_root(&raw)
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
        causes.extend(self.schema.validate(object, old));
        if causes.is_empty() { Ok(()) } else { Err(causes) }
    }
}

/// The reason of a cause for a field the schema does not know (the API
/// server answers these as a strict decoding error, not a field error).
pub const UNKNOWN_FIELD: &str = "FieldValueUnknown";
