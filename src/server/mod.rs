//! HTTP servers: the admin endpoints (health, metrics) on their own port,
//! HTTP ingestion next to the operator, and the sidecar; each served by
//! [`listen::serve`] (timeouts, caps), ingestion optionally over [`tls`].

pub mod admin;
pub mod ingest;
pub mod listen;
pub mod sidecar;
pub mod tls;
