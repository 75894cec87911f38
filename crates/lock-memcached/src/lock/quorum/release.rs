//! Quorum release: owner-checked on every server (by CAS where this acquisition's replica is
//! known, by its token elsewhere); reports whether this owner's lock was deleted anywhere.

use std::sync::Arc;
use std::time::Duration;

use commons::{Context, Result};
use tokio::time::{Instant, sleep};

use super::super::release::delete_if_token;
use super::super::{MemcachedLock, Opened};
use super::{Fan, QuorumHeld, Replica};
use crate::client::{Call, Endpoint, Reply, Request};
use crate::codes::SERVER_RESTARTED;

impl MemcachedLock {
    /// Releases this owner's quorum lock on `key` (only the acquisition with `token`, when
    /// given); whether it was deleted on any server.
    pub(in crate::lock) async fn quorum_release(
        &self,
        ctx: &Context,
        opened: &Opened,
        key: &str,
        token: Option<&str>,
    ) -> Result<bool> {
        let Some(held) = self
            .quorum_leases
            .take_checked(ctx, key, token, &opened.config)?
        else {
            return Ok(false);
        };
        let deleted = release_replicas(ctx, opened.cluster.servers(), &held).await;
        if deleted {
            self.waiters.notify_released(key);
        }
        Ok(deleted)
    }
}

/// Deletes this acquisition's item on every server at once; whether any was deleted.
pub(in crate::lock) async fn release_replicas(
    ctx: &Context,
    servers: &[Arc<Endpoint>],
    held: &QuorumHeld,
) -> bool {
    let replicas = held.take_for_release();
    let mut deletes = Fan::new();
    for (i, server) in servers.iter().enumerate() {
        let replica = replicas.get(i).copied().flatten();
        let (ctx, server, held) = (ctx.clone(), server.clone(), held.clone());
        deletes.push(async move { delete_replica(&ctx, &server, &held, replica).await });
    }
    let mut deleted = false;
    while let Some(answer) = deletes.next().await {
        deleted |= matches!(answer, Ok(true));
    }
    deleted
}

/// `md <key> C<cas>` on the replica's boot, or (replica unknown, or its CAS moved) by token.
pub(super) async fn delete_replica(
    ctx: &Context,
    server: &Endpoint,
    held: &QuorumHeld,
    replica: Option<Replica>,
) -> Result<bool> {
    if let Some(replica) = replica {
        let request = Request::Delete {
            key: held.wire.clone(),
            cas: replica.cas,
        };
        let call = Call::repeatable().on(Some(replica.identity));
        match server.call(ctx, request, &call).await {
            Ok(executed) => match executed.reply {
                Reply::Hd(_) => return Ok(true),
                Reply::Nf(_) => return Ok(false),
                _ => {} // EX: our item under a newer CAS, or someone else's: by token
            },
            // CAS values restarted with the server: the replica went with the old boot.
            Err(e) if e.code() == SERVER_RESTARTED => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    delete_if_token(ctx, server, &held.wire, &held.value, None, false).await
}

/// Servers that may have stored a refused acquisition's item without saying so: read by
/// token (a miss proves nothing) until the item, if stored, has certainly expired.
pub(super) async fn delete_unknown(
    ctx: &Context,
    servers: &[Arc<Endpoint>],
    held: &QuorumHeld,
    unknown: &[usize],
) {
    let mut pause = Duration::from_millis(100);
    let mut left: Vec<usize> = unknown.to_vec();
    while !left.is_empty() && Instant::now() < held.gone_by {
        let mut still = Vec::new();
        for &i in &left {
            let deleted =
                delete_if_token(ctx, &servers[i], &held.wire, &held.value, None, true).await;
            if !matches!(deleted, Ok(true)) {
                still.push(i);
            }
        }
        left = still;
        sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Servers that may have stored a granted acquisition's item without saying so: where the
/// item is ours, it becomes a replica (so extend renews it and release deletes it by CAS).
pub(super) async fn adopt_unknown(
    ctx: &Context,
    servers: &[Arc<Endpoint>],
    held: &QuorumHeld,
    unknown: &[usize],
) {
    for &i in unknown {
        let read = Request::Get {
            key: held.wire.clone(),
        };
        let call = Call {
            quiet: true,
            ..Call::repeatable()
        };
        if let Ok(executed) = servers[i].call(ctx, read, &call).await
            && let Reply::Va { data, flags } = executed.reply
            && data.as_slice() == held.value.as_ref()
            && let Some(cas) = flags.cas.filter(|&c| c != 0)
        {
            let replica = Replica {
                cas,
                identity: executed.identity,
            };
            if !held.join_late(i, replica) {
                // Released meanwhile: this copy goes too.
                let _ = delete_replica(ctx, &servers[i], held, Some(replica)).await;
            }
        }
    }
}
