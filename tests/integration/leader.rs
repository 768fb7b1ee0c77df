//! Several replicas over one Lease: every replica ready, one leader that
//! delivers, a hand-over on shutdown that duplicates and loses nothing, a
//! leader whose renewals fail stepping down before its Lease can expire and
//! rejoining as a follower, and restarts (kill -9, a stale Lease of our own
//! identity, an API outage) that never become a crash loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use kube_notify::crd::EventPhase;
use kube_notify::leader::{LeaderConfig, run_as_leader};
use kube_notify::operator::instance_name;
use serde_json::json;

use crate::support::apiserver::{FaultKind, RequestMatcher as ApiMatcher};
use crate::support::operator::{Launch, OPERATOR_TOKEN, Replica, WAIT, World};

const OTHER_TOKEN: &str = "operator-b-token";
const OTHER_USER: &str = "system:serviceaccount:kube-notify:kube-notify-b";

fn config(identity: &str) -> LeaderConfig {
    World::leader_config(identity)
}

/// A replica with leader election as `identity`, calling the API with `token`.
fn replica(w: &World, identity: &str, token: &str) -> Replica {
    w.launch(Launch { leader: Some(config(identity)), token: token.into(), ..w.launch_config() })
}

/// A Lease client of the operator's identity, made on the Lease's thread.
fn lease_client(w: &World) -> kube_notify::leader::LeaseClient {
    let api = w.api.clone();
    Arc::new(move || api.client_as(OPERATOR_TOKEN))
}

/// `work` for one term as the leader; a second term is a test failure.
fn one_term<W>(work: W) -> impl FnMut() -> W {
    let mut work = Some(work);
    move || work.take().expect("only one term as the leader was expected")
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A ready generic webhook integration `name`; returns its path on the emulator.
async fn ready_webhook(w: &World, name: &str) -> String {
    let path = format!("/hooks/{name}");
    let url = w.webhook.add_endpoint(&path);
    w.put_secret(name, &[("webhookUrl", &url)]).await;
    w.create_integration(name, json!({"service": "webhook", "secretRef": {"name": name}})).await;
    w.wait_condition(name, "Ready", "True", None).await;
    path
}

fn event_to(integration: &str, message: &str) -> serde_json::Value {
    json!({"integrationRef": {"name": integration}, "message": message})
}

/// How many times the receiver accepted a message whose body contains `text`.
fn received(w: &World, text: &str) -> usize {
    w.webhook.messages().iter().filter(|m| String::from_utf8_lossy(&m.body).contains(text)).count()
}

/// Writes by `user` to integrations or events (status included).
fn writes_by(w: &World, user: &str) -> Vec<String> {
    w.api
        .requests()
        .into_iter()
        .filter(|r| r.user == user && ["notificationintegrations", "notificationevents"].contains(&r.resource.as_str()))
        .filter(|r| matches!(r.verb.as_str(), "update" | "patch" | "delete"))
        .map(|r| format!("{} {} {}/{}", r.verb, r.resource, r.subresource, r.name))
        .collect()
}

fn holder(w: &World) -> Option<String> {
    let lease = w.api.object("coordination.k8s.io", "v1", "leases", "kube-notify", "kube-notify")?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
}

#[tokio::test]
async fn every_replica_is_ready_and_only_the_leader_delivers() {
    let mut w = World::without_operator().await;
    w.api.add_user(OTHER_TOKEN, OTHER_USER, &["system:serviceaccounts", "system:authenticated"]);
    let a = replica(&w, "pod-a", OPERATOR_TOKEN);
    within("pod-a leads", a.leadership.wait_until(true)).await;
    let b = replica(&w, "pod-b", OTHER_TOKEN);
    within("pod-a ready", a.readiness.wait()).await;
    within("pod-b ready", b.readiness.wait()).await;
    assert_eq!((a.readyz().await, b.readyz().await), (200, 200), "a follower is ready too");
    assert!(!b.leadership.is_leader());
    w.readiness = a.readiness.clone();

    ready_webhook(&w, "hook").await;
    for i in 0..5 {
        w.create_event(&format!("ev-{i}"), event_to("hook", &format!("message [{i}]"))).await;
    }
    for i in 0..5 {
        w.wait_event_phase(&format!("ev-{i}"), EventPhase::Delivered).await;
    }
    for i in 0..5 {
        assert_eq!(received(&w, &format!("[{i}]")), 1, "message {i} was received once");
    }
    assert_eq!(writes_by(&w, OTHER_USER), Vec::<String>::new(), "a follower writes no status");
    assert_eq!(holder(&w).as_deref(), Some("pod-a"));
    drop(b);
    a.shutdown().await.unwrap();
}

/// pod-a leading and pod-b ready as its follower, same identity.
async fn leader_and_follower() -> (World, Replica, Replica) {
    let w = World::without_operator().await;
    let a = replica(&w, "pod-a", OPERATOR_TOKEN);
    within("pod-a leads", a.leadership.wait_until(true)).await;
    let b = replica(&w, "pod-b", OPERATOR_TOKEN);
    within("pod-b ready", b.readiness.wait()).await;
    (w, a, b)
}

#[tokio::test]
async fn a_test_message_in_flight_at_hand_over_is_recorded_once_and_not_sent_again() {
    use kube_notify::crd::{SEND_TEST_ANNOTATION, TestMessagePhase};
    let (w, a, b) = leader_and_follower().await;
    let path = ready_webhook(&w, "hook").await;
    let posts = || w.webhook.requests().iter().filter(|r| r.path == path).count();
    let test_phase = |request: &'static str| {
        move |ni: &kube_notify::crd::NotificationIntegration| {
            ni.status.as_ref().and_then(|s| s.test_message.as_ref()).filter(|t| t.request == request).map(|t| t.phase)
        }
    };
    w.webhook.push_response(
        crate::support::services::RequestMatcher::path(&path),
        crate::support::services::ScriptedResponse::delayed_passthrough(Duration::from_millis(500)),
    );
    w.patch_integration("hook", json!({"metadata": {"annotations": {SEND_TEST_ANNOTATION: "1"}}})).await;
    w.wait_integration("hook", "test 1 sending", |ni| test_phase("1")(ni) == Some(TestMessagePhase::Sending)).await;
    // SIGTERM while the service has not answered: pod-a's drain waits for it.
    a.shutdown().await.unwrap();
    let ni = w.integration("hook").await.unwrap();
    assert_eq!(test_phase("1")(&ni), Some(TestMessagePhase::Delivered), "recorded before the Lease went");
    within("pod-b leads", b.leadership.wait_until(true)).await;
    // The new leader answers the next request, and only that one.
    w.patch_integration("hook", json!({"metadata": {"annotations": {SEND_TEST_ANNOTATION: "2"}}})).await;
    w.wait_integration("hook", "test 2 delivered", |ni| test_phase("2")(ni) == Some(TestMessagePhase::Delivered)).await;
    assert_eq!(posts(), 2, "one message per request across the hand-over");
    assert_eq!(holder(&w).as_deref(), Some("pod-b"));
    drop(b);
}

#[tokio::test]
async fn hand_over_on_shutdown_duplicates_nothing_and_loses_nothing() {
    let (w, a, b) = leader_and_follower().await;
    let path = ready_webhook(&w, "hook").await;
    // Slow answers, so that deliveries are in flight when pod-a stops.
    w.webhook.push_responses(
        crate::support::services::RequestMatcher::path(&path),
        crate::support::services::ScriptedResponse::delayed_passthrough(Duration::from_millis(300)),
        3,
    );
    for i in 0..6 {
        w.create_event(&format!("ev-{i}"), event_to("hook", &format!("hand-over [{i}]"))).await;
    }
    w.wait_event_phase("ev-0", EventPhase::Delivered).await;
    // SIGTERM: pod-a drains what is in flight, then releases the Lease.
    a.shutdown().await.unwrap();
    within("pod-b leads", b.leadership.wait_until(true)).await;
    for i in 0..6 {
        w.wait_event_phase(&format!("ev-{i}"), EventPhase::Delivered).await;
    }
    for i in 0..6 {
        assert_eq!(received(&w, &format!("[{i}]")), 1, "message {i} was received exactly once");
    }
    assert_eq!(holder(&w).as_deref(), Some("pod-b"));
}

#[tokio::test]
async fn a_leader_whose_renewals_fail_steps_down_before_its_lease_expires() {
    let error = FaultKind::Status { code: 500, reason: "InternalError".into(), retry_after: None };
    renewals_broken(error).await;
}

#[tokio::test]
async fn a_leader_whose_renewals_hang_steps_down_before_its_lease_expires() {
    renewals_broken(FaultKind::Hang).await;
}

/// pod-a leads, then every renewal of its Lease gets `fault`: it must stop
/// delivering before its Lease can expire, pod-b take over, and pod-a stay
/// up as a ready follower that campaigns again (no exit, no crash loop).
async fn renewals_broken(fault: FaultKind) {
    let w = World::without_operator().await;
    w.api.add_user(OTHER_TOKEN, OTHER_USER, &["system:serviceaccounts", "system:authenticated"]);
    let a = replica(&w, "pod-a", OTHER_TOKEN);
    within("pod-a leads", a.leadership.wait_until(true)).await;
    let b = replica(&w, "pod-b", OPERATOR_TOKEN);
    within("pod-b ready", b.readiness.wait()).await;
    ready_webhook(&w, "hook").await;
    w.create_event("before", event_to("hook", "before [0]")).await;
    w.wait_event_phase("before", EventPhase::Delivered).await;

    // From now on every renewal by pod-a fails or hangs (kube does not retry a 500).
    let broken_renewals =
        w.api.inject(ApiMatcher::any().user(OTHER_USER).verb("patch").resource("leases"), fault, None);
    let broken = tokio::time::Instant::now();
    within("pod-a steps down", a.leadership.wait_until(false)).await;
    let stepped_down_after = broken.elapsed();
    let cfg = config("pod-a");
    assert!(
        stepped_down_after < cfg.lease_duration,
        "pod-a stepped down after {stepped_down_after:?}, not before its Lease ({:?}) could expire",
        cfg.lease_duration
    );
    // pod-b takes over only once pod-a has stepped down.
    within("pod-b leads", b.leadership.wait_until(true)).await;
    assert_eq!(holder(&w).as_deref(), Some("pod-b"));
    assert_eq!(a.readyz().await, 200, "pod-a serves on as a follower");

    w.create_event("after", event_to("hook", "after [1]")).await;
    w.wait_event_phase("after", EventPhase::Delivered).await;
    assert_eq!((received(&w, "[0]"), received(&w, "[1]")), (1, 1));

    // pod-a's API works again: it stays a follower while pod-b leads, and
    // leads again once pod-b is gone, with nothing sent twice.
    w.api.clear_fault(broken_renewals);
    b.shutdown().await.unwrap();
    within("pod-a leads again", a.leadership.wait_until(true)).await;
    w.create_event("again", event_to("hook", "again [2]")).await;
    w.wait_event_phase("again", EventPhase::Delivered).await;
    assert_eq!((received(&w, "[0]"), received(&w, "[1]"), received(&w, "[2]")), (1, 1, 1));
    a.shutdown().await.unwrap();
}

/// The Lease as written by `holder` `age` ago, with `transitions`.
async fn put_lease(w: &World, holder: &str, age: Duration, transitions: i32) {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let renewed = jiff::Timestamp::now() - jiff::SignedDuration::try_from(age).unwrap();
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "kube-notify", "namespace": "kube-notify"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 3,
            "leaseTransitions": transitions,
        },
    }))
    .unwrap();
    let mut lease = lease;
    let spec = lease.spec.as_mut().unwrap();
    spec.acquire_time = Some(MicroTime(renewed));
    spec.renew_time = Some(MicroTime(renewed));
    let api: kube::Api<Lease> = kube::Api::namespaced(w.api.client(), "kube-notify");
    api.create(&Default::default(), &lease).await.unwrap();
}

/// The Lease's renewTime age and transitions.
fn lease_state(w: &World) -> (Duration, i64) {
    let lease = w.api.object("coordination.k8s.io", "v1", "leases", "kube-notify", "kube-notify").unwrap();
    let renewed: jiff::Timestamp = lease["spec"]["renewTime"].as_str().unwrap().parse().unwrap();
    let age = Duration::try_from(jiff::Timestamp::now().duration_since(renewed)).unwrap_or_default();
    (age, lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0))
}

/// Leading stays true for `span` (longer than the renew deadline).
async fn keeps_leading(r: &Replica, span: Duration) {
    assert!(tokio::time::timeout(span, r.leadership.wait_until(false)).await.is_err(), "stepped down within {span:?}");
    assert!(r.leadership.is_leader());
}

#[tokio::test]
async fn a_stale_lease_of_our_own_identity_is_taken_over_not_stepped_down_from() {
    // A container restarted after a crash keeps its pod name: the Lease still
    // names it, renewed a minute ago (long past the renew deadline).
    let w = World::without_operator().await;
    put_lease(&w, "pod-a", Duration::from_secs(60), 4).await;
    let a = replica(&w, "pod-a", OPERATOR_TOKEN);
    within("pod-a leads", a.leadership.wait_until(true)).await;
    // Taken over anew before leading: renewed now, one more transition.
    let (age, transitions) = lease_state(&w);
    assert!(age < config("pod-a").renew_deadline, "the Lease was renewed before leading ({age:?} old)");
    assert_eq!(transitions, 5, "taking over a stale Lease counts as a transition");
    keeps_leading(&a, config("pod-a").lease_duration * 2).await;
    ready_webhook(&w, "hook").await;
    w.create_event("ev", event_to("hook", "after restart [0]")).await;
    w.wait_event_phase("ev", EventPhase::Delivered).await;
    assert_eq!(received(&w, "[0]"), 1);
    assert_eq!(holder(&w).as_deref(), Some("pod-a"));
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_restart_after_kill_9_past_the_renew_deadline_leads_and_stays_leader() {
    let w = World::without_operator().await;
    let first = replica(&w, "pod-a", OPERATOR_TOKEN);
    within("pod-a leads", first.leadership.wait_until(true)).await;
    let path = ready_webhook(&w, "hook").await;
    w.create_event("before", event_to("hook", "before kill [0]")).await;
    w.wait_event_phase("before", EventPhase::Delivered).await;
    // kill -9: no drain, no release; the Lease still names pod-a.
    drop(first);
    w.create_event("during", event_to("hook", "while down [1]")).await;
    let deadline = config("pod-a").renew_deadline;
    assert!(w.api.wait_until(WAIT, |_| lease_state(&w).0 > deadline).await, "the Lease aged past the renew deadline");
    assert_eq!(holder(&w).as_deref(), Some("pod-a"));
    // The same pod name starts again (the default identity adds a suffix per
    // start; an explicit one does not).
    let second = replica(&w, "pod-a", OPERATOR_TOKEN);
    within("pod-a leads again", second.leadership.wait_until(true)).await;
    keeps_leading(&second, config("pod-a").lease_duration).await;
    w.wait_event_phase("during", EventPhase::Delivered).await;
    assert_eq!((received(&w, "[0]"), received(&w, "[1]")), (1, 1));
    assert_eq!(w.webhook.requests().iter().filter(|r| r.path == path).count(), 2);
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_single_replica_leads_again_after_losing_the_api_server() {
    let w = World::without_operator().await;
    let a = replica(&w, "pod-a", OPERATOR_TOKEN);
    within("pod-a leads", a.leadership.wait_until(true)).await;
    ready_webhook(&w, "hook").await;
    // The API server goes away for longer than the renew deadline.
    w.api.refuse_connections(true);
    within("pod-a steps down", a.leadership.wait_until(false)).await;
    assert_eq!(a.readyz().await, 200, "still up and serving from its caches");
    w.api.refuse_connections(false);
    // Nobody else is there: it takes the Lease it left and leads again.
    within("pod-a leads again", a.leadership.wait_until(true)).await;
    w.create_event("after", event_to("hook", "after the outage [0]")).await;
    w.wait_event_phase("after", EventPhase::Delivered).await;
    assert_eq!(received(&w, "[0]"), 1);
    keeps_leading(&a, config("pod-a").lease_duration).await;
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_replicas_the_leader_crashes_and_restarts_as_a_follower() {
    use kube_notify::leader::lease_identity;
    let w = World::without_operator().await;
    // Default identities: the pod name and a suffix per start.
    let (id_a, id_b) = (lease_identity("pod-a"), lease_identity("pod-b"));
    assert!(id_a.starts_with("pod-a_") && id_a != lease_identity("pod-a"), "{id_a}");
    let a = replica(&w, &id_a, OPERATOR_TOKEN);
    within("pod-a leads", a.leadership.wait_until(true)).await;
    let b = replica(&w, &id_b, OPERATOR_TOKEN);
    within("pod-b ready", b.readiness.wait()).await;
    ready_webhook(&w, "hook").await;
    for i in 0..3 {
        w.create_event(&format!("ev-{i}"), event_to("hook", &format!("crash [{i}]"))).await;
    }
    for i in 0..3 {
        w.wait_event_phase(&format!("ev-{i}"), EventPhase::Delivered).await;
    }
    // kill -9 of the leader; the kubelet restarts its container: same pod,
    // new start, new identity. Both campaign for the Lease once it expired.
    drop(a);
    let id_a2 = lease_identity("pod-a");
    let a2 = replica(&w, &id_a2, OPERATOR_TOKEN);
    within("the restarted pod-a is ready", a2.readiness.wait()).await;
    let b_leads = within("one of them takes over once the Lease expired", async {
        tokio::select! {
            _ = b.leadership.wait_until(true) => true,
            _ = a2.leadership.wait_until(true) => false,
        }
    })
    .await;
    let (leader, follower, leader_id) = if b_leads { (&b, &a2, &id_b) } else { (&a2, &b, &id_a2) };
    assert!(!follower.leadership.is_leader(), "one leader at a time");
    assert_eq!(holder(&w).as_ref(), Some(leader_id));
    for i in 3..6 {
        w.create_event(&format!("ev-{i}"), event_to("hook", &format!("crash [{i}]"))).await;
    }
    for i in 3..6 {
        w.wait_event_phase(&format!("ev-{i}"), EventPhase::Delivered).await;
    }
    for i in 0..6 {
        assert_eq!(received(&w, &format!("[{i}]")), 1, "message {i} was received once");
    }
    keeps_leading(leader, config("pod-b").lease_duration).await;
    assert!(!follower.leadership.is_leader());
    drop(a2);
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_hand_over() {
    let w = World::without_operator().await;
    let leading = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(AtomicBool::new(false));

    let (stop_first, first_shutdown) = tokio::sync::oneshot::channel::<()>();
    let (first_leads, first_leading) = tokio::sync::oneshot::channel::<()>();
    let l = leading.clone();
    let first_work = async move {
        l.fetch_add(1, Ordering::SeqCst);
        let _ = first_leads.send(());
        futures::future::pending::<anyhow::Result<()>>().await
    };
    let (l, d) = (leading.clone(), drained.clone());
    let first_drain = move |_budget: Duration| {
        // Still the only leader while draining: the Lease is released after.
        l.fetch_sub(1, Ordering::SeqCst);
        d.store(true, Ordering::SeqCst);
        async {}
    };
    let first = tokio::spawn(run_as_leader(
        lease_client(&w),
        config("pod-a"),
        first_shutdown.map(|_| ()),
        one_term(first_work),
        first_drain,
    ));
    within("pod-a leads", first_leading).await.unwrap();

    let (second_leads, second_leading) = tokio::sync::oneshot::channel::<()>();
    let (l, d) = (leading.clone(), drained.clone());
    let second = tokio::spawn(run_as_leader(
        lease_client(&w),
        config("pod-b"),
        futures::future::pending::<()>(),
        one_term(async move {
            assert_eq!(l.fetch_add(1, Ordering::SeqCst), 0, "two leaders at once");
            assert!(d.load(Ordering::SeqCst), "the first leader drained before releasing");
            let _ = second_leads.send(());
            futures::future::pending::<anyhow::Result<()>>().await
        }),
        |_| async {},
    ));
    // The second candidate waits while the first holds (and renews) the Lease,
    // for longer than the Lease duration.
    let mut second_leading = second_leading;
    assert!(
        tokio::time::timeout(Duration::from_secs(4), &mut second_leading).await.is_err(),
        "pod-b took a held Lease"
    );

    // Shutting the first down drains it and hands the Lease over.
    stop_first.send(()).unwrap();
    first.await.unwrap().unwrap();
    within("pod-b takes over", second_leading).await.unwrap();
    assert_eq!(holder(&w).as_deref(), Some("pod-b"));
    second.abort();
}

#[tokio::test]
async fn a_follower_stops_at_once_on_shutdown() {
    let w = World::without_operator().await;
    let (leads, leading) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn(run_as_leader(
        lease_client(&w),
        config("pod-a"),
        futures::future::pending::<()>(),
        one_term(async move {
            let _ = leads.send(());
            futures::future::pending::<anyhow::Result<()>>().await
        }),
        |_| async {},
    ));
    within("pod-a leads", leading).await.unwrap();
    let follower = tokio::spawn(run_as_leader(
        lease_client(&w),
        config("pod-b"),
        futures::future::ready(()),
        || async { panic!("a follower never works") },
        |_| async { panic!("a follower has nothing to drain") },
    ));
    within("the follower stops", follower).await.unwrap().unwrap();
    holder.abort();
}

#[tokio::test]
async fn bad_timings_are_refused_naming_the_field() {
    let w = World::without_operator().await;
    let bad = LeaderConfig { renew_deadline: Duration::from_secs(20), ..LeaderConfig::new("kube-notify", "l", "pod") };
    let err = run_as_leader(lease_client(&w), bad, futures::future::pending::<()>(), || async { Ok(()) }, |_| async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lease_duration"), "{err}");
}

#[tokio::test]
async fn the_default_identity_is_the_pod_name() {
    // In a pod, HOSTNAME is the pod name; --instance / KUBE_NOTIFY_INSTANCE wins.
    assert_eq!(instance_name(None, Some("kube-notify-7d9f8-x2x4q".into())), "kube-notify-7d9f8-x2x4q");
    assert_eq!(instance_name(Some("explicit".into()), Some("pod".into())), "explicit");
    let system = instance_name(None, None);
    assert!(!system.is_empty() && !system.starts_with("kube-notify-"), "the system host name: {system:?}");

    let w = World::without_operator().await;
    let instance = instance_name(None, Some("kube-notify-7d9f8-x2x4q".into()));
    let mut launch = w.launch_config();
    launch.operator.instance = Some(instance.clone());
    launch.leader = Some(config(&kube_notify::leader::lease_identity(&instance)));
    let a = w.launch(launch);
    within("it leads", a.leadership.wait_until(true)).await;
    // The Lease names the pod, and this start of it.
    let held = holder(&w).unwrap();
    assert!(
        held.starts_with("kube-notify-7d9f8-x2x4q_") && held.len() == "kube-notify-7d9f8-x2x4q_".len() + 8,
        "{held}"
    );
    a.shutdown().await.unwrap();
}
