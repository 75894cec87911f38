//! Quorum mode (`options.mode=quorum`) against real memcached servers spawned by the testkit:
//! what a majority decides, how an outage is told apart from contention, the restart
//! quarantine, the repair of a lost replica by extend, and fencing across the quorum.

use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, ErrorKind, Openable};
use lock_core::Lock;
use lock_memcached::MemcachedLock;
use memcached_testkit::MemcachedServer;

mod support;
use support::{raw, raw_get, unique_key};

/// The longest ttl and the quarantine of these tests (the smallest allowed).
const LIMIT: Duration = Duration::from_secs(2);
const TTL: Duration = Duration::from_secs(2);

/// `n` servers, old enough for the quarantine (their boot markers were written, then the
/// quarantine was waited out).
async fn aged_quorum(n: usize) -> Vec<MemcachedServer> {
    let servers: Vec<MemcachedServer> = (0..n)
        .map(|_| MemcachedServer::start().expect("memcached"))
        .collect();
    drop(quorum_lock(&servers).await);
    tokio::time::sleep(LIMIT + Duration::from_millis(200)).await;
    servers
}

fn quorum_config(servers: &[MemcachedServer]) -> ConfigParams {
    let hosts: Vec<String> = servers.iter().map(|s| s.address()).collect();
    let limit = LIMIT.as_millis().to_string();
    ConfigParams::from_tuples([
        ("connection.uri", format!("memcached://{}", hosts.join(","))),
        ("options.mode", "quorum".to_string()),
        ("options.max_ttl", limit.clone()),
        ("options.quarantine", limit),
        ("options.timeout", "500".to_string()),
        ("options.retry", "200".to_string()),
        ("options.reconnect", "100".to_string()),
    ])
}

async fn quorum_lock(servers: &[MemcachedServer]) -> MemcachedLock {
    let lock = MemcachedLock::new();
    lock.configure(&quorum_config(servers)).expect("configure");
    lock.open(&Context::new()).await.expect("open");
    lock
}

/// The error of an acquire that no majority can grant (it must be `NO_QUORUM`).
async fn no_quorum(lock: &MemcachedLock, name: &str) -> commons::Error {
    let err = lock
        .try_acquire_lock(&Context::new(), &unique_key(name), TTL)
        .await
        .expect_err("no majority can grant it");
    assert_eq!(err.code(), lock_memcached::codes::NO_QUORUM, "{err}");
    err
}

#[tokio::test]
async fn a_minority_down_does_not_stop_the_lock_and_a_majority_down_is_an_outage() {
    let mut servers = aged_quorum(3).await;
    let a = quorum_lock(&servers).await;
    let b = quorum_lock(&servers).await;
    let ctx = Context::new();
    let key = unique_key("minority");
    servers[0].stop();
    assert!(
        a.try_acquire_lock(&ctx, &key, TTL)
            .await
            .expect("2 of 3 up")
    );
    // Contention is `false`, not an error.
    assert!(!b.try_acquire_lock(&ctx, &key, TTL).await.expect("busy"));
    assert!(a.release_owned(&ctx, &key).await.expect("release"));
    servers[1].stop();
    let err = no_quorum(&a, "outage").await;
    assert_eq!(err.kind(), ErrorKind::Connection);
    for s in &servers {
        assert!(
            err.message().contains(&s.address()),
            "names every server: {err}"
        );
    }
}

#[tokio::test]
async fn a_restarted_server_does_not_count_until_its_quarantine_has_passed() {
    let mut servers = aged_quorum(3).await;
    let lock = quorum_lock(&servers).await;
    let ctx = Context::new();
    servers[0].restart().expect("restart");
    servers[1].stop();
    // Two servers answer, but one of them just restarted: it may have lost a held lock.
    let err = no_quorum(&lock, "quarantine").await;
    assert!(err.message().contains("quarantine"), "{err}");
    tokio::time::sleep(LIMIT + Duration::from_millis(300)).await;
    assert!(
        lock.try_acquire_lock(&ctx, &unique_key("after"), TTL)
            .await
            .expect("after the quarantine")
    );
}

#[tokio::test]
async fn extend_restores_a_replica_a_server_lost() {
    let servers = aged_quorum(3).await;
    let lock = quorum_lock(&servers).await;
    let ctx = Context::new();
    let key = unique_key("repair");
    let lease = lock
        .try_acquire_lease(&ctx, &key, TTL)
        .await
        .expect("acquire")
        .expect("free");
    // The third server's grant may come just after the majority decided.
    let mut stored = false;
    for _ in 0..50 {
        stored = raw_get(&servers[2].address(), &key).is_some();
        if stored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored, "the third server never stored the item");
    // The item vanishes from one server (as in an eviction).
    let (reply, _) = raw(&servers[2].address(), &format!("md {key}\r\n"));
    assert_eq!(reply, "HD");
    let renewed = lock
        .extend_lease(&ctx, &key, TTL)
        .await
        .expect("extend")
        .expect("a majority still holds it");
    assert_eq!(renewed.token, lease.token);
    let restored = raw_get(&servers[2].address(), &key).expect("re-created");
    assert!(restored.contains(&lease.token), "{restored}");
    assert!(lock.release_lease(&ctx, &renewed).await.expect("release"));
    for s in &servers {
        assert!(raw_get(&s.address(), &key).is_none(), "released everywhere");
    }
}

#[tokio::test]
async fn fencing_tokens_grow_across_holders_and_a_minority_restart() {
    let mut servers = aged_quorum(3).await;
    let owners = [quorum_lock(&servers).await, quorum_lock(&servers).await];
    let ctx = Context::new();
    let key = unique_key("fence");
    let mut last = 0;
    for round in 0..6 {
        if round == 3 {
            servers[round % 3].restart().expect("restart");
            tokio::time::sleep(LIMIT + Duration::from_millis(300)).await;
        }
        let owner = &owners[round % 2];
        let lease = owner
            .try_acquire_lease(&ctx, &key, TTL)
            .await
            .expect("acquire")
            .expect("free");
        let token = lease
            .fencing_token
            .expect("a token established on a majority");
        assert!(token > last, "round {round}: {last} then {token}");
        last = token;
        assert!(owner.release_lease(&ctx, &lease).await.expect("release"));
    }
}

#[tokio::test]
async fn quorum_mode_needs_three_servers_and_caps_the_ttl() {
    let servers: Vec<MemcachedServer> = (0..2)
        .map(|_| MemcachedServer::start().expect("memcached"))
        .collect();
    let lock = MemcachedLock::new();
    lock.configure(&quorum_config(&servers)).expect("configure");
    let err = lock.open(&Context::new()).await.expect_err("two servers");
    assert_eq!(err.code(), commons::codes::BAD_CONFIG, "{err}");

    let bad = MemcachedLock::new();
    let mut config = quorum_config(&servers);
    config.set("options.quarantine", "1000");
    let err = bad
        .configure(&config)
        .expect_err("quarantine below max_ttl");
    assert!(err.to_string().contains("options.quarantine"), "{err}");

    let servers = aged_quorum(3).await;
    let lock = quorum_lock(&servers).await;
    let err = lock
        .try_acquire_lock(&Context::new(), &unique_key("long"), Duration::from_secs(3))
        .await
        .expect_err("above max_ttl");
    assert_eq!(err.code(), commons::codes::BAD_TTL, "{err}");
}

/// A quorum client opens while a minority of its servers is down (it needs only a majority
/// to work), and uses the missing server once it is back; with a majority down the open
/// fails, naming the unreachable server.
#[tokio::test]
async fn a_quorum_lock_opens_with_a_minority_of_its_servers_down() {
    let mut servers = aged_quorum(3).await;
    servers[2].stop();
    let lock = quorum_lock(&servers).await;
    let ctx = Context::new();
    let key = unique_key("minority-down");
    assert!(
        lock.try_acquire_lock(&ctx, &key, TTL)
            .await
            .expect("acquire")
    );
    assert!(lock.release_owned(&ctx, &key).await.expect("release"));
    let status = lock.server_status(&ctx).await.expect("status");
    assert!(status[2].error.is_some(), "{:?}", status[2]);

    servers[1].stop();
    let lock = MemcachedLock::new();
    lock.configure(&quorum_config(&servers)).expect("configure");
    let err = lock.open(&ctx).await.expect_err("a majority is down");
    assert_eq!(err.kind(), commons::ErrorKind::Connection, "{err}");
    assert!(err.message().contains(&servers[1].address()), "{err}");
}

/// A burst of acquires on a lock whose connections were all closed as idle: every one gets a
/// real answer (the connections are made again), none fails to connect.
#[tokio::test]
async fn a_burst_of_acquires_after_the_idle_connections_were_closed_is_served() {
    let servers = aged_quorum(3).await;
    let mut config = quorum_config(&servers);
    config.set("options.idle", "200");
    let lock = MemcachedLock::new();
    lock.configure(&config).expect("configure");
    lock.open(&Context::new()).await.expect("open");
    tokio::time::sleep(Duration::from_millis(800)).await; // reaped
    let lock = std::sync::Arc::new(lock);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..256 {
        let lock = lock.clone();
        tasks.spawn(async move {
            lock.try_acquire_lock(&Context::new(), &unique_key(&format!("burst{i}")), TTL)
                .await
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            Ok(true) => {}
            Ok(false) => failures.push("busy".to_string()),
            Err(e) => failures.push(format!("{e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 256 failed, first: {:?}",
        failures.len(),
        failures.first()
    );
}
