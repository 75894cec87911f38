//! Factories create components by descriptor.

use std::fmt;
use std::sync::Arc;

use crate::{Component, Descriptor, Error, ErrorKind, Result, codes};

/// Creates components from a locator descriptor.
pub trait Factory: Send + Sync + fmt::Debug {
    /// Whether this factory can create a component for `locator`.
    fn can_create(&self, locator: &Descriptor) -> bool;

    /// Creates the component, or fails with `CANNOT_CREATE`.
    fn create(&self, locator: &Descriptor) -> Result<Component>;

    /// The descriptors this factory knows, for error messages that list them.
    fn descriptors(&self) -> Vec<Descriptor>;
}

type Constructor = Arc<dyn Fn(&Descriptor) -> Result<Component> + Send + Sync>;

/// A factory built from (descriptor, constructor) registrations.
///
/// ```
/// use std::sync::Arc;
/// use commons::{component, Descriptor, Factory, FactoryRegistry, MemoryDiscovery, Discovery};
///
/// let mut factory = FactoryRegistry::new("demo");
/// factory.register(Descriptor::new("pip-services", "discovery", "memory", "*", "1.0"), |_| {
///     Ok(component!(Arc::new(MemoryDiscovery::new()) => dyn Discovery))
/// });
/// let locator = Descriptor::new("pip-services", "discovery", "memory", "default", "1.0");
/// assert!(factory.can_create(&locator));
/// assert!(factory.create(&locator).unwrap().get::<dyn Discovery>().is_some());
/// ```
#[derive(Clone)]
pub struct FactoryRegistry {
    name: String,
    registrations: Vec<(Descriptor, Constructor)>,
}

impl FactoryRegistry {
    /// An empty factory named `name` (the name appears in diagnostics).
    pub fn new(name: impl Into<String>) -> Self {
        FactoryRegistry {
            name: name.into(),
            registrations: Vec::new(),
        }
    }

    /// Registers a constructor for components matching `descriptor`.
    pub fn register(
        &mut self,
        descriptor: Descriptor,
        constructor: impl Fn(&Descriptor) -> Result<Component> + Send + Sync + 'static,
    ) -> &mut Self {
        self.registrations.push((descriptor, Arc::new(constructor)));
        self
    }
}

impl fmt::Debug for FactoryRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FactoryRegistry")
            .field("name", &self.name)
            .field(
                "descriptors",
                &self
                    .registrations
                    .iter()
                    .map(|(d, _)| d.to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Factory for FactoryRegistry {
    fn can_create(&self, locator: &Descriptor) -> bool {
        self.registrations.iter().any(|(d, _)| d.matches(locator))
    }

    fn create(&self, locator: &Descriptor) -> Result<Component> {
        match self
            .registrations
            .iter()
            .rev()
            .find(|(d, _)| d.matches(locator))
        {
            Some((_, constructor)) => constructor(locator),
            None => Err(cannot_create(locator, &self.descriptors())),
        }
    }

    fn descriptors(&self) -> Vec<Descriptor> {
        self.registrations.iter().map(|(d, _)| d.clone()).collect()
    }
}

/// The `CANNOT_CREATE` error, listing the descriptors that are known.
pub fn cannot_create(locator: &Descriptor, known: &[Descriptor]) -> Error {
    let known_list = known
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Error::new(
        ErrorKind::Creation,
        codes::CANNOT_CREATE,
        format!("no factory can create {locator}; known descriptors: [{known_list}]"),
    )
    .with_detail("locator", locator)
    .with_detail("known", known_list)
}
