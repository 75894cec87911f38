//! The retry-acquire helper every backend's `acquire_lease` goes through.
//!
//! One attempt first, always; then capped exponential backoff with full jitter, never
//! sleeping past the deadline; and, when the backend passes its [`LocalWaiters`], at most
//! one caller per key polls the backend while the others wait for a local release.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use commons::{Context, Error, ErrorKind, Result, codes};
use rand::Rng;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use crate::Lease;

/// How [`acquire_with_retry`] spaces its attempts.
///
/// The n-th pause (n = 0, 1, ...) is drawn uniformly from `[1 ms, min(max_backoff,
/// retry_timeout * 2^n)]` ("full jitter"), so callers that collide once do not collide
/// again in lockstep. The 1 ms floor only prevents a busy loop.
///
/// ```
/// use std::time::Duration;
/// use lock_core::RetryPolicy;
///
/// let policy = RetryPolicy::new(Duration::from_millis(100));
/// assert_eq!(policy.max_backoff, Duration::from_secs(1));
/// assert_eq!(RetryPolicy::default().retry_timeout, RetryPolicy::DEFAULT_RETRY_TIMEOUT);
/// // The cap is 2 s, unless the base interval itself is longer.
/// assert_eq!(RetryPolicy::new(Duration::from_secs(1)).max_backoff, Duration::from_secs(2));
/// assert_eq!(RetryPolicy::new(Duration::from_secs(5)).max_backoff, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The base pause between attempts (`options.retry_timeout`, default 100 ms).
    pub retry_timeout: Duration,
    /// The largest pause between two attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The default base pause between attempts: 100 ms, as in the originals.
    pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_millis(100);

    /// The ceiling [`RetryPolicy::new`] puts on `max_backoff` (unless `retry_timeout` is
    /// larger still).
    pub const MAX_BACKOFF_CEILING: Duration = Duration::from_secs(2);

    /// A policy starting at `retry_timeout`, with `max_backoff` = 10 x `retry_timeout`,
    /// at most 2 s, but never less than `retry_timeout` itself.
    pub fn new(retry_timeout: Duration) -> Self {
        let ten_times = retry_timeout.saturating_mul(10);
        let max_backoff = ten_times.min(Self::MAX_BACKOFF_CEILING).max(retry_timeout);
        RetryPolicy {
            retry_timeout,
            max_backoff,
        }
    }

    /// The upper bound of the `n`-th pause (before jitter).
    fn cap(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.retry_timeout
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(Self::DEFAULT_RETRY_TIMEOUT)
    }
}

/// The smallest pause between two attempts of one caller.
const MIN_PAUSE: Duration = Duration::from_millis(1);

/// A uniformly random pause in `[MIN_PAUSE, cap]`.
fn full_jitter(cap: Duration) -> Duration {
    if cap <= MIN_PAUSE {
        return MIN_PAUSE;
    }
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    let min = u64::try_from(MIN_PAUSE.as_nanos()).unwrap_or(0);
    Duration::from_nanos(rand::rng().random_range(min..=nanos))
}

/// The per-key wait queues of one lock instance, so that concurrent local callers waiting
/// for the same key do not all poll the backend.
///
/// One waiter per key is the *poller* (it retries with backoff); the others sleep until
/// [`LocalWaiters::notify_released`] reports a local release of the key, or until the
/// poller leaves (it got the lock, gave up, failed or was cancelled), when one of them takes
/// over polling. The table only holds keys somebody is waiting on.
///
/// ```
/// use lock_core::LocalWaiters;
///
/// let waiters = LocalWaiters::new();
/// waiters.notify_released("orders"); // nobody waits: a cheap no-op
/// assert_eq!(waiters.waiting_keys(), 0);
/// ```
#[derive(Default)]
pub struct LocalWaiters {
    keys: Mutex<HashMap<String, Arc<KeyWaiters>>>,
    /// Number of keys in `keys`, read without the mutex on the release fast path.
    active: AtomicUsize,
}

#[derive(Default)]
struct KeyWaiters {
    /// Woken (all at once) on a local release and when the poller leaves.
    notify: Notify,
    /// Whether some waiter is polling the backend.
    polling: AtomicBool,
    /// How many callers are registered; guarded by the table's mutex.
    registered: AtomicUsize,
}

impl fmt::Debug for LocalWaiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalWaiters")
            .field("waiting_keys", &self.waiting_keys())
            .finish()
    }
}

impl LocalWaiters {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the local waiters of `key` that this instance released it, so they retry at
    /// once instead of waiting for their next backoff. Backends call it after every
    /// successful release.
    pub fn notify_released(&self, key: &str) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some(state) = self.table().get(key) {
            state.notify.notify_waiters();
        }
    }

    /// How many keys currently have local waiters (for diagnostics and tests).
    pub fn waiting_keys(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, Arc<KeyWaiters>>> {
        // The map is left consistent at every step, so a poisoned mutex is still usable.
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register<'a>(&'a self, key: &'a str) -> Registration<'a> {
        let mut table = self.table();
        let state = match table.get(key) {
            Some(state) => state.clone(),
            None => {
                let state = Arc::new(KeyWaiters::default());
                table.insert(key.to_owned(), state.clone());
                self.active.fetch_add(1, Ordering::AcqRel);
                state
            }
        };
        state.registered.fetch_add(1, Ordering::AcqRel);
        Registration {
            waiters: self,
            key,
            state,
        }
    }
}

/// One caller's registration in [`LocalWaiters`]; removes the key's entry when the last
/// registered caller leaves (on return, error or cancellation).
struct Registration<'a> {
    waiters: &'a LocalWaiters,
    key: &'a str,
    state: Arc<KeyWaiters>,
}

impl Registration<'_> {
    fn try_become_poller(&self) -> Option<PollerRole<'_>> {
        self.state
            .polling
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| PollerRole { state: &self.state })
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut table = self.waiters.table();
        if self.state.registered.fetch_sub(1, Ordering::AcqRel) == 1
            && table
                .get(self.key)
                .is_some_and(|s| Arc::ptr_eq(s, &self.state))
        {
            table.remove(self.key);
            self.waiters.active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Held by the one caller polling a key; when it goes (whatever the reason), the other
/// waiters are woken so one of them takes over.
struct PollerRole<'a> {
    state: &'a KeyWaiters,
}

impl Drop for PollerRole<'_> {
    fn drop(&mut self) {
        self.state.polling.store(false, Ordering::Release);
        self.state.notify.notify_waiters();
    }
}

/// The `LOCK_TIMEOUT` error: kind [`ErrorKind::Conflict`], `details.key`,
/// `details.timeout_ms`, and the trace id of `ctx`.
///
/// ```
/// use std::time::Duration;
/// use commons::{Context, ErrorKind, codes};
/// use lock_core::lock_timeout_error;
///
/// let err = lock_timeout_error(&Context::with_trace_id("t1"), "orders", Duration::from_secs(1));
/// assert_eq!(err.code(), codes::LOCK_TIMEOUT);
/// assert_eq!(err.kind(), ErrorKind::Conflict);
/// assert_eq!(err.status(), 409);
/// assert_eq!(err.detail("key"), Some("orders"));
/// assert_eq!(err.detail("timeout_ms"), Some("1000"));
/// assert_eq!(err.trace_id(), Some("t1"));
/// ```
pub fn lock_timeout_error(ctx: &Context, key: &str, timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Conflict,
        codes::LOCK_TIMEOUT,
        format!(
            "lock '{key}' was not acquired within {} ms",
            timeout.as_millis()
        ),
    )
    .with_detail("key", key)
    .with_detail("timeout_ms", timeout.as_millis())
    .with_context(ctx)
}

/// Runs `attempt` until it returns a lease or `timeout` has passed.
///
/// * At least one attempt is made, even with a zero timeout.
/// * Then pauses follow [`RetryPolicy`] (capped exponential backoff, full jitter); a pause
///   never reaches past the deadline: the last attempt happens at (or just before) it.
/// * `Ok(None)` from `attempt` means "taken by someone else": retry.
/// * An error that is not [`Error::is_retryable`] ends the loop at once and is returned as
///   is. A retryable error is retried until the deadline.
/// * At the deadline: `LOCK_TIMEOUT` (see [`lock_timeout_error`]) when the last attempt
///   found the lock taken; the last error itself when the last attempt failed with a
///   retryable error (the lock was not seen to be taken, so a timeout would mislead).
/// * With `waiters`, concurrent callers for the same key share one poller; the others wait
///   for [`LocalWaiters::notify_released`] or for the poller to leave (each waiter also
///   makes a last attempt at its own deadline).
/// * Cancellation safe: dropping the future drops the attempt in flight (backends make
///   their attempt futures cancellation safe) and unregisters from `waiters`, waking the
///   other waiters if it was the poller.
///
/// ```
/// use std::time::Duration;
/// use commons::{Context, codes};
/// use lock_core::{acquire_with_retry, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ctx = Context::new();
/// // A backend that never grants the lock: LOCK_TIMEOUT after the (zero) timeout,
/// // after exactly one attempt.
/// let mut attempts = 0;
/// let err = acquire_with_retry(&ctx, "k", Duration::ZERO, &RetryPolicy::default(), None, || {
///     attempts += 1;
///     async { Ok(None) }
/// })
/// .await
/// .unwrap_err();
/// assert_eq!(err.code(), codes::LOCK_TIMEOUT);
/// assert_eq!(attempts, 1);
/// # }
/// ```
pub async fn acquire_with_retry<F, Fut>(
    ctx: &Context,
    key: &str,
    timeout: Duration,
    policy: &RetryPolicy,
    waiters: Option<&LocalWaiters>,
    attempt: F,
) -> Result<Lease>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<Lease>>>,
{
    retry_loop(ctx, key, timeout, policy, waiters, attempt, full_jitter).await
}

/// What the last attempt found, when it did not get the lock.
enum Miss {
    Taken,
    Failed(Error),
}

/// One attempt: `Ok(lease)` ends the loop with success, `Err(Ok(miss))` continues,
/// `Err(Err(e))` ends the loop with a non-retryable error.
async fn one_attempt<Fut>(fut: Fut) -> Result<Lease, Result<Miss>>
where
    Fut: Future<Output = Result<Option<Lease>>>,
{
    match fut.await {
        Ok(Some(lease)) => Ok(lease),
        Ok(None) => Err(Ok(Miss::Taken)),
        Err(e) if e.is_retryable() => Err(Ok(Miss::Failed(e))),
        Err(e) => Err(Err(e)),
    }
}

async fn retry_loop<F, Fut, J>(
    ctx: &Context,
    key: &str,
    timeout: Duration,
    policy: &RetryPolicy,
    waiters: Option<&LocalWaiters>,
    mut attempt: F,
    mut jitter: J,
) -> Result<Lease>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<Lease>>>,
    J: FnMut(Duration) -> Duration,
{
    let start = Instant::now();
    // A timeout too large for the clock means "wait (practically) forever".
    let deadline = start
        .checked_add(timeout)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600));

    let mut last = match one_attempt(attempt()).await {
        Ok(lease) => return Ok(lease),
        Err(Ok(miss)) => miss,
        Err(Err(e)) => return Err(e),
    };
    let mut pauses = 0u32;
    let mut next_pause = |jitter: &mut J| {
        let cap = policy.cap(pauses);
        pauses = pauses.saturating_add(1);
        jitter(cap).max(MIN_PAUSE)
    };

    match waiters {
        None => loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            sleep_until((now + next_pause(&mut jitter)).min(deadline)).await;
            last = match one_attempt(attempt()).await {
                Ok(lease) => return Ok(lease),
                Err(Ok(miss)) => miss,
                Err(Err(e)) => return Err(e),
            };
        },
        Some(waiters) if Instant::now() < deadline => {
            let registration = waiters.register(key);
            let mut poller = None;
            loop {
                // Listen for wake-ups before each attempt, so that a release between the
                // attempt and the wait is not missed. (This is why a caller makes a second
                // attempt right after registering.)
                let mut notified = pin!(registration.state.notify.notified());
                notified.as_mut().enable();
                last = match one_attempt(attempt()).await {
                    Ok(lease) => return Ok(lease),
                    Err(Ok(miss)) => miss,
                    Err(Err(e)) => return Err(e),
                };
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if poller.is_none() {
                    poller = registration.try_become_poller();
                }
                let wake = if poller.is_some() {
                    (now + next_pause(&mut jitter)).min(deadline)
                } else {
                    deadline
                };
                tokio::select! {
                    biased;
                    _ = notified => {}
                    _ = sleep_until(wake) => {}
                }
            }
        }
        Some(_) => {}
    }

    match last {
        Miss::Taken => Err(lock_timeout_error(ctx, key, timeout)),
        Miss::Failed(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(key: &str) -> Lease {
        let now = Instant::now();
        let ttl = Duration::from_secs(1);
        Lease::new(key, "t", None, ttl, now, now + ttl)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs the retry loop on key "k" against a backend that never grants the lock, and
    /// returns the time of every attempt (relative to the call) and the error. `pause: None`
    /// goes through `acquire_with_retry` (random jitter); `Some(pause)` calls `retry_loop`
    /// with that pause for exact timings.
    async fn never_acquired(
        ctx: &Context,
        timeout: Duration,
        policy: &RetryPolicy,
        pause: Option<fn(Duration) -> Duration>,
    ) -> (Vec<Duration>, Error) {
        let start = Instant::now();
        let mut times = Vec::new();
        let attempt = || {
            times.push(start.elapsed());
            async { Ok(None) }
        };
        let outcome = match pause {
            None => acquire_with_retry(ctx, "k", timeout, policy, None, attempt).await,
            Some(pause) => retry_loop(ctx, "k", timeout, policy, None, attempt, pause).await,
        };
        (times, outcome.unwrap_err())
    }

    #[tokio::test(start_paused = true)]
    async fn zero_timeout_makes_exactly_one_attempt() {
        let start = Instant::now();
        let (times, err) = never_acquired(
            &Context::with_trace_id("z"),
            Duration::ZERO,
            &RetryPolicy::default(),
            None,
        )
        .await;
        assert_eq!(times.len(), 1);
        assert_eq!(err.code(), codes::LOCK_TIMEOUT);
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(err.detail("key"), Some("k"));
        assert_eq!(err.trace_id(), Some("z"));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_cap_and_the_last_attempt_is_at_the_deadline() {
        let start = Instant::now();
        let policy = RetryPolicy::new(ms(100)); // caps 100, 200, 400, 800, 1000, 1000...
        let (times, err) =
            never_acquired(&Context::new(), ms(3000), &policy, Some(no_jitter)).await;
        assert_eq!(err.code(), codes::LOCK_TIMEOUT);
        let expected: Vec<Duration> = [0, 100, 300, 700, 1500, 2500, 3000]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(times, expected);
        assert_eq!(start.elapsed(), ms(3000));
    }

    #[tokio::test(start_paused = true)]
    async fn random_jitter_stays_within_the_caps_and_never_passes_the_deadline() {
        for _ in 0..20 {
            let start = Instant::now();
            let (times, _) =
                never_acquired(&Context::new(), ms(1000), &RetryPolicy::default(), None).await;
            // At least: 0, <=100, <=300, <=700, then the deadline.
            assert!(times.len() >= 5, "too few attempts: {times:?}");
            assert!(times.len() <= 1001, "too many attempts: {}", times.len());
            assert_eq!(
                *times.last().unwrap(),
                ms(1000),
                "last attempt at the deadline"
            );
            for pair in times.windows(2) {
                assert!(pair[1] > pair[0], "attempts must be spaced: {times:?}");
            }
            for (n, pair) in times.windows(2).enumerate() {
                let cap = RetryPolicy::default().cap(n as u32);
                assert!(
                    pair[1] - pair[0] <= cap,
                    "pause {n} longer than its cap: {times:?}"
                );
            }
            assert_eq!(start.elapsed(), ms(1000));
        }
    }

    fn down() -> Error {
        Error::new(ErrorKind::Connection, codes::CONNECTION_FAILED, "down")
    }

    /// Runs the retry loop on key "k" against a backend whose `n`-th answer (from 1) is
    /// `answer(n)`; returns the outcome and how many attempts were made. `pause` turns each
    /// backoff cap into the actual pause (`full_jitter`, as `acquire_with_retry` does, or
    /// the cap itself for exact timings).
    async fn scripted(
        timeout: Duration,
        policy: RetryPolicy,
        pause: fn(Duration) -> Duration,
        answer: impl Fn(usize) -> Result<Option<Lease>>,
    ) -> (Result<Lease>, usize) {
        let mut n = 0;
        let outcome = retry_loop(
            &Context::new(),
            "k",
            timeout,
            &policy,
            None,
            || {
                n += 1;
                let r = answer(n);
                async move { r }
            },
            pause,
        )
        .await;
        (outcome, n)
    }

    fn no_jitter(cap: Duration) -> Duration {
        cap
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_on_a_later_attempt() {
        let start = Instant::now();
        let (got, n) = scripted(ms(5000), RetryPolicy::new(ms(100)), no_jitter, |n| {
            Ok((n == 3).then(|| lease("k")))
        })
        .await;
        assert_eq!(got.unwrap().key, "k");
        assert_eq!(n, 3);
        assert_eq!(start.elapsed(), ms(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_retryable_error_stops_at_once() {
        let start = Instant::now();
        let (err, n) = scripted(ms(5000), RetryPolicy::default(), full_jitter, |n| {
            if n == 1 {
                Ok(None)
            } else {
                Err(Error::bad_request(codes::BAD_KEY, "nope"))
            }
        })
        .await;
        assert_eq!(err.unwrap_err().code(), codes::BAD_KEY);
        assert_eq!(n, 2);
        assert!(start.elapsed() <= ms(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retryable_error_is_retried_and_returned_if_it_is_the_last_outcome() {
        let (err, n) = scripted(ms(1000), RetryPolicy::new(ms(100)), no_jitter, |_| {
            Err(down())
        })
        .await;
        assert_eq!(err.unwrap_err().code(), codes::CONNECTION_FAILED);
        assert_eq!(n, 5); // 0, 100, 300, 700, 1000
    }

    #[tokio::test(start_paused = true)]
    async fn a_retryable_error_then_contention_ends_in_lock_timeout() {
        let (err, _) = scripted(ms(1000), RetryPolicy::new(ms(100)), no_jitter, |n| {
            if n == 1 { Err(down()) } else { Ok(None) }
        })
        .await;
        assert_eq!(err.unwrap_err().code(), codes::LOCK_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_timeout_does_not_overflow() {
        let (got, _) = scripted(Duration::MAX, RetryPolicy::default(), full_jitter, |n| {
            Ok((n == 2).then(|| lease("k")))
        })
        .await;
        assert!(got.is_ok());
    }

    #[test]
    fn policy_caps() {
        let p = RetryPolicy::new(ms(100));
        let caps: Vec<u64> = (0..8).map(|n| p.cap(n).as_millis() as u64).collect();
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        assert_eq!(RetryPolicy::new(ms(100)).cap(1000), ms(1000));
        assert_eq!(RetryPolicy::new(Duration::ZERO).max_backoff, Duration::ZERO);
        for _ in 0..1000 {
            let j = full_jitter(ms(50));
            assert!(j >= MIN_PAUSE && j <= ms(50));
        }
        assert_eq!(full_jitter(Duration::ZERO), MIN_PAUSE);
    }

    mod shared {
        use super::*;
        use std::sync::Mutex as StdMutex;
        use std::sync::atomic::AtomicU32;

        /// A tiny in-test backend: one holder per key, attempts counted.
        #[derive(Default)]
        struct Backend {
            holder: StdMutex<Option<u32>>,
            attempts: AtomicU32,
            waiters: LocalWaiters,
        }

        impl Backend {
            fn try_take(&self, who: u32) -> Option<Lease> {
                self.attempts.fetch_add(1, Ordering::SeqCst);
                let mut h = self.holder.lock().unwrap();
                if h.is_none() {
                    *h = Some(who);
                    Some(lease("k"))
                } else {
                    None
                }
            }
            fn release(&self) {
                *self.holder.lock().unwrap() = None;
                self.waiters.notify_released("k");
            }
            async fn acquire(&self, who: u32, timeout: Duration) -> Result<Lease> {
                acquire_with_retry(
                    &Context::new(),
                    "k",
                    timeout,
                    &RetryPolicy::default(),
                    Some(&self.waiters),
                    || {
                        let r = self.try_take(who);
                        async move { Ok(r) }
                    },
                )
                .await
            }
        }

        /// A backend whose key "k" is already held by 0.
        fn held_backend() -> Arc<Backend> {
            let backend = Arc::new(Backend::default());
            assert!(backend.try_take(0).is_some());
            backend
        }

        /// Spawns `who` waiting for "k" for up to `timeout`; the task gives the outcome and
        /// how long it took.
        fn spawn_waiter(
            backend: &Arc<Backend>,
            who: u32,
            timeout: Duration,
        ) -> tokio::task::JoinHandle<(Result<Lease>, Duration)> {
            let b = backend.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                (b.acquire(who, timeout).await, start.elapsed())
            })
        }

        #[tokio::test(start_paused = true)]
        async fn only_one_local_waiter_polls_and_a_release_hands_over_at_once() {
            let backend = held_backend();
            let tasks: Vec<_> = (1..=10)
                .map(|who| spawn_waiter(&backend, who, Duration::from_secs(60)))
                .collect();
            // Let every task make its first attempt and settle.
            tokio::time::sleep(ms(1)).await;
            assert_eq!(backend.waiters.waiting_keys(), 1);
            let before = backend.attempts.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(10)).await;
            let polled = backend.attempts.load(Ordering::SeqCst) - before;
            // One poller (pauses uniform up to caps of 100..1000 ms) averages ~20 attempts
            // in 10 s and cannot plausibly reach 60; ten independent pollers make ~200.
            assert!(
                polled <= 60,
                "{polled} attempts in 10 s: more than one poller"
            );
            assert!(polled >= 5, "{polled} attempts in 10 s: nobody polls");

            // A local release hands over at once, without waiting for a backoff.
            let released_at = Instant::now();
            backend.release();
            tokio::time::sleep(ms(1)).await;
            let holder = backend
                .holder
                .lock()
                .unwrap()
                .expect("someone took the lock");
            assert!(released_at.elapsed() <= ms(1));
            // Release the rest one by one; every one gets it promptly.
            for _ in 0..9 {
                backend.release();
                tokio::time::sleep(ms(1)).await;
            }
            let mut done = 0;
            for t in tasks {
                assert!(t.await.unwrap().0.is_ok());
                done += 1;
            }
            assert_eq!(done, 10);
            assert!(holder >= 1);
            assert_eq!(
                backend.waiters.waiting_keys(),
                0,
                "the table must be empty again"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn a_cancelled_poller_hands_polling_to_another_waiter() {
            let backend = held_backend();
            let first = spawn_waiter(&backend, 1, Duration::from_secs(60));
            tokio::time::sleep(ms(1)).await; // task 1 is the poller
            let second = spawn_waiter(&backend, 2, Duration::from_secs(60));
            tokio::time::sleep(ms(1)).await;
            first.abort();
            assert!(first.await.unwrap_err().is_cancelled());
            // The lock is freed remotely (no local notification): only polling finds it.
            *backend.holder.lock().unwrap() = None;
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(
                second.is_finished(),
                "the remaining waiter must have taken over polling"
            );
            assert!(second.await.unwrap().0.is_ok());
            assert_eq!(*backend.holder.lock().unwrap(), Some(2));
            assert_eq!(backend.waiters.waiting_keys(), 0);
        }

        #[tokio::test(start_paused = true)]
        async fn a_poller_that_times_out_hands_over_and_waiters_time_out_at_their_deadline() {
            let backend = held_backend();
            let short = spawn_waiter(&backend, 1, ms(500));
            tokio::time::sleep(ms(1)).await;
            let long = spawn_waiter(&backend, 2, ms(3000));
            let (r1, e1) = short.await.unwrap();
            assert_eq!(r1.unwrap_err().code(), codes::LOCK_TIMEOUT);
            assert_eq!(e1, ms(500));
            // After the first poller left, the second polls: freed remotely, it gets it.
            *backend.holder.lock().unwrap() = None;
            let (r2, e2) = long.await.unwrap();
            assert!(r2.is_ok());
            assert!(e2 < ms(3000));
            assert_eq!(backend.waiters.waiting_keys(), 0);
        }

        #[tokio::test(start_paused = true)]
        async fn a_waiter_that_is_never_woken_times_out_at_its_deadline() {
            let backend = held_backend();
            let tasks: Vec<_> = (1..=3)
                .map(|who| spawn_waiter(&backend, who, ms(700)))
                .collect();
            for t in tasks {
                let (r, elapsed) = t.await.unwrap();
                assert_eq!(r.unwrap_err().code(), codes::LOCK_TIMEOUT);
                assert_eq!(elapsed, ms(700), "each gives up exactly at its deadline");
            }
            assert_eq!(backend.waiters.waiting_keys(), 0);
        }
    }
}
