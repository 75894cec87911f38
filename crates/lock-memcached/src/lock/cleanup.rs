//! The cleanup of an acquire whose outcome is unknown: a timeout after the request left, a
//! reply that could not be read, or a future dropped mid-request. The item is deleted if, and
//! only if, it holds this acquisition's token, and the cleanup keeps at it until the item is
//! certainly gone, so an abandoned acquisition never holds its key much longer than the
//! outage that caused it.
//!
//! The witness is the request's own reply, delivered late on its own connection (see
//! `client::late`): it is ordered after the request on the server, and it says exactly what
//! happened (`HD c<cas>`: ours, deleted by that CAS at once; `NS`: not stored). Where no
//! reply can come any more (the connection failed, the classic transport), the cleanup reads
//! the key by token until the item, if it was stored, has certainly expired: a miss on another
//! connection proves nothing (the request may still be on its way through the server).
//!
//! Meanwhile the acquisition is in the lease table as unconfirmed, so the owner's own
//! `release_lock(key)` also deletes the item when it holds that token. The cleanup's traffic
//! is quiet: it never marks a server down by itself.

use std::sync::Arc;
use std::time::Duration;

use commons::Context;
use tokio::time::{Instant, sleep, timeout};
use tracing::Instrument;

use super::lease::{HeldLease, LeaseTable};
use super::release::delete_if_token;
use crate::client::{Call, Endpoint, Late, LateReceiver, Reply, Request, ServerIdentity, WireKey};
use crate::codes::SERVER_RESTARTED;
use crate::telemetry::{BACKEND, OUTCOME_UNKNOWN};

/// How long the cleanup waits for a late reply: as long as a retired connection keeps
/// waiting for it.
const WAIT_FOR_REPLY: Duration = Duration::from_secs(600);

/// First pause between two attempts of a cleanup; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// One second: memcached's clock granularity (an item may outlive its ttl by that much).
const GRANULARITY: Duration = Duration::from_secs(1);

/// Armed while an acquire's request may be on its way; disarmed once its outcome is known.
/// Dropped armed (an error with an unknown outcome, or the acquire future dropped), it
/// records the acquisition as unconfirmed and starts the cleanup.
pub(super) struct AcquireInFlight<'a> {
    armed: bool,
    /// The caller got an error (rather than dropping its future).
    failed: bool,
    key: &'a str,
    table: &'a Arc<LeaseTable>,
    server: &'a Arc<Endpoint>,
    wire: &'a WireKey,
    value: &'a Arc<[u8]>,
    ttl: Duration,
    secs: u32,
    late: Option<LateReceiver>,
}

/// What the cleanup works from.
struct Abandoned {
    key: String,
    table: Arc<LeaseTable>,
    server: Arc<Endpoint>,
    wire: WireKey,
    value: Arc<[u8]>,
    secs: u32,
    failed: bool,
    late: Option<LateReceiver>,
}

impl<'a> AcquireInFlight<'a> {
    #[allow(clippy::too_many_arguments)] // one field each; built in one place
    pub(super) fn new(
        key: &'a str,
        table: &'a Arc<LeaseTable>,
        server: &'a Arc<Endpoint>,
        wire: &'a WireKey,
        value: &'a Arc<[u8]>,
        (ttl, secs): (Duration, u32),
        late: LateReceiver,
    ) -> Self {
        AcquireInFlight {
            armed: true,
            failed: false,
            key,
            table,
            server,
            wire,
            value,
            ttl,
            secs,
            late: Some(late),
        }
    }

    /// The outcome is known: nothing to clean up.
    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }

    /// The acquire failed in a way that may have stored the item (the caller sees the error).
    pub(super) fn failed(&mut self) {
        self.failed = true;
    }
}

impl Drop for AcquireInFlight<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime: the ttl frees the lock
        };
        let unconfirmed = HeldLease::unconfirmed(
            self.wire,
            self.server,
            self.value,
            self.ttl,
            self.secs,
            // Read here, on this rare path, rather than on every acquire: the record is never
            // valid, so only `gone_by` matters, and later is the safe side for it.
            Instant::now(),
        );
        // A newer acquisition of the key by this instance keeps its record.
        self.table.insert_if_absent(self.key, unconfirmed);
        let abandoned = Abandoned {
            key: self.key.to_string(),
            table: self.table.clone(),
            server: self.server.clone(),
            wire: self.wire.clone(),
            value: self.value.clone(),
            secs: self.secs,
            failed: self.failed,
            late: self.late.take(),
        };
        let server = self.server.address();
        metrics::counter!(OUTCOME_UNKNOWN, "backend" => BACKEND, "server" => server.to_string())
            .increment(1);
        tracing::warn!(
            server.address = %server,
            lock.caller_saw_error = self.failed,
            "acquire outcome unknown: the acquisition is kept as unconfirmed and undone in the \
             background"
        );
        // The cleanup's span is a child of the operation's, which may end first.
        let span = tracing::info_span!(
            "lock.cleanup",
            server.address = %server,
            lock.cleanup = tracing::field::Empty,
        );
        runtime.spawn(clean_up(abandoned).instrument(span));
    }
}

/// Runs the cleanup of `job` and reports how it ended.
async fn clean_up(job: Abandoned) {
    let result = undo(job).await;
    tracing::Span::current().record("lock.cleanup", result);
    tracing::warn!(
        lock.cleanup = result,
        "cleanup of an acquire with unknown outcome ended"
    );
}

/// Undoes the acquisition of `job`; what was found, as the `lock.cleanup` field.
async fn undo(mut job: Abandoned) -> &'static str {
    let receiver = job.late.take();
    let late = async move {
        match receiver {
            Some(late) => timeout(WAIT_FOR_REPLY, late.wait()).await.ok(),
            None => None,
        }
    };
    tokio::pin!(late);
    // While the reply is awaited, the key is also read now and then: finding our token
    // proves the request was processed, and deleting it ends the cleanup early (a reply that
    // never comes, on a connection that stays open, would otherwise keep the item for its
    // whole ttl).
    let ctx = Context::new();
    let mut pause = FIRST_PAUSE;
    let late = loop {
        tokio::select! {
            late = &mut late => break late,
            _ = sleep(pause) => {
                let deleted =
                    delete_if_token(&ctx, &job.server, &job.wire, &job.value, None, true).await;
                if let Ok(true) = deleted {
                    job.table.forget(&job.key, &job.value);
                    return "deleted_by_token";
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    };
    let result = match next_step(late, job.failed) {
        Next::DeleteByCas(cas, identity) => delete_by_cas(&job, cas, identity).await,
        Next::Nothing => "not_stored",
        Next::ReadByToken => delete_by_token(&job).await,
    };
    job.table.forget(&job.key, &job.value);
    result
}

/// What the cleanup does next.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// The reply came and says the item was stored: delete it by that CAS, on that boot.
    DeleteByCas(u64, ServerIdentity),
    /// The reply came and says nothing was stored, or the request never left.
    Nothing,
    /// The request left but no reply can come (or none came in time): read by token.
    ReadByToken,
}

/// `late`: `None` when the wait for the late reply timed out; `Some(None)` when its channel
/// closed without one (never written, unless the caller got an error: `failed`).
fn next_step(late: Option<Option<Late>>, failed: bool) -> Next {
    match late {
        Some(Some(Ok((reply, identity)))) => match stored_cas(&reply) {
            Some(cas) => Next::DeleteByCas(cas, identity),
            None => Next::Nothing,
        },
        Some(None) if !failed => Next::Nothing,
        _ => Next::ReadByToken,
    }
}

/// The CAS of our stored item, when the reply to the acquire says it was stored.
fn stored_cas(reply: &Reply) -> Option<u64> {
    let stored = match reply {
        Reply::Acquired(pair) => &pair.stored,
        other => other,
    };
    match stored {
        Reply::Hd(flags) => flags.cas.filter(|&cas| cas != 0),
        _ => None,
    }
}

/// `md <key> C<cas>` on the boot that stored the item, until it is deleted or certainly gone.
async fn delete_by_cas(job: &Abandoned, cas: u64, identity: ServerIdentity) -> &'static str {
    let ctx = Context::new();
    let gone_by = Instant::now() + Duration::from_secs(u64::from(job.secs)) + GRANULARITY;
    let call = Call {
        quiet: true,
        ..Call::repeatable().on(Some(identity))
    };
    let mut pause = FIRST_PAUSE;
    while Instant::now() < gone_by {
        let request = Request::Delete {
            key: job.wire.clone(),
            cas,
        };
        match job.server.call(&ctx, request, &call).await {
            // Deleted, or already gone, or no longer ours (EX: someone else's item now).
            Ok(_) => return "deleted_by_cas",
            // Another boot: the item went with the old one.
            Err(e) if e.code() == SERVER_RESTARTED => return "server_restarted",
            Err(_) => {}
        }
        sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
    "expired"
}

/// Reads the key until the item is ours (then deletes it by its current CAS) or, if it was
/// stored at all, has certainly expired: a miss is no proof, the request may still be on its
/// way through the server.
async fn delete_by_token(job: &Abandoned) -> &'static str {
    let ctx = Context::new();
    let gone_by = Instant::now() + Duration::from_secs(u64::from(job.secs)) + GRANULARITY;
    let mut pause = FIRST_PAUSE;
    while Instant::now() < gone_by {
        if let Ok(true) =
            delete_if_token(&ctx, &job.server, &job.wire, &job.value, None, true).await
        {
            return "deleted_by_token";
        }
        sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
    "expired"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{AcquireReplies, MetaFlags};
    use commons::Error;

    fn identity() -> ServerIdentity {
        ServerIdentity {
            pid: 1,
            boot_epoch: 2,
            boot_marker: 3,
        }
    }

    fn acquired(stored: Reply) -> Reply {
        Reply::Acquired(Box::new(AcquireReplies {
            stored,
            counter: Reply::En,
            clock: None,
        }))
    }

    #[test]
    fn the_late_reply_decides_and_without_one_only_the_token_can() {
        let hd = |cas| {
            Reply::Hd(MetaFlags {
                cas: Some(cas),
                ..MetaFlags::default()
            })
        };
        let late = |reply| Some(Some(Ok((reply, identity()))));
        assert_eq!(
            next_step(late(acquired(hd(7))), true),
            Next::DeleteByCas(7, identity())
        );
        assert_eq!(
            next_step(late(hd(8)), false),
            Next::DeleteByCas(8, identity())
        );
        let ns = Reply::Ns(MetaFlags::default());
        assert_eq!(next_step(late(acquired(ns)), true), Next::Nothing);
        // CAS 0 (a server with -C) is never used to delete.
        assert_eq!(next_step(late(hd(0)), true), Next::Nothing);
        // Closed without a reply: never written, unless the caller saw an error.
        assert_eq!(next_step(Some(None), false), Next::Nothing);
        assert_eq!(next_step(Some(None), true), Next::ReadByToken);
        // The connection failed after the write, or no reply in time.
        let broken = Some(Some(Err(Error::internal("connection reset"))));
        assert_eq!(next_step(broken, false), Next::ReadByToken);
        assert_eq!(next_step(None, false), Next::ReadByToken);
    }
}
