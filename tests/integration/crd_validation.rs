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
