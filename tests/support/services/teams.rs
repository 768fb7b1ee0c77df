//! Microsoft Teams Workflows ("When a Teams webhook request is received").
//!
//! URLs `{url}/workflows/<id>/triggers/manual/paths/invoke?api-version=…&sp=…&sv=1.0&sig=…`
//! (Logic Apps shape) or `{url}/powerautomate/automations/direct/workflows/<id>/…`
//! (Power Platform shape). Success 202 with an empty body. Errors
//! `{"error":{"code","message"}}`: 404 `WorkflowNotFound`, 401 bad or
//! missing `sig`, 400 `WorkflowTriggerIsNotEnabled`, 400
//! `TriggerInputSchemaMismatch`, 413 body over ~28 KB.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::random_alnum;
use super::recorder::RecordedRequest;
use super::script::path_of_url;
use super::server::{Emulator, Handled, Reply, Service};

/// Largest accepted body: 28 KB.
pub const MAX_BODY_BYTES: usize = 28 * 1024;
pub const ADAPTIVE_CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

pub type TeamsEmulator = Emulator<Teams>;

/// A card Teams accepted (202).
#[derive(Clone, Debug)]
pub struct TeamsMessage {
    pub workflow_id: String,
    pub run_id: String,
    /// The whole body.
    pub payload: Value,
}

impl TeamsMessage {
    /// The Adaptive Cards (`attachments[].content`).
    pub fn cards(&self) -> Vec<&Value> {
        self.payload["attachments"].as_array().map(|a| a.iter().map(|x| &x["content"]).collect()).unwrap_or_default()
    }

    /// The first card.
    pub fn card(&self) -> &Value {
        &self.payload["attachments"][0]["content"]
    }

    /// The mentions of the first card (`msteams.entities` of type `mention`):
    /// `(text, mentioned id, mentioned name)`, each checked to appear in a
    /// TextBlock as Teams requires.
    pub fn mentions(&self) -> Vec<(String, String, String)> {
        let texts = self.texts();
        let entities = self.card()["msteams"]["entities"].as_array().cloned().unwrap_or_default();
        entities
            .iter()
            .filter(|e| e["type"] == "mention")
            .map(|e| {
                let text = e["text"].as_str().unwrap_or_default().to_owned();
                assert!(texts.iter().any(|t| t.contains(&text)), "mention {text:?} is in no TextBlock: {texts:?}");
                let id = e["mentioned"]["id"].as_str().unwrap_or_default().to_owned();
                let name = e["mentioned"]["name"].as_str().unwrap_or_default().to_owned();
                (text, id, name)
            })
            .collect()
    }

    /// Every `text` string in the cards, depth first: handy for assertions.
    pub fn texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for card in self.cards() {
            super::text_strings(card, &mut out);
        }
        out
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Enabled,
    Disabled,
    Deleted,
}

struct Workflow {
    sig: String,
    status: Status,
    power_platform: bool,
}

struct State {
    workflows: HashMap<String, Workflow>,
    max_body: usize,
    runs: u64,
}

/// The Teams service state. Set it up through `TeamsEmulator` methods.
pub struct Teams {
    state: Mutex<State>,
}

impl Default for Teams {
    fn default() -> Self {
        Self { state: Mutex::new(State { workflows: HashMap::new(), max_body: MAX_BODY_BYTES, runs: 0 }) }
    }
}

fn new_workflow_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The workflow id in a Workflows URL or path.
pub fn workflow_id_of(url: &str) -> Option<String> {
    let path = path_of_url(url);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["powerautomate", "automations", "direct", rest @ ..] => rest,
        rest => rest,
    };
    match rest {
        ["workflows", id, "triggers", "manual", "paths", "invoke"] => Some((*id).to_owned()),
        _ => None,
    }
}

impl Emulator<Teams> {
    pub async fn start() -> Self {
        Self::launch(Teams::default()).await
    }

    /// A new enabled workflow; returns its Logic Apps-shaped URL.
    pub fn add_workflow(&self) -> String {
        let (id, sig) = self.insert(false);
        format!(
            "{}/workflows/{id}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}",
            self.url()
        )
    }

    /// A new enabled workflow; returns its Power Platform-shaped URL.
    pub fn add_power_platform_workflow(&self) -> String {
        let (id, sig) = self.insert(true);
        format!(
            "{}/powerautomate/automations/direct/workflows/{id}/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}",
            self.url()
        )
    }

    /// The flow is turned off: 400 `WorkflowTriggerIsNotEnabled`.
    pub fn disable_workflow(&self, url: &str) {
        self.set_status(url, Status::Disabled);
    }

    pub fn enable_workflow(&self, url: &str) {
        self.set_status(url, Status::Enabled);
    }

    /// The flow is deleted: 404 `WorkflowNotFound`.
    pub fn delete_workflow(&self, url: &str) {
        self.set_status(url, Status::Deleted);
    }

    /// Overrides the 28 KB body limit.
    pub fn set_max_body_bytes(&self, max: usize) {
        self.service().state.lock().unwrap().max_body = max;
    }

    fn insert(&self, power_platform: bool) -> (String, String) {
        let id = new_workflow_id();
        let sig = random_alnum(43);
        self.service()
            .state
            .lock()
            .unwrap()
            .workflows
            .insert(id.clone(), Workflow { sig: sig.clone(), status: Status::Enabled, power_platform });
        (id, sig)
    }

    fn set_status(&self, url: &str, status: Status) {
        let id = workflow_id_of(url).unwrap_or_else(|| panic!("not a Workflows URL"));
        let mut state = self.service().state.lock().unwrap();
        let workflow = state.workflows.get_mut(&id).unwrap_or_else(|| panic!("unknown workflow {id}"));
        workflow.status = status;
    }
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, &json!({ "error": { "code": code, "message": message } }))
}

fn schema_problem(body: &[u8]) -> Option<String> {
    let Ok(payload) = serde_json::from_slice::<Value>(body) else {
        return Some("the body is not valid JSON".to_owned());
    };
    if payload.get("type").and_then(Value::as_str) != Some("message") {
        return Some("property 'type' must be 'message'".to_owned());
    }
    let Some(attachments) = payload.get("attachments").and_then(Value::as_array) else {
        return Some("required property 'attachments' is missing or not an array".to_owned());
    };
    if attachments.is_empty() {
        return Some("'attachments' must not be empty".to_owned());
    }
    for (i, a) in attachments.iter().enumerate() {
        if a.get("contentType").and_then(Value::as_str) != Some(ADAPTIVE_CARD_CONTENT_TYPE) {
            return Some(format!("attachments[{i}].contentType must be '{ADAPTIVE_CARD_CONTENT_TYPE}'"));
        }
        let content = a.get("content");
        if !content.is_some_and(Value::is_object) {
            return Some(format!("attachments[{i}].content must be an object"));
        }
        if content.and_then(|c| c.get("type")).and_then(Value::as_str) != Some("AdaptiveCard") {
            return Some(format!("attachments[{i}].content.type must be 'AdaptiveCard'"));
        }
    }
    None
}

impl Service for Teams {
    type Message = TeamsMessage;

    fn handle(&self, request: &RecordedRequest) -> Handled<TeamsMessage> {
        let mut state = self.state.lock().unwrap();
        let power_platform_path = request.path.starts_with("/powerautomate/");
        let Some(id) = workflow_id_of(&request.path) else {
            return error(404, "WorkflowNotFound", "The requested workflow could not be found.").into();
        };
        let not_found = error(404, "WorkflowNotFound", &format!("The workflow '{id}' could not be found."));
        let Some(workflow) = state.workflows.get(&id) else {
            return not_found.into();
        };
        if workflow.status == Status::Deleted || workflow.power_platform != power_platform_path {
            return not_found.into();
        }
        if request.query_param("api-version").is_none() {
            return error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
            .into();
        }
        match request.query_param("sig") {
            None => {
                return error(
                    401,
                    "DirectApiAuthorizationRequired",
                    "The request must be authenticated only by Shared Access scheme.",
                )
                .into();
            }
            Some(sig) if sig != workflow.sig => {
                return error(
                    401,
                    "DirectApiInvalidAuthorizationSignature",
                    "The provided authorization signature is invalid.",
                )
                .into();
            }
            Some(_) => {}
        }
        if workflow.status == Status::Disabled {
            return error(
                400,
                "WorkflowTriggerIsNotEnabled",
                &format!("Could not invoke workflow '{id}': its trigger 'manual' is not enabled."),
            )
            .into();
        }
        if request.method != "POST" {
            return error(
                405,
                "TriggerRequestMethodNotValid",
                &format!(
                    "The HTTP method for this request is not valid: expected 'POST' and actual '{}'.",
                    request.method
                ),
            )
            .into();
        }
        if request.body.len() > state.max_body {
            return error(
                413,
                "RequestEntityTooLarge",
                &format!(
                    "The request content length {} exceeds the limit of {} bytes.",
                    request.body.len(),
                    state.max_body
                ),
            )
            .into();
        }
        if let Some(problem) = schema_problem(&request.body) {
            return error(
                400,
                "TriggerInputSchemaMismatch",
                &format!(
                    "The input body for trigger 'manual' of type 'Request' did not match its schema definition. Error details: '{problem}'."
                ),
            )
            .into();
        }
        state.runs += 1;
        let run_id = format!("08584{:016}CU00", state.runs);
        let reply =
            Reply::empty(202).header("x-ms-workflow-run-id", &run_id).header("x-ms-request-id", &random_alnum(16));
        let payload = serde_json::from_slice(&request.body).unwrap_or_default();
        Handled::posted(reply, TeamsMessage { workflow_id: id, run_id, payload })
    }
}
