//! Quorum mode (`options.mode=quorum`): every key lives on every server, and a lock is
//! granted, and kept, while a majority of the servers hold it. One restart or one eviction
//! then costs a replica, not the lock.
//!
//! - [`acquire`]: one fan-out of `ms ME` + `ma` to all servers; granted on a majority (outside
//!   quarantine) with validity left; the fencing token established on a majority;
//! - [`extend`]: owner-checked on every server, re-creating the item where it was lost;
//! - [`release`]: owner-checked on every server;
//! - [`inspect`]: what the servers hold, by majority.
//!
//! A server whose memory is younger than `options.quarantine` (restarted, flushed, marker
//! evicted) answers like the others but does not count towards a majority: it may have lost
//! a lock that is still held, and counting it could grant that lock twice.

mod acquire;
mod extend;
mod fan;
mod inspect;
mod release;

pub(super) use release::release_replicas;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use commons::{Context, Error, ErrorKind, Result, codes};
use tokio::time::Instant;

use super::lease::record;
use crate::client::{Call, Endpoint, Executed, Request, ServerIdentity, WireKey};
use crate::codes::NO_QUORUM;
use crate::config::MemcachedLockConfig;
use fan::Fan;

/// One server's copy of a quorum lock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Replica {
    pub(super) cas: u64,
    pub(super) identity: ServerIdentity,
}

/// A quorum lease: the replicas this acquisition holds, one slot per server (in the order of
/// the cluster's servers). Shared with the fan-out's late answers, which fill slots after the
/// acquire returned so release and extend cover them.
#[derive(Debug, Clone)]
pub(super) struct QuorumHeld {
    pub(super) wire: WireKey,
    pub(super) value: Arc<[u8]>,
    pub(super) replicas: Arc<Mutex<Vec<Option<Replica>>>>,
    pub(super) fencing: std::result::Result<u64, &'static str>,
    pub(super) ttl: Duration,
    pub(super) acquired_at: Instant,
    pub(super) valid_until: Instant,
    pub(super) gone_by: Instant,
    /// Set (under the replicas' lock) once a release took the replicas: a grant that comes
    /// later must be deleted rather than joined, or it would hold the key until it expires.
    pub(super) released: Arc<AtomicBool>,
}

impl QuorumHeld {
    pub(super) fn replicas(&self) -> MutexGuard<'_, Vec<Option<Replica>>> {
        self.replicas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The replicas, taken by a release: later grants are no longer joined.
    pub(super) fn take_for_release(&self) -> Vec<Option<Replica>> {
        let replicas = self.replicas();
        self.released.store(true, Ordering::Release);
        replicas.clone()
    }

    /// Joins a grant that came after the acquire decided; `false` when the lease was released
    /// meanwhile (the caller deletes the grant's item).
    pub(super) fn join_late(&self, i: usize, replica: Replica) -> bool {
        let mut replicas = self.replicas();
        if self.released.load(Ordering::Acquire) {
            return false;
        }
        if let Some(slot) = replicas.get_mut(i) {
            *slot = Some(replica);
        }
        true
    }
}

// Every record of a quorum lease is confirmed: it is only kept once a majority granted it.
record!(QuorumHeld, |_held| true);

impl super::MemcachedLock {
    /// [`prepare`](super::MemcachedLock::prepare), and the ttl within `options.max_ttl`, the
    /// longest a quorum lock takes (the quarantine rests on it).
    pub(super) fn prepare_quorum(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<(Arc<super::Opened>, WireKey, u32)> {
        let prepared = self.prepare(ctx, key, ttl)?;
        let max_ttl = prepared.0.config.max_ttl;
        if ttl > max_ttl {
            return Err(Error::bad_request(
                codes::BAD_TTL,
                format!(
                    "ttl of {} ms exceeds options.max_ttl ({} ms), the longest a quorum lock takes",
                    ttl.as_millis(),
                    max_ttl.as_millis()
                ),
            )
            .with_detail("key", key)
            .with_context(ctx));
        }
        Ok(prepared)
    }
}

/// The number of servers that make a majority of `n`.
pub(super) fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Whether `server`'s boot `identity` is younger than the quarantine: its memory may lack
/// locks that are still held, so its answers must not count towards a majority. A boot of
/// unknown age counts as young.
pub(super) fn in_quarantine(
    server: &Endpoint,
    identity: ServerIdentity,
    config: &MemcachedLockConfig,
) -> bool {
    server
        .health()
        .boot_age(identity)
        .is_none_or(|age| age < config.quarantine)
}

/// The clock drift a lease of `ttl` allows for: `options.drift` plus 1 % of the ttl.
pub(super) fn drift(ttl: Duration, config: &MemcachedLockConfig) -> Duration {
    config.drift + ttl / 100
}

/// Sends one request to every server at once; answers arrive as they come, tagged with the
/// server's index.
fn fan_out(
    ctx: &Context,
    servers: &[Arc<Endpoint>],
    request: impl Fn(usize) -> Option<(Request, Call)>,
) -> Fan<(usize, Result<Executed>)> {
    let mut answers = Fan::new();
    for (i, server) in servers.iter().enumerate() {
        let Some((req, call)) = request(i) else {
            continue;
        };
        let (ctx, server) = (ctx.clone(), server.clone());
        answers.push(async move { (i, server.call(&ctx, req, &call).await) });
    }
    answers
}

/// `NO_QUORUM`: no majority could be reached, naming each server and what it answered.
pub(super) fn no_quorum(
    ctx: &Context,
    key: &str,
    servers: &[Arc<Endpoint>],
    answers: &[String],
) -> Error {
    let listed: Vec<String> = servers
        .iter()
        .zip(answers)
        .map(|(s, a)| format!("{}: {a}", s.address()))
        .collect();
    Error::new(
        ErrorKind::Connection,
        NO_QUORUM,
        format!(
            "no majority ({} of {}) of the memcached servers could take part: {}",
            majority(servers.len()),
            servers.len(),
            listed.join("; ")
        ),
    )
    .with_detail("key", key)
    .with_context(ctx)
}

/// Whether `e` could be transient (the retry loop tries again).
pub(super) fn is_outage(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::OutcomeUnknown
    )
}
