//! Where one request's caller and its connection's task meet: the request's send state and
//! its answer, in one allocation (a oneshot channel plus a shared state cost two per
//! request, on the hottest path of the client).
//!
//! The send state is `QUEUED` until the task commits the request's bytes to the write buffer
//! (`SENT`), or `ABANDONED` when the caller (or the deadline) got there first: the task never
//! writes an abandoned request, so a caller that gives up knows whether anything left.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use commons::Error;

use tokio::time::Instant;

use crate::client::codec::Reply;

/// What the task tells the caller of one request.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The server's reply, and when the bytes that completed it were read (one clock read
    /// per read from the socket, shared by every reply in it).
    Reply(Reply, Instant),
    /// The request failed (the connection broke, or the reply could not be read).
    Failed(Error),
    /// The request's deadline passed first; `sent`: its bytes had been written (its outcome
    /// is unknown), otherwise it never will be.
    Expired { sent: bool },
}

const QUEUED: u8 = 0;
const SENT: u8 = 1;
const ABANDONED: u8 = 2;

#[derive(Debug, Default)]
struct Meeting {
    answer: Option<Answer>,
    waker: Option<Waker>,
    /// The task dropped its side without answering (the connection ended).
    task_gone: bool,
    /// The caller stopped waiting.
    caller_gone: bool,
}

#[derive(Debug)]
struct Shared {
    state: AtomicU8,
    meeting: Mutex<Meeting>,
}

impl Shared {
    fn meeting(&self) -> MutexGuard<'_, Meeting> {
        self.meeting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A new request's two sides.
pub(super) fn handoff() -> (Responder, Waiter) {
    let shared = Arc::new(Shared {
        state: AtomicU8::new(QUEUED),
        meeting: Mutex::new(Meeting::default()),
    });
    (
        Responder {
            shared: shared.clone(),
            answered: false,
        },
        Waiter {
            shared,
            answered: false,
        },
    )
}

/// The task's side: commits the request, answers it once. Dropped unanswered, it tells the
/// caller the connection ended.
#[derive(Debug)]
pub(super) struct Responder {
    shared: Arc<Shared>,
    answered: bool,
}

impl Responder {
    /// Marks the request written, unless its caller gave up first (then `false`: it must not
    /// be written).
    pub(super) fn commit(&self) -> bool {
        self.shared
            .state
            .compare_exchange(QUEUED, SENT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks a request that was not written as never to be (its deadline passed); `false`
    /// when its caller had already given up.
    pub(super) fn withdraw(&self) -> bool {
        self.shared
            .state
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Hands `answer` to the caller; back as `Err` when the caller is gone.
    pub(super) fn send(mut self, answer: Answer) -> Result<(), Answer> {
        self.answered = true;
        let waker = {
            let mut meeting = self.shared.meeting();
            if meeting.caller_gone {
                return Err(answer);
            }
            meeting.answer = Some(answer);
            meeting.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let waker = {
            let mut meeting = self.shared.meeting();
            meeting.task_gone = true;
            meeting.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The caller's side. Dropping it abandons the request (it is not written if it was not
/// already) and sends a later answer elsewhere (see [`Responder::send`]).
#[derive(Debug)]
pub(super) struct Waiter {
    shared: Arc<Shared>,
    /// The answer was taken: the task is done with the request, and dropping this side has
    /// nothing to tell it (no lock to take, the common case).
    answered: bool,
}

/// What a [`Waiter`] learns.
pub(super) enum Outcome {
    Answered(Answer),
    /// The task ended without answering; `sent`: the request had been written.
    Unanswered {
        sent: bool,
    },
}

impl Waiter {
    /// Waits for the answer.
    pub(super) async fn outcome(&mut self) -> Outcome {
        poll_fn(|cx| {
            let mut meeting = self.shared.meeting();
            if let Some(answer) = meeting.answer.take() {
                self.answered = true;
                return Poll::Ready(Outcome::Answered(answer));
            }
            if meeting.task_gone {
                return Poll::Ready(Outcome::Unanswered {
                    sent: self.is_sent(),
                });
            }
            match &mut meeting.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Whether the request's bytes were committed to the socket.
    pub(super) fn is_sent(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) == SENT
    }

    /// Gives up on the request. Returns `true` when its bytes were already committed to the
    /// socket (its outcome is unknown), `false` when it is now guaranteed never to be sent.
    pub(super) fn abandon(&self) -> bool {
        match self.shared.state.compare_exchange(
            QUEUED,
            ABANDONED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => false,
            Err(state) => state == SENT,
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.abandon();
        self.shared.meeting().caller_gone = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_reaches_a_waiting_caller() {
        let (responder, mut waiter) = handoff();
        let waiting = tokio::spawn(async move { waiter.outcome().await });
        tokio::task::yield_now().await;
        assert!(responder.commit());
        assert!(
            responder
                .send(Answer::Reply(Reply::Mn, Instant::now()))
                .is_ok()
        );
        assert!(matches!(
            waiting.await.unwrap(),
            Outcome::Answered(Answer::Reply(Reply::Mn, _))
        ));
    }

    #[tokio::test]
    async fn a_task_that_ends_unanswered_says_whether_the_request_was_written() {
        let (responder, mut waiter) = handoff();
        drop(responder);
        assert!(matches!(
            waiter.outcome().await,
            Outcome::Unanswered { sent: false }
        ));
        let (responder, mut waiter) = handoff();
        assert!(responder.commit());
        drop(responder);
        assert!(matches!(
            waiter.outcome().await,
            Outcome::Unanswered { sent: true }
        ));
    }

    #[test]
    fn an_abandoned_request_is_never_committed_and_its_answer_comes_back() {
        let (responder, waiter) = handoff();
        assert!(!waiter.abandon(), "nothing was sent");
        drop(waiter);
        assert!(!responder.commit());
        assert!(matches!(
            responder.send(Answer::Reply(Reply::Mn, Instant::now())),
            Err(Answer::Reply(Reply::Mn, _))
        ));
        let (responder, waiter) = handoff();
        assert!(responder.commit());
        assert!(waiter.abandon(), "a written request cannot be taken back");
        assert!(!responder.withdraw());
    }
}
