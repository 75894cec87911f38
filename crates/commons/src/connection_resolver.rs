//! `ConnectionResolver`: turns a component's configuration into the list of servers to talk to.

use crate::config_params::{join_path as join, percent_decode, read_sections, redact_uri};
use crate::{
    ConfigParams, ConnectionParams, Context, Descriptor, Discovery, Error, ErrorKind, References,
    Result, codes,
};

/// The keys accepted at the top level of a configuration as one connection when it has
/// neither a `connections.*` nor a `connection.*` section.
const TOP_LEVEL_KEYS: [&str; 5] = ["host", "ip", "port", "uri", "discovery_key"];

/// Reads connection settings from configuration and resolves them into concrete servers
/// (Pip.Services' `ConnectionResolver`).
///
/// Configuration, first match wins:
/// 1. `connections.<name>.*`: one connection per sub-section (JSON arrays flatten to
///    `connections.0.*`, `connections.1.*`, taken in numeric order); a sub-key holding the
///    string form (`connections.a = "host=h;port=1"`) is accepted too;
/// 2. `connection.*`: one connection;
/// 3. the top-level keys `host`, `ip`, `port`, `uri`, `discovery_key`: one connection (the
///    form used by the original component's documented example).
///
/// [`ConnectionResolver::resolve_all`] returns the static connections first, then the ones
/// found through discovery. Every resolved connection names exactly one server: it has a
/// `host`, a `port` when one was given (the component applies its own default, e.g. with
/// [`crate::ConnectionParams::port_or`]; the framework knows no backend's port), and no `uri` or
/// `discovery_key` (a uri listing several hosts becomes one connection per host, each with
/// `protocol` set to the uri's scheme and every query pair copied as a key; a query pair
/// may not set `uri`, `discovery_key`, `host`, `ip` or `port`).
///
/// An empty configuration is not an error: `resolve_all` returns an empty list and the
/// component decides (see [`no_connection_error`]).
///
/// ```
/// use commons::{ConfigParams, ConnectionResolver, Context};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let config = ConfigParams::from_string("connection.uri=memcached://h1:11211,h2?timeout=500");
/// let resolver = ConnectionResolver::from_config(&config).unwrap();
/// let servers = resolver.resolve_all(&Context::new()).await.unwrap();
/// assert_eq!(servers.len(), 2);
/// assert_eq!(servers[0].host(), Some("h1"));
/// assert_eq!(servers[0].port(), Some(11211));
/// assert_eq!(servers[1].port(), None); // the component's default applies
/// assert_eq!(servers[1].protocol(), Some("memcached"));
/// assert_eq!(servers[1].get("timeout"), Some("500"));
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectionResolver {
    connections: Vec<ConnectionParams>,
    references: References,
}

impl ConnectionResolver {
    /// A resolver without connections or references.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resolver configured from `config` (see [`ConnectionResolver::configure`]).
    pub fn from_config(config: &ConfigParams) -> Result<Self> {
        let mut resolver = Self::new();
        resolver.configure(config)?;
        Ok(resolver)
    }

    /// Reads the connections in `config` and appends them to the ones already held (as the
    /// original does).
    ///
    /// Every static connection is checked now: a malformed `uri`, a `port` that is not a
    /// number from 1 to 65535, or a connection with none of `host`, `ip`, `uri` and
    /// `discovery_key` fails with a configuration error naming the full key and its value.
    /// On error nothing is added.
    pub fn configure(&mut self, config: &ConfigParams) -> Result<()> {
        let read = read_connections(config);
        for (path, connection) in &read {
            if !connection.uses_discovery() {
                expand(connection, path)?;
            } else if let Some(raw) = connection.port_raw() {
                parse_port(raw, &join(path, "port"))?;
            }
        }
        self.connections.extend(read.into_iter().map(|(_, c)| c));
        Ok(())
    }

    /// Gives the resolver the references in which it finds `*:discovery:*:*:*` components.
    pub fn set_references(&mut self, references: &References) {
        self.references = references.clone();
    }

    /// Adds a connection (checked when resolved).
    pub fn add(&mut self, connection: ConnectionParams) {
        self.connections.push(connection);
    }

    /// The connections as configured (before uri expansion and discovery).
    pub fn get_all(&self) -> &[ConnectionParams] {
        &self.connections
    }

    /// Every server: the static connections first (uris expanded), then for each connection
    /// with a `discovery_key`, what every registered discovery knows under that key, merged
    /// over the configured parameters (configured keys are the base, discovered keys win).
    ///
    /// Errors (each carrying the trace id of `ctx`):
    /// - a `discovery_key` while no `*:discovery:*:*:*` component exposing
    ///   [`Discovery`] is registered: `REF_ERROR` (details `locator`, `discovery_key`);
    /// - a `discovery_key` that no discovery knows: a configuration error naming the key;
    /// - a bad `uri` or `port`, static or discovered: a configuration error naming the key
    ///   and the value.
    pub async fn resolve_all(&self, ctx: &Context) -> Result<Vec<ConnectionParams>> {
        let mut resolved = Vec::new();
        for connection in self.connections.iter().filter(|c| !c.uses_discovery()) {
            resolved.extend(expand(connection, "").map_err(|e| e.with_context(ctx))?);
        }
        for connection in self.connections.iter().filter(|c| c.uses_discovery()) {
            let discovered = self.discover(ctx, connection).await?;
            resolved.extend(discovered);
        }
        Ok(resolved)
    }

    /// The first connection [`ConnectionResolver::resolve_all`] returns, `None` when there
    /// is none.
    pub async fn resolve(&self, ctx: &Context) -> Result<Option<ConnectionParams>> {
        Ok(self.resolve_all(ctx).await?.into_iter().next())
    }

    async fn discover(
        &self,
        ctx: &Context,
        connection: &ConnectionParams,
    ) -> Result<Vec<ConnectionParams>> {
        let key = connection.discovery_key().unwrap_or_default().to_string();
        let locator = discovery_locator();
        let discoveries = self.references.get_optional::<dyn Discovery>(&locator);
        if discoveries.is_empty() {
            return Err(Error::new(
                ErrorKind::Reference,
                codes::REF_ERROR,
                format!(
                    "discovery_key '{key}' is configured but no discovery component ({locator}) is registered"
                ),
            )
            .with_detail("locator", &locator)
            .with_detail("discovery_key", &key)
            .with_context(ctx));
        }
        let mut found = Vec::new();
        for discovery in discoveries {
            found.extend(discovery.resolve_all(ctx, &key).await?);
        }
        if found.is_empty() {
            return Err(
                Error::config(format!("no discovery knows the discovery_key '{key}'"))
                    .with_detail("key", "discovery_key")
                    .with_detail("discovery_key", &key)
                    .with_context(ctx),
            );
        }
        let mut base = connection.as_config().clone();
        base.remove("discovery_key");
        let mut resolved = Vec::new();
        for item in found {
            let mut base = base.clone();
            // A discovered endpoint replaces the configured one as a whole.
            if item.host().is_some() || item.uri().is_some() {
                for k in ["host", "ip", "uri"] {
                    base.remove(k);
                }
            }
            let mut merged = base.override_with(item.as_config());
            merged.remove("discovery_key");
            let merged = ConnectionParams::from_config(merged);
            resolved.extend(
                expand(&merged, "")
                    .map_err(|e| e.with_detail("discovery_key", &key).with_context(ctx))?,
            );
        }
        Ok(resolved)
    }
}

/// The `NO_CONNECTION` error (kind [`ErrorKind::Config`]) a component returns when its
/// configuration resolves to no server at all.
///
/// ```
/// use commons::{codes, no_connection_error, ErrorKind};
/// let err = no_connection_error("MemcachedLock");
/// assert_eq!(err.code(), codes::NO_CONNECTION);
/// assert_eq!(err.kind(), ErrorKind::Config);
/// ```
pub fn no_connection_error(component: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        codes::NO_CONNECTION,
        format!(
            "{component} has no connection: configure connection.host/port, connection.uri, connections.<name>.*, or a discovery_key"
        ),
    )
    .with_detail("component", component)
}

fn discovery_locator() -> Descriptor {
    Descriptor::new("*", "discovery", "*", "*", "*")
}

/// The configured connections with the config path each came from (for error messages).
fn read_connections(config: &ConfigParams) -> Vec<(String, ConnectionParams)> {
    read_sections(config, "connections", "connection", &TOP_LEVEL_KEYS)
        .into_iter()
        .map(|(path, params)| (path, ConnectionParams::from_config(params)))
        .collect()
}

/// Turns one static connection into one connection per server, checking every value.
/// `path` is where it came from in the configuration ("" when unknown).
fn expand(connection: &ConnectionParams, path: &str) -> Result<Vec<ConnectionParams>> {
    if let Some(uri) = connection.uri() {
        let parsed = parse_uri(uri, &join(path, "uri"))?;
        let mut base = connection.as_config().clone();
        base.remove("uri");
        base.remove("ip");
        for (k, v) in &parsed.query {
            base.set(k.clone(), v.clone());
        }
        if let Some(user) = &parsed.username {
            base.set("username", user.clone());
        }
        if let Some(password) = &parsed.password {
            base.set("password", password.clone());
        }
        if let Some(scheme) = &parsed.scheme {
            base.set("protocol", scheme.clone());
        }
        return Ok(parsed
            .hosts
            .into_iter()
            .map(|(host, port)| {
                let mut c = ConnectionParams::from_config(base.clone());
                c.set_host(&host);
                if let Some(port) = port {
                    c.set_port(port);
                }
                c
            })
            .collect());
    }
    let Some(host) = connection.host().map(str::trim).map(str::to_string) else {
        let key = join(path, "host");
        return Err(Error::config(format!(
            "connection '{}' has no host, ip, uri or discovery_key",
            if path.is_empty() { "(unnamed)" } else { path }
        ))
        .with_detail("key", key));
    };
    check_host(&host).map_err(|why| {
        let key = if connection.get("host").is_some() {
            "host"
        } else {
            "ip"
        };
        Error::bad_config_value(&join(path, key), &host, why)
    })?;
    let mut c = connection.clone();
    c.set_host(&host);
    if let Some(raw) = connection.port_raw() {
        c.set_port(parse_port(raw, &join(path, "port"))?);
    }
    Ok(vec![c])
}

fn parse_port(raw: &str, key: &str) -> Result<u16> {
    match raw.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Error::bad_config_value(
            key,
            raw,
            "a port number from 1 to 65535",
        )),
    }
}

fn check_host(host: &str) -> std::result::Result<(), &'static str> {
    if host.is_empty() {
        return Err("a host name or address");
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "/?#@,".contains(c))
    {
        return Err("a host name or address without spaces or any of / ? # @ ,");
    }
    Ok(())
}

/// Keys a uri query may not set: the uri's own host list says where the servers are.
const ENDPOINT_KEYS: [&str; 5] = ["uri", "discovery_key", "host", "ip", "port"];

#[derive(Debug, Default)]
struct ParsedUri {
    scheme: Option<String>,
    username: Option<String>,
    password: Option<String>,
    hosts: Vec<(String, Option<u16>)>,
    query: Vec<(String, String)>,
}

/// Parses `[scheme://][user[:password]@]host[:port][,host[:port]...][/][?k=v&...]`;
/// a host may be an IPv6 address in brackets (`[::1]:11211`).
fn parse_uri(uri: &str, key: &str) -> Result<ParsedUri> {
    // The uri may carry a password (`user:password@`, `?password=`): errors show it redacted.
    let shown = redact_uri(uri);
    let bad = |expected: &str| Error::bad_config_value(key, &shown, expected);
    let text = uri.trim();
    if text.is_empty() {
        return Err(bad("a uri such as memcached://host1:11211,host2:11212"));
    }
    let mut parsed = ParsedUri::default();
    let rest = match text.find("://") {
        Some(pos) => {
            let scheme = &text[..pos];
            let valid = scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if !valid {
                return Err(bad("a uri whose scheme is letters, digits, +, - or ."));
            }
            parsed.scheme = Some(scheme.to_ascii_lowercase());
            &text[pos + 3..]
        }
        None => text,
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    if rest.contains('#') || query.is_some_and(|q| q.contains('#')) {
        return Err(bad("a uri without a fragment (#)"));
    }
    let authority = match rest.split_once('/') {
        Some((a, "")) => a,
        Some(_) => return Err(bad("a uri without a path (memcached has no databases)")),
        None => rest,
    };
    let hosts = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            parsed.username = Some(percent_decode(user).ok_or_else(|| bad("valid %-escapes"))?);
            if let Some(p) = password {
                parsed.password = Some(percent_decode(p).ok_or_else(|| bad("valid %-escapes"))?);
            }
            hosts
        }
        None => authority,
    };
    for entry in hosts.split(',') {
        parsed
            .hosts
            .push(parse_host_port(entry.trim()).map_err(bad)?);
    }
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k).ok_or_else(|| bad("valid %-escapes in the query"))?;
            let v = percent_decode(v).ok_or_else(|| bad("valid %-escapes in the query"))?;
            if k.trim().is_empty() {
                return Err(bad("query pairs of the form name=value"));
            }
            // The uri itself names the servers: a query pair that sets one of these keys
            // would contradict it (or, for `uri` and `discovery_key`, leave a resolved
            // connection that does not name exactly one server).
            if ENDPOINT_KEYS.contains(&k.trim()) {
                return Err(bad(
                    "a uri whose query does not set uri, discovery_key, host, ip or port",
                ));
            }
            parsed.query.push((k.trim().to_string(), v));
        }
    }
    Ok(parsed)
}

fn parse_host_port(entry: &str) -> std::result::Result<(String, Option<u16>), &'static str> {
    const NEED_HOST: &str = "a uri with a host in every comma-separated entry";
    const BAD_PORT: &str = "a uri whose ports are numbers from 1 to 65535";
    let (host, port) = if let Some(v6) = entry.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or("a uri whose IPv6 address ends with ]")?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || ":.%".contains(c))
        {
            return Err("a uri with a valid IPv6 address in brackets");
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("a uri with :port after the IPv6 address")?,
            ),
        };
        (addr, port)
    } else {
        match entry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        }
    };
    if host.is_empty() {
        return Err(NEED_HOST);
    }
    if host.contains(':') && !entry.starts_with('[') {
        return Err("a uri with IPv6 addresses in brackets ([::1]:11211)");
    }
    check_host(host).map_err(|_| "a uri whose hosts have no spaces or reserved characters")?;
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => Some(p),
            _ => return Err(BAD_PORT),
        },
    };
    Ok((host.to_string(), port))
}
