//! `x-kubernetes-validations`: the CEL rules of a parsed [`Schema`],
//! type-checked against it when a CRD is installed ([`check`]) and evaluated
//! on every write ([`validate`]). The schema code does not call this pass.
//!
//! Strictness: a rule is only accepted if every function it calls is in
//! [`SUPPORTED_FUNCTIONS`] (functions that both Kubernetes and the `cel`
//! crate implement), every identifier is `self`, `oldSelf` (where it can be
//! correlated) or a comprehension variable, and every `self.field` chain
//! names fields that exist in the schema — like the type-checking a real
//! server does when the CRD is created.

use super::Cause;
use super::schema::{CelRule, Schema, child_path, type_name};
use cel::common::ast::{EntryExpr, Expr, IdedExpr, operators};
use cel::objects::{Key, Map as CelMap};
use cel::{Context, Env, Value as CelValue};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Non-operator functions accepted in rules.
pub const SUPPORTED_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "dyn",
    "type",
    "bytes",
    "duration",
    "timestamp",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
];

const OPERATORS: &[&str] = &[
    operators::CONDITIONAL,
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::SUBSTRACT,
    operators::ADD,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::GREATER_EQUALS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::LESS,
    operators::NEGATE,
    operators::INDEX,
    operators::NOT_STRICTLY_FALSE,
    operators::IN,
];

const TYPE_IDENTS: &[&str] = &["int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"];

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings).expect("strings extension");
        Arc::new(env)
    })
    .clone()
}

/// `src` compiled, from a cache: the rules are those of the installed CRDs,
/// evaluated for every object admitted, and compiling is most of the cost.
/// At most [`COMPILED_RULES`] are kept (a full cache is emptied).
fn compiled(src: &str) -> Result<Arc<cel::Program>, String> {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, Arc<cel::Program>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(program) = cache.lock().unwrap().get(src) {
        return Ok(program.clone());
    }
    let program = Arc::new(env().compile(src).map_err(|e| e.to_string())?);
    let mut cache = cache.lock().unwrap();
    if cache.len() >= COMPILED_RULES {
        cache.clear();
    }
    cache.insert(src.to_string(), program.clone());
    Ok(program)
}

/// The most compiled rules [`compiled`] keeps.
const COMPILED_RULES: usize = 1024;

fn metadata_schema() -> &'static Schema {
    static META: OnceLock<Schema> = OnceLock::new();
    META.get_or_init(|| {
        let mut s = Schema { ty: Some("object".into()), ..Schema::default() };
        for f in ["name", "generateName"] {
            s.properties.insert(f.into(), Schema { ty: Some("string".into()), ..Schema::default() });
        }
        s
    })
}

#[derive(Clone, Copy)]
enum Ty<'a> {
    Unknown,
    Node(&'a Schema, bool),
}

struct Checker<'a> {
    scope: Vec<(String, Ty<'a>)>,
    node: &'a Schema,
    root: bool,
    correlatable: bool,
}

impl<'a> Checker<'a> {
    fn check(&mut self, e: &IdedExpr) -> Result<Ty<'a>, String> {
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => Ok(Ty::Unknown),
            Expr::Ident(name) => {
                if name == "self" {
                    return Ok(Ty::Node(self.node, self.root));
                }
                if name == "oldSelf" {
                    if !self.correlatable {
                        return Err("oldSelf cannot be used on the uncorrelatable portion of the schema within x-kubernetes-validations".into());
                    }
                    return Ok(Ty::Node(self.node, self.root));
                }
                if let Some((_, t)) = self.scope.iter().rev().find(|(n, _)| n == name) {
                    return Ok(*t);
                }
                if TYPE_IDENTS.contains(&name.as_str()) {
                    return Ok(Ty::Unknown);
                }
                Err(format!("compilation failed: ERROR: undeclared reference to '{name}'"))
            }
            Expr::Select(sel) => {
                let t = self.check(&sel.operand)?;
                match t {
                    Ty::Unknown => Ok(Ty::Unknown),
                    Ty::Node(s, is_root) => {
                        if is_root {
                            match sel.field.as_str() {
                                "apiVersion" | "kind" => return Ok(Ty::Unknown),
                                "metadata" => return Ok(Ty::Node(metadata_schema(), false)),
                                _ => {}
                            }
                        }
                        if let Some(p) = s.properties.get(&sel.field) {
                            return Ok(Ty::Node(p, false));
                        }
                        if let Some(a) = &s.additional {
                            return Ok(Ty::Node(a, false));
                        }
                        if s.preserve_unknown || s.additional_any {
                            return Ok(Ty::Unknown);
                        }
                        match s.ty.as_deref() {
                            Some("object") => {
                                Err(format!("compilation failed: ERROR: undefined field '{}'", sel.field))
                            }
                            other => Err(format!(
                                "compilation failed: ERROR: type '{}' does not support field selection",
                                other.unwrap_or("int-or-string")
                            )),
                        }
                    }
                }
            }
            Expr::Call(call) => {
                let f = call.func_name.as_str();
                if !OPERATORS.contains(&f) && !SUPPORTED_FUNCTIONS.contains(&f) {
                    return Err(format!(
                        "compilation failed: ERROR: undeclared reference to '{f}' (not supported by kube-notify's CEL environment)"
                    ));
                }
                let target = match &call.target {
                    Some(t) => Some(self.check(t)?),
                    None => None,
                };
                let mut args = Vec::new();
                for a in &call.args {
                    args.push(self.check(a)?);
                }
                if f == operators::INDEX {
                    let base = args.first().copied().or(target).unwrap_or(Ty::Unknown);
                    if let Ty::Node(s, _) = base {
                        if let Some(i) = &s.items {
                            return Ok(Ty::Node(i, false));
                        }
                        if let Some(a) = &s.additional {
                            return Ok(Ty::Node(a, false));
                        }
                    }
                }
                Ok(Ty::Unknown)
            }
            Expr::Comprehension(c) => {
                let range = self.check(&c.iter_range)?;
                let elem = match range {
                    Ty::Node(s, _) => match &s.items {
                        Some(i) => Ty::Node(i, false),
                        None => Ty::Unknown,
                    },
                    Ty::Unknown => Ty::Unknown,
                };
                self.check(&c.accu_init)?;
                let depth = self.scope.len();
                self.scope.push((c.iter_var.clone(), elem));
                if let Some(v2) = &c.iter_var2 {
                    self.scope.push((v2.clone(), Ty::Unknown));
                }
                self.scope.push((c.accu_var.clone(), Ty::Unknown));
                let r = (|| {
                    self.check(&c.loop_cond)?;
                    self.check(&c.loop_step)?;
                    self.check(&c.result)
                })();
                self.scope.truncate(depth);
                r?;
                Ok(Ty::Unknown)
            }
            Expr::List(l) => {
                if !l.optional_indices.is_empty() {
                    return Err("compilation failed: optional list elements are not supported".into());
                }
                for x in &l.elements {
                    self.check(x)?;
                }
                Ok(Ty::Unknown)
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            if me.optional {
                                return Err("compilation failed: optional map entries are not supported".into());
                            }
                            self.check(&me.key)?;
                            self.check(&me.value)?;
                        }
                        EntryExpr::StructField(_) => {
                            return Err("compilation failed: struct construction is not supported".into());
                        }
                    }
                }
                Ok(Ty::Unknown)
            }
            Expr::Struct(_) => Err("compilation failed: struct construction is not supported".into()),
        }
    }
}

fn check_source(src: &str, node: &Schema, root: bool, correlatable: bool) -> Result<(), String> {
    let program = env().compile(src).map_err(|e| format!("compilation failed: {e}"))?;
    let mut checker = Checker { scope: Vec::new(), node, root, correlatable };
    checker.check(program.expression()).map(|_| ())
}

/// Type-checks every rule of a parsed `openAPIV3Schema` against its node
/// (`rule` and `messageExpression`), then checks that every default passes
/// the rules below it. `Err` names the entry or default at fault.
pub(super) fn check(root: &Schema) -> Result<(), String> {
    check_node(root, "openAPIV3Schema", true, true)?;
    check_defaults(root, "openAPIV3Schema", true)
}

/// The rules of `node` and below, children first (as they are parsed);
/// `correlatable` says whether `oldSelf` can be correlated at `node`.
fn check_node(node: &Schema, path: &str, root: bool, correlatable: bool) -> Result<(), String> {
    for (k, p) in &node.properties {
        check_node(p, &format!("{path}.properties[{k}]"), false, correlatable)?;
    }
    if let Some(a) = &node.additional {
        check_node(a, &format!("{path}.additionalProperties"), false, correlatable)?;
    }
    if let Some(i) = &node.items {
        let correlatable = correlatable && node.list_type.as_deref() == Some("map");
        check_node(i, &format!("{path}.items"), false, correlatable)?;
    }
    for (i, r) in node.rules.iter().enumerate() {
        check_rule(r, node, root, correlatable).map_err(|e| format!("{path}.x-kubernetes-validations[{i}]: {e}"))?;
    }
    Ok(())
}

/// Type-checks one rule's expressions for `node`.
fn check_rule(rule: &CelRule, node: &Schema, root: bool, correlatable: bool) -> Result<(), String> {
    let src = &rule.rule;
    check_source(src, node, root, correlatable).map_err(|e| format!("rule: Invalid value: {src:?}: {e}"))?;
    if let Some(me) = &rule.message_expression {
        check_source(me, node, root, correlatable)
            .map_err(|e| format!("messageExpression: Invalid value: {me:?}: {e}"))?;
    }
    Ok(())
}

/// Every default (the schema already checked its values) must pass the
/// rules of its node and below.
fn check_defaults(node: &Schema, path: &str, root: bool) -> Result<(), String> {
    if let Some(d) = &node.default {
        let mut defaulted = d.clone();
        node.apply_defaults(&mut defaulted);
        let causes = validate(node, &defaulted, None);
        if !causes.is_empty() {
            return Err(format!(
                "{path}.default: Invalid value: {}: {}",
                d,
                causes.iter().map(|c| c.message.clone()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for (k, p) in &node.properties {
        if root && k == "metadata" {
            continue;
        }
        check_defaults(p, &format!("{path}.properties[{k}]"), false)?;
    }
    if let Some(a) = &node.additional {
        check_defaults(a, &format!("{path}.additionalProperties"), false)?;
    }
    if let Some(i) = &node.items {
        check_defaults(i, &format!("{path}.items"), false)?;
    }
    Ok(())
}

/// Evaluates the rules of `schema` over `object` (whose value checks passed);
/// `old` is the stored object for transition rules (`oldSelf`). Every cause,
/// with its field path.
pub(super) fn validate(schema: &Schema, object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_node(schema, object, old, "", &mut causes);
    causes
}

fn validate_node(node: &Schema, v: &Value, old: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    if v.is_null() {
        return;
    }
    for rule in &node.rules {
        if let Some(c) = evaluate(rule, node, v, old, path) {
            causes.push(c);
        }
    }
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if let Some(ps) = node.property(k) {
                    let o = old.and_then(|o| o.get(k));
                    validate_node(ps, x, o, &child_path(path, k), causes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(it) = &node.items {
                for (i, x) in items.iter().enumerate() {
                    let o = if node.list_type.as_deref() == Some("map") {
                        let key = node.map_key(x);
                        old.and_then(Value::as_array).and_then(|olds| olds.iter().find(|ox| node.map_key(ox) == key))
                    } else {
                        None
                    };
                    validate_node(it, x, o, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

/// Converts JSON to a CEL value, typed by the schema where known.
fn to_cel(v: &Value, s: Option<&Schema>, root: bool) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            let want_double = s.is_some_and(|s| s.ty.as_deref() == Some("number"));
            if want_double {
                CelValue::Float(n.as_f64().unwrap_or(0.0))
            } else if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(x) => CelValue::String(Arc::new(x.clone())),
        Value::Array(items) => {
            let is = s.and_then(|s| s.items.as_deref());
            CelValue::List(Arc::new(items.iter().map(|x| to_cel(x, is, false)).collect()))
        }
        Value::Object(map) => {
            let mut out = HashMap::new();
            for (k, x) in map {
                let child = if root && k == "metadata" {
                    let mut m = serde_json::Map::new();
                    for f in ["name", "generateName"] {
                        if let Some(v) = x.get(f) {
                            m.insert(f.to_string(), v.clone());
                        }
                    }
                    out.insert(Key::String(Arc::new(k.clone())), to_cel(&Value::Object(m), None, false));
                    continue;
                } else {
                    s.and_then(|s| s.properties.get(k).or(s.additional.as_deref()))
                };
                out.insert(Key::String(Arc::new(k.clone())), to_cel(x, child, false));
            }
            CelValue::Map(CelMap { map: Arc::new(out) })
        }
    }
}

fn run(src: &str, node: &Schema, v: &Value, old: Option<&Value>, root: bool) -> Result<CelValue, String> {
    let program = compiled(src)?;
    run_program(&program, env(), node, v, old, root)
}

fn run_program(
    program: &cel::Program,
    env: Arc<Env>,
    node: &Schema,
    v: &Value,
    old: Option<&Value>,
    root: bool,
) -> Result<CelValue, String> {
    let mut ctx = Context::with_env(env);
    ctx.add_variable_from_value("self", to_cel(v, Some(node), root));
    if let Some(o) = old {
        ctx.add_variable_from_value("oldSelf", to_cel(o, Some(node), root));
    }
    program.execute(&ctx).map_err(|e| e.to_string())
}

/// Evaluates one rule at `path`; `Some(cause)` when it fails. A transition
/// rule (one naming `oldSelf`) is skipped when there is no old value.
fn evaluate(rule: &CelRule, node: &Schema, v: &Value, old: Option<&Value>, path: &str) -> Option<Cause> {
    let root = path.is_empty();
    let ty = type_name(v);
    let mut field = path.to_string();
    let result = match compiled(&rule.rule) {
        Ok(program) => {
            if old.is_none() && !rule.optional_old_self && program.references().has_variable("oldSelf") {
                return None;
            }
            run_program(&program, env(), node, v, old, root)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(CelValue::Bool(true)) => None,
        Ok(CelValue::Bool(false)) => {
            let mut msg = rule.message.clone().unwrap_or_else(|| format!("failed rule: {}", rule.rule.trim()));
            if let Some(me) = &rule.message_expression
                && let Ok(CelValue::String(s)) = run(me, node, v, old, root)
                && !s.trim().is_empty()
            {
                msg = s.to_string();
            }
            if let Some(fp) = &rule.field_path {
                let fp = fp.trim_start_matches('.');
                field = if field.is_empty() { fp.to_string() } else { format!("{field}.{fp}") };
            }
            Some(match rule.reason.as_deref() {
                Some("FieldValueForbidden") => Cause::forbidden(&field, &msg),
                Some("FieldValueRequired") => Cause::required(&field, &msg),
                Some("FieldValueDuplicate") => Cause::duplicate(&field, &Value::String(ty.into())),
                _ => Cause::invalid_type_name(&field, ty, &msg),
            })
        }
        Ok(other) => Some(Cause::invalid_type_name(
            &field,
            ty,
            &format!(
                "rule evaluated to {:?}, not a boolean, evaluating rule: {}",
                other.type_of().to_string(),
                rule.rule
            ),
        )),
        Err(e) => Some(Cause::invalid_type_name(
            &field,
            ty,
            &format!("internal error: runtime error: {e} evaluating rule: {}", rule.rule),
        )),
    }
}
