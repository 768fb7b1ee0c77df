//! Benchmarks (ignored by default; the machines are noisy, so they report
//! figures rather than assert them):
//!
//! `cargo test --release --test integration bench_event_delivery -- --ignored --nocapture`
//! `cargo test --release --test integration bench_sync -- --ignored --nocapture`
//! `cargo test --release --test integration bench_alertmanager -- --ignored --nocapture`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::runtime::{WatchStreamExt, watcher};
use kube_notify::crd::EventPhase;
use serde_json::json;

use crate::support::apiserver::TokenReviewAnswer;
use crate::support::operator::{NS, OPERATOR_TOKEN, WAIT, World};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Deliveries per second and creation-to-Delivered latency through the
/// whole operator (API emulation, controllers, workers, a loopback webhook
/// sink), single-target and fan-out, each next to the bare ceiling of the
/// same API emulation measured in the same run (create plus one status
/// write per object, no operator), before and after.
///
/// `BENCH_EVENTS` (2000) single-target events over `BENCH_INTEGRATIONS` (50)
/// integrations; `BENCH_FANOUT_EVENTS` (50) events to `BENCH_FANOUT` (20)
/// integrations each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bench_event_delivery() {
    // Production's log level (`--log` default), not the tests' debug capture.
    crate::support::operator::capture_logs_at("info,kube=warn,kube_notify=info");
    let integrations: usize = env_or("BENCH_INTEGRATIONS", 50);
    let events: usize = env_or("BENCH_EVENTS", 2000);
    let fanout: usize = env_or("BENCH_FANOUT", 20);
    let fanout_events: usize = env_or("BENCH_FANOUT_EVENTS", 50);

    let mut ceilings = Vec::new();
    for _ in 0..3 {
        ceilings.push(api_ceiling(events).await);
    }

    let to_sink = |n: usize| json!({"integrationRef": {"name": format!("sink-{}", n % integrations)}, "message": format!("event {n}")});
    let to_fan =
        |n: usize| json!({"integrationSelector": {"matchLabels": {"team": "fan"}}, "message": format!("fan-out {n}")});
    // Each phase on a fresh emulation, as the ceiling is measured (the
    // emulation's lists and collector cost more as objects pile up).
    // As fast as the API takes the creates (a burst: latency is the backlog).
    let w = bench_world(integrations, fanout).await;
    let single = deliver_all(&w, events, None, to_sink).await;
    let calls_single = operator_calls(&w);
    let mut received = w.webhook.messages().len();
    drop(w);
    // Created at half the ceiling: latency without a backlog of our own making.
    let paced_rate = median(&ceilings) / 2.0;
    let w = bench_world(integrations, fanout).await;
    let paced = deliver_all(&w, events, Some(paced_rate), to_sink).await;
    received += w.webhook.messages().len();
    drop(w);
    let w = bench_world(integrations, fanout).await;
    let before_fan = operator_calls(&w);
    let fan = deliver_all(&w, fanout_events, None, to_fan).await;
    let mut calls_fan = operator_calls(&w);
    for (k, v) in &before_fan {
        if let Some(n) = calls_fan.get_mut(k) {
            *n -= v;
        }
    }
    calls_fan.retain(|_, n| *n > 0);
    received += w.webhook.messages().len();
    let expected = 2 * events + fanout_events * fanout;
    drop(w);

    for _ in 0..3 {
        ceilings.push(api_ceiling(events).await);
    }
    let ceiling = median(&ceilings);
    let single_rate = events as f64 / single.elapsed.as_secs_f64();
    let fan_rate = (fanout_events * fanout) as f64 / fan.elapsed.as_secs_f64();
    println!(
        "BENCH api-ceiling (create + 1 status write per object, no operator, 3 runs before and 3 after): median={ceiling:.0}/s runs={:?}",
        ceilings.iter().map(|c| c.round() as i64).collect::<Vec<_>>()
    );
    println!(
        "BENCH single-target paced at {paced_rate:.0} events/s: p50={:.0}ms p99={:.0}ms max={:.0}ms",
        ms(paced.p50),
        ms(paced.p99),
        ms(paced.max)
    );
    println!(
        "BENCH single-target events={events} integrations={integrations}: {single_rate:.0} deliveries/s = {:.2} of the ceiling; p50={:.0}ms p99={:.0}ms max={:.0}ms",
        single_rate / ceiling,
        ms(single.p50),
        ms(single.p99),
        ms(single.max)
    );
    println!(
        "BENCH fan-out events={fanout_events} x {fanout} integrations: {fan_rate:.0} deliveries/s = {:.2} of single-target, {:.2} of the ceiling; p50={:.0}ms p99={:.0}ms max={:.0}ms",
        fan_rate / single_rate,
        fan_rate / ceiling,
        ms(fan.p50),
        ms(fan.p99),
        ms(fan.max)
    );
    println!("BENCH operator API calls during the single-target run: {calls_single:?}");
    println!("BENCH operator API calls during the fan-out run: {calls_fan:?}");
    println!("BENCH sink received={received} deliveries={expected} duplicates={}", received.saturating_sub(expected));
    assert_eq!(received, expected, "every delivery exactly once");
}

/// The operator with production's timings (counter flush, status deferral,
/// backoff; the tests' quick credential checks and retries) and ready webhook
/// integrations: `sink-<i>`, and `fan-<i>` labelled `team=fan`.
async fn bench_world(integrations: usize, fanout: usize) -> World {
    let w = World::start_with(|c| {
        c.settings = kube_notify::controller::Settings {
            retry: c.settings.retry.clone(),
            validation_rate: c.settings.validation_rate,
            ..Default::default()
        }
    })
    .await;
    let mut names = Vec::new();
    for i in 0..integrations {
        names.push((format!("sink-{i}"), json!({})));
    }
    for i in 0..fanout {
        names.push((format!("fan-{i}"), json!({"team": "fan"})));
    }
    for (name, labels) in &names {
        let url = w.webhook.add_endpoint(&format!("/sink/{name}"));
        w.put_secret(name, &[("webhookUrl", &url)]).await;
        w.create_integration_labeled(name, labels.clone(), json!({"service": "webhook", "secretRef": {"name": name}}))
            .await;
    }
    for (name, _) in &names {
        w.wait_condition(name, "Ready", "True", None).await;
    }
    w
}

/// Latencies of one batch of events.
struct Run {
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Create `n` events (32 at a time; at most `rate` per second when given)
/// and wait until each is Delivered.
async fn deliver_all(w: &World, n: usize, rate: Option<f64>, spec: impl Fn(usize) -> serde_json::Value) -> Run {
    let tag = format!("b{}", w.api.resource_version());
    // Watch for Delivered before creating anything.
    let api = w.events();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).applied_objects().boxed();
        while let Ok(Some(ev)) = stream.try_next().await {
            if ev.status.as_ref().and_then(|s| s.phase) == Some(EventPhase::Delivered) {
                let _ = tx.send((ev.metadata.name.clone().unwrap_or_default(), Instant::now()));
            }
        }
    });
    let started = Instant::now();
    let created: HashMap<String, Instant> = futures::stream::iter(0..n)
        .map(|i| {
            let (w, name, spec) = (w, format!("{tag}-{i:06}"), spec(i));
            let start = rate.map(|r| tokio::time::Instant::from_std(started) + Duration::from_secs_f64(i as f64 / r));
            async move {
                if let Some(start) = start {
                    // Pacing the load generator (not waiting for a condition).
                    tokio::time::sleep_until(start).await;
                }
                let at = Instant::now();
                w.create_event(&name, spec).await;
                (name, at)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut latencies = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < n {
        let Ok(Some((name, at))) = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await else {
            let list = w.events().list(&Default::default()).await.unwrap();
            let mut reasons = std::collections::BTreeMap::new();
            for ev in list.items {
                *reasons.entry(format!("{:?}", ev.status.and_then(|s| s.reason))).or_insert(0) += 1;
            }
            panic!("deliveries stalled after {} of {n}: {reasons:?}", seen.len());
        };
        if let Some(c) = created.get(&name)
            && seen.insert(name)
        {
            latencies.push(at - *c);
        }
    }
    let elapsed = started.elapsed();
    watch.abort();
    latencies.sort();
    Run {
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: *latencies.last().unwrap(),
    }
}

/// The operator's API calls so far, by verb, resource and code.
fn operator_calls(w: &World) -> std::collections::BTreeMap<String, usize> {
    let mut calls = std::collections::BTreeMap::new();
    for r in w.api.requests().into_iter().filter(|r| r.user == crate::support::operator::OPERATOR_USER) {
        let sub = if r.subresource.is_empty() { String::new() } else { format!("/{}", r.subresource) };
        *calls.entry(format!("{} {}{sub} {}", r.verb, r.resource, r.code)).or_insert(0) += 1;
    }
    calls
}

/// The least work a delivery needs from the API, with no operator: objects
/// per second for create, then one status write each (32 at a time), on a
/// fresh emulation with a watch open, as the operator keeps one.
async fn api_ceiling(n: usize) -> f64 {
    let w = World::without_operator().await;
    let api = w.events();
    let watch = tokio::spawn({
        let api = api.clone();
        async move {
            let mut stream = watcher(api, watcher::Config::default()).applied_objects().boxed();
            while let Ok(Some(_)) = stream.try_next().await {}
        }
    });
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (w, api) = (&w, api.clone());
            async move {
                let mut ev = w
                    .create_event(&format!("e-{i:06}"), json!({"integrationRef": {"name": "x"}, "message": "m"}))
                    .await;
                ev.status = Some(kube_notify::crd::NotificationEventStatus {
                    phase: Some(EventPhase::Delivered),
                    ..Default::default()
                });
                api.replace_status(&format!("e-{i:06}"), &Default::default(), &ev).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    watch.abort();
    rate
}

// ---------------------------------------------------------------------------
// The synchronous route against Alertmanager: the same load generator and
// the same kind of sink, on the same machine.

const BENCH_TOKEN: &str = "bench-token";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Kills the child process when dropped.
struct Process(std::process::Child);

impl Process {
    /// CPU time (user + system) the process has used so far (Linux `/proc`).
    fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).ok()?;
        // Fields after the command name (which may hold spaces), 1-based: 14 utime, 15 stime.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A sink on `addr` that answers 200 to everything; `on_body` sees each body.
async fn start_sink(
    addr: &str,
    on_body: impl Fn(bytes::Bytes) + Clone + Send + Sync + 'static,
) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(move |body: bytes::Bytes| {
        let on_body = on_body.clone();
        async move {
            on_body(body);
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// A request of the load generator.
type Req = http::Request<http_body_util::Full<bytes::Bytes>>;

/// `connections` keep-alive connections, each sending requests one after the
/// other for `seconds`: the latency of each successful (2xx) answer, and the
/// number of failures. The client is hyper's, the lightest at hand, so that
/// the load generator takes as little as it can of the cores it shares with
/// the system under test.
async fn load(
    connections: usize,
    seconds: f64,
    request: impl Fn(usize) -> Req + Clone + Send + 'static,
) -> (Vec<Duration>, u64) {
    use http_body_util::BodyExt;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let request = request.clone();
            tokio::spawn(async move {
                let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_max_idle_per_host(1)
                    .build_http();
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                let mut n = c;
                while Instant::now() < until {
                    let start = Instant::now();
                    match http.request(request(n)).await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.into_body().collect().await;
                            latencies.push(start.elapsed());
                        }
                        _ => errors += 1,
                    }
                    n += connections;
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (l, e) = task.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    (all, errors)
}

fn post_json(url: &str, bearer: Option<&str>, body: impl Into<bytes::Bytes>) -> Req {
    let mut r = http::Request::post(url).header("content-type", "application/json");
    if let Some(token) = bearer {
        r = r.header("authorization", format!("Bearer {token}"));
    }
    r.body(http_body_util::Full::new(body.into())).unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Messages per second and latency of `POST …/send` with 64 concurrent
/// connections: the real `kube-notify run` binary (its own process, release
/// build, production settings and logging) against the API emulation
/// (TokenReview and SubjectAccessReview answered, then cached), delivering
/// through one generic-webhook integration to a local sink that answers 200.
/// Reports the operator's CPU time per message too.
///
/// `cargo test --release --test integration bench_sync -- --ignored --nocapture`
///
/// Knobs: BENCH_CONNECTIONS (64), BENCH_SECONDS (10), BENCH_INTEGRATIONS (1;
/// generic webhooks have no rate limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bench_sync() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let connections: usize = env_or("BENCH_CONNECTIONS", 64);
    let integrations: usize = env_or("BENCH_INTEGRATIONS", 1);
    let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    let (sink, _sink) = start_sink("127.0.0.1:0", move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
    })
    .await;

    let w = World::without_operator().await;
    w.api.set_token_review(
        BENCH_TOKEN,
        TokenReviewAnswer::user("bench", &["system:authenticated"])
            .for_audiences(&[kube_notify::server::ingest::auth::DEFAULT_TOKEN_AUDIENCE]),
    );
    w.api.set_access_review(|spec| (spec.user.as_deref() == Some("bench"), "allowed for the benchmark".into()));
    for i in 0..integrations {
        let name = format!("sink-{i}");
        w.put_secret(&name, &[("webhookUrl", &format!("{sink}/hook/{i}"))]).await;
        w.create_integration(&name, json!({"service": "webhook", "secretRef": {"name": name}})).await;
    }

    // The operator, as deployed: its own process and runtime.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (operator, http_port, _) =
        spawn_operator(&w, &dir, &sink, &["--ingest-rate=1000000", "--ingest-burst=1000000"]);
    for i in 0..integrations {
        w.wait_condition(&format!("sink-{i}"), "Ready", "True", None).await;
    }
    let url = format!("http://127.0.0.1:{http_port}");
    let body = bytes::Bytes::from(
        json!({"title": "bench", "message": "a synchronous notification", "severity": "info",
               "fields": [{"name": "env", "value": "bench"}]})
        .to_string(),
    );
    let send = move |n: usize| {
        let path = format!("{url}/v1/namespaces/{NS}/integrations/sink-{}/send", n % integrations);
        post_json(&path, Some(BENCH_TOKEN), body.clone())
    };
    // Until the operator's store has every integration Ready (then a warm-up:
    // connections, cached reviews, notifiers).
    let deadline = Instant::now() + WAIT;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    for i in 0..integrations {
        while !http.request(send(i)).await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "the operator never served sink-{i}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    load(connections, 1.0, send.clone()).await;

    let (cpu_before, sunk_before, api_before) =
        (operator.cpu(), received.load(Ordering::Relaxed), w.api.requests().len());
    let started = Instant::now();
    let (latencies, errors) = load(connections, seconds, send).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = operator.cpu().zip(cpu_before).map(|(a, b)| a - b).unwrap_or_default();
    let sunk = received.load(Ordering::Relaxed) - sunk_before;
    let mut calls = std::collections::BTreeMap::<String, usize>::new();
    for r in &w.api.requests()[api_before..] {
        *calls.entry(format!("{} {} {}", r.verb, r.resource, r.subresource).trim().to_string()).or_default() += 1;
    }
    println!(
        "BENCH sync connections={connections} integrations={integrations} seconds={elapsed:.1} delivered={} \
         rate={:.0} msg/s p50={:.2}ms p99={:.2}ms max={:.2}ms errors={errors} sink={sunk} \
         operator_cpu={:.0}us/msg api_calls={calls:?}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        cpu.as_secs_f64() * 1e6 / latencies.len().max(1) as f64,
    );
    assert_eq!(errors, 0);
    assert_eq!(sunk, latencies.len() as u64, "every 200 was one message at the sink");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same load against Alertmanager (Debian's `prometheus-alertmanager`,
/// started here from PATH unless BENCH_ALERTMANAGER_URL names a running one):
/// 64 connections post one new alert each (`POST /api/v2/alerts`), every
/// alert its own group sent at once (`group_by: ['...']`, `group_wait: 0s`)
/// to a webhook receiver on a local sink like `bench_sync`'s. Reports alerts
/// delivered to the sink per second and post-to-sink latency.
///
/// `apt-get install prometheus-alertmanager` then
/// `cargo test --release --test integration bench_alertmanager -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: needs prometheus-alertmanager on PATH (or BENCH_ALERTMANAGER_URL)"]
async fn bench_alertmanager() {
    alertmanager_send(env_or("BENCH_CONNECTIONS", 64), env_or("BENCH_SECONDS", 10.0)).await;
}

/// Alertmanager's figures of one [`bench_alertmanager`] run.
struct AlertmanagerRun {
    delivered_per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn alertmanager_send(connections: usize, seconds: f64) -> AlertmanagerRun {
    use std::sync::{Arc, Mutex};
    let epoch = Instant::now();
    // The sink: one webhook per notification; each alert carries its posting time.
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let seen = latencies.clone();
    let (sink, _sink) = start_sink("127.0.0.1:0", move |body| {
        let now = epoch.elapsed();
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else { return };
        let mut l = seen.lock().unwrap();
        for alert in v["alerts"].as_array().into_iter().flatten() {
            if let Some(sent) = alert["labels"]["sent_us"].as_str().and_then(|s| s.parse::<u64>().ok()) {
                l.push(now.saturating_sub(Duration::from_micros(sent)));
            }
        }
    })
    .await;

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-am-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (alertmanager, process) = match std::env::var("BENCH_ALERTMANAGER_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let config = dir.join("am.yml");
            std::fs::write(
                &config,
                format!(
                    "route: {{receiver: sink, group_by: ['...'], group_wait: 0s, group_interval: 1m, repeat_interval: 4h}}\n\
                     receivers: [{{name: sink, webhook_configs: [{{url: '{sink}/am', send_resolved: false}}]}}]\n"
                ),
            )
            .unwrap();
            let (process, url) = start_alertmanager(&dir).await;
            (url, Some(process))
        }
    };
    let url = format!("{alertmanager}/api/v2/alerts");
    let post = move |n: usize| {
        let alert = json!([{
            "labels": {"alertname": "bench", "id": n.to_string(), "sent_us": epoch.elapsed().as_micros().to_string()},
            "annotations": {"summary": "a notification", "description": "a synchronous notification"},
        }]);
        post_json(&url, None, alert.to_string())
    };
    let cpu_before = process.as_ref().and_then(Process::cpu);
    let started = Instant::now();
    let (posts, errors) = load(connections, seconds, post).await;
    let posting = started.elapsed().as_secs_f64();
    let in_window = latencies.lock().unwrap().len();
    // Let the queued notifications drain (while the count grows, at most 60 s).
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    let mut last = in_window;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = latencies.lock().unwrap().len();
        if now >= posts.len() || now == last || Instant::now() > drain_deadline {
            break;
        }
        last = now;
    }
    let total = started.elapsed().as_secs_f64();
    let cpu = process.as_ref().and_then(Process::cpu).zip(cpu_before).map(|(a, b)| a - b);
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    println!(
        "BENCH alertmanager connections={connections} posted={} ({:.0}/s over {posting:.1}s) post_errors={errors} \
         delivered_in_window={in_window} ({:.0}/s) delivered_total={} in {total:.1}s ({:.0}/s) \
         p50={:.2}ms p99={:.2}ms max={:.2}ms alertmanager_cpu={}",
        posts.len(),
        posts.len() as f64 / posting,
        in_window as f64 / posting,
        l.len(),
        l.len() as f64 / total,
        ms(percentile(&l, 0.50)),
        ms(percentile(&l, 0.99)),
        ms(l.last().copied().unwrap_or_default()),
        cpu.map(|c| format!("{:.0}us/alert", c.as_secs_f64() * 1e6 / l.len().max(1) as f64))
            .unwrap_or_else(|| "unknown".into()),
    );
    drop(process);
    let _ = std::fs::remove_dir_all(&dir);
    AlertmanagerRun {
        delivered_per_second: l.len() as f64 / total,
        p50: percentile(&l, 0.50),
        p99: percentile(&l, 0.99),
    }
}

// ---------------------------------------------------------------------------
// Standalone mode: the real `kube-notify standalone` binary next to
// Alertmanager, in the same run.

/// Resident memory of a process (Linux `/proc`), in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `n` generic-webhook integrations (and their Secrets) to `sink`, as one manifest file.
fn webhook_manifests(n: usize, sink: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sink-{i}\nstringData:\n  webhookUrl: {sink}/hook/{i}\n---\n\
                 apiVersion: kube-notify.io/v1alpha1\nkind: NotificationIntegration\nmetadata:\n  name: sink-{i}\n\
                 spec:\n  service: webhook\n  secretRef:\n    name: sink-{i}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A `kube-notify standalone` process on a fresh state folder; ready and
/// every integration Ready when this returns, with how long that took.
async fn start_standalone(
    dir: &std::path::Path,
    manifests: &str,
    sink: &str,
    integrations: usize,
    extra: &[&str],
) -> (Process, String, Duration) {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("manifests.yaml");
    std::fs::write(&file, manifests).unwrap();
    let (http_port, admin_port) = (free_port(), free_port());
    let started = Instant::now();
    let process = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_kube-notify"))
            .args(["standalone", "--ingest-rate=1000000", "--ingest-burst=1000000"])
            .arg("-f")
            .arg(&file)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg(format!("--allow-endpoint={sink}/"))
            .arg(format!("--http-addr=127.0.0.1:{http_port}"))
            .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the kube-notify binary runs"),
    );
    let url = format!("http://127.0.0.1:{http_port}");
    let list = format!("{url}/v1/integrations");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = reqwest::get(&list).await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && v["items"]
                .as_array()
                .is_some_and(|items| items.len() == integrations && items.iter().all(|i| i["ready"] == true))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the integrations never became Ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (process, url, started.elapsed())
}

/// Standalone mode in one run next to Alertmanager:
/// 1. `send` msg/s with 64 connections (as `bench_sync`, without the
///    Kubernetes API: nothing to review, the embedded store);
/// 2. events/s: 2000 events posted to `POST …/events` (32 at a time) over
///    50 integrations, until the sink has them all (each event is created
///    in, and its final status written to, the SQLite store, fsynced);
/// 3. Alertmanager's `bench_alertmanager` load;
/// 4. idle RSS and time to Ready with 1000 webhook integrations (checks at
///    1000/s, not the default 5/s per service), and
///    Alertmanager's idle RSS with 1000 webhook receivers and routes.
///
/// `apt-get install prometheus-alertmanager` then
/// `cargo test --release --test integration bench_standalone -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: needs prometheus-alertmanager on PATH"]
async fn bench_standalone() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let connections: usize = env_or("BENCH_CONNECTIONS", 64);
    let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
    let received = Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    let (sink, _sink) = start_sink("127.0.0.1:0", move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
    })
    .await;
    let root =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-standalone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);

    // 1 and 2: one process, 50 integrations.
    let (process, url, _) = start_standalone(&root.join("load"), &webhook_manifests(50, &sink), &sink, 50, &[]).await;
    let body = bytes::Bytes::from(
        json!({"title": "bench", "message": "a synchronous notification", "severity": "info",
               "fields": [{"name": "env", "value": "bench"}]})
        .to_string(),
    );
    let send = {
        let (url, body) = (url.clone(), body.clone());
        move |_: usize| post_json(&format!("{url}/v1/namespaces/default/integrations/sink-0/send"), None, body.clone())
    };
    load(connections, 1.0, send.clone()).await;
    let cpu_before = process.cpu();
    let started = Instant::now();
    let (latencies, errors) = load(connections, seconds, send).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process.cpu().zip(cpu_before).map(|(a, b)| a - b).unwrap_or_default();
    let send_rate = latencies.len() as f64 / elapsed;
    println!(
        "BENCH standalone send connections={connections} rate={send_rate:.0} msg/s p50={:.2}ms p99={:.2}ms errors={errors} cpu={:.0}us/msg",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        cpu.as_secs_f64() * 1e6 / latencies.len().max(1) as f64,
    );

    let events = 2000usize;
    let before = received.load(Ordering::Relaxed);
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let started = Instant::now();
    futures::stream::iter(0..events)
        .map(|i| {
            let body =
                json!({"integration": format!("sink-{}", i % 50), "title": "bench", "message": format!("event {i}")});
            let request = post_json(&format!("{url}/v1/namespaces/default/events"), None, body.to_string());
            let http = http.clone();
            async move {
                let r = http.request(request).await.unwrap();
                assert_eq!(r.status(), 202);
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let accepted = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.load(Ordering::Relaxed) - before < events as u64 {
        assert!(Instant::now() < deadline, "not every event arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events_rate = events as f64 / started.elapsed().as_secs_f64();
    println!(
        "BENCH standalone events n={events} accepted_in={accepted:.1}s ({:.0}/s) delivered_all_in={:.1}s rate={events_rate:.0} events/s",
        events as f64 / accepted,
        started.elapsed().as_secs_f64()
    );
    drop(process);

    // 3: Alertmanager, the same run.
    let am = alertmanager_send(connections, seconds).await;

    // 4: idle with 1000 integrations.
    // Credential checks are spread at --validation-rate per service (5/s by
    // default: 200 s for 1000 webhooks); raised here to measure the rest.
    let fast = ["--validation-rate=1000"];
    let (process, _, ready_in) =
        start_standalone(&root.join("idle"), &webhook_manifests(1000, &sink), &sink, 1000, &fast).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ours = rss(process.0.id()).unwrap_or_default();
    drop(process);
    let am_rss = alertmanager_idle_rss(1000, &sink, &root.join("am-idle")).await;
    println!(
        "BENCH standalone idle integrations=1000 ready_in={:.1}s rss={:.1}MiB alertmanager_rss={:.1}MiB",
        ready_in.as_secs_f64(),
        mib(ours),
        mib(am_rss)
    );
    println!(
        "BENCH standalone summary send/alertmanager={:.2} events/alertmanager={:.2} send_p99={:.1}ms alertmanager_p99={:.1}ms rss/alertmanager={:.2}",
        send_rate / am.delivered_per_second,
        events_rate / am.delivered_per_second,
        ms(percentile(&latencies, 0.99)),
        ms(am.p99),
        ours as f64 / am_rss.max(1) as f64,
    );
    let _ = (am.p50, errors);
    let _ = std::fs::remove_dir_all(&root);
}

/// Alertmanager's RSS, idle, with `receivers` webhook receivers, each with its route.
async fn alertmanager_idle_rss(receivers: usize, sink: &str, dir: &std::path::Path) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let routes: Vec<String> =
        (0..receivers).map(|i| format!("    - {{receiver: r{i}, matchers: ['team=\"t{i}\"']}}")).collect();
    let list: Vec<String> =
        (0..receivers).map(|i| format!("  - {{name: r{i}, webhook_configs: [{{url: '{sink}/am/{i}'}}]}}")).collect();
    let config = format!("route:\n  receiver: r0\n  routes:\n{}\nreceivers:\n{}\n", routes.join("\n"), list.join("\n"));
    std::fs::write(dir.join("am.yml"), config).unwrap();
    let (process, _) = start_alertmanager(dir).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    rss(process.0.id()).unwrap_or_default()
}

/// Alertmanager with the configuration `dir/am.yml`, once ready; its URL.
async fn start_alertmanager(dir: &std::path::Path) -> (Process, String) {
    let port = free_port();
    let process = Process(
        std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager on PATH (apt-get install prometheus-alertmanager)"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let ready = format!("{url}/-/ready");
    let deadline = Instant::now() + WAIT;
    while !reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "Alertmanager never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (process, url)
}

/// The operator idle with `BENCH_INTEGRATIONS` (1000) webhook integrations
/// and their Secrets: the real `kube-notify run` binary against the API
/// emulation, time until every integration is Ready after they were applied
/// and RSS after 5 s idle, next to Alertmanager's idle RSS with as many
/// webhook receivers and routes, in the same run.
///
/// `cargo test --release --test integration bench_idle_operator -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: needs prometheus-alertmanager on PATH"]
async fn bench_idle_operator() {
    let integrations: usize = env_or("BENCH_INTEGRATIONS", 1000);
    let (sink, _sink) = start_sink("127.0.0.1:0", |_| {}).await;
    let w = World::without_operator().await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (operator, _, admin_port) = spawn_operator(&w, &dir, &sink, &[]);
    let ready = format!("http://127.0.0.1:{admin_port}/readyz");
    let deadline = Instant::now() + WAIT;
    while !reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "the operator never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let empty_rss = rss(operator.0.id()).unwrap_or_default();
    // Applied as `kubectl apply -f` of a folder would: one after the other.
    let applied = Instant::now();
    for i in 0..integrations {
        let name = format!("sink-{i}");
        w.put_secret(&name, &[("webhookUrl", &format!("{sink}/hook/{i}"))]).await;
        w.create_integration(&name, json!({"service": "webhook", "secretRef": {"name": name}})).await;
    }
    let apply_took = applied.elapsed();
    all_ready(&w, integrations, Duration::from_secs(600)).await;
    let ready_after_applied = applied.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss = rss(operator.0.id()).unwrap_or_default();
    drop(operator);
    let am = alertmanager_idle_rss(integrations, &sink, &dir.join("am")).await;
    println!(
        "BENCH idle operator integrations={integrations} applied_in={:.1}s all_ready_in={:.1}s (from the first apply) \
         rss_empty={:.1}MiB rss_idle={:.1}MiB alertmanager_rss={:.1}MiB ratio={:.2}",
        apply_took.as_secs_f64(),
        ready_after_applied.as_secs_f64(),
        mib(empty_rss),
        mib(idle_rss),
        mib(am),
        idle_rss as f64 / am.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kube-notify run` in its own process against `w`'s API emulation (a
/// kubeconfig in `dir` with the operator's token), allowed to reach `sink`,
/// without leader election; the process and its HTTP and admin ports.
fn spawn_operator(w: &World, dir: &std::path::Path, sink: &str, extra: &[&str]) -> (Process, u16, u16) {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: e, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: op, user: {{token: {OPERATOR_TOKEN}}}}}]\n\
             contexts: [{{name: e, context: {{cluster: e, user: op}}}}]\ncurrent-context: e\n",
            w.api.url()
        ),
    )
    .unwrap();
    let (http_port, admin_port) = (free_port(), free_port());
    let process = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_kube-notify"))
            .args(["run", "--leader-election=false"])
            .args(extra)
            .arg(format!("--allow-endpoint={sink}/"))
            .arg(format!("--http-addr=127.0.0.1:{http_port}"))
            .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
            .env("KUBECONFIG", &kubeconfig)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the kube-notify binary runs"),
    );
    (process, http_port, admin_port)
}

/// A new leader's start over `BENCH_INTEGRATIONS` (1000) webhook
/// integrations a previous leader made Ready (production timings, leader
/// election on): time to `/readyz`, to leading, until every integration was
/// reconciled, and until an event to the last integration (created at the
/// start) was delivered; the API calls the new leader made until then, and
/// whether it ever stepped down. `BENCH_LEASE_DELAY_MS` (0) delays every
/// Lease request (a slow API server).
///
/// `BENCH_INTEGRATIONS=10000 cargo test --release --test integration bench_restart -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bench_restart() {
    use crate::support::apiserver::{FaultKind, RequestMatcher};
    use crate::support::operator::{Launch, OPERATOR_USER};
    let n: usize = env_or("BENCH_INTEGRATIONS", 1000);
    let lease_delay: u64 = env_or("BENCH_LEASE_DELAY_MS", 0);
    let mut w = World::without_operator().await;
    w.config.settings =
        kube_notify::controller::Settings { validation_rate: w.config.settings.validation_rate, ..Default::default() };
    let leader = |id: &str| kube_notify::leader::LeaderConfig::new("kube-notify", "kube-notify", id);
    let (sink, _sink) = start_sink("127.0.0.1:0", |_| {}).await;
    w.config.endpoints.policy = kube_notify::notifier::endpoint::EndpointPolicy::new(&[format!("{sink}/")]).unwrap();
    let created = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (w, sink) = (&w, &sink);
            async move {
                let name = format!("sink-{i}");
                w.put_secret(&name, &[("webhookUrl", &format!("{sink}/hook/{i}"))]).await;
                w.create_integration(&name, json!({"service": "webhook", "secretRef": {"name": name}})).await;
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let created_in = created.elapsed();
    let first = w.launch(Launch { leader: Some(leader("pod-a")), ..w.launch_config() });
    let first_started = Instant::now();
    all_ready(&w, n, Duration::from_secs(900)).await;
    let first_ready_in = first_started.elapsed();
    first.shutdown().await.unwrap();

    if lease_delay > 0 {
        let delay = FaultKind::Delay(Duration::from_millis(lease_delay));
        w.api.inject(RequestMatcher::any().resource("leases"), delay, None);
    }
    let from = w.api.requests().len();
    let reconciles = w.reconciles();
    let started = Instant::now();
    let second = w.launch(Launch { leader: Some(leader("pod-b")), ..w.launch_config() });
    let stepped_down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch_leadership = tokio::spawn({
        let (leadership, stepped_down) = (second.leadership.clone(), stepped_down.clone());
        async move {
            leadership.wait_until(true).await;
            leadership.wait_until(false).await;
            stepped_down.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    w.create_event("to-the-last", json!({"integrationRef": {"name": format!("sink-{}", n - 1)}, "message": "hi"}))
        .await;
    second.readiness.wait().await;
    let ready_in = started.elapsed();
    second.leadership.wait_until(true).await;
    let leading_in = started.elapsed();
    w.wait_event_phase("to-the-last", EventPhase::Delivered).await;
    let delivered_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(900);
    while w.reconciles() < reconciles + n as u64 {
        assert!(Instant::now() < deadline, "not every integration was reconciled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reconciled_in = started.elapsed();
    let mut calls: std::collections::BTreeMap<String, usize> = Default::default();
    for r in w.api.requests().into_iter().skip(from).filter(|r| r.user == OPERATOR_USER) {
        let sub = if r.subresource.is_empty() { String::new() } else { format!("/{}", r.subresource) };
        *calls.entry(format!("{} {}{sub}", r.verb, r.resource)).or_insert(0) += 1;
    }
    let total: usize = calls.values().sum();
    println!(
        "BENCH restart integrations={n} lease_delay={lease_delay}ms created_in={:.1}s first_leader_all_ready_in={:.1}s | \
         new leader: ready_in={:.2}s leading_in={:.2}s event_to_last_delivered_in={:.2}s all_reconciled_in={:.2}s \
         api_calls={total} stepped_down={}",
        created_in.as_secs_f64(),
        first_ready_in.as_secs_f64(),
        ready_in.as_secs_f64(),
        leading_in.as_secs_f64(),
        delivered_in.as_secs_f64(),
        reconciled_in.as_secs_f64(),
        stepped_down.load(std::sync::atomic::Ordering::SeqCst)
    );
    println!("BENCH restart api_calls_by_kind={calls:?}");
    watch_leadership.abort();
    second.shutdown().await.unwrap();
}

/// The operator's peak memory with `BENCH_EVENTS` (1000) maximum-size
/// NotificationEvents (about 0.5 MB each: every text at its schema's limit
/// in 4-byte characters) waiting at its start, as after a crash with a
/// backlog (the relist): the real binary (`kube-notify run`) against the API
/// emulation, delivering them all to a loopback sink. Prints the peak RSS
/// (VmHWM) next to the chart's memory limit (256 MiB).
///
/// `cargo test --release --test integration bench_large_events -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bench_large_events() {
    let n: usize = env_or("BENCH_EVENTS", 1000);
    let delivered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (sink, _sink) = start_sink("127.0.0.1:0", {
        let delivered = delivered.clone();
        move |_| {
            delivered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    })
    .await;
    let w = World::without_operator().await;
    w.put_secret("big", &[("webhookUrl", &format!("{sink}/hook"))]).await;
    w.create_integration("big", json!({"service": "webhook", "secretRef": {"name": "big"}})).await;
    let wide = |chars: usize| "😀".repeat(chars);
    let spec = json!({
        "integrationRef": {"name": "big"},
        "title": wide(250),
        "message": wide(65_535),
        "fields": (0..25).map(|i| json!({"name": format!("{i}{}", wide(148)), "value": wide(2000)})).collect::<Vec<_>>(),
        "links": (0..10).map(|i| json!({"text": wide(150), "url": format!("https://example.com/{i}/{}", "a".repeat(2000))})).collect::<Vec<_>>(),
    });
    let size = spec.to_string().len();
    let created = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (w, spec) = (&w, spec.clone());
            async move { w.create_event(&format!("big-{i}"), spec).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let created_in = created.elapsed();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let (operator, _, _) = spawn_operator(&w, &dir, &sink, &[]);
    let deadline = Instant::now() + Duration::from_secs(900);
    while delivered.load(std::sync::atomic::Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "only {delivered:?} of {n} delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered_in = started.elapsed();
    let peak = peak_rss(operator.0.id()).unwrap_or_default();
    let now = rss(operator.0.id()).unwrap_or_default();
    println!(
        "BENCH large events events={n} event_size={:.0}KB created_in={:.1}s all_delivered_in={:.1}s \
         operator_peak_rss={:.1}MiB rss_after={:.1}MiB chart_limit=256MiB peak/limit={:.2}",
        size as f64 / 1000.0,
        created_in.as_secs_f64(),
        delivered_in.as_secs_f64(),
        mib(peak),
        mib(now),
        mib(peak) / 256.0
    );
    drop(operator);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Wait (polling the list) until `n` integrations are `Ready`, at most `within`.
async fn all_ready(w: &World, n: usize, within: Duration) {
    let api = w.integrations();
    let deadline = Instant::now() + within;
    loop {
        let list = api.list(&Default::default()).await.unwrap();
        let ready = list
            .items
            .iter()
            .filter(|ni| crate::support::operator::condition(ni, "Ready").is_some_and(|(s, _, _)| s == "True"))
            .count();
        if ready == n {
            return;
        }
        assert!(Instant::now() < deadline, "only {ready} of {n} Ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A process's peak resident memory (VmHWM).
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

// ---------------------------------------------------------------------------
// Strangers: what unauthenticated clients can make the real binary hold.

/// The real `kube-notify standalone` binary (its own process, with
/// `--token-file`, so every request here is unauthenticated), against what
/// strangers send:
/// 1. RSS and `/metrics` size before and after `BENCH_REQUESTS` (5000)
///    requests with random methods of up to 8 KB, to unmatched and matched
///    paths, 16 at a time;
/// 2. how long a connection that sent half a request head is held (the
///    header timeout, 10 s), while `BENCH_HALF_OPEN` (500) other connections
///    each hold 31 KiB of an unfinished head: RSS while they are held, and
///    after they were closed.
///
/// `cargo test --release --test integration bench_strangers -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bench_strangers() {
    use rand::Rng;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let requests: usize = env_or("BENCH_REQUESTS", 5000);
    let half_open: usize = env_or("BENCH_HALF_OPEN", 500);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-strangers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifests.yaml"), "").unwrap();
    std::fs::write(dir.join("token"), "a-token-nobody-here-sends-0123456789").unwrap();
    let (http_port, admin_port) = (free_port(), free_port());
    let process = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_kube-notify"))
            .arg("standalone")
            .arg("-f")
            .arg(dir.join("manifests.yaml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--token-file")
            .arg(dir.join("token"))
            .arg(format!("--http-addr=127.0.0.1:{http_port}"))
            .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the kube-notify binary runs"),
    );
    let pid = process.0.id();
    let (url, admin) = (format!("http://127.0.0.1:{http_port}"), format!("http://127.0.0.1:{admin_port}"));
    let deadline = Instant::now() + WAIT;
    while !reqwest::get(format!("{admin}/readyz")).await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = reqwest::Client::new();
    let scrape = || async { reqwest::get(format!("{admin}/metrics")).await.unwrap().text().await.unwrap() };
    let series = |text: &str| text.lines().filter(|l| l.starts_with("kube_notify_ingest_requests_total")).count();
    // Warm: every route and code once, with a known method.
    for path in ["/nope", "/v1/integrations", "/v1/namespaces/default/events"] {
        let _ = http.post(format!("{url}{path}")).send().await.unwrap();
    }
    let (rss_before, metrics_before) = (rss(pid).unwrap_or_default(), scrape().await);

    let started = Instant::now();
    let paths = ["/nope", "/v1/namespaces/default/events", "/v1/namespaces/default/integrations/x/send", "/x/y/z"];
    let codes: Vec<u16> = futures::stream::iter(0..requests)
        .map(|i| {
            let len = rand::rng().random_range(1..=8 * 1024);
            let name: String = (0..len).map(|_| char::from(rand::rng().random_range(b'A'..=b'Z'))).collect();
            let method = reqwest::Method::from_bytes(name.as_bytes()).unwrap();
            let request = http.request(method, format!("{url}{}", paths[i % paths.len()]));
            async move { request.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let took = started.elapsed();
    let answered = codes.iter().filter(|c| **c != 0).count();
    let metrics_after = scrape().await;
    let rss_after = rss(pid).unwrap_or_default();
    println!(
        "BENCH strangers requests={requests} answered={answered} in={:.1}s rss_before={:.1}MiB rss_after={:.1}MiB \
         metrics_before={}B metrics_after={}B ingest_series_before={} ingest_series_after={}",
        took.as_secs_f64(),
        mib(rss_before),
        mib(rss_after),
        metrics_before.len(),
        metrics_after.len(),
        series(&metrics_before),
        series(&metrics_after),
    );

    // 2: half-open heads.
    let head = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: {}", "a".repeat(31 * 1024));
    let mut held = Vec::new();
    for _ in 0..half_open {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", http_port)).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        held.push(s);
    }
    let mut probe = tokio::net::TcpStream::connect(("127.0.0.1", http_port)).await.unwrap();
    let since = Instant::now();
    probe.write_all(b"GET / HTTP/1.1\r\nX: ").await.unwrap();
    // Let the server read what was sent before measuring what it holds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held = rss(pid).unwrap_or_default();
    let mut buf = [0u8; 1024];
    while !matches!(
        tokio::time::timeout(Duration::from_secs(60), probe.read(&mut buf)).await,
        Ok(Ok(0) | Err(_)) | Err(_)
    ) {}
    let probe_held = since.elapsed();
    let mut closed = 0;
    for mut s in held {
        if matches!(tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await, Ok(Ok(0) | Err(_))) {
            closed += 1;
        }
    }
    let rss_closed = rss(pid).unwrap_or_default();
    println!(
        "BENCH strangers half_sent_head_held={:.2}s half_open={half_open}x31KiB closed_by_server={closed} \
         rss_while_held={:.1}MiB rss_after_close={:.1}MiB",
        probe_held.as_secs_f64(),
        mib(rss_held),
        mib(rss_closed),
    );
    drop(process);
    let _ = std::fs::remove_dir_all(&dir);
}
