//! `MemoryLock`, the in-process lock, and `NullLock`, the lock that always succeeds.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use commons::{ConfigParams, Configurable, Context, Error, Result, codes};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::time::Instant;

use crate::telemetry::{AcquireResult, Done, OperationMetrics};
use crate::{Lease, LocalWaiters, Lock, LockInfo, RetryPolicy, acquire_with_retry};

/// The span of one `MemoryLock` operation: at `debug` (the operations take well under a
/// microsecond; a span at `info` would cost more than they do), with `lock.backend`,
/// `lock.key`, `lock.outcome`, `error.type` and `trace_id`. Only evaluated when enabled.
macro_rules! memory_span {
    ($name:literal, $ctx:expr, $key:expr) => {
        tracing::debug_span!(
            $name,
            lock.backend = "memory",
            lock.key = $key,
            lock.outcome = tracing::field::Empty,
            error.type = tracing::field::Empty,
            trace_id = $ctx.trace_id(),
        )
    };
}

/// Records how an operation ended on its span (`outcome` names a success).
fn record_outcome<T>(
    span: &tracing::Span,
    result: &Result<T>,
    outcome: impl FnOnce(&T) -> &'static str,
) {
    if span.is_disabled() {
        return;
    }
    match result {
        Ok(value) => span.record("lock.outcome", outcome(value)),
        Err(e) => span
            .record("lock.outcome", "error")
            .record("error.type", e.code()),
    };
}

fn acquired<T>(got: &Option<T>) -> &'static str {
    if got.is_some() { "acquired" } else { "busy" }
}

fn released(deleted: &bool) -> &'static str {
    if *deleted { "released" } else { "not_ours" }
}

/// The default largest ttl: 30 days, as memcached's relative expiration limit.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Configuration key of the base retry interval, in milliseconds (default 100).
pub const RETRY_TIMEOUT_KEY: &str = "options.retry_timeout";
/// Configuration key of the largest accepted ttl, in milliseconds (default 30 days).
pub const MAX_TTL_KEY: &str = "options.max_ttl";

/// Who holds a key in a [`MemoryLockTable`], until when.
#[derive(Debug, Clone, Copy)]
struct Holder {
    owner: u64,
    token: u128,
    fencing: u64,
    acquired_at: Instant,
    valid_until: Instant,
}

/// The state behind one or more [`MemoryLock`]s: who holds which key.
///
/// Each `MemoryLock` made with [`MemoryLock::new`] has its own table. Instances that must
/// exclude each other (several owners in one process) share one table, passed explicitly
/// with [`MemoryLock::with_table`] or [`MemoryLock::shared_with`]; there is no global table.
///
/// Expired entries are dropped when a caller touches their key, and by a sweep that runs
/// after every `max(1024, live entries at the last sweep)` insertions, so a churn of unique
/// keys cannot grow the table without bound.
///
/// ```
/// use std::sync::Arc;
/// use lock_core::{MemoryLock, MemoryLockTable};
///
/// let table = Arc::new(MemoryLockTable::new());
/// let a = MemoryLock::with_table(table.clone());
/// let b = MemoryLock::with_table(table.clone());
/// assert!(Arc::ptr_eq(a.table(), b.table()));
/// assert!(table.is_empty());
/// ```
pub struct MemoryLockTable {
    entries: DashMap<String, Holder, foldhash::fast::RandomState>,
    /// Last fencing token handed out (tokens start at 1). Written by every acquisition,
    /// so it gets a cache line of its own (the map's header next to it is read by every
    /// operation on every core).
    fencing: Padded<AtomicU64>,
    /// Last owner id handed out.
    owners: AtomicU64,
    /// Insertions since the last sweep (own cache line, as `fencing`).
    inserts: Padded<AtomicUsize>,
    /// Insertions that trigger the next sweep.
    sweep_after: AtomicUsize,
    sweeping: AtomicBool,
    /// Callers of `acquire_lease` waiting for a key, across every owner of this table: a
    /// release by any owner wakes them at once.
    waiters: LocalWaiters,
}

const MIN_SWEEP_INTERVAL: usize = 1024;

/// Keeps a frequently written value on its own cache line(s).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl Default for MemoryLockTable {
    fn default() -> Self {
        MemoryLockTable {
            entries: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            fencing: Padded(AtomicU64::new(0)),
            owners: AtomicU64::new(0),
            inserts: Padded(AtomicUsize::new(0)),
            sweep_after: AtomicUsize::new(MIN_SWEEP_INTERVAL),
            sweeping: AtomicBool::new(false),
            waiters: LocalWaiters::new(),
        }
    }
}

impl fmt::Debug for MemoryLockTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLockTable")
            .field("entries", &self.entries.len())
            .field("last_fencing_token", &self.fencing.load(Ordering::Relaxed))
            .finish()
    }
}

impl MemoryLockTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries in the table, including expired ones not reclaimed yet.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every expired entry now (normally done lazily and by the amortised sweep).
    pub fn purge_expired(&self) {
        let now = Instant::now();
        self.entries.retain(|_, h| h.valid_until > now);
        let live = self.entries.len();
        self.sweep_after
            .store(live.max(MIN_SWEEP_INTERVAL), Ordering::Relaxed);
        self.inserts.store(0, Ordering::Relaxed);
    }

    fn next_owner(&self) -> u64 {
        self.owners.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Called after an insertion (never while holding a map reference).
    fn after_insert(&self) {
        let n = self.inserts.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.sweep_after.load(Ordering::Relaxed)
            && self
                .sweeping
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            self.purge_expired();
            self.sweeping.store(false, Ordering::Release);
        }
    }
}

/// Validated, typed settings of a [`MemoryLock`] or [`NullLock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    retry: RetryPolicy,
    max_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retry: RetryPolicy::default(),
            max_ttl: DEFAULT_MAX_TTL,
        }
    }
}

impl Settings {
    /// Parses every key before anything changes: a bad value leaves the settings alone.
    fn parse(config: &ConfigParams) -> Result<Settings> {
        let mut settings = Settings::default();
        if let Some(retry) = config.get_millis_strict(RETRY_TIMEOUT_KEY)? {
            settings.retry = RetryPolicy::new(retry);
        }
        if let Some(max_ttl) = config.get_millis_strict(MAX_TTL_KEY)? {
            if max_ttl.is_zero() {
                return Err(Error::bad_config_value(
                    MAX_TTL_KEY,
                    config.get(MAX_TTL_KEY).unwrap_or_default(),
                    "a positive number of milliseconds",
                ));
            }
            settings.max_ttl = max_ttl;
        }
        Ok(settings)
    }
}

/// Settings readable on the hot path without a lock.
#[derive(Debug)]
struct AtomicSettings {
    retry_timeout_ns: AtomicU64,
    max_backoff_ns: AtomicU64,
    max_ttl_ns: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl AtomicSettings {
    fn new(s: Settings) -> Self {
        AtomicSettings {
            retry_timeout_ns: AtomicU64::new(nanos(s.retry.retry_timeout)),
            max_backoff_ns: AtomicU64::new(nanos(s.retry.max_backoff)),
            max_ttl_ns: AtomicU64::new(nanos(s.max_ttl)),
        }
    }

    fn store(&self, s: Settings) {
        self.retry_timeout_ns
            .store(nanos(s.retry.retry_timeout), Ordering::Relaxed);
        self.max_backoff_ns
            .store(nanos(s.retry.max_backoff), Ordering::Relaxed);
        self.max_ttl_ns.store(nanos(s.max_ttl), Ordering::Relaxed);
    }

    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            retry_timeout: Duration::from_nanos(self.retry_timeout_ns.load(Ordering::Relaxed)),
            max_backoff: Duration::from_nanos(self.max_backoff_ns.load(Ordering::Relaxed)),
        }
    }

    fn max_ttl(&self) -> Duration {
        Duration::from_nanos(self.max_ttl_ns.load(Ordering::Relaxed))
    }
}

fn check_key(ctx: &Context, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::bad_request(codes::BAD_KEY, "the lock key is empty")
            .with_detail("key", key)
            .with_context(ctx));
    }
    Ok(())
}

/// Validates `ttl` and returns the deadline it gives from `now`.
fn check_ttl(
    ctx: &Context,
    key: &str,
    ttl: Duration,
    max: Duration,
    now: Instant,
) -> Result<Instant> {
    let bad = |why: String| {
        Err(Error::bad_request(codes::BAD_TTL, why)
            .with_detail("key", key)
            .with_detail("ttl_ms", ttl.as_millis())
            .with_context(ctx))
    };
    if ttl.is_zero() {
        return bad("the ttl is zero".to_owned());
    }
    if ttl > max {
        return bad(format!(
            "the ttl of {} ms is above the maximum of {} ms",
            ttl.as_millis(),
            max.as_millis()
        ));
    }
    match now.checked_add(ttl) {
        Some(deadline) => Ok(deadline),
        None => bad("the ttl is too large for the clock".to_owned()),
    }
}

fn token_hex(token: u128) -> String {
    format!("{token:032x}")
}

/// The embedded lock: keys held in a process-local table (a [`DashMap`]).
///
/// Every instance is its own owner: a key taken by one instance can only be released or
/// extended by that instance. Instances made with [`MemoryLock::new`] each have their own
/// table; give several instances one [`MemoryLockTable`] (with [`MemoryLock::with_table`]
/// or [`MemoryLock::shared_with`]) to make them exclude each other.
///
/// [`Lock::acquire_lease`] waits through [`acquire_with_retry`] with the table's
/// [`LocalWaiters`]: one waiter per key polls, and a release by any owner of the table
/// wakes the waiters at once.
///
/// Leases carry a random 128-bit token and a fencing token from a per-table counter.
/// Expiry follows tokio's clock, so tests with a paused clock work.
///
/// Configuration (see [`Configurable`]): `options.retry_timeout` (ms, default 100), the
/// base pause of [`Lock::acquire_lease`]; `options.max_ttl` (ms, default 30 days), the
/// largest ttl accepted. A zero ttl or one above the maximum fails with `BAD_TTL`; an
/// empty key with `BAD_KEY`.
///
/// ```
/// use std::time::Duration;
/// use commons::Context;
/// use lock_core::{Lock, MemoryLock};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> commons::Result<()> {
/// let ctx = Context::new();
/// let a = MemoryLock::new();
/// let b = a.shared_with(); // another owner, same table
/// let ttl = Duration::from_secs(10);
/// assert!(a.try_acquire_lock(&ctx, "orders", ttl).await?);
/// assert!(!b.try_acquire_lock(&ctx, "orders", ttl).await?); // held by a
/// assert!(!b.release_owned(&ctx, "orders").await?); // b cannot release a's lock
/// assert!(a.release_owned(&ctx, "orders").await?);
/// let lease = b.acquire_lease(&ctx, "orders", ttl, Duration::from_secs(1)).await?;
/// assert!(lease.fencing_token.is_some());
/// # Ok(()) }
/// ```
pub struct MemoryLock {
    owner: u64,
    table: Arc<MemoryLockTable>,
    settings: AtomicSettings,
    /// Registered on first use (backend `memory`, mode `local`).
    metrics: OnceLock<OperationMetrics>,
}

impl fmt::Debug for MemoryLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLock")
            .field("owner", &self.owner)
            .field("retry", &self.settings.retry())
            .field("max_ttl", &self.settings.max_ttl())
            .field("table", &self.table)
            .finish()
    }
}

impl Default for MemoryLock {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLock {
    /// A lock with its own, new table.
    pub fn new() -> Self {
        Self::with_table(Arc::new(MemoryLockTable::new()))
    }

    /// A new owner on `table`.
    pub fn with_table(table: Arc<MemoryLockTable>) -> Self {
        MemoryLock {
            owner: table.next_owner(),
            table,
            settings: AtomicSettings::new(Settings::default()),
            metrics: OnceLock::new(),
        }
    }

    /// A new owner on this lock's table, with the same settings.
    pub fn shared_with(&self) -> Self {
        let other = Self::with_table(self.table.clone());
        other.settings.store(Settings {
            retry: self.settings.retry(),
            max_ttl: self.max_ttl(),
        });
        other
    }

    /// The table this lock uses.
    pub fn table(&self) -> &Arc<MemoryLockTable> {
        &self.table
    }

    /// The retry policy of [`Lock::acquire_lease`].
    pub fn retry_policy(&self) -> RetryPolicy {
        self.settings.retry()
    }

    /// The largest accepted ttl.
    pub fn max_ttl(&self) -> Duration {
        self.settings.max_ttl()
    }

    /// One attempt: the new holder record, or `None` on contention.
    fn take(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<Option<Holder>> {
        check_key(ctx, key)?;
        let now = Instant::now();
        let valid_until = check_ttl(ctx, key, ttl, self.settings.max_ttl(), now)?;
        let mut holder = Holder {
            owner: self.owner,
            token: 0,
            fencing: 0,
            acquired_at: now,
            valid_until,
        };
        let inserted = match self.table.entries.entry(key.to_owned()) {
            Entry::Occupied(mut occupied) => {
                if occupied.get().valid_until > now {
                    return Ok(None);
                }
                // Expired: the key is free; reuse the entry.
                holder.token = rand::random();
                holder.fencing = self.table.fencing.fetch_add(1, Ordering::Relaxed) + 1;
                *occupied.get_mut() = holder;
                false
            }
            Entry::Vacant(vacant) => {
                holder.token = rand::random();
                holder.fencing = self.table.fencing.fetch_add(1, Ordering::Relaxed) + 1;
                vacant.insert(holder);
                true
            }
        };
        if inserted {
            self.table.after_insert();
        }
        Ok(Some(holder))
    }

    fn lease(key: &str, ttl: Duration, h: &Holder) -> Lease {
        Lease {
            key: key.to_owned(),
            token: token_hex(h.token),
            fencing_token: Some(h.fencing),
            fencing_unavailable: None,
            ttl,
            acquired_at: h.acquired_at,
            valid_until: h.valid_until,
        }
    }

    /// Releases this owner's entry for `key` (only the acquisition with `token`, when given).
    fn release(&self, ctx: &Context, key: &str, token: Option<u128>) -> Result<bool> {
        check_key(ctx, key)?;
        let now = Instant::now();
        let removed = self.table.entries.remove_if(key, |_, h| {
            (h.owner == self.owner && token.is_none_or(|t| t == h.token)) || h.valid_until <= now
        });
        Ok(match removed {
            // Ours and still valid: released. (An expired entry, ours or not, is only
            // reclaimed: there was nothing of ours to release.)
            Some((_, h)) if h.valid_until > now => {
                self.table.waiters.notify_released(key);
                true
            }
            _ => false,
        })
    }
}

#[async_trait]
impl Lock for MemoryLock {
    async fn try_acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let span = memory_span!("lock.try_acquire", ctx, key);
        let result =
            span.in_scope(|| Ok(self.take(ctx, key, ttl)?.map(|h| Self::lease(key, ttl, &h))));
        record_outcome(&span, &result, acquired);
        self.count_acquire(&result, Option::is_some, None);
        result
    }

    async fn acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Lease> {
        let started = Instant::now();
        let policy = self.settings.retry();
        let span = memory_span!("lock.acquire", ctx, key);
        let result = tracing::Instrument::instrument(
            acquire_with_retry(
                ctx,
                key,
                timeout,
                &policy,
                Some(&self.table.waiters),
                || {
                    let attempt = self
                        .take(ctx, key, ttl)
                        .map(|h| h.map(|h| Self::lease(key, ttl, &h)));
                    std::future::ready(attempt)
                },
            ),
            span.clone(),
        )
        .await;
        record_outcome(&span, &result, |_| "acquired");
        self.count_acquire(&result, |_| true, Some(started.elapsed()));
        result
    }

    async fn release_owned(&self, ctx: &Context, key: &str) -> Result<bool> {
        let span = memory_span!("lock.release", ctx, key);
        let result = span.in_scope(|| self.release(ctx, key, None));
        record_outcome(&span, &result, released);
        self.count_release(&result);
        result
    }

    async fn release_lease(&self, ctx: &Context, lease: &Lease) -> Result<bool> {
        let span = memory_span!("lock.release", ctx, lease.key.as_str());
        let result = span.in_scope(|| match u128::from_str_radix(&lease.token, 16) {
            Ok(token) => self.release(ctx, &lease.key, Some(token)),
            // Not a token this backend made: nothing of that lease can be held here.
            Err(_) => Ok(false),
        });
        record_outcome(&span, &result, released);
        self.count_release(&result);
        result
    }

    async fn extend_lease(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        let span = memory_span!("lock.extend", ctx, key);
        let result = span.in_scope(|| self.extend(ctx, key, ttl));
        record_outcome(&span, &result, |l| {
            if l.is_some() { "extended" } else { "lost" }
        });
        self.metrics().extended(Done::of(&result, Option::is_some));
        result
    }

    async fn inspect_lock(&self, ctx: &Context, key: &str) -> Result<LockInfo> {
        self.inspect(ctx, key)
    }

    // The bool forms skip building a `Lease` (two string allocations) on the hot path.
    async fn try_acquire_lock(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<bool> {
        let span = memory_span!("lock.try_acquire", ctx, key);
        let result = span.in_scope(|| Ok(self.take(ctx, key, ttl)?.is_some()));
        record_outcome(&span, &result, |&got| if got { "acquired" } else { "busy" });
        self.count_acquire(&result, |&got| got, None);
        result
    }

    async fn release_lock(&self, ctx: &Context, key: &str) -> Result<()> {
        let span = memory_span!("lock.release", ctx, key);
        let result = span.in_scope(|| self.release(ctx, key, None));
        record_outcome(&span, &result, released);
        self.count_release(&result);
        result.map(|_| ())
    }
}

impl MemoryLock {
    fn metrics(&self) -> &OperationMetrics {
        self.metrics
            .get_or_init(|| OperationMetrics::register("memory", "local"))
    }

    /// Counts an acquire; only waiting acquires are timed (a try takes well under a
    /// microsecond, less than reading the clock twice).
    fn count_acquire<T>(
        &self,
        result: &Result<T>,
        got: impl FnOnce(&T) -> bool,
        took: Option<Duration>,
    ) {
        self.metrics()
            .acquired(AcquireResult::of(result, got), took);
    }

    fn count_release(&self, result: &Result<bool>) {
        self.metrics()
            .released(Done::of(result, |&deleted| deleted));
    }

    fn extend(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        check_key(ctx, key)?;
        let now = Instant::now();
        let valid_until = check_ttl(ctx, key, ttl, self.settings.max_ttl(), now)?;
        let extended = match self.table.entries.get_mut(key) {
            Some(mut h) if h.owner == self.owner && h.valid_until > now => {
                h.acquired_at = now;
                h.valid_until = valid_until;
                Some(*h)
            }
            _ => None,
        };
        if extended.is_none() {
            // Reclaim the key if it sits there expired.
            self.table
                .entries
                .remove_if(key, |_, h| h.valid_until <= now);
        }
        Ok(extended.map(|h| Self::lease(key, ttl, &h)))
    }

    fn inspect(&self, ctx: &Context, key: &str) -> Result<LockInfo> {
        check_key(ctx, key)?;
        let now = Instant::now();
        let found = self.table.entries.get(key).map(|h| *h);
        Ok(match found {
            Some(h) if h.valid_until > now => LockInfo::held(
                h.owner == self.owner,
                Some(h.valid_until - now),
                Some(format!("memory lock owner #{}", h.owner)),
            ),
            Some(_) => {
                self.table
                    .entries
                    .remove_if(key, |_, h| h.valid_until <= now);
                LockInfo::free()
            }
            None => LockInfo::free(),
        })
    }
}

impl Configurable for MemoryLock {
    /// Reads `options.retry_timeout` and `options.max_ttl` (milliseconds). A bad value is
    /// a `BAD_CONFIG` error naming the key, and changes nothing.
    fn configure(&self, config: &ConfigParams) -> Result<()> {
        self.settings.store(Settings::parse(config)?);
        Ok(())
    }
}

/// A lock that always succeeds: every acquire gets a fresh lease (no fencing token),
/// release does nothing, inspection reports the key free.
///
/// Useful to switch locking off by configuration. Bad input (an empty key, a zero ttl or
/// one above `options.max_ttl`) is still rejected, as with every other lock.
///
/// ```
/// use std::time::Duration;
/// use commons::Context;
/// use lock_core::{Lock, NullLock};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> commons::Result<()> {
/// let ctx = Context::new();
/// let lock = NullLock::new();
/// assert!(lock.try_acquire_lock(&ctx, "k", Duration::from_secs(1)).await?);
/// assert!(lock.try_acquire_lock(&ctx, "k", Duration::from_secs(1)).await?);
/// assert!(!lock.inspect_lock(&ctx, "k").await?.held);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NullLock {
    settings: AtomicSettings,
}

impl Default for NullLock {
    fn default() -> Self {
        Self::new()
    }
}

impl NullLock {
    /// A new null lock.
    pub fn new() -> Self {
        NullLock {
            settings: AtomicSettings::new(Settings::default()),
        }
    }

    fn grant(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<Lease> {
        check_key(ctx, key)?;
        let now = Instant::now();
        let valid_until = check_ttl(ctx, key, ttl, self.settings.max_ttl(), now)?;
        Ok(Lease {
            key: key.to_owned(),
            token: token_hex(rand::random()),
            fencing_token: None,
            fencing_unavailable: None,
            ttl,
            acquired_at: now,
            valid_until,
        })
    }
}

#[async_trait]
impl Lock for NullLock {
    async fn try_acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        self.grant(ctx, key, ttl).map(Some)
    }

    async fn acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        _timeout: Duration,
    ) -> Result<Lease> {
        self.grant(ctx, key, ttl)
    }

    async fn release_owned(&self, ctx: &Context, key: &str) -> Result<bool> {
        check_key(ctx, key)?;
        Ok(false)
    }

    async fn extend_lease(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        self.grant(ctx, key, ttl).map(Some)
    }

    async fn inspect_lock(&self, ctx: &Context, key: &str) -> Result<LockInfo> {
        check_key(ctx, key)?;
        Ok(LockInfo::free())
    }
}

impl Configurable for NullLock {
    /// Validates `options.retry_timeout` and reads `options.max_ttl` (milliseconds), like
    /// [`MemoryLock`], so the two swap by configuration.
    fn configure(&self, config: &ConfigParams) -> Result<()> {
        self.settings.store(Settings::parse(config)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commons::ErrorKind;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A lease on key "k" from `lock`, which must be free.
    async fn free_lease(lock: &dyn Lock, ctx: &Context, ttl: Duration) -> Lease {
        lock.try_acquire_lease(ctx, "k", ttl)
            .await
            .unwrap()
            .expect("k is free")
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_follows_the_tokio_clock() {
        let ctx = Context::new();
        let a = MemoryLock::new();
        let b = a.shared_with();
        let lease = free_lease(&a, &ctx, ms(1000)).await;
        assert_eq!(lease.valid_until - lease.acquired_at, ms(1000));
        assert_eq!(lease.token.len(), 32);
        tokio::time::advance(ms(999)).await;
        assert!(!b.try_acquire_lock(&ctx, "k", ms(1000)).await.unwrap());
        let info = a.inspect_lock(&ctx, "k").await.unwrap();
        assert!(info.held && info.held_by_me);
        assert_eq!(info.remaining_ttl, Some(ms(1)));
        tokio::time::advance(ms(1)).await;
        assert!(!a.inspect_lock(&ctx, "k").await.unwrap().held);
        let next = free_lease(&b, &ctx, ms(1000)).await;
        assert!(next.fencing_token > lease.fencing_token);
        assert_ne!(next.token, lease.token);
        // a's expired lease: release deletes nothing, extend is refused.
        assert!(!a.release_owned(&ctx, "k").await.unwrap());
        assert!(a.extend_lease(&ctx, "k", ms(1000)).await.unwrap().is_none());
        assert!(b.inspect_lock(&ctx, "k").await.unwrap().held_by_me);
    }

    #[tokio::test(start_paused = true)]
    async fn extend_moves_the_deadline_and_keeps_the_token() {
        let ctx = Context::new();
        let a = MemoryLock::new();
        let first = free_lease(&a, &ctx, ms(100)).await;
        tokio::time::advance(ms(50)).await;
        let ext = a.extend_lease(&ctx, "k", ms(1000)).await.unwrap().unwrap();
        assert_eq!(ext.token, first.token);
        assert_eq!(ext.fencing_token, first.fencing_token);
        assert_eq!(ext.valid_until, first.acquired_at + ms(1050));
        tokio::time::advance(ms(500)).await;
        assert!(a.inspect_lock(&ctx, "k").await.unwrap().held);
        assert!(a.release_owned(&ctx, "k").await.unwrap());
        assert!(!a.release_owned(&ctx, "k").await.unwrap());
        assert!(a.table().is_empty());
    }

    #[tokio::test]
    async fn bad_input_is_rejected_and_changes_nothing() {
        let ctx = Context::with_trace_id("bad");
        let a = MemoryLock::new();
        let err = a
            .try_acquire_lock(&ctx, "k", Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::BadRequest, codes::BAD_TTL)
        );
        assert_eq!(err.trace_id(), Some("bad"));
        let err = a
            .try_acquire_lock(&ctx, "k", DEFAULT_MAX_TTL + ms(1))
            .await
            .unwrap_err();
        assert_eq!(err.code(), codes::BAD_TTL);
        assert!(
            a.try_acquire_lock(&ctx, "k", DEFAULT_MAX_TTL)
                .await
                .unwrap()
        );
        let err = a.try_acquire_lock(&ctx, "", ms(10)).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::BadRequest, codes::BAD_KEY)
        );
        let err = a.acquire_lock(&ctx, "", ms(10), ms(10)).await.unwrap_err();
        assert_eq!(err.code(), codes::BAD_KEY);
        let err = a.extend_lock(&ctx, "k", Duration::ZERO).await.unwrap_err();
        assert_eq!(err.code(), codes::BAD_TTL);
        assert!(a.inspect_lock(&ctx, "k").await.unwrap().held);
        assert_eq!(a.table().len(), 1);
    }

    #[tokio::test]
    async fn configure_is_strict_and_atomic() {
        let a = MemoryLock::new();
        a.configure(&ConfigParams::from_string(
            "options.retry_timeout=250;options.max_ttl=5000",
        ))
        .unwrap();
        assert_eq!(a.retry_policy(), RetryPolicy::new(ms(250)));
        assert_eq!(a.max_ttl(), ms(5000));
        let err = a
            .configure(&ConfigParams::from_string(
                "options.retry_timeout=10;options.max_ttl=lots",
            ))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("options.max_ttl"), "{err}");
        assert!(err.to_string().contains("lots"), "{err}");
        let err = a
            .configure(&ConfigParams::from_string("options.retry_timeout=-1"))
            .unwrap_err();
        assert!(err.to_string().contains("options.retry_timeout"), "{err}");
        let err = a
            .configure(&ConfigParams::from_string("options.max_ttl=0"))
            .unwrap_err();
        assert!(err.to_string().contains("options.max_ttl"), "{err}");
        // Nothing changed by the failed calls.
        assert_eq!(a.retry_policy(), RetryPolicy::new(ms(250)));
        assert_eq!(a.max_ttl(), ms(5000));
        let ctx = Context::new();
        assert_eq!(
            a.try_acquire_lock(&ctx, "k", ms(5001))
                .await
                .unwrap_err()
                .code(),
            codes::BAD_TTL
        );
        // An empty configuration restores the defaults.
        a.configure(&ConfigParams::new()).unwrap();
        assert_eq!(a.retry_policy(), RetryPolicy::default());
        assert_eq!(a.max_ttl(), DEFAULT_MAX_TTL);
    }

    /// Acquires the keys `{prefix}-{i}` for every `i` in `ids`, asserting that each is free.
    async fn acquire_fresh_keys(
        a: &MemoryLock,
        ctx: &Context,
        prefix: &str,
        ids: std::ops::Range<u32>,
        ttl: Duration,
    ) {
        for i in ids {
            assert!(
                a.try_acquire_lock(ctx, &format!("{prefix}-{i}"), ttl)
                    .await
                    .unwrap(),
                "{prefix}-{i} was not free"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn churn_of_unique_expiring_keys_does_not_grow_the_table() {
        let ctx = Context::new();
        let a = MemoryLock::new();
        for batch in 0..500u32 {
            acquire_fresh_keys(&a, &ctx, "churn", batch * 100..(batch + 1) * 100, ms(10)).await;
            tokio::time::advance(ms(20)).await;
        }
        // Live entries are at most 100; the sweep runs every >= 1024 insertions.
        assert!(
            a.table().len() <= 1024 + 100,
            "table grew to {}",
            a.table().len()
        );
        tokio::time::advance(ms(20)).await;
        a.table().purge_expired();
        assert!(a.table().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn live_keys_survive_the_sweep() {
        let ctx = Context::new();
        let a = MemoryLock::new();
        acquire_fresh_keys(&a, &ctx, "live", 0..3000, ms(60_000)).await;
        assert_eq!(a.table().len(), 3000);
        let b = a.shared_with();
        assert!(!b.try_acquire_lock(&ctx, "live-0", ms(10)).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_release_wakes_a_waiter_at_once() {
        let ctx = Context::new();
        let a = Arc::new(MemoryLock::new());
        assert!(a.try_acquire_lock(&ctx, "k", ms(60_000)).await.unwrap());
        let waiter = a.clone();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let r = waiter
                .acquire_lease(&Context::new(), "k", ms(60_000), ms(10_000))
                .await;
            (r, start.elapsed())
        });
        tokio::time::sleep(ms(5_000)).await;
        let released_at = Instant::now();
        assert!(a.release_owned(&ctx, "k").await.unwrap());
        let (r, elapsed) = task.await.unwrap();
        assert!(r.is_ok());
        assert!(
            released_at.elapsed() < ms(1),
            "handoff must not wait for a backoff"
        );
        assert!(elapsed >= ms(5_000));
    }

    #[tokio::test]
    async fn separate_instances_have_separate_tables() {
        let ctx = Context::new();
        let a = MemoryLock::new();
        let b = MemoryLock::new();
        assert!(a.try_acquire_lock(&ctx, "k", ms(1000)).await.unwrap());
        assert!(b.try_acquire_lock(&ctx, "k", ms(1000)).await.unwrap());
    }

    #[tokio::test]
    async fn null_lock_always_acquires() {
        let ctx = Context::new();
        let n = NullLock::new();
        let l1 = free_lease(&n, &ctx, ms(1000)).await;
        let l2 = n
            .acquire_lease(&ctx, "k", ms(1000), Duration::ZERO)
            .await
            .unwrap();
        assert_ne!(l1.token, l2.token);
        assert_eq!(l1.fencing_token, None);
        assert!(!n.release_owned(&ctx, "k").await.unwrap());
        n.release_lock(&ctx, "k").await.unwrap();
        assert!(n.extend_lock(&ctx, "k", ms(10)).await.unwrap());
        assert!(!n.inspect_lock(&ctx, "k").await.unwrap().held);
        assert_eq!(
            n.try_acquire_lock(&ctx, "k", Duration::ZERO)
                .await
                .unwrap_err()
                .code(),
            codes::BAD_TTL
        );
        assert!(
            n.configure(&ConfigParams::from_string("options.retry_timeout=x"))
                .is_err()
        );
        n.configure(&ConfigParams::from_string("options.max_ttl=100"))
            .unwrap();
        assert!(n.try_acquire_lock(&ctx, "k", ms(101)).await.is_err());
    }
}
