//! Configure, set references, open and close: the component's life. Open resolves the
//! servers (configuration or discovery), connects and probes each, and refuses a server that
//! cannot do owner-checked locks (CAS disabled).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use commons::{
    ConfigParams, Configurable, ConnectionResolver, Context, CredentialResolver, Error, ErrorKind,
    Openable, Referenceable, References, Result, codes,
};

use super::errors::{cas_disabled, unexpected};
use super::quorum::{majority, release_replicas};
use super::release::delete_held;
use super::{MemcachedLock, Opened, lock, read, write};
use crate::client::{Call, Cluster, Credentials, Endpoint, Request, SetMode, WireKey};
use crate::config::{LockMode, MemcachedLockConfig, is_tls_protocol, memcached_credentials};
use crate::value::new_token;

/// memcached's port when a connection names none.
const DEFAULT_PORT: u16 = 11211;

impl Configurable for MemcachedLock {
    fn configure(&self, config: &ConfigParams) -> Result<()> {
        let typed = MemcachedLockConfig::from_config(config)?;
        // Validates the connection and credential keys now (a bad uri or a password without
        // a user name fails here, not at open).
        ConnectionResolver::from_config(config)?;
        CredentialResolver::from_config(config)?;
        *write(&self.config) = typed;
        *lock(&self.connection_config) = config.clone();
        Ok(())
    }
}

impl Referenceable for MemcachedLock {
    fn set_references(&self, references: &References) -> Result<()> {
        *lock(&self.references) = Some(references.clone());
        Ok(())
    }
}

#[async_trait]
impl Openable for MemcachedLock {
    fn is_open(&self) -> bool {
        read(&self.opened).is_some()
    }

    async fn open(&self, ctx: &Context) -> Result<()> {
        let _serial = self.open_in_progress.lock().await;
        if self.is_open() {
            return Ok(());
        }
        let config = self.config();
        let opened = self.connect(ctx, &config).await?;
        let quorum = config.mode == LockMode::Quorum;
        if quorum && opened.cluster.servers().len() < 3 {
            let n = opened.cluster.servers().len();
            opened.cluster.close().await;
            return Err(Error::new(
                ErrorKind::Config,
                codes::BAD_CONFIG,
                format!(
                    "options.mode=quorum needs at least 3 memcached servers (an odd number is best); {n} configured"
                ),
            )
            .with_context(ctx));
        }
        self.quorum_mode.store(quorum, Ordering::Release);
        *write(&self.opened) = Some(Arc::new(opened));
        Ok(())
    }

    async fn close(&self, ctx: &Context) -> Result<()> {
        let _serial = self.open_in_progress.lock().await;
        let Some(opened) = write(&self.opened).take() else {
            return Ok(());
        };
        // Give held locks back (owner-checked) rather than leaving them to their ttl. One
        // `options.timeout` bounds them all, so a dead server cannot stretch `close` to one
        // timeout per held lock; what is not released by then expires with its ttl.
        let held = self.leases.drain();
        let quorum_held = self.quorum_leases.drain();
        let _ = tokio::time::timeout(opened.config.timeout, async {
            for h in &held {
                let _ = delete_held(ctx, h).await;
            }
            for h in &quorum_held {
                release_replicas(ctx, opened.cluster.servers(), h).await;
            }
        })
        .await;
        opened.cluster.close().await;
        Ok(())
    }
}

impl MemcachedLock {
    /// Resolves the servers, opens the cluster and checks that every server that answered
    /// supports owner-checked locks (CAS enabled). Sharded mode needs every server at open;
    /// quorum mode a majority (the others are connected on first use).
    async fn connect(&self, ctx: &Context, config: &MemcachedLockConfig) -> Result<Opened> {
        let addresses = self.resolve_addresses(ctx, config.tls.is_some()).await?;
        let mut config = config.clone();
        config.auth = self.resolve_credentials(ctx).await?;
        let config = &config;
        let at_least = match config.mode {
            LockMode::Quorum => majority(addresses.len()),
            _ => addresses.len(),
        };
        let cluster = Cluster::connect(
            ctx,
            addresses,
            config.client_options(),
            config.protocol,
            at_least,
        )
        .await?;
        for server in cluster.servers() {
            if server.health().identity().is_none() {
                continue; // not reached at open: a grant with CAS 0 (-C) is refused when it answers
            }
            if let Err(e) = probe_cas(ctx, server).await {
                cluster.close().await;
                return Err(e);
            }
        }
        Ok(Opened {
            cluster,
            config: config.clone(),
        })
    }

    /// The memcached user name and password: configured (`credential.*`), or looked up by
    /// `credential.store_key` in the credential stores among the references.
    async fn resolve_credentials(&self, ctx: &Context) -> Result<Option<Arc<Credentials>>> {
        let mut resolver = CredentialResolver::from_config(&lock(&self.connection_config))?;
        if let Some(refs) = lock(&self.references).as_ref() {
            resolver.set_references(refs);
        }
        match resolver.lookup(ctx).await? {
            Some(found) => memcached_credentials(&found).map_err(|e| e.with_context(ctx)),
            None => Ok(None),
        }
    }

    /// "host:port" of every configured or discovered server, in the configured order. A
    /// server whose `protocol` (or uri scheme) disagrees with `tls` is refused.
    async fn resolve_addresses(&self, ctx: &Context, tls: bool) -> Result<Vec<String>> {
        let mut resolver = ConnectionResolver::from_config(&lock(&self.connection_config))?;
        if let Some(refs) = lock(&self.references).as_ref() {
            resolver.set_references(refs);
        }
        let connections = resolver.resolve_all(ctx).await?;
        if connections.is_empty() {
            return Err(commons::no_connection_error("MemcachedLock").with_context(ctx));
        }
        let mut addresses = Vec::with_capacity(connections.len());
        for c in &connections {
            let host = c.host().ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    codes::NO_CONNECTION,
                    "a memcached connection has no host (set connection.host, host or uri)",
                )
                .with_context(ctx)
            })?;
            let port = match c.port_raw() {
                None => DEFAULT_PORT,
                Some(raw) => c.port().filter(|p| *p != 0).ok_or_else(|| {
                    Error::bad_config_value("port", raw, "a port number from 1 to 65535")
                        .with_context(ctx)
                })?,
            };
            if let Some(protocol) = c.protocol()
                && is_tls_protocol(protocol) != tls
            {
                return Err(Error::config(format!(
                    "memcached at {host}:{port} has protocol '{protocol}' but the lock's TLS is {}: \
                     every server of one lock uses TLS (connection.protocol=tls) or none",
                    if tls { "on" } else { "off" }
                ))
                .with_context(ctx));
            }
            addresses.push(commons::host_port(host, port));
        }
        Ok(addresses)
    }
}

/// Stores and deletes a probe item to check that the server hands out CAS values.
async fn probe_cas(ctx: &Context, server: &Arc<Endpoint>) -> Result<()> {
    let key = WireKey::new_unchecked(format!("__lock_probe_{}", new_token()).into_bytes(), false);
    let set = Request::Set {
        key: key.clone(),
        data: Arc::from(&b"probe"[..]),
        mode: SetMode::Add,
        ttl_secs: 2,
    };
    let executed = server.call(ctx, set, &Call::once()).await?;
    match executed.reply {
        crate::client::Reply::Hd(flags) => {
            let cas = flags.cas.unwrap_or(0);
            let del = Request::Delete { key, cas };
            let _ = server
                .call(ctx, del, &Call::repeatable().on(Some(executed.identity)))
                .await;
            if cas == 0 {
                Err(cas_disabled(ctx, server))
            } else {
                Ok(())
            }
        }
        other => Err(unexpected(ctx, "ms (probe)", &other)),
    }
}
