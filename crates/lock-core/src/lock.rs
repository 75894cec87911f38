//! The `Lock` trait and the values it returns.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use commons::{Context, Result};
use tokio::time::Instant;

/// One acquisition of a lock.
///
/// `token` is unique to this acquisition; `fencing_token`, where the backend provides one,
/// grows with every acquisition of the same key, so a resource that remembers the highest
/// token it has seen can refuse writes from a holder whose lease has silently expired.
/// `valid_until` is a monotonic deadline: before it, no other owner can hold the lock
/// (barring the backend's documented limits, such as memcached eviction).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The lock key as the caller gave it.
    pub key: String,
    /// Unique per acquisition.
    pub token: String,
    /// Monotonic per key, where the backend provides it.
    pub fencing_token: Option<u64>,
    /// Why `fencing_token` is `None` for this lease although the backend gives tokens (for
    /// example: its server could not advance the counter). `None` otherwise.
    pub fencing_unavailable: Option<Cow<'static, str>>,
    /// The ttl asked for.
    pub ttl: Duration,
    /// When the lease was acquired (or last extended), by the local monotonic clock.
    pub acquired_at: Instant,
    /// Until when the lease is certainly valid, by the local monotonic clock.
    pub valid_until: Instant,
}

impl Lease {
    /// A lease for `key` acquired (or extended) at `acquired_at` for `ttl`, certainly
    /// valid until `valid_until`; for backends, since outside this crate a `Lease` cannot
    /// be written as a struct literal (more fields may come).
    pub fn new(
        key: impl Into<String>,
        token: impl Into<String>,
        fencing_token: Option<u64>,
        ttl: Duration,
        acquired_at: Instant,
        valid_until: Instant,
    ) -> Self {
        Lease {
            key: key.into(),
            token: token.into(),
            fencing_token,
            fencing_unavailable: None,
            ttl,
            acquired_at,
            valid_until,
        }
    }

    /// The lease without a fencing token, saying why (for backends: a token they could not
    /// guarantee is left out, never guessed).
    pub fn without_fencing(mut self, why: impl Into<Cow<'static, str>>) -> Self {
        self.fencing_token = None;
        self.fencing_unavailable = Some(why.into());
        self
    }

    /// Whether the validity deadline has not passed yet.
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }

    /// Time left until the validity deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.valid_until.saturating_duration_since(Instant::now())
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("token", &self.token)
            .field("fencing_token", &self.fencing_token)
            .field("fencing_unavailable", &self.fencing_unavailable)
            .field("ttl", &self.ttl)
            .field("remaining", &self.remaining())
            .finish()
    }
}

/// What an inspection of a key found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// Whether someone holds the key.
    pub held: bool,
    /// Whether the holder is the instance that inspected.
    pub held_by_me: bool,
    /// Time until the lock expires, where known.
    pub remaining_ttl: Option<Duration>,
    /// Holder metadata (host, pid, component, trace id), where the backend stores it.
    pub holder: Option<String>,
}

impl LockInfo {
    /// A free key.
    pub fn free() -> Self {
        Self::default()
    }

    /// A held key.
    pub fn held(held_by_me: bool, remaining_ttl: Option<Duration>, holder: Option<String>) -> Self {
        LockInfo {
            held: true,
            held_by_me,
            remaining_ttl,
            holder,
        }
    }
}

/// A distributed (or local) lock. Dyn safe: applications hold it as `Arc<dyn Lock>`.
///
/// Every instance is an owner. Only the instance that acquired a key can release or extend
/// it; a release from any other instance deletes nothing. Locks are not reentrant: a second
/// try by the same owner on a key it holds returns `false`.
///
/// Backends implement the required methods; the provided ones are defined on top of them
/// and are rarely overridden (except `acquire_lease`, which backends override to pass their
/// retry settings and local wait queue to [`crate::acquire_with_retry`]).
#[async_trait]
pub trait Lock: Send + Sync + fmt::Debug {
    /// One attempt to take `key` for `ttl`; `Ok(None)` when someone else holds it.
    ///
    /// A zero ttl, or one above the backend's maximum, fails with a bad-request error.
    async fn try_acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>>;

    /// Takes `key` for `ttl`, retrying until `timeout`; fails with `LOCK_TIMEOUT`
    /// (kind conflict, `details.key`) when the lock stays taken. At least one attempt is
    /// made, even with a zero timeout.
    async fn acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Lease>;

    /// Releases `key` if this instance holds it. `Ok(true)` when this owner's lock was
    /// deleted, `Ok(false)` when there was nothing of ours to delete (never taken, expired,
    /// already released, or held by another owner, whose lock is left untouched).
    async fn release_owned(&self, ctx: &Context, key: &str) -> Result<bool>;

    /// Extends this owner's lock on `key` to expire `ttl` from now; `Ok(None)` when the
    /// lock is no longer ours.
    async fn extend_lease(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<Option<Lease>>;

    /// Looks at `key` without changing it.
    async fn inspect_lock(&self, ctx: &Context, key: &str) -> Result<LockInfo>;

    /// Releases the acquisition `lease` describes, and only that one: `Ok(false)` when the
    /// key is no longer held under the lease's token (expired, released, or taken again,
    /// even by this same instance). [`crate::LockGuard`] releases this way.
    ///
    /// The default forwards to [`Lock::release_owned`]; backends with per-acquisition
    /// tokens (`MemoryLock`, `MemcachedLock`) check the token.
    async fn release_lease(&self, ctx: &Context, lease: &Lease) -> Result<bool> {
        self.release_owned(ctx, &lease.key).await
    }

    /// One attempt to take `key` for `ttl`: `true` when acquired, `false` on contention.
    async fn try_acquire_lock(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<bool> {
        Ok(self.try_acquire_lease(ctx, key, ttl).await?.is_some())
    }

    /// Takes `key` for `ttl`, waiting at most `timeout` (`LOCK_TIMEOUT` otherwise).
    async fn acquire_lock(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<()> {
        self.acquire_lease(ctx, key, ttl, timeout).await.map(|_| ())
    }

    /// Releases `key` if held by this instance; idempotent, never touches another owner's
    /// lock.
    async fn release_lock(&self, ctx: &Context, key: &str) -> Result<()> {
        self.release_owned(ctx, key).await.map(|_| ())
    }

    /// Extends this owner's lock; `false` when it is no longer ours.
    async fn extend_lock(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<bool> {
        Ok(self.extend_lease(ctx, key, ttl).await?.is_some())
    }
}

/// The boxed future every `Lock` method returns (the shape `#[async_trait]` gives them).
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// Written without `#[async_trait]` on purpose: the inner call already returns a boxed
// future, so forwarding it as is saves a second allocation per call for every caller that
// holds the lock as `Arc<dyn Lock>` (which method resolution routes through this impl).
// Every method has the shape `(&self, &Context, &X, by-value args...)`, hence one rule.
// `missing_trait_methods` turns a method added to the trait but not listed here into a
// clippy error instead of a silent fall-back to the default (which would skip the inner
// type's override).
macro_rules! forward_lock {
    ($($ty:ty),+) => {$(
        #[deny(clippy::missing_trait_methods)]
        impl<T: Lock + ?Sized> Lock for $ty {
            forward_lock!(@methods
                try_acquire_lease(key: &str, ttl: Duration) -> Option<Lease>;
                acquire_lease(key: &str, ttl: Duration, timeout: Duration) -> Lease;
                release_owned(key: &str) -> bool;
                extend_lease(key: &str, ttl: Duration) -> Option<Lease>;
                inspect_lock(key: &str) -> LockInfo;
                release_lease(lease: &Lease) -> bool;
                try_acquire_lock(key: &str, ttl: Duration) -> bool;
                acquire_lock(key: &str, ttl: Duration, timeout: Duration) -> ();
                release_lock(key: &str) -> ();
                extend_lock(key: &str, ttl: Duration) -> bool;
            );
        }
    )+};
    (@methods $(
        $name:ident($by_ref:ident: &$ref_ty:ty $(, $arg:ident: $arg_ty:ty)*) -> $out:ty;
    )+) => {$(
        fn $name<'a, 'b, 'c, 'async_trait>(
            &'a self,
            ctx: &'b Context,
            $by_ref: &'c $ref_ty,
            $($arg: $arg_ty),*
        ) -> BoxFuture<'async_trait, Result<$out>>
        where
            'a: 'async_trait,
            'b: 'async_trait,
            'c: 'async_trait,
            Self: 'async_trait,
        {
            (**self).$name(ctx, $by_ref $(, $arg)*)
        }
    )+};
}

forward_lock!(Arc<T>, Box<T>);
