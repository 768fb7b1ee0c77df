//! Loopback emulators of the chat services kube-notify talks to, written from
//! `shared/reference/chat-services.md`. Each is its own HTTP server on
//! 127.0.0.1:0 with per-test state, a request recorder and a queue of
//! one-shot scripted responses (see [`server::Emulator`]).

pub mod chatwork;
pub mod ratelimit;
pub mod recorder;
pub mod script;
pub mod server;
pub mod slack;
pub mod teams;
pub mod webhook;

#[allow(unused_imports)]
pub use chatwork::{ChatworkEmulator, ChatworkLimits, ChatworkMessage};
#[allow(unused_imports)]
pub use recorder::RecordedRequest;
#[allow(unused_imports)]
pub use script::{BodyFault, RequestMatcher, ScriptAction, ScriptedResponse};
#[allow(unused_imports)]
pub use server::Emulator;
#[allow(unused_imports)]
pub use slack::{SlackEmulator, SlackMessage, SlackVia};
#[allow(unused_imports)]
pub use teams::{TeamsEmulator, TeamsMessage};
#[allow(unused_imports)]
pub use webhook::{WebhookDelivery, WebhookEmulator};

use rand::Rng;
use rand::distr::Alphanumeric;

/// A random ASCII alphanumeric string.
pub fn random_alnum(len: usize) -> String {
    rand::rng().sample_iter(Alphanumeric).take(len).map(char::from).collect()
}

/// Current Unix time in seconds.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// Every `text` string inside `v`, depth first (Slack blocks, Teams cards).
pub fn text_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match x {
                    Value::String(s) if k == "text" => out.push(s.clone()),
                    _ => text_strings(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| text_strings(x, out)),
        _ => {}
    }
}
