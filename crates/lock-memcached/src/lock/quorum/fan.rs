//! One operation's requests to every server, driven by the calling task itself: the answers
//! come back as they arrive, and whatever is still on its way when the caller has decided is
//! moved, fan and all, into one background task (an acquire's late answers).
//!
//! A task per server per operation (what a `JoinSet` gives) cost each request a task to
//! create, schedule, join and free, and moved every request's future into its task: in
//! quorum mode that was about a tenth of the client's time.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

/// Futures polled together by their owner; each yields one answer.
pub(super) struct Fan<T> {
    pending: Vec<Pin<Box<dyn Future<Output = T> + Send>>>,
}

impl<T: Send + 'static> Fan<T> {
    pub(super) fn new() -> Self {
        Fan {
            pending: Vec::new(),
        }
    }

    /// Adds one request's future (it runs while the fan is awaited, or once handed to the
    /// background).
    pub(super) fn push(&mut self, future: impl Future<Output = T> + Send + 'static) {
        self.pending.push(Box::pin(future));
    }

    /// Whether every answer has been taken.
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The next answer to arrive; `None` once every answer was taken.
    pub(super) async fn next(&mut self) -> Option<T> {
        poll_fn(|cx| {
            if self.pending.is_empty() {
                return Poll::Ready(None);
            }
            // A handful of servers: each wake polls them all (those not woken return at once).
            for i in 0..self.pending.len() {
                if let Poll::Ready(answer) = self.pending[i].as_mut().poll(cx) {
                    drop(self.pending.swap_remove(i));
                    return Poll::Ready(Some(answer));
                }
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn answers_come_in_the_order_they_arrive_and_all_of_them_come() {
        let mut fan = Fan::new();
        for (i, ms) in [(0, 30u64), (1, 10), (2, 20)] {
            fan.push(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                i
            });
        }
        let mut order = Vec::new();
        while let Some(i) = fan.next().await {
            order.push(i);
        }
        assert_eq!(order, [1, 2, 0]);
        assert!(fan.is_empty());
        assert_eq!(fan.next().await, None);
    }
}
