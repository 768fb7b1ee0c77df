//! How a client command (`kube-notify send`, `kube-notify test`) ends: one
//! exit code per kind of outcome, and the one line on stdout that says it.
//! Pure: each command maps what it learned to an [`Outcome`]; the command
//! line (`cli`) shows the codes in `--help`.

use std::fmt;

/// The kinds of outcome, each with its exit code (see [`Exit::code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: delivered (or, when not waiting, created).
    Delivered,
    /// 1: the API or the endpoint could not be reached, or answered something unexpected.
    Error,
    /// 2: usage or invalid input (clap's own code too).
    Invalid,
    /// 3: no such integration, or a selector matching none.
    NotFound,
    /// 4: the integration is disabled (the delivery was skipped).
    Disabled,
    /// 5: the integration is not ready: the message still waits for it.
    NotReady,
    /// 6: the service refused this message.
    Rejected,
    /// 7: the destination is gone or refuses us.
    Dead,
    /// 8: the wait ran out while the message was queued or retried, or its deadline passed.
    TimedOut,
    /// 9: transient failures until the retries ran out.
    Failed,
    /// 10: delivered to some targets only.
    Partial,
    /// 11: the credentials were refused (401) or not allowed (403).
    Unauthorized,
}

impl Exit {
    /// Every kind, in the order of their codes.
    pub const ALL: [Exit; 12] = [
        Exit::Delivered,
        Exit::Error,
        Exit::Invalid,
        Exit::NotFound,
        Exit::Disabled,
        Exit::NotReady,
        Exit::Rejected,
        Exit::Dead,
        Exit::TimedOut,
        Exit::Failed,
        Exit::Partial,
        Exit::Unauthorized,
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Delivered => 0,
            Exit::Error => 1,
            Exit::Invalid => 2,
            Exit::NotFound => 3,
            Exit::Disabled => 4,
            Exit::NotReady => 5,
            Exit::Rejected => 6,
            Exit::Dead => 7,
            Exit::TimedOut => 8,
            Exit::Failed => 9,
            Exit::Partial => 10,
            Exit::Unauthorized => 11,
        }
    }

    /// The word the line starts with (`dead: …`).
    pub fn label(self) -> &'static str {
        match self {
            Exit::Delivered => "delivered",
            Exit::Error => "error",
            Exit::Invalid => "invalid",
            Exit::NotFound => "not found",
            Exit::Disabled => "disabled",
            Exit::NotReady => "not ready",
            Exit::Rejected => "rejected",
            Exit::Dead => "dead",
            Exit::TimedOut => "timed out",
            Exit::Failed => "failed",
            Exit::Partial => "partially delivered",
            Exit::Unauthorized => "unauthorized",
        }
    }

    /// What the code means, for `--help` and the README.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Delivered => "delivered (or created, with --wait 0)",
            Exit::Error => "the API or endpoint could not be reached, or answered unexpectedly",
            Exit::Invalid => "usage or invalid input (the line names the field)",
            Exit::NotFound => "no such integration, or the selector matches none",
            Exit::Disabled => "the integration is disabled: the delivery was skipped",
            Exit::NotReady => "the integration is not ready: the message still waits for it",
            Exit::Rejected => "the service refused this message",
            Exit::Dead => "the destination is gone or refuses us",
            Exit::TimedOut => "--wait ran out while queued or retrying, or the event's deadline passed",
            Exit::Failed => "failed after retries",
            Exit::Partial => "delivered to some targets only (one line per target)",
            Exit::Unauthorized => "the credentials were refused or not allowed (401/403)",
        }
    }
}

/// The exit codes as `--help` shows them.
pub const HELP: &str = "\
Exit codes:
   0  delivered (or created, with --wait 0)
   1  the API or endpoint could not be reached, or answered unexpectedly
   2  usage or invalid input (the line names the field)
   3  no such integration, or the selector matches none
   4  the integration is disabled: the delivery was skipped
   5  the integration is not ready: the message still waits for it
   6  the service refused this message
   7  the destination is gone or refuses us
   8  --wait ran out while queued or retrying, or the event's deadline passed
   9  failed after retries
  10  delivered to some targets only (one line per target)
  11  the credentials were refused or not allowed (401/403)";

/// How a command ended: its kind, the one line saying it, and one line
/// per target when there were several.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub exit: Exit,
    /// The line, starting with the kind's label (or `created:`).
    pub line: String,
    /// One line per target (fan-out), printed indented under the line.
    pub targets: Vec<String>,
}

impl Outcome {
    /// `label: text`.
    pub fn new(exit: Exit, text: impl fmt::Display) -> Self {
        Outcome { exit, line: format!("{}: {text}", exit.label()), targets: Vec::new() }
    }

    /// A line that starts with its own word (e.g. `created:`).
    pub fn worded(exit: Exit, line: impl Into<String>) -> Self {
        Outcome { exit, line: line.into(), targets: Vec::new() }
    }

    pub fn with_targets(mut self, targets: Vec<String>) -> Self {
        self.targets = targets;
        self
    }

    pub fn code(&self) -> u8 {
        self.exit.code()
    }

    /// What is printed: the line, then each target's, indented.
    pub fn lines(&self) -> Vec<String> {
        std::iter::once(self.line.clone()).chain(self.targets.iter().map(|t| format!("  {t}"))).collect()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

/// `n attempt` / `n attempts`.
pub fn attempts(n: i64) -> String {
    if n == 1 { "1 attempt".to_string() } else { format!("{n} attempts") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_order() {
        for (i, e) in Exit::ALL.iter().enumerate() {
            assert_eq!(usize::from(e.code()), i);
        }
    }

    #[test]
    fn the_help_lists_every_code() {
        let expected: Vec<String> = std::iter::once("Exit codes:".to_string())
            .chain(Exit::ALL.iter().map(|e| format!("  {:>2}  {}", e.code(), e.meaning())))
            .collect();
        assert_eq!(HELP, expected.join("\n"));
    }

    #[test]
    fn lines() {
        let o = Outcome::new(Exit::Partial, "team-a/cli-1 to 1 of 2 integrations")
            .with_targets(vec!["a: delivered (1 attempt)".into(), "b: dead".into()]);
        assert_eq!(o.code(), 10);
        assert_eq!(
            o.to_string(),
            "partially delivered: team-a/cli-1 to 1 of 2 integrations\n  a: delivered (1 attempt)\n  b: dead"
        );
        assert_eq!(attempts(1), "1 attempt");
        assert_eq!(attempts(3), "3 attempts");
    }
}
