//! One memcached endpoint: its pool, its identity (which boot of the server we talk to),
//! its health (marked down after repeated failures), and `execute` with timeout and retries.

use std::sync::Arc;

use commons::{Context, Error, ErrorKind, codes};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::codec::{Reply, Request, parse_version};
use super::connection::Connection;
use super::health::{ServerHealth, restarted, spawn_idle_reaper, timed_out};
use super::pool::{ClientOptions, Pool};

/// The oldest memcached whose meta commands the lock can rely on (conditional `md` was
/// broken before 1.6.13).
pub(crate) const MIN_VERSION: (u32, u32, u32) = (1, 6, 13);

/// Code of the error for a value larger than `options.max_value`.
pub(crate) const VALUE_TOO_LARGE: &str = "VALUE_TOO_LARGE";

/// Which boot of a server a connection talks to. CAS values restart from 1 when memcached
/// restarts, so a lease taken from another boot must never be released by CAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ServerIdentity {
    /// The server's process id (`stats pid`).
    pub(crate) pid: u32,
    /// The server's start time in Unix seconds (`stats time - uptime`).
    pub(crate) boot_epoch: i64,
}

/// What probing a new connection learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) version: String,
    pub(crate) identity: ServerIdentity,
    pub(crate) evictions: Option<u64>,
}

/// Sends `version` and `stats` (pipelined) on a new connection, checks the version and reads
/// the identity. Bounded by `deadline`.
pub(crate) async fn probe(conn: &Connection, deadline: Instant) -> Result<Probe, Error> {
    let address = conn.address();
    let timed_out = || {
        Error::new(
            ErrorKind::Timeout,
            codes::TIMEOUT,
            format!("memcached at {address} did not answer version/stats in time"),
        )
        .with_detail("server", address)
    };
    let mut version = conn.send(Request::Version)?;
    let mut stats = conn.send(Request::Stats)?;
    let version = timeout_at(deadline, version.wait())
        .await
        .map_err(|_| timed_out())??;
    let stats = timeout_at(deadline, stats.wait())
        .await
        .map_err(|_| timed_out())??;
    let bad = |what: String| {
        Error::new(
            ErrorKind::Protocol,
            codes::PROTOCOL_ERROR,
            format!("memcached at {address}: {what}"),
        )
        .with_detail("server", address)
    };
    let version = match version {
        Reply::Version(v) => v,
        other => return Err(reply_error(address, other, "version")),
    };
    match parse_version(&version) {
        Some(v) if v >= MIN_VERSION => {}
        _ => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                codes::UNSUPPORTED,
                format!(
                    "memcached at {address} is version {version}; the meta-protocol lock needs memcached 1.6.13 or newer"
                ),
            )
            .with_detail("server", address)
            .with_detail("version", &version));
        }
    }
    let stats = match stats {
        Reply::Stats(s) => s,
        other => return Err(reply_error(address, other, "stats")),
    };
    let get = |name: &str| {
        stats
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str| -> Result<i64, Error> {
        get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| bad(format!("stats has no numeric '{name}'")))
    };
    let pid = u32::try_from(number("pid")?).map_err(|_| bad("stats pid out of range".into()))?;
    let boot_epoch = number("time")? - number("uptime")?;
    let evictions = get("evictions").and_then(|v| v.parse().ok());
    Ok(Probe {
        version,
        identity: ServerIdentity { pid, boot_epoch },
        evictions,
    })
}

/// The error for a reply that reports a failure (or is of no use to the caller).
fn reply_error(address: &str, reply: Reply, command: &str) -> Error {
    let (message, retryable) = match &reply {
        Reply::ServerError(m) => (format!("SERVER_ERROR {m}"), false),
        Reply::ClientError(m) => (format!("CLIENT_ERROR {m}"), false),
        Reply::Error => ("ERROR".to_string(), false),
        other => (format!("unexpected reply {other:?}"), false),
    };
    let code = match reply {
        Reply::ServerError(_) | Reply::ClientError(_) | Reply::Error => codes::SERVER_ERROR,
        _ => codes::PROTOCOL_ERROR,
    };
    Error::new(
        ErrorKind::Protocol,
        code,
        format!("memcached at {address} answered {message} to {command}"),
    )
    .with_detail("server", address)
    .with_retryable(retryable)
}

/// A reply together with the identity of the server boot that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Executed {
    pub(crate) reply: Reply,
    pub(crate) identity: ServerIdentity,
}

/// One memcached endpoint with its pool of connections.
#[derive(Debug)]
pub(crate) struct Server {
    address: Arc<str>,
    options: ClientOptions,
    pool: Arc<Pool>,
    health: ServerHealth,
    reaper: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = &self.reaper {
            r.abort();
        }
        self.pool.close_all();
    }
}

impl Server {
    /// A server at `address` ("host:port"). Connects lazily; must run inside a tokio runtime
    /// (it starts the idle reaper).
    pub(crate) fn new(address: impl Into<Arc<str>>, options: ClientOptions) -> Server {
        let address = address.into();
        let pool = Arc::new(Pool::new(address.clone(), options.clone()));
        let reaper = spawn_idle_reaper(&pool, options.idle, |pool, now| {
            pool.reap_idle(now);
        });
        Server {
            health: ServerHealth::new(address.clone(), options.failures, options.retry),
            address,
            options,
            pool,
            reaper,
        }
    }

    /// "host:port".
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Health and what the probes observed (identity, version, evictions).
    pub(crate) fn health(&self) -> &ServerHealth {
        &self.health
    }

    /// Live connections in the pool.
    pub(crate) fn live_connections(&self) -> usize {
        self.pool.live_count()
    }

    /// Closes every connection (they are re-created on demand).
    pub(crate) fn close(&self) {
        self.pool.close_all();
    }

    /// Opens (or reuses) one connection and probes it: used by `Cluster::connect`.
    pub(crate) async fn check(&self, ctx: &Context) -> Result<ServerIdentity, Error> {
        let deadline = Instant::now() + self.options.timeout;
        let checkout = match timeout_at(deadline, self.pool.get(deadline)).await {
            Ok(r) => r.map_err(|e| e.with_context(ctx))?,
            Err(_) => return Err(self.timeout_error("connecting").with_context(ctx)),
        };
        if let Some(probe) = checkout.fresh {
            self.observe(probe);
        }
        checkout
            .conn
            .identity()
            .ok_or_else(|| Error::internal("connection without identity").with_context(ctx))
    }

    fn observe(&self, probe: Probe) {
        self.health
            .observe(probe.identity, &probe.version, probe.evictions);
    }

    fn timeout_error(&self, while_: &str) -> Error {
        timed_out(&self.address, self.options.timeout, while_)
    }

    /// Sends `req` on one of the pool's connections. Bounded by `options.timeout` overall.
    ///
    /// `expect_identity`: when `Some`, the connection used must have exactly that identity,
    /// otherwise the call fails with `SERVER_RESTARTED` (`ErrorKind::InvalidState`) without
    /// sending anything. `idempotent`: `true` retries (up to `options.retries`) retryable
    /// errors and unknown outcomes; `false` retries only when nothing was sent.
    pub(crate) async fn execute(
        &self,
        ctx: &Context,
        req: Request,
        idempotent: bool,
        expect_identity: Option<ServerIdentity>,
    ) -> Result<Executed, Error> {
        if let Request::Set { data, .. } = &req
            && data.len() > self.options.max_value
        {
            return Err(Error::bad_request(
                VALUE_TOO_LARGE,
                format!(
                    "value of {} bytes is larger than options.max_value ({} bytes)",
                    data.len(),
                    self.options.max_value
                ),
            )
            .with_context(ctx));
        }
        let deadline = Instant::now() + self.options.timeout;
        // Shared with the connection task: a retry does not copy the key and data again.
        let req = Arc::new(req);
        let mut attempt = 0u32;
        loop {
            let result = self.attempt(&req, expect_identity, deadline).await;
            let err = match result {
                Ok(executed) => {
                    self.health.record_success();
                    return Ok(executed);
                }
                Err(err) => err,
            };
            self.health.record_outcome(&err);
            let repeatable = match err.code() {
                codes::SERVER_DOWN | codes::SERVER_RESTARTED => false,
                _ if idempotent => err.is_retryable() || err.kind() == ErrorKind::OutcomeUnknown,
                _ => err.kind() == ErrorKind::Connection,
            };
            if !repeatable || attempt >= self.options.retries || Instant::now() >= deadline {
                return Err(err.with_context(ctx));
            }
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        req: &Arc<Request>,
        expect_identity: Option<ServerIdentity>,
        deadline: Instant,
    ) -> Result<Executed, Error> {
        self.health.check_up()?;
        let checkout = match timeout_at(deadline, self.pool.get(deadline)).await {
            Ok(r) => r?,
            Err(_) => return Err(self.timeout_error("connecting")),
        };
        if let Some(probe) = checkout.fresh {
            self.observe(probe);
        }
        let conn = checkout.conn;
        let Some(identity) = conn.identity() else {
            return Err(Error::internal("connection without identity"));
        };
        if let Some(expected) = expect_identity
            && expected != identity
        {
            return Err(restarted(&self.address, expected, identity));
        }
        let mut pending = match conn.send_shared(req.clone()) {
            Ok(p) => p,
            Err(e) => {
                self.pool.discard(&conn);
                return Err(e);
            }
        };
        match timeout_at(deadline, pending.wait()).await {
            Ok(Ok(reply)) => match reply {
                Reply::ServerError(_) | Reply::ClientError(_) | Reply::Error => {
                    Err(reply_error(&self.address, reply, req.command_name()))
                }
                reply => Ok(Executed { reply, identity }),
            },
            Ok(Err(e)) => {
                if e.kind() != ErrorKind::BadRequest {
                    self.pool.discard(&conn);
                }
                Err(e)
            }
            Err(_) => {
                let sent = pending.abandon();
                // A connection that let a request time out is suspect (paused server,
                // half-open socket): close it; replies still owed are dropped with it.
                self.pool.discard(&conn);
                if sent {
                    Err(Error::new(
                        ErrorKind::OutcomeUnknown,
                        codes::OUTCOME_UNKNOWN,
                        format!(
                            "{} to memcached at {} was sent but no reply came within {:?}: it may or may not have taken effect",
                            req.command_name(),
                            self.address,
                            self.options.timeout
                        ),
                    )
                    .with_detail("server", &self.address)
                    .with_retryable(false))
                } else {
                    Err(self.timeout_error("waiting to send"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
