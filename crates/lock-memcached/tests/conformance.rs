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

/// Owners (lock instances) that all talk to `target` in `protocol` mode, configured like the
/// original's documented example: top-level host and port.
fn owners(
    target: &ServerTarget,
    protocol: &'static str,
) -> impl Fn() -> OwnerFuture + Send + Sync + Clone + 'static {
    let host = target.host();
    let port = target.port().to_string();
    move || {
        let config = ConfigParams::from_tuples([
            ("host", host.clone()),
            ("port", port.clone()),
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
    SuiteConfig {
        supports_fencing: true,
        ..SuiteConfig::one_second_granularity()
    }
}

macro_rules! cases {
    ($protocol:literal: $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let target = super::ServerTarget::from_env_or_spawn().expect("memcached for the suite");
                lock_core::testing::$case(super::owners(&target, $protocol), super::suite_config())
                    .await;
            }
        )+
    };
}

macro_rules! suite {
    ($protocol:literal) => {
        cases!(
            $protocol: lock_1,
            lock_2,
            lock_3,
            bad_input,
            expiry,
            ownership_release,
            ownership_extend,
            release_after_expiry_keeps_next_holder,
            stale_lease_keeps_newer_acquisition,
            extend,
            inspection,
            guard_renewal,
            guard_lost_signal,
            lock_timeout_within_timeout,
            mutual_exclusion,
        );
    };
}

mod meta {
    suite!("meta");
}

mod classic {
    suite!("classic");
}
