//! Lifecycle traits: configure, wire references, open and close.
//!
//! Components live behind `Arc` and are shared, so every method takes `&self`; components
//! keep their mutable state behind interior mutability.

use async_trait::async_trait;

use crate::{ConfigParams, Context, References, Result};

/// A component that is configured from a [`ConfigParams`].
///
/// `configure` turns the string map into a typed configuration once; a bad value is an
/// error naming the key.
pub trait Configurable: Send + Sync {
    /// Applies the configuration.
    fn configure(&self, config: &ConfigParams) -> Result<()>;
}

/// A component that looks up its dependencies in a [`References`] container.
pub trait Referenceable: Send + Sync {
    /// Receives the container; the component may keep a clone of it.
    fn set_references(&self, references: &References) -> Result<()>;
}

/// A component that drops the references it took.
pub trait Unreferenceable: Send + Sync {
    /// Forgets the references.
    fn unset_references(&self);
}

/// A component with an open/close lifecycle (connections, background tasks).
#[async_trait]
pub trait Openable: Send + Sync {
    /// Whether the component is open.
    fn is_open(&self) -> bool;
    /// Opens the component (connects, starts tasks). Opening an open component is a no-op.
    async fn open(&self, ctx: &Context) -> Result<()>;
    /// Closes the component. Closing a closed component is a no-op.
    async fn close(&self, ctx: &Context) -> Result<()>;
}
