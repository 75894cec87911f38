#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

use commons::{Error, ErrorKind, Result};

/// The repository's README: its usage example is compiled as a doctest here, so it stays
/// true to the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RootReadme;

/// The environment variable naming the memcached host the examples use (as in the
/// original Pip.Services tests).
pub const HOST_ENV: &str = "MEMCACHED_SERVICE_HOST";
/// The environment variable naming the memcached port the examples use.
pub const PORT_ENV: &str = "MEMCACHED_SERVICE_PORT";
/// The host used when [`HOST_ENV`] is not set.
pub const DEFAULT_HOST: &str = "localhost";
/// The port used when [`PORT_ENV`] is not set.
pub const DEFAULT_PORT: u16 = 11211;

/// The memcached server named by `MEMCACHED_SERVICE_HOST` / `MEMCACHED_SERVICE_PORT`
/// (default `localhost:11211`), read through `lookup` (pass `|name| std::env::var(name).ok()`).
///
/// An empty variable counts as unset; a port that is not a number from 1 to 65535 is a
/// configuration error naming the variable.
///
/// ```
/// use examples::memcached_endpoint;
///
/// assert_eq!(memcached_endpoint(|_| None).unwrap(), ("localhost".to_string(), 11211));
/// let env = |name: &str| (name == "MEMCACHED_SERVICE_PORT").then(|| "11300".to_string());
/// assert_eq!(memcached_endpoint(env).unwrap().1, 11300);
/// assert!(memcached_endpoint(|_| Some("eleven".into())).is_err());
/// ```
pub fn memcached_endpoint(lookup: impl Fn(&str) -> Option<String>) -> Result<(String, u16)> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let host = set(HOST_ENV).map_or_else(|| DEFAULT_HOST.to_string(), |h| h.trim().to_string());
    let port = match set(PORT_ENV) {
        None => DEFAULT_PORT,
        Some(text) => match text.trim().parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(Error::bad_config_value(
                    PORT_ENV,
                    &text,
                    "a port number from 1 to 65535",
                ));
            }
        },
    };
    Ok((host, port))
}

/// What to tell a user whose memcached at `host:port` cannot be reached.
///
/// ```
/// let help = examples::how_to_start_memcached("localhost", 11211);
/// assert!(help.contains("apt-get install memcached"));
/// assert!(help.contains("memcached -p 11211"));
/// ```
pub fn how_to_start_memcached(host: &str, port: u16) -> String {
    format!(
        "This example needs a memcached server at {host}:{port}, and none answered.\n\
         Start one on this machine with:\n\
         \n    sudo apt-get install memcached\n    memcached -p 11211\n\n\
         or point {HOST_ENV} / {PORT_ENV} at a running server (memcached 1.6.13 or newer)."
    )
}

/// Whether an error from opening a lock means "no memcached answered" (as opposed to, say,
/// a bad configuration), so the caller can print [`how_to_start_memcached`].
///
/// ```
/// use commons::{Error, ErrorKind};
/// assert!(examples::is_unreachable(&Error::new(ErrorKind::Connection, "NO_CONNECTION", "down")));
/// assert!(!examples::is_unreachable(&Error::config("bad key")));
/// ```
pub fn is_unreachable(error: &Error) -> bool {
    matches!(error.kind(), ErrorKind::Connection | ErrorKind::Timeout)
}

pub use commons::expand_env;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn placeholders_take_the_environment_then_the_default() {
        let mut doc = json!({"components": [{"descriptor": "x",
            "connection": {"host": "${H:-localhost}", "port": "${P:-11211}"},
            "uri": "memcached://${H:-a}:${P:-1}/x", "n": 5, "flag": true}]});
        expand_env(&mut doc, env(&[("H", "10.0.0.7")])).unwrap();
        assert_eq!(
            doc,
            json!({"components": [{"descriptor": "x",
            "connection": {"host": "10.0.0.7", "port": "11211"},
            "uri": "memcached://10.0.0.7:1/x", "n": 5, "flag": true}]})
        );
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let mut doc = json!(["${H:-fallback}"]);
        expand_env(&mut doc, env(&[("H", "")])).unwrap();
        assert_eq!(doc, json!(["fallback"]));
    }

    #[test]
    fn a_value_cannot_change_the_structure() {
        let mut doc = json!({"host": "${H}"});
        expand_env(&mut doc, env(&[("H", "\"}, \"evil\": {\"")])).unwrap();
        assert_eq!(doc, json!({"host": "\"}, \"evil\": {\""}));
    }

    #[test]
    fn bad_placeholders_are_errors_naming_the_path_and_change_nothing() {
        for bad in ["${", "${H", "${}", "${:-x}", "${MISSING}"] {
            let original = json!({"a": {"b": ["ok ${H:-1}", bad]}});
            let mut doc = original.clone();
            let err = expand_env(&mut doc, env(&[])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{bad}: {err}");
            assert_eq!(err.detail("key"), Some("a.b.1"), "{bad}: {err}");
            assert_eq!(doc, original, "{bad}");
        }
    }

    #[test]
    fn endpoint_defaults_and_bad_ports() {
        assert_eq!(
            memcached_endpoint(env(&[])).unwrap(),
            ("localhost".into(), 11211)
        );
        assert_eq!(
            memcached_endpoint(env(&[(HOST_ENV, " 127.0.0.1 "), (PORT_ENV, "11300")])).unwrap(),
            ("127.0.0.1".into(), 11300)
        );
        for bad in ["0", "65536", "-1", "x"] {
            let err = memcached_endpoint(|n| (n == PORT_ENV).then(|| bad.to_string())).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{bad}");
            assert!(err.to_string().contains(PORT_ENV), "{err}");
        }
    }
}
