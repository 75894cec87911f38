//! The lock-core conformance suite, run by `MemcachedLock` against a real memcached, once in
//! each protocol mode: `meta` (`ms`/`md`/`mg`, the default on memcached >= 1.6.13) and
//! `classic` (`add` + `gets`, `cas`, for older servers).
//!
//! Each test spawns its own server through the testkit, or uses the server named by
//! `MEMCACHED_SERVICE_HOST` / `MEMCACHED_SERVICE_PORT` when set (the originals' fixture
//! variables).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use commons::{ConfigParams, Configurable, Context, Openable};
use lock_core::Lock;
use lock_core::testing::SuiteConfig;
use lock_memcached::MemcachedLock;
use memcached_testkit::ServerTarget;

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

fn suite_config() -> SuiteConfig {
    // MemcachedLock hands out fencing tokens (boot epoch and CAS): check that they grow.
    SuiteConfig::one_second_granularity().with_fencing(true)
}

lock_core::conformance_tests!(mod meta, owners: owners("meta"), config: suite_config());
lock_core::conformance_tests!(mod classic, owners: owners("classic"), config: suite_config());
