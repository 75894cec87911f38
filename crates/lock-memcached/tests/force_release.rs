//! `MemcachedLock::force_release`: an operator deletes a lock whoever holds it.

mod support;

use std::sync::Arc;

use commons::Context;
use lock_core::{Lock, LockGuard};
use memcached_testkit::MemcachedServer;
use support::{TTL, open_lock, unique_key};

#[tokio::test]
async fn force_release_frees_another_owners_lock_and_the_holder_loses_it() {
    let server = MemcachedServer::start().expect("memcached must be installed");
    let ctx = Context::new();
    let holder: Arc<dyn Lock> = Arc::new(open_lock(&server.address(), &[]).await);
    let admin = open_lock(&server.address(), &[]).await;
    let key = unique_key("force");

    let guard = LockGuard::acquire(holder.clone(), &ctx, &key, TTL, TTL)
        .await
        .expect("the holder takes the key");
    assert!(!admin.try_acquire_lock(&ctx, &key, TTL).await.unwrap());

    assert!(
        admin
            .force_release(&ctx, &key)
            .await
            .expect("force release")
    );
    assert!(!admin.inspect_lock(&ctx, &key).await.unwrap().held);
    // Nothing left to delete: a free key reports false.
    assert!(!admin.force_release(&ctx, &key).await.unwrap());

    // The holder's next renewal is refused: its guard reports the loss.
    tokio::time::timeout(TTL, guard.lost())
        .await
        .expect("the holder notices the loss within its ttl");
    assert!(guard.is_lost());
    assert!(admin.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    admin.release_lock(&ctx, &key).await.unwrap();
}

#[tokio::test]
async fn force_release_checks_the_key_and_needs_an_open_lock() {
    let server = MemcachedServer::start().expect("memcached must be installed");
    let ctx = Context::new();
    let lock = open_lock(&server.address(), &[]).await;
    let err = lock.force_release(&ctx, "").await.unwrap_err();
    assert_eq!(err.code(), commons::codes::BAD_KEY);
    let closed = lock_memcached::MemcachedLock::new();
    let err = closed.force_release(&ctx, "k").await.unwrap_err();
    assert_eq!(err.code(), commons::codes::NOT_OPENED);
}
