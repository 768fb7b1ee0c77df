//! How one delivery ended: the engine's answer, and the one source of the
//! names it goes by (the recorded reason, the metric label).

use crate::notifier::classify::Failure;

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// The destination is gone or refuses us: counts toward auto-disable.
    Dead(Failure),
    /// This message will never be accepted: fails the message only.
    Rejected(Failure),
    /// Transient failures until the retries ran out: counts toward auto-disable.
    Exhausted(Failure),
    /// The deadline passed before the service accepted (rate limits, retries).
    DeadlinePassed(Option<Failure>),
}

impl Outcome {
    /// Whether the failure counts against the integration.
    pub fn counts_as_error(&self) -> bool {
        matches!(self, Outcome::Dead(_) | Outcome::Exhausted(_))
    }

    /// A short reason and a message for a person (never a credential).
    pub fn failure(&self) -> Option<(&'static str, String)> {
        match self {
            Outcome::Delivered => None,
            Outcome::Dead(f) | Outcome::Rejected(f) => Some((f.reason, f.message.clone())),
            Outcome::Exhausted(f) => Some((f.reason, format!("gave up after retries: {}", f.message))),
            Outcome::DeadlinePassed(f) => Some((
                "DeadlineExceeded",
                match f {
                    Some(f) => format!("the deadline passed while retrying: {}", f.message),
                    None => "the deadline passed before the message could be sent".to_string(),
                },
            )),
        }
    }

    /// The outcome's name as a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Dead(_) => "dead",
            Outcome::Rejected(_) => "rejected",
            Outcome::Exhausted(_) => "exhausted",
            Outcome::DeadlinePassed(_) => "expired",
        }
    }
}

/// The outcome and how many times the service was called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub attempts: u32,
}
