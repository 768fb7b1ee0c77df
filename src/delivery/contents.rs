//! The content of events that the caches keep without it
//! ([`crate::caches::trim_event_content`]): read with one GET when such an
//! event is delivered, and shared by the other deliveries of a fan-out
//! through a small cache, so that memory does not grow with the size of the
//! events waiting to be delivered.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::queues::Job;
use crate::caches::is_trimmed;
use crate::crd::NotificationEvent;
use crate::record::Error;
use crate::store::Objects;

/// How many events with their content are kept at once (about 0.5 MB each at most).
const KEEP: usize = 16;

type Read = Arc<OnceCell<Option<Arc<NotificationEvent>>>>;

/// The last events read for their content, by uid; a read in flight is
/// shared by every delivery of that event.
#[derive(Default)]
pub struct Contents {
    recent: Mutex<VecDeque<(String, Read)>>,
}

impl Contents {
    /// The event of `job` with its content: the job's own snapshot when the
    /// cache kept it whole, else read from `events`. `None` when the event
    /// is gone or was replaced by another of the same name.
    pub async fn of(
        &self,
        job: &Job,
        events: &dyn Objects<NotificationEvent>,
    ) -> Result<Option<Arc<NotificationEvent>>, Error> {
        if !is_trimmed(&job.snapshot) {
            return Ok(Some(job.snapshot.clone()));
        }
        let read = {
            let mut recent = self.recent.lock().unwrap();
            match recent.iter().find(|(uid, _)| *uid == job.event_uid) {
                Some((_, read)) => read.clone(),
                None => {
                    let read = Read::default();
                    if recent.len() == KEEP {
                        recent.pop_front();
                    }
                    recent.push_back((job.event_uid.clone(), read.clone()));
                    read
                }
            }
        };
        let event = read
            .get_or_try_init(|| async {
                let event = events.get(&job.namespace, &job.event).await.map_err(Error::Kube)?;
                Ok::<_, Error>(
                    event.filter(|ev| ev.metadata.uid.as_deref() == Some(job.event_uid.as_str())).map(Arc::new),
                )
            })
            .await?;
        Ok(event.clone())
    }
}
