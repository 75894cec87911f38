//! The connections to one server: `pool_size` slots, filled on demand, replaced when broken
//! (a failed connect is retried no sooner than `reconnect`), closed when idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commons::{Error, ErrorKind, codes};
use tokio::time::Instant;

use super::connection::Connection;
use super::selector::Distribution;
use super::server::{Probe, probe};

/// The client's tuning knobs (the lock's `options.*`).
#[derive(Debug, Clone)]
pub(crate) struct ClientOptions {
    /// Connections per server (default 5).
    pub(crate) pool_size: usize,
    /// Bounds every operation: connect, send and reply (default 60 s).
    pub(crate) timeout: Duration,
    /// Bounds one TCP connect (default: the same as `timeout`).
    pub(crate) connect_timeout: Duration,
    /// After a failed connect, a slot is not tried again before this much time passed since
    /// that attempt (default 10 s). A connection that worked and then broke is replaced at
    /// once.
    pub(crate) reconnect: Duration,
    /// Retries of an operation that is safe to repeat (default 3).
    pub(crate) retries: u32,
    /// Consecutive failures that mark a server down (default 5).
    pub(crate) failures: u32,
    /// How long a server stays down before it is tried again (default 30 s).
    pub(crate) retry: Duration,
    /// Connections unused for this long are closed; zero disables (default 5 s).
    pub(crate) idle: Duration,
    /// The largest value stored or accepted in a reply (default 1 MiB).
    pub(crate) max_value: usize,
    /// How keys are spread over servers (default ketama).
    pub(crate) distribution: Distribution,
}

impl Default for ClientOptions {
    fn default() -> Self {
        let timeout = Duration::from_secs(60);
        ClientOptions {
            pool_size: 5,
            timeout,
            connect_timeout: timeout,
            reconnect: Duration::from_secs(10),
            retries: 3,
            failures: 5,
            retry: Duration::from_secs(30),
            idle: Duration::from_secs(5),
            max_value: 1024 * 1024,
            distribution: Distribution::Ketama,
        }
    }
}

#[derive(Debug, Default)]
struct SlotState {
    conn: Option<Arc<Connection>>,
    /// The last connect attempt, kept while the slot is in a failed state (a failed connect
    /// or a connection that broke); cleared when a connection is closed as idle.
    last_attempt: Option<Instant>,
}

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    connecting: tokio::sync::Mutex<()>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self) -> Option<Arc<Connection>> {
        let state = self.lock();
        state.conn.as_ref().filter(|c| c.is_alive()).cloned()
    }
}

/// A connection from the pool; `fresh` holds the probe when it was just made.
#[derive(Debug)]
pub(crate) struct Checkout {
    pub(crate) conn: Arc<Connection>,
    pub(crate) fresh: Option<Probe>,
}

/// The connections to one server.
#[derive(Debug)]
pub(crate) struct Pool {
    address: Arc<str>,
    options: ClientOptions,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(address: Arc<str>, options: ClientOptions) -> Pool {
        let size = options.pool_size.max(1);
        Pool {
            address,
            options,
            slots: (0..size).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A live connection, round-robin over the slots; an empty slot is filled (connect and
    /// probe) unless it is waiting out `reconnect` after a failure. Not bounded in time by
    /// itself except by `connect_timeout` and the probe `deadline`: callers add their own.
    pub(crate) async fn get(&self, deadline: Instant) -> Result<Checkout, Error> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let mut throttled_until: Option<Instant> = None;
        let mut candidate: Option<usize> = None;
        for i in (0..n).map(|k| (start + k) % n) {
            let mut state = self.slots[i].lock();
            if let Some(c) = &state.conn {
                if c.is_alive() {
                    if i == start {
                        return Ok(Checkout {
                            conn: c.clone(),
                            fresh: None,
                        });
                    }
                    continue;
                }
                // Broken: replaced (at once, since its connect succeeded).
                state.conn = None;
            }
            match state.last_attempt.map(|t| t + self.options.reconnect) {
                Some(at) if at > now => {
                    throttled_until = Some(throttled_until.map_or(at, |t| t.min(at)));
                }
                _ => {
                    candidate.get_or_insert(i);
                }
            }
        }
        // Fill the round-robin slot when it is empty (the pool grows to `pool_size`),
        // otherwise use any live connection, otherwise fill another empty slot.
        if candidate == Some(start) {
            return self.fill(start, deadline).await;
        }
        if let Some(conn) = self.first_live(start) {
            return Ok(Checkout { conn, fresh: None });
        }
        if let Some(i) = candidate {
            return self.fill(i, deadline).await;
        }
        let wait = throttled_until
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or_default();
        Err(Error::new(
            ErrorKind::Connection,
            codes::CONNECTION_FAILED,
            format!(
                "no connection to memcached at {}: reconnecting is held back for another {wait:?} after a failure (options.reconnect)",
                self.address
            ),
        )
        .with_detail("server", &self.address))
    }

    fn first_live(&self, start: usize) -> Option<Arc<Connection>> {
        let n = self.slots.len();
        (0..n)
            .map(|k| (start + k) % n)
            .find_map(|i| self.slots[i].live())
    }

    async fn fill(&self, i: usize, deadline: Instant) -> Result<Checkout, Error> {
        let slot = &self.slots[i];
        let _guard = match slot.connecting.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone else is connecting this slot: use any live connection, or wait.
                if let Some(conn) = self.first_live(i) {
                    return Ok(Checkout { conn, fresh: None });
                }
                let guard = slot.connecting.lock().await;
                if let Some(conn) = slot.live() {
                    return Ok(Checkout { conn, fresh: None });
                }
                guard
            }
        };
        if let Some(conn) = slot.live() {
            return Ok(Checkout { conn, fresh: None });
        }
        slot.lock().last_attempt = Some(Instant::now());
        let connect_timeout = self
            .options
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let mut conn = Connection::open(
            self.address.clone(),
            connect_timeout,
            self.options.max_value,
        )
        .await?;
        let probed = probe(&conn, deadline).await?;
        conn.set_identity(probed.identity);
        let conn = Arc::new(conn);
        let mut state = slot.lock();
        state.conn = Some(conn.clone());
        // Only failed connects are held back: a connection that worked and later broke is
        // replaced at once (with pool_size=1 a single bad reply would otherwise cut the
        // server off for `reconnect`).
        state.last_attempt = None;
        Ok(Checkout {
            conn,
            fresh: Some(probed),
        })
    }

    /// Marks the slot holding `conn` as failed: the connection is closed and the slot is
    /// filled again on demand.
    pub(crate) fn discard(&self, conn: &Arc<Connection>) {
        conn.close();
        for slot in &self.slots {
            let mut state = slot.lock();
            if state.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                state.conn = None;
            }
        }
    }

    /// Closes connections unused for longer than `idle` with nothing in flight. Returns how
    /// many were closed.
    pub(crate) fn reap_idle(&self, now: Instant) -> usize {
        if self.options.idle.is_zero() {
            return 0;
        }
        let mut closed = 0;
        for slot in &self.slots {
            let mut state = slot.lock();
            let idle = state.conn.as_ref().is_some_and(|c| {
                c.is_alive() && c.in_flight() == 0 && c.idle_for(now) >= self.options.idle
            });
            if idle {
                if let Some(c) = state.conn.take() {
                    c.close();
                }
                // An idle close is not a failure: the slot may reconnect at once.
                state.last_attempt = None;
                closed += 1;
            }
        }
        closed
    }

    /// Live connections right now.
    pub(crate) fn live_count(&self) -> usize {
        self.slots.iter().filter(|s| s.live().is_some()).count()
    }

    /// Closes every connection.
    pub(crate) fn close_all(&self) {
        for slot in &self.slots {
            if let Some(c) = slot.lock().conn.take() {
                c.close();
            }
        }
    }
}
