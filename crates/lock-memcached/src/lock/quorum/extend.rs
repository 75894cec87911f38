//! Quorum extend: owner-checked on every server, re-creating the item (add) on servers that
//! lost it (restart, eviction) where the key is free there, so redundancy is restored. The
//! lease is kept only while a majority outside quarantine confirms it; a failed extend never
//! touches another owner's item.

use std::sync::Arc;
use std::time::Duration;

use commons::{Context, Result};
use lock_core::Lease;
use tokio::time::Instant;

use super::super::expiry;
use super::super::lease::validity;
use super::super::{MemcachedLock, Opened};
use super::release::release_replicas;
use super::{Fan, QuorumHeld, Replica, drift, in_quarantine, majority};
use crate::client::{Call, Endpoint, Reply, Request, SetMode};

impl MemcachedLock {
    /// Extends this instance's quorum lease on `key` to `ttl` from now; `None` when it holds
    /// none, or when no majority confirms it any more (then what is left of it is released).
    pub(in crate::lock) async fn quorum_extend(
        &self,
        ctx: &Context,
        opened: &Opened,
        key: &str,
        (ttl, secs): (Duration, u32),
    ) -> Result<Option<Lease>> {
        let config = &opened.config;
        let _turn = self.quorum_leases.extend_turn(key).await;
        let Some(held) = self.quorum_leases.get(key) else {
            return Ok(None);
        };
        let servers = opened.cluster.servers();
        let started = Instant::now();
        let before = held.replicas().clone();
        let mut renewals = Fan::new();
        for (i, server) in servers.iter().enumerate() {
            let replica = before.get(i).copied().flatten();
            let (ctx, server, held) = (ctx.clone(), server.clone(), held.clone());
            renewals.push(async move {
                (
                    i,
                    renew_on(&ctx, &server, &held, replica, (ttl, secs)).await,
                )
            });
        }
        let mut after = before.clone();
        let mut confirmed = 0;
        let mut valid_until = started + validity(ttl, secs).saturating_sub(drift(ttl, config));
        while let Some((i, outcome)) = renewals.next().await {
            match outcome {
                Renewed::Yes(replica, trusted_until) => {
                    if in_quarantine(&servers[i], replica.identity, config) {
                        servers[i].health().note_quarantine(replica.identity);
                    } else {
                        servers[i].health().note_counted(replica.identity);
                        confirmed += 1;
                    }
                    // Never past when a renewed item may expire by its server's clock.
                    let by_clock = trusted_until
                        .checked_sub(drift(ttl, config))
                        .unwrap_or(started);
                    valid_until = valid_until.min(by_clock);
                    after[i] = Some(replica);
                }
                Renewed::No => after[i] = None,
                // Unknown: the old CAS may still be good, or stale (release reads by token).
                Renewed::Unknown => {}
            }
        }
        *held.replicas() = after;
        if confirmed < majority(servers.len()) || Instant::now() >= valid_until {
            // Lost. What is left of it would only keep others waiting, but it is released
            // only once the lease's last validity has passed: deleting the replicas now would
            // let another owner in while this holder still believes the lease valid (it learns
            // of the loss only when this call returns, a guard a moment later).
            self.quorum_leases.forget(key, &held.value);
            let (servers, held) = (servers.to_vec(), held.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(held.valid_until).await;
                release_replicas(&Context::new(), &servers, &held).await;
            });
            return Ok(None);
        }
        let renewed = QuorumHeld {
            ttl,
            acquired_at: started,
            valid_until,
            gone_by: expiry::certainly_gone_by(secs),
            ..held.clone()
        };
        let lease = renewed.to_lease(key);
        self.quorum_leases.replace(key, &held, renewed);
        Ok(Some(lease))
    }
}

/// What one server says to an extend.
enum Renewed {
    /// This acquisition's item is there, with the new ttl, trusted until the instant.
    Yes(Replica, Instant),
    /// Not there (and someone else's, or nothing creatable).
    No,
    /// No answer: it may or may not have been renewed.
    Unknown,
}

/// Renews the replica (`ms C<cas>`), following its CAS where an earlier extend's reply was
/// lost, or re-creates it (`ms ME`) where the server lost it and the key is free there.
async fn renew_on(
    ctx: &Context,
    server: &Arc<Endpoint>,
    held: &QuorumHeld,
    replica: Option<Replica>,
    (ttl, secs): (Duration, u32),
) -> Renewed {
    let mut cas = replica.map(|r| r.cas);
    for _ in 0..3 {
        let Ok((expiry, sent)) = expiry::expiry_on(ctx, server, secs, Instant::now()).await else {
            return Renewed::Unknown; // nothing was sent; the old CAS stays good
        };
        let (mode, call) = match (cas, replica) {
            (Some(cas), Some(r)) => (SetMode::Cas(cas), Call::once().on(Some(r.identity))),
            _ => (SetMode::Add, Call::once()),
        };
        let request = Request::Set {
            key: held.wire.clone(),
            data: held.value.clone(),
            mode,
            ttl_secs: expiry.wire(),
        };
        let executed = match server.call(ctx, request, &call).await {
            Ok(executed) => executed,
            // Another boot: the replica went with the old one; re-create it on this one.
            Err(e) if e.code() == crate::codes::SERVER_RESTARTED => {
                cas = None;
                continue;
            }
            Err(_) => return Renewed::Unknown,
        };
        match executed.reply {
            Reply::Hd(flags) => {
                return match flags.cas.filter(|&c| c != 0) {
                    Some(cas) => {
                        let (trusted_until, _) = expiry::trusted_until(
                            server,
                            executed.identity,
                            expiry,
                            (sent, executed.arrived),
                            (ttl, secs),
                            None,
                        );
                        Renewed::Yes(
                            Replica {
                                cas,
                                identity: executed.identity,
                            },
                            trusted_until,
                        )
                    }
                    None => Renewed::No,
                };
            }
            // Gone here (expired, evicted): re-create it if the key is free.
            Reply::Nf(_) if cas.is_some() => cas = None,
            // The CAS moved: still ours (an extend whose reply was lost) or someone else's.
            Reply::Ex(_) => match current_cas_if_ours(ctx, server, held).await {
                Some(current) => cas = Some(current),
                None => return Renewed::No,
            },
            _ => return Renewed::No,
        }
    }
    Renewed::Unknown
}

/// The item's CAS on `server` when it holds this acquisition's value.
async fn current_cas_if_ours(ctx: &Context, server: &Endpoint, held: &QuorumHeld) -> Option<u64> {
    let read = Request::Get {
        key: held.wire.clone(),
    };
    match server.call(ctx, read, &Call::repeatable()).await {
        Ok(executed) => match executed.reply {
            Reply::Va { data, flags } if data.as_slice() == held.value.as_ref() => {
                flags.cas.filter(|&c| c != 0)
            }
            _ => None,
        },
        Err(_) => None,
    }
}
