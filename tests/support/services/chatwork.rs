//! Chatwork API v2 under `/v2` (the operator's API URL is `{url}/v2`).
//!
//! Token in `x-chatworktoken`; form-encoded bodies; errors
//! `{"errors":["…"]}`: 401 `Invalid API token`, 403 no permission (no role
//! in the room, or `readonly` posting), 404 unknown room, 400 bad body,
//! 429 over a limit (no `Retry-After`). Every response carries
//! `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`.
//! `GET /rooms/{id}/members` lists the token accounts with a role and the
//! people added with `add_room_member`; each posted message records the
//! account ids it mentions (`[To:<id>]`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::ratelimit::{FixedWindow, SlidingWindow, WindowStatus};
use super::recorder::RecordedRequest;
use super::server::{Emulator, Handled, Reply, Service};

pub const MAX_BODY_CHARS: usize = 65_535;
pub const ROOM_RATE_LIMIT_ERROR: &str = "Rate limit for message posting per room exceeded.";
pub const INVALID_TOKEN_ERROR: &str = "Invalid API token";

pub type ChatworkEmulator = Emulator<Chatwork>;

/// Chatwork's limits; tests shrink them to exercise them quickly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatworkLimits {
    /// Requests per token per `token_window` (300 per 5 minutes).
    pub requests_per_token: u32,
    pub token_window: Duration,
    /// Message posts per room per `room_window` (10 per 10 seconds).
    pub posts_per_room: u32,
    pub room_window: Duration,
}

impl Default for ChatworkLimits {
    fn default() -> Self {
        Self {
            requests_per_token: 300,
            token_window: Duration::from_secs(300),
            posts_per_room: 10,
            room_window: Duration::from_secs(10),
        }
    }
}

/// A message Chatwork accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatworkMessage {
    pub room_id: u64,
    pub message_id: String,
    /// The poster (the token's account).
    pub account_id: u64,
    pub body: String,
    pub self_unread: bool,
    /// The account ids mentioned (`[To:<id>]`), in order.
    pub to: Vec<u64>,
}

/// The account ids of the `[To:<id>]` tags in `body`, in order.
pub fn mentions_in(body: &str) -> Vec<u64> {
    let re = regex::Regex::new(r"\[To:([0-9]+)\]").unwrap();
    re.captures_iter(body).filter_map(|c| c[1].parse().ok()).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Admin,
    Member,
    Readonly,
}

impl Role {
    fn parse(role: &str) -> Self {
        match role {
            "admin" => Self::Admin,
            "member" => Self::Member,
            "readonly" => Self::Readonly,
            other => panic!("unknown Chatwork role {other:?} (admin|member|readonly)"),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Readonly => "readonly",
        }
    }
}

struct Account {
    account_id: u64,
    name: String,
    revoked: bool,
}

struct Room {
    name: String,
    roles: HashMap<String, Role>,
    /// Members other than the token accounts: (account id, name, role).
    people: Vec<(u64, String, Role)>,
    message_count: u64,
    posts: SlidingWindow,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Account>,
    rooms: BTreeMap<u64, Room>,
    limits: ChatworkLimits,
    windows: HashMap<String, FixedWindow>,
    next_message_id: u64,
}

/// The Chatwork service state. Set it up through `ChatworkEmulator` methods.
#[derive(Default)]
pub struct Chatwork {
    state: Mutex<State>,
}

impl Emulator<Chatwork> {
    pub async fn start() -> Self {
        Self::launch(Chatwork::default()).await
    }

    /// API base to configure, `{url}/v2`.
    pub fn api_url(&self) -> String {
        format!("{}/v2", self.url())
    }

    pub fn add_token(&self, token: &str, account_id: u64, name: &str) {
        self.state().tokens.insert(token.to_owned(), Account { account_id, name: name.to_owned(), revoked: false });
    }

    /// The token answers 401 `Invalid API token` from now on.
    pub fn revoke_token(&self, token: &str) {
        if let Some(a) = self.state().tokens.get_mut(token) {
            a.revoked = true;
        }
    }

    pub fn add_room(&self, room_id: u64, name: &str) {
        self.state().rooms.insert(
            room_id,
            Room {
                name: name.to_owned(),
                roles: HashMap::new(),
                people: Vec::new(),
                message_count: 0,
                posts: SlidingWindow::default(),
            },
        );
    }

    /// Deletes a room: it answers 404 from now on.
    pub fn remove_room(&self, room_id: u64) {
        self.state().rooms.remove(&room_id);
    }

    /// Gives the token's account a role in the room: `admin`, `member` or
    /// `readonly` (cannot post). Without a role the room answers 403.
    pub fn set_role(&self, room_id: u64, token: &str, role: &str) {
        let role = Role::parse(role);
        let mut state = self.state();
        let room = state.rooms.get_mut(&room_id).unwrap_or_else(|| panic!("set_role: unknown room {room_id}"));
        room.roles.insert(token.to_owned(), role);
    }

    /// Adds a person (not a token's account) to the room's members.
    pub fn add_room_member(&self, room_id: u64, account_id: u64, name: &str) {
        let mut state = self.state();
        let room = state.rooms.get_mut(&room_id).unwrap_or_else(|| panic!("add_room_member: unknown room {room_id}"));
        room.people.retain(|(id, _, _)| *id != account_id);
        room.people.push((account_id, name.to_owned(), Role::Member));
    }

    /// Takes the token's account out of the room (403 from now on).
    pub fn remove_member(&self, room_id: u64, token: &str) {
        if let Some(room) = self.state().rooms.get_mut(&room_id) {
            room.roles.remove(token);
        }
    }

    /// Replaces the limits and forgets the counts so far.
    pub fn set_limits(&self, limits: ChatworkLimits) {
        let mut state = self.state();
        state.limits = limits;
        state.windows.clear();
        for room in state.rooms.values_mut() {
            room.posts = SlidingWindow::default();
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.service().state.lock().unwrap()
    }
}

fn errors(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({ "errors": [message] }))
}

fn rate_headers(w: &WindowStatus) -> Vec<(String, String)> {
    vec![
        ("x-ratelimit-limit".to_owned(), w.limit.to_string()),
        ("x-ratelimit-remaining".to_owned(), w.remaining.to_string()),
        ("x-ratelimit-reset".to_owned(), w.reset_unix.to_string()),
    ]
}

impl Service for Chatwork {
    type Message = ChatworkMessage;

    fn handle(&self, request: &RecordedRequest) -> Handled<ChatworkMessage> {
        let mut state = self.state.lock().unwrap();
        let token = request.header("x-chatworktoken").unwrap_or_default().to_owned();
        let limits = state.limits;
        let window =
            state.windows.entry(token.clone()).or_default().hit(limits.requests_per_token, limits.token_window);
        let headers = rate_headers(&window);
        let mut handled = route(&mut state, &token, window.allowed, request);
        handled.reply = handled.reply.headers(headers);
        handled
    }
}

fn route(state: &mut State, token: &str, within_limit: bool, request: &RecordedRequest) -> Handled<ChatworkMessage> {
    let account = match state.tokens.get(token) {
        Some(a) if !a.revoked => a,
        _ => return errors(401, INVALID_TOKEN_ERROR).into(),
    };
    if !within_limit {
        return errors(429, "Rate limit exceeded. Please wait until the reset time.").into();
    }
    let account_id = account.account_id;
    let name = account.name.clone();

    let Some(rest) = request.path.strip_prefix("/v2") else {
        return errors(404, "Not Found").into();
    };
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').skip(1).collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["me"]) => Reply::json(
            200,
            &json!({
                "account_id": account_id,
                "room_id": 1,
                "name": name,
                "chatwork_id": "",
                "organization_id": 0,
                "organization_name": "",
                "department": "",
                "title": "",
                "url": "",
                "introduction": "",
                "mail": "",
                "tel_organization": "",
                "tel_extension": "",
                "tel_mobile": "",
                "skype": "",
                "facebook": "",
                "twitter": "",
                "avatar_image_url": "",
                "login_mail": "",
            }),
        )
        .into(),
        ("GET", ["rooms"]) => {
            let rooms: Vec<Value> = state
                .rooms
                .iter()
                .filter_map(|(id, room)| room.roles.get(token).map(|r| room_json(*id, room, *r)))
                .collect();
            Reply::json(200, &Value::Array(rooms)).into()
        }
        ("GET", ["rooms", room_id]) => {
            let Some((id, room)) = room_id.parse::<u64>().ok().and_then(|id| state.rooms.get(&id).map(|r| (id, r)))
            else {
                return errors(404, "Room not found").into();
            };
            match room.roles.get(token) {
                None => errors(403, "You don't have permission to get this room").into(),
                Some(role) => Reply::json(200, &room_json(id, room, *role)).into(),
            }
        }
        ("GET", ["rooms", room_id, "members"]) => {
            let Some(room) = room_id.parse::<u64>().ok().and_then(|id| state.rooms.get(&id)) else {
                return errors(404, "Room not found").into();
            };
            if !room.roles.contains_key(token) {
                return errors(403, "You don't have permission to get this room").into();
            }
            let mut members: Vec<Value> = room
                .roles
                .iter()
                .filter_map(|(t, role)| state.tokens.get(t).map(|a| member_json(a.account_id, &a.name, *role)))
                .collect();
            members.extend(room.people.iter().map(|(id, name, role)| member_json(*id, name, *role)));
            Reply::json(200, &Value::Array(members)).into()
        }
        ("POST", ["rooms", room_id, "messages"]) => post_message(state, token, account_id, room_id, request),
        _ => errors(404, "Not Found").into(),
    }
}

fn member_json(account_id: u64, name: &str, role: Role) -> Value {
    json!({
        "account_id": account_id,
        "role": role.as_str(),
        "name": name,
        "chatwork_id": "",
        "organization_id": 0,
        "organization_name": "",
        "department": "",
        "avatar_image_url": "",
    })
}

fn room_json(id: u64, room: &Room, role: Role) -> Value {
    json!({
        "room_id": id,
        "name": room.name,
        "type": "group",
        "role": role.as_str(),
        "sticky": false,
        "unread_num": 0,
        "mention_num": 0,
        "mytask_num": 0,
        "message_num": room.message_count,
        "file_num": 0,
        "task_num": 0,
        "icon_path": "",
        "last_update_time": 0,
        "description": "",
    })
}

fn post_message(
    state: &mut State,
    token: &str,
    account_id: u64,
    room_id: &str,
    request: &RecordedRequest,
) -> Handled<ChatworkMessage> {
    let limits = state.limits;
    let Some((id, room)) = room_id.parse::<u64>().ok().and_then(|id| state.rooms.get_mut(&id).map(|r| (id, r))) else {
        return errors(404, "Room not found").into();
    };
    match room.roles.get(token) {
        None | Some(Role::Readonly) => {
            return errors(403, "You don't have permission to send messages in this room").into();
        }
        Some(_) => {}
    }
    let form = request.form();
    let body = form.iter().find(|(k, _)| k == "body").map(|(_, v)| v.clone()).unwrap_or_default();
    if body.is_empty() {
        return errors(400, "Parameter [body] is required").into();
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return errors(400, "Parameter [body] must be at most 65535 characters long").into();
    }
    let self_unread = match form.iter().find(|(k, _)| k == "self_unread") {
        None => false,
        Some((_, v)) if v == "0" => false,
        Some((_, v)) if v == "1" => true,
        Some(_) => return errors(400, "Invalid value for parameter [self_unread]").into(),
    };
    if room.posts.try_hit(limits.posts_per_room, limits.room_window).is_err() {
        return errors(429, ROOM_RATE_LIMIT_ERROR).into();
    }
    room.message_count += 1;
    state.next_message_id += 1;
    let message_id = format!("{}", 1_000_000_000 + state.next_message_id);
    let reply = Reply::json(200, &json!({ "message_id": message_id }));
    let to = mentions_in(&body);
    Handled::posted(reply, ChatworkMessage { room_id: id, message_id, account_id, body, self_unread, to })
}
