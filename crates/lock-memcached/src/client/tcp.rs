//! Opening a TCP connection to a server, the same way for both transports.

use std::time::Duration;

use tokio::net::TcpStream;

use super::errors::connection_error;

/// Connects to `address` ("host:port") within `connect_timeout` and sets TCP_NODELAY (a lock
/// request is small and latency-bound).
pub(crate) async fn connect(
    address: &str,
    connect_timeout: Duration,
) -> Result<TcpStream, commons::Error> {
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return Err(connection_error(
                address,
                format!("cannot connect to memcached at {address}: {e}"),
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
