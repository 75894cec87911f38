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

lock_core::conformance_tests!(owners: owners(), config: SuiteConfig::default());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_table() {
    testing::run_all(owners(), SuiteConfig::default()).await;
}

/// The suite with a heavier mutual-exclusion load than the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_exclusion_heavy() {
    let config = SuiteConfig::default().with_mutual_exclusion_load(6, 16, 2, 20);
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
    async fn null_lock_fails_try_acquire_is_exclusive_and_not_reentrant() {
        testing::try_acquire_is_exclusive_and_not_reentrant(null_owners(), SuiteConfig::default())
            .await;
    }

    #[tokio::test]
    #[should_panic(expected = "mutual_exclusion")]
    async fn null_lock_fails_mutual_exclusion() {
        testing::mutual_exclusion(null_owners(), SuiteConfig::default()).await;
    }
}
