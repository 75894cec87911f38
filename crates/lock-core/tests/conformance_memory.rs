//! The conformance suite against `MemoryLock` (owners sharing one `MemoryLockTable`).
#![cfg(feature = "testing")]

use std::sync::Arc;

use lock_core::testing::{self, SuiteConfig};
use lock_core::{Lock, MemoryLock, MemoryLockTable};

/// A factory of owners sharing a fresh table.
fn owners() -> impl Fn() -> std::future::Ready<Arc<dyn Lock>> {
    let table = Arc::new(MemoryLockTable::new());
    move || std::future::ready(Arc::new(MemoryLock::with_table(table.clone())) as Arc<dyn Lock>)
}

fn config() -> SuiteConfig {
    SuiteConfig::default()
}

macro_rules! cases {
    ($($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                testing::$case(owners(), config()).await;
            }
        )+
    };
}

cases!(
    lock_1,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_table() {
    testing::run_all(owners(), config()).await;
}

/// The suite with a heavier mutual-exclusion load than the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_exclusion_heavy() {
    let config = SuiteConfig {
        mutual_exclusion_owners: 6,
        mutual_exclusion_tasks: 16,
        mutual_exclusion_keys: 2,
        mutual_exclusion_rounds: 20,
        ..SuiteConfig::default()
    };
    testing::mutual_exclusion(owners(), config).await;
}

/// The suite catches a lock that does not exclude: `NullLock` must fail it.
mod the_suite_can_fail {
    use super::*;
    use lock_core::NullLock;

    fn null_owners() -> impl Fn() -> std::future::Ready<Arc<dyn Lock>> {
        || std::future::ready(Arc::new(NullLock::new()) as Arc<dyn Lock>)
    }

    #[tokio::test]
    #[should_panic(expected = "not reentrant")]
    async fn null_lock_fails_lock_1() {
        testing::lock_1(null_owners(), config()).await;
    }

    #[tokio::test]
    #[should_panic(expected = "mutual_exclusion")]
    async fn null_lock_fails_mutual_exclusion() {
        testing::mutual_exclusion(null_owners(), config()).await;
    }
}
