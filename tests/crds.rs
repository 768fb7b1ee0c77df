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
