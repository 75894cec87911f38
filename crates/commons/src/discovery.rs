//! Discovery: resolving connection parameters by a logical key.

use async_trait::async_trait;

use crate::{ConnectionParams, Context, Result};

/// Resolves connection parameters registered under a logical key (Pip.Services' `IDiscovery`).
#[async_trait]
pub trait Discovery: Send + Sync {
    /// Registers `connection` under `key` (appended to what the key already has).
    async fn register(&self, ctx: &Context, key: &str, connection: ConnectionParams) -> Result<()>;
    /// The first connection registered under `key`.
    async fn resolve_one(&self, ctx: &Context, key: &str) -> Result<Option<ConnectionParams>>;
    /// Every connection registered under `key`.
    async fn resolve_all(&self, ctx: &Context, key: &str) -> Result<Vec<ConnectionParams>>;
}
