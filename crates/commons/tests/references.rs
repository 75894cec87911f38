//! References lookups, MemoryDiscovery configuration, Opener/Closer order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use commons::{
    Closer, Component, ConfigParams, Configurable, ConnectionParams, Context, Descriptor,
    Discovery, Error, ErrorKind, MemoryDiscovery, Openable, Opener, References, Result, codes,
    component,
};

trait Named: Send + Sync + std::fmt::Debug {
    fn name(&self) -> String;
}

#[derive(Debug)]
struct Thing(&'static str);
impl Named for Thing {
    fn name(&self) -> String {
        self.0.to_string()
    }
}

fn d(kind: &str, name: &str) -> Descriptor {
    Descriptor::new("test", "thing", kind, name, "1.0")
}

fn named(name: &'static str) -> Component {
    component!(Arc::new(Thing(name)) => dyn Named)
}

fn names(found: &[Arc<dyn Named>]) -> Vec<String> {
    found.iter().map(|n| n.name()).collect()
}

#[test]
fn newest_registration_wins() {
    let refs = References::new();
    refs.put(d("a", "one"), named("old"));
    refs.put(d("a", "two"), named("new"));
    let any = Descriptor::new("test", "thing", "*", "*", "*");
    assert_eq!(
        refs.get_one_required::<dyn Named>(&any).unwrap().name(),
        "new"
    );
    assert_eq!(
        refs.get_one_optional::<dyn Named>(&d("a", "one"))
            .unwrap()
            .name(),
        "old"
    );
}

#[test]
fn get_optional_and_required_are_newest_first() {
    let refs = References::new();
    for n in ["1", "2", "3"] {
        refs.put(d("k", n), named(Box::leak(n.to_string().into_boxed_str())));
    }
    refs.put(
        Descriptor::new("test", "other", "k", "x", "1.0"),
        named("other"),
    );
    let locator = Descriptor::new("*", "thing", "*", "*", "*");
    assert_eq!(
        names(&refs.get_optional::<dyn Named>(&locator)),
        vec!["3", "2", "1"]
    );
    assert_eq!(
        names(&refs.get_required::<dyn Named>(&locator).unwrap()),
        vec!["3", "2", "1"]
    );
    assert!(refs.get_optional::<dyn Named>(&d("none", "*")).is_empty());
}

#[test]
fn required_lookup_of_a_missing_component_is_ref_error_with_locator() {
    let refs = References::new();
    refs.put(d("a", "x"), named("x"));
    let locator = Descriptor::new("*", "discovery", "*", "*", "1.0");
    let err = refs.get_one_required::<dyn Named>(&locator).unwrap_err();
    assert_eq!(err.code(), codes::REF_ERROR);
    assert_eq!(err.kind(), ErrorKind::Reference);
    assert_eq!(err.detail("locator"), Some("*:discovery:*:*:1.0"));
    let err = refs.get_required::<dyn Named>(&locator).unwrap_err();
    assert_eq!(err.detail("locator"), Some("*:discovery:*:*:1.0"));
    assert!(refs.get_one_optional::<dyn Named>(&locator).is_none());
}

#[test]
fn a_component_not_exposing_the_trait_is_skipped() {
    let refs = References::new();
    refs.put(d("a", "exposes"), named("exposes"));
    // Newer, matching, but registered without the `Named` interface.
    refs.put(d("a", "hidden"), Component::new(Arc::new(Thing("hidden"))));
    let any = Descriptor::new("*", "*", "*", "*", "*");
    assert_eq!(
        refs.get_one_required::<dyn Named>(&any).unwrap().name(),
        "exposes"
    );
    assert_eq!(refs.get_optional::<dyn Named>(&any).len(), 1);
    // The concrete type is always available.
    assert_eq!(refs.get_optional::<Thing>(&any).len(), 2);
    let err = refs
        .get_one_required::<dyn Named>(&d("a", "hidden"))
        .unwrap_err();
    assert_eq!(err.code(), codes::REF_ERROR);
}

#[test]
fn trait_lookup_returns_the_same_instance() {
    let refs = References::new();
    let thing = Arc::new(Thing("same"));
    let c = Component::new(thing.clone()).expose::<dyn Named>(thing.clone());
    assert!(c.is_same(&thing));
    assert!(c.type_name().contains("Thing"));
    refs.put(d("a", "s"), c);
    let concrete = refs.get_one_required::<Thing>(&d("a", "s")).unwrap();
    assert!(Arc::ptr_eq(&concrete, &thing));
    assert_eq!(refs.get_all_as::<dyn Named>().len(), 1);
    assert_eq!(refs.get_all()[0].0, d("a", "s"));
}

#[test]
fn remove_takes_the_newest_match_and_remove_all_takes_every_match() {
    let refs = References::new();
    refs.put(d("a", "1"), named("1"));
    refs.put(d("a", "2"), named("2"));
    refs.put(d("b", "3"), named("3"));
    let removed = refs.remove(&d("a", "*")).unwrap();
    assert_eq!(removed.get::<dyn Named>().unwrap().name(), "2");
    assert_eq!(refs.len(), 2);
    assert!(refs.remove(&d("zzz", "*")).is_none());
    refs.put(d("a", "4"), named("4"));
    let all = refs.remove_all(&d("a", "*"));
    assert_eq!(
        all.iter()
            .map(|c| c.get::<dyn Named>().unwrap().name())
            .collect::<Vec<_>>(),
        ["4", "1"]
    );
    assert_eq!(refs.len(), 1);
    refs.clear();
    assert!(refs.is_empty());
}

#[test]
fn remove_component_removes_only_that_instance() {
    let refs = References::new();
    let first = named("first");
    refs.put(d("a", "x"), first.clone());
    refs.put(d("a", "x"), named("second"));
    assert!(refs.remove_component(&first));
    assert!(!refs.remove_component(&first));
    assert_eq!(
        refs.get_one_required::<dyn Named>(&d("a", "x"))
            .unwrap()
            .name(),
        "second"
    );
}

#[test]
fn clones_share_entries_and_threads_can_use_them() {
    let refs = References::new();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let refs = refs.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    refs.put(d("t", &format!("{t}-{i}")), named("x"));
                    let found = refs.get_optional::<dyn Named>(&d("t", "*"));
                    assert!(!found.is_empty());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(refs.len(), 400);
    assert_eq!(refs.remove_all(&d("t", "*")).len(), 400);
    assert!(refs.is_empty());
}

#[tokio::test]
async fn memory_discovery_reads_sections() {
    let discovery = MemoryDiscovery::new();
    discovery
        .configure(&ConfigParams::from_string(
            "key1.host=10.0.0.1;key1.port=11211;key2.uri=memcached://h:1",
        ))
        .unwrap();
    let ctx = Context::new();
    let one = discovery.resolve_one(&ctx, "key1").await.unwrap().unwrap();
    assert_eq!((one.host(), one.port()), (Some("10.0.0.1"), Some(11211)));
    let two = discovery.resolve_all(&ctx, "key2").await.unwrap();
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].uri(), Some("memcached://h:1"));
    assert!(discovery.resolve_one(&ctx, "key3").await.unwrap().is_none());
    assert!(
        discovery
            .resolve_all(&ctx, "key3")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn memory_discovery_reads_the_older_string_form() {
    let mut config = ConfigParams::new();
    config.set("key1", "host=10.0.0.2;port=11300");
    config.set("key2.host", "sectioned");
    let discovery = MemoryDiscovery::from_config(&config);
    let ctx = Context::new();
    let one = discovery.resolve_one(&ctx, "key1").await.unwrap().unwrap();
    assert_eq!((one.host(), one.port()), (Some("10.0.0.2"), Some(11300)));
    let two = discovery.resolve_one(&ctx, "key2").await.unwrap().unwrap();
    assert_eq!(two.host(), Some("sectioned"));
}

#[tokio::test]
async fn memory_discovery_register_appends_and_configure_replaces() {
    let ctx = Context::new();
    let discovery = MemoryDiscovery::from_config(&ConfigParams::from_string("k.host=a"));
    discovery
        .register(&ctx, "k", ConnectionParams::from_host_port("b", 2))
        .await
        .unwrap();
    let all = discovery.resolve_all(&ctx, "k").await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.host().unwrap()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        discovery
            .resolve_one(&ctx, "k")
            .await
            .unwrap()
            .unwrap()
            .host(),
        Some("a")
    );
    let config = ConfigParams::from_string("k.host=c");
    discovery.configure(&config).unwrap();
    discovery.configure(&config).unwrap();
    let all = discovery.resolve_all(&ctx, "k").await.unwrap();
    assert_eq!(
        all.len(),
        1,
        "configuring twice does not duplicate: {all:?}"
    );
    assert_eq!(all[0].host(), Some("c"));
}

/// Records open/close calls in a shared log; fails when told to.
struct Step {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    fail_open: bool,
    fail_close: bool,
    open: AtomicBool,
}

impl Step {
    fn new(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Self {
        Step {
            name,
            log: log.clone(),
            fail_open: false,
            fail_close: false,
            open: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl Openable for Step {
    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }
    async fn open(&self, ctx: &Context) -> Result<()> {
        self.log.lock().unwrap().push(format!("open {}", self.name));
        if self.fail_open {
            return Err(Error::internal(format!("{} open failed", self.name)).with_context(ctx));
        }
        self.open.store(true, Ordering::SeqCst);
        Ok(())
    }
    async fn close(&self, _ctx: &Context) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("close {}", self.name));
        self.open.store(false, Ordering::SeqCst);
        if self.fail_close {
            return Err(Error::internal(format!("{} close failed", self.name)));
        }
        Ok(())
    }
}

fn log_of(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn opener_opens_in_order_and_closer_closes_in_reverse() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let list: Vec<Arc<dyn Openable>> = vec![
        Arc::new(Step::new("a", &log)),
        Arc::new(Step::new("b", &log)),
        Arc::new(Step::new("c", &log)),
    ];
    let ctx = Context::new();
    assert!(!Opener::is_open(&list));
    Opener::open(&ctx, &list).await.unwrap();
    assert!(Opener::is_open(&list));
    Closer::close(&ctx, &list).await.unwrap();
    assert_eq!(
        log_of(&log),
        [
            "open a", "open b", "open c", "close c", "close b", "close a"
        ]
    );
    assert!(list.iter().all(|c| !c.is_open()));
    assert!(Opener::is_open(&[]));
}

#[tokio::test]
async fn opener_stops_at_the_first_error() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut b = Step::new("b", &log);
    b.fail_open = true;
    let list: Vec<Arc<dyn Openable>> = vec![
        Arc::new(Step::new("a", &log)),
        Arc::new(b),
        Arc::new(Step::new("c", &log)),
    ];
    let err = Opener::open(&Context::with_trace_id("t"), &list)
        .await
        .unwrap_err();
    assert_eq!(err.message(), "b open failed");
    assert_eq!(err.trace_id(), Some("t"));
    assert_eq!(log_of(&log), ["open a", "open b"], "c is never opened");
    assert!(list[0].is_open() && !list[2].is_open());
}

#[tokio::test]
async fn closer_tries_all_and_returns_the_first_error() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut a = Step::new("a", &log);
    a.fail_close = true;
    let mut c = Step::new("c", &log);
    c.fail_close = true;
    let list: Vec<Arc<dyn Openable>> =
        vec![Arc::new(a), Arc::new(Step::new("b", &log)), Arc::new(c)];
    let err = Closer::close(&Context::new(), &list).await.unwrap_err();
    assert_eq!(err.message(), "c close failed", "c is closed first");
    assert_eq!(log_of(&log), ["close c", "close b", "close a"]);
}
