mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, KubeSchema, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::apiserver::{ApiServer, FaultId, FaultKind, InFlightLimit, NO_ANSWER, RequestMatcher, TokenReviewAnswer};

const T: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Slack,
    Teams,
    Webhook,
}

fn default_mode() -> String {
    "fast".into()
}

/// A toy CRD: status subresource, an enum, a minimum, a default, a required
/// field, a pattern and a CEL rule.
#[derive(CustomResource, KubeSchema, Clone, Debug, Serialize, Deserialize)]
#[kube(
    group = "test.example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd",
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[x_kube(validation = Rule::new("self.replicas <= 5 || self.service != 'webhook'").message("webhook widgets may have at most 5 replicas"))]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    pub service: Service,
    #[schemars(range(min = 1, max = 10))]
    pub replicas: i32,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[schemars(length(max = 20), regex(pattern = r"^[a-z0-9-]+$"))]
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
}

fn spec(service: Service, replicas: i32, target: &str) -> WidgetSpec {
    WidgetSpec { service, replicas, mode: "fast".into(), target: target.into(), note: None }
}

async fn server_with_widget() -> (ApiServer, kube::Client) {
    let s = ApiServer::start().await;
    s.install_crd(&Widget::crd()).expect("Widget CRD installs");
    let c = s.client();
    (s, c)
}

fn status_of(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    if !labels.is_empty() {
        c.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }
    c.data = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
    c
}

async fn raw(client: &kube::Client, req: http::Request<Vec<u8>>) -> Result<Value, Box<kube::core::Status>> {
    client.request::<Value>(req).await.map_err(status_of)
}

// ---------------------------------------------------------------- objects

#[tokio::test]
async fn create_sets_server_fields_and_rejects_clashes() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let a = api.create(&PostParams::default(), &cm("a", &[])).await.unwrap();
    let b = api.create(&PostParams::default(), &cm("b", &[])).await.unwrap();
    let rv = |c: &ConfigMap| c.resource_version().unwrap().parse::<u64>().unwrap();
    assert!(rv(&b) > rv(&a), "every write bumps the global resourceVersion");
    assert_eq!(a.uid().unwrap().len(), 36);
    assert!(a.metadata.creation_timestamp.is_some());
    assert!(a.metadata.generation.is_none(), "ConfigMaps carry no generation");
    assert!(a.metadata.managed_fields.is_some());

    let err = status_of(api.create(&PostParams::default(), &cm("a", &[])).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.details.as_ref().unwrap().name, "a");

    let mut g = cm("", &[]);
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let made = api.create(&PostParams::default(), &g).await.unwrap();
    let n = made.name_any();
    assert!(n.starts_with("gen-") && n.len() == 9, "{n}");
    assert!(n[4..].chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    // the request is recorded under the generated name
    assert_eq!(s.writes_to("configmaps", "", "default", &n), 1);

    let mut nameless = cm("", &[]);
    nameless.metadata.name = None;
    let err = status_of(api.create(&PostParams::default(), &nameless).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(err.details.unwrap().causes[0].field, "metadata.name");

    let err = status_of(api.create(&PostParams::default(), &cm("Bad_Name", &[])).await.unwrap_err());
    assert_eq!(err.code, 422);

    let mut with_rv = cm("c", &[]);
    with_rv.metadata.resource_version = Some("5".into());
    let err = status_of(api.create(&PostParams::default(), &with_rv).await.unwrap_err());
    assert_eq!(err.code, 500);
    assert!(err.message.contains("resourceVersion should not be set"));

    let mut wrong_ns = cm("d", &[]);
    wrong_ns.metadata.namespace = Some("other".into());
    let err = status_of(api.create(&PostParams::default(), &wrong_ns).await.unwrap_err());
    assert_eq!(err.code, 400);

    let err = status_of(api.get("missing").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    let d = err.details.unwrap();
    assert_eq!((d.name.as_str(), d.kind.as_str(), d.group.as_str()), ("missing", "configmaps", ""));
    assert_eq!(err.message, "configmaps \"missing\" not found");
}

#[tokio::test]
async fn generation_only_moves_on_spec_changes() {
    let (s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c, "default");
    let w = api.create(&PostParams::default(), &Widget::new("w", spec(Service::Slack, 1, "t"))).await.unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    let generation = |w: &Widget| w.metadata.generation.unwrap();

    let st = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(json!({"status": {"lastError": "x"}})))
        .await
        .unwrap();
    assert_eq!(generation(&st), 1, "status writes never bump generation");
    let labeled = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(generation(&labeled), 1, "metadata changes never bump generation");
    let changed =
        api.patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}}))).await.unwrap();
    assert_eq!(generation(&changed), 2);

    // a no-op write stores nothing: same resourceVersion, no event
    let before = changed.resource_version();
    let same = api.patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}}))).await.unwrap();
    assert_eq!(same.resource_version(), before);
    assert_eq!(generation(&same), 2);
    // create + 3 patches (the no-op one is still a successful call)
    assert_eq!(s.writes_to("widgets", "", "default", "w"), 4);
    assert_eq!(s.writes_to("widgets", "status", "default", "w"), 1);
}

#[tokio::test]
async fn put_needs_the_current_resource_version() {
    let (_s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c.clone(), "default");
    let w = api.create(&PostParams::default(), &Widget::new("w", spec(Service::Slack, 1, "t"))).await.unwrap();
    let mut w2 = w.clone();
    w2.spec.replicas = 3;
    let updated = api.replace("w", &PostParams::default(), &w2).await.unwrap();
    assert_eq!(updated.spec.replicas, 3);
    // stale
    let mut stale = w.clone();
    stale.spec.replicas = 4;
    let err = status_of(api.replace("w", &PostParams::default(), &stale).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.message.contains("the object has been modified"));
    // unconditional
    let mut uncond = updated.clone();
    uncond.metadata.resource_version = None;
    let err = status_of(api.replace("w", &PostParams::default(), &uncond).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert_eq!(err.details.unwrap().causes[0].field, "metadata.resourceVersion");
    // name mismatch
    let err = status_of(api.replace("other", &PostParams::default(), &updated).await.unwrap_err());
    assert_eq!(err.code, 400);
    // missing
    let mut ghost = updated.clone();
    ghost.metadata.name = Some("ghost".into());
    let err = status_of(api.replace("ghost", &PostParams::default(), &ghost).await.unwrap_err());
    assert_eq!(err.code, 404);

    // Leases (leader election) behave the same.
    let leases: Api<Lease> = Api::namespaced(c, "default");
    let mut l = Lease::default();
    l.metadata.name = Some("leader".into());
    l.spec =
        Some(LeaseSpec { holder_identity: Some("a".into()), lease_duration_seconds: Some(15), ..Default::default() });
    let l = leases.create(&PostParams::default(), &l).await.unwrap();
    let mut a = l.clone();
    a.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases.replace("leader", &PostParams::default(), &a).await.unwrap();
    let mut b = l.clone();
    b.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = status_of(leases.replace("leader", &PostParams::default(), &b).await.unwrap_err());
    assert_eq!(err.code, 409);
    let mut bad = l.clone();
    bad.metadata.name = Some("bad".into());
    bad.metadata.resource_version = None;
    bad.spec.as_mut().unwrap().lease_duration_seconds = Some(0);
    let err = status_of(leases.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn status_subresource_splits_writes() {
    let (_s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c, "default");
    let mut w = Widget::new("w", spec(Service::Slack, 1, "t"));
    w.status = Some(WidgetStatus { last_error: Some("dropped".into()), ..Default::default() });
    let w = api.create(&PostParams::default(), &w).await.unwrap();
    assert!(w.status.is_none(), "status is dropped on create");

    let st = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"lastError": "boom"}, "spec": {"replicas": 9}, "metadata": {"labels": {"x": "y"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(st.status.as_ref().unwrap().last_error.as_deref(), Some("boom"));
    assert_eq!(st.spec.replicas, 1, "/status ignores everything but status");
    assert!(st.labels().is_empty());

    let mut main = st.clone();
    main.spec.replicas = 2;
    main.status = Some(WidgetStatus::default());
    let main = api.replace("w", &PostParams::default(), &main).await.unwrap();
    assert_eq!(main.spec.replicas, 2);
    assert_eq!(main.status.as_ref().unwrap().last_error.as_deref(), Some("boom"), "the main resource ignores status");

    // status is validated too
    let err = status_of(
        api.patch_status("w", &PatchParams::default(), &Patch::Merge(json!({"status": {"observedGeneration": "one"}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.details.unwrap().causes[0].field, "status.observedGeneration");

    // replace_status with a stale resourceVersion
    let mut stale = w.clone();
    stale.status = Some(WidgetStatus::default());
    let err = status_of(api.replace_status("w", &PostParams::default(), &stale).await.unwrap_err());
    assert_eq!(err.code, 409);
}

// ---------------------------------------------------------------- patches

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let (_s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c.clone(), "default");
    let mut w = Widget::new("w", spec(Service::Slack, 1, "t"));
    w.spec.note = Some("hello".into());
    let w = api.create(&PostParams::default(), &w).await.unwrap();

    let p = api.patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"note": null}}))).await.unwrap();
    assert_eq!(p.spec.note, None, "null deletes in a merge patch");

    // a resourceVersion in a patch is a precondition
    let err = status_of(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": w.resource_version()}, "spec": {"replicas": 2}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);

    // JSON patch (sent raw: the kube `jsonpatch` feature is not enabled)
    let json_patch = |body: Value| {
        http::Request::patch("/apis/test.example.com/v1/namespaces/default/widgets/w")
            .header("content-type", "application/json-patch+json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    };
    let ok = raw(&c, json_patch(json!([{"op": "test", "path": "/spec/replicas", "value": 1}, {"op": "replace", "path": "/spec/replicas", "value": 4}]))).await.unwrap();
    assert_eq!(ok["spec"]["replicas"], 4);
    let err = raw(&c, json_patch(json!([{"op": "test", "path": "/spec/replicas", "value": 1}, {"op": "replace", "path": "/spec/replicas", "value": 5}]))).await.unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));

    // strategic merge patch is not for custom resources
    let err = status_of(
        api.patch("w", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"replicas": 2}}))).await.unwrap_err(),
    );
    assert_eq!(err.code, 415);
    // but works (as a merge) for built-ins
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    cms.create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    let p = cms.patch("x", &PatchParams::default(), &Patch::Strategic(json!({"data": {"k2": "v2"}}))).await.unwrap();
    assert_eq!(p.data.unwrap().len(), 2);
    // patching something that does not exist
    let err = status_of(cms.patch("nope", &PatchParams::default(), &Patch::Merge(json!({}))).await.unwrap_err());
    assert_eq!(err.code, 404);
    // unknown content type
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/x")
        .header("content-type", "text/plain")
        .body(b"{}".to_vec())
        .unwrap();
    assert_eq!(raw(&c, req).await.unwrap_err().code, 415);
}

#[tokio::test]
async fn server_side_apply() {
    let (s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c.clone(), "default");
    let body = json!({
        "apiVersion": "test.example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"service": "slack", "replicas": 1, "target": "t"},
    });
    // fieldManager is required
    let err = status_of(api.patch("w", &PatchParams::default(), &Patch::Apply(&body)).await.unwrap_err());
    assert_eq!(err.code, 422);
    // apply creates
    let op = PatchParams::apply("operator");
    let w = api.patch("w", &op, &Patch::Apply(&body)).await.unwrap();
    assert_eq!(w.spec.mode, "fast");
    assert!(
        w.managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some("operator") && m.operation.as_deref() == Some("Apply"))
    );

    // status apply: lists are replaced whole, fields no longer applied go
    let status = |v: Value| json!({"apiVersion": "test.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": v});
    api.patch_status(
        "w",
        &op,
        &Patch::Apply(status(json!({
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Synced", "status": "True"}],
            "lastError": "boom",
        }))),
    )
    .await
    .unwrap();
    let w = api
        .patch_status("w", &op, &Patch::Apply(status(json!({"conditions": [{"type": "Ready", "status": "True"}]}))))
        .await
        .unwrap();
    let st = w.status.unwrap();
    assert_eq!(st.conditions, vec![Condition { type_: "Ready".into(), status: "True".into() }]);
    assert_eq!(st.last_error, None, "a field the manager stopped applying is removed");

    // another manager changing an owned field conflicts, unless forced
    let other = PatchParams::apply("someone-else");
    let change = json!({"apiVersion": "test.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"replicas": 3}});
    let err = status_of(api.patch("w", &other, &Patch::Apply(&change)).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.message.contains("conflict with \"operator\""), "{}", err.message);
    let forced = api.patch("w", &other.clone().force(), &Patch::Apply(&change)).await.unwrap();
    assert_eq!(forced.spec.replicas, 3);

    // YAML bodies work; managedFields in an apply body do not
    let yaml = "apiVersion: test.example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  note: from-yaml\n";
    let req = http::Request::patch("/apis/test.example.com/v1/namespaces/default/widgets/w?fieldManager=yaml")
        .header("content-type", "application/apply-patch+yaml")
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    let v = raw(&c, req).await.unwrap();
    assert_eq!(v["spec"]["note"], "from-yaml");
    let current = api.get("w").await.unwrap();
    let err = status_of(api.patch("w", &PatchParams::apply("operator"), &Patch::Apply(&current)).await.unwrap_err());
    assert_eq!(err.code, 400);
    assert!(err.message.contains("managedFields"));
    // apply to /status of something missing
    let missing =
        json!({"apiVersion": "test.example.com/v1", "kind": "Widget", "metadata": {"name": "nope"}, "status": {}});
    let err = status_of(api.patch_status("nope", &op, &Patch::Apply(missing)).await.unwrap_err());
    assert_eq!(err.code, 404);
    assert!(s.usage_by("admin").contains(&(
        "patch".into(),
        "test.example.com".into(),
        "widgets".into(),
        "status".into()
    )));
}

// ---------------------------------------------------------------- delete

async fn next_event<K: Clone + std::fmt::Debug>(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> WatchEvent<K> {
    loop {
        let ev = tokio::time::timeout(T, stream.next())
            .await
            .expect("watch event in time")
            .expect("stream open")
            .expect("event ok");
        if !matches!(ev, WatchEvent::Bookmark(_)) {
            return ev;
        }
    }
}

#[tokio::test]
async fn delete_with_and_without_finalizers() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let start = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut stream = api.watch(&WatchParams::default(), &start).await.unwrap().boxed();

    api.create(&PostParams::default(), &cm("plain", &[])).await.unwrap();
    assert!(matches!(next_event(&mut stream).await, WatchEvent::Added(_)));
    let res = api.delete("plain", &DeleteParams::default()).await.unwrap();
    assert!(res.is_right(), "an immediate delete answers with a Status");
    match next_event(&mut stream).await {
        WatchEvent::Deleted(c) => {
            assert_eq!(c.data.unwrap()["k"], "v", "DELETED carries the last state");
        }
        other => panic!("{other:?}"),
    }

    let mut f = cm("fin", &[]);
    f.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &f).await.unwrap();
    next_event(&mut stream).await;
    let res = api.delete("fin", &DeleteParams::default()).await.unwrap();
    let pending = res.left().expect("a pending delete answers with the object");
    assert!(pending.metadata.deletion_timestamp.is_some());
    match next_event(&mut stream).await {
        WatchEvent::Modified(c) => assert!(c.metadata.deletion_timestamp.is_some()),
        other => panic!("{other:?}"),
    }
    // no new finalizers while deleting
    let err = status_of(
        api.patch(
            "fin",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    // clearing the finalizers removes it
    api.patch("fin", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    assert!(matches!(next_event(&mut stream).await, WatchEvent::Deleted(_)));
    assert_eq!(status_of(api.get("fin").await.unwrap_err()).code, 404);

    // preconditions
    let x = api.create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions { resource_version: Some("1".into()), uid: None }),
        ..Default::default()
    };
    assert_eq!(status_of(api.delete("x", &dp).await.unwrap_err()).code, 409);
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions { resource_version: x.resource_version(), uid: x.uid() }),
        ..Default::default()
    };
    api.delete("x", &dp).await.unwrap();
}

#[tokio::test]
async fn owner_references_are_garbage_collected() {
    let (s, c) = server_with_widget().await;
    let widgets: Api<Widget> = Api::namespaced(c.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let owner_of = |w: &Widget| {
        let mut r = w.controller_owner_ref(&()).unwrap();
        r.block_owner_deletion = Some(true);
        r
    };
    // background
    let w = widgets.create(&PostParams::default(), &Widget::new("w", spec(Service::Slack, 1, "t"))).await.unwrap();
    let mut child = cm("child", &[]);
    child.metadata.owner_references = Some(vec![owner_of(&w)]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    widgets.delete("w", &DeleteParams::background()).await.unwrap();
    assert!(s.wait_for_object(("", "v1", "configmaps"), "default", "child", T, |o| o.is_none()).await);

    // orphan keeps the dependant and strips the reference
    let w = widgets.create(&PostParams::default(), &Widget::new("w2", spec(Service::Slack, 1, "t"))).await.unwrap();
    let mut child = cm("orphan", &[]);
    child.metadata.owner_references = Some(vec![owner_of(&w)]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    widgets.delete("w2", &DeleteParams::orphan()).await.unwrap();
    assert!(s.wait_for_object(("test.example.com", "v1", "widgets"), "default", "w2", T, |o| o.is_none()).await);
    let kept = cms.get("orphan").await.unwrap();
    assert!(kept.metadata.owner_references.unwrap_or_default().is_empty());

    // foreground: the owner waits for its dependants
    let w = widgets.create(&PostParams::default(), &Widget::new("w3", spec(Service::Slack, 1, "t"))).await.unwrap();
    let mut child = cm("fg", &[]);
    child.metadata.owner_references = Some(vec![owner_of(&w)]);
    child.metadata.finalizers = Some(vec!["example.com/slow".into()]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    widgets.delete("w3", &DeleteParams::foreground()).await.unwrap();
    assert!(
        s.wait_for_object(("", "v1", "configmaps"), "default", "fg", T, |o| o
            .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string()))
            .await
    );
    let owner = widgets.get("w3").await.unwrap();
    assert!(owner.finalizers().contains(&"foregroundDeletion".to_string()));
    cms.patch("fg", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    assert!(s.wait_for_object(("test.example.com", "v1", "widgets"), "default", "w3", T, |o| o.is_none()).await);

    // a dependant whose owner never existed is collected too
    let mut dangling = cm("dangling", &[]);
    let mut r = owner_of(&w);
    r.uid = "00000000-0000-4000-8000-000000000000".into();
    dangling.metadata.owner_references = Some(vec![r]);
    cms.create(&PostParams::default(), &dangling).await.unwrap();
    assert!(s.wait_for_object(("", "v1", "configmaps"), "default", "dangling", T, |o| o.is_none()).await);
}

// ---------------------------------------------------------------- list

#[tokio::test]
async fn list_selectors_and_pagination() {
    let s = ApiServer::start().await;
    let c = s.client();
    for (ns, name, labels) in [
        ("a", "one", vec![("app", "x"), ("tier", "web")]),
        ("a", "two", vec![("app", "y")]),
        ("b", "three", vec![("app", "x")]),
        ("b", "four", vec![]),
    ] {
        let api: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
        api.create(&PostParams::default(), &cm(name, &labels)).await.unwrap();
    }
    let all: Api<ConfigMap> = Api::all(c.clone());
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        let mut v: Vec<String> = l.items.iter().map(|c| c.name_any()).collect();
        v.sort();
        v
    };
    let q = |sel: &str| ListParams::default().labels(sel);
    assert_eq!(names(all.list(&q("app=x")).await.unwrap()), ["one", "three"]);
    assert_eq!(names(all.list(&q("app==x,tier")).await.unwrap()), ["one"]);
    assert_eq!(names(all.list(&q("app!=x")).await.unwrap()), ["four", "two"]);
    assert_eq!(names(all.list(&q("app in (x,y)")).await.unwrap()), ["one", "three", "two"]);
    assert_eq!(names(all.list(&q("app notin (x)")).await.unwrap()), ["four", "two"]);
    assert_eq!(names(all.list(&q("!app")).await.unwrap()), ["four"]);
    assert_eq!(names(all.list(&q("tier")).await.unwrap()), ["one"]);
    let err = status_of(all.list(&q("app in x")).await.unwrap_err());
    assert_eq!(err.code, 400);
    let ns_a: Api<ConfigMap> = Api::namespaced(c.clone(), "a");
    assert_eq!(names(ns_a.list(&ListParams::default()).await.unwrap()), ["one", "two"]);
    let f = |sel: &str| ListParams::default().fields(sel);
    assert_eq!(names(all.list(&f("metadata.name=two")).await.unwrap()), ["two"]);
    assert_eq!(names(all.list(&f("metadata.namespace!=a")).await.unwrap()), ["four", "three"]);
    let err = status_of(all.list(&f("data.k=v")).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));

    // deletecollection honours selectors and namespaces
    let gone = ns_a.delete_collection(&DeleteParams::default(), &ListParams::default().labels("app=y")).await.unwrap();
    assert_eq!(gone.left().unwrap().items.len(), 1);
    assert_eq!(names(ns_a.list(&ListParams::default()).await.unwrap()), ["one"]);
    Api::<ConfigMap>::namespaced(c.clone(), "a")
        .create(&PostParams::default(), &cm("two", &[("app", "y")]))
        .await
        .unwrap();

    // typed list shape
    let l = all.list(&ListParams::default()).await.unwrap();
    assert_eq!(l.types.kind, "ConfigMapList");
    assert!(l.metadata.resource_version.is_some());

    // pagination
    let page1 = all.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page1.items.len(), 3);
    let token = page1.metadata.continue_.clone().unwrap();
    assert_eq!(page1.metadata.remaining_item_count, Some(1));
    // changes after the first page don't show up in the snapshot
    Api::<ConfigMap>::namespaced(c.clone(), "c").create(&PostParams::default(), &cm("five", &[])).await.unwrap();
    let page2 = all.list(&ListParams::default().limit(3).continue_token(&token)).await.unwrap();
    assert_eq!(page2.items.len(), 1);
    assert!(page2.metadata.continue_.is_none());
    assert_eq!(page2.metadata.resource_version, page1.metadata.resource_version);
    // a compacted continue token is 410
    s.expire_history();
    let err = status_of(all.list(&ListParams::default().limit(3).continue_token(&token)).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
    // resourceVersionMatch needs a resourceVersion
    let lp = ListParams {
        resource_version: Some("1".into()),
        version_match: Some(kube::api::VersionMatch::Exact),
        ..Default::default()
    };
    assert_eq!(status_of(all.list(&lp).await.unwrap_err()).code, 410);
}

// ---------------------------------------------------------------- watch

#[tokio::test]
async fn watch_events_selectors_bookmarks_and_gone() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    api.create(&PostParams::default(), &cm("pre", &[("app", "x")])).await.unwrap();
    let rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();

    // from "0": synthetic ADDED for what exists
    let mut from_zero = api.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    match next_event(&mut from_zero).await {
        WatchEvent::Added(c) => assert_eq!(c.name_any(), "pre"),
        other => panic!("{other:?}"),
    }

    let mut sel = api.watch(&WatchParams::default().labels("app=x"), &rv).await.unwrap().boxed();
    api.create(&PostParams::default(), &cm("other", &[])).await.unwrap();
    api.patch("pre", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})))
        .await
        .unwrap();
    match next_event(&mut sel).await {
        WatchEvent::Deleted(c) => assert_eq!(c.name_any(), "pre", "stopped matching: DELETED"),
        other => panic!("{other:?}"),
    }
    api.patch("other", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})))
        .await
        .unwrap();
    match next_event(&mut sel).await {
        WatchEvent::Added(c) => assert_eq!(c.name_any(), "other", "started matching: ADDED"),
        other => panic!("{other:?}"),
    }
    api.patch("other", &PatchParams::default(), &Patch::Merge(json!({"data": {"z": "1"}}))).await.unwrap();
    assert!(matches!(next_event(&mut sel).await, WatchEvent::Modified(_)));

    // bookmarks carry only a resourceVersion
    let mut bm = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let got = tokio::time::timeout(T, async {
        loop {
            if let Some(Ok(WatchEvent::Bookmark(b))) = bm.next().await {
                return b;
            }
        }
    })
    .await
    .expect("a bookmark arrives");
    assert_eq!(got.types.kind, "ConfigMap");
    assert!(got.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap());

    // timeoutSeconds ends the stream
    let mut short = api.watch(&WatchParams::default().timeout(1).disable_bookmarks(), &rv).await.unwrap().boxed();
    let end = tokio::time::timeout(T, async { while short.next().await.is_some() {} }).await;
    assert!(end.is_ok(), "the stream ends after timeoutSeconds");

    // too old: ERROR 410
    s.expire_history();
    let mut old = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    match tokio::time::timeout(T, old.next()).await.unwrap().unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("{other:?}"),
    }
    // open watches are closed with 410 by a compaction
    let cur = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut open = api.watch(&WatchParams::default().disable_bookmarks(), &cur).await.unwrap().boxed();
    s.expire_history();
    match tokio::time::timeout(T, open.next()).await.unwrap().unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("{other:?}"),
    }
    // resourceVersionMatch without sendInitialEvents is rejected
    let req = http::Request::get(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0&resourceVersionMatch=NotOlderThan",
    )
    .body(vec![])
    .unwrap();
    assert_eq!(raw(&s.client(), req).await.unwrap_err().code, 422);
}

#[tokio::test]
async fn runtime_watchers_work_and_relist_after_compaction() {
    let (s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c.clone(), "default");
    api.create(&PostParams::default(), &Widget::new("a", spec(Service::Slack, 1, "t"))).await.unwrap();

    // default config: paginated list + watch
    let mut w = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(T, w.try_next()).await.unwrap().unwrap().unwrap() {
            watcher::Event::InitApply(o) => seen.push(o.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["a"]);
    api.create(&PostParams::default(), &Widget::new("b", spec(Service::Slack, 1, "t"))).await.unwrap();
    loop {
        if let watcher::Event::Apply(o) = tokio::time::timeout(T, w.try_next()).await.unwrap().unwrap().unwrap() {
            assert_eq!(o.name_any(), "b");
            break;
        }
    }
    // a compaction forces a re-list
    s.expire_history();
    let relisted = tokio::time::timeout(T, async {
        loop {
            match w.next().await {
                Some(Ok(watcher::Event::Init)) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    })
    .await
    .unwrap();
    assert!(relisted);

    // metadata_watcher speaks PartialObjectMetadata
    #[allow(deprecated)]
    let mut m = kube::runtime::metadata_watcher(api.clone(), watcher::Config::default()).boxed();
    let mut names = Vec::new();
    loop {
        match tokio::time::timeout(T, m.try_next()).await.unwrap().unwrap().unwrap() {
            watcher::Event::InitApply(o) => {
                assert_eq!(o.types.as_ref().unwrap().kind, "PartialObjectMetadata");
                names.push(o.name_any());
            }
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    names.sort();
    assert_eq!(names, ["a", "b"]);
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    // the newer spelling: a watcher over Api<PartialObjectMeta<K>>
    let meta_api: Api<kube::core::PartialObjectMeta<Widget>> = Api::namespaced(c.clone(), "default");
    let mut m2 = watcher(meta_api, watcher::Config::default()).boxed();
    let mut count = 0;
    loop {
        match tokio::time::timeout(T, m2.try_next()).await.unwrap().unwrap().unwrap() {
            watcher::Event::InitApply(_) => count += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(count, 2);

    // streaming lists
    let mut sl = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut n = 0;
    loop {
        match tokio::time::timeout(T, sl.try_next()).await.unwrap().unwrap().unwrap() {
            watcher::Event::InitApply(_) => n += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(n, 2);
    let reqs = s.requests();
    assert!(reqs.iter().any(|r| r.verb == "watch" && r.query.contains("sendInitialEvents=true")));
    assert!(reqs.iter().any(|r| r.verb == "list" && r.query.contains("limit=500")));
}

#[tokio::test]
async fn controller_reconciles_against_the_emulator() {
    use kube::runtime::controller::{Action, Controller};
    use std::sync::Arc;
    let (s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c.clone(), "default");
    api.create(&PostParams::default(), &Widget::new("w", spec(Service::Teams, 2, "t"))).await.unwrap();

    #[derive(Debug, thiserror::Error)]
    #[error("reconcile failed: {0}")]
    struct E(#[from] kube::Error);

    async fn reconcile(w: Arc<Widget>, api: Arc<Api<Widget>>) -> Result<Action, E> {
        let st = json!({
            "apiVersion": "test.example.com/v1", "kind": "Widget", "metadata": {"name": w.name_any()},
            "status": {"observedGeneration": w.metadata.generation, "conditions": [{"type": "Ready", "status": "True"}]},
        });
        api.patch_status(&w.name_any(), &PatchParams::apply("widget-controller").force(), &Patch::Apply(st)).await?;
        Ok(Action::await_change())
    }
    let ctl = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, |_, _, _| Action::requeue(Duration::from_secs(1)), Arc::new(api.clone()))
        .for_each(|_| async {});
    let handle = tokio::spawn(ctl);
    let ok = s
        .wait_for_object(("test.example.com", "v1", "widgets"), "default", "w", T, |o| {
            o.and_then(|o| o.pointer("/status/conditions/0/status").cloned()) == Some(json!("True"))
        })
        .await;
    handle.abort();
    assert!(ok);
    assert_eq!(s.writes_to("widgets", "status", "default", "w"), 1);
}

// ---------------------------------------------------------------- schema

#[tokio::test]
async fn crd_schema_is_enforced() {
    let (_s, c) = server_with_widget().await;
    let dynamic = |name: &str, spec: Value| json!({"apiVersion": "test.example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec});
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("test.example.com", "v1", "Widget"), "widgets");
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    let create = |v: Value| {
        let api = api.clone();
        async move {
            let obj: DynamicObject = serde_json::from_value(v).unwrap();
            api.create(&PostParams::default(), &obj).await
        }
    };
    let causes = |e: kube::Error| {
        let st = status_of(e);
        assert_eq!((st.code, st.reason.as_str()), (422, "Invalid"), "{}", st.message);
        st.details.unwrap().causes.into_iter().map(|c| (c.field, c.reason, c.message)).collect::<Vec<_>>()
    };

    // enum
    let c1 = causes(create(dynamic("e", json!({"service": "fax", "replicas": 1, "target": "t"}))).await.unwrap_err());
    assert_eq!(c1[0].0, "spec.service");
    assert_eq!(c1[0].1, "FieldValueNotSupported");
    assert_eq!(c1[0].2, "Unsupported value: \"fax\": supported values: \"slack\", \"teams\", \"webhook\"");
    // minimum + required
    let c2 = causes(create(dynamic("m", json!({"service": "slack", "replicas": 0}))).await.unwrap_err());
    assert!(c2.iter().any(|c| c.0 == "spec.replicas" && c.1 == "FieldValueInvalid"), "{c2:?}");
    assert!(c2.iter().any(|c| c.0 == "spec.target" && c.1 == "FieldValueRequired"), "{c2:?}");
    // type, pattern, maxLength
    let c3 = causes(
        create(dynamic("t", json!({"service": "slack", "replicas": "1", "target": "Not Valid!"}))).await.unwrap_err(),
    );
    assert!(c3.iter().any(|c| c.0 == "spec.replicas"), "{c3:?}");
    assert!(c3.iter().any(|c| c.0 == "spec.target" && c.2.contains("should match")), "{c3:?}");
    let c4 = causes(
        create(dynamic("l", json!({"service": "slack", "replicas": 1, "target": "a".repeat(21)}))).await.unwrap_err(),
    );
    assert_eq!(c4[0].1, "FieldValueTooLong");
    // CEL
    let c5 =
        causes(create(dynamic("cel", json!({"service": "webhook", "replicas": 6, "target": "t"}))).await.unwrap_err());
    assert_eq!(c5[0].0, "spec");
    assert!(c5[0].2.contains("webhook widgets may have at most 5 replicas"), "{c5:?}");
    // a JSON null for a non-nullable field is pruned, then defaulted
    let ok =
        create(dynamic("ok", json!({"service": "slack", "replicas": 1, "target": "t", "mode": null, "unknown": 1})))
            .await
            .unwrap();
    assert_eq!(ok.data["spec"]["mode"], "fast", "defaults are applied");
    assert!(ok.data["spec"].get("unknown").is_none(), "unknown fields are pruned");
    // ... unless fieldValidation=Strict
    let req = http::Request::post("/apis/test.example.com/v1/namespaces/default/widgets?fieldValidation=Strict")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&dynamic(
                "strict",
                json!({"service": "slack", "replicas": 1, "target": "t", "unknown": 1}),
            ))
            .unwrap(),
        )
        .unwrap();
    let err = raw(&c, req).await.unwrap_err();
    assert_eq!(err.code, 400);
    assert!(err.message.contains("unknown field \"spec.unknown\""));
    // updates are validated too
    let widgets: Api<Widget> = Api::namespaced(c.clone(), "default");
    let err = status_of(
        widgets
            .patch("ok", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 11}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    // missing kind for a custom resource
    let req = http::Request::post("/apis/test.example.com/v1/namespaces/default/widgets")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(
                &json!({"apiVersion": "test.example.com/v1", "metadata": {"name": "nokind"}, "spec": {}}),
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(raw(&c, req).await.unwrap_err().code, 400);
}

fn crd_json(schema: Value, extra_version: Value) -> CustomResourceDefinition {
    let mut version = json!({
        "name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
    });
    if let (Some(v), Some(e)) = (version.as_object_mut(), extra_version.as_object()) {
        for (k, x) in e {
            v.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.example.com"},
        "spec": {
            "group": "test.example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [version],
        }
    }))
    .unwrap()
}

fn root(spec_props: Value, spec_extra: Value) -> Value {
    let mut spec = json!({"type": "object", "properties": spec_props});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, x) in e {
            s.insert(k.clone(), x.clone());
        }
    }
    json!({"type": "object", "properties": {"spec": spec, "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
}

#[tokio::test]
async fn install_crd_is_strict() {
    let s = ApiServer::start().await;
    let bad = |schema: Value, extra: Value| s.install_crd(&crd_json(schema, extra));
    // non-structural: a property without a type
    assert!(bad(root(json!({"a": {"description": "x"}}), json!({})), json!({})).is_err());
    // description inside a value validation
    assert!(
        bad(
            root(json!({"a": {"type": "string", "anyOf": [{"description": "x", "pattern": "a"}]}}), json!({})),
            json!({})
        )
        .is_err()
    );
    // uniqueItems / additionalProperties: false
    assert!(
        bad(
            root(json!({"a": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}), json!({})),
            json!({})
        )
        .is_err()
    );
    assert!(bad(root(json!({"a": {"type": "object", "additionalProperties": false}}), json!({})), json!({})).is_err());
    // a default that does not validate
    assert!(bad(root(json!({"a": {"type": "integer", "minimum": 5, "default": 1}}), json!({})), json!({})).is_err());
    // bad regex
    assert!(bad(root(json!({"a": {"type": "string", "pattern": "("}}), json!({})), json!({})).is_err());
    // printer column pointing nowhere
    let cols = json!({"additionalPrinterColumns": [{"name": "X", "type": "string", "jsonPath": ".spec.nope"}]});
    assert!(bad(root(json!({"a": {"type": "string"}}), json!({})), cols).is_err());
    // CEL: unparsable, unknown function, undefined field, oldSelf where it cannot be correlated
    let rule = |r: &str| json!({"x-kubernetes-validations": [{"rule": r}]});
    assert!(bad(root(json!({"a": {"type": "string"}}), rule("self.a ==")), json!({})).is_err());
    assert!(bad(root(json!({"a": {"type": "string"}}), rule("isURL(self.a)")), json!({})).is_err());
    assert!(bad(root(json!({"a": {"type": "string"}}), rule("self.b == 'x'")), json!({})).is_err());
    let listy = json!({"l": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}});
    assert!(bad(root(listy, json!({})), json!({})).is_err());
    assert!(
        bad(
            root(
                json!({"a": {"type": "string"}}),
                json!({"x-kubernetes-validations": [{"rule": "true", "reason": "Bogus"}]})
            ),
            json!({})
        )
        .is_err()
    );
    // and nothing was registered by the failures
    let c = s.client();
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("test.example.com", "v1", "Gadget"), "gadgets");
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    assert_eq!(status_of(api.list(&ListParams::default()).await.unwrap_err()).code, 404);

    // kube-derive's Widget CRD is accepted; CRDs are also served
    s.install_crd(&Widget::crd()).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(c);
    let crd = crds.get("widgets.test.example.com").await.unwrap();
    let established =
        crd.status.unwrap().conditions.unwrap().iter().any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);
}

#[tokio::test]
async fn schema_features_nullable_int_or_string_transition_rules_list_maps() {
    let s = ApiServer::start().await;
    let schema = root(
        json!({
            "port": {"x-kubernetes-int-or-string": true},
            "maybe": {"type": "string", "nullable": true},
            "immutable": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable"}]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "items": {
                "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "maxItems": 2,
                "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "v": {"type": "integer", "default": 7}}},
            },
            "when": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        }),
        json!({"x-kubernetes-validations": [{"rule": "!has(self.maybe) || self.maybe == null || size(self.maybe) > 1", "messageExpression": "'maybe too short: ' + string(self.maybe)", "fieldPath": ".maybe", "reason": "FieldValueForbidden"}]}),
    );
    s.install_crd(&crd_json(schema, json!({}))).unwrap();
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("test.example.com", "v1", "Gadget"), "gadgets");
    let api: Api<DynamicObject> = Api::namespaced_with(s.client(), "default", &ar);
    let obj = |name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(
            json!({"apiVersion": "test.example.com/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    };
    let g = api
        .create(&PostParams::default(), &obj("g", json!({"port": "http", "maybe": null, "immutable": "a", "free": {"x": {"y": 1}}, "items": [{"name": "a"}], "when": "2024-01-01T00:00:00Z", "tags": ["x"]})))
        .await
        .unwrap();
    assert_eq!(g.data["spec"]["maybe"], Value::Null, "nullable null is kept");
    assert_eq!(g.data["spec"]["free"]["x"]["y"], 1, "preserved");
    assert_eq!(g.data["spec"]["items"][0]["v"], 7, "defaults inside list items");
    let invalid = |spec: Value| {
        let api = api.clone();
        async move {
            let st = status_of(api.create(&PostParams::default(), &obj("x", spec)).await.unwrap_err());
            assert_eq!(st.code, 422, "{}", st.message);
            st.details.unwrap().causes
        }
    };
    assert_eq!(invalid(json!({"port": true})).await[0].field, "spec.port");
    let c = invalid(json!({"maybe": "a"})).await;
    assert_eq!((c[0].field.as_str(), c[0].reason.as_str()), ("spec.maybe", "FieldValueForbidden"));
    assert!(c[0].message.contains("maybe too short: a"), "{:?}", c[0]);
    assert_eq!(invalid(json!({"items": [{"name": "a"}, {"name": "a"}]})).await[0].reason, "FieldValueDuplicate");
    assert_eq!(
        invalid(json!({"items": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})).await[0].reason,
        "FieldValueTooMany"
    );
    assert_eq!(invalid(json!({"tags": ["a", "a"]})).await[0].reason, "FieldValueDuplicate");
    assert_eq!(invalid(json!({"when": "yesterday"})).await[0].field, "spec.when");
    assert_eq!(invalid(json!({"items": [{"v": 1}]})).await[0].field, "spec.items[0].name");
    // transition rule: only on update
    let err = status_of(
        api.patch("g", &PatchParams::default(), &Patch::Merge(json!({"spec": {"immutable": "b"}}))).await.unwrap_err(),
    );
    assert!(err.message.contains("is immutable"), "{}", err.message);
    api.patch("g", &PatchParams::default(), &Patch::Merge(json!({"spec": {"port": 8080}}))).await.unwrap();
    // generation counts for CRs without... with status subresource: status writes don't bump
    let st = api
        .patch_status("g", &PatchParams::default(), &Patch::Merge(json!({"status": {"anything": {"goes": true}}})))
        .await
        .unwrap();
    assert_eq!(st.metadata.generation, Some(2));
}

// ---------------------------------------------------------------- built-ins

#[tokio::test]
async fn secrets_string_data_and_types() {
    let s = ApiServer::start().await;
    let c = s.client();
    let api: Api<Secret> = Api::namespaced(c.clone(), "default");
    let mut sec = Secret::default();
    sec.metadata.name = Some("s".into());
    sec.string_data = Some(BTreeMap::from([("token".to_string(), "hunter2".to_string())]));
    let got = api.create(&PostParams::default(), &sec).await.unwrap();
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
    assert!(got.string_data.is_none(), "stringData is write-only");
    assert_eq!(got.data.as_ref().unwrap()["token"].0, b"hunter2");
    let raw_get =
        raw(&c, http::Request::get("/api/v1/namespaces/default/secrets/s").body(vec![]).unwrap()).await.unwrap();
    assert_eq!(raw_get["data"]["token"], "aHVudGVyMg==");
    // stringData merges into data on patch
    let p =
        api.patch("s", &PatchParams::default(), &Patch::Merge(json!({"stringData": {"other": "x"}}))).await.unwrap();
    assert_eq!(p.data.unwrap().len(), 2);
    // type is immutable
    let err = status_of(
        api.patch("s", &PatchParams::default(), &Patch::Merge(json!({"type": "kubernetes.io/tls"}))).await.unwrap_err(),
    );
    assert_eq!(err.code, 422);
    // invalid base64 is a decode error
    let req = http::Request::post("/api/v1/namespaces/default/secrets")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(
                &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"}, "data": {"k": "!!!"}}),
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(raw(&c, req).await.unwrap_err().code, 400);
    // field selector on type
    let l = api.list(&ListParams::default().fields("type=Opaque")).await.unwrap();
    assert_eq!(l.items.len(), 1);
}

#[tokio::test]
async fn reviews_are_create_only() {
    let s = ApiServer::start().await;
    let c = s.client();
    s.add_user("good-token", "system:serviceaccount:ns:sa", &["system:serviceaccounts"]);
    s.set_token_review("custom", TokenReviewAnswer::user("alice", &["devs"]));
    let trs: Api<TokenReview> = Api::all(c.clone());
    let review = |t: &str| TokenReview {
        spec: TokenReviewSpec { token: Some(t.into()), ..Default::default() },
        ..Default::default()
    };
    let r = trs.create(&PostParams::default(), &review("custom")).await.unwrap();
    let st = r.status.unwrap();
    assert_eq!(st.authenticated, Some(true));
    assert_eq!(st.user.unwrap().username.as_deref(), Some("alice"));
    let r = trs.create(&PostParams::default(), &review("good-token")).await.unwrap();
    assert_eq!(r.status.unwrap().user.unwrap().username.as_deref(), Some("system:serviceaccount:ns:sa"));
    let r = trs.create(&PostParams::default(), &review("unknown")).await.unwrap();
    assert_eq!(r.status.unwrap().authenticated, Some(false));
    assert_eq!(status_of(trs.list(&ListParams::default()).await.unwrap_err()).code, 405);

    let sars: Api<SubjectAccessReview> = Api::all(c.clone());
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some("alice".into()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("get".into()),
                resource: Some("notifiers".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(!sars.create(&PostParams::default(), &sar).await.unwrap().status.unwrap().allowed);
    s.set_access_review(|spec| (spec.user.as_deref() == Some("alice"), "alice may".into()));
    let st = sars.create(&PostParams::default(), &sar).await.unwrap().status.unwrap();
    assert!(st.allowed);
    assert_eq!(st.reason.as_deref(), Some("alice may"));
    let mut nobody = sar.clone();
    nobody.spec.user = None;
    assert_eq!(status_of(sars.create(&PostParams::default(), &nobody).await.unwrap_err()).code, 422);
    let req = http::Request::get("/apis/authorization.k8s.io/v1/subjectaccessreviews/x").body(vec![]).unwrap();
    assert_eq!(raw(&c, req).await.unwrap_err().code, 405);
}

/// TokenReview audiences as the real server checks them: `spec.audiences`,
/// else the API server's own; a token is authenticated only when its
/// audiences intersect them (`status.audiences` is the intersection), else
/// not, with the ServiceAccount authenticator's error. A token minted for
/// another audience cannot call the API.
#[tokio::test]
async fn token_reviews_check_audiences() {
    use support::apiserver::API_AUDIENCE;
    let s = ApiServer::start().await;
    let c = s.client();
    s.add_user("api-token", "system:serviceaccount:ns:ci", &[]);
    s.add_user_for("notify-token", "system:serviceaccount:ns:ci", &[], &["kube-notify"]);
    s.add_user_for("both-token", "system:serviceaccount:ns:ci", &[], &["kube-notify", API_AUDIENCE]);
    s.set_token_review("custom", TokenReviewAnswer::user("alice", &["devs"]).for_audiences(&["kube-notify", "other"]));
    let trs: Api<TokenReview> = Api::all(c.clone());
    let review = |t: &str, audiences: Option<&[&str]>| TokenReview {
        spec: TokenReviewSpec {
            token: Some(t.into()),
            audiences: audiences.map(|a| a.iter().map(|a| a.to_string()).collect()),
        },
        ..Default::default()
    };
    let ask = |t: &'static str, audiences: Option<&'static [&'static str]>| {
        let trs = trs.clone();
        async move { trs.create(&PostParams::default(), &review(t, audiences)).await.unwrap().status.unwrap() }
    };
    // No spec.audiences: the API server's.
    let st = ask("api-token", None).await;
    assert_eq!((st.authenticated, st.audiences), (Some(true), Some(vec![API_AUDIENCE.to_string()])));
    let st = ask("notify-token", None).await;
    assert_eq!(st.authenticated, Some(false));
    assert_eq!(
        st.error.as_deref(),
        Some(
            r#"token audiences ["kube-notify"] is invalid for the target audiences ["https://kubernetes.default.svc.cluster.local"]"#
        )
    );
    assert!(st.user.unwrap_or_default().username.is_none());
    // For kube-notify: an API-server token is refused, a kube-notify one is not.
    let st = ask("api-token", Some(&["kube-notify"])).await;
    assert_eq!(st.authenticated, Some(false));
    assert!(st.error.unwrap().contains("is invalid for the target audiences [\"kube-notify\"]"));
    let st = ask("notify-token", Some(&["kube-notify"])).await;
    assert_eq!((st.authenticated, st.audiences), (Some(true), Some(vec!["kube-notify".to_string()])));
    assert_eq!(st.user.unwrap().username.as_deref(), Some("system:serviceaccount:ns:ci"));
    // The intersection, in the token's order.
    let st = ask("both-token", Some(&["x", API_AUDIENCE, "kube-notify"])).await;
    assert_eq!(st.audiences, Some(vec!["kube-notify".to_string(), API_AUDIENCE.to_string()]));
    let st = ask("custom", Some(&["other"])).await;
    assert_eq!((st.authenticated, st.audiences), (Some(true), Some(vec!["other".to_string()])));
    assert_eq!(ask("custom", None).await.authenticated, Some(false));
    // Calling the API needs the API server's audience.
    let pods = |token: &str| Api::<k8s_openapi::api::core::v1::Namespace>::all(s.client_as(token));
    assert!(pods("api-token").list(&ListParams::default()).await.is_ok());
    assert!(pods("both-token").list(&ListParams::default()).await.is_ok());
    assert_eq!(status_of(pods("notify-token").list(&ListParams::default()).await.unwrap_err()).code, 401);
}

#[tokio::test]
async fn events_recorder_and_conversion() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let (_s, c) = server_with_widget().await;
    let widgets: Api<Widget> = Api::namespaced(c.clone(), "team");
    let w = widgets.create(&PostParams::default(), &Widget::new("w", spec(Service::Slack, 1, "t"))).await.unwrap();
    let recorder =
        Recorder::new(c.clone(), Reporter { controller: "kube-notify".into(), instance: Some("pod-1".into()) });
    let ev = Event {
        type_: EventType::Warning,
        reason: "DeliveryFailed".into(),
        note: Some("slack said no".into()),
        action: "Deliver".into(),
        secondary: None,
    };
    recorder.publish(&ev, &w.object_ref(&())).await.unwrap();
    recorder.publish(&ev, &w.object_ref(&())).await.unwrap(); // a series: patch
    let v1: Api<EventV1> = Api::namespaced(c.clone(), "team");
    let list = v1.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.series.as_ref().unwrap().count, 2);
    assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("w"));
    // the same event through core/v1
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.clone(), "team");
    let ce = core.list(&ListParams::default().fields("involvedObject.name=w")).await.unwrap();
    assert_eq!(ce.items.len(), 1);
    assert_eq!(ce.items[0].message.as_deref(), Some("slack said no"));
    assert_eq!(ce.items[0].reporting_component.as_deref(), Some("kube-notify"));
    // events.k8s.io validation
    let mut bad = e.clone();
    bad.metadata = Default::default();
    bad.metadata.name = Some("bad".into());
    bad.reporting_controller = None;
    let err = status_of(v1.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(err.details.unwrap().causes.iter().any(|c| c.field == "reportingController"));
}

#[tokio::test]
async fn namespaces_exist_and_discovery_answers() {
    let (_s, c) = server_with_widget().await;
    let nss: Api<Namespace> = Api::all(c.clone());
    let ns = nss.get("anything-goes").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    let v = c.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let d = kube::discovery::Discovery::new(c.clone()).run().await.unwrap();
    assert!(d.has_group("test.example.com"));
    let (ar, caps) = d.resolve_gvk(&GroupVersionKind::gvk("test.example.com", "v1", "Widget")).unwrap();
    assert_eq!(ar.plural, "widgets");
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "widgets/status") || !caps.subresources.is_empty());
    let d2 = kube::discovery::Discovery::new(c.clone()).run_aggregated().await.unwrap();
    assert!(d2.has_group("coordination.k8s.io"));
    assert!(d2.resolve_gvk(&GroupVersionKind::gvk("", "v1", "Secret")).is_some());
}

// ---------------------------------------------------------------- auth, recording

#[tokio::test]
async fn authentication_recording_and_injected_failures() {
    let s = ApiServer::start().await;
    // no/unknown token: 401
    let anon = s.client_as("nobody-knows-me");
    let err = status_of(Api::<ConfigMap>::namespaced(anon, "default").list(&ListParams::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (401, "Unauthorized"));
    let r = s.requests().last().cloned().unwrap();
    assert_eq!((r.user.as_str(), r.code), ("", 401));

    s.add_user("op-token", "system:serviceaccount:kube-notify:operator", &["system:serviceaccounts"]);
    let op = s.client_as("op-token");
    let api: Api<ConfigMap> = Api::namespaced(op.clone(), "default");
    api.create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    api.get("x").await.unwrap();
    api.patch(
        "x",
        &PatchParams::apply("op"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}})),
    )
    .await
    .unwrap();
    let usage = s.usage_by("system:serviceaccount:kube-notify:operator");
    for verb in ["create", "get", "patch"] {
        assert!(usage.contains(&(verb.into(), "".into(), "configmaps".into(), "".into())), "{usage:?}");
    }
    assert_eq!(s.writes_to("configmaps", "", "default", "x"), 2);
    let last = s.requests().last().cloned().unwrap();
    assert_eq!((last.verb.as_str(), last.field_manager.as_str(), last.namespace.as_str()), ("patch", "op", "default"));

    // injected failures hit exactly the next matching request
    s.fail_next(RequestMatcher::any().verb("patch").resource("configmaps"), 409, "Conflict");
    let err = status_of(
        api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"data": {"c": "d"}}))).await.unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"data": {"c": "d"}}))).await.unwrap();
    s.fail_next(RequestMatcher::any().verb("get").name("x"), 500, "InternalError");
    assert_eq!(status_of(api.get("x").await.unwrap_err()).code, 500);
    assert_eq!(s.writes_to("configmaps", "", "default", "x"), 3);

    // the usage dump
    let dir = std::env::temp_dir().join(format!("apiserver-usage-test-{}", std::process::id()));
    let file = s.write_usage(&dir).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().all(|l| l["user"] != "admin"));
    assert!(
        lines.iter().any(|l| l["verb"] == "create" && l["resource"] == "configmaps" && l["namespace"] == "default")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn metadata_accept_header_and_dry_run() {
    let (_s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c.clone(), "default");
    api.create(&PostParams::default(), &Widget::new("w", spec(Service::Slack, 1, "t"))).await.unwrap();
    let m = api.get_metadata("w").await.unwrap();
    assert_eq!(m.types.unwrap().kind, "PartialObjectMetadata");
    let req = http::Request::get("/apis/test.example.com/v1/namespaces/default/widgets/w")
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(vec![])
        .unwrap();
    assert_eq!(raw(&c, req).await.unwrap_err().code, 406);
    let dry = PostParams { dry_run: true, ..Default::default() };
    api.create(&dry, &Widget::new("dry", spec(Service::Slack, 1, "t"))).await.unwrap();
    assert_eq!(status_of(api.get("dry").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn cel_functions_the_emulation_accepts_really_evaluate() {
    let s = ApiServer::start().await;
    let rule = "!has(self.a) || (self.a.startsWith('x') && self.a.lowerAscii().size() > 0 && self.l.all(i, i.contains('y')) && self.l.exists_one(i, i.matches('^a')) && self.a.split('-').size() < 3 && int('3') == 3 && self.l.map(x, x + 'a').size() >= 0 && self.l.filter(x, x.startsWith('b')).size() == 1 && self.a.endsWith('a') && self.a.indexOf('a') == 2 && self.a.trim() != 'q' && self.a.substring(0) == self.a && self.a.charAt(0) != 'z' && self.a.replace('a', 'b') != '' && self.a.upperAscii() == 'X-A' && ['a','b'].join(',') == 'a,b' && self.a.lastIndexOf('a') == 2 && type(self.a) == string && double(1) == 1.0 && uint(1) == 1u && string(1) == '1' && bool('true') && duration('1s') > duration('0s') && timestamp('2024-01-01T00:00:00Z').getFullYear() == 2024 && dyn(1) == 1 && size(self.l) == 2 && 'a' in ['a'] && 3 % 2 == 1 && bytes('a').size() == 1)";
    let schema = root(
        json!({"a": {"type": "string"}, "l": {"type": "array", "items": {"type": "string"}}}),
        json!({"x-kubernetes-validations": [{"rule": rule}]}),
    );
    s.install_crd(&crd_json(schema, json!({}))).unwrap();
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("test.example.com", "v1", "Gadget"), "gadgets");
    let api: Api<DynamicObject> = Api::namespaced_with(s.client(), "default", &ar);
    let obj = |name: &str, a: &str| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "test.example.com/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": {"a": a, "l": ["ay", "by"]}})).unwrap()
    };
    api.create(&PostParams::default(), &obj("good", "x-a")).await.unwrap();
    let err = status_of(api.create(&PostParams::default(), &obj("bad", "y-a")).await.unwrap_err());
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn defaults_apply_on_read_and_watch_accepts_watch_1() {
    let s = ApiServer::start().await;
    let plain = root(json!({"a": {"type": "string"}}), json!({}));
    s.install_crd(&crd_json(plain, json!({}))).unwrap();
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("test.example.com", "v1", "Gadget"), "gadgets");
    let c = s.client();
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    let obj: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "test.example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    // a new CRD revision adds a default: stored objects get it on read
    let defaulted = root(json!({"a": {"type": "string", "default": "dflt"}}), json!({}));
    s.install_crd(&crd_json(defaulted, json!({}))).unwrap();
    assert_eq!(api.get("g").await.unwrap().data["spec"]["a"], "dflt");

    let req = http::Request::get("/apis/test.example.com/v1/namespaces/default/gadgets?watch=1&resourceVersion=0")
        .body(vec![])
        .unwrap();
    let mut events = c.request_events::<DynamicObject>(req).await.unwrap().boxed();
    match next_event(&mut events).await {
        WatchEvent::Added(o) => assert_eq!(o.data["spec"]["a"], "dflt"),
        other => panic!("{other:?}"),
    }
    assert!(s.requests().iter().any(|r| r.verb == "watch" && r.resource == "gadgets"));
    // a namespace that cannot exist
    let bad: Api<ConfigMap> = Api::namespaced(c, "Not_A_Namespace");
    assert_eq!(status_of(bad.get("x").await.unwrap_err()).code, 404);
}

// ---------------------------------------------------------------- strictness audit

/// `/status` writes of a CRD with a status subresource: only `status`
/// changes (labels, annotations, finalizers, spec and generation come from
/// the stored object), the resourceVersion moves, and the usual update
/// preconditions (resourceVersion required and current, uid) apply.
#[tokio::test]
async fn status_writes_keep_spec_metadata_and_generation() {
    let (_s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c, "default");
    let w = api.create(&PostParams::default(), &Widget::new("w", spec(Service::Slack, 1, "t"))).await.unwrap();
    assert_eq!(w.metadata.generation, Some(1));

    let mut body = w.clone();
    body.spec.replicas = 7;
    body.metadata.labels = Some(BTreeMap::from([("x".to_string(), "y".to_string())]));
    body.metadata.annotations = Some(BTreeMap::from([("a".to_string(), "b".to_string())]));
    body.metadata.finalizers = Some(vec!["example.com/f".into()]);
    body.status = Some(WidgetStatus { last_error: Some("boom".into()), ..Default::default() });
    let st = api.replace_status("w", &PostParams::default(), &body).await.unwrap();
    assert_eq!(st.status.as_ref().unwrap().last_error.as_deref(), Some("boom"));
    assert_eq!(st.spec.replicas, 1);
    assert!(st.metadata.labels.as_ref().is_none_or(|l| l.is_empty()));
    assert!(st.metadata.annotations.as_ref().is_none_or(|a| a.is_empty()));
    assert!(st.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()));
    assert_eq!(st.metadata.generation, Some(1), "status writes never move generation");
    assert_ne!(st.resource_version(), w.resource_version(), "a status write is a write");
    assert_eq!(st.uid(), w.uid());

    // a no-op status write keeps the resourceVersion
    let again = api.replace_status("w", &PostParams::default(), &st).await.unwrap();
    assert_eq!(again.resource_version(), st.resource_version());

    // the stale copy `body` (the previous resourceVersion) conflicts
    let err = status_of(api.replace_status("w", &PostParams::default(), &body).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    // no resourceVersion: custom resources refuse unconditional updates
    let mut no_rv = st.clone();
    no_rv.metadata.resource_version = None;
    let err = status_of(api.replace_status("w", &PostParams::default(), &no_rv).await.unwrap_err());
    assert_eq!(err.code, 422);
    // another object's uid: precondition failure
    let mut other_uid = st.clone();
    other_uid.metadata.uid = Some("00000000-0000-4000-8000-000000000000".into());
    let err = status_of(api.replace_status("w", &PostParams::default(), &other_uid).await.unwrap_err());
    assert_eq!(err.code, 409);
    // /status of an object that does not exist
    let mut ghost = st.clone();
    ghost.metadata.name = Some("ghost".into());
    let err = status_of(api.replace_status("ghost", &PostParams::default(), &ghost).await.unwrap_err());
    assert_eq!(err.code, 404);

    // a spec write moves generation; the status write after it does not
    let mut main = api.get("w").await.unwrap();
    main.spec.replicas = 3;
    let main = api.replace("w", &PostParams::default(), &main).await.unwrap();
    assert_eq!(main.metadata.generation, Some(2));
    let st = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(json!({"status": {"observedGeneration": 2}})))
        .await
        .unwrap();
    assert_eq!(st.metadata.generation, Some(2));

    // DELETE with another uid as precondition
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("00000000-0000-4000-8000-000000000000".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let err = status_of(api.delete("w", &dp).await.unwrap_err());
    assert_eq!(err.code, 409);
    assert!(api.get_opt("w").await.unwrap().is_some());
}

/// The operator's own CRD: `format: date-time` is checked like the real
/// server's strfmt (RFC 3339 `date "T" time offset`; no space separator,
/// seconds required, offsets with a colon), required Condition fields are
/// enforced, and bad values give 422 with the field as cause.
#[tokio::test]
async fn status_date_times_and_conditions_follow_the_crd_schema() {
    use kube_notify::crd::NotificationIntegration;
    let s = ApiServer::start().await;
    for (_, crd) in kube_notify::crd::all() {
        s.install_crd(&crd).unwrap();
    }
    let c = s.client();
    let api: Api<NotificationIntegration> = Api::namespaced(c, "default");
    let ni: NotificationIntegration = serde_json::from_value(json!({
        "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
        "metadata": {"name": "ni"},
        "spec": {"service": "webhook", "secretRef": {"name": "s"}},
    }))
    .unwrap();
    api.create(&PostParams::default(), &ni).await.unwrap();
    let put = |status: Value| {
        let api = api.clone();
        async move {
            let cur = api.get("ni").await.unwrap();
            let mut body = serde_json::to_value(&cur).unwrap();
            body["status"] = status;
            let body = serde_json::to_vec(&body).unwrap();
            let req = http::Request::put(
                "/apis/kube-notify.io/v1alpha1/namespaces/default/notificationintegrations/ni/status",
            )
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
            raw(&api.into_client(), req).await
        }
    };
    let cond =
        |t: &str| json!({"type": "Ready", "status": "True", "reason": "Ok", "message": "", "lastTransitionTime": t});
    for good in ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:05+09:00"] {
        put(json!({"conditions": [cond(good)]})).await.unwrap_or_else(|e| panic!("{good}: {e:?}"));
    }
    for bad in [
        "",
        "yesterday",
        "2026-01-02",
        "2026-01-02 03:04:05Z",
        "2026-01-02T03:04Z",
        "2026-01-02T03:04:05",
        "2026-01-02T03:04:05+0900",
        "2026-01-02T03:04:05Z[UTC]",
        "2026-13-02T03:04:05Z",
    ] {
        let err = put(json!({"conditions": [cond(bad)]})).await.expect_err(bad);
        assert_eq!(err.code, 422, "{bad}");
        let causes = err.details.unwrap().causes;
        assert!(causes.iter().any(|c| c.field == "status.conditions[0].lastTransitionTime"), "{bad}: {causes:?}");
    }
    let err = put(json!({"lastDeliveryTime": "now"})).await.unwrap_err();
    assert_eq!(err.code, 422);
    let mut missing = cond("2026-01-02T03:04:05Z");
    missing.as_object_mut().unwrap().remove("reason");
    let err = put(json!({"conditions": [missing]})).await.unwrap_err();
    assert_eq!(err.code, 422);
    assert!(err.details.unwrap().causes.iter().any(|c| c.field == "status.conditions[0].reason"));
    let err = put(json!({"lastError": {"message": "m", "reason": "r"}})).await.unwrap_err();
    assert!(err.details.unwrap().causes.iter().any(|c| c.field == "status.lastError.time"));
}

/// events.k8s.io/v1 creation rules beyond the required fields: an event
/// about a cluster-scoped object (no `regarding.namespace`) may only live in
/// `default` or `kube-system`, and the deprecated core fields must be unset.
#[tokio::test]
async fn events_v1_create_rules() {
    let s = ApiServer::start().await;
    let c = s.client();
    let base = |ns: &str, name: &str| {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "eventTime": "2026-01-02T03:04:05.000000Z",
            "reportingController": "kube-notify.io/operator", "reportingInstance": "pod-1",
            "action": "Deliver", "reason": "Delivered", "type": "Normal", "note": "ok",
            "regarding": {"apiVersion": "v1", "kind": "Namespace", "name": "team"},
        })
    };
    let create = |ns: &'static str, body: Value| {
        let c = c.clone();
        async move {
            let req = http::Request::post(format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .unwrap();
            raw(&c, req).await
        }
    };
    create("default", base("default", "a")).await.unwrap();
    create("kube-system", base("kube-system", "a")).await.unwrap();
    let err = create("team", base("team", "a")).await.unwrap_err();
    assert_eq!(err.code, 422);
    assert!(err.details.unwrap().causes.iter().any(|c| c.field == "involvedObject.namespace"));
    // the real server names the deprecated fields by their internal names
    for (field, value, cause) in [
        ("deprecatedCount", json!(3), "count"),
        ("deprecatedFirstTimestamp", json!("2026-01-02T03:04:05Z"), "firstTimestamp"),
        ("deprecatedLastTimestamp", json!("2026-01-02T03:04:05Z"), "lastTimestamp"),
        ("deprecatedSource", json!({"component": "x"}), "source"),
    ] {
        let mut b = base("default", "d");
        b[field] = value;
        let err = create("default", b).await.expect_err(field);
        assert_eq!(err.code, 422, "{field}");
        assert!(err.details.unwrap().causes.iter().any(|c| c.field == cause), "{field}");
    }
}

/// kube-lease-manager's protocol: the holder applies `holderIdentity`
/// (SSA, no force) and renews with strategic patches; a contender's apply
/// conflicts (409) until the lease is released by a patch that removes the
/// fields.
#[tokio::test]
async fn lease_apply_conflicts_until_released() {
    let s = ApiServer::start().await;
    let c = s.client();
    let leases: Api<Lease> = Api::namespaced(c, "default");
    let mut l = Lease::default();
    l.metadata.name = Some("leader".into());
    l.spec = Some(LeaseSpec::default());
    leases.create(&PostParams::default(), &l).await.unwrap();
    let apply = |who: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {
            "acquireTime": "2026-01-02T03:04:05.000000Z", "renewTime": "2026-01-02T03:04:05.000000Z",
            "holderIdentity": who, "leaseDurationSeconds": 15}})
    };
    let pp = |who: &str| PatchParams { field_manager: Some(format!("kube-lease-manager-{who}")), ..Default::default() };
    leases.patch("leader", &pp("a"), &Patch::Apply(apply("a"))).await.unwrap();
    leases
        .patch(
            "leader",
            &pp("a"),
            &Patch::Strategic(
                json!({"spec": {"renewTime": "2026-01-02T03:04:10.000000Z", "leaseDurationSeconds": 15}}),
            ),
        )
        .await
        .unwrap();
    let err = status_of(leases.patch("leader", &pp("b"), &Patch::Apply(apply("b"))).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(leases.get("leader").await.unwrap().spec.unwrap().holder_identity.as_deref(), Some("a"));
    // b releases by force (strategic patch of nulls), then takes it
    leases
        .patch(
            "leader",
            &pp("b"),
            &Patch::Strategic(json!({"spec": {"acquireTime": null, "renewTime": null, "holderIdentity": null, "leaseDurationSeconds": null}})),
        )
        .await
        .unwrap();
    leases.patch("leader", &pp("b"), &Patch::Apply(apply("b"))).await.unwrap();
    let err = status_of(leases.patch("leader", &pp("a"), &Patch::Apply(apply("a"))).await.unwrap_err());
    assert_eq!(err.code, 409);
}

/// Size limits: request bodies over 3 MiB are refused with 413; objects
/// that etcd cannot store (over 1.5 MiB) fail with 500, also for status
/// writes that would grow an object past the limit.
#[tokio::test]
async fn oversized_bodies_and_objects_are_refused() {
    let (s, c) = server_with_widget().await;
    let api: Api<Widget> = Api::namespaced(c, "default");
    let mut w = Widget::new("huge", spec(Service::Slack, 1, "t"));
    w.spec.note = Some("x".repeat(4 * 1024 * 1024));
    let err = status_of(api.create(&PostParams::default(), &w).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (413, "RequestEntityTooLarge"));
    w.spec.note = Some("x".repeat(2 * 1024 * 1024));
    let err = status_of(api.create(&PostParams::default(), &w).await.unwrap_err());
    assert_eq!(err.code, 500);
    assert!(err.message.contains("request is too large"), "{}", err.message);
    assert!(s.object("test.example.com", "v1", "widgets", "default", "huge").is_none());

    api.create(&PostParams::default(), &Widget::new("w", spec(Service::Slack, 1, "t"))).await.unwrap();
    let big = json!({"status": {"lastError": "e".repeat(1600 * 1024)}});
    let err = status_of(api.patch_status("w", &PatchParams::default(), &Patch::Merge(big)).await.unwrap_err());
    assert_eq!(err.code, 500);
    let small = json!({"status": {"lastError": "e".repeat(1024 * 1024)}});
    api.patch_status("w", &PatchParams::default(), &Patch::Merge(small)).await.unwrap();
}

// ---------------------------------------------------------------- faults

/// An admin client that does not retry 429/503/504 by itself (kube's
/// default client does, up to 15 times).
fn client_without_retries(s: &ApiServer) -> kube::Client {
    client_without_retries_as(s, support::apiserver::ADMIN_TOKEN)
}

/// A client of `token` that does not retry 429/503/504 by itself.
fn client_without_retries_as(s: &ApiServer, token: &str) -> kube::Client {
    let mut config = kube::Config::new(s.url().parse().unwrap());
    config
        .headers
        .push((http::header::AUTHORIZATION, http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap()));
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

/// Asserts that a request got no answer: a connection error, not an API error.
fn assert_connection_error(e: kube::Error) {
    assert!(
        matches!(e, kube::Error::Service(_) | kube::Error::HyperError(_)),
        "expected a connection error, got {e:?}"
    );
}

fn faulted(s: &ApiServer, id: FaultId) -> Vec<u16> {
    s.requests().into_iter().filter(|r| r.fault == Some(id)).map(|r| r.code).collect()
}

#[tokio::test]
async fn status_faults_for_a_number_of_requests_or_until_cleared() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    api.create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    let get_x = RequestMatcher::any().verb("get").resource("configmaps").name("x");
    let internal = FaultKind::Status { code: 500, reason: "InternalError".into(), retry_after: None };

    // the next `times` matching requests
    let twice = s.inject(get_x.clone(), internal.clone(), Some(2));
    api.list(&ListParams::default()).await.unwrap();
    for _ in 0..2 {
        let e = status_of(api.get("x").await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    }
    api.get("x").await.unwrap();
    assert_eq!(s.fault_hits(twice), 2);
    assert_eq!(faulted(&s, twice), [500, 500], "faulted requests are recorded with their code");

    // until cleared
    let always = s.inject(get_x.clone(), internal, None);
    for _ in 0..3 {
        assert_eq!(status_of(api.get("x").await.unwrap_err()).code, 500);
    }
    s.clear_fault(always);
    api.get("x").await.unwrap();
    assert_eq!(s.fault_hits(always), 3);

    // kube's client retries 429 by itself: two of them go unnoticed
    let busy = FaultKind::Status { code: 429, reason: "TooManyRequests".into(), retry_after: Some(0) };
    let throttled = s.inject(get_x.clone(), busy, Some(2));
    api.get("x").await.unwrap();
    assert_eq!(s.fault_hits(throttled), 2);

    // a 429 carries Retry-After, in the header and in the Status details
    let busy = FaultKind::Status { code: 429, reason: "TooManyRequests".into(), retry_after: Some(7) };
    let throttled = s.inject(get_x, busy, None);
    let plain = client_without_retries(&s);
    let req = http::Request::get("/api/v1/namespaces/default/configmaps/x").body(kube::client::Body::from(vec![]));
    let resp = plain.send(req.unwrap()).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers().get(http::header::RETRY_AFTER).unwrap(), "7");
    let body: Value = serde_json::from_slice(&resp.into_body().collect_bytes().await.unwrap()).unwrap();
    assert_eq!((body["kind"].as_str(), body["reason"].as_str()), (Some("Status"), Some("TooManyRequests")));
    assert_eq!(body["details"]["retryAfterSeconds"], 7);
    let e = status_of(Api::<ConfigMap>::namespaced(plain, "default").get("x").await.unwrap_err());
    assert_eq!(e.code, 429);
    s.clear_faults();
    api.get("x").await.unwrap();
    assert_eq!(s.fault_hits(throttled), 2);

    // fail_next is a one-time Status fault
    s.fail_next(RequestMatcher::any().verb("list"), 503, "ServiceUnavailable");
    let e = status_of(
        client_without_retries(&s)
            .request::<Value>(http::Request::get("/api/v1/namespaces/default/configmaps").body(vec![]).unwrap())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 503);
    api.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn delay_faults_serve_late() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    api.create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    let d = Duration::from_millis(150);
    let once = s.inject(RequestMatcher::any().verb("get"), FaultKind::Delay(d), Some(1));
    let started = tokio::time::Instant::now();
    api.get("x").await.unwrap();
    assert!(started.elapsed() >= d);
    api.get("x").await.unwrap();
    assert_eq!(s.fault_hits(once), 1);
    assert_eq!(faulted(&s, once), [200], "a delayed request is served");

    let always = s.inject(RequestMatcher::any().verb("patch"), FaultKind::Delay(d), None);
    for i in 0..2 {
        let started = tokio::time::Instant::now();
        api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"data": {"n": i.to_string()}}))).await.unwrap();
        assert!(started.elapsed() >= d);
    }
    s.clear_fault(always);
    api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"data": {"n": "last"}}))).await.unwrap();
    assert_eq!(s.fault_hits(always), 2);
    assert_eq!(s.writes_to("configmaps", "", "default", "x"), 4);
}

#[tokio::test]
async fn hung_requests_are_released_when_cleared() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    api.create(&PostParams::default(), &cm("x", &[])).await.unwrap();

    let hang = s.inject(RequestMatcher::any().verb("get").name("x"), FaultKind::Hang, Some(1));
    let hung = tokio::spawn({
        let api = api.clone();
        async move { api.get("x").await }
    });
    assert!(s.wait_until(T, |s| s.fault_hits(hang) == 1).await);
    assert_eq!(faulted(&s, hang), [NO_ANSWER], "recorded while it hangs");
    // `times` ran out: the next one is served while the first still hangs
    api.get("x").await.unwrap();
    assert!(!hung.is_finished());
    s.clear_fault(hang);
    assert_eq!(tokio::time::timeout(T, hung).await.unwrap().unwrap().unwrap().name_any(), "x");
    let gets = s.requests().into_iter().filter(|r| r.verb == "get" && r.name == "x").count();
    assert_eq!(gets, 3, "a released request is recorded again when served");

    // until cleared: every matching request hangs, clear_faults releases all
    let all = s.inject(RequestMatcher::any().verb("list"), FaultKind::Hang, None);
    let lists: Vec<_> = (0..2)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.list(&ListParams::default()).await })
        })
        .collect();
    assert!(s.wait_until(T, |s| s.fault_hits(all) == 2).await);
    assert!(lists.iter().all(|l| !l.is_finished()));
    s.clear_faults();
    for l in lists {
        assert_eq!(tokio::time::timeout(T, l).await.unwrap().unwrap().unwrap().items.len(), 1);
    }
}

#[tokio::test]
async fn reset_faults_close_the_connection_without_an_answer() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    api.create(&PostParams::default(), &cm("x", &[])).await.unwrap();

    let once = s.inject(RequestMatcher::any().verb("get").name("x"), FaultKind::Reset, Some(1));
    assert_connection_error(api.get("x").await.unwrap_err());
    api.get("x").await.unwrap();
    assert_eq!(s.fault_hits(once), 1);
    assert_eq!(faulted(&s, once), [NO_ANSWER]);

    // until cleared; the write is not carried out
    let always = s.inject(RequestMatcher::any().verb("create"), FaultKind::Reset, None);
    for name in ["a", "b"] {
        assert_connection_error(api.create(&PostParams::default(), &cm(name, &[])).await.unwrap_err());
    }
    assert_eq!(s.objects("", "v1", "configmaps").len(), 1);
    s.clear_fault(always);
    api.create(&PostParams::default(), &cm("a", &[])).await.unwrap();
    assert_eq!(s.fault_hits(always), 2);

    // a watch is answered, then its stream is cut (no clean end)
    let rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let cut = s.inject(RequestMatcher::any().verb("watch"), FaultKind::Reset, Some(1));
    let mut w = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let first = tokio::time::timeout(T, w.next()).await.unwrap();
    assert!(matches!(first, Some(Err(_))), "the stream breaks: {first:?}");
    assert_eq!(faulted(&s, cut), [NO_ANSWER]);
    // a Status fault answers a watch request with that error
    s.fail_next(RequestMatcher::any().verb("watch"), 500, "InternalError");
    assert_eq!(status_of(api.watch(&WatchParams::default(), &rv).await.err().unwrap()).code, 500);
}

#[tokio::test]
async fn refused_connections_fail_requests_until_turned_off() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    api.create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    let rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut open = api.watch(&WatchParams::default().disable_bookmarks(), &rv).await.unwrap().boxed();

    s.refuse_connections(true);
    // an open watch is cut
    let cut = tokio::time::timeout(T, open.next()).await.unwrap();
    assert!(!matches!(cut, Some(Ok(_))), "{cut:?}");
    for _ in 0..3 {
        assert_connection_error(api.get("x").await.unwrap_err());
    }
    assert_connection_error(client_without_retries(&s).apiserver_version().await.unwrap_err());

    s.refuse_connections(false);
    api.get("x").await.unwrap();
    api.create(&PostParams::default(), &cm("y", &[])).await.unwrap();
}

/// Runs a `kube::runtime::watcher` on its own (a watcher only makes
/// requests while polled) and hands out the names it applies.
fn applied_names(api: &Api<ConfigMap>) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let w = watcher(api.clone(), watcher::Config::default());
    tokio::spawn(async move {
        let mut w = w.boxed();
        while let Some(ev) = w.next().await {
            if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = ev
                && tx.send(o.name_any()).is_err()
            {
                return;
            }
        }
    });
    rx
}

async fn next_name(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(T, rx.recv()).await.expect("the watcher applies an object").expect("the watcher runs")
}

fn count_verb(s: &ApiServer, verb: &str) -> usize {
    s.requests().iter().filter(|r| r.verb == verb).count()
}

#[tokio::test]
async fn ended_watches_are_resumed_by_runtime_watchers_without_losing_changes() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    api.create(&PostParams::default(), &cm("a", &[])).await.unwrap();
    let rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();

    let raw = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let mut names = applied_names(&api);
    assert_eq!(next_name(&mut names).await, "a");
    assert!(s.wait_until(T, |s| count_verb(s, "watch") == 2).await, "the watcher is watching");
    let lists = count_verb(&s, "list");

    s.end_watches();
    // a raw watch ends cleanly
    let rest: Vec<_> = tokio::time::timeout(T, raw.collect::<Vec<_>>()).await.unwrap();
    assert!(rest.iter().all(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))), "a clean end: {rest:?}");
    // changes made while the watcher re-watches are not lost
    for name in ["b", "c"] {
        api.create(&PostParams::default(), &cm(name, &[])).await.unwrap();
    }
    assert_eq!([next_name(&mut names).await, next_name(&mut names).await], ["b", "c"]);
    assert_eq!(count_verb(&s, "watch"), 3, "the watcher watched again");
    assert_eq!(count_verb(&s, "list"), lists, "from its resourceVersion, without a re-list");
}

#[tokio::test]
async fn watches_end_on_their_own_after_their_lifetime() {
    let s = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client(), "default");
    let lifetime = Duration::from_millis(400);
    s.set_watch_lifetime(Some(lifetime));
    let rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let started = tokio::time::Instant::now();
    let raw = api.watch(&WatchParams::default().disable_bookmarks(), &rv).await.unwrap();
    let events: Vec<_> = tokio::time::timeout(T, raw.collect::<Vec<_>>()).await.unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert!(started.elapsed() >= lifetime / 2);

    // a runtime watcher keeps up across the ends
    let mut names = applied_names(&api);
    for n in 0..3 {
        let before = count_verb(&s, "watch");
        assert!(s.wait_until(T, |s| count_verb(s, "watch") > before).await, "the watch is renewed");
        let name = format!("c{n}");
        api.create(&PostParams::default(), &cm(&name, &[])).await.unwrap();
        assert_eq!(next_name(&mut names).await, name);
    }
    assert_eq!(count_verb(&s, "list"), 2, "one list by the test, one by the watcher");
}

// ---------------------------------------------------------------- load

/// A GET answered in full: (status, Retry-After, body).
async fn get_raw(c: &kube::Client, path: &str) -> (u16, Option<String>, Value) {
    let req = http::Request::get(path).body(kube::client::Body::from(vec![])).unwrap();
    let resp = c.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let retry_after = resp.headers().get(http::header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
    let body = serde_json::from_slice(&resp.into_body().collect_bytes().await.unwrap()).unwrap();
    (code, retry_after, body)
}

/// API Priority and Fairness: per user, `per_user` requests are served at
/// once, `queue` more wait (FIFO) and the rest get 429 with Retry-After; a
/// delayed request holds its seat; other users and watches are not held up.
#[tokio::test]
async fn in_flight_limit_queues_then_throttles_each_user() {
    let s = ApiServer::start().await;
    s.add_user("alice-token", "alice", &[]);
    s.add_user("bob-token", "bob", &[]);
    Api::<ConfigMap>::namespaced(s.client(), "default").create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    s.limit_in_flight(Some(InFlightLimit { per_user: 2, queue: 2, retry_after_seconds: 3 }));
    let slow = Duration::from_millis(300);
    s.inject(RequestMatcher::any().user("alice").verb("get"), FaultKind::Delay(slow), None);
    let path = "/api/v1/namespaces/default/configmaps/x";
    let alice = client_without_retries_as(&s, "alice-token");
    let started = tokio::time::Instant::now();
    let gets: Vec<_> = (0..6)
        .map(|_| {
            let c = alice.clone();
            tokio::spawn(async move { get_raw(&c, path).await })
        })
        .collect();
    let alice_gets = |s: &ApiServer| -> Vec<_> {
        s.requests().into_iter().filter(|r| r.user == "alice" && r.verb == "get").collect()
    };
    // 2 served + 2 queued: the other 2 are refused at once
    assert!(s.wait_until(T, |s| alice_gets(s).iter().filter(|r| r.code == 429).count() == 2).await);

    // another user is not queued behind alice
    let bob = client_without_retries_as(&s, "bob-token");
    Api::<ConfigMap>::namespaced(bob, "default").get("x").await.unwrap();
    // a watch (long-running) is not limited
    let watch = Api::<ConfigMap>::namespaced(alice.clone(), "default");
    let mut w = watch.watch(&WatchParams::default().disable_bookmarks(), "0").await.unwrap().boxed();
    assert!(matches!(tokio::time::timeout(T, w.next()).await.unwrap(), Some(Ok(WatchEvent::Added(_)))));
    let served = alice_gets(&s).iter().filter(|r| r.code == 200).count();
    assert!(served < 4, "bob and the watch were served while alice's requests were still waiting");
    let quick = s.requests().into_iter().filter(|r| r.user == "bob" || r.verb == "watch").collect::<Vec<_>>();
    assert_eq!(quick.iter().map(|r| (r.code, r.queued)).collect::<Vec<_>>(), [(200, Duration::ZERO); 2]);

    let mut answers = Vec::new();
    for g in gets {
        answers.push(tokio::time::timeout(T, g).await.unwrap().unwrap());
    }
    assert!(started.elapsed() >= 2 * slow, "the queued ones were served one delay later");
    let mut codes: Vec<u16> = answers.iter().map(|a| a.0).collect();
    codes.sort();
    assert_eq!(codes, [200, 200, 200, 200, 429, 429]);
    for (_, retry_after, body) in answers.iter().filter(|a| a.0 == 429) {
        assert_eq!(retry_after.as_deref(), Some("3"));
        assert_eq!((body["kind"].as_str(), body["reason"].as_str()), (Some("Status"), Some("TooManyRequests")));
        assert_eq!(body["details"]["retryAfterSeconds"], 3);
    }
    let recorded = alice_gets(&s);
    let waited = |code: u16| recorded.iter().filter(|r| r.code == code && !r.queued.is_zero()).count();
    let at_once = |code: u16| recorded.iter().filter(|r| r.code == code && r.queued.is_zero()).count();
    assert_eq!((at_once(200), waited(200)), (2, 2), "{recorded:?}");
    assert_eq!((at_once(429), waited(429)), (2, 0));
    assert_eq!((s.max_in_flight_seen("alice"), s.max_in_flight_seen("bob")), (2, 1));

    // off again: nobody waits or is refused
    s.limit_in_flight(None);
    let gets: Vec<_> = (0..6)
        .map(|_| {
            let c = alice.clone();
            tokio::spawn(async move { get_raw(&c, path).await.0 })
        })
        .collect();
    for g in gets {
        assert_eq!(tokio::time::timeout(T, g).await.unwrap().unwrap(), 200);
    }
    assert!(alice_gets(&s).iter().skip(6).all(|r| r.queued.is_zero()));
}

fn secret_json(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {"webhookUrl": format!("https://hooks.example.com/{name}")},
    })
}

fn integration_json(ns: &str, name: &str, service: &str) -> Value {
    json!({
        "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"service": service, "secretRef": {"name": name}},
    })
}

/// `create_objects` seeds many objects at once, in-process, through the
/// admission pipeline; lists and watches see them; it is not API traffic.
#[tokio::test]
async fn create_objects_seeds_large_fixtures_through_admission() {
    use kube_notify::crd::NotificationIntegration;
    let s = ApiServer::start().await;
    for (_, crd) in kube_notify::crd::all() {
        s.install_crd(&crd).unwrap();
    }
    let c = s.client();
    let integrations: Api<NotificationIntegration> = Api::all(c.clone());
    let rv = integrations.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let before = integrations.watch(&WatchParams::default().disable_bookmarks(), &rv).await.unwrap().boxed();
    let traffic = s.requests().len();

    let n = 1000;
    let mut objects = Vec::new();
    for i in 0..n {
        let (ns, name) = (format!("team-{}", i % 10), format!("i{i:04}"));
        objects.push(secret_json(&ns, &name));
        let mut ni = integration_json(&ns, &name, "slack");
        if i % 10 == 0 {
            ni["status"] = json!({"observedGeneration": 1, "consecutiveErrors": 2, "totalDelivered": 7});
        }
        objects.push(ni);
    }
    let started = std::time::Instant::now();
    assert_eq!(s.create_objects(objects), Ok(2 * n));
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(s.requests().len(), traffic, "not recorded as requests");

    // lists see them, admitted: defaults, Secret stringData folded into data, server fields
    let listed = integrations.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(listed.len(), n);
    assert!(listed.iter().all(|o| o.spec.error_threshold == 5 && !o.spec.disabled));
    assert!(listed.iter().all(|o| o.metadata.uid.is_some() && o.metadata.generation == Some(1)));
    let managers = |o: &NotificationIntegration| -> Vec<(String, Option<String>)> {
        let mf = o.metadata.managed_fields.clone().unwrap_or_default();
        mf.into_iter().map(|m| (m.manager.unwrap_or_default(), m.subresource)).collect()
    };
    let with_status: Vec<_> = listed.iter().filter(|o| o.status.is_some()).collect();
    assert_eq!(with_status.len(), n / 10, "a status is applied as a status write");
    let st = with_status[0].status.clone().unwrap();
    assert_eq!((st.consecutive_errors, st.total_delivered, st.observed_generation), (2, 7, Some(1)));
    assert_eq!(
        managers(with_status[0]),
        [("create_objects".to_string(), None), ("create_objects".to_string(), Some("status".to_string()))]
    );
    let secrets = Api::<Secret>::namespaced(c.clone(), "team-3").list(&ListParams::default()).await.unwrap().items;
    assert_eq!(secrets.len(), n / 10);
    let s0 = &secrets[0];
    assert!(s0.string_data.is_none());
    let url = &s0.data.as_ref().unwrap()["webhookUrl"].0;
    assert_eq!(String::from_utf8_lossy(url), format!("https://hooks.example.com/{}", s0.name_any()));
    assert_eq!(s0.type_.as_deref(), Some("Opaque"));

    // a watch open before sees the creations and the status writes; one
    // from resourceVersion 0 the objects as they are now
    type Events = futures::stream::BoxStream<'static, kube::Result<WatchEvent<NotificationIntegration>>>;
    let kinds = |w: Events, count: usize| async move {
        let events: Vec<_> = tokio::time::timeout(T, w.take(count).collect::<Vec<_>>()).await.unwrap();
        let added = events.iter().filter(|e| matches!(e, Ok(WatchEvent::Added(_)))).count();
        let modified = events.iter().filter(|e| matches!(e, Ok(WatchEvent::Modified(o)) if o.status.is_some())).count();
        (added, modified)
    };
    assert_eq!(kinds(before, n + n / 10).await, (n, n / 10));
    let from_0 = integrations.watch(&WatchParams::default().disable_bookmarks(), "0").await.unwrap().boxed();
    assert_eq!(kinds(from_0, n).await, (n, 0));

    // refused objects are named; those before them stay created
    let bad = vec![
        integration_json("team-0", "ok", "webhook"),
        integration_json("team-0", "bad", "carrier-pigeon"),
        integration_json("team-0", "never", "webhook"),
    ];
    let err = s.create_objects(bad).unwrap_err();
    assert!(err.contains("object #1") && err.contains("NotificationIntegration team-0/bad"), "{err}");
    assert!(err.contains("spec.service"), "{err}");
    let named = |name: &str| s.object("kube-notify.io", "v1alpha1", "notificationintegrations", "team-0", name);
    assert!(named("ok").is_some() && named("never").is_none());
    let err = s.create_objects(vec![secret_json("team-0", "i0000")]).unwrap_err();
    assert!(err.contains("already exists"), "{err}");
    let err = s.create_objects(vec![json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})]);
    assert!(err.unwrap_err().contains("namespace"));
}
