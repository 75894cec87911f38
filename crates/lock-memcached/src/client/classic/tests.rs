//! Classic-protocol client tests against real memcached processes (spawned by
//! `memcached-testkit`), some through its fault proxy.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use commons::{Context, ErrorKind, codes};
use memcached_testkit::{FaultProxy, MemcachedServer};

use crate::client::test_support::{
    ClassicServer, add, cas_of, ctx, delete, get, lock_cycle, opts, raw_get, start,
};
use crate::client::{ClientOptions, Reply, Request};

async fn run(server: &ClassicServer, req: Request) -> Reply {
    server
        .execute(&ctx(), req, false, None)
        .await
        .expect("request failed")
        .reply
}

/// A classic `add` on a separate socket (another client holding a lock).
fn raw_add(address: &str, k: &str, data: &str) {
    let mut s = std::net::TcpStream::connect(address).expect("connect");
    s.write_all(format!("add {k} 0 30 {}\r\n{data}\r\n", data.len()).as_bytes())
        .expect("write");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("read");
    assert_eq!(line, "STORED\r\n");
}

/// A server where another client holds `a` (AAA) and `b` (BBB), reached through a fault
/// proxy.
async fn held_a_and_b_behind_a_proxy() -> (MemcachedServer, FaultProxy) {
    let mc = start();
    raw_add(&mc.address(), "a", "AAA");
    raw_add(&mc.address(), "b", "BBB");
    let proxy = FaultProxy::start(mc.socket_addr()).await.expect("proxy");
    (mc, proxy)
}

#[tokio::test]
async fn classic_round_trips_translate_meta_requests() {
    let mc = start();
    let server = ClassicServer::new(mc.address(), opts());
    let identity = server.check(&ctx()).await.expect("check");
    assert_eq!(identity.pid, mc.pid());
    assert_eq!(server.health().version().as_deref(), Some("1.6.18"));

    let cas2 = lock_cycle(&server, &mc.address(), |ttl| ttl.is_none()).await;
    let cas3 = cas_of(&run(&server, add("lk", b"new", 5)).await);
    assert!(cas3 > cas2);
    assert_eq!(raw_get(&mc.address(), "lk").as_deref(), Some(&b"new"[..]));

    assert!(matches!(
        run(&server, Request::Version).await,
        Reply::Version(v) if v == "1.6.18"
    ));
    match run(&server, Request::Stats).await {
        Reply::Stats(pairs) => {
            assert!(
                pairs
                    .iter()
                    .any(|(k, v)| k == "pid" && *v == mc.pid().to_string())
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(server.live_connections() >= 1);
    assert!(server.live_connections() <= 2, "pool_size bounds the pool");
}

#[tokio::test]
async fn add_reports_success_only_for_our_own_value() {
    let mc = start();
    raw_add(&mc.address(), "held", "theirs");
    let proxy = FaultProxy::start(mc.socket_addr()).await.expect("proxy");
    // memcache-async reads anything but NOT_STORED as stored: make the server "say" STORED.
    proxy.set_reply_rewriter(Some(Arc::new(|chunk: &[u8]| {
        String::from_utf8_lossy(chunk)
            .replace("NOT_STORED", "STORED")
            .into_bytes()
    })));
    let server = ClassicServer::new(proxy.address(), opts());
    assert!(matches!(
        run(&server, add("held", b"mine", 5)).await,
        Reply::Ns(_)
    ));
    assert_eq!(
        raw_get(&mc.address(), "held").as_deref(),
        Some(&b"theirs"[..])
    );
}

#[tokio::test]
async fn a_timed_out_request_never_shifts_the_next_reply() {
    let (_mc, proxy) = held_a_and_b_behind_a_proxy().await;
    let options = ClientOptions {
        pool_size: 1,
        timeout: Duration::from_millis(300),
        ..opts()
    };
    let server = ClassicServer::new(proxy.address(), options);
    server.check(&ctx()).await.expect("check");

    // Delayed reply: the request was sent, its outcome is unknown, the connection is gone.
    proxy.set_delay(Duration::from_millis(700));
    let err = server
        .execute(&ctx(), get("a"), false, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    assert_eq!(err.trace_id(), Some("client-test"));
    assert_eq!(server.live_connections(), 0);
    proxy.set_delay(Duration::ZERO);
    match run(&server, get("b")).await {
        Reply::Va { data, .. } => assert_eq!(data, b"BBB"),
        other => panic!("{other:?}"),
    }
    // A held lock is still reported as held (a reused connection would have read a stale reply).
    assert!(matches!(
        run(&server, add("a", b"x", 5)).await,
        Reply::Ns(_)
    ));

    // Stalled proxy: the same. A request queued behind it gets the connection slot only
    // after the first one gave up; its new connection's probe stalls too, and it times out
    // without having sent anything.
    proxy.stall();
    let server = Arc::new(server);
    let first = {
        let server = server.clone();
        tokio::spawn(async move { server.execute(&ctx(), get("a"), false, None).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = server
        .execute(&ctx(), get("b"), false, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::TIMEOUT, "{err}");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("not sent"), "{err}");
    let err = first.await.expect("task").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    proxy.unstall();
    match run(&server, get("b")).await {
        Reply::Va { data, .. } => assert_eq!(data, b"BBB"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_cancelled_request_discards_its_connection() {
    let (_mc, proxy) = held_a_and_b_behind_a_proxy().await;
    let server = ClassicServer::new(
        proxy.address(),
        ClientOptions {
            pool_size: 1,
            ..opts()
        },
    );
    server.check(&ctx()).await.expect("check");
    assert_eq!(server.live_connections(), 1);
    proxy.set_delay(Duration::from_millis(300));
    let dropped = tokio::time::timeout(
        Duration::from_millis(50),
        server.execute(&ctx(), get("a"), false, None),
    )
    .await;
    assert!(dropped.is_err(), "the caller gave up");
    assert_eq!(server.live_connections(), 0);
    proxy.set_delay(Duration::ZERO);
    match run(&server, get("b")).await {
        Reply::Va { data, .. } => assert_eq!(data, b"BBB"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_server_is_not_reused() {
    let mut mc = start();
    let server = ClassicServer::new(
        mc.address(),
        ClientOptions {
            pool_size: 1,
            ..opts()
        },
    );
    let before = server.check(&ctx()).await.expect("check");
    // The restart closes the idle connection (FIN); writing to it would still succeed.
    mc.restart().expect("restart");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Not idempotent (no retry after a send): it must go out on a fresh connection.
    let executed = server
        .execute(&ctx(), add("k", b"v", 5), false, None)
        .await
        .expect("a fresh connection is used");
    assert!(matches!(executed.reply, Reply::Hd(_)));
    assert_ne!(executed.identity, before);
    assert_eq!(server.health().identity_changes(), 1);
}

#[tokio::test]
async fn another_boot_of_the_server_is_refused_before_sending() {
    let mc = start();
    let server = ClassicServer::new(mc.address(), opts());
    let mut identity = server.check(&ctx()).await.expect("check");
    identity.boot_marker ^= 1;
    let err = server
        .execute(&ctx(), delete("k", 1), true, Some(identity))
        .await
        .unwrap_err();
    assert_eq!(err.code(), crate::codes::SERVER_RESTARTED, "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidState);
}

#[tokio::test]
async fn bad_requests_and_server_errors_are_errors() {
    let mc = start();
    let server = ClassicServer::new(
        mc.address(),
        ClientOptions {
            max_value: 8,
            ..opts()
        },
    );
    let err = server
        .execute(&ctx(), add("k", b"123456789", 5), false, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), crate::codes::VALUE_TOO_LARGE);
    let err = server
        .execute(&ctx(), add("bad key", b"1", 5), false, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::BAD_KEY);
    // A value larger than the read bound (max_value, but never below the 64 bytes the boot
    // marker needs) in a reply is refused before it is read.
    raw_add(&mc.address(), "big", &"0123456789abcdef".repeat(5));
    let err = server
        .execute(&ctx(), get("big"), false, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::PROTOCOL_ERROR, "{err}");
    assert_eq!(server.live_connections(), 0);
    // Unreachable: a connection error naming the server.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = free.local_addr().expect("addr").to_string();
    drop(free);
    let server = ClassicServer::new(dead.clone(), opts());
    let err = server.check(&ctx()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.message().contains(&dead), "{err}");
}

/// The lock spawns client calls on tokio tasks: the futures must be `Send`.
#[allow(dead_code)]
fn classic_futures_are_send(server: Arc<ClassicServer>, ctx: Context) {
    fn is_send<T: Send>(_: T) {}
    is_send(async move { server.execute(&ctx, get("k"), true, None).await });
}
