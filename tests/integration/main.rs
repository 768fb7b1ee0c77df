//! Integration tests: the real operator against the Kubernetes API emulation
//! and the chat-service emulators. One binary, one module per capability.

#[path = "../support/mod.rs"]
mod support;

/// One test body run on both stores, as two tests `NAME::kubernetes` (the
/// API emulation, as on a cluster) and `NAME::standalone` (the embedded
/// store, objects from manifest files): the behaviour both modes share.
/// `async fn NAME(w) { .. }` or, to adjust the operator's config,
/// `async fn NAME(w, |c| ..) { .. }`.
macro_rules! on_both_stores {
    (async fn $name:ident($w:ident $(, $adjust:expr)?) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn kubernetes() {
                #[allow(unused_mut)]
                let mut $w = crate::support::operator::World::start_on(
                    crate::support::operator::Place::Kubernetes,
                    on_both_stores!(@adjust $($adjust)?),
                )
                .await;
                $body
            }

            #[tokio::test]
            async fn standalone() {
                #[allow(unused_mut)]
                let mut $w = crate::support::operator::World::start_on(
                    crate::support::operator::Place::Standalone,
                    on_both_stores!(@adjust $($adjust)?),
                )
                .await;
                $body
            }
        }
    };
    (@adjust) => {
        |_| {}
    };
    (@adjust $adjust:expr) => {
        $adjust
    };
}

mod bench;
mod cli;
mod crd_validation;
mod credentials;
mod delivery;
mod delivery_core;
mod destinations;
mod ingest;
mod integration_status;
mod leader;
mod listeners;
mod mentions;
mod metrics;
mod service_answers;
mod standalone;
mod startup;
mod test_message;
