//! The command-line client side: `kube-notify send` and `kube-notify test`, for people, scripts and CI.
//!
//! - [`send`]: the event from the flags, validated as the HTTP route validates it;
//! - [`api`]: with the caller's kubeconfig (create the NotificationEvent, watch it);
//! - [`http`]: with `--url`, through kube-notify's HTTP ingestion routes;
//! - [`report`]: what was learned, as an outcome (from phases, reasons and error codes);
//! - [`test_message`]: `kube-notify test`, the integration's test message asked for and awaited;
//! - [`crate::exit`]: the outcomes' exit codes and their one line (shared with `cli`).

pub mod api;
pub mod http;
pub mod report;
pub mod send;
pub mod test_message;

use std::io::{IsTerminal as _, Read as _};

use crate::exit::{Exit, Outcome};

use crate::cli::SendArgs;

/// The annotation value ([`crate::crd::event::REQUESTED_VIA`]) of an event
/// `kube-notify send` created with the kubeconfig.
pub const REQUESTED_VIA_CLI: &str = "cli";

/// The prefix of the names of the events `kube-notify send` creates.
pub const GENERATE_NAME: &str = "cli-";

/// `kube-notify send`: the outcome to print and exit with.
pub async fn send(args: &SendArgs) -> Outcome {
    let message = match message(args) {
        Ok(m) => m,
        Err(o) => return o,
    };
    let request = match send::request(args, message) {
        Ok(r) => r,
        Err(o) => return o,
    };
    match &args.url {
        Some(url) => {
            let token = match token(args) {
                Ok(t) => t,
                Err(o) => return o,
            };
            let namespace = args.namespace.clone().unwrap_or_else(|| "default".to_string());
            if !crate::server::ingest::body::is_dns_label(&namespace) {
                return Outcome::new(Exit::Invalid, format!("--namespace: {namespace:?} is not a namespace name"));
            }
            http::send(url, token, &namespace, &request, args.wait).await
        }
        None => api::send(args.namespace.clone(), &request, args.wait).await,
    }
}

/// `--message`, or stdin for `-` or none (not from a terminal).
fn message(args: &SendArgs) -> Result<String, Outcome> {
    match args.message.as_deref() {
        Some("-") | None => {
            let stdin = std::io::stdin();
            if args.message.is_none() && stdin.is_terminal() {
                return Err(Outcome::new(Exit::Invalid, "give --message, or the message on stdin"));
            }
            let mut text = String::new();
            stdin
                .lock()
                .read_to_string(&mut text)
                .map_err(|e| Outcome::new(Exit::Invalid, format!("could not read the message from stdin: {e}")))?;
            Ok(send::message_from_stdin(&text))
        }
        Some(m) => Ok(m.to_string()),
    }
}

/// The bearer token for `--url`: `--token-file`, else `KUBE_NOTIFY_TOKEN`.
fn token(args: &SendArgs) -> Result<Option<String>, Outcome> {
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Outcome::new(Exit::Invalid, format!("--token-file: cannot read {}: {e}", path.display())))?;
        let token = text.trim().to_string();
        if token.is_empty() {
            return Err(Outcome::new(Exit::Invalid, format!("--token-file: {} is empty", path.display())));
        }
        return Ok(Some(token));
    }
    Ok(std::env::var("KUBE_NOTIFY_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
}
