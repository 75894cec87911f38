//! Bad input for `MemcachedLock`, table-driven: keys, ttls, timeouts, configurations and
//! malformed server replies (through the fault proxy's reply rewriter). Each case must give a
//! clear error of the right kind and code, never panic, and leave the lock state unchanged:
//! checked with a raw `mg` straight to the server (not through the proxy) and `held_count()`.

use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use commons::{ConfigParams, Configurable, Context, ErrorKind, Openable, codes};
use lock_core::{Lock, LockGuard};
use lock_memcached::MemcachedLock;
use memcached_testkit::{FaultProxy, MemcachedServer};

const TTL: Duration = Duration::from_secs(3);

fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn config(address: &str, extra: &[(&str, &str)]) -> ConfigParams {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let mut c = ConfigParams::from_tuples([("connection.host", host), ("connection.port", port)]);
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

async fn opened(address: &str, extra: &[(&str, &str)]) -> MemcachedLock {
    let lock = MemcachedLock::new();
    lock.configure(&config(address, extra)).expect("configure");
    lock.open(&Context::new()).await.expect("open");
    lock
}

/// One raw request straight to the server; returns the first reply line (and the data line
/// of a `VA`).
fn raw(address: &str, request: &str) -> (String, Option<String>) {
    let mut s = TcpStream::connect(address).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    s.write_all(request.as_bytes()).expect("write");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    let data = if line.starts_with("VA") {
        let mut d = String::new();
        r.read_line(&mut d).expect("read data");
        Some(d.trim_end().to_string())
    } else {
        None
    };
    (line.trim_end().to_string(), data)
}

/// The stored value of a plain key, or `None` (`EN`).
fn raw_get(address: &str, key: &str) -> Option<String> {
    let (line, data) = raw(address, &format!("mg {key} v\r\n"));
    assert!(
        line.starts_with("VA") || line == "EN",
        "raw mg {key}: {line}"
    );
    data
}

fn curr_items(server: &MemcachedServer) -> u64 {
    server
        .stats()
        .expect("stats")
        .iter()
        .find(|(k, _)| k == "curr_items")
        .and_then(|(_, v)| v.parse().ok())
        .expect("curr_items")
}

/// Waits (bounded) until the server no longer holds `key`.
async fn wait_gone(address: &str, key: &str) -> bool {
    for _ in 0..40 {
        if raw_get(address, key).is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

// ---------------------------------------------------------------------------------------
// Keys

#[tokio::test]
async fn bad_keys_are_refused_by_every_operation_and_nothing_is_stored() {
    let server = MemcachedServer::start().unwrap();
    let lock = opened(&server.address(), &[]).await;
    let ctx = Context::with_trace_id("bad-keys");
    let long = "k".repeat(251);
    let cases: &[(&str, &str)] = &[
        ("empty", ""),
        ("251 bytes", &long),
        ("space", "a b"),
        ("crlf injection", "a\r\nmn"),
        ("set injection", "x 1 T0\r\nms y"),
        ("control byte", "a\x01b"),
        ("tab", "a\tb"),
        ("delete byte", "a\x7fb"),
        ("non-ascii without base64", "schlüssel"),
    ];
    let before = curr_items(&server);
    for (name, key) in cases {
        let errors = [
            lock.try_acquire_lock(&ctx, key, TTL).await.err(),
            lock.acquire_lock(&ctx, key, TTL, Duration::from_millis(50))
                .await
                .err(),
            lock.release_lock(&ctx, key).await.err(),
            lock.extend_lock(&ctx, key, TTL).await.err(),
            lock.inspect_lock(&ctx, key).await.err(),
        ];
        for (op, err) in errors.into_iter().enumerate() {
            let err = err.unwrap_or_else(|| panic!("{name}: operation {op} accepted the key"));
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{name}/{op}: {err}");
            assert_eq!(err.code(), codes::BAD_KEY, "{name}/{op}: {err}");
            assert_eq!(err.trace_id(), Some("bad-keys"), "{name}/{op}");
        }
        assert_eq!(lock.held_count(), 0, "{name}");
    }
    // Nothing was written: no item at all, and the injected keys do not exist.
    assert_eq!(curr_items(&server), before);
    for injected in ["a", "mn", "x", "y"] {
        assert_eq!(raw_get(&server.address(), injected), None, "{injected}");
    }
    // The connection is still in step: a good key works.
    assert!(lock.try_acquire_lock(&ctx, "good", TTL).await.unwrap());
}

#[tokio::test]
async fn any_name_works_with_base64_keys_and_is_stored_encoded() {
    let server = MemcachedServer::start().unwrap();
    let lock = opened(&server.address(), &[("options.base64_keys", "true")]).await;
    let ctx = Context::new();
    for key in ["schlüssel", "a b", "a\r\nmn", "a\x01b", "日本語のキー"] {
        assert!(
            lock.try_acquire_lock(&ctx, key, TTL).await.unwrap(),
            "{key:?}"
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
        let (line, data) = raw(&server.address(), &format!("mg {encoded} b v\r\n"));
        assert!(line.starts_with("VA"), "{key:?}: {line}");
        assert!(data.unwrap_or_default().starts_with("tok="), "{key:?}");
        assert!(lock.release_owned(&ctx, key).await.unwrap(), "{key:?}");
        let (line, _) = raw(&server.address(), &format!("mg {encoded} b v\r\n"));
        assert_eq!(line, "EN", "{key:?}");
    }
    // Still bounded: 200 bytes become 268 base64 bytes, over memcached's 250.
    let err = lock
        .try_acquire_lock(&ctx, &"k".repeat(200), TTL)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::BadRequest, codes::BAD_KEY)
    );
    let err = lock.try_acquire_lock(&ctx, "", TTL).await.unwrap_err();
    assert_eq!(err.code(), codes::BAD_KEY);
    assert_eq!(lock.held_count(), 0);
}

// ---------------------------------------------------------------------------------------
// TTLs

#[tokio::test]
async fn bad_ttls_are_refused_and_short_ones_round_up() {
    let server = MemcachedServer::start().unwrap();
    let lock = opened(&server.address(), &[]).await;
    let ctx = Context::new();
    let refused = [
        ("zero", Duration::ZERO),
        ("30 days + 1 s", Duration::from_secs(2_592_001)),
        ("max", Duration::MAX),
    ];
    for (name, ttl) in refused {
        let key = unique("ttl");
        let err = lock.try_acquire_lock(&ctx, &key, ttl).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::BadRequest, codes::BAD_TTL),
            "{name}: {err}"
        );
        let err = lock
            .acquire_lock(&ctx, &key, ttl, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert_eq!(err.code(), codes::BAD_TTL, "{name}");
        assert_eq!(raw_get(&server.address(), &key), None, "{name}");
        // A guard refuses it too (its renew interval derives from the ttl).
        let err = LockGuard::try_acquire(
            Arc::new(opened(&server.address(), &[]).await),
            &ctx,
            &key,
            ttl,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{name}: {err}");
        assert_eq!(err.code(), codes::BAD_TTL, "{name}: {err}");
        assert_eq!(raw_get(&server.address(), &key), None, "{name}");
    }
    assert_eq!(lock.held_count(), 0);

    // Short ttls round up to one whole second (never down to T0 = "never expires").
    for (name, ttl) in [
        ("1 ms", Duration::from_millis(1)),
        ("999 ms", Duration::from_millis(999)),
    ] {
        let key = unique("short");
        let lease = lock
            .try_acquire_lease(&ctx, &key, ttl)
            .await
            .unwrap()
            .expect("free key");
        let (line, _) = raw(&server.address(), &format!("mg {key} t v\r\n"));
        let secs: i64 = line
            .split_whitespace()
            .find_map(|t| t.strip_prefix('t'))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {line}"));
        assert!(
            (0..=1).contains(&secs),
            "{name}: item ttl {secs} s ({line})"
        );
        // A lease of at most one second is never "certainly valid" (clock granularity).
        assert!(!lease.is_valid(), "{name}");
        assert!(
            wait_gone(&server.address(), &key).await,
            "{name}: never expired"
        );
    }

    // An extend with a bad ttl changes nothing: the lease and the item stay.
    let key = unique("extend");
    assert!(lock.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    let held = lock.held_count();
    let stored = raw_get(&server.address(), &key);
    for ttl in [
        Duration::ZERO,
        Duration::from_secs(2_592_001),
        Duration::MAX,
    ] {
        let err = lock.extend_lock(&ctx, &key, ttl).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::BadRequest, codes::BAD_TTL)
        );
    }
    assert_eq!(lock.held_count(), held);
    assert_eq!(raw_get(&server.address(), &key), stored);
    assert!(lock.release_owned(&ctx, &key).await.unwrap());
}

// ---------------------------------------------------------------------------------------
// Timeouts

#[tokio::test]
async fn zero_and_huge_acquire_timeouts() {
    let server = MemcachedServer::start().unwrap();
    let a = Arc::new(opened(&server.address(), &[]).await);
    let b = opened(&server.address(), &[]).await;
    let ctx = Context::new();

    // Zero: one attempt is still made, so a free key is taken...
    let key = unique("zero");
    a.acquire_lock(&ctx, &key, TTL, Duration::ZERO)
        .await
        .unwrap();
    // ...and a taken one fails at once with LOCK_TIMEOUT, changing nothing.
    let stored = raw_get(&server.address(), &key);
    let err = tokio::time::timeout(
        Duration::from_secs(2),
        b.acquire_lock(&ctx, &key, TTL, Duration::ZERO),
    )
    .await
    .expect("a zero timeout must not wait")
    .unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Conflict, codes::LOCK_TIMEOUT)
    );
    assert_eq!(err.detail("key"), Some(key.as_str()));
    assert_eq!(raw_get(&server.address(), &key), stored);
    assert_eq!(b.held_count(), 0);

    // Huge: no overflow on a free key...
    let free = unique("huge");
    b.acquire_lock(&ctx, &free, TTL, Duration::MAX)
        .await
        .unwrap();
    assert_eq!(b.held_count(), 1);
    // ...and on a taken key it waits for the release (no panic computing deadlines).
    let releaser = {
        let a = a.clone();
        let key = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            a.release_lock(&Context::new(), &key).await
        })
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        b.acquire_lock(&ctx, &key, TTL, Duration::MAX),
    )
    .await
    .expect("acquire with a huge timeout should succeed once released")
    .unwrap();
    releaser.await.unwrap().unwrap();
    assert_eq!(b.held_count(), 2);
    // Guards too.
    let key3 = unique("guard-huge");
    let g = LockGuard::acquire(a.clone(), &ctx, &key3, TTL, Duration::MAX)
        .await
        .unwrap();
    assert!(g.release().await.unwrap());
}

// ---------------------------------------------------------------------------------------
// Configurations

#[tokio::test]
async fn bad_configurations_fail_with_config_errors() {
    let server = MemcachedServer::start().unwrap();
    let port = server.port().to_string();
    // (name, configuration, expected kind, expected code); configure OR open must fail.
    type ConfigCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, ErrorKind, &'a str);
    let cases: Vec<ConfigCase<'_>> = vec![
        (
            "missing host",
            vec![("connection.port", &port)],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
        (
            "nothing at all",
            vec![],
            ErrorKind::Config,
            codes::NO_CONNECTION,
        ),
        (
            "port not a number",
            vec![("connection.host", "127.0.0.1"), ("connection.port", "abc")],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
        (
            "port too big",
            vec![
                ("connection.host", "127.0.0.1"),
                ("connection.port", "70000"),
            ],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
        (
            "port zero",
            vec![("connection.host", "127.0.0.1"), ("connection.port", "0")],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
        (
            "unknown option",
            vec![("connection.host", "127.0.0.1"), ("options.timout", "100")],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
        (
            "non-numeric option",
            vec![
                ("connection.host", "127.0.0.1"),
                ("options.timeout", "fast"),
            ],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
        (
            "negative option",
            vec![
                ("connection.host", "127.0.0.1"),
                ("options.pool_size", "-1"),
            ],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
        (
            "non-boolean option",
            vec![
                ("connection.host", "127.0.0.1"),
                ("options.base64_keys", "maybe"),
            ],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
        (
            "discovery key without discovery",
            vec![("connection.discovery_key", "locks")],
            ErrorKind::Reference,
            codes::REF_ERROR,
        ),
        (
            "empty uri",
            vec![("connection.uri", "")],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
        (
            "uri without host",
            vec![("connection.uri", "memcached://")],
            ErrorKind::Config,
            codes::BAD_CONFIG,
        ),
    ];
    for (name, pairs, kind, code) in cases {
        let lock = MemcachedLock::new();
        let config = ConfigParams::from_tuples(pairs.iter().map(|(k, v)| (*k, *v)));
        let err = match lock.configure(&config) {
            Err(e) => e,
            Ok(()) => lock
                .open(&Context::new())
                .await
                .expect_err(&format!("{name}: opened")),
        };
        assert_eq!((err.kind(), err.code()), (kind, code), "{name}: {err}");
        assert!(!lock.is_open(), "{name}");
        let err = lock
            .try_acquire_lock(&Context::new(), "k", TTL)
            .await
            .unwrap_err();
        assert_eq!(err.code(), codes::NOT_OPENED, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Server replies

/// A rewriter that replaces the first reply chunk containing `needle` with `with(chunk)`,
/// then lets everything through (so the owner-checked cleanup can run).
fn once(
    needle: &'static str,
    with: fn(&str) -> String,
) -> (Arc<AtomicBool>, memcached_testkit::ReplyRewriter) {
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    let f = Arc::new(move |chunk: &[u8]| {
        let text = String::from_utf8_lossy(chunk);
        if text.contains(needle) && !flag.swap(true, Ordering::SeqCst) {
            with(&text).into_bytes()
        } else {
            chunk.to_vec()
        }
    });
    (fired, f)
}

#[tokio::test]
async fn malformed_replies_to_acquire_give_clear_errors_and_leave_no_lock() {
    let server = MemcachedServer::start().unwrap();
    let proxy = FaultProxy::start(server.socket_addr()).await.unwrap();
    let lock = opened(
        &proxy.address(),
        &[
            ("options.timeout", "400"),
            ("options.retry", "100"),
            ("options.reconnect", "20"),
        ],
    )
    .await;
    let ctx = Context::with_trace_id("replies");
    type Case = (
        &'static str,
        &'static str,
        fn(&str) -> String,
        &'static [ErrorKind],
    );
    let cases: &[Case] = &[
        (
            "garbage",
            "HD",
            |_| "GARBAGE!\r\n".into(),
            &[ErrorKind::Protocol],
        ),
        (
            "binary junk",
            "HD",
            |_| "\u{1}\u{2}\u{3}\r\n".into(),
            &[ErrorKind::Protocol],
        ),
        (
            "truncated",
            "HD",
            |_| "HD c".into(),
            &[ErrorKind::OutcomeUnknown],
        ),
        (
            "client error",
            "HD",
            |_| "CLIENT_ERROR bad data chunk\r\n".into(),
            &[ErrorKind::Protocol],
        ),
        (
            "client error + error",
            "HD",
            |_| "CLIENT_ERROR bad command line format\r\nERROR\r\n".into(),
            &[ErrorKind::Protocol],
        ),
        (
            "wrong kind HD->EN",
            "HD",
            |t| t.replacen("HD", "EN", 1),
            &[ErrorKind::Protocol],
        ),
        (
            "wrong kind HD->VA",
            "HD",
            |_| "VA 2 c9\r\nxx\r\n".into(),
            &[ErrorKind::Protocol],
        ),
        (
            "no cas",
            "HD",
            |_| "HD\r\n".into(),
            &[ErrorKind::Protocol, ErrorKind::Unsupported],
        ),
        (
            "oversized VA",
            "HD",
            |_| "VA 99999999999 c1\r\n".into(),
            &[ErrorKind::Protocol],
        ),
        (
            "server error",
            "HD",
            |_| "SERVER_ERROR out of memory storing object\r\n".into(),
            &[ErrorKind::Protocol],
        ),
    ];
    for (name, needle, with, kinds) in cases {
        let key = unique("reply");
        let (fired, rewriter) = once(needle, *with);
        proxy.set_reply_rewriter(Some(rewriter));
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            lock.try_acquire_lock(&ctx, &key, TTL),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: hung"));
        assert!(
            fired.load(Ordering::SeqCst),
            "{name}: the rewriter never fired"
        );
        let err = result.expect_err(&format!("{name}: a malformed reply became a result"));
        assert!(
            kinds.contains(&err.kind()),
            "{name}: {:?} {err}",
            err.kind()
        );
        let expected_code = match err.kind() {
            ErrorKind::OutcomeUnknown => codes::OUTCOME_UNKNOWN,
            ErrorKind::Unsupported => codes::UNSUPPORTED,
            // The server's own error lines (SERVER_ERROR, CLIENT_ERROR) keep their origin.
            _ if name.contains("error") => codes::SERVER_ERROR,
            _ => codes::PROTOCOL_ERROR,
        };
        assert_eq!(err.code(), expected_code, "{name}: {err}");
        assert_eq!(err.trace_id(), Some("replies"), "{name}");
        assert_eq!(lock.held_count(), 0, "{name}");
        // The item the server did store is removed by the owner-checked cleanup (or was
        // never stored): no orphan lock blocks the key.
        assert!(
            wait_gone(&server.address(), &key).await,
            "{name}: orphan lock left"
        );
        proxy.set_reply_rewriter(None);
        // And the lock recovers: the next acquire works and is really on the server.
        let next = unique("after");
        assert!(
            lock.try_acquire_lock(&ctx, &next, TTL).await.unwrap(),
            "{name}"
        );
        assert!(raw_get(&server.address(), &next).is_some(), "{name}");
        assert!(lock.release_owned(&ctx, &next).await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn malformed_replies_to_inspect_release_and_extend() {
    let server = MemcachedServer::start().unwrap();
    let proxy = FaultProxy::start(server.socket_addr()).await.unwrap();
    let lock = opened(
        &proxy.address(),
        &[
            ("options.timeout", "400"),
            ("options.retry", "100"),
            ("options.reconnect", "20"),
        ],
    )
    .await;
    let ctx = Context::new();
    let key = unique("held");
    assert!(
        lock.try_acquire_lock(&ctx, &key, Duration::from_secs(10))
            .await
            .unwrap()
    );
    let stored = raw_get(&server.address(), &key).expect("stored");

    // inspect: oversized, truncated data, wrong kind.
    type Case = (
        &'static str,
        &'static str,
        fn(&str) -> String,
        ErrorKind,
        &'static str,
    );
    let inspect: &[Case] = &[
        (
            "oversized VA",
            "VA",
            |_| "VA 99999999999 c1 t5\r\n".into(),
            ErrorKind::Protocol,
            codes::PROTOCOL_ERROR,
        ),
        (
            "VA data too short",
            "VA",
            |_| "VA 50 c1 t5\r\nshort\r\n".into(),
            ErrorKind::Protocol,
            codes::PROTOCOL_ERROR,
        ),
        (
            "VA not terminated",
            "VA",
            |_| "VA 3 c1 t5\r\nabcXY".into(),
            ErrorKind::Protocol,
            codes::PROTOCOL_ERROR,
        ),
        (
            "VA->HD",
            "VA",
            |_| "HD\r\n".into(),
            ErrorKind::Protocol,
            codes::PROTOCOL_ERROR,
        ),
        (
            "garbage",
            "VA",
            |_| "WHAT\r\n".into(),
            ErrorKind::Protocol,
            codes::PROTOCOL_ERROR,
        ),
    ];
    for (name, needle, with, kind, code) in inspect {
        let (fired, rewriter) = once(needle, *with);
        proxy.set_reply_rewriter(Some(rewriter));
        let err = tokio::time::timeout(Duration::from_secs(5), lock.inspect_lock(&ctx, &key))
            .await
            .unwrap_or_else(|_| panic!("{name}: hung"))
            .expect_err(name);
        assert!(fired.load(Ordering::SeqCst), "{name}: never fired");
        assert_eq!((err.kind(), err.code()), (*kind, *code), "{name}: {err}");
        proxy.set_reply_rewriter(None);
        assert_eq!(lock.held_count(), 1, "{name}");
        assert_eq!(
            raw_get(&server.address(), &key).as_ref(),
            Some(&stored),
            "{name}"
        );
        assert!(
            lock.inspect_lock(&ctx, &key).await.unwrap().held_by_me,
            "{name}"
        );
    }

    // extend: a garbled reply is an error, never a success, and the lock stays ours.
    let (fired, rewriter) = once("HD", |_| "NOPE\r\n".into());
    proxy.set_reply_rewriter(Some(rewriter));
    let err = lock
        .extend_lock(&ctx, &key, Duration::from_secs(10))
        .await
        .expect_err("garbled extend");
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Protocol, codes::PROTOCOL_ERROR),
        "{err}"
    );
    proxy.set_reply_rewriter(None);
    assert_eq!(raw_get(&server.address(), &key).as_ref(), Some(&stored));
    assert!(
        lock.extend_lock(&ctx, &key, Duration::from_secs(10))
            .await
            .unwrap()
    );

    // release: rewrite HD into EN (wrong kind) -> an error, not "released".
    let (fired, rewriter) = once("HD", |t| t.replacen("HD", "EN", 1));
    proxy.set_reply_rewriter(Some(rewriter));
    let err = lock
        .release_owned(&ctx, &key)
        .await
        .expect_err("garbled release");
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Protocol, codes::PROTOCOL_ERROR),
        "{err}"
    );
    proxy.set_reply_rewriter(None);
    // The delete did reach the server; a retried release finds nothing of ours and deletes
    // nothing else.
    let _ = lock.release_owned(&ctx, &key).await;
    assert_eq!(raw_get(&server.address(), &key), None);
    assert_eq!(lock.held_count(), 0);
}
