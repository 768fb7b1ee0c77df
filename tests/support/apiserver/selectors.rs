//! Label and field selectors, parsed and checked like the real server does.

use super::errors::{ApiError, ApiResult};
use super::meta::{is_label_value, is_qualified_name};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct LabelSelector {
    reqs: Vec<(String, LabelOp)>,
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn bad_label(msg: String) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {msg}"))
}

fn check_key(key: &str) -> ApiResult<()> {
    if is_qualified_name(key) {
        Ok(())
    } else {
        Err(bad_label(format!(
            "key: Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

fn check_value(v: &str) -> ApiResult<()> {
    if is_label_value(v) {
        Ok(())
    } else {
        Err(bad_label(format!(
            "values[0]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

impl LabelSelector {
    pub fn parse(s: &str) -> ApiResult<LabelSelector> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector { reqs });
        }
        for raw in split_top_level(s) {
            let term = raw.trim();
            if term.is_empty() {
                return Err(bad_label(format!("found '', expected: identifier in {s:?}")));
            }
            if let Some(key) = term.strip_prefix('!') {
                let key = key.trim();
                check_key(key)?;
                reqs.push((key.to_string(), LabelOp::NotExists));
                continue;
            }
            // set-based: key in (a,b) / key notin (a,b)
            let set_based = term
                .find(" in ")
                .map(|i| (i, 4, true))
                .or_else(|| term.find(" notin ").map(|i| (i, 7, false)))
                .or_else(|| term.find(" in(").map(|i| (i, 3, true)))
                .or_else(|| term.find(" notin(").map(|i| (i, 6, false)));
            if let Some((i, len, is_in)) = set_based {
                let key = term[..i].trim();
                let rest = term[i + len..].trim();
                check_key(key)?;
                let inner = rest
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| bad_label(format!("found {rest:?}, expected: '('")))?;
                let mut vals = Vec::new();
                for v in inner.split(',') {
                    let v = v.trim();
                    check_value(v)?;
                    vals.push(v.to_string());
                }
                if vals.is_empty() || (vals.len() == 1 && vals[0].is_empty() && inner.trim().is_empty()) {
                    return Err(bad_label("for 'in', 'notin' operators, values set can't be empty".to_string()));
                }
                reqs.push((key.to_string(), if is_in { LabelOp::In(vals) } else { LabelOp::NotIn(vals) }));
                continue;
            }
            let (key, op) = if let Some(i) = term.find("!=") {
                (term[..i].trim(), LabelOp::NotEq(term[i + 2..].trim().to_string()))
            } else if let Some(i) = term.find("==") {
                (term[..i].trim(), LabelOp::Eq(term[i + 2..].trim().to_string()))
            } else if let Some(i) = term.find('=') {
                (term[..i].trim(), LabelOp::Eq(term[i + 1..].trim().to_string()))
            } else if term.contains(|c: char| c.is_whitespace() || "<>()".contains(c)) {
                return Err(bad_label(format!("invalid label selector term {term:?}")));
            } else {
                (term, LabelOp::Exists)
            };
            check_key(key)?;
            if let LabelOp::Eq(v) | LabelOp::NotEq(v) = &op {
                check_value(v)?;
            }
            reqs.push((key.to_string(), op));
        }
        Ok(LabelSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|(k, op)| match op {
            LabelOp::Eq(v) => get(k) == Some(v.as_str()),
            LabelOp::NotEq(v) => get(k) != Some(v.as_str()),
            LabelOp::In(vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelOp::NotIn(vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelOp::Exists => get(k).is_some(),
            LabelOp::NotExists => get(k).is_none(),
        })
    }
}

/// A field selector: `a=b,c!=d`, with only the fields the resource supports.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> ApiResult<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('\\' | ',' | '=' | '!')) => out.push(n),
                Some(n) => {
                    return Err(ApiError::bad_request(format!(
                        "invalid field selector: invalid escape sequence: \\{n}"
                    )));
                }
                None => {
                    return Err(ApiError::bad_request("invalid field selector: unterminated escape sequence"));
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// `supported` lists the field labels besides `metadata.name`/`metadata.namespace`.
    pub fn parse(s: &str, supported: &[String], custom: bool) -> ApiResult<FieldSelector> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector { reqs });
        }
        for term in split_unescaped(s, ',') {
            let (lhs, eq, rhs) = if let Some(i) = term.find("!=") {
                (&term[..i], false, &term[i + 2..])
            } else if let Some(i) = term.find("==") {
                (&term[..i], true, &term[i + 2..])
            } else if let Some(i) = term.find('=') {
                (&term[..i], true, &term[i + 1..])
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{s}'; can't understand '{term}'")));
            };
            let field = lhs.trim().to_string();
            let known = field == "metadata.name" || field == "metadata.namespace" || supported.contains(&field);
            if !known {
                let msg = if custom {
                    let mut all = vec!["\"metadata.name\"".to_string(), "\"metadata.namespace\"".to_string()];
                    all.extend(supported.iter().map(|f| format!("{f:?}")));
                    format!("{field:?} is not a known field selector: only {}", all.join(", "))
                } else {
                    format!("field label not supported: {field}")
                };
                return Err(ApiError::bad_request(msg));
            }
            reqs.push((field, eq, unescape(rhs)?));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The single `metadata.name=X` this selector pins, if any.
    pub fn pinned_name(&self) -> Option<&str> {
        self.reqs.iter().find(|(f, eq, _)| f == "metadata.name" && *eq).map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, eq, want)| {
            let got = field_value(obj, field);
            (got == *want) == *eq
        })
    }
}

/// The value of a field label on an object: a dotted path; missing is "".
pub(crate) fn field_value(obj: &Value, field: &str) -> String {
    let mut cur = obj;
    for seg in field.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}
