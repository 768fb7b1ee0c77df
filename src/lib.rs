//! kube-notify: a Kubernetes operator that delivers notifications to Slack,
//! Chatwork, Microsoft Teams and webhooks, validates their credentials, and
//! shows each integration's health in its status.

pub mod admission;
pub mod caches;
pub mod causes;
pub mod cli;
pub mod client;
pub mod controller;
pub mod crd;
pub mod delivery;
pub mod exit;
pub mod launch;
pub mod leader;
pub mod manifests;
pub mod metrics;
pub mod notifier;
pub mod operator;
pub mod printer;
#[cfg(test)]
mod property_tests;
pub mod record;
pub mod redact;
pub mod server;
pub mod standalone;
pub mod status;
pub mod store;
pub mod telemetry;
