//! Work a request started that must finish even if the caller hangs up.
//!
//! Hyper drops a handler's future when its connection closes. A synchronous
//! delivery that was already on its way must still end and be counted, so it
//! runs inside [`FinishOnDrop`]: polled in place while the caller waits (no
//! task and no hand-over to another worker per message, which the hot path
//! measurably pays for), and handed to a task of its own if it is dropped
//! before it is done.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future run in place that is spawned to completion if dropped early.
pub struct FinishOnDrop<T: Send + 'static> {
    inner: Option<Pin<Box<dyn Future<Output = T> + Send + 'static>>>,
}

impl<T: Send + 'static> FinishOnDrop<T> {
    pub fn new(future: impl Future<Output = T> + Send + 'static) -> Self {
        FinishOnDrop { inner: Some(Box::pin(future)) }
    }
}

impl<T: Send + 'static> Future for FinishOnDrop<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let inner = self.inner.as_mut().expect("FinishOnDrop polled after it finished");
        let out = inner.as_mut().poll(cx);
        if out.is_ready() {
            self.inner = None;
        }
        out
    }
}

impl<T: Send + 'static> Drop for FinishOnDrop<T> {
    fn drop(&mut self) {
        if let Some(rest) = self.inner.take() {
            // Outside a runtime (only at process exit) there is nowhere to finish it.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn finishes_in_place() {
        assert_eq!(FinishOnDrop::new(async { 7 }).await, 7);
    }

    #[tokio::test]
    async fn a_dropped_future_still_finishes() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let work = FinishOnDrop::new(async move {
            let _ = wait.await;
            let _ = tx.send("done");
        });
        // Started (polled once), then abandoned like a handler whose caller left.
        assert!(tokio::time::timeout(Duration::from_millis(10), work).await.is_err());
        go.send(()).unwrap();
        assert_eq!(rx.await.unwrap(), "done");
    }
}
