//! `MemcachedLock` in classic text-protocol mode (`options.protocol=classic`, and `auto` on
//! an old server) against real memcached servers spawned by the testkit.

use std::sync::Arc;
use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, ErrorKind, Openable, codes};
use lock_core::Lock;
use lock_memcached::MemcachedLock;
use memcached_testkit::{FaultProxy, MemcachedServer};

mod support;
use support::{
    TTL, acquire_within, config_for, host_and_port, lease_of_free_key, open_classic, open_lock,
    raw_get, server_behind_proxy, unique_key,
};

fn rewrite_version_to(old: &'static str) -> memcached_testkit::ReplyRewriter {
    Arc::new(move |chunk: &[u8]| {
        String::from_utf8_lossy(chunk)
            .replace("VERSION 1.6.18", &format!("VERSION {old}"))
            .into_bytes()
    })
}

#[tokio::test]
async fn classic_mode_acquires_releases_and_reports_its_protocol() {
    let server = MemcachedServer::start().expect("memcached");
    let a = open_classic(&server.address(), &[]).await;
    let b = open_classic(&server.address(), &[]).await;
    let ctx = Context::with_trace_id("classic");
    let k = unique_key("basic");
    let lease = lease_of_free_key(&a, &ctx, &k).await;
    assert!(lease.fencing_token.is_some());
    let stored = raw_get(&server.address(), &k).expect("stored");
    assert!(stored.contains(&lease.token), "{stored}");
    assert!(!b.try_acquire_lock(&ctx, &k, TTL).await.expect("b"));
    // Inspection in classic mode: held, by whom, but no remaining ttl (gets has none).
    let info = b.inspect_lock(&ctx, &k).await.expect("inspect");
    assert!(info.held && !info.held_by_me, "{info:?}");
    assert_eq!(info.remaining_ttl, None);
    assert!(a.inspect_lock(&ctx, &k).await.expect("inspect").held_by_me);
    // Non-owners change nothing.
    assert!(!b.release_owned(&ctx, &k).await.expect("b release"));
    assert!(
        b.extend_lease(&ctx, &k, TTL)
            .await
            .expect("b extend")
            .is_none()
    );
    assert!(raw_get(&server.address(), &k).is_some());
    // Extend keeps the fencing token and the value.
    let extended = a
        .extend_lease(&ctx, &k, Duration::from_secs(10))
        .await
        .expect("extend")
        .expect("still ours");
    assert_eq!(extended.fencing_token, lease.fencing_token);
    assert_eq!(
        raw_get(&server.address(), &k).as_deref(),
        Some(stored.as_str())
    );
    assert!(a.release_owned(&ctx, &k).await.expect("release"));
    assert_eq!(raw_get(&server.address(), &k), None);
    assert!(
        b.try_acquire_lock(&ctx, &k, TTL)
            .await
            .expect("b after release")
    );

    let status = a.server_status(&ctx).await.expect("status");
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].protocol, "classic");
    assert_eq!(status[0].pid, Some(server.pid()));
    assert_eq!(status[0].evictions, Some(0));
    assert_eq!(status[0].version.as_deref(), Some("1.6.18"));
    assert!(status[0].error.is_none(), "{:?}", status[0].error);
    a.close(&ctx).await.expect("close");
    b.close(&ctx).await.expect("close");
}

#[tokio::test]
async fn release_after_expiry_never_deletes_the_next_holders_lock() {
    let server = MemcachedServer::start().expect("memcached");
    let a = open_classic(&server.address(), &[]).await;
    let b = open_classic(&server.address(), &[]).await;
    let ctx = Context::new();
    let k = unique_key("stale");
    assert!(
        a.try_acquire_lock(&ctx, &k, Duration::from_secs(1))
            .await
            .expect("a")
    );
    // Wait until memcached expired a's item (its clock ticks once a second).
    assert!(
        acquire_within(&b, &ctx, &k, Duration::from_secs(10), 40).await,
        "a's lock never expired"
    );
    let held_by_b = raw_get(&server.address(), &k).expect("b's item");
    // a's stale release and extend race b's extend: b's item survives all of them.
    let (ra, ea, eb) = tokio::join!(
        a.release_owned(&ctx, &k),
        a.extend_lease(&ctx, &k, Duration::from_secs(10)),
        b.extend_lease(&ctx, &k, Duration::from_secs(10)),
    );
    assert!(!ra.expect("a release"), "a stale holder released");
    assert!(ea.expect("a extend").is_none(), "a stale holder extended");
    assert!(eb.expect("b extend").is_some(), "b lost its lock");
    assert_eq!(
        raw_get(&server.address(), &k).as_deref(),
        Some(held_by_b.as_str())
    );
    assert!(b.release_owned(&ctx, &k).await.expect("b release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_races_with_acquirers_never_free_someone_elses_lock() {
    let server = MemcachedServer::start().expect("memcached");
    let owners: Vec<Arc<MemcachedLock>> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(Arc::new(open_classic(&server.address(), &[]).await));
        }
        v
    };
    let k = unique_key("race");
    let holders = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, owner) in owners.iter().enumerate() {
        let owner = owner.clone();
        let k = k.clone();
        let holders = holders.clone();
        tasks.push(tokio::spawn(async move {
            let ctx = Context::new();
            let mut acquired = 0;
            for _ in 0..40 {
                if owner
                    .try_acquire_lock(&ctx, &k, TTL)
                    .await
                    .expect("acquire")
                {
                    acquired += 1;
                    let now = holders.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(now, 0, "owner {i} holds the lock together with another");
                    tokio::task::yield_now().await;
                    holders.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    // Release twice at once: exactly one of them releases.
                    let (r1, r2) =
                        tokio::join!(owner.release_owned(&ctx, &k), owner.release_owned(&ctx, &k));
                    let released = [r1.expect("release"), r2.expect("release")];
                    assert_eq!(released.iter().filter(|r| **r).count(), 1, "{released:?}");
                }
                tokio::task::yield_now().await;
            }
            acquired
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    assert!(total > 0, "nobody ever acquired");
    assert_eq!(
        raw_get(&server.address(), &k),
        None,
        "the last release freed the key"
    );
}

#[tokio::test]
async fn a_timed_out_acquire_never_leads_to_a_wrong_result_on_the_pool() {
    let (server, proxy) = server_behind_proxy().await;
    let other = open_classic(&server.address(), &[]).await;
    let a = open_classic(
        &proxy.address(),
        &[
            ("options.pool_size", "1"),
            ("options.timeout", "300"),
            ("options.reconnect", "0"),
        ],
    )
    .await;
    let ctx = Context::new();
    let held = unique_key("held");
    assert!(
        other
            .try_acquire_lock(&ctx, &held, Duration::from_secs(30))
            .await
            .expect("other")
    );

    for fault in ["delay", "stall"] {
        let free = unique_key("free");
        match fault {
            "delay" => proxy.set_delay(Duration::from_millis(700)),
            _ => proxy.stall(),
        }
        let err = a
            .try_acquire_lock(&ctx, &free, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::OutcomeUnknown | ErrorKind::Timeout),
            "{fault}: {err}"
        );
        proxy.set_delay(Duration::ZERO);
        proxy.unstall();
        // The late reply of the timed-out request must never be read as this one's.
        assert!(
            !a.try_acquire_lock(&ctx, &held, TTL).await.expect("held"),
            "{fault}: someone else's lock reported as acquired"
        );
        assert!(
            !a.inspect_lock(&ctx, &held)
                .await
                .expect("inspect")
                .held_by_me,
            "{fault}"
        );
        let next = unique_key("next");
        assert!(
            a.try_acquire_lock(&ctx, &next, TTL).await.expect("next"),
            "{fault}"
        );
        assert!(
            a.release_owned(&ctx, &next).await.expect("release next"),
            "{fault}"
        );
    }
    let status = a.server_status(&ctx).await.expect("status");
    assert!(status[0].live_connections <= 2, "{:?}", status[0]);
}

#[tokio::test]
async fn auto_picks_classic_for_an_old_server_and_meta_otherwise() {
    let (server, proxy) = server_behind_proxy().await;
    proxy.set_reply_rewriter(Some(rewrite_version_to("1.5.22")));
    let ctx = Context::new();

    let old = open_lock(&proxy.address(), &[]).await; // auto is the default
    let status = old.server_status(&ctx).await.expect("status");
    assert_eq!(status[0].protocol, "classic");
    assert_eq!(status[0].version.as_deref(), Some("1.5.22"));
    let k = unique_key("auto");
    assert!(old.try_acquire_lock(&ctx, &k, TTL).await.expect("acquire"));
    assert!(old.release_owned(&ctx, &k).await.expect("release"));

    let new = open_lock(&server.address(), &[("options.protocol", "auto")]).await;
    let status = new.server_status(&ctx).await.expect("status");
    assert_eq!(status[0].protocol, "meta");

    // 1.6.12 still has the broken conditional delete: classic.
    let proxy2 = FaultProxy::start(server.socket_addr())
        .await
        .expect("proxy");
    proxy2.set_reply_rewriter(Some(rewrite_version_to("1.6.12")));
    let almost = open_lock(&proxy2.address(), &[]).await;
    assert_eq!(
        almost.server_status(&ctx).await.expect("status")[0].protocol,
        "classic"
    );

    // meta on an old server is refused; classic on a new one is honoured.
    let meta = MemcachedLock::new();
    meta.configure(&config_for(
        &proxy.address(),
        &[("options.protocol", "meta")],
    ))
    .expect("configure");
    let err = meta.open(&ctx).await.unwrap_err();
    assert_eq!(err.code(), codes::UNSUPPORTED, "{err}");
    let classic = open_classic(&server.address(), &[]).await;
    assert_eq!(
        classic.server_status(&ctx).await.expect("status")[0].protocol,
        "classic"
    );
}

#[tokio::test]
async fn mixed_cluster_speaks_each_servers_protocol() {
    let old_server = MemcachedServer::start().expect("memcached");
    let new_server = MemcachedServer::start().expect("memcached");
    let proxy = FaultProxy::start(old_server.socket_addr())
        .await
        .expect("proxy");
    proxy.set_reply_rewriter(Some(rewrite_version_to("1.4.39")));
    let (old_address, new_address) = (proxy.address(), new_server.address());
    let (h1, p1) = host_and_port(&old_address);
    let (h2, p2) = host_and_port(&new_address);
    let lock = MemcachedLock::new();
    lock.configure(&ConfigParams::from_tuples([
        ("connections.old.host", h1),
        ("connections.old.port", p1),
        ("connections.new.host", h2),
        ("connections.new.port", p2),
    ]))
    .expect("configure");
    let ctx = Context::new();
    lock.open(&ctx).await.expect("open");
    let mut protocols: Vec<&str> = lock
        .server_status(&ctx)
        .await
        .expect("status")
        .iter()
        .map(|s| s.protocol)
        .collect();
    protocols.sort_unstable();
    assert_eq!(protocols, ["classic", "meta"]);
    for i in 0..20 {
        let k = unique_key(&format!("mixed{i}"));
        assert!(lock.try_acquire_lock(&ctx, &k, TTL).await.expect("acquire"));
        assert!(!lock.try_acquire_lock(&ctx, &k, TTL).await.expect("again"));
        assert!(lock.release_owned(&ctx, &k).await.expect("release"));
    }
}
