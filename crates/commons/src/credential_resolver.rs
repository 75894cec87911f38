//! `CredentialResolver`: turns a component's configuration into the credential it uses.

use crate::{
    ConfigParams, Context, CredentialParams, CredentialStore, Descriptor, Error, ErrorKind,
    References, Result, codes,
};

/// Reads credentials from configuration and resolves them, through the credential stores in
/// the references when they name a `store_key` (Pip.Services' `CredentialResolver`).
///
/// Configuration: the forms [`CredentialParams::many_from_config`] reads (`credentials.<name>.*`,
/// `credential.*`, or the top-level keys), checked at [`CredentialResolver::configure`].
///
/// Resolving a credential ([`CredentialResolver::lookup`] the first,
/// [`CredentialResolver::lookup_all`] every one, in configuration order):
/// - without a `store_key`, it is returned as configured;
/// - with a `store_key`, it is looked up in every component registered under
///   `*:credential-store:*:*:1.0` that exposes [`CredentialStore`], newest registration
///   first; the first store that has the key wins. The stored credential is laid over the
///   configured one (the configured keys, say `ssl_ca_file`, are the base; stored keys win)
///   and the result has no `store_key`.
///
/// Unlike the original, which skips a credential no store has, a `store_key` that cannot be
/// resolved is an error: a component configured to authenticate must not quietly connect
/// without credentials.
///
/// ```
/// use std::sync::Arc;
/// use commons::{
///     component, ConfigParams, Context, CredentialResolver, CredentialStore, Descriptor,
///     MemoryCredentialStore, References,
/// };
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = Arc::new(MemoryCredentialStore::from_config(
///     &ConfigParams::from_string("cache.username=alice;cache.password=s3cret"),
/// ).unwrap());
/// let refs = References::new();
/// refs.put(
///     Descriptor::new("pip-services", "credential-store", "memory", "default", "1.0"),
///     component!(store => dyn CredentialStore),
/// );
///
/// let mut resolver = CredentialResolver::from_config(&ConfigParams::from_string(
///     "credential.store_key=cache;credential.ssl_ca_file=/etc/ca.pem",
/// )).unwrap();
/// resolver.set_references(&refs);
/// let credential = resolver.lookup(&Context::new()).await.unwrap().unwrap();
/// assert_eq!(credential.username(), Some("alice"));
/// assert_eq!(credential.password(), Some("s3cret"));
/// assert_eq!(credential.ssl_ca_file(), Some("/etc/ca.pem"));
/// assert_eq!(credential.store_key(), None);
///
/// // Nothing configured: no credential, not an error.
/// let none = CredentialResolver::new().lookup(&Context::new()).await.unwrap();
/// assert!(none.is_none());
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct CredentialResolver {
    credentials: Vec<CredentialParams>,
    references: References,
}

impl CredentialResolver {
    /// A resolver without credentials or references.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resolver configured from `config` (see [`CredentialResolver::configure`]).
    pub fn from_config(config: &ConfigParams) -> Result<Self> {
        let mut resolver = Self::new();
        resolver.configure(config)?;
        Ok(resolver)
    }

    /// Reads the credentials in `config` and appends them to the ones already held (as the
    /// original does). Each is checked now ([`CredentialParams::validate`]): for example a
    /// `credential.password` without a `credential.username`, or an empty username, fails
    /// with `BAD_CONFIG` naming the key (never a secret). On error nothing is added.
    pub fn configure(&mut self, config: &ConfigParams) -> Result<()> {
        let read = CredentialParams::many_from_config(config)?;
        self.credentials.extend(read);
        Ok(())
    }

    /// Gives the resolver the references in which it finds `*:credential-store:*:*:1.0`
    /// components.
    pub fn set_references(&mut self, references: &References) {
        self.references = references.clone();
    }

    /// Adds a credential, checked as [`CredentialResolver::configure`] checks configured ones.
    pub fn add(&mut self, credential: CredentialParams) -> Result<()> {
        credential.validate()?;
        self.credentials.push(credential);
        Ok(())
    }

    /// The credentials as configured (before store lookups).
    pub fn get_all(&self) -> &[CredentialParams] {
        &self.credentials
    }

    /// The first configured credential, resolved; `None` when none is configured.
    ///
    /// Errors (each carrying the trace id of `ctx`, naming the `store_key`, never a secret):
    /// - a `store_key` while no `*:credential-store:*:*:1.0` component exposing
    ///   [`CredentialStore`] is registered: `REF_ERROR` (details `locator`, `store_key`);
    /// - a `store_key` that no registered store has: `REF_ERROR` (details `locator`,
    ///   `store_key`, `stores`: how many were asked);
    /// - an error a store returns, as it is.
    pub async fn lookup(&self, ctx: &Context) -> Result<Option<CredentialParams>> {
        match self.credentials.first() {
            Some(credential) => self.resolve(ctx, credential).await.map(Some),
            None => Ok(None),
        }
    }

    /// Every configured credential, resolved, in configuration order (errors as
    /// [`CredentialResolver::lookup`]).
    pub async fn lookup_all(&self, ctx: &Context) -> Result<Vec<CredentialParams>> {
        let mut resolved = Vec::with_capacity(self.credentials.len());
        for credential in &self.credentials {
            resolved.push(self.resolve(ctx, credential).await?);
        }
        Ok(resolved)
    }

    async fn resolve(
        &self,
        ctx: &Context,
        credential: &CredentialParams,
    ) -> Result<CredentialParams> {
        let Some(key) = credential.store_key() else {
            return Ok(credential.clone());
        };
        let locator = credential_store_locator();
        let stores = self
            .references
            .get_optional::<dyn CredentialStore>(&locator);
        if stores.is_empty() {
            return Err(Error::new(
                ErrorKind::Reference,
                codes::REF_ERROR,
                format!(
                    "store_key '{key}' is configured but no credential store component ({locator}) is registered"
                ),
            )
            .with_detail("locator", &locator)
            .with_detail("store_key", key)
            .with_context(ctx));
        }
        for store in &stores {
            if let Some(found) = store.lookup(ctx, key).await? {
                let mut merged = credential.as_config().override_with(found.as_config());
                merged.remove("store_key");
                return Ok(CredentialParams::from_config(merged));
            }
        }
        Err(Error::new(
            ErrorKind::Reference,
            codes::REF_ERROR,
            format!(
                "no credential store has the store_key '{key}' ({} store(s) matching {locator} asked)",
                stores.len()
            ),
        )
        .with_detail("locator", &locator)
        .with_detail("store_key", key)
        .with_detail("stores", stores.len())
        .with_context(ctx))
    }
}

fn credential_store_locator() -> Descriptor {
    Descriptor::new("*", "credential-store", "*", "*", "1.0")
}
