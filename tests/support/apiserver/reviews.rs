//! TokenReview and SubjectAccessReview: create-only, answered in `status`.

use super::errors::{ApiError, ApiResult, Cause};
use super::{API_AUDIENCE, Shared, TokenReviewAnswer};
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

/// As the real server answers: the token is checked for `spec.audiences`,
/// or for the API server's own audience ([`API_AUDIENCE`]) when none are
/// given. A token whose audiences do not intersect them is not authenticated
/// (the ServiceAccount authenticator's error in `status.error`); one that is
/// has the intersection in `status.audiences`.
pub(crate) fn token_review(shared: &Shared, body: Value) -> ApiResult<Value> {
    check_type(&body, "authentication.k8s.io/v1", "TokenReview")?;
    let tr: TokenReview =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    let token = tr.spec.token.clone().unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::bad_request("token is required for TokenReview in authentication"));
    }
    let mut answer = shared
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
                audiences: i.audiences.clone(),
                error: None,
            })
        })
        .unwrap_or_default();
    let requested: Vec<String> = match tr.spec.audiences.as_ref().filter(|a| !a.is_empty()) {
        Some(a) => a.clone(),
        None => vec![API_AUDIENCE.to_string()],
    };
    let mut audiences = Vec::new();
    if answer.authenticated {
        // A token without audiences (legacy) is the API server's.
        let of_token =
            if answer.audiences.is_empty() { vec![API_AUDIENCE.to_string()] } else { answer.audiences.clone() };
        audiences = of_token.iter().filter(|a| requested.contains(a)).cloned().collect();
        if audiences.is_empty() {
            answer = TokenReviewAnswer {
                error: Some(format!(
                    "token audiences {} is invalid for the target audiences {}",
                    go_quoted(&of_token),
                    go_quoted(&requested)
                )),
                ..TokenReviewAnswer::unauthenticated()
            };
        }
    }
    let mut v = serde_json::to_value(&tr).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut status = json!({"authenticated": answer.authenticated});
    if answer.authenticated {
        let mut user = json!({"username": answer.username, "groups": answer.groups});
        if !answer.uid.is_empty() {
            user["uid"] = json!(answer.uid);
        }
        status["user"] = user;
        status["audiences"] = json!(audiences);
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

/// A list as Go's `%q` prints a `[]string`: `["a" "b"]`.
fn go_quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(" "))
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
