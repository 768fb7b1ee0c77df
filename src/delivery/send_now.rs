//! The synchronous path (`send`): one message to one integration now, with
//! the bookkeeping a queued delivery has (mentions resolved and reported,
//! metrics, counters), and no NotificationEvent.

use std::sync::Arc;

use kube::ResourceExt;
use tokio::time::Instant;

use super::Delivery;
use crate::crd::{IntegrationKey, Mention, NotificationIntegration};
use crate::notifier::classify::Failure;
use crate::notifier::{Message, Notifier};
use crate::record::Error;
use crate::status::integration::Under;
use crate::status::outcome::Report;

/// An integration whose notifier is built: it can be sent to now.
pub struct Prepared {
    ni: Arc<NotificationIntegration>,
    notifier: Arc<dyn Notifier>,
    under: Under,
}

/// Why an integration cannot be sent to now.
pub enum NotPrepared {
    /// Its Secret could not be read.
    Api(Error),
    /// Its notifier cannot be built from its spec and Secret.
    Unusable(Failure),
}

/// What became of a synchronous send.
pub struct Sent {
    pub report: Report,
    /// The emails of the mentions shown unresolved (by name or email).
    pub unresolved: Vec<String>,
}

impl Delivery {
    /// Build (or reuse) the notifier of `ni`, an integration that can
    /// receive: the check a `send` passes before it is delivered here or
    /// handed to the leader.
    pub async fn prepare(&self, ni: Arc<NotificationIntegration>) -> Result<Prepared, NotPrepared> {
        let loaded = self.notifier_for(&ni).await.map_err(NotPrepared::Api)?;
        let notifier = loaded.notifier.map_err(NotPrepared::Unusable)?;
        let under =
            Under { generation: ni.metadata.generation.unwrap_or_default(), secret_version: loaded.secret_version };
        Ok(Prepared { ni, notifier, under })
    }

    /// Send `message` to the prepared integration now, with `mentions`
    /// resolved for its service, giving up at `deadline`; the outcome is
    /// counted on the integration.
    pub async fn send_now(
        self: Arc<Self>,
        prepared: Prepared,
        mut message: Message,
        mentions: Vec<Mention>,
        deadline: Instant,
    ) -> Sent {
        let started = Instant::now();
        let Prepared { ni, notifier, under } = prepared;
        let namespace = ni.namespace().unwrap_or_default();
        let resolution = self.resolve_mentions(&namespace, notifier.as_ref(), &mentions).await;
        message.mentions = resolution.mentions.clone();
        let report = self.engine.deliver(notifier.as_ref(), &message, deadline).await;
        let key = IntegrationKey::new(&namespace, ni.name_any());
        self.metrics.delivery(&key, notifier.service(), &report, started.elapsed());
        self.report_mentions(&ni, notifier.service(), &resolution, None);
        self.count(key, &report.outcome, under).await;
        Sent { report, unresolved: resolution.unresolved_emails() }
    }
}
