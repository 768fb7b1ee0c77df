//! `send --url`: through kube-notify's HTTP ingestion routes (the
//! operator's or standalone's). `POST /v1/namespaces/{ns}/events?wait=`
//! answers the final status (200) or the status so far (202); past the
//! server's wait, `GET /v1/namespaces/{ns}/events/{name}` is asked about
//! once a second (a remote HTTP API without watches) until the event is
//! finished or `--wait` runs out. The token is only ever sent, never shown.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::report::{self, Created};
use super::send::Request;
use crate::crd::NotificationEventStatus;
use crate::exit::{Exit, Outcome};

/// The longest `?wait=` asked for: the server's default `--send-timeout`
/// (a server with a shorter one refuses it, and is then asked without).
pub const SERVER_WAIT: Duration = Duration::from_secs(30);

/// The server's base URL from `--url`, which is printed in lines: only a
/// scheme, host, port and path (a token belongs in --token-file, where it is
/// never shown).
fn base_of(url: &url::Url) -> Result<String, Outcome> {
    let refuse = |what: &str| {
        Outcome::new(
            Exit::Invalid,
            format!(
                "--url: give the server's base URL without {what} (a token goes in --token-file or KUBE_NOTIFY_TOKEN)"
            ),
        )
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Outcome::new(Exit::Invalid, "--url: must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("a user or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// How often the event is read once the server's wait ran out.
pub const POLL: Duration = Duration::from_secs(1);

/// Post the event to `url` in `ns` and follow it for `wait`.
pub async fn send(url: &url::Url, token: Option<String>, ns: &str, request: &Request, wait: Duration) -> Outcome {
    let base = match base_of(url) {
        Ok(b) => b,
        Err(o) => return o,
    };
    let client = match reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => return Outcome::new(Exit::Error, format!("no HTTP client: {e}")),
    };
    let http = Http { client, base, token };
    match http.send(ns, request, wait).await {
        Ok(o) | Err(o) => o,
    }
}

struct Http {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Http {
    async fn send(&self, ns: &str, request: &Request, wait: Duration) -> Result<Outcome, Outcome> {
        let deadline = Instant::now() + wait;
        let events = format!("{}/v1/namespaces/{ns}/events", self.base);
        let server_wait = wait.min(SERVER_WAIT);
        let post = |server_wait: Option<Duration>| {
            let mut req = self.client.post(&events).json(&request.body);
            if let Some(w) = server_wait {
                req = req.query(&[("wait", report::human(w))]).timeout(w + Duration::from_secs(30));
            } else {
                req = req.timeout(Duration::from_secs(30));
            }
            self.authorized(req).send()
        };
        let asked = (!wait.is_zero()).then_some(server_wait);
        let mut answer = self.answer(post(asked).await).await?;
        // A server whose --send-timeout is shorter refuses the wait, before creating anything.
        if answer.0 == 400 && answer.1["error"]["field"] == "wait" {
            answer = self.answer(post(None).await).await?;
        }
        let (status, body) = answer;
        if status != 200 && status != 202 {
            return Err(report::of_http_error(status, &body));
        }
        let name = body["name"].as_str().unwrap_or_default().to_string();
        let ev = Created {
            namespace: ns.to_string(),
            name: name.clone(),
            follow: format!("GET {}/v1/namespaces/{ns}/events/{name}", self.base),
        };
        if name.is_empty() {
            return Err(Outcome::new(Exit::Error, format!("the endpoint answered {status} without the event's name")));
        }
        if status == 200 {
            return Ok(report::of_event(&ev, status_of(&body).as_ref(), None));
        }
        if wait.is_zero() {
            return Ok(report::created(&ev));
        }
        let mut last = status_of(&body);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(report::of_event(&ev, last.as_ref(), Some(wait)));
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
            let req = self.client.get(format!("{}/v1/namespaces/{ns}/events/{name}", self.base));
            let (status, body) =
                self.answer(self.authorized(req).timeout(Duration::from_secs(30)).send().await).await?;
            if status != 200 {
                return Err(report::of_http_error(status, &body));
            }
            last = status_of(&body);
            if last.as_ref().and_then(|s| s.phase).is_some_and(|p| p.is_final()) {
                return Ok(report::of_event(&ev, last.as_ref(), None));
            }
        }
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The status code and the JSON body (`null` when there is none).
    async fn answer(&self, sent: reqwest::Result<reqwest::Response>) -> Result<(u16, Value), Outcome> {
        let unreachable = |e: reqwest::Error| {
            Outcome::new(Exit::Error, format!("could not reach {}: {}", self.base, chain(&e.without_url())))
        };
        let response = sent.map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }
}

/// The `status` of an event answer.
fn status_of(body: &Value) -> Option<NotificationEventStatus> {
    serde_json::from_value(body.get("status")?.clone()).ok()
}

/// An error with its causes (`error sending request: connection refused`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_printed_carries_no_credential() {
        let base = |u: &str| base_of(&url::Url::parse(u).unwrap());
        assert_eq!(base("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(base("https://kube-notify.example.com/prefix/").unwrap(), "https://kube-notify.example.com/prefix");
        for bad in ["https://user:secret@host/", "https://host/?token=secret", "https://host/#secret", "ftp://host/"] {
            let o = base(bad).unwrap_err();
            assert_eq!(o.code(), 2, "{bad}");
            assert!(!o.line.contains("secret"), "{}", o.line);
        }
    }
}
