//! HTTP servers: the admin endpoints (health, metrics) on their own port,
//! HTTP ingestion next to the operator, and the sidecar.

pub mod admin;
pub mod ingest;
pub mod sidecar;
