//! Watches: newline-delimited JSON `WatchEvent`s streamed from the store's
//! history, filtered by namespace and selectors, with bookmarks, initial
//! events (streaming lists), timeouts and 410 on compaction. A watch also
//! ends cleanly on [`super::ApiServer::end_watches`] and after the random
//! lifetime set by [`super::ApiServer::set_watch_lifetime`].

use super::Shared;
use super::errors::{ApiError, ApiResult, Cause};
use super::ops::{Selection, as_partial, parse_rv, present};
use super::store::{ResourceType, Store};
use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub(crate) enum Start {
    /// Events after this resourceVersion.
    Rv(u64),
    /// Synthetic ADDED events for the current state first; with
    /// `end_bookmark` (sendInitialEvents=true) followed by a BOOKMARK
    /// annotated `k8s.io/initial-events-end`.
    Initial { end_bookmark: bool },
    /// Only changes from now on.
    Now,
}

pub(crate) struct WatchParams {
    pub rt: Arc<ResourceType>,
    pub ns: String,
    pub sel: Selection,
    pub start: Start,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    pub meta_only: bool,
}

fn truthy(q: &BTreeMap<String, String>, k: &str) -> Option<bool> {
    q.get(k).map(|v| v == "true" || v == "1")
}

fn invalid(field: &str, v: &str, msg: &str) -> ApiError {
    ApiError::invalid("ListOptions", "meta.k8s.io", "", &[Cause::invalid(field, &json!(v), msg)])
}

/// Checks the watch query parameters like the real server does.
pub(crate) fn params(
    rt: Arc<ResourceType>,
    ns: &str,
    q: &BTreeMap<String, String>,
    meta_only: bool,
    pinned_name: Option<&str>,
) -> ApiResult<WatchParams> {
    let mut q = q.clone();
    if let Some(n) = pinned_name {
        let fs = match q.get("fieldSelector").filter(|f| !f.is_empty()) {
            Some(f) => format!("{f},metadata.name={n}"),
            None => format!("metadata.name={n}"),
        };
        q.insert("fieldSelector".into(), fs);
    }
    let sel = Selection::parse(&rt, &q)?;
    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
    let rv_match = q.get("resourceVersionMatch").cloned().unwrap_or_default();
    let bookmarks = truthy(&q, "allowWatchBookmarks").unwrap_or(false);
    let send_initial = truthy(&q, "sendInitialEvents");
    let timeout = match q.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => Some(Duration::from_secs(
            t.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        )),
        None => None,
    };
    let start = match send_initial {
        Some(si) => {
            if rv_match != "NotOlderThan" {
                return Err(invalid(
                    "resourceVersionMatch",
                    &rv_match,
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if si && !bookmarks {
                return Err(invalid(
                    "allowWatchBookmarks",
                    "false",
                    "sendInitialEvents requires allowWatchBookmarks=true",
                ));
            }
            if si {
                if !rv.is_empty() && rv != "0" {
                    parse_rv(&rv)?;
                }
                Start::Initial { end_bookmark: true }
            } else if rv.is_empty() || rv == "0" {
                Start::Now
            } else {
                Start::Rv(parse_rv(&rv)?)
            }
        }
        None => {
            if !rv_match.is_empty() {
                return Err(invalid(
                    "resourceVersionMatch",
                    &rv_match,
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if rv.is_empty() || rv == "0" { Start::Initial { end_bookmark: false } } else { Start::Rv(parse_rv(&rv)?) }
        }
    };
    Ok(WatchParams { rt, ns: ns.to_string(), sel, start, bookmarks, timeout, meta_only })
}

fn line(ty: &str, obj: Value) -> Bytes {
    let mut s = json!({"type": ty, "object": obj}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn render(p: &WatchParams, obj: Value) -> Value {
    if p.meta_only { as_partial(&obj) } else { obj }
}

fn bookmark(p: &WatchParams, rv: u64, initial_end: bool) -> Bytes {
    let (kind, av) = if p.meta_only {
        ("PartialObjectMetadata".to_string(), "meta.k8s.io/v1".to_string())
    } else {
        (p.rt.kind.clone(), p.rt.api_version())
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line("BOOKMARK", json!({"kind": kind, "apiVersion": av, "metadata": meta}))
}

fn error_line(e: &ApiError) -> Bytes {
    line("ERROR", e.status_json())
}

fn in_scope(p: &WatchParams, key: &(String, String, String)) -> bool {
    key.0 == p.rt.storage_key && (!p.rt.namespaced || p.ns.is_empty() || key.1 == p.ns)
}

fn changes(store: &Store, p: &WatchParams, after: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    for ev in &store.history[store.history_after(after)..] {
        if !in_scope(p, &ev.key) {
            continue;
        }
        let cur = present(&p.rt, &ev.cur);
        let prev = ev.prev.as_ref().map(|pv| present(&p.rt, pv));
        let old_m = prev.as_ref().is_some_and(|pv| p.sel.matches(pv));
        if ev.deleted {
            if old_m || p.sel.matches(&cur) {
                out.push(line("DELETED", render(p, cur)));
            }
            continue;
        }
        let new_m = p.sel.matches(&cur);
        match (old_m, new_m) {
            (false, true) => out.push(line("ADDED", render(p, cur))),
            (true, true) => out.push(line("MODIFIED", render(p, cur))),
            (true, false) => {
                let mut gone = prev.expect("prev");
                if let Some(m) = gone.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("resourceVersion".into(), json!(ev.rv.to_string()));
                }
                out.push(line("DELETED", render(p, gone)));
            }
            (false, false) => {}
        }
    }
    out
}

/// Starts streaming; the returned body ends on timeout (or the watch
/// lifetime), compaction, `end_watches`, server shutdown or when the
/// client goes away.
pub(crate) fn stream(shared: Arc<Shared>, p: WatchParams) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    tokio::spawn(run(shared, p, tx));
    let s =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx)) });
    Body::from_stream(s)
}

async fn run(shared: Arc<Shared>, p: WatchParams, tx: mpsc::Sender<Bytes>) {
    let mut rv_rx = shared.rv_tx.subscribe();
    let mut shutdown = shared.shutdown_tx.subscribe();
    let mut ends = shared.watch_ends.subscribe();
    if *shutdown.borrow() {
        return;
    }
    let lifetime = *shared.watch_lifetime.lock().unwrap();
    let lifetime = lifetime.map(|l| rand::random_range(l / 2..=l));
    let deadline = [p.timeout, lifetime].into_iter().flatten().min().map(|t| Instant::now() + t);
    let (mut cursor, epoch, first, end) = {
        let store = shared.store.lock().unwrap();
        let mut lines = Vec::new();
        let mut end = false;
        let cursor = match p.start {
            Start::Rv(n) => {
                if n < store.compacted_rv {
                    lines.push(error_line(&ApiError::expired(format!(
                        "too old resource version: {n} ({})",
                        store.compacted_rv
                    ))));
                    end = true;
                } else if n > store.rv {
                    lines.push(error_line(&ApiError::too_large_rv(n, store.rv)));
                    end = true;
                } else {
                    lines.extend(changes(&store, &p, n));
                }
                store.rv
            }
            Start::Initial { end_bookmark } => {
                for (k, s) in store.objects.iter() {
                    if !in_scope(&p, k) {
                        continue;
                    }
                    let obj = present(&p.rt, &s.obj);
                    if p.sel.matches(&obj) {
                        lines.push(line("ADDED", render(&p, obj)));
                    }
                }
                if end_bookmark {
                    lines.push(bookmark(&p, store.rv, true));
                }
                store.rv
            }
            Start::Now => store.rv,
        };
        (cursor, store.epoch, lines, end)
    };
    for l in first {
        if tx.send(l).await.is_err() {
            return;
        }
    }
    if end {
        return;
    }
    let mut tick = tokio::time::interval_at(Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = rv_rx.changed() => {
                if r.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                if p.bookmarks && tx.send(bookmark(&p, cursor, false)).await.is_err() {
                    return;
                }
                continue;
            }
            _ = until_deadline => return,
            _ = ends.changed() => return,
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
        }
        let (lines, gone) = {
            let store = shared.store.lock().unwrap();
            if store.epoch != epoch {
                (Vec::new(), Some(store.compacted_rv))
            } else {
                let l = changes(&store, &p, cursor);
                cursor = store.rv;
                (l, None)
            }
        };
        for l in lines {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        if let Some(c) = gone {
            let _ = tx.send(error_line(&ApiError::expired(format!("too old resource version: {cursor} ({c})")))).await;
            return;
        }
    }
}
