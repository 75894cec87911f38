//! What lock-core reports through `tracing` and the `metrics` facade (the application
//! installs the subscriber and the recorder; this crate never does). Every name is listed in
//! `docs/observability.md`.
//!
//! - span `lock.renew` (at `debug`): one per renewal of a [`LockGuard`](crate::LockGuard), with
//!   `lock.ttl_ms`, `lock.outcome` (`extended`, `lost`, `error`), `error.type` and
//!   `trace_id`;
//! - event at `warn` when a guard's lease is lost, with `lock.lost_reason` and `trace_id`;
//! - counter [`LEASES_LOST`], label `reason` (`refused`: a renewal was refused;
//!   `expired`: the validity deadline passed without a renewal).

/// Counter: leases of [`LockGuard`](crate::LockGuard)s lost (label `reason`: `refused` or
/// `expired`).
pub const LEASES_LOST: &str = "pip_lock_leases_lost_total";

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
