//! How one delivery ended: the engine's answer, and the one home of the
//! names it goes by (the recorded reason, the metric label, the error code
//! of the synchronous route).

use crate::notifier::classify::Failure;

/// The reason recorded for an outcome the engine itself decides.
pub mod reason {
    /// The deadline passed before the service accepted the message.
    pub const EXPIRED: &str = "Expired";
}

/// Each outcome's name: its metric label, and the synchronous route's error code.
pub mod label {
    pub const DELIVERED: &str = "delivered";
    pub const DEAD: &str = "dead";
    pub const REJECTED: &str = "rejected";
    pub const EXHAUSTED: &str = "exhausted";
    pub const EXPIRED: &str = "expired";
}

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
    Expired(Option<Failure>),
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
            Outcome::Expired(f) => Some((
                reason::EXPIRED,
                match f {
                    Some(f) => format!("the deadline passed while retrying: {}", f.message),
                    None => "the deadline passed before the message could be sent".to_string(),
                },
            )),
        }
    }

    /// The outcome's name (see [`label`]).
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => label::DELIVERED,
            Outcome::Dead(_) => label::DEAD,
            Outcome::Rejected(_) => label::REJECTED,
            Outcome::Exhausted(_) => label::EXHAUSTED,
            Outcome::Expired(_) => label::EXPIRED,
        }
    }
}

/// The outcome and how many times the service was called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub attempts: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_deadline_has_one_name() {
        let expired = Outcome::Expired(None);
        assert_eq!(expired.label(), "expired");
        assert_eq!(expired.failure().map(|(reason, _)| reason), Some("Expired"));
        assert_eq!(crate::status::event::reason::EXPIRED, reason::EXPIRED);
        assert!(!expired.counts_as_error());
    }
}
