//! TLS against real memcached processes started with `-Z`: the lock cycle, mutual TLS, and
//! each way TLS can be misconfigured, in meta and classic modes. Certificates are made by the
//! test (rcgen) in a temporary directory.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use commons::{ConfigParams, Configurable, Context, ErrorKind, Openable, codes};
use lock_core::Lock;
use lock_memcached::MemcachedLock;
use memcached_testkit::MemcachedServer;
use support::pki::Pki;
use support::{TTL, config_for, unique_key};

/// The bound every failing open is checked against: the connect timeout (1 s) and the
/// operation timeout (2 s) the tests configure, with room for a loaded machine.
const FAIL_WITHIN: Duration = Duration::from_secs(4);

/// The lock's configuration for `server` in `mode` (`meta` or `classic`) with short
/// timeouts, TLS on unless `plaintext`, plus `extra`.
fn config(server: &MemcachedServer, mode: &str, tls: bool, extra: &[(&str, &str)]) -> ConfigParams {
    let mut all = vec![
        ("options.protocol", mode),
        ("options.connect_timeout", "1000"),
        ("options.timeout", "2000"),
        // One connection per server, so a test can tell reuse from reconnects.
        ("options.pool_size", "1"),
    ];
    if tls {
        all.push(("connection.protocol", "tls"));
    }
    all.extend_from_slice(extra);
    config_for(&server.address(), &all)
}

/// Configures and opens a lock.
async fn open(config: &ConfigParams) -> commons::Result<MemcachedLock> {
    let lock = MemcachedLock::new();
    lock.configure(config)?;
    lock.open(&Context::new()).await?;
    Ok(lock)
}

/// Acquires, is refused by a second holder, releases.
async fn lock_cycle(a: &MemcachedLock, b: &MemcachedLock) {
    let ctx = Context::with_trace_id("tls");
    let key = unique_key("tls");
    assert!(a.try_acquire_lock(&ctx, &key, TTL).await.expect("acquire"));
    assert!(!b.try_acquire_lock(&ctx, &key, TTL).await.expect("contend"));
    a.release_lock(&ctx, &key).await.expect("release");
    assert!(
        b.try_acquire_lock(&ctx, &key, TTL)
            .await
            .expect("reacquire")
    );
    b.release_lock(&ctx, &key).await.expect("release");
}

/// memcached's `curr_connections` (its listeners included), read over the plain listener.
fn connections(server: &MemcachedServer) -> u64 {
    server
        .stats()
        .expect("stats")
        .into_iter()
        .find(|(k, _)| k == "curr_connections")
        .and_then(|(_, v)| v.parse().ok())
        .expect("curr_connections")
}

/// memcached's `total_connections` (every connection it ever accepted, `stats`' included).
fn total_connections(server: &MemcachedServer) -> u64 {
    server
        .stats()
        .expect("stats")
        .into_iter()
        .find(|(k, _)| k == "total_connections")
        .and_then(|(_, v)| v.parse().ok())
        .expect("total_connections")
}

/// Opening fails within [`FAIL_WITHIN`], with `code` and a message containing every one of
/// `words`, and leaves no connection open on the server.
async fn assert_open_fails(
    server: &MemcachedServer,
    config: &ConfigParams,
    code: &str,
    words: &[&str],
) {
    let before = connections(server);
    let started = Instant::now();
    let error = match open(config).await {
        Ok(_) => panic!("the lock opened"),
        Err(e) => e,
    };
    let took = started.elapsed();
    assert!(took < FAIL_WITHIN, "failed only after {took:?}: {error}");
    assert_eq!(error.code(), code, "{error}");
    let message = error.to_string();
    for word in words {
        assert!(message.contains(word), "'{word}' not in: {message}");
    }
    assert!(
        message.contains(&server.address()),
        "no server named: {message}"
    );
    // The connections tried are gone (the server notices the close a moment later).
    let deadline = Instant::now() + Duration::from_secs(2);
    while connections(server) > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(connections(server), before, "connections left behind");
}

/// One `#[tokio::test]` per protocol mode for each `async fn(&str)` case.
macro_rules! in_both_modes {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn meta() {
                    super::$case("meta").await;
                }

                #[tokio::test]
                async fn classic() {
                    super::$case("classic").await;
                }
            }
        )*
    };
}

in_both_modes!(
    lock_cycle_over_tls,
    quorum_over_tls_from_a_memcacheds_uri,
    a_restarted_tls_server_is_reconnected,
    mutual_tls_with_a_client_certificate,
    mutual_tls_without_a_client_certificate_fails,
    unknown_ca_fails,
    wrong_server_name_fails,
    expired_certificate_fails,
    plaintext_client_to_a_tls_port_fails,
    tls_client_to_a_plaintext_port_fails,
    authentication_over_mutual_tls,
);

/// `-Y` and `-Z` together (with client certificates required): the handshake, then the
/// authentication, on every connection; a wrong password is still `AUTH_FAILED`.
async fn authentication_over_mutual_tls(mode: &str) {
    let pki = Pki::new();
    let builder = MemcachedServer::builder().auth("locker", "pw-over-tls");
    let server = pki.server_with(builder, &["127.0.0.1"], false, true);
    let tls = [
        ("credential.ssl_ca_file", pki.ca_file.as_str()),
        ("credential.ssl_crt_file", pki.client_crt.as_str()),
        ("credential.ssl_key_file", pki.client_key.as_str()),
        ("credential.username", "locker"),
    ];
    let mut good = tls.to_vec();
    good.push(("credential.password", "pw-over-tls"));
    let c = config(&server, mode, true, &good);
    let a = open(&c).await.expect("open a");
    let b = open(&c).await.expect("open b");
    lock_cycle(&a, &b).await;
    let mut bad = tls.to_vec();
    bad.push(("credential.password", "wrong"));
    let err = open(&config(&server, mode, true, &bad))
        .await
        .expect_err("a wrong password");
    assert_eq!(err.code(), lock_memcached::codes::AUTH_FAILED, "{err}");
}

async fn lock_cycle_over_tls(mode: &str) {
    let pki = Pki::new();
    let server = pki.server(&["127.0.0.1"], false, false);
    let c = config(
        &server,
        mode,
        true,
        &[("credential.ssl_ca_file", &pki.ca_file)],
    );
    let a = open(&c).await.expect("open a");
    let b = open(&c).await.expect("open b");
    lock_cycle(&a, &b).await;
    // Idle TLS connections are reused: the classic transport's watch on the TCP socket does
    // not mistake TLS for a closed connection (the one new connection is `stats`' own).
    let accepted = total_connections(&server);
    for _ in 0..3 {
        lock_cycle(&a, &b).await;
    }
    assert_eq!(
        total_connections(&server),
        accepted + 1,
        "connections were replaced"
    );
    let status = a.server_status(&Context::new()).await.expect("status");
    assert_eq!(status[0].protocol, mode, "{status:?}");
    // The name the certificate is for can differ from the host connected to.
    let named = pki.server(&["cache.internal"], false, false);
    let c = config(
        &named,
        mode,
        true,
        &[
            ("credential.ssl_ca_file", &pki.ca_file),
            ("options.tls_server_name", "cache.internal"),
        ],
    );
    let a = open(&c).await.expect("open with options.tls_server_name");
    let b = open(&c).await.expect("open with options.tls_server_name");
    lock_cycle(&a, &b).await;
}

async fn quorum_over_tls_from_a_memcacheds_uri(mode: &str) {
    let pki = Pki::new();
    let servers: Vec<MemcachedServer> = (0..3)
        .map(|_| pki.server(&["127.0.0.1"], false, false))
        .collect();
    let hosts: Vec<String> = servers.iter().map(|s| s.address()).collect();
    let c = ConfigParams::from_tuples([
        (
            "connection.uri",
            format!("memcacheds://{}", hosts.join(",")),
        ),
        ("credential.ssl_ca_file", pki.ca_file.clone()),
        ("options.protocol", mode.to_string()),
        ("options.mode", "quorum".to_string()),
        ("options.max_ttl", "2000".to_string()),
        ("options.quarantine", "2000".to_string()),
        ("options.timeout", "2000".to_string()),
    ]);
    // New servers count only after the quarantine: open once (boot markers), then wait it out.
    drop(open(&c).await.expect("open"));
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let a = open(&c).await.expect("open a");
    let b = open(&c).await.expect("open b");
    let ctx = Context::with_trace_id("tls-quorum");
    let key = unique_key("tls-quorum");
    let ttl = Duration::from_secs(2);
    assert!(a.try_acquire_lock(&ctx, &key, ttl).await.expect("acquire"));
    assert!(!b.try_acquire_lock(&ctx, &key, ttl).await.expect("contend"));
    a.release_lock(&ctx, &key).await.expect("release");
    assert!(
        b.try_acquire_lock(&ctx, &key, ttl)
            .await
            .expect("reacquire")
    );
    b.release_lock(&ctx, &key).await.expect("release");
}

async fn a_restarted_tls_server_is_reconnected(mode: &str) {
    let pki = Pki::new();
    let mut server = pki.server(&["127.0.0.1"], false, false);
    let c = config(
        &server,
        mode,
        true,
        &[("credential.ssl_ca_file", &pki.ca_file)],
    );
    let a = open(&c).await.expect("open a");
    let b = open(&c).await.expect("open b");
    lock_cycle(&a, &b).await;
    server.restart().expect("restart");
    // The idle connections died with the old process: noticed (by the classic transport's
    // watch on the TCP socket, by the meta connection's task), and replaced without an error.
    tokio::time::sleep(Duration::from_millis(50)).await;
    lock_cycle(&a, &b).await;
}

async fn mutual_tls_with_a_client_certificate(mode: &str) {
    let pki = Pki::new();
    let server = pki.server(&["127.0.0.1"], false, true);
    let c = config(
        &server,
        mode,
        true,
        &[
            ("credential.ssl_ca_file", &pki.ca_file),
            ("credential.ssl_crt_file", &pki.client_crt),
            ("credential.ssl_key_file", &pki.client_key),
        ],
    );
    let a = open(&c).await.expect("open a");
    let b = open(&c).await.expect("open b");
    lock_cycle(&a, &b).await;
}

async fn mutual_tls_without_a_client_certificate_fails(mode: &str) {
    let pki = Pki::new();
    let server = pki.server(&["127.0.0.1"], false, true);
    let c = config(
        &server,
        mode,
        true,
        &[("credential.ssl_ca_file", &pki.ca_file)],
    );
    assert_open_fails(&server, &c, "TLS_FAILED", &["client certificate"]).await;
}

async fn unknown_ca_fails(mode: &str) {
    let pki = Pki::new();
    let server = pki.server(&["127.0.0.1"], false, false);
    let c = config(
        &server,
        mode,
        true,
        &[("credential.ssl_ca_file", &pki.other_ca_file)],
    );
    assert_open_fails(&server, &c, "TLS_FAILED", &["not signed by a trusted CA"]).await;
    let error = open(&c).await.expect_err("fails");
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
    assert!(!error.is_retryable(), "{error}");
}

async fn wrong_server_name_fails(mode: &str) {
    let pki = Pki::new();
    let server = pki.server(&["cache.internal"], false, false);
    let c = config(
        &server,
        mode,
        true,
        &[("credential.ssl_ca_file", &pki.ca_file)],
    );
    assert_open_fails(&server, &c, "TLS_FAILED", &["not valid for the name"]).await;
    let c = config(
        &server,
        mode,
        true,
        &[
            ("credential.ssl_ca_file", &pki.ca_file),
            ("options.tls_server_name", "other.internal"),
        ],
    );
    assert_open_fails(&server, &c, "TLS_FAILED", &["options.tls_server_name"]).await;
}

async fn expired_certificate_fails(mode: &str) {
    let pki = Pki::new();
    let server = pki.server(&["127.0.0.1"], true, false);
    let c = config(
        &server,
        mode,
        true,
        &[("credential.ssl_ca_file", &pki.ca_file)],
    );
    assert_open_fails(&server, &c, "TLS_FAILED", &["expired"]).await;
}

async fn plaintext_client_to_a_tls_port_fails(mode: &str) {
    let pki = Pki::new();
    let server = pki.server(&["127.0.0.1"], false, false);
    let c = config(&server, mode, false, &[]);
    let before = connections(&server);
    let started = Instant::now();
    let error = open(&c).await.expect_err("a plaintext client cannot open");
    assert!(started.elapsed() < FAIL_WITHIN, "{error}");
    assert!(
        error.to_string().contains(&server.address()),
        "no server named: {error}"
    );
    assert!(
        error.to_string().contains("set connection.protocol=tls"),
        "{error}"
    );
    wait_for_connections(&server, before);
}

async fn tls_client_to_a_plaintext_port_fails(mode: &str) {
    let pki = Pki::new();
    let server = MemcachedServer::start().expect("memcached");
    let c = config(
        &server,
        mode,
        true,
        &[("credential.ssl_ca_file", &pki.ca_file)],
    );
    let before = connections(&server);
    let started = Instant::now();
    let error = open(&c).await.expect_err("a TLS client cannot open");
    assert!(started.elapsed() < FAIL_WITHIN, "{error}");
    let message = error.to_string();
    assert!(message.contains(&server.address()), "{message}");
    assert!(message.contains("plaintext"), "{message}");
    wait_for_connections(&server, before);
}

fn wait_for_connections(server: &MemcachedServer, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while connections(server) > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(connections(server), before, "connections left behind");
}

/// Every configuration mistake is a `BAD_CONFIG` at configure, naming the key.
#[test]
fn bad_tls_configuration_is_refused_at_configure() {
    let pki = Pki::new();
    let not_pem = pki.dir.write("not-pem.txt", "hello\n");
    let missing = pki.dir.0.join("missing.pem").display().to_string();
    let base = [
        ("connection.host", "127.0.0.1"),
        ("connection.protocol", "tls"),
    ];
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("credential.ssl_ca_file", &missing)],
            "credential.ssl_ca_file",
        ),
        (
            vec![("credential.ssl_ca_file", &not_pem)],
            "credential.ssl_ca_file",
        ),
        (
            vec![("credential.ssl_key_file", &pki.client_key)],
            "credential.ssl_crt_file",
        ),
        (
            vec![("credential.ssl_crt_file", &pki.client_crt)],
            "credential.ssl_key_file",
        ),
        (
            vec![
                ("credential.ssl_crt_file", &pki.client_crt),
                ("credential.ssl_key_file", &not_pem),
            ],
            "credential.ssl_key_file",
        ),
        (
            vec![("options.tls_server_name", "not a name")],
            "options.tls_server_name",
        ),
    ];
    for (extra, key) in cases {
        let mut c = ConfigParams::from_tuples(base);
        for (k, v) in &extra {
            c.set(*k, *v);
        }
        let error = MemcachedLock::new()
            .configure(&c)
            .err()
            .unwrap_or_else(|| panic!("{extra:?} was accepted"));
        assert_eq!(error.code(), codes::BAD_CONFIG, "{error}");
        assert!(error.to_string().contains(key), "{key} not in: {error}");
    }
    // TLS files without TLS would silently mean plaintext.
    let c = ConfigParams::from_tuples([
        ("connection.host", "127.0.0.1"),
        ("credential.ssl_ca_file", pki.ca_file.as_str()),
    ]);
    let error = MemcachedLock::new().configure(&c).expect_err("refused");
    assert!(
        error.to_string().contains("connection.protocol=tls"),
        "{error}"
    );
    // The scheme of a uri turns TLS on too.
    let c = ConfigParams::from_tuples([
        ("connection.uri", "memcacheds://127.0.0.1:11211"),
        ("credential.ssl_ca_file", pki.ca_file.as_str()),
    ]);
    MemcachedLock::new()
        .configure(&c)
        .expect("memcacheds:// uri");
    // One lock's servers use TLS or none.
    let c = ConfigParams::from_tuples([
        ("connections.a.host", "127.0.0.1"),
        ("connections.a.protocol", "tls"),
        ("connections.b.uri", "memcached://127.0.0.2:11211"),
    ]);
    let error = MemcachedLock::new().configure(&c).expect_err("mixed");
    assert_eq!(error.code(), codes::BAD_CONFIG, "{error}");
    assert!(error.to_string().contains("connections.b.uri"), "{error}");
    assert!(Path::new(&pki.ca_file).exists());
}
