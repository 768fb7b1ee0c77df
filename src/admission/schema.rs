//! Structural OpenAPI v3 schemas of CRDs: the structural checks done when a
//! CRD is created, pruning, defaulting, and validation of objects.

use super::Cause;
use regex::Regex;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// One node of a structural schema (`openAPIV3Schema` of a CRD version),
/// parsed and structurally checked (patterns compiled). Its CEL rules are
/// read here; type-checking and evaluating them is `cel_rules`' pass.
#[derive(Debug, Default, Clone)]
pub struct Schema {
    pub(super) ty: Option<String>,
    pub(super) properties: BTreeMap<String, Schema>,
    pub(super) additional: Option<Box<Schema>>,
    pub(super) additional_any: bool,
    pub(super) items: Option<Box<Schema>>,
    pub(super) required: Vec<String>,
    pub(super) enum_: Option<Vec<Value>>,
    pub(super) minimum: Option<f64>,
    pub(super) maximum: Option<f64>,
    pub(super) exclusive_minimum: bool,
    pub(super) exclusive_maximum: bool,
    pub(super) multiple_of: Option<f64>,
    pub(super) min_length: Option<u64>,
    pub(super) max_length: Option<u64>,
    pub(super) min_items: Option<u64>,
    pub(super) max_items: Option<u64>,
    pub(super) min_properties: Option<u64>,
    pub(super) max_properties: Option<u64>,
    pub(super) pattern: Option<(String, Regex)>,
    pub(super) format: Option<String>,
    pub(super) nullable: bool,
    pub(super) default: Option<Value>,
    pub(super) int_or_string: bool,
    pub(super) preserve_unknown: bool,
    pub(super) embedded: bool,
    pub(super) list_type: Option<String>,
    pub(super) list_map_keys: Vec<String>,
    pub(super) map_type: Option<String>,
    pub(super) all_of: Vec<Schema>,
    pub(super) any_of: Vec<Schema>,
    pub(super) one_of: Vec<Schema>,
    pub(super) not: Option<Box<Schema>>,
    pub(super) rules: Vec<CelRule>,
}

/// One `x-kubernetes-validations` entry of a schema node, as written (its
/// fields checked; its expressions are type-checked by `cel_rules`).
#[derive(Debug, Clone)]
pub(super) struct CelRule {
    pub rule: String,
    pub message: Option<String>,
    pub message_expression: Option<String>,
    pub reason: Option<String>,
    pub field_path: Option<String>,
    pub optional_old_self: bool,
}

impl CelRule {
    /// Reads one entry for `node`; `Err` names the field that is wrong.
    fn parse(raw: &Value, node: &Schema) -> Result<CelRule, String> {
        let rule = raw
            .get("rule")
            .and_then(Value::as_str)
            .filter(|r| !r.trim().is_empty())
            .ok_or("rule: Required value")?
            .to_string();
        let message = raw.get("message").and_then(Value::as_str).map(str::to_string);
        if let Some(m) = &message
            && (m.contains('\n') || m.trim().is_empty())
        {
            return Err(format!(
                "message: Invalid value: {m:?}: message must be non-empty and must not contain line breaks"
            ));
        }
        let message_expression = raw.get("messageExpression").and_then(Value::as_str).map(str::to_string);
        let reason = raw.get("reason").and_then(Value::as_str).map(str::to_string);
        if let Some(r) = &reason
            && !["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"]
                .contains(&r.as_str())
        {
            return Err(format!(
                "reason: Unsupported value: {r:?}: supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""
            ));
        }
        let field_path = raw.get("fieldPath").and_then(Value::as_str).map(str::to_string);
        if let Some(fp) = &field_path {
            let segs: Vec<String> = fp.trim_start_matches('.').split('.').map(str::to_string).collect();
            if !fp.starts_with('.') || segs.iter().any(String::is_empty) {
                return Err(format!("fieldPath: Invalid value: {fp:?}: must be a valid path"));
            }
            node.resolve(&segs).map_err(|e| format!("fieldPath: Invalid value: {fp:?}: {e}"))?;
        }
        let optional_old_self = raw.get("optionalOldSelf").and_then(Value::as_bool).unwrap_or(false);
        if optional_old_self {
            return Err(
                "optionalOldSelf: Forbidden: optional oldSelf is not supported by kube-notify's admission".into()
            );
        }
        Ok(CelRule { rule, message, message_expression, reason, field_path, optional_old_self })
    }
}

#[derive(Clone, Copy)]
struct ParseCtx {
    /// Inside allOf/anyOf/oneOf/not: only value validations are allowed.
    value_validation: bool,
    root: bool,
}

const FORBIDDEN_KEYS: &[&str] =
    &["$ref", "$schema", "id", "definitions", "patternProperties", "dependencies", "additionalItems"];

fn num(v: &Value, key: &str, path: &str) -> Result<Option<f64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_f64().map(Some).ok_or_else(|| format!("{path}.{key}: must be a number")),
    }
}

fn uint(v: &Value, key: &str, path: &str) -> Result<Option<u64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_u64().map(Some).ok_or_else(|| format!("{path}.{key}: must be a non-negative integer")),
    }
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The JSON type of a value as the API server names it (`integer` for
/// whole numbers).
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The field path of `key` under `path` (`""` is the object itself).
pub(super) fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

impl Schema {
    /// Drops unknown fields (unless preserved) and nulls of non-nullable
    /// fields of an object (`apiVersion`, `kind` and `metadata` are left
    /// alone); returns the paths of the unknown fields dropped.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let mut dropped = Vec::new();
        self.prune_node(object, "", true, &mut dropped);
        dropped
    }

    /// The OpenAPI value checks of an object (not its CEL rules): every
    /// cause, with its field path.
    pub(super) fn validate_values(&self, object: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        self.check_values(object, "", &mut causes);
        causes
    }

    /// The schema of an object's property `key` (or of its additional
    /// properties).
    pub fn property(&self, key: &str) -> Option<&Schema> {
        self.properties.get(key).or(self.additional.as_deref())
    }

    /// The schema of an array's items.
    pub fn items(&self) -> Option<&Schema> {
        self.items.as_deref()
    }

    /// `type`, unless unset (int-or-string, preserved unknown fields).
    pub fn type_(&self) -> Option<&str> {
        self.ty.as_deref()
    }

    /// `x-kubernetes-list-type` (`atomic`, `set`, `map`).
    pub fn list_type(&self) -> Option<&str> {
        self.list_type.as_deref()
    }

    /// `x-kubernetes-list-map-keys`.
    pub fn list_map_keys(&self) -> &[String] {
        &self.list_map_keys
    }

    /// `x-kubernetes-map-type` (`atomic`, `granular`).
    pub fn map_type(&self) -> Option<&str> {
        self.map_type.as_deref()
    }

    /// Parses and structurally checks `openAPIV3Schema` (defaults must pass
    /// the value checks); its CEL rules are read, not type-checked.
    pub(super) fn parse_root(v: &Value) -> Result<Schema, String> {
        let s = Schema::parse(v, "openAPIV3Schema", ParseCtx { value_validation: false, root: true })?;
        if s.ty.as_deref() != Some("object") {
            return Err("openAPIV3Schema.type: Required value: must be object at the root".into());
        }
        if let Some(meta) = s.properties.get("metadata") {
            let only_name = meta.properties.keys().all(|k| k == "name" || k == "generateName");
            if meta.ty.as_deref() != Some("object")
                || !only_name
                || meta.default.is_some()
                || meta.additional.is_some()
                || !meta.rules.is_empty()
            {
                return Err("openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified".into());
            }
        }
        s.check_defaults("openAPIV3Schema", true)?;
        Ok(s)
    }

    fn parse(v: &Value, path: &str, ctx: ParseCtx) -> Result<Schema, String> {
        let o = v.as_object().ok_or_else(|| format!("{path}: must be an object"))?;
        for k in FORBIDDEN_KEYS {
            if o.contains_key(*k) {
                return Err(format!("{path}.{k}: Forbidden: {k} is not supported"));
            }
        }
        if flag(v, "uniqueItems") {
            return Err(format!(
                "{path}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            ));
        }
        let mut s = Schema {
            ty: v.get("type").and_then(Value::as_str).map(str::to_string),
            nullable: flag(v, "nullable"),
            int_or_string: flag(v, "x-kubernetes-int-or-string"),
            embedded: flag(v, "x-kubernetes-embedded-resource"),
            default: v.get("default").cloned(),
            format: v.get("format").and_then(Value::as_str).map(str::to_string),
            minimum: num(v, "minimum", path)?,
            maximum: num(v, "maximum", path)?,
            exclusive_minimum: flag(v, "exclusiveMinimum"),
            exclusive_maximum: flag(v, "exclusiveMaximum"),
            multiple_of: num(v, "multipleOf", path)?,
            min_length: uint(v, "minLength", path)?,
            max_length: uint(v, "maxLength", path)?,
            min_items: uint(v, "minItems", path)?,
            max_items: uint(v, "maxItems", path)?,
            min_properties: uint(v, "minProperties", path)?,
            max_properties: uint(v, "maxProperties", path)?,
            list_type: v.get("x-kubernetes-list-type").and_then(Value::as_str).map(str::to_string),
            map_type: v.get("x-kubernetes-map-type").and_then(Value::as_str).map(str::to_string),
            ..Schema::default()
        };
        if let Some(t) = &s.ty
            && !["object", "array", "string", "integer", "number", "boolean"].contains(&t.as_str())
        {
            return Err(format!(
                "{path}.type: Unsupported value: {t:?}: supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""
            ));
        }
        match v.get("x-kubernetes-preserve-unknown-fields") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(true)) => s.preserve_unknown = true,
            Some(_) => {
                return Err(format!(
                    "{path}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
                ));
            }
        }
        if let Some(e) = v.get("enum") {
            s.enum_ = Some(e.as_array().ok_or_else(|| format!("{path}.enum: must be a list"))?.clone());
        }
        if let Some(p) = v.get("pattern").and_then(Value::as_str) {
            let re = Regex::new(p).map_err(|e| format!("{path}.pattern: Invalid value: {p:?}: {e}"))?;
            s.pattern = Some((p.to_string(), re));
        }
        if let Some(r) = v.get("required") {
            for x in r.as_array().ok_or_else(|| format!("{path}.required: must be a list"))? {
                s.required.push(x.as_str().ok_or_else(|| format!("{path}.required: must be strings"))?.to_string());
            }
        }
        if let Some(keys) = v.get("x-kubernetes-list-map-keys").and_then(Value::as_array) {
            s.list_map_keys = keys.iter().filter_map(Value::as_str).map(str::to_string).collect();
        }

        // Value validations (allOf/anyOf/oneOf/not) may not carry structure.
        if ctx.value_validation {
            for (k, what) in [
                ("type", "type"),
                ("default", "default"),
                ("nullable", "nullable"),
                ("description", "description"),
                ("title", "title"),
                ("additionalProperties", "additionalProperties"),
                ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-preserve-unknown-fields"),
                ("x-kubernetes-embedded-resource", "x-kubernetes-embedded-resource"),
                ("x-kubernetes-int-or-string", "x-kubernetes-int-or-string"),
                ("x-kubernetes-list-type", "x-kubernetes-list-type"),
                ("x-kubernetes-list-map-keys", "x-kubernetes-list-map-keys"),
                ("x-kubernetes-map-type", "x-kubernetes-map-type"),
                ("x-kubernetes-validations", "x-kubernetes-validations"),
            ] {
                let present = match o.get(k) {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(s)) => !s.is_empty(),
                    Some(Value::Array(a)) => !a.is_empty(),
                    Some(_) => true,
                };
                if present {
                    return Err(format!("{path}.{what}: Forbidden: must be empty to be structural"));
                }
            }
            if ctx.root && ctx.root_like_metadata(o) {
                return Err(format!(
                    "{path}.properties[metadata]: Forbidden: must not be specified in a nested context"
                ));
            }
        } else {
            // Structural node: a type is required unless int-or-string or
            // preserve-unknown-fields is set.
            if s.ty.is_none() && !s.int_or_string && !s.preserve_unknown {
                return Err(format!("{path}.type: Required value: must not be empty for specified object fields"));
            }
            if s.int_or_string && s.ty.is_some() {
                return Err(format!(
                    "{path}.type: Invalid value: {:?}: must be empty if x-kubernetes-int-or-string is true",
                    s.ty.as_deref().unwrap_or("")
                ));
            }
            if s.embedded && s.ty.as_deref() != Some("object") {
                return Err(format!(
                    "{path}.type: Invalid value: must be object if x-kubernetes-embedded-resource is true"
                ));
            }
        }

        let child_ctx = ParseCtx { root: false, ..ctx };
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, pv) in props {
                s.properties.insert(k.clone(), Schema::parse(pv, &format!("{path}.properties[{k}]"), child_ctx)?);
            }
        }
        match v.get("additionalProperties") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(false)) => {
                return Err(format!(
                    "{path}.additionalProperties: Forbidden: additionalProperties cannot be set to false"
                ));
            }
            Some(Value::Bool(true)) => s.additional_any = true,
            Some(ap) => {
                s.additional = Some(Box::new(Schema::parse(ap, &format!("{path}.additionalProperties"), child_ctx)?));
            }
        }
        if (s.additional.is_some() || s.additional_any) && !s.properties.is_empty() {
            return Err(format!(
                "{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
            ));
        }
        match v.get("items") {
            None | Some(Value::Null) => {
                if !ctx.value_validation && s.ty.as_deref() == Some("array") {
                    return Err(format!("{path}.items: Required value: must be specified"));
                }
            }
            Some(Value::Array(_)) => {
                return Err(format!("{path}.items: Forbidden: items must be a schema object and not an array"));
            }
            Some(it) => {
                s.items = Some(Box::new(Schema::parse(it, &format!("{path}.items"), child_ctx)?));
            }
        }
        let vv_ctx = ParseCtx { value_validation: true, ..ctx };
        let int_or_string_any_of = s.int_or_string
            && v.get("anyOf").and_then(Value::as_array).is_some_and(|a| {
                a.len() == 2 && a[0] == json!({"type": "integer"}) && a[1] == json!({"type": "string"})
            });
        for (key, dst) in [("allOf", 0), ("anyOf", 1), ("oneOf", 2)] {
            if let Some(list) = v.get(key).and_then(Value::as_array) {
                if key == "anyOf" && int_or_string_any_of {
                    continue;
                }
                let mut parsed = Vec::new();
                for (i, b) in list.iter().enumerate() {
                    let bs = Schema::parse(b, &format!("{path}.{key}[{i}]"), vv_ctx)?;
                    s.check_completeness(&bs, &format!("{path}.{key}[{i}]"))?;
                    parsed.push(bs);
                }
                match dst {
                    0 => s.all_of = parsed,
                    1 => s.any_of = parsed,
                    _ => s.one_of = parsed,
                }
            }
        }
        if let Some(n) = v.get("not").filter(|n| !n.is_null()) {
            let ns = Schema::parse(n, &format!("{path}.not"), vv_ctx)?;
            s.check_completeness(&ns, &format!("{path}.not"))?;
            s.not = Some(Box::new(ns));
        }

        // Extension sanity.
        if let Some(lt) = &s.list_type {
            if s.ty.as_deref() != Some("array") {
                return Err(format!(
                    "{path}.x-kubernetes-list-type: Invalid value: {lt:?}: must only be used if type == array"
                ));
            }
            match lt.as_str() {
                "atomic" => {}
                "set" => {
                    if let Some(it) = &s.items
                        && matches!(it.ty.as_deref(), Some("object") | Some("array"))
                        && it.map_type.as_deref() != Some("atomic")
                    {
                        return Err(format!(
                            "{path}.items.x-kubernetes-map-type: Invalid value: must be atomic as item of a list with x-kubernetes-list-type=set"
                        ));
                    }
                }
                "map" => {
                    if s.list_map_keys.is_empty() {
                        return Err(format!(
                            "{path}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
                        ));
                    }
                    let it = s.items.as_deref();
                    for k in &s.list_map_keys {
                        let ok = it.is_some_and(|it| {
                            it.ty.as_deref() == Some("object")
                                && it.properties.get(k).is_some_and(|p| it.required.contains(k) || p.default.is_some())
                        });
                        if !ok {
                            return Err(format!(
                                "{path}.items.properties[{k}]: Required value: all map keys must be required or have a default value"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "{path}.x-kubernetes-list-type: Unsupported value: {other:?}: supported values: \"atomic\", \"map\", \"set\""
                    ));
                }
            }
        } else if !s.list_map_keys.is_empty() {
            return Err(format!(
                "{path}.x-kubernetes-list-map-keys: Forbidden: must be empty if x-kubernetes-list-type is not map"
            ));
        }
        if let Some(mt) = &s.map_type {
            if s.ty.as_deref() != Some("object") {
                return Err(format!(
                    "{path}.x-kubernetes-map-type: Invalid value: {mt:?}: must only be used if type == object"
                ));
            }
            if mt != "granular" && mt != "atomic" {
                return Err(format!(
                    "{path}.x-kubernetes-map-type: Unsupported value: {mt:?}: supported values: \"atomic\", \"granular\""
                ));
            }
        }
        if s.preserve_unknown && s.ty.is_some() && s.ty.as_deref() != Some("object") {
            return Err(format!(
                "{path}.x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if type is not object"
            ));
        }

        // CEL rules are read against the finished node.
        if let Some(rules) = v.get("x-kubernetes-validations") {
            let rules = rules.as_array().ok_or_else(|| format!("{path}.x-kubernetes-validations: must be a list"))?;
            for (i, r) in rules.iter().enumerate() {
                let rule = CelRule::parse(r, &s).map_err(|e| format!("{path}.x-kubernetes-validations[{i}]: {e}"))?;
                s.rules.push(rule);
            }
        }
        Ok(s)
    }

    /// Every property a value validation names must exist in the structure.
    fn check_completeness(&self, branch: &Schema, path: &str) -> Result<(), String> {
        for (k, b) in &branch.properties {
            match self.properties.get(k) {
                Some(p) => p.check_completeness(b, &format!("{path}.properties[{k}]"))?,
                None if self.preserve_unknown || self.additional_any => {}
                None => match &self.additional {
                    Some(a) => a.check_completeness(b, &format!("{path}.properties[{k}]"))?,
                    None => {
                        return Err(format!(
                            "{path}.properties[{k}]: Required value: because it is not specified in the structural schema (properties[{k}] is missing)"
                        ));
                    }
                },
            }
        }
        if let (Some(bi), si) = (&branch.items, &self.items) {
            match si {
                Some(si) => si.check_completeness(bi, &format!("{path}.items"))?,
                None => {
                    return Err(format!(
                        "{path}.items: Required value: because it is not specified in the structural schema"
                    ));
                }
            }
        }
        for b in branch.all_of.iter().chain(&branch.any_of).chain(&branch.one_of) {
            self.check_completeness(b, path)?;
        }
        if let Some(n) = &branch.not {
            self.check_completeness(n, path)?;
        }
        Ok(())
    }

    /// Defaults must survive pruning unchanged and pass the value checks
    /// (`cel_rules` checks them against the rules).
    fn check_defaults(&self, path: &str, root: bool) -> Result<(), String> {
        if let Some(d) = &self.default {
            if root {
                return Err(format!("{path}.default: Forbidden: must not be set at the root"));
            }
            if d.is_null() && !self.nullable {
                return Err(format!("{path}.default: Invalid value: null: must not be null for non-nullable schema"));
            }
            let mut pruned = d.clone();
            let mut dropped = Vec::new();
            self.prune_node(&mut pruned, "", false, &mut dropped);
            if !dropped.is_empty() || pruned != *d {
                return Err(format!(
                    "{path}.default: Invalid value: {}: must not have unknown fields ({})",
                    d,
                    dropped.join(", ")
                ));
            }
            let mut defaulted = d.clone();
            self.apply_defaults(&mut defaulted);
            let causes = self.validate_values(&defaulted);
            if !causes.is_empty() {
                return Err(format!(
                    "{path}.default: Invalid value: {}: {}",
                    d,
                    causes.iter().map(|c| c.message.clone()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        for (k, p) in &self.properties {
            if root && k == "metadata" {
                continue;
            }
            p.check_defaults(&format!("{path}.properties[{k}]"), false)?;
        }
        if let Some(a) = &self.additional {
            a.check_defaults(&format!("{path}.additionalProperties"), false)?;
        }
        if let Some(i) = &self.items {
            i.check_defaults(&format!("{path}.items"), false)?;
        }
        Ok(())
    }

    /// Resolves a path of property names ("[]" steps into array items).
    /// `Ok(None)` means the path leads into schemaless (preserved) data.
    pub fn resolve(&self, segs: &[String]) -> Result<Option<&Schema>, String> {
        let Some((first, rest)) = segs.split_first() else {
            return Ok(Some(self));
        };
        if first == "[]" {
            return match &self.items {
                Some(i) => i.resolve(rest),
                None if self.preserve_unknown => Ok(None),
                None => Err("is not an array".into()),
            };
        }
        if let Some(p) = self.properties.get(first) {
            return p.resolve(rest);
        }
        if let Some(a) = &self.additional {
            return a.resolve(rest);
        }
        if self.preserve_unknown || self.additional_any {
            return Ok(None);
        }
        Err(format!("field {first:?} does not exist in the schema"))
    }

    /// [`Schema::prune`] at `path`; `root` for the object itself.
    fn prune_node(&self, v: &mut Value, path: &str, root: bool, pruned: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    let cp = child_path(path, &k);
                    if (root || self.embedded) && (k == "apiVersion" || k == "kind" || k == "metadata") {
                        continue;
                    }
                    if let Some(ps) = self.properties.get(&k) {
                        if map.get(&k).is_some_and(Value::is_null) && !ps.nullable {
                            map.remove(&k);
                            continue;
                        }
                        if let Some(child) = map.get_mut(&k) {
                            ps.prune_node(child, &cp, false, pruned);
                        }
                    } else if let Some(ap) = &self.additional {
                        if let Some(child) = map.get_mut(&k) {
                            ap.prune_node(child, &cp, false, pruned);
                        }
                    } else if self.additional_any || self.preserve_unknown {
                        // kept as is
                    } else {
                        map.remove(&k);
                        pruned.push(cp);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(it) = &self.items {
                    for (i, x) in items.iter_mut().enumerate() {
                        it.prune_node(x, &format!("{path}[{i}]"), false, pruned);
                    }
                }
            }
            _ => {}
        }
    }

    /// Sets the schema's defaults of fields that are absent, at every depth.
    pub fn apply_defaults(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, ps) in &self.properties {
                    if !map.contains_key(k)
                        && let Some(d) = &ps.default
                    {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = map.get_mut(k) {
                        ps.apply_defaults(child);
                    }
                }
                if let Some(ap) = &self.additional {
                    for child in map.values_mut() {
                        ap.apply_defaults(child);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(it) = &self.items {
                    for x in items {
                        it.apply_defaults(x);
                    }
                }
            }
            _ => {}
        }
    }

    fn type_ok(&self, v: &Value) -> bool {
        if self.int_or_string {
            return matches!(type_name(v), "integer" | "string");
        }
        match self.ty.as_deref() {
            None => true,
            Some("object") => v.is_object(),
            Some("array") => v.is_array(),
            Some("string") => v.is_string(),
            Some("integer") => type_name(v) == "integer",
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            Some(_) => false,
        }
    }

    /// OpenAPI value validation; `path` is the field path ("spec.x").
    fn check_values(&self, v: &Value, path: &str, causes: &mut Vec<Cause>) {
        let shown = if path.is_empty() { "<root>" } else { path };
        if v.is_null() {
            if self.nullable || (self.ty.is_none() && !self.int_or_string) {
                return;
            }
            let want = if self.int_or_string { "integer,string" } else { self.ty.as_deref().unwrap_or("") };
            causes.push(Cause::invalid_type_name(
                path,
                "null",
                &format!("{shown} in body must be of type {want}: \"null\""),
            ));
            return;
        }
        if !self.type_ok(v) {
            let want = if self.int_or_string { "integer,string" } else { self.ty.as_deref().unwrap_or("") };
            causes.push(Cause::invalid_type_name(
                path,
                type_name(v),
                &format!("{shown} in body must be of type {want}: {:?}", type_name(v)),
            ));
            return;
        }
        if let Some(e) = &self.enum_
            && !e.iter().any(|x| values_equal(x, v))
        {
            causes.push(Cause::not_supported(path, v, e));
        }
        if let Some(n) = v.as_f64() {
            if let Some(min) = self.minimum {
                if self.exclusive_minimum && n <= min {
                    causes.push(Cause::invalid(
                        path,
                        v,
                        &format!("{shown} in body should be greater than {}", fmt_num(min)),
                    ));
                } else if !self.exclusive_minimum && n < min {
                    causes.push(Cause::invalid(
                        path,
                        v,
                        &format!("{shown} in body should be greater than or equal to {}", fmt_num(min)),
                    ));
                }
            }
            if let Some(max) = self.maximum {
                if self.exclusive_maximum && n >= max {
                    causes.push(Cause::invalid(
                        path,
                        v,
                        &format!("{shown} in body should be less than {}", fmt_num(max)),
                    ));
                } else if !self.exclusive_maximum && n > max {
                    causes.push(Cause::invalid(
                        path,
                        v,
                        &format!("{shown} in body should be less than or equal to {}", fmt_num(max)),
                    ));
                }
            }
            if let Some(m) = self.multiple_of
                && m != 0.0
                && (n / m).fract().abs() > 1e-9
            {
                causes.push(Cause::invalid(
                    path,
                    v,
                    &format!("{shown} in body should be a multiple of {}", fmt_num(m)),
                ));
            }
        }
        if let Some(s) = v.as_str() {
            let len = s.chars().count() as u64;
            if let Some(max) = self.max_length
                && len > max
            {
                causes.push(Cause::too_long(path, max));
            }
            if let Some(min) = self.min_length
                && len < min
            {
                causes.push(Cause::invalid(path, v, &format!("{shown} in body should be at least {min} chars long")));
            }
            if let Some((p, re)) = &self.pattern
                && !re.is_match(s)
            {
                causes.push(Cause::invalid(path, v, &format!("{shown} in body should match '{p}'")));
            }
            if let Some(f) = &self.format
                && !format_ok(f, s)
            {
                causes.push(Cause::invalid(path, v, &format!("{shown} in body must be of type {f}: {s:?}")));
            }
        }
        if let Some(items) = v.as_array() {
            if let Some(max) = self.max_items
                && items.len() as u64 > max
            {
                causes.push(Cause::too_many(path, items.len(), max));
            }
            if let Some(min) = self.min_items
                && (items.len() as u64) < min
            {
                causes.push(Cause::invalid(path, v, &format!("{shown} in body should have at least {min} items")));
            }
            if let Some(it) = &self.items {
                for (i, x) in items.iter().enumerate() {
                    it.check_values(x, &format!("{path}[{i}]"), causes);
                }
            }
            match self.list_type.as_deref() {
                Some("set") => {
                    for (i, x) in items.iter().enumerate() {
                        if items[..i].contains(x) {
                            causes.push(Cause::duplicate(&format!("{path}[{i}]"), x));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<Value> = items.iter().map(|x| self.map_key(x)).collect();
                    for (i, k) in keys.iter().enumerate() {
                        if keys[..i].contains(k) {
                            causes.push(Cause::duplicate(&format!("{path}[{i}]"), k));
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(map) = v.as_object() {
            for r in &self.required {
                if !map.contains_key(r) {
                    causes.push(Cause::required(&child_path(path, r), ""));
                }
            }
            if let Some(max) = self.max_properties
                && map.len() as u64 > max
            {
                causes.push(Cause::too_many(path, map.len(), max));
            }
            if let Some(min) = self.min_properties
                && (map.len() as u64) < min
            {
                causes.push(Cause::invalid(path, v, &format!("{shown} in body should have at least {min} properties")));
            }
            for (k, x) in map {
                if let Some(ps) = self.properties.get(k) {
                    ps.check_values(x, &child_path(path, k), causes);
                } else if let Some(ap) = &self.additional {
                    ap.check_values(x, &child_path(path, k), causes);
                }
            }
            if self.embedded {
                for f in ["apiVersion", "kind"] {
                    if map.get(f).and_then(Value::as_str).unwrap_or("").is_empty() {
                        causes.push(Cause::required(&child_path(path, f), "must not be empty"));
                    }
                }
            }
        }
        for b in &self.all_of {
            b.check_values(v, path, causes);
        }
        if !self.any_of.is_empty() {
            let mut first = None;
            let ok = self.any_of.iter().any(|b| {
                let mut c = Vec::new();
                b.check_values(v, path, &mut c);
                if first.is_none() {
                    first = Some(c.clone());
                }
                c.is_empty()
            });
            if !ok {
                causes.push(Cause::invalid(
                    path,
                    v,
                    &format!("{shown} in body must validate at least one schema (anyOf)"),
                ));
                causes.extend(first.unwrap_or_default());
            }
        }
        if !self.one_of.is_empty() {
            let passing = self
                .one_of
                .iter()
                .filter(|b| {
                    let mut c = Vec::new();
                    b.check_values(v, path, &mut c);
                    c.is_empty()
                })
                .count();
            if passing != 1 {
                causes.push(Cause::invalid(
                    path,
                    v,
                    &format!("{shown} in body must validate one and only one schema (oneOf)"),
                ));
            }
        }
        if let Some(n) = &self.not {
            let mut c = Vec::new();
            n.check_values(v, path, &mut c);
            if c.is_empty() {
                causes.push(Cause::invalid(path, v, &format!("{shown} in body must not validate the schema (not)")));
            }
        }
    }

    /// The key of a `x-kubernetes-list-type: map` item: its map keys' values.
    pub(super) fn map_key(&self, item: &Value) -> Value {
        let mut o = Map::new();
        for k in &self.list_map_keys {
            o.insert(k.clone(), item.get(k).cloned().unwrap_or(Value::Null));
        }
        Value::Object(o)
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

fn format_ok(format: &str, s: &str) -> bool {
    use super::object_meta::is_dns_subdomain;
    match format {
        // The real server checks kube-openapi's strfmt rule; a value must
        // also be a real instant (stricter: strfmt takes Feb 30).
        "date-time" | "datetime" => is_strfmt_date_time(s) && s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10,
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "uuid" => {
            let parts: Vec<&str> = s.split('-').collect();
            parts.len() == 5
                && [8, 4, 4, 4, 12]
                    .iter()
                    .zip(&parts)
                    .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s
            .split_once('/')
            .is_some_and(|(ip, bits)| ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok()),
        "hostname" => is_dns_subdomain(s),
        "uri" => url::Url::parse(s).is_ok(),
        "email" => s.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.')),
        "duration" => parse_go_duration(s),
        _ => true,
    }
}

/// kube-openapi `strfmt.IsDate`: a `YYYY-MM-DD` prefix with month 01-12
/// and day 01-31.
fn is_strfmt_date(s: &str) -> bool {
    static RX: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})").expect("date regex"));
    RX.captures(s).is_some_and(|m| ("01"..="12").contains(&&m[2]) && ("01"..="31").contains(&&m[3]))
}

/// kube-openapi `strfmt.IsDateTime`: `date "T" time` (case-insensitive),
/// the time being `HH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`. A space separator,
/// missing seconds, a missing offset, `+HHMM` offsets or a bracketed zone
/// are all refused by a real server.
fn is_strfmt_date_time(s: &str) -> bool {
    static RX: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$").expect("time regex")
    });
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_strfmt_date(parts[0]) {
        return false;
    }
    RX.captures(parts[1]).is_some_and(|m| &m[1] <= "23" && &m[2] <= "59" && &m[3] <= "59")
}

fn parse_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if i == start {
            return false;
        }
        let ustart = i;
        while i < b.len() && !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if !["ns", "us", "µs", "ms", "s", "m", "h"].contains(&&s[ustart..i]) {
            return false;
        }
    }
    true
}

impl ParseCtx {
    fn root_like_metadata(&self, o: &Map<String, Value>) -> bool {
        o.get("properties").and_then(Value::as_object).is_some_and(|p| p.contains_key("metadata"))
    }
}
