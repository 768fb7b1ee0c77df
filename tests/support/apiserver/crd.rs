//! CustomResourceDefinition checks and registration.

use super::meta::is_dns_label;
use super::store::{Behavior, ResourceType};
use kube_notify::admission::{self, Schema};
use serde_json::Value;
use std::sync::Arc;

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// Splits a printer-column / selectable-field JSONPath into schema steps.
fn json_path_steps(path: &str) -> Result<Vec<String>, String> {
    let p = path.trim();
    let p = p.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(p);
    if !p.starts_with('.') {
        return Err(format!("{path:?}: must be a simple json path starting with ."));
    }
    let mut steps = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return Err(format!("{path:?}: empty path segment"));
            }
            steps.push(name.to_string());
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| format!("{path:?}: unterminated ["))?;
            let inner = &r[..end];
            if let Some(key) = inner.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
                steps.push(key.to_string());
            } else {
                // index, wildcard or filter: step into the items.
                steps.push("[]".to_string());
            }
            rest = &r[end + 1..];
        } else {
            return Err(format!("{path:?}: cannot parse near {rest:?}"));
        }
    }
    Ok(steps)
}

fn resolve_column(schema: &Schema, steps: &[String]) -> Result<(), String> {
    // Implicit root fields.
    if let Some(first) = steps.first()
        && (first == "metadata" || first == "apiVersion" || first == "kind")
    {
        return Ok(());
    }
    schema.resolve(steps).map(|_| ())
}

/// Checks a CRD (as JSON) and returns the resource types it serves.
pub(crate) fn parse_crd(crd: &Value) -> Result<Vec<Arc<ResourceType>>, String> {
    let name = s(crd, "/metadata/name");
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let kind = s(crd, "/spec/names/kind");
    if group.is_empty() || !group.contains('.') {
        return Err(format!("spec.group: Invalid value: {group:?}: should be a domain with at least one dot"));
    }
    if plural.is_empty() || !is_dns_label(plural) {
        return Err(format!("spec.names.plural: Invalid value: {plural:?}: must be a lowercase DNS-1035 label"));
    }
    if name != format!("{plural}.{group}") {
        return Err(format!("metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"));
    }
    if kind.is_empty() {
        return Err("spec.names.kind: Required value".into());
    }
    let singular = match s(crd, "/spec/names/singular") {
        "" => kind.to_ascii_lowercase(),
        x => x.to_string(),
    };
    let list_kind = match s(crd, "/spec/names/listKind") {
        "" => format!("{kind}List"),
        x => x.to_string(),
    };
    if list_kind == kind {
        return Err("spec.names.listKind: Invalid value: must not be the same as kind".into());
    }
    let namespaced = match s(crd, "/spec/scope") {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return Err(format!(
                "spec.scope: Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
            ));
        }
    };
    let strategy = s(crd, "/spec/conversion/strategy");
    if !strategy.is_empty() && strategy != "None" {
        return Err(format!(
            "spec.conversion.strategy: Unsupported value: {strategy:?}: the emulated API server only supports None"
        ));
    }
    if crd.pointer("/spec/preserveUnknownFields").and_then(Value::as_bool) == Some(true) {
        return Err(
            "spec.preserveUnknownFields: Invalid value: true: must be false in order to use defaults in the schema"
                .into(),
        );
    }
    let short_names: Vec<String> = crd
        .pointer("/spec/names/shortNames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let categories: Vec<String> = crd
        .pointer("/spec/names/categories")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or("spec.versions: Invalid value: must have exactly one version marked as storage version")?;
    let storage_count = versions.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count();
    if storage_count != 1 {
        return Err(format!(
            "spec.versions: Invalid value: must have exactly one version marked as storage version (found {storage_count})"
        ));
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = s(v, "/name");
        if vname.is_empty() || !is_dns_label(vname) {
            return Err(format!("spec.versions[{i}].name: Invalid value: {vname:?}"));
        }
        if seen.contains(&vname) {
            return Err(format!("spec.versions[{i}].name: Duplicate value: {vname:?}"));
        }
        seen.push(vname);
        let schema_json = v.pointer("/schema/openAPIV3Schema").ok_or_else(|| {
            format!("spec.versions[{i}].schema.openAPIV3Schema: Required value: schemas are required")
        })?;
        let schema = admission::compile_schema(schema_json).map_err(|e| format!("spec.versions[{i}].schema.{e}"))?;
        if let Some(sub) = v.get("subresources").filter(|x| !x.is_null())
            && sub.get("scale").is_some_and(|x| !x.is_null())
        {
            return Err(format!(
                "spec.versions[{i}].subresources.scale: the emulated API server does not implement the scale subresource"
            ));
        }
        let status = v.pointer("/subresources/status").is_some_and(|x| !x.is_null());
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            for (j, c) in cols.iter().enumerate() {
                let cname = s(c, "/name");
                if cname.is_empty() {
                    return Err(format!("spec.versions[{i}].additionalPrinterColumns[{j}].name: Required value"));
                }
                let ty = s(c, "/type");
                if !["integer", "number", "string", "boolean", "date"].contains(&ty) {
                    return Err(format!(
                        "spec.versions[{i}].additionalPrinterColumns[{j}].type: Unsupported value: {ty:?}: supported values: \"boolean\", \"date\", \"integer\", \"number\", \"string\""
                    ));
                }
                let fmt = s(c, "/format");
                if !fmt.is_empty()
                    && !["int32", "int64", "float", "double", "byte", "date", "date-time", "password"].contains(&fmt)
                {
                    return Err(format!(
                        "spec.versions[{i}].additionalPrinterColumns[{j}].format: Unsupported value: {fmt:?}"
                    ));
                }
                let jp = s(c, "/jsonPath");
                let steps = json_path_steps(jp).map_err(|e| {
                    format!("spec.versions[{i}].additionalPrinterColumns[{j}].jsonPath: Invalid value: {e}")
                })?;
                resolve_column(&schema, &steps).map_err(|e| {
                    format!("spec.versions[{i}].additionalPrinterColumns[{j}].jsonPath: Invalid value: {jp:?}: {e}")
                })?;
            }
        }
        let mut field_labels = Vec::new();
        if let Some(sf) = v.get("selectableFields").and_then(Value::as_array) {
            for (j, f) in sf.iter().enumerate() {
                let jp = s(f, "/jsonPath");
                let steps = json_path_steps(jp)
                    .map_err(|e| format!("spec.versions[{i}].selectableFields[{j}].jsonPath: Invalid value: {e}"))?;
                if steps.iter().any(|x| x == "[]") || steps.first().is_some_and(|x| x == "metadata") {
                    return Err(format!(
                        "spec.versions[{i}].selectableFields[{j}].jsonPath: Invalid value: {jp:?}: must not point into lists or metadata"
                    ));
                }
                match schema.resolve(&steps) {
                    Ok(Some(node)) if matches!(node.type_(), Some("string" | "integer" | "boolean")) => {}
                    _ => {
                        return Err(format!(
                            "spec.versions[{i}].selectableFields[{j}].jsonPath: Invalid value: {jp:?}: must point to a field of type string, boolean or integer"
                        ));
                    }
                }
                field_labels.push(steps.join("."));
            }
        }
        let served = v.get("served").and_then(Value::as_bool).unwrap_or(false);
        if !served {
            continue;
        }
        out.push(Arc::new(ResourceType {
            group: group.to_string(),
            version: vname.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            kind: kind.to_string(),
            list_kind: list_kind.clone(),
            namespaced,
            status_subresource: status,
            short_names: short_names.clone(),
            categories: categories.clone(),
            behavior: Behavior::Custom,
            storage_key: format!("{group}/{plural}"),
            schema: Some(Arc::new(schema)),
            field_labels,
            storage_version: v.get("storage").and_then(Value::as_bool) == Some(true),
            crd_name: Some(name.to_string()),
        }));
    }
    Ok(out)
}
