//! HTTP servers: the admin endpoints (health, metrics) on their own port.

pub mod admin;
