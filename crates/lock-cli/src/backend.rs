//! The lock pip-lock works with: built from a container configuration (`--config`) or from
//! servers given on the command line (`--servers`, `--uri`), opened, and closed again.

use std::path::PathBuf;
use std::sync::Arc;

use commons::{
    ConfigParams, Configurable, ConnectionResolver, Container, Context, Descriptor, Error,
    ErrorKind, Openable, codes, host_port,
};
use lock_core::{Lock, default_lock_factory};
use lock_memcached::{MEMCACHED_LOCK_DESCRIPTOR, MemcachedLock, memcached_lock_factory};

use crate::cli::Connection;
use crate::exit::{self, Failure};

/// memcached's port when a server is named without one.
const DEFAULT_PORT: u16 = 11211;

/// The locator the lock component is looked up by in a container configuration.
fn lock_locator() -> Descriptor {
    Descriptor::new("*", "lock", "*", "*", "1.0")
}

/// Where the lock's configuration comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// A container configuration file, its placeholders expanded.
    File {
        /// The file, as given.
        path: PathBuf,
        /// The parsed document.
        document: serde_json::Value,
    },
    /// A `MemcachedLock` configured from `--servers` / `--uri` and `--option`s.
    Params(ConfigParams),
}

impl Source {
    /// Reads the connection flags. None of them is a usage error; a file that cannot be read
    /// or parsed is a configuration error.
    pub(crate) fn from_cli(connection: &Connection) -> Result<Source, Failure> {
        let given = [
            connection.config.is_some(),
            connection.servers.is_some(),
            connection.uri.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(Failure::usage(
                "give only one of --config, --servers and --uri (or of PIP_LOCK_CONFIG, \
                 PIP_LOCK_SERVERS and PIP_LOCK_URI)",
            ));
        }
        let secure_flags = connection.username.is_some()
            || connection.tls
            || connection.tls_ca.is_some()
            || connection.tls_cert.is_some()
            || connection.tls_key.is_some();
        if let Some(path) = &connection.config {
            if !connection.options.is_empty() || secure_flags {
                return Err(Failure::usage(
                    "--option, --username and --tls* apply to --servers / --uri; with --config, \
                     put options and credentials in the file",
                ));
            }
            return read_file(path);
        }
        let mut params = ConfigParams::new();
        match (&connection.servers, &connection.uri) {
            (Some(servers), _) => {
                let list: Vec<&str> = servers
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                if list.is_empty() {
                    return Err(Failure::usage("--servers names no server"));
                }
                params.set("connection.uri", format!("memcached://{}", list.join(",")));
            }
            (None, Some(uri)) => params.set("connection.uri", uri.trim()),
            (None, None) => {
                return Err(Failure::usage(
                    "no lock configured: give --config FILE, --servers HOST:PORT,... or --uri URI \
                     (or PIP_LOCK_CONFIG / PIP_LOCK_SERVERS / PIP_LOCK_URI)",
                ));
            }
        }
        for option in &connection.options {
            let Some((key, value)) = option.split_once('=') else {
                return Err(Failure::usage(format!(
                    "--option '{option}' is not KEY=VALUE (e.g. options.timeout=2000)"
                )));
            };
            let key = key.trim();
            let key = if key.starts_with("options.") {
                key.to_string()
            } else {
                format!("options.{key}")
            };
            params.set(key, value.trim());
        }
        if let Some(user) = &connection.username {
            params.set("credential.username", user.as_str());
            if let Ok(password) = std::env::var("PIP_LOCK_PASSWORD") {
                params.set("credential.password", password);
            }
        }
        let files = [
            ("credential.ssl_ca_file", &connection.tls_ca),
            ("credential.ssl_crt_file", &connection.tls_cert),
            ("credential.ssl_key_file", &connection.tls_key),
        ];
        if connection.tls || files.iter().any(|(_, f)| f.is_some()) {
            // The uri's scheme says TLS (a plain `memcached://` would contradict it).
            if let Some(uri) = params.get("connection.uri").map(str::to_string) {
                let rest = uri.strip_prefix("memcached://").unwrap_or(&uri);
                if !rest.contains("://") {
                    params.set("connection.uri", format!("memcacheds://{rest}"));
                }
            }
            for (key, file) in files {
                if let Some(file) = file {
                    params.set(key, file.display().to_string());
                }
            }
        }
        Ok(Source::Params(params))
    }

    /// Where the configuration came from, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::File { path, .. } => path.display().to_string(),
            Source::Params(params) => params
                .get("connection.uri")
                .unwrap_or("the command line")
                .to_string(),
        }
    }

    /// The `host:port` of every configured memcached server, read from the configuration
    /// alone (no connection is made): what `status` lists when the lock cannot be opened.
    /// Empty when the servers come from a discovery service.
    pub(crate) async fn server_addresses(&self, ctx: &Context) -> Vec<String> {
        let params = match self {
            Source::Params(params) => params.clone(),
            Source::File { document, .. } => match memcached_component_config(document) {
                Some(params) => params,
                None => return Vec::new(),
            },
        };
        let Ok(resolver) = ConnectionResolver::from_config(&params) else {
            return Vec::new();
        };
        let Ok(connections) = resolver.resolve_all(ctx).await else {
            return Vec::new();
        };
        connections
            .iter()
            .filter_map(|c| Some(host_port(c.host()?, c.port().unwrap_or(DEFAULT_PORT))))
            .collect()
    }
}

/// An opened lock and what owns it.
#[derive(Debug)]
pub(crate) struct Backend {
    /// The lock, as every backend offers it.
    pub(crate) lock: Arc<dyn Lock>,
    /// The same lock as a `MemcachedLock`, when it is one (status and force-release need it).
    pub(crate) memcached: Option<Arc<MemcachedLock>>,
    owner: Owner,
}

/// What opened the lock, and so closes it.
#[derive(Debug)]
enum Owner {
    Container(Box<Container>),
    Direct(Arc<MemcachedLock>),
}

impl Backend {
    /// Builds and opens the lock `source` describes.
    pub(crate) async fn open(source: &Source, ctx: &Context) -> Result<Backend, Error> {
        match source {
            Source::Params(params) => {
                let lock = Arc::new(MemcachedLock::new());
                lock.configure(params)?;
                lock.open(ctx).await?;
                Ok(Backend {
                    lock: lock.clone(),
                    memcached: Some(lock.clone()),
                    owner: Owner::Direct(lock),
                })
            }
            Source::File { path, document } => {
                let mut container = Container::new();
                container.add_factory(default_lock_factory());
                container.add_factory(memcached_lock_factory());
                container.read_config(document)?;
                container.open(ctx).await?;
                let locator = lock_locator();
                let references = container.references();
                let Some(lock) = references.get_one_optional::<dyn Lock>(&locator) else {
                    let _ = container.close(ctx).await;
                    return Err(Error::new(
                        ErrorKind::Config,
                        codes::REF_ERROR,
                        format!(
                            "{} configures no lock component (a descriptor matching {locator})",
                            path.display()
                        ),
                    ));
                };
                let memcached = references.get_one_optional::<MemcachedLock>(&locator);
                Ok(Backend {
                    lock,
                    memcached,
                    owner: Owner::Container(Box::new(container)),
                })
            }
        }
    }

    /// The lock as a `MemcachedLock`, or a configuration error saying that `what` needs one.
    pub(crate) fn memcached(&self, what: &str) -> Result<Arc<MemcachedLock>, Failure> {
        self.memcached.clone().ok_or_else(|| Failure {
            code: exit::CONFIG,
            message: format!(
                "{what} needs a memcached lock (a component matching {MEMCACHED_LOCK_DESCRIPTOR}); \
                 the configured lock is another kind"
            ),
        })
    }

    /// Closes the lock (releasing what it still holds, owner-checked), bounded by `limit`:
    /// an unreachable server must not keep pip-lock from exiting.
    pub(crate) async fn close(self, ctx: &Context, limit: std::time::Duration) {
        let closing = async {
            let result = match &self.owner {
                Owner::Container(container) => container.close(ctx).await,
                Owner::Direct(lock) => lock.close(ctx).await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "closing the lock failed");
            }
        };
        if tokio::time::timeout(limit, closing).await.is_err() {
            tracing::warn!(
                "closing the lock took longer than {limit:?}; its ttl frees what it held"
            );
        }
    }
}

/// Reads, parses and expands a container configuration.
fn read_file(path: &PathBuf) -> Result<Source, Failure> {
    let config_error = |message: String| Failure {
        code: exit::CONFIG,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        config_error(format!(
            "cannot read the configuration file {}: {e}",
            path.display()
        ))
    })?;
    let mut document: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        config_error(format!(
            "the configuration file {} is not valid JSON: {e}",
            path.display()
        ))
    })?;
    commons::expand_env(&mut document, |name| std::env::var(name).ok())
        .map_err(|e| config_error(format!("{}: {}", path.display(), e.message())))?;
    Ok(Source::File {
        path: path.clone(),
        document,
    })
}

/// The configuration of the first memcached lock component a container document lists,
/// flattened the way the container flattens it.
fn memcached_component_config(document: &serde_json::Value) -> Option<ConfigParams> {
    let items = match document {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(map) => map.get("components")?.as_array()?,
        _ => return None,
    };
    let wanted: Descriptor = MEMCACHED_LOCK_DESCRIPTOR.parse().ok()?;
    items.iter().find_map(|item| {
        let map = item.as_object()?;
        let descriptor = Descriptor::parse(map.get("descriptor")?.as_str()?).ok()?;
        if !descriptor.matches(&wanted) {
            return None;
        }
        let mut rest = map.clone();
        rest.remove("descriptor");
        ConfigParams::from_json(&serde_json::Value::Object(rest)).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn connection(servers: Option<&str>, uri: Option<&str>, options: &[&str]) -> Connection {
        Connection {
            config: None,
            servers: servers.map(str::to_string),
            uri: uri.map(str::to_string),
            options: options.iter().map(|s| s.to_string()).collect(),
            username: None,
            tls: false,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }

    #[test]
    fn servers_and_options_become_the_lock_configuration() {
        let Ok(Source::Params(params)) = Source::from_cli(&connection(
            Some("a:1, b:2"),
            None,
            &["mode=quorum", "options.timeout=500"],
        )) else {
            panic!("params expected")
        };
        assert_eq!(params.get("connection.uri"), Some("memcached://a:1,b:2"));
        assert_eq!(params.get("options.mode"), Some("quorum"));
        assert_eq!(params.get("options.timeout"), Some("500"));
        assert!(Source::from_cli(&connection(None, None, &[])).is_err());
        assert!(Source::from_cli(&connection(Some("a:1"), Some("memcached://b"), &[])).is_err());
        assert!(Source::from_cli(&connection(Some(","), None, &[])).is_err());
        assert!(Source::from_cli(&connection(Some("a:1"), None, &["nonsense"])).is_err());
    }

    #[test]
    fn credential_and_tls_flags_become_credential_keys_and_a_tls_uri() {
        let mut flags = connection(Some("a:1,b:2"), None, &[]);
        flags.username = Some("operator".into());
        flags.tls_ca = Some("/etc/ca.pem".into());
        let Ok(Source::Params(params)) = Source::from_cli(&flags) else {
            panic!("params expected")
        };
        assert_eq!(params.get("connection.uri"), Some("memcacheds://a:1,b:2"));
        assert_eq!(params.get("credential.username"), Some("operator"));
        assert_eq!(params.get("credential.ssl_ca_file"), Some("/etc/ca.pem"));
        let mut plain = connection(None, Some("memcached://c:3"), &[]);
        plain.tls = true;
        let Ok(Source::Params(params)) = Source::from_cli(&plain) else {
            panic!("params expected")
        };
        assert_eq!(params.get("connection.uri"), Some("memcacheds://c:3"));
        assert_eq!(params.get("credential.ssl_ca_file"), None);
    }

    #[tokio::test]
    async fn a_container_document_names_its_servers() {
        let document = json!({"components": [
            {"descriptor": "pip-services:lock:memory:default:1.0"},
            {"descriptor": "pip-services:lock:memcached:default:1.0",
             "connection": {"uri": "memcached://h1:11300,h2"}}
        ]});
        let source = Source::File {
            path: "x.json".into(),
            document,
        };
        assert_eq!(
            source.server_addresses(&Context::new()).await,
            ["h1:11300", "h2:11211"]
        );
    }
}
