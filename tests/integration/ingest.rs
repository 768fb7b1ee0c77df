//! HTTP ingestion and the sidecar: every status code against the API
//! emulation (TokenReview and SubjectAccessReview answers set by each test),
//! the real operator delivering to the service emulators, refused requests
//! never reaching a service, and the sidecar acting as its pod.
//!
//! The benchmark of the synchronous route is `bench_sync` in bench.rs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::SubjectAccessReviewSpec;
use kube::runtime::reflector::ObjectRef;
use kube_notify::controller::Context;
use kube_notify::crd::NotificationIntegration;
use kube_notify::crd::conditions;
use kube_notify::server::ingest::IngestConfig;
use kube_notify::server::listen::Limits;
use kube_notify::server::sidecar::{self, SidecarConfig};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support::apiserver::{RequestMatcher as ApiMatcher, TokenReviewAnswer};
use crate::support::operator::{Launch, NS, OPERATOR_USER, Place, Replica, WAIT, World, metric_value};
use crate::support::services::{RequestMatcher, ScriptedResponse};

const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";
const CAROL: &str = "carol-token";
const STOLEN: &str = "stolen-token";
const POD_TOKEN: &str = "pod-token";
/// The audience callers' tokens are minted for (`--token-audience`'s default).
const AUDIENCE: &str = kube_notify::server::ingest::auth::DEFAULT_TOKEN_AUDIENCE;
const POD_USER: &str = "system:serviceaccount:team-a:billing-worker";

/// Aborts a task when dropped.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The world and an operator replica (started as `main` starts one) serving
/// HTTP ingestion.
struct Ingest {
    w: World,
    ctx: Arc<Context>,
    url: String,
    http: reqwest::Client,
    /// Every SubjectAccessReview the API emulation answered.
    reviews: Arc<Mutex<Vec<SubjectAccessReviewSpec>>>,
    _operator: Replica,
    /// The leader, when requests go to a follower.
    _leader: Option<Replica>,
}

/// Callers allowed in `team-a` (alice, carol, erin); bob is allowed nowhere.
fn allowed(spec: &SubjectAccessReviewSpec) -> (bool, String) {
    let user = spec.user.as_deref().unwrap_or_default();
    let Some(ra) = &spec.resource_attributes else { return (false, "not a resource".into()) };
    let ok = ["alice", "carol", "erin"].contains(&user)
        && ra.group.as_deref() == Some("kube-notify.io")
        && ra.resource.as_deref() == Some("notificationevents")
        && matches!(ra.verb.as_deref(), Some("create" | "get"))
        && ra.namespace.as_deref() == Some(NS);
    if ok {
        (true, "RBAC: allowed by RoleBinding notify/team-a".into())
    } else {
        (false, "no RBAC rule allows it".into())
    }
}

fn test_config() -> IngestConfig {
    IngestConfig { rate: 1000.try_into().unwrap(), burst: 1000.try_into().unwrap(), ..IngestConfig::default() }
}

impl Ingest {
    async fn start() -> Ingest {
        Self::start_with(test_config()).await
    }

    async fn start_with(config: IngestConfig) -> Ingest {
        Self::start_in(World::without_operator().await, config).await
    }

    async fn start_in(w: World, config: IngestConfig) -> Ingest {
        let reviews = admit_callers(&w);
        let operator = w.launch(Launch { ingest: config, ..w.launch_config() });
        let (ctx, url) = (operator.ctx.clone(), operator.http_url.clone());
        Ingest { w, ctx, url, http: reqwest::Client::new(), reviews, _operator: operator, _leader: None }
    }

    /// Requests go to a follower; another replica leads (with `config` too).
    async fn start_on_a_follower(config: IngestConfig) -> Ingest {
        let w = World::without_operator().await;
        let reviews = admit_callers(&w);
        let leader = w.launch(Launch {
            ingest: config.clone(),
            leader: Some(World::leader_config("pod-a")),
            ..w.launch_config()
        });
        tokio::time::timeout(WAIT, leader.leadership.wait_until(true)).await.expect("pod-a leads");
        let follower =
            w.launch(Launch { ingest: config, leader: Some(World::leader_config("pod-b")), ..w.launch_config() });
        let (ctx, url) = (follower.ctx.clone(), follower.http_url.clone());
        Ingest { w, ctx, url, http: reqwest::Client::new(), reviews, _operator: follower, _leader: Some(leader) }
    }
}

/// Token and access reviews for the test callers; returns the record of
/// every SubjectAccessReview.
fn admit_callers(w: &World) -> Arc<Mutex<Vec<SubjectAccessReviewSpec>>> {
    {
        for (token, user) in [(ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), ("erin-token", "erin")] {
            w.api.set_token_review(
                token,
                TokenReviewAnswer::user(user, &["developers", "system:authenticated"]).for_audiences(&[AUDIENCE]),
            );
        }
        w.api.set_token_review(STOLEN, TokenReviewAnswer::unauthenticated());
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let seen = reviews.clone();
        w.api.set_access_review(move |spec| {
            seen.lock().unwrap().push(spec.clone());
            allowed(spec)
        });
        reviews
    }
}

impl Ingest {
    async fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<Vec<u8>>) -> Answer {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        Answer::from(req.send().await.unwrap()).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request("POST", path, Some(token), Some(body.to_string().into_bytes())).await
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.request("GET", path, Some(token), None).await
    }

    /// A ready generic-webhook integration (in the operator's store too); returns its path on the emulator.
    async fn ready_webhook(&self, name: &str, threshold: i32) -> String {
        let path = format!("/hooks/{name}");
        let url = self.w.webhook.add_endpoint(&path);
        self.w.put_secret(name, &[("webhookUrl", &url)]).await;
        self.w
            .create_integration(
                name,
                json!({"service": "webhook", "secretRef": {"name": name}, "errorThreshold": threshold}),
            )
            .await;
        self.w.wait_condition(name, "Ready", "True", None).await;
        self.wait_store(name, "Ready", |ni| conditions::is_true(&status_conditions(ni), "Ready")).await;
        path
    }

    /// Wait until the operator's own integration store satisfies `pred`.
    async fn wait_store(&self, name: &str, what: &str, pred: impl Fn(&NotificationIntegration) -> bool) {
        let key = ObjectRef::new(name).within(NS);
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.ctx.caches.integrations.get(&key).is_some_and(|ni| pred(&ni)) {
            assert!(tokio::time::Instant::now() < deadline, "the operator's store never saw {name} {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// API calls of `resource` made by `user`.
    fn api_calls(&self, user: &str, verb: &str, resource: &str) -> usize {
        self.w.api.requests().iter().filter(|r| r.user == user && r.verb == verb && r.resource == resource).count()
    }

    fn events_created(&self) -> usize {
        self.w.api.objects("kube-notify.io", "v1alpha1", "notificationevents").len()
    }

    /// Events in the operator's event cache (either store).
    async fn events_created_now(&self) -> usize {
        self.ctx.caches.events().map(|e| e.state().len()).unwrap_or(0)
    }
}

fn status_conditions(ni: &NotificationIntegration) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    ni.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default()
}

/// A response: status, headers, JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    async fn from(r: reqwest::Response) -> Answer {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({"raw": text}));
        Answer { status, headers, body }
    }

    /// `(status, error.code)`.
    fn code(&self) -> (u16, &str) {
        (self.status, self.body["error"]["code"].as_str().unwrap_or_default())
    }

    fn error(&self, key: &str) -> &str {
        self.body["error"][key].as_str().unwrap_or_default()
    }
}

fn send_path(name: &str) -> String {
    format!("/v1/namespaces/{NS}/integrations/{name}/send")
}

fn events_path(ns: &str) -> String {
    format!("/v1/namespaces/{ns}/events")
}

fn message(text: &str) -> Value {
    json!({"title": "Deploy", "message": text, "severity": "warning",
           "fields": [{"name": "env", "value": "prod"}], "links": [{"text": "run", "url": "https://ci.example.com/1"}]})
}

/// One test body on both stores, as `NAME::kubernetes` (the API emulation,
/// callers reviewed by it) and `NAME::standalone` (the embedded store,
/// callers on loopback): `t` is an [`Ingest`] started with `config`
/// ([`test_config`] when none is given).
macro_rules! on_both_ingests {
    (async fn $name:ident($t:ident $(, $config:expr)?) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn kubernetes() {
                let world = World::without_operator_on(Place::Kubernetes).await;
                let $t = Ingest::start_in(world, on_both_ingests!(@config $($config)?)).await;
                $body
            }

            #[tokio::test]
            async fn standalone() {
                let world = World::without_operator_on(Place::Standalone).await;
                let $t = Ingest::start_in(world, on_both_ingests!(@config $($config)?)).await;
                $body
            }
        }
    };
    (@config) => {
        test_config()
    };
    (@config $config:expr) => {
        $config
    };
}

on_both_ingests! { async fn unknown_targets_are_404_at_once_and_wait_answers_the_final_status(t) {
    let hook = t.ready_webhook("hook", 5).await;
    let before = t.w.webhook.requests().len();
    // No event that would wait an hour for an integration nobody named right.
    let a = t.post(&events_path(NS), ALICE, json!({"integration": "nobody", "message": "x"})).await;
    assert_eq!(a.code(), (404, "integration_not_found"), "{a:?}");
    let nobody = json!({"integrationSelector": {"matchLabels": {"team": "nobody"}}, "message": "x"});
    let a = t.post(&events_path(NS), ALICE, nobody).await;
    assert_eq!(a.code(), (404, "no_integration_matches"), "{a:?}");

    // ?wait=: delivered within it, the final status (200).
    let a = t.post(&format!("{}?wait=10s", events_path(NS)), ALICE, json!({"integration": "hook", "message": "m"})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["phase"], "Delivered", "{a:?}");
    // Not finished within it: 202 and the status so far.
    t.w.webhook.push_response(hook.as_str(), ScriptedResponse::delayed_passthrough(Duration::from_secs(2)));
    let a =
        t.post(&format!("{}?wait=100ms", events_path(NS)), ALICE, json!({"integration": "hook", "message": "m"})).await;
    assert_eq!(a.status, 202, "{a:?}");
    assert_ne!(a.body["phase"], "Delivered", "{a:?}");
    // A bad wait names the field; nothing is created for it.
    for bad in ["soon", "2h"] {
        let a = t.post(&format!("{}?wait={bad}", events_path(NS)), ALICE, json!({"integration": "hook", "message": "m"})).await;
        assert_eq!((a.code(), a.error("field")), ((400, "invalid_field"), "wait"), "{bad}: {a:?}");
    }
    t.w.webhook.wait_for_requests(before + 2, WAIT).await;
}}

#[tokio::test]
async fn event_route_creates_an_event_that_the_controller_delivers() {
    let t = Ingest::start().await;
    let hook = t.ready_webhook("hook", 5).await;
    let mut body = message("rolled out");
    body["integration"] = json!("hook");
    let a = t.post(&events_path(NS), ALICE, body).await;
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.body["namespace"], NS);
    let name = a.body["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("http-"), "{name}");
    assert_eq!(a.headers["location"], format!("/v1/namespaces/{NS}/events/{name}"));
    // Durable: the event exists in the API when 202 is sent, created by the operator for alice.
    let stored = t.w.api.object("kube-notify.io", "v1alpha1", "notificationevents", NS, &name).expect("stored at 202");
    assert_eq!(stored["metadata"]["annotations"]["kube-notify.io/requested-by"], "alice");
    assert_eq!(stored["spec"]["integrationRef"]["name"], "hook");
    assert_eq!(stored["spec"]["fields"][0]["value"], "prod");
    assert!(t.w.api.requests().iter().any(|r| r.user == OPERATOR_USER
        && r.verb == "create"
        && r.resource == "notificationevents"
        && r.name == name
        && r.code == 201));

    t.w.wait_event_phase(&name, kube_notify::crd::EventPhase::Delivered).await;
    let delivered = t.w.webhook.messages();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].path, hook);
    assert_eq!(delivered[0].json().unwrap()["data"]["message"], "rolled out");

    let a = t.get(&format!("{}/{name}", events_path(NS)), ALICE).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["phase"], "Delivered");
    assert_eq!(a.body["status"]["deliveries"][0]["integration"], "hook");
    // GET is authorized with verb get on that event.
    assert!(t.reviews.lock().unwrap().iter().any(|s| {
        let ra = s.resource_attributes.as_ref().unwrap();
        ra.verb.as_deref() == Some("get") && ra.name.as_deref() == Some(name.as_str())
    }));
    let a = t.get(&format!("{}/no-such-event", events_path(NS)), ALICE).await;
    assert_eq!(a.code(), (404, "event_not_found"));
}

on_both_ingests! { async fn event_route_with_a_selector_fans_out(t) {
    for name in ["one", "two"] {
        let url = t.w.webhook.add_endpoint(&format!("/hooks/{name}"));
        t.w.put_secret(name, &[("webhookUrl", &url)]).await;
        t.w.create_integration_labeled(
            name,
            json!({"team": "ops"}),
            json!({"service": "webhook", "secretRef": {"name": name}}),
        )
        .await;
        t.w.wait_condition(name, "Ready", "True", None).await;
    }
    let a = t
        .post(
            &events_path(NS),
            ALICE,
            json!({"integrationSelector": {"matchLabels": {"team": "ops"}}, "message": "all"}),
        )
        .await;
    assert_eq!(a.status, 202, "{a:?}");
    let ev = t.w.wait_event_phase(a.body["name"].as_str().unwrap(), kube_notify::crd::EventPhase::Delivered).await;
    assert_eq!(ev.status.unwrap().deliveries.len(), 2);
    assert_eq!(t.w.webhook.messages().len(), 2);
}}

on_both_ingests! { async fn oversized_selectors_are_400_naming_the_field(t) {
    use kube_notify::crd::event::{MAX_SELECTOR_EXPRESSIONS, MAX_SELECTOR_LABELS, MAX_SELECTOR_VALUES};
    let expr = |values: usize| json!({"key": "team", "operator": "In", "values": vec!["ops"; values]});
    let labels = |n: usize| (0..n).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>();
    let cases = [
        (json!({"matchExpressions": vec![expr(1); MAX_SELECTOR_EXPRESSIONS + 1]}), "integrationSelector.matchExpressions"),
        (json!({"matchExpressions": [expr(1), expr(MAX_SELECTOR_VALUES + 1)]}), "integrationSelector.matchExpressions[1].values"),
        (json!({"matchLabels": labels(MAX_SELECTOR_LABELS + 1)}), "integrationSelector.matchLabels"),
        // A stranger's 20,000 expressions (under the body limit) are refused by their count.
        (json!({"matchExpressions": vec![json!({"key": "a", "operator": "Exists"}); 20_000]}), "integrationSelector.matchExpressions"),
    ];
    for (selector, field) in cases {
        let a = t.post(&events_path(NS), ALICE, json!({"integrationSelector": selector, "message": "x"})).await;
        assert_eq!((a.code(), a.error("field")), ((400, "invalid_field"), field), "{a:?}");
        assert!(a.error("message").contains("at most"), "{a:?}");
    }
    assert_eq!(t.events_created(), 0);
    // At the bounds, the selector is taken (it matches nothing here: 404).
    let full = json!({"matchExpressions": vec![expr(MAX_SELECTOR_VALUES); MAX_SELECTOR_EXPRESSIONS], "matchLabels": labels(MAX_SELECTOR_LABELS)});
    let a = t.post(&events_path(NS), ALICE, json!({"integrationSelector": full, "message": "x"})).await;
    assert_eq!(a.code(), (404, "no_integration_matches"), "{a:?}");
}}

#[tokio::test]
async fn send_delivers_synchronously_without_writing_an_object_per_message() {
    let t = Ingest::start().await;
    let hook = t.ready_webhook("hook", 5).await;
    let a = t.post(&send_path("hook"), ALICE, message("now")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, json!({"delivered": true, "attempts": 1}));
    let got = t.w.webhook.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, hook);
    let data = got[0].json().unwrap()["data"].clone();
    assert_eq!(
        (data["message"].as_str(), data["title"].as_str(), data["severity"].as_str()),
        (Some("now"), Some("Deploy"), Some("warning"))
    );
    assert!(data["id"].as_str().unwrap().starts_with("http-"));

    // Twenty more at once: no event is created, and the counters are written in batches.
    let status_writes_before = t.w.api.writes_to("notificationintegrations", "status", NS, "hook");
    let path = send_path("hook");
    let answers =
        futures::future::join_all((0..20).map(|i| t.post(&path, ALICE, json!({"message": format!("m{i}")})))).await;
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    assert_eq!(t.w.webhook.messages().len(), 21);
    t.w.wait_integration("hook", "totalDelivered 21", |ni| ni.status.as_ref().is_some_and(|s| s.total_delivered == 21))
        .await;
    assert_eq!(t.events_created(), 0, "the synchronous route stores nothing");
    let status_writes = t.w.api.writes_to("notificationintegrations", "status", NS, "hook") - status_writes_before;
    assert!(status_writes < 20, "{status_writes} status writes for 20 messages");
    // One TokenReview and one SubjectAccessReview for all 21 requests (cached).
    assert_eq!(t.api_calls(OPERATOR_USER, "create", "tokenreviews"), 1);
    assert_eq!(t.api_calls(OPERATOR_USER, "create", "subjectaccessreviews"), 1);
    let metrics = t.w.metrics.render();
    assert_eq!(
        metric_value(&metrics, "kube_notify_ingest_requests_total", "/v1/namespaces/{ns}/integrations/{name}/send"),
        21,
        "{metrics}"
    );
    assert!(metrics.contains(r#"code="200""#));
    assert_eq!(metric_value(&metrics, "kube_notify_deliveries_total", "delivered"), 21);
}

/// A ready Slack incoming-webhook integration (mentions: contacts only).
async fn ready_slack_hook(t: &Ingest, name: &str) -> String {
    let url = t.w.slack.add_webhook("T1", &format!("B{name}"));
    t.w.put_secret(name, &[("webhookUrl", &url)]).await;
    t.w.create_integration(name, json!({"service": "slack", "secretRef": {"name": name}})).await;
    t.w.wait_condition(name, "Ready", "True", None).await;
    t.wait_store(name, "Ready", |ni| conditions::is_true(&status_conditions(ni), "Ready")).await;
    url
}

on_both_ingests! { async fn send_waits_until_a_changed_spec_was_checked(t) {
    let url = ready_slack_hook(&t, "hook").await;
    // The check of the new spec takes a while (the Slack webhook is probed),
    // within the client's timeout.
    let path = reqwest::Url::parse(&url).unwrap().path().to_string();
    t.w.slack.push_response(path.as_str(), ScriptedResponse::delayed_passthrough(Duration::from_millis(700)));
    t.w.patch_integration("hook", json!({"spec": {"errorThreshold": 3}})).await;
    t.wait_store("hook", "the new generation", |ni| ni.metadata.generation == Some(2)).await;
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!((a.code(), a.error("reason")), ((409, "integration_not_ready"), "Checking"), "{a:?}");
    assert_eq!(t.w.slack.messages().len(), 0, "nothing sent with an unchecked spec");
    t.wait_store("hook", "checked", |ni| {
        conditions::find(&status_conditions(ni), "Ready")
            .is_some_and(|r| r.observed_generation == Some(2) && r.status == "True")
    })
    .await;
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!(a.status, 200, "{a:?}");
}}

fn mentioning_jane_and_bob() -> Value {
    json!({"message": "deployed", "mentions": [{"email": "jane@example.com"}, {"email": "bob@example.com", "name": "Bob"}]})
}

on_both_ingests! { async fn send_mentions_and_answers_the_unresolved_ones(t) {
    ready_slack_hook(&t, "hook").await;
    t.w.put_contact_seen_by(&t.ctx, "jane", json!({"email": "jane@example.com", "slack": {"userId": "U0JANE"}})).await;
    let a = t.post(&send_path("hook"), ALICE, mentioning_jane_and_bob()).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, json!({"delivered": true, "attempts": 1, "unresolvedMentions": ["bob@example.com"]}));
    let posted = t.w.slack.messages();
    assert_eq!(posted[0].mentions, vec!["U0JANE"]);
    assert!(posted[0].text.as_deref().unwrap().starts_with("<@U0JANE> Bob\n"), "{posted:?}");
    t.w.wait_k8s_event("hook", "MentionUnresolved").await;
    // The body's mentions are checked field by field; nothing refused reaches Slack.
    let bad = json!({"message": "x", "mentions": [{"email": "a@example.com"}, {"email": "b@example.com"}, {"email": "nope"}]});
    let a = t.post(&send_path("hook"), ALICE, bad.clone()).await;
    assert_eq!(a.code(), (400, "invalid_field"));
    assert_eq!(a.error("field"), "mentions[2].email");
    let mut event = bad;
    event["integration"] = json!("hook");
    let a = t.post(&events_path(NS), ALICE, event).await;
    assert_eq!((a.code(), a.error("field")), ((400, "invalid_field"), "mentions[2].email"));
    assert_eq!(t.w.slack.messages().len(), 1);
}}

#[tokio::test]
async fn send_through_the_leader_answers_the_unresolved_mentions_too() {
    let t = Ingest::start_on_a_follower(test_config()).await;
    ready_slack_hook(&t, "hook").await;
    let a = t.post(&send_path("hook"), ALICE, mentioning_jane_and_bob()).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["unresolvedMentions"], json!(["jane@example.com", "bob@example.com"]));
}

// A caller that hangs up mid-delivery does not cut the delivery short: it is
// sent, and counted on the integration, all the same.
on_both_ingests! { async fn send_finishes_and_counts_when_the_caller_hangs_up(t) {
    let hook = t.ready_webhook("hook", 5).await;
    t.w.webhook.push_response(
        RequestMatcher::path(&hook),
        ScriptedResponse::status(200).with_delay(Duration::from_millis(500)),
    );
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    let gave_up = impatient
        .post(format!("{}{}", t.url, send_path("hook")))
        .bearer_auth(ALICE)
        .header("content-type", "application/json")
        .body(message("still delivered").to_string())
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the caller was meant to give up first");
    t.w.wait_integration("hook", "totalDelivered 1", |ni| ni.status.as_ref().is_some_and(|s| s.total_delivered == 1))
        .await;
    // One call (answered by the script after the caller left), not retried.
    let calls = t.w.webhook.requests();
    assert_eq!(calls.len(), 1);
    assert!(String::from_utf8_lossy(&calls[0].body).contains("still delivered"));
    assert_eq!(metric_value(&t.w.metrics.render(), "kube_notify_deliveries_total", "delivered"), 1);
}}

on_both_ingests! { async fn send_reports_each_error_class(t) {
    let hook = t.ready_webhook("hook", 10).await;

    // Rejected: this message, not the integration.
    t.w.webhook.push_response(RequestMatcher::path(&hook), ScriptedResponse::text(400, "bad payload"));
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!(a.code(), (502, "rejected"), "{a:?}");
    assert_eq!(
        (a.error("reason"), a.body["attempts"].as_u64(), a.body["delivered"].as_bool()),
        ("MessageRejected", Some(1), Some(false))
    );

    // Exhausted: transient failures until the retries (3 in the tests) ran out.
    t.w.webhook.push_responses(RequestMatcher::path(&hook), ScriptedResponse::status(503), 3);
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!(a.code(), (502, "exhausted"), "{a:?}");
    assert_eq!((a.error("reason"), a.body["attempts"].as_u64()), ("ServiceUnavailable", Some(3)));
    t.w.wait_integration("hook", "one counted error", |ni| {
        ni.status.as_ref().is_some_and(|s| s.consecutive_errors == 1)
    })
    .await;

    // Deadline: the service asks for a wait longer than the request deadline.
    t.w.webhook.push_response(RequestMatcher::path(&hook), ScriptedResponse::status(429).with_retry_after(600));
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!(a.code(), (504, "expired"), "{a:?}");
    assert_eq!(a.error("reason"), "Expired");

    // Dead: the endpoint is gone; counted against the integration.
    t.w.webhook.set_gone(&hook);
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!(a.code(), (502, "dead"), "{a:?}");
    assert_eq!(a.error("reason"), "DestinationNotFound");
    assert!(!a.error("message").contains(&t.w.webhook.url()), "no credential in errors");
    let ni =
        t.w.wait_integration("hook", "two counted errors", |ni| {
            ni.status.as_ref().is_some_and(|s| s.consecutive_errors == 2)
        })
        .await;
    assert_eq!(ni.status.unwrap().last_error.unwrap().reason, "DestinationNotFound");
}}

on_both_ingests! { async fn send_deadline_is_a_flag(t, IngestConfig { send_timeout: Duration::from_millis(300), ..test_config() }) {
    let hook = t.ready_webhook("slow", 5).await;
    t.w.webhook.push_responses(RequestMatcher::path(&hook), ScriptedResponse::status(429).with_retry_after(2), 1);
    let started = std::time::Instant::now();
    let a = t.post(&send_path("slow"), ALICE, message("x")).await;
    assert_eq!(a.code(), (504, "expired"), "{a:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}}

on_both_ingests! { async fn send_refuses_disabled_and_unready_integrations_with_409(t) {
    // Auto-disabled after one dead delivery.
    let fragile = t.ready_webhook("fragile", 1).await;
    t.w.webhook.set_gone(&fragile);
    assert_eq!(t.post(&send_path("fragile"), ALICE, message("x")).await.code(), (502, "dead"));
    t.w.wait_condition("fragile", "Disabled", "True", Some("ErrorThreshold")).await;
    t.wait_store("fragile", "disabled", |ni| conditions::is_true(&status_conditions(ni), "Disabled")).await;
    let requests_before = t.w.webhook.requests().len();
    let a = t.post(&send_path("fragile"), ALICE, message("x")).await;
    assert_eq!(a.code(), (409, "integration_disabled"), "{a:?}");
    assert_eq!(a.error("reason"), "ErrorThreshold");

    // Switched off by hand.
    t.ready_webhook("manual", 5).await;
    t.w.patch_integration("manual", json!({"spec": {"disabled": true}})).await;
    t.w.wait_condition("manual", "Disabled", "True", Some("Manual")).await;
    t.wait_store("manual", "disabled", |ni| ni.spec.disabled).await;
    let a = t.post(&send_path("manual"), ALICE, message("x")).await;
    assert_eq!((a.code(), a.error("reason")), ((409, "integration_disabled"), "Manual"), "{a:?}");

    // Not ready for another reason: its Secret is missing.
    t.w.create_integration("orphan", json!({"service": "webhook", "secretRef": {"name": "missing"}})).await;
    t.w.wait_condition("orphan", "Ready", "False", Some("SecretNotFound")).await;
    t.wait_store("orphan", "not ready", |ni| conditions::find(&status_conditions(ni), "Ready").is_some()).await;
    let a = t.post(&send_path("orphan"), ALICE, message("x")).await;
    assert_eq!((a.code(), a.error("reason")), ((409, "integration_not_ready"), "SecretNotFound"), "{a:?}");
    assert!(a.error("message").contains("missing"), "{a:?}");

    // Unknown: 404.
    let a = t.post(&send_path("nope"), ALICE, message("x")).await;
    assert_eq!(a.code(), (404, "integration_not_found"), "{a:?}");

    assert_eq!(t.w.webhook.requests().len(), requests_before, "nothing refused reached the service");
}}

#[tokio::test]
async fn authentication_and_authorization() {
    let t = Ingest::start().await;
    t.ready_webhook("hook", 5).await;
    let body = || Some(message("x").to_string().into_bytes());
    let ev = || {
        let mut b = message("x");
        b["integration"] = json!("hook");
        b
    };

    // No token, a malformed header, a token the API server does not know: 401.
    for (path, token) in [(send_path("hook"), None), (events_path(NS), None), (send_path("hook"), Some(STOLEN))] {
        let a = t.request("POST", &path, token, body()).await;
        assert_eq!(a.code(), (401, "unauthenticated"), "{path} {token:?}: {a:?}");
        assert_eq!(a.headers["www-authenticate"], "Bearer");
    }
    let a = t.request("GET", &format!("{}/x", events_path(NS)), None, None).await;
    assert_eq!(a.code(), (401, "unauthenticated"));
    let r =
        t.http.post(format!("{}{}", t.url, send_path("hook"))).header("authorization", "Basic YWxpY2U6cHc=").body("{}");
    assert_eq!(Answer::from(r.send().await.unwrap()).await.code(), (401, "unauthenticated"));

    // Authenticated but not allowed: 403, with the authorizer's reason.
    let a = t.post(&send_path("hook"), BOB, message("x")).await;
    assert_eq!(a.code(), (403, "forbidden"), "{a:?}");
    assert!(a.error("message").contains("bob") && a.error("message").contains("no RBAC rule allows it"), "{a:?}");
    assert_eq!(t.post(&events_path(NS), BOB, ev()).await.code(), (403, "forbidden"));
    assert_eq!(t.get(&format!("{}/x", events_path(NS)), BOB).await.code(), (403, "forbidden"));
    // Allowed in team-a only.
    assert_eq!(t.post(&events_path("team-b"), ALICE, ev()).await.code(), (403, "forbidden"));
    assert_eq!(
        t.post("/v1/namespaces/team-b/integrations/hook/send", ALICE, message("x")).await.code(),
        (403, "forbidden")
    );

    // The SubjectAccessReview carried the caller's identity and the exact resource.
    let reviews = t.reviews.lock().unwrap().clone();
    let bob = reviews.iter().find(|s| s.user.as_deref() == Some("bob")).expect("a review for bob");
    assert_eq!(bob.uid.as_deref(), Some("uid-bob"));
    assert_eq!(bob.groups.clone().unwrap(), vec!["developers", "system:authenticated"]);
    let ra = bob.resource_attributes.clone().unwrap();
    assert_eq!(
        (ra.group.as_deref(), ra.resource.as_deref(), ra.verb.as_deref(), ra.namespace.as_deref()),
        (Some("kube-notify.io"), Some("notificationevents"), Some("create"), Some(NS))
    );

    // Nothing refused reached the service or stored anything.
    assert!(t.w.webhook.requests().is_empty());
    assert_eq!(t.events_created(), 0);
    // And no token was logged.
    let logs = crate::support::operator::captured_logs();
    for token in [ALICE, BOB, STOLEN] {
        assert!(!logs.contains(token), "a token appeared in the logs");
    }
}

#[tokio::test]
async fn api_errors_are_never_cached_as_denials() {
    let t = Ingest::start().await;
    t.ready_webhook("hook", 5).await;
    let erin = "erin-token";
    t.w.api.fail_next(ApiMatcher::any().user(OPERATOR_USER).resource("tokenreviews"), 500, "InternalError");
    let a = t.post(&send_path("hook"), erin, message("x")).await;
    assert_eq!(a.code(), (503, "unavailable"), "{a:?}");
    assert!(a.headers.contains_key("retry-after"));
    t.w.api.fail_next(ApiMatcher::any().user(OPERATOR_USER).resource("subjectaccessreviews"), 500, "InternalError");
    let a = t.post(&send_path("hook"), erin, message("x")).await;
    assert_eq!(a.code(), (503, "unavailable"), "{a:?}");
    // The API is back: the next request is decided afresh.
    let a = t.post(&send_path("hook"), erin, message("x")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(t.w.webhook.messages().len(), 1, "only the admitted request reached the service");
}

#[tokio::test]
async fn bad_requests_are_refused_before_any_service_or_write() {
    let t = Ingest::start().await;
    t.ready_webhook("hook", 5).await;
    let raw = |body: &str| Some(body.as_bytes().to_vec());
    let a = t.request("POST", &events_path(NS), Some(ALICE), raw("{\"integration\": \"hook\", ")).await;
    assert_eq!(a.code(), (400, "invalid_json"), "{a:?}");
    let a = t.request("POST", &send_path("hook"), Some(ALICE), raw("[]")).await;
    assert_eq!(a.code(), (400, "invalid_json"), "{a:?}");
    let cases = [
        (events_path(NS), json!({"integration": "hook"}), "message"),
        (send_path("hook"), json!({"title": "t"}), "message"),
        (send_path("hook"), json!({"message": "x".repeat(65536)}), "message"),
        (send_path("hook"), json!({"message": "x", "severity": "critical"}), "severity"),
        (events_path(NS), json!({"message": "x"}), "integration"),
        (
            events_path(NS),
            json!({"message": "x", "integration": "hook", "integrationSelector": {"matchLabels": {}}}),
            "integrationSelector",
        ),
        (
            send_path("hook"),
            json!({"message": "x", "links": [{"text": "t", "url": "file:///etc/passwd"}]}),
            "links[0].url",
        ),
        (send_path("hook"), json!({"message": "x", "fields": [{"name": "a"}]}), "fields[0].value"),
        (
            send_path("hook"),
            json!({"message": "x", "fields": (0..26).map(|i| json!({"name": format!("f{i}"), "value": ""})).collect::<Vec<_>>()}),
            "fields",
        ),
        (send_path("hook"), json!({"message": "x", "colour": "red"}), "colour"),
    ];
    for (path, body, field) in cases {
        let a = t.post(&path, ALICE, body).await;
        assert_eq!((a.code(), a.error("field")), ((400, "invalid_field"), field), "{path}: {a:?}");
    }
    // Over --max-body-bytes (1 MiB): 413.
    let big = format!("{{\"message\": \"{}\"}}", "x".repeat(1024 * 1024));
    let a = t.request("POST", &send_path("hook"), Some(ALICE), Some(big.into_bytes())).await;
    assert_eq!(a.code(), (413, "body_too_large"), "{a:?}");

    // Unknown routes and methods, in the same shape.
    let a = t.post("/v1/namespaces/team-a/somewhere", ALICE, json!({})).await;
    assert_eq!(a.code(), (404, "not_found"), "{a:?}");
    let a = t.request("GET", "/", None, None).await;
    assert_eq!(a.code(), (404, "not_found"), "{a:?}");
    let a = t.request("DELETE", &send_path("hook"), Some(ALICE), None).await;
    assert_eq!(a.code(), (405, "method_not_allowed"), "{a:?}");
    // A namespace that cannot exist.
    let a = t.post("/v1/namespaces/Not_A_Namespace/events", ALICE, json!({"integration": "a", "message": "x"})).await;
    assert!(matches!(a.code(), (403, _) | (404, _)), "{a:?}");

    assert!(t.w.webhook.requests().is_empty(), "nothing refused reached the service");
    assert_eq!(t.events_created(), 0);
    let metrics = t.w.metrics.render();
    assert!(metrics.contains(r#"route="unmatched""#), "{metrics}");
    assert!(metrics.contains(r#"code="413""#), "{metrics}");
}

#[tokio::test]
async fn namespace_mode_serves_its_namespace_only() {
    let t = Ingest::start_with(IngestConfig { namespace: Some("team-b".into()), ..test_config() }).await;
    let a = t.post(&events_path(NS), ALICE, json!({"integration": "hook", "message": "x"})).await;
    assert_eq!(a.code(), (404, "namespace_not_served"), "{a:?}");
    assert_eq!(t.events_created(), 0);
}

#[tokio::test]
async fn one_identity_sending_too_fast_gets_429() {
    let t =
        Ingest::start_with(IngestConfig { rate: 1.try_into().unwrap(), burst: 2.try_into().unwrap(), ..test_config() })
            .await;
    t.ready_webhook("hook", 5).await;
    for _ in 0..2 {
        assert_eq!(t.post(&send_path("hook"), ALICE, message("x")).await.status, 200);
    }
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!(a.code(), (429, "rate_limited"), "{a:?}");
    let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    // Another identity has its own budget.
    assert_eq!(t.post(&send_path("hook"), CAROL, message("x")).await.status, 200);
    assert_eq!(t.w.webhook.messages().len(), 3, "the limited request reached no service");
}

/// The sidecar router, serving as the pod (`api.client_as("pod-token")`).
async fn start_sidecar(t: &Ingest, max_body_bytes: usize) -> (String, Task) {
    start_sidecar_with(t, max_body_bytes, Limits::default()).await
}

/// [`start_sidecar`] with the listener's `limits`.
async fn start_sidecar_with(t: &Ingest, max_body_bytes: usize, limits: Limits) -> (String, Task) {
    t.w.api.add_user(POD_TOKEN, POD_USER, &["system:serviceaccounts", "system:serviceaccounts:team-a"]);
    let config = SidecarConfig {
        namespace: NS.into(),
        max_body_bytes,
        rate: 100.try_into().unwrap(),
        burst: 100.try_into().unwrap(),
    };
    let router = sidecar::router(t.w.api.client_as(POD_TOKEN), config, t.w.metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = sidecar::serve_on(listener, router, limits).await;
    });
    (url, Task(task))
}

/// The sidecar serves programs in its pod, not web pages: the same rules as
/// standalone without a token. And its listener has the same deadlines.
#[tokio::test]
async fn sidecar_refuses_web_pages_and_slow_clients() {
    let t = Ingest::start().await;
    t.ready_webhook("hook", 5).await;
    let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
    let (url, _sidecar) = start_sidecar_with(&t, 1024, limits.clone()).await;
    let body = json!({"integration": "hook", "message": "from the app"}).to_string();
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("host", "evil.example:8787"),
        ("host", "127.evil.example"),
    ] {
        let req = t.http.post(format!("{url}/v1/events")).header(name, value).body(body.clone());
        let a = Answer::from(req.send().await.unwrap()).await;
        assert_eq!(a.code(), (403, "forbidden"), "{name}: {value}: {a:?}");
        assert!(a.error("message").contains("not web pages"), "{a:?}");
    }
    assert_eq!(t.api_calls(POD_USER, "create", "notificationevents"), 0, "nothing refused reached the API");
    for (name, value) in [("host", "localhost:8787"), ("sec-fetch-site", "none")] {
        let req = t.http.post(format!("{url}/v1/events")).header(name, value).body(body.clone());
        let a = Answer::from(req.send().await.unwrap()).await;
        assert_eq!(a.status, 202, "{name}: {value}: {a:?}");
    }
    let metrics = t.w.metrics.render();
    assert!(metrics.contains(r#"method="POST",route="/v1/events",code="403""#), "{metrics}");

    // Half a request head: closed at the header timeout.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.unwrap();
    let since = tokio::time::Instant::now();
    stream.write_all(b"POST /v1/events HTTP/1.1\r\nX: ").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await.expect("never closed");
    let held = since.elapsed();
    assert!(
        held >= limits.header_read_timeout && held < limits.header_read_timeout + Duration::from_secs(2),
        "{held:?}"
    );
}

#[tokio::test]
async fn sidecar_creates_events_as_the_pod() {
    let t = Ingest::start().await;
    t.ready_webhook("hook", 5).await;
    let (url, _sidecar) = start_sidecar(&t, 1024 * 1024).await;
    let post = |path: &str, body: String| {
        let req = t.http.post(format!("{url}{path}")).body(body);
        async move { Answer::from(req.send().await.unwrap()).await }
    };

    // No token: the pod's own credentials are used.
    let a = post("/v1/events", json!({"integration": "hook", "message": "from the app"}).to_string()).await;
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.body["namespace"], NS);
    let name = a.body["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("sidecar-"));
    assert_eq!(a.headers["location"], format!("/v1/events/{name}"));
    let created =
        t.w.api
            .requests()
            .into_iter()
            .find(|r| r.verb == "create" && r.resource == "notificationevents" && r.name == name)
            .expect("the creation was recorded");
    assert_eq!((created.user.as_str(), created.namespace.as_str(), created.code), (POD_USER, NS, 201));
    t.w.wait_event_phase(&name, kube_notify::crd::EventPhase::Delivered).await;
    assert_eq!(t.w.webhook.messages()[0].json().unwrap()["data"]["message"], "from the app");
    let a = Answer::from(t.http.get(format!("{url}/v1/events/{name}")).send().await.unwrap()).await;
    assert_eq!((a.status, a.body["phase"].as_str()), (200, Some("Delivered")), "{a:?}");

    // Its own namespace by name too; any other is refused before the API.
    let a = post(&events_path(NS), json!({"integration": "hook", "message": "again"}).to_string()).await;
    assert_eq!(a.status, 202, "{a:?}");
    let api_calls = t.api_calls(POD_USER, "create", "notificationevents");
    let a = post(&events_path("kube-system"), json!({"integration": "hook", "message": "x"}).to_string()).await;
    assert_eq!(a.code(), (403, "forbidden"), "{a:?}");
    // Invalid bodies never reach the API.
    let a = post("/v1/events", json!({"integration": "hook"}).to_string()).await;
    assert_eq!((a.code(), a.error("field")), ((400, "invalid_field"), "message"));
    let a = post("/v1/events", "{oops".into()).await;
    assert_eq!(a.code(), (400, "invalid_json"));
    assert_eq!(t.api_calls(POD_USER, "create", "notificationevents"), api_calls);

    // The cluster's RBAC decides: a 403 from the API is a 403 to the caller.
    t.w.api.fail_next(ApiMatcher::any().user(POD_USER).verb("create").resource("notificationevents"), 403, "Forbidden");
    let a = post("/v1/events", json!({"integration": "hook", "message": "x"}).to_string()).await;
    assert_eq!((a.code(), a.error("reason")), ((403, "forbidden"), "Forbidden"), "{a:?}");
    // A namespace that does not exist (the API's 404).
    let a = Answer::from(t.http.get(format!("{url}/v1/events/missing-event")).send().await.unwrap()).await;
    assert_eq!(a.code(), (404, "event_not_found"), "{a:?}");
    let a = Answer::from(t.http.get(format!("{url}/nope")).send().await.unwrap()).await;
    assert_eq!(a.code(), (404, "not_found"));

    // The sidecar never used the operator's reviews, and the pod did nothing else.
    let used: Vec<_> = t.w.api.usage_by(POD_USER).into_iter().collect();
    assert!(
        used.iter().all(|(verb, group, resource, _)| group == "kube-notify.io"
            && resource == "notificationevents"
            && (verb == "create" || verb == "get")),
        "{used:?}"
    );
    assert_eq!(t.w.webhook.messages().len(), 2, "only the two accepted events were delivered");
}

#[tokio::test]
async fn sidecar_body_limit_and_loopback_only() {
    let t = Ingest::start().await;
    let (url, _sidecar) = start_sidecar(&t, 64).await;
    let body = json!({"integration": "hook", "message": "x".repeat(100)}).to_string();
    let a = Answer::from(t.http.post(format!("{url}/v1/events")).body(body).send().await.unwrap()).await;
    assert_eq!(a.code(), (413, "body_too_large"), "{a:?}");
    assert_eq!(t.api_calls(POD_USER, "create", "notificationevents"), 0);

    let router = sidecar::router(
        t.w.api.client_as(POD_TOKEN),
        SidecarConfig {
            namespace: NS.into(),
            max_body_bytes: 1024,
            rate: 1.try_into().unwrap(),
            burst: 1.try_into().unwrap(),
        },
        t.w.metrics.clone(),
    );
    let e = sidecar::serve("0.0.0.0:0".parse().unwrap(), router).await.unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
}

/// A follower serves the durable route itself, and `send` through the
/// leader: same answers, one delivery, by the leader.
#[tokio::test]
async fn a_follower_serves_events_and_send_through_the_leader() {
    let t = Ingest::start_on_a_follower(test_config()).await;
    assert!(!t._operator.leadership.is_leader());
    let hook = t.ready_webhook("hook", 5).await;

    // The durable route: created by the follower, delivered by the leader.
    let mut body = message("durable");
    body["integration"] = json!("hook");
    let a = t.post(&events_path(NS), ALICE, body).await;
    assert_eq!(a.status, 202, "{a:?}");
    let name = a.body["name"].as_str().unwrap().to_string();
    t.w.wait_event_phase(&name, kube_notify::crd::EventPhase::Delivered).await;
    let a = t.get(&format!("{}/{name}", events_path(NS)), ALICE).await;
    assert_eq!((a.status, a.body["phase"].as_str()), (200, Some("Delivered")), "{a:?}");

    // send: 200 with the attempts, once, and the event it became says so.
    let a = t.post(&send_path("hook"), ALICE, message("synchronous")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, json!({"delivered": true, "attempts": 1}));
    let sent = t.w.webhook.messages();
    assert_eq!(sent.iter().filter(|m| String::from_utf8_lossy(&m.body).contains("synchronous")).count(), 1);
    let events = t.w.api.objects("kube-notify.io", "v1alpha1", "notificationevents");
    let via_send: Vec<&Value> =
        events.iter().filter(|e| e["metadata"]["annotations"]["kube-notify.io/requested-via"] == "send").collect();
    assert_eq!(via_send.len(), 1, "{events:?}");
    assert_eq!(via_send[0]["metadata"]["annotations"]["kube-notify.io/requested-by"], "alice");
    assert_eq!(via_send[0]["spec"]["ttlSecondsAfterFinished"], 60);

    // The same refusals as on the leader, before anything is created.
    assert_eq!(t.post(&send_path("nope"), ALICE, message("x")).await.code(), (404, "integration_not_found"));
    assert_eq!(t.post(&send_path("hook"), BOB, message("x")).await.status, 403);

    // Exhausted, then dead: the classes and reasons the leader answers.
    t.w.webhook.push_responses(RequestMatcher::path(&hook), ScriptedResponse::status(503), 3);
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!(a.code(), (502, "exhausted"), "{a:?}");
    assert_eq!((a.error("reason"), a.body["attempts"].as_u64()), ("ServiceUnavailable", Some(3)));
    t.w.webhook.set_gone(&hook);
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!(a.code(), (502, "dead"), "{a:?}");
    assert_eq!(a.error("reason"), "DestinationNotFound");
    assert!(!a.error("message").contains(&t.w.webhook.url()), "no credential in errors");
    // Only the leader wrote status.
    assert!(t.w.api.requests().iter().all(|r| r.subresource != "status" || r.user == OPERATOR_USER));
}

/// The leader does not deliver in time: 504, and the event is cancelled so
/// that it is not sent later.
#[tokio::test]
async fn a_follower_send_times_out_and_cancels_its_event() {
    let t =
        Ingest::start_on_a_follower(IngestConfig { send_timeout: Duration::from_millis(500), ..test_config() }).await;
    let hook = t.ready_webhook("busy", 5).await;
    // A slow delivery ahead of it in the integration's queue (creation order):
    // slower than the send timeout, well within the HTTP timeout (2 s).
    t.w.webhook
        .push_response(RequestMatcher::path(&hook), ScriptedResponse::delayed_passthrough(Duration::from_millis(1200)));
    t.w.create_event("blocker", json!({"integrationRef": {"name": "busy"}, "message": "blocker"})).await;
    let a = t.post(&send_path("busy"), ALICE, message("late")).await;
    assert_eq!(a.code(), (504, "expired"), "{a:?}");
    assert_eq!((a.error("reason"), a.body["delivered"].as_bool()), ("Expired", Some(false)));
    assert!(
        t.w.api.requests().iter().any(|r| r.verb == "delete" && r.resource == "notificationevents" && r.code < 300),
        "the event was cancelled"
    );
    t.w.wait_event_phase("blocker", kube_notify::crd::EventPhase::Delivered).await;
    t.w.create_event("after", json!({"integrationRef": {"name": "busy"}, "message": "after"})).await;
    t.w.wait_event_phase("after", kube_notify::crd::EventPhase::Delivered).await;
    let texts: Vec<String> =
        t.w.webhook.messages().iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()).collect();
    assert!(!texts.iter().any(|b| b.contains("late")), "a cancelled send is never delivered: {texts:?}");
    assert_eq!(texts.len(), 2, "{texts:?}");
}

/// The leader answers a deadline it cannot meet at once: the same 504 as its own `send`.
#[tokio::test]
async fn a_follower_send_answers_the_recorded_expiry_as_a_deadline() {
    let t = Ingest::start_on_a_follower(test_config()).await;
    let hook = t.ready_webhook("slow", 5).await;
    // A wait hint beyond the event deadline: the leader records it Expired.
    t.w.webhook.push_responses(RequestMatcher::path(&hook), ScriptedResponse::status(429).with_retry_after(600), 1);
    let a = t.post(&send_path("slow"), ALICE, message("x")).await;
    assert_eq!(a.code(), (504, "expired"), "{a:?}");
    assert_eq!((a.error("reason"), a.body["delivered"].as_bool()), ("Expired", Some(false)));
}

/// A POST from the local address `from` (any of 127.0.0.0/8 reaches the
/// operator's loopback listener), as another client.
async fn post_from(t: &Ingest, from: &str, path: &str, token: &str, body: Value) -> Answer {
    let client = reqwest::Client::builder().local_address(from.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let req = client.post(format!("{}{path}", t.url)).bearer_auth(token).json(&body);
    Answer::from(req.send().await.unwrap()).await
}

#[tokio::test]
async fn a_flood_of_invalid_tokens_costs_at_most_the_budget_in_token_reviews() {
    let budget = 10;
    let t = Ingest::start_with(IngestConfig { bad_token_budget: budget.try_into().unwrap(), ..test_config() }).await;
    t.ready_webhook("hook", 5).await;
    assert_eq!(t.post(&send_path("hook"), ALICE, message("before")).await.status, 200);
    let before = t.api_calls(OPERATOR_USER, "create", "tokenreviews");

    // Tokens that cannot be Kubernetes tokens cost nothing.
    for token in ["eyJnot-a-jwt", "eyJhbGciOiJSUzI1NiJ9.e30", "two words", "semi;colon"] {
        let a = t.post(&send_path("hook"), token, message("x")).await;
        assert_eq!(a.code(), (401, "unauthenticated"), "{token}: {a:?}");
    }
    assert_eq!(t.api_calls(OPERATOR_USER, "create", "tokenreviews"), before);

    // 300 random tokens, 25 at a time, while alice keeps sending.
    let mut refused = 0;
    let mut limited = 0;
    for round in 0..12 {
        let tokens: Vec<String> = (0..25).map(|_| crate::support::services::random_alnum(40)).collect();
        let path = send_path("hook");
        let answers = futures::future::join_all(tokens.iter().map(|tok| t.post(&path, tok, message("x")))).await;
        for a in &answers {
            match a.status {
                401 => refused += 1,
                429 => {
                    limited += 1;
                    assert!(a.headers.contains_key("retry-after"), "{a:?}");
                }
                other => panic!("{other}: {a:?}"),
            }
        }
        let a = t.post(&send_path("hook"), ALICE, message(&format!("during {round}"))).await;
        assert_eq!(a.status, 200, "a known caller keeps working during the flood: {a:?}");
    }
    let reviews = t.api_calls(OPERATOR_USER, "create", "tokenreviews") - before;
    assert!(reviews <= budget as usize, "{reviews} TokenReviews for the flood (refused {refused}, limited {limited})");
    assert!(limited >= 300 - budget as usize, "limited {limited}");

    // Another client address is not limited by the flooder's budget, even with a token never seen.
    let a = post_from(&t, "127.0.0.2", &send_path("hook"), CAROL, message("other client")).await;
    assert_eq!(a.status, 200, "{a:?}");
    // Nothing refused reached the service.
    assert_eq!(t.w.webhook.messages().len(), 1 + 12 + 1);
}

#[tokio::test]
async fn refused_tokens_never_push_valid_callers_out_of_the_review_cache() {
    let config = IngestConfig { review_cache_size: 2, bad_token_budget: 1000.try_into().unwrap(), ..test_config() };
    let t = Ingest::start_with(config).await;
    t.ready_webhook("hook", 5).await;
    assert_eq!(t.post(&send_path("hook"), ALICE, message("first")).await.status, 200);
    for _ in 0..50 {
        let token = crate::support::services::random_alnum(40);
        assert_eq!(t.post(&send_path("hook"), &token, message("x")).await.status, 401);
    }
    // The same refused token again is answered from its own cache.
    let before = t.api_calls(OPERATOR_USER, "create", "tokenreviews");
    for _ in 0..3 {
        assert_eq!(t.post(&send_path("hook"), STOLEN, message("x")).await.status, 401);
    }
    assert_eq!(t.api_calls(OPERATOR_USER, "create", "tokenreviews"), before + 1);
    // Alice is still cached: no new TokenReview.
    assert_eq!(t.post(&send_path("hook"), ALICE, message("second")).await.status, 200);
    assert_eq!(t.api_calls(OPERATOR_USER, "create", "tokenreviews"), before + 1);
}

on_both_ingests! { async fn waiting_requests_share_one_memory_budget(t, IngestConfig { max_in_flight_bytes: 64 * 1024, ..test_config() }) {
    // 64 KiB of requests in flight at once, at least 16 KiB each: four
    // waiting requests spend it; the fifth gets 429 with Retry-After until one
    // of them is answered.
    let hook = t.ready_webhook("hook", 5).await;
    t.w.webhook.push_responses(hook.as_str(), ScriptedResponse::delayed_passthrough(Duration::from_millis(1500)), 4);
    let wait_path = format!("{}?wait=20s", events_path(NS));
    let body = json!({"integration": "hook", "message": "m"});
    let waiting: Vec<_> = (0..4).map(|_| t.post(&wait_path, ALICE, body.clone())).collect();
    let waiting = futures::future::join_all(waiting);
    let refused = async {
        // Once all four are waiting (their events exist), the fifth is refused.
        let deadline = tokio::time::Instant::now() + WAIT;
        while t.w.webhook.requests().iter().filter(|r| r.path == hook).count() < 1 || t.events_created_now().await < 4 {
            assert!(tokio::time::Instant::now() < deadline, "the four requests never waited");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t.post(&wait_path, ALICE, body.clone()).await
    };
    let (answers, refused) = tokio::join!(waiting, refused);
    assert_eq!(refused.code(), (429, "rate_limited"), "{refused:?}");
    assert_eq!(refused.headers["retry-after"], "1");
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    // Given back once answered.
    let a = t.post(&wait_path, ALICE, body.clone()).await;
    assert_eq!(a.status, 200, "{a:?}");
}}

#[tokio::test]
async fn many_waiting_requests_share_one_watch_of_events() {
    // On a follower every wait (a `?wait=` and a `send` through the leader)
    // is answered from one watch, whatever the number of waiting requests.
    let t = Ingest::start_on_a_follower(IngestConfig { send_timeout: Duration::from_secs(120), ..test_config() }).await;
    let hook = t.ready_webhook("hook", 5).await;
    // One request first: alice's token is known valid (40 concurrent first
    // requests with an unreviewed token would meet the per-address budget).
    let a = t
        .post(&format!("{}?wait=20s", events_path(NS)), ALICE, json!({"integration": "hook", "message": "warm"}))
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let watches = |t: &Ingest| t.api_calls(OPERATOR_USER, "watch", "notificationevents");
    let before = watches(&t);
    // KUBE_NOTIFY_TEST_WAITERS (20) of each; the closing figures used 500.
    let n: usize = std::env::var("KUBE_NOTIFY_TEST_WAITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    if n <= 20 {
        // Slow answers, so that they all wait at once.
        t.w.webhook.push_responses(
            hook.as_str(),
            ScriptedResponse::delayed_passthrough(Duration::from_millis(300)),
            2 * n,
        );
    }
    let wait_path = format!("{}?wait=120s", events_path(NS));
    let posts = (0..n).map(|i| t.post(&wait_path, ALICE, json!({"integration": "hook", "message": format!("w{i}")})));
    let send_to = send_path("hook");
    let sends = (0..n).map(|i| t.post(&send_to, ALICE, json!({"message": format!("s{i}")})));
    let (posts, sends) = tokio::join!(futures::future::join_all(posts), futures::future::join_all(sends));
    assert!(posts.iter().all(|a| a.status == 200 && a.body["phase"] == "Delivered"), "{posts:?}");
    assert!(sends.iter().all(|a| a.status == 200), "{sends:?}");
    let opened = watches(&t) - before;
    assert!(opened <= 1, "{opened} watches of events opened for {} waiting requests", 2 * n);
    eprintln!("{} waiting requests, {opened} watches of events opened while they waited", 2 * n);
}

/// Denied SubjectAccessReviews have a small cache of their own: a caller
/// asking for many things it may not do never pushes an allowed caller's
/// answer out, and the same denial again is answered without a review.
#[tokio::test]
async fn denials_never_push_allowed_callers_out_of_the_review_cache() {
    let config = IngestConfig { review_cache_size: 2, ..test_config() };
    let t = Ingest::start_with(config).await;
    t.ready_webhook("hook", 5).await;
    let reviews = || t.reviews.lock().unwrap().len();
    assert_eq!(t.post(&send_path("hook"), ALICE, message("first")).await.status, 200);
    let after_alice = reviews();
    // Bob may do nothing: 50 distinct denials (each its own review).
    for i in 0..50 {
        let a = t.get(&format!("{}/ev-{i}", events_path(NS)), BOB).await;
        assert_eq!(a.code(), (403, "forbidden"), "{a:?}");
    }
    assert_eq!(reviews(), after_alice + 50);
    // The same denial again comes from the denials' cache, with the authorizer's reason.
    let a = t.get(&format!("{}/ev-49", events_path(NS)), BOB).await;
    assert_eq!(a.code(), (403, "forbidden"));
    assert!(a.error("message").contains("no RBAC rule allows it"), "{a:?}");
    assert_eq!(reviews(), after_alice + 50);
    // Alice's allowed answer is still cached: no new review.
    assert_eq!(t.post(&send_path("hook"), ALICE, message("second")).await.status, 200);
    assert_eq!(reviews(), after_alice + 50, "alice's answer was evicted by bob's denials");
    assert_eq!(t.w.webhook.messages().len(), 2);
}

/// Tokens are bound to kube-notify: a token minted for the API server
/// (`kubectl create token NAME`, a pod's default token), which anyone who saw
/// one request could replay against the API, is refused with 401 and how to
/// mint one for kube-notify; one minted for kube-notify (alone or with other
/// audiences) is taken. The refusal is remembered like any other.
#[tokio::test]
async fn tokens_for_the_api_server_are_refused_with_how_to_mint_one() {
    let t = Ingest::start().await;
    t.ready_webhook("hook", 5).await;
    let dave = "dave-api-token";
    t.w.api.set_token_review(dave, TokenReviewAnswer::user("alice", &["developers"]));
    let pod = "pod-default-token";
    t.w.api.add_user(pod, "system:serviceaccount:team-a:erin", &["system:serviceaccounts"]);
    let projected = "pod-projected-token";
    t.w.api.add_user_for(projected, "erin", &["system:serviceaccounts"], &[AUDIENCE]);
    let both = "two-audiences-token";
    let both_audiences = [AUDIENCE, crate::support::apiserver::API_AUDIENCE];
    t.w.api.set_token_review(both, TokenReviewAnswer::user("carol", &[]).for_audiences(&both_audiences));

    let reviews = || t.api_calls(OPERATOR_USER, "create", "tokenreviews");
    for token in [dave, pod] {
        let a = t.post(&send_path("hook"), token, message("x")).await;
        assert_eq!(a.code(), (401, "unauthenticated"), "{a:?}");
        let msg = a.error("message");
        assert!(msg.contains("kubectl create token NAME --audience kube-notify"), "{msg}");
        assert!(msg.contains("projected ServiceAccount token") && msg.contains("audience: kube-notify"), "{msg}");
        assert!(!msg.contains(token) && !a.body.to_string().contains(token), "never echo the token");
        let before = reviews();
        let again = t.post(&events_path(NS), token, json!({"integration": "hook", "message": "x"})).await;
        assert_eq!((again.code(), again.error("message")), ((401, "unauthenticated"), msg));
        assert_eq!(reviews(), before, "the refusal is remembered");
    }
    // Minted for kube-notify: taken.
    assert_eq!(t.post(&send_path("hook"), projected, message("projected")).await.status, 200);
    assert_eq!(t.post(&send_path("hook"), both, message("both")).await.status, 200);
    assert_eq!(t.post(&send_path("hook"), ALICE, message("alice")).await.status, 200);
    let texts: Vec<String> =
        t.w.webhook
            .messages()
            .iter()
            .map(|m| m.json().unwrap()["data"]["message"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(texts, ["projected", "both", "alice"], "nothing refused reached the service");
    let logs = crate::support::operator::captured_logs();
    for token in [dave, pod, projected, both] {
        assert!(!logs.contains(token), "a token appeared in the logs");
    }
}

/// `--token-audience`: TokenReviews ask for the configured audience, and
/// tokens minted for another (here the default, kube-notify) are refused.
#[tokio::test]
async fn the_token_audience_is_a_setting() {
    let t = Ingest::start_with(IngestConfig { token_audience: "notify.example.com".into(), ..test_config() }).await;
    t.ready_webhook("hook", 5).await;
    let a = t.post(&send_path("hook"), ALICE, message("x")).await;
    assert_eq!(a.code(), (401, "unauthenticated"), "{a:?}");
    assert!(a.error("message").contains("--audience notify.example.com"), "{a:?}");
    let token = "ops-token";
    t.w.api.set_token_review(token, TokenReviewAnswer::user("carol", &[]).for_audiences(&["notify.example.com"]));
    assert_eq!(t.post(&send_path("hook"), token, message("ok")).await.status, 200);
    assert_eq!(t.w.webhook.messages().len(), 1);
}
