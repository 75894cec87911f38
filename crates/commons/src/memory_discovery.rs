//! `MemoryDiscovery`: connections kept in memory, filled from configuration.

use std::collections::BTreeMap;
use std::sync::RwLock;

use async_trait::async_trait;

use crate::{ConfigParams, Configurable, ConnectionParams, Context, Discovery, Result};

/// Discovery backed by an in-memory table, configured with one section per key
/// (`key1.host=...;key1.port=...`) or the older string form (`key1="host=..;port=.."`).
///
/// ```
/// use commons::{ConfigParams, Configurable, Context, Discovery, MemoryDiscovery};
///
/// # tokio_test_block(async {
/// let discovery = MemoryDiscovery::new();
/// discovery.configure(&ConfigParams::from_string("cache.host=localhost;cache.port=11211")).unwrap();
/// let found = discovery.resolve_one(&Context::new(), "cache").await.unwrap().unwrap();
/// assert_eq!(found.port(), Some(11211));
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryDiscovery {
    items: RwLock<BTreeMap<String, Vec<ConnectionParams>>>,
}

impl MemoryDiscovery {
    /// An empty discovery.
    pub fn new() -> Self {
        Self::default()
    }

    /// A discovery filled from `config`.
    pub fn from_config(config: &ConfigParams) -> Self {
        let d = Self::new();
        d.load(config);
        d
    }

    /// Replaces the table with what `config` holds, so configuring twice with the same
    /// configuration does not list every connection twice.
    fn load(&self, config: &ConfigParams) {
        let mut loaded: BTreeMap<String, Vec<ConnectionParams>> = BTreeMap::new();
        for name in config.get_section_names() {
            let section = config.get_section(&name);
            let params = if section.is_empty() {
                // Older string form: key1 = "host=..;port=.."
                ConfigParams::from_string(config.get(&name).unwrap_or_default())
            } else {
                section
            };
            loaded
                .entry(name)
                .or_default()
                .push(ConnectionParams::from_config(params));
        }
        *self.items.write().unwrap_or_else(|p| p.into_inner()) = loaded;
    }
}

impl Configurable for MemoryDiscovery {
    /// Replaces every entry (including ones added by [`Discovery::register`]) with the
    /// connections `config` lists.
    fn configure(&self, config: &ConfigParams) -> Result<()> {
        self.load(config);
        Ok(())
    }
}

#[async_trait]
impl Discovery for MemoryDiscovery {
    async fn register(
        &self,
        _ctx: &Context,
        key: &str,
        connection: ConnectionParams,
    ) -> Result<()> {
        let mut items = self.items.write().unwrap_or_else(|p| p.into_inner());
        items.entry(key.to_string()).or_default().push(connection);
        Ok(())
    }

    async fn resolve_one(&self, _ctx: &Context, key: &str) -> Result<Option<ConnectionParams>> {
        let items = self.items.read().unwrap_or_else(|p| p.into_inner());
        Ok(items.get(key).and_then(|v| v.first().cloned()))
    }

    async fn resolve_all(&self, _ctx: &Context, key: &str) -> Result<Vec<ConnectionParams>> {
        let items = self.items.read().unwrap_or_else(|p| p.into_inner());
        Ok(items.get(key).cloned().unwrap_or_default())
    }
}
