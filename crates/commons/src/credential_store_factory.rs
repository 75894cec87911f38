//! `DefaultCredentialStoreFactory`: creates the in-memory credential store by descriptor.

use std::sync::Arc;

use crate::{
    Component, Configurable, CredentialStore, Descriptor, Factory, MemoryCredentialStore, Result,
    cannot_create,
};

/// The descriptor of [`DefaultCredentialStoreFactory`] itself (Pip.Services'
/// `DefaultCredentialsFactory`).
pub const CREDENTIAL_STORE_FACTORY_DESCRIPTOR: &str =
    "pip-services:factory:credential-store:default:1.0";

/// The components [`DefaultCredentialStoreFactory`] creates: [`MemoryCredentialStore`] under
/// any name.
pub const MEMORY_CREDENTIAL_STORE_DESCRIPTOR: &str = "pip-services:credential-store:memory:*:1.0";

/// Creates a [`MemoryCredentialStore`] (exposing [`CredentialStore`] and [`Configurable`])
/// for any locator matching [`MEMORY_CREDENTIAL_STORE_DESCRIPTOR`]. The
/// [`Container`](crate::Container) registers it by default, beside the discovery factory.
///
/// ```
/// use commons::{CredentialStore, DefaultCredentialStoreFactory, Descriptor, Factory};
///
/// let factory = DefaultCredentialStoreFactory::new();
/// let locator: Descriptor = "pip-services:credential-store:memory:default:1.0".parse().unwrap();
/// assert!(factory.can_create(&locator));
/// assert!(factory.create(&locator).unwrap().get::<dyn CredentialStore>().is_some());
/// assert!(!factory.can_create(&"pip-services:discovery:memory:default:1.0".parse().unwrap()));
/// ```
#[derive(Debug, Clone)]
pub struct DefaultCredentialStoreFactory {
    memory: Descriptor,
}

impl DefaultCredentialStoreFactory {
    /// The factory.
    pub fn new() -> Self {
        DefaultCredentialStoreFactory {
            memory: Descriptor::new("pip-services", "credential-store", "memory", "*", "1.0"),
        }
    }

    /// This factory's own descriptor ([`CREDENTIAL_STORE_FACTORY_DESCRIPTOR`]).
    pub fn descriptor() -> Descriptor {
        Descriptor::new(
            "pip-services",
            "factory",
            "credential-store",
            "default",
            "1.0",
        )
    }
}

impl Default for DefaultCredentialStoreFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl Factory for DefaultCredentialStoreFactory {
    fn can_create(&self, locator: &Descriptor) -> bool {
        self.memory.matches(locator)
    }

    fn create(&self, locator: &Descriptor) -> Result<Component> {
        if !self.can_create(locator) {
            return Err(cannot_create(locator, &self.descriptors()));
        }
        let store = Arc::new(MemoryCredentialStore::new());
        Ok(Component::new(store.clone())
            .expose::<dyn CredentialStore>(store.clone())
            .expose::<dyn Configurable>(store))
    }

    fn descriptors(&self) -> Vec<Descriptor> {
        vec![self.memory.clone()]
    }
}
