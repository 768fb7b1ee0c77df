//! Integration tests: the real operator against the Kubernetes API emulation
//! and the chat-service emulators. One binary, one module per capability.

#[path = "../support/mod.rs"]
mod support;

mod bench;
mod crd_validation;
mod credentials;
mod delivery;
mod delivery_core;
mod ingest;
mod integration_status;
mod leader;
mod mentions;
mod service_answers;
