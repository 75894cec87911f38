//! Several servers and the selector that spreads keys over them.

use std::sync::Arc;

use commons::{Context, Error, ErrorKind, codes};

use super::classic::ClassicTransport;
use super::codec::WireKey;
use super::endpoint::Endpoint;
use super::identity::supports_meta;
use super::options::{ClientOptions, ProtocolMode};
use super::selector::ServerSelector;
use super::server::Server;

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
    pub(crate) async fn connect(
        ctx: &Context,
        addresses: Vec<String>,
        options: ClientOptions,
        mode: ProtocolMode,
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
        let mut probes = tokio::task::JoinSet::new();
        for (i, address) in addresses.iter().enumerate() {
            let address = address.clone();
            let options = options.clone();
            let ctx = ctx.clone();
            probes.spawn(async move { (i, open_endpoint(&ctx, address, options, mode).await) });
        }
        let mut opened: Vec<Option<Arc<Endpoint>>> = vec![None; addresses.len()];
        let mut first_error: Option<(usize, Error)> = None;
        while let Some(joined) = probes.join_next().await {
            match joined {
                Ok((i, Ok(endpoint))) => {
                    if let Some(slot) = opened.get_mut(i) {
                        *slot = Some(endpoint);
                    }
                }
                Ok((i, Err(e))) => {
                    if first_error.as_ref().is_none_or(|(j, _)| i < *j) {
                        first_error = Some((i, e));
                    }
                }
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
        if let Some((_, e)) = first_error {
            for s in opened.iter().flatten() {
                s.close();
            }
            return Err(e);
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

/// Makes the endpoint for `address` in `mode` and probes it (one connection).
async fn open_endpoint(
    ctx: &Context,
    address: String,
    options: ClientOptions,
    mode: ProtocolMode,
) -> Result<Arc<Endpoint>, Error> {
    let endpoint = match mode {
        ProtocolMode::Meta => Endpoint::Meta(Server::new(address.as_str(), options)),
        ProtocolMode::Classic => Endpoint::Classic(Server::new(address.as_str(), options)),
        ProtocolMode::Auto => {
            // The classic probe (`version` + `stats`) works on every server; its connection
            // is kept when classic is the pick.
            let classic = Server::<ClassicTransport>::new(address.as_str(), options.clone());
            classic.check(ctx).await?;
            let meta_capable = classic
                .health()
                .version()
                .is_some_and(|v| supports_meta(&v));
            if !meta_capable {
                return Ok(Arc::new(Endpoint::Classic(classic)));
            }
            classic.close();
            Endpoint::Meta(Server::new(address.as_str(), options))
        }
    };
    if let Err(e) = endpoint.check(ctx).await {
        endpoint.close();
        return Err(e);
    }
    Ok(Arc::new(endpoint))
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
