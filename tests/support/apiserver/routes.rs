//! HTTP: authentication, request attributes (verb/resource/...), recording,
//! injected faults, API Priority and Fairness, content negotiation and dispatch.

use super::conn::ConnControl;
use super::errors::{ApiError, ApiResult, Cause};
use super::ops::{self, FieldValidation, PatchArgs, WriteCtx, Written};
use super::store::{Behavior, ResourceType};
use super::{FaultKind, Identity, NO_ANSWER, RecordedRequest, Shared, discovery, reviews, watch};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Fills verb/group/version/resource/subresource/namespace/name like the
/// real server's RequestInfoResolver. Returns false for malformed paths.
fn resolve(rec: &mut RecordedRequest, q: &BTreeMap<String, String>) -> bool {
    let segs: Vec<String> =
        rec.path.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    rec.verb = rec.method.to_ascii_lowercase();
    let rest: &[String] = match segs.first().map(String::as_str) {
        Some("api") if segs.len() >= 2 => {
            rec.version = segs[1].clone();
            &segs[2..]
        }
        Some("apis") if segs.len() >= 3 => {
            rec.group = segs[1].clone();
            rec.version = segs[2].clone();
            &segs[3..]
        }
        _ => return true,
    };
    if rest.is_empty() {
        return true;
    }
    let mut rest = rest.to_vec();
    if rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && (rest[2] == "status" || rest[2] == "finalize"))
    {
        rec.namespace = rest[1].clone();
        rest.drain(..2);
    } else if rest[0] == "namespaces" && rest.len() >= 2 {
        rec.namespace = rest[1].clone();
    }
    if rest.len() > 3 {
        return false;
    }
    rec.resource = rest[0].clone();
    rec.name = rest.get(1).cloned().unwrap_or_default();
    rec.subresource = rest.get(2).cloned().unwrap_or_default();
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    rec.verb = match rec.method.as_str() {
        "GET" | "HEAD" => {
            if watch {
                "watch"
            } else if rec.name.is_empty() {
                "list"
            } else {
                "get"
            }
        }
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => {
            if rec.name.is_empty() {
                "deletecollection"
            } else {
                "delete"
            }
        }
        other => return other.is_empty(),
    }
    .to_string();
    true
}

pub(crate) fn json_response(code: u16, v: &Value, warnings: &[String]) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json");
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(hv) = http::HeaderValue::from_str(&text) {
            b = b.header(header::WARNING, hv);
        }
    }
    b.body(Body::from(v.to_string())).expect("response")
}

pub(crate) fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status_json(), &[])
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Full,
    Meta,
    MetaList,
}

pub(crate) fn negotiate(accept: &str) -> ApiResult<Output> {
    if accept.trim().is_empty() {
        return Ok(Output::Full);
    }
    for part in accept.split(',') {
        let mut it = part.split(';').map(str::trim);
        let mt = it.next().unwrap_or("").to_ascii_lowercase();
        let params: BTreeMap<String, String> = it
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if !(mt == "application/json" || mt == "*/*" || mt == "application/*") {
            continue;
        }
        let meta_gv = params.get("g").map(String::as_str) == Some("meta.k8s.io")
            && params.get("v").map(String::as_str) == Some("v1");
        match params.get("as").map(String::as_str) {
            None => return Ok(Output::Full),
            Some("PartialObjectMetadata") if meta_gv => return Ok(Output::Meta),
            Some("PartialObjectMetadataList") if meta_gv => return Ok(Output::MetaList),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(
        "only the following media types are accepted: application/json, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    ))
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// kube-apiserver refuses write bodies over 3 MiB with 413.
pub(crate) const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

pub(crate) async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let conn = parts.extensions.get::<ConnControl>().cloned();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let q: BTreeMap<String, String> = url::form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE);
    let mut rec = RecordedRequest {
        user: String::new(),
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: raw_query.clone(),
        verb: String::new(),
        group: String::new(),
        version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        code: 0,
        content_type: content_type.clone(),
        field_manager: q.get("fieldManager").cloned().unwrap_or_default(),
        fault: None,
        queued: std::time::Duration::ZERO,
    };
    let well_formed = resolve(&mut rec, &q);
    let token = header_str(&parts.headers, header::AUTHORIZATION);
    // A token minted for another audience (e.g. `--audience kube-notify`) does not call the API.
    let ident = token
        .strip_prefix("Bearer ")
        .map(str::trim)
        .and_then(|t| shared.users.lock().unwrap().get(t).cloned())
        .filter(|i| i.calls_the_api());
    if *shared.refusing.borrow() {
        rec.user = ident.map(|i| i.username).unwrap_or_default();
        rec.code = NO_ANSWER;
        shared.record(rec);
        return no_answer(conn).await;
    }
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await;
    let mut cut_stream = false;
    let (resp, created) = match (ident, bytes) {
        (None, _) => (error_response(&ApiError::unauthorized()), None),
        (Some(_), Err(_)) => (error_response(&ApiError::bad_request("could not read the request body")), None),
        // The real server's MaxRequestBodyBytes (3 MiB) for writes.
        (Some(_), Ok(b)) if b.len() > MAX_REQUEST_BODY_BYTES => (
            error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}"),
            )),
            None,
        ),
        (Some(id), Ok(bytes)) => {
            rec.user = id.username.clone();
            // Waiters on `fault_hits` are woken by the recording, or for a
            // delay when it starts.
            let fault = shared.faults.take(&rec);
            match &fault {
                Some((fid, FaultKind::Status { code, reason, retry_after })) => {
                    rec.fault = Some(*fid);
                    let message = format!("injected failure: {reason}");
                    let resp = status_response(&rec, *code, reason, &message, *retry_after);
                    rec.code = resp.status().as_u16();
                    shared.record(rec);
                    return resp;
                }
                Some((fid, FaultKind::Reset)) if rec.verb != "watch" => {
                    rec.fault = Some(*fid);
                    rec.code = NO_ANSWER;
                    shared.record(rec);
                    return no_answer(conn).await;
                }
                _ => {}
            }
            // API Priority and Fairness (see `apf`): watches are
            // long-running and exempt, like everything of system:masters.
            // The seat is held until the answer is built, through an
            // injected delay or hang.
            let _seat = if rec.verb == "watch" {
                None
            } else {
                let exempt = id.groups.iter().any(|g| g == "system:masters");
                match shared.apf.seat(&rec.user, exempt).await {
                    Ok((seat, queued)) => {
                        rec.queued = queued;
                        Some(seat)
                    }
                    Err(secs) => {
                        rec.fault = fault.map(|(fid, _)| fid);
                        let message = "Too many requests, please try again later.";
                        let resp = status_response(&rec, 429, "TooManyRequests", message, Some(secs));
                        rec.code = resp.status().as_u16();
                        shared.record(rec);
                        return resp;
                    }
                }
            };
            let mut reset_stream = false;
            match fault {
                Some((fid, FaultKind::Reset)) => {
                    rec.fault = Some(fid);
                    reset_stream = true;
                }
                Some((fid, FaultKind::Delay(d))) => {
                    rec.fault = Some(fid);
                    shared.activity.notify_waiters();
                    tokio::time::sleep(d).await;
                }
                Some((fid, FaultKind::Hang)) => {
                    let mut hung = rec.clone();
                    hung.fault = Some(fid);
                    hung.code = NO_ANSWER;
                    shared.record(hung);
                    let mut shutdown = shared.shutdown_tx.subscribe();
                    let released = tokio::select! {
                        _ = shared.faults.until_cleared(fid) => true,
                        _ = shutdown.wait_for(|v| *v) => false,
                    };
                    if !released {
                        return no_answer(conn).await;
                    }
                }
                Some((_, FaultKind::Status { .. })) | None => {}
            }
            if !well_formed {
                (error_response(&ApiError::resource_not_found()), None)
            } else {
                let ctx = Req { shared: &shared, id: &id, rec: &rec, q: &q, headers: &parts.headers, body: bytes };
                let result = dispatch(ctx).await;
                if reset_stream {
                    match result {
                        Ok((resp, created)) if resp.status() == StatusCode::OK => {
                            cut_stream = true;
                            (cut_after_head(resp, conn.clone()), created)
                        }
                        _ => {
                            rec.code = NO_ANSWER;
                            shared.record(rec);
                            return no_answer(conn).await;
                        }
                    }
                } else {
                    match result {
                        Ok(x) => x,
                        Err(e) => (error_response(&e), None),
                    }
                }
            }
        }
    };
    rec.code = if cut_stream { NO_ANSWER } else { resp.status().as_u16() };
    if let Some(n) = created {
        rec.name = n;
    }
    shared.record(rec);
    resp
}

/// A `Status` answer as an injected Status fault or API Priority and
/// Fairness gives it: `retry_after` adds a `Retry-After` header and
/// `details.retryAfterSeconds`.
fn status_response(
    rec: &RecordedRequest,
    code: u16,
    reason: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let mut details = json!({"name": rec.name, "group": rec.group, "kind": rec.resource});
    if let Some(secs) = retry_after {
        details["retryAfterSeconds"] = json!(secs);
    }
    let e = ApiError::new(code, reason, message).with_details(details);
    let mut resp = error_response(&e);
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    resp
}

/// Closes the request's connection without an answer.
async fn no_answer(conn: Option<ConnControl>) -> Response {
    match conn {
        Some(c) => {
            c.reset();
            std::future::pending().await
        }
        None => error_response(&ApiError::new(503, "ServiceUnavailable", "the connection cannot be closed")),
    }
}

/// Keeps `resp`'s head and replaces its body by one that resets the
/// connection when hyper first asks for it (after writing the head).
fn cut_after_head(resp: Response, conn: Option<ConnControl>) -> Response {
    let cut = futures::stream::poll_fn(move |_| {
        if let Some(c) = &conn {
            c.reset();
        }
        std::task::Poll::<Option<Result<Bytes, Infallible>>>::Pending
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, Body::from_stream(cut))
}

struct Req<'a> {
    shared: &'a Arc<Shared>,
    id: &'a Identity,
    rec: &'a RecordedRequest,
    q: &'a BTreeMap<String, String>,
    headers: &'a HeaderMap,
    body: Bytes,
}

fn parse_body(r: &Req) -> ApiResult<Value> {
    if r.body.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    let ct = header_str(r.headers, header::CONTENT_TYPE).to_ascii_lowercase();
    let mt = ct.split(';').next().unwrap_or("").trim().to_string();
    match mt.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(&r.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}"))),
        "application/yaml" => {
            let text = std::str::from_utf8(&r.body).map_err(|_| ApiError::bad_request("invalid utf-8 body"))?;
            serde_yaml::from_str(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other:?})"
        ))),
    }
}

fn write_ctx(r: &Req, rt: Arc<ResourceType>) -> ApiResult<WriteCtx> {
    let dry_run = match r.q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("Invalid dry run value: {other:?}: supported values: \"All\"")));
        }
    };
    let validation = match r.q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
    };
    let manager = match r.q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => {
            if m.len() > 128 || m.chars().any(|c| c.is_control()) {
                return Err(ApiError::invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    &[Cause::invalid("fieldManager", &json!(m), "must be less than 128 printable characters")],
                ));
            }
            m.clone()
        }
        None => {
            let ua = header_str(r.headers, header::USER_AGENT);
            let prefix = ua.split('/').next().unwrap_or("").trim().to_string();
            if prefix.is_empty() { "unknown".to_string() } else { prefix.chars().take(128).collect() }
        }
    };
    Ok(WriteCtx { rt, ns: r.rec.namespace.clone(), manager, dry_run, validation })
}

fn finish_write(r: &Req, store: &mut super::store::Store, w: &mut Written) -> bool {
    let mut committed = w.committed;
    if let Some(change) = w.crd_change.take() {
        committed |= ops::apply_crd_change(store, change);
    }
    let _ = r;
    committed
}

fn single(out: Output, obj: Value) -> ApiResult<Value> {
    match out {
        Output::Full => Ok(obj),
        Output::Meta => {
            Ok(if obj.get("kind").and_then(Value::as_str) == Some("Status") { obj } else { ops::as_partial(&obj) })
        }
        Output::MetaList => Err(ApiError::not_acceptable(
            "only the following media types are accepted: application/json, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )),
    }
}

async fn dispatch(r: Req<'_>) -> ApiResult<(Response, Option<String>)> {
    let rec = r.rec;
    let accept = header_str(r.headers, header::ACCEPT);
    if rec.resource.is_empty() {
        let addr = header_str(r.headers, header::HOST);
        return Ok((discovery::serve(r.shared, &rec.method, &rec.path, &accept, &addr)?, None));
    }
    let out = negotiate(&accept)?;
    let rt = r
        .shared
        .store
        .lock()
        .unwrap()
        .find_resource(&rec.group, &rec.version, &rec.resource)
        .ok_or_else(ApiError::resource_not_found)?;
    // Scope checks.
    let namespaced_path = !rec.namespace.is_empty() && rec.resource != "namespaces";
    if rt.namespaced {
        if !namespaced_path {
            match rec.verb.as_str() {
                "list" | "watch" => {}
                "create" | "deletecollection" => return Err(ApiError::method_not_allowed()),
                _ => return Err(ApiError::resource_not_found()),
            }
        }
    } else if namespaced_path {
        return Err(ApiError::resource_not_found());
    }
    if namespaced_path && !super::meta::is_dns_label(&rec.namespace) {
        return Err(ApiError::not_found("", "namespaces", &rec.namespace));
    }
    match rec.subresource.as_str() {
        "" => {}
        "status" if rt.status_subresource => {
            if !matches!(rec.verb.as_str(), "get" | "update" | "patch") {
                return Err(ApiError::method_not_allowed());
            }
        }
        _ => return Err(ApiError::resource_not_found()),
    }
    if rt.create_only() && rec.verb != "create" {
        return Err(ApiError::method_not_allowed());
    }
    if matches!(
        rec.verb.as_str(),
        "get" | "list" | "watch" | "create" | "update" | "patch" | "delete" | "deletecollection"
    ) {
    } else {
        return Err(ApiError::method_not_allowed());
    }
    // Every namespace exists.
    let ns_to_ensure = if rt.namespaced {
        rec.namespace.clone()
    } else if rt.behavior == Behavior::Namespace && rec.verb == "get" {
        rec.name.clone()
    } else {
        String::new()
    };
    if !ns_to_ensure.is_empty() {
        let created = ops::ensure_namespace(&mut r.shared.store.lock().unwrap(), &ns_to_ensure);
        if created {
            r.shared.committed();
        }
    }
    let ns = if rt.namespaced { rec.namespace.clone() } else { String::new() };
    match rec.verb.as_str() {
        "get" => {
            let obj = {
                let store = r.shared.store.lock().unwrap();
                ops::get(&store, &rt, &ns, &rec.name, r.q)?
            };
            Ok((json_response(200, &single(out, obj)?, &[]), None))
        }
        "list" => {
            if out == Output::Meta {
                return Err(ApiError::not_acceptable(
                    "only the following media types are accepted: application/json, application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                ));
            }
            let list = {
                let store = r.shared.store.lock().unwrap();
                ops::list(&store, &rt, &ns, r.q, out == Output::MetaList)?
            };
            Ok((json_response(200, &list, &[]), None))
        }
        "watch" => {
            if out == Output::MetaList {
                return Err(ApiError::not_acceptable(
                    "only the following media types are accepted: application/json, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                ));
            }
            let pinned = (!rec.name.is_empty()).then_some(rec.name.as_str());
            let p = watch::params(rt.clone(), &ns, r.q, out == Output::Meta, pinned)?;
            let body = watch::stream(r.shared.clone(), p);
            let resp = Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .expect("response");
            Ok((resp, None))
        }
        "create" => {
            let body = parse_body(&r)?;
            match rt.behavior {
                Behavior::TokenReview => {
                    let v = reviews::token_review(r.shared, body)?;
                    return Ok((json_response(201, &v, &[]), None));
                }
                Behavior::SubjectAccessReview => {
                    let v = reviews::access_review(r.shared, body)?;
                    return Ok((json_response(201, &v, &[]), None));
                }
                _ => {}
            }
            let w = write_ctx(&r, rt.clone())?;
            let (mut written, committed) = {
                let mut store = r.shared.store.lock().unwrap();
                let mut written = ops::create(&mut store, &w, body, None)?;
                let c = finish_write(&r, &mut store, &mut written);
                (written, c)
            };
            if committed {
                r.shared.committed();
            }
            let name = written.obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string);
            let obj = single(out, std::mem::take(&mut written.obj))?;
            Ok((json_response(written.code, &obj, &written.warnings), name))
        }
        "update" => {
            let body = parse_body(&r)?;
            let w = write_ctx(&r, rt.clone())?;
            let (mut written, committed) = {
                let mut store = r.shared.store.lock().unwrap();
                let mut written = ops::update(&mut store, &w, &rec.name, &rec.subresource, body, true, None)?;
                let c = finish_write(&r, &mut store, &mut written);
                (written, c)
            };
            if committed {
                r.shared.committed();
            }
            let obj = single(out, std::mem::take(&mut written.obj))?;
            Ok((json_response(written.code, &obj, &written.warnings), None))
        }
        "patch" => {
            if r.body.is_empty() {
                return Err(ApiError::bad_request("the body of the request was empty"));
            }
            let force = match r.q.get("force").map(String::as_str) {
                None | Some("") | Some("false") => false,
                Some("true") => true,
                Some(other) => return Err(ApiError::bad_request(format!("invalid force value {other:?}"))),
            };
            let ct = header_str(r.headers, header::CONTENT_TYPE);
            if force && !ct.starts_with("application/apply-patch") {
                return Err(ApiError::invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    &[Cause::forbidden("force", "may not be specified for non-apply patch")],
                ));
            }
            let w = write_ctx(&r, rt.clone())?;
            let args = PatchArgs {
                content_type: &ct,
                body: &r.body,
                force,
                field_manager: r.q.get("fieldManager").map(String::as_str),
            };
            let (mut written, committed) = {
                let mut store = r.shared.store.lock().unwrap();
                let mut written = ops::patch(&mut store, &w, &rec.name, &rec.subresource, args)?;
                let c = finish_write(&r, &mut store, &mut written);
                (written, c)
            };
            if committed {
                r.shared.committed();
            }
            let obj = single(out, std::mem::take(&mut written.obj))?;
            Ok((json_response(written.code, &obj, &written.warnings), None))
        }
        "delete" => {
            let opts = if r.body.is_empty() { json!({}) } else { parse_body(&r)? };
            let w = write_ctx(&r, rt.clone())?;
            let (mut written, committed) = {
                let mut store = r.shared.store.lock().unwrap();
                let mut written = ops::delete(&mut store, &w, &rec.name, &opts)?;
                let c = finish_write(&r, &mut store, &mut written);
                (written, c)
            };
            if committed {
                r.shared.committed();
            }
            let obj = single(out, std::mem::take(&mut written.obj))?;
            Ok((json_response(written.code, &obj, &[]), None))
        }
        "deletecollection" => {
            let opts = if r.body.is_empty() { json!({}) } else { parse_body(&r)? };
            let w = write_ctx(&r, rt.clone())?;
            let (items, committed) = {
                let mut store = r.shared.store.lock().unwrap();
                let mut q = r.q.clone();
                q.remove("limit");
                q.remove("continue");
                let list = ops::list(&store, &rt, &ns, &q, false)?;
                let mut items = Vec::new();
                let mut committed = false;
                for it in list["items"].as_array().cloned().unwrap_or_default() {
                    let name = it.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
                    let mut written = ops::delete(&mut store, &w, &name, &opts)?;
                    committed |= finish_write(&r, &mut store, &mut written);
                    items.push(it);
                }
                (items, committed)
            };
            if committed {
                r.shared.committed();
            }
            let rv = r.shared.store.lock().unwrap().rv;
            let list = json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items});
            Ok((json_response(200, &list, &[]), None))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
