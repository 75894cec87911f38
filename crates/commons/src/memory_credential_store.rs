//! `MemoryCredentialStore`: credentials kept in memory, filled from configuration.

use std::collections::BTreeMap;
use std::sync::RwLock;

use async_trait::async_trait;

use crate::{ConfigParams, Configurable, Context, CredentialParams, CredentialStore, Result};

/// A credential store backed by an in-memory table (Pip.Services' `MemoryCredentialStore`),
/// configured with one section per key (`cache.username=...;cache.password=...`) or the
/// string form (`cache="username=...;password=..."`).
///
/// Every credential is checked as [`CredentialParams::validate`] does; a bad one fails
/// `configure` (or `store`) with `BAD_CONFIG` naming its key, and the table is left as it
/// was. `Debug` masks the secrets.
///
/// ```
/// use commons::{ConfigParams, Context, CredentialStore, MemoryCredentialStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let config = ConfigParams::from_string("cache.username=alice;cache.password=s3cret");
/// let store = MemoryCredentialStore::from_config(&config).unwrap();
/// let found = store.lookup(&Context::new(), "cache").await.unwrap().unwrap();
/// assert_eq!(found.username(), Some("alice"));
/// assert!(store.lookup(&Context::new(), "other").await.unwrap().is_none());
/// assert!(!format!("{store:?}").contains("s3cret"));
/// # });
/// ```
#[derive(Debug, Default)]
pub struct MemoryCredentialStore {
    items: RwLock<BTreeMap<String, CredentialParams>>,
}

impl MemoryCredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store filled from `config` (see [`Configurable::configure`]).
    pub fn from_config(config: &ConfigParams) -> Result<Self> {
        let store = Self::new();
        store.configure(config)?;
        Ok(store)
    }

    /// The keys the store holds, in order.
    pub fn keys(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, CredentialParams>> {
        // A panic while holding the lock cannot leave the map half-modified.
        self.items.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, CredentialParams>> {
        self.items.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Configurable for MemoryCredentialStore {
    /// Replaces every entry (including ones added by [`CredentialStore::store`]) with the
    /// credentials `config` lists, so configuring twice leaves one credential per key.
    fn configure(&self, config: &ConfigParams) -> Result<()> {
        let mut loaded = BTreeMap::new();
        for name in config.get_section_names() {
            let section = config.get_section(&name);
            let params = if section.is_empty() {
                ConfigParams::from_string(config.get(&name).unwrap_or_default())
            } else {
                section
            };
            let credential = CredentialParams::from_config(params);
            credential.check(&name)?;
            loaded.insert(name, credential);
        }
        *self.write() = loaded;
        Ok(())
    }
}

#[async_trait]
impl CredentialStore for MemoryCredentialStore {
    async fn store(
        &self,
        ctx: &Context,
        key: &str,
        credential: Option<CredentialParams>,
    ) -> Result<()> {
        match credential {
            Some(credential) => {
                credential.check(key).map_err(|e| e.with_context(ctx))?;
                self.write().insert(key.to_string(), credential);
            }
            None => {
                self.write().remove(key);
            }
        }
        Ok(())
    }

    async fn lookup(&self, _ctx: &Context, key: &str) -> Result<Option<CredentialParams>> {
        Ok(self.read().get(key).cloned())
    }
}
