//! Quickstart: the original Pip.Services example in Rust, then the additions.
//!
//! 1. Configure `host` and `port` at the top level (the original's documented form), open,
//!    try-acquire `key1` for 3000 ms, do the work, release.
//! 2. `acquire_lock` with a timeout, and the `LOCK_TIMEOUT` error when another owner keeps
//!    the key.
//! 3. A `LockGuard`: a lease with a fencing token, renewed in the background past its ttl,
//!    with a lost signal, released explicitly.
//!
//! The server comes from `MEMCACHED_SERVICE_HOST` / `MEMCACHED_SERVICE_PORT` (default
//! `localhost:11211`):
//!
//! ```text
//! memcached -p 11211 &
//! cargo run --example quickstart
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, Openable, codes};
use lock_core::{Lock, LockGuard};
use lock_memcached::MemcachedLock;

#[tokio::main]
async fn main() -> ExitCode {
    let (host, port) = match examples::memcached_endpoint(|name| std::env::var(name).ok()) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            eprintln!("quickstart: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&host, port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if examples::is_unreachable(&e) => {
            eprintln!("quickstart: {e}\n");
            eprintln!("{}", examples::how_to_start_memcached(&host, port));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds a `MemcachedLock` configured the way the original's example does it.
fn memcached_lock(host: &str, port: u16) -> commons::Result<MemcachedLock> {
    let lock = MemcachedLock::new();
    lock.configure(&ConfigParams::from_tuples([
        ("host", host.to_string()),
        ("port", port.to_string()),
    ]))?;
    Ok(lock)
}

async fn run(host: &str, port: u16) -> commons::Result<()> {
    let ctx = Context::with_trace_id("123");

    // --- 1. The original example -------------------------------------------------------
    let lock = memcached_lock(host, port)?;
    lock.open(&ctx).await?;
    println!("opened a MemcachedLock on {host}:{port}");

    if lock
        .try_acquire_lock(&ctx, "key1", Duration::from_millis(3000))
        .await?
    {
        println!("try_acquire_lock(key1, 3000 ms): acquired");
        println!("working while holding key1 ...");
        tokio::time::sleep(Duration::from_millis(100)).await;
        lock.release_lock(&ctx, "key1").await?;
        println!("release_lock(key1): released");
    } else {
        println!("try_acquire_lock(key1, 3000 ms): someone else holds key1; skipping the work");
    }

    // --- 2. acquire_lock with a timeout ------------------------------------------------
    // Waits up to 1 s for the key, retrying every options.retry_timeout (100 ms, with jitter).
    lock.acquire_lock(&ctx, "key1", Duration::from_secs(3), Duration::from_secs(1))
        .await?;
    println!("acquire_lock(key1, ttl 3 s, timeout 1 s): acquired");

    // A second instance is a second owner: it cannot take key1, and its release deletes
    // nothing of ours.
    let other = memcached_lock(host, port)?;
    other.open(&ctx).await?;
    match other
        .acquire_lock(
            &ctx,
            "key1",
            Duration::from_secs(3),
            Duration::from_millis(300),
        )
        .await
    {
        Err(e) if e.code() == codes::LOCK_TIMEOUT => {
            println!(
                "another owner's acquire_lock(key1, timeout 300 ms): {}",
                e.code()
            );
        }
        Err(e) => return Err(e),
        Ok(()) => {
            return Err(commons::Error::internal(
                "a second owner acquired key1 while the first held it",
            ));
        }
    }
    other.release_lock(&ctx, "key1").await?;
    let info = lock.inspect_lock(&ctx, "key1").await?;
    println!(
        "after the other owner's release_lock(key1), key1 is still ours: {}",
        info.held_by_me
    );
    lock.release_lock(&ctx, "key1").await?;
    println!("release_lock(key1): released");
    other.close(&ctx).await?;

    // --- 3. A LockGuard: lease, fencing token, renewal, lost signal, release ------------
    let memcached = Arc::new(lock);
    let lock: Arc<dyn Lock> = memcached.clone();
    let ttl = Duration::from_secs(2);
    let guard = LockGuard::builder(lock.clone(), "key2", ttl)
        .renew_interval(Duration::from_millis(500))
        .acquire(&ctx, Duration::from_secs(1))
        .await?;
    let first = guard.lease();
    println!(
        "LockGuard on key2: ttl {} ms, fencing token {}, renewed every {} ms",
        ttl.as_millis(),
        first
            .fencing_token
            .map_or_else(|| "none".to_string(), |t| t.to_string()),
        guard.renew_interval().as_millis()
    );
    // Work for longer than the ttl; the guard keeps extending the lease. Stop early if it
    // is lost (a refused renewal: someone else may hold the key now).
    let work = tokio::time::sleep(ttl + Duration::from_millis(500));
    tokio::select! {
        _ = work => println!("worked {} ms, longer than the ttl", (ttl + Duration::from_millis(500)).as_millis()),
        _ = guard.lost() => println!("the lease was lost: stopping the work"),
    }
    let now = guard.lease();
    println!(
        "lease still held: {}, lost: {}, renewed past the first deadline: {}, same fencing token: {}",
        now.is_valid(),
        guard.is_lost(),
        now.valid_until > first.valid_until,
        now.fencing_token == first.fencing_token
    );
    let released = guard.release().await?;
    println!("LockGuard released key2: {released}");

    memcached.close(&ctx).await?;
    println!("quickstart done");
    Ok(())
}
