//! Late replies: where the reply to a request goes when its caller stopped waiting for it
//! (timed out, or dropped its future) after the request left.
//!
//! An acquire whose outcome is unknown must be cleaned up, and the surest witness of what
//! the server did is the request's own reply, read on its own connection: it is ordered after
//! the request on the server, unlike a read on another connection (another worker thread may
//! answer that one first). A caller attaches a [`LateSender`] to such a request; the
//! connection delivers the reply (or the error that ended the connection) to it if, and only
//! if, the caller is no longer there to take it.

use std::sync::{Arc, Mutex, MutexGuard};

use commons::Error;
use tokio::sync::oneshot;

use super::codec::Reply;
use super::identity::ServerIdentity;

/// What arrives late: the reply with the identity of the connection it came on, or the error
/// that ended that connection after the request was written.
pub(crate) type Late = Result<(Reply, ServerIdentity), Error>;

#[derive(Debug, Default)]
struct Slot {
    tx: Option<oneshot::Sender<Late>>,
    /// The connection the request was last handed to.
    identity: Option<ServerIdentity>,
}

/// The sending half, handed with the request to the transport.
#[derive(Debug, Clone)]
pub(crate) struct LateSender(Arc<Mutex<Slot>>);

/// The receiving half, kept by whoever cleans up. Closed without a value: the request was
/// never written (or it was answered to its caller).
#[derive(Debug)]
pub(crate) struct LateReceiver(oneshot::Receiver<Late>);

/// A new pair.
pub(crate) fn late_channel() -> (LateSender, LateReceiver) {
    let (tx, rx) = oneshot::channel();
    let slot = Slot {
        tx: Some(tx),
        identity: None,
    };
    (LateSender(Arc::new(Mutex::new(slot))), LateReceiver(rx))
}

impl LateSender {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the connection the request is about to be written on.
    pub(crate) fn attach(&self, identity: ServerIdentity) {
        self.slot().identity = Some(identity);
    }

    /// Delivers the reply the caller did not take.
    pub(crate) fn reply(&self, reply: Reply) {
        let mut slot = self.slot();
        let identity = slot.identity;
        if let (Some(tx), Some(identity)) = (slot.tx.take(), identity) {
            let _ = tx.send(Ok((reply, identity)));
        }
    }

    /// Delivers the error that ended the connection after the request was written.
    pub(crate) fn failed(&self, error: Error) {
        if let Some(tx) = self.slot().tx.take() {
            let _ = tx.send(Err(error));
        }
    }
}

impl LateReceiver {
    /// Waits for the late reply; `None` when the request was never written (or its caller
    /// took the reply).
    pub(crate) async fn wait(self) -> Option<Late> {
        self.0.await.ok()
    }
}
