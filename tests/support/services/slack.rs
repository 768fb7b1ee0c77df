//! Slack: incoming webhooks under `/services/T…/B…/<secret>` and the Web API
//! under `/api/<method>` on the same server.
//!
//! Webhook: POST JSON (or form `payload=<json>`); 200 `ok` (text/plain);
//! errors are bare strings (`no_text`, `invalid_payload`, `invalid_blocks`,
//! `too_many_attachments`, dead codes set with `kill_webhook`); unknown path
//! 404 `no_service`; a known team/hook with the wrong secret 403
//! `invalid_token`; optional per-hook rate limit, 429 `rate_limited` with
//! `Retry-After`. `text` over 40,000 characters is truncated, not refused.
//!
//! Web API: HTTP 200 `{"ok":false,"error":…}` for errors, 429 `ratelimited`
//! with `Retry-After`; `auth.test`, `conversations.info`, `chat.postMessage`,
//! `users.lookupByEmail` (found, `users_not_found`, `missing_scope` without
//! `users:read.email`, optional per-token 429); unknown method 404
//! `unknown_method`. Each posted message records the users it mentions. `ok` comes
//! first in every answer; `chat.postMessage` echoes the posted message
//! (`message.text`, `message.blocks`), so a long message gets a long answer.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use super::ratelimit::{TokenBucket, retry_after_secs};
use super::recorder::RecordedRequest;
use super::script::path_of_url;
use super::server::{Emulator, Handled, Reply, Service};
use super::{random_alnum, unix_now};

/// Characters of `text` Slack keeps (webhook) or accepts (`chat.postMessage`).
pub const MAX_TEXT_CHARS: usize = 40_000;
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT_CHARS: usize = 3_000;
pub const MAX_ATTACHMENTS: usize = 100;

pub const TEAM_ID: &str = "T0EMULATED";
pub const TEAM_NAME: &str = "Emulated Workspace";

/// Scopes every bot token starts with.
pub const BOT_SCOPES: &[&str] = &["chat:write", "channels:read", "groups:read", "users:read", "users:read.email"];

pub type SlackEmulator = Emulator<Slack>;

/// Where a Slack message was posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlackVia {
    Webhook { team: String, hook: String },
    Api { channel: String },
}

/// A message Slack accepted.
#[derive(Clone, Debug)]
pub struct SlackMessage {
    pub via: SlackVia,
    /// `text` as stored (truncated to 40,000 characters for a webhook).
    pub text: Option<String>,
    pub blocks: Option<Value>,
    pub attachments: Option<Value>,
    /// The whole payload as sent (JSON object; form fields as strings).
    pub payload: Value,
    pub ts: String,
    /// The user ids mentioned (`<@U…>`) in the blocks' texts, in order.
    pub mentions: Vec<String>,
    /// The user ids mentioned in `text` (the notification), in order.
    pub text_mentions: Vec<String>,
}

/// The user ids of the `<@U…>` / `<@W…>` mentions in `text`, in order.
pub fn mentions_in(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"<@([UW][A-Z0-9]+)(\|[^>]*)?>").unwrap();
    re.captures_iter(text).map(|c| c[1].to_owned()).collect()
}

/// Every mrkdwn/plain `text` string of the blocks, depth first.
fn block_texts(blocks: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(b) = blocks {
        super::text_strings(b, &mut out);
    }
    out
}

fn block_mentions(blocks: Option<&Value>) -> Vec<String> {
    block_texts(blocks).iter().flat_map(|t| mentions_in(t)).collect()
}

impl SlackMessage {
    /// Channel id for a Web API post.
    pub fn channel(&self) -> Option<&str> {
        match &self.via {
            SlackVia::Api { channel } => Some(channel),
            SlackVia::Webhook { .. } => None,
        }
    }
}

struct Hook {
    secret: String,
    dead: Option<(u16, String)>,
}

struct BotToken {
    revoked: Option<String>,
    scopes: HashSet<String>,
    user_id: String,
    bot_id: String,
}

struct Channel {
    id: String,
    name: String,
    archived: bool,
    bot_is_member: bool,
}

#[derive(Default)]
struct State {
    hooks: HashMap<(String, String), Hook>,
    hook_rate: Option<(f64, u32)>,
    hook_buckets: HashMap<(String, String), TokenBucket>,
    tokens: HashMap<String, BotToken>,
    channels: Vec<Channel>,
    users: HashMap<String, String>,
    api_rate: Option<(f64, u32)>,
    api_buckets: HashMap<String, TokenBucket>,
    lookup_rate: Option<(f64, u32)>,
    lookup_buckets: HashMap<String, TokenBucket>,
    ts_counter: u64,
}

impl State {
    fn next_ts(&mut self) -> String {
        self.ts_counter += 1;
        format!("{}.{:06}", unix_now(), self.ts_counter % 1_000_000)
    }

    fn channel(&self, id_or_name: &str) -> Option<&Channel> {
        let name = id_or_name.trim_start_matches('#');
        self.channels.iter().find(|c| c.id == id_or_name).or_else(|| self.channels.iter().find(|c| c.name == name))
    }
}

/// The Slack service state. Set it up through `SlackEmulator` methods.
#[derive(Default)]
pub struct Slack {
    state: Mutex<State>,
}

/// HTTP status Slack uses for a webhook error code.
pub fn webhook_error_status(code: &str) -> u16 {
    match code {
        "no_service" | "no_active_hooks" | "channel_not_found" => 404,
        "channel_is_archived" => 410,
        "invalid_token" | "action_prohibited" | "posting_to_general_channel_denied" | "team_disabled" => 403,
        "rollup_error" => 500,
        _ => 400,
    }
}

fn split_hook_path(path: &str) -> Option<(String, String, String)> {
    let rest = path.strip_prefix("/services/")?;
    let mut parts = rest.split('/');
    let team = parts.next()?;
    let hook = parts.next()?;
    let secret = parts.next()?;
    if parts.next().is_some() || team.is_empty() || hook.is_empty() || secret.is_empty() {
        return None;
    }
    Some((team.to_owned(), hook.to_owned(), secret.to_owned()))
}

impl Emulator<Slack> {
    pub async fn start() -> Self {
        Self::launch(Slack::default()).await
    }

    /// Web API base, `{url}/api`.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url())
    }

    /// Registers a live webhook; returns its full URL
    /// `{url}/services/{team}/{hook}/{random secret}`.
    pub fn add_webhook(&self, team: &str, hook: &str) -> String {
        let secret = random_alnum(24);
        self.state().hooks.insert((team.to_owned(), hook.to_owned()), Hook { secret: secret.clone(), dead: None });
        format!("{}/services/{team}/{hook}/{secret}", self.url())
    }

    /// Makes a webhook answer its dead-destination error `code` with Slack's
    /// status for it (`no_service` 404, `invalid_token` 403,
    /// `channel_is_archived` 410, …).
    pub fn kill_webhook(&self, url: &str, code: &str) {
        self.kill_webhook_with_status(url, webhook_error_status(code), code);
    }

    /// Like `kill_webhook` with an explicit status (e.g. 400 `invalid_token`).
    pub fn kill_webhook_with_status(&self, url: &str, status: u16, code: &str) {
        let key = hook_key(url);
        let mut state = self.state();
        let hook = state.hooks.get_mut(&key).unwrap_or_else(|| panic!("kill_webhook: unknown webhook"));
        hook.dead = Some((status, code.to_owned()));
    }

    pub fn revive_webhook(&self, url: &str) {
        let key = hook_key(url);
        if let Some(hook) = self.state().hooks.get_mut(&key) {
            hook.dead = None;
        }
    }

    /// Enables the per-webhook rate limit (token bucket) answering 429
    /// `rate_limited` with `Retry-After`. Off by default.
    pub fn set_rate_limit(&self, per_sec: f64, burst: u32) {
        let mut state = self.state();
        state.hook_rate = Some((per_sec, burst));
        state.hook_buckets.clear();
    }

    pub fn clear_rate_limit(&self) {
        let mut state = self.state();
        state.hook_rate = None;
        state.hook_buckets.clear();
    }

    /// Per-channel limit on `chat.postMessage` (HTTP 429 `ratelimited`).
    pub fn set_api_rate_limit(&self, per_sec: f64, burst: u32) {
        let mut state = self.state();
        state.api_rate = Some((per_sec, burst));
        state.api_buckets.clear();
    }

    pub fn clear_api_rate_limit(&self) {
        let mut state = self.state();
        state.api_rate = None;
        state.api_buckets.clear();
    }

    /// Registers a valid bot token with [`BOT_SCOPES`]; returns its user id.
    pub fn add_bot_token(&self, token: &str) -> String {
        let mut state = self.state();
        let n = state.tokens.len() + 1;
        let user_id = format!("UBOT{n:05}");
        state.tokens.insert(
            token.to_owned(),
            BotToken {
                revoked: None,
                scopes: BOT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                user_id: user_id.clone(),
                bot_id: format!("BBOT{n:05}"),
            },
        );
        user_id
    }

    /// Makes every call with `token` fail with `code` (`token_revoked`,
    /// `invalid_auth`, `account_inactive`, `token_expired`, …).
    pub fn revoke_token(&self, token: &str, code: &str) {
        let mut state = self.state();
        let t = state.tokens.get_mut(token).unwrap_or_else(|| panic!("revoke_token: unknown token"));
        t.revoked = Some(code.to_owned());
    }

    /// Takes a scope away: methods needing it answer `missing_scope`.
    pub fn remove_scope(&self, token: &str, scope: &str) {
        if let Some(t) = self.state().tokens.get_mut(token) {
            t.scopes.remove(scope);
        }
    }

    pub fn add_channel(&self, id: &str, name: &str, archived: bool, bot_is_member: bool) {
        let mut state = self.state();
        state.channels.retain(|c| c.id != id);
        state.channels.push(Channel { id: id.to_owned(), name: name.to_owned(), archived, bot_is_member });
    }

    pub fn set_channel_archived(&self, id: &str, archived: bool) {
        if let Some(c) = self.state().channels.iter_mut().find(|c| c.id == id) {
            c.archived = archived;
        }
    }

    pub fn set_bot_membership(&self, id: &str, bot_is_member: bool) {
        if let Some(c) = self.state().channels.iter_mut().find(|c| c.id == id) {
            c.bot_is_member = bot_is_member;
        }
    }

    /// Deletes a channel: it becomes `channel_not_found`.
    pub fn remove_channel(&self, id: &str) {
        self.state().channels.retain(|c| c.id != id);
    }

    /// Per-token limit on `users.lookupByEmail` (HTTP 429 `ratelimited`
    /// with `Retry-After`), as Slack's tier 3 enforces it.
    pub fn set_lookup_rate_limit(&self, per_sec: f64, burst: u32) {
        let mut state = self.state();
        state.lookup_rate = Some((per_sec, burst));
        state.lookup_buckets.clear();
    }

    /// The `users.lookupByEmail` calls received so far (their `email` arguments), in order.
    pub fn lookups(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.path == "/api/users.lookupByEmail")
            .map(|r| r.query_pairs().into_iter().find(|(k, _)| k == "email").map(|(_, v)| v).unwrap_or_default())
            .collect()
    }

    /// Makes `users.lookupByEmail` find `user_id` for `email`.
    pub fn add_user(&self, email: &str, user_id: &str) {
        self.state().users.insert(email.to_ascii_lowercase(), user_id.to_owned());
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.service().state.lock().unwrap()
    }
}

fn hook_key(url: &str) -> (String, String) {
    let (team, hook, _) = split_hook_path(&path_of_url(url))
        .unwrap_or_else(|| panic!("not a Slack webhook URL (expected /services/T/B/secret)"));
    (team, hook)
}

impl Service for Slack {
    type Message = SlackMessage;

    fn handle(&self, request: &RecordedRequest) -> Handled<SlackMessage> {
        let mut state = self.state.lock().unwrap();
        if let Some(method) = request.path.strip_prefix("/api/") {
            api(&mut state, method, request)
        } else {
            webhook(&mut state, request)
        }
    }
}

// ---------------------------------------------------------------- messages

enum Problem {
    InvalidAttachments,
    TooManyAttachments,
    InvalidBlocks,
    NoText,
}

fn check_message(text: Option<&str>, blocks: Option<&Value>, attachments: Option<&Value>) -> Result<(), Problem> {
    let mut has_content = text.is_some_and(|t| !t.trim().is_empty());
    match attachments {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.len() > MAX_ATTACHMENTS => {
            return Err(Problem::TooManyAttachments);
        }
        Some(Value::Array(a)) => {
            if !a.iter().all(Value::is_object) {
                return Err(Problem::InvalidAttachments);
            }
            has_content |= !a.is_empty();
        }
        Some(_) => return Err(Problem::InvalidAttachments),
    }
    match blocks {
        None | Some(Value::Null) => {}
        Some(b) => {
            if !valid_blocks(b) {
                return Err(Problem::InvalidBlocks);
            }
            has_content |= b.as_array().is_some_and(|a| !a.is_empty());
        }
    }
    if has_content { Ok(()) } else { Err(Problem::NoText) }
}

/// Block Kit checks that matter to a notifier: at most 50 blocks, known block
/// types, section text 1..=3000 characters, header text 1..=150.
pub fn valid_blocks(blocks: &Value) -> bool {
    let Some(blocks) = blocks.as_array() else {
        return false;
    };
    blocks.len() <= MAX_BLOCKS && blocks.iter().all(valid_block)
}

fn valid_text(text: &Value, max: usize, plain_only: bool) -> bool {
    let kind = text.get("type").and_then(Value::as_str);
    let kind_ok = match kind {
        Some("plain_text") => true,
        Some("mrkdwn") => !plain_only,
        _ => false,
    };
    let len = text.get("text").and_then(Value::as_str).map(|t| t.chars().count());
    kind_ok && len.is_some_and(|n| (1..=max).contains(&n))
}

fn valid_elements(block: &Map<String, Value>, max: usize) -> bool {
    block.get("elements").and_then(Value::as_array).is_some_and(|e| {
        !e.is_empty() && e.len() <= max && e.iter().all(|x| x.get("type").and_then(Value::as_str).is_some())
    })
}

fn valid_block(block: &Value) -> bool {
    let Some(block) = block.as_object() else {
        return false;
    };
    if let Some(id) = block.get("block_id")
        && id.as_str().is_none_or(|s| s.chars().count() > 255)
    {
        return false;
    }
    match block.get("type").and_then(Value::as_str) {
        Some("section") => {
            let text = block.get("text").map(|t| valid_text(t, MAX_SECTION_TEXT_CHARS, false));
            let fields = block.get("fields").map(|f| {
                f.as_array()
                    .is_some_and(|f| !f.is_empty() && f.len() <= 10 && f.iter().all(|x| valid_text(x, 2000, false)))
            });
            match (text, fields) {
                (None, None) => false,
                (t, f) => t.unwrap_or(true) && f.unwrap_or(true),
            }
        }
        Some("header") => block.get("text").is_some_and(|t| valid_text(t, 150, true)),
        Some("context") => valid_elements(block, 10),
        Some("actions") => valid_elements(block, 25),
        Some("divider") => true,
        Some("image") => {
            (block.get("image_url").and_then(Value::as_str).is_some() || block.get("slack_file").is_some())
                && block.get("alt_text").and_then(Value::as_str).is_some()
        }
        Some("rich_text" | "markdown" | "file" | "video" | "input") => true,
        _ => false,
    }
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

// ----------------------------------------------------------------- webhook

fn webhook_error(code: &str) -> Reply {
    Reply::text(webhook_error_status(code), code)
}

fn webhook(state: &mut State, request: &RecordedRequest) -> Handled<SlackMessage> {
    let Some((team, hook_id, secret)) = split_hook_path(&request.path) else {
        return webhook_error("no_service").into();
    };
    let key = (team.clone(), hook_id.clone());
    let Some(hook) = state.hooks.get(&key) else {
        return webhook_error("no_service").into();
    };
    if hook.secret != secret {
        return webhook_error("invalid_token").into();
    }
    if let Some((status, code)) = &hook.dead {
        return Reply::text(*status, code).into();
    }
    if request.method != "POST" {
        return webhook_error("invalid_payload").into();
    }
    if let Some((rate, burst)) = state.hook_rate {
        let bucket = state.hook_buckets.entry(key).or_insert_with(|| TokenBucket::new(rate, burst));
        if let Err(wait) = bucket.try_take() {
            return Reply::text(429, "rate_limited").header("retry-after", &retry_after_secs(wait).to_string()).into();
        }
    }

    let payload = if request.content_type().as_deref() == Some("application/x-www-form-urlencoded") {
        request.form_param("payload").and_then(|p| serde_json::from_str::<Value>(&p).ok())
    } else {
        request.json()
    };
    let Some(Value::Object(payload)) = payload else {
        return webhook_error("invalid_payload").into();
    };
    let text = payload.get("text").and_then(Value::as_str);
    if let Err(problem) = check_message(text, payload.get("blocks"), payload.get("attachments")) {
        let code = match problem {
            Problem::InvalidAttachments => "invalid_payload",
            Problem::TooManyAttachments => "too_many_attachments",
            Problem::InvalidBlocks => "invalid_blocks",
            Problem::NoText => "no_text",
        };
        return webhook_error(code).into();
    }
    let message = SlackMessage {
        via: SlackVia::Webhook { team, hook: hook_id },
        mentions: block_mentions(payload.get("blocks")),
        text_mentions: text.map(mentions_in).unwrap_or_default(),
        text: text.map(|t| truncate_chars(t, MAX_TEXT_CHARS)),
        blocks: payload.get("blocks").cloned(),
        attachments: payload.get("attachments").cloned(),
        ts: state.next_ts(),
        payload: Value::Object(payload),
    };
    Handled::posted(Reply::text(200, "ok"), message)
}

// ----------------------------------------------------------------- Web API

fn api_ok(body: Value) -> Reply {
    api_reply(200, body)
}

/// A Web API answer written as Slack writes it: `ok` first (serde_json
/// itself sorts keys).
fn api_reply(status: u16, body: Value) -> Reply {
    let text = match body {
        Value::Object(mut map) => match map.remove("ok") {
            Some(ok) if map.is_empty() => format!(r#"{{"ok":{ok}}}"#),
            Some(ok) => format!(r#"{{"ok":{ok},{}"#, &Value::Object(map).to_string()[1..]),
            None => Value::Object(map).to_string(),
        },
        other => other.to_string(),
    };
    Reply::empty(status).header("content-type", "application/json; charset=utf-8").body(text)
}

fn api_error(code: &str) -> Reply {
    api_ok(json!({ "ok": false, "error": code }))
}

fn param_str(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A JSON-valued argument: JSON bodies carry it as is, forms and queries as a
/// JSON-encoded string. `Err` when the string is not JSON.
fn param_json(params: &Map<String, Value>, key: &str) -> Result<Option<Value>, ()> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
        Some(v) => Ok(Some(v.clone())),
    }
}

fn required_scope(method: &str) -> Option<&'static str> {
    match method {
        "chat.postMessage" => Some("chat:write"),
        "conversations.info" => Some("channels:read"),
        "users.lookupByEmail" => Some("users:read.email"),
        _ => None,
    }
}

fn api(state: &mut State, method: &str, request: &RecordedRequest) -> Handled<SlackMessage> {
    if !matches!(method, "auth.test" | "conversations.info" | "chat.postMessage" | "users.lookupByEmail") {
        return api_reply(404, json!({ "ok": false, "error": "unknown_method", "req_method": method })).into();
    }

    let mut params = Map::new();
    for (k, v) in request.query_pairs() {
        params.insert(k, Value::String(v));
    }
    let is_json = request.content_type().as_deref() == Some("application/json");
    if is_json {
        match request.json() {
            Some(Value::Object(body)) => params.extend(body),
            _ => return api_error("invalid_json").into(),
        }
    } else {
        for (k, v) in request.form() {
            params.insert(k, Value::String(v));
        }
    }

    let bearer = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    // Slack takes `token` as a form/query argument but never inside JSON.
    let token = bearer.or_else(|| if is_json { None } else { param_str(&params, "token").filter(|t| !t.is_empty()) });
    let Some(token) = token else {
        return api_error("not_authed").into();
    };
    let Some(bot) = state.tokens.get(&token) else {
        return api_error("invalid_auth").into();
    };
    if let Some(code) = &bot.revoked {
        return api_error(code).into();
    }
    if let Some(scope) = required_scope(method)
        && !bot.scopes.contains(scope)
    {
        let mut provided: Vec<&str> = bot.scopes.iter().map(String::as_str).collect();
        provided.sort_unstable();
        return api_ok(json!({
            "ok": false,
            "error": "missing_scope",
            "needed": scope,
            "provided": provided.join(","),
        }))
        .into();
    }
    let user_id = bot.user_id.clone();
    let bot_id = bot.bot_id.clone();

    match method {
        "auth.test" => api_ok(json!({
            "ok": true,
            "url": "https://emulated.slack.com/",
            "team": TEAM_NAME,
            "user": "kube-notify",
            "team_id": TEAM_ID,
            "user_id": user_id,
            "bot_id": bot_id,
            "is_enterprise_install": false,
        }))
        .into(),
        "conversations.info" => {
            let channel = param_str(&params, "channel").unwrap_or_default();
            match state.channel(&channel) {
                None => api_error("channel_not_found").into(),
                Some(c) => api_ok(json!({
                    "ok": true,
                    "channel": {
                        "id": c.id,
                        "name": c.name,
                        "name_normalized": c.name,
                        "is_channel": true,
                        "is_group": false,
                        "is_im": false,
                        "is_private": false,
                        "is_general": false,
                        "is_archived": c.archived,
                        "is_member": c.bot_is_member,
                        "created": 1_700_000_000,
                        "creator": "U0CREATOR",
                    }
                }))
                .into(),
            }
        }
        "users.lookupByEmail" => {
            if let Some((rate, burst)) = state.lookup_rate {
                let bucket = state.lookup_buckets.entry(token.clone()).or_insert_with(|| TokenBucket::new(rate, burst));
                if let Err(wait) = bucket.try_take() {
                    return api_reply(429, json!({ "ok": false, "error": "ratelimited" }))
                        .header("retry-after", &retry_after_secs(wait).to_string())
                        .into();
                }
            }
            let email = param_str(&params, "email").unwrap_or_default().to_ascii_lowercase();
            match state.users.get(&email) {
                None => api_error("users_not_found").into(),
                Some(id) => api_ok(json!({
                    "ok": true,
                    "user": {
                        "id": id,
                        "team_id": TEAM_ID,
                        "name": email.split('@').next().unwrap_or_default(),
                        "deleted": false,
                        "is_bot": false,
                        "profile": { "email": email },
                    }
                }))
                .into(),
            }
        }
        _ => post_message(state, &params, &user_id, &bot_id),
    }
}

fn post_message(state: &mut State, params: &Map<String, Value>, user_id: &str, bot_id: &str) -> Handled<SlackMessage> {
    let channel = param_str(params, "channel").unwrap_or_default();
    let channel_id = match state.channel(&channel) {
        None => return api_error("channel_not_found").into(),
        Some(c) if c.archived => return api_error("is_archived").into(),
        Some(c) if !c.bot_is_member => return api_error("not_in_channel").into(),
        Some(c) => c.id.clone(),
    };
    if let Some((rate, burst)) = state.api_rate {
        let bucket = state.api_buckets.entry(channel_id.clone()).or_insert_with(|| TokenBucket::new(rate, burst));
        if let Err(wait) = bucket.try_take() {
            return api_reply(429, json!({ "ok": false, "error": "ratelimited" }))
                .header("retry-after", &retry_after_secs(wait).to_string())
                .into();
        }
    }
    let text = param_str(params, "text");
    let Ok(blocks) = param_json(params, "blocks") else {
        return api_error("invalid_blocks").into();
    };
    let Ok(attachments) = param_json(params, "attachments") else {
        return api_error("invalid_attachments").into();
    };
    if let Err(problem) = check_message(text.as_deref(), blocks.as_ref(), attachments.as_ref()) {
        let code = match problem {
            Problem::InvalidAttachments => "invalid_attachments",
            Problem::TooManyAttachments => "too_many_attachments",
            Problem::InvalidBlocks => "invalid_blocks",
            Problem::NoText => "no_text",
        };
        return api_error(code).into();
    }
    if text.as_deref().is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
        return api_error("msg_too_long").into();
    }
    let ts = state.next_ts();
    // Slack echoes the message as stored: its text and blocks (each given a
    // `block_id`), so the answer is as large as the message.
    let mut echoed = json!({
        "user": user_id,
        "type": "message",
        "ts": ts,
        "bot_id": bot_id,
        "app_id": "A0EMULATED",
        "text": text.clone().unwrap_or_default(),
        "team": TEAM_ID,
        "bot_profile": {
            "id": bot_id, "app_id": "A0EMULATED", "name": "kube-notify", "deleted": false, "team_id": TEAM_ID,
            "icons": {"image_36": "https://emulated.slack.com/36.png", "image_48": "https://emulated.slack.com/48.png"},
        },
    });
    if let Some(b) = &blocks {
        let mut echoed_blocks = b.clone();
        if let Some(list) = echoed_blocks.as_array_mut() {
            for (i, block) in list.iter_mut().enumerate() {
                if let Some(block) = block.as_object_mut() {
                    block.entry("block_id").or_insert_with(|| Value::String(format!("b{i:04}")));
                }
            }
        }
        echoed["blocks"] = echoed_blocks;
    }
    let reply = api_ok(json!({
        "ok": true,
        "channel": channel_id,
        "ts": ts,
        "message": echoed,
    }));
    let mut payload = params.clone();
    payload.remove("token");
    let message = SlackMessage {
        via: SlackVia::Api { channel: channel_id },
        mentions: block_mentions(blocks.as_ref()),
        text_mentions: text.as_deref().map(mentions_in).unwrap_or_default(),
        text,
        blocks,
        attachments,
        payload: Value::Object(payload),
        ts,
    };
    Handled::posted(reply, message)
}
