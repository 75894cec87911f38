//! The conformance suite every [`Lock`] backend runs against itself (feature `testing`).
//!
//! Each case is a public async function taking a factory of *owners*: every call of
//! `make_owner()` must return a new lock instance (a separate owner) on the same backing
//! store (for [`MemoryLock`](crate::MemoryLock): the same table; for a server backend: the
//! same servers). Cases use their own random keys, so they may run in parallel against
//! one server, and they panic with a message saying what broke.
//!
//! Cases work with real clocks and with backends whose ttl is only as precise as
//! [`SuiteConfig::ttl_granularity`] (memcached: 1 s): short ttls are at least twice that,
//! and waits for an expiry are ttl + granularity + a margin.
//!
//! ```no_run
//! use std::sync::Arc;
//! use lock_core::{Lock, MemoryLock, MemoryLockTable};
//! use lock_core::testing::{self, SuiteConfig};
//!
//! # async fn run() {
//! let table = Arc::new(MemoryLockTable::new());
//! let make_owner = move || {
//!     let table = table.clone();
//!     async move { Arc::new(MemoryLock::with_table(table)) as Arc<dyn Lock> }
//! };
//! testing::run_all(make_owner, SuiteConfig::default()).await;
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use commons::{Context, ErrorKind, codes};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{Lock, LockGuard};

/// What the suite may assume about a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteConfig {
    /// How precisely the backend honours a ttl: zero for in-process locks, 1 s for
    /// memcached (whole-second expirations).
    pub ttl_granularity: Duration,
    /// Whether leases carry fencing tokens that grow with every acquisition of a key.
    pub supports_fencing: bool,
    /// Tasks per owner in [`mutual_exclusion`].
    pub mutual_exclusion_tasks: usize,
    /// Owners (lock instances) in [`mutual_exclusion`].
    pub mutual_exclusion_owners: usize,
    /// Keys hammered in [`mutual_exclusion`].
    pub mutual_exclusion_keys: usize,
    /// Acquire/release rounds per task in [`mutual_exclusion`].
    pub mutual_exclusion_rounds: usize,
    /// Extra slack allowed on top of the expected duration of timed steps (for slow CI
    /// machines); never used to make a lock look held when it should be free.
    pub slack: Duration,
}

impl Default for SuiteConfig {
    /// An in-process backend with fencing: granularity 0, 4 owners x 8 tasks on 3 keys,
    /// 5 rounds each.
    fn default() -> Self {
        SuiteConfig {
            ttl_granularity: Duration::ZERO,
            supports_fencing: true,
            mutual_exclusion_tasks: 8,
            mutual_exclusion_owners: 4,
            mutual_exclusion_keys: 3,
            mutual_exclusion_rounds: 5,
            slack: Duration::from_millis(1500),
        }
    }
}

impl SuiteConfig {
    /// The settings for a backend with whole-second ttls and no fencing tokens
    /// (memcached); adjust the fields as needed.
    pub fn one_second_granularity() -> Self {
        SuiteConfig {
            ttl_granularity: Duration::from_secs(1),
            supports_fencing: false,
            ..SuiteConfig::default()
        }
    }

    /// A ttl that expires soon but is certainly still running right after acquiring.
    fn short_ttl(&self) -> Duration {
        (self.ttl_granularity * 2).max(Duration::from_millis(300))
    }

    /// How long to wait until a lock taken with `ttl` is certainly expired.
    fn expiry_wait(&self, ttl: Duration) -> Duration {
        ttl + self.ttl_granularity + Duration::from_millis(150)
    }
}

/// A ttl long enough that no case ever waits for it.
const LONG_TTL: Duration = Duration::from_secs(30);

fn unique_key(case: &str) -> String {
    format!("conformance-{case}-{:016x}", rand::random::<u64>())
}

fn ctx(case: &str) -> Context {
    Context::with_trace_id(format!("conformance-{case}"))
}

/// Runs every case, one after the other.
pub async fn run_all<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    lock_1(&make_owner, config).await;
    lock_2(&make_owner, config).await;
    lock_3(&make_owner, config).await;
    bad_input(&make_owner, config).await;
    expiry(&make_owner, config).await;
    ownership_release(&make_owner, config).await;
    ownership_extend(&make_owner, config).await;
    release_after_expiry_keeps_next_holder(&make_owner, config).await;
    stale_lease_keeps_newer_acquisition(&make_owner, config).await;
    extend(&make_owner, config).await;
    inspection(&make_owner, config).await;
    guard_renewal(&make_owner, config).await;
    guard_lost_signal(&make_owner, config).await;
    lock_timeout_within_timeout(&make_owner, config).await;
    mutual_exclusion(&make_owner, config).await;
}

/// The original fixture `lock_1`: try true, try false (same owner: not reentrant; and
/// another owner), release, try true.
pub async fn lock_1<F, Fut>(make_owner: F, _config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("lock_1"), unique_key("lock_1"));
    let a = make_owner().await;
    let b = make_owner().await;
    assert!(
        a.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("lock_1: first try")
    );
    assert!(
        !a.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("lock_1: second try"),
        "lock_1: a second try by the same owner must be false (locks are not reentrant)"
    );
    assert!(
        !b.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("lock_1: other owner's try"),
        "lock_1: another owner must not get a held lock"
    );
    a.release_lock(&ctx, &key).await.expect("lock_1: release");
    assert!(
        a.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("lock_1: try after release"),
        "lock_1: the key must be free after release"
    );
    a.release_lock(&ctx, &key).await.expect("lock_1: cleanup");
}

/// The original fixture `lock_2`: acquire(3000 ms, timeout 1000 ms) succeeds; another
/// owner's acquire fails with `LOCK_TIMEOUT` (kind conflict, `details.key`, trace id)
/// after roughly the timeout; after a release the acquire succeeds.
pub async fn lock_2<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("lock_2"), unique_key("lock_2"));
    let (ttl, timeout) = (Duration::from_millis(3000), Duration::from_millis(1000));
    let a = make_owner().await;
    let b = make_owner().await;
    a.acquire_lock(&ctx, &key, ttl, timeout)
        .await
        .expect("lock_2: first acquire");
    let start = Instant::now();
    let err = b
        .acquire_lock(&ctx, &key, ttl, timeout)
        .await
        .expect_err("lock_2: a second acquire by another owner must fail");
    let waited = start.elapsed();
    assert_eq!(
        err.code(),
        codes::LOCK_TIMEOUT,
        "lock_2: wrong error: {err}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict, "lock_2: wrong kind: {err}");
    assert_eq!(
        err.detail("key"),
        Some(key.as_str()),
        "lock_2: details.key: {err}"
    );
    assert_eq!(err.trace_id(), ctx.trace_id(), "lock_2: trace id: {err}");
    assert!(
        waited >= timeout - Duration::from_millis(20),
        "lock_2: gave up early: {waited:?}"
    );
    assert!(
        waited <= timeout + config.slack,
        "lock_2: gave up late: {waited:?}"
    );
    a.release_lock(&ctx, &key).await.expect("lock_2: release");
    b.acquire_lock(&ctx, &key, ttl, timeout)
        .await
        .expect("lock_2: acquire after release");
    b.release_lock(&ctx, &key).await.expect("lock_2: cleanup");
}

/// The original fixture `lock_3`: try, release, release again (idempotent); releasing a
/// key never taken succeeds too.
pub async fn lock_3<F, Fut>(make_owner: F, _config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("lock_3"), unique_key("lock_3"));
    let a = make_owner().await;
    assert!(
        a.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("lock_3: try")
    );
    a.release_lock(&ctx, &key).await.expect("lock_3: release");
    a.release_lock(&ctx, &key)
        .await
        .expect("lock_3: second release must succeed");
    assert!(
        !a.release_owned(&ctx, &key)
            .await
            .expect("lock_3: release_owned"),
        "lock_3: release_owned of a released key must report false"
    );
    a.release_lock(&ctx, &unique_key("lock_3-never"))
        .await
        .expect("lock_3: never-taken key");
}

/// A zero ttl and an empty key are bad-request errors and take nothing.
pub async fn bad_input<F, Fut>(make_owner: F, _config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("bad_input"), unique_key("bad_input"));
    let a = make_owner().await;
    let err = a
        .try_acquire_lock(&ctx, &key, Duration::ZERO)
        .await
        .expect_err("bad_input: zero ttl");
    assert_eq!(
        err.kind(),
        ErrorKind::BadRequest,
        "bad_input: zero ttl: {err}"
    );
    assert_eq!(err.trace_id(), ctx.trace_id(), "bad_input: trace id: {err}");
    let err = a
        .try_acquire_lock(&ctx, "", LONG_TTL)
        .await
        .expect_err("bad_input: empty key");
    assert_eq!(
        err.kind(),
        ErrorKind::BadRequest,
        "bad_input: empty key: {err}"
    );
    let info = a
        .inspect_lock(&ctx, &key)
        .await
        .expect("bad_input: inspect");
    assert!(
        !info.held,
        "bad_input: a rejected acquire must take nothing"
    );
}

/// A lock is free again once its ttl has passed.
pub async fn expiry<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("expiry"), unique_key("expiry"));
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let b = make_owner().await;
    assert!(
        a.try_acquire_lock(&ctx, &key, ttl)
            .await
            .expect("expiry: try")
    );
    assert!(
        !b.try_acquire_lock(&ctx, &key, ttl)
            .await
            .expect("expiry: other try"),
        "expiry: the lock must be held right after acquiring"
    );
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    assert!(
        b.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("expiry: try after ttl"),
        "expiry: the lock must be free after its ttl ({ttl:?})"
    );
    b.release_lock(&ctx, &key).await.expect("expiry: cleanup");
}

/// Releasing by an expired lease does not touch a newer acquisition of the same key, even
/// one made by the same owner (what a `LockGuard` relies on when tasks share one instance).
pub async fn stale_lease_keeps_newer_acquisition<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let case = "stale_lease_keeps_newer_acquisition";
    let (ctx, key) = (ctx(case), unique_key(case));
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let old = a
        .try_acquire_lease(&ctx, &key, ttl)
        .await
        .expect("stale lease: try")
        .expect("stale lease: the key must be free");
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    let newer = a
        .try_acquire_lease(&ctx, &key, LONG_TTL)
        .await
        .expect("stale lease: try after ttl")
        .expect("stale lease: the key must be free after its ttl");
    assert_ne!(old.token, newer.token, "{case}: tokens are per acquisition");
    assert!(
        !a.release_lease(&ctx, &old)
            .await
            .expect("stale lease: release old"),
        "{case}: an expired lease released a newer acquisition"
    );
    let info = a
        .inspect_lock(&ctx, &key)
        .await
        .expect("stale lease: inspect");
    assert!(
        info.held && info.held_by_me,
        "{case}: the newer acquisition was lost"
    );
    assert!(
        a.release_lease(&ctx, &newer)
            .await
            .expect("stale lease: release newer"),
        "{case}: the current lease must release"
    );
}

/// Another owner can neither release nor take a held lock; fencing tokens grow.
pub async fn ownership_release<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("ownership_release"), unique_key("ownership_release"));
    let a = make_owner().await;
    let b = make_owner().await;
    let first = a
        .try_acquire_lease(&ctx, &key, LONG_TTL)
        .await
        .expect("ownership_release: try")
        .expect("ownership_release: the key is free");
    assert_eq!(first.key, key, "ownership_release: lease key");
    assert!(
        first.is_valid(),
        "ownership_release: a fresh lease must be valid"
    );
    assert!(
        !b.release_owned(&ctx, &key)
            .await
            .expect("ownership_release: other release"),
        "ownership_release: another owner's release must report false"
    );
    b.release_lock(&ctx, &key)
        .await
        .expect("ownership_release: other release_lock");
    assert!(
        !b.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("ownership_release: other try"),
        "ownership_release: another owner's release must not free the lock"
    );
    assert!(
        a.release_owned(&ctx, &key)
            .await
            .expect("ownership_release: release"),
        "ownership_release: the holder's release must report true"
    );
    let second = b
        .try_acquire_lease(&ctx, &key, LONG_TTL)
        .await
        .expect("ownership_release: try after release")
        .expect("ownership_release: the key must be free after the holder's release");
    assert_ne!(
        first.token, second.token,
        "ownership_release: tokens are per acquisition"
    );
    if config.supports_fencing {
        let (f1, f2) = (first.fencing_token, second.fencing_token);
        assert!(
            f1.is_some() && f2.is_some(),
            "ownership_release: fencing tokens missing"
        );
        assert!(
            f2 > f1,
            "ownership_release: fencing token must grow: {f1:?} then {f2:?}"
        );
    }
    b.release_lock(&ctx, &key)
        .await
        .expect("ownership_release: cleanup");
}

/// Another owner cannot extend a held lock, and its attempt changes nothing.
pub async fn ownership_extend<F, Fut>(make_owner: F, _config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("ownership_extend"), unique_key("ownership_extend"));
    let a = make_owner().await;
    let b = make_owner().await;
    assert!(
        !b.extend_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("ownership_extend: extend free key"),
        "ownership_extend: extending a free key must be false"
    );
    assert!(
        a.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("ownership_extend: try")
    );
    assert!(
        b.extend_lease(&ctx, &key, LONG_TTL)
            .await
            .expect("ownership_extend: extend")
            .is_none(),
        "ownership_extend: another owner must not extend the lock"
    );
    assert!(
        a.extend_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("ownership_extend: holder extend"),
        "ownership_extend: the holder's extend must succeed"
    );
    assert!(
        a.release_owned(&ctx, &key)
            .await
            .expect("ownership_extend: release"),
        "ownership_extend: the holder still owns the lock"
    );
}

/// A holder whose lease expired cannot release (or extend) the lock the next holder took.
pub async fn release_after_expiry_keeps_next_holder<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let case = "release_after_expiry";
    let (ctx, key) = (ctx(case), unique_key(case));
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let b = make_owner().await;
    let c = make_owner().await;
    assert!(
        a.try_acquire_lock(&ctx, &key, ttl)
            .await
            .expect("release_after_expiry: try")
    );
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    assert!(
        b.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("release_after_expiry: b try"),
        "release_after_expiry: the key must be free after the ttl"
    );
    assert!(
        !a.release_owned(&ctx, &key)
            .await
            .expect("release_after_expiry: stale release"),
        "release_after_expiry: the stale holder's release must report false"
    );
    assert!(
        !a.extend_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("release_after_expiry: stale extend"),
        "release_after_expiry: the stale holder must not extend the new lock"
    );
    assert!(
        !c.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("release_after_expiry: c try"),
        "release_after_expiry: the stale release must not free the next holder's lock"
    );
    let info = b
        .inspect_lock(&ctx, &key)
        .await
        .expect("release_after_expiry: inspect");
    assert!(
        info.held && info.held_by_me,
        "release_after_expiry: b must still hold: {info:?}"
    );
    assert!(
        b.release_owned(&ctx, &key)
            .await
            .expect("release_after_expiry: b release"),
        "release_after_expiry: b must still own the lock"
    );
}

/// Extending a lock before it expires keeps it held past its original ttl.
pub async fn extend<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("extend"), unique_key("extend"));
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let b = make_owner().await;
    let first = a
        .try_acquire_lease(&ctx, &key, ttl)
        .await
        .expect("extend: try")
        .expect("extend: the key is free");
    let extended = a
        .extend_lease(&ctx, &key, LONG_TTL)
        .await
        .expect("extend: extend")
        .expect("extend: the holder's extend must succeed");
    assert_eq!(extended.key, key, "extend: lease key");
    assert!(
        extended.valid_until > first.valid_until,
        "extend: the validity deadline must move: {first:?} -> {extended:?}"
    );
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    assert!(
        !b.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("extend: other try"),
        "extend: the extended lock must outlive its first ttl"
    );
    assert!(
        a.release_owned(&ctx, &key).await.expect("extend: release"),
        "extend: still ours"
    );
    let err = a
        .extend_lease(&ctx, &key, Duration::ZERO)
        .await
        .expect_err("extend: zero ttl");
    assert_eq!(err.kind(), ErrorKind::BadRequest, "extend: zero ttl: {err}");
}

/// Inspection reports free / held by me / held by another, with a plausible remaining ttl.
pub async fn inspection<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("inspection"), unique_key("inspection"));
    let a = make_owner().await;
    let b = make_owner().await;
    let info = a.inspect_lock(&ctx, &key).await.expect("inspection: free");
    assert!(
        !info.held && !info.held_by_me,
        "inspection: a fresh key must be free: {info:?}"
    );
    assert!(
        a.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("inspection: try")
    );
    let mine = a
        .inspect_lock(&ctx, &key)
        .await
        .expect("inspection: by holder");
    assert!(
        mine.held && mine.held_by_me,
        "inspection: holder's view: {mine:?}"
    );
    if let Some(left) = mine.remaining_ttl {
        assert!(
            left > Duration::ZERO && left <= LONG_TTL + config.ttl_granularity,
            "inspection: remaining ttl {left:?} for a ttl of {LONG_TTL:?}"
        );
    }
    let theirs = b
        .inspect_lock(&ctx, &key)
        .await
        .expect("inspection: by other");
    assert!(
        theirs.held && !theirs.held_by_me,
        "inspection: other's view: {theirs:?}"
    );
    a.release_lock(&ctx, &key)
        .await
        .expect("inspection: release");
    let after = b
        .inspect_lock(&ctx, &key)
        .await
        .expect("inspection: after release");
    assert!(
        !after.held,
        "inspection: released key must be free: {after:?}"
    );
}

/// A [`LockGuard`] keeps the lock past its ttl by renewing it, and releases it.
pub async fn guard_renewal<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("guard_renewal"), unique_key("guard_renewal"));
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let b = make_owner().await;
    let guard = LockGuard::acquire(a, &ctx, &key, ttl, Duration::ZERO)
        .await
        .expect("guard_renewal: acquire");
    let first = guard.lease();
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    assert!(
        !guard.is_lost(),
        "guard_renewal: renewal failed (lost signal fired)"
    );
    assert!(
        guard.lease().is_valid(),
        "guard_renewal: the lease must be valid: {guard:?}"
    );
    assert!(
        guard.lease().valid_until > first.valid_until,
        "guard_renewal: renewals must move the deadline"
    );
    assert!(
        !b.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("guard_renewal: other try"),
        "guard_renewal: the renewed lock must outlive its first ttl"
    );
    assert!(
        guard.release().await.expect("guard_renewal: release"),
        "guard_renewal: released"
    );
    assert!(
        b.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("guard_renewal: try after"),
        "guard_renewal: the key must be free after the guard's release"
    );
    b.release_lock(&ctx, &key)
        .await
        .expect("guard_renewal: cleanup");
}

/// The lost signal fires when a renewal is refused (here: the lock was released behind
/// the guard's back and taken by another owner), and the lost guard's release leaves the
/// new holder alone.
pub async fn guard_lost_signal<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let (ctx, key) = (ctx("guard_lost_signal"), unique_key("guard_lost_signal"));
    let ttl = config.short_ttl() * 2;
    let a = make_owner().await;
    let b = make_owner().await;
    let guard = LockGuard::acquire(a.clone(), &ctx, &key, ttl, Duration::ZERO)
        .await
        .expect("guard_lost_signal: acquire");
    assert!(
        a.release_owned(&ctx, &key)
            .await
            .expect("guard_lost_signal: release behind")
    );
    assert!(
        b.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("guard_lost_signal: b try")
    );
    let limit = guard.renew_interval() + config.slack;
    tokio::time::timeout(limit, guard.lost())
        .await
        .expect("guard_lost_signal: the lost signal must fire at the next renewal");
    assert!(
        guard.is_lost(),
        "guard_lost_signal: is_lost after the signal"
    );
    assert!(
        !guard
            .release()
            .await
            .expect("guard_lost_signal: release lost guard"),
        "guard_lost_signal: releasing a lost guard must report false"
    );
    let info = b
        .inspect_lock(&ctx, &key)
        .await
        .expect("guard_lost_signal: inspect");
    assert!(
        info.held_by_me,
        "guard_lost_signal: the new holder must keep the lock: {info:?}"
    );
    b.release_lock(&ctx, &key)
        .await
        .expect("guard_lost_signal: cleanup");
}

/// `acquire_lease` waits for a release within its timeout, gives up with `LOCK_TIMEOUT`
/// after it, and makes one attempt with a zero timeout.
pub async fn lock_timeout_within_timeout<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let case = "lock_timeout";
    let (ctx, key) = (ctx(case), unique_key(case));
    let a = make_owner().await;
    let b = make_owner().await;
    assert!(
        a.try_acquire_lock(&ctx, &key, LONG_TTL)
            .await
            .expect("lock_timeout: try")
    );

    let err = b
        .acquire_lease(&ctx, &key, LONG_TTL, Duration::ZERO)
        .await
        .expect_err("lock_timeout: zero timeout on a held key");
    assert_eq!(
        err.code(),
        codes::LOCK_TIMEOUT,
        "lock_timeout: zero timeout: {err}"
    );

    let timeout = Duration::from_millis(600);
    let start = Instant::now();
    let err = b
        .acquire_lease(&ctx, &key, LONG_TTL, timeout)
        .await
        .expect_err("lock_timeout: held key");
    let waited = start.elapsed();
    assert_eq!(err.code(), codes::LOCK_TIMEOUT, "lock_timeout: {err}");
    assert_eq!(err.kind(), ErrorKind::Conflict, "lock_timeout: {err}");
    assert_eq!(err.status(), 409, "lock_timeout: status");
    assert_eq!(
        err.detail("key"),
        Some(key.as_str()),
        "lock_timeout: details.key"
    );
    assert_eq!(err.trace_id(), ctx.trace_id(), "lock_timeout: trace id");
    assert!(
        waited >= timeout - Duration::from_millis(20),
        "lock_timeout: early: {waited:?}"
    );
    assert!(
        waited <= timeout + config.slack,
        "lock_timeout: late: {waited:?}"
    );

    // Released while b waits: b gets it well within its timeout.
    let releaser = {
        let (a, ctx, key) = (a.clone(), ctx.clone(), key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            a.release_owned(&ctx, &key).await
        })
    };
    let long = Duration::from_secs(5);
    let start = Instant::now();
    let lease = b
        .acquire_lease(&ctx, &key, LONG_TTL, long)
        .await
        .expect("lock_timeout: acquire must succeed once the holder releases");
    assert!(
        start.elapsed() < long,
        "lock_timeout: acquired only at the deadline"
    );
    assert!(lease.is_valid(), "lock_timeout: fresh lease valid");
    assert!(
        releaser
            .await
            .expect("lock_timeout: releaser task")
            .expect("lock_timeout: release"),
        "lock_timeout: the holder's release must report true"
    );
    b.release_lock(&ctx, &key)
        .await
        .expect("lock_timeout: cleanup");
}

/// Many tasks on several owners hammer a few keys with `acquire_lease` + `release_owned`;
/// no two holders are ever inside the same key at once, each holder's lease is valid while
/// inside, and (with fencing) tokens grow in the order holders enter.
pub async fn mutual_exclusion<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let case = "mutual_exclusion";
    let keys: Vec<String> = (0..config.mutual_exclusion_keys.max(1))
        .map(|_| unique_key(case))
        .collect();
    let inside: Arc<Vec<AtomicBool>> =
        Arc::new(keys.iter().map(|_| AtomicBool::new(false)).collect());
    let fencing: Arc<Mutex<HashMap<usize, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    let entries = Arc::new(AtomicUsize::new(0));
    let keys = Arc::new(keys);
    let mut tasks = tokio::task::JoinSet::new();
    for owner_no in 0..config.mutual_exclusion_owners.max(1) {
        let owner = make_owner().await;
        for task_no in 0..config.mutual_exclusion_tasks.max(1) {
            let (owner, keys, inside) = (owner.clone(), keys.clone(), inside.clone());
            let (fencing, entries) = (fencing.clone(), entries.clone());
            let rounds = config.mutual_exclusion_rounds;
            let check_fencing = config.supports_fencing;
            tasks.spawn(async move {
                let ctx = Context::with_trace_id(format!("{case}-{owner_no}-{task_no}"));
                for round in 0..rounds {
                    let k = (owner_no + task_no + round) % keys.len();
                    let key = &keys[k];
                    let lease = owner
                        .acquire_lease(&ctx, key, LONG_TTL, Duration::from_secs(20))
                        .await
                        .unwrap_or_else(|e| panic!("{case}: acquire {key}: {e}"));
                    assert!(
                        !inside[k].swap(true, Ordering::SeqCst),
                        "{case}: two holders inside {key} at once"
                    );
                    entries.fetch_add(1, Ordering::SeqCst);
                    if check_fencing {
                        let token = lease
                            .fencing_token
                            .expect("mutual_exclusion: fencing token");
                        let mut last = fencing.lock().await;
                        let previous = last.insert(k, token);
                        assert!(
                            previous.is_none_or(|p| p < token),
                            "{case}: fencing token {token} after {previous:?} on {key}"
                        );
                    }
                    assert!(lease.is_valid(), "{case}: lease expired while inside {key}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    assert!(lease.is_valid(), "{case}: lease expired while inside {key}");
                    inside[k].store(false, Ordering::SeqCst);
                    let released = owner
                        .release_owned(&ctx, key)
                        .await
                        .unwrap_or_else(|e| panic!("{case}: release {key}: {e}"));
                    assert!(
                        released,
                        "{case}: the holder's release of {key} reported false"
                    );
                    tokio::task::yield_now().await;
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            panic!("{case}: a task failed: {e}");
        }
    }
    let expected = config.mutual_exclusion_owners.max(1)
        * config.mutual_exclusion_tasks.max(1)
        * config.mutual_exclusion_rounds;
    assert_eq!(
        entries.load(Ordering::SeqCst),
        expected,
        "{case}: every round must get in"
    );
}
