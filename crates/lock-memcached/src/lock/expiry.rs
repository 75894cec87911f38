//! The expiry a lock item is stored with, and how long the lock trusts it.
//!
//! Where the server's clock is known (meta mode, `client::clock`), an item is stored with an
//! absolute expiry (`T<unix seconds>`): a relative ttl is counted by memcached from its clock
//! at the moment it processes the request, and that clock lags real time after the server was
//! stopped, so the item could vanish at once. Elsewhere (classic mode, an unreadable clock)
//! the relative ttl is sent and the stale-clock case stays a documented limit.
//!
//! Either way an item is trusted until `sent + ttl rounded up - 1 s` at most; with an absolute
//! expiry also never past when its expiry can come by the server's clock as far as it is
//! known once the reply arrived (an acquire reads the clock again in the same round trip).

use std::time::Duration;

use commons::{Context, Result};
use tokio::time::Instant;

use super::lease::{gone_by, gone_by_from, validity};
use crate::client::{Call, Endpoint, Offset, Request, ServerIdentity, clock_reading};

/// The expiry sent with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// `T<secs>`, counted by the server's clock from when it processes the request.
    Relative(u32),
    /// `T<unix seconds>`, by the server's clock.
    Absolute(u32),
}

impl Expiry {
    /// The number after `T` on the wire.
    pub(super) fn wire(self) -> u32 {
        match self {
            Expiry::Relative(n) | Expiry::Absolute(n) => n,
        }
    }
}

/// The expiry for an item asked to live `secs` from now on `server`, and the instant its
/// request may be counted from (taken after any clock read this needed).
///
/// A server whose clock has no reading in the last minute is asked for it first (one round
/// trip, at most once a minute for a busy server: every acquire reads it again).
///
/// `started`: when the caller started the operation (read just before); the request counts
/// from it unless a clock read came first. Counting from a moment a little before the send is
/// the safe side: the expiry and the validity both come out earlier.
pub(super) async fn expiry_on(
    ctx: &Context,
    server: &Endpoint,
    secs: u32,
    started: Instant,
) -> Result<(Expiry, Instant)> {
    let mut offset = offset_of(server, server.health().identity(), started);
    let mut sent = started;
    if offset.is_none() && server.protocol() == "meta" {
        // Boxed: at most once a minute, and kept out of every acquire's future.
        Box::pin(read_clock(ctx, server)).await?;
        sent = Instant::now();
        offset = offset_of(server, server.health().identity(), sent);
    }
    let expiry = offset
        .and_then(|offset| offset.expiry(sent, secs))
        .map_or(Expiry::Relative(secs), Expiry::Absolute);
    Ok((expiry, sent))
}

/// Records a clock reading that came back with a request to `boot` sent at `sent` whose
/// reply arrived at `arrived`; the bounds with it counted, for [`trusted_until`].
pub(super) fn observe_clock(
    server: &Endpoint,
    boot: ServerIdentity,
    (sent, arrived): (Instant, Instant),
    reading: Option<i64>,
) -> Option<Offset> {
    let secs = reading?;
    server.health().clock().observe(boot, sent, arrived, secs)
}

/// Until when an item written to `boot` with `expiry` by a request sent at `sent`, whose reply
/// arrived at `arrived` (asked as `ttl`, `secs` on the wire), is trusted, and when it is
/// certainly gone; `fresh` is what [`observe_clock`] returned for the reading that came back
/// with it, if any.
pub(super) fn trusted_until(
    server: &Endpoint,
    boot: ServerIdentity,
    expiry: Expiry,
    (sent, arrived): (Instant, Instant),
    (ttl, secs): (Duration, u32),
    fresh: Option<Offset>,
) -> (Instant, Instant) {
    let by_ttl = (sent + validity(ttl, secs), gone_by_from(arrived, secs));
    let Expiry::Absolute(at) = expiry else {
        return by_ttl;
    };
    match fresh.or_else(|| offset_of(server, Some(boot), arrived)) {
        Some(offset) => (
            by_ttl.0.min(offset.alive_until(at)),
            by_ttl.1.max(offset.gone_by(at)),
        ),
        // The write reached a boot whose clock this process has not read (it restarted
        // between the clock read and the write): its clock is unknown, so nothing is trusted.
        None => (sent, by_ttl.1 + Duration::from_secs(u64::from(secs))),
    }
}

/// The longest an item can live, in whole seconds from its request: an absolute expiry is
/// placed up to `client::clock`'s allowances after the ttl.
pub(super) fn longest_life(expiry: Expiry, secs: u32) -> u32 {
    match expiry {
        Expiry::Relative(_) => secs,
        Expiry::Absolute(_) => secs.saturating_add(LONGEST_EXTRA_SECS),
    }
}

/// When an item asked to live `secs`, however its expiry was placed, is certainly gone (once
/// its server's clock runs).
pub(super) fn certainly_gone_by(secs: u32) -> Instant {
    gone_by(secs.saturating_add(LONGEST_EXTRA_SECS))
}

/// How much longer than its ttl an absolutely placed item can live: the placement margin and
/// the rounding up to a whole second (the server's clock lag is added by the callers, as for a
/// relative ttl).
const LONGEST_EXTRA_SECS: u32 = 3;

/// The offset of `boot`'s clock as known at `now` (read by the caller for its operation).
fn offset_of(server: &Endpoint, boot: Option<ServerIdentity>, now: Instant) -> Option<Offset> {
    server.health().clock().offset_at(boot?, now)
}

/// Reads `server`'s clock once (and once more if the reply carried no reading).
async fn read_clock(ctx: &Context, server: &Endpoint) -> Result<()> {
    for _ in 0..2 {
        let sent = Instant::now();
        let executed = server
            .call(ctx, Request::Clock, &Call::repeatable())
            .await?;
        let reading = clock_reading(&executed.reply);
        observe_clock(server, executed.identity, (sent, executed.arrived), reading);
        if reading.is_some() {
            break;
        }
    }
    Ok(())
}
