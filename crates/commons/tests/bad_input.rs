//! Bad configuration input, table-driven, through the public API only.
//!
//! Every row gives the input, the expected [`ErrorKind`] and code, and (where the error is
//! about one configuration key) the key that the error must name, both in its `key` detail
//! and in its rendered message. Every row also checks that the failed call changed nothing.

use commons::{
    ConfigParams, ConnectionResolver, Container, Context, Descriptor, Error, ErrorKind, codes,
};

/// One bad input and the error it must produce.
struct Row {
    input: &'static str,
    kind: ErrorKind,
    code: &'static str,
    /// The configuration key the error must name, when the error is about one key.
    key: Option<&'static str>,
}

const fn row(
    input: &'static str,
    kind: ErrorKind,
    code: &'static str,
    key: Option<&'static str>,
) -> Row {
    Row {
        input,
        kind,
        code,
        key,
    }
}

use ErrorKind::{BadRequest, Config, Creation, Reference};
use codes::{BAD_CONFIG, BAD_DESCRIPTOR, CANNOT_CREATE, REF_ERROR};

/// Checks `err` against the row; `what` names the table for failure messages.
fn check(what: &str, row: &Row, err: &Error) {
    let input = row.input;
    assert_eq!(err.kind(), row.kind, "{what} {input:?}: {err}");
    assert_eq!(err.code(), row.code, "{what} {input:?}: {err}");
    assert!(!err.message().is_empty(), "{what} {input:?}: empty message");
    if let Some(key) = row.key {
        assert_eq!(err.detail("key"), Some(key), "{what} {input:?}: {err}");
        assert!(
            err.to_string().contains(key),
            "{what} {input:?}: message does not name {key}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// ConnectionResolver::configure: the configuration is given in `a=1;b=2` form.
// ---------------------------------------------------------------------------------------

const RESOLVER_ROWS: &[Row] = &[
    // Missing host.
    row(
        "connection.port=11211",
        Config,
        BAD_CONFIG,
        Some("connection.host"),
    ),
    row(
        "connection.protocol=memcached",
        Config,
        BAD_CONFIG,
        Some("connection.host"),
    ),
    row(
        "connection.host=",
        Config,
        BAD_CONFIG,
        Some("connection.host"),
    ),
    row(
        "connection.host=  ",
        Config,
        BAD_CONFIG,
        Some("connection.host"),
    ),
    row(
        "connections.a.host=x;connections.b.port=1",
        Config,
        BAD_CONFIG,
        Some("connections.b.host"),
    ),
    row("port=11211", Config, BAD_CONFIG, Some("host")),
    // A host that cannot be one.
    row(
        "connection.host=a b",
        Config,
        BAD_CONFIG,
        Some("connection.host"),
    ),
    row(
        "connection.host=h/x",
        Config,
        BAD_CONFIG,
        Some("connection.host"),
    ),
    row(
        "connection.ip=10.0.0.1,10.0.0.2",
        Config,
        BAD_CONFIG,
        Some("connection.ip"),
    ),
    // Bad ports.
    row(
        "connection.host=h;connection.port=abc",
        Config,
        BAD_CONFIG,
        Some("connection.port"),
    ),
    row(
        "connection.host=h;connection.port=0",
        Config,
        BAD_CONFIG,
        Some("connection.port"),
    ),
    row(
        "connection.host=h;connection.port=70000",
        Config,
        BAD_CONFIG,
        Some("connection.port"),
    ),
    row(
        "connection.host=h;connection.port=65536",
        Config,
        BAD_CONFIG,
        Some("connection.port"),
    ),
    row(
        "connection.host=h;connection.port=-1",
        Config,
        BAD_CONFIG,
        Some("connection.port"),
    ),
    row(
        "connection.host=h;connection.port=",
        Config,
        BAD_CONFIG,
        Some("connection.port"),
    ),
    row(
        "connection.host=h;connection.port=11211.5",
        Config,
        BAD_CONFIG,
        Some("connection.port"),
    ),
    row(
        "connections.x.host=h;connections.x.port=abc",
        Config,
        BAD_CONFIG,
        Some("connections.x.port"),
    ),
    row("host=h;port=abc", Config, BAD_CONFIG, Some("port")),
    row(
        "connection.discovery_key=k;connection.port=zz",
        Config,
        BAD_CONFIG,
        Some("connection.port"),
    ),
    // Empty uri, uri with an empty host list, bad hosts or ports in a uri.
    row(
        "connection.uri=",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=   ",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached:///",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://?timeout=5",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://,",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://h1,,h2",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://:11211",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://user@",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://h:abc",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://h:0",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://h:70000",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://h:-1",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=memcached://h:",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connection.uri=://h",
        Config,
        BAD_CONFIG,
        Some("connection.uri"),
    ),
    row(
        "connections.0.uri=h1;connections.1.uri=",
        Config,
        BAD_CONFIG,
        Some("connections.1.uri"),
    ),
    row("uri=memcached://:1", Config, BAD_CONFIG, Some("uri")),
];

#[test]
fn resolver_rejects_bad_connections_naming_the_key_and_changes_nothing() {
    for row in RESOLVER_ROWS {
        let mut resolver =
            ConnectionResolver::from_config(&ConfigParams::from_string("connection.host=kept"))
                .unwrap();
        let err = resolver
            .configure(&ConfigParams::from_string(row.input))
            .expect_err(row.input);
        check("resolver", row, &err);
        assert_eq!(
            resolver.get_all().len(),
            1,
            "{:?} added something",
            row.input
        );
        assert_eq!(resolver.get_all()[0].host(), Some("kept"));
        // from_config fails the same way.
        let err = ConnectionResolver::from_config(&ConfigParams::from_string(row.input))
            .expect_err(row.input);
        check("resolver (from_config)", row, &err);
    }
}

#[test]
fn resolver_bad_values_are_quoted_in_the_error() {
    for (input, value) in [
        ("connection.host=h;connection.port=abc", "abc"),
        ("connection.host=h;connection.port=-1", "-1"),
        ("connection.uri=memcached://:11211", "memcached://:11211"),
    ] {
        let err = ConnectionResolver::from_config(&ConfigParams::from_string(input)).unwrap_err();
        assert_eq!(err.detail("value"), Some(value), "{input}");
        assert!(err.to_string().contains(value), "{input}: {err}");
    }
}

/// Discovery keys are checked when resolving: with no discovery component registered the
/// error is `REF_ERROR`, carrying the discovery key and the trace id.
const DISCOVERY_ROWS: &[Row] = &[
    row("connection.discovery_key=cache", Reference, REF_ERROR, None),
    row("discovery_key=cache", Reference, REF_ERROR, None),
    row(
        "connections.a.discovery_key=cache;connections.a.port=11211",
        Reference,
        REF_ERROR,
        None,
    ),
    row(
        "connection.host=h;connection.discovery_key=cache",
        Reference,
        REF_ERROR,
        None,
    ),
];

#[tokio::test]
async fn discovery_key_without_a_discovery_is_a_reference_error() {
    for row in DISCOVERY_ROWS {
        let resolver =
            ConnectionResolver::from_config(&ConfigParams::from_string(row.input)).unwrap();
        let before = resolver.get_all().to_vec();
        let err = resolver
            .resolve_all(&Context::with_trace_id("bad-input"))
            .await
            .expect_err(row.input);
        check("discovery", row, &err);
        assert_eq!(err.detail("discovery_key"), Some("cache"), "{}", row.input);
        assert!(err.to_string().contains("discovery_key"), "{err}");
        assert_eq!(err.trace_id(), Some("bad-input"));
        assert_eq!(resolver.get_all(), &before[..]);
    }
}

// ---------------------------------------------------------------------------------------
// Descriptor::parse
// ---------------------------------------------------------------------------------------

const DESCRIPTOR_ROWS: &[Row] = &[
    row("", BadRequest, BAD_DESCRIPTOR, None),
    row("   ", BadRequest, BAD_DESCRIPTOR, None),
    row("pip-services", BadRequest, BAD_DESCRIPTOR, None),
    row("a:b:c:d", BadRequest, BAD_DESCRIPTOR, None),
    row(
        "pip-services:lock:memcached:1.0",
        BadRequest,
        BAD_DESCRIPTOR,
        None,
    ),
    row("a:b:c:d:e:f", BadRequest, BAD_DESCRIPTOR, None),
    row(
        "pip-services:lock:memcached:default:1.0:",
        BadRequest,
        BAD_DESCRIPTOR,
        None,
    ),
    row("::::::", BadRequest, BAD_DESCRIPTOR, None),
];

#[test]
fn descriptor_with_other_than_five_fields_is_bad_descriptor() {
    for row in DESCRIPTOR_ROWS {
        let err = Descriptor::parse(row.input).expect_err(row.input);
        check("descriptor", row, &err);
        assert_eq!(err.detail("descriptor"), Some(row.input));
        let fields = row.input.split(':').count();
        assert!(
            err.message().contains(&format!("found {fields}")),
            "{:?}: {err}",
            row.input
        );
        assert!(row.input.parse::<Descriptor>().is_err());
    }
}

// ---------------------------------------------------------------------------------------
// ConfigParams::from_json_str
// ---------------------------------------------------------------------------------------

const JSON_ROWS: &[Row] = &[
    // Not JSON at all.
    row("", Config, BAD_CONFIG, None),
    row("{", Config, BAD_CONFIG, None),
    row("{\"a\": }", Config, BAD_CONFIG, None),
    row("{\"a\": 1,}", Config, BAD_CONFIG, None),
    row("[1, 2", Config, BAD_CONFIG, None),
    row("connection.host=h", Config, BAD_CONFIG, None),
    row("{'a': 1}", Config, BAD_CONFIG, None),
    row("{\"a\": 1} trailing", Config, BAD_CONFIG, None),
    // JSON, but a scalar at the top level.
    row("1", Config, BAD_CONFIG, None),
    row("-2.5e3", Config, BAD_CONFIG, None),
    row("\"connection.host=h\"", Config, BAD_CONFIG, None),
    row("true", Config, BAD_CONFIG, None),
    row("null", Config, BAD_CONFIG, None),
];

#[test]
fn config_from_bad_json_is_a_config_error() {
    for row in JSON_ROWS {
        let err = ConfigParams::from_json_str(row.input).expect_err(row.input);
        check("json", row, &err);
        let is_json = serde_json::from_str::<serde_json::Value>(row.input).is_ok();
        let expected = if is_json {
            "must be an object"
        } else {
            "not valid JSON"
        };
        assert!(err.message().contains(expected), "{:?}: {err}", row.input);
    }
}

// ---------------------------------------------------------------------------------------
// Container::read_config_str and Container::open
// ---------------------------------------------------------------------------------------

const GOOD_DOCUMENT: &str =
    r#"{"components": [{"descriptor": "pip-services:discovery:memory:default:1.0"}]}"#;

const CONTAINER_ROWS: &[Row] = &[
    // Not JSON.
    row("", Config, BAD_CONFIG, None),
    row("{components: []}", Config, BAD_CONFIG, None),
    row(
        "descriptor=pip-services:lock:memory:default:1.0",
        Config,
        BAD_CONFIG,
        None,
    ),
    // JSON of the wrong shape.
    row("5", Config, BAD_CONFIG, None),
    row("\"components\"", Config, BAD_CONFIG, None),
    row("{}", Config, BAD_CONFIG, Some("components")),
    row(
        r#"{"components": 5}"#,
        Config,
        BAD_CONFIG,
        Some("components"),
    ),
    row(
        r#"{"components": {"descriptor": "a:b:c:d:e"}}"#,
        Config,
        BAD_CONFIG,
        Some("components"),
    ),
    row("[5]", Config, BAD_CONFIG, Some("components.0")),
    row(
        r#"{"components": [{"descriptor": "a:b:c:d:e"}, "x"]}"#,
        Config,
        BAD_CONFIG,
        Some("components.1"),
    ),
    // Missing or non-string descriptor.
    row(
        r#"{"components": [{"options": {"ttl": 5}}]}"#,
        Config,
        BAD_CONFIG,
        Some("components.0.descriptor"),
    ),
    row(
        r#"[{}]"#,
        Config,
        BAD_CONFIG,
        Some("components.0.descriptor"),
    ),
    row(
        r#"[{"descriptor": 5}]"#,
        Config,
        BAD_CONFIG,
        Some("components.0.descriptor"),
    ),
    row(
        r#"[{"descriptor": null}]"#,
        Config,
        BAD_CONFIG,
        Some("components.0.descriptor"),
    ),
    row(
        r#"[{"descriptor": ["a", "b"]}]"#,
        Config,
        BAD_CONFIG,
        Some("components.0.descriptor"),
    ),
    // A descriptor string that is not five fields.
    row(
        r#"[{"descriptor": ""}]"#,
        BadRequest,
        BAD_DESCRIPTOR,
        Some("components.0.descriptor"),
    ),
    row(
        r#"[{"descriptor": "a:b:c:d"}]"#,
        BadRequest,
        BAD_DESCRIPTOR,
        Some("components.0.descriptor"),
    ),
    row(
        r#"[{"descriptor": "a:b:c:d:e"}, {"descriptor": "a:b:c:d:e:f"}]"#,
        BadRequest,
        BAD_DESCRIPTOR,
        Some("components.1.descriptor"),
    ),
];

#[test]
fn container_rejects_bad_documents_and_keeps_its_configuration() {
    for row in CONTAINER_ROWS {
        let mut container = Container::new();
        container.read_config_str(GOOD_DOCUMENT).unwrap();
        let before = container.component_descriptors();
        let err = container.read_config_str(row.input).expect_err(row.input);
        check("container", row, &err);
        assert_eq!(
            container.component_descriptors(),
            before,
            "{:?} changed the configuration",
            row.input
        );
        assert!(!container.is_open());
    }
}

/// Descriptors no factory can create fail at `open` with `CANNOT_CREATE`, naming the
/// descriptor and the known ones; nothing is registered and the container stays closed.
const UNKNOWN_DESCRIPTOR_ROWS: &[Row] = &[
    row(
        r#"[{"descriptor": "acme:lock:nothing:default:1.0"}]"#,
        Creation,
        CANNOT_CREATE,
        None,
    ),
    row(
        r#"[{"descriptor": "pip-services:discovery:memory:default:2.0"}]"#,
        Creation,
        CANNOT_CREATE,
        None,
    ),
    row(
        r#"[{"descriptor": "pip-services:discovery:memory:default:1.0"}, {"descriptor": "x:y:z:w:1"}]"#,
        Creation,
        CANNOT_CREATE,
        None,
    ),
];

#[tokio::test]
async fn container_with_unknown_descriptor_fails_to_open_and_registers_nothing() {
    for row in UNKNOWN_DESCRIPTOR_ROWS {
        let mut container = Container::new();
        container.read_config_str(row.input).unwrap();
        let unknown = container.component_descriptors().last().unwrap().clone();
        let err = container
            .open(&Context::with_trace_id("boot"))
            .await
            .expect_err(row.input);
        check("container open", row, &err);
        assert_eq!(err.detail("locator"), Some(unknown.to_string().as_str()));
        assert!(err.to_string().contains(&unknown.to_string()), "{err}");
        assert!(
            err.detail("known")
                .is_some_and(|k| k.contains("pip-services:discovery:memory:*:1.0")),
            "{err}"
        );
        assert_eq!(err.trace_id(), Some("boot"));
        assert!(!container.is_open());
        assert!(container.references().is_empty(), "{:?}", row.input);
    }
}
