//! memcached ASCII authentication (`-Y`), against real servers started with an auth file: the
//! lock works with the right credentials in every mode, and each wrong combination is a
//! clear, non-retryable error at open that leaves nothing behind.

use std::time::{Duration, Instant};

use commons::{ConfigParams, Configurable, Context, ErrorKind, Openable};
use lock_core::Lock;
use lock_memcached::{MemcachedLock, codes};
use memcached_testkit::MemcachedServer;

mod support;
use support::{TTL, raw_get, unique_key};

const USER: &str = "locker";
const PASSWORD: &str = "s3cret-pw";

fn auth_server() -> MemcachedServer {
    MemcachedServer::builder()
        .auth(USER, PASSWORD)
        .start()
        .expect("memcached with -Y")
}

fn config(addresses: &[String], extra: &[(&str, &str)]) -> ConfigParams {
    let mut config = ConfigParams::from_tuples([
        (
            "connection.uri",
            format!("memcached://{}", addresses.join(",")),
        ),
        ("options.timeout", "2000".to_string()),
    ]);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
}

async fn open(addresses: &[String], extra: &[(&str, &str)]) -> commons::Result<MemcachedLock> {
    let lock = MemcachedLock::new();
    lock.configure(&config(addresses, extra))?;
    lock.open(&Context::new()).await?;
    Ok(lock)
}

const GOOD: [(&str, &str); 2] = [
    ("credential.username", USER),
    ("credential.password", PASSWORD),
];

#[tokio::test]
async fn authenticated_locks_work_in_meta_classic_and_quorum_modes() {
    let server = auth_server();
    let ctx = Context::new();
    for protocol in ["meta", "classic", "auto"] {
        let mut extra = GOOD.to_vec();
        extra.push(("options.protocol", protocol));
        let lock = open(&[server.address()], &extra)
            .await
            .unwrap_or_else(|e| panic!("{protocol}: {e}"));
        let key = unique_key("auth");
        assert!(
            lock.try_acquire_lock(&ctx, &key, TTL)
                .await
                .expect(protocol)
        );
        assert!(lock.release_owned(&ctx, &key).await.expect(protocol));
        assert_eq!(lock.config().username(), Some(USER));
    }
    let quorum: Vec<MemcachedServer> = (0..3).map(|_| auth_server()).collect();
    let addresses: Vec<String> = quorum.iter().map(|s| s.address()).collect();
    let mut extra = GOOD.to_vec();
    extra.extend([("options.mode", "quorum"), ("options.max_ttl", "2000")]);
    let lock = open(&addresses, &extra).await.expect("quorum");
    // New servers are in quarantine for options.quarantine (= max_ttl) after their boot.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let key = unique_key("auth-quorum");
    let ttl = Duration::from_secs(2);
    assert!(
        lock.try_acquire_lock(&ctx, &key, ttl)
            .await
            .expect("quorum")
    );
    assert!(lock.release_owned(&ctx, &key).await.expect("quorum"));
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_at_open_and_no_reconnect_storm() {
    let server = auth_server();
    for protocol in ["meta", "classic", "auto"] {
        let before = total_connections(&server);
        let started = Instant::now();
        let err = open(
            &[server.address()],
            &[
                ("credential.username", USER),
                ("credential.password", "wrong"),
                ("options.protocol", protocol),
            ],
        )
        .await
        .expect_err("a wrong password");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{protocol}: {err}");
        assert_eq!(err.code(), codes::AUTH_FAILED, "{protocol}: {err}");
        assert!(!err.is_retryable(), "{protocol}: {err}");
        let text = format!("{err} {err:?}");
        assert!(text.contains(&server.address()), "{text}");
        assert!(text.contains(USER), "{text}");
        assert!(!text.contains("wrong"), "the password leaked: {text}");
        assert!(started.elapsed() < Duration::from_secs(2), "{protocol}");
        // One connection tried, not one per retry.
        let made = total_connections(&server) - before;
        assert!(
            made <= 2,
            "{protocol}: {made} connections for one failed open"
        );
    }
}

#[tokio::test]
async fn a_server_that_wants_credentials_and_gets_none_says_so() {
    let server = auth_server();
    for protocol in ["meta", "classic", "auto"] {
        let err = open(&[server.address()], &[("options.protocol", protocol)])
            .await
            .expect_err("no credentials");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{protocol}: {err}");
        assert_eq!(err.code(), codes::AUTH_REQUIRED, "{protocol}: {err}");
        assert!(err.message().contains("-Y"), "{err}");
    }
}

#[tokio::test]
async fn credentials_for_a_server_without_authentication_are_refused_and_write_nothing() {
    let server = MemcachedServer::start().expect("memcached");
    for protocol in ["meta", "classic", "auto"] {
        let mut extra = GOOD.to_vec();
        extra.push(("options.protocol", protocol));
        let err = open(&[server.address()], &extra)
            .await
            .expect_err("a server without -Y");
        assert_eq!(err.kind(), ErrorKind::Config, "{protocol}: {err}");
        assert_eq!(err.code(), codes::AUTH_NOT_REQUIRED, "{protocol}: {err}");
        assert!(!format!("{err:?}").contains(PASSWORD));
    }
    // The handshake asked `version` first: no `set auth` was stored as an item.
    assert_eq!(raw_get(&server.address(), "auth"), None);
}

#[tokio::test]
async fn bad_credentials_in_the_configuration_are_refused_and_change_nothing() {
    for (name, bad) in [
        ("password without user", vec![("credential.password", "x")]),
        ("empty user", vec![("credential.username", "")]),
        (
            "space in user",
            vec![("credential.username", "a b"), ("credential.password", "x")],
        ),
        (
            "line break in password",
            vec![
                ("credential.username", "a"),
                ("credential.password", "x\r\nflush_all"),
            ],
        ),
    ] {
        let lock = MemcachedLock::new();
        let before = lock.config();
        let err = lock
            .configure(&config(&["127.0.0.1:1".to_string()], &bad))
            .expect_err(name);
        assert_eq!(err.kind(), ErrorKind::Config, "{name}: {err}");
        assert_eq!(err.code(), commons::codes::BAD_CONFIG, "{name}: {err}");
        assert!(!format!("{err:?}").contains("flush_all"), "{name}: {err:?}");
        assert_eq!(lock.config(), before, "{name}");
    }
}

fn total_connections(server: &MemcachedServer) -> u64 {
    server
        .stats()
        .expect("stats")
        .iter()
        .find(|(k, _)| k == "total_connections")
        .and_then(|(_, v)| v.parse().ok())
        .expect("total_connections")
}

/// The framework's way: the lock names a `credential.store_key`, and a credential store in the
/// same container holds the user name and password.
#[tokio::test]
async fn credentials_come_from_a_credential_store_by_store_key() {
    let server = auth_server();
    let document = |store_key: &str| {
        serde_json::json!({"components": [
            {"descriptor": "pip-services:credential-store:memory:default:1.0",
             "memcached": {"username": USER, "password": PASSWORD}},
            {"descriptor": "pip-services:lock:memcached:default:1.0",
             "connection": {"uri": format!("memcached://{}", server.address())},
             "credential": {"store_key": store_key},
             "options": {"timeout": 2000}}
        ]})
    };
    let ctx = Context::new();
    let mut container = commons::Container::new();
    container.add_factory(lock_memcached::memcached_lock_factory());
    container
        .read_config(&document("memcached"))
        .expect("config");
    container
        .open(&ctx)
        .await
        .expect("open with the stored credentials");
    let lock: std::sync::Arc<dyn Lock> = container
        .references()
        .get_one_required(&commons::Descriptor::new("*", "lock", "*", "*", "1.0"))
        .expect("the lock");
    let key = unique_key("stored");
    assert!(
        lock.try_acquire_lock(&ctx, &key, TTL)
            .await
            .expect("acquire")
    );
    lock.release_lock(&ctx, &key).await.expect("release");
    container.close(&ctx).await.expect("close");

    let mut missing = commons::Container::new();
    missing.add_factory(lock_memcached::memcached_lock_factory());
    missing.read_config(&document("elsewhere")).expect("config");
    let err = missing.open(&ctx).await.expect_err("no such store key");
    assert_eq!(err.code(), commons::codes::REF_ERROR, "{err}");
    assert!(!format!("{err:?}").contains(PASSWORD));
}
