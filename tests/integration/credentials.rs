//! Every credential-check outcome, per service, through the real controller.

use serde_json::json;

use crate::support::operator::{NS, World, assert_no_secret, captured_logs, condition};
use crate::support::services::{RequestMatcher, ScriptedResponse};

fn slack_spec(secret: &str) -> serde_json::Value {
    json!({"service": "slack", "secretRef": {"name": secret}})
}

on_both_stores! { async fn live_slack_webhook_is_valid_and_nothing_is_posted(w) {
    let url = w.slack.add_webhook("T1", "B1");
    w.put_secret("slack", &[("webhookUrl", &url)]).await;
    w.create_integration("slack", slack_spec("slack")).await;
    let ni = w.wait_condition("slack", "Ready", "True", Some("Ready")).await;
    assert_eq!(condition(&ni, "CredentialsValid").unwrap().1, "Valid");
    assert_eq!(condition(&ni, "Disabled").unwrap().0, "False");
    let status = ni.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.consecutive_errors, 0);
    // The probe was `{}` and Slack posted nothing.
    let probes = w.slack.requests();
    assert!(!probes.is_empty());
    assert!(probes.iter().all(|r| r.json() == Some(json!({}))));
    assert!(w.slack.messages().is_empty());
    w.wait_k8s_event("slack", "IntegrationReady").await;
}}

on_both_stores! { async fn dead_slack_webhooks_are_invalid_with_precise_reasons(w) {
    let cases = [
        ("revoked", "invalid_token", "Unauthorized"),
        ("deleted", "no_service", "DestinationNotFound"),
        ("archived", "channel_is_archived", "DestinationNotFound"),
        ("prohibited", "action_prohibited", "Forbidden"),
    ];
    let mut urls = Vec::new();
    for (name, code, _) in cases {
        let url = w.slack.add_webhook("T1", &format!("B{name}"));
        w.slack.kill_webhook(&url, code);
        w.put_secret(name, &[("webhookUrl", &url)]).await;
        w.create_integration(name, slack_spec(name)).await;
        urls.push(url);
    }
    for (name, _, reason) in cases {
        let ni = w.wait_condition(name, "CredentialsValid", "False", Some(reason)).await;
        assert_eq!(condition(&ni, "Ready").unwrap().0, "False");
        let ev = w.wait_k8s_event(name, "CredentialsInvalid").await;
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        let note = ev.note.unwrap_or_default();
        let secrets: Vec<&str> = urls.iter().map(String::as_str).collect();
        assert_no_secret(&note, &secrets, "an Event");
        assert_no_secret(&serde_json::to_string(&ni.status).unwrap(), &secrets, "status");
    }
    let secrets: Vec<&str> = urls.iter().map(String::as_str).collect();
    assert_no_secret(&captured_logs(), &secrets, "the logs");
}}

on_both_stores! { async fn secret_problems_name_the_secret_and_key(w) {
    w.create_integration("nosecret", slack_spec("missing")).await;
    let ni = w.wait_condition("nosecret", "CredentialsValid", "False", Some("SecretNotFound")).await;
    assert!(condition(&ni, "CredentialsValid").unwrap().2.contains("\"missing\""));

    w.put_secret("wrongkey", &[("url", "https://hooks.slack.com/services/T1/B1/x")]).await;
    w.create_integration("wrongkey", slack_spec("wrongkey")).await;
    let ni = w.wait_condition("wrongkey", "CredentialsValid", "False", Some("SecretKeyMissing")).await;
    let msg = condition(&ni, "CredentialsValid").unwrap().2;
    assert!(msg.contains("webhookUrl") && msg.contains("url"), "{msg}");

    // secretRef.key overrides the key name.
    let url = w.slack.add_webhook("T1", "B2");
    w.put_secret("custom", &[("slackHook", &url)]).await;
    w.create_integration("custom", json!({"service": "slack", "secretRef": {"name": "custom", "key": "slackHook"}}))
        .await;
    w.wait_condition("custom", "Ready", "True", None).await;

    // The Secret appears later: the Secret watch re-validates.
    let url = w.slack.add_webhook("T1", "B3");
    w.put_secret("missing", &[("webhookUrl", &url)]).await;
    w.wait_condition("nosecret", "Ready", "True", None).await;
}}

on_both_stores! { async fn a_secret_is_read_only_from_the_integrations_namespace(w) {
    let url = w.slack.add_webhook("T1", "B1");
    w.put_secret_in("other", "shared", &[("webhookUrl", &url)]).await;
    w.create_integration("cross", slack_spec("shared")).await;
    w.wait_condition("cross", "CredentialsValid", "False", Some("SecretNotFound")).await;
    let reads_elsewhere = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.user == crate::support::operator::OPERATOR_USER && r.resource == "secrets")
        .filter(|r| !r.namespace.is_empty() && r.namespace != NS && !r.name.is_empty())
        .count();
    assert_eq!(reads_elsewhere, 0, "the operator read a Secret outside the integration's namespace");
}}

/// A Slack integration `rotating` is Ready, then its Secret is changed to a
/// dead webhook (not valid any more), then to a live one (Ready again).
async fn rotations_are_noticed(w: &World) {
    let good = w.slack.add_webhook("T1", "B1");
    let dead = w.slack.add_webhook("T1", "B2");
    w.slack.kill_webhook(&dead, "no_service");
    w.put_secret("rotating", &[("webhookUrl", &good)]).await;
    w.create_integration("rotating", slack_spec("rotating")).await;
    w.wait_condition("rotating", "Ready", "True", None).await;

    w.put_secret("rotating", &[("webhookUrl", &dead)]).await;
    w.wait_condition("rotating", "CredentialsValid", "False", Some("DestinationNotFound")).await;

    let good2 = w.slack.add_webhook("T1", "B3");
    w.put_secret("rotating", &[("webhookUrl", &good2)]).await;
    w.wait_condition("rotating", "Ready", "True", None).await;
}

on_both_stores! { async fn secret_rotation_revalidates_within_seconds(w) {
    rotations_are_noticed(&w).await;
}}

on_both_stores! { async fn url_shape_and_endpoint_policy(w) {
    let cases = [
        ("notaurl", "slack", "not a url", "InvalidURL"),
        ("badshape", "slack", "https://hooks.slack.com/workflows/T1/abc", "InvalidURL"),
        ("elsewhere", "slack", "https://hooks.example.com/services/T1/B1/secretsecret", "EndpointNotAllowed"),
        ("plainhttp", "webhook", "http://example.com/hook", "EndpointNotAllowed"),
        (
            "retired",
            "msteams",
            "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456",
            "RetiredEndpoint",
        ),
        (
            "nosig",
            "msteams",
            "https://prod-1.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01",
            "InvalidURL",
        ),
    ];
    for (name, service, url, _) in cases {
        w.put_secret(name, &[("webhookUrl", url)]).await;
        w.create_integration(name, json!({"service": service, "secretRef": {"name": name}})).await;
    }
    for (name, _, url, reason) in cases {
        let ni = w.wait_condition(name, "CredentialsValid", "False", Some(reason)).await;
        let msg = condition(&ni, "CredentialsValid").unwrap().2;
        if url.len() > 12 {
            assert!(!msg.contains(url), "{msg}");
        }
        if reason == "RetiredEndpoint" {
            assert!(msg.contains("Workflows"), "the message tells the user what to do: {msg}");
        }
    }
}}

on_both_stores! { async fn teams_workflows_and_generic_webhooks_are_checked_without_a_call(w) {
    let flow = w.teams.add_workflow();
    w.put_secret("teams", &[("webhookUrl", &flow)]).await;
    w.create_integration("teams", json!({"service": "msteams", "secretRef": {"name": "teams"}})).await;
    let hook = w.webhook.add_endpoint("/hooks/a");
    w.put_secret("hook", &[("webhookUrl", &hook), ("signingSecret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]).await;
    w.create_integration("hook", json!({"service": "webhook", "secretRef": {"name": "hook"}})).await;
    w.put_secret("badsig", &[("webhookUrl", &hook), ("signingSecret", "whsec_not*base64")]).await;
    w.create_integration("badsig", json!({"service": "webhook", "secretRef": {"name": "badsig"}})).await;
    w.wait_condition("teams", "Ready", "True", None).await;
    w.wait_condition("hook", "Ready", "True", None).await;
    w.wait_condition("badsig", "CredentialsValid", "False", Some("InvalidSigningSecret")).await;
    assert!(w.teams.requests().is_empty(), "a Teams probe would run the flow");
    assert!(w.webhook.requests().is_empty());
}}

on_both_stores! { async fn slack_bot_token_and_channel(w) {
    let token = "xoxb-1111-2222-abcdefabcdef";
    w.slack.add_bot_token(token);
    w.slack.add_channel("C0GOOD", "alerts", false, true);
    w.slack.add_channel("C0OLD", "old", true, true);
    let revoked = "xoxb-3333-4444-abcdefabcdef";
    w.slack.add_bot_token(revoked);
    w.slack.revoke_token(revoked, "token_revoked");
    w.put_secret("bot", &[("token", token)]).await;
    w.put_secret("revoked", &[("token", revoked)]).await;
    w.put_secret("usertoken", &[("token", "xoxp-user-token-value")]).await;
    let spec = |secret: &str, channel: &str| json!({"service": "slack", "secretRef": {"name": secret}, "slack": {"channel": channel, "username": "kube-notify"}});
    w.create_integration("bot", spec("bot", "C0GOOD")).await;
    w.create_integration("gone", spec("bot", "C0NONE")).await;
    w.create_integration("archived", spec("bot", "C0OLD")).await;
    w.create_integration("revoked", spec("revoked", "C0GOOD")).await;
    w.create_integration("usertoken", spec("usertoken", "C0GOOD")).await;
    w.wait_condition("bot", "Ready", "True", None).await;
    w.wait_condition("gone", "CredentialsValid", "False", Some("DestinationNotFound")).await;
    w.wait_condition("archived", "CredentialsValid", "False", Some("DestinationNotFound")).await;
    w.wait_condition("revoked", "CredentialsValid", "False", Some("Unauthorized")).await;
    w.wait_condition("usertoken", "CredentialsValid", "False", Some("InvalidToken")).await;
    let auth = w.slack.requests().into_iter().filter(|r| r.path.ends_with("auth.test")).count();
    assert!(auth >= 4);
    assert!(w.slack.messages().is_empty());
    assert_no_secret(&captured_logs(), &[token, revoked, "xoxp-user-token-value"], "the logs");
}}

on_both_stores! { async fn chatwork_token_room_and_role(w) {
    w.chatwork.add_token("cw-good-token-0001", 1001, "bot");
    w.chatwork.add_token("cw-revoked-token-02", 1002, "gone");
    w.chatwork.revoke_token("cw-revoked-token-02");
    w.chatwork.add_room(10, "general");
    w.chatwork.add_room(11, "announcements");
    w.chatwork.add_room(12, "private");
    w.chatwork.set_role(10, "cw-good-token-0001", "member");
    w.chatwork.set_role(11, "cw-good-token-0001", "readonly");
    w.put_secret("good", &[("token", "cw-good-token-0001")]).await;
    w.put_secret("revoked", &[("token", "cw-revoked-token-02")]).await;
    let spec = |secret: &str, room: &str| json!({"service": "chatwork", "secretRef": {"name": secret}, "chatwork": {"roomId": room}});
    w.create_integration("member", spec("good", "10")).await;
    w.create_integration("readonly", spec("good", "11")).await;
    w.create_integration("notmember", spec("good", "12")).await;
    w.create_integration("noroom", spec("good", "99")).await;
    w.create_integration("revoked", spec("revoked", "10")).await;
    w.wait_condition("member", "Ready", "True", None).await;
    let ni = w.wait_condition("readonly", "CredentialsValid", "False", Some("Forbidden")).await;
    assert!(condition(&ni, "CredentialsValid").unwrap().2.contains("read-only"));
    w.wait_integration("notmember", "Forbidden or DestinationNotFound", |ni| {
        condition(ni, "CredentialsValid")
            .is_some_and(|(s, r, _)| s == "False" && (r == "Forbidden" || r == "DestinationNotFound"))
    })
    .await;
    w.wait_condition("noroom", "CredentialsValid", "False", Some("DestinationNotFound")).await;
    w.wait_condition("revoked", "CredentialsValid", "False", Some("Unauthorized")).await;
    assert!(w.chatwork.messages().is_empty());
    assert_no_secret(&captured_logs(), &["cw-good-token-0001", "cw-revoked-token-02"], "the logs");
}}

on_both_stores! { async fn transient_failures_leave_unknown_and_retry(w) {
    let url = w.slack.add_webhook("T1", "B1");
    // Two 503s then a 429 with a wait hint, then the real answer.
    let m = RequestMatcher::url(&url);
    w.slack.push_response(m.clone(), ScriptedResponse::html(503, "<html>Service Unavailable</html>"));
    w.slack.push_response(m.clone(), ScriptedResponse::status(503));
    w.slack.push_response(m, ScriptedResponse::text(429, "rate_limited").with_retry_after(1));
    w.put_secret("flaky", &[("webhookUrl", &url)]).await;
    w.create_integration("flaky", slack_spec("flaky")).await;
    let ni = w.wait_condition("flaky", "CredentialsValid", "Unknown", Some("ServiceUnavailable")).await;
    assert_eq!(condition(&ni, "Ready").unwrap().0, "Unknown");
    w.wait_condition("flaky", "Ready", "True", None).await;
    assert!(w.slack.requests().len() >= 4);
}}

on_both_stores! { async fn a_transient_failure_never_invalidates_valid_credentials(w, |c| c.settings.revalidate_period = std::time::Duration::from_millis(300)) {
    let url = w.slack.add_webhook("T1", "B1");
    w.put_secret("steady", &[("webhookUrl", &url)]).await;
    w.create_integration("steady", slack_spec("steady")).await;
    w.wait_condition("steady", "Ready", "True", None).await;
    // Any write, on either store, changes the resource version.
    let version = w.integration("steady").await.unwrap().metadata.resource_version;
    let before = w.slack.requests().len();
    w.slack.push_responses(RequestMatcher::url(&url), ScriptedResponse::status(503), 3);
    // The periodic re-check meets the 503s and then succeeds.
    w.slack.wait_for_requests(before + 4, crate::support::operator::WAIT).await;
    let ni = w.integration("steady").await.unwrap();
    assert_eq!(condition(&ni, "CredentialsValid").unwrap().0, "True");
    assert_eq!(ni.metadata.resource_version, version, "no status write");
}}

on_both_stores! { async fn header_invalid_tokens_are_invalid_without_a_call(w) {
    // A line break, DEL, a control character: none can go into an HTTP header.
    let cases = [("newline", "cw-tok\nen-0001"), ("del", "cw-tok\u{7f}en-0002"), ("control", "cw-tok\u{1}en-0003")];
    for (name, token) in cases {
        w.put_secret(name, &[("token", token)]).await;
        w.create_integration(
            name,
            json!({"service": "chatwork", "secretRef": {"name": name}, "chatwork": {"roomId": "10"}}),
        )
        .await;
    }
    w.put_secret("bot", &[("token", "xoxb-1-\u{7f}abc")]).await;
    w.create_integration("bot", json!({"service": "slack", "secretRef": {"name": "bot"}, "slack": {"channel": "C1"}}))
        .await;
    let mut secrets: Vec<&str> = cases.iter().map(|(_, t)| *t).collect();
    secrets.push("xoxb-1-\u{7f}abc");
    for name in ["newline", "del", "control", "bot"] {
        let ni = w.wait_condition(name, "CredentialsValid", "False", Some("InvalidToken")).await;
        let message = condition(&ni, "CredentialsValid").unwrap().2;
        assert!(message.contains("\"token\"") && message.contains(&format!("{name:?}")), "{message}");
        assert_no_secret(&serde_json::to_string(&ni.status).unwrap(), &secrets, "status");
        assert!(!message.contains("cw-tok") && !message.contains("abc"), "{message}");
    }
    assert!(w.chatwork.requests().is_empty() && w.slack.requests().is_empty(), "no call was made");
}}

on_both_stores! { async fn checks_without_a_call_skip_the_validation_limiter(w, |c| c.settings.validation_rate = std::num::NonZeroU32::new(1).unwrap()) {
    // At 1 check per second per service, 40 webhook and 20 Teams checks would
    // take 39 s if they waited in the limiter; they make no call, so they don't
    // (a few seconds here, more on a loaded machine).
    let started = std::time::Instant::now();
    let mut names = Vec::new();
    for i in 0..40 {
        let name = format!("hook-{i}");
        let url = w.webhook.add_endpoint(&format!("/hooks/{i}"));
        w.put_secret(&name, &[("webhookUrl", &url)]).await;
        w.create_integration(&name, json!({"service": "webhook", "secretRef": {"name": name}})).await;
        names.push(name);
    }
    for i in 0..20 {
        let name = format!("flow-{i}");
        let url = w.teams.add_workflow();
        w.put_secret(&name, &[("webhookUrl", &url)]).await;
        w.create_integration(&name, json!({"service": "msteams", "secretRef": {"name": name}})).await;
        names.push(name);
    }
    for name in &names {
        w.wait_condition(name, "Ready", "True", None).await;
    }
    // In the limiter the 40th webhook check could not start before 39 s.
    let elapsed = started.elapsed();
    assert!(elapsed < std::time::Duration::from_secs(30), "60 checks without a call took {elapsed:?}");

    // Slack probes still take a permit each: the second waits about a second.
    let started = std::time::Instant::now();
    for i in 0..2 {
        let name = format!("slack-{i}");
        let url = w.slack.add_webhook("T1", &format!("B{i}"));
        w.put_secret(&name, &[("webhookUrl", &url)]).await;
        w.create_integration(&name, slack_spec(&name)).await;
    }
    w.wait_condition("slack-0", "Ready", "True", None).await;
    w.wait_condition("slack-1", "Ready", "True", None).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= std::time::Duration::from_millis(900), "two Slack probes within {elapsed:?} at 1/s");
}}

/// Secret requests the operator made with `verb`.
fn operator_secret_calls(w: &crate::support::operator::World, verb: &str) -> usize {
    w.api
        .requests()
        .iter()
        .filter(|r| r.user == crate::support::operator::OPERATOR_USER && r.resource == "secrets" && r.verb == verb)
        .count()
}

#[tokio::test]
async fn get_mode_notices_rotation_without_listing_or_watching_secrets() {
    use kube_notify::store::SecretAccess;
    let reread = std::time::Duration::from_millis(200);
    let w =
        crate::support::operator::World::start_with(|c| c.settings.secret_access = SecretAccess::Get { reread }).await;
    // Noticed by a re-read, not a watch.
    rotations_are_noticed(&w).await;

    // A Secret that appears later is noticed too.
    w.create_integration("late", slack_spec("late")).await;
    w.wait_condition("late", "CredentialsValid", "False", Some("SecretNotFound")).await;
    let url = w.slack.add_webhook("T1", "B4");
    w.put_secret("late", &[("webhookUrl", &url)]).await;
    w.wait_condition("late", "Ready", "True", None).await;

    assert_eq!(operator_secret_calls(&w, "list"), 0, "no list of Secrets");
    assert_eq!(operator_secret_calls(&w, "watch"), 0, "no watch of Secrets");
    assert!(operator_secret_calls(&w, "get") > 0);
}

#[tokio::test]
async fn labelled_mode_watches_only_labelled_secrets() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Patch, PatchParams, PostParams};
    use kube_notify::store::SecretAccess;
    let w = crate::support::operator::World::start_with(|c| c.settings.secret_access = SecretAccess::Labelled).await;
    let url = w.slack.add_webhook("T1", "B1");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "plain", "namespace": NS},
        "stringData": {"webhookUrl": url},
    }))
    .unwrap();
    w.secrets_in(NS).create(&PostParams::default(), &secret).await.unwrap();
    w.create_integration("plain", slack_spec("plain")).await;
    let ni = w.wait_condition("plain", "CredentialsValid", "False", Some("SecretNotLabelled")).await;
    let message = condition(&ni, "CredentialsValid").unwrap().2;
    assert!(message.contains("kube-notify.io/secret=true") && message.contains("\"plain\""), "{message}");

    // Labelled, the watch sees it and the integration becomes valid.
    let label = json!({"metadata": {"labels": {"kube-notify.io/secret": "true"}}});
    w.secrets_in(NS).patch("plain", &PatchParams::default(), &Patch::Merge(&label)).await.unwrap();
    w.wait_condition("plain", "Ready", "True", None).await;
    let watches: Vec<String> = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.user == crate::support::operator::OPERATOR_USER && r.resource == "secrets")
        .filter(|r| r.verb == "list" || r.verb == "watch")
        .map(|r| r.query)
        .collect();
    assert!(!watches.is_empty());
    assert!(watches.iter().all(|q| q.contains("labelSelector=kube-notify.io%2Fsecret%3Dtrue")), "{watches:?}");
}

#[tokio::test]
async fn cached_secret_metadata_keeps_no_annotations_labels_or_managed_fields() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::reflector::ObjectRef;
    let w = crate::support::operator::World::start().await;
    // As `kubectl apply` leaves it: the data again in an annotation, and managedFields.
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "applied", "namespace": NS, "labels": {"team": "a"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"stringData\":{\"webhookUrl\":\"https://hooks.slack.com/services/T/B/secret\"}}"}},
        "stringData": {"webhookUrl": "https://hooks.slack.com/services/T/B/secret"},
    }))
    .unwrap();
    let applied = w
        .secrets_in(NS)
        .patch("applied", &PatchParams::apply("kubectl").force(), &Patch::Apply(&secret))
        .await
        .unwrap();
    let ctx = w.context();
    let key = ObjectRef::new("applied").within(NS);
    let deadline = tokio::time::Instant::now() + crate::support::operator::WAIT;
    let cached = loop {
        if let Some(m) = ctx.caches.secrets.get(&key)
            && m.metadata.resource_version == applied.metadata.resource_version
        {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "the Secret watch never saw the Secret");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(cached.metadata.annotations, None);
    assert_eq!(cached.metadata.managed_fields, None);
    assert_eq!(cached.metadata.labels, None);
    assert_eq!(cached.metadata.name.as_deref(), Some("applied"));
    assert_eq!(cached.metadata.namespace.as_deref(), Some(NS));
}

/// The chart's default (`secretReadScope: namespaces`): the operator may
/// `get` Secrets only in namespaces that bound its reader ClusterRole. A
/// namespace that has not is told so, with the line that opts it in; once
/// it does (the 403 stops), the integration becomes Ready without a restart
/// and what waited for it is delivered.
#[tokio::test]
async fn forbidden_secret_says_which_rolebinding_to_create_and_recovers_once_allowed() {
    use crate::support::apiserver::{FaultKind, RequestMatcher};
    use crate::support::operator::{OPERATOR_USER, WAIT};
    use kube_notify::crd::EventPhase;
    use kube_notify::store::SecretAccess;
    let reread = std::time::Duration::from_millis(200);
    let w = World::start_with(|c| c.settings.secret_access = SecretAccess::Get { reread }).await;
    // No RoleBinding in NS yet: the API server forbids the operator's gets there.
    let forbidden = w.api.inject(
        RequestMatcher::any().user(OPERATOR_USER).verb("get").resource("secrets").namespace(NS),
        FaultKind::Status { code: 403, reason: "Forbidden".into(), retry_after: None },
        None,
    );
    let url = w.slack.add_webhook("T1", "B1");
    w.put_secret("slack", &[("webhookUrl", &url)]).await;
    w.create_integration("slack", slack_spec("slack")).await;

    let ni = w.wait_condition("slack", "CredentialsValid", "False", Some("SecretForbidden")).await;
    let line = format!(
        "kubectl create rolebinding kube-notify-secret-reader -n {NS} --clusterrole=kube-notify-secret-reader \
         --serviceaccount=kube-notify:kube-notify"
    );
    let message = condition(&ni, "CredentialsValid").unwrap().2;
    assert!(message.contains(&format!("Secret \"slack\" in namespace \"{NS}\"")), "{message}");
    assert!(message.ends_with(&format!("`{line}`.")), "{message}");
    assert_eq!(condition(&ni, "Ready").unwrap(), ("False".into(), "SecretForbidden".into(), message.clone()));
    let ev = w.wait_k8s_event("slack", "CredentialsInvalid").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    let note = ev.note.unwrap_or_default();
    assert!(note.starts_with("SecretForbidden: ") && note.contains(&line), "{note}");
    assert_no_secret(&note, &[&url], "an Event");
    assert_no_secret(&message, &[&url], "the condition");

    // An event for it waits, as for any integration that is not ready.
    w.create_event("e1", json!({"integrationRef": {"name": "slack"}, "message": "after the opt-in"})).await;
    // Asked again soon (the transient backoff), not after the re-validation period.
    let hits = w.api.fault_hits(forbidden);
    assert!(w.api.wait_until(WAIT, |api| api.fault_hits(forbidden) >= hits + 3).await, "re-checked while forbidden");
    assert!(w.slack.messages().is_empty(), "nothing is sent while the Secret cannot be read");
    assert_eq!(w.event("e1").await.unwrap().status.unwrap_or_default().phase, Some(EventPhase::Pending));

    // `kubectl create rolebinding …`: the same operator, no restart.
    w.api.clear_fault(forbidden);
    w.wait_condition("slack", "Ready", "True", Some("Ready")).await;
    w.wait_k8s_event("slack", "IntegrationReady").await;
    w.wait_event_phase("e1", EventPhase::Delivered).await;
    assert_eq!(w.slack.messages().len(), 1);
    assert_no_secret(&captured_logs(), &[&url], "the logs");
}

/// The same in watch mode, where nothing about the Secret changes when the
/// RoleBinding appears: the transient backoff alone finds it readable.
#[tokio::test]
async fn forbidden_secret_is_checked_again_with_backoff_in_watch_mode() {
    use crate::support::apiserver::{FaultKind, RequestMatcher};
    use crate::support::operator::OPERATOR_USER;
    let w = World::start().await;
    let url = w.slack.add_webhook("T1", "B1");
    w.put_secret("slack", &[("webhookUrl", &url)]).await;
    let forbidden = w.api.inject(
        RequestMatcher::any().user(OPERATOR_USER).verb("get").resource("secrets").namespace(NS),
        FaultKind::Status { code: 403, reason: "Forbidden".into(), retry_after: None },
        None,
    );
    w.create_integration("slack", slack_spec("slack")).await;
    w.wait_condition("slack", "Ready", "False", Some("SecretForbidden")).await;
    w.api.clear_fault(forbidden);
    w.wait_condition("slack", "Ready", "True", Some("Ready")).await;
}
