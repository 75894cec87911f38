//! ConnectionResolver rules.

use std::sync::Arc;

use commons::{
    ConfigParams, ConnectionParams, ConnectionResolver, Context, Descriptor, Discovery, ErrorKind,
    MemoryDiscovery, References, codes, component, no_connection_error,
};
use serde_json::json;

fn resolver(config: &str) -> ConnectionResolver {
    ConnectionResolver::from_config(&ConfigParams::from_string(config)).unwrap()
}

async fn resolve(config: &str) -> Vec<ConnectionParams> {
    resolver(config).resolve_all(&Context::new()).await.unwrap()
}

/// Host and port of each connection; a connection without a port shows the port the
/// component would apply (memcached's, for these tests).
fn endpoints(list: &[ConnectionParams]) -> Vec<(String, u16)> {
    list.iter()
        .map(|c| (c.host().unwrap().to_string(), c.port_or(11211)))
        .collect()
}

fn ep(host: &str, port: u16) -> (String, u16) {
    (host.to_string(), port)
}

fn with_discovery(refs: &References, name: &str, config: &str) {
    let discovery = Arc::new(MemoryDiscovery::from_config(&ConfigParams::from_string(
        config,
    )));
    refs.put(
        Descriptor::new("pip-services", "discovery", "memory", name, "1.0"),
        component!(discovery => dyn Discovery),
    );
}

/// The error of resolving `connection.discovery_key=cache` with one discovery that holds
/// `discovered`.
async fn discovered_error(discovered: &str, trace_id: &str) -> commons::Error {
    let refs = References::new();
    with_discovery(&refs, "d", discovered);
    let mut r = resolver("connection.discovery_key=cache");
    r.set_references(&refs);
    r.resolve_all(&Context::with_trace_id(trace_id))
        .await
        .expect_err("resolving what discovery holds should fail")
}

#[tokio::test]
async fn connection_section_is_one_connection() {
    let list = resolve("connection.host=h;connection.port=1234;connection.protocol=tcp").await;
    assert_eq!(endpoints(&list), [ep("h", 1234)]);
    assert_eq!(list[0].protocol(), Some("tcp"));
}

#[tokio::test]
async fn a_missing_port_is_left_to_the_component_and_host_falls_back_to_ip() {
    let list = resolve("connection.ip=10.1.1.1").await;
    assert_eq!(
        list[0].port(),
        None,
        "the framework knows no backend's default port"
    );
    assert_eq!(endpoints(&list), [ep("10.1.1.1", 11211)]);
    assert_eq!(list[0].get("host"), Some("10.1.1.1"), "host is filled in");
}

#[tokio::test]
async fn connections_sections_win_over_connection() {
    let list = resolve(
        "connection.host=ignored;connections.a.host=h1;connections.b.host=h2;connections.b.port=2",
    )
    .await;
    assert_eq!(endpoints(&list), [ep("h1", 11211), ep("h2", 2)]);
}

#[tokio::test]
async fn connections_from_a_json_array_keep_their_order() {
    let hosts: Vec<_> = (0..12).map(|i| json!({"host": format!("h{i}")})).collect();
    let config = ConfigParams::from_json(&json!({"connections": hosts})).unwrap();
    let list = ConnectionResolver::from_config(&config)
        .unwrap()
        .resolve_all(&Context::new())
        .await
        .unwrap();
    let got: Vec<_> = list.iter().map(|c| c.host().unwrap().to_string()).collect();
    let want: Vec<_> = (0..12).map(|i| format!("h{i}")).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn connections_string_form_is_accepted() {
    let mut config = ConfigParams::new();
    config.set("connections.main", "host=m;port=5");
    let list = ConnectionResolver::from_config(&config)
        .unwrap()
        .resolve_all(&Context::new())
        .await
        .unwrap();
    assert_eq!(endpoints(&list), [ep("m", 5)]);
}

#[tokio::test]
async fn top_level_host_and_port_are_one_connection_when_no_section_exists() {
    // The original's documented example.
    let list = resolve("host=localhost;port=11212;options.timeout=500").await;
    assert_eq!(endpoints(&list), [ep("localhost", 11212)]);
    assert_eq!(
        list[0].get("options.timeout"),
        None,
        "only connection keys are taken"
    );
    // A section present: the top level is ignored.
    let list = resolve("host=top;connection.host=section").await;
    assert_eq!(endpoints(&list), [ep("section", 11211)]);
    let list = resolve("uri=memcached://u1:1,u2").await;
    assert_eq!(endpoints(&list), [ep("u1", 1), ep("u2", 11211)]);
}

#[tokio::test]
async fn no_connection_is_an_empty_list_not_an_error() {
    assert!(resolve("").await.is_empty());
    assert!(resolve("options.timeout=5").await.is_empty());
    let r = ConnectionResolver::new();
    assert!(r.get_all().is_empty());
    assert!(r.resolve(&Context::new()).await.unwrap().is_none());
    let err = no_connection_error("MemcachedLock");
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Config, codes::NO_CONNECTION)
    );
    assert!(err.message().contains("MemcachedLock"));
}

#[tokio::test]
async fn uri_with_several_hosts_and_query_expands_one_connection_per_host() {
    let list =
        resolve("connection.uri=memcached://h1:11211,h2:11212?opt=x&b=y;connection.extra=1").await;
    assert_eq!(endpoints(&list), [ep("h1", 11211), ep("h2", 11212)]);
    for c in &list {
        assert_eq!(c.protocol(), Some("memcached"));
        assert_eq!(c.get("opt"), Some("x"));
        assert_eq!(c.get("b"), Some("y"));
        assert_eq!(c.get("extra"), Some("1"), "other configured keys are kept");
        assert_eq!(c.uri(), None, "each result names one server");
    }
}

#[tokio::test]
async fn bare_host_list_ipv6_default_port_and_escapes() {
    let list = resolve("connection.uri=h1:11211, h2 ,[::1]:11300,[fe80::2]").await;
    assert_eq!(
        endpoints(&list),
        [
            ep("h1", 11211),
            ep("h2", 11211),
            ep("::1", 11300),
            ep("fe80::2", 11211)
        ]
    );
    assert_eq!(list[0].protocol(), None);
    let list = resolve("connection.uri=memcached://user:p%40ss@h/?name=a%20b&flag").await;
    assert_eq!(endpoints(&list), [ep("h", 11211)]);
    assert_eq!(list[0].get("username"), Some("user"));
    assert_eq!(list[0].get("password"), Some("p@ss"));
    assert_eq!(list[0].get("name"), Some("a b"));
    assert_eq!(list[0].get("flag"), Some(""));
}

#[test]
fn malformed_uri_is_a_config_error_naming_key_and_value() {
    let bad = [
        "",
        "memcached://",
        "memcached://:11211",
        "memcached://h1,,h2",
        "memcached://h:abc",
        "memcached://h:70000",
        "memcached://h:0",
        "memcached://h:",
        "h1:11211,h2:x",
        "memcached://[::1",
        "memcached://::1",
        "memcached://h/db",
        "memcached://h?=v",
        "memcached://h?a=%zz",
        "1bad://h",
        "memcached://h o",
    ];
    for uri in bad {
        let mut config = ConfigParams::new();
        config.set("connection.uri", uri);
        let err = ConnectionResolver::from_config(&config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{uri:?}");
        assert_eq!(err.code(), codes::BAD_CONFIG, "{uri:?}");
        assert_eq!(err.detail("key"), Some("connection.uri"), "{uri:?}");
        assert_eq!(err.detail("value"), Some(uri), "{uri:?}");
    }
}

#[test]
fn bad_port_is_a_config_error_naming_key_and_value() {
    for (config, key, value) in [
        (
            "connection.host=h;connection.port=abc",
            "connection.port",
            "abc",
        ),
        (
            "connection.host=h;connection.port=70000",
            "connection.port",
            "70000",
        ),
        (
            "connections.x.host=h;connections.x.port=-1",
            "connections.x.port",
            "-1",
        ),
        ("host=h;port=0", "port", "0"),
        (
            "connection.discovery_key=k;connection.port=zz",
            "connection.port",
            "zz",
        ),
    ] {
        let err = ConnectionResolver::from_config(&ConfigParams::from_string(config)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{config}");
        assert_eq!(err.detail("key"), Some(key), "{config}");
        assert_eq!(err.detail("value"), Some(value), "{config}");
        assert!(err.to_string().contains(value));
    }
}

#[test]
fn a_connection_without_host_is_a_config_error_and_configure_changes_nothing() {
    let mut r = resolver("connection.host=kept");
    let err = r
        .configure(&ConfigParams::from_string(
            "connections.a.host=x;connections.b.port=1",
        ))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.detail("key"), Some("connections.b.host"));
    assert_eq!(r.get_all().len(), 1, "nothing was added");
    assert_eq!(r.get_all()[0].host(), Some("kept"));
}

#[tokio::test]
async fn configure_appends_and_add_adds() {
    let mut r = resolver("connection.host=a");
    r.configure(&ConfigParams::from_string("connection.host=b"))
        .unwrap();
    r.add(ConnectionParams::from_host_port("c", 3));
    assert_eq!(r.get_all().len(), 3);
    let list = r.resolve_all(&Context::new()).await.unwrap();
    assert_eq!(
        endpoints(&list),
        [ep("a", 11211), ep("b", 11211), ep("c", 3)]
    );
    assert_eq!(
        r.resolve(&Context::new()).await.unwrap().unwrap().host(),
        Some("a")
    );
}

#[tokio::test]
async fn bad_port_added_directly_fails_at_resolve_with_the_trace_id() {
    let mut r = ConnectionResolver::new();
    let mut c = ConnectionParams::from_host_port("h", 1);
    c.set("port", "abc");
    r.add(c);
    let err = r
        .resolve_all(&Context::with_trace_id("t-9"))
        .await
        .unwrap_err();
    assert_eq!(err.detail("key"), Some("port"));
    assert_eq!(err.detail("value"), Some("abc"));
    assert_eq!(err.trace_id(), Some("t-9"));
}

#[tokio::test]
async fn discovery_key_without_discovery_is_ref_error() {
    let r = resolver("connection.discovery_key=cache");
    let err = r
        .resolve_all(&Context::with_trace_id("t-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::REF_ERROR);
    assert_eq!(err.kind(), ErrorKind::Reference);
    assert_eq!(err.detail("locator"), Some("*:discovery:*:*:*"));
    assert_eq!(err.detail("discovery_key"), Some("cache"));
    assert_eq!(err.trace_id(), Some("t-1"));
    // A registered component that does not expose Discovery does not count.
    let mut r = r.clone();
    let refs = References::new();
    refs.put(
        Descriptor::new("x", "discovery", "fake", "d", "1.0"),
        commons::Component::new(Arc::new(5_u8)),
    );
    r.set_references(&refs);
    let err = r.resolve_all(&Context::new()).await.unwrap_err();
    assert_eq!(err.code(), codes::REF_ERROR);
}

#[tokio::test]
async fn unknown_discovery_key_is_a_config_error_naming_the_key() {
    let err = discovered_error("other.host=h", "t-2").await;
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.detail("discovery_key"), Some("cache"));
    assert!(err.to_string().contains("cache"));
    assert_eq!(err.trace_id(), Some("t-2"));
}

#[tokio::test]
async fn discovered_values_merge_over_configured_ones() {
    let refs = References::new();
    with_discovery(&refs, "d", "cache.host=found;cache.timeout=9");
    let mut r = resolver(
        "connection.discovery_key=cache;connection.port=1111;connection.timeout=1;connection.protocol=memcached",
    );
    r.set_references(&refs);
    let list = r.resolve_all(&Context::new()).await.unwrap();
    assert_eq!(
        endpoints(&list),
        [ep("found", 1111)],
        "configured port is the base"
    );
    assert_eq!(list[0].get("timeout"), Some("9"), "discovered key wins");
    assert_eq!(list[0].protocol(), Some("memcached"), "configured key kept");
    assert!(!list[0].uses_discovery());
}

#[tokio::test]
async fn static_connections_come_before_discovered_ones_from_every_discovery() {
    let refs = References::new();
    with_discovery(&refs, "one", "cache.host=d1");
    with_discovery(&refs, "two", "cache.uri=memcached://d2:2,d3:3");
    let mut r = resolver(
        "connections.a.discovery_key=cache;connections.b.host=static1;connections.c.uri=s2:7,s3",
    );
    r.set_references(&refs);
    let list = r.resolve_all(&Context::new()).await.unwrap();
    assert_eq!(
        endpoints(&list),
        [
            ep("static1", 11211),
            ep("s2", 7),
            ep("s3", 11211),
            ep("d2", 2),
            ep("d3", 3),
            ep("d1", 11211)
        ],
        "static first; then discoveries newest first"
    );
}

#[tokio::test]
async fn a_discovered_bad_port_is_a_config_error() {
    let err = discovered_error("cache.host=h;cache.port=99999", "t").await;
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.detail("key"), Some("port"));
    assert_eq!(err.detail("value"), Some("99999"));
    assert_eq!(err.detail("discovery_key"), Some("cache"));
    assert_eq!(err.trace_id(), Some("t"));
}

#[test]
fn resolve_all_future_is_send() {
    fn assert_send<T: Send>(_: T) {}
    let r = ConnectionResolver::new();
    let ctx = Context::new();
    assert_send(r.resolve_all(&ctx));
}
