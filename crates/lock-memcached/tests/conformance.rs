//! The lock-core conformance suite, run by `MemcachedLock` against real memcached servers:
//! once in each protocol mode, `meta` (`ms`/`md`/`mg`, the default on memcached >= 1.6.13) and
//! `classic` (`add` + `gets`, `cas`, for older servers), once in quorum mode over three
//! servers, and in both protocol modes against a server that requires authentication (`-Y`)
//! and mutual TLS (`-Z`, client certificates required).
//!
//! Each test spawns its own server through the testkit, or uses the server named by
//! `MEMCACHED_SERVICE_HOST` / `MEMCACHED_SERVICE_PORT` when set (the originals' fixture
//! variables).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, Openable};
use lock_core::Lock;
use lock_core::testing::SuiteConfig;
use lock_memcached::MemcachedLock;
use memcached_testkit::{MemcachedServer, ServerTarget};

mod support;
use support::pki::Pki;

type OwnerFuture = Pin<Box<dyn Future<Output = Arc<dyn Lock>> + Send>>;

/// Owners (lock instances) that all talk to one server in `protocol` mode, configured like
/// the original's documented example: top-level host and port. The factory keeps the
/// server (when spawned) running for as long as the case holds it.
fn owners(protocol: &'static str) -> impl Fn() -> OwnerFuture + Send + Sync + Clone + 'static {
    let target = Arc::new(ServerTarget::from_env_or_spawn().expect("memcached for the suite"));
    move || {
        let config = ConfigParams::from_tuples([
            ("host", target.host()),
            ("port", target.port().to_string()),
            ("options.protocol", protocol.to_string()),
        ]);
        Box::pin(async move {
            let lock = MemcachedLock::new();
            lock.configure(&config).expect("configure");
            lock.open(&Context::new()).await.expect("open");
            Arc::new(lock) as Arc<dyn Lock>
        })
    }
}

/// The longest ttl and the quarantine of the quorum suite: the cases' long ttls are capped to
/// it, and the servers (spawned for the case) are first left to age past the quarantine, as
/// a client enforces it for every server it cannot tell apart from a restarted one.
const QUORUM_MAX_TTL: Duration = Duration::from_secs(6);

/// Owners of one quorum of three servers spawned for the case (`options.mode=quorum`). The
/// first owner waits until the servers' memory, as the lock can vouch for it (from when the
/// first client wrote their boot markers), is older than the quarantine.
fn quorum_owners() -> impl Fn() -> OwnerFuture + Send + Sync + Clone + 'static {
    let servers: Arc<Vec<memcached_testkit::MemcachedServer>> = Arc::new(
        (0..3)
            .map(|_| memcached_testkit::MemcachedServer::start().expect("memcached"))
            .collect(),
    );
    let aged = Arc::new(tokio::sync::OnceCell::new());
    move || {
        let hosts: Vec<String> = servers.iter().map(|s| s.address()).collect();
        let limit = QUORUM_MAX_TTL.as_millis().to_string();
        let config = ConfigParams::from_tuples([
            ("connection.uri", format!("memcached://{}", hosts.join(","))),
            ("options.mode", "quorum".to_string()),
            ("options.max_ttl", limit.clone()),
            ("options.quarantine", limit),
        ]);
        let (servers, aged) = (servers.clone(), aged.clone());
        Box::pin(async move {
            let _keep = servers;
            let lock = MemcachedLock::new();
            lock.configure(&config).expect("configure");
            lock.open(&Context::new()).await.expect("open");
            aged.get_or_init(|| async {
                tokio::time::sleep(QUORUM_MAX_TTL + Duration::from_millis(200)).await;
            })
            .await;
            Arc::new(lock) as Arc<dyn Lock>
        })
    }
}

/// Owners that talk to one server requiring authentication and mutual TLS, in `protocol`
/// mode, with the right credentials and certificates.
fn secure_owners(
    protocol: &'static str,
) -> impl Fn() -> OwnerFuture + Send + Sync + Clone + 'static {
    let pki = Pki::new();
    let builder = MemcachedServer::builder().auth("suite", "suite-secret");
    let server = pki.server_with(builder, &["127.0.0.1"], false, true);
    let config = ConfigParams::from_tuples([
        (
            "connection.uri",
            format!("memcacheds://{}", server.address()),
        ),
        ("credential.username", "suite".to_string()),
        ("credential.password", "suite-secret".to_string()),
        ("credential.ssl_ca_file", pki.ca_file.clone()),
        ("credential.ssl_crt_file", pki.client_crt.clone()),
        ("credential.ssl_key_file", pki.client_key.clone()),
        ("options.protocol", protocol.to_string()),
    ]);
    let kept = Arc::new((pki, server));
    move || {
        let (config, kept) = (config.clone(), kept.clone());
        Box::pin(async move {
            let _kept = kept;
            let lock = MemcachedLock::new();
            lock.configure(&config).expect("configure");
            lock.open(&Context::new()).await.expect("open");
            Arc::new(lock) as Arc<dyn Lock>
        })
    }
}

fn suite_config() -> SuiteConfig {
    // MemcachedLock hands out fencing tokens (a per-key counter): check that they grow. Its
    // items expire at an absolute time by the server's clock, placed up to 2 s after the ttl
    // (docs/safety.md, "A paused server's clock").
    SuiteConfig::one_second_granularity()
        .with_fencing(true)
        .with_expiry_overrun(std::time::Duration::from_secs(2))
}

lock_core::conformance_tests!(mod meta, owners: owners("meta"), config: suite_config());
lock_core::conformance_tests!(mod classic, owners: owners("classic"), config: suite_config());
lock_core::conformance_tests!(
    mod auth_and_mutual_tls_meta,
    owners: secure_owners("meta"),
    config: suite_config()
);
lock_core::conformance_tests!(
    mod auth_and_mutual_tls_classic,
    owners: secure_owners("classic"),
    config: suite_config()
);
lock_core::conformance_tests!(
    mod quorum,
    owners: quorum_owners(),
    config: suite_config().with_max_ttl(QUORUM_MAX_TTL)
);
