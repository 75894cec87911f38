//! The fault proxy in front of a real memcached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use memcached_testkit::{FaultProxy, MemcachedServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(5);

/// Reads until the buffer ends with `\r\n` (one-line replies like `VERSION`, `STORED`).
async fn read_line(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !out.ends_with(b"\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

async fn ask(stream: &mut TcpStream, cmd: &str) -> String {
    stream.write_all(cmd.as_bytes()).await.unwrap();
    timeout(PATIENCE, read_line(stream)).await.unwrap().unwrap()
}

async fn wait_for_count(proxy: &FaultProxy, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while proxy.connection_count() != n {
        assert!(
            Instant::now() < deadline,
            "count stayed {}",
            proxy.connection_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A server and a fault proxy in front of it.
async fn proxied() -> (MemcachedServer, FaultProxy) {
    let server = MemcachedServer::start().unwrap();
    let proxy = FaultProxy::start(server.socket_addr()).await.unwrap();
    (server, proxy)
}

/// A connection through `proxy` that was seen to answer `version`.
async fn answering(proxy: &FaultProxy) -> TcpStream {
    let mut conn = TcpStream::connect(proxy.address()).await.unwrap();
    assert!(ask(&mut conn, "version\r\n").await.starts_with("VERSION"));
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_both_ways_and_counts_connections() {
    let (server, proxy) = proxied().await;
    assert_eq!(proxy.address(), format!("127.0.0.1:{}", proxy.port()));
    assert_eq!(proxy.target(), server.socket_addr());
    assert_ne!(proxy.port(), server.port());

    let mut a = TcpStream::connect(proxy.socket_addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(ask(&mut a, "set k 0 0 5\r\nhello\r\n").await, "STORED\r\n");
    let got = ask(&mut b, "mg k v\r\n").await;
    assert!(got.starts_with("VA 5"), "{got:?}");
    // A large value crosses several chunks intact.
    let big = "x".repeat(200_000);
    let reply = ask(&mut a, &format!("set big 0 0 {}\r\n{big}\r\n", big.len())).await;
    assert_eq!(reply, "STORED\r\n");
    b.write_all(b"get big\r\n").await.unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    while !all.ends_with(b"END\r\n") {
        let n = timeout(PATIENCE, b.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        all.extend_from_slice(&buf[..n]);
    }
    assert_eq!(all.len(), "VALUE big 0 200000\r\n".len() + 200_000 + 2 + 5);
    wait_for_count(&proxy, 2).await;

    drop(a);
    wait_for_count(&proxy, 1).await;
    drop(b);
    wait_for_count(&proxy, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_holds_back_replies() {
    let (_server, proxy) = proxied().await;
    let mut conn = TcpStream::connect(proxy.address()).await.unwrap();
    let delay = Duration::from_millis(300);
    proxy.set_delay(delay);
    let started = Instant::now();
    assert!(ask(&mut conn, "version\r\n").await.starts_with("VERSION"));
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    // Latency, not a throughput cap: pipelined requests are not delayed one after another.
    let started = Instant::now();
    conn.write_all(b"mn\r\n").await.unwrap();
    conn.write_all(b"mn\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 6 {
        let n = timeout(PATIENCE, conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"MN\r\nMN\r\n");
    assert!(started.elapsed() >= delay);

    proxy.set_delay(Duration::ZERO);
    assert!(ask(&mut conn, "version\r\n").await.starts_with("VERSION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_holds_bytes_until_unstall() {
    let (server, proxy) = proxied().await;
    let mut conn = answering(&proxy).await;

    proxy.stall();
    conn.write_all(b"set held 0 0 4\r\ndata\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let waited = timeout(Duration::from_millis(300), conn.read(&mut buf)).await;
    assert!(waited.is_err(), "a reply arrived while stalled: {waited:?}");
    // Nothing reached the server either.
    let direct = server.stats().unwrap();
    let sets = direct.iter().find(|(k, _)| k == "cmd_set").unwrap();
    assert_eq!(sets.1, "0");

    proxy.unstall();
    assert_eq!(
        timeout(PATIENCE, read_line(&mut conn))
            .await
            .unwrap()
            .unwrap(),
        "STORED\r\n"
    );
    assert!(ask(&mut conn, "mg held v\r\n").await.starts_with("VA 4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_all_breaks_live_connections_only() {
    let (_server, proxy) = proxied().await;
    let mut a = TcpStream::connect(proxy.address()).await.unwrap();
    let mut b = TcpStream::connect(proxy.address()).await.unwrap();
    assert!(ask(&mut a, "version\r\n").await.starts_with("VERSION"));
    assert!(ask(&mut b, "version\r\n").await.starts_with("VERSION"));
    wait_for_count(&proxy, 2).await;

    proxy.reset_all();
    for conn in [&mut a, &mut b] {
        let mut buf = [0u8; 16];
        let result = timeout(PATIENCE, conn.read(&mut buf)).await.unwrap();
        match result {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e:?}"),
            Ok(n) => panic!("expected a reset, read {n} bytes"),
        }
    }
    wait_for_count(&proxy, 0).await;

    // New connections work again.
    answering(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_new_connections_closes_new_clients_only() {
    let (_server, proxy) = proxied().await;
    let mut old = answering(&proxy).await;

    proxy.drop_new_connections(true);
    let mut refused = TcpStream::connect(proxy.address()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = timeout(PATIENCE, refused.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "expected EOF");
    assert!(ask(&mut old, "version\r\n").await.starts_with("VERSION"));
    assert_eq!(proxy.connection_count(), 1);

    proxy.drop_new_connections(false);
    answering(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_rewriter_changes_server_bytes() {
    let (_server, proxy) = proxied().await;
    let mut conn = TcpStream::connect(proxy.address()).await.unwrap();
    let real = ask(&mut conn, "version\r\n").await;
    assert!(real.starts_with("VERSION 1.6"), "{real:?}");

    let real_version = real.trim_end().to_string();
    proxy.set_reply_rewriter(Some(Arc::new(move |chunk: &[u8]| {
        String::from_utf8_lossy(chunk)
            .replace(&real_version, "VERSION 1.5.22")
            .into_bytes()
    })));
    assert_eq!(ask(&mut conn, "version\r\n").await, "VERSION 1.5.22\r\n");
    // Client-to-server bytes are not rewritten.
    assert_eq!(
        ask(&mut conn, "set v 0 0 14\r\nVERSION 1.6.18\r\n").await,
        "STORED\r\n"
    );

    proxy.set_reply_rewriter(None);
    assert_eq!(ask(&mut conn, "version\r\n").await, real);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_is_reached_by_new_connections() {
    let mut server = MemcachedServer::start().unwrap();
    let proxy = FaultProxy::start(server.socket_addr()).await.unwrap();
    let mut conn = answering(&proxy).await;

    server.restart().unwrap();
    // The old connection ends with the old process.
    let mut buf = [0u8; 16];
    let ended = timeout(PATIENCE, conn.read(&mut buf)).await.unwrap();
    assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
    answering(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_down_closes_the_client() {
    let mut server = MemcachedServer::start().unwrap();
    let proxy = FaultProxy::start(server.socket_addr()).await.unwrap();
    server.stop();
    let mut conn = TcpStream::connect(proxy.address()).await.unwrap();
    let mut buf = [0u8; 16];
    let ended = timeout(PATIENCE, conn.read(&mut buf)).await.unwrap();
    assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_drop_stop_everything() {
    let (_server, proxy) = proxied().await;
    let addr = proxy.socket_addr();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert!(ask(&mut conn, "version\r\n").await.starts_with("VERSION"));
    assert!(format!("{proxy:?}").contains("connections: 1"));

    drop(proxy);
    let mut buf = [0u8; 16];
    let ended = timeout(PATIENCE, conn.read(&mut buf)).await.unwrap();
    assert!(matches!(ended, Ok(0)), "{ended:?}");
    // The listener is gone (poll: the accept task notices the shutdown asynchronously).
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "proxy still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The default `#[tokio::test]` runtime (one thread) drives the proxy and the client alike.
#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    let (_server, proxy) = proxied().await;
    let mut conn = answering(&proxy).await;
    proxy.set_delay(Duration::from_millis(50));
    let started = Instant::now();
    assert_eq!(ask(&mut conn, "mn\r\n").await, "MN\r\n");
    assert!(started.elapsed() >= Duration::from_millis(50));
    proxy.reset_all();
    let mut buf = [0u8; 8];
    assert!(
        timeout(PATIENCE, conn.read(&mut buf))
            .await
            .unwrap()
            .is_err()
    );
}

#[test]
fn handles_can_be_shared_across_tasks_and_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<FaultProxy>();
    assert_send_sync::<MemcachedServer>();
    assert_send_sync::<memcached_testkit::ServerTarget>();
    assert_send_sync::<memcached_testkit::TestkitError>();
}
