//! What the service said decides: a 2xx whose body is huge, stalls after the
//! head or is cut off mid-body is still a delivery (one post, `Delivered` at
//! the first attempt), and a Slack Web API answer echoing a long message is
//! read whole.

use kube_notify::crd::{DeliveryPhase, EventPhase};
use serde_json::json;

use crate::support::operator::{World, assert_no_secret, captured_logs};
use crate::support::services::{BodyFault, RequestMatcher, ScriptedResponse};

/// The odd ways a 2xx body can go, each tried against its own destination.
const FAULTS: [BodyFault; 3] = [BodyFault::Huge(1 << 20), BodyFault::Stall, BodyFault::Drop];

fn event_to(integration: &str, message: &str) -> serde_json::Value {
    json!({"integrationRef": {"name": integration}, "title": "Deploy", "message": message, "severity": "info"})
}

/// Create one event per integration, then check each is `Delivered` at the first attempt.
async fn deliver_once_each(w: &World, integrations: &[String]) {
    for name in integrations {
        w.wait_condition(name, "Ready", "True", None).await;
        w.create_event(&format!("to-{name}"), event_to(name, "rolled out")).await;
    }
    for name in integrations {
        let ev = w.wait_event_phase(&format!("to-{name}"), EventPhase::Delivered).await;
        let d = &ev.status.unwrap().deliveries[0];
        assert_eq!((d.phase, d.attempts), (DeliveryPhase::Delivered, 1), "{name}: {d:?}");
    }
}

/// The integration counted one delivery and no error.
async fn assert_not_in_error(w: &World, name: &str, delivered: i64) {
    let ni = w
        .wait_integration(name, &format!("totalDelivered {delivered}"), |ni| {
            ni.status.as_ref().is_some_and(|s| s.total_delivered == delivered)
        })
        .await;
    let s = ni.status.unwrap();
    assert_eq!((s.consecutive_errors, s.total_errors), (0, 0), "{name}");
    assert!(s.last_error.is_none(), "{name}: {:?}", s.last_error);
}

#[tokio::test]
async fn webhook_odd_2xx_answers_are_one_delivery() {
    let w = World::start().await;
    let mut names = Vec::new();
    for (i, fault) in FAULTS.into_iter().enumerate() {
        let path = format!("/hooks/odd-{i}");
        let url = w.webhook.add_endpoint(&path);
        w.webhook.push_response(RequestMatcher::path(&path), ScriptedResponse::passthrough_with(fault));
        let name = format!("hook-{i}");
        w.put_secret(&name, &[("webhookUrl", &url)]).await;
        w.create_integration(&name, json!({"service": "webhook", "secretRef": {"name": name}})).await;
        names.push(name);
    }
    deliver_once_each(&w, &names).await;
    for (i, name) in names.iter().enumerate() {
        let path = format!("/hooks/odd-{i}");
        let posts = w.webhook.requests().iter().filter(|r| r.path == path).count();
        assert_eq!(posts, 1, "{:?}: the receiver got {posts} posts", FAULTS[i]);
        assert_not_in_error(&w, name, 1).await;
    }
    assert_eq!(w.webhook.messages().len(), 3);
    assert_eq!(w.webhook.pending_responses(), 0, "every fault was used");
}

#[tokio::test]
async fn teams_odd_202_answers_are_one_delivery() {
    let w = World::start().await;
    let mut names = Vec::new();
    let mut flows = Vec::new();
    for (i, fault) in FAULTS.into_iter().enumerate() {
        let flow = w.teams.add_workflow();
        w.teams.push_response(RequestMatcher::url(&flow), ScriptedResponse::passthrough_with(fault));
        let name = format!("teams-{i}");
        w.put_secret(&name, &[("webhookUrl", &flow)]).await;
        w.create_integration(&name, json!({"service": "msteams", "secretRef": {"name": name}})).await;
        names.push(name);
        flows.push(flow);
    }
    deliver_once_each(&w, &names).await;
    for (i, name) in names.iter().enumerate() {
        let path = crate::support::services::script::path_of_url(&flows[i]);
        let posts: Vec<_> = w.teams.requests().into_iter().filter(|r| r.path == path).collect();
        assert_eq!(posts.len(), 1, "{:?}: the workflow got {} posts", FAULTS[i], posts.len());
        assert_eq!(posts[0].status, Some(202));
        assert_not_in_error(&w, name, 1).await;
    }
    assert_eq!(w.teams.messages().len(), 3);
    assert_eq!(w.teams.pending_responses(), 0, "every fault was used");
    assert_no_secret(&captured_logs(), &flows.iter().map(String::as_str).collect::<Vec<_>>(), "the logs");
}

#[tokio::test]
async fn chatwork_odd_200_answers_are_one_delivery() {
    let w = World::start().await;
    let token = "cw-odd-answers-token";
    w.chatwork.add_token(token, 7, "bot");
    let mut names = Vec::new();
    for (i, fault) in FAULTS.into_iter().enumerate() {
        let room = 100 + i as u64;
        w.chatwork.add_room(room, &format!("room {i}"));
        w.chatwork.set_role(room, token, "member");
        w.chatwork.push_response(
            RequestMatcher::path_suffix(format!("/rooms/{room}/messages")).method("POST"),
            ScriptedResponse::passthrough_with(fault),
        );
        let name = format!("cw-{i}");
        w.put_secret(&name, &[("token", token)]).await;
        w.create_integration(
            &name,
            json!({"service": "chatwork", "secretRef": {"name": name}, "chatwork": {"roomId": room.to_string()}}),
        )
        .await;
        names.push(name);
    }
    deliver_once_each(&w, &names).await;
    for (i, name) in names.iter().enumerate() {
        let suffix = format!("/rooms/{}/messages", 100 + i);
        let posts = w.chatwork.requests().iter().filter(|r| r.method == "POST" && r.path.ends_with(&suffix)).count();
        assert_eq!(posts, 1, "{:?}: the room got {posts} posts", FAULTS[i]);
        assert_not_in_error(&w, name, 1).await;
    }
    assert_eq!(w.chatwork.messages().len(), 3);
    assert_eq!(w.chatwork.pending_responses(), 0, "every fault was used");
}

/// A 200 from an incoming webhook is a delivery whatever its body read does.
#[tokio::test]
async fn slack_webhook_odd_200_answers_are_one_delivery() {
    let w = World::start().await;
    let mut names = Vec::new();
    let mut hooks = Vec::new();
    for i in 0..FAULTS.len() {
        let url = w.slack.add_webhook("T1", &format!("Bodd{i}"));
        let name = format!("slack-{i}");
        w.put_secret(&name, &[("webhookUrl", &url)]).await;
        w.create_integration(&name, json!({"service": "slack", "secretRef": {"name": name}})).await;
        names.push(name);
        hooks.push(url);
    }
    // After the validation probes, which go to the same URLs.
    for (name, (url, fault)) in names.iter().zip(hooks.iter().zip(FAULTS)) {
        w.wait_condition(name, "Ready", "True", None).await;
        w.slack.push_response(RequestMatcher::url(url), ScriptedResponse::passthrough_with(fault));
    }
    deliver_once_each(&w, &names).await;
    assert_eq!(w.slack.messages().len(), 3, "one post per webhook");
    assert_eq!(w.slack.pending_responses(), 0, "every fault was used");
    for name in &names {
        assert_not_in_error(&w, name, 1).await;
    }
}

/// A 35,000-character message is echoed back in an answer well over 64 KiB:
/// one post, `Delivered`. So is a post whose echo stalls or is cut off once
/// it showed `{"ok":true`.
#[tokio::test]
async fn slack_bot_long_message_is_one_post() {
    let w = World::start().await;
    let token = "xoxb-1-2-longmessagetoken";
    w.slack.add_bot_token(token);
    w.slack.add_channel("C0LONG", "long", false, true);
    w.put_secret("bot", &[("token", token)]).await;
    w.create_integration(
        "bot",
        json!({"service": "slack", "secretRef": {"name": "bot"}, "slack": {"channel": "C0LONG"}}),
    )
    .await;
    w.wait_condition("bot", "Ready", "True", None).await;

    let line = "build step finished without warnings\n";
    let long: String = line.repeat(35_000 / line.len() + 1).chars().take(35_000).collect();
    w.create_event("long", event_to("bot", &long)).await;
    let ev = w.wait_event_phase("long", EventPhase::Delivered).await;
    let d = &ev.status.unwrap().deliveries[0];
    assert_eq!((d.phase, d.attempts), (DeliveryPhase::Delivered, 1), "{d:?}");
    let posts: Vec<_> = w.slack.requests().into_iter().filter(|r| r.path.ends_with("/chat.postMessage")).collect();
    assert_eq!(posts.len(), 1, "posted {} times", posts.len());
    assert!(posts[0].body.len() > 64 * 1024, "the echo of this post is over the old 64 KiB cut");
    let messages = w.slack.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].text.as_deref().unwrap().contains(&long[..1000]));
    assert_not_in_error(&w, "bot", 1).await;

    // The echo of a long message stops halfway: `ok` came first, that is enough.
    for (i, fault) in [BodyFault::Stall, BodyFault::Drop].into_iter().enumerate() {
        w.slack.push_response("/chat.postMessage", ScriptedResponse::passthrough_with(fault));
        let name = format!("half-{i}");
        w.create_event(&name, event_to("bot", &long)).await;
        let ev = w.wait_event_phase(&name, EventPhase::Delivered).await;
        assert_eq!(ev.status.unwrap().deliveries[0].attempts, 1, "{fault:?}");
        assert_eq!(w.slack.messages().len(), 2 + i, "{fault:?}: one post");
    }
    assert_not_in_error(&w, "bot", 3).await;
    assert_no_secret(&captured_logs(), &[token], "the logs");
}
