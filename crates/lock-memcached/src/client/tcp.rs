//! Opening a connection to a server (TCP, then TLS when configured), the same way for both
//! transports.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::errors::connection_error;
use super::stream::Stream;
use super::tls::TlsSettings;

pub(crate) use super::peer::Peer;

/// Connects to `peer`, sets TCP_NODELAY (a lock request is small and latency-bound) and
/// negotiates TLS when `tls` is given; `connect_timeout` bounds the whole.
pub(crate) async fn connect(
    peer: &Peer,
    connect_timeout: Duration,
    tls: Option<&TlsSettings>,
) -> Result<Stream, commons::Error> {
    let started = Instant::now();
    let tcp = connect_tcp(peer, connect_timeout).await?;
    match tls {
        None => Ok(Stream::Plain(tcp)),
        Some(tls) => {
            let left = connect_timeout.saturating_sub(started.elapsed());
            let stream = tls.handshake(peer, tcp, left).await?;
            Ok(Stream::Tls(Box::new(stream)))
        }
    }
}

async fn connect_tcp(peer: &Peer, connect_timeout: Duration) -> Result<TcpStream, commons::Error> {
    let address = &**peer.name();
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(peer.addr())).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return Err(connection_error(
                address,
                format!(
                    "cannot connect to memcached at {address} ({}): {e}",
                    peer.addr()
                ),
            )
            .with_source(e));
        }
        Err(_) => {
            return Err(connection_error(
                address,
                format!(
                    "connecting to memcached at {address} did not finish within {connect_timeout:?}"
                ),
            ));
        }
    };
    stream.set_nodelay(true).map_err(|e| {
        connection_error(
            address,
            format!("cannot set TCP_NODELAY on the connection to {address}: {e}"),
        )
        .with_source(e)
    })?;
    Ok(stream)
}
