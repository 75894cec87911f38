//! Release: one round trip, `md <key> C<cas>`, which deletes the item only while it is this
//! acquisition's. A lease from an earlier boot of the server is never released by CAS.

use commons::{Context, ErrorKind, Result};

use super::MemcachedLock;
use super::errors::unexpected;
use super::extend::CAS_RACES;
use super::lease::HeldLease;
use crate::client::{Call, Endpoint, Reply, Request, ServerIdentity, WireKey};
use crate::codes::SERVER_RESTARTED;

impl MemcachedLock {
    /// Releases this owner's lock on `key` (only the acquisition with `token`, when given);
    /// whether it was deleted. In quorum mode, see `quorum::release`.
    pub(super) async fn release_once(
        &self,
        ctx: &Context,
        key: &str,
        token: Option<&str>,
    ) -> Result<bool> {
        if self.is_quorum() {
            let opened = self.opened(ctx)?;
            // Boxed (here and for the other quorum operations): the sharded path's future
            // stays small, and is moved at each await.
            return Box::pin(self.quorum_release(ctx, &opened, key, token)).await;
        }
        let Some(held) = self.take_held(ctx, key, token)? else {
            return Ok(false);
        };
        match delete_held(ctx, &held).await {
            Ok(deleted) => {
                if deleted {
                    self.waiters.notify_released(key);
                }
                Ok(deleted)
            }
            Err(e) => {
                // Nothing is known to have changed: keep the lease so the caller can retry
                // (unless a new acquisition replaced it meanwhile).
                if e.kind() != ErrorKind::OutcomeUnknown {
                    self.leases.restore(key, held);
                }
                Err(e.with_detail("key", key))
            }
        }
    }
}

impl MemcachedLock {
    /// Takes this owner's record of `key` out of the table (see `LeaseTable::take_checked`).
    /// A plain function: its temporaries stay out of the release's future.
    fn take_held(
        &self,
        ctx: &Context,
        key: &str,
        token: Option<&str>,
    ) -> Result<Option<HeldLease>> {
        self.with_opened(ctx, |opened| {
            self.leases.take_checked(ctx, key, token, &opened.config)
        })
    }
}

/// `md <key> C<cas>`; on `EX`, checks whether the item is still ours under a newer CAS (an
/// extend whose reply was lost) and deletes that.
pub(super) async fn delete_held(ctx: &Context, held: &HeldLease) -> Result<bool> {
    let Some(cas) = held.cas else {
        // Unconfirmed: only the token in the stored value says whether the item is ours.
        return Box::pin(delete_if_token(
            ctx,
            &held.server,
            &held.wire,
            &held.value,
            None,
            false,
        ))
        .await;
    };
    let request = Request::Delete {
        key: held.wire.clone(),
        cas,
    };
    let executed = match held
        .server
        .call(ctx, request, &Call::repeatable().on(Some(held.identity)))
        .await
    {
        Ok(e) => e,
        // CAS values restarted with the server: never release by CAS. The lease is lost.
        Err(e) if e.code() == SERVER_RESTARTED => return Ok(false),
        Err(e) => return Err(e),
    };
    match executed.reply {
        Reply::Hd(_) => Ok(true),
        Reply::Nf(_) => Ok(false),
        // Rare (an extend whose reply was lost): boxed, out of the common path's future.
        Reply::Ex(_) => {
            Box::pin(delete_if_token(
                ctx,
                &held.server,
                &held.wire,
                &held.value,
                Some(held.identity),
                false,
            ))
            .await
        }
        other => Err(unexpected(ctx, "md", &other)),
    }
}

/// Deletes the item at `wire` if its value is `value` (our token). Returns whether it did.
/// `quiet`: background work, whose failures do not mark the server down.
pub(super) async fn delete_if_token(
    ctx: &Context,
    server: &Endpoint,
    wire: &WireKey,
    value: &[u8],
    identity: Option<ServerIdentity>,
    quiet: bool,
) -> Result<bool> {
    for _ in 0..CAS_RACES {
        let read = Call {
            quiet,
            ..Call::repeatable().on(identity)
        };
        let got = server
            .call(ctx, Request::Get { key: wire.clone() }, &read)
            .await?;
        let cas = match got.reply {
            Reply::Va { data, flags } if data == value => match flags.cas {
                Some(cas) if cas != 0 => cas,
                _ => return Ok(false),
            },
            _ => return Ok(false),
        };
        let delete = Call {
            quiet,
            ..Call::repeatable().on(Some(got.identity))
        };
        let del = server
            .call(
                ctx,
                Request::Delete {
                    key: wire.clone(),
                    cas,
                },
                &delete,
            )
            .await?;
        match del.reply {
            Reply::Hd(_) => return Ok(true),
            Reply::Nf(_) => return Ok(false),
            // Changed between the two requests (an in-flight extend of ours): look again.
            Reply::Ex(_) => continue,
            other => return Err(unexpected(ctx, "md", &other)),
        }
    }
    Ok(false)
}
