//! A server's health (failures counted, marked down for `options.retry`) and what the probes
//! of its connections observed (identity, version, evictions), with its clock.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use commons::{Error, ErrorKind, codes};
use metrics::{Counter, Gauge};
use tokio::time::Instant;

use crate::telemetry::{SERVER_RESTARTS, SERVERS_UP};

use super::clock::ServerClock;
use super::identity::ServerIdentity;

#[derive(Debug, Default)]
struct Failures {
    consecutive: u32,
    down_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Observed {
    identity: Option<ServerIdentity>,
    /// When the observed boot's memory came to be, by this process's clock.
    born: Option<Instant>,
    version: Option<String>,
    evictions: Option<u64>,
}

/// The health and last observations of one server.
#[derive(Debug)]
pub(crate) struct ServerHealth {
    address: Arc<str>,
    failures_to_down: u32,
    retry: Duration,
    failures: Mutex<Failures>,
    /// `false` while `failures` records nothing: lets the hot path skip the mutex.
    troubled: AtomicBool,
    observed: Mutex<Observed>,
    identity_changes: AtomicU32,
    clock: ServerClock,
    /// The boot last reported as counted out of a quorum (warned about once per boot).
    quarantine_noted: Mutex<Option<ServerIdentity>>,
    /// Whether that boot was reported in quarantine and not yet out of it: lets the hot path
    /// of a counted answer skip the mutex.
    quarantine_open: AtomicBool,
    /// `pip_lock_servers_up` for this server: this instance adds 1 while it sees the server
    /// up (`counted_up`), so several locks in one process add up and a closed one leaves.
    up: Gauge,
    counted_up: AtomicBool,
    /// `pip_lock_server_restarts_total` for this server.
    restarts: Counter,
}

impl ServerHealth {
    /// Marks the server down after `failures_to_down` consecutive failures, for `retry`.
    pub(crate) fn new(address: Arc<str>, failures_to_down: u32, retry: Duration) -> Self {
        ServerHealth {
            failures_to_down: failures_to_down.max(1),
            retry,
            failures: Mutex::new(Failures::default()),
            troubled: AtomicBool::new(false),
            observed: Mutex::new(Observed::default()),
            identity_changes: AtomicU32::new(0),
            clock: ServerClock::default(),
            quarantine_noted: Mutex::new(None),
            quarantine_open: AtomicBool::new(false),
            up: {
                let up = metrics::gauge!(SERVERS_UP, "server" => address.to_string());
                up.increment(1.0);
                up
            },
            counted_up: AtomicBool::new(true),
            restarts: metrics::counter!(SERVER_RESTARTS, "server" => address.to_string()),
            address,
        }
    }

    /// Reports, once per boot, that `identity` answered while in quarantine and so did not
    /// count towards a quorum.
    pub(crate) fn note_quarantine(&self, identity: ServerIdentity) {
        let mut noted = lock(&self.quarantine_noted);
        if *noted == Some(identity) {
            return;
        }
        *noted = Some(identity);
        self.quarantine_open.store(true, Ordering::Release);
        tracing::warn!(
            server.address = %self.address,
            server.pid = identity.pid,
            "memcached server in quarantine (recently restarted, flushed or its boot marker \
             evicted): its answers do not count towards a majority until its memory is older \
             than options.quarantine"
        );
    }

    /// Reports, once, that the boot `identity`, earlier reported in quarantine, answered
    /// outside it: its answers count towards a quorum again.
    pub(crate) fn note_counted(&self, identity: ServerIdentity) {
        if !self.quarantine_open.load(Ordering::Acquire) {
            return;
        }
        let noted = lock(&self.quarantine_noted);
        if *noted != Some(identity) || !self.quarantine_open.swap(false, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            server.address = %self.address,
            server.pid = identity.pid,
            "memcached server out of quarantine: its answers count towards a majority again"
        );
    }

    /// The identity from the last probe (every new connection is probed).
    pub(crate) fn identity(&self) -> Option<ServerIdentity> {
        lock(&self.observed).identity
    }

    /// What is known of the server's clock, per boot.
    pub(crate) fn clock(&self) -> &ServerClock {
        &self.clock
    }

    /// The version from the last probe.
    pub(crate) fn version(&self) -> Option<String> {
        lock(&self.observed).version.clone()
    }

    /// `stats evictions` from the last probe.
    pub(crate) fn evictions(&self) -> Option<u64> {
        lock(&self.observed).evictions
    }

    /// How many times a new connection reported a different identity than the last known.
    pub(crate) fn identity_changes(&self) -> u32 {
        self.identity_changes.load(Ordering::Relaxed)
    }

    /// How long the boot `identity` has existed, if it is the one observed last.
    pub(crate) fn boot_age(&self, identity: ServerIdentity) -> Option<Duration> {
        let observed = lock(&self.observed);
        if observed.identity != Some(identity) {
            return None;
        }
        observed.born.map(|born| born.elapsed())
    }

    /// Records what a probe of a new connection found.
    pub(crate) fn observe(
        &self,
        identity: ServerIdentity,
        version: &str,
        evictions: Option<u64>,
        boot_age: Option<Duration>,
    ) {
        let mut observed = lock(&self.observed);
        if let Some(old) = observed.identity.filter(|old| *old != identity) {
            self.identity_changes.fetch_add(1, Ordering::Relaxed);
            self.restarts.increment(1);
            tracing::warn!(
                server.address = %self.address,
                server.old_pid = old.pid,
                server.pid = identity.pid,
                "memcached server restarted: leases taken from its earlier boot are lost"
            );
        }
        // The earliest estimate wins for one boot: later probes only confirm it.
        let born = boot_age.and_then(|age| Instant::now().checked_sub(age));
        if observed.identity != Some(identity) || observed.born.is_none() {
            observed.born = born;
        } else if let (Some(known), Some(new)) = (observed.born, born) {
            observed.born = Some(known.min(new));
        }
        observed.identity = Some(identity);
        observed.version = Some(version.to_string());
        observed.evictions = evictions;
    }

    /// Whether the server is marked down right now.
    pub(crate) fn is_down(&self) -> bool {
        self.down_until().is_some()
    }

    /// Until when the server is marked down, if it is.
    pub(crate) fn down_until(&self) -> Option<Instant> {
        if !self.troubled.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.failures)
            .down_until
            .filter(|&t| t > Instant::now())
    }

    /// `SERVER_DOWN` when the server is marked down (nothing is sent then).
    pub(crate) fn check_up(&self) -> Result<(), Error> {
        let Some(until) = self.down_until() else {
            return Ok(());
        };
        let left = until.saturating_duration_since(Instant::now());
        Err(Error::new(
            ErrorKind::Connection,
            codes::SERVER_DOWN,
            format!(
                "memcached at {} is marked down after {} consecutive failures; next try in {left:?} (options.retry)",
                self.address, self.failures_to_down
            ),
        )
        .with_detail("server", &self.address))
    }

    pub(crate) fn record_success(&self) {
        if !self.troubled.load(Ordering::Acquire) {
            return;
        }
        let mut failures = lock(&self.failures);
        failures.consecutive = 0;
        if failures.down_until.take().is_some() {
            self.count_up(true);
            tracing::warn!(server.address = %self.address, "memcached server up again");
        }
        self.troubled.store(false, Ordering::Release);
    }

    /// Counts `err` if it says the server could not be reached or did not answer.
    pub(crate) fn record_outcome(&self, err: &Error) {
        if !counts_as_failure(err) {
            return;
        }
        let mut failures = lock(&self.failures);
        self.troubled.store(true, Ordering::Release);
        failures.consecutive = failures.consecutive.saturating_add(1);
        if failures.consecutive >= self.failures_to_down {
            let now = Instant::now();
            let was_down = failures.down_until.is_some_and(|until| until > now);
            failures.down_until = Some(now + self.retry);
            if !was_down {
                self.count_up(false);
                tracing::warn!(
                    server.address = %self.address,
                    failures = failures.consecutive,
                    retry_ms = self.retry.as_millis() as u64,
                    error.type = err.code(),
                    "memcached server marked down: requests to it fail at once until options.retry"
                );
            }
        }
    }

    /// Moves this instance's share of `pip_lock_servers_up` to `up`.
    fn count_up(&self, up: bool) {
        if self.counted_up.swap(up, Ordering::AcqRel) != up {
            if up {
                self.up.increment(1.0);
            } else {
                self.up.decrement(1.0);
            }
        }
    }
}

impl Drop for ServerHealth {
    // A closed lock no longer reports the server up.
    fn drop(&mut self) {
        self.count_up(false);
    }
}

/// Failures that count towards marking a server down: it could not be reached or did not
/// answer. A server that answers with an error is alive.
fn counts_as_failure(err: &Error) -> bool {
    match err.kind() {
        ErrorKind::Connection => err.code() != codes::SERVER_DOWN,
        ErrorKind::Timeout | ErrorKind::OutcomeUnknown => true,
        ErrorKind::Protocol => err.code() == codes::PROTOCOL_ERROR,
        _ => false,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
