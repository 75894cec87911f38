//! Several servers and the selector that spreads keys over them.

use std::net::SocketAddr;
use std::sync::Arc;

use commons::{Context, Error, ErrorKind, codes};

use super::classic::ClassicTransport;
use super::codec::WireKey;
use super::endpoint::Endpoint;
use super::errors::connection_error;
use super::identity::supports_meta;
use super::options::{ClientOptions, ProtocolMode};
use super::selector::ServerSelector;
use super::server::Server;
use super::tcp::Peer;

/// The servers of one lock instance plus the key-to-server mapping.
#[derive(Debug)]
pub(crate) struct Cluster {
    servers: Vec<Arc<Endpoint>>,
    selector: ServerSelector,
}

impl Cluster {
    /// Validates the addresses ("host:port"), opens one connection to every server and
    /// probes it (version, identity). An unreachable server is an `ErrorKind::Connection`
    /// error naming it.
    ///
    /// `mode`: `Meta` speaks meta commands and refuses a server older than 1.6.13
    /// (`ErrorKind::Unsupported`); `Classic` speaks the classic text protocol to every server;
    /// `Auto` probes each server's `version` and picks meta from 1.6.13 on, classic below
    /// (and for a version it cannot read).
    ///
    /// `at_least` servers must answer their probe; the others may be unreachable (not
    /// misconfigured: any other error fails the open) and are then added unprobed, to be
    /// connected and probed on first use (quorum mode opens with a majority).
    pub(crate) async fn connect(
        ctx: &Context,
        addresses: Vec<String>,
        options: ClientOptions,
        mode: ProtocolMode,
        at_least: usize,
    ) -> Result<Cluster, Error> {
        if addresses.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                codes::NO_CONNECTION,
                "no memcached server address to connect to",
            )
            .with_context(ctx));
        }
        for address in &addresses {
            check_address(address).map_err(|e| e.with_context(ctx))?;
        }
        // Each name is looked up once, here; every connection of its server goes to the
        // address it is pinned to.
        let mut resolved = Vec::with_capacity(addresses.len());
        for address in &addresses {
            let found = match tokio::net::lookup_host(address.as_str()).await {
                Ok(found) => found.collect(),
                Err(e) => {
                    return Err(connection_error(
                        address,
                        format!("cannot resolve the memcached server address {address}: {e}"),
                    )
                    .with_source(e)
                    .with_context(ctx));
                }
            };
            resolved.push(candidates(address, found).map_err(|e| e.with_context(ctx))?);
        }
        check_distinct(&addresses, &resolved).map_err(|e| e.with_context(ctx))?;
        let mut probes = tokio::task::JoinSet::new();
        for (i, (address, candidates)) in addresses.iter().zip(resolved.clone()).enumerate() {
            let address = address.clone();
            let options = options.clone();
            let ctx = ctx.clone();
            probes.spawn(async move {
                (
                    i,
                    open_pinned(&ctx, &address, &candidates, options, mode).await,
                )
            });
        }
        let mut opened: Vec<Option<Arc<Endpoint>>> = vec![None; addresses.len()];
        let mut errors: Vec<(usize, Error)> = Vec::new();
        while let Some(joined) = probes.join_next().await {
            match joined {
                Ok((i, Ok(endpoint))) => {
                    if let Some(slot) = opened.get_mut(i) {
                        *slot = Some(endpoint);
                    }
                }
                Ok((i, Err(e))) => errors.push((i, e)),
                Err(e) => {
                    for s in opened.iter().flatten() {
                        s.close();
                    }
                    return Err(
                        Error::internal(format!("server probe task failed: {e}")).with_context(ctx)
                    );
                }
            }
        }
        errors.sort_by_key(|(i, _)| *i);
        let answered = opened.iter().flatten().count();
        let fatal = errors
            .iter()
            .position(|(_, e)| !is_unreachable(e))
            .or((answered < at_least && !errors.is_empty()).then_some(0));
        if let Some(at) = fatal {
            for s in opened.iter().flatten() {
                s.close();
            }
            return Err(errors.swap_remove(at).1);
        }
        for (i, _) in errors {
            // Unreachable now, and not needed to open: connected and probed on first use.
            let peer = Peer::new(addresses[i].as_str(), resolved[i][0]);
            let endpoint = match mode {
                ProtocolMode::Classic => Endpoint::Classic(Server::pinned(peer, options.clone())),
                // A server that cannot be asked its version is taken to speak meta (quorum
                // mode needs it anyway); an older one fails on first use.
                ProtocolMode::Meta | ProtocolMode::Auto => {
                    Endpoint::Meta(Server::pinned(peer, options.clone()))
                }
            };
            opened[i] = Some(Arc::new(endpoint));
        }
        let servers: Vec<Arc<Endpoint>> = opened.into_iter().flatten().collect();
        if servers.len() != addresses.len() {
            return Err(Error::internal("a server probe returned no result").with_context(ctx));
        }
        let selector = ServerSelector::new(&addresses, options.distribution);
        Ok(Cluster { servers, selector })
    }

    /// The server that holds `key`.
    pub(crate) fn server_for(&self, key: &WireKey) -> &Arc<Endpoint> {
        let i = self.selector.pick(key.as_bytes());
        // `pick` returns an index below the number of servers, which is never zero.
        &self.servers[i.min(self.servers.len() - 1)]
    }

    /// All servers, in the order of the addresses given to `connect`.
    pub(crate) fn servers(&self) -> &[Arc<Endpoint>] {
        &self.servers
    }

    /// Closes every connection of every server.
    pub(crate) async fn close(&self) {
        for s in &self.servers {
            s.close();
        }
        // Let the connection tasks observe the close before returning.
        tokio::task::yield_now().await;
    }
}

/// The addresses `name` may be pinned to, in the order to try them: its one address, or, for
/// a name of this machine only (`localhost`: `127.0.0.1` and `::1`), each loopback address
/// until one answers. A name with several addresses elsewhere is refused: connections to it
/// could reach different machines, and a lock must live on exactly one server.
fn candidates(name: &str, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Error> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(found.len());
    for addr in found {
        if !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    match unique.len() {
        0 => Err(connection_error(
            name,
            format!("the memcached server address {name} resolves to no address"),
        )),
        1 => Ok(unique),
        _ if unique.iter().all(|a| a.ip().is_loopback()) => Ok(unique),
        _ => {
            let list: Vec<String> = unique.iter().map(ToString::to_string).collect();
            Err(Error::new(
                ErrorKind::Config,
                codes::BAD_CONFIG,
                format!(
                    "the memcached server address {name} resolves to several addresses ({}): \
                     its connections could reach different servers, and a lock must live on \
                     exactly one; configure one address per server",
                    list.join(", ")
                ),
            )
            .with_detail("server", name))
        }
    }
}

/// Refuses a list that names one server twice (`localhost:11211` and `127.0.0.1:11211`):
/// key placement would treat it as two servers.
fn check_distinct(names: &[String], resolved: &[Vec<SocketAddr>]) -> Result<(), Error> {
    for (i, a) in resolved.iter().enumerate() {
        for (j, b) in resolved.iter().enumerate().skip(i + 1) {
            if let Some(shared) = a.iter().find(|addr| b.contains(addr)) {
                return Err(Error::new(
                    ErrorKind::Config,
                    codes::BAD_CONFIG,
                    format!(
                        "memcached servers {} and {} are the same server ({shared}): list each \
                         server once, spelled the same way in every client",
                        names[i], names[j]
                    ),
                )
                .with_detail("server", &names[j]));
            }
        }
    }
    Ok(())
}

/// Makes the endpoint for `name`, pinned to the first of `candidates` that answers its probe.
async fn open_pinned(
    ctx: &Context,
    name: &str,
    candidates: &[SocketAddr],
    options: ClientOptions,
    mode: ProtocolMode,
) -> Result<Arc<Endpoint>, Error> {
    let mut last = None;
    for &addr in candidates {
        match open_endpoint(ctx, Peer::new(name, addr), options.clone(), mode).await {
            Ok(endpoint) => return Ok(endpoint),
            // Another loopback address of this machine may be the one memcached listens on.
            Err(e) if e.kind() == ErrorKind::Connection => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::internal("a server without an address").with_context(ctx)))
}

/// Makes the endpoint for `peer` in `mode` and probes it (one connection).
async fn open_endpoint(
    ctx: &Context,
    peer: Peer,
    options: ClientOptions,
    mode: ProtocolMode,
) -> Result<Arc<Endpoint>, Error> {
    let endpoint = match mode {
        ProtocolMode::Meta => Endpoint::Meta(Server::pinned(peer, options)),
        ProtocolMode::Classic => Endpoint::Classic(Server::pinned(peer, options)),
        ProtocolMode::Auto => {
            // The classic probe (`version` + `stats`) works on every server; its connection
            // is kept when classic is the pick.
            let classic = Server::<ClassicTransport>::pinned(peer.clone(), options.clone());
            classic.check(ctx).await?;
            let meta_capable = classic
                .health()
                .version()
                .is_some_and(|v| supports_meta(&v));
            if !meta_capable {
                return Ok(Arc::new(Endpoint::Classic(classic)));
            }
            classic.close();
            Endpoint::Meta(Server::pinned(peer, options))
        }
    };
    if let Err(e) = endpoint.check(ctx).await {
        endpoint.close();
        return Err(e);
    }
    Ok(Arc::new(endpoint))
}

/// Whether a probe failed because the server could not be reached or did not answer (as
/// opposed to a misconfiguration: wrong credentials, an unsupported server).
fn is_unreachable(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout)
}

/// "host:port" with a non-empty host and a numeric port.
fn check_address(address: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::Config,
            codes::BAD_CONFIG,
            format!("memcached server address '{address}' {why}; expected host:port"),
        )
        .with_detail("server", address)
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(bad("has no port"));
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("has an empty or invalid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad("has an invalid port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_pinned_to_one_address_or_refused() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            candidates(
                "cache:11211",
                vec![a("10.0.0.5:11211"), a("10.0.0.5:11211")]
            )
            .unwrap(),
            [a("10.0.0.5:11211")]
        );
        // This machine only: each loopback address is a candidate, tried in order.
        let local = vec![a("[::1]:11211"), a("127.0.0.1:11211")];
        assert_eq!(candidates("localhost:11211", local.clone()).unwrap(), local);
        // Several machines: refused, naming them.
        let err = candidates(
            "cache:11211",
            vec![a("10.0.0.5:11211"), a("10.0.0.6:11211")],
        )
        .unwrap_err();
        assert_eq!(err.code(), codes::BAD_CONFIG);
        assert!(err.message().contains("10.0.0.6:11211"), "{err}");
        assert_eq!(
            candidates("cache:11211", vec![]).unwrap_err().kind(),
            ErrorKind::Connection
        );
    }

    #[test]
    fn one_server_listed_twice_is_refused() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let names = ["localhost:1".to_string(), "127.0.0.1:1".to_string()];
        let err = check_distinct(
            &names,
            &[vec![a("[::1]:1"), a("127.0.0.1:1")], vec![a("127.0.0.1:1")]],
        )
        .unwrap_err();
        assert_eq!(err.code(), codes::BAD_CONFIG);
        assert!(err.message().contains("127.0.0.1:1"), "{err}");
        assert!(check_distinct(&names, &[vec![a("127.0.0.1:1")], vec![a("127.0.0.1:2")]]).is_ok());
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("127.0.0.1:11211").is_ok());
        assert!(check_address("[::1]:11211").is_ok());
        assert!(check_address("cache.local:1").is_ok());
        for bad in [
            "",
            "host",
            ":11211",
            "host:",
            "host:0",
            "host:99999",
            "ho st:1",
            "h:x",
        ] {
            let e = check_address(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
        }
    }
}
