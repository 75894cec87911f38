//! `ConnectionResolver` with `connection.uri=<input>`, then `resolve_all` on a
//! current-thread runtime.
//!
//! Checks, besides "no panic":
//! - `from_config` either succeeds or returns a configuration error naming the key
//!   `connection.uri` and the value;
//! - when it succeeds, `resolve_all` succeeds too (there is no discovery key), and every
//!   resolved connection names exactly one server, as the resolver documents: a non-empty
//!   host without spaces, a port from 1 to 65535, no `uri` and no `discovery_key`; there is
//!   one connection per comma-separated host entry.
#![no_main]

use std::sync::OnceLock;

use commons::{ConfigParams, ConnectionResolver, Context, ErrorKind};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    let mut config = ConfigParams::new();
    config.set("connection.uri", uri);
    let resolver = match ConnectionResolver::from_config(&config) {
        Ok(r) => r,
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::Config, "{uri:?}: {err}");
            assert_eq!(err.detail("key"), Some("connection.uri"), "{uri:?}: {err}");
            assert_eq!(err.detail("value"), Some(uri), "{uri:?}: {err}");
            return;
        }
    };
    let resolved = runtime()
        .block_on(resolver.resolve_all(&Context::new()))
        .unwrap_or_else(|e| panic!("{uri:?} configured but does not resolve: {e}"));
    assert!(!resolved.is_empty(), "{uri:?} resolved to nothing");
    // Hosts are listed before any '?' query and after any `user:password@`, separated by
    // commas.
    let before_query = uri.trim().split('?').next().unwrap_or("");
    let hosts = before_query.rsplit('@').next().unwrap_or("");
    assert_eq!(
        resolved.len(),
        hosts.split(',').count(),
        "{uri:?} resolved to {resolved:?}"
    );
    for c in &resolved {
        let host = c
            .host()
            .unwrap_or_else(|| panic!("{uri:?}: no host in {c:?}"));
        assert!(
            !host.is_empty() && !host.contains(char::is_whitespace),
            "{uri:?}: {c:?}"
        );
        // A missing port is left to the component; one that is there is a valid port.
        if c.port_raw().is_some() {
            let port = c
                .port()
                .unwrap_or_else(|| panic!("{uri:?}: unreadable port in {c:?}"));
            assert!(port >= 1, "{uri:?}: port 0 in {c:?}");
        }
        assert_eq!(c.uri(), None, "{uri:?}: uri left in {c:?}");
        assert!(!c.uses_discovery(), "{uri:?}: discovery_key left in {c:?}");
    }
});
