//! The telemetry is asserted, not only compiled: a test subscriber captures the spans and
//! events of lock operations against a real memcached, and a debugging recorder (installed
//! once for this process, before any lock is created) counts acquires, busy results, a lost
//! lease and a restart detected. Metric assertions use deltas, and the tests of this binary
//! run one at a time (the recorder and its counters are process-wide).

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, Openable};
use lock_core::{Lock, LockGuard};
use lock_memcached::telemetry::{
    ACQUIRE_DURATION, ACQUIRES, EXTENDS, HELD_LEASES, LEASES_LOST, OUTCOME_UNKNOWN, RELEASES,
    REQUEST_DURATION, SERVER_RESTARTS, SERVERS_UP,
};
use lock_memcached::{MemcachedLock, MemcachedLockConfig, TelemetryKey};
use memcached_testkit::MemcachedServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::{TTL, open_lock, unique_key};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

// --- A subscriber layer that keeps what it sees ------------------------------------------

/// A closed span or an event: its name (an event's is its message), its fields, and the
/// name of its parent span.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    fields: BTreeMap<String, String>,
    parent: Option<String>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let name = fields.0.get("message").cloned().unwrap_or_default();
        let parent = ctx.event_span(event).map(|s| s.name().to_string());
        self.events.lock().unwrap().push(Seen {
            name,
            fields: fields.0,
            parent,
        });
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let fields = span.extensions_mut().remove::<Fields>().unwrap_or_default();
        self.spans.lock().unwrap().push(Seen {
            name: span.name().to_string(),
            fields: fields.0,
            parent: span.parent().map(|p| p.name().to_string()),
        });
    }
}

impl Capture {
    fn spans(&self, name: &str) -> Vec<Seen> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }

    fn events(&self) -> Vec<Seen> {
        self.events.lock().unwrap().clone()
    }
}

/// A subscriber for this thread only (the tests run on a current-thread runtime) that
/// captures everything, at every level.
fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let guard = tracing::subscriber::set_default(Registry::default().with(capture.clone()));
    (capture, guard)
}

// --- The recorder --------------------------------------------------------------------------

/// The process's debugging recorder, installed on first use (before any lock of this binary
/// is created: every test starts with [`serial`]).
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this process");
        snapshotter
    })
}

/// One test at a time (the counters are process-wide); installs the recorder first.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    snapshotter();
    SERIAL.lock().await
}

/// The metrics so far: counters and gauges as totals since the recorder was installed (the
/// debugging recorder hands out what changed since its previous snapshot, so the snapshots
/// are added up here), histograms with the samples recorded since the previous snapshot.
struct Metrics(Vec<(String, Labels, DebugValue)>);

/// A metric's labels, as (key, value) pairs.
type Labels = Vec<(String, String)>;

impl Metrics {
    fn now() -> Metrics {
        static TOTALS: Mutex<BTreeMap<(String, Labels), DebugValue>> = Mutex::new(BTreeMap::new());
        let mut totals = TOTALS.lock().unwrap();
        let mut samples = Vec::new();
        for (key, _, _, value) in snapshotter().snapshot().into_vec() {
            let key = key.key();
            let labels: Labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            let name = key.name().to_string();
            match value {
                DebugValue::Histogram(h) => samples.push((name, labels, DebugValue::Histogram(h))),
                DebugValue::Counter(n) => {
                    let total = totals
                        .entry((name, labels))
                        .or_insert(DebugValue::Counter(0));
                    if let DebugValue::Counter(t) = total {
                        *t += n;
                    }
                }
                DebugValue::Gauge(g) => {
                    let total = totals
                        .entry((name, labels))
                        .or_insert(DebugValue::Gauge(0.0.into()));
                    if let DebugValue::Gauge(t) = total {
                        *t = (t.0 + g.0).into();
                    }
                }
            }
        }
        let mut all: Vec<(String, Labels, DebugValue)> = totals
            .iter()
            .map(|((n, l), v)| {
                let v = match v {
                    DebugValue::Counter(c) => DebugValue::Counter(*c),
                    DebugValue::Gauge(g) => DebugValue::Gauge(*g),
                    DebugValue::Histogram(h) => DebugValue::Histogram(h.clone()),
                };
                (n.clone(), l.clone(), v)
            })
            .collect();
        all.extend(samples);
        Metrics(all)
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a DebugValue> + 'a {
        self.0
            .iter()
            .filter(move |(n, have, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
            })
            .map(|(_, _, value)| value)
    }

    /// The sum of the counters `name` whose labels include `labels`.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.matching(name, labels)
            .map(|v| match v {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    /// The sum of the gauges `name` whose labels include `labels`.
    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels)
            .map(|v| match v {
                DebugValue::Gauge(g) => g.0,
                other => panic!("{name} is not a gauge: {other:?}"),
            })
            .sum()
    }

    /// How many samples the histograms `name` whose labels include `labels` received.
    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.matching(name, labels)
            .map(|v| match v {
                DebugValue::Histogram(h) => h.len(),
                other => panic!("{name} is not a histogram: {other:?}"),
            })
            .sum()
    }
}

fn memcached() -> MemcachedServer {
    MemcachedServer::start().expect("memcached must be installed")
}

const SHARDED_ACQUIRED: &[(&str, &str)] = &[
    ("backend", "memcached"),
    ("mode", "sharded"),
    ("result", "acquired"),
];
const SHARDED_BUSY: &[(&str, &str)] = &[
    ("backend", "memcached"),
    ("mode", "sharded"),
    ("result", "busy"),
];

// --- Spans -----------------------------------------------------------------------------------

#[tokio::test]
async fn an_acquire_span_carries_its_fields_its_outcome_and_the_trace_id() {
    let _serial = serial().await;
    let server = memcached();
    let lock = open_lock(&server.address(), &[]).await;
    let other = open_lock(&server.address(), &[]).await;
    let key = unique_key("telemetry-span");
    let ctx = Context::with_trace_id("trace-7f3a");
    let (capture, _guard) = capture();

    assert!(lock.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    assert!(!other.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    lock.release_lock(&ctx, &key).await.unwrap();

    let spans = capture.spans("lock.try_acquire");
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let acquired = &spans[0];
    for (field, value) in [
        ("db.system.name", "memcached"),
        ("db.operation.name", "try_acquire"),
        ("server.address", server.host()),
        ("server.port", &server.port().to_string()),
        ("lock.key", &key),
        ("lock.ttl_ms", &TTL.as_millis().to_string()),
        ("lock.mode", "sharded"),
        ("lock.outcome", "acquired"),
        ("trace_id", "trace-7f3a"),
    ] {
        assert_eq!(
            acquired.field(field),
            Some(value),
            "{field} in {acquired:#?}"
        );
    }
    assert!(
        matches!(acquired.field("lock.protocol"), Some("meta" | "classic")),
        "{acquired:#?}"
    );
    assert_eq!(spans[1].field("lock.outcome"), Some("busy"));
    let release = capture.spans("lock.release");
    assert_eq!(release.len(), 1);
    assert_eq!(release[0].field("lock.outcome"), Some("released"));
    assert_eq!(release[0].field("trace_id"), Some("trace-7f3a"));
    // Per-request detail is a `debug` event inside the operation's span.
    let requests: Vec<Seen> = capture
        .events()
        .into_iter()
        .filter(|e| e.name == "memcached request")
        .collect();
    assert!(
        requests
            .iter()
            .any(|e| e.parent.as_deref() == Some("lock.try_acquire")
                && e.field("db.operation.name").is_some()),
        "{requests:#?}"
    );
}

#[tokio::test]
async fn a_waiting_acquire_has_one_span_with_its_attempts_as_events() {
    let _serial = serial().await;
    let server = memcached();
    let lock = open_lock(&server.address(), &[("options.retry_timeout", "20")]).await;
    let other = open_lock(&server.address(), &[]).await;
    let key = unique_key("telemetry-attempts");
    let ctx = Context::with_trace_id("trace-wait");
    assert!(other.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    let (capture, _guard) = capture();

    let err = lock
        .acquire_lock(&ctx, &key, TTL, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.code(), commons::codes::LOCK_TIMEOUT);

    let spans = capture.spans("lock.acquire");
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].field("lock.outcome"), Some("timed_out"));
    assert_eq!(spans[0].field("error.type"), Some("LOCK_TIMEOUT"));
    let attempts: Vec<Seen> = capture
        .events()
        .into_iter()
        .filter(|e| e.name == "acquire attempt")
        .collect();
    assert!(attempts.len() >= 2, "{attempts:#?}");
    assert!(attempts.iter().all(|a| {
        a.parent.as_deref() == Some("lock.acquire") && a.field("lock.outcome") == Some("busy")
    }));
    other.release_lock(&ctx, &key).await.unwrap();
}

#[tokio::test]
async fn the_key_in_spans_is_plain_hashed_or_left_out_as_configured() {
    let _serial = serial().await;
    let server = memcached();
    let key = unique_key("telemetry-redacted");
    let ctx = Context::new();
    let mut shown = Vec::new();
    for setting in ["plain", "hash", "none"] {
        let lock = open_lock(&server.address(), &[("options.telemetry_key", setting)]).await;
        let (capture, guard) = capture();
        lock.inspect_lock(&ctx, &key).await.unwrap();
        drop(guard);
        let spans = capture.spans("lock.inspect");
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].field("lock.outcome"), Some("free"));
        shown.push(spans[0].field("lock.key").map(str::to_string));
    }
    assert_eq!(shown[0].as_deref(), Some(key.as_str()));
    let hashed = shown[1].as_deref().expect("a hashed key");
    assert!(hashed.len() == 16 && hashed.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!hashed.contains(&key));
    assert_eq!(shown[2], None);
}

#[test]
fn telemetry_key_is_validated_like_the_other_options() {
    let parse = |v: &str| {
        MemcachedLockConfig::from_config(&ConfigParams::from_tuples([("options.telemetry_key", v)]))
    };
    assert_eq!(parse("hash").unwrap().telemetry_key, TelemetryKey::Hash);
    assert_eq!(parse("NONE").unwrap().telemetry_key, TelemetryKey::Omit);
    assert_eq!(
        MemcachedLockConfig::default().telemetry_key,
        TelemetryKey::Plain
    );
    let err = parse("sha1").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("options.telemetry_key") && message.contains("sha1"),
        "{message}"
    );
}

// --- Metrics ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_recorder_counts_acquires_busy_results_a_lost_lease_and_a_restart() {
    let _serial = serial().await;
    let ctx = Context::new();
    let before = Metrics::now();

    // Acquired, busy (twice), timed out, released, not ours; the held gauge follows.
    let server = memcached();
    let lock = open_lock(&server.address(), &[]).await;
    let other = open_lock(&server.address(), &[("options.retry_timeout", "20")]).await;
    let key = unique_key("telemetry-counts");
    assert!(lock.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    let holding = Metrics::now();
    assert!(!other.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    assert!(
        other
            .try_acquire_lease(&ctx, &key, TTL)
            .await
            .unwrap()
            .is_none()
    );
    let err = other
        .acquire_lock(&ctx, &key, TTL, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(err.code(), commons::codes::LOCK_TIMEOUT);
    assert!(lock.release_owned(&ctx, &key).await.unwrap());
    assert!(!other.release_owned(&ctx, &key).await.unwrap());
    let after = Metrics::now();

    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.counter(name, labels) - before.counter(name, labels)
    };
    assert_eq!(delta(ACQUIRES, SHARDED_ACQUIRED), 1);
    assert_eq!(delta(ACQUIRES, SHARDED_BUSY), 2);
    assert_eq!(delta(ACQUIRES, &[("result", "timed_out")]), 1);
    assert_eq!(delta(RELEASES, &[("result", "released")]), 1);
    assert_eq!(delta(RELEASES, &[("result", "not_ours")]), 1);
    assert_eq!(
        holding.samples(ACQUIRE_DURATION, SHARDED_ACQUIRED),
        1,
        "one acquire timed"
    );
    assert_eq!(after.samples(ACQUIRE_DURATION, SHARDED_BUSY), 2);
    let held = |m: &Metrics| m.gauge(HELD_LEASES, &[("mode", "sharded")]);
    assert_eq!(held(&holding) - held(&before), 1.0);
    assert_eq!(held(&after) - held(&before), 0.0);
    let server_label = server.address();
    assert!(
        holding.samples(
            REQUEST_DURATION,
            &[("server", &server_label), ("result", "ok")]
        ) >= 1,
        "the acquire's request was timed"
    );

    // A lease lost: its server stops answering (SIGSTOP) for longer than the validity.
    let paused = memcached();
    let fragile = Arc::new(open_lock(&paused.address(), &[("options.timeout", "300")]).await);
    let guard = LockGuard::acquire(
        fragile.clone(),
        &ctx,
        &unique_key("telemetry-lost"),
        Duration::from_secs(2),
        Duration::ZERO,
    )
    .await
    .expect("a guard");
    paused.pause();
    tokio::time::timeout(Duration::from_secs(10), guard.lost())
        .await
        .expect("the guard is lost once its validity passed");
    assert!(guard.is_lost());
    // An acquire sent to the stopped server: its outcome is unknown, and it is cleaned up.
    let unknown = fragile
        .try_acquire_lock(&ctx, &unique_key("telemetry-unknown"), TTL)
        .await
        .unwrap_err();
    assert_eq!(
        unknown.kind(),
        commons::ErrorKind::OutcomeUnknown,
        "{unknown}"
    );
    paused.resume();
    drop(guard);
    let lost = Metrics::now();
    assert_eq!(
        lost.counter(LEASES_LOST, &[("reason", "expired")])
            - before.counter(LEASES_LOST, &[("reason", "expired")]),
        1
    );
    assert_eq!(
        lost.counter(OUTCOME_UNKNOWN, &[]) - before.counter(OUTCOME_UNKNOWN, &[]),
        1
    );

    // A restart detected: the next connection to the server finds another boot.
    let mut restarting = memcached();
    let address = restarting.address();
    let lock = open_lock(&address, &[]).await;
    let restarts = |m: &Metrics| m.counter(SERVER_RESTARTS, &[("server", &address)]);
    let known = restarts(&Metrics::now());
    restarting.restart().expect("restart");
    let mut seen = false;
    for _ in 0..50 {
        let _ = lock
            .try_acquire_lock(&ctx, &unique_key("telemetry-restart"), TTL)
            .await;
        if restarts(&Metrics::now()) > known {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the restart was counted");
}

#[tokio::test]
async fn servers_up_counts_each_open_lock_while_it_sees_the_server_up() {
    let _serial = serial().await;
    let ctx = Context::new();
    let server = memcached();
    let address = server.address();
    let up = || Metrics::now().gauge(SERVERS_UP, &[("server", &address)]);
    let before = up();
    let a = open_lock(
        &address,
        &[("options.failures", "1"), ("options.timeout", "200")],
    )
    .await;
    let b = open_lock(&address, &[]).await;
    assert_eq!(up() - before, 2.0, "two open locks see the server up");

    // Marked down by `a` (one failure is enough): `a` no longer counts it.
    server.pause();
    let _ = a
        .try_acquire_lock(&ctx, &unique_key("telemetry-down"), TTL)
        .await
        .expect_err("the server is stopped");
    assert_eq!(up() - before, 1.0, "`a` marked it down");
    server.resume();

    b.close(&ctx).await.expect("close");
    assert_eq!(up() - before, 0.0, "a closed lock leaves the gauge");
    a.close(&ctx).await.expect("close");
    assert_eq!(
        up() - before,
        0.0,
        "a lock that saw the server down had nothing to take back"
    );
}

#[tokio::test]
async fn a_quorum_server_is_reported_entering_and_leaving_quarantine() {
    let _serial = serial().await;
    let ctx = Context::new();
    let servers: Vec<MemcachedServer> = (0..3).map(|_| memcached()).collect();
    let hosts: Vec<String> = servers.iter().map(MemcachedServer::address).collect();
    let lock = MemcachedLock::new();
    lock.configure(&ConfigParams::from_tuples([
        ("connection.uri", format!("memcached://{}", hosts.join(","))),
        ("options.mode", "quorum".to_string()),
        ("options.max_ttl", "2000".to_string()),
        ("options.quarantine", "2000".to_string()),
    ]))
    .expect("configure");
    let (capture, _guard) = capture();
    lock.open(&ctx).await.expect("open");
    // Just started: every server is in quarantine, no majority counts.
    let err = lock
        .try_acquire_lock(
            &ctx,
            &unique_key("telemetry-quarantine"),
            Duration::from_secs(2),
        )
        .await
        .expect_err("no server counts yet");
    assert_eq!(err.code(), lock_memcached::codes::NO_QUORUM, "{err}");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(
        lock.try_acquire_lock(
            &ctx,
            &unique_key("telemetry-quarantine"),
            Duration::from_secs(2)
        )
        .await
        .expect("after the quarantine")
    );
    // Once each: later answers say nothing more.
    assert!(
        lock.try_acquire_lock(
            &ctx,
            &unique_key("telemetry-quarantine"),
            Duration::from_secs(2)
        )
        .await
        .expect("again")
    );
    let events = capture.events();
    let reported = |message: &str, host: &str| {
        events
            .iter()
            .filter(|e| e.name.starts_with(message) && e.field("server.address") == Some(host))
            .count()
    };
    // An acquire decides once a majority answered: a server's late answer may go unexamined,
    // so not every server is necessarily reported. Each is reported at most once, and out of
    // quarantine only after in it.
    let (mut entered, mut left) = (0, 0);
    for host in &hosts {
        let inside = reported("memcached server in quarantine", host);
        let out = reported("memcached server out of quarantine", host);
        assert!(
            inside <= 1 && out <= inside,
            "{host}: {inside} in, {out} out: {events:#?}"
        );
        entered += inside;
        left += out;
    }
    assert!(
        entered >= 2,
        "a majority was seen in quarantine: {events:#?}"
    );
    assert!(
        left >= 1,
        "a server was seen leaving quarantine: {events:#?}"
    );
}

#[tokio::test]
async fn memory_lock_operations_are_counted_under_the_same_names() {
    let _serial = serial().await;
    let ctx = Context::new();
    let before = Metrics::now();
    let lock = lock_core::MemoryLock::new();
    let other = lock.shared_with();
    let key = unique_key("telemetry-memory");
    assert!(lock.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    assert!(!other.try_acquire_lock(&ctx, &key, TTL).await.unwrap());
    let err = other
        .acquire_lock(&ctx, &key, TTL, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.code(), commons::codes::LOCK_TIMEOUT);
    assert!(lock.extend_lease(&ctx, &key, TTL).await.unwrap().is_some());
    assert!(!other.release_owned(&ctx, &key).await.unwrap());
    assert!(lock.release_owned(&ctx, &key).await.unwrap());
    let after = Metrics::now();

    let memory =
        |result: &'static str| [("backend", "memory"), ("mode", "local"), ("result", result)];
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.counter(name, labels) - before.counter(name, labels)
    };
    assert_eq!(delta(ACQUIRES, &memory("acquired")), 1);
    assert_eq!(delta(ACQUIRES, &memory("busy")), 1);
    assert_eq!(delta(ACQUIRES, &memory("timed_out")), 1);
    assert_eq!(delta(EXTENDS, &memory("extended")), 1);
    assert_eq!(delta(RELEASES, &memory("released")), 1);
    assert_eq!(delta(RELEASES, &memory("not_ours")), 1);
    assert_eq!(
        after.samples(ACQUIRE_DURATION, &memory("timed_out")),
        1,
        "a waiting acquire is timed"
    );
}
