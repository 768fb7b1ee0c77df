//! What `kube-notify get` prints: the table, `-o wide`, `-o yaml` and `-o json`
//! output of `kubectl get` (1.3x) for our resources, from the CRDs'
//! `additionalPrinterColumns`. Pure: objects in, text out.
//!
//! Sources reproduced (kubernetes/kubernetes, `staging/src/k8s.io/...`):
//! - `apiextensions-apiserver/pkg/registry/customresource/tableconvertor/tableconvertor.go`:
//!   the server turns each printer column into a cell; a missing value, a failed
//!   JSONPath or a value of the wrong type is a `nil` cell; `date` is an age.
//! - `cli-runtime/pkg/printers/tableprinter.go` (`printTable`, `decorateTable`):
//!   headers upper-cased, `priority != 0` columns only with `-o wide`, a `nil`
//!   cell prints as nothing (an empty cell, not `<none>`), a string is cut at its
//!   first `\f`, `\n` or `\r` and followed by `...`, ESC prints as `^[`
//!   (`terminal.go`), no header and no rows for an empty list, `-A` puts
//!   `NAMESPACE` first.
//! - `cli-runtime/pkg/printers/tabwriter.go`: Go's `text/tabwriter` with
//!   minwidth 6, padding 3, pad char `' '`, no flags.
//! - `apimachinery/pkg/util/duration/duration.go` (`HumanDuration`): ages.
//! - `kubectl/pkg/cmd/get/get.go` (`printGeneric`), `cli-runtime/pkg/printers/json.go`
//!   and `yaml.go`: `-o json|yaml` of a list is a `v1` `List` with sorted keys and
//!   `metadata.resourceVersion: ""`, JSON indented by 4 spaces with Go's HTML
//!   escaping, YAML by `sigs.k8s.io/yaml` (go-yaml v2); `managedFields` are left
//!   out (`--show-managed-fields=false`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};
use serde::Serialize as _;
use serde_json::Value;

/// How `get` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The columns of `kubectl get`.
    #[default]
    Table,
    /// The table with the `priority > 0` columns too (`kubectl get -o wide`).
    Wide,
    /// A `v1` `List` as YAML (`kubectl get -o yaml`).
    Yaml,
    /// A `v1` `List` as JSON (`kubectl get -o json`).
    Json,
}

/// Render `objects` (full JSON objects as the API returns them) of the kind
/// `crd` describes, as `kubectl get` does: sorted by namespace then name,
/// with the printer columns of the CRD's storage (else first served) version.
/// `all_namespaces` adds a `NAMESPACE` column first (`kubectl get -A`; not for
/// cluster-scoped kinds). `now` makes ages deterministic. An empty list renders
/// as an empty table (the caller says "No resources found").
pub fn render(
    crd: &CustomResourceDefinition,
    objects: &[Value],
    output: Output,
    all_namespaces: bool,
    now: jiff::Timestamp,
) -> String {
    let objects = sorted_by_namespace_and_name(objects);
    match output {
        Output::Table | Output::Wide => {
            let with_namespace = all_namespaces && crd.spec.scope != "Cluster";
            render_table(printer_columns(crd), &objects, output == Output::Wide, with_namespace, now)
        }
        Output::Json => render_json(list_of(&objects)),
        Output::Yaml => render_yaml(&list_of(&objects)),
    }
}

/// The printer columns `kubectl get` shows for `crd`: those of the storage
/// version if it is served, else of the first served version.
fn printer_columns(crd: &CustomResourceDefinition) -> &[CustomResourceColumnDefinition] {
    let versions = &crd.spec.versions;
    versions
        .iter()
        .find(|v| v.served && v.storage)
        .or_else(|| versions.iter().find(|v| v.served))
        .and_then(|v| v.additional_printer_columns.as_deref())
        .unwrap_or_default()
}

fn metadata_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or_default()
}

/// The order the API server lists in (its storage keys): namespace, then name.
fn sorted_by_namespace_and_name(objects: &[Value]) -> Vec<&Value> {
    fn key(o: &Value) -> (&str, &str) {
        (metadata_str(o, "namespace"), metadata_str(o, "name"))
    }
    let mut sorted: Vec<&Value> = objects.iter().collect();
    sorted.sort_by(|a, b| key(a).cmp(&key(b)));
    sorted
}

// ---------------------------------------------------------------- table ----

fn render_table(
    columns: &[CustomResourceColumnDefinition],
    objects: &[&Value],
    wide: bool,
    with_namespace: bool,
    now: jiff::Timestamp,
) -> String {
    if objects.is_empty() {
        return String::new();
    }
    let columns: Vec<&CustomResourceColumnDefinition> =
        columns.iter().filter(|c| wide || c.priority.unwrap_or(0) == 0).collect();

    let mut header: Vec<String> = Vec::with_capacity(columns.len() + 2);
    if with_namespace {
        header.push("NAMESPACE".into());
    }
    header.push("NAME".into());
    header.extend(columns.iter().map(|c| c.name.to_uppercase()));

    let mut text = header.join("\t");
    text.push('\n');
    for object in objects {
        let mut row: Vec<String> = Vec::with_capacity(header.len());
        if with_namespace {
            row.push(printable_cell(metadata_str(object, "namespace")));
        }
        row.push(printable_cell(metadata_str(object, "name")));
        row.extend(columns.iter().map(|c| column_cell(c, object, now).map(|v| printable_cell(&v)).unwrap_or_default()));
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    align_columns(&text)
}

/// The server's cell for one printer column (`None`: a `nil` cell, printed
/// empty): the JSONPath's first result, rendered by the column's type.
fn column_cell(column: &CustomResourceColumnDefinition, object: &Value, now: jiff::Timestamp) -> Option<String> {
    let value = json_path(object, &column.json_path)?;
    match column.type_.as_str() {
        // JSONPath's PrintResults: strings as they are, maps and lists as JSON.
        "string" => match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) if n.is_f64() => n.as_f64().map(go_float),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Array(_) | Value::Object(_) => Some(go_json(&mut value.clone())),
            Value::Null => None,
        },
        // Go converts a float64 to int64 by truncation.
        "integer" => value.as_i64().or_else(|| value.as_f64().map(|f| f as i64)).map(|i| i.to_string()),
        "number" => value.as_f64().map(go_float),
        "boolean" => value.as_bool().map(|b| b.to_string()),
        "date" => value.as_str().map(|s| age(s, now)),
        _ => None,
    }
}

/// The value at `path`, in the subset of JSONPath our printer columns use:
/// `.field` steps and `[?(@.key=="value")]` filters on lists (the first match
/// wins, as the table convertor takes the first result). Anything else, a
/// missing field or `null`: `None`.
fn json_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    let mut nodes: Vec<&Value> = vec![root];
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after_dot) = rest.strip_prefix('.') {
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            let (field, tail) = after_dot.split_at(end);
            if field.is_empty() {
                return None;
            }
            nodes = nodes.into_iter().filter_map(|n| n.as_object()?.get(field)).collect();
            rest = tail;
        } else if let Some(filter) = rest.strip_prefix("[?(@.") {
            let (key, tail) = filter.split_once("==")?;
            let quote = tail.chars().next().filter(|q| *q == '"' || *q == '\'')?;
            let (wanted, tail) = tail[1..].split_once(quote)?;
            rest = tail.strip_prefix(")]")?;
            let key = key.trim();
            nodes = nodes
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .filter(|item| item.get(key).and_then(Value::as_str) == Some(wanted))
                .collect();
        } else {
            return None;
        }
    }
    nodes.into_iter().next().filter(|v| !v.is_null())
}

/// kubectl's age of a `date` column: `<unknown>` for an empty or zero time,
/// `<invalid>` for one that is not RFC 3339.
fn age(timestamp: &str, now: jiff::Timestamp) -> String {
    if timestamp.is_empty() || timestamp == "null" {
        return "<unknown>".into();
    }
    let Ok(at) = timestamp.parse::<jiff::Timestamp>() else {
        return "<invalid>".into();
    };
    // Go's zero time.Time, 0001-01-01T00:00:00Z.
    if at.as_second() == -62_135_596_800 && at.subsec_nanosecond() == 0 {
        return "<unknown>".into();
    }
    human_duration(now.duration_since(at))
}

/// `HumanDuration` of k8s.io/apimachinery: a duration in 2-3 significant
/// figures ("45s", "3m20s", "15m", "5h10m", "20h", "3d4h", "40d", "3y20d", "9y");
/// up to 2 s in the future is "0s" (clock skew), further is "<invalid>".
pub fn human_duration(elapsed: jiff::SignedDuration) -> String {
    // A Go time.Duration: nanoseconds in an i64, saturated.
    let nanos = elapsed.as_nanos().clamp(i64::MIN.into(), i64::MAX.into()) as i64;
    let seconds = nanos / 1_000_000_000;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Go's `%v` of a float64: shortest digits, exponent form below 1e-4 and from 1e6.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        format!("{f}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// kubectl's client side of a cell: cut at the first line break (then `...`),
/// ESC shown as `^[` so no cell can drive the terminal.
fn printable_cell(value: &str) -> String {
    let (shown, cut) = match value.find(['\u{c}', '\n', '\r']) {
        Some(at) => (&value[..at], true),
        None => (value, false),
    };
    let mut cell = shown.replace('\u{1b}', "^[");
    if cut {
        cell.push_str("...");
    }
    cell
}

/// kubectl's tabwriter (`tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)`): Go's
/// elastic tabstops over tab-terminated cells; a column is as wide as its
/// widest cell (in runes) plus 3, at least 6; a line's last cell is not padded.
fn align_columns(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|line| line.split(['\t', '\u{b}']).collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    align_block(&lines, &mut Vec::new(), 0, lines.len(), &mut out);
    out
}

const TABWRITER_MIN_WIDTH: usize = 6;
const TABWRITER_PADDING: usize = 3;

/// Go's `tabwriter.(*Writer).format`: lays out column `widths.len()` for each
/// block of consecutive lines that have a cell in it, then the columns right of it.
fn align_block(lines: &[Vec<&str>], widths: &mut Vec<usize>, first: usize, end: usize, out: &mut String) {
    let column = widths.len();
    let mut unwritten = first;
    let mut line = first;
    while line < end {
        if column + 1 >= lines[line].len() {
            line += 1;
            continue;
        }
        write_lines(lines, widths, unwritten, line, out);
        let block = line;
        let mut width = TABWRITER_MIN_WIDTH;
        while line < end && column + 1 < lines[line].len() {
            width = width.max(lines[line][column].chars().count() + TABWRITER_PADDING);
            line += 1;
        }
        widths.push(width);
        align_block(lines, widths, block, line, out);
        widths.pop();
        unwritten = line;
    }
    write_lines(lines, widths, unwritten, end, out);
}

fn write_lines(lines: &[Vec<&str>], widths: &[usize], first: usize, end: usize, out: &mut String) {
    for (index, cells) in lines.iter().enumerate().take(end).skip(first) {
        for (column, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if let Some(width) = widths.get(column) {
                let padding = width.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', padding));
            }
        }
        if index + 1 < lines.len() {
            out.push('\n');
        }
    }
}

// ------------------------------------------------------------ json, yaml ----

/// One object asked for by name, as `kubectl get KIND NAME` prints it: the
/// object itself for `-o json|yaml` (not a `List`), the table otherwise.
pub fn render_one(crd: &CustomResourceDefinition, object: &Value, output: Output, now: jiff::Timestamp) -> String {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    match output {
        Output::Json => render_json(object),
        Output::Yaml => render_yaml(&object),
        Output::Table | Output::Wide => render(crd, std::slice::from_ref(&object), output, false, now),
    }
}

/// The `v1` `List` kubectl prints for `-o json|yaml`, without `managedFields`.
fn list_of(objects: &[&Value]) -> Value {
    let items: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut object = (*object).clone();
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("managedFields");
            }
            object
        })
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// `json.MarshalIndent(list, "", "    ")` and a newline, as kubectl's JSON printer.
fn render_json(mut list: Value) -> String {
    list.sort_all_objects();
    let mut bytes = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut bytes, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    list.serialize(&mut serializer).expect("a JSON value always serializes");
    let mut text = go_html_escape(String::from_utf8(bytes).expect("serde_json writes UTF-8"));
    text.push('\n');
    text
}

/// Go's compact `json.Marshal` (sorted keys, HTML escaping).
fn go_json(value: &mut Value) -> String {
    value.sort_all_objects();
    go_html_escape(value.to_string())
}

/// Go's encoding/json escapes `<`, `>`, `&`, U+2028 and U+2029 in strings.
/// None of them can occur outside a string in JSON text, so the whole text is
/// escaped at once.
fn go_html_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut escaped = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The list as kubectl's YAML: serde_yaml's layout (the same libyaml emitter
/// go-yaml v2 ports), with go-yaml v2's quoting: a string that would read back
/// as another type under YAML 1.1 (`"True"`, `""`, `"yes"`, `"123"`, a
/// timestamp) is double-quoted. Known differences: go-yaml folds long strings
/// at 80 columns and sorts keys "naturally" (`a2` before `a10`); this keeps
/// each string on one line and sorts keys by bytes.
fn render_yaml(list: &Value) -> String {
    // A marker no string of the list contains, for strings to double-quote.
    let mut marker = String::from("kubenotifygoquoted");
    while contains_text(list, &marker) {
        marker.push('q');
    }
    let mut quoted = Vec::new();
    let yaml = yaml_value(list, &marker, &mut quoted);
    let text = serde_yaml::to_string(&yaml).expect("a YAML value of JSON always serializes");
    if quoted.is_empty() {
        return text;
    }
    let mut out = String::with_capacity(text.len() + quoted.len() * 2);
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&marker) {
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        let digits = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
        match after[..digits].parse::<usize>().ok().and_then(|index| quoted.get(index)) {
            Some(original) => {
                out.push('"');
                out.push_str(&original.replace('\\', "\\\\").replace('"', "\\\""));
                out.push('"');
            }
            None => out.push_str(&rest[at..at + marker.len() + digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

fn contains_text(value: &Value, text: &str) -> bool {
    match value {
        Value::String(s) => s.contains(text),
        Value::Array(items) => items.iter().any(|v| contains_text(v, text)),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains(text) || contains_text(v, text)),
        _ => false,
    }
}

/// `value` as a YAML value, each string go-yaml v2 would double-quote replaced
/// by `marker` and its index in `quoted`.
fn yaml_value(value: &Value, marker: &str, quoted: &mut Vec<String>) -> serde_yaml::Value {
    let string = |s: &str, quoted: &mut Vec<String>| {
        if !s.contains('\n') && go_yaml_reads_as_non_string(s) {
            quoted.push(s.to_owned());
            serde_yaml::Value::String(format!("{marker}{}", quoted.len() - 1))
        } else {
            serde_yaml::Value::String(s.to_owned())
        }
    };
    match value {
        Value::Null => serde_yaml::Value::Null,
        Value::Bool(b) => serde_yaml::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => serde_yaml::Value::Number(i.into()),
            (None, Some(u), _) => serde_yaml::Value::Number(u.into()),
            (None, None, f) => serde_yaml::Value::Number(f.unwrap_or_default().into()),
        },
        Value::String(s) => string(s, quoted),
        Value::Array(items) => items.iter().map(|v| yaml_value(v, marker, quoted)).collect(),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|(k, _)| k.as_str());
            let mut mapping = serde_yaml::Mapping::with_capacity(entries.len());
            for (k, v) in entries {
                let key = string(k, quoted);
                mapping.insert(key, yaml_value(v, marker, quoted));
            }
            serde_yaml::Value::Mapping(mapping)
        }
    }
}

/// go-yaml v2's `resolve` (and `isBase60Float`): whether `s`, written plain,
/// would read back as a null, bool, number or timestamp under YAML 1.1.
fn go_yaml_reads_as_non_string(s: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True",
        "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", ".nan", ".NaN", ".NAN", ".inf",
        ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
    ];
    if KEYWORDS.contains(&s) || is_base60_float(s) {
        return true;
    }
    match s.as_bytes().first() {
        Some(b'.') => s.parse::<f64>().is_ok_and(f64::is_finite),
        Some(b'0'..=b'9' | b'+' | b'-') => {
            let plain = s.replace('_', "");
            looks_like_timestamp(s) || is_go_int(&plain) || is_yaml_float(&plain)
        }
        _ => false,
    }
}

/// go-yaml v2's `parseTimestamp`: `YYYY-` then an RFC 3339 time, a date and
/// time without zone, or a date (approximated with jiff's parsers).
fn looks_like_timestamp(s: &str) -> bool {
    let year_digits = s.bytes().take_while(u8::is_ascii_digit).count();
    year_digits == 4
        && s.as_bytes().get(4) == Some(&b'-')
        && (s.parse::<jiff::Timestamp>().is_ok()
            || s.parse::<jiff::civil::DateTime>().is_ok()
            || s.parse::<jiff::civil::Date>().is_ok())
}

/// Go's `strconv.ParseInt(s, 0, 64)` or `ParseUint(s, 0, 64)` succeeds.
fn is_go_int(s: &str) -> bool {
    let (sign, unsigned) = match s.as_bytes().first() {
        Some(b'+') | Some(b'-') => (s.as_bytes()[0], &s[1..]),
        _ => (b' ', s),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(hex) = lower.strip_prefix("0x") {
        (16, hex)
    } else if let Some(octal) = lower.strip_prefix("0o") {
        (8, octal)
    } else if let Some(binary) = lower.strip_prefix("0b") {
        (2, binary)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return false;
    }
    match u64::from_str_radix(digits, radix) {
        Ok(value) => match sign {
            b'-' => value <= 1 << 63,
            b'+' => value <= i64::MAX as u64,
            _ => true,
        },
        Err(_) => false,
    }
}

/// go-yaml v2's `yamlStyleFloat` (`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)
/// and a finite `ParseFloat`.
fn is_yaml_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (number, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let number_ok = match number.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(number),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    number_ok && exponent_ok && s.parse::<f64>().is_ok_and(f64::is_finite)
}

/// go-yaml v2's `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`, quoted
/// for YAML 1.1 readers ("1:20").
fn is_base60_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (sexagesimal, fraction) = match body.split_once('.') {
        Some((head, fraction)) => (head, Some(fraction)),
        None => (body, None),
    };
    let mut parts = sexagesimal.split(':');
    let head = parts.next().unwrap_or_default();
    let head_ok =
        head.starts_with(|c: char| c.is_ascii_digit()) && head.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let mut sexagesimal_parts = 0;
    let parts_ok = parts.all(|part| {
        sexagesimal_parts += 1;
        let b = part.as_bytes();
        match b.len() {
            1 => b[0].is_ascii_digit(),
            2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
            _ => false,
        }
    });
    let fraction_ok = fraction.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'_'));
    head_ok && sexagesimal_parts > 0 && parts_ok && fraction_ok
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;
    use crate::crd::{NotificationContact, NotificationEvent, NotificationIntegration};

    fn now() -> jiff::Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    /// The creation time `seconds` before `now()`.
    fn created(seconds: i64) -> String {
        (now() - jiff::SignedDuration::from_secs(seconds)).to_string()
    }

    fn condition(kind: &str, status: &str) -> Value {
        json!({"type": kind, "status": status, "reason": "Test", "message": "", "lastTransitionTime": created(60)})
    }

    fn integration(namespace: &str, name: &str, service: &str, age: i64, status: Option<Value>) -> Value {
        let mut object = json!({
            "apiVersion": "kube-notify.io/v1alpha1",
            "kind": "NotificationIntegration",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created(age)},
            "spec": {"service": service, "secretRef": {"name": name}},
        });
        if let Some(status) = status {
            object["status"] = status;
        }
        object
    }

    /// Ready True; Ready False after errors; no status yet (the operator has not seen it).
    fn integrations() -> Vec<Value> {
        vec![
            integration(
                "default",
                "team-slack",
                "slack",
                3 * 86_400,
                Some(json!({
                    "conditions": [condition("Ready", "True"), condition("Disabled", "False")],
                    "consecutiveErrors": 0,
                })),
            ),
            integration(
                "default",
                "hr-chatwork",
                "chatwork",
                5 * 3_600,
                Some(json!({
                    "conditions": [condition("Disabled", "False"), condition("Ready", "False")],
                    "consecutiveErrors": 2,
                    "lastError": {"message": "Chatwork answered 401\nsecond line", "reason": "Unauthorized"},
                })),
            ),
            integration("default", "ops-teams", "msteams", 600, None),
        ]
    }

    #[test]
    fn integrations_table_has_the_crd_columns_empty_cells_for_missing_values_and_ages() {
        let table = render(&NotificationIntegration::crd(), &integrations(), Output::Table, false, now());
        assert_eq!(
            table,
            concat!(
                "NAME          SERVICE    READY   DISABLED   ERRORS   AGE\n",
                "hr-chatwork   chatwork   False   False      2        5h\n",
                "ops-teams     msteams                                10m\n",
                "team-slack    slack      True    False      0        3d\n",
            )
        );
    }

    #[test]
    fn wide_adds_the_priority_columns_and_cuts_a_cell_at_its_first_line_break() {
        let table = render(&NotificationIntegration::crd(), &integrations(), Output::Wide, false, now());
        assert_eq!(
            table,
            concat!(
                "NAME          SERVICE    READY   DISABLED   ERRORS   AGE   LAST ERROR\n",
                "hr-chatwork   chatwork   False   False      2        5h    Chatwork answered 401...\n",
                "ops-teams     msteams                                10m   \n",
                "team-slack    slack      True    False      0        3d    \n",
            )
        );
    }

    #[test]
    fn all_namespaces_puts_namespace_first_and_sorts_by_namespace_then_name() {
        let objects = vec![
            integration("team-b", "alerts", "webhook", 30, None),
            integration("team-a", "zeta", "slack", 90_000, None),
            integration("team-a", "alpha", "slack", 200, None),
        ];
        let table = render(&NotificationIntegration::crd(), &objects, Output::Table, true, now());
        assert_eq!(
            table,
            concat!(
                "NAMESPACE   NAME     SERVICE   READY   DISABLED   ERRORS   AGE\n",
                "team-a      alpha    slack                                 3m20s\n",
                "team-a      zeta     slack                                 25h\n",
                "team-b      alerts   webhook                               30s\n",
            )
        );
        let single = render(&NotificationIntegration::crd(), &objects, Output::Table, false, now());
        assert!(single.starts_with("NAME     SERVICE"), "{single}");
        assert!(single.lines().nth(1).unwrap().starts_with("alpha "), "{single}");
    }

    #[test]
    fn events_table_shows_phase_and_target() {
        let event = |name: &str, phase: Option<&str>, target: Option<&str>, age: i64| {
            let mut object = json!({
                "apiVersion": "kube-notify.io/v1alpha1",
                "kind": "NotificationEvent",
                "metadata": {"name": name, "namespace": "default", "creationTimestamp": created(age)},
                "spec": {"title": "Deploy", "body": "done"},
            });
            if let Some(target) = target {
                object["spec"]["integrationRef"] = json!({"name": target});
            }
            if let Some(phase) = phase {
                object["status"] = json!({"phase": phase});
            }
            object
        };
        let objects = vec![
            event("deploy-2", Some("PartiallyDelivered"), None, 50 * 3_600),
            event("deploy-1", Some("Delivered"), Some("team-slack"), 400 * 86_400),
            event("deploy-3", None, Some("team-slack"), 1),
        ];
        let table = render(&NotificationEvent::crd(), &objects, Output::Table, false, now());
        assert_eq!(
            table,
            concat!(
                "NAME       PHASE                TARGET       AGE\n",
                "deploy-1   Delivered            team-slack   400d\n",
                "deploy-2   PartiallyDelivered                2d2h\n",
                "deploy-3                        team-slack   1s\n",
            )
        );
    }

    #[test]
    fn contacts_table_shows_each_service_id() {
        let objects = vec![json!({
            "apiVersion": "kube-notify.io/v1alpha1",
            "kind": "NotificationContact",
            "metadata": {"name": "alice", "namespace": "default", "creationTimestamp": created(3 * 365 * 86_400)},
            "spec": {"email": "alice@example.com", "slack": {"userId": "U012AB3CD"}, "msteams": {"id": "alice@example.com"}},
        })];
        let table = render(&NotificationContact::crd(), &objects, Output::Table, false, now());
        assert_eq!(
            table,
            concat!(
                "NAME    EMAIL               SLACK       CHATWORK   TEAMS               AGE\n",
                "alice   alice@example.com   U012AB3CD              alice@example.com   3y\n",
            )
        );
    }

    #[test]
    fn no_objects_is_an_empty_table() {
        for (_, crd) in crate::crd::all() {
            assert_eq!(render(&crd, &[], Output::Table, false, now()), "");
            assert_eq!(render(&crd, &[], Output::Wide, true, now()), "");
        }
    }

    #[test]
    fn human_duration_follows_apimachinery_at_each_boundary() {
        let cases: &[(i64, &str)] = &[
            (-3_000, "<invalid>"),
            (-2_000, "<invalid>"),
            (-1_999, "0s"),
            (-1_000, "0s"),
            (0, "0s"),
            (1_999, "1s"),
            (119_999, "119s"),
            (120_000, "2m"),
            (125_000, "2m5s"),
            (599_000, "9m59s"),
            (600_000, "10m"),
            (10_799_000, "179m"),
            (10_800_000, "3h"),
            (10_860_000, "3h1m"),
            (28_799_000, "7h59m"),
            (28_800_000, "8h"),
            (172_799_000, "47h"),
            (172_800_000, "2d"),
            (176_400_000, "2d1h"),
            (691_199_000, "7d23h"),
            (691_200_000, "8d"),
            (63_071_999_000, "729d"),
            (63_072_000_000, "2y"),
            (63_158_400_000, "2y1d"),
            (252_287_999_000, "7y364d"),
            (252_288_000_000, "8y"),
            (3_153_600_000_000, "100y"),
        ];
        for &(millis, expected) in cases {
            let elapsed = jiff::SignedDuration::from_millis(millis);
            assert_eq!(human_duration(elapsed), expected, "{millis} ms");
        }
        // A Go time.Duration saturates at about 292 years.
        assert_eq!(human_duration(jiff::SignedDuration::MAX), "292y");
    }

    #[test]
    fn date_cells_of_bad_or_zero_times() {
        assert_eq!(age("yesterday", now()), "<invalid>");
        assert_eq!(age("", now()), "<unknown>");
        assert_eq!(age("0001-01-01T00:00:00Z", now()), "<unknown>");
        assert_eq!(age("2025-06-01T11:59:00.5+00:00", now()), "59s");
        assert_eq!(age("2025-06-01T12:00:05Z", now()), "<invalid>");
    }

    #[test]
    fn json_path_subset() {
        let object = json!({
            "metadata": {"name": "x"},
            "status": {
                "conditions": [{"type": "Disabled", "status": "False"}, {"type": "Ready", "status": "True"}, {"type": "Ready", "status": "Later"}],
                "count": 3,
                "empty": null,
            },
        });
        let path = |p: &str| json_path(&object, p).cloned();
        assert_eq!(path(".metadata.name"), Some(json!("x")));
        assert_eq!(path(r#".status.conditions[?(@.type=="Ready")].status"#), Some(json!("True")));
        assert_eq!(path(".status.conditions[?(@.type=='Disabled')].status"), Some(json!("False")));
        assert_eq!(path(r#".status.conditions[?(@.type=="Gone")].status"#), None);
        assert_eq!(path(".status.count"), Some(json!(3)));
        assert_eq!(path(".status.empty"), None);
        assert_eq!(path(".status.missing.deeper"), None);
        assert_eq!(path(".metadata.name.deeper"), None);
        assert_eq!(path(r#".metadata[?(@.type=="Ready")].status"#), None);
        for unsupported in [
            "",
            ".",
            "status",
            ".status..count",
            ".status.conditions[0]",
            "{.metadata.name}",
            ".status.conditions[?(@.type==Ready)]",
            ".status.conditions[?(@.type==\"Ready\"",
        ] {
            assert_eq!(path(unsupported), None, "{unsupported:?}");
        }
    }

    #[test]
    fn cells_render_by_column_type() {
        let column = |kind: &str| CustomResourceColumnDefinition {
            name: "X".into(),
            type_: kind.into(),
            json_path: ".v".into(),
            ..Default::default()
        };
        let cell = |kind: &str, v: Value| column_cell(&column(kind), &json!({"v": v}), now());
        assert_eq!(cell("integer", json!(7)), Some("7".into()));
        assert_eq!(cell("integer", json!(7.9)), Some("7".into()));
        assert_eq!(cell("integer", json!("7")), None);
        assert_eq!(cell("string", json!(7)), Some("7".into()));
        assert_eq!(cell("string", json!(true)), Some("true".into()));
        assert_eq!(cell("string", json!({"b": "<", "a": 1})), Some(r#"{"a":1,"b":"\u003c"}"#.into()));
        assert_eq!(cell("number", json!(1.5)), Some("1.5".into()));
        assert_eq!(cell("number", json!(2_000_000)), Some("2e+06".into()));
        assert_eq!(cell("number", json!(0.00001)), Some("1e-05".into()));
        assert_eq!(cell("boolean", json!(false)), Some("false".into()));
        assert_eq!(cell("boolean", json!("false")), None);
        assert_eq!(cell("date", json!(5)), None);
        assert_eq!(cell("unknown", json!("x")), None);
    }

    #[test]
    fn cells_cannot_break_the_table_or_drive_the_terminal() {
        assert_eq!(printable_cell("plain"), "plain");
        assert_eq!(printable_cell("one\ntwo"), "one...");
        assert_eq!(printable_cell("one\r\ntwo"), "one...");
        assert_eq!(printable_cell("\u{c}x"), "...");
        assert_eq!(printable_cell("red \u{1b}[31m"), "red ^[[31m");
    }

    #[test]
    fn align_columns_is_gos_tabwriter_with_kubectls_settings() {
        assert_eq!(align_columns("A\tB\nx\ty\n"), "A     B\nx     y\n");
        assert_eq!(align_columns("NAME\tAGE\nlonger-name\t1s\n"), "NAME          AGE\nlonger-name   1s\n");
        // Widths count runes; a cell with a tab in it starts a new column, as in kubectl.
        assert_eq!(align_columns("ÄÖÜÄÖÜÄ\tx\na\tb\tc\n"), "ÄÖÜÄÖÜÄ   x\na         b     c\n");
        assert_eq!(align_columns("only\none\n"), "only\none\n");
    }

    #[test]
    fn json_is_kubectls_list_with_four_space_indent() {
        let mut object = integration("default", "a<b", "slack", 10, None);
        object["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
        let text = render(&NotificationIntegration::crd(), &[object.clone()], Output::Json, false, now());
        let parsed: Value = serde_json::from_str(&text).unwrap();
        object["metadata"].as_object_mut().unwrap().remove("managedFields");
        assert_eq!(
            parsed,
            json!({"apiVersion": "v1", "items": [object], "kind": "List", "metadata": {"resourceVersion": ""}})
        );
        assert!(text.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n            \"apiVersion\": \"kube-notify.io/v1alpha1\",\n"), "{text}");
        assert!(text.contains("\"name\": \"a\\u003cb\""), "{text}");
        assert!(
            text.ends_with(
                "    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"
            ),
            "{text}"
        );

        let empty = render(&NotificationIntegration::crd(), &[], Output::Json, false, now());
        assert_eq!(
            empty,
            "{\n    \"apiVersion\": \"v1\",\n    \"items\": [],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"
        );
    }

    #[test]
    fn json_lists_in_namespace_then_name_order() {
        let objects = vec![integration("b", "a", "slack", 1, None), integration("a", "z", "slack", 1, None)];
        let text = render(&NotificationIntegration::crd(), &objects, Output::Json, true, now());
        let parsed: Value = serde_json::from_str(&text).unwrap();
        let names: Vec<&str> = parsed["items"].as_array().unwrap().iter().map(|o| metadata_str(o, "name")).collect();
        assert_eq!(names, ["z", "a"]);
    }

    #[test]
    fn yaml_is_kubectls_list_with_go_yaml_quoting() {
        let objects = integrations();
        let text = render(&NotificationIntegration::crd(), &objects, Output::Yaml, false, now());
        let parsed: Value = serde_yaml::from_str(&text).unwrap();
        let sorted: Vec<&Value> = sorted_by_namespace_and_name(&objects);
        assert_eq!(parsed, list_of(&sorted));

        let one = vec![integration(
            "default",
            "team-slack",
            "slack",
            3_600,
            Some(json!({"conditions": [condition("Ready", "True")], "consecutiveErrors": 0})),
        )];
        let text = render(&NotificationIntegration::crd(), &one, Output::Yaml, false, now());
        assert_eq!(
            text,
            concat!(
                "apiVersion: v1\n",
                "items:\n",
                "- apiVersion: kube-notify.io/v1alpha1\n",
                "  kind: NotificationIntegration\n",
                "  metadata:\n",
                "    creationTimestamp: \"2025-06-01T11:00:00Z\"\n",
                "    name: team-slack\n",
                "    namespace: default\n",
                "  spec:\n",
                "    secretRef:\n",
                "      name: team-slack\n",
                "    service: slack\n",
                "  status:\n",
                "    conditions:\n",
                "    - lastTransitionTime: \"2025-06-01T11:59:00Z\"\n",
                "      message: \"\"\n",
                "      reason: Test\n",
                "      status: \"True\"\n",
                "      type: Ready\n",
                "    consecutiveErrors: 0\n",
                "kind: List\n",
                "metadata:\n",
                "  resourceVersion: \"\"\n",
            )
        );

        let empty = render(&NotificationIntegration::crd(), &[], Output::Yaml, false, now());
        assert_eq!(empty, "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n");
    }

    #[test]
    fn yaml_round_trips_odd_strings_and_keys() {
        let mut object = integration("default", "odd", "slack", 1, None);
        object["metadata"]["labels"] = json!({
            "yes": "on", "123": "0x1F", "quote\"d": "say \"hi\"", "kubenotifygoquoted0": "kubenotifygoquoted1",
            "multi": "line one\nline two", "time": "12:30", "plain": "a: b", "float": "1e5",
        });
        let text = render(&NotificationIntegration::crd(), &[object.clone()], Output::Yaml, false, now());
        let parsed: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed["items"][0], object, "{text}");
        for line in ["\"yes\": \"on\"", "\"123\": \"0x1F\"", "time: \"12:30\"", "float: \"1e5\"", "plain: 'a: b'"] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn go_yaml_resolution() {
        for s in [
            "",
            "~",
            "null",
            "True",
            "no",
            "OFF",
            "y",
            ".inf",
            "-.Inf",
            ".5",
            "0",
            "-12",
            "+3",
            "1_000",
            "0x1f",
            "0o17",
            "0b101",
            "017",
            "08",
            "1.5",
            "1e3",
            "-2.5E-3",
            "99999999999999999999",
            "1:20",
            "-1:20:30.5",
            "2025-06-01T12:00:00Z",
            "2025-06-01",
            "2025-06-01 12:00:00",
        ] {
            assert!(go_yaml_reads_as_non_string(s), "{s:?} reads as a non-string");
        }
        for s in [
            "slack", "nope", "0x", "0b", "1e", "1.2.3", "1:60", "-", "+", ".", "12-30", "2025-06", "nan", "inf",
            "1e400", "v1", "10m", "1.5Gi",
        ] {
            assert!(!go_yaml_reads_as_non_string(s), "{s:?} reads as a string");
        }
    }
}
