//! TokenReview and SubjectAccessReview: create-only, answered in `status`.

use super::errors::{ApiError, ApiResult, Cause};
use super::{Shared, TokenReviewAnswer};
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use serde_json::{Value, json};

fn check_type(body: &Value, av: &str, kind: &str) -> ApiResult<()> {
    for (field, want) in [("apiVersion", av), ("kind", kind)] {
        match body.get(field).and_then(Value::as_str) {
            None | Some("") => {}
            Some(x) if x == want => {}
            Some(x) => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the data ({x}) does not match the expected {field} ({want})"
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn token_review(shared: &Shared, body: Value) -> ApiResult<Value> {
    check_type(&body, "authentication.k8s.io/v1", "TokenReview")?;
    let tr: TokenReview =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    let token = tr.spec.token.clone().unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::bad_request("token is required for TokenReview in authentication"));
    }
    let answer = shared
        .token_reviews
        .lock()
        .unwrap()
        .get(&token)
        .cloned()
        .or_else(|| {
            shared.users.lock().unwrap().get(&token).map(|i| TokenReviewAnswer {
                authenticated: true,
                username: i.username.clone(),
                uid: String::new(),
                groups: i.groups.clone(),
                error: None,
            })
        })
        .unwrap_or_default();
    let mut v = serde_json::to_value(&tr).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut status = json!({"authenticated": answer.authenticated});
    if answer.authenticated {
        let mut user = json!({"username": answer.username, "groups": answer.groups});
        if !answer.uid.is_empty() {
            user["uid"] = json!(answer.uid);
        }
        status["user"] = user;
        if let Some(a) = tr.spec.audiences.as_ref().filter(|a| !a.is_empty()) {
            status["audiences"] = json!(a);
        }
    } else {
        status["user"] = json!({});
    }
    if let Some(e) = &answer.error {
        status["error"] = json!(e);
    }
    v["status"] = status;
    v["metadata"]["creationTimestamp"] = Value::Null;
    Ok(v)
}

pub(crate) fn access_review(shared: &Shared, body: Value) -> ApiResult<Value> {
    check_type(&body, "authorization.k8s.io/v1", "SubjectAccessReview")?;
    let sar: SubjectAccessReview =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    let spec = &sar.spec;
    let mut causes = Vec::new();
    let has_user = spec.user.as_deref().is_some_and(|u| !u.is_empty());
    let has_groups = spec.groups.as_ref().is_some_and(|g| !g.is_empty());
    if !has_user && !has_groups {
        causes.push(Cause::invalid(
            "spec.user",
            &json!(spec.user.clone().unwrap_or_default()),
            "at least one of user or group must be specified",
        ));
    }
    match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(_), Some(_)) => causes.push(Cause::invalid(
            "spec.nonResourceAttributes",
            &json!("object"),
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => causes.push(Cause::invalid(
            "spec.resourceAttributes",
            &json!(null),
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => {}
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("SubjectAccessReview", "authorization.k8s.io", "", &causes));
    }
    let f = shared.access_review.lock().unwrap().clone();
    let (allowed, reason) = f(spec);
    let mut v = serde_json::to_value(&sar).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut status = json!({"allowed": allowed});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    v["status"] = status;
    v["metadata"]["creationTimestamp"] = Value::Null;
    Ok(v)
}
