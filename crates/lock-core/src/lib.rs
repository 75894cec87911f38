#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod factory;
mod guard;
mod lock;
mod memory;
mod retry;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use factory::{
    DefaultLockFactory, LOCK_FACTORY_DESCRIPTOR, MEMORY_LOCK_DESCRIPTOR, NULL_LOCK_DESCRIPTOR,
    default_lock_factory, register_default_locks,
};
pub use guard::{LockGuard, LockGuardBuilder};
pub use lock::{Lease, Lock, LockInfo};
pub use memory::{
    DEFAULT_MAX_TTL, MAX_TTL_KEY, MemoryLock, MemoryLockTable, NullLock, RETRY_TIMEOUT_KEY,
};
pub use retry::{LocalWaiters, RetryPolicy, acquire_with_retry, lock_timeout_error};
