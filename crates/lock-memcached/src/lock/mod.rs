//! `MemcachedLock`, the component. One file per operation, in the order a lock lives:
//!
//! - [`lifecycle`]: configure, set references, open (resolve, connect, probe CAS), close;
//! - [`acquire`]: `ms ME` (the retry loop around it is lock-core's);
//! - [`cleanup`]: an acquire whose outcome is unknown is undone by token;
//! - [`extend`]: `ms C<cas>`;
//! - [`fencing`]: the per-key counter behind fencing tokens;
//! - [`release`]: `md C<cas>`;
//! - [`inspect`]: `mg`, read only;
//! - [`status`]: the servers' health, for operators;
//! - [`quorum`]: the same operations when every key lives on every server;
//! - [`lease`]: what is remembered of each held lock, and the ttl arithmetic;
//! - [`errors`]: the lock layer's own errors.

mod acquire;
mod cleanup;
mod errors;
mod expiry;
mod extend;
mod fencing;
mod force;
mod inspect;
mod lease;
mod lifecycle;
mod quorum;
mod release;
mod status;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use commons::{ConfigParams, Configurable, Context, Error, Openable, References, Result};
use lock_core::{Lease, LocalWaiters, Lock, LockInfo, RetryPolicy, acquire_with_retry};
// tokio's clock, which the lock's own bookkeeping reads: an operation's latency shares its
// readings (see `Moments`).
use tokio::time::Instant;
use tracing::Span;

use crate::client::{Cluster, WireKey};
use crate::config::MemcachedLockConfig;
use crate::key::wire_key;
use crate::telemetry::{
    AcquireResult, Done, LockMetrics, host_and_port, mode_label, op_span, record_outcome,
};
use lease::{LeaseTable, ttl_secs};
use quorum::QuorumHeld;
pub use status::ServerStatus;

/// The key as sent and the ttl in whole seconds, each checked against `config`.
fn checked(
    ctx: &Context,
    key: &str,
    ttl: Duration,
    config: &MemcachedLockConfig,
) -> Result<(WireKey, u32)> {
    let secs = ttl_secs(ctx, ttl, config)?;
    let wire = wire_key(ctx, key, config)?;
    Ok((wire, secs))
}

/// Awaits the future `$fut` inside `$span`, wrapped with `tracing::Instrument` only when the
/// span is enabled: wrapping moves the operation's future (large: it holds every layer down to
/// the socket) twice more, copies the path without a subscriber does not pay (measured with
/// callgrind, about 600 instructions per operation, 9% of `parallel`).
macro_rules! traced {
    ($span:expr, $fut:expr) => {
        if $span.is_disabled() {
            $fut.await
        } else {
            // Boxed: with a subscriber only, and the operation's future stays small without.
            Box::pin(tracing::Instrument::instrument($fut, $span.clone())).await
        }
    };
}

/// When an acquire operation started and when its reply arrived, each read from the clock
/// once and shared by the lock's bookkeeping and the latency histogram.
#[derive(Debug, Clone, Copy)]
pub(super) struct Moments {
    pub(super) started: Instant,
    /// Set when a reply arrived; otherwise the end is read when the operation ends.
    pub(super) ended: Option<Instant>,
}

impl Moments {
    fn now() -> Moments {
        Moments {
            started: Instant::now(),
            ended: None,
        }
    }

    /// How long the operation took.
    fn took(&self) -> Duration {
        self.ended
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(self.started)
    }
}

/// The opened state: the cluster and what the hot path needs, behind one `Arc`.
#[derive(Debug)]
struct Opened {
    cluster: Cluster,
    config: MemcachedLockConfig,
}

/// A distributed lock held in memcached, safe and pipelined.
///
/// * Acquire is one round trip: `ms <key> <len> ME T<secs> c` stores a per-acquisition token
///   only if the key is free, and returns the item's CAS.
/// * Release is one round trip: `md <key> C<cas>` deletes only this owner's item.
/// * Extend is one round trip: `ms <key> <len> C<cas> T<secs> c`.
///
/// Each instance is an owner. Its leases live in a concurrent table; a lease taken from an
/// earlier boot of a server is reported lost, never released by CAS (CAS values restart with
/// the server). See `docs/safety.md` for what memcached cannot guarantee.
///
/// ```no_run
/// use std::time::Duration;
/// use commons::{ConfigParams, Configurable, Context, Openable};
/// use lock_core::Lock;
/// use lock_memcached::MemcachedLock;
///
/// # async fn run() -> commons::Result<()> {
/// let lock = MemcachedLock::new();
/// lock.configure(&ConfigParams::from_tuples([("host", "localhost"), ("port", "11211")]))?;
/// let ctx = Context::with_trace_id("123");
/// lock.open(&ctx).await?;
/// if lock.try_acquire_lock(&ctx, "key1", Duration::from_millis(3000)).await? {
///     // ... do the work that must not run twice ...
///     lock.release_lock(&ctx, "key1").await?;
/// }
/// lock.close(&ctx).await?;
/// # Ok(()) }
/// ```
pub struct MemcachedLock {
    config: RwLock<MemcachedLockConfig>,
    /// The connection part of the configuration, resolved at open (discovery may change).
    connection_config: Mutex<ConfigParams>,
    references: Mutex<Option<References>>,
    opened: RwLock<Option<Arc<Opened>>>,
    open_in_progress: tokio::sync::Mutex<()>,
    leases: Arc<LeaseTable>,
    /// The leases of quorum mode (`options.mode=quorum`).
    quorum_leases: LeaseTable<QuorumHeld>,
    /// Whether the lock was opened in quorum mode (read on every operation, so an atomic
    /// rather than the configuration behind its lock).
    quorum_mode: AtomicBool,
    waiters: LocalWaiters,
    holder: String,
    /// The metric handles of this instance (`crate::telemetry`).
    metrics: LockMetrics,
}

impl fmt::Debug for MemcachedLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedLock")
            .field("open", &self.is_open())
            .field("leases", &self.leases.confirmed_count())
            .finish()
    }
}

impl Default for MemcachedLock {
    fn default() -> Self {
        MemcachedLock {
            config: RwLock::new(MemcachedLockConfig::default()),
            connection_config: Mutex::new(ConfigParams::new()),
            references: Mutex::new(None),
            opened: RwLock::new(None),
            open_in_progress: tokio::sync::Mutex::new(()),
            leases: Arc::new(LeaseTable::counted("sharded")),
            quorum_leases: LeaseTable::counted("quorum"),
            quorum_mode: AtomicBool::new(false),
            waiters: LocalWaiters::new(),
            holder: crate::value::holder_description(),
            metrics: LockMetrics::default(),
        }
    }
}

impl MemcachedLock {
    /// A lock with the default configuration; call `configure` and `open` before use.
    pub fn new() -> Self {
        Self::default()
    }

    /// A lock configured from `config` (a convenience for `new` + `configure`).
    pub fn from_config(config: &ConfigParams) -> Result<Self> {
        let lock = Self::new();
        lock.configure(config)?;
        Ok(lock)
    }

    /// The typed configuration in force.
    pub fn config(&self) -> MemcachedLockConfig {
        read(&self.config).clone()
    }

    /// How many leases this instance holds (by its local table). Acquisitions whose outcome
    /// is unknown, still being cleaned up, are not counted (they still take a place under
    /// `options.max_size` until their cleanup ends).
    pub fn held_count(&self) -> usize {
        self.leases.confirmed_count()
    }

    /// The addresses of the servers in use, once opened.
    pub fn servers(&self) -> Vec<String> {
        read(&self.opened)
            .as_ref()
            .map(|o| {
                o.cluster
                    .servers()
                    .iter()
                    .map(|s| s.address().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The opened state, the key as sent and the ttl in whole seconds, each checked: what
    /// every operation that writes an item starts from.
    fn prepare(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<(Arc<Opened>, WireKey, u32)> {
        let opened = self.opened(ctx)?;
        let (wire, secs) = checked(ctx, key, ttl, &opened.config)?;
        Ok((opened, wire, secs))
    }

    /// One acquire attempt in the mode the lock was opened in, as a `Lease`: what
    /// `try_acquire_lease` returns and each attempt of `acquire_lease` makes.
    async fn attempt_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        moments: &mut Moments,
    ) -> Result<Option<Lease>> {
        if self.is_quorum() {
            let held = Box::pin(self.quorum_acquire_once(ctx, key, ttl)).await?;
            return Ok(held.map(|held| held.to_lease(key)));
        }
        self.acquire_once(ctx, key, ttl, moments, |held| held.to_lease(key))
            .await
    }

    /// Fills the fields of an enabled operation span that need the opened state: the key (as
    /// `options.telemetry_key` says), the ttl, the trace id, and in sharded mode the key's
    /// server and its protocol. Only called when a subscriber wants the span, so the hot path
    /// without one does none of it.
    fn describe(&self, span: &Span, ctx: &Context, key: &str, ttl: Option<Duration>) {
        if let Some(trace_id) = ctx.trace_id() {
            span.record("trace_id", trace_id);
        }
        if let Some(ttl) = ttl {
            span.record("lock.ttl_ms", ttl.as_millis() as u64);
        }
        let Ok(opened) = self.opened(ctx) else {
            return;
        };
        let config = &opened.config;
        config.telemetry_key.record(span, key);
        if self.is_quorum() {
            if let Some(server) = opened.cluster.servers().first() {
                span.record("lock.protocol", server.protocol());
            }
            return;
        }
        if let Ok(wire) = wire_key(ctx, key, config) {
            let server = opened.cluster.server_for(&wire);
            let (host, port) = host_and_port(server.address());
            span.record("server.address", host);
            if let Some(port) = port {
                span.record("server.port", port);
            }
            span.record("lock.protocol", server.protocol());
        }
    }

    /// `span`, described (see [`MemcachedLock::describe`]) when it is enabled.
    fn described(&self, span: Span, ctx: &Context, key: &str, ttl: Option<Duration>) -> Span {
        if !span.is_disabled() {
            self.describe(&span, ctx, key, ttl);
        }
        span
    }

    /// One acquire attempt in the mode the lock was opened in, as a `bool`.
    async fn attempt_bool(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        moments: &mut Moments,
    ) -> Result<bool> {
        if self.is_quorum() {
            return Ok(Box::pin(self.quorum_acquire_once(ctx, key, ttl))
                .await?
                .is_some());
        }
        Ok(self
            .acquire_once(ctx, key, ttl, moments, |_| ())
            .await?
            .is_some())
    }

    /// Records the end of an acquire operation: its span's outcome and the metrics.
    fn acquire_ended<T>(
        &self,
        span: &Span,
        moments: &Moments,
        result: &Result<T>,
        got: impl FnOnce(&T) -> bool,
    ) {
        let outcome = AcquireResult::of(result, got);
        record_outcome(span, outcome.label(), result.as_ref().err());
        self.metrics
            .mode(self.is_quorum())
            .acquired(outcome, Some(moments.took()));
    }

    /// A release (of the key, or of the acquisition with `token`), traced and counted.
    async fn release_traced(&self, ctx: &Context, key: &str, token: Option<&str>) -> Result<bool> {
        let span = self.described(
            op_span!("lock.release", "release", mode_label(self.is_quorum())),
            ctx,
            key,
            None,
        );
        let result = traced!(span, self.release_once(ctx, key, token));
        let done = Done::of(&result, |&deleted| deleted);
        record_outcome(&span, done.release_label(), result.as_ref().err());
        self.metrics.mode(self.is_quorum()).released(done);
        result
    }

    /// The span of a try-acquire (lease or plain).
    fn try_acquire_span(&self, ctx: &Context, key: &str, ttl: Duration) -> tracing::Span {
        self.described(
            op_span!(
                "lock.try_acquire",
                "try_acquire",
                mode_label(self.is_quorum())
            ),
            ctx,
            key,
            Some(ttl),
        )
    }

    fn is_quorum(&self) -> bool {
        self.quorum_mode.load(Ordering::Acquire)
    }

    /// Runs `f` on the opened state, under its read lock and without a copy of its `Arc`
    /// (the hot paths need it only before their first await).
    fn with_opened<T>(&self, ctx: &Context, f: impl FnOnce(&Opened) -> Result<T>) -> Result<T> {
        match &*read(&self.opened) {
            Some(opened) => f(opened),
            None => Err(Error::not_opened("MemcachedLock").with_context(ctx)),
        }
    }

    fn opened(&self, ctx: &Context) -> Result<Arc<Opened>> {
        read(&self.opened)
            .clone()
            .ok_or_else(|| Error::not_opened("MemcachedLock").with_context(ctx))
    }
}

// Each operation lives in its own module; these only route to them (by the mode the lock
// was opened in).
#[async_trait]
impl Lock for MemcachedLock {
    async fn try_acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let mut moments = Moments::now();
        let span = self.try_acquire_span(ctx, key, ttl);
        let result = traced!(span, self.attempt_lease(ctx, key, ttl, &mut moments));
        self.acquire_ended(&span, &moments, &result, Option::is_some);
        result
    }

    // The plain calls skip building a `Lease` and one boxed future: they are the hot path.
    async fn try_acquire_lock(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<bool> {
        let mut moments = Moments::now();
        let span = self.try_acquire_span(ctx, key, ttl);
        let result = if !span.is_disabled() {
            // Boxed, as in `traced!`.
            Box::pin(tracing::Instrument::instrument(
                self.attempt_bool(ctx, key, ttl, &mut moments),
                span.clone(),
            ))
            .await
        } else if self.is_quorum() {
            // Without a subscriber, the attempt is awaited in place (no extra layer to move).
            Box::pin(self.quorum_acquire_once(ctx, key, ttl))
                .await
                .map(|held| held.is_some())
        } else {
            self.acquire_once(ctx, key, ttl, &mut moments, |_| ())
                .await
                .map(|held| held.is_some())
        };
        self.acquire_ended(&span, &moments, &result, |got| *got);
        result
    }

    async fn release_lock(&self, ctx: &Context, key: &str) -> Result<()> {
        self.release_traced(ctx, key, None).await.map(|_| ())
    }

    async fn acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Lease> {
        let moments = Moments::now();
        let span = self.described(
            op_span!("lock.acquire", "acquire", mode_label(self.is_quorum())),
            ctx,
            key,
            Some(ttl),
        );
        let result = traced!(span, async {
            // No separate validation here: each attempt checks the key and ttl, and a bad one
            // is a non-retryable error that ends the retry loop at its first attempt.
            let policy = RetryPolicy::new(self.opened(ctx)?.config.retry_timeout);
            let mut attempts = 0u32;
            // Attempts call `attempt_lease` directly, not the boxed `try_acquire_lease`; each
            // is a `debug` event in the operation's span.
            acquire_with_retry(ctx, key, timeout, &policy, Some(&self.waiters), || {
                attempts += 1;
                let attempt = attempts;
                async move {
                    let result = self.attempt_lease(ctx, key, ttl, &mut Moments::now()).await;
                    tracing::debug!(
                        lock.attempt = attempt,
                        lock.outcome = match &result {
                            Ok(Some(_)) => "acquired",
                            Ok(None) => "busy",
                            Err(_) => "error",
                        },
                        error.type = result.as_ref().err().map(Error::code),
                        "acquire attempt"
                    );
                    result
                }
            })
            .await
        });
        self.acquire_ended(&span, &moments, &result, |_| true);
        result
    }

    async fn release_owned(&self, ctx: &Context, key: &str) -> Result<bool> {
        self.release_traced(ctx, key, None).await
    }

    async fn release_lease(&self, ctx: &Context, lease: &Lease) -> Result<bool> {
        self.release_traced(ctx, &lease.key, Some(&lease.token))
            .await
    }

    async fn extend_lease(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        let span = self.described(
            op_span!("lock.extend", "extend", mode_label(self.is_quorum())),
            ctx,
            key,
            Some(ttl),
        );
        let result = traced!(span, async {
            if self.is_quorum() {
                let (opened, _, secs) = self.prepare_quorum(ctx, key, ttl)?;
                return Box::pin(self.quorum_extend(ctx, &opened, key, (ttl, secs))).await;
            }
            let (_, _, secs) = self.prepare(ctx, key, ttl)?;
            self.extend_held(ctx, key, (ttl, secs)).await
        });
        let done = Done::of(&result, Option::is_some);
        record_outcome(&span, done.extend_label(), result.as_ref().err());
        self.metrics.mode(self.is_quorum()).extended(done);
        result
    }

    async fn inspect_lock(&self, ctx: &Context, key: &str) -> Result<LockInfo> {
        let span = self.described(
            op_span!("lock.inspect", "inspect", mode_label(self.is_quorum())),
            ctx,
            key,
            None,
        );
        let result = traced!(span, async {
            if self.is_quorum() {
                return Box::pin(self.quorum_inspect(ctx, key)).await;
            }
            self.inspect_once(ctx, key).await
        });
        let outcome = match &result {
            Ok(info) if info.held_by_me => "held_by_me",
            Ok(info) if info.held => "held",
            Ok(_) => "free",
            Err(_) => "error",
        };
        record_outcome(&span, outcome, result.as_ref().err());
        result
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod future_sizes {
    use super::*;

    /// A future is moved (copied) whole at each await that starts it, so the common path's
    /// futures must not carry the rare paths (connecting, the clock read, quorum mode, the
    /// classic transport) inline: those are boxed, and a request is put behind its `Arc`
    /// before the futures that carry it are made. Before that, an acquire's future was 2.7 KB
    /// and a release's 3.2 KB, and copying them cost 7% of the client's instructions.
    #[tokio::test]
    async fn the_common_paths_futures_stay_small() {
        const LIMIT: usize = 1024;
        let lock = MemcachedLock::new();
        let ctx = Context::new();
        let mut moments = Moments::now();
        let acquire = lock.acquire_once(&ctx, "k", Duration::from_secs(1), &mut moments, |_| ());
        assert!(size_of_val(&acquire) <= LIMIT, "{}", size_of_val(&acquire));
        drop(acquire);
        let release = lock.release_once(&ctx, "k", None);
        assert!(size_of_val(&release) <= LIMIT, "{}", size_of_val(&release));
    }
}
