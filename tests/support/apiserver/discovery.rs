//! Discovery: /version, /api, /api/v1, /apis, /apis/{g}, /apis/{g}/{v},
//! both the classic documents and aggregated discovery (apidiscovery v2).

use super::Shared;
use super::errors::{ApiError, ApiResult};
use super::routes::json_response;
use super::store::ResourceType;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

fn resource_entry(r: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        main["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        main["categories"] = json!(r.categories);
    }
    let mut out = vec![main];
    if r.status_subresource {
        out.push(json!({
            "name": format!("{}/status", r.plural),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    out
}

fn aggregated_resource(r: &ResourceType) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if r.status_subresource {
        v["subresources"] = json!([{
            "subresource": "status",
            "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
            "verbs": ["get", "patch", "update"],
        }]);
    }
    v
}

/// Groups in discovery order with their versions (preferred first).
fn groups(resources: &[Arc<ResourceType>]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in resources {
        let entry = match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some(e) => e,
            None => {
                out.push((r.group.clone(), Vec::new()));
                out.last_mut().expect("pushed")
            }
        };
        if !entry.1.contains(&r.version) {
            if r.storage_version {
                entry.1.insert(0, r.version.clone());
            } else {
                entry.1.push(r.version.clone());
            }
        }
    }
    out
}

fn aggregated(resources: &[Arc<ResourceType>], core: bool) -> Value {
    let items: Vec<Value> = groups(resources)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let rs: Vec<Value> = resources
                        .iter()
                        .filter(|r| r.group == g && r.version == *v)
                        .map(|r| aggregated_resource(r))
                        .collect();
                    json!({"version": v, "resources": rs, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

fn wants_aggregated(accept: &str) -> bool {
    accept
        .split(',')
        .any(|p| p.contains("as=APIGroupDiscoveryList") && p.contains("g=apidiscovery.k8s.io") && p.contains("v=v2"))
}

fn aggregated_response(v: &Value) -> Response {
    let mut resp = json_response(200, v, &[]);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"),
    );
    resp
}

pub(crate) fn serve(shared: &Shared, method: &str, path: &str, accept: &str, host: &str) -> ApiResult<Response> {
    if method != "GET" {
        return Err(ApiError::method_not_allowed());
    }
    let resources = shared.store.lock().unwrap().resources.clone();
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let doc = match segs.as_slice() {
        ["version"] => json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-emulated", "gitCommit": "emulated",
            "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64",
        }),
        ["api"] => {
            if wants_aggregated(accept) {
                return Ok(aggregated_response(&aggregated(&resources, true)));
            }
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        }
        ["apis"] => {
            if wants_aggregated(accept) {
                return Ok(aggregated_response(&aggregated(&resources, false)));
            }
            let gs: Vec<Value> = groups(&resources)
                .into_iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, vs)| group_doc(&g, &vs))
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
        }
        ["apis", g] => {
            let Some((_, vs)) = groups(&resources).into_iter().find(|(x, _)| x == g) else {
                return Err(ApiError::resource_not_found());
            };
            let mut d = group_doc(g, &vs);
            d["kind"] = json!("APIGroup");
            d["apiVersion"] = json!("v1");
            d
        }
        ["api", v] | ["apis", _, v] => {
            let g = if segs[0] == "api" { "" } else { segs[1] };
            let rs: Vec<Value> =
                resources.iter().filter(|r| r.group == g && r.version == *v).flat_map(|r| resource_entry(r)).collect();
            if rs.is_empty() {
                return Err(ApiError::resource_not_found());
            }
            let gv = if g.is_empty() { v.to_string() } else { format!("{g}/{v}") };
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": rs})
        }
        _ => return Err(ApiError::resource_not_found()),
    };
    Ok(json_response(200, &doc, &[]))
}

fn group_doc(g: &str, vs: &[String]) -> Value {
    let versions: Vec<Value> = vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
    json!({
        "name": g,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}
