//! One-shot scripted responses that override an emulator's own behaviour.
//!
//! A test queues `(matcher, response)` pairs with `push_response`; the next
//! request matching a queued matcher consumes the first such entry (queue
//! order) and gets the scripted response instead of the emulated one. The
//! request is still recorded.

use std::time::Duration;

use serde_json::Value;

/// Which requests a scripted response applies to.
#[derive(Clone, Debug, Default)]
pub struct RequestMatcher {
    /// Upper-case HTTP method, or any method when `None`.
    pub method: Option<String>,
    pub path: PathMatch,
}

#[derive(Clone, Debug, Default)]
pub enum PathMatch {
    #[default]
    Any,
    Exact(String),
    Suffix(String),
    Contains(String),
}

impl RequestMatcher {
    /// Matches every request.
    pub fn any() -> Self {
        Self::default()
    }

    /// Matches a request whose path (without query) is exactly `path`.
    pub fn path(path: impl Into<String>) -> Self {
        Self { method: None, path: PathMatch::Exact(path.into()) }
    }

    /// Matches a request whose path (without query) ends with `suffix`.
    pub fn path_suffix(suffix: impl Into<String>) -> Self {
        Self { method: None, path: PathMatch::Suffix(suffix.into()) }
    }

    /// Matches a request whose path (without query) contains `part`.
    pub fn path_contains(part: impl Into<String>) -> Self {
        Self { method: None, path: PathMatch::Contains(part.into()) }
    }

    /// Matches the exact path of a full URL (scheme, host and query ignored),
    /// e.g. one returned by `add_webhook` / `add_workflow` / `add_endpoint`.
    pub fn url(url: &str) -> Self {
        Self::path(path_of_url(url))
    }

    /// Restricts the matcher to one HTTP method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    pub fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(method)
        {
            return false;
        }
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Suffix(s) => path.ends_with(s.as_str()),
            PathMatch::Contains(s) => path.contains(s.as_str()),
        }
    }
}

/// A bare string is a path suffix.
impl From<&str> for RequestMatcher {
    fn from(suffix: &str) -> Self {
        Self::path_suffix(suffix)
    }
}

impl From<String> for RequestMatcher {
    fn from(suffix: String) -> Self {
        Self::path_suffix(suffix)
    }
}

/// What the emulator does with a request that consumed a scripted entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScriptAction {
    /// Answer with `status`, `headers` and `body`.
    #[default]
    Respond,
    /// Wait `delay`, then let the emulator answer as it normally would.
    Passthrough,
    /// Wait `delay`, then close the connection without writing a response.
    Close,
    /// Wait `delay`, then reset the connection (TCP RST, SO_LINGER 0).
    Reset,
}

/// How the body of an answer (scripted or the emulator's own) is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyFault {
    /// Whole, as is.
    #[default]
    None,
    /// Followed by this many bytes of filler (spaces: a JSON body stays JSON).
    Huge(usize),
    /// The head announces the whole body (`content-length`), half of it is
    /// sent, then nothing more: the connection stays open.
    Stall,
    /// Like [`BodyFault::Stall`], but the connection is closed after the half.
    Drop,
}

/// What [`BodyFault::Stall`] and [`BodyFault::Drop`] cut when the body is
/// empty: they need a body to cut.
pub const CUT_FILLER: usize = 1024;

/// A one-shot response. Build it with a struct literal
/// (`ScriptedResponse { status: 503, ..Default::default() }`) or the helpers.
#[derive(Clone, Debug)]
pub struct ScriptedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (or closing): longer than the client's
    /// timeout makes the client give up.
    pub delay: Option<Duration>,
    pub action: ScriptAction,
    /// How the body goes out (for `Respond` and `Passthrough`).
    pub body_fault: BodyFault,
}

impl Default for ScriptedResponse {
    fn default() -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
            action: ScriptAction::Respond,
            body_fault: BodyFault::None,
        }
    }
}

impl ScriptedResponse {
    /// Empty body with the given status.
    pub fn status(status: u16) -> Self {
        Self { status, ..Self::default() }
    }

    /// `text/plain` body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::status(status).with_header("content-type", "text/plain; charset=utf-8").with_body(body.into())
    }

    /// `text/html` body, as load balancers send on 5xx.
    pub fn html(status: u16, body: impl Into<String>) -> Self {
        Self::status(status).with_header("content-type", "text/html; charset=utf-8").with_body(body.into())
    }

    /// `application/json` body.
    pub fn json(status: u16, body: &Value) -> Self {
        Self::status(status).with_header("content-type", "application/json; charset=utf-8").with_body(body.to_string())
    }

    /// A redirect with a `Location` header (a correct client must not follow it).
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::status(status).with_header("location", location)
    }

    /// Close the connection without any response.
    pub fn close() -> Self {
        Self { action: ScriptAction::Close, ..Self::default() }
    }

    /// Reset the connection without any response.
    pub fn reset() -> Self {
        Self { action: ScriptAction::Reset, ..Self::default() }
    }

    /// Answer normally, but only after `delay`.
    pub fn delayed_passthrough(delay: Duration) -> Self {
        Self { action: ScriptAction::Passthrough, delay: Some(delay), ..Self::default() }
    }

    /// Let the emulator handle the request as it normally would (it posts),
    /// with its answer's body sent the `fault` way: the service accepted the
    /// message, then its answer's body goes wrong.
    pub fn passthrough_with(fault: BodyFault) -> Self {
        Self { action: ScriptAction::Passthrough, body_fault: fault, ..Self::default() }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn with_retry_after(self, seconds: u64) -> Self {
        self.with_header("retry-after", &seconds.to_string())
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    pub fn with_body_fault(mut self, fault: BodyFault) -> Self {
        self.body_fault = fault;
        self
    }
}

/// The path part of a URL (`http://h:1/a/b?x=1` -> `/a/b`); a bare path is
/// returned without its query.
pub fn path_of_url(url: &str) -> String {
    let rest = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            match after.find('/') {
                Some(j) => &after[j..],
                None => "/",
            }
        }
        None => url,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// The raw query of a URL (`None` when it has none).
pub fn query_of_url(url: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    Some(q.split('#').next().unwrap_or_default().to_owned())
}
