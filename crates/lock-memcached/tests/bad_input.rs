//! Bad input for `MemcachedLock`, table-driven: keys, ttls, timeouts, configurations and
//! malformed server replies (through the fault proxy's reply rewriter). Each case must give a
//! clear error of the right kind and code, never panic, and leave the lock state unchanged:
//! checked with a raw `mg` straight to the server (not through the proxy) and `held_count()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use commons::{ConfigParams, Configurable, Context, ErrorKind, Openable, codes};
use lock_core::{Lock, LockGuard};
use lock_memcached::MemcachedLock;
use memcached_testkit::{FaultProxy, MemcachedServer};

mod support;
use support::{REFUSED_TTLS, TTL, open_lock, raw, raw_get, server_behind_proxy, unique_key};

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
    // A 1 s item lives up to about 3 s: its expiry is placed by the server's clock.
    for _ in 0..100 {
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
    let lock = open_lock(&server.address(), &[]).await;
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
    let lock = open_lock(&server.address(), &[("options.base64_keys", "true")]).await;
    let ctx = Context::new();
    for key in ["schlüssel", "a b", "a\r\nmn", "a\x01b", "日本語のキー"] {
        assert!(
            lock.try_acquire_lock(&ctx, key, TTL).await.unwrap(),
            "{key:?}"
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
        let (line, data) = raw(&server.address(), &format!("mg {encoded} v\r\n"));
        assert!(line.starts_with("VA"), "{key:?}: {line}");
        assert!(data.unwrap_or_default().starts_with("tok="), "{key:?}");
        assert!(lock.release_owned(&ctx, key).await.unwrap(), "{key:?}");
        let (line, _) = raw(&server.address(), &format!("mg {encoded} v\r\n"));
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
    let lock = open_lock(&server.address(), &[]).await;
    let ctx = Context::new();
    for (name, ttl) in REFUSED_TTLS {
        let key = unique_key("ttl");
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
            Arc::new(open_lock(&server.address(), &[]).await),
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

    // Short ttls round up to one whole second (never down to T0 = "never expires"); the item's
    // expiry is placed by the server's clock, up to 2 s after the ttl (docs/safety.md).
    for (name, ttl) in [
        ("1 ms", Duration::from_millis(1)),
        ("999 ms", Duration::from_millis(999)),
    ] {
        let key = unique_key("short");
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
            (0..=3).contains(&secs),
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
    let key = unique_key("extend");
    assert!(lock.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    let held = lock.held_count();
    let stored = raw_get(&server.address(), &key);
    for (name, ttl) in REFUSED_TTLS {
        let err = lock.extend_lock(&ctx, &key, ttl).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::BadRequest, codes::BAD_TTL),
            "{name}"
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
    let a = Arc::new(open_lock(&server.address(), &[]).await);
    let b = open_lock(&server.address(), &[]).await;
    let ctx = Context::new();

    // Zero: one attempt is still made, so a free key is taken...
    let key = unique_key("zero");
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
    let free = unique_key("huge");
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
    let key3 = unique_key("guard-huge");
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
    let host = ("connection.host", "127.0.0.1");
    // (name, configuration): configure OR open must fail with BAD_CONFIG.
    let bad_config: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("missing host", vec![("connection.port", &port)]),
        ("port not a number", vec![host, ("connection.port", "abc")]),
        ("port too big", vec![host, ("connection.port", "70000")]),
        ("port zero", vec![host, ("connection.port", "0")]),
        ("unknown option", vec![host, ("options.timout", "100")]),
        (
            "non-numeric option",
            vec![host, ("options.timeout", "fast")],
        ),
        ("negative option", vec![host, ("options.pool_size", "-1")]),
        (
            "non-boolean option",
            vec![host, ("options.base64_keys", "maybe")],
        ),
        ("empty uri", vec![("connection.uri", "")]),
        ("uri without host", vec![("connection.uri", "memcached://")]),
    ];
    let other_failures = [
        (
            "nothing at all",
            vec![],
            ErrorKind::Config,
            codes::NO_CONNECTION,
        ),
        (
            "discovery key without discovery",
            vec![("connection.discovery_key", "locks")],
            ErrorKind::Reference,
            codes::REF_ERROR,
        ),
    ];
    let cases = bad_config
        .into_iter()
        .map(|(name, pairs)| (name, pairs, ErrorKind::Config, codes::BAD_CONFIG))
        .chain(other_failures);
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

/// A server, a fault proxy in front of it, and a lock through the proxy with short timeouts
/// (a garbled reply fails fast and the lock reconnects soon after).
async fn behind_rewriting_proxy() -> (MemcachedServer, FaultProxy, MemcachedLock) {
    let (server, proxy) = server_behind_proxy().await;
    let lock = open_lock(
        &proxy.address(),
        &[
            ("options.timeout", "400"),
            ("options.retry", "100"),
            ("options.reconnect", "20"),
        ],
    )
    .await;
    (server, proxy, lock)
}

/// A rewriter that replaces the first reply line starting with `needle` by `with(line)`,
/// then lets everything through (so the owner-checked cleanup can run). The replies that
/// follow that line in its chunk (an acquire's counter reply) stay, unless the replacement
/// is a truncated line: then the stream ends there.
fn once(
    needle: &'static str,
    with: fn(&str) -> String,
) -> (Arc<AtomicBool>, memcached_testkit::ReplyRewriter) {
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    let f = Arc::new(move |chunk: &[u8]| {
        let text = String::from_utf8_lossy(chunk);
        if text.starts_with(needle) && !flag.swap(true, Ordering::SeqCst) {
            let (line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
            let replaced = with(&format!("{line}\r\n"));
            if replaced.ends_with("\r\n") {
                format!("{replaced}{rest}").into_bytes()
            } else {
                replaced.into_bytes()
            }
        } else {
            chunk.to_vec()
        }
    });
    (fired, f)
}

/// Runs `op` (not yet started) with its `HD` reply rewritten by `with`: it must fail with
/// PROTOCOL_ERROR, whatever the garbled reply seemed to say.
async fn garbled_hd_is_a_protocol_error<T: std::fmt::Debug>(
    proxy: &FaultProxy,
    with: fn(&str) -> String,
    op: impl Future<Output = commons::Result<T>>,
) {
    let (fired, rewriter) = once("HD", with);
    proxy.set_reply_rewriter(Some(rewriter));
    let err = op.await.expect_err("a garbled reply became a result");
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Protocol, codes::PROTOCOL_ERROR),
        "{err}"
    );
    proxy.set_reply_rewriter(None);
}

#[tokio::test]
async fn malformed_replies_to_acquire_give_clear_errors_and_leave_no_lock() {
    let (server, proxy, lock) = behind_rewriting_proxy().await;
    let ctx = Context::with_trace_id("replies");
    const PROTOCOL: &[ErrorKind] = &[ErrorKind::Protocol];
    // (name, what the reply to the acquire's `HD` becomes, the error kinds it may give)
    type Case = (&'static str, fn(&str) -> String, &'static [ErrorKind]);
    let cases: &[Case] = &[
        ("garbage", |_| "GARBAGE!\r\n".into(), PROTOCOL),
        ("binary junk", |_| "\u{1}\u{2}\u{3}\r\n".into(), PROTOCOL),
        ("truncated", |_| "HD c".into(), &[ErrorKind::OutcomeUnknown]),
        (
            "client error",
            |_| "CLIENT_ERROR bad data chunk\r\n".into(),
            PROTOCOL,
        ),
        (
            "client error + error",
            |_| "CLIENT_ERROR bad command line format\r\nERROR\r\n".into(),
            PROTOCOL,
        ),
        ("wrong kind HD->EN", |t| t.replacen("HD", "EN", 1), PROTOCOL),
        (
            "wrong kind HD->VA",
            |_| "VA 2 c9\r\nxx\r\n".into(),
            PROTOCOL,
        ),
        (
            "no cas",
            |_| "HD\r\n".into(),
            &[ErrorKind::Protocol, ErrorKind::Unsupported],
        ),
        ("oversized VA", |_| "VA 99999999999 c1\r\n".into(), PROTOCOL),
        (
            "server error",
            |_| "SERVER_ERROR out of memory storing object\r\n".into(),
            PROTOCOL,
        ),
    ];
    for (name, with, kinds) in cases {
        let key = unique_key("reply");
        let (fired, rewriter) = once("HD", *with);
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
        let next = unique_key("after");
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
    let (server, proxy, lock) = behind_rewriting_proxy().await;
    let ctx = Context::new();
    let key = unique_key("held");
    assert!(
        lock.try_acquire_lock(&ctx, &key, Duration::from_secs(10))
            .await
            .unwrap()
    );
    let stored = raw_get(&server.address(), &key).expect("stored");

    // inspect: oversized, truncated data, wrong kind; (name, what its `VA` reply becomes).
    type Case = (&'static str, fn(&str) -> String);
    let inspect: &[Case] = &[
        ("oversized VA", |_| "VA 99999999999 c1 t5\r\n".into()),
        ("VA data too short", |_| "VA 50 c1 t5\r\nshort\r\n".into()),
        ("VA not terminated", |_| "VA 3 c1 t5\r\nabcXY".into()),
        ("VA->HD", |_| "HD\r\n".into()),
        ("garbage", |_| "WHAT\r\n".into()),
    ];
    for (name, with) in inspect {
        let (fired, rewriter) = once("VA", *with);
        proxy.set_reply_rewriter(Some(rewriter));
        let err = tokio::time::timeout(Duration::from_secs(5), lock.inspect_lock(&ctx, &key))
            .await
            .unwrap_or_else(|_| panic!("{name}: hung"))
            .expect_err(name);
        assert!(fired.load(Ordering::SeqCst), "{name}: never fired");
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::Protocol, codes::PROTOCOL_ERROR),
            "{name}: {err}"
        );
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
    let extend = lock.extend_lock(&ctx, &key, Duration::from_secs(10));
    garbled_hd_is_a_protocol_error(&proxy, |_| "NOPE\r\n".into(), extend).await;
    assert_eq!(raw_get(&server.address(), &key).as_ref(), Some(&stored));
    assert!(
        lock.extend_lock(&ctx, &key, Duration::from_secs(10))
            .await
            .unwrap()
    );

    // release: rewrite HD into EN (wrong kind) -> an error, not "released".
    let release = lock.release_owned(&ctx, &key);
    garbled_hd_is_a_protocol_error(&proxy, |t| t.replacen("HD", "EN", 1), release).await;
    // The delete did reach the server; a retried release finds nothing of ours and deletes
    // nothing else.
    let _ = lock.release_owned(&ctx, &key).await;
    assert_eq!(raw_get(&server.address(), &key), None);
    assert_eq!(lock.held_count(), 0);
}
