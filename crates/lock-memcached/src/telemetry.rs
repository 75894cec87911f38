//! What `MemcachedLock` reports through `tracing` and the `metrics` facade. The application
//! installs the subscriber and the recorder; this crate never does, and without them every
//! span is disabled and every metric handle is a no-op. `docs/observability.md` lists every
//! span, event and metric with its fields and labels.
//!
//! Metric handles are registered once (per lock instance and mode, per server and command)
//! and kept, so the hot path only updates them; a recorder must therefore be installed before
//! the locks are created and opened. The lock key is never a metric label; in spans it is
//! shown as `options.telemetry_key` says.

use std::sync::OnceLock;

use commons::Error;
use md5::{Digest, Md5};
use tracing::Span;

pub(crate) use lock_core::telemetry::{AcquireResult, Done, OperationMetrics};

pub use lock_core::telemetry::{
    ACQUIRE_DURATION, ACQUIRES, EXTENDS, HELD_LEASES, LEASES_LOST, RELEASES,
};

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

/// The metric handles of one lock instance, one set per mode, each registered on first use.
#[derive(Debug, Default)]
pub(crate) struct LockMetrics {
    sharded: OnceLock<OperationMetrics>,
    quorum: OnceLock<OperationMetrics>,
}

impl LockMetrics {
    pub(crate) fn mode(&self, quorum: bool) -> &OperationMetrics {
        if quorum {
            self.quorum
                .get_or_init(|| OperationMetrics::register(BACKEND, "quorum"))
        } else {
            self.sharded
                .get_or_init(|| OperationMetrics::register(BACKEND, "sharded"))
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
