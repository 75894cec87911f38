//! What lock-core reports through `tracing` and the `metrics` facade (the application
//! installs the subscriber and the recorder; this crate never does). Every name is listed in
//! `docs/observability.md`.
//!
//! - span `lock.renew` (at `debug`): one per renewal of a [`LockGuard`](crate::LockGuard), with
//!   `lock.ttl_ms`, `lock.outcome` (`extended`, `lost`, `error`), `error.type` and
//!   `trace_id`;
//! - event at `warn` when a guard's lease is lost, with `lock.lost_reason` and `trace_id`;
//! - counter [`LEASES_LOST`], label `reason` (`refused`: a renewal was refused;
//!   `expired`: the validity deadline passed without a renewal);
//! - the operation metrics every backend reports ([`OperationMetrics`]: [`ACQUIRES`],
//!   [`ACQUIRE_DURATION`], [`RELEASES`], [`EXTENDS`]; [`HELD_LEASES`] is the backends' own).

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

/// Counter: leases of [`LockGuard`](crate::LockGuard)s lost (label `reason`: `refused` or
/// `expired`).
pub const LEASES_LOST: &str = "pip_lock_leases_lost_total";

use std::fmt;
use std::time::Duration;

use metrics::{Counter, Histogram};

/// Why a guard's lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LostReason {
    /// The backend refused a renewal: the lock is no longer ours.
    Refused,
    /// The validity deadline passed without a successful renewal.
    Expired,
}

impl LostReason {
    pub(crate) fn label(self) -> &'static str {
        match self {
            LostReason::Refused => "refused",
            LostReason::Expired => "expired",
        }
    }
}

/// Reports a lost lease (called once per guard, when the loss is first noticed).
pub(crate) fn lease_lost(reason: LostReason, trace_id: Option<&str>, fencing_token: Option<u64>) {
    metrics::counter!(LEASES_LOST, "reason" => reason.label()).increment(1);
    tracing::warn!(
        lock.lost_reason = reason.label(),
        lock.fencing_token = fencing_token,
        trace_id = trace_id,
        "lock lease lost: the protected work must stop"
    );
}

/// An acquire's result, as a metric label and a span outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireResult {
    /// `acquired`.
    Acquired,
    /// `busy`: a try found the key held.
    Busy,
    /// `timed_out`: a waiting acquire gave up.
    TimedOut,
    /// `error`.
    Error,
}

impl AcquireResult {
    /// The result of an acquire operation that returned `result` (`got`: whether its value
    /// means the lock was taken).
    pub fn of<T>(result: &commons::Result<T>, got: impl FnOnce(&T) -> bool) -> Self {
        match result {
            Ok(value) if got(value) => AcquireResult::Acquired,
            Ok(_) => AcquireResult::Busy,
            Err(e) if e.code() == commons::codes::LOCK_TIMEOUT => AcquireResult::TimedOut,
            Err(_) => AcquireResult::Error,
        }
    }

    const ALL: [AcquireResult; 4] = [
        AcquireResult::Acquired,
        AcquireResult::Busy,
        AcquireResult::TimedOut,
        AcquireResult::Error,
    ];

    /// The `result` label.
    pub fn label(self) -> &'static str {
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
pub enum Done {
    /// `released` / `extended`.
    Yes,
    /// `not_ours` / `lost`.
    No,
    /// `error`.
    Error,
}

impl Done {
    /// The result of a release or an extend that returned `result` (`yes`: whether its value
    /// means it was done).
    pub fn of<T>(result: &commons::Result<T>, yes: impl FnOnce(&T) -> bool) -> Self {
        match result {
            Ok(value) if yes(value) => Done::Yes,
            Ok(_) => Done::No,
            Err(_) => Done::Error,
        }
    }

    const ALL: [Done; 3] = [Done::Yes, Done::No, Done::Error];

    /// The `result` label of a release.
    pub fn release_label(self) -> &'static str {
        match self {
            Done::Yes => "released",
            Done::No => "not_ours",
            Done::Error => "error",
        }
    }

    /// The `result` label of an extend.
    pub fn extend_label(self) -> &'static str {
        match self {
            Done::Yes => "extended",
            Done::No => "lost",
            Done::Error => "error",
        }
    }
}

/// The operation metrics of one lock instance in one mode, registered once (so a recorder
/// must be installed before they are): every backend reports the same names and labels
/// (`backend`, `mode`, `result`), and the hot path only updates the kept handles.
pub struct OperationMetrics {
    acquires: [Counter; 4],
    acquire_duration: [Histogram; 4],
    releases: [Counter; 3],
    extends: [Counter; 3],
}

impl fmt::Debug for OperationMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationMetrics").finish_non_exhaustive()
    }
}

impl OperationMetrics {
    /// Registers the handles for `backend` (`memcached`, `memory`, ...) in `mode`.
    pub fn register(backend: &'static str, mode: &'static str) -> Self {
        let labels =
            |result: &'static str| [("backend", backend), ("mode", mode), ("result", result)];
        OperationMetrics {
            acquires: AcquireResult::ALL.map(|r| metrics::counter!(ACQUIRES, &labels(r.label()))),
            acquire_duration: AcquireResult::ALL
                .map(|r| metrics::histogram!(ACQUIRE_DURATION, &labels(r.label()))),
            releases: Done::ALL.map(|r| metrics::counter!(RELEASES, &labels(r.release_label()))),
            extends: Done::ALL.map(|r| metrics::counter!(EXTENDS, &labels(r.extend_label()))),
        }
    }

    /// Counts an acquire operation and, when it was timed, records how long it took.
    pub fn acquired(&self, result: AcquireResult, took: Option<Duration>) {
        let i = result as usize;
        self.acquires[i].increment(1);
        if let Some(took) = took {
            self.acquire_duration[i].record(took.as_secs_f64());
        }
    }

    /// Counts a release.
    pub fn released(&self, result: Done) {
        self.releases[result as usize].increment(1);
    }

    /// Counts an extend.
    pub fn extended(&self, result: Done) {
        self.extends[result as usize].increment(1);
    }
}
