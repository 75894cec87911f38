//! Request and option builders shared by the client's tests.

use std::time::Duration;

use commons::Context;
use memcached_testkit::MemcachedServer;

use super::classic::ClassicTransport;
use super::meta::MetaTransport;
use super::server::Server;
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
