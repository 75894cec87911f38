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
//! A backend runs the suite with [`conformance_tests!`](crate::conformance_tests), which
//! writes one test per case, so a case added here runs on every backend without touching
//! their test files. [`run_all`] runs every case in one go:
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

use crate::{Lease, Lock, LockGuard, LockInfo};

/// Writes one `#[test]` per conformance case into the module it is invoked in, each
/// running `lock_core::testing::<case>(owners, config)` on a two-worker multi-thread Tokio
/// runtime (the caller needs no Tokio macros).
///
/// * `owners`: an expression evaluated afresh in every test, inside its runtime (it may
///   `.await`), giving the case's owner factory (a `Fn() -> impl Future<Output =
///   Arc<dyn Lock>>`; see the [module docs](crate::testing)). Whatever the factory
///   captures (a spawned server, a shared table) lives as long as the case.
/// * `config`: the [`SuiteConfig`](crate::testing::SuiteConfig), evaluated the same way.
/// * `mod name,` first (optional): the tests go into a new module `name` that sees the
///   caller's items (`use super::*`), for a backend that runs the suite in several modes.
///
/// The case list lives in this macro alone; [`run_all`](crate::testing::run_all) and
/// [`CASES`](crate::testing::CASES) are generated from it. There is no per-case opt-out:
/// what a backend cannot offer is described by a [`SuiteConfig`](crate::testing::SuiteConfig)
/// capability (such as `supports_fencing` or `ttl_granularity`) that the cases consult,
/// so every backend still runs every case.
///
/// ```no_run
/// use std::sync::Arc;
/// use lock_core::testing::SuiteConfig;
/// use lock_core::{Lock, MemoryLock, MemoryLockTable};
///
/// fn owners() -> impl Fn() -> std::future::Ready<Arc<dyn Lock>> {
///     let table = Arc::new(MemoryLockTable::new());
///     move || std::future::ready(Arc::new(MemoryLock::with_table(table.clone())) as Arc<dyn Lock>)
/// }
///
/// lock_core::conformance_tests!(owners: owners(), config: SuiteConfig::default());
/// // or, in a module of its own:
/// lock_core::conformance_tests!(mod memory, owners: owners(), config: SuiteConfig::default());
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (mod $module:ident, owners: $owners:expr, config: $config:expr $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_tests!(owners: $owners, config: $config);
        }
    };
    (owners: $owners:expr, config: $config:expr $(,)?) => {
        $crate::conformance_tests!(@with_cases @tests [$owners] [$config]);
    };

    // The one list of cases. Every other use gets it from here.
    (@with_cases $($rule:tt)*) => {
        $crate::conformance_tests!($($rule)* [
            try_acquire_is_exclusive_and_not_reentrant,
            acquire_times_out_while_another_owner_holds,
            release_is_idempotent,
            bad_input_is_rejected_and_takes_nothing,
            lock_is_free_after_ttl,
            only_the_holder_can_release,
            only_the_holder_can_extend,
            release_after_expiry_keeps_next_holder,
            stale_lease_keeps_newer_acquisition,
            extend_keeps_the_lock_past_its_first_ttl,
            inspect_tells_free_mine_and_theirs,
            guard_renews_past_the_ttl_and_releases,
            guard_signals_loss_and_spares_the_next_holder,
            acquire_waits_for_a_release_within_its_timeout,
            mutual_exclusion,
        ]);
    };
    (@tests [$owners:expr] [$config:expr] [$($case:ident),+ $(,)?]) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::__run_case(async {
                    $crate::testing::$case($owners, $config).await;
                });
            }
        )+
    };
    (@suite [$($case:ident),+ $(,)?]) => {
        /// The names of the cases, in the order [`run_all`] runs them (and
        /// [`conformance_tests!`](crate::conformance_tests) writes them).
        pub const CASES: &[&str] = &[$(stringify!($case)),+];

        /// Runs every case, one after the other.
        pub async fn run_all<F, Fut>(make_owner: F, config: SuiteConfig)
        where
            F: Fn() -> Fut,
            Fut: Future<Output = Arc<dyn Lock>>,
        {
            $($case(&make_owner, config).await;)+
        }
    };
}

crate::conformance_tests!(@with_cases @suite);

/// Runs one case the way `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`
/// would; for [`conformance_tests!`](crate::conformance_tests) only.
#[doc(hidden)]
pub fn __run_case(case: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the conformance case")
        .block_on(case);
}

/// What the suite may assume about a backend.
///
/// Outside this crate, start from [`SuiteConfig::default`] or
/// [`SuiteConfig::one_second_granularity`] and adjust with the `with_*` methods (or assign
/// the fields): more capabilities may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The longest ttl the backend takes (quorum mode caps ttls), if it caps them: the cases
    /// that want a ttl "long enough never to expire" use at most this.
    pub max_ttl: Option<Duration>,
    /// How much longer than its ttl plus [`SuiteConfig::ttl_granularity`] a lock may stay
    /// held when nobody releases it: zero for in-process locks; memcached places an item's
    /// expiry by the server's clock up to 2 s later.
    pub expiry_overrun: Duration,
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
            max_ttl: None,
            expiry_overrun: Duration::ZERO,
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

    /// These settings with [`SuiteConfig::supports_fencing`] set.
    pub fn with_fencing(mut self, supports_fencing: bool) -> Self {
        self.supports_fencing = supports_fencing;
        self
    }

    /// These settings with [`SuiteConfig::max_ttl`] set.
    pub fn with_max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = Some(max_ttl);
        self
    }

    /// These settings with [`SuiteConfig::expiry_overrun`] set.
    pub fn with_expiry_overrun(mut self, overrun: Duration) -> Self {
        self.expiry_overrun = overrun;
        self
    }

    /// These settings with [`SuiteConfig::slack`] set.
    pub fn with_slack(mut self, slack: Duration) -> Self {
        self.slack = slack;
        self
    }

    /// These settings with the [`mutual_exclusion`] load set: `owners` lock instances with
    /// `tasks` tasks each, `rounds` acquisitions per task spread over `keys` keys.
    pub fn with_mutual_exclusion_load(
        mut self,
        owners: usize,
        tasks: usize,
        keys: usize,
        rounds: usize,
    ) -> Self {
        self.mutual_exclusion_owners = owners;
        self.mutual_exclusion_tasks = tasks;
        self.mutual_exclusion_keys = keys;
        self.mutual_exclusion_rounds = rounds;
        self
    }

    /// A ttl that expires soon but is certainly still running right after acquiring.
    fn short_ttl(&self) -> Duration {
        (self.ttl_granularity * 2).max(Duration::from_millis(300))
    }

    /// A ttl long enough that no case waits for it (within the backend's cap).
    fn long_ttl(&self) -> Duration {
        self.max_ttl.map_or(LONG_TTL, |max| max.min(LONG_TTL))
    }

    /// How long to wait until a lock taken with `ttl` is certainly expired.
    fn expiry_wait(&self, ttl: Duration) -> Duration {
        ttl + self.ttl_granularity + self.expiry_overrun + Duration::from_millis(150)
    }
}

/// A ttl long enough that no case ever waits for it.
const LONG_TTL: Duration = Duration::from_secs(30);

fn unique_key(case: &str) -> String {
    format!("conformance-{case}-{:016x}", rand::random::<u64>())
}

/// What every case starts from: its name (which starts every failure message), a context
/// whose trace id names the case, and a key no other case uses; and the lock calls on that
/// key that must not fail, so that a failing step names the case and the step.
struct Case {
    name: &'static str,
    ctx: Context,
    key: String,
}

impl Case {
    fn new(name: &'static str) -> Self {
        Case {
            name,
            ctx: Context::with_trace_id(format!("conformance-{name}")),
            key: unique_key(name),
        }
    }

    fn ok<T>(&self, step: &str, result: commons::Result<T>) -> T {
        result.unwrap_or_else(|e| panic!("{}: {step}: {e}", self.name))
    }

    async fn try_lock(&self, step: &str, lock: &Arc<dyn Lock>, ttl: Duration) -> bool {
        self.ok(step, lock.try_acquire_lock(&self.ctx, &self.key, ttl).await)
    }

    async fn try_lease(&self, step: &str, lock: &Arc<dyn Lock>, ttl: Duration) -> Option<Lease> {
        self.ok(
            step,
            lock.try_acquire_lease(&self.ctx, &self.key, ttl).await,
        )
    }

    async fn extend_lock(&self, step: &str, lock: &Arc<dyn Lock>, ttl: Duration) -> bool {
        self.ok(step, lock.extend_lock(&self.ctx, &self.key, ttl).await)
    }

    async fn release_owned(&self, step: &str, lock: &Arc<dyn Lock>) -> bool {
        self.ok(step, lock.release_owned(&self.ctx, &self.key).await)
    }

    async fn release_lock(&self, step: &str, lock: &Arc<dyn Lock>) {
        self.ok(step, lock.release_lock(&self.ctx, &self.key).await);
    }

    async fn inspect(&self, step: &str, lock: &Arc<dyn Lock>) -> LockInfo {
        self.ok(step, lock.inspect_lock(&self.ctx, &self.key).await)
    }

    /// Checks that `err` is the `LOCK_TIMEOUT` error for this case's key.
    fn assert_lock_timeout(&self, err: &commons::Error) {
        let case = self.name;
        assert_eq!(
            err.code(),
            codes::LOCK_TIMEOUT,
            "{case}: wrong error: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::Conflict, "{case}: wrong kind: {err}");
        assert_eq!(err.status(), 409, "{case}: status: {err}");
        assert_eq!(
            err.detail("key"),
            Some(self.key.as_str()),
            "{case}: details.key: {err}"
        );
        assert_eq!(
            err.trace_id(),
            self.ctx.trace_id(),
            "{case}: trace id: {err}"
        );
    }

    /// Checks that a wait for `timeout` lasted about that long.
    fn assert_waited(&self, waited: Duration, timeout: Duration, config: &SuiteConfig) {
        let case = self.name;
        assert!(
            waited >= timeout - Duration::from_millis(20),
            "{case}: gave up early: {waited:?}"
        );
        assert!(
            waited <= timeout + config.slack,
            "{case}: gave up late: {waited:?}"
        );
    }
}

/// The original fixture `lock_1`: try true, try false (same owner: not reentrant; and
/// another owner), release, try true.
pub async fn try_acquire_is_exclusive_and_not_reentrant<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("try_acquire_is_exclusive_and_not_reentrant");
    let case = c.name;
    let a = make_owner().await;
    let b = make_owner().await;
    assert!(
        c.try_lock("first try", &a, config.long_ttl()).await,
        "{case}: the first try on a free key must succeed"
    );
    assert!(
        !c.try_lock("second try", &a, config.long_ttl()).await,
        "{case}: a second try by the same owner must be false (locks are not reentrant)"
    );
    assert!(
        !c.try_lock("other owner's try", &b, config.long_ttl()).await,
        "{case}: another owner must not get a held lock"
    );
    c.release_lock("release", &a).await;
    assert!(
        c.try_lock("try after release", &a, config.long_ttl()).await,
        "{case}: the key must be free after release"
    );
    c.release_lock("cleanup", &a).await;
}

/// The original fixture `lock_2`: acquire(3000 ms, timeout 1000 ms) succeeds; another
/// owner's acquire fails with `LOCK_TIMEOUT` (kind conflict, `details.key`, trace id)
/// after roughly the timeout; after a release the acquire succeeds.
pub async fn acquire_times_out_while_another_owner_holds<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("acquire_times_out_while_another_owner_holds");
    let (ctx, key) = (&c.ctx, c.key.as_str());
    let (ttl, timeout) = (Duration::from_millis(3000), Duration::from_millis(1000));
    let a = make_owner().await;
    let b = make_owner().await;
    c.ok(
        "first acquire",
        a.acquire_lock(ctx, key, ttl, timeout).await,
    );
    let start = Instant::now();
    let err = b.acquire_lock(ctx, key, ttl, timeout).await.expect_err(
        "acquire_times_out_while_another_owner_holds: a second acquire by another owner must fail",
    );
    c.assert_waited(start.elapsed(), timeout, &config);
    c.assert_lock_timeout(&err);
    c.release_lock("release", &a).await;
    c.ok(
        "acquire after release",
        b.acquire_lock(ctx, key, ttl, timeout).await,
    );
    c.release_lock("cleanup", &b).await;
}

/// The original fixture `lock_3`: try, release, release again (idempotent); releasing a
/// key never taken succeeds too.
pub async fn release_is_idempotent<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("release_is_idempotent");
    let case = c.name;
    let a = make_owner().await;
    assert!(
        c.try_lock("try", &a, config.long_ttl()).await,
        "{case}: the key is free"
    );
    c.release_lock("release", &a).await;
    c.release_lock("second release must succeed", &a).await;
    assert!(
        !c.release_owned("release_owned", &a).await,
        "{case}: release_owned of a released key must report false"
    );
    let never = unique_key(&format!("{case}-never"));
    c.ok(
        "release of a never-taken key",
        a.release_lock(&c.ctx, &never).await,
    );
}

/// A zero ttl and an empty key are bad-request errors and take nothing.
pub async fn bad_input_is_rejected_and_takes_nothing<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("bad_input_is_rejected_and_takes_nothing");
    let case = c.name;
    let a = make_owner().await;
    let bad_requests = [
        ("zero ttl", c.key.as_str(), Duration::ZERO),
        ("empty key", "", config.long_ttl()),
    ];
    for (what, key, ttl) in bad_requests {
        let err = a
            .try_acquire_lock(&c.ctx, key, ttl)
            .await
            .expect_err(&format!("{case}: {what} must fail"));
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{case}: {what}: {err}");
        assert_eq!(
            err.trace_id(),
            c.ctx.trace_id(),
            "{case}: {what}: trace id: {err}"
        );
    }
    assert!(
        !c.inspect("inspect", &a).await.held,
        "{case}: a rejected acquire must take nothing"
    );
}

/// A lock is free again once its ttl has passed.
pub async fn lock_is_free_after_ttl<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("lock_is_free_after_ttl");
    let case = c.name;
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let b = make_owner().await;
    assert!(c.try_lock("try", &a, ttl).await, "{case}: the key is free");
    assert!(
        !c.try_lock("other try", &b, ttl).await,
        "{case}: the lock must be held right after acquiring"
    );
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    assert!(
        c.try_lock("try after ttl", &b, config.long_ttl()).await,
        "{case}: the lock must be free after its ttl ({ttl:?})"
    );
    c.release_lock("cleanup", &b).await;
}

/// Releasing by an expired lease does not touch a newer acquisition of the same key, even
/// one made by the same owner (what a `LockGuard` relies on when tasks share one instance).
pub async fn stale_lease_keeps_newer_acquisition<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("stale_lease_keeps_newer_acquisition");
    let case = c.name;
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let old = c
        .try_lease("try", &a, ttl)
        .await
        .unwrap_or_else(|| panic!("{case}: the key must be free"));
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    let newer = c
        .try_lease("try after ttl", &a, config.long_ttl())
        .await
        .unwrap_or_else(|| panic!("{case}: the key must be free after its ttl"));
    assert_ne!(old.token, newer.token, "{case}: tokens are per acquisition");
    assert!(
        !c.ok("release old", a.release_lease(&c.ctx, &old).await),
        "{case}: an expired lease released a newer acquisition"
    );
    let info = c.inspect("inspect", &a).await;
    assert!(
        info.held && info.held_by_me,
        "{case}: the newer acquisition was lost"
    );
    assert!(
        c.ok("release newer", a.release_lease(&c.ctx, &newer).await),
        "{case}: the current lease must release"
    );
}

/// Another owner can neither release nor take a held lock; fencing tokens grow.
pub async fn only_the_holder_can_release<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("only_the_holder_can_release");
    let case = c.name;
    let a = make_owner().await;
    let b = make_owner().await;
    let first = c
        .try_lease("try", &a, config.long_ttl())
        .await
        .unwrap_or_else(|| panic!("{case}: the key is free"));
    assert_eq!(first.key, c.key, "{case}: lease key");
    assert!(first.is_valid(), "{case}: a fresh lease must be valid");
    assert!(
        !c.release_owned("other release", &b).await,
        "{case}: another owner's release must report false"
    );
    c.release_lock("other release_lock", &b).await;
    assert!(
        !c.try_lock("other try", &b, config.long_ttl()).await,
        "{case}: another owner's release must not free the lock"
    );
    assert!(
        c.release_owned("release", &a).await,
        "{case}: the holder's release must report true"
    );
    let second = c
        .try_lease("try after release", &b, config.long_ttl())
        .await
        .unwrap_or_else(|| panic!("{case}: the key must be free after the holder's release"));
    assert_ne!(
        first.token, second.token,
        "{case}: tokens are per acquisition"
    );
    if config.supports_fencing {
        let (f1, f2) = (first.fencing_token, second.fencing_token);
        assert!(
            f1.is_some() && f2.is_some(),
            "{case}: fencing tokens missing"
        );
        assert!(
            f2 > f1,
            "{case}: fencing token must grow: {f1:?} then {f2:?}"
        );
    }
    c.release_lock("cleanup", &b).await;
}

/// Another owner cannot extend a held lock, and its attempt changes nothing.
pub async fn only_the_holder_can_extend<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("only_the_holder_can_extend");
    let case = c.name;
    let a = make_owner().await;
    let b = make_owner().await;
    assert!(
        !c.extend_lock("extend free key", &b, config.long_ttl())
            .await,
        "{case}: extending a free key must be false"
    );
    assert!(
        c.try_lock("try", &a, config.long_ttl()).await,
        "{case}: the key is free"
    );
    assert!(
        c.ok(
            "extend",
            b.extend_lease(&c.ctx, &c.key, config.long_ttl()).await
        )
        .is_none(),
        "{case}: another owner must not extend the lock"
    );
    assert!(
        c.extend_lock("holder extend", &a, config.long_ttl()).await,
        "{case}: the holder's extend must succeed"
    );
    assert!(
        c.release_owned("release", &a).await,
        "{case}: the holder still owns the lock"
    );
}

/// A holder whose lease expired cannot release (or extend) the lock the next holder took.
pub async fn release_after_expiry_keeps_next_holder<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("release_after_expiry_keeps_next_holder");
    let case = c.name;
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let b = make_owner().await;
    let d = make_owner().await;
    assert!(c.try_lock("try", &a, ttl).await, "{case}: the key is free");
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    assert!(
        c.try_lock("b try", &b, config.long_ttl()).await,
        "{case}: the key must be free after the ttl"
    );
    assert!(
        !c.release_owned("stale release", &a).await,
        "{case}: the stale holder's release must report false"
    );
    assert!(
        !c.extend_lock("stale extend", &a, config.long_ttl()).await,
        "{case}: the stale holder must not extend the new lock"
    );
    assert!(
        !c.try_lock("third owner's try", &d, config.long_ttl()).await,
        "{case}: the stale release must not free the next holder's lock"
    );
    let info = c.inspect("inspect", &b).await;
    assert!(
        info.held && info.held_by_me,
        "{case}: b must still hold: {info:?}"
    );
    assert!(
        c.release_owned("b release", &b).await,
        "{case}: b must still own the lock"
    );
}

/// Extending a lock before it expires keeps it held past its original ttl.
pub async fn extend_keeps_the_lock_past_its_first_ttl<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("extend_keeps_the_lock_past_its_first_ttl");
    let case = c.name;
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let b = make_owner().await;
    let first = c
        .try_lease("try", &a, ttl)
        .await
        .unwrap_or_else(|| panic!("{case}: the key is free"));
    let extended = c
        .ok(
            "extend",
            a.extend_lease(&c.ctx, &c.key, config.long_ttl()).await,
        )
        .unwrap_or_else(|| panic!("{case}: the holder's extend must succeed"));
    assert_eq!(extended.key, c.key, "{case}: lease key");
    assert!(
        extended.valid_until > first.valid_until,
        "{case}: the validity deadline must move: {first:?} -> {extended:?}"
    );
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    assert!(
        !c.try_lock("other try", &b, config.long_ttl()).await,
        "{case}: the extended lock must outlive its first ttl"
    );
    assert!(c.release_owned("release", &a).await, "{case}: still ours");
    let err = a
        .extend_lease(&c.ctx, &c.key, Duration::ZERO)
        .await
        .expect_err("extend_keeps_the_lock_past_its_first_ttl: zero ttl must fail");
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{case}: zero ttl: {err}");
}

/// Inspection reports free / held by me / held by another, with a plausible remaining ttl.
pub async fn inspect_tells_free_mine_and_theirs<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("inspect_tells_free_mine_and_theirs");
    let case = c.name;
    let a = make_owner().await;
    let b = make_owner().await;
    let info = c.inspect("free", &a).await;
    assert!(
        !info.held && !info.held_by_me,
        "{case}: a fresh key must be free: {info:?}"
    );
    assert!(
        c.try_lock("try", &a, config.long_ttl()).await,
        "{case}: the key is free"
    );
    let mine = c.inspect("by holder", &a).await;
    assert!(
        mine.held && mine.held_by_me,
        "{case}: holder's view: {mine:?}"
    );
    if let Some(left) = mine.remaining_ttl {
        assert!(
            left > Duration::ZERO
                && left <= config.long_ttl() + config.ttl_granularity + config.expiry_overrun,
            "{case}: remaining ttl {left:?} for a ttl of {:?}",
            config.long_ttl()
        );
    }
    let theirs = c.inspect("by other", &b).await;
    assert!(
        theirs.held && !theirs.held_by_me,
        "{case}: other's view: {theirs:?}"
    );
    c.release_lock("release", &a).await;
    let after = c.inspect("after release", &b).await;
    assert!(!after.held, "{case}: released key must be free: {after:?}");
}

/// A [`LockGuard`] keeps the lock past its ttl by renewing it, and releases it.
pub async fn guard_renews_past_the_ttl_and_releases<F, Fut>(make_owner: F, config: SuiteConfig)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("guard_renews_past_the_ttl_and_releases");
    let case = c.name;
    let ttl = config.short_ttl();
    let a = make_owner().await;
    let b = make_owner().await;
    let guard = c.ok(
        "acquire",
        LockGuard::acquire(a, &c.ctx, &c.key, ttl, Duration::ZERO).await,
    );
    let first = guard.lease();
    tokio::time::sleep(config.expiry_wait(ttl)).await;
    assert!(
        !guard.is_lost(),
        "{case}: renewal failed (lost signal fired)"
    );
    assert!(
        guard.lease().is_valid(),
        "{case}: the lease must be valid: {guard:?}"
    );
    assert!(
        guard.lease().valid_until > first.valid_until,
        "{case}: renewals must move the deadline"
    );
    assert!(
        !c.try_lock("other try", &b, config.long_ttl()).await,
        "{case}: the renewed lock must outlive its first ttl"
    );
    assert!(c.ok("release", guard.release().await), "{case}: released");
    assert!(
        c.try_lock("try after", &b, config.long_ttl()).await,
        "{case}: the key must be free after the guard's release"
    );
    c.release_lock("cleanup", &b).await;
}

/// The lost signal fires when a renewal is refused (here: the lock was released behind
/// the guard's back and taken by another owner), and the lost guard's release leaves the
/// new holder alone.
pub async fn guard_signals_loss_and_spares_the_next_holder<F, Fut>(
    make_owner: F,
    config: SuiteConfig,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("guard_signals_loss_and_spares_the_next_holder");
    let case = c.name;
    let ttl = config.short_ttl() * 2;
    let a = make_owner().await;
    let b = make_owner().await;
    let guard = c.ok(
        "acquire",
        LockGuard::acquire(a.clone(), &c.ctx, &c.key, ttl, Duration::ZERO).await,
    );
    assert!(
        c.release_owned("release behind", &a).await,
        "{case}: the guard's lock must release"
    );
    assert!(
        c.try_lock("b try", &b, config.long_ttl()).await,
        "{case}: the key must be free after the release"
    );
    let limit = guard.renew_interval() + config.slack;
    tokio::time::timeout(limit, guard.lost())
        .await
        .unwrap_or_else(|_| panic!("{case}: the lost signal must fire at the next renewal"));
    assert!(guard.is_lost(), "{case}: is_lost after the signal");
    assert!(
        !c.ok("release lost guard", guard.release().await),
        "{case}: releasing a lost guard must report false"
    );
    let info = c.inspect("inspect", &b).await;
    assert!(
        info.held_by_me,
        "{case}: the new holder must keep the lock: {info:?}"
    );
    c.release_lock("cleanup", &b).await;
}

/// `acquire_lease` waits for a release within its timeout, gives up with `LOCK_TIMEOUT`
/// after it, and makes one attempt with a zero timeout.
pub async fn acquire_waits_for_a_release_within_its_timeout<F, Fut>(
    make_owner: F,
    config: SuiteConfig,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Lock>>,
{
    let c = Case::new("acquire_waits_for_a_release_within_its_timeout");
    let case = c.name;
    let (ctx, key) = (&c.ctx, c.key.as_str());
    let a = make_owner().await;
    let b = make_owner().await;
    assert!(
        c.try_lock("try", &a, config.long_ttl()).await,
        "{case}: the key is free"
    );

    let err = b
        .acquire_lease(ctx, key, config.long_ttl(), Duration::ZERO)
        .await
        .expect_err(
            "acquire_waits_for_a_release_within_its_timeout: zero timeout on a held key must fail",
        );
    assert_eq!(
        err.code(),
        codes::LOCK_TIMEOUT,
        "{case}: zero timeout: {err}"
    );

    let timeout = Duration::from_millis(600);
    let start = Instant::now();
    let err = b
        .acquire_lease(ctx, key, config.long_ttl(), timeout)
        .await
        .expect_err("acquire_waits_for_a_release_within_its_timeout: held key must fail");
    c.assert_waited(start.elapsed(), timeout, &config);
    c.assert_lock_timeout(&err);

    // Released while b waits: b gets it well within its timeout.
    let releaser = {
        let (a, ctx, key) = (a.clone(), ctx.clone(), key.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            a.release_owned(&ctx, &key).await
        })
    };
    let long = Duration::from_secs(5);
    let start = Instant::now();
    let lease = c.ok(
        "acquire must succeed once the holder releases",
        b.acquire_lease(ctx, key, config.long_ttl(), long).await,
    );
    assert!(
        start.elapsed() < long,
        "{case}: acquired only at the deadline"
    );
    assert!(lease.is_valid(), "{case}: fresh lease valid");
    let released = releaser
        .await
        .unwrap_or_else(|e| panic!("{case}: releaser task: {e}"));
    assert!(
        c.ok("release", released),
        "{case}: the holder's release must report true"
    );
    c.release_lock("cleanup", &b).await;
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
            let long_ttl = config.long_ttl();
            tasks.spawn(async move {
                let ctx = Context::with_trace_id(format!("{case}-{owner_no}-{task_no}"));
                for round in 0..rounds {
                    let k = (owner_no + task_no + round) % keys.len();
                    let key = &keys[k];
                    let lease = owner
                        .acquire_lease(&ctx, key, long_ttl, Duration::from_secs(20))
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::CASES;

    /// A case written here but missing from the list in `conformance_tests!` would run on no
    /// backend; this compares the list with the case functions this file defines.
    #[test]
    fn every_case_function_is_in_the_macro_list() {
        let defined: BTreeSet<&str> = include_str!("testing.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split(['<', '(']).next())
            .collect();
        let listed: BTreeSet<&str> = CASES.iter().copied().collect();
        assert_eq!(
            listed.len(),
            CASES.len(),
            "a case is listed twice: {CASES:?}"
        );
        assert_eq!(defined, listed, "case functions vs. the macro's list");
    }

    #[test]
    fn case_names_say_what_they_check() {
        for case in CASES {
            assert!(
                case.matches('_').count() >= 1 && !case.ends_with(|c: char| c.is_ascii_digit()),
                "{case}: name the case after the behaviour it checks"
            );
        }
    }
}
