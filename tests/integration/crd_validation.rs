//! The API server enforces our CRDs' schemas: what users get from `kubectl apply`.

use kube::api::PostParams;
use kube_notify::crd::NotificationIntegration;
use serde_json::json;

use crate::support::operator::{NS, World};

async fn create_raw(w: &World, name: &str, spec: serde_json::Value) -> Result<NotificationIntegration, kube::Error> {
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(w.admin.clone(), NS, &kube::api::ApiResource::erase::<NotificationIntegration>(&()));
    let obj: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationIntegration",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj)
        .await
        .map(|o| serde_json::from_value(serde_json::to_value(o).unwrap()).unwrap())
}

fn invalid_field(err: kube::Error) -> String {
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{s:?}");
            s.message
        }
        other => panic!("expected 422 Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn the_api_server_refuses_bad_integrations() {
    let w = World::without_operator().await;
    let msg = invalid_field(
        create_raw(&w, "a", json!({"service": "discord", "secretRef": {"name": "s"}})).await.unwrap_err(),
    );
    assert!(msg.contains("spec.service"), "{msg}");
    let msg = invalid_field(create_raw(&w, "b", json!({"service": "slack"})).await.unwrap_err());
    assert!(msg.contains("spec.secretRef"), "{msg}");
    let msg = invalid_field(
        create_raw(&w, "c", json!({"service": "slack", "secretRef": {"name": "s"}, "errorThreshold": 0}))
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("spec.errorThreshold"), "{msg}");
    let msg = invalid_field(
        create_raw(&w, "d", json!({"service": "chatwork", "secretRef": {"name": "s"}})).await.unwrap_err(),
    );
    assert!(msg.contains("roomId"), "{msg}");
    let msg = invalid_field(
        create_raw(
            &w,
            "e",
            json!({"service": "chatwork", "secretRef": {"name": "s"}, "chatwork": {"roomId": "general"}}),
        )
        .await
        .unwrap_err(),
    );
    assert!(msg.contains("spec.chatwork.roomId"), "{msg}");
}

#[tokio::test]
async fn defaults_are_applied() {
    let w = World::without_operator().await;
    let ni = create_raw(&w, "x", json!({"service": "webhook", "secretRef": {"name": "s"}})).await.unwrap();
    assert_eq!(ni.spec.error_threshold, 5);
    assert!(!ni.spec.disabled);
    assert_eq!(ni.metadata.generation, Some(1));
}

#[tokio::test]
async fn events_need_exactly_one_target() {
    let w = World::without_operator().await;
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        w.admin.clone(),
        NS,
        &kube::api::ApiResource::erase::<kube_notify::crd::NotificationEvent>(&()),
    );
    let make = |spec: serde_json::Value| -> kube::api::DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "kube-notify.io/v1alpha1", "kind": "NotificationEvent",
            "metadata": {"generateName": "ev-"}, "spec": spec,
        }))
        .unwrap()
    };
    let err = api.create(&PostParams::default(), &make(json!({"message": "hi"}))).await.unwrap_err();
    assert!(invalid_field(err).contains("exactly one"));
    let err = api
        .create(
            &PostParams::default(),
            &make(json!({"integrationRef": {"name": "a"}, "message": "hi", "severity": "fatal"})),
        )
        .await
        .unwrap_err();
    assert!(invalid_field(err).contains("spec.severity"));
    let ok = api
        .create(&PostParams::default(), &make(json!({"integrationRef": {"name": "a"}, "message": "hi"})))
        .await
        .unwrap();
    assert_eq!(ok.data["spec"]["severity"], "info");
    assert!(ok.metadata.name.unwrap().starts_with("ev-"));
}

/// Create an object of kind `K` from `spec` as `kubectl apply` would (no client-side types).
async fn create_spec<K>(w: &World, kind: &str, spec: serde_json::Value) -> Result<kube::api::DynamicObject, kube::Error>
where
    K: kube::Resource<DynamicType = ()>,
{
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(w.admin.clone(), NS, &kube::api::ApiResource::erase::<K>(&()));
    let obj: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kube-notify.io/v1alpha1", "kind": kind,
        "metadata": {"generateName": "x-"}, "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await
}

/// The API server bounds an event's `integrationSelector` as the HTTP routes do.
#[tokio::test]
async fn event_selectors_are_bounded() {
    use kube_notify::crd::NotificationEvent;
    use kube_notify::crd::event::{MAX_SELECTOR_EXPRESSIONS, MAX_SELECTOR_LABELS, MAX_SELECTOR_VALUES};
    let w = World::without_operator().await;
    let expr = |values: usize| json!({"key": "team", "operator": "In", "values": vec!["ops"; values]});
    let labels = |n: usize| (0..n).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>();
    let event = |selector: serde_json::Value| json!({"integrationSelector": selector, "message": "hi"});
    let full = json!({"matchExpressions": vec![expr(MAX_SELECTOR_VALUES); MAX_SELECTOR_EXPRESSIONS], "matchLabels": labels(MAX_SELECTOR_LABELS)});
    create_spec::<NotificationEvent>(&w, "NotificationEvent", event(full)).await.unwrap();
    let cases = [
        (
            json!({"matchExpressions": vec![expr(1); MAX_SELECTOR_EXPRESSIONS + 1]}),
            "spec.integrationSelector.matchExpressions",
        ),
        (
            json!({"matchExpressions": [expr(MAX_SELECTOR_VALUES + 1)]}),
            "spec.integrationSelector.matchExpressions[0].values",
        ),
        (json!({"matchLabels": labels(MAX_SELECTOR_LABELS + 1)}), "spec.integrationSelector.matchLabels"),
    ];
    for (selector, field) in cases {
        let err = create_spec::<NotificationEvent>(&w, "NotificationEvent", event(selector)).await.unwrap_err();
        let msg = invalid_field(err);
        assert!(msg.contains(field), "{field}: {msg}");
    }
}

#[tokio::test]
async fn event_mentions_are_validated() {
    use kube_notify::crd::NotificationEvent;
    let w = World::without_operator().await;
    let event =
        |mentions: serde_json::Value| json!({"integrationRef": {"name": "a"}, "message": "hi", "mentions": mentions});
    let ok = create_spec::<NotificationEvent>(
        &w,
        "NotificationEvent",
        event(json!([{"email": "jane@example.com", "name": "Jane"}, {"email": "bob@example.com"}])),
    )
    .await
    .unwrap();
    assert_eq!(ok.data["spec"]["mentions"][1]["email"], "bob@example.com");
    let many: Vec<_> = (0..26).map(|i| json!({"email": format!("u{i}@example.com")})).collect();
    let cases = [
        (json!(many), "spec.mentions"),
        (json!([{"email": "jane@example.com"}, {"email": "not-an-email"}]), "spec.mentions[1].email"),
        (json!([{"email": "a b@example.com"}]), "spec.mentions[0].email"),
        (json!([{"email": format!("{}@example.com", "a".repeat(250))}]), "spec.mentions[0].email"),
        (json!([{"email": "jane@example.com", "name": "n".repeat(101)}]), "spec.mentions[0].name"),
        (json!([{"name": "Jane"}]), "spec.mentions[0].email"),
    ];
    for (mentions, field) in cases {
        let err = create_spec::<NotificationEvent>(&w, "NotificationEvent", event(mentions.clone())).await.unwrap_err();
        let msg = invalid_field(err);
        assert!(msg.contains(field), "{field}: {msg}");
    }
}

#[tokio::test]
async fn contacts_are_validated() {
    use kube_notify::crd::NotificationContact;
    let w = World::without_operator().await;
    let ok = create_spec::<NotificationContact>(
        &w,
        "NotificationContact",
        json!({"email": "jane@example.com", "name": "Jane", "slack": {"userId": "U0123ABC"},
               "chatwork": {"accountId": "1001"}, "msteams": {"id": "jane@corp.example"}}),
    )
    .await
    .unwrap();
    assert_eq!(ok.data["spec"]["slack"]["userId"], "U0123ABC");
    let cases = [
        (json!({"name": "Jane"}), "spec.email"),
        (json!({"email": "jane"}), "spec.email"),
        (json!({"email": "jane@example.com", "slack": {"userId": "jane"}}), "spec.slack.userId"),
        (json!({"email": "jane@example.com", "slack": {}}), "spec.slack.userId"),
        (json!({"email": "jane@example.com", "chatwork": {"accountId": "12a"}}), "spec.chatwork.accountId"),
        (json!({"email": "jane@example.com", "msteams": {"id": ""}}), "spec.msteams.id"),
        (json!({"email": "jane@example.com", "name": "n".repeat(101)}), "spec.name"),
    ];
    for (spec, field) in cases {
        let err = create_spec::<NotificationContact>(&w, "NotificationContact", spec.clone()).await.unwrap_err();
        let msg = invalid_field(err);
        assert!(msg.contains(field), "{field}: {msg}");
    }
}
