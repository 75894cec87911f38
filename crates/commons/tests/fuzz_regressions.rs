//! Inputs found by the fuzz targets in `fuzz/` (run by `scripts/fuzz`), kept as regression
//! tests.

use commons::{ConfigParams, ConnectionResolver, Context, ErrorKind, codes};

/// `connection_uri` found that a uri query could set `uri` (and likewise `discovery_key`),
/// leaving a "resolved" connection that still carried a uri, against the documented rule
/// that every resolved connection names exactly one server. A query may no longer set the
/// keys that name the endpoint.
#[test]
fn a_uri_query_cannot_set_the_endpoint_keys() {
    for uri in [
        // The input the fuzzer found (crash-5e8f0ea59e5d1f22381f7fe587b147e1a3050bf9).
        "mch090,0.0.1?uri=ane/m",
        "memcached://h1?uri=memcached://h2",
        "memcached://h1?discovery_key=cache",
        "memcached://h1:11211?host=h2",
        "memcached://h1?ip=10.0.0.1",
        "memcached://h1?timeout=5&port=1",
        "memcached://h1?%20port=1",
        "memcached://h1?ur%69=x",
    ] {
        let mut config = ConfigParams::new();
        config.set("connection.uri", uri);
        let err = ConnectionResolver::from_config(&config).expect_err(uri);
        assert_eq!(err.kind(), ErrorKind::Config, "{uri}");
        assert_eq!(err.code(), codes::BAD_CONFIG, "{uri}");
        assert_eq!(err.detail("key"), Some("connection.uri"), "{uri}");
        assert_eq!(err.detail("value"), Some(uri), "{uri}");
        assert!(err.message().contains("query"), "{uri}: {err}");
    }
}

#[tokio::test]
async fn other_query_pairs_are_still_copied_and_resolved_connections_name_one_server() {
    let mut config = ConfigParams::new();
    config.set(
        "connection.uri",
        "memcached://h1,h2:2?timeout=5&hostname=x&uris=y",
    );
    let resolved = ConnectionResolver::from_config(&config)
        .unwrap()
        .resolve_all(&Context::new())
        .await
        .unwrap();
    assert_eq!(resolved.len(), 2);
    for (c, (host, port)) in resolved.iter().zip([("h1", None), ("h2", Some(2))]) {
        assert_eq!(c.host(), Some(host));
        assert_eq!(c.port(), port);
        assert_eq!(c.uri(), None);
        assert!(!c.uses_discovery());
        assert_eq!(c.get("timeout"), Some("5"));
        assert_eq!(c.get("hostname"), Some("x"));
        assert_eq!(c.get("uris"), Some("y"));
    }
}
