//! Credential stores: credentials kept under a key, away from the configuration that uses them.

use async_trait::async_trait;

use crate::{Context, CredentialParams, Result};

/// Keeps credentials under keys (Pip.Services' `ICredentialStore`); a configured credential
/// with a `store_key` is looked up in every `*:credential-store:*:*:1.0` component by the
/// [`CredentialResolver`](crate::CredentialResolver).
///
/// Object safe: used as `Arc<dyn CredentialStore>`.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Keeps `credential` under `key`, replacing what the key held; `None` removes the key.
    async fn store(
        &self,
        ctx: &Context,
        key: &str,
        credential: Option<CredentialParams>,
    ) -> Result<()>;

    /// The credential kept under `key`, `None` when the store does not have it.
    async fn lookup(&self, ctx: &Context, key: &str) -> Result<Option<CredentialParams>>;
}
