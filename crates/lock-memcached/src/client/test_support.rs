//! Request and option builders shared by the client's tests.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use commons::Context;
use memcached_testkit::MemcachedServer;

use super::classic::ClassicTransport;
use super::codec::Reply;
use super::meta::MetaTransport;
use super::server::Server;
use super::transport::Transport;
use super::{ClientOptions, KeyDistribution, Request, SetMode, WireKey};

/// The server policy over the meta transport.
pub(crate) type MetaServer = Server<MetaTransport>;
/// The server policy over the classic transport.
pub(crate) type ClassicServer = Server<ClassicTransport>;

/// Options for tests: small pool, 3 s timeouts, no reconnect hold-back, no idle reaping.
pub(crate) fn opts() -> ClientOptions {
    ClientOptions {
        pool_size: 2,
        timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        reconnect: Duration::ZERO,
        retries: 3,
        failures: 5,
        retry: Duration::from_secs(30),
        idle: Duration::ZERO,
        max_value: 1024 * 1024,
        distribution: KeyDistribution::Ketama,
        auth: None,
        tls: None,
    }
}

pub(crate) fn key(k: &str) -> WireKey {
    WireKey::new_unchecked(k.as_bytes().to_vec(), false)
}

pub(crate) fn add(k: &str, data: &[u8], ttl_secs: u32) -> Request {
    Request::Set {
        key: key(k),
        data: data.to_vec().into(),
        mode: SetMode::Add,
        ttl_secs,
    }
}

pub(crate) fn cas_set(k: &str, data: &[u8], cas: u64, ttl_secs: u32) -> Request {
    Request::Set {
        key: key(k),
        data: data.to_vec().into(),
        mode: SetMode::Cas(cas),
        ttl_secs,
    }
}

pub(crate) fn delete(k: &str, cas: u64) -> Request {
    Request::Delete { key: key(k), cas }
}

pub(crate) fn get(k: &str) -> Request {
    Request::Get { key: key(k) }
}

pub(crate) fn ctx() -> Context {
    Context::with_trace_id("client-test")
}

pub(crate) fn start() -> MemcachedServer {
    MemcachedServer::start().expect("memcached must be installed (apt-get install memcached)")
}

/// A classic `get` on a separate socket, bypassing the client under test.
pub(crate) fn raw_get(address: &str, k: &str) -> Option<Vec<u8>> {
    let mut s = std::net::TcpStream::connect(address).expect("connect");
    s.write_all(format!("get {k}\r\n").as_bytes())
        .expect("write");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    if line == "END\r\n" {
        return None;
    }
    let len: usize = line
        .split(' ')
        .nth(3)
        .and_then(|t| t.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("unexpected {line:?}"));
    let mut data = vec![0u8; len + 2];
    std::io::Read::read_exact(&mut r, &mut data).expect("data");
    data.truncate(len);
    Some(data)
}

/// The store of a reply that must be `HD` with a CAS.
pub(crate) fn cas_of(reply: &Reply) -> u64 {
    match reply {
        Reply::Hd(flags) => flags.cas.expect("a store reports the cas"),
        other => panic!("expected Hd, got {other:?}"),
    }
}

/// One lock's life on key `lk` through `server`, as the lock layer drives it, checked at
/// every step (and against the server itself with `raw_get`): acquire, refused second
/// acquire, inspect (`ttl_ok` judges the remaining ttl the protocol reports), extend only
/// with the current CAS, release only with the current CAS, then not-found for both.
/// Returns the last CAS the key had.
pub(crate) async fn lock_cycle<T: Transport>(
    server: &Server<T>,
    address: &str,
    ttl_ok: fn(Option<i64>) -> bool,
) -> u64 {
    let run = |req: Request| async move {
        server
            .execute(&ctx(), req, false, None)
            .await
            .expect("request failed")
            .reply
    };
    let cas = cas_of(&run(add("lk", b"tok", 5)).await);
    assert!(cas > 0);
    assert!(matches!(run(add("lk", b"other", 5)).await, Reply::Ns(_)));
    match run(get("lk")).await {
        Reply::Va { data, flags } => {
            assert_eq!(data, b"tok");
            assert_eq!(flags.cas, Some(cas));
            assert!(ttl_ok(flags.ttl), "{flags:?}");
        }
        other => panic!("{other:?}"),
    }
    // Extend: only with the current cas; the new cas is learned.
    assert!(matches!(run(delete("lk", cas + 100)).await, Reply::Ex(_)));
    assert!(matches!(
        run(cas_set("lk", b"tok", cas + 100, 9)).await,
        Reply::Ex(_)
    ));
    let new_cas = cas_of(&run(cas_set("lk", b"tok", cas, 9)).await);
    assert_ne!(new_cas, cas);
    // Release: a stale cas changes nothing; the current one deletes.
    assert!(matches!(run(delete("lk", cas)).await, Reply::Ex(_)));
    assert!(matches!(
        run(cas_set("lk", b"x", cas, 9)).await,
        Reply::Ex(_)
    ));
    assert_eq!(raw_get(address, "lk").as_deref(), Some(&b"tok"[..]));
    assert!(matches!(run(delete("lk", new_cas)).await, Reply::Hd(_)));
    assert_eq!(raw_get(address, "lk"), None, "the item is gone");
    assert_eq!(run(get("lk")).await, Reply::En);
    // Gone: release and extend report not found.
    assert!(matches!(run(delete("lk", new_cas)).await, Reply::Nf(_)));
    assert!(matches!(run(cas_set("lk", b"x", 1, 9)).await, Reply::Nf(_)));
    new_cas
}

/// The peer of a test server address (`ip:port`).
pub(crate) fn peer(address: &str) -> super::tcp::Peer {
    let addr = address.parse().expect("a test server address is ip:port");
    super::tcp::Peer::new(address, addr)
}
