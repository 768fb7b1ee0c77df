//! Checks the loopback chat-service emulators against
//! `shared/reference/chat-services.md`, with plain reqwest.

mod support;

use std::io::ErrorKind;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use support::services::chatwork::ROOM_RATE_LIMIT_ERROR;
use support::services::script::CUT_FILLER;
use support::services::webhook::{generate_secret, sign};
use support::services::{
    BodyFault, ChatworkEmulator, ChatworkLimits, RequestMatcher, ScriptedResponse, SlackEmulator, SlackVia,
    TeamsEmulator, WebhookEmulator,
};

const WAIT: Duration = Duration::from_secs(5);

fn client() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(10)).build().unwrap()
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

async fn text_of(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn json_of(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

// ------------------------------------------------------------ Slack webhook

async fn post_json(url: &str, body: &Value) -> (u16, String) {
    text_of(client().post(url).json(body).send().await.unwrap()).await
}

#[tokio::test]
async fn slack_webhook_posts_and_answers_ok() {
    let slack = SlackEmulator::start().await;
    let hook = slack.add_webhook("T0001", "B0001");
    let prefix = format!("{}/services/T0001/B0001/", slack.url());
    assert!(hook.starts_with(&prefix), "{hook}");
    assert_eq!(hook[prefix.len()..].len(), 24);
    assert_ne!(hook, slack.add_webhook("T0001", "B0002"));

    let resp = client().post(&hook).json(&json!({"text": "hello & <world>"})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "content-type").unwrap().starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "ok");

    let messages = slack.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text.as_deref(), Some("hello & <world>"));
    assert_eq!(messages[0].via, SlackVia::Webhook { team: "T0001".into(), hook: "B0001".into() });
    let requests = slack.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].status, Some(200));
    assert!(!requests[0].scripted);
    assert_eq!(requests[0].json().unwrap()["text"], "hello & <world>");

    // Blocks without text are fine, and so is the legacy form `payload=`.
    let blocks = json!({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]});
    assert_eq!(post_json(&hook, &blocks).await, (200, "ok".into()));
    let resp = client().post(&hook).form(&[("payload", r#"{"text":"from a form"}"#)]).send().await.unwrap();
    assert_eq!(text_of(resp).await, (200, "ok".into()));
    let messages = slack.messages();
    assert_eq!(messages.len(), 3);
    assert!(messages[1].blocks.is_some());
    assert_eq!(messages[2].text.as_deref(), Some("from a form"));
}

#[tokio::test]
async fn slack_webhook_probe_distinguishes_live_and_dead() {
    let slack = SlackEmulator::start().await;
    let hook = slack.add_webhook("T0001", "B0001");

    // A live webhook refuses an empty message and posts nothing.
    for empty in [json!({}), json!({"text": ""}), json!({"blocks": []})] {
        assert_eq!(post_json(&hook, &empty).await, (400, "no_text".into()));
    }
    assert!(slack.messages().is_empty());
    assert_eq!(slack.requests().len(), 3);

    let dead = [
        ("no_service", 404),
        ("no_active_hooks", 404),
        ("channel_not_found", 404),
        ("invalid_token", 403),
        ("channel_is_archived", 410),
        ("action_prohibited", 403),
        ("posting_to_general_channel_denied", 403),
        ("team_disabled", 403),
        ("no_team", 400),
    ];
    for (code, status) in dead {
        slack.kill_webhook(&hook, code);
        assert_eq!(post_json(&hook, &json!({})).await, (status, code.into()));
        assert_eq!(post_json(&hook, &json!({"text": "real"})).await, (status, code.into()));
    }
    slack.kill_webhook_with_status(&hook, 400, "invalid_token");
    assert_eq!(post_json(&hook, &json!({})).await, (400, "invalid_token".into()));
    assert!(slack.messages().is_empty());

    slack.revive_webhook(&hook);
    assert_eq!(post_json(&hook, &json!({})).await, (400, "no_text".into()));
    assert_eq!(post_json(&hook, &json!({"text": "back"})).await, (200, "ok".into()));
    assert_eq!(slack.messages().len(), 1);
}

#[tokio::test]
async fn slack_webhook_rejects_bad_payloads() {
    let slack = SlackEmulator::start().await;
    let hook = slack.add_webhook("T0001", "B0001");
    let c = client();

    let resp = c.post(&hook).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(text_of(resp).await, (400, "invalid_payload".into()));
    assert_eq!(post_json(&hook, &json!(["text"])).await, (400, "invalid_payload".into()));

    let section = |n: usize| json!({"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(n)}});
    let too_many: Vec<Value> = (0..51).map(|_| section(1)).collect();
    assert_eq!(post_json(&hook, &json!({"text": "t", "blocks": too_many})).await, (400, "invalid_blocks".into()));
    let fifty: Vec<Value> = (0..50).map(|_| section(1)).collect();
    assert_eq!(post_json(&hook, &json!({"text": "t", "blocks": fifty})).await, (200, "ok".into()));
    assert_eq!(
        post_json(&hook, &json!({"text": "t", "blocks": [section(3001)]})).await,
        (400, "invalid_blocks".into())
    );
    assert_eq!(post_json(&hook, &json!({"text": "t", "blocks": [section(3000)]})).await, (200, "ok".into()));
    assert_eq!(
        post_json(&hook, &json!({"text": "t", "blocks": [{"type": "bogus"}]})).await,
        (400, "invalid_blocks".into())
    );
    assert_eq!(post_json(&hook, &json!({"text": "t", "blocks": "nope"})).await, (400, "invalid_blocks".into()));
    let attachments: Vec<Value> = (0..101).map(|_| json!({"text": "a"})).collect();
    assert_eq!(
        post_json(&hook, &json!({"text": "t", "attachments": attachments})).await,
        (400, "too_many_attachments".into())
    );
    assert_eq!(slack.messages().len(), 2);

    // Long text is truncated by Slack, not refused.
    let long = "é".repeat(40_001);
    assert_eq!(post_json(&hook, &json!({"text": long})).await, (200, "ok".into()));
    let last = slack.messages().pop().unwrap();
    assert_eq!(last.text.unwrap().chars().count(), 40_000);

    let resp = c.get(&hook).send().await.unwrap();
    assert_eq!(text_of(resp).await, (400, "invalid_payload".into()));
}

#[tokio::test]
async fn slack_unknown_webhook_paths() {
    let slack = SlackEmulator::start().await;
    let hook = slack.add_webhook("T0001", "B0001");
    let base = slack.url();
    let wrong_secret = format!("{base}/services/T0001/B0001/notthesecret");
    assert_eq!(post_json(&wrong_secret, &json!({"text": "x"})).await, (403, "invalid_token".into()));
    for path in ["/services/T9999/B9999/whatever", "/services/T0001", "/elsewhere"] {
        assert_eq!(
            post_json(&format!("{base}{path}"), &json!({"text": "x"})).await,
            (404, "no_service".into()),
            "{path}"
        );
    }
    assert!(slack.messages().is_empty());
    assert_eq!(post_json(&hook, &json!({"text": "x"})).await, (200, "ok".into()));
}

#[tokio::test]
async fn slack_webhook_rate_limit() {
    let slack = SlackEmulator::start().await;
    let hook = slack.add_webhook("T0001", "B0001");
    let other = slack.add_webhook("T0001", "B0002");
    // Refill every 2 s: the third request within that time is refused.
    slack.set_rate_limit(0.5, 2);
    let c = client();
    for _ in 0..2 {
        let resp = c.post(&hook).json(&json!({"text": "x"})).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let resp = c.post(&hook).json(&json!({"text": "x"})).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(resp.text().await.unwrap(), "rate_limited");
    // Probes count too; other webhooks have their own bucket.
    assert_eq!(post_json(&hook, &json!({})).await.0, 429);
    assert_eq!(post_json(&other, &json!({"text": "x"})).await, (200, "ok".into()));
    assert_eq!(slack.messages().len(), 3);

    slack.clear_rate_limit();
    assert_eq!(post_json(&hook, &json!({"text": "x"})).await, (200, "ok".into()));
}

// ------------------------------------------------------------ Slack Web API

async fn slack_api(slack: &SlackEmulator, method: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = client().post(format!("{}/{method}", slack.api_url())).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    json_of(req.send().await.unwrap()).await
}

#[tokio::test]
async fn slack_auth_test() {
    let slack = SlackEmulator::start().await;
    let user = slack.add_bot_token("xoxb-good");
    let (status, body) = slack_api(&slack, "auth.test", Some("xoxb-good"), &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["user_id"], user.as_str());
    assert!(body["team"].is_string());
    assert!(body["team_id"].as_str().unwrap().starts_with('T'));

    let (status, body) = slack_api(&slack, "auth.test", Some("xoxb-unknown"), &json!({})).await;
    assert_eq!((status, body), (200, json!({"ok": false, "error": "invalid_auth"})));
    let (status, body) = slack_api(&slack, "auth.test", None, &json!({})).await;
    assert_eq!((status, body), (200, json!({"ok": false, "error": "not_authed"})));
    // A token inside a JSON body is not accepted; as a form field it is.
    let (_, body) = slack_api(&slack, "auth.test", None, &json!({"token": "xoxb-good"})).await;
    assert_eq!(body["error"], "not_authed");
    let resp =
        client().post(format!("{}/auth.test", slack.api_url())).form(&[("token", "xoxb-good")]).send().await.unwrap();
    assert_eq!(json_of(resp).await.1["ok"], true);

    for code in ["token_revoked", "account_inactive", "token_expired"] {
        slack.revoke_token("xoxb-good", code);
        let (status, body) = slack_api(&slack, "auth.test", Some("xoxb-good"), &json!({})).await;
        assert_eq!((status, body), (200, json!({"ok": false, "error": code})));
    }

    let (status, body) = slack_api(&slack, "nope.nothing", Some("xoxb-good"), &json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "unknown_method");
}

#[tokio::test]
async fn slack_conversations_info() {
    let slack = SlackEmulator::start().await;
    slack.add_bot_token("xoxb-t");
    slack.add_channel("C001", "alerts", false, true);
    slack.add_channel("C002", "old", true, false);
    let c = client();

    let resp = c
        .get(format!("{}/conversations.info?channel=C001", slack.api_url()))
        .bearer_auth("xoxb-t")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["channel"]["id"], "C001");
    assert_eq!(body["channel"]["name"], "alerts");
    assert_eq!(body["channel"]["is_archived"], false);
    assert_eq!(body["channel"]["is_member"], true);

    let resp = c
        .post(format!("{}/conversations.info", slack.api_url()))
        .bearer_auth("xoxb-t")
        .form(&[("channel", "C002")])
        .send()
        .await
        .unwrap();
    let (_, body) = json_of(resp).await;
    assert_eq!(body["channel"]["is_archived"], true);
    assert_eq!(body["channel"]["is_member"], false);

    let resp = c
        .get(format!("{}/conversations.info?channel=C404", slack.api_url()))
        .bearer_auth("xoxb-t")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(resp).await, (200, json!({"ok": false, "error": "channel_not_found"})));

    slack.remove_scope("xoxb-t", "channels:read");
    let resp = c
        .get(format!("{}/conversations.info?channel=C001", slack.api_url()))
        .bearer_auth("xoxb-t")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200);
    assert_eq!(body["error"], "missing_scope");
    assert_eq!(body["needed"], "channels:read");
}

#[tokio::test]
async fn slack_post_message() {
    let slack = SlackEmulator::start().await;
    slack.add_bot_token("xoxb-t");
    slack.add_channel("C001", "alerts", false, true);
    slack.add_channel("C002", "archived", true, true);
    slack.add_channel("C003", "outside", false, false);
    let tok = Some("xoxb-t");

    let (status, body) = slack_api(&slack, "chat.postMessage", tok, &json!({"channel": "C001", "text": "hi"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["channel"], "C001");
    let ts = body["ts"].as_str().unwrap();
    assert!(ts.contains('.'), "{ts}");

    // Form body with blocks as a JSON string, channel by name.
    let resp = client()
        .post(format!("{}/chat.postMessage", slack.api_url()))
        .bearer_auth("xoxb-t")
        .form(&[
            ("channel", "#alerts"),
            ("text", "fallback"),
            ("blocks", r#"[{"type":"section","text":{"type":"mrkdwn","text":"*b*"}}]"#),
        ])
        .send()
        .await
        .unwrap();
    let (_, body) = json_of(resp).await;
    assert_eq!(body["ok"], true);
    assert_eq!(body["channel"], "C001");

    let cases = [
        (json!({"channel": "C404", "text": "x"}), "channel_not_found"),
        (json!({"text": "x"}), "channel_not_found"),
        (json!({"channel": "C002", "text": "x"}), "is_archived"),
        (json!({"channel": "C003", "text": "x"}), "not_in_channel"),
        (json!({"channel": "C001"}), "no_text"),
        (json!({"channel": "C001", "text": ""}), "no_text"),
        (json!({"channel": "C001", "text": "x".repeat(40_001)}), "msg_too_long"),
        (
            json!({"channel": "C001", "text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y".repeat(3001)}}]}),
            "invalid_blocks",
        ),
    ];
    for (payload, code) in cases {
        let (status, body) = slack_api(&slack, "chat.postMessage", tok, &payload).await;
        assert_eq!((status, body), (200, json!({"ok": false, "error": code})), "{code}");
    }
    let (_, body) =
        slack_api(&slack, "chat.postMessage", tok, &json!({"channel": "C001", "text": "x".repeat(40_000)})).await;
    assert_eq!(body["ok"], true);

    let messages = slack.messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].channel(), Some("C001"));
    assert_eq!(messages[0].text.as_deref(), Some("hi"));
    assert_eq!(messages[0].ts, ts);
    assert_eq!(messages[1].blocks.as_ref().unwrap()[0]["type"], "section");

    slack.revoke_token("xoxb-t", "token_revoked");
    let (_, body) = slack_api(&slack, "chat.postMessage", tok, &json!({"channel": "C001", "text": "x"})).await;
    assert_eq!(body["error"], "token_revoked");
}

/// The answer to a long post echoes it whole, `ok` first, as Slack's does.
#[tokio::test]
async fn slack_post_message_echoes_a_long_message() {
    let slack = SlackEmulator::start().await;
    slack.add_bot_token("xoxb-t");
    slack.add_channel("C001", "alerts", false, true);
    let text = "z".repeat(35_000);
    let blocks: Vec<Value> = (0..12)
        .map(|i| json!({"type": "section", "text": {"type": "mrkdwn", "text": text[i * 2_900..(i + 1) * 2_900]}}))
        .collect();
    let resp = client()
        .post(format!("{}/chat.postMessage", slack.api_url()))
        .bearer_auth("xoxb-t")
        .json(&json!({"channel": "C001", "text": text, "blocks": blocks}))
        .send()
        .await
        .unwrap();
    let (status, raw) = text_of(resp).await;
    assert_eq!(status, 200);
    assert!(raw.starts_with(r#"{"ok":true,"#), "{}", &raw[..40]);
    assert!(raw.len() > 64 * 1024, "{} bytes", raw.len());
    let body: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body["message"]["text"], text.as_str());
    let echoed = body["message"]["blocks"].as_array().unwrap();
    assert_eq!(echoed.len(), 12);
    assert_eq!(echoed[0]["text"]["text"], blocks[0]["text"]["text"]);
    assert!(echoed[0]["block_id"].is_string());
    assert_eq!(slack.messages().len(), 1);
    // Errors too put `ok` first.
    let resp = client().post(format!("{}/chat.postMessage", slack.api_url())).send().await.unwrap();
    assert_eq!(text_of(resp).await, (200, r#"{"ok":false,"error":"not_authed"}"#.to_string()));
}

#[tokio::test]
async fn slack_post_message_rate_limit_and_user_lookup() {
    let slack = SlackEmulator::start().await;
    slack.add_bot_token("xoxb-t");
    slack.add_channel("C001", "alerts", false, true);
    slack.add_channel("C002", "other", false, true);
    slack.set_api_rate_limit(0.5, 1);
    let tok = Some("xoxb-t");
    let msg = |ch: &str| json!({"channel": ch, "text": "x"});

    assert_eq!(slack_api(&slack, "chat.postMessage", tok, &msg("C001")).await.1["ok"], true);
    let resp = client()
        .post(format!("{}/chat.postMessage", slack.api_url()))
        .bearer_auth("xoxb-t")
        .json(&msg("C001"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry));
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"ok": false, "error": "ratelimited"}));
    assert_eq!(slack_api(&slack, "chat.postMessage", tok, &msg("C002")).await.1["ok"], true);
    assert_eq!(slack.messages().len(), 2);

    slack.add_user("Ana@Example.com", "U0ANA");
    let lookup = |email: &str| {
        client().get(format!("{}/users.lookupByEmail?email={email}", slack.api_url())).bearer_auth("xoxb-t").send()
    };
    let (_, body) = json_of(lookup("ana@example.com").await.unwrap()).await;
    assert_eq!(body["user"]["id"], "U0ANA");
    let (_, body) = json_of(lookup("bob@example.com").await.unwrap()).await;
    assert_eq!(body, json!({"ok": false, "error": "users_not_found"}));
    slack.remove_scope("xoxb-t", "users:read.email");
    let (_, body) = json_of(lookup("ana@example.com").await.unwrap()).await;
    assert_eq!(body["error"], "missing_scope");
}

// ------------------------------------------------------- scripted responses

#[tokio::test]
async fn scripted_429_with_retry_after_then_normal() {
    let slack = SlackEmulator::start().await;
    let hook = slack.add_webhook("T0001", "B0001");
    slack.push_response(RequestMatcher::url(&hook), ScriptedResponse::text(429, "rate_limited").with_retry_after(7));
    assert_eq!(slack.pending_responses(), 1);
    let resp = client().post(&hook).json(&json!({"text": "x"})).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after").as_deref(), Some("7"));
    assert_eq!(post_json(&hook, &json!({"text": "x"})).await, (200, "ok".into()));

    let requests = slack.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].scripted);
    assert_eq!(requests[0].status, Some(429));
    assert!(!requests[1].scripted);
    assert_eq!(slack.messages().len(), 1);
    assert_eq!(slack.pending_responses(), 0);
}

#[tokio::test]
async fn scripted_struct_literal_html_5xx_and_matching_order() {
    let slack = SlackEmulator::start().await;
    slack.add_bot_token("xoxb-t");
    slack.add_channel("C001", "alerts", false, true);
    let api = slack.api_url();

    slack.push_response(
        RequestMatcher::path_suffix("/chat.postMessage").method("POST"),
        ScriptedResponse {
            status: 502,
            headers: vec![("content-type".into(), "text/html".into())],
            body: b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            delay: None,
            ..Default::default()
        },
    );
    slack.push_response(
        "/chat.postMessage",
        ScriptedResponse::json(200, &json!({"ok": false, "error": "internal_error"})),
    );

    // A request that matches no entry passes through untouched.
    let (_, body) = slack_api(&slack, "auth.test", Some("xoxb-t"), &json!({})).await;
    assert_eq!(body["ok"], true);
    assert_eq!(slack.pending_responses(), 2);
    // A GET does not match the POST-only entry but does match the second.
    let resp =
        client().get(format!("{api}/chat.postMessage?channel=C001&text=x")).bearer_auth("xoxb-t").send().await.unwrap();
    assert_eq!(json_of(resp).await.1["error"], "internal_error");

    let payload = json!({"channel": "C001", "text": "x"});
    let resp =
        client().post(format!("{api}/chat.postMessage")).bearer_auth("xoxb-t").json(&payload).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(header(&resp, "content-type").as_deref(), Some("text/html"));
    assert!(resp.text().await.unwrap().contains("Bad Gateway"));

    let (_, body) = slack_api(&slack, "chat.postMessage", Some("xoxb-t"), &payload).await;
    assert_eq!(body["ok"], true);
    assert_eq!(slack.messages().len(), 1);
    let statuses: Vec<_> = slack.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(200), Some(200), Some(502), Some(200)]);
}

#[tokio::test]
async fn scripted_delay_forces_client_timeout() {
    let slack = SlackEmulator::start().await;
    let hook = slack.add_webhook("T0001", "B0001");
    slack.push_response(
        RequestMatcher::url(&hook),
        ScriptedResponse::text(200, "ok").with_delay(Duration::from_secs(30)),
    );
    let quick = Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let err = quick.post(&hook).json(&json!({"text": "x"})).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let requests = slack.wait_for_requests(1, WAIT).await;
    assert!(requests[0].scripted);
    assert_eq!(requests[0].status, None);
    assert!(slack.messages().is_empty());

    // The next request is served normally, on a new connection.
    assert_eq!(post_json(&hook, &json!({"text": "x"})).await, (200, "ok".into()));

    // A delayed pass-through answers normally after the delay.
    slack.push_response(RequestMatcher::url(&hook), ScriptedResponse::delayed_passthrough(Duration::from_millis(200)));
    let started = Instant::now();
    assert_eq!(post_json(&hook, &json!({"text": "late"})).await, (200, "ok".into()));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(slack.messages().len(), 2);
    assert!(!slack.requests()[2].scripted);
}

/// The kind of the first `io::Error` in an error's source chain.
fn io_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = e.source();
    }
    None
}

#[tokio::test]
async fn scripted_close_and_reset_without_response() {
    let slack = SlackEmulator::start().await;
    let hook = slack.add_webhook("T0001", "B0001");
    slack.push_response(RequestMatcher::url(&hook), ScriptedResponse::close());
    slack.push_response(RequestMatcher::url(&hook), ScriptedResponse::reset());
    let c = client();

    let err = c.post(&hook).json(&json!({"text": "x"})).send().await.unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    assert_ne!(io_error_kind(&err), Some(ErrorKind::ConnectionReset));
    let err = c.post(&hook).json(&json!({"text": "x"})).send().await.unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    assert_eq!(io_error_kind(&err), Some(ErrorKind::ConnectionReset), "{err:?}");
    assert_eq!(post_json(&hook, &json!({"text": "x"})).await, (200, "ok".into()));

    let requests = slack.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].status, None);
    assert_eq!(requests[1].status, None);
    assert!(requests[0].scripted && requests[1].scripted);
    assert_eq!(slack.messages().len(), 1);
}

/// Body faults apply to the emulator's own answer (the post is recorded) or
/// to a scripted one; the head always announces the whole body.
#[tokio::test]
async fn body_faults_huge_stalled_and_dropped() {
    let hooks = WebhookEmulator::start().await;
    let url = hooks.add_endpoint("/hooks/a");
    let at = || RequestMatcher::path("/hooks/a");
    hooks.push_response(at(), ScriptedResponse::passthrough_with(BodyFault::Huge(1 << 20)));
    hooks.push_response(at(), ScriptedResponse::passthrough_with(BodyFault::Stall));
    hooks.push_response(at(), ScriptedResponse::passthrough_with(BodyFault::Drop));
    hooks.push_response(at(), ScriptedResponse::json(202, &json!({"id": "abcdef"})).with_body_fault(BodyFault::Drop));
    let c = client();

    let resp = c.post(&url).body("{}").send().await.unwrap();
    assert_eq!((resp.status(), resp.content_length()), (StatusCode::OK, Some(1 << 20)));
    assert_eq!(resp.bytes().await.unwrap().len(), 1 << 20);

    // Stalled: half the announced body, then nothing (the connection stays open).
    let mut resp = c.post(&url).body("{}").send().await.unwrap();
    assert_eq!((resp.status(), resp.content_length()), (StatusCode::OK, Some(CUT_FILLER as u64)));
    assert_eq!(resp.chunk().await.unwrap().unwrap().len(), CUT_FILLER / 2);
    assert!(tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await.is_err(), "the body stalls");
    drop(resp);

    // Dropped: half the announced body, then the connection closes.
    let mut resp = c.post(&url).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.chunk().await.unwrap().unwrap().len(), CUT_FILLER / 2);
    assert!(resp.chunk().await.is_err(), "the body is cut off");

    let mut resp = c.post(&url).body("{}").send().await.unwrap();
    assert_eq!((resp.status(), resp.content_length()), (StatusCode::ACCEPTED, Some(15)));
    assert_eq!(resp.chunk().await.unwrap().unwrap(), r#"{"id":""#);
    assert!(resp.chunk().await.is_err());

    assert_eq!(hooks.messages().len(), 3, "pass-throughs post, the scripted answer does not");
    assert_eq!(hooks.requests().iter().filter(|r| r.scripted).count(), 1);
    assert_eq!(hooks.pending_responses(), 0);
}

#[tokio::test]
async fn wait_for_messages_is_notified() {
    let slack = SlackEmulator::start().await;
    let hook = slack.add_webhook("T0001", "B0001");
    let sender = tokio::spawn(async move {
        for i in 0..3 {
            post_json(&hook, &json!({"text": format!("m{i}")})).await;
        }
    });
    let messages = slack.wait_for_messages(3, WAIT).await;
    let texts: Vec<_> = messages.iter().map(|m| m.text.clone().unwrap()).collect();
    assert_eq!(texts, ["m0", "m1", "m2"]);
    sender.await.unwrap();
    assert!(slack.try_wait_for_messages(4, Duration::from_millis(50)).await.is_none());
    slack.clear_records();
    assert!(slack.requests().is_empty() && slack.messages().is_empty());
}

// ----------------------------------------------------------------- Chatwork

fn cw_get(cw: &ChatworkEmulator, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    let req = client().get(format!("{}{path}", cw.api_url()));
    match token {
        Some(t) => req.header("x-chatworktoken", t),
        None => req,
    }
}

async fn cw_post(cw: &ChatworkEmulator, room: u64, token: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/rooms/{room}/messages", cw.api_url()))
        .header("x-chatworktoken", token)
        .form(form)
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

fn errors(message: &str) -> Value {
    json!({ "errors": [message] })
}

#[tokio::test]
async fn chatwork_me_and_rate_headers() {
    let cw = ChatworkEmulator::start().await;
    assert_eq!(cw.api_url(), format!("{}/v2", cw.url()));
    cw.add_token("tok", 1234, "Notifier Bot");

    let resp = cw_get(&cw, "/me", Some("tok")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-ratelimit-limit").as_deref(), Some("300"));
    assert_eq!(header(&resp, "x-ratelimit-remaining").as_deref(), Some("299"));
    let reset: u64 = header(&resp, "x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset >= now_unix() && reset <= now_unix() + 301, "{reset}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["account_id"], 1234);
    assert_eq!(body["name"], "Notifier Bot");

    for token in [None, Some("wrong")] {
        let resp = cw_get(&cw, "/me", token).send().await.unwrap();
        assert!(header(&resp, "x-ratelimit-remaining").is_some());
        assert_eq!(json_of(resp).await, (401, errors("Invalid API token")));
    }
    cw.revoke_token("tok");
    let resp = cw_get(&cw, "/me", Some("tok")).send().await.unwrap();
    assert_eq!(json_of(resp).await, (401, errors("Invalid API token")));
}

#[tokio::test]
async fn chatwork_room_access() {
    let cw = ChatworkEmulator::start().await;
    cw.add_token("tok", 1, "bot");
    cw.add_room(42, "ops");

    let resp = cw_get(&cw, "/rooms/42", Some("tok")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(json_of(resp).await.1["errors"][0].is_string());
    let resp = cw_get(&cw, "/rooms/7", Some("tok")).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    cw.set_role(42, "tok", "member");
    let resp = cw_get(&cw, "/rooms/42", Some("tok")).send().await.unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200);
    assert_eq!(body["room_id"], 42);
    assert_eq!(body["name"], "ops");
    assert_eq!(body["role"], "member");
    assert!(body["type"].is_string());

    cw.set_role(42, "tok", "readonly");
    let resp = cw_get(&cw, "/rooms/42", Some("tok")).send().await.unwrap();
    assert_eq!(json_of(resp).await.1["role"], "readonly");
    let (status, body) = cw_post(&cw, 42, "tok", &[("body", "hi")]).await;
    assert_eq!(status, 403);
    assert!(body["errors"][0].is_string());
    assert_eq!(cw_post(&cw, 7, "tok", &[("body", "hi")]).await.0, 404);
    assert!(cw.messages().is_empty());

    cw.set_role(42, "tok", "admin");
    assert_eq!(cw_post(&cw, 42, "tok", &[("body", "hi")]).await.0, 200);
    cw.remove_room(42);
    assert_eq!(cw_post(&cw, 42, "tok", &[("body", "hi")]).await.0, 404);
}

#[tokio::test]
async fn chatwork_post_message() {
    let cw = ChatworkEmulator::start().await;
    cw.add_token("tok", 99, "bot");
    cw.add_room(42, "ops");
    cw.set_role(42, "tok", "member");

    let text = "[info][title]Pod crashed[/title]web-1 OOMKilled[/info]";
    let (status, body) = cw_post(&cw, 42, "tok", &[("body", text), ("self_unread", "1")]).await;
    assert_eq!(status, 200);
    let id = body["message_id"].as_str().expect("message_id is a string");
    let messages = cw.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].message_id, id);
    assert_eq!(messages[0].room_id, 42);
    assert_eq!(messages[0].account_id, 99);
    assert_eq!(messages[0].body, text);
    assert!(messages[0].self_unread);
    let request = &cw.requests()[0];
    assert_eq!(request.form_param("body").as_deref(), Some(text));

    let max = "あ".repeat(65_535);
    assert_eq!(cw_post(&cw, 42, "tok", &[("body", &max)]).await.0, 200);
    let over = "a".repeat(65_536);
    for form in [
        vec![("body", "")],
        vec![("self_unread", "0")],
        vec![("body", over.as_str())],
        vec![("body", "x"), ("self_unread", "2")],
    ] {
        let (status, body) = cw_post(&cw, 42, "tok", &form).await;
        assert_eq!(status, 400);
        assert!(body["errors"][0].is_string());
    }
    // JSON is not what Chatwork reads.
    let resp = client()
        .post(format!("{}/rooms/42/messages", cw.api_url()))
        .header("x-chatworktoken", "tok")
        .json(&json!({"body": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(cw.messages().len(), 2);
}

#[tokio::test]
async fn chatwork_token_rate_limit() {
    let cw = ChatworkEmulator::start().await;
    cw.add_token("a", 1, "a");
    cw.add_token("b", 2, "b");
    cw.set_limits(ChatworkLimits {
        requests_per_token: 3,
        token_window: Duration::from_secs(120),
        ..ChatworkLimits::default()
    });
    for remaining in ["2", "1", "0"] {
        let resp = cw_get(&cw, "/me", Some("a")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(header(&resp, "x-ratelimit-remaining").as_deref(), Some(remaining));
    }
    let resp = cw_get(&cw, "/me", Some("a")).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").is_none());
    assert_eq!(header(&resp, "x-ratelimit-remaining").as_deref(), Some("0"));
    let reset: u64 = header(&resp, "x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset > now_unix() && reset <= now_unix() + 121);
    assert!(resp.json::<Value>().await.unwrap()["errors"][0].is_string());

    let resp = cw_get(&cw, "/me", Some("b")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn chatwork_room_post_rate_limit() {
    let cw = ChatworkEmulator::start().await;
    cw.add_token("tok", 1, "bot");
    cw.add_room(1, "one");
    cw.add_room(2, "two");
    cw.set_role(1, "tok", "member");
    cw.set_role(2, "tok", "member");
    let window = Duration::from_secs(1);
    cw.set_limits(ChatworkLimits { posts_per_room: 2, room_window: window, ..ChatworkLimits::default() });
    assert_eq!(cw_post(&cw, 1, "tok", &[("body", "1")]).await.0, 200);
    // The first post was counted before this instant.
    let first_counted = tokio::time::Instant::now();
    assert_eq!(cw_post(&cw, 1, "tok", &[("body", "2")]).await.0, 200);
    let resp = client()
        .post(format!("{}/rooms/1/messages", cw.api_url()))
        .header("x-chatworktoken", "tok")
        .form(&[("body", "3")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").is_none());
    assert!(header(&resp, "x-ratelimit-reset").is_some());
    assert_eq!(resp.json::<Value>().await.unwrap(), errors(ROOM_RATE_LIMIT_ERROR));
    assert_eq!(ROOM_RATE_LIMIT_ERROR, "Rate limit for message posting per room exceeded.");
    // Reads and other rooms are not affected.
    assert_eq!(cw_get(&cw, "/rooms/1", Some("tok")).send().await.unwrap().status(), 200);
    assert_eq!(cw_post(&cw, 2, "tok", &[("body", "x")]).await.0, 200);
    assert_eq!(cw.messages().len(), 3);

    // The limit is a sliding window: once the first post left it, there is
    // room for one more. (Waiting is the condition here, so this sleeps.)
    tokio::time::sleep_until(first_counted + window).await;
    assert_eq!(cw_post(&cw, 1, "tok", &[("body", "4")]).await.0, 200);
}

// -------------------------------------------------------------------- Teams

fn card(text: &str) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard",
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "version": "1.4",
                "body": [{"type": "TextBlock", "text": text, "wrap": true}]
            }
        }]
    })
}

async fn teams_post(url: &str, body: &Value) -> (u16, String) {
    text_of(client().post(url).json(body).send().await.unwrap()).await
}

fn teams_error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    assert!(v["error"]["message"].is_string(), "{body}");
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn teams_workflow_accepts_cards() {
    let teams = TeamsEmulator::start().await;
    let url = teams.add_workflow();
    let prefix = format!("{}/workflows/", teams.url());
    assert!(url.starts_with(&prefix), "{url}");
    assert!(
        url.contains("/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=")
    );

    let resp = client().post(&url).json(&card("Pod crashed")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(header(&resp, "x-ms-workflow-run-id").is_some());
    assert_eq!(resp.bytes().await.unwrap().len(), 0);
    let messages = teams.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].card()["type"], "AdaptiveCard");
    assert_eq!(messages[0].texts(), ["Pod crashed"]);

    let pp = teams.add_power_platform_workflow();
    assert!(pp.contains("/powerautomate/automations/direct/workflows/"));
    assert_eq!(teams_post(&pp, &card("x")).await, (202, String::new()));
    assert_eq!(teams.messages().len(), 2);
}

#[tokio::test]
async fn teams_workflow_errors() {
    let teams = TeamsEmulator::start().await;
    let url = teams.add_workflow();
    let (base, _) = url.split_once("&sig=").unwrap();

    let (status, body) = teams_post(&format!("{base}&sig=forged"), &card("x")).await;
    assert_eq!(status, 401);
    assert_eq!(teams_error_code(&body), "DirectApiInvalidAuthorizationSignature");
    let (status, body) = teams_post(base, &card("x")).await;
    assert_eq!(status, 401);
    assert_eq!(teams_error_code(&body), "DirectApiAuthorizationRequired");

    let bad_bodies = [
        json!({}),
        json!({"type": "message"}),
        json!({"type": "message", "attachments": []}),
        json!({"type": "message", "attachments": [{"contentType": "text/plain", "content": {"type": "AdaptiveCard"}}]}),
        json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": {"type": "MessageCard"}}]}),
        json!({"@type": "MessageCard", "text": "legacy connector payload"}),
    ];
    for body in bad_bodies {
        let (status, text) = teams_post(&url, &body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(teams_error_code(&text), "TriggerInputSchemaMismatch");
    }
    let resp = client().post(&url).header("content-type", "application/json").body("not json").send().await.unwrap();
    assert_eq!(teams_error_code(&text_of(resp).await.1), "TriggerInputSchemaMismatch");

    let (status, body) = teams_post(&url, &card(&"x".repeat(29 * 1024))).await;
    assert_eq!(status, 413);
    assert!(!teams_error_code(&body).is_empty());
    assert_eq!(teams_post(&url, &card(&"x".repeat(27 * 1024))).await.0, 202);

    teams.disable_workflow(&url);
    let (status, body) = teams_post(&url, &card("x")).await;
    assert_eq!(status, 400);
    assert_eq!(teams_error_code(&body), "WorkflowTriggerIsNotEnabled");
    teams.enable_workflow(&url);
    assert_eq!(teams_post(&url, &card("x")).await.0, 202);

    teams.delete_workflow(&url);
    let (status, body) = teams_post(&url, &card("x")).await;
    assert_eq!(status, 404);
    assert_eq!(teams_error_code(&body), "WorkflowNotFound");
    let unknown = format!(
        "{}/workflows/0123456789abcdef0123456789abcdef/triggers/manual/paths/invoke?api-version=2016-06-01&sig=x",
        teams.url()
    );
    let (status, body) = teams_post(&unknown, &card("x")).await;
    assert_eq!(status, 404);
    assert_eq!(teams_error_code(&body), "WorkflowNotFound");

    assert_eq!(teams.messages().len(), 2);
}

// ---------------------------------------------------------- generic webhook

async fn deliver(url: &str, headers: &[(&str, String)], body: &str) -> Response {
    let mut req = client().post(url).header("content-type", "application/json").body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.unwrap()
}

fn signed(secret: &str, id: &str, ts: i64, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sign(secret, id, ts, body.as_bytes())),
    ]
}

#[test]
fn standard_webhooks_signature_vector() {
    // The example from the Standard Webhooks specification.
    assert_eq!(
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[tokio::test]
async fn webhook_receiver_basics() {
    let hooks = WebhookEmulator::start().await;
    let a = hooks.add_endpoint("/hooks/a");
    assert_eq!(a, format!("{}/hooks/a", hooks.url()));

    let resp = deliver(&a, &[], r#"{"event":"x"}"#).await;
    assert_eq!(resp.status(), 200);
    let delivered = hooks.wait_for_messages(1, WAIT).await;
    assert_eq!(delivered[0].path, "/hooks/a");
    assert_eq!(delivered[0].json().unwrap()["event"], "x");

    hooks.set_success_status("/hooks/a", 204);
    assert_eq!(deliver(&a, &[], "{}").await.status(), 204);
    assert_eq!(hooks.messages().len(), 2);

    let missing = format!("{}/hooks/missing", hooks.url());
    assert_eq!(deliver(&missing, &[], "{}").await.status(), 404);
    assert_eq!(client().get(&a).send().await.unwrap().status(), 405);

    hooks.set_gone("/hooks/a");
    assert_eq!(deliver(&a, &[], "{}").await.status(), 410);
    assert_eq!(hooks.messages().len(), 2);
}

#[tokio::test]
async fn webhook_receiver_verifies_signatures() {
    let hooks = WebhookEmulator::start().await;
    let url = hooks.add_endpoint("/signed");
    let secret = generate_secret();
    assert!(secret.starts_with("whsec_"));
    hooks.set_signing_secret("/signed", &secret);
    let body = r#"{"kind":"PodCrashLooping"}"#;
    let now = now_unix() as i64;

    let resp = deliver(&url, &signed(&secret, "msg_1", now, body), body).await;
    assert_eq!(resp.status(), 200);

    // Wrong secret, tampered body, stale timestamp, missing headers.
    let other = generate_secret();
    let cases = [
        signed(&other, "msg_1", now, body),
        signed(&secret, "msg_1", now, r#"{"kind":"other"}"#),
        signed(&secret, "msg_1", now - 3600, body),
        vec![],
        signed(&secret, "msg_1", now, body)[..2].to_vec(),
    ];
    for headers in cases {
        assert_eq!(deliver(&url, &headers, body).await.status(), 401);
    }

    // Several signatures (key rotation): one valid is enough.
    let mut rotated = signed(&secret, "msg_1", now, body);
    rotated[2].1 = format!("{} {}", sign(&other, "msg_1", now, body.as_bytes()), rotated[2].1);
    assert_eq!(deliver(&url, &rotated, body).await.status(), 200);

    let messages = hooks.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].webhook_id.as_deref(), Some("msg_1"));
    assert_eq!(messages[0].timestamp, Some(now));
    assert_eq!(hooks.webhook_ids("/signed").len(), 6);
    assert!(hooks.webhook_ids("/signed").iter().all(|id| id == "msg_1"));
}

#[tokio::test]
async fn webhook_scripted_redirect_is_not_followed() {
    let hooks = WebhookEmulator::start().await;
    let a = hooks.add_endpoint("/a");
    let b = hooks.add_endpoint("/b");
    hooks.push_response(RequestMatcher::url(&a), ScriptedResponse::redirect(302, &b));
    hooks.push_response(RequestMatcher::url(&a), ScriptedResponse::status(503).with_retry_after(2));

    let resp = deliver(&a, &[], "{}").await;
    assert_eq!(resp.status(), 302);
    assert_eq!(header(&resp, "location").as_deref(), Some(b.as_str()));
    let resp = deliver(&a, &[], "{}").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(header(&resp, "retry-after").as_deref(), Some("2"));

    assert_eq!(deliver(&a, &[], "{}").await.status(), 200);
    let paths: Vec<_> = hooks.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/a", "/a", "/a"]);
    assert_eq!(hooks.messages().len(), 1);
}
