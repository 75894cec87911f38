//! Registration of `MemcachedLock` under its descriptor.

use std::sync::Arc;

use commons::{Configurable, Descriptor, FactoryRegistry, Openable, Referenceable, component};
use lock_core::Lock;

use crate::MemcachedLock;

/// The descriptor `MemcachedLock` is created under: `pip-services:lock:memcached:*:1.0`.
pub fn memcached_lock_descriptor() -> Descriptor {
    Descriptor::new("pip-services", "lock", "memcached", "*", "1.0")
}

/// The descriptor of this crate's factory: `pip-services:factory:memcached:default:1.0`.
pub fn memcached_factory_descriptor() -> Descriptor {
    Descriptor::new("pip-services", "factory", "memcached", "default", "1.0")
}

/// A factory that creates `MemcachedLock` components exposing `dyn Lock`, `dyn Configurable`,
/// `dyn Referenceable` and `dyn Openable`.
///
/// ```
/// use commons::{Descriptor, Factory};
/// use lock_core::Lock;
///
/// let factory = lock_memcached::memcached_lock_factory();
/// let locator = Descriptor::new("pip-services", "lock", "memcached", "default", "1.0");
/// let component = factory.create(&locator).unwrap();
/// assert!(component.get::<dyn Lock>().is_some());
/// ```
pub fn memcached_lock_factory() -> FactoryRegistry {
    let mut factory = FactoryRegistry::new("memcached");
    register_memcached_lock(&mut factory);
    factory
}

/// Adds `MemcachedLock` to an existing factory registry.
pub fn register_memcached_lock(factory: &mut FactoryRegistry) {
    factory.register(memcached_lock_descriptor(), |_| {
        Ok(component!(Arc::new(MemcachedLock::new())
            => dyn Lock, dyn Configurable, dyn Referenceable, dyn Openable))
    });
}
