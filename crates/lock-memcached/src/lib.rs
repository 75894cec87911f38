#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod client;
pub mod codes;
mod config;
mod factory;
mod key;
mod lock;
pub mod telemetry;
mod value;

pub use config::{
    KeyDistribution, LockMode, MemcachedLockConfig, ProtocolMode, TelemetryKey, TlsConfig,
};
pub use factory::{
    MEMCACHED_FACTORY_DESCRIPTOR, MEMCACHED_LOCK_DESCRIPTOR, memcached_lock_factory,
    register_memcached_lock,
};
pub use lock::{MemcachedLock, ServerStatus};

/// Entry points for the fuzz targets in `fuzz/` (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    use crate::client::{EVERY_SHAPE, parse};

    /// Parses `input` as the reply to each kind of request in turn, the way a connection
    /// does: repeatedly from the front while whole replies are available. Must never panic.
    pub fn parse_replies(input: &[u8]) {
        for shape in EVERY_SHAPE {
            let mut rest = input;
            while let Ok(Some((_, consumed))) = parse(rest, shape) {
                assert!(
                    consumed > 0 && consumed <= rest.len(),
                    "parser consumed {consumed}"
                );
                rest = &rest[consumed..];
            }
        }
    }
}
