//! Registration of `MemcachedLock` under its descriptor, in the same form as lock-core's
//! `DefaultLockFactory`: descriptor constants, a ready factory for `Container::add_factory`,
//! and a function that adds the lock to an existing registry.

use std::sync::Arc;

use commons::{
    Configurable, Descriptor, Factory, FactoryRegistry, Openable, Referenceable, component,
};
use lock_core::Lock;

use crate::MemcachedLock;

/// The components of kind `memcached`: a [`MemcachedLock`] under any name.
pub const MEMCACHED_LOCK_DESCRIPTOR: &str = "pip-services:lock:memcached:*:1.0";

/// The descriptor of this crate's factory.
pub const MEMCACHED_FACTORY_DESCRIPTOR: &str = "pip-services:factory:memcached:default:1.0";

/// A factory that creates `MemcachedLock` components exposing `dyn Lock`, `dyn Configurable`,
/// `dyn Referenceable` and `dyn Openable`, ready for `Container::add_factory`.
///
/// ```
/// use commons::Descriptor;
/// use lock_core::Lock;
///
/// let factory = lock_memcached::memcached_lock_factory();
/// let locator = Descriptor::new("pip-services", "lock", "memcached", "default", "1.0");
/// let component = factory.create(&locator).unwrap();
/// assert!(component.get::<dyn Lock>().is_some());
/// ```
pub fn memcached_lock_factory() -> Arc<dyn Factory> {
    let mut factory = FactoryRegistry::new("memcached");
    register_memcached_lock(&mut factory);
    Arc::new(factory)
}

/// Adds `MemcachedLock` (under [`MEMCACHED_LOCK_DESCRIPTOR`]) to an existing registry.
pub fn register_memcached_lock(registry: &mut FactoryRegistry) {
    registry.register(descriptor(MEMCACHED_LOCK_DESCRIPTOR), |_| {
        Ok(component!(Arc::new(MemcachedLock::new())
            => dyn Lock, dyn Configurable, dyn Referenceable, dyn Openable))
    });
}

fn descriptor(text: &str) -> Descriptor {
    text.parse()
        .unwrap_or_else(|e| unreachable!("the constant {text} is a valid descriptor: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_valid_and_the_factory_creates_the_lock() {
        let lock = descriptor(MEMCACHED_LOCK_DESCRIPTOR);
        let factory: Descriptor = descriptor(MEMCACHED_FACTORY_DESCRIPTOR);
        assert_eq!(factory.type_(), Some("factory"));
        assert_eq!(lock.kind(), Some("memcached"));
        let made = memcached_lock_factory()
            .create(&lock)
            .expect("the factory creates its own descriptor");
        assert!(made.get::<dyn Lock>().is_some());
        assert!(made.get::<dyn Openable>().is_some());
    }
}
