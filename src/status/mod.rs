//! What each resource's status should say, as pure functions of what was
//! observed: no API, no clock, no tasks. Both delivery paths (events and the
//! synchronous route) and every store use these; the controllers do the I/O.

pub mod event;
pub mod integration;
pub mod outcome;
pub mod test_message;
