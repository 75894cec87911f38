//! The cleanup of an acquire whose outcome is unknown (a timeout after the request left, or
//! a future dropped mid-flight): the item is deleted if and only if it holds this
//! acquisition's token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use commons::Context;

use super::release::delete_if_token;
use crate::client::{Endpoint, WireKey};

/// Disarmed when an acquire finishes normally; otherwise (the future was dropped while the
/// request may have reached the server, or the outcome is unknown) spawns the owner-checked
/// cleanup when dropped.
pub(super) struct AcquireInFlight {
    armed: AtomicBool,
    server: Arc<Endpoint>,
    wire: WireKey,
    value: Arc<[u8]>,
    timeout: Duration,
}

impl AcquireInFlight {
    pub(super) fn new(
        server: &Arc<Endpoint>,
        wire: &WireKey,
        value: &Arc<[u8]>,
        timeout: Duration,
    ) -> Self {
        AcquireInFlight {
            armed: AtomicBool::new(true),
            server: server.clone(),
            wire: wire.clone(),
            value: value.clone(),
            timeout,
        }
    }

    pub(super) fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }
}

impl Drop for AcquireInFlight {
    fn drop(&mut self) {
        if self.armed.load(Ordering::Relaxed) {
            spawn_cleanup(
                self.server.clone(),
                self.wire.clone(),
                self.value.clone(),
                self.timeout,
            );
        }
    }
}

/// Removes the item if and only if it holds this acquisition's token, in the background.
fn spawn_cleanup(server: Arc<Endpoint>, wire: WireKey, value: Arc<[u8]>, timeout: Duration) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return; // no runtime: the ttl frees the lock
    };
    handle.spawn(async move {
        let ctx = Context::new();
        let _ = tokio::time::timeout(
            timeout * 2,
            delete_if_token(&ctx, &server, &wire, &value, None),
        )
        .await;
    });
}
