//! Benchmarks (ignored by default; the machines are noisy, so they report
//! figures rather than assert them):
//!
//! `cargo test --release --test integration bench_event_delivery -- --ignored --nocapture`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::runtime::{WatchStreamExt, watcher};
use kube_notify::crd::EventPhase;
use serde_json::json;

use crate::support::operator::World;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Events per second and creation-to-delivered latency through the whole
/// operator (API emulation, controller, workers, a loopback webhook sink).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bench_event_delivery() {
    let integrations: usize = std::env::var("BENCH_INTEGRATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let events: usize = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    // Production's counter flush (tests use a short one).
    let w = World::start_with(|c| c.settings.counter_flush = Duration::from_secs(1)).await;
    for i in 0..integrations {
        let url = w.webhook.add_endpoint(&format!("/sink/{i}"));
        w.put_secret(&format!("sink-{i}"), &[("webhookUrl", &url)]).await;
        w.create_integration(
            &format!("sink-{i}"),
            json!({"service": "webhook", "secretRef": {"name": format!("sink-{i}")}}),
        )
        .await;
    }
    for i in 0..integrations {
        w.wait_condition(&format!("sink-{i}"), "Ready", "True", None).await;
    }

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
    let created: HashMap<String, Instant> = futures::stream::iter(0..events)
        .map(|n| {
            let w = &w;
            async move {
                let name = format!("bench-{n:06}");
                let at = Instant::now();
                w.create_event(&name, json!({"integrationRef": {"name": format!("sink-{}", n % integrations)}, "message": format!("event {n}")}))
                    .await;
                (name, at)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut latencies = Vec::with_capacity(events);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < events {
        let Ok(Some((name, at))) = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await else {
            let list = w.events().list(&Default::default()).await.unwrap();
            let mut reasons = std::collections::BTreeMap::new();
            for ev in list.items {
                *reasons.entry(format!("{:?}", ev.status.and_then(|s| s.reason))).or_insert(0) += 1;
            }
            panic!("deliveries stalled after {} of {events}: {reasons:?}", seen.len());
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
    println!(
        "BENCH events={events} integrations={integrations} elapsed={:.2}s rate={:.0} events/s p50={:.1}ms p99={:.1}ms max={:.1}ms",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
    );
    let mut calls = std::collections::BTreeMap::new();
    for r in w.api.requests().into_iter().filter(|r| r.user == crate::support::operator::OPERATOR_USER) {
        *calls
            .entry(format!(
                "{} {}{} {}",
                r.verb,
                r.resource,
                if r.subresource.is_empty() { String::new() } else { format!("/{}", r.subresource) },
                r.code
            ))
            .or_insert(0) += 1;
    }
    println!("BENCH operator API calls: {calls:?}");
    let list = w.events().list(&Default::default()).await.unwrap();
    let retried = list
        .items
        .iter()
        .filter(|e| e.status.as_ref().is_some_and(|s| s.deliveries.iter().any(|d| d.attempts > 1)))
        .count();
    let received = w.webhook.messages().len();
    println!("BENCH sink received={received} events={events} events-with-retries={retried}");
    // More than one message per event is only allowed for retried attempts
    // (a timeout after the sink got it: at-least-once).
    assert!(
        received >= events && received - events <= retried * 4,
        "duplicates beyond retries: {received} for {events} events"
    );
}

/// How fast the API emulation itself takes writes (to read the figures above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bench_api_emulation_writes() {
    let w = World::without_operator().await;
    let n = 1000;
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let w = &w;
            async move {
                w.create_event(&format!("e-{i:05}"), json!({"integrationRef": {"name": "x"}, "message": "m"})).await;
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let elapsed = started.elapsed();
    println!(
        "BENCH api-emulation creates={n} elapsed={:.2}s rate={:.0}/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
