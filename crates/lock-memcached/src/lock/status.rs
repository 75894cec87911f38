//! Diagnostics: the health of every server, for operators.

use std::time::Duration;

use commons::{Context, Result};

use super::MemcachedLock;
use super::quorum::in_quarantine;
use crate::client::{Call, Reply, Request};
use crate::config::LockMode;

/// The health of one memcached server, from [`MemcachedLock::server_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStatus {
    /// `host:port` as configured.
    pub address: String,
    /// The socket address it was resolved to when the lock opened; every connection goes
    /// there.
    pub connects_to: String,
    /// The version it reported when last probed.
    pub version: Option<String>,
    /// Its process id, for diagnostics.
    pub pid: Option<u32>,
    /// Its boot time, Unix seconds (`stats time - uptime`), for diagnostics.
    pub boot_epoch: Option<i64>,
    /// The boot marker in force (`pip-locks:boot`): what tells its boots apart.
    pub boot_marker: Option<String>,
    /// Whether it is marked down after `options.failures` consecutive failures.
    pub down: bool,
    /// Open connections to it.
    pub live_connections: usize,
    /// How often a new connection found a different identity (a restart).
    pub restarts_seen: u32,
    /// Items evicted for memory since it started (any eviction may have taken a lock).
    pub evictions: Option<u64>,
    /// The error of the status request, when it failed.
    pub error: Option<String>,
    /// The protocol spoken to it: `"meta"` or `"classic"` (see `options.protocol`).
    pub protocol: &'static str,
    /// How long the memory of its current boot has existed, as far as this instance knows:
    /// the shorter of its uptime and the age of its boot marker (a `flush_all` or an evicted
    /// marker counts as a restart).
    pub boot_age: Option<Duration>,
    /// Quorum mode only: whether it is in quarantine (its boot younger than
    /// `options.quarantine`), so that its answers do not count towards a majority.
    pub in_quarantine: Option<bool>,
}

impl MemcachedLock {
    /// The health of every server: identity, version, whether it is marked down, live
    /// connections, and fresh `evictions` (locks can vanish under memory pressure: a growing
    /// count is a warning). Servers that do not answer are reported with their error.
    pub async fn server_status(&self, ctx: &Context) -> Result<Vec<ServerStatus>> {
        let opened = self.opened(ctx)?;
        let mut out = Vec::with_capacity(opened.cluster.servers().len());
        for server in opened.cluster.servers() {
            let health = server.health();
            let mut status = ServerStatus {
                address: server.address().to_string(),
                connects_to: server.connects_to().to_string(),
                version: health.version(),
                pid: health.identity().map(|i| i.pid),
                boot_epoch: health.identity().map(|i| i.boot_epoch),
                boot_marker: health.identity().map(|i| format!("{:016x}", i.boot_marker)),
                down: health.is_down(),
                live_connections: server.live_connections(),
                restarts_seen: health.identity_changes(),
                evictions: health.evictions(),
                error: None,
                protocol: server.protocol(),
                boot_age: health.identity().and_then(|id| health.boot_age(id)),
                in_quarantine: (opened.config.mode == LockMode::Quorum).then(|| {
                    health
                        .identity()
                        .is_none_or(|id| in_quarantine(server, id, &opened.config))
                }),
            };
            match server.call(ctx, Request::Stats, &Call::repeatable()).await {
                Ok(executed) => {
                    if let Reply::Stats(pairs) = executed.reply {
                        status.evictions = pairs
                            .iter()
                            .find(|(k, _)| k == "evictions")
                            .and_then(|(_, v)| v.parse().ok());
                    }
                }
                Err(e) => status.error = Some(e.to_string()),
            }
            out.push(status);
        }
        Ok(out)
    }
}
