//! Integration tests: the real operator against the Kubernetes API emulation
//! and the chat-service emulators. One binary, one module per capability.

#[path = "../support/mod.rs"]
mod support;

mod crd_validation;
mod credentials;
mod delivery;
mod integration_status;
