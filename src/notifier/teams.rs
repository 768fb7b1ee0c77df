//! Microsoft Teams through a Workflows webhook ("When a Teams webhook request
//! is received"). The `sig` query parameter is the credential.

use futures::FutureExt;
use futures::future::BoxFuture;
use http::StatusCode;

use std::time::Duration;

use super::classify::{self, Failure, Verdict, reason, snippet};
use super::http::{HttpClient, HttpResponse, Method};
use super::render::{self, Message};
use super::slack::scrub_verdict;
use super::{Notifier, fingerprint, mentions, quota};
use crate::crd::Service;
use crate::redact::SecretUrl;

const SERVICE: &str = "Teams";

/// Classify a Workflows response: only 2xx is success (202 Accepted, not yet
/// posted), whatever its body and however its read ended; errors are
/// `{"error":{"code","message"}}`.
pub fn classify_teams_response(response: &HttpResponse) -> Verdict {
    let status = response.status;
    if status.is_success() {
        return Verdict::Success;
    }
    if let Some(v) = classify::classify_common(status, &response.headers, SERVICE) {
        return v;
    }
    let code = serde_json::from_str::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v.pointer("/error/code").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_default();
    match (status, code.as_str()) {
        (_, "WorkflowTriggerIsNotEnabled") => Verdict::Dead(Failure::new(
            reason::DESTINATION_NOT_FOUND,
            "the Teams workflow is switched off or deleted (WorkflowTriggerIsNotEnabled)",
        )),
        (StatusCode::NOT_FOUND, _) => Verdict::Dead(Failure::new(
            reason::DESTINATION_NOT_FOUND,
            "the Teams workflow does not exist (WorkflowNotFound)",
        )),
        (StatusCode::UNAUTHORIZED, _) => {
            Verdict::Dead(Failure::new(reason::UNAUTHORIZED, "Teams refused the workflow signature (sig)"))
        }
        (StatusCode::FORBIDDEN, _) => {
            Verdict::Dead(Failure::new(reason::FORBIDDEN, "Teams refused the request (HTTP 403)"))
        }
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            Verdict::Rejected(Failure::new(reason::MESSAGE_REJECTED, "the Teams card is too large (HTTP 413)"))
        }
        _ => Verdict::Rejected(Failure::new(
            reason::MESSAGE_REJECTED,
            format!(
                "Teams rejected the message (HTTP {}{})",
                status.as_u16(),
                if code.is_empty() { format!(": {}", snippet(&response.body)) } else { format!(", {code}") }
            ),
        )),
    }
}

/// A Teams Workflows webhook.
pub struct TeamsWorkflow {
    url: SecretUrl,
}

impl TeamsWorkflow {
    pub fn new(url: SecretUrl) -> Self {
        TeamsWorkflow { url }
    }
}

impl Notifier for TeamsWorkflow {
    fn service(&self) -> Service {
        Service::Msteams
    }

    fn mention_directory(&self) -> mentions::Directory {
        mentions::Directory::Teams
    }

    /// No live probe: any request would run the flow and post. The URL's shape
    /// and `sig` were checked when the notifier was built.
    fn validate<'a>(&'a self, _http: &'a HttpClient) -> BoxFuture<'a, Verdict> {
        async { Verdict::Success }.boxed()
    }

    /// The URL's shape was checked when the notifier was built; nothing to ask.
    fn validation_calls_service(&self) -> bool {
        false
    }

    fn deliver<'a>(&'a self, http: &'a HttpClient, message: &'a Message) -> BoxFuture<'a, Verdict> {
        async move {
            let request = http.request(Method::POST, self.url.expose().as_str()).json(&render::teams::render(message));
            let verdict = match http.send(request, SERVICE).await {
                Ok(response) => classify_teams_response(&response),
                Err(v) => v,
            };
            scrub_verdict(verdict, &self.url.forms())
        }
        .boxed()
    }

    /// About four requests per second per workflow.
    fn rate_limits(&self) -> Vec<(String, governor::Quota)> {
        vec![(format!("teams:{}", fingerprint(self.url.expose().as_str())), quota(4, Duration::from_secs(1), 4))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifier::http::BodyRead;
    use http::HeaderMap;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse::complete(StatusCode::from_u16(status).unwrap(), HeaderMap::new(), body)
    }

    /// An answer whose body read ended as `read`, with `body` read of it.
    fn partial(status: u16, body: &str, read: BodyRead) -> HttpResponse {
        HttpResponse { body_read: read, ..resp(status, body) }
    }

    #[test]
    fn workflow_errors() {
        assert_eq!(classify_teams_response(&resp(202, "")), Verdict::Success);
        let off = r#"{"error":{"code":"WorkflowTriggerIsNotEnabled","message":"x"}}"#;
        assert!(matches!(classify_teams_response(&resp(400, off)), Verdict::Dead(_)));
        let nf = r#"{"error":{"code":"WorkflowNotFound","message":"x"}}"#;
        assert!(matches!(classify_teams_response(&resp(404, nf)), Verdict::Dead(_)));
        assert!(matches!(classify_teams_response(&resp(401, "")), Verdict::Dead(_)));
        let schema = r#"{"error":{"code":"TriggerInputSchemaMismatch","message":"x"}}"#;
        assert!(matches!(classify_teams_response(&resp(400, schema)), Verdict::Rejected(_)));
        assert!(matches!(classify_teams_response(&resp(413, "")), Verdict::Rejected(_)));
        assert!(matches!(classify_teams_response(&resp(429, "")), Verdict::Transient { .. }));
        assert!(matches!(classify_teams_response(&resp(502, "")), Verdict::Transient { .. }));
    }

    /// 202 means accepted: a large, late or cut-off body changes nothing.
    #[test]
    fn an_accepted_post_stands_however_its_body_read_ended() {
        for read in [BodyRead::TooLarge, BodyRead::TimedOut, BodyRead::CutOff] {
            assert_eq!(classify_teams_response(&partial(202, "", read)), Verdict::Success, "{read:?}");
            assert_eq!(classify_teams_response(&partial(200, r#"{"id":"#, read)), Verdict::Success, "{read:?}");
        }
        let cut = partial(404, r#"{"error":{"code":"Workfl"#, BodyRead::CutOff);
        assert!(matches!(classify_teams_response(&cut), Verdict::Dead(_)), "the status still decides");
    }
}
