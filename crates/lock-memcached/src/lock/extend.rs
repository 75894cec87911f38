//! Extend: one round trip, `ms <key> <len> C<cas> T<expiry> c`, which renews the item only
//! while it is this acquisition's (its CAS unchanged). The expiry is placed as an acquire's
//! (`expiry.rs`). Extending keeps the acquisition's
//! fencing token: the holder did not change.

use std::time::Duration;

use commons::{Context, Result};
use lock_core::Lease;
use tokio::time::Instant;

use super::MemcachedLock;
use super::errors::{cas_disabled, unexpected};
use super::expiry;
use super::lease::HeldLease;
use crate::client::{Call, Reply, Request, SetMode};
use crate::codes::SERVER_RESTARTED;

/// How often an extend retries with a fresher CAS while the item still holds this
/// acquisition's token. Extends of one key by one instance are serialized, so a stale CAS only
/// comes from a reply that was lost; a few retries are plenty.
pub(super) const CAS_RACES: usize = 4;

impl MemcachedLock {
    /// Extends this instance's lease on `key` to `ttl` (`secs` on the wire, both checked by
    /// `prepare`) from now; `None` when it holds none (any more).
    pub(super) async fn extend_held(
        &self,
        ctx: &Context,
        key: &str,
        (ttl, secs): (Duration, u32),
    ) -> Result<Option<Lease>> {
        // One extend of a key at a time (a guard's renewal and an explicit extend would
        // otherwise each move the CAS under the other); the record is read in that turn.
        let _turn = self.leases.extend_turn(key).await;
        let Some(held) = self.leases.get(key) else {
            return Ok(None);
        };
        // An unconfirmed acquisition is not known to hold anything: not extended.
        let Some(mut cas) = held.cas else {
            return Ok(None);
        };
        for _ in 0..CAS_RACES {
            let (expiry, started) =
                expiry::expiry_on(ctx, &held.server, secs, Instant::now()).await?;
            let request = Request::Set {
                key: held.wire.clone(),
                data: held.value.clone(),
                mode: SetMode::Cas(cas),
                ttl_secs: expiry.wire(),
            };
            let executed = match held
                .server
                .call(ctx, request, &Call::once().on(Some(held.identity)))
                .await
            {
                Ok(e) => e,
                Err(e) if e.code() == SERVER_RESTARTED => {
                    self.leases.forget(key, &held.value);
                    return Ok(None);
                }
                Err(e) => return Err(e.with_detail("key", key)),
            };
            match executed.reply {
                Reply::Hd(flags) => {
                    let new_cas = flags
                        .cas
                        .filter(|c| *c != 0)
                        .ok_or_else(|| cas_disabled(ctx, &held.server))?;
                    let trusted = expiry::trusted_until(
                        &held.server,
                        executed.identity,
                        expiry,
                        (started, executed.arrived),
                        (ttl, secs),
                        None,
                    );
                    let renewed = held.renewed(new_cas, ttl, started, trusted);
                    let lease = renewed.to_lease(key);
                    self.leases.replace(key, &held, renewed);
                    return Ok(Some(lease));
                }
                Reply::Ex(_) => {
                    // Our recorded CAS may be stale after an earlier extend whose reply was
                    // lost: the token in the value tells whether the item is still ours.
                    match current_cas_if_ours(ctx, &held).await? {
                        Some(current) if current != cas => cas = current,
                        _ => {
                            self.leases.forget(key, &held.value);
                            return Ok(None);
                        }
                    }
                }
                Reply::Nf(_) | Reply::Ns(_) => {
                    self.leases.forget(key, &held.value);
                    return Ok(None);
                }
                other => return Err(unexpected(ctx, "ms", &other)),
            }
        }
        self.leases.forget(key, &held.value);
        Ok(None)
    }
}

/// The item's current CAS when it still holds this acquisition's value.
async fn current_cas_if_ours(ctx: &Context, held: &HeldLease) -> Result<Option<u64>> {
    let got = held
        .server
        .call(
            ctx,
            Request::Get {
                key: held.wire.clone(),
            },
            &Call::repeatable().on(Some(held.identity)),
        )
        .await;
    match got {
        Ok(e) => match e.reply {
            Reply::Va { data, flags } if data.as_slice() == held.value.as_ref() => {
                Ok(flags.cas.filter(|c| *c != 0))
            }
            _ => Ok(None),
        },
        Err(e) if e.code() == SERVER_RESTARTED => Ok(None),
        Err(e) => Err(e),
    }
}
