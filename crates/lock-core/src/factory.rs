//! `DefaultLockFactory` and `register_default_locks`: `MemoryLock` and `NullLock` by
//! descriptor.

use std::sync::Arc;

use commons::{
    Component, Configurable, Descriptor, Factory, FactoryRegistry, Result, cannot_create,
};

use crate::{Lock, MemoryLock, MemoryLockTable, NullLock};

/// The descriptor of [`DefaultLockFactory`] itself.
pub const LOCK_FACTORY_DESCRIPTOR: &str = "pip-services:factory:lock:default:1.0";
/// The components of kind `memory`: a [`MemoryLock`] under any name.
pub const MEMORY_LOCK_DESCRIPTOR: &str = "pip-services:lock:memory:*:1.0";
/// The components of kind `null`: a [`NullLock`] under any name.
pub const NULL_LOCK_DESCRIPTOR: &str = "pip-services:lock:null:*:1.0";

/// One of this module's descriptor constants, parsed; they are literals checked by a test,
/// so parsing cannot fail at run time.
fn descriptor(constant: &'static str) -> Descriptor {
    constant
        .parse()
        .unwrap_or_else(|e| panic!("the descriptor constant {constant:?} does not parse: {e}"))
}

fn memory_lock_component(table: Option<&Arc<MemoryLockTable>>) -> Component {
    let lock = Arc::new(match table {
        Some(table) => MemoryLock::with_table(table.clone()),
        None => MemoryLock::new(),
    });
    commons::component!(lock => dyn Lock, dyn Configurable)
}

fn null_lock_component() -> Component {
    commons::component!(Arc::new(NullLock::new()) => dyn Lock, dyn Configurable)
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
}

impl Factory for DefaultLockFactory {
    fn can_create(&self, locator: &Descriptor) -> bool {
        self.descriptors().iter().any(|d| d.matches(locator))
    }

    fn create(&self, locator: &Descriptor) -> Result<Component> {
        // A locator with a wildcard kind matches both; `memory` (the useful one) wins.
        if descriptor(MEMORY_LOCK_DESCRIPTOR).matches(locator) {
            return Ok(memory_lock_component(self.memory_table.as_ref()));
        }
        if descriptor(NULL_LOCK_DESCRIPTOR).matches(locator) {
            return Ok(null_lock_component());
        }
        Err(cannot_create(locator, &self.descriptors()))
    }

    fn descriptors(&self) -> Vec<Descriptor> {
        vec![
            descriptor(MEMORY_LOCK_DESCRIPTOR),
            descriptor(NULL_LOCK_DESCRIPTOR),
        ]
    }
}

/// A [`DefaultLockFactory`] ready for `Container::add_factory`.
pub fn default_lock_factory() -> Arc<dyn Factory> {
    Arc::new(DefaultLockFactory::new())
}

/// Adds [`MemoryLock`] ([`MEMORY_LOCK_DESCRIPTOR`], each with its own table) and
/// [`NullLock`] ([`NULL_LOCK_DESCRIPTOR`]) to an existing registry, so that one factory can
/// create the locks of several crates.
///
/// ```
/// use commons::{Descriptor, Factory, FactoryRegistry};
/// use lock_core::{Lock, register_default_locks};
///
/// let mut registry = FactoryRegistry::new("locks");
/// register_default_locks(&mut registry);
/// let locator = Descriptor::new("pip-services", "lock", "memory", "default", "1.0");
/// assert!(registry.create(&locator).unwrap().get::<dyn Lock>().is_some());
/// ```
pub fn register_default_locks(registry: &mut FactoryRegistry) {
    // The registry lets the latest registration win, so `memory` comes last to win a
    // wildcard kind, as it does in `DefaultLockFactory`.
    registry.register(descriptor(NULL_LOCK_DESCRIPTOR), |_| {
        Ok(null_lock_component())
    });
    registry.register(descriptor(MEMORY_LOCK_DESCRIPTOR), |_| {
        Ok(memory_lock_component(None))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use commons::{Container, Context, ErrorKind, codes};
    use std::time::Duration;

    fn d(s: &str) -> Descriptor {
        s.parse().unwrap()
    }

    fn registry() -> FactoryRegistry {
        let mut registry = FactoryRegistry::new("locks");
        register_default_locks(&mut registry);
        registry
    }

    /// Both ways of getting the memory and null locks, which must behave the same.
    fn factories() -> [(&'static str, Arc<dyn Factory>); 2] {
        [
            ("DefaultLockFactory", default_lock_factory()),
            ("register_default_locks", Arc::new(registry())),
        ]
    }

    /// One container per entry of `factories()`, each with its factory and `config` read.
    fn containers_with(config: &str) -> Vec<(&'static str, Container)> {
        factories()
            .into_iter()
            .map(|(name, factory)| {
                let mut container = Container::new();
                container.add_factory(factory);
                container.read_config_str(config).unwrap();
                (name, container)
            })
            .collect()
    }

    async fn try_take(lock: &Arc<dyn Lock>, ctx: &Context) -> bool {
        lock.try_acquire_lock(ctx, "k", Duration::from_secs(5))
            .await
            .unwrap()
    }

    #[test]
    fn descriptor_constants_parse_to_the_registered_descriptors() {
        assert_eq!(
            descriptor(LOCK_FACTORY_DESCRIPTOR),
            Descriptor::new("pip-services", "factory", "lock", "default", "1.0")
        );
        let memory = Descriptor::new("pip-services", "lock", "memory", "*", "1.0");
        let null = Descriptor::new("pip-services", "lock", "null", "*", "1.0");
        assert_eq!(descriptor(MEMORY_LOCK_DESCRIPTOR), memory);
        assert_eq!(descriptor(NULL_LOCK_DESCRIPTOR), null);
        assert_eq!(
            DefaultLockFactory::new().descriptors(),
            vec![memory.clone(), null.clone()]
        );
        let mut registered = registry().descriptors();
        registered.sort_by_key(ToString::to_string);
        assert_eq!(registered, vec![memory, null]);
    }

    #[test]
    fn creates_by_descriptor() {
        for (name, f) in factories() {
            let mem = f
                .create(&d("pip-services:lock:memory:default:1.0"))
                .unwrap();
            assert!(mem.get::<dyn Lock>().is_some(), "{name}");
            assert!(mem.get::<dyn Configurable>().is_some(), "{name}");
            assert!(mem.get::<MemoryLock>().is_some(), "{name}");
            let null = f.create(&d("pip-services:lock:null:x:1.0")).unwrap();
            assert!(null.get::<NullLock>().is_some(), "{name}");
            assert!(null.get::<dyn Configurable>().is_some(), "{name}");
            let any_kind = f.create(&d("pip-services:lock:*:x:1.0")).unwrap();
            assert!(
                any_kind.get::<MemoryLock>().is_some(),
                "{name}: a wildcard kind must create the memory lock"
            );
            let err = f
                .create(&d("pip-services:lock:memcached:default:1.0"))
                .unwrap_err();
            assert_eq!(
                (err.kind(), err.code()),
                (ErrorKind::Creation, codes::CANNOT_CREATE),
                "{name}"
            );
            assert!(
                err.to_string().contains("pip-services:lock:memory:*:1.0"),
                "{name}: {err}"
            );
            assert!(
                !f.can_create(&d("pip-services:lock:memory:default:2.0")),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn a_shared_table_makes_created_locks_exclude_each_other() {
        let ctx = Context::new();
        let locator = d("pip-services:lock:memory:default:1.0");
        let create = |f: &dyn Factory| f.create(&locator).unwrap().get::<dyn Lock>().unwrap();
        let shared = DefaultLockFactory::with_memory_table(Arc::new(MemoryLockTable::new()));
        let (a, b) = (create(&shared), create(&shared));
        assert!(try_take(&a, &ctx).await);
        assert!(!try_take(&b, &ctx).await);
        for (name, own) in factories() {
            let (c, e) = (create(own.as_ref()), create(own.as_ref()));
            assert!(try_take(&c, &ctx).await, "{name}");
            assert!(
                try_take(&e, &ctx).await,
                "{name}: each memory lock must have its own table"
            );
        }
    }

    #[tokio::test]
    async fn works_in_a_container_and_configuration_is_applied() {
        let config = r#"{"components": [
            {"descriptor": "pip-services:lock:memory:main:1.0",
             "options": {"retry_timeout": 250, "max_ttl": 60000}},
            {"descriptor": "pip-services:lock:null:off:1.0"}
        ]}"#;
        for (name, container) in containers_with(config) {
            let ctx = Context::with_trace_id("boot");
            container.open(&ctx).await.unwrap();
            let refs = container.references();
            let mem: Arc<MemoryLock> = refs
                .get_one_required(&d("pip-services:lock:memory:main:1.0"))
                .unwrap();
            assert_eq!(
                mem.retry_policy().retry_timeout,
                Duration::from_millis(250),
                "{name}"
            );
            assert_eq!(mem.max_ttl(), Duration::from_secs(60), "{name}");
            let null: Arc<dyn Lock> = refs.get_one_required(&d("*:lock:null:*:1.0")).unwrap();
            assert!(try_take(&null, &ctx).await, "{name}");
            let locks: Vec<Arc<dyn Lock>> = refs.get_optional(&d("*:lock:*:*:1.0"));
            assert_eq!(locks.len(), 2, "{name}");
            container.close(&ctx).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_bad_option_fails_the_container_open_naming_the_key() {
        let config = r#"[{"descriptor": "pip-services:lock:memory:main:1.0",
                          "options": {"retry_timeout": "soon"}}]"#;
        for (name, container) in containers_with(config) {
            let ctx = Context::with_trace_id("boot");
            let err = container.open(&ctx).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{name}");
            assert!(
                err.to_string().contains("options.retry_timeout"),
                "{name}: {err}"
            );
            assert_eq!(err.trace_id(), Some("boot"), "{name}");
            assert!(!container.is_open(), "{name}");
        }
    }
}
