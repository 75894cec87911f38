//! What `MemcachedLock` reports through `tracing` and the `metrics` facade. The application
//! installs the subscriber and the recorder; this crate never does, and without them every
//! span is disabled and every metric handle is a no-op. `docs/observability.md` lists every
//! span, event and metric with its fields and labels.
//!
//! Metric handles are registered once (per lock instance and mode, per server and command)
//! and kept, so the hot path only updates them; a recorder must therefore be installed before
//! the locks are created and opened. The lock key is never a metric label; in spans it is
//! shown as `options.telemetry_key` says.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use commons::Error;
use md5::{Digest, Md5};
use metrics::{Counter, Histogram};
use tracing::Span;

pub use lock_core::telemetry::LEASES_LOST;

/// Histogram (seconds): one lock operation that acquires (`try_acquire_*`: one attempt;
/// `acquire_*`: every attempt until acquired or timed out). Labels `backend`, `mode`,
/// `result` (`acquired`, `busy`, `timed_out`, `error`).
pub const ACQUIRE_DURATION: &str = "pip_lock_acquire_duration_seconds";
/// Counter: acquire operations by result. Labels `backend`, `mode`, `result`.
pub const ACQUIRES: &str = "pip_lock_acquires_total";
/// Counter: releases by result (`released`, `not_ours`, `error`). Labels `backend`, `mode`,
/// `result`.
pub const RELEASES: &str = "pip_lock_releases_total";
/// Counter: extends by result (`extended`, `lost`, `error`). Labels `backend`, `mode`,
/// `result`.
pub const EXTENDS: &str = "pip_lock_extends_total";
/// Gauge: lease records held by lock instances (several instances add up). Labels
/// `backend`, `mode`.
pub const HELD_LEASES: &str = "pip_lock_held_leases";
/// Histogram (seconds): one request to one memcached server, retries included. Labels
/// `server` (the configured address), `command` (`ms+ma`, `md`, `mg`, ...), `result`
/// (`ok`, `error`).
pub const REQUEST_DURATION: &str = "pip_lock_request_duration_seconds";
/// Counter: acquires whose outcome is unknown (a cleanup undoes them). Label `server`.
pub const OUTCOME_UNKNOWN: &str = "pip_lock_outcome_unknown_total";
/// Counter: server restarts detected (a new connection found another boot). Label `server`.
pub const SERVER_RESTARTS: &str = "pip_lock_server_restarts_total";
/// Gauge: how many open lock instances see a server up (each adds 1 while it has the server
/// not marked down; a closed one takes its 1 back). Label `server`.
pub const SERVERS_UP: &str = "pip_lock_servers_up";

/// The `backend` label of this crate's metrics.
pub(crate) const BACKEND: &str = "memcached";

/// How the lock key appears in spans (`options.telemetry_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TelemetryKey {
    /// `plain` (the default): the key as the caller gave it.
    #[default]
    Plain,
    /// `hash`: the first 16 hex digits of the key's MD5, enough to follow one key across
    /// operations without showing it (a short or guessable key can still be guessed).
    Hash,
    /// `none`: no `lock.key` field.
    Omit,
}

impl TelemetryKey {
    /// Records `key` as `lock.key` on `span`, as this setting says.
    pub(crate) fn record(self, span: &Span, key: &str) {
        match self {
            TelemetryKey::Plain => {
                span.record("lock.key", key);
            }
            TelemetryKey::Hash => {
                span.record("lock.key", hashed(key).as_str());
            }
            TelemetryKey::Omit => {}
        }
    }
}

fn hashed(key: &str) -> String {
    let digest = Md5::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The span of one lock operation: `$name` (`lock.try_acquire`, ...), at `debug` (a subscriber
/// at `info`, the usual default, then pays nothing for it: at `info`, a fmt subscriber halved
/// `parallel` in the benchmark), with the fields every operation span has; those left `Empty` are filled by `MemcachedLock::describe` and at the
/// end of the operation. The values are only evaluated when the span is enabled.
macro_rules! op_span {
    ($name:literal, $op:literal, $mode:expr) => {
        tracing::debug_span!(
            $name,
            db.system.name = "memcached",
            db.operation.name = $op,
            server.address = tracing::field::Empty,
            server.port = tracing::field::Empty,
            lock.key = tracing::field::Empty,
            lock.ttl_ms = tracing::field::Empty,
            lock.mode = $mode,
            lock.protocol = tracing::field::Empty,
            lock.outcome = tracing::field::Empty,
            error.type = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        )
    };
}
pub(crate) use op_span;

/// Records an operation's outcome on its span: `lock.outcome`, and `error.type` (the error's
/// code) for an error.
pub(crate) fn record_outcome(span: &Span, outcome: &'static str, err: Option<&Error>) {
    if span.is_disabled() {
        return;
    }
    span.record("lock.outcome", outcome);
    if let Some(e) = err {
        span.record("error.type", e.code());
    }
}

/// An acquire's result, as a metric label and a span outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcquireResult {
    Acquired,
    Busy,
    TimedOut,
    Error,
}

impl AcquireResult {
    const ALL: [AcquireResult; 4] = [
        AcquireResult::Acquired,
        AcquireResult::Busy,
        AcquireResult::TimedOut,
        AcquireResult::Error,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            AcquireResult::Acquired => "acquired",
            AcquireResult::Busy => "busy",
            AcquireResult::TimedOut => "timed_out",
            AcquireResult::Error => "error",
        }
    }
}

/// A release's or an extend's result: done (`released` / `extended`), refused (`not_ours` /
/// `lost`), or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    Yes,
    No,
    Error,
}

impl Done {
    const ALL: [Done; 3] = [Done::Yes, Done::No, Done::Error];

    pub(crate) fn release_label(self) -> &'static str {
        match self {
            Done::Yes => "released",
            Done::No => "not_ours",
            Done::Error => "error",
        }
    }

    pub(crate) fn extend_label(self) -> &'static str {
        match self {
            Done::Yes => "extended",
            Done::No => "lost",
            Done::Error => "error",
        }
    }
}

/// The handles of one lock instance in one mode, registered on first use.
pub(crate) struct ModeMetrics {
    acquires: [Counter; 4],
    acquire_duration: [Histogram; 4],
    releases: [Counter; 3],
    extends: [Counter; 3],
}

impl fmt::Debug for ModeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModeMetrics").finish_non_exhaustive()
    }
}

impl ModeMetrics {
    fn register(mode: &'static str) -> Self {
        let labels =
            |result: &'static str| [("backend", BACKEND), ("mode", mode), ("result", result)];
        ModeMetrics {
            acquires: AcquireResult::ALL.map(|r| metrics::counter!(ACQUIRES, &labels(r.label()))),
            acquire_duration: AcquireResult::ALL
                .map(|r| metrics::histogram!(ACQUIRE_DURATION, &labels(r.label()))),
            releases: Done::ALL.map(|r| metrics::counter!(RELEASES, &labels(r.release_label()))),
            extends: Done::ALL.map(|r| metrics::counter!(EXTENDS, &labels(r.extend_label()))),
        }
    }

    pub(crate) fn acquired(&self, result: AcquireResult, took: Duration) {
        let i = result as usize;
        self.acquires[i].increment(1);
        self.acquire_duration[i].record(took.as_secs_f64());
    }

    pub(crate) fn released(&self, result: Done) {
        self.releases[result as usize].increment(1);
    }

    pub(crate) fn extended(&self, result: Done) {
        self.extends[result as usize].increment(1);
    }
}

/// The metric handles of one lock instance, one set per mode, each registered on first use.
#[derive(Debug, Default)]
pub(crate) struct LockMetrics {
    sharded: OnceLock<ModeMetrics>,
    quorum: OnceLock<ModeMetrics>,
}

impl LockMetrics {
    pub(crate) fn mode(&self, quorum: bool) -> &ModeMetrics {
        if quorum {
            self.quorum.get_or_init(|| ModeMetrics::register("quorum"))
        } else {
            self.sharded
                .get_or_init(|| ModeMetrics::register("sharded"))
        }
    }
}

/// `"quorum"` or `"sharded"`.
pub(crate) fn mode_label(quorum: bool) -> &'static str {
    if quorum { "quorum" } else { "sharded" }
}

/// Splits a configured `host:port` address into the `server.address` and `server.port`
/// fields.
pub(crate) fn host_and_port(address: &str) -> (&str, Option<u16>) {
    match address.rsplit_once(':') {
        Some((host, port)) => (
            host.trim_start_matches('[').trim_end_matches(']'),
            port.parse().ok(),
        ),
        None => (address, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_key_is_16_hex_digits_and_stable() {
        let h = hashed("orders");
        assert_eq!(h.len(), 16);
        assert_eq!(h, hashed("orders"));
        assert_ne!(h, hashed("orders2"));
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(host_and_port("cache:11211"), ("cache", Some(11211)));
        assert_eq!(host_and_port("[::1]:11211"), ("::1", Some(11211)));
    }
}
