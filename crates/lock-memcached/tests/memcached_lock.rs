//! MemcachedLock against real memcached servers spawned by the testkit.

use std::sync::Arc;
use std::time::Duration;

use commons::{
    ConfigParams, Configurable, Context, Descriptor, Discovery, ErrorKind, MemoryDiscovery,
    Openable, Referenceable, References, codes, component,
};
use lock_core::Lock;
use lock_memcached::MemcachedLock;
use memcached_testkit::MemcachedServer;

mod support;
use support::{
    REFUSED_TTLS, TTL, acquire_within, config_for, open_lock, raw_get, server_behind_proxy,
    unique_key,
};

#[tokio::test]
async fn original_documented_example_with_top_level_host_and_port() {
    let server = MemcachedServer::start().unwrap();
    let lock = MemcachedLock::new();
    lock.configure(&ConfigParams::from_tuples([
        ("host", server.host().to_string()),
        ("port", server.port().to_string()),
    ]))
    .unwrap();
    let ctx = Context::with_trace_id("123");
    lock.open(&ctx).await.unwrap();
    assert!(
        lock.try_acquire_lock(&ctx, "key1", Duration::from_millis(3000))
            .await
            .unwrap()
    );
    lock.release_lock(&ctx, "key1").await.unwrap();
    lock.close(&ctx).await.unwrap();
}

#[tokio::test]
async fn calls_before_open_and_after_close_fail_with_not_opened() {
    let server = MemcachedServer::start().unwrap();
    let lock = MemcachedLock::new();
    lock.configure(&config_for(&server.address(), &[])).unwrap();
    let ctx = Context::with_trace_id("t1");
    let err = lock.try_acquire_lock(&ctx, "k", TTL).await.unwrap_err();
    assert_eq!(err.code(), codes::NOT_OPENED);
    assert_eq!(err.trace_id(), Some("t1"));
    lock.open(&ctx).await.unwrap();
    assert!(lock.is_open());
    lock.close(&ctx).await.unwrap();
    assert!(!lock.is_open());
    let err = lock.release_lock(&ctx, "k").await.unwrap_err();
    assert_eq!(err.code(), codes::NOT_OPENED);
}

#[tokio::test]
async fn no_connection_configured_fails_at_open() {
    let lock = MemcachedLock::new();
    lock.configure(&ConfigParams::new()).unwrap();
    let err = lock.open(&Context::new()).await.unwrap_err();
    assert_eq!(err.code(), codes::NO_CONNECTION);
    assert!(!lock.is_open());
}

#[tokio::test]
async fn stale_holder_cannot_release_the_next_holders_lock() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(&server.address(), &[]).await;
    let b = open_lock(&server.address(), &[]).await;
    let ctx = Context::new();
    let k = unique_key("stale");
    assert!(
        a.try_acquire_lock(&ctx, &k, Duration::from_secs(1))
            .await
            .unwrap()
    );
    // Wait until memcached expired a's item, then b takes the key.
    assert!(
        acquire_within(&b, &ctx, &k, TTL, 40).await,
        "b never got the key after a's ttl"
    );
    // a still believes it may hold the key: its release must not delete b's lock.
    assert!(!a.release_owned(&ctx, &k).await.unwrap());
    assert!(
        raw_get(&server.address(), &k).is_some(),
        "b's lock was deleted by a stale release"
    );
    let info = b.inspect_lock(&ctx, &k).await.unwrap();
    assert!(info.held && info.held_by_me);
    assert!(b.release_owned(&ctx, &k).await.unwrap());
    assert!(raw_get(&server.address(), &k).is_none());
}

#[tokio::test]
async fn non_owner_release_and_extend_change_nothing() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(&server.address(), &[]).await;
    let b = open_lock(&server.address(), &[]).await;
    let ctx = Context::new();
    let k = unique_key("owner");
    assert!(a.try_acquire_lock(&ctx, &k, TTL).await.unwrap());
    let before = raw_get(&server.address(), &k);
    assert!(!b.release_owned(&ctx, &k).await.unwrap());
    assert!(!b.extend_lock(&ctx, &k, TTL).await.unwrap());
    assert!(!b.try_acquire_lock(&ctx, &k, TTL).await.unwrap());
    assert_eq!(raw_get(&server.address(), &k), before);
    let info = b.inspect_lock(&ctx, &k).await.unwrap();
    assert!(info.held && !info.held_by_me);
    assert!(info.holder.unwrap().contains("pid="));
}

#[tokio::test]
async fn extend_keeps_the_lock_past_its_first_ttl() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(&server.address(), &[]).await;
    let b = open_lock(&server.address(), &[]).await;
    let ctx = Context::new();
    let k = unique_key("extend");
    let lease = a
        .try_acquire_lease(&ctx, &k, Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let extended = a
            .extend_lease(&ctx, &k, Duration::from_secs(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(extended.fencing_token, lease.fencing_token);
        assert_eq!(extended.token, lease.token);
    }
    // 2.1 s after the acquire, a 2 s lock would be gone without the extensions.
    assert!(!b.try_acquire_lock(&ctx, &k, TTL).await.unwrap());
    assert!(a.release_owned(&ctx, &k).await.unwrap());
}

#[tokio::test]
async fn ttls_are_rounded_up_and_bounded() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(&server.address(), &[]).await;
    let ctx = Context::new();
    // 1 ms rounds up to 1 s: the item exists (T0 would mean never expire), then expires.
    let k = unique_key("subsecond");
    assert!(
        a.try_acquire_lock(&ctx, &k, Duration::from_millis(1))
            .await
            .unwrap()
    );
    let info = a.inspect_lock(&ctx, &k).await.unwrap();
    assert!(info.held);
    // Placed by the server's clock, the expiry can come up to 2 s after the ttl.
    assert!(info.remaining_ttl.unwrap() <= Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert!(
        !a.inspect_lock(&ctx, &k).await.unwrap().held,
        "a 1 ms lock never expired"
    );

    for (_, bad) in REFUSED_TTLS {
        let err = a
            .try_acquire_lock(&ctx, &unique_key("bad"), bad)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{bad:?}");
        assert_eq!(err.code(), codes::BAD_TTL);
    }
    // Exactly 30 days is allowed.
    let k = unique_key("30d");
    assert!(
        a.try_acquire_lock(&ctx, &k, Duration::from_secs(2_592_000))
            .await
            .unwrap()
    );
    assert!(
        a.inspect_lock(&ctx, &k).await.unwrap().held,
        "a 30-day lock was born expired"
    );
    a.release_lock(&ctx, &k).await.unwrap();
}

#[tokio::test]
async fn a_newline_in_a_key_cannot_inject_a_command() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(&server.address(), &[]).await;
    let ctx = Context::new();
    let victim = unique_key("victim");
    assert!(a.try_acquire_lock(&ctx, &victim, TTL).await.unwrap());
    let evil = format!("x 1 T0\r\nmd {victim}\r\nmn");
    let err = a.try_acquire_lock(&ctx, &evil, TTL).await.unwrap_err();
    assert_eq!(err.code(), codes::BAD_KEY);
    assert!(a.release_owned(&ctx, &evil).await.is_err());
    assert!(raw_get(&server.address(), &victim).is_some());
    assert!(a.release_owned(&ctx, &victim).await.unwrap());
}

#[tokio::test]
async fn base64_keys_and_prefix_allow_any_name() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(
        &server.address(),
        &[
            ("options.base64_keys", "true"),
            ("options.key_prefix", "ns:"),
        ],
    )
    .await;
    let b = open_lock(
        &server.address(),
        &[
            ("options.base64_keys", "true"),
            ("options.key_prefix", "ns:"),
        ],
    )
    .await;
    let ctx = Context::new();
    let name = unique_key("Zählwerk für Aufträge");
    assert!(a.try_acquire_lock(&ctx, &name, TTL).await.unwrap());
    assert!(!b.try_acquire_lock(&ctx, &name, TTL).await.unwrap());
    assert!(a.release_owned(&ctx, &name).await.unwrap());
    assert!(b.try_acquire_lock(&ctx, &name, TTL).await.unwrap());
    b.release_lock(&ctx, &name).await.unwrap();
}

#[tokio::test]
async fn connections_resolve_through_discovery() {
    let server = MemcachedServer::start().unwrap();
    let refs = References::new();
    let discovery = Arc::new(MemoryDiscovery::new());
    discovery
        .configure(&ConfigParams::from_tuples([
            ("locks.host", server.host().to_string()),
            ("locks.port", server.port().to_string()),
        ]))
        .unwrap();
    refs.put(
        Descriptor::new("pip-services", "discovery", "memory", "default", "1.0"),
        component!(discovery => dyn Discovery),
    );
    let lock = MemcachedLock::new();
    lock.configure(&ConfigParams::from_tuples([(
        "connection.discovery_key",
        "locks",
    )]))
    .unwrap();
    lock.set_references(&refs).unwrap();
    lock.open(&Context::new()).await.unwrap();
    assert_eq!(lock.servers(), vec![server.address()]);
    assert!(
        lock.try_acquire_lock(&Context::new(), &unique_key("disc"), TTL)
            .await
            .unwrap()
    );

    // Without a discovery component the same configuration fails with REF_ERROR.
    let lonely = MemcachedLock::new();
    lonely
        .configure(&ConfigParams::from_tuples([(
            "connection.discovery_key",
            "locks",
        )]))
        .unwrap();
    lonely.set_references(&References::new()).unwrap();
    let err = lonely.open(&Context::new()).await.unwrap_err();
    assert_eq!(err.code(), codes::REF_ERROR);
}

#[tokio::test]
async fn keys_spread_over_several_servers_and_live_where_picked() {
    let servers: Vec<MemcachedServer> = (0..3).map(|_| MemcachedServer::start().unwrap()).collect();
    for distribution in ["ketama", "modula"] {
        let uri = format!(
            "memcached://{}",
            servers
                .iter()
                .map(|s| s.address())
                .collect::<Vec<_>>()
                .join(",")
        );
        let lock = MemcachedLock::new();
        lock.configure(&ConfigParams::from_tuples([
            ("connection.uri", uri.as_str()),
            ("options.distribution", distribution),
        ]))
        .unwrap();
        lock.open(&Context::new()).await.unwrap();
        assert_eq!(lock.servers().len(), 3);
        let ctx = Context::new();
        let mut per_server = [0usize; 3];
        for i in 0..60 {
            let k = unique_key(&format!("spread{i}"));
            assert!(lock.try_acquire_lock(&ctx, &k, TTL).await.unwrap());
            let holders: Vec<usize> = (0..3)
                .filter(|&s| raw_get(&servers[s].address(), &k).is_some())
                .collect();
            assert_eq!(holders.len(), 1, "{k} stored on {holders:?}");
            per_server[holders[0]] += 1;
        }
        assert!(
            per_server.iter().all(|&n| n > 0),
            "{distribution}: {per_server:?}"
        );
        lock.close(&Context::new()).await.unwrap();
    }
}

#[tokio::test]
async fn modula_matches_the_go_clients_crc32_choice() {
    let servers: Vec<MemcachedServer> = (0..3).map(|_| MemcachedServer::start().unwrap()).collect();
    let list = servers.iter().map(|s| s.address()).collect::<Vec<_>>();
    let lock = MemcachedLock::new();
    lock.configure(&ConfigParams::from_tuples([
        ("connection.uri", list.join(",")),
        ("options.distribution", "modula".to_string()),
    ]))
    .unwrap();
    lock.open(&Context::new()).await.unwrap();
    for i in 0..30 {
        let k = unique_key(&format!("crc{i}"));
        assert!(
            lock.try_acquire_lock(&Context::new(), &k, TTL)
                .await
                .unwrap()
        );
        let expected = (crc32fast::hash(k.as_bytes()) % 3) as usize;
        assert!(
            raw_get(&list[expected], &k).is_some(),
            "{k} not on server {expected}"
        );
    }
}

#[tokio::test]
async fn killed_server_gives_errors_within_the_timeout_never_a_false_acquire() {
    let mut server = MemcachedServer::start().unwrap();
    let a = open_lock(
        &server.address(),
        &[("options.timeout", "500"), ("options.retries", "0")],
    )
    .await;
    let ctx = Context::new();
    server.stop();
    for i in 0..5 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            a.try_acquire_lock(&ctx, &unique_key(&format!("dead{i}")), TTL),
        )
        .await
        .expect("operation hung past its timeout");
        assert!(r.is_err(), "a dead server gave {r:?}");
    }
}

#[tokio::test]
async fn paused_server_times_out_and_recovers() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(&server.address(), &[("options.timeout", "300")]).await;
    let ctx = Context::new();
    let k = unique_key("paused");
    server.pause();
    let r = tokio::time::timeout(Duration::from_secs(5), a.try_acquire_lock(&ctx, &k, TTL))
        .await
        .expect("hung");
    let err = r.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::OutcomeUnknown | ErrorKind::Timeout),
        "{err:?}"
    );
    server.resume();
    // The write may have reached the server: the cleanup must have removed our item (or the
    // next acquire finds the key free once it runs). Either way, within a few seconds the key
    // is acquirable again by someone else, and never reported acquired by a stale answer.
    let b = open_lock(&server.address(), &[]).await;
    assert!(
        acquire_within(&b, &ctx, &k, TTL, 50).await,
        "the key stayed taken after an unknown-outcome acquire"
    );
    assert!(
        a.try_acquire_lock(&ctx, &unique_key("after"), TTL)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn restarted_server_loses_old_leases_and_takes_new_ones() {
    let mut server = MemcachedServer::start().unwrap();
    let a = open_lock(
        &server.address(),
        &[("options.reconnect", "0"), ("options.retry", "0")],
    )
    .await;
    let ctx = Context::new();
    let k = unique_key("restart");
    let old = a
        .try_acquire_lease(&ctx, &k, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    server.restart().unwrap();
    let b = open_lock(&server.address(), &[]).await;
    // After the restart the key is free; b takes it (its CAS restarts from 1 like a's did).
    assert!(
        b.try_acquire_lock(&ctx, &k, Duration::from_secs(30))
            .await
            .unwrap()
    );
    // a's release must not delete b's lock even if the CAS values coincide.
    let mut released = None;
    for _ in 0..20 {
        match a.release_owned(&ctx, &k).await {
            Ok(r) => {
                released = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(released, Some(false));
    assert!(
        raw_get(&server.address(), &k).is_some(),
        "a stale lease deleted b's lock"
    );
    let fresh = loop {
        match a.try_acquire_lease(&ctx, &unique_key("fresh"), TTL).await {
            Ok(Some(l)) => break l,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert!(
        fresh.fencing_token > old.fencing_token,
        "fencing token went backwards over a restart"
    );
}

#[tokio::test]
async fn cas_disabled_server_is_refused() {
    let server = MemcachedServer::builder().arg("-C").start().unwrap();
    let lock = MemcachedLock::new();
    lock.configure(&config_for(&server.address(), &[])).unwrap();
    let err = lock.open(&Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("-C"), "{err}");
}

#[tokio::test]
async fn connection_reset_through_the_proxy_recovers() {
    let (server, proxy) = server_behind_proxy().await;
    let a = open_lock(
        &proxy.address(),
        &[("options.reconnect", "0"), ("options.pool_size", "2")],
    )
    .await;
    let ctx = Context::new();
    let k = unique_key("reset");
    assert!(a.try_acquire_lock(&ctx, &k, TTL).await.unwrap());
    proxy.reset_all();
    // The broken connections are replaced; release (safe to retry) works again soon.
    let mut released = false;
    for _ in 0..30 {
        match a.release_owned(&ctx, &k).await {
            Ok(true) => {
                released = true;
                break;
            }
            Ok(false) => panic!("our own lock was reported not ours after a reset"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(released);
    assert!(raw_get(&server.address(), &k).is_none());
}

#[tokio::test]
async fn cancelled_acquire_leaves_no_orphan_lock() {
    let (server, proxy) = server_behind_proxy().await;
    let a = Arc::new(open_lock(&proxy.address(), &[]).await);
    let ctx = Context::new();
    let k = unique_key("cancel");
    proxy.set_delay(Duration::from_millis(300));
    // Drop the acquire while its reply is delayed: the item is stored, the caller never learns.
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        a.try_acquire_lock(&ctx, &k, Duration::from_secs(30)),
    )
    .await;
    assert!(r.is_err(), "the acquire should still have been waiting");
    proxy.set_delay(Duration::ZERO);
    // The owner-checked cleanup removes it well before the 30 s ttl.
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if raw_get(&server.address(), &k).is_none() {
            gone = true;
            break;
        }
    }
    assert!(gone, "a cancelled acquire left an orphan lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_one_pool_and_replies_never_cross() {
    let server = MemcachedServer::start().unwrap();
    let lock = Arc::new(open_lock(&server.address(), &[("options.pool_size", "2")]).await);
    let mut tasks = Vec::new();
    for t in 0..64 {
        let lock = lock.clone();
        tasks.push(tokio::spawn(async move {
            let ctx = Context::new();
            for i in 0..50 {
                let k = unique_key(&format!("cross-{t}-{i}"));
                let lease = lock
                    .try_acquire_lease(&ctx, &k, TTL)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(lease.key, k);
                let info = lock.inspect_lock(&ctx, &k).await.unwrap();
                assert!(info.held_by_me, "reply for another key arrived for {k}");
                assert!(lock.release_owned(&ctx, &k).await.unwrap());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(lock.held_count(), 0);
}

#[tokio::test]
async fn bad_options_are_rejected_naming_the_key() {
    for (k, v) in [
        ("options.timeout", "soon"),
        ("options.pool_size", "0"),
        ("options.max_expiration", "2592001"),
        ("options.max_key_size", "251"),
        ("options.distribution", "random"),
        ("options.protocol", "binary"),
        ("options.unknown_thing", "1"),
        ("options.base64_keys", "perhaps"),
    ] {
        let lock = MemcachedLock::new();
        let err = lock
            .configure(&ConfigParams::from_tuples([("host", "localhost"), (k, v)]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{k}={v}");
        assert!(err.to_string().contains(k), "{k}: {err}");
    }
}

#[tokio::test]
async fn server_status_reports_identity_and_evictions() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(&server.address(), &[]).await;
    let status = a.server_status(&Context::new()).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].address, server.address());
    assert_eq!(status[0].pid, Some(server.pid()));
    assert_eq!(status[0].evictions, Some(0));
    assert!(status[0].version.as_deref().unwrap().starts_with("1.6"));
    assert!(!status[0].down);
    assert!(status[0].error.is_none());
}

#[tokio::test]
async fn max_size_bounds_the_lease_table_and_expired_leases_make_room() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(&server.address(), &[("options.max_size", "3")]).await;
    let ctx = Context::new();
    for i in 0..3 {
        assert!(
            a.try_acquire_lock(
                &ctx,
                &unique_key(&format!("max{i}")),
                Duration::from_secs(1)
            )
            .await
            .unwrap()
        );
    }
    let err = a
        .try_acquire_lock(&ctx, &unique_key("max3"), TTL)
        .await
        .unwrap_err();
    assert_eq!(err.code(), lock_memcached::codes::TOO_MANY_LOCKS);
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    // Left to expire (never released): once memcached has certainly dropped them (ttl rounded
    // up, plus up to 2 s of placement by the server's clock, plus 1 s after the reply; not
    // + options.timeout), they no longer count.
    tokio::time::sleep(Duration::from_millis(5400)).await;
    assert!(
        a.try_acquire_lock(&ctx, &unique_key("max4"), TTL)
            .await
            .unwrap()
    );
    assert_eq!(a.held_count(), 1);
}

#[tokio::test]
async fn a_stale_lease_of_the_same_instance_cannot_release_its_newer_acquisition() {
    let server = MemcachedServer::start().unwrap();
    let a = open_lock(&server.address(), &[]).await;
    let ctx = Context::new();
    let k = unique_key("same-owner");
    let old = a
        .try_acquire_lease(&ctx, &k, Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    // Wait until the item expired, then the same instance acquires the key again.
    let newer = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(l) = a.try_acquire_lease(&ctx, &k, TTL).await.unwrap() {
            break l;
        }
    };
    assert_ne!(old.token, newer.token);
    // Releasing by the old lease (what a LockGuard does) leaves the new acquisition alone.
    assert!(!a.release_lease(&ctx, &old).await.unwrap());
    assert!(raw_get(&server.address(), &k).is_some());
    assert!(a.inspect_lock(&ctx, &k).await.unwrap().held_by_me);
    assert!(a.release_lease(&ctx, &newer).await.unwrap());
    assert!(raw_get(&server.address(), &k).is_none());
}

#[tokio::test]
async fn close_releases_held_locks_and_is_bounded_when_the_server_is_gone() {
    let server = MemcachedServer::start().unwrap();
    let ctx = Context::new();
    let a = open_lock(&server.address(), &[]).await;
    let k = unique_key("close");
    assert!(
        a.try_acquire_lock(&ctx, &k, Duration::from_secs(30))
            .await
            .unwrap()
    );
    a.close(&ctx).await.unwrap();
    assert!(
        raw_get(&server.address(), &k).is_none(),
        "close left the lock behind"
    );

    // With the server gone, closing an instance that holds many locks still ends within
    // about one options.timeout (not one per lock).
    let b = open_lock(
        &server.address(),
        &[("options.timeout", "300"), ("options.retries", "0")],
    )
    .await;
    for i in 0..20 {
        assert!(
            b.try_acquire_lock(
                &ctx,
                &unique_key(&format!("close{i}")),
                Duration::from_secs(30)
            )
            .await
            .unwrap()
        );
    }
    server.pause();
    let closed = tokio::time::timeout(Duration::from_secs(4), b.close(&ctx)).await;
    server.resume();
    assert!(closed.is_ok(), "close hung with a paused server");
    assert!(!b.is_open());
}

/// A burst of acquires on a lock whose idle connections were closed: the slots are connected
/// again and every acquire is served. A connect in progress used to count as a failed one,
/// so all but the first few callers were refused with "reconnecting is held back".
#[tokio::test]
async fn a_burst_of_acquires_after_the_idle_connections_were_closed_is_served() {
    let server = MemcachedServer::start().unwrap();
    let lock = Arc::new(open_lock(&server.address(), &[("options.idle", "200")]).await);
    tokio::time::sleep(Duration::from_millis(800)).await; // reaped
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..256 {
        let lock = lock.clone();
        tasks.spawn(async move {
            let key = unique_key(&format!("burst{i}"));
            lock.try_acquire_lock(&Context::new(), &key, TTL).await
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            Ok(true) => {}
            Ok(false) => failures.push("busy".to_string()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 256 failed, first: {:?}",
        failures.len(),
        failures.first()
    );
}
