//! The classic connections to one server: at most `pool_size` in use at once (one request
//! at a time on each), idle ones kept for reuse until `options.idle` passes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use commons::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::conn::ClassicConn;
use crate::client::errors::{connection_error, reconnect_held_back};
use crate::client::identity::Probe;
use crate::client::options::ClientOptions;
use crate::client::tcp::Peer;
use crate::client::transport::ConnectionPool;

/// A connection checked out for one request. Only [`ClassicPool::take_back`] returns it to
/// the pool; dropped any other way (timeout, error, cancelled future) the connection is
/// closed, because memcache-async may have left part of a reply on it.
#[derive(Debug)]
pub(crate) struct CheckedOut {
    pub(crate) conn: ClassicConn,
    /// `None` for a connection made only to answer `stats` (it does not wait for a slot).
    _permit: Option<OwnedSemaphorePermit>,
}

/// The connections to one server.
#[derive(Debug)]
pub(crate) struct ClassicPool {
    peer: Peer,
    options: ClientOptions,
    idle: Mutex<Vec<ClassicConn>>,
    permits: Arc<Semaphore>,
    live: Arc<AtomicUsize>,
    /// When the last connect failed; no new connect before `reconnect` has passed since.
    failed_connect: Mutex<Option<Instant>>,
    /// Bumped by `close_all`: connections of an older generation are not taken back.
    generation: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClassicPool {
    pub(crate) fn new(peer: Peer, options: ClientOptions) -> ClassicPool {
        let size = options.pool_size.max(1);
        ClassicPool {
            peer,
            options,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
            live: Arc::new(AtomicUsize::new(0)),
            failed_connect: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// A connection for one request: an idle healthy one, or a new probed one (then `Some`
    /// probe). Waits for a free slot; callers bound the wait.
    /// `quiet` (background work): connects regardless of `reconnect`, and its failed
    /// connects hold nobody back.
    pub(crate) async fn checkout(
        &self,
        deadline: Instant,
        quiet: bool,
    ) -> Result<(CheckedOut, Option<Probe>), Error> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| {
            connection_error(
                self.peer.name(),
                format!("the pool for {} is closed", self.peer.name()),
            )
        })?;
        loop {
            let candidate = lock(&self.idle).pop();
            match candidate {
                Some(conn) if conn.healthy() => {
                    let out = CheckedOut {
                        conn,
                        _permit: Some(permit),
                    };
                    return Ok((out, None));
                }
                Some(stale) => drop(stale),
                None => break,
            }
        }
        let now = Instant::now();
        if let Some(at) = *lock(&self.failed_connect)
            && at + self.options.reconnect > now
            && !quiet
        {
            let wait = (at + self.options.reconnect).saturating_duration_since(now);
            return Err(reconnect_held_back(self.peer.name(), wait));
        }
        match self.open(deadline).await {
            Ok((conn, probe)) => {
                *lock(&self.failed_connect) = None;
                let out = CheckedOut {
                    conn,
                    _permit: Some(permit),
                };
                Ok((out, Some(probe)))
            }
            Err(e) => {
                if !quiet {
                    *lock(&self.failed_connect) = Some(Instant::now());
                }
                Err(e)
            }
        }
    }

    /// A new connection outside the slots, for `stats` (whose answer is the probe's): it
    /// joins the pool afterwards if there is room.
    pub(crate) async fn fresh(&self, deadline: Instant) -> Result<(CheckedOut, Probe), Error> {
        let (conn, probe) = self.open(deadline).await?;
        let out = CheckedOut {
            conn,
            _permit: None,
        };
        Ok((out, probe))
    }

    async fn open(&self, deadline: Instant) -> Result<(ClassicConn, Probe), Error> {
        let generation = self.generation.load(Ordering::Acquire);
        ClassicConn::open(&self.peer, &self.options, deadline, &self.live, generation).await
    }

    /// Keeps a cleanly used connection for reuse (unless the pool was closed meanwhile or
    /// already holds enough).
    pub(crate) fn take_back(&self, out: CheckedOut) {
        let CheckedOut { mut conn, _permit } = out;
        if conn.generation != self.generation.load(Ordering::Acquire)
            || self.live.load(Ordering::Acquire) > self.options.pool_size.max(1)
        {
            return;
        }
        conn.last_used = Instant::now();
        conn.fresh_stats = None;
        lock(&self.idle).push(conn);
        // The slot frees only now, after the connection is back where the next caller
        // looks for it.
        drop(_permit);
    }
}

impl ConnectionPool for ClassicPool {
    /// Open connections (idle or in use).
    fn live_count(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    fn reap_idle(&self, now: Instant) {
        if self.options.idle.is_zero() {
            return;
        }
        let idle = self.options.idle;
        lock(&self.idle)
            .retain(|c| now.saturating_duration_since(c.last_used) < idle && c.healthy());
    }

    fn close_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.idle).clear();
    }
}
