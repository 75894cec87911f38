//! Client tests against real memcached processes (spawned by `memcached-testkit`).

use std::sync::Arc;
use std::time::Duration;

use commons::{Context, Error, ErrorKind, codes};
use memcached_testkit::{FaultProxy, MemcachedServer};

use crate::client::meta::Connection;
use crate::client::test_support::{
    MetaServer as Server, add, ctx, get, key, lock_cycle, opts, peer, start,
};
use crate::client::{
    Call, ClientOptions, Cluster, Endpoint, KeyDistribution as Distribution, ProtocolMode, Reply,
    Request, SetMode, WireKey,
};

/// Every server must answer at open (sharded mode).
const ALL: usize = usize::MAX;

async fn run(server: &Server, req: Request) -> Reply {
    server
        .execute(&ctx(), req, true, None)
        .await
        .expect("request failed")
        .reply
}

async fn run_endpoint(endpoint: &Endpoint, req: Request) -> Reply {
    endpoint
        .call(&ctx(), req, &Call::repeatable())
        .await
        .expect("request failed")
        .reply
}

#[tokio::test]
async fn meta_round_trips() {
    let mc = start();
    let server = Server::new(mc.address(), opts());
    lock_cycle(&server, &mc.address(), |ttl| matches!(ttl, Some(1..=5))).await;
    // Base64 keys carry arbitrary bytes: "lock\n name" encoded.
    let b64 = WireKey::new_unchecked(b"bG9jawogbmFtZQ==".to_vec(), true);
    let set = Request::Set {
        key: b64.clone(),
        data: b"v".to_vec().into(),
        mode: SetMode::Add,
        ttl_secs: 5,
    };
    assert!(matches!(run(&server, set).await, Reply::Hd(_)));
    assert!(
        matches!(run(&server, Request::Get { key: b64 }).await, Reply::Va { data, .. } if data == b"v")
    );
    assert_eq!(run(&server, Request::Noop).await, Reply::Mn);
    // The probe recorded version, identity and evictions.
    assert_eq!(server.health().version().as_deref(), Some("1.6.18"));
    assert_eq!(server.health().identity().map(|i| i.pid), Some(mc.pid()));
    assert_eq!(server.health().evictions(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_share_one_connection_and_replies_never_cross() {
    let mc = start();
    let server = Arc::new(Server::new(
        mc.address(),
        ClientOptions {
            pool_size: 1,
            ..opts()
        },
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..64 {
        let server = server.clone();
        tasks.spawn(async move {
            for round in 0..20 {
                let k = format!("k{t}");
                let value = format!("value-{t}-{round}");
                let set = Request::Set {
                    key: key(&k),
                    data: value.clone().into_bytes().into(),
                    mode: SetMode::Add,
                    ttl_secs: 60,
                };
                let Reply::Hd(f) = run(&server, set).await else {
                    panic!("add {k}")
                };
                // Callers that give up mid-flight must not shift anyone's reply.
                if round % 3 == 0 {
                    let c = ctx();
                    let abandoned = server.execute(&c, get(&k), true, None);
                    let _ = tokio::time::timeout(Duration::from_micros(50), abandoned).await;
                }
                match run(&server, get(&k)).await {
                    Reply::Va { data, .. } => assert_eq!(data, value.as_bytes(), "{k}"),
                    other => panic!("{k}: {other:?}"),
                }
                let del = Request::Delete {
                    key: key(&k),
                    cas: f.cas.unwrap_or(0),
                };
                assert!(matches!(run(&server, del).await, Reply::Hd(_)), "{k}");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("caller task");
    }
    assert_eq!(server.live_connections(), 1);
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..300 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 3 s");
}

/// One plaintext connection to `mc`, without a pool or a probe.
async fn connect(mc: &MemcachedServer) -> Connection {
    Connection::open(
        &peer(&mc.address()),
        Duration::from_secs(3),
        1024 * 1024,
        None,
        None,
    )
    .await
    .expect("connect")
}

#[tokio::test]
async fn a_dropped_caller_does_not_shift_replies_and_unsent_requests_are_never_written() {
    let mc = start();
    let conn = connect(&mc).await;
    assert!(matches!(
        conn.call(add("a", b"value-a", 60)).await,
        Ok(Reply::Hd(_))
    ));
    assert!(matches!(
        conn.call(add("b", b"value-b", 60)).await,
        Ok(Reply::Hd(_))
    ));

    // Abandoned before the task ran (single-threaded runtime): guaranteed not written.
    let never = conn.send(add("never", b"x", 60)).expect("send");
    assert!(!never.abandon(), "nothing was sent");
    drop(never);

    mc.pause();
    let first = conn.send(get("a")).expect("send");
    let mut second = conn.send(get("b")).expect("send");
    wait_until(|| first.is_sent() && second.is_sent()).await;
    assert!(first.abandon(), "a written request cannot be taken back");
    drop(first);
    mc.resume();
    let reply = tokio::time::timeout(Duration::from_secs(3), second.wait())
        .await
        .expect("reply in time")
        .expect("reply");
    assert!(
        matches!(reply, Reply::Va { ref data, .. } if data == b"value-b"),
        "{reply:?}"
    );
    // Still in step afterwards.
    assert!(matches!(conn.call(get("a")).await, Ok(Reply::Va { data, .. }) if data == b"value-a"));
    assert_eq!(conn.call(get("never")).await.expect("get"), Reply::En);
    assert!(conn.is_alive());
}

#[tokio::test]
async fn the_connection_keeps_each_requests_deadline() {
    use crate::client::meta::Answer;
    use crate::client::{ServerIdentity, late_channel};
    use tokio::time::Instant;

    let mc = start();
    let conn = connect(&mc).await;
    assert!(matches!(
        conn.call(add("kept", b"value", 60)).await,
        Ok(Reply::Hd(_))
    ));

    // Past its deadline before the task ran: answered at once, never written.
    let mut stale = conn
        .send_with_late(Arc::new(add("stale", b"x", 60)), None, Some(Instant::now()))
        .expect("send");
    assert!(matches!(
        stale.answer().await,
        Answer::Expired { sent: false }
    ));

    // Written to a stopped server: expired at its deadline; the reply, when the server
    // answers, goes to the late receiver.
    mc.pause();
    let (late, late_reply) = late_channel();
    late.attach(ServerIdentity {
        pid: 1,
        boot_epoch: 1,
        boot_marker: 1,
    });
    let started = Instant::now();
    let mut written = conn
        .send_with_late(
            Arc::new(get("kept")),
            Some(late),
            Some(started + Duration::from_millis(200)),
        )
        .expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(3), written.answer())
        .await
        .expect("answered by its deadline, not by the reply");
    assert!(
        matches!(answer, Answer::Expired { sent: true }),
        "{answer:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    drop(written);
    mc.resume();
    let late = tokio::time::timeout(Duration::from_secs(3), late_reply.wait())
        .await
        .expect("the late reply arrives")
        .expect("a late reply")
        .expect("not an error");
    assert!(
        matches!(late.0, Reply::Va { ref data, .. } if data == b"value"),
        "{late:?}"
    );
    // The stale request was never written, and the stream is still in step.
    assert_eq!(conn.call(get("stale")).await.expect("get"), Reply::En);
    assert!(conn.is_alive());
}

#[tokio::test]
async fn timeouts_are_classified() {
    let mc = start();
    let options = ClientOptions {
        timeout: Duration::from_millis(300),
        pool_size: 1,
        ..opts()
    };
    let server = Server::new(mc.address(), options.clone());
    run(&server, Request::Noop).await;
    mc.pause();
    // Written, no reply: unknown outcome, not retryable.
    let err = server
        .execute(&ctx(), add("t", b"x", 60), false, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    assert_eq!(err.code(), codes::OUTCOME_UNKNOWN);
    assert!(!err.is_retryable());
    assert_eq!(err.trace_id(), Some("client-test"));
    // A fresh server object must connect and probe first: nothing of the request is sent.
    let fresh = Server::new(mc.address(), options);
    let err = fresh
        .execute(&ctx(), get("t"), true, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.code(), codes::TIMEOUT);
    assert!(err.is_retryable());
    mc.resume();
    // Both recover on new connections.
    run(&server, Request::Noop).await;
    run(&fresh, Request::Noop).await;
}

#[tokio::test]
async fn a_broken_connection_is_replaced_at_once_but_a_failed_connect_waits_for_reconnect() {
    let mc = start();
    let proxy = FaultProxy::start(mc.socket_addr()).await.expect("proxy");
    let options = ClientOptions {
        pool_size: 1,
        retries: 0,
        reconnect: Duration::from_secs(2),
        ..opts()
    };
    let server = Server::new(proxy.address(), options);
    run(&server, Request::Noop).await;
    wait_until(|| proxy.connection_count() == 1).await;
    // A connection that worked and then broke is replaced at once.
    proxy.reset_all();
    wait_until(|| server.live_connections() == 0).await;
    assert_eq!(run(&server, get("k")).await, Reply::En);
    assert_eq!(server.live_connections(), 1);

    // A failed connect (the probe meets a closed connection) holds the slot back.
    proxy.drop_new_connections(true);
    proxy.reset_all();
    wait_until(|| server.live_connections() == 0).await;
    assert!(server.execute(&ctx(), get("k"), true, None).await.is_err());
    proxy.drop_new_connections(false);
    let err = server
        .execute(&ctx(), get("k"), true, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::CONNECTION_FAILED, "held back: {err}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(run(&server, get("k")).await, Reply::En);
    assert_eq!(server.live_connections(), 1);
}

#[tokio::test]
async fn server_marked_down_after_failures_then_retried_and_restart_changes_identity() {
    let mut mc = start();
    let options = ClientOptions {
        retries: 0,
        failures: 3,
        retry: Duration::from_secs(2),
        ..opts()
    };
    let server = Server::new(mc.address(), options);
    run(&server, Request::Noop).await;
    let before = server.health().identity().expect("identity");
    assert_eq!(before.pid, mc.pid());
    mc.stop();
    for i in 0..3 {
        let err = server
            .execute(&ctx(), get("k"), true, None)
            .await
            .unwrap_err();
        assert_ne!(err.code(), codes::SERVER_DOWN, "failure {i}: {err}");
    }
    assert!(server.health().is_down());
    let err = server
        .execute(&ctx(), get("k"), true, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::SERVER_DOWN, "{err}");
    assert_eq!(err.kind(), ErrorKind::Connection);
    mc.restart().expect("restart");
    // Still down until `retry` passed, even though the server is back.
    assert_eq!(
        server
            .execute(&ctx(), get("k"), true, None)
            .await
            .unwrap_err()
            .code(),
        codes::SERVER_DOWN
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!server.health().is_down());
    let executed = server
        .execute(&ctx(), get("k"), true, None)
        .await
        .expect("after retry");
    let after = server.health().identity().expect("identity");
    assert_eq!(executed.identity, after);
    assert_ne!(before, after);
    assert_eq!(after.pid, mc.pid());
    assert_eq!(server.health().identity_changes(), 1);
    // A lease from the old boot is refused without sending anything.
    let err = server
        .execute(&ctx(), get("k"), true, Some(before))
        .await
        .unwrap_err();
    assert_eq!(err.code(), crate::codes::SERVER_RESTARTED);
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(
        server
            .execute(&ctx(), get("k"), true, Some(after))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn restart_while_up_is_seen_on_reconnect() {
    let mut mc = start();
    let server = Server::new(mc.address(), opts());
    let first = server
        .execute(&ctx(), Request::Noop, true, None)
        .await
        .expect("noop")
        .identity;
    mc.restart().expect("restart");
    // The old connections break; the idempotent request is retried on a new one.
    let second = server
        .execute(&ctx(), Request::Noop, true, None)
        .await
        .expect("noop")
        .identity;
    assert_ne!(first, second);
    assert_eq!(server.health().identity(), Some(second));
}

#[tokio::test]
async fn idle_connections_are_closed_and_recreated() {
    let mc = start();
    let server = Server::new(
        mc.address(),
        ClientOptions {
            idle: Duration::from_millis(200),
            pool_size: 1,
            ..opts()
        },
    );
    run(&server, Request::Noop).await;
    assert_eq!(server.live_connections(), 1);
    wait_until(|| server.live_connections() == 0).await;
    run(&server, Request::Noop).await;
    assert_eq!(server.live_connections(), 1);
}

#[tokio::test]
async fn cas_disabled_server_answers_c0() {
    let mc = MemcachedServer::builder()
        .arg("-C")
        .start()
        .expect("memcached -C");
    let server = Server::new(mc.address(), opts());
    match run(&server, add("lk", b"tok", 5)).await {
        Reply::Hd(flags) => assert_eq!(flags.cas, Some(0), "the lock must refuse this server"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn error_replies_are_reported_and_poisoned_streams_replaced() {
    let mc = start();
    let server = Server::new(
        mc.address(),
        ClientOptions {
            max_value: 4 << 20,
            ..opts()
        },
    );
    // SERVER_ERROR (item larger than the server's 1 MiB limit): the connection stays usable.
    let big = add("big", &vec![b'x'; 2 << 20], 5);
    let err = server.execute(&ctx(), big, true, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert_eq!(err.code(), codes::SERVER_ERROR, "{err}");
    assert!(err.message().contains("too large"), "{err}");
    assert_eq!(run(&server, get("big")).await, Reply::En);
    // CLIENT_ERROR (an undecodable base64 key): the stream is abandoned, a new one works.
    let bad = Request::Get {
        key: WireKey::new_unchecked(b"!!!!".to_vec(), true),
    };
    let err = server.execute(&ctx(), bad, true, None).await.unwrap_err();
    assert_eq!(err.code(), codes::SERVER_ERROR, "{err}");
    assert!(err.message().contains("CLIENT_ERROR"), "{err}");
    assert_eq!(run(&server, get("big")).await, Reply::En);
    // Values above options.max_value are refused before anything is sent.
    let small = Server::new(
        mc.address(),
        ClientOptions {
            max_value: 10,
            ..opts()
        },
    );
    let err = small
        .execute(&ctx(), add("v", &[b'x'; 11], 5), true, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    // A key that could inject a command is never written.
    let inject = Request::Get {
        key: key("a\r\nflush_all"),
    };
    let err = server
        .execute(&ctx(), inject, true, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::BAD_KEY);
}

#[tokio::test]
async fn garbage_from_the_server_is_a_protocol_error() {
    let mc = start();
    let proxy = FaultProxy::start(mc.socket_addr()).await.expect("proxy");
    let server = Server::new(
        proxy.address(),
        ClientOptions {
            retries: 0,
            ..opts()
        },
    );
    run(&server, Request::Noop).await;
    proxy.set_reply_rewriter(Some(Arc::new(|chunk: &[u8]| {
        String::from_utf8_lossy(chunk)
            .replace("HD", "HX")
            .into_bytes()
    })));
    let err = server
        .execute(&ctx(), add("g", b"x", 5), false, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::PROTOCOL_ERROR, "{err}");
    proxy.set_reply_rewriter(None);
    assert!(matches!(run(&server, get("g")).await, Reply::Va { .. }));
}

#[tokio::test]
async fn old_servers_are_refused_and_unreachable_ones_named() {
    let mc = start();
    let proxy = FaultProxy::start(mc.socket_addr()).await.expect("proxy");
    proxy.set_reply_rewriter(Some(Arc::new(|chunk: &[u8]| {
        String::from_utf8_lossy(chunk)
            .replace("VERSION 1.6.18", "VERSION 1.6.12")
            .into_bytes()
    })));
    let err = Cluster::connect(
        &ctx(),
        vec![proxy.address()],
        opts(),
        ProtocolMode::Meta,
        ALL,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert_eq!(err.code(), codes::UNSUPPORTED);
    assert!(
        err.message().contains(&proxy.address()) && err.message().contains("1.6.12"),
        "{err}"
    );

    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = free.local_addr().expect("addr").to_string();
    drop(free);
    let err = Cluster::connect(
        &ctx(),
        vec![mc.address(), dead.clone()],
        opts(),
        ProtocolMode::Meta,
        ALL,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.message().contains(&dead), "{err}");
    assert_eq!(err.trace_id(), Some("client-test"));

    let err = Cluster::connect(&ctx(), vec![], opts(), ProtocolMode::Meta, ALL)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::NO_CONNECTION);
}

#[tokio::test]
async fn cluster_spreads_keys_and_each_key_lives_on_its_server() {
    let servers: Vec<MemcachedServer> = (0..3).map(|_| start()).collect();
    let addresses: Vec<String> = servers.iter().map(|s| s.address()).collect();
    for distribution in [Distribution::Ketama, Distribution::Modula] {
        let cluster = Cluster::connect(
            &ctx(),
            addresses.clone(),
            ClientOptions {
                distribution,
                ..opts()
            },
            ProtocolMode::Meta,
            ALL,
        )
        .await
        .expect("connect");
        let mut counts = [0usize; 3];
        for i in 0..90 {
            let k = format!("{distribution:?}-{i}");
            let server = cluster.server_for(&key(&k));
            let index = cluster
                .servers()
                .iter()
                .position(|s| Arc::ptr_eq(s, server))
                .expect("a cluster server");
            if distribution == Distribution::Modula {
                assert_eq!(index, (crc32fast::hash(k.as_bytes()) % 3) as usize);
            }
            counts[index] += 1;
            assert!(matches!(
                run_endpoint(server, add(&k, b"v", 60)).await,
                Reply::Hd(_)
            ));
            for (j, other) in cluster.servers().iter().enumerate() {
                let found = !matches!(run_endpoint(other, get(&k)).await, Reply::En);
                assert_eq!(found, j == index, "{k} on server {j}");
            }
        }
        assert!(
            counts.iter().all(|&c| c >= 10),
            "{distribution:?}: {counts:?}"
        );
        cluster.close().await;
        assert!(cluster.servers().iter().all(|s| s.live_connections() == 0));
    }
}

/// A failure that counts towards marking a server down.
fn unreachable() -> Error {
    Error::new(
        ErrorKind::Connection,
        codes::CONNECTION_FAILED,
        "unreachable",
    )
}

/// The health bookkeeping alone, on tokio's paused clock (no network).
#[tokio::test(start_paused = true)]
async fn health_marks_down_after_consecutive_failures_until_retry() {
    let options = ClientOptions {
        failures: 3,
        retry: Duration::from_secs(30),
        ..opts()
    };
    let server = Server::new("127.0.0.1:9", options);
    server.health.record_outcome(&unreachable());
    server.health.record_outcome(&unreachable());
    assert!(!server.health().is_down());
    // A success in between resets the count.
    server.health.record_success();
    server.health.record_outcome(&unreachable());
    server.health.record_outcome(&unreachable());
    assert!(!server.health().is_down());
    server.health.record_outcome(&unreachable());
    assert!(server.health().is_down());
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(server.health().is_down());
    let err = server
        .execute(&ctx(), get("k"), true, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::SERVER_DOWN);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!server.health().is_down());
    // An error from a server that answered does not count.
    server.health.record_success();
    for _ in 0..5 {
        server.health.record_outcome(&Error::new(
            ErrorKind::Protocol,
            codes::SERVER_ERROR,
            "SERVER_ERROR out of memory",
        ));
    }
    assert!(!server.health().is_down());
    for _ in 0..2 {
        server.health.record_outcome(&unreachable());
    }
    // One more failure after the retry period marks it down again at once.
    server.health.record_outcome(&unreachable());
    assert!(server.health().is_down());
}

/// A measurement, not a check (ignored by default): owner-checked add/delete pairs per second
/// through `Server::execute` from many concurrent callers. Run with
/// `cargo test --release -p lock-memcached --lib -- --ignored throughput --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; prints numbers"]
async fn throughput_of_add_delete_pairs() {
    let mc = MemcachedServer::builder()
        .threads(1)
        .start()
        .expect("memcached");
    for (pool_size, callers) in [(1, 1), (1, 64), (5, 256)] {
        let server = Arc::new(Server::new(
            mc.address(),
            ClientOptions {
                pool_size,
                ..opts()
            },
        ));
        run(&server, Request::Noop).await;
        let pairs_per_caller = if callers == 1 {
            5_000
        } else {
            200_000 / callers
        };
        let started = std::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..callers {
            let server = server.clone();
            tasks.spawn(async move {
                let k = format!("bench-{t}");
                for _ in 0..pairs_per_caller {
                    let Reply::Hd(f) = run(&server, add(&k, b"token", 60)).await else {
                        panic!("add")
                    };
                    let del = Request::Delete {
                        key: key(&k),
                        cas: f.cas.unwrap_or(0),
                    };
                    assert!(matches!(run(&server, del).await, Reply::Hd(_)));
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task");
        }
        let secs = started.elapsed().as_secs_f64();
        let pairs = (callers * pairs_per_caller) as f64;
        println!(
            "pool_size {pool_size}, {callers} callers: {pairs} pairs in {secs:.2} s = {:.0} pairs/s",
            pairs / secs
        );
    }
}

#[tokio::test]
async fn client_error_poisons_the_connection_and_fails_the_requests_behind_it() {
    let mc = start();
    let conn = connect(&mc).await;
    // Both are queued before the task runs (single-threaded runtime): one batch, one write.
    let mut bad = conn
        .send(Request::Get {
            key: WireKey::new_unchecked(b"!!!!".to_vec(), true),
        })
        .expect("send");
    let mut behind = conn.send(get("fine")).expect("send");
    let reply = bad
        .wait()
        .await
        .expect("the error line is the bad request's reply");
    assert!(
        matches!(reply, Reply::ClientError(ref m) if m.contains("decoding key")),
        "{reply:?}"
    );
    let err = behind.wait().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    assert!(!conn.is_alive());
    let err = conn.send(Request::Noop).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
}

/// The lock spawns client calls on tokio tasks: the futures must be `Send`.
#[allow(dead_code)]
fn client_futures_are_send(server: Arc<Server>, ctx: Context, addresses: Vec<String>) {
    fn is_send<T: Send>(_: T) {}
    is_send(async move { server.execute(&ctx, Request::Noop, true, None).await });
    is_send(async move {
        Cluster::connect(&Context::new(), addresses, opts(), ProtocolMode::Meta, ALL).await
    });
}

/// See `lock::future_sizes`: connecting is boxed out of a request's future.
#[tokio::test]
async fn a_requests_future_does_not_carry_the_connect_path() {
    let server = Server::new("127.0.0.1:1", opts());
    let ctx = ctx();
    let call = Call::default();
    let meta = server.call(&ctx, Arc::new(Request::Noop), &call);
    assert!(size_of_val(&meta) <= 1024, "{}", size_of_val(&meta));
    drop(meta);
    let endpoint = Endpoint::Meta(server);
    let any = endpoint.call(&ctx, Request::Noop, &call);
    assert!(size_of_val(&any) <= 1024, "{}", size_of_val(&any));
}
