//! `kube-notify test NAME`: ask the operator for one test message to an
//! integration (a new value of its annotation `kube-notify.io/send-test`)
//! and wait for `status.testMessage` to answer that value. The operator
//! sends it, counts it and records it; this only asks and reads.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use super::api;
use super::report::{self, human};
use crate::crd::{NotificationIntegration, SEND_TEST_ANNOTATION, TestMessagePhase, TestMessageStatus};
use crate::exit::{Exit, Outcome, attempts};
use crate::server::ingest::body::is_dns_subdomain;
use crate::status::integration::reason as integration_reason;

/// The test message of `name` in `namespace` (else the kubeconfig context's).
pub async fn test(namespace: Option<String>, name: &str, wait: Duration) -> Outcome {
    if !is_dns_subdomain(name) {
        return Outcome::new(Exit::Invalid, format!("NAME: {name:?} is not an integration name"));
    }
    match api::connect(namespace).await {
        Ok((client, namespace)) => match test_with(client, &namespace, name, &request_value(), wait).await {
            Ok(o) | Err(o) => o,
        },
        Err(o) => o,
    }
}

/// A value no earlier request had: the time and a random suffix.
fn request_value() -> String {
    format!("{}-{:08x}", jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_default(), rand::random::<u32>())
}

/// [`test`] with a client: set the annotation to `request`, then follow.
pub async fn test_with(
    client: kube::Client,
    ns: &str,
    name: &str,
    request: &str,
    wait: Duration,
) -> Result<Outcome, Outcome> {
    let integrations: Api<NotificationIntegration> = Api::namespaced(client, ns);
    let patch = json!({"metadata": {"annotations": {SEND_TEST_ANNOTATION: request}}});
    match integrations.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(Outcome::new(
                Exit::NotFound,
                format!("no NotificationIntegration {name:?} in namespace {ns:?}"),
            ));
        }
        Err(kube::Error::Api(s)) => {
            return Err(report::of_api_status(s.code, &s.reason, &s.message, "asking for a test message"));
        }
        Err(e) => {
            return Err(Outcome::new(
                Exit::Error,
                format!("asking for a test message: the Kubernetes API could not be reached: {e}"),
            ));
        }
    }
    let follow = format!("kubectl get ni -n {ns} {name} -o jsonpath='{{.status.testMessage}}'");
    if wait.is_zero() {
        return Ok(Outcome::worded(
            Exit::Delivered,
            format!("requested: test message {request:?} to {ns}/{name} (not waiting for it: {follow})"),
        ));
    }
    // It existed when it was patched: absent now means deleted.
    let answered = |ni: Option<&NotificationIntegration>| ni.is_none_or(|ni| answer_to(ni, request).is_some());
    let done = match tokio::time::timeout(wait, await_condition(integrations, name, answered)).await {
        Ok(Ok(Some(ni))) => ni,
        Ok(Ok(None)) => return Err(Outcome::new(Exit::NotFound, format!("{ns}/{name} was deleted"))),
        Ok(Err(e)) => {
            return Err(api::watch_error(e, &format!("watching {ns}/{name} (the test was asked for: {follow})")));
        }
        Err(_) => {
            return Ok(Outcome::new(
                Exit::TimedOut,
                format!("test message {request:?} to {ns}/{name}: no answer within {}: {follow}", human(wait)),
            ));
        }
    };
    let test = answer_to(&done, request).expect("awaited");
    Ok(of_test(&format!("{ns}/{name}"), test))
}

/// The test message status answering `request`, once it is final.
fn answer_to<'a>(ni: &'a NotificationIntegration, request: &str) -> Option<&'a TestMessageStatus> {
    let test = ni.status.as_ref()?.test_message.as_ref()?;
    (test.request == request && test.phase != TestMessagePhase::Sending).then_some(test)
}

/// What a final test message status means, and its line.
pub fn of_test(id: &str, test: &TestMessageStatus) -> Outcome {
    let reason = test.reason.as_deref().unwrap_or("Unknown");
    let message = test.message.as_deref().unwrap_or_default();
    match test.phase {
        TestMessagePhase::Delivered | TestMessagePhase::Sending => {
            Outcome::new(Exit::Delivered, format!("test message to {id} ({})", attempts(test.attempts.into())))
        }
        TestMessagePhase::Skipped => {
            let exit = match reason {
                integration_reason::MANUAL | integration_reason::ERROR_THRESHOLD => Exit::Disabled,
                _ => Exit::NotReady,
            };
            Outcome::new(exit, format!("test message to {id} not sent ({reason}): {message}"))
        }
        TestMessagePhase::Failed => Outcome::new(
            report::of_failure(reason),
            format!("test message to {id} ({reason} after {}): {message}", attempts(test.attempts.into())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn test(phase: TestMessagePhase, reason: Option<&str>, message: &str, n: u32) -> TestMessageStatus {
        TestMessageStatus {
            request: "r".into(),
            phase,
            reason: reason.map(Into::into),
            message: Some(message.into()),
            attempts: n,
            time: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn each_answer_has_its_exit_code_and_line() {
        let cases = [
            (test(TestMessagePhase::Delivered, None, "ok", 1), 0, "delivered: test message to a/hook (1 attempt)"),
            (
                test(TestMessagePhase::Skipped, Some("Manual"), "nothing was sent: spec.disabled is true", 0),
                4,
                "disabled: test message to a/hook not sent (Manual): nothing was sent: spec.disabled is true",
            ),
            (
                test(TestMessagePhase::Skipped, Some("SecretNotFound"), "nothing was sent: no Secret", 0),
                5,
                "not ready: test message to a/hook not sent (SecretNotFound): nothing was sent: no Secret",
            ),
            (
                test(TestMessagePhase::Failed, Some("DestinationNotFound"), "the webhook answered 404", 1),
                7,
                "dead: test message to a/hook (DestinationNotFound after 1 attempt): the webhook answered 404",
            ),
            (test(TestMessagePhase::Failed, Some("MessageRejected"), "too long", 1), 6, ""),
            (test(TestMessagePhase::Failed, Some("Expired"), "deadline", 3), 8, ""),
            (test(TestMessagePhase::Failed, Some("Interrupted"), "stopped", 0), 9, ""),
            (test(TestMessagePhase::Failed, Some("ServiceUnavailable"), "503", 3), 9, ""),
        ];
        for (status, code, line) in cases {
            let o = of_test("a/hook", &status);
            assert_eq!(o.code(), code, "{status:?}");
            if !line.is_empty() {
                assert_eq!(o.line, line);
            }
        }
    }

    #[test]
    fn request_values_differ() {
        let (a, b) = (request_value(), request_value());
        assert_ne!(a, b);
        assert!(a.len() < crate::crd::TEST_REQUEST_MAX_CHARS, "{a}");
    }
}
