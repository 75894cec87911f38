//! `LockGuard`: a held lease that renews itself and reports when it is lost.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use commons::{Context, Error, ErrorKind, Result, codes};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;
use tracing::field::Empty;

use crate::telemetry::{LostReason, lease_lost};
use crate::{Lease, Lock};

/// Shortest pause between two renewal attempts after a renewal error.
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// A lock held by this process: a [`Lease`] renewed in the background until released.
///
/// * A background task (on the current Tokio runtime) extends the lease every renew
///   interval (default a third of the lease's validity; see
///   [`LockGuardBuilder::renew_interval`]).
/// * The guard is *lost* when a renewal is refused (the backend says the lock is no longer
///   ours) or when the lease's validity deadline passes without a successful renewal
///   (renewal errors are retried until then; a renewal whose reply comes after the
///   deadline is not used). Watch it with [`LockGuard::is_lost`] or [`LockGuard::lost`],
///   which check the deadline themselves (so they are right even while the renewal task
///   cannot run, e.g. during a blocking section on a current-thread runtime), or with
///   [`LockGuard::lost_signal`], which flips when the loss is noticed. Lost is final: the
///   protected work must stop, since another owner may hold the lock.
/// * [`LockGuard::release`] stops renewing and releases the lock. Dropping the guard
///   instead never blocks: it stops renewing and spawns a best-effort release of the lease
///   on the current runtime if there is one; otherwise the ttl frees the lock.
///
/// A lost guard still releases its lease (on [`LockGuard::release`] and on drop): a renewal
/// cut off at the deadline, or answered too late, may have extended the lock at the
/// backend, which would otherwise stay held by nobody for up to the ttl. This is safe
/// because the guard releases through [`Lock::release_lease`], which deletes only the
/// acquisition whose token the lease carries: a key taken again since, by another owner or
/// through this same lock instance, is left alone. (A backend that keeps the default
/// `release_lease`, which forwards to `release_owned`, has no per-acquisition token; see
/// [`Lock::release_lease`].)
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use commons::Context;
/// use lock_core::{Lock, LockGuard, MemoryLock};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> commons::Result<()> {
/// let ctx = Context::new();
/// let lock: Arc<dyn Lock> = Arc::new(MemoryLock::new());
/// let guard = LockGuard::acquire(lock.clone(), &ctx, "orders", Duration::from_secs(3),
///     Duration::from_secs(1)).await?;
/// assert!(!guard.is_lost());
/// assert!(guard.fencing_token().is_some());
/// // ... protected work; check guard.is_lost() (or select on guard.lost()) as you go ...
/// assert!(guard.release().await?);
/// assert!(lock.try_acquire_lock(&ctx, "orders", Duration::from_secs(1)).await?);
/// # Ok(()) }
/// ```
pub struct LockGuard {
    lock: Arc<dyn Lock>,
    ctx: Context,
    key: String,
    lease: watch::Receiver<Lease>,
    lost: watch::Receiver<bool>,
    /// For [`LockGuard::is_lost`] to flip the signal when it notices the deadline.
    lost_tx: watch::Sender<bool>,
    renewal: Option<JoinHandle<()>>,
    renew_interval: Duration,
    released: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("lease", &*self.lease.borrow())
            .field("lost", &self.is_lost())
            .field("lock", &self.lock)
            .finish()
    }
}

/// Options for a [`LockGuard`] before it is acquired.
///
/// The renew interval must fit the lease the backend returns: a backend may guarantee a
/// lease for less than its ttl (its validity, `valid_until - acquired_at`; memcached's is the
/// ttl rounded up to whole seconds minus 1 s, so a ttl of 2 s is valid for 1 s and one of
/// 1 s for none). After obtaining the first lease, if the renew interval is not shorter than
/// that validity (or the validity is zero) the guard could never renew in time: it releases
/// the lease and acquiring fails with `BAD_TTL` (kind bad request), naming the interval, the
/// validity and the ttl. Without an explicit interval the default, a third of the validity,
/// always fits a lease with some validity.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use commons::Context;
/// use lock_core::{LockGuard, MemoryLock};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> commons::Result<()> {
/// let guard = LockGuard::builder(Arc::new(MemoryLock::new()), "report", Duration::from_secs(9))
///     .renew_interval(Duration::from_secs(2))
///     .try_acquire(&Context::new())
///     .await?
///     .expect("the key is free");
/// assert_eq!(guard.renew_interval(), Duration::from_secs(2));
/// guard.release().await?;
/// # Ok(()) }
/// ```
pub struct LockGuardBuilder {
    lock: Arc<dyn Lock>,
    key: String,
    ttl: Duration,
    renew_interval: Option<Duration>,
}

impl fmt::Debug for LockGuardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuardBuilder")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .field("renew_interval", &self.renew_interval)
            .finish()
    }
}

impl LockGuardBuilder {
    /// How often the lease is extended (default: a third of the first lease's validity,
    /// see the type's docs). Must not be zero and must be shorter than the ttl (checked
    /// before acquiring) and than the lease's validity (checked on the first lease, which is
    /// then released); `BAD_TTL` otherwise.
    pub fn renew_interval(mut self, interval: Duration) -> Self {
        self.renew_interval = Some(interval);
        self
    }

    /// What can be checked before acquiring: an explicit renew interval against the ttl,
    /// and the runtime the renewals run on.
    fn preflight(&self, ctx: &Context) -> Result<Handle> {
        if let Some(interval) = self
            .renew_interval
            .filter(|i| i.is_zero() || *i >= self.ttl)
        {
            return Err(Error::bad_request(
                codes::BAD_TTL,
                format!(
                    "the renew interval ({} ms) must be positive and shorter than the ttl ({} ms)",
                    interval.as_millis(),
                    self.ttl.as_millis()
                ),
            )
            .with_detail("key", &self.key)
            .with_detail("ttl_ms", self.ttl.as_millis())
            .with_context(ctx));
        }
        let runtime = Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::Unsupported,
                codes::UNSUPPORTED,
                "a LockGuard renews its lease on a Tokio runtime, and none is running",
            )
            .with_detail("key", &self.key)
            .with_context(ctx)
        })?;
        Ok(runtime)
    }

    /// The renew interval for `lease`: the explicit one or a third of the lease's
    /// validity, which it must be shorter than. Otherwise the lease is released (best
    /// effort: failing that, its ttl frees it) and the error says why.
    async fn interval_for(&self, ctx: &Context, lease: &Lease) -> Result<Duration> {
        let validity = lease
            .valid_until
            .saturating_duration_since(lease.acquired_at);
        let interval = self.renew_interval.unwrap_or(validity / 3);
        if !interval.is_zero() && interval < validity {
            return Ok(interval);
        }
        let released = match self.lock.release_lease(ctx, lease).await {
            Ok(_) => "the lease was released",
            Err(_) => "releasing the lease failed (its ttl frees it)",
        };
        let advice = if validity.is_zero() {
            "use a longer ttl"
        } else {
            "set a renew interval shorter than the validity (or none: the default is a third \
             of the validity), or use a longer ttl"
        };
        Err(Error::bad_request(
            codes::BAD_TTL,
            format!(
                "the renew interval ({} ms){} is not shorter than the lease's validity ({} ms): \
                 the backend's validity is shorter than its ttl ({} ms), so the guard could \
                 never renew the lease in time; {released}; {advice}",
                interval.as_millis(),
                if self.renew_interval.is_none() {
                    ", by default a third of the validity,"
                } else {
                    ""
                },
                validity.as_millis(),
                self.ttl.as_millis(),
            ),
        )
        .with_detail("key", &self.key)
        .with_detail("ttl_ms", self.ttl.as_millis())
        .with_detail("validity_ms", validity.as_millis())
        .with_detail("renew_interval_ms", interval.as_millis())
        .with_context(ctx))
    }

    /// One attempt; `Ok(None)` when someone else holds the key.
    pub async fn try_acquire(self, ctx: &Context) -> Result<Option<LockGuard>> {
        let runtime = self.preflight(ctx)?;
        let lease = self
            .lock
            .try_acquire_lease(ctx, &self.key, self.ttl)
            .await?;
        match lease {
            Some(lease) => LockGuard::start(self, ctx, lease, &runtime).await.map(Some),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the key (`LOCK_TIMEOUT` otherwise).
    pub async fn acquire(self, ctx: &Context, timeout: Duration) -> Result<LockGuard> {
        let runtime = self.preflight(ctx)?;
        let lease = self
            .lock
            .acquire_lease(ctx, &self.key, self.ttl, timeout)
            .await?;
        LockGuard::start(self, ctx, lease, &runtime).await
    }
}

impl LockGuard {
    /// Options (the renew interval) for a guard on `key`.
    pub fn builder(lock: Arc<dyn Lock>, key: &str, ttl: Duration) -> LockGuardBuilder {
        LockGuardBuilder {
            lock,
            key: key.to_owned(),
            ttl,
            renew_interval: None,
        }
    }

    /// One attempt to take `key` for `ttl`; `Ok(None)` when someone else holds it.
    pub async fn try_acquire(
        lock: Arc<dyn Lock>,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<LockGuard>> {
        Self::builder(lock, key, ttl).try_acquire(ctx).await
    }

    /// Takes `key` for `ttl`, waiting up to `timeout` (`LOCK_TIMEOUT` otherwise).
    pub async fn acquire(
        lock: Arc<dyn Lock>,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<LockGuard> {
        Self::builder(lock, key, ttl).acquire(ctx, timeout).await
    }

    /// Starts renewing `lease`, once its validity is known to leave room for the renew
    /// interval (the lease is released otherwise).
    async fn start(
        options: LockGuardBuilder,
        ctx: &Context,
        lease: Lease,
        runtime: &Handle,
    ) -> Result<LockGuard> {
        let interval = options.interval_for(ctx, &lease).await?;
        let (lease_tx, lease_rx) = watch::channel(lease);
        let (lost_tx, lost_rx) = watch::channel(false);
        let renewal = runtime.spawn(renew(
            options.lock.clone(),
            ctx.clone(),
            options.key.clone(),
            options.ttl,
            interval,
            lease_tx,
            lost_tx.clone(),
        ));
        Ok(LockGuard {
            lock: options.lock,
            ctx: ctx.clone(),
            key: options.key,
            lease: lease_rx,
            lost: lost_rx,
            lost_tx,
            renewal: Some(renewal),
            renew_interval: interval,
            released: false,
        })
    }

    /// The key held.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How often the lease is renewed.
    pub fn renew_interval(&self) -> Duration {
        self.renew_interval
    }

    /// The current lease (updated by every successful renewal).
    pub fn lease(&self) -> Lease {
        self.lease.borrow().clone()
    }

    /// The fencing token of the lease, where the backend provides one.
    pub fn fencing_token(&self) -> Option<u64> {
        self.lease.borrow().fencing_token
    }

    /// Whether the lease is lost: a renewal was refused, or the current lease's
    /// `valid_until` has passed, whether or not the renewal task got to run (a blocked
    /// runtime thread, say). Once `true`, it stays `true`: no later renewal is installed.
    /// Noticing the deadline here also flips [`LockGuard::lost_signal`].
    pub fn is_lost(&self) -> bool {
        if *self.lost.borrow() {
            return true;
        }
        if !past_deadline(&self.lease) {
            return false;
        }
        mark_lost(
            &self.lost_tx,
            LostReason::Expired,
            &self.ctx,
            self.fencing_token(),
        );
        true
    }

    /// A watch that turns `true` when the loss is noticed: by the guard's renewal task (at
    /// a refused renewal, or at the deadline when it gets to run) or by a call to
    /// [`LockGuard::is_lost`]. It cannot follow time by itself, so while the task cannot
    /// run it may still read `false` after the deadline: [`LockGuard::is_lost`] and
    /// [`LockGuard::lost`] are the authoritative checks. Its senders are dropped when the
    /// guard is released or dropped.
    pub fn lost_signal(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Completes when the lease is lost (by the current lease's deadline at the latest,
    /// following renewals that move it; at once when polled after it), or once the guard
    /// is released or dropped (the lock is then no longer held either). Does not borrow
    /// the guard.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let (lost, lease) = (self.lost.clone(), self.lease.clone());
        async move {
            let mut wait = std::pin::pin!(wait_until_lost(lost.clone(), lease.clone()));
            // Checked at every poll, so that a poll after the deadline completes even
            // before the timer has fired.
            std::future::poll_fn(|cx| {
                if *lost.borrow() || past_deadline(&lease) {
                    return Poll::Ready(());
                }
                wait.as_mut().poll(cx)
            })
            .await;
        }
    }

    /// Stops renewing and releases the lease, lost or not, with [`Lock::release_lease`]
    /// (token-checked, so a later acquisition of the key is never freed), and returns what
    /// the backend says: `Ok(true)` when it deleted this guard's lock (also after a loss,
    /// when a renewal cut off at the deadline had extended it), `Ok(false)` when it found
    /// nothing of this lease (expired, or taken again).
    pub async fn release(mut self) -> Result<bool> {
        self.released = true;
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
            let _ = renewal.await;
        }
        let lease = self.lease();
        self.lock.release_lease(&self.ctx, &lease).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        // Lost or not: see the type's docs.
        if self.released {
            return;
        }
        if let Ok(runtime) = Handle::try_current() {
            let lock = self.lock.clone();
            let ctx = self.ctx.clone();
            let lease = self.lease();
            // Best effort: an error only means the ttl frees the lock instead.
            runtime.spawn(async move {
                let _ = lock.release_lease(&ctx, &lease).await;
            });
        }
    }
}

/// Whether the lease in `lease` has passed its validity deadline. The clock is read while
/// the lease is borrowed, so a renewal cannot be installed between the two (see `renew`).
fn past_deadline(lease: &watch::Receiver<Lease>) -> bool {
    let current = lease.borrow();
    Instant::now() >= current.valid_until
}

/// Sets the lost flag (once: receivers see one change), and reports the loss the first time.
fn mark_lost(
    lost: &watch::Sender<bool>,
    reason: LostReason,
    ctx: &Context,
    fencing_token: Option<u64>,
) {
    if lost.send_if_modified(|lost| !std::mem::replace(lost, true)) {
        lease_lost(reason, ctx.trace_id(), fencing_token);
    }
}

/// Waits for the lost flag, or for the current lease's deadline (following renewals);
/// also returns once the guard's senders are gone (released or dropped).
async fn wait_until_lost(mut lost: watch::Receiver<bool>, mut lease: watch::Receiver<Lease>) {
    loop {
        if *lost.borrow_and_update() {
            return;
        }
        let deadline = lease.borrow_and_update().valid_until;
        if Instant::now() >= deadline {
            return;
        }
        tokio::select! {
            changed = lost.changed() => if changed.is_err() { return },
            changed = lease.changed() => if changed.is_err() { return },
            () = sleep_until(deadline) => {}
        }
    }
}

/// The renewal task: extends the lease every `interval`, retries errors until the lease's
/// validity deadline, and reports a loss on `lost`. A renewal is installed only while the
/// current lease is still valid (checked under the channel's write lock), so whoever saw the
/// deadline pass never sees a renewed lease afterwards; a reply that comes after the
/// deadline is a loss.
async fn renew(
    lock: Arc<dyn Lock>,
    ctx: Context,
    key: String,
    ttl: Duration,
    interval: Duration,
    lease: watch::Sender<Lease>,
    lost: watch::Sender<bool>,
) {
    let (mut valid_until, mut next) = {
        let current = lease.borrow();
        (current.valid_until, current.acquired_at + interval)
    };
    let retry_pause = (interval / 4).max(MIN_RETRY_PAUSE);
    let reason = loop {
        sleep_until(next.min(valid_until)).await;
        if Instant::now() >= valid_until {
            break LostReason::Expired;
        }
        let span = tracing::debug_span!(
            "lock.renew",
            lock.ttl_ms = ttl.as_millis() as u64,
            lock.outcome = Empty,
            error.type = Empty,
            trace_id = ctx.trace_id(),
        );
        let outcome = tokio::select! {
            outcome = lock.extend_lease(&ctx, &key, ttl).instrument(span.clone()) => outcome,
            _ = sleep_until(valid_until) => {
                span.record("lock.outcome", "lost");
                break LostReason::Expired;
            }
        };
        if !span.is_disabled() {
            match &outcome {
                Ok(Some(_)) => span.record("lock.outcome", "extended"),
                Ok(None) => span.record("lock.outcome", "lost"),
                Err(e) => span
                    .record("lock.outcome", "error")
                    .record("error.type", e.code()),
            };
        }
        match outcome {
            Ok(Some(renewed)) => {
                let renewed_until = renewed.valid_until;
                let installed = lease.send_if_modified(|current| {
                    // Another acquisition of the key (by the same lock instance, after this
                    // lease was lost) is not this guard's lease; and past the deadline the
                    // lease may already have been reported lost.
                    if renewed.token != current.token || Instant::now() >= current.valid_until {
                        return false;
                    }
                    *current = renewed;
                    true
                });
                if !installed {
                    // Past the deadline, or another acquisition's lease.
                    break LostReason::Expired;
                }
                valid_until = renewed_until;
                next = Instant::now() + interval;
            }
            // Refused: the lock is no longer ours.
            Ok(None) => break LostReason::Refused,
            // Maybe transient: try again soon, until the deadline.
            Err(_) => next = Instant::now() + retry_pause,
        }
    };
    let fencing_token = lease.borrow().fencing_token;
    mark_lost(&lost, reason, &ctx, fencing_token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LockInfo, MemoryLock};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Moves the paused clock forward by `d` without yielding, so that no other task runs
    /// meanwhile: what a blocking section (`std::thread::sleep`) does on a current-thread
    /// runtime.
    fn block_for(d: Duration) {
        let before = Instant::now();
        // The first poll moves the clock, then yields; the yield is dropped unfinished.
        let advance = std::pin::pin!(tokio::time::advance(d));
        let _ = advance.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        assert_eq!(Instant::now(), before + d);
    }

    /// Polls `f` once: `Some` when it is complete, without waiting or yielding.
    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        match f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        }
    }

    /// A MemoryLock whose `extend_lease` can be made to fail or hang (`mode`), and whose
    /// leases are certainly valid for `cut` less than their ttl (as memcached's: the ttl
    /// rounded up to whole seconds, minus 1 s; the entries themselves last the whole ttl).
    #[derive(Debug)]
    struct FlakyExtend {
        inner: MemoryLock,
        cut: Duration,
        /// 0: normal, 1: retryable error, 2: never completes, 3: extends at the backend,
        /// then blocks the thread for 700 ms before replying, 4: extends at the backend,
        /// then the reply never arrives.
        mode: AtomicU8,
        extends: AtomicU32,
    }

    impl FlakyExtend {
        fn new() -> Self {
            Self::with_validity_cut(Duration::ZERO)
        }

        fn with_validity_cut(cut: Duration) -> Self {
            FlakyExtend {
                inner: MemoryLock::new(),
                cut,
                mode: AtomicU8::new(0),
                extends: AtomicU32::new(0),
            }
        }

        fn shorten(&self, lease: Lease) -> Lease {
            let valid_until = lease.acquired_at + lease.ttl.saturating_sub(self.cut);
            Lease {
                valid_until,
                ..lease
            }
        }
    }

    #[async_trait]
    impl Lock for FlakyExtend {
        async fn try_acquire_lease(
            &self,
            c: &Context,
            k: &str,
            t: Duration,
        ) -> Result<Option<Lease>> {
            let lease = self.inner.try_acquire_lease(c, k, t).await?;
            Ok(lease.map(|l| self.shorten(l)))
        }
        async fn acquire_lease(
            &self,
            c: &Context,
            k: &str,
            t: Duration,
            w: Duration,
        ) -> Result<Lease> {
            let lease = self.inner.acquire_lease(c, k, t, w).await?;
            Ok(self.shorten(lease))
        }
        async fn release_owned(&self, c: &Context, k: &str) -> Result<bool> {
            self.inner.release_owned(c, k).await
        }
        async fn extend_lease(&self, c: &Context, k: &str, t: Duration) -> Result<Option<Lease>> {
            self.extends.fetch_add(1, Ordering::SeqCst);
            match self.mode.load(Ordering::SeqCst) {
                0 => Ok(self
                    .inner
                    .extend_lease(c, k, t)
                    .await?
                    .map(|l| self.shorten(l))),
                1 => Err(Error::new(
                    ErrorKind::Connection,
                    codes::CONNECTION_FAILED,
                    "down",
                )),
                2 => std::future::pending().await,
                3 => {
                    let renewed = self.inner.extend_lease(c, k, t).await;
                    block_for(ms(700));
                    renewed
                }
                _ => {
                    self.inner.extend_lease(c, k, t).await?;
                    std::future::pending().await
                }
            }
        }
        async fn release_lease(&self, c: &Context, l: &Lease) -> Result<bool> {
            self.inner.release_lease(c, l).await
        }
        async fn inspect_lock(&self, c: &Context, k: &str) -> Result<LockInfo> {
            self.inner.inspect_lock(c, k).await
        }
    }

    /// A guard on key "k" for 300 ms (renewed every 100 ms), and another owner on the same
    /// table.
    async fn guard_on_k_for_300_ms(ctx: &Context) -> (LockGuard, MemoryLock) {
        let mem = MemoryLock::new();
        let other = mem.shared_with();
        let guard = LockGuard::acquire(Arc::new(mem), ctx, "k", ms(300), ms(0))
            .await
            .unwrap();
        (guard, other)
    }

    /// A guard on key "k" (ttl 900 ms, renewed every 300 ms) over a fresh `FlakyExtend`,
    /// whose extend mode is then set to `mode`; the lease is still the first one.
    async fn guard_over_flaky(mode: u8) -> (Arc<FlakyExtend>, LockGuard) {
        let flaky = Arc::new(FlakyExtend::new());
        let guard = LockGuard::acquire(flaky.clone(), &Context::new(), "k", ms(900), ms(0))
            .await
            .unwrap();
        flaky.mode.store(mode, Ordering::SeqCst);
        (flaky, guard)
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_keeps_the_lock_past_its_ttl() {
        let ctx = Context::new();
        let mem = MemoryLock::new();
        let other = mem.shared_with();
        let lock: Arc<dyn Lock> = Arc::new(mem);
        let guard = LockGuard::acquire(lock.clone(), &ctx, "k", ms(300), ms(0))
            .await
            .unwrap();
        assert_eq!(guard.renew_interval(), ms(100));
        let first = guard.lease();
        tokio::time::sleep(ms(1000)).await;
        assert!(!guard.is_lost());
        assert!(!other.try_acquire_lock(&ctx, "k", ms(300)).await.unwrap());
        let now = guard.lease();
        assert!(
            now.valid_until > first.valid_until + ms(600),
            "{now:?} vs {first:?}"
        );
        assert!(now.is_valid());
        assert_eq!(now.fencing_token, first.fencing_token);
        assert!(guard.release().await.unwrap());
        assert!(other.try_acquire_lock(&ctx, "k", ms(300)).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_renewal_fires_the_lost_signal() {
        let ctx = Context::new();
        let mem = Arc::new(MemoryLock::new());
        let other = mem.shared_with();
        let guard = LockGuard::acquire(mem.clone(), &ctx, "k", ms(900), ms(0))
            .await
            .unwrap();
        let lost = guard.lost();
        let mut signal = guard.lost_signal();
        // The lock is taken away behind the guard's back.
        assert!(mem.release_owned(&ctx, "k").await.unwrap());
        assert!(other.try_acquire_lock(&ctx, "k", ms(60_000)).await.unwrap());
        let start = Instant::now();
        lost.await;
        assert!(
            start.elapsed() <= ms(300),
            "lost at the first renewal: {:?}",
            start.elapsed()
        );
        assert!(guard.is_lost());
        assert!(*signal.borrow_and_update());
        // Releasing a lost guard does not touch the new holder's lock.
        assert!(!guard.release().await.unwrap());
        assert!(other.inspect_lock(&ctx, "k").await.unwrap().held_by_me);
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_errors_are_retried_until_the_deadline_then_lost() {
        let (flaky, guard) = guard_over_flaky(1).await;
        let valid_until = guard.lease().valid_until;
        guard.lost().await;
        assert_eq!(
            Instant::now(),
            valid_until,
            "lost exactly at the validity deadline"
        );
        // First renewal at 300 ms, then every 75 ms until 900 ms: 9 attempts.
        let attempts = flaky.extends.load(Ordering::SeqCst);
        assert!((8..=10).contains(&attempts), "{attempts} renewal attempts");
        assert!(!guard.release().await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_renewal_error_is_recovered() {
        let (flaky, guard) = guard_over_flaky(1).await;
        tokio::time::sleep(ms(500)).await;
        flaky.mode.store(0, Ordering::SeqCst);
        tokio::time::sleep(ms(2000)).await;
        assert!(!guard.is_lost());
        assert!(guard.lease().is_valid());
        assert!(guard.release().await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_renewal_is_lost_at_the_deadline() {
        let (flaky, guard) = guard_over_flaky(2).await;
        let valid_until = guard.lease().valid_until;
        guard.lost().await;
        assert_eq!(Instant::now(), valid_until);
        assert_eq!(flaky.extends.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn drop_releases_in_the_background() {
        let ctx = Context::new();
        let mem = MemoryLock::new();
        let other = mem.shared_with();
        let guard = LockGuard::try_acquire(Arc::new(mem), &ctx, "k", ms(60_000))
            .await
            .unwrap();
        let guard = guard.expect("free key");
        let lost = guard.lost();
        drop(guard);
        tokio::task::yield_now().await;
        assert!(other.try_acquire_lock(&ctx, "k", ms(1000)).await.unwrap());
        lost.await; // completes once the guard is gone
    }

    #[test]
    fn drop_without_a_runtime_does_not_block_and_the_ttl_frees_the_lock() {
        let mem = Arc::new(MemoryLock::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let guard = runtime
            .block_on(LockGuard::acquire(
                mem.clone(),
                &Context::new(),
                "k",
                ms(200),
                ms(0),
            ))
            .unwrap();
        drop(runtime);
        drop(guard); // no runtime: nothing spawned, no panic
        assert_eq!(mem.table().len(), 1, "the entry stays until its ttl");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::sleep(ms(250)).await;
            let other = mem.shared_with();
            assert!(
                other
                    .try_acquire_lock(&Context::new(), "k", ms(200))
                    .await
                    .unwrap()
            );
        });
    }

    #[tokio::test]
    async fn try_acquire_on_a_held_key_is_none() {
        let ctx = Context::new();
        let mem = MemoryLock::new();
        let other = Arc::new(mem.shared_with());
        assert!(mem.try_acquire_lock(&ctx, "k", ms(60_000)).await.unwrap());
        assert!(
            LockGuard::try_acquire(other.clone(), &ctx, "k", ms(1000))
                .await
                .unwrap()
                .is_none()
        );
        let err = LockGuard::acquire(other, &ctx, "k", ms(1000), ms(0))
            .await
            .unwrap_err();
        assert_eq!(err.code(), codes::LOCK_TIMEOUT);
    }

    #[tokio::test]
    async fn a_bad_renew_interval_is_rejected_before_acquiring() {
        let ctx = Context::with_trace_id("g");
        let mem = Arc::new(MemoryLock::new());
        for interval in [ms(0), ms(1000), ms(5000)] {
            let err = LockGuard::builder(mem.clone(), "k", ms(1000))
                .renew_interval(interval)
                .try_acquire(&ctx)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest);
            assert_eq!(err.trace_id(), Some("g"));
        }
        assert!(mem.table().is_empty());
        let err = LockGuard::try_acquire(mem.clone(), &ctx, "k", Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert!(mem.table().is_empty());
    }

    // --- Lost follows the deadline, not only the renewal task ----------------------------

    #[tokio::test(start_paused = true)]
    async fn is_lost_and_lost_follow_the_deadline_while_the_renewal_task_cannot_run() {
        let ctx = Context::new();
        let (guard, other) = guard_on_k_for_300_ms(&ctx).await;
        let mut signal = guard.lost_signal();
        let mut lost = std::pin::pin!(guard.lost());
        // Renewals move the deadline that lost() waits for.
        tokio::time::sleep(ms(1000)).await;
        assert!(!guard.is_lost());
        assert!(poll_once(lost.as_mut()).is_none(), "renewed: not lost");
        // A 700 ms blocking section: the renewal task cannot run.
        block_for(ms(700));
        assert!(!guard.lease().is_valid());
        assert!(
            other.try_acquire_lock(&ctx, "k", ms(60_000)).await.unwrap(),
            "a second owner takes the key"
        );
        assert!(guard.is_lost(), "lost once the deadline passed: {guard:?}");
        assert!(
            poll_once(lost.as_mut()).is_some(),
            "lost() resolves at the deadline"
        );
        assert!(
            poll_once(std::pin::pin!(guard.lost())).is_some(),
            "also when first polled after it"
        );
        assert!(*signal.borrow_and_update(), "is_lost() flips the signal");
        // Sticky: the renewal task runs after the deadline and does not renew.
        tokio::time::sleep(ms(1000)).await;
        assert!(guard.is_lost());
        assert!(!guard.release().await.unwrap());
        assert!(other.inspect_lock(&ctx, "k").await.unwrap().held_by_me);
    }

    /// The reported case, on a real clock: a current-thread runtime blocked for longer than
    /// the ttl.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_thread_sees_the_guard_lost() {
        let ctx = Context::new();
        let (guard, other) = guard_on_k_for_300_ms(&ctx).await;
        std::thread::sleep(ms(700));
        assert!(!guard.lease().is_valid());
        assert!(other.try_acquire_lock(&ctx, "k", ms(300)).await.unwrap());
        assert!(guard.is_lost(), "{guard:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_reply_after_the_deadline_counts_as_lost() {
        let (flaky, guard) = guard_over_flaky(3).await;
        let first = guard.lease();
        // The renewal at 300 ms extends the lock, but its reply comes at 1000 ms, after
        // the deadline (900 ms).
        tokio::time::timeout(ms(5000), guard.lost())
            .await
            .expect("a late renewal reply is a loss");
        assert_eq!(Instant::now(), first.acquired_at + ms(1000));
        assert!(guard.is_lost());
        assert_eq!(guard.lease(), first, "the late lease is not installed");
        tokio::time::sleep(ms(2000)).await;
        assert!(guard.is_lost(), "lost stays lost");
        assert_eq!(guard.lease(), first);
        assert_eq!(flaky.extends.load(Ordering::SeqCst), 1);
    }

    // --- A lost guard still releases its own lease ---------------------------------------

    /// A guard over a `FlakyExtend` whose renewal at 300 ms extends the lock at the backend
    /// (to 1200 ms) but never replies, so the guard is lost at its deadline (900 ms) while
    /// the lock stays held; and an owner sharing the table.
    async fn lost_guard_with_an_extended_lock() -> (MemoryLock, LockGuard) {
        let (flaky, guard) = guard_over_flaky(4).await;
        let other = flaky.inner.shared_with();
        let deadline = guard.lease().valid_until;
        guard.lost().await;
        assert_eq!(Instant::now(), deadline);
        assert!(
            !other
                .try_acquire_lock(&Context::new(), "k", ms(60_000))
                .await
                .unwrap(),
            "the cut-off renewal extended the lock at the backend"
        );
        (other, guard)
    }

    #[tokio::test(start_paused = true)]
    async fn releasing_a_lost_guard_frees_what_a_cut_off_renewal_extended() {
        let ctx = Context::new();
        let (other, guard) = lost_guard_with_an_extended_lock().await;
        assert!(guard.release().await.unwrap(), "the backend deleted it");
        assert!(other.try_acquire_lock(&ctx, "k", ms(60_000)).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_a_lost_guard_frees_what_a_cut_off_renewal_extended() {
        let ctx = Context::new();
        let (other, guard) = lost_guard_with_an_extended_lock().await;
        drop(guard);
        tokio::task::yield_now().await;
        assert!(other.try_acquire_lock(&ctx, "k", ms(60_000)).await.unwrap());
    }

    /// The release of a lost guard is token-checked: a later acquisition of the key, even
    /// by the same lock instance, is left alone.
    #[tokio::test(start_paused = true)]
    async fn a_lost_guard_never_releases_a_later_acquisition_of_the_same_instance() {
        let ctx = Context::new();
        for drop_it in [false, true] {
            let (flaky, guard) = guard_over_flaky(2).await;
            guard.lost().await;
            let later = flaky
                .try_acquire_lease(&ctx, "k", ms(60_000))
                .await
                .unwrap();
            let later = later.expect("the lost lease expired");
            if drop_it {
                drop(guard);
                tokio::task::yield_now().await;
            } else {
                assert!(!guard.release().await.unwrap());
            }
            assert!(flaky.inspect_lock(&ctx, "k").await.unwrap().held_by_me);
            assert!(flaky.release_lease(&ctx, &later).await.unwrap());
        }
    }

    // --- The renew interval must fit the lease's validity --------------------------------

    /// Asserts `err` is the clear BAD_TTL of a renew interval that cannot fit the validity.
    fn assert_validity_error(err: &Error, interval_ms: u128, validity_ms: u128, ttl_ms: u128) {
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::BadRequest, codes::BAD_TTL)
        );
        assert_eq!(err.trace_id(), Some("g"));
        let message = err.to_string();
        for part in [
            format!("renew interval ({interval_ms} ms)"),
            format!("validity ({validity_ms} ms)"),
            format!("ttl ({ttl_ms} ms)"),
            "shorter than its ttl".to_owned(),
        ] {
            assert!(message.contains(&part), "{part:?} not in {message:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_renew_interval_not_shorter_than_the_validity_is_refused_and_released() {
        let ctx = Context::with_trace_id("g");
        // ttl 2 s, validity 1 s (as memcached's).
        let lock = Arc::new(FlakyExtend::with_validity_cut(ms(1000)));
        for interval in [ms(1000), ms(1500)] {
            let builder =
                || LockGuard::builder(lock.clone(), "k", ms(2000)).renew_interval(interval);
            let err = builder().try_acquire(&ctx).await.unwrap_err();
            assert_validity_error(&err, interval.as_millis(), 1000, 2000);
            assert!(lock.inner.table().is_empty(), "the lease was released");
            let err = builder().acquire(&ctx, ms(0)).await.unwrap_err();
            assert_validity_error(&err, interval.as_millis(), 1000, 2000);
            assert!(lock.inner.table().is_empty(), "the lease was released");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_renew_interval_is_a_third_of_the_validity() {
        let ctx = Context::new();
        // ttl 900 ms, validity 300 ms: a third of the ttl could never renew in time.
        let lock = Arc::new(FlakyExtend::with_validity_cut(ms(600)));
        let other = lock.inner.shared_with();
        let guard = LockGuard::acquire(lock.clone(), &ctx, "k", ms(900), ms(0))
            .await
            .unwrap();
        assert_eq!(guard.renew_interval(), ms(100));
        tokio::time::sleep(ms(2000)).await;
        assert!(!guard.is_lost());
        assert!(guard.lease().is_valid());
        assert!(!other.try_acquire_lock(&ctx, "k", ms(900)).await.unwrap());
        assert!(guard.release().await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_without_validity_is_refused_and_released() {
        let ctx = Context::with_trace_id("g");
        // ttl 1 s, validity 0 (as memcached's).
        let lock = Arc::new(FlakyExtend::with_validity_cut(ms(1000)));
        let err = LockGuard::try_acquire(lock.clone(), &ctx, "k", ms(1000))
            .await
            .unwrap_err();
        assert_validity_error(&err, 0, 0, 1000);
        assert!(lock.inner.table().is_empty(), "the lease was released");
        let err = LockGuard::builder(lock.clone(), "k", ms(1000))
            .renew_interval(ms(100))
            .acquire(&ctx, ms(0))
            .await
            .unwrap_err();
        assert_validity_error(&err, 100, 0, 1000);
        assert!(lock.inner.table().is_empty(), "the lease was released");
    }
}
