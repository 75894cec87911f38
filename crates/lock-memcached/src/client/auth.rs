//! memcached's ASCII authentication (`-Y <auth file>`, memcached 1.5.15+), done on every new
//! connection before anything else is sent, in both transports.
//!
//! A server started with `-Y` answers every command with `CLIENT_ERROR unauthenticated` until
//! the connection sends `set <any key> 0 0 <len>` with `<user> <password>` as the data, which
//! it answers `STORED` (or `CLIENT_ERROR authentication failure`). A server without `-Y`
//! would store that `set` as an ordinary item, so the client first asks `version`: its answer
//! tells whether the server wants authentication at all, and nothing is written to a server
//! that does not.

use std::fmt;
use std::time::Duration;

use commons::{Error, ErrorKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::errors::{connection_error, timed_out};
use crate::codes::{AUTH_FAILED, AUTH_NOT_REQUIRED, AUTH_REQUIRED};

/// The longest reply line the handshake accepts.
const MAX_LINE: usize = 1024;

/// What memcached answers before a connection authenticated.
const UNAUTHENTICATED: &str = "CLIENT_ERROR unauthenticated";

/// A user name and password for memcached's ASCII authentication. The password is never
/// shown (`Debug` prints `***`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// `None` when `username` is empty or either contains a space or a line break (the
    /// protocol separates them by one space on one line).
    pub(crate) fn new(username: &str, password: &str) -> Option<Credentials> {
        let bad = |s: &str| s.chars().any(|c| c == ' ' || c.is_control());
        if username.is_empty() || bad(username) || bad(password) {
            return None;
        }
        Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        })
    }

    /// The user name (not secret).
    pub(crate) fn username(&self) -> &str {
        &self.username
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Authenticates a fresh connection to `address` when `credentials` are given (within
/// `limit`); without credentials nothing is sent, and a server that wants them is recognised
/// by [`is_unauthenticated`] on the first reply.
pub(crate) async fn authenticate<S>(
    stream: &mut S,
    address: &str,
    credentials: Option<&Credentials>,
    limit: Duration,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(credentials) = credentials else {
        return Ok(());
    };
    tokio::time::timeout(limit, exchange(stream, address, credentials))
        .await
        .map_err(|_| timed_out(address, limit, "authenticating a new connection"))?
}

async fn exchange<S>(stream: &mut S, address: &str, credentials: &Credentials) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let line = ask(stream, address, b"version\r\n").await?;
    if line.starts_with("VERSION ") {
        return Err(Error::new(
            ErrorKind::Config,
            AUTH_NOT_REQUIRED,
            format!(
                "memcached at {address} does not use authentication (started without -Y), but credential.username is configured: remove the credentials or start the server with -Y"
            ),
        )
        .with_detail("server", address));
    }
    if line != UNAUTHENTICATED {
        return Err(unexpected(address, &line, "version"));
    }
    let data = format!("{} {}", credentials.username, credentials.password);
    let request = format!("set auth 0 0 {}\r\n{data}\r\n", data.len());
    let line = ask(stream, address, request.as_bytes()).await?;
    match line.as_str() {
        "STORED" => Ok(()),
        "CLIENT_ERROR authentication failure" => Err(Error::new(
            ErrorKind::Unauthorized,
            AUTH_FAILED,
            format!(
                "memcached at {address} refused the user name or password of user '{}' (credential.username / credential.password)",
                credentials.username
            ),
        )
        .with_detail("server", address)
        .with_detail("username", &credentials.username)),
        _ => Err(unexpected(address, &line, "the authentication")),
    }
}

/// Whether a reply line says the server wants authentication first.
pub(crate) fn is_unauthenticated(line: &str) -> bool {
    line.trim_end() == UNAUTHENTICATED || line.trim_end() == "unauthenticated"
}

/// `AUTH_REQUIRED`: the server at `address` wants credentials that were not configured.
pub(crate) fn required(address: &str) -> Error {
    Error::new(
        ErrorKind::Unauthorized,
        AUTH_REQUIRED,
        format!(
            "memcached at {address} requires authentication (started with -Y): configure credential.username and credential.password"
        ),
    )
    .with_detail("server", address)
}

fn unexpected(address: &str, line: &str, to: &str) -> Error {
    let shown: String = line.chars().take(80).collect();
    connection_error(
        address,
        format!("memcached at {address} answered {shown:?} to {to} on a new connection"),
    )
}

/// Writes `request` and reads one reply line (without its `\r\n`).
async fn ask<S>(stream: &mut S, address: &str, request: &[u8]) -> Result<String, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = |e: std::io::Error| {
        connection_error(
            address,
            format!("authenticating the connection to {address} failed: {e}"),
        )
        .with_source(e)
    };
    stream.write_all(request).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    // Byte by byte: nothing may be read past this line, which belongs to the transport.
    // Two short lines per connection; the cost does not matter.
    loop {
        let n = stream.read(&mut byte).await.map_err(io)?;
        if n == 0 {
            return Err(connection_error(
                address,
                format!("memcached at {address} closed the connection during authentication"),
            ));
        }
        line.push(byte[0]);
        if line.ends_with(b"\r\n") {
            line.truncate(line.len() - 2);
            break;
        }
        if line.len() > MAX_LINE {
            return Err(unexpected(
                address,
                &String::from_utf8_lossy(&line),
                "authentication",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_refuse_what_the_protocol_cannot_carry_and_hide_the_password() {
        assert!(Credentials::new("", "x").is_none());
        assert!(Credentials::new("a b", "x").is_none());
        assert!(Credentials::new("a", "x y").is_none());
        assert!(Credentials::new("a", "x\r\nversion").is_none());
        let c = Credentials::new("alice", "s3cret").unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
