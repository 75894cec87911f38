//! Acquire: one round trip, `ms <key> <len> ME T<expiry> c` (store only if the key is free,
//! return the item's CAS), with the fencing counter and a clock read behind it. The expiry
//! is absolute by the server's clock where that is known (`expiry.rs`). The waiting acquire
//! (`Lock::acquire_lease`) repeats it through lock-core's `acquire_with_retry`.
//!
//! Path: [`MemcachedLock::acquire_once`] -> `key::wire_key` -> `client::Cluster::server_for`
//! -> `client::Endpoint::execute` -> `client::server::Server::execute` (policy) -> the meta
//! or classic transport -> `client::codec` bytes on the wire.

use std::sync::Arc;
use std::time::Duration;

use commons::{Context, ErrorKind, Result};

use super::cleanup::AcquireInFlight;
use super::errors::{cas_disabled, unexpected};
use super::expiry;
use super::fencing;
use super::lease::HeldLease;
use super::{MemcachedLock, Moments, checked};
use crate::client::{
    AcquireReplies, AcquireRequest, Call, Endpoint, Reply, Request, WireKey, late_channel,
};
use crate::value::LockValue;

impl MemcachedLock {
    /// The key on the wire, the ttl in seconds, the key's server and `options.max_size`: the
    /// checks and lookups before the round trip, out of the acquire's future (a plain
    /// function keeps their temporaries out of its state).
    fn route(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<(WireKey, u32, Arc<Endpoint>, usize)> {
        self.with_opened(ctx, |opened| {
            let (wire, secs) = checked(ctx, key, ttl, &opened.config)?;
            let server = opened.cluster.server_for(&wire).clone();
            Ok((wire, secs, server, opened.config.max_size))
        })
    }

    /// One acquire attempt; on success what `keep` makes of the lease record before it goes
    /// into the table (the record is moved there, not copied: `try_acquire_lock` keeps
    /// nothing of it, `try_acquire_lease` a `Lease`).
    ///
    /// `moments.started` (read by the caller just before) is when the request counts from;
    /// `moments.ended` is set to when its reply arrived: the operation's latency histogram
    /// shares the lock's own clock reads.
    pub(super) async fn acquire_once<T>(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        moments: &mut Moments,
        keep: impl FnOnce(&HeldLease) -> T,
    ) -> Result<Option<T>> {
        let (wire, secs, server, max_size) = self.route(ctx, key, ttl)?;
        if self.leases.holds_valid(key) {
            return Ok(None); // not reentrant, and no round trip needed to know it
        }
        // Held until the record is in the table (or the acquire failed).
        let _place = self.leases.reserve(ctx, key, max_size)?;
        let value: Arc<[u8]> = LockValue::encode_new(&self.holder, ctx.trace_id()).into();
        let (expiry, started) = expiry::expiry_on(ctx, &server, secs, moments.started).await?;
        let (late, late_reply) = late_channel();
        let mut in_flight = AcquireInFlight::new(
            key,
            &self.leases,
            &server,
            &wire,
            &value,
            (ttl, expiry::longest_life(expiry, secs)),
            late_reply,
        );
        let request = Request::Acquire(AcquireRequest {
            counter: fencing::counter_key(&wire),
            initial: fencing::initial_value(fencing::CLOCK_MARGIN, started),
            key: wire.clone(),
            data: value.clone(),
            ttl_secs: expiry.wire(),
        });
        let call = Call {
            late: Some(late),
            started: Some(started),
            ..Call::default()
        };
        let executed = match server.call(ctx, request, &call).await {
            Ok(executed) => executed,
            Err(e) => {
                // Only a request that may have reached the server needs the cleanup.
                if matches!(e.kind(), ErrorKind::OutcomeUnknown | ErrorKind::Protocol) {
                    in_flight.failed();
                } else {
                    in_flight.disarm();
                }
                return Err(e.with_detail("key", key));
            }
        };
        in_flight.disarm();
        drop(in_flight);
        moments.ended = Some(executed.arrived);
        let Reply::Acquired(pair) = executed.reply else {
            return Err(unexpected(ctx, "ms+ma", &executed.reply));
        };
        let fresh = expiry::observe_clock(
            &server,
            executed.identity,
            (started, executed.arrived),
            pair.server_clock(),
        );
        let AcquireReplies {
            stored, counter, ..
        } = *pair;
        match stored {
            Reply::Hd(flags) => {
                let Some(cas) = flags.cas.filter(|&cas| cas != 0) else {
                    // Stored, but it could not be released safely: left to expire.
                    return Err(cas_disabled(ctx, &server));
                };
                let (valid_until, gone_by) = expiry::trusted_until(
                    &server,
                    executed.identity,
                    expiry,
                    (started, executed.arrived),
                    (ttl, secs),
                    fresh,
                );
                let held = HeldLease {
                    wire,
                    cas: Some(cas),
                    server,
                    identity: executed.identity,
                    fencing: fencing::token(&counter),
                    ttl,
                    acquired_at: started,
                    valid_until,
                    gone_by,
                    value,
                };
                let kept = keep(&held);
                self.leases.insert(key, held);
                Ok(Some(kept))
            }
            Reply::Ns(_) => Ok(None),
            other => Err(unexpected(ctx, "ms", &other)),
        }
    }
}
