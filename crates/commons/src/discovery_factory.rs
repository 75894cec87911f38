//! `DefaultDiscoveryFactory`: creates the in-memory discovery by descriptor.

use std::sync::Arc;

use crate::{
    Component, Configurable, Descriptor, Discovery, Factory, MemoryDiscovery, Result, cannot_create,
};

/// The descriptor of [`DefaultDiscoveryFactory`] itself, as Pip.Services names it.
pub const DISCOVERY_FACTORY_DESCRIPTOR: &str = "pip-services:factory:discovery:default:1.0";

/// The components [`DefaultDiscoveryFactory`] creates: [`MemoryDiscovery`] under any name.
pub const MEMORY_DISCOVERY_DESCRIPTOR: &str = "pip-services:discovery:memory:*:1.0";

/// Creates a [`MemoryDiscovery`] (exposing [`Discovery`] and [`Configurable`]) for any
/// locator matching [`MEMORY_DISCOVERY_DESCRIPTOR`]. The [`Container`](crate::Container)
/// registers it by default.
///
/// ```
/// use commons::{DefaultDiscoveryFactory, Descriptor, Discovery, Factory};
///
/// let factory = DefaultDiscoveryFactory::new();
/// let locator: Descriptor = "pip-services:discovery:memory:default:1.0".parse().unwrap();
/// assert!(factory.can_create(&locator));
/// assert!(factory.create(&locator).unwrap().get::<dyn Discovery>().is_some());
/// assert!(!factory.can_create(&"pip-services:lock:memory:default:1.0".parse().unwrap()));
/// ```
#[derive(Debug, Clone)]
pub struct DefaultDiscoveryFactory {
    memory: Descriptor,
}

impl DefaultDiscoveryFactory {
    /// The factory.
    pub fn new() -> Self {
        DefaultDiscoveryFactory {
            memory: memory_discovery_descriptor(),
        }
    }

    /// This factory's own descriptor ([`DISCOVERY_FACTORY_DESCRIPTOR`]).
    pub fn descriptor() -> Descriptor {
        Descriptor::new("pip-services", "factory", "discovery", "default", "1.0")
    }
}

impl Default for DefaultDiscoveryFactory {
    fn default() -> Self {
        Self::new()
    }
}

fn memory_discovery_descriptor() -> Descriptor {
    Descriptor::new("pip-services", "discovery", "memory", "*", "1.0")
}

impl Factory for DefaultDiscoveryFactory {
    fn can_create(&self, locator: &Descriptor) -> bool {
        self.memory.matches(locator)
    }

    fn create(&self, locator: &Descriptor) -> Result<Component> {
        if !self.can_create(locator) {
            return Err(cannot_create(locator, &self.descriptors()));
        }
        let discovery = Arc::new(MemoryDiscovery::new());
        Ok(Component::new(discovery.clone())
            .expose::<dyn Discovery>(discovery.clone())
            .expose::<dyn Configurable>(discovery))
    }

    fn descriptors(&self) -> Vec<Descriptor> {
        vec![self.memory.clone()]
    }
}
