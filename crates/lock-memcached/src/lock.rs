//! `MemcachedLock`: the component.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use commons::{
    ConfigParams, Configurable, ConnectionResolver, Context, Error, ErrorKind, Openable,
    Referenceable, References, Result, codes,
};
use dashmap::DashMap;
use lock_core::{Lease, LocalWaiters, Lock, LockInfo, RetryPolicy, acquire_with_retry};
use tokio::time::Instant;

use crate::client::{Cluster, Endpoint, Reply, Request, ServerIdentity, SetMode, WireKey};
use crate::config::MemcachedLockConfig;
use crate::key::wire_key;
use crate::value::{LockValue, new_token};

/// One second: memcached's clock granularity. A lease is trusted only until
/// `start + ttl rounded up - 1 s`, because the server's coarse clock can expire an item up to
/// a second early.
const GRANULARITY: Duration = Duration::from_secs(1);

/// Error code of an acquire refused because the instance holds `options.max_size` locks.
pub const TOO_MANY_LOCKS: &str = "TOO_MANY_LOCKS";

/// The health of one memcached server, from [`MemcachedLock::server_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStatus {
    /// `host:port`.
    pub address: String,
    /// The version it reported when last probed.
    pub version: Option<String>,
    /// Its process id (part of its identity).
    pub pid: Option<u32>,
    /// Its boot time, Unix seconds (`stats time - uptime`; part of its identity).
    pub boot_epoch: Option<i64>,
    /// Whether it is marked down after `options.failures` consecutive failures.
    pub down: bool,
    /// Open connections to it.
    pub live_connections: usize,
    /// How often a new connection found a different identity (a restart).
    pub restarts_seen: u32,
    /// Items evicted for memory since it started (any eviction may have taken a lock).
    pub evictions: Option<u64>,
    /// The error of the status request, when it failed.
    pub error: Option<String>,
    /// The protocol spoken to it: `"meta"` or `"classic"` (see `options.protocol`).
    pub protocol: &'static str,
}

/// A lease this instance holds, with what is needed to release or extend it safely.
///
/// Kept free of owned strings: the hot path clones and stores it once per acquisition.
#[derive(Debug, Clone)]
struct HeldLease {
    wire: WireKey,
    cas: u64,
    server: Arc<Endpoint>,
    identity: ServerIdentity,
    /// The stored value. It carries this acquisition's token, so the `Arc` itself
    /// identifies the acquisition (compared with `Arc::ptr_eq`).
    value: Arc<[u8]>,
    fencing_token: u64,
    ttl: Duration,
    acquired_at: Instant,
    valid_until: Instant,
    /// When memcached has certainly dropped the item: the reply's arrival plus the ttl in
    /// whole seconds plus a second for its clock. Past it, the record only takes room.
    gone_by: Instant,
}

impl HeldLease {
    fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }

    fn same_acquisition(&self, value: &Arc<[u8]>) -> bool {
        Arc::ptr_eq(&self.value, value)
    }

    fn to_lease(&self, key: &str) -> Lease {
        Lease::new(
            key,
            LockValue::token(&self.value),
            Some(self.fencing_token),
            self.ttl,
            self.acquired_at,
            self.valid_until,
        )
    }
}

/// The opened state: the cluster and what the hot path needs, behind one `Arc`.
#[derive(Debug)]
struct Opened {
    cluster: Cluster,
    config: MemcachedLockConfig,
}

/// A distributed lock held in memcached, safe and pipelined.
///
/// * Acquire is one round trip: `ms <key> <len> ME T<secs> c` stores a per-acquisition token
///   only if the key is free, and returns the item's CAS.
/// * Release is one round trip: `md <key> C<cas>` deletes only this owner's item.
/// * Extend is one round trip: `ms <key> <len> C<cas> T<secs> c`.
///
/// Each instance is an owner. Its leases live in a concurrent table; a lease taken from an
/// earlier boot of a server is reported lost, never released by CAS (CAS values restart with
/// the server). See `docs/safety.md` for what memcached cannot guarantee.
///
/// ```no_run
/// use std::time::Duration;
/// use commons::{ConfigParams, Configurable, Context, Openable};
/// use lock_core::Lock;
/// use lock_memcached::MemcachedLock;
///
/// # async fn run() -> commons::Result<()> {
/// let lock = MemcachedLock::new();
/// lock.configure(&ConfigParams::from_tuples([("host", "localhost"), ("port", "11211")]))?;
/// let ctx = Context::with_trace_id("123");
/// lock.open(&ctx).await?;
/// if lock.try_acquire_lock(&ctx, "key1", Duration::from_millis(3000)).await? {
///     // ... do the work that must not run twice ...
///     lock.release_lock(&ctx, "key1").await?;
/// }
/// lock.close(&ctx).await?;
/// # Ok(()) }
/// ```
pub struct MemcachedLock {
    config: RwLock<MemcachedLockConfig>,
    /// The connection part of the configuration, resolved at open (discovery may change).
    connection_config: Mutex<ConfigParams>,
    references: Mutex<Option<References>>,
    opened: RwLock<Option<Arc<Opened>>>,
    open_in_progress: tokio::sync::Mutex<()>,
    leases: Arc<DashMap<String, HeldLease>>,
    waiters: LocalWaiters,
    holder: String,
}

impl fmt::Debug for MemcachedLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedLock")
            .field("open", &self.is_open())
            .field("leases", &self.leases.len())
            .finish()
    }
}

impl Default for MemcachedLock {
    fn default() -> Self {
        Self::new()
    }
}

impl MemcachedLock {
    /// A lock with the default configuration; call `configure` and `open` before use.
    pub fn new() -> Self {
        MemcachedLock {
            config: RwLock::new(MemcachedLockConfig::default()),
            connection_config: Mutex::new(ConfigParams::new()),
            references: Mutex::new(None),
            opened: RwLock::new(None),
            open_in_progress: tokio::sync::Mutex::new(()),
            leases: Arc::new(DashMap::new()),
            waiters: LocalWaiters::new(),
            holder: crate::value::holder_description(),
        }
    }

    /// A lock configured from `config` (a convenience for `new` + `configure`).
    pub fn from_config(config: &ConfigParams) -> Result<Self> {
        let lock = Self::new();
        lock.configure(config)?;
        Ok(lock)
    }

    /// The typed configuration in force.
    pub fn config(&self) -> MemcachedLockConfig {
        read(&self.config).clone()
    }

    /// How many leases this instance holds (by its local table).
    pub fn held_count(&self) -> usize {
        self.leases.len()
    }

    /// The addresses of the servers in use, once opened.
    pub fn servers(&self) -> Vec<String> {
        read(&self.opened)
            .as_ref()
            .map(|o| {
                o.cluster
                    .servers()
                    .iter()
                    .map(|s| s.address().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The health of every server: identity, version, whether it is marked down, live
    /// connections, and fresh `evictions` (locks can vanish under memory pressure: a growing
    /// count is a warning). Servers that do not answer are reported with their error.
    pub async fn server_status(&self, ctx: &Context) -> Result<Vec<ServerStatus>> {
        let opened = self.opened(ctx)?;
        let mut out = Vec::with_capacity(opened.cluster.servers().len());
        for server in opened.cluster.servers() {
            let health = server.health();
            let mut status = ServerStatus {
                address: server.address().to_string(),
                version: health.version(),
                pid: health.identity().map(|i| i.pid),
                boot_epoch: health.identity().map(|i| i.boot_epoch),
                down: health.is_down(),
                live_connections: server.live_connections(),
                restarts_seen: health.identity_changes(),
                evictions: health.evictions(),
                error: None,
                protocol: server.protocol(),
            };
            match server.execute(ctx, Request::Stats, true, None).await {
                Ok(executed) => {
                    if let Reply::Stats(pairs) = executed.reply {
                        status.evictions = pairs
                            .iter()
                            .find(|(k, _)| k == "evictions")
                            .and_then(|(_, v)| v.parse().ok());
                    }
                }
                Err(e) => status.error = Some(e.to_string()),
            }
            out.push(status);
        }
        Ok(out)
    }

    fn opened(&self, ctx: &Context) -> Result<Arc<Opened>> {
        read(&self.opened)
            .clone()
            .ok_or_else(|| Error::not_opened("MemcachedLock").with_context(ctx))
    }

    fn check_ttl(ctx: &Context, ttl: Duration, config: &MemcachedLockConfig) -> Result<u32> {
        if ttl.is_zero() {
            return Err(
                Error::bad_request(codes::BAD_TTL, "ttl must be greater than zero")
                    .with_detail("ttl_ms", ttl.as_millis())
                    .with_context(ctx),
            );
        }
        // Round up to whole seconds: rounding down could turn a short ttl into T0 (never
        // expire).
        let secs = ttl
            .as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0));
        if secs > config.max_expiration.as_secs() {
            return Err(Error::bad_request(
                codes::BAD_TTL,
                format!(
                    "ttl of {} s exceeds options.max_expiration ({} s)",
                    secs,
                    config.max_expiration.as_secs()
                ),
            )
            .with_detail("ttl_ms", ttl.as_millis())
            .with_context(ctx));
        }
        Ok(secs as u32)
    }

    fn fencing_token(identity: ServerIdentity, cas: u64) -> u64 {
        // The boot epoch orders server lifetimes; within one, CAS values only grow. Valid
        // while the CAS fits in 32 bits (docs/safety.md states the limits).
        ((identity.boot_epoch.max(0) as u64) << 32) | (cas & 0xffff_ffff)
    }

    /// See [`HeldLease::gone_by`]; called when the reply has arrived.
    fn gone_by(secs: u32) -> Instant {
        Instant::now() + Duration::from_secs(u64::from(secs)) + GRANULARITY
    }

    /// How long a lease of `secs` whole seconds (asked as `ttl`) is trusted from the moment
    /// its request was sent.
    fn validity(ttl: Duration, secs: u32) -> Duration {
        Duration::from_secs(u64::from(secs))
            .saturating_sub(GRANULARITY)
            .min(ttl)
    }

    /// After an acquire whose outcome is unknown (timeout after the write, dropped future),
    /// removes the item if and only if it holds this acquisition's token.
    fn spawn_cleanup(server: Arc<Endpoint>, wire: WireKey, value: Arc<[u8]>, timeout: Duration) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return; // no runtime: the ttl frees the lock
        };
        handle.spawn(async move {
            let ctx = Context::new();
            let _ = tokio::time::timeout(
                timeout * 2,
                delete_if_token(&ctx, &server, &wire, &value, None),
            )
            .await;
        });
    }
}

/// Deletes the item at `wire` if its value is `value` (our token). Returns whether it did.
async fn delete_if_token(
    ctx: &Context,
    server: &Endpoint,
    wire: &WireKey,
    value: &[u8],
    identity: Option<ServerIdentity>,
) -> Result<bool> {
    for _ in 0..3 {
        let got = server
            .execute(ctx, Request::Get { key: wire.clone() }, true, identity)
            .await?;
        let cas = match got.reply {
            Reply::Va { data, flags } if data == value => match flags.cas {
                Some(cas) if cas != 0 => cas,
                _ => return Ok(false),
            },
            _ => return Ok(false),
        };
        let del = server
            .execute(
                ctx,
                Request::Delete {
                    key: wire.clone(),
                    cas,
                },
                true,
                Some(got.identity),
            )
            .await?;
        match del.reply {
            Reply::Hd(_) => return Ok(true),
            Reply::Nf(_) => return Ok(false),
            // Changed between the two requests (an in-flight extend of ours): look again.
            Reply::Ex(_) => continue,
            other => return Err(unexpected(ctx, "md", &other)),
        }
    }
    Ok(false)
}

fn unexpected(ctx: &Context, command: &str, reply: &Reply) -> Error {
    Error::new(
        ErrorKind::Protocol,
        codes::PROTOCOL_ERROR,
        format!("unexpected reply to {command}: {reply:?}"),
    )
    .with_context(ctx)
}

fn cas_disabled(ctx: &Context, server: &Endpoint) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        codes::UNSUPPORTED,
        format!(
            "memcached at {} returns CAS 0: it runs with -C (CAS disabled), which makes \
             owner-checked release impossible; restart it without -C",
            server.address()
        ),
    )
    .with_detail("server", server.address())
    .with_context(ctx)
}

/// Disarmed when an acquire finishes normally; otherwise (the future was dropped while the
/// request may have reached the server) spawns the owner-checked cleanup.
struct AcquireInFlight {
    armed: AtomicBool,
    server: Arc<Endpoint>,
    wire: WireKey,
    value: Arc<[u8]>,
    timeout: Duration,
}

impl AcquireInFlight {
    fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }
}

impl Drop for AcquireInFlight {
    fn drop(&mut self) {
        if self.armed.load(Ordering::Relaxed) {
            MemcachedLock::spawn_cleanup(
                self.server.clone(),
                self.wire.clone(),
                self.value.clone(),
                self.timeout,
            );
        }
    }
}

#[async_trait]
impl Lock for MemcachedLock {
    async fn try_acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        Ok(self
            .acquire_once(ctx, key, ttl)
            .await?
            .map(|held| held.to_lease(key)))
    }

    // The plain calls skip building a `Lease` and one boxed future: they are the hot path.
    async fn try_acquire_lock(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<bool> {
        Ok(self.acquire_once(ctx, key, ttl).await?.is_some())
    }

    async fn release_lock(&self, ctx: &Context, key: &str) -> Result<()> {
        self.release_once(ctx, key, None).await.map(|_| ())
    }

    async fn acquire_lease(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Lease> {
        // No separate validation here: each attempt checks the key and ttl, and a bad one is a
        // non-retryable error that ends the retry loop at its first attempt.
        let policy = RetryPolicy::new(self.opened(ctx)?.config.retry_timeout);
        acquire_with_retry(ctx, key, timeout, &policy, Some(&self.waiters), || async {
            Ok(self
                .acquire_once(ctx, key, ttl)
                .await?
                .map(|held| held.to_lease(key)))
        })
        .await
    }

    async fn release_owned(&self, ctx: &Context, key: &str) -> Result<bool> {
        self.release_once(ctx, key, None).await
    }

    async fn release_lease(&self, ctx: &Context, lease: &Lease) -> Result<bool> {
        self.release_once(ctx, &lease.key, Some(&lease.token)).await
    }

    async fn extend_lease(&self, ctx: &Context, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        let opened = self.opened(ctx)?;
        let secs = Self::check_ttl(ctx, ttl, &opened.config)?;
        wire_key(ctx, key, &opened.config)?;
        let Some(held) = self.leases.get(key).map(|h| h.clone()) else {
            return Ok(None);
        };
        let mut cas = held.cas;
        for _ in 0..2 {
            let started = Instant::now();
            let request = Request::Set {
                key: held.wire.clone(),
                data: held.value.clone(),
                mode: SetMode::Cas(cas),
                ttl_secs: secs,
            };
            let executed = match held
                .server
                .execute(ctx, request, false, Some(held.identity))
                .await
            {
                Ok(e) => e,
                Err(e) if e.code() == codes::SERVER_RESTARTED => {
                    self.forget(key, &held.value);
                    return Ok(None);
                }
                Err(e) => return Err(e.with_detail("key", key)),
            };
            match executed.reply {
                Reply::Hd(flags) => {
                    let new_cas = flags
                        .cas
                        .filter(|c| *c != 0)
                        .ok_or_else(|| cas_disabled(ctx, &held.server))?;
                    // Extending keeps the acquisition's fencing token: the holder did not change.
                    let extended = HeldLease {
                        cas: new_cas,
                        ttl,
                        acquired_at: started,
                        valid_until: started + Self::validity(ttl, secs),
                        gone_by: Self::gone_by(secs),
                        ..held.clone()
                    };
                    let lease = extended.to_lease(key);
                    if let Some(mut entry) = self.leases.get_mut(key) {
                        if entry.same_acquisition(&held.value) {
                            *entry = extended;
                        }
                    }
                    return Ok(Some(lease));
                }
                Reply::Ex(_) => {
                    // Our recorded CAS may be stale after an earlier extend whose reply was
                    // lost: the token in the value tells whether the item is still ours.
                    match self.current_cas_if_ours(ctx, &held).await? {
                        Some(current) if current != cas => cas = current,
                        _ => {
                            self.forget(key, &held.value);
                            return Ok(None);
                        }
                    }
                }
                Reply::Nf(_) | Reply::Ns(_) => {
                    self.forget(key, &held.value);
                    return Ok(None);
                }
                other => return Err(unexpected(ctx, "ms", &other)),
            }
        }
        self.forget(key, &held.value);
        Ok(None)
    }

    async fn inspect_lock(&self, ctx: &Context, key: &str) -> Result<LockInfo> {
        let opened = self.opened(ctx)?;
        let wire = wire_key(ctx, key, &opened.config)?;
        let server = opened.cluster.server_for(&wire);
        let executed = server
            .execute(ctx, Request::Get { key: wire }, true, None)
            .await?;
        match executed.reply {
            Reply::En => Ok(LockInfo::free()),
            Reply::Va { data, flags } => {
                let mine = self
                    .leases
                    .get(key)
                    .is_some_and(|h| h.value.as_ref() == data.as_slice());
                let remaining = flags
                    .ttl
                    .filter(|t| *t >= 0)
                    .map(|t| Duration::from_secs(t as u64));
                Ok(LockInfo::held(
                    mine,
                    remaining,
                    Some(LockValue::describe(&data)),
                ))
            }
            other => Err(unexpected(ctx, "mg", &other)),
        }
    }
}

impl MemcachedLock {
    /// One acquire attempt; on success the lease record as stored in the table.
    async fn acquire_once(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<HeldLease>> {
        let opened = self.opened(ctx)?;
        let config = &opened.config;
        let secs = Self::check_ttl(ctx, ttl, config)?;
        let wire = wire_key(ctx, key, config)?;
        if let Some(held) = self.leases.get(key) {
            if held.is_valid() {
                return Ok(None); // not reentrant, and no round trip needed to know it
            }
        }
        if self.leases.len() >= config.max_size && !self.leases.contains_key(key) {
            // Leases never released (left to expire) must not fill the table for good.
            self.forget_expired_leases();
        }
        if self.leases.len() >= config.max_size && !self.leases.contains_key(key) {
            return Err(Error::bad_request(
                TOO_MANY_LOCKS,
                format!(
                    "this instance already holds {} locks (options.max_size)",
                    config.max_size
                ),
            )
            .with_detail("key", key)
            .with_context(ctx));
        }
        let value: Arc<[u8]> = LockValue::encode_new(&self.holder, ctx.trace_id()).into();
        let server = opened.cluster.server_for(&wire).clone();
        let started = Instant::now();
        let in_flight = AcquireInFlight {
            armed: AtomicBool::new(true),
            server: server.clone(),
            wire: wire.clone(),
            value: value.clone(),
            timeout: config.timeout,
        };
        let request = Request::Set {
            key: wire.clone(),
            data: value.clone(),
            mode: SetMode::Add,
            ttl_secs: secs,
        };
        let executed = match server.execute(ctx, request, false, None).await {
            Ok(executed) => executed,
            Err(e) => {
                // Only a request that may have reached the server needs the cleanup.
                if !matches!(e.kind(), ErrorKind::OutcomeUnknown | ErrorKind::Protocol) {
                    in_flight.disarm();
                }
                return Err(e.with_detail("key", key));
            }
        };
        match executed.reply {
            Reply::Hd(flags) => match flags.cas {
                Some(cas) if cas != 0 => {
                    in_flight.disarm();
                    let held = HeldLease {
                        wire,
                        cas,
                        server,
                        identity: executed.identity,
                        fencing_token: Self::fencing_token(executed.identity, cas),
                        ttl,
                        acquired_at: started,
                        valid_until: started + Self::validity(ttl, secs),
                        gone_by: Self::gone_by(secs),
                        value,
                    };
                    self.leases.insert(key.to_string(), held.clone());
                    Ok(Some(held))
                }
                // The item is stored but cannot be released safely; it is left to expire.
                _ => {
                    in_flight.disarm();
                    Err(cas_disabled(ctx, &server))
                }
            },
            Reply::Ns(_) => {
                in_flight.disarm();
                Ok(None)
            }
            Reply::ServerError(msg) => {
                in_flight.disarm();
                Err(Error::new(
                    ErrorKind::Protocol,
                    codes::SERVER_ERROR,
                    format!("memcached at {} refused the lock: {msg}", server.address()),
                )
                .with_detail("key", key)
                .with_context(ctx))
            }
            other => Err(unexpected(ctx, "ms", &other)),
        }
    }

    /// Releases this owner's lock on `key` (only the acquisition with `token`, when given);
    /// whether it was deleted.
    async fn release_once(&self, ctx: &Context, key: &str, token: Option<&str>) -> Result<bool> {
        let opened = self.opened(ctx)?;
        let removed = match token {
            None => self.leases.remove(key),
            Some(token) => self
                .leases
                .remove_if(key, |_, h| LockValue::token(&h.value) == token),
        };
        let Some((_, held)) = removed else {
            // Only a valid key can be in the table: validate (and report) the others here,
            // off the hot path.
            wire_key(ctx, key, &opened.config)?;
            return Ok(false);
        };
        let result = self.delete_held(ctx, &held).await;
        match result {
            Ok(deleted) => {
                if deleted {
                    self.waiters.notify_released(key);
                }
                Ok(deleted)
            }
            Err(e) => {
                // Nothing is known to have changed: keep the lease so the caller can retry
                // (unless a new acquisition replaced it meanwhile).
                if e.kind() != ErrorKind::OutcomeUnknown {
                    self.leases.entry(key.to_string()).or_insert(held);
                }
                Err(e.with_detail("key", key))
            }
        }
    }

    /// Drops leases whose item memcached has certainly expired (see `HeldLease::gone_by`).
    fn forget_expired_leases(&self) {
        let now = Instant::now();
        self.leases.retain(|_, h| h.gone_by > now);
    }

    fn forget(&self, key: &str, value: &Arc<[u8]>) {
        self.leases.remove_if(key, |_, h| h.same_acquisition(value));
    }

    async fn current_cas_if_ours(&self, ctx: &Context, held: &HeldLease) -> Result<Option<u64>> {
        let got = held
            .server
            .execute(
                ctx,
                Request::Get {
                    key: held.wire.clone(),
                },
                true,
                Some(held.identity),
            )
            .await;
        match got {
            Ok(e) => match e.reply {
                Reply::Va { data, flags } if data.as_slice() == held.value.as_ref() => {
                    Ok(flags.cas.filter(|c| *c != 0))
                }
                _ => Ok(None),
            },
            Err(e) if e.code() == codes::SERVER_RESTARTED => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `md <key> C<cas>`; on `EX`, checks whether the item is still ours under a newer CAS
    /// (an extend whose reply was lost) and deletes that.
    async fn delete_held(&self, ctx: &Context, held: &HeldLease) -> Result<bool> {
        let request = Request::Delete {
            key: held.wire.clone(),
            cas: held.cas,
        };
        let executed = match held
            .server
            .execute(ctx, request, true, Some(held.identity))
            .await
        {
            Ok(e) => e,
            // CAS values restarted with the server: never release by CAS. The lease is lost.
            Err(e) if e.code() == codes::SERVER_RESTARTED => return Ok(false),
            Err(e) => return Err(e),
        };
        match executed.reply {
            Reply::Hd(_) => Ok(true),
            Reply::Nf(_) => Ok(false),
            Reply::Ex(_) => {
                delete_if_token(
                    ctx,
                    &held.server,
                    &held.wire,
                    &held.value,
                    Some(held.identity),
                )
                .await
            }
            other => Err(unexpected(ctx, "md", &other)),
        }
    }

    /// Opens the cluster for `addresses` and checks that the servers support owner-checked
    /// locks (CAS enabled).
    async fn connect(&self, ctx: &Context, config: &MemcachedLockConfig) -> Result<Opened> {
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
                None => 11211,
                Some(raw) => c.port().filter(|p| *p != 0).ok_or_else(|| {
                    Error::bad_config_value("port", raw, "a port number from 1 to 65535")
                        .with_context(ctx)
                })?,
            };
            let address = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            addresses.push(address);
        }
        let cluster =
            Cluster::connect(ctx, addresses, config.client_options(), config.protocol).await?;
        for server in cluster.servers() {
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
    let executed = server.execute(ctx, set, false, None).await?;
    match executed.reply {
        Reply::Hd(flags) => {
            let cas = flags.cas.unwrap_or(0);
            let del = Request::Delete { key, cas };
            let _ = server
                .execute(ctx, del, true, Some(executed.identity))
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

impl Configurable for MemcachedLock {
    fn configure(&self, config: &ConfigParams) -> Result<()> {
        let typed = MemcachedLockConfig::from_config(config)?;
        // Validates the connection keys now (a bad uri fails here, not at open).
        ConnectionResolver::from_config(config)?;
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
        let held: Vec<HeldLease> = self.leases.iter().map(|e| e.value().clone()).collect();
        self.leases.clear();
        let _ = tokio::time::timeout(opened.config.timeout, async {
            for h in &held {
                let _ = self.delete_held(ctx, h).await;
            }
        })
        .await;
        opened.cluster.close().await;
        Ok(())
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
