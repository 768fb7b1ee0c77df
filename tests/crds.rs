//! The checked-in CRDs under `crds/` (and the chart's copy) must be exactly
//! what the Rust types generate. Regenerate with:
//! `KUBE_NOTIFY_UPDATE_CRDS=1 cargo test --test crds`.

use std::path::Path;

#[test]
fn checked_in_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("KUBE_NOTIFY_UPDATE_CRDS").is_some();
    let mut dirs = vec![root.join("crds")];
    let chart_crds = root.join("charts/kube-notify/crds");
    if chart_crds.exists() {
        dirs.push(chart_crds);
    }
    for dir in dirs {
        for (file, crd) in kube_notify::crd::all() {
            let path = dir.join(file);
            let generated = kube_notify::crd::to_yaml(&crd);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e}; run KUBE_NOTIFY_UPDATE_CRDS=1 cargo test --test crds", path.display())
            });
            assert!(
                checked_in == generated,
                "{} differs from what the types generate; run KUBE_NOTIFY_UPDATE_CRDS=1 cargo test --test crds",
                path.display()
            );
        }
    }
}

#[test]
fn every_schema_property_has_a_description() {
    fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                let here = format!("{path}.{name}");
                // metadata and apiVersion/kind are documented by Kubernetes itself.
                let standard = path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata");
                if !standard && sub.get("description").is_none() {
                    missing.push(here.clone());
                }
                walk(&here, sub, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    for (file, crd) in kube_notify::crd::all() {
        let json = serde_json::to_value(&crd).unwrap();
        for version in json["spec"]["versions"].as_array().unwrap() {
            let schema = &version["schema"]["openAPIV3Schema"];
            let mut missing = Vec::new();
            walk("", schema, &mut missing);
            assert!(missing.is_empty(), "{file}: fields without a description (kubectl explain): {missing:?}");
        }
    }
}

#[test]
fn the_crd_subcommand_prints_the_checked_in_crds() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-notify")).arg("crd").output().unwrap();
    assert!(out.status.success());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected: String = kube_notify::crd::all()
        .into_iter()
        .map(|(file, _)| std::fs::read_to_string(root.join("crds").join(file)).unwrap())
        .collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

/// The oldest Kubernetes minor release (1.x) the CRDs work on. README's
/// "Supported Kubernetes versions" and the chart's `kubeVersion` say the same
/// (checked below).
const MINIMUM_MINOR: u32 = 28;

/// Each CRD feature the API server must know, and the first Kubernetes minor
/// release where it is available and on by default (an older API server
/// refuses or silently drops it). A key not listed fails the test: add it
/// with its release (from the Kubernetes changelog or KEP) before using it.
const FEATURES: &[(&str, u32)] = &[
    // apiextensions.k8s.io/v1 structural schemas, subresources, printer columns: 1.16.
    ("type", 16),
    ("description", 16),
    ("title", 16),
    ("properties", 16),
    ("items", 16),
    ("required", 16),
    ("enum", 16),
    ("format", 16),
    ("pattern", 16),
    ("minimum", 16),
    ("maximum", 16),
    ("minLength", 16),
    ("maxLength", 16),
    ("minItems", 16),
    ("maxItems", 16),
    ("maxProperties", 16),
    ("nullable", 16),
    ("additionalProperties", 16),
    ("x-kubernetes-preserve-unknown-fields", 16),
    ("x-kubernetes-int-or-string", 16),
    ("x-kubernetes-list-type", 16),
    ("x-kubernetes-map-type", 16),
    ("subresources", 16),
    ("additionalPrinterColumns", 16),
    // Defaults in structural schemas (apiextensions.k8s.io/v1, GA in 1.17).
    ("default", 17),
    // CEL validation rules (KEP-2876): beta and on by default in 1.25, GA in 1.29.
    ("x-kubernetes-validations", 25),
    ("x-kubernetes-validations.rule", 25),
    ("x-kubernetes-validations.message", 25),
    // `reason` and `fieldPath` of a validation rule: added in 1.28 (kubernetes#118041).
    ("x-kubernetes-validations.reason", 28),
    ("x-kubernetes-validations.fieldPath", 28),
];

/// CEL functions and macros the rules may call, with the release that has them.
const CEL_FUNCTIONS: &[(&str, u32)] = &[
    ("has", 25),
    ("size", 25),
    ("all", 25),
    ("exists", 25),
    ("exists_one", 25),
    ("matches", 25),
    ("startsWith", 25),
    ("endsWith", 25),
    ("contains", 25),
];

/// Every feature the CRDs use, with where: schema keywords, the keys of
/// each validation rule, the CEL functions its rule calls, and the
/// version-level fields.
fn used_features() -> Vec<(String, String)> {
    fn walk(path: &str, schema: &serde_json::Value, used: &mut Vec<(String, String)>) {
        let Some(object) = schema.as_object() else { return };
        for (key, value) in object {
            used.push((key.clone(), path.to_string()));
            match key.as_str() {
                "properties" => {
                    for (name, sub) in value.as_object().into_iter().flatten() {
                        walk(&format!("{path}.{name}"), sub, used);
                    }
                }
                "items" | "additionalProperties" => walk(&format!("{path}[]"), value, used),
                "x-kubernetes-validations" => {
                    for rule in value.as_array().into_iter().flatten() {
                        for field in rule.as_object().into_iter().flatten().map(|(k, _)| k) {
                            used.push((format!("x-kubernetes-validations.{field}"), path.to_string()));
                        }
                        let text = rule["rule"].as_str().unwrap_or_default();
                        for function in cel_calls(text) {
                            used.push((format!("cel:{function}"), format!("{path}: {text}")));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut used = Vec::new();
    for (file, crd) in kube_notify::crd::all() {
        let json = serde_json::to_value(&crd).unwrap();
        for version in json["spec"]["versions"].as_array().unwrap() {
            let name = version["name"].as_str().unwrap_or_default();
            for key in ["subresources", "additionalPrinterColumns", "selectableFields"] {
                if version.get(key).is_some() {
                    used.push((key.to_string(), format!("{file} {name}")));
                }
            }
            walk(&format!("{file} {name} "), &version["schema"]["openAPIV3Schema"], &mut used);
        }
    }
    used
}

/// The names a CEL expression calls: identifiers followed by `(`.
fn cel_calls(rule: &str) -> Vec<String> {
    let mut calls = Vec::new();
    let mut quote = None;
    let chars: Vec<char> = rule.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i + 1 < chars.len() && (chars[i + 1].is_alphanumeric() || chars[i + 1] == '_') {
                    i += 1;
                }
                let ident: String = chars[start..=i].iter().collect();
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if next == Some(&'(') {
                    calls.push(ident);
                }
            }
            None => {}
        }
        i += 1;
    }
    calls
}

#[test]
fn the_crds_use_nothing_newer_than_the_minimum_kubernetes_version() {
    let used = used_features();
    assert!(used.iter().any(|(f, _)| f == "x-kubernetes-validations.fieldPath"), "the walk finds the rules");
    let mut newest = 0;
    for (feature, place) in &used {
        let since = match feature.strip_prefix("cel:") {
            Some(function) => CEL_FUNCTIONS.iter().find(|(f, _)| *f == function).map(|(_, v)| *v),
            None => FEATURES.iter().find(|(f, _)| f == feature).map(|(_, v)| *v),
        };
        let since = since.unwrap_or_else(|| {
            panic!(
                "{place}: {feature} is not in FEATURES/CEL_FUNCTIONS: add it with the Kubernetes release that has it"
            )
        });
        assert!(
            since <= MINIMUM_MINOR,
            "{place}: {feature} needs Kubernetes 1.{since}, newer than the stated minimum 1.{MINIMUM_MINOR}: \
             raise MINIMUM_MINOR, README and Chart.yaml kubeVersion, or do without it"
        );
        newest = newest.max(since);
    }
    assert_eq!(
        newest, MINIMUM_MINOR,
        "nothing in the CRDs needs 1.{MINIMUM_MINOR} any more (the newest feature is from 1.{newest}): lower the minimum"
    );
}

#[test]
fn readme_chart_and_tests_agree_on_the_kubernetes_versions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    // Helm refuses `helm install` and `helm template --kube-version` below the minimum.
    let chart = read("charts/kube-notify/Chart.yaml");
    let kube_version =
        chart.lines().find_map(|l| l.strip_prefix("kubeVersion: ")).expect("Chart.yaml sets kubeVersion");
    assert_eq!(kube_version, format!("\">=1.{MINIMUM_MINOR}.0-0\""), "Chart.yaml kubeVersion");
    // The tested version: the API types (k8s-openapi's feature) and the API
    // server emulation's version.
    let cargo = read("Cargo.toml");
    let tested: u32 = cargo
        .lines()
        .find(|l| l.starts_with("k8s-openapi"))
        .and_then(|l| l.split("\"v1_").nth(1))
        .and_then(|v| v.split('"').next())
        .and_then(|v| v.parse().ok())
        .expect("Cargo.toml enables one k8s-openapi v1_NN feature");
    let discovery = read("tests/support/apiserver/discovery.rs");
    assert!(
        discovery.contains(&format!("\"minor\": \"{tested}\", \"gitVersion\": \"v1.{tested}.0-emulated\"")),
        "the API server emulation reports Kubernetes 1.{tested}, the version k8s-openapi targets"
    );
    assert!(tested >= MINIMUM_MINOR);
    let readme = read("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Supported Kubernetes versions"))
        .expect("README has a section \"Supported Kubernetes versions\"");
    for needle in [
        format!("**Minimum: Kubernetes 1.{MINIMUM_MINOR}**"),
        format!("**Tested: Kubernetes 1.{tested}**"),
        format!("kubeVersion: {kube_version}"),
    ] {
        assert!(section.contains(&needle), "README \"Supported Kubernetes versions\" must say {needle}");
    }
}

#[test]
fn cel_calls_finds_called_names_only() {
    assert_eq!(cel_calls("has(self.a) != has(self.b)"), ["has", "has"]);
    assert_eq!(cel_calls("self.x.size() > 0 && 'f(x)' == self.y"), ["size"]);
    assert!(cel_calls("self.service != 'chatwork' || has(self.chatwork)").iter().all(|c| c == "has"));
}
