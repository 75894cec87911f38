//! The connections to one server: `pool_size` slots, filled on demand, replaced when broken
//! (a failed connect is retried no sooner than `reconnect`), closed when idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commons::Error;
use tokio::time::{Instant, timeout_at};

use super::connection::Connection;
use super::probe::probe;
use crate::client::errors::{no_connection_in_time, reconnect_held_back};
use crate::client::identity::Probe;
use crate::client::options::ClientOptions;
use crate::client::tcp::Peer;
use crate::client::transport::ConnectionPool;

#[derive(Debug, Default)]
struct SlotState {
    conn: Option<Arc<Connection>>,
    /// When the last connect of this slot failed; cleared by a connect that works and when
    /// a connection is closed as idle. A connect still in progress is not a failure: callers
    /// wait for it rather than being held back.
    failed_at: Option<Instant>,
}

impl SlotState {
    /// Until when the last failed connect holds the slot back (`None`: it never failed, or
    /// it has connected since).
    fn held_back_until(&self, reconnect: Duration) -> Option<Instant> {
        self.failed_at.map(|at| at + reconnect)
    }
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

/// How long a retired connection waits for the replies still owed on it: a paused server
/// answers when it resumes, and that answer is what tells an abandoned acquire's cleanup
/// what happened.
pub(crate) const RETIRED_LINGER: Duration = Duration::from_secs(600);

/// A connection from the pool, with its probe when it was just made.
type Checkout = (Arc<Connection>, Option<Probe>);

/// The connections to one server.
#[derive(Debug)]
pub(crate) struct Pool {
    peer: Peer,
    options: ClientOptions,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(peer: Peer, options: ClientOptions) -> Pool {
        let size = options.pool_size.max(1);
        Pool {
            peer,
            options,
            slots: (0..size).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A live connection, round-robin over the slots; an empty slot is filled (connect and
    /// probe) unless it is waiting out `reconnect` after a failure. Not bounded in time by
    /// itself except by `connect_timeout` and the probe `deadline`: callers add their own.
    ///
    /// `quiet` (background work): connects regardless of `reconnect`, and its failed connects
    /// hold nobody back.
    pub(crate) async fn get(&self, deadline: Instant, quiet: bool) -> Result<Checkout, Error> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // Read only when a slot must be refilled: the live path reads no clock.
        let mut now = None;
        let mut throttled_until: Option<Instant> = None;
        let mut candidate: Option<usize> = None;
        for i in (0..n).map(|k| (start + k) % n) {
            let mut state = self.slots[i].lock();
            if let Some(c) = &state.conn {
                if c.is_alive() {
                    if i == start {
                        return Ok((c.clone(), None));
                    }
                    continue;
                }
                // Broken: replaced (at once, since its connect succeeded).
                state.conn = None;
            }
            match state.held_back_until(self.options.reconnect) {
                Some(at) if !quiet && at > *now.get_or_insert_with(Instant::now) => {
                    throttled_until = Some(throttled_until.map_or(at, |t| t.min(at)));
                }
                _ => {
                    candidate.get_or_insert(i);
                }
            }
        }
        // Fill the round-robin slot when it is empty (the pool grows to `pool_size`),
        // otherwise use any live connection, otherwise fill another empty slot.
        // Filling (connect, TLS, probe) is boxed: its large future would otherwise be part of
        // every request's, and be moved with it at each await.
        if candidate == Some(start) {
            return Box::pin(self.fill_by(start, deadline, quiet)).await;
        }
        if let Some(conn) = self.first_live(start) {
            return Ok((conn, None));
        }
        if let Some(i) = candidate {
            return Box::pin(self.fill_by(i, deadline, quiet)).await;
        }
        let wait = throttled_until
            .map(|t| t.saturating_duration_since(now.unwrap_or_else(Instant::now)))
            .unwrap_or_default();
        Err(reconnect_held_back(self.peer.name(), wait))
    }

    fn first_live(&self, start: usize) -> Option<Arc<Connection>> {
        let n = self.slots.len();
        (0..n)
            .map(|k| (start + k) % n)
            .find_map(|i| self.slots[i].live())
    }

    /// [`Pool::fill`], bounded by `deadline` (the live path needs no timer).
    async fn fill_by(&self, i: usize, deadline: Instant, quiet: bool) -> Result<Checkout, Error> {
        match timeout_at(deadline, self.fill(i, deadline, quiet)).await {
            Ok(result) => result,
            Err(_) => Err(no_connection_in_time(
                self.peer.name(),
                self.options.timeout,
            )),
        }
    }

    async fn fill(&self, i: usize, deadline: Instant, quiet: bool) -> Result<Checkout, Error> {
        let slot = &self.slots[i];
        let _guard = match slot.connecting.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone else is connecting this slot: use any live connection, or wait.
                if let Some(conn) = self.first_live(i) {
                    return Ok((conn, None));
                }
                let guard = slot.connecting.lock().await;
                if let Some(conn) = slot.live() {
                    return Ok((conn, None));
                }
                guard
            }
        };
        if let Some(conn) = slot.live() {
            return Ok((conn, None));
        }
        if !quiet {
            // A connect that failed while this caller waited for its turn holds it back too
            // (rather than each waiter trying again, one connect timeout after another).
            let held_back = slot.lock().held_back_until(self.options.reconnect);
            if let Some(until) = held_back {
                let now = Instant::now();
                if until > now {
                    return Err(reconnect_held_back(self.peer.name(), until - now));
                }
            }
        }
        let made = self.connect(deadline).await;
        let mut state = slot.lock();
        let (conn, probed) = match made {
            Ok(made) => made,
            Err(e) => {
                // Only a failed connect is held back: one in progress is waited for (see
                // `get`), and background work holds nobody back.
                if !quiet {
                    state.failed_at = Some(Instant::now());
                }
                return Err(e);
            }
        };
        state.conn = Some(conn.clone());
        // Only failed connects are held back: a connection that worked and later broke is
        // replaced at once (with pool_size=1 a single bad reply would otherwise cut the
        // server off for `reconnect`).
        state.failed_at = None;
        Ok((conn, Some(probed)))
    }

    /// Opens a connection and probes it.
    async fn connect(&self, deadline: Instant) -> Result<(Arc<Connection>, Probe), Error> {
        let connect_timeout = self
            .options
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let mut conn = Connection::open(
            &self.peer,
            connect_timeout,
            self.options.max_value,
            self.options.tls.as_deref(),
            self.options.auth.as_deref(),
        )
        .await?;
        let probed = probe(&conn, deadline).await?;
        conn.set_identity(probed.identity);
        Ok((Arc::new(conn), probed))
    }

    /// Takes `conn` out of its slot without closing it: requests already written on it
    /// still get their replies (late receivers wait for them), new ones go elsewhere. It is
    /// closed once nothing is in flight on it, or after [`RETIRED_LINGER`].
    pub(crate) fn retire(&self, conn: &Arc<Connection>) {
        self.unslot(conn);
        let conn = conn.clone();
        tokio::spawn(async move {
            let until = Instant::now() + RETIRED_LINGER;
            while conn.is_alive() && conn.in_flight() > 0 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            conn.close();
        });
    }

    /// Marks the slot holding `conn` as failed: the connection is closed and the slot is
    /// filled again on demand.
    pub(crate) fn discard(&self, conn: &Arc<Connection>) {
        conn.close();
        self.unslot(conn);
    }

    fn unslot(&self, conn: &Arc<Connection>) {
        for slot in &self.slots {
            let mut state = slot.lock();
            if state.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                state.conn = None;
            }
        }
    }
}

impl ConnectionPool for Pool {
    /// Closes connections unused for longer than `idle` with nothing in flight.
    fn reap_idle(&self, now: Instant) {
        if self.options.idle.is_zero() {
            return;
        }
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
                state.failed_at = None;
            }
        }
    }

    /// Live connections right now.
    fn live_count(&self) -> usize {
        self.slots.iter().filter(|s| s.live().is_some()).count()
    }

    /// Closes every connection.
    fn close_all(&self) {
        for slot in &self.slots {
            if let Some(c) = slot.lock().conn.take() {
                c.close();
            }
        }
    }
}
