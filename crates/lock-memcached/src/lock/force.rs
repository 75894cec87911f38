//! Force-release: an administrator's delete of a key's lock, whoever holds it. Not part of
//! the `Lock` trait on purpose: every other operation is owner-checked.

use commons::{Context, Result};

use super::MemcachedLock;
use super::errors::unexpected;
use super::extend::CAS_RACES;
use crate::client::{Call, Endpoint, Reply, Request, WireKey};
use crate::key::wire_key;

impl MemcachedLock {
    /// Deletes the lock on `key` whoever holds it (`mg` for the item's CAS, then
    /// `md <key> C<cas>`: exactly the acquisition that was read is deleted, so a holder that
    /// takes the key again in between is not), on its server or, in quorum mode, on every
    /// server. Returns whether a lock was deleted (`false`: the key was free).
    ///
    /// The holder is not told: it finds out at its next renewal, which is refused, and until
    /// then still believes it holds the lock, so a new holder may overlap it for up to one
    /// renew interval. Fencing tokens keep resources safe across that overlap. This is an
    /// operator's tool for a lock whose holder is known to be gone; the lock's own holder
    /// releases with `release_lock`.
    ///
    /// In quorum mode the servers that cannot be reached are skipped; the first error is
    /// returned only when no server could be reached. A quorum holder that is still alive
    /// takes the lock back at its next renewal (a quorum extend re-creates replicas that
    /// vanished, as after a restart, where the key is free), so in quorum mode this frees
    /// the key only of a holder that is gone.
    pub async fn force_release(&self, ctx: &Context, key: &str) -> Result<bool> {
        let opened = self.opened(ctx)?;
        let wire = wire_key(ctx, key, &opened.config)?;
        let deleted = if self.is_quorum() {
            let mut deleted = false;
            let mut answered = false;
            let mut first_error = None;
            for server in opened.cluster.servers() {
                match delete_whoever_holds(ctx, server, &wire).await {
                    Ok(d) => {
                        answered = true;
                        deleted |= d;
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            match first_error {
                Some(e) if !answered => return Err(e.with_detail("key", key)),
                _ => deleted,
            }
        } else {
            let server = opened.cluster.server_for(&wire);
            delete_whoever_holds(ctx, server, &wire)
                .await
                .map_err(|e| e.with_detail("key", key))?
        };
        if deleted {
            self.waiters.notify_released(key);
        }
        Ok(deleted)
    }
}

/// Reads the item at `wire` and deletes it by the CAS read; reads again when it changed in
/// between (a renewal). Returns whether it deleted an item.
async fn delete_whoever_holds(ctx: &Context, server: &Endpoint, wire: &WireKey) -> Result<bool> {
    for _ in 0..CAS_RACES {
        let got = server
            .call(ctx, Request::Get { key: wire.clone() }, &Call::repeatable())
            .await?;
        let cas = match got.reply {
            Reply::Va { flags, .. } => match flags.cas {
                Some(cas) if cas != 0 => cas,
                _ => return Ok(false),
            },
            Reply::En => return Ok(false),
            other => return Err(unexpected(ctx, "mg", &other)),
        };
        let delete = Request::Delete {
            key: wire.clone(),
            cas,
        };
        let done = server
            .call(ctx, delete, &Call::repeatable().on(Some(got.identity)))
            .await?;
        match done.reply {
            Reply::Hd(_) => return Ok(true),
            Reply::Nf(_) => return Ok(false),
            // Changed since the read (renewed, or released and taken again): read again.
            Reply::Ex(_) => continue,
            other => return Err(unexpected(ctx, "md", &other)),
        }
    }
    Ok(false)
}
