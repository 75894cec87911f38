//! `Container`: builds, wires, opens and closes the components a JSON document lists.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{
    Closer, Component, ConfigParams, Configurable, Context, DefaultCredentialStoreFactory,
    DefaultDiscoveryFactory, Descriptor, Error, Factory, Openable, Referenceable, References,
    Result, Unreferenceable, cannot_create,
};

/// One entry of the configuration document: what to create and how to configure it.
#[derive(Debug, Clone)]
struct ComponentConfig {
    descriptor: Descriptor,
    config: ConfigParams,
}

/// A component the container created and registered.
#[derive(Debug, Clone)]
struct Created {
    descriptor: Descriptor,
    component: Component,
}

/// Creates components from a configuration document through factories, and runs their
/// lifecycle (Pip.Services' `Container`).
///
/// The document lists components, each a descriptor plus its configuration:
///
/// ```json
/// {"components": [
///     {"descriptor": "pip-services:discovery:memory:default:1.0", "cache": {"host": "localhost"}},
///     {"descriptor": "pip-services:lock:memory:default:1.0", "options": {"retry_timeout": 50}}
/// ]}
/// ```
///
/// (a top-level array of the same objects is accepted too). Each object minus its
/// `descriptor` is flattened into the component's [`ConfigParams`].
///
/// [`Container::open`], for the listed components in order:
/// 1. creates each through the newest registered factory that can create its descriptor and
///    registers it in the shared [`References`] under that descriptor;
/// 2. configures every [`Configurable`] with its configuration;
/// 3. calls `set_references` on every [`Referenceable`] with the shared references;
/// 4. opens every [`Openable`], in order.
///
/// Any failure undoes what was done (components already opened are closed in reverse
/// order, references unset, registrations removed) and is returned with the trace id of
/// the context. [`Container::close`] closes the [`Openable`]s in reverse order, then calls
/// `unset_references` on the [`Unreferenceable`]s and removes the registrations, so the
/// container can be opened again (creating fresh components).
///
/// Components put into [`Container::references`] by hand are visible to lookups but are
/// not configured, opened or closed by the container. Dropping an open container does not
/// close its components: call `close`.
///
/// The container knows [`DefaultDiscoveryFactory`] (`pip-services:discovery:memory:*:1.0`)
/// and [`DefaultCredentialStoreFactory`] (`pip-services:credential-store:memory:*:1.0`) from
/// the start.
///
/// ```
/// use commons::{Container, Context, Descriptor, Discovery};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut container = Container::new();
/// container.read_config_str(r#"{"components": [
///     {"descriptor": "pip-services:discovery:memory:default:1.0",
///      "cache": {"host": "10.0.0.5", "port": 11211}}
/// ]}"#).unwrap();
/// let ctx = Context::with_trace_id("boot");
/// container.open(&ctx).await.unwrap();
///
/// let discovery = container
///     .references()
///     .get_one_required::<dyn Discovery>(&Descriptor::new("*", "discovery", "*", "*", "*"))
///     .unwrap();
/// let cache = discovery.resolve_one(&ctx, "cache").await.unwrap().unwrap();
/// assert_eq!(cache.host(), Some("10.0.0.5"));
///
/// container.close(&ctx).await.unwrap();
/// assert!(!container.is_open());
/// # });
/// ```
pub struct Container {
    factories: Vec<Arc<dyn Factory>>,
    components: Vec<ComponentConfig>,
    references: References,
    created: tokio::sync::Mutex<Vec<Created>>,
    opened: AtomicBool,
}

impl Container {
    /// An empty container that knows the [`DefaultDiscoveryFactory`] and the
    /// [`DefaultCredentialStoreFactory`].
    pub fn new() -> Self {
        Container {
            factories: vec![
                Arc::new(DefaultDiscoveryFactory::new()),
                Arc::new(DefaultCredentialStoreFactory::new()),
            ],
            components: Vec::new(),
            references: References::new(),
            created: tokio::sync::Mutex::new(Vec::new()),
            opened: AtomicBool::new(false),
        }
    }

    /// Registers a factory. When several can create a descriptor, the one added last wins.
    pub fn add_factory(&mut self, factory: Arc<dyn Factory>) {
        self.factories.push(factory);
    }

    /// The shared references every component receives (clone it to keep it).
    pub fn references(&self) -> &References {
        &self.references
    }

    /// The descriptors of the components the configuration lists, in order.
    pub fn component_descriptors(&self) -> Vec<Descriptor> {
        self.components
            .iter()
            .map(|c| c.descriptor.clone())
            .collect()
    }

    /// Reads the configuration document from JSON text (see [`Container::read_config`]).
    pub fn read_config_str(&mut self, json: &str) -> Result<()> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            Error::config(format!("container configuration is not valid JSON: {e}")).with_source(e)
        })?;
        self.read_config(&value)
    }

    /// Reads the configuration document: `{"components": [...]}` or a top-level array of
    /// component objects, each with a `descriptor` string. Replaces any configuration read
    /// before; on error (not JSON of that shape, a missing or non-string `descriptor`, a
    /// descriptor that is not five fields: `BAD_DESCRIPTOR`) nothing changes.
    pub fn read_config(&mut self, document: &serde_json::Value) -> Result<()> {
        let items = match document {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Object(map) => match map.get("components") {
                Some(serde_json::Value::Array(items)) => items,
                Some(_) => {
                    return Err(Error::config(
                        "container configuration: 'components' must be an array",
                    )
                    .with_detail("key", "components"));
                }
                None => {
                    return Err(Error::config(
                        "container configuration must have a 'components' array",
                    )
                    .with_detail("key", "components"));
                }
            },
            _ => {
                return Err(Error::config(
                    "container configuration must be an object with 'components' or an array",
                ));
            }
        };
        let mut components = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let key = format!("components.{index}.descriptor");
            let serde_json::Value::Object(map) = item else {
                return Err(
                    Error::config(format!("component {index} must be a JSON object"))
                        .with_detail("key", format!("components.{index}")),
                );
            };
            let descriptor = match map.get("descriptor") {
                Some(serde_json::Value::String(text)) => {
                    Descriptor::parse(text).map_err(|e| e.with_detail("key", &key))?
                }
                Some(other) => {
                    return Err(Error::bad_config_value(
                        &key,
                        &other.to_string(),
                        "a descriptor string",
                    ));
                }
                None => {
                    return Err(Error::config(format!(
                        "component {index} has no 'descriptor' (group:type:kind:name:version)"
                    ))
                    .with_detail("key", key));
                }
            };
            let mut rest = map.clone();
            rest.remove("descriptor");
            let config = ConfigParams::from_json(&serde_json::Value::Object(rest))?;
            components.push(ComponentConfig { descriptor, config });
        }
        self.components = components;
        Ok(())
    }

    /// Whether the container is open.
    pub fn is_open(&self) -> bool {
        self.opened.load(Ordering::SeqCst)
    }

    /// Creates, configures, wires and opens the components (see [`Container`]). Opening an
    /// open container does nothing.
    ///
    /// Errors: `CANNOT_CREATE` (listing the known descriptors) when no factory can create a
    /// descriptor; otherwise the first error a factory or component returns, with the
    /// component's descriptor in `details.descriptor`.
    pub async fn open(&self, ctx: &Context) -> Result<()> {
        let mut created = self.created.lock().await;
        if self.is_open() {
            return Ok(());
        }
        // 1. Create everything before registering anything.
        let mut fresh = Vec::with_capacity(self.components.len());
        for entry in &self.components {
            let factory = self
                .factories
                .iter()
                .rev()
                .find(|f| f.can_create(&entry.descriptor))
                .ok_or_else(|| {
                    cannot_create(&entry.descriptor, &self.known_descriptors()).with_context(ctx)
                })?;
            let component = factory
                .create(&entry.descriptor)
                .map_err(|e| tag(e, &entry.descriptor, ctx))?;
            fresh.push(Created {
                descriptor: entry.descriptor.clone(),
                component,
            });
        }
        for c in &fresh {
            self.references
                .put(c.descriptor.clone(), c.component.clone());
        }
        // 2. Configure.
        for (c, entry) in fresh.iter().zip(&self.components) {
            if let Some(configurable) = c.component.get::<dyn Configurable>() {
                if let Err(e) = configurable.configure(&entry.config) {
                    self.unregister(&fresh);
                    return Err(tag(e, &c.descriptor, ctx));
                }
            }
        }
        // 3. Wire.
        for (i, c) in fresh.iter().enumerate() {
            if let Some(referenceable) = c.component.get::<dyn Referenceable>() {
                if let Err(e) = referenceable.set_references(&self.references) {
                    unset_references(&fresh[..i]);
                    self.unregister(&fresh);
                    return Err(tag(e, &c.descriptor, ctx));
                }
            }
        }
        // 4. Open in order; on failure close what was opened, in reverse.
        let mut opened: Vec<Arc<dyn Openable>> = Vec::new();
        for c in &fresh {
            if let Some(openable) = c.component.get::<dyn Openable>() {
                if let Err(e) = openable.open(ctx).await {
                    // The open error is the one to report; close errors would hide it.
                    let _ = Closer::close(ctx, &opened).await;
                    unset_references(&fresh);
                    self.unregister(&fresh);
                    return Err(tag(e, &c.descriptor, ctx));
                }
                opened.push(openable);
            }
        }
        *created = fresh;
        self.opened.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Closes the components in reverse order, unsets their references and removes them
    /// from the references. Every component is tried; the first error met is returned and
    /// the container is closed either way. Closing a closed container does nothing.
    pub async fn close(&self, ctx: &Context) -> Result<()> {
        let mut created = self.created.lock().await;
        if !self.is_open() {
            return Ok(());
        }
        let mut first_error = None;
        for c in created.iter().rev() {
            if let Some(openable) = c.component.get::<dyn Openable>() {
                if let Err(e) = openable.close(ctx).await {
                    first_error.get_or_insert(tag(e, &c.descriptor, ctx));
                }
            }
        }
        unset_references(&created);
        self.unregister(&created);
        created.clear();
        self.opened.store(false, Ordering::SeqCst);
        first_error.map_or(Ok(()), Err)
    }

    fn known_descriptors(&self) -> Vec<Descriptor> {
        self.factories
            .iter()
            .rev()
            .flat_map(|f| f.descriptors())
            .collect()
    }

    fn unregister(&self, components: &[Created]) {
        for c in components {
            self.references.remove_component(&c.component);
        }
    }
}

/// Calls `unset_references` on the components, last first.
fn unset_references(components: &[Created]) {
    for c in components.iter().rev() {
        if let Some(u) = c.component.get::<dyn Unreferenceable>() {
            u.unset_references();
        }
    }
}

/// Adds the failing component's descriptor (unless the error names one already) and the
/// trace id.
fn tag(error: Error, descriptor: &Descriptor, ctx: &Context) -> Error {
    let error = if error.detail("descriptor").is_some() {
        error
    } else {
        error.with_detail("descriptor", descriptor)
    };
    error.with_context(ctx)
}

impl Default for Container {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Container")
            .field("factories", &self.factories)
            .field(
                "components",
                &self
                    .components
                    .iter()
                    .map(|c| c.descriptor.to_string())
                    .collect::<Vec<_>>(),
            )
            .field("open", &self.is_open())
            .finish()
    }
}
