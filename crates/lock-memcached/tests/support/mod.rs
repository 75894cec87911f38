//! Helpers shared by lock-memcached's integration tests: how a test configures and opens a
//! lock against a testkit server, names its keys, and reads what a server really stores.

// Every test binary compiles its own copy of this module and uses only part of it; the
// helpers one binary leaves unused would otherwise warn as dead code there.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, Openable};
use lock_core::{Lease, Lock};
use lock_memcached::MemcachedLock;
use memcached_testkit::{FaultProxy, MemcachedServer};

pub(crate) mod pki;

/// The lease ttl of tests that do not wait for an expiry: long enough to outlast the test's
/// own steps on a loaded machine, short enough that a leftover item goes away soon.
pub(crate) const TTL: Duration = Duration::from_secs(3);

/// Ttls every operation refuses with BAD_TTL, named: zero would mean "never expires" to
/// memcached, and past 30 days memcached reads the number as a Unix time.
pub(crate) const REFUSED_TTLS: [(&str, Duration); 3] = [
    ("zero", Duration::ZERO),
    ("30 days + 1 s", Duration::from_secs(2_592_001)),
    ("max", Duration::MAX),
];

/// The host and the port of a `host:port` address.
pub(crate) fn host_and_port(address: &str) -> (&str, &str) {
    address
        .rsplit_once(':')
        .expect("a server address is host:port")
}

/// A configuration for one server at `address` (`host:port`) plus `extra` keys.
pub(crate) fn config_for(address: &str, extra: &[(&str, &str)]) -> ConfigParams {
    let (host, port) = host_and_port(address);
    let mut c = ConfigParams::from_tuples([("connection.host", host), ("connection.port", port)]);
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

/// A lock configured by [`config_for`] and opened.
pub(crate) async fn open_lock(address: &str, extra: &[(&str, &str)]) -> MemcachedLock {
    let lock = MemcachedLock::new();
    lock.configure(&config_for(address, extra))
        .expect("configure the lock");
    lock.open(&Context::new()).await.expect("open the lock");
    lock
}

/// [`open_lock`] with `options.protocol=classic` (the `extra` keys come after it).
pub(crate) async fn open_classic(address: &str, extra: &[(&str, &str)]) -> MemcachedLock {
    let mut all = vec![("options.protocol", "classic")];
    all.extend_from_slice(extra);
    open_lock(address, &all).await
}

/// A key no other test of any running test process uses: tests share neither keys nor
/// (sometimes) servers, and the process id keeps parallel test binaries apart.
pub(crate) fn unique_key(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One raw request straight to the server, bypassing the lock; returns the first reply line
/// (trimmed) and the data line of a `VA`.
pub(crate) fn raw(address: &str, request: &str) -> (String, Option<String>) {
    let mut s = TcpStream::connect(address).expect("connect for a raw request");
    // A reply that never comes fails the test instead of hanging it.
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("set a read timeout");
    s.write_all(request.as_bytes())
        .expect("write a raw request");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("read a raw reply");
    let data = if line.starts_with("VA") {
        let mut d = String::new();
        r.read_line(&mut d).expect("read a raw reply's data");
        Some(d.trim_end().to_string())
    } else {
        None
    };
    (line.trim_end().to_string(), data)
}

/// What the server at `address` stores under the wire key `key` (`mg`, whichever protocol
/// the lock speaks), or `None`; any other reply fails the test.
pub(crate) fn raw_get(address: &str, key: &str) -> Option<String> {
    let (line, data) = raw(address, &format!("mg {key} v\r\n"));
    assert!(
        line.starts_with("VA") || line == "EN",
        "raw mg {key}: {line}"
    );
    data
}

/// A memcached server and a fault proxy in front of it.
pub(crate) async fn server_behind_proxy() -> (MemcachedServer, FaultProxy) {
    let server = MemcachedServer::start().expect("memcached must be installed");
    let proxy = FaultProxy::start(server.socket_addr())
        .await
        .expect("a fault proxy");
    (server, proxy)
}

/// The lease of an acquire of `key` for [`TTL`], which must be free.
pub(crate) async fn lease_of_free_key(lock: &MemcachedLock, ctx: &Context, key: &str) -> Lease {
    lock.try_acquire_lease(ctx, key, TTL)
        .await
        .expect("acquire")
        .unwrap_or_else(|| panic!("{key} is not free"))
}

/// Tries `tries` times, 100 ms apart (the wait first), until `lock` takes `key`: the way to
/// get a key once another holder's item has expired (memcached's clock ticks once a second).
pub(crate) async fn acquire_within(
    lock: &MemcachedLock,
    ctx: &Context,
    key: &str,
    ttl: Duration,
    tries: usize,
) -> bool {
    for _ in 0..tries {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if lock
            .try_acquire_lock(ctx, key, ttl)
            .await
            .expect("try_acquire_lock")
        {
            return true;
        }
    }
    false
}
