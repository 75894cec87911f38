//! `References`: the container of live components, looked up by descriptor as trait objects.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use crate::{Descriptor, Error, ErrorKind, Result, codes};

/// A component packaged for registration: the concrete instance plus the trait objects it
/// exposes, each cast once when the component is built (no `unsafe`, no global registry).
///
/// ```
/// use std::sync::Arc;
/// use commons::{Component, Configurable, ConfigParams, Result};
///
/// struct Greeter;
/// impl Configurable for Greeter {
///     fn configure(&self, _: &ConfigParams) -> Result<()> { Ok(()) }
/// }
///
/// let greeter = Arc::new(Greeter);
/// let component = Component::new(greeter.clone()).expose::<dyn Configurable>(greeter);
/// assert!(component.get::<dyn Configurable>().is_some());
/// ```
#[derive(Clone)]
pub struct Component {
    instance: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
    interfaces: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Component {
    /// Packages `instance`; it can be looked up by its concrete type `T` right away.
    pub fn new<T: Any + Send + Sync>(instance: Arc<T>) -> Self {
        let mut interfaces: HashMap<TypeId, Arc<dyn Any + Send + Sync>> = HashMap::new();
        interfaces.insert(TypeId::of::<Arc<T>>(), Arc::new(instance.clone()));
        Component {
            instance,
            type_name: std::any::type_name::<T>(),
            interfaces,
        }
    }

    /// Exposes the component as the trait object `I` (pass the same instance, coerced).
    pub fn expose<I: ?Sized + Send + Sync + 'static>(mut self, as_interface: Arc<I>) -> Self {
        self.interfaces
            .insert(TypeId::of::<Arc<I>>(), Arc::new(as_interface));
        self
    }

    /// The component as `I`, if it exposes it.
    pub fn get<I: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<I>> {
        self.interfaces
            .get(&TypeId::of::<Arc<I>>())
            .and_then(|any| any.downcast_ref::<Arc<I>>())
            .cloned()
    }

    /// The concrete instance.
    pub fn instance(&self) -> &Arc<dyn Any + Send + Sync> {
        &self.instance
    }

    /// The concrete type's name, for diagnostics.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Whether the component is this very instance.
    pub fn is_same<T: Any + Send + Sync>(&self, instance: &Arc<T>) -> bool {
        self.get::<T>()
            .is_some_and(|mine| Arc::ptr_eq(&mine, instance))
    }
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("type", &self.type_name)
            .field("interfaces", &self.interfaces.len())
            .finish()
    }
}

/// Builds a [`Component`] exposing a list of traits.
///
/// ```
/// use std::sync::Arc;
/// use commons::{component, Configurable, ConfigParams, Result};
///
/// struct Greeter;
/// impl Configurable for Greeter {
///     fn configure(&self, _: &ConfigParams) -> Result<()> { Ok(()) }
/// }
/// let c = component!(Arc::new(Greeter) => dyn Configurable);
/// assert!(c.get::<dyn Configurable>().is_some());
/// ```
#[macro_export]
macro_rules! component {
    ($instance:expr $(=> $($iface:ty),+ $(,)?)?) => {{
        let instance = $instance;
        #[allow(unused_mut)]
        let mut component = $crate::Component::new(instance.clone());
        $( $( component = component.expose::<$iface>(instance.clone()); )+ )?
        component
    }};
}

#[derive(Debug, Clone)]
struct Entry {
    descriptor: Descriptor,
    component: Component,
}

/// The shared container of live components. Cheap to clone (all clones see the same
/// entries); thread safe.
///
/// Lookups scan from the newest registration to the oldest, so the newest match wins.
///
/// ```
/// use std::sync::Arc;
/// use commons::{component, Descriptor, Discovery, MemoryDiscovery, References};
///
/// let refs = References::new();
/// let discovery = Arc::new(MemoryDiscovery::new());
/// refs.put(
///     Descriptor::new("pip-services", "discovery", "memory", "default", "1.0"),
///     component!(discovery => dyn Discovery),
/// );
/// let locator = Descriptor::new("*", "discovery", "*", "*", "*");
/// let found: Arc<dyn Discovery> = refs.get_one_required(&locator).unwrap();
/// # let _ = found;
/// ```
#[derive(Debug, Clone, Default)]
pub struct References {
    entries: Arc<RwLock<Vec<Entry>>>,
}

impl References {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `component` under `descriptor`.
    pub fn put(&self, descriptor: Descriptor, component: Component) {
        self.write().push(Entry {
            descriptor,
            component,
        });
    }

    /// Removes the newest component matching `locator` and returns it.
    pub fn remove(&self, locator: &Descriptor) -> Option<Component> {
        let mut entries = self.write();
        let pos = entries
            .iter()
            .rposition(|e| e.descriptor.matches(locator))?;
        Some(entries.remove(pos).component)
    }

    /// Removes every component matching `locator` and returns them, newest first.
    pub fn remove_all(&self, locator: &Descriptor) -> Vec<Component> {
        let mut entries = self.write();
        let mut removed = Vec::new();
        let mut i = entries.len();
        while i > 0 {
            i -= 1;
            if entries[i].descriptor.matches(locator) {
                removed.push(entries.remove(i).component);
            }
        }
        removed
    }

    /// Removes the registration of this very component (same instance, whatever its
    /// descriptor); returns whether it was registered. Other components registered under a
    /// matching descriptor are left alone.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use commons::{Component, Descriptor, References};
    ///
    /// let refs = References::new();
    /// let d = Descriptor::new("g", "t", "k", "n", "1.0");
    /// let first = Component::new(Arc::new(1_u32));
    /// refs.put(d.clone(), first.clone());
    /// refs.put(d, Component::new(Arc::new(2_u32)));
    /// assert!(refs.remove_component(&first));
    /// assert_eq!(refs.len(), 1);
    /// assert!(!refs.remove_component(&first));
    /// ```
    pub fn remove_component(&self, component: &Component) -> bool {
        let mut entries = self.write();
        match entries
            .iter()
            .rposition(|e| Arc::ptr_eq(e.component.instance(), component.instance()))
        {
            Some(pos) => {
                entries.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Every component matching `locator` that exposes `I`, newest first.
    pub fn get_optional<I: ?Sized + Send + Sync + 'static>(
        &self,
        locator: &Descriptor,
    ) -> Vec<Arc<I>> {
        self.read()
            .iter()
            .rev()
            .filter(|e| e.descriptor.matches(locator))
            .filter_map(|e| e.component.get::<I>())
            .collect()
    }

    /// Like [`References::get_optional`], but `REF_ERROR` when nothing matches.
    pub fn get_required<I: ?Sized + Send + Sync + 'static>(
        &self,
        locator: &Descriptor,
    ) -> Result<Vec<Arc<I>>> {
        let found = self.get_optional::<I>(locator);
        if found.is_empty() {
            Err(reference_error::<I>(locator))
        } else {
            Ok(found)
        }
    }

    /// The newest component matching `locator` that exposes `I`.
    pub fn get_one_optional<I: ?Sized + Send + Sync + 'static>(
        &self,
        locator: &Descriptor,
    ) -> Option<Arc<I>> {
        self.read()
            .iter()
            .rev()
            .filter(|e| e.descriptor.matches(locator))
            .find_map(|e| e.component.get::<I>())
    }

    /// Like [`References::get_one_optional`], but `REF_ERROR` (with `details.locator`)
    /// when nothing matches.
    pub fn get_one_required<I: ?Sized + Send + Sync + 'static>(
        &self,
        locator: &Descriptor,
    ) -> Result<Arc<I>> {
        self.get_one_optional::<I>(locator)
            .ok_or_else(|| reference_error::<I>(locator))
    }

    /// Every registered component with its descriptor, oldest first.
    pub fn get_all(&self) -> Vec<(Descriptor, Component)> {
        self.read()
            .iter()
            .map(|e| (e.descriptor.clone(), e.component.clone()))
            .collect()
    }

    /// Every component exposing `I`, oldest first (used to open in order).
    pub fn get_all_as<I: ?Sized + Send + Sync + 'static>(&self) -> Vec<Arc<I>> {
        self.read()
            .iter()
            .filter_map(|e| e.component.get::<I>())
            .collect()
    }

    /// How many components are registered.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the container is empty.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Removes everything.
    pub fn clear(&self) {
        self.write().clear();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        // A panic while holding the lock cannot leave the Vec half-modified in a way that
        // matters here, so a poisoned lock is still usable.
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn reference_error<I: ?Sized>(locator: &Descriptor) -> Error {
    Error::new(
        ErrorKind::Reference,
        codes::REF_ERROR,
        format!(
            "no component matching {locator} exposing {} is registered",
            std::any::type_name::<I>()
        ),
    )
    .with_detail("locator", locator)
}
