//! The signals users rely on beyond the owner check (lost, fencing, the lease table's limit,
//! which item a key is), each against real memcached servers spawned by the testkit. Every
//! test here was written against a defect seen in review and failed before its fix.

use std::sync::Arc;
use std::time::Duration;

use commons::Context;
use lock_core::Lock;
use lock_memcached::MemcachedLock;
use memcached_testkit::{FaultProxy, MemcachedServer};

mod support;
use support::{TTL, lease_of_free_key, open_classic, open_lock, server_behind_proxy, unique_key};

fn start() -> MemcachedServer {
    MemcachedServer::start().expect("memcached must be installed (apt-get install memcached)")
}

/// `options.max_size` is a hard limit: many acquires racing near it never leave the instance
/// holding more (the check and the insert used to be apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_size_holds_when_many_acquires_race_for_the_last_places() {
    let server = start();
    let lock = Arc::new(open_lock(&server.address(), &[("options.max_size", "5")]).await);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let lock = lock.clone();
        tasks.push(tokio::spawn(async move {
            let key = unique_key(&format!("race{i}"));
            lock.try_acquire_lock(&Context::new(), &key, TTL).await
        }));
    }
    let mut acquired = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(true) => acquired += 1,
            Ok(false) => panic!("unique keys are free"),
            Err(e) => assert_eq!(e.code(), lock_memcached::codes::TOO_MANY_LOCKS, "{e}"),
        }
    }
    assert_eq!(acquired, 5, "exactly max_size acquires succeed");
    assert_eq!(lock.held_count(), 5);
}

/// A renewal and an `extend_lock` of one key by one instance move the item's CAS under each
/// other's feet; neither may report the live lock as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_extends_of_one_lock_by_its_holder_never_report_it_lost() {
    let server = start();
    let lock = Arc::new(open_lock(&server.address(), &[]).await);
    let ctx = Context::new();
    let key = unique_key("extends");
    let lease = lease_of_free_key(&lock, &ctx, &key).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let lock = lock.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut lost = 0;
            for _ in 0..25 {
                match lock.extend_lease(&Context::new(), &key, TTL).await {
                    Ok(Some(_)) => {}
                    Ok(None) => lost += 1,
                    Err(e) => panic!("extend failed: {e}"),
                }
            }
            lost
        }));
    }
    let mut lost = 0;
    for task in tasks {
        lost += task.await.expect("task");
    }
    assert_eq!(lost, 0, "extends reported the held lock lost");
    let info = lock.inspect_lock(&ctx, &key).await.expect("inspect");
    assert!(info.held_by_me, "still held by the instance");
    assert!(lock.release_lease(&ctx, &lease).await.expect("release"));
}

/// With `options.base64_keys`, a meta instance and a classic instance on one server lock the
/// same item for the same key, so they exclude each other (the meta one used to send the key
/// with the `b` flag, which memcached stores decoded).
#[tokio::test]
async fn base64_keys_are_one_item_in_meta_and_classic_modes() {
    let server = start();
    let base64 = [("options.base64_keys", "true")];
    let meta = open_lock(&server.address(), &base64).await;
    let classic = open_classic(&server.address(), &base64).await;
    let ctx = Context::new();
    for (first, second) in [(&meta, &classic), (&classic, &meta)] {
        let key = unique_key("clé partagée");
        assert!(
            first
                .try_acquire_lock(&ctx, &key, TTL)
                .await
                .expect("first")
        );
        assert!(
            !second
                .try_acquire_lock(&ctx, &key, TTL)
                .await
                .expect("second"),
            "the other mode took a held key"
        );
        assert!(second.inspect_lock(&ctx, &key).await.expect("inspect").held);
        first.release_lock(&ctx, &key).await.expect("release");
        assert!(
            second
                .try_acquire_lock(&ctx, &key, TTL)
                .await
                .expect("after release")
        );
        second.release_lock(&ctx, &key).await.expect("release");
    }
}

/// Rewrites `stats` so that every boot of the server reports pid 1 and the same boot second,
/// as two boots of a memcached that is PID 1 in its container, started within one second, do.
fn same_pid_and_boot_second(chunk: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(chunk);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive("\r\n") {
        let fixed = if line.starts_with("STAT pid ") {
            "STAT pid 1\r\n"
        } else if line.starts_with("STAT time ") {
            "STAT time 1700000100\r\n"
        } else if line.starts_with("STAT uptime ") {
            "STAT uptime 100\r\n"
        } else {
            line
        };
        out.push_str(fixed);
    }
    out.into_bytes()
}

/// One key acquired by one owner, the server restarted behind a proxy that makes both boots
/// report the same pid and boot second, and the key acquired again by another owner doing
/// exactly what the first did (so its item gets the same CAS value on the new boot).
struct TwoBootsThatLookAlike {
    _server: MemcachedServer,
    _proxy: FaultProxy,
    key: String,
    old: MemcachedLock,
    old_lease: lock_core::Lease,
    new: MemcachedLock,
    new_lease: lock_core::Lease,
}

async fn acquired_on_two_boots_that_look_alike(name: &str) -> TwoBootsThatLookAlike {
    let (mut server, proxy) = server_behind_proxy().await;
    proxy.set_reply_rewriter(Some(Arc::new(same_pid_and_boot_second)));
    let ctx = Context::new();
    let key = unique_key(name);
    let acquire = |lock: MemcachedLock| {
        let (ctx, key) = (ctx.clone(), key.clone());
        async move {
            let lease = lease_of_free_key(&lock, &ctx, &key).await;
            (lock, lease)
        }
    };
    let (old, old_lease) = acquire(open_lock(&proxy.address(), &[]).await).await;
    server.restart().expect("restart");
    let (new, new_lease) = acquire(open_lock(&proxy.address(), &[]).await).await;
    TwoBootsThatLookAlike {
        _server: server,
        _proxy: proxy,
        key,
        old,
        old_lease,
        new,
        new_lease,
    }
}

/// A restart is detected before a lease of the old boot sends a CAS-checked request, even
/// when the new boot reports the same pid and boot second: CAS values restart with the
/// server, so the stale `md <key> C<cas>` would delete the new holder's lock.
#[tokio::test]
async fn a_restart_is_detected_even_when_pid_and_boot_second_repeat() {
    let boots = acquired_on_two_boots_that_look_alike("reboot").await;
    let ctx = Context::new();
    // The old holder's lease is from another boot: lost, and nothing is deleted.
    assert!(
        !boots
            .old
            .release_lease(&ctx, &boots.old_lease)
            .await
            .expect("release")
    );
    let info = boots
        .new
        .inspect_lock(&ctx, &boots.key)
        .await
        .expect("inspect");
    assert!(
        info.held_by_me,
        "the new holder's lock was deleted by a stale release"
    );
    assert!(
        boots
            .new
            .release_lease(&ctx, &boots.new_lease)
            .await
            .expect("release")
    );
}

/// The fencing token of a key grows with every acquisition, across a restart whose new boot
/// reports the same pid and boot second (the token used to be `boot second << 32 | cas`, so
/// the second boot repeated the first one's tokens).
#[tokio::test]
async fn fencing_tokens_grow_across_a_restart_within_the_same_second() {
    let boots = acquired_on_two_boots_that_look_alike("fence-reboot").await;
    let before = boots.old_lease.fencing_token.expect("a fencing token");
    let after = boots.new_lease.fencing_token.expect("a fencing token");
    assert!(after > before, "token went from {before} to {after}");
}

/// Every acquisition of a key, by any instance, gets a larger token than the ones before it,
/// also after the server lost its counters (`flush_all`).
#[tokio::test]
async fn fencing_tokens_grow_with_every_acquisition_and_after_a_flush() {
    let server = start();
    let ctx = Context::new();
    let key = unique_key("fence");
    let owners = [
        open_lock(&server.address(), &[]).await,
        open_classic(&server.address(), &[]).await,
        open_lock(&server.address(), &[]).await,
    ];
    let mut last = 0;
    for round in 0..9 {
        if round == 5 {
            let (reply, _) = support::raw(&server.address(), "flush_all\r\n");
            assert_eq!(reply, "OK");
        }
        let owner = &owners[round % owners.len()];
        let lease = lease_of_free_key(owner, &ctx, &key).await;
        let token = lease.fencing_token.expect("a fencing token");
        assert!(token > last, "round {round}: {last} then {token}");
        last = token;
        // Released by whoever holds it; after the flush there is nothing left to release.
        owner.release_lease(&ctx, &lease).await.expect("release");
    }
}

/// Where the lock cannot vouch for a token (here: the key's counter item holds something
/// that is not a number), the lease carries none and says why; the lock itself still works.
#[tokio::test]
async fn a_lease_without_a_trustworthy_counter_has_no_token_and_says_why() {
    let server = start();
    let ctx = Context::new();
    for classic in [false, true] {
        let lock = if classic {
            open_classic(&server.address(), &[]).await
        } else {
            open_lock(&server.address(), &[]).await
        };
        let key = unique_key("spoiled-counter");
        let bucket = crc32fast::hash(key.as_bytes()) % 4096;
        let (reply, _) = support::raw(
            &server.address(),
            &format!("set pip-locks:fence:{bucket:03x} 0 0 1\r\nx\r\n"),
        );
        assert_eq!(reply, "STORED");
        let lease = lease_of_free_key(&lock, &ctx, &key).await;
        assert_eq!(lease.fencing_token, None, "classic: {classic}");
        let why = lease.fencing_unavailable.clone().expect("a reason");
        assert!(why.contains("not a number"), "classic: {classic}: {why}");
        assert!(lock.release_lease(&ctx, &lease).await.expect("release"));
        support::raw(
            &server.address(),
            &format!("delete pip-locks:fence:{bucket:03x}\r\n"),
        );
    }
}

/// A guard whose renew interval can never renew in time is refused (memcached trusts a ttl
/// of 2 s for 1 s only), and the lock it took for the check is given back.
#[tokio::test]
async fn a_guard_that_could_never_renew_in_time_is_refused() {
    let server = start();
    let lock: Arc<dyn Lock> = Arc::new(open_lock(&server.address(), &[]).await);
    let ctx = Context::new();
    let key = unique_key("guard");
    let err = lock_core::LockGuard::builder(lock.clone(), &key, Duration::from_secs(2))
        .renew_interval(Duration::from_millis(1500))
        .try_acquire(&ctx)
        .await
        .expect_err("an interval past the validity must be refused");
    assert_eq!(err.code(), commons::codes::BAD_TTL, "{err}");
    assert!(!lock.inspect_lock(&ctx, &key).await.expect("inspect").held);
    // The default interval fits the validity.
    let guard = lock_core::LockGuard::builder(lock.clone(), &key, Duration::from_secs(2))
        .try_acquire(&ctx)
        .await
        .expect("acquire")
        .expect("free key");
    assert!(guard.renew_interval() < Duration::from_secs(1));
    assert!(guard.release().await.expect("release"));
}

/// The acquire of a paused server: `OUTCOME_UNKNOWN` after `options.timeout`, while the
/// request waits in the server's socket. Returns the two owners and the key.
async fn acquire_into_a_paused_server(
    server: &MemcachedServer,
    pause: Duration,
) -> (MemcachedLock, MemcachedLock, String) {
    let options = [("options.pool_size", "1"), ("options.timeout", "500")];
    let a = open_lock(&server.address(), &options).await;
    let b = open_lock(&server.address(), &options).await;
    let key = unique_key("abandoned");
    server.pause();
    let err = a
        .try_acquire_lock(&Context::new(), &key, Duration::from_secs(20))
        .await
        .expect_err("a paused server cannot answer");
    assert_eq!(err.code(), commons::codes::OUTCOME_UNKNOWN, "{err}");
    tokio::time::sleep(pause.saturating_sub(Duration::from_millis(500))).await;
    server.resume();
    (a, b, key)
}

/// How long after the call `b` takes `key` (polling every 100 ms for up to `within`).
async fn taken_within(b: &MemcachedLock, key: &str, within: Duration) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    while start.elapsed() < within {
        if b.try_acquire_lock(&Context::new(), key, TTL)
            .await
            .unwrap_or(false)
        {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// An acquire abandoned to a paused server (its request is processed when the server
/// resumes, after the caller gave up) does not hold the key for its 20 s ttl: it is undone
/// as soon as the server answers, and the cleanup does not mark the server down.
#[tokio::test]
async fn an_abandoned_acquire_frees_its_key_soon_after_the_outage() {
    let server = start();
    let (a, b, key) = acquire_into_a_paused_server(&server, Duration::from_secs(3)).await;
    let taken = taken_within(&b, &key, Duration::from_secs(5)).await;
    assert!(taken.is_some(), "the key stayed held after the outage");
    let status = a.server_status(&Context::new()).await.expect("status");
    assert!(!status[0].down, "the cleanup marked the server down");
    assert_eq!(a.held_count(), 0, "the unconfirmed record is gone");
}

/// After `OUTCOME_UNKNOWN`, the owner's own release deletes the item if the acquisition
/// stored it (the instance keeps the acquisition's token for that).
#[tokio::test]
async fn releasing_after_an_unknown_outcome_frees_the_key() {
    let server = start();
    let (a, b, key) = acquire_into_a_paused_server(&server, Duration::from_secs(1)).await;
    a.release_lock(&Context::new(), &key)
        .await
        .expect("release");
    let taken = taken_within(&b, &key, Duration::from_secs(2)).await;
    assert!(taken.is_some(), "the released key stayed held");
}

/// An acquire future dropped while its request waits in a paused server's socket is undone
/// too, by the reply that arrives once the server resumes (not by a read on another
/// connection, which a resumed server may answer first).
#[tokio::test]
async fn a_dropped_acquire_frees_its_key_soon_after_the_outage() {
    let server = start();
    let options = [("options.pool_size", "2"), ("options.timeout", "500")];
    let a = open_lock(&server.address(), &options).await;
    let b = open_lock(&server.address(), &options).await;
    let key = unique_key("dropped");
    server.pause();
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        a.try_acquire_lock(&Context::new(), &key, Duration::from_secs(20)),
    )
    .await;
    assert!(dropped.is_err(), "a paused server cannot answer");
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.resume();
    let taken = taken_within(&b, &key, Duration::from_secs(5)).await;
    assert!(taken.is_some(), "the key stayed held after the outage");
}

/// One server spelled two ways (`localhost` and `127.0.0.1`) would be two servers to key
/// placement, so one key could be locked twice on it under two placements of other keys:
/// such a list is refused. A name of this machine is pinned to the loopback address that
/// answers.
#[tokio::test]
async fn a_server_listed_under_two_names_is_refused_and_localhost_is_pinned() {
    let server = start();
    let twice = format!(
        "memcached://localhost:{port},127.0.0.1:{port}",
        port = server.port()
    );
    let lock = MemcachedLock::new();
    commons::Configurable::configure(
        &lock,
        &commons::ConfigParams::from_tuples([("connection.uri", twice)]),
    )
    .expect("configure");
    let err = commons::Openable::open(&lock, &Context::new())
        .await
        .expect_err("one server listed twice");
    assert_eq!(err.code(), commons::codes::BAD_CONFIG, "{err}");
    assert!(err.message().contains("same server"), "{err}");

    let local = open_lock(&format!("localhost:{}", server.port()), &[]).await;
    let status = local.server_status(&Context::new()).await.expect("status");
    assert_eq!(status[0].address, format!("localhost:{}", server.port()));
    assert_eq!(
        status[0].connects_to,
        server.address(),
        "pinned to where it answers"
    );
}

/// memcached counts a relative ttl from a clock that a timer advances once a second. A server
/// that was stopped resumes with that clock behind by the length of the stop, and an item
/// stored before the timer catches up expires early by as much (at once, here). Items are
/// stored with an absolute expiry by the server's clock instead, so a lease acquired (or
/// extended) as a stopped server resumes is never trusted past the moment its item can
/// vanish: another owner only gets the key once the first lease has stopped being valid.
#[tokio::test]
async fn a_lease_taken_as_a_paused_server_resumes_is_not_trusted_past_its_item() {
    through_a_pause(false, |a, ctx, key| async move {
        a.try_acquire_lease(&ctx, &key, Duration::from_secs(3))
            .await
            .expect("acquire")
            .expect("the key was free")
    })
    .await;
}

/// The same for an extend sent to a stopped server (a guard's renewal, for example).
#[tokio::test]
async fn a_lease_extended_as_a_paused_server_resumes_is_not_trusted_past_its_item() {
    through_a_pause(true, |a, ctx, key| async move {
        a.extend_lease(&ctx, &key, Duration::from_secs(3))
            .await
            .expect("extend")
            .expect("still held")
    })
    .await;
}

/// Runs `operation` (on a key that `a` holds for 20 s if `held`) while the server is stopped, resumes
/// it, and checks that `b` cannot take the key before the lease `operation` returned stops
/// being valid. Two rounds: memcached's timer wins the race with the queued request now and
/// then.
async fn through_a_pause<F, Fut>(held: bool, operation: F)
where
    F: Fn(Arc<MemcachedLock>, Context, String) -> Fut,
    Fut: std::future::Future<Output = lock_core::Lease> + Send + 'static,
{
    let server = start();
    let options = [("options.timeout", "10000")];
    let a = Arc::new(open_lock(&server.address(), &options).await);
    let b = open_lock(&server.address(), &options).await;
    let ctx = Context::new();
    // Both have worked with the server while it ran (and so read its clock).
    for lock in [&*a, &b] {
        let warm = unique_key("warm");
        assert!(
            lock.try_acquire_lock(&ctx, &warm, TTL)
                .await
                .expect("warm up")
        );
        lock.release_lock(&ctx, &warm).await.expect("release");
    }
    for round in 0..2 {
        let key = unique_key("stale-clock");
        if held {
            let acquired = a.try_acquire_lock(&ctx, &key, Duration::from_secs(20));
            assert!(acquired.await.expect("acquire"), "the key was free");
        }
        server.pause();
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let operating = tokio::spawn(operation(a.clone(), ctx.clone(), key.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.resume();
        let lease = operating.await.expect("join");
        let valid_until = tokio::time::Instant::now() + lease.remaining();
        let taken_at = loop {
            if b.try_acquire_lock(&ctx, &key, TTL).await.expect("b's try") {
                break tokio::time::Instant::now();
            }
            assert!(
                tokio::time::Instant::now() < valid_until + Duration::from_secs(10),
                "round {round}: the item never expired"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            taken_at >= valid_until,
            "round {round}: another owner took the key {:?} before the first lease stopped being valid",
            valid_until - taken_at
        );
        b.release_lock(&ctx, &key).await.expect("release");
    }
}
