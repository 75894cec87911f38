//! `DefaultLockFactory`: creates `MemoryLock` and `NullLock` by descriptor.

use std::sync::Arc;

use commons::{Component, Configurable, Descriptor, Factory, Result, cannot_create};

use crate::{Lock, MemoryLock, MemoryLockTable, NullLock};

/// The descriptor of [`DefaultLockFactory`] itself.
pub const LOCK_FACTORY_DESCRIPTOR: &str = "pip-services:factory:lock:default:1.0";
/// The components of kind `memory`: a [`MemoryLock`] under any name.
pub const MEMORY_LOCK_DESCRIPTOR: &str = "pip-services:lock:memory:*:1.0";
/// The components of kind `null`: a [`NullLock`] under any name.
pub const NULL_LOCK_DESCRIPTOR: &str = "pip-services:lock:null:*:1.0";

/// [`MEMORY_LOCK_DESCRIPTOR`] as a [`Descriptor`].
pub fn memory_lock_descriptor() -> Descriptor {
    Descriptor::new("pip-services", "lock", "memory", "*", "1.0")
}

/// [`NULL_LOCK_DESCRIPTOR`] as a [`Descriptor`].
pub fn null_lock_descriptor() -> Descriptor {
    Descriptor::new("pip-services", "lock", "null", "*", "1.0")
}

/// Creates [`MemoryLock`]s and [`NullLock`]s, each exposing `dyn Lock` and
/// `dyn Configurable` (and its concrete type).
///
/// Every `MemoryLock` it creates is a separate owner with its own table, as in the
/// originals, unless the factory was made with [`DefaultLockFactory::with_memory_table`]:
/// then they all share that table (and exclude each other).
///
/// ```
/// use std::sync::Arc;
/// use commons::{Container, Context, Descriptor};
/// use lock_core::{DefaultLockFactory, Lock};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> commons::Result<()> {
/// let mut container = Container::new();
/// container.add_factory(Arc::new(DefaultLockFactory::new()));
/// container.read_config_str(r#"{"components": [
///     {"descriptor": "pip-services:lock:memory:default:1.0", "options": {"retry_timeout": 50}}
/// ]}"#)?;
/// let ctx = Context::new();
/// container.open(&ctx).await?;
/// let lock: Arc<dyn Lock> = container
///     .references()
///     .get_one_required(&Descriptor::new("*", "lock", "*", "*", "1.0"))?;
/// assert!(lock.try_acquire_lock(&ctx, "job", std::time::Duration::from_secs(5)).await?);
/// container.close(&ctx).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct DefaultLockFactory {
    memory_table: Option<Arc<MemoryLockTable>>,
}

impl DefaultLockFactory {
    /// The factory; each `MemoryLock` it creates has its own table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The factory; every `MemoryLock` it creates uses `table`.
    pub fn with_memory_table(table: Arc<MemoryLockTable>) -> Self {
        DefaultLockFactory {
            memory_table: Some(table),
        }
    }

    /// This factory's own descriptor ([`LOCK_FACTORY_DESCRIPTOR`]).
    pub fn descriptor() -> Descriptor {
        Descriptor::new("pip-services", "factory", "lock", "default", "1.0")
    }
}

impl Factory for DefaultLockFactory {
    fn can_create(&self, locator: &Descriptor) -> bool {
        memory_lock_descriptor().matches(locator) || null_lock_descriptor().matches(locator)
    }

    fn create(&self, locator: &Descriptor) -> Result<Component> {
        // A locator with a wildcard kind matches both; `memory` (the useful one) wins.
        if memory_lock_descriptor().matches(locator) {
            let lock = Arc::new(match &self.memory_table {
                Some(table) => MemoryLock::with_table(table.clone()),
                None => MemoryLock::new(),
            });
            return Ok(commons::component!(lock => dyn Lock, dyn Configurable));
        }
        if null_lock_descriptor().matches(locator) {
            let lock = Arc::new(NullLock::new());
            return Ok(commons::component!(lock => dyn Lock, dyn Configurable));
        }
        Err(cannot_create(locator, &self.descriptors()))
    }

    fn descriptors(&self) -> Vec<Descriptor> {
        vec![memory_lock_descriptor(), null_lock_descriptor()]
    }
}

/// A [`DefaultLockFactory`] ready for `Container::add_factory`.
pub fn default_lock_factory() -> Arc<dyn Factory> {
    Arc::new(DefaultLockFactory::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use commons::{Container, Context, ErrorKind, codes};
    use std::time::Duration;

    fn d(s: &str) -> Descriptor {
        s.parse().unwrap()
    }

    #[test]
    fn descriptors_match_their_constants() {
        assert_eq!(memory_lock_descriptor(), d(MEMORY_LOCK_DESCRIPTOR));
        assert_eq!(null_lock_descriptor(), d(NULL_LOCK_DESCRIPTOR));
        assert_eq!(DefaultLockFactory::descriptor(), d(LOCK_FACTORY_DESCRIPTOR));
    }

    #[test]
    fn creates_by_descriptor() {
        let f = DefaultLockFactory::new();
        let mem = f
            .create(&d("pip-services:lock:memory:default:1.0"))
            .unwrap();
        assert!(mem.get::<dyn Lock>().is_some());
        assert!(mem.get::<dyn Configurable>().is_some());
        assert!(mem.get::<MemoryLock>().is_some());
        let null = f.create(&d("pip-services:lock:null:x:1.0")).unwrap();
        assert!(null.get::<NullLock>().is_some());
        let err = f
            .create(&d("pip-services:lock:memcached:default:1.0"))
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::Creation, codes::CANNOT_CREATE)
        );
        assert!(
            err.to_string().contains("pip-services:lock:memory:*:1.0"),
            "{err}"
        );
        assert!(!f.can_create(&d("pip-services:lock:memory:default:2.0")));
    }

    #[tokio::test]
    async fn a_shared_table_makes_created_locks_exclude_each_other() {
        let ctx = Context::new();
        let locator = d("pip-services:lock:memory:default:1.0");
        let shared = DefaultLockFactory::with_memory_table(Arc::new(MemoryLockTable::new()));
        let a = shared.create(&locator).unwrap().get::<dyn Lock>().unwrap();
        let b = shared.create(&locator).unwrap().get::<dyn Lock>().unwrap();
        assert!(
            a.try_acquire_lock(&ctx, "k", Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert!(
            !b.try_acquire_lock(&ctx, "k", Duration::from_secs(5))
                .await
                .unwrap()
        );
        let own = DefaultLockFactory::new();
        let c = own.create(&locator).unwrap().get::<dyn Lock>().unwrap();
        let e = own.create(&locator).unwrap().get::<dyn Lock>().unwrap();
        assert!(
            c.try_acquire_lock(&ctx, "k", Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert!(
            e.try_acquire_lock(&ctx, "k", Duration::from_secs(5))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn works_in_a_container_and_configuration_is_applied() {
        let ctx = Context::with_trace_id("boot");
        let mut container = Container::new();
        container.add_factory(default_lock_factory());
        container
            .read_config_str(
                r#"{"components": [
                {"descriptor": "pip-services:lock:memory:main:1.0",
                 "options": {"retry_timeout": 250, "max_ttl": 60000}},
                {"descriptor": "pip-services:lock:null:off:1.0"}
            ]}"#,
            )
            .unwrap();
        container.open(&ctx).await.unwrap();
        let refs = container.references();
        let mem: Arc<MemoryLock> = refs
            .get_one_required(&d("pip-services:lock:memory:main:1.0"))
            .unwrap();
        assert_eq!(mem.retry_policy().retry_timeout, Duration::from_millis(250));
        assert_eq!(mem.max_ttl(), Duration::from_secs(60));
        let null: Arc<dyn Lock> = refs.get_one_required(&d("*:lock:null:*:1.0")).unwrap();
        assert!(
            null.try_acquire_lock(&ctx, "k", Duration::from_secs(1))
                .await
                .unwrap()
        );
        let locks: Vec<Arc<dyn Lock>> = refs.get_optional(&d("*:lock:*:*:1.0"));
        assert_eq!(locks.len(), 2);
        container.close(&ctx).await.unwrap();
    }

    #[tokio::test]
    async fn a_bad_option_fails_the_container_open_naming_the_key() {
        let ctx = Context::with_trace_id("boot");
        let mut container = Container::new();
        container.add_factory(default_lock_factory());
        container
            .read_config_str(
                r#"[{"descriptor": "pip-services:lock:memory:main:1.0",
                     "options": {"retry_timeout": "soon"}}]"#,
            )
            .unwrap();
        let err = container.open(&ctx).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("options.retry_timeout"), "{err}");
        assert_eq!(err.trace_id(), Some("boot"));
        assert!(!container.is_open());
    }
}
