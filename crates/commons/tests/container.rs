//! Container: creation through factories, configure/wire/open order, close in reverse, errors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use commons::{
    ConfigParams, Configurable, Container, Context, DISCOVERY_FACTORY_DESCRIPTOR,
    DefaultDiscoveryFactory, Descriptor, Discovery, Error, ErrorKind, Factory, FactoryRegistry,
    Openable, Referenceable, References, Result, Unreferenceable, codes, component,
};
use serde_json::json;

type Log = Arc<Mutex<Vec<String>>>;

/// A component that records every lifecycle call; `fail` names a step at which it fails.
struct Recorder {
    log: Log,
    name: Mutex<String>,
    fail: Mutex<String>,
    open: AtomicBool,
    peers: Mutex<usize>,
}

impl Recorder {
    fn record(&self, step: &str) -> Result<()> {
        let name = self.name.lock().unwrap().clone();
        self.log.lock().unwrap().push(format!("{step} {name}"));
        if *self.fail.lock().unwrap() == step {
            return Err(Error::internal(format!("{name} failed at {step}")));
        }
        Ok(())
    }
}

impl Configurable for Recorder {
    fn configure(&self, config: &ConfigParams) -> Result<()> {
        *self.name.lock().unwrap() = config.get_as_string_with_default("name", "?");
        *self.fail.lock().unwrap() = config.get_as_string_with_default("fail", "");
        self.record("configure")
    }
}

impl Referenceable for Recorder {
    fn set_references(&self, references: &References) -> Result<()> {
        // Every component sees every other one already registered.
        *self.peers.lock().unwrap() = references
            .get_optional::<Recorder>(&Descriptor::new("test", "*", "*", "*", "*"))
            .len();
        self.record("set_references")
    }
}

impl Unreferenceable for Recorder {
    fn unset_references(&self) {
        let _ = self.record("unset_references");
    }
}

#[async_trait]
impl Openable for Recorder {
    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }
    async fn open(&self, _ctx: &Context) -> Result<()> {
        self.record("open")?;
        self.open.store(true, Ordering::SeqCst);
        Ok(())
    }
    async fn close(&self, _ctx: &Context) -> Result<()> {
        self.open.store(false, Ordering::SeqCst);
        self.record("close")
    }
}

fn recorder_factory(log: &Log) -> Arc<dyn Factory> {
    let mut factory = FactoryRegistry::new("test");
    let log = log.clone();
    factory.register(Descriptor::new("test", "recorder", "*", "*", "1.0"), move |_| {
        let r = Arc::new(Recorder {
            log: log.clone(),
            name: Mutex::new(String::new()),
            fail: Mutex::new(String::new()),
            open: AtomicBool::new(false),
            peers: Mutex::new(0),
        });
        Ok(component!(r => dyn Configurable, dyn Referenceable, dyn Unreferenceable, dyn Openable))
    });
    Arc::new(factory)
}

/// A container of recorder `components` and the log they write to.
fn container_with(components: serde_json::Value) -> (Log, Container) {
    let log: Log = Arc::default();
    let mut c = Container::new();
    c.add_factory(recorder_factory(&log));
    c.read_config(&json!({ "components": components })).unwrap();
    (log, c)
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// What closing the components a, b and c (opened in that order) logs: each closed,
/// then each unregistered, in reverse order.
const CLOSE_ORDER_OF_A_B_C: [&str; 6] = [
    "close c",
    "close b",
    "close a",
    "unset_references c",
    "unset_references b",
    "unset_references a",
];

fn three() -> serde_json::Value {
    json!([
        {"descriptor": "test:recorder:a:one:1.0", "name": "a"},
        {"descriptor": "test:recorder:b:two:1.0", "name": "b"},
        {"descriptor": "test:recorder:c:three:1.0", "name": "c"}
    ])
}

#[tokio::test]
async fn happy_path_configures_wires_then_opens_in_order_and_closes_in_reverse() {
    let (log, container) = container_with(three());
    let ctx = Context::new();
    container.open(&ctx).await.unwrap();
    assert!(container.is_open());
    assert_eq!(
        taken(&log),
        [
            "configure a",
            "configure b",
            "configure c",
            "set_references a",
            "set_references b",
            "set_references c",
            "open a",
            "open b",
            "open c",
        ]
    );
    let all = container
        .references()
        .get_optional::<Recorder>(&Descriptor::new("test", "*", "*", "*", "*"));
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|r| *r.peers.lock().unwrap() == 3 && r.is_open())
    );
    let b = container
        .references()
        .get_one_required::<dyn Openable>(&"test:recorder:b:two:1.0".parse().unwrap())
        .unwrap();
    assert!(b.is_open());

    container.close(&ctx).await.unwrap();
    assert!(!container.is_open());
    assert_eq!(taken(&log), CLOSE_ORDER_OF_A_B_C);
    assert!(all.iter().all(|r| !r.is_open()));
    assert_eq!(
        container.references().len(),
        0,
        "registrations are removed on close"
    );
}

#[tokio::test]
async fn open_and_close_twice_are_no_ops_and_reopen_creates_fresh_components() {
    let (log, container) =
        container_with(json!([{"descriptor": "test:recorder:a:one:1.0", "name": "a"}]));
    let ctx = Context::new();
    container.open(&ctx).await.unwrap();
    container.open(&ctx).await.unwrap();
    assert_eq!(taken(&log).len(), 3);
    container.close(&ctx).await.unwrap();
    container.close(&ctx).await.unwrap();
    assert_eq!(taken(&log), ["close a", "unset_references a"]);
    container.open(&ctx).await.unwrap();
    assert_eq!(container.references().len(), 1);
    container.close(&ctx).await.unwrap();
}

#[tokio::test]
async fn unknown_descriptor_fails_with_cannot_create_listing_known_ones() {
    let (log, container) = container_with(json!([
        {"descriptor": "test:recorder:a:one:1.0", "name": "a"},
        {"descriptor": "pip-services:lock:nothing:default:1.0"}
    ]));
    let err = container
        .open(&Context::with_trace_id("boot"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::CANNOT_CREATE);
    assert_eq!(err.kind(), ErrorKind::Creation);
    assert_eq!(
        err.detail("locator"),
        Some("pip-services:lock:nothing:default:1.0")
    );
    let known = err.detail("known").unwrap();
    assert!(known.contains("test:recorder:*:*:1.0"), "{known}");
    assert!(
        known.contains("pip-services:discovery:memory:*:1.0"),
        "{known}"
    );
    assert_eq!(err.trace_id(), Some("boot"));
    assert!(!container.is_open());
    assert!(taken(&log).is_empty(), "nothing was configured or opened");
    assert!(
        container.references().is_empty(),
        "nothing stays registered"
    );
}

#[tokio::test]
async fn failed_open_closes_the_opened_ones_in_reverse_and_unregisters_everything() {
    let (log, container) = container_with(json!([
        {"descriptor": "test:recorder:a:one:1.0", "name": "a"},
        {"descriptor": "test:recorder:b:two:1.0", "name": "b"},
        {"descriptor": "test:recorder:c:three:1.0", "name": "c", "fail": "open"},
        {"descriptor": "test:recorder:d:four:1.0", "name": "d"}
    ]));
    let err = container
        .open(&Context::with_trace_id("t"))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "c failed at open");
    assert_eq!(err.detail("descriptor"), Some("test:recorder:c:three:1.0"));
    assert_eq!(err.trace_id(), Some("t"));
    let log = taken(&log);
    let after_wiring: Vec<_> = log.iter().skip(8).map(String::as_str).collect();
    assert_eq!(
        after_wiring,
        [
            "open a",
            "open b",
            "open c",
            "close b",
            "close a",
            "unset_references d",
            "unset_references c",
            "unset_references b",
            "unset_references a",
        ]
    );
    assert!(!container.is_open());
    assert!(container.references().is_empty());
}

#[tokio::test]
async fn failed_configure_stops_before_anything_is_opened() {
    let (log, container) = container_with(json!([
        {"descriptor": "test:recorder:a:one:1.0", "name": "a"},
        {"descriptor": "test:recorder:b:two:1.0", "name": "b", "fail": "configure"}
    ]));
    let err = container.open(&Context::new()).await.unwrap_err();
    assert_eq!(err.message(), "b failed at configure");
    assert_eq!(taken(&log), ["configure a", "configure b"]);
    assert!(container.references().is_empty());
}

#[tokio::test]
async fn close_tries_every_component_and_returns_the_first_error() {
    let (log, container) = container_with(json!([
        {"descriptor": "test:recorder:a:one:1.0", "name": "a", "fail": "close"},
        {"descriptor": "test:recorder:b:two:1.0", "name": "b"},
        {"descriptor": "test:recorder:c:three:1.0", "name": "c", "fail": "close"}
    ]));
    container.open(&Context::new()).await.unwrap();
    taken(&log);
    let err = container
        .close(&Context::with_trace_id("bye"))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "c failed at close");
    assert_eq!(err.trace_id(), Some("bye"));
    assert_eq!(taken(&log), CLOSE_ORDER_OF_A_B_C);
    assert!(!container.is_open());
}

#[tokio::test]
async fn newest_factory_wins() {
    let (log, mut container) =
        container_with(json!([{"descriptor": "test:recorder:a:one:1.0", "name": "a"}]));
    let mut newer = FactoryRegistry::new("newer");
    newer.register(Descriptor::new("test", "recorder", "a", "*", "*"), |_| {
        Ok(commons::Component::new(Arc::new("from newer factory")))
    });
    container.add_factory(Arc::new(newer));
    container.open(&Context::new()).await.unwrap();
    let made = container
        .references()
        .get_one_required::<&str>(&Descriptor::new("test", "*", "*", "*", "*"))
        .unwrap();
    assert_eq!(*made, "from newer factory");
    assert!(taken(&log).is_empty(), "the older factory was not used");
    container.close(&Context::new()).await.unwrap();
}

#[tokio::test]
async fn default_discovery_factory_is_included_and_configured() {
    let mut container = Container::new();
    container
        .read_config_str(
            r#"[{"descriptor": "pip-services:discovery:memory:default:1.0",
                 "cache": {"host": "h", "port": 1}, "old": "host=o;port=2"}]"#,
        )
        .unwrap();
    let ctx = Context::new();
    container.open(&ctx).await.unwrap();
    let d = container
        .references()
        .get_one_required::<dyn Discovery>(&Descriptor::new("*", "discovery", "*", "*", "*"))
        .unwrap();
    assert_eq!(
        d.resolve_one(&ctx, "cache").await.unwrap().unwrap().port(),
        Some(1)
    );
    assert_eq!(
        d.resolve_one(&ctx, "old").await.unwrap().unwrap().host(),
        Some("o")
    );
    container.close(&ctx).await.unwrap();
    assert_eq!(
        DISCOVERY_FACTORY_DESCRIPTOR,
        DefaultDiscoveryFactory::descriptor().to_string()
    );
}

#[test]
fn read_config_errors_change_nothing() {
    let mut container = Container::new();
    container
        .read_config(&json!({"components": [{"descriptor": "a:b:c:d:e"}]}))
        .unwrap();
    let cases = [
        (
            json!({"components": [{"descriptor": "a:b:c:d"}]}),
            codes::BAD_DESCRIPTOR,
        ),
        (
            json!({"components": [{"name": "no descriptor"}]}),
            codes::BAD_CONFIG,
        ),
        (
            json!({"components": [{"descriptor": 5}]}),
            codes::BAD_CONFIG,
        ),
        (json!({"components": ["not an object"]}), codes::BAD_CONFIG),
        (
            json!({"components": {"descriptor": "a:b:c:d:e"}}),
            codes::BAD_CONFIG,
        ),
        (json!({"nothing": []}), codes::BAD_CONFIG),
        (json!("text"), codes::BAD_CONFIG),
    ];
    for (doc, code) in cases {
        let err = container.read_config(&doc).unwrap_err();
        assert_eq!(err.code(), code, "{doc}");
    }
    let err = container
        .read_config(&json!({"components": [{}]}))
        .unwrap_err();
    assert_eq!(err.detail("key"), Some("components.0.descriptor"));
    let err = container.read_config_str("{oops").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(
        container.component_descriptors(),
        vec![Descriptor::new("a", "b", "c", "d", "e")]
    );
}

#[test]
fn component_config_is_the_object_minus_descriptor() {
    let mut container = Container::new();
    container
        .read_config(&json!([
            {"descriptor": "g:t:k:n:1.0", "options": {"timeout": 5}},
            {"descriptor": " g : t : k : m : 1.0 "}
        ]))
        .unwrap();
    assert_eq!(
        container.component_descriptors(),
        vec![
            Descriptor::new("g", "t", "k", "n", "1.0"),
            Descriptor::new("g", "t", "k", "m", "1.0")
        ]
    );
    assert!(format!("{container:?}").contains("g:t:k:n:1.0"));
}

#[tokio::test]
async fn component_config_reaches_configure() {
    let seen: Arc<Mutex<Option<ConfigParams>>> = Arc::default();
    struct Capture(Arc<Mutex<Option<ConfigParams>>>);
    impl Configurable for Capture {
        fn configure(&self, config: &ConfigParams) -> Result<()> {
            *self.0.lock().unwrap() = Some(config.clone());
            Ok(())
        }
    }
    let mut factory = FactoryRegistry::new("capture");
    let s = seen.clone();
    factory.register(Descriptor::new("g", "capture", "*", "*", "*"), move |_| {
        Ok(component!(Arc::new(Capture(s.clone())) => dyn Configurable))
    });
    let mut container = Container::new();
    container.add_factory(Arc::new(factory));
    container
        .read_config(
            &json!([{"descriptor": "g:capture:k:n:1.0", "options": {"timeout": 5}, "tags": ["x"]}]),
        )
        .unwrap();
    container.open(&Context::new()).await.unwrap();
    let config = seen.lock().unwrap().clone().unwrap();
    assert_eq!(
        config,
        ConfigParams::from_string("options.timeout=5;tags.0=x")
    );
    container.close(&Context::new()).await.unwrap();
}
