//! Each (meta) request as classic commands through memcache-async, and what the replies
//! mean. The table of translations is in the module above.

use std::io;

use commons::Error;

use super::conn::ClassicConn;
use crate::client::codec::{AcquireReplies, MetaFlags, Reply, Request, SetMode, WireKey};
use crate::client::errors::{not_sent, outcome_unknown, protocol_error, reply_error};

/// The expiry that deletes: memcached reads an expiry above 30 days (2,592,000 s) as an
/// absolute Unix time, and one in the past stores an item that is already expired. Checked on
/// memcached 1.6.18: `cas k 0 2592001 0 <cas>` answers `STORED` (or `EXISTS` for another CAS)
/// and a following `gets` misses.
pub(crate) const PAST_EXPIRY: u32 = 2_592_001;

/// The classic command(s) a request becomes, for messages.
pub(crate) fn command_name(req: &Request) -> &'static str {
    match req {
        Request::Set {
            mode: SetMode::Add, ..
        } => "add+gets",
        Request::Set {
            mode: SetMode::Cas(_),
            ..
        } => "cas+gets",
        Request::Acquire(_) => "add+gets+incr",
        Request::Raise { .. } => "incr",
        Request::Delete { .. } => "cas (delete)",
        Request::Get { .. } => "gets",
        Request::Noop => "mn",
        Request::Clock => "clock read",
        Request::Version => "version",
        Request::Stats => "stats",
    }
}

/// Why a classic exchange failed, before it is turned into a [`commons::Error`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// The socket failed or the reply could not be read.
    Io(io::Error),
    /// The server answered `ERROR`, `CLIENT_ERROR` or `SERVER_ERROR` (as that reply).
    Server(Reply),
    /// A reply that does not belong to the command.
    Unexpected(String),
    /// A store went through but the `gets` that learns its CAS did not.
    AfterStore(Box<Failure>),
}

impl Failure {
    fn from_io(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::Other {
            // memcache-async puts the reply line it did not expect in the error.
            let line = e.to_string().trim_end().to_string();
            return match error_reply(&line) {
                Some(reply) => Failure::Server(reply),
                None => Failure::Unexpected(line),
            };
        }
        Failure::Io(e)
    }

    /// memcache-async 0.10's `cas` matches `NOT FOUND` (with a space), so memcached's
    /// `NOT_FOUND` comes back as an `Other` error carrying the line.
    fn is_not_found(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::NotFound
            || (e.kind() == io::ErrorKind::Other && e.to_string().trim_end() == "NOT_FOUND")
    }

    /// The error for a failed exchange of `command` with `address`; `sent` tells whether any
    /// of its bytes left.
    pub(crate) fn into_error(self, address: &str, command: &str, sent: bool) -> Error {
        match self {
            Failure::AfterStore(inner) => outcome_unknown(
                address,
                command,
                &format!(
                    "the value was stored but reading it back failed: {}; the lock may be held",
                    inner.into_error(address, command, sent).message()
                ),
            ),
            Failure::Server(reply) => reply_error(address, &reply, command),
            Failure::Unexpected(line) => protocol_error(
                address,
                &format!("unexpected reply {:?} to {command}", truncate(&line, 64)),
            ),
            Failure::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
                protocol_error(address, &format!("bad reply to {command}: {e}")).with_source(e)
            }
            Failure::Io(e) if sent => {
                let why = e.to_string();
                outcome_unknown(address, command, &why).with_source(e)
            }
            Failure::Io(e) => not_sent(address, command, &e.to_string()).with_source(e),
        }
    }
}

/// memcached's error lines as replies: `ERROR`, `CLIENT_ERROR <msg>`, `SERVER_ERROR <msg>`.
fn error_reply(line: &str) -> Option<Reply> {
    if line == "ERROR" {
        return Some(Reply::Error);
    }
    if let Some(msg) = line.strip_prefix("CLIENT_ERROR") {
        return Some(Reply::ClientError(msg.trim_start().to_string()));
    }
    line.strip_prefix("SERVER_ERROR")
        .map(|msg| Reply::ServerError(msg.trim_start().to_string()))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The key as text (memcache-async takes `Display` keys for `add`/`cas`). Keys are checked
/// printable ASCII before this point.
fn key_text(key: &[u8]) -> Result<&str, Failure> {
    std::str::from_utf8(key).map_err(|_| Failure::Unexpected("a key that is not UTF-8".into()))
}

/// After a store: `gets` the key and return its CAS if the value is `data` (ours).
async fn confirm(conn: &mut ClassicConn, key: &[u8], data: &[u8]) -> Result<Option<u64>, Failure> {
    match conn.proto.gets_cas(key).await {
        Ok((value, cas)) if value == data => Ok(Some(cas)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::from_io(e)),
    }
}

/// `add` then `gets`: `Hd` with the CAS when the stored value is ours, else `Ns`.
async fn add_confirmed(
    conn: &mut ClassicConn,
    key: &WireKey,
    data: &[u8],
    ttl_secs: u32,
) -> Result<Reply, Failure> {
    let text = key_text(key.as_bytes())?;
    match conn.proto.add(text, data, ttl_secs).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Ok(Reply::Ns(MetaFlags::default()));
        }
        Err(e) => return Err(Failure::from_io(e)),
    }
    // memcache-async reports every reply but NOT_STORED and error lines as stored: success
    // is only reported when the item really holds our value.
    match confirm(conn, key.as_bytes(), data).await {
        Ok(Some(cas)) => Ok(Reply::Hd(MetaFlags {
            cas: Some(cas),
            ..MetaFlags::default()
        })),
        // Our item is already gone and someone else's (or nothing) is there.
        Ok(None) => Ok(Reply::Ns(MetaFlags::default())),
        Err(f) => Err(Failure::AfterStore(Box::new(f))),
    }
}

/// Advances the fencing counter (`incr`), creating it at `initial` (`add`, never expiring)
/// when it does not exist; the value as a `Va` reply, like meta `ma ... v`.
async fn advance(
    conn: &mut ClassicConn,
    counter: &WireKey,
    initial: u64,
) -> Result<Reply, Failure> {
    let text = key_text(counter.as_bytes())?;
    let value = Reply::Count;
    // Two rounds at most: a miss, then an add that another client's add beat.
    for _ in 0..2 {
        match conn.proto.increment(counter.as_bytes(), 1).await {
            Ok(n) => return Ok(value(n)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::from_io(e)),
        }
        match conn
            .proto
            .add(text, initial.to_string().as_bytes(), 0)
            .await
        {
            Ok(()) => return Ok(value(initial)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Failure::from_io(e)),
        }
    }
    conn.proto
        .increment(counter.as_bytes(), 1)
        .await
        .map(value)
        .map_err(Failure::from_io)
}

/// One request as classic commands on `conn`.
pub(crate) async fn run(conn: &mut ClassicConn, req: &Request) -> Result<Reply, Failure> {
    let hd = |cas: Option<u64>| {
        Reply::Hd(MetaFlags {
            cas,
            ..MetaFlags::default()
        })
    };
    match req {
        Request::Set {
            key,
            data,
            mode: SetMode::Add,
            ttl_secs,
        } => add_confirmed(conn, key, data, *ttl_secs).await,
        Request::Raise { counter, by } => match conn.proto.increment(counter.as_bytes(), *by).await
        {
            Ok(n) => Ok(Reply::Count(n)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Reply::Nf(MetaFlags::default())),
            Err(e) => Err(Failure::from_io(e)),
        },
        Request::Acquire(a) => {
            let stored = add_confirmed(conn, &a.key, &a.data, a.ttl_secs).await?;
            // The counter is only advanced for an acquisition that holds the lock (it costs
            // round trips here, unlike in the meta pipeline).
            let counter = if matches!(stored, Reply::Hd(_)) {
                match advance(conn, &a.counter, a.initial).await {
                    Ok(value) => value,
                    Err(Failure::Server(reply)) => reply,
                    // The lock is held but the connection failed: the caller cleans up.
                    Err(f) => return Err(Failure::AfterStore(Box::new(f))),
                }
            } else {
                Reply::En
            };
            Ok(Reply::Acquired(Box::new(AcquireReplies {
                stored,
                counter,
                clock: None,
            })))
        }
        Request::Set {
            key,
            data,
            mode: SetMode::Cas(cas),
            ttl_secs,
        } => {
            let text = key_text(key.as_bytes())?;
            match conn.proto.cas(text, data, *cas, *ttl_secs).await {
                Ok(true) => match confirm(conn, key.as_bytes(), data).await {
                    Ok(Some(new_cas)) => Ok(hd(Some(new_cas))),
                    Ok(None) => Ok(Reply::Nf(MetaFlags::default())),
                    Err(f) => Err(Failure::AfterStore(Box::new(f))),
                },
                Ok(false) => Ok(Reply::Ex(MetaFlags::default())),
                Err(e) if Failure::is_not_found(&e) => Ok(Reply::Nf(MetaFlags::default())),
                Err(e) => Err(Failure::from_io(e)),
            }
        }
        Request::Delete { key, cas } => {
            let text = key_text(key.as_bytes())?;
            // Store an empty, already-expired item, only if the CAS still matches.
            match conn.proto.cas(text, b"", *cas, PAST_EXPIRY).await {
                Ok(true) => Ok(hd(None)),
                Ok(false) => Ok(Reply::Ex(MetaFlags::default())),
                Err(e) if Failure::is_not_found(&e) => Ok(Reply::Nf(MetaFlags::default())),
                Err(e) => Err(Failure::from_io(e)),
            }
        }
        Request::Get { key } => match conn.proto.gets_cas(key.as_bytes()).await {
            Ok((data, cas)) => Ok(Reply::Va {
                data,
                flags: MetaFlags {
                    cas: Some(cas),
                    ..MetaFlags::default()
                },
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Reply::En),
            Err(e) => Err(Failure::from_io(e)),
        },
        Request::Version => conn
            .proto
            .version()
            .await
            .map(Reply::Version)
            .map_err(Failure::from_io),
        // memcache-async has no `stats`: the transport sends it on a new connection, whose
        // probe asked `stats` already.
        Request::Stats => conn.fresh_stats.take().map(Reply::Stats).ok_or_else(|| {
            Failure::Unexpected("stats asked on a connection that was not just made".into())
        }),
        // The classic protocol cannot read an item's remaining ttl: no reading, and the lock
        // keeps relative expiries (docs/safety.md).
        Request::Clock => Ok(Reply::En),
        // `mn` has no classic counterpart.
        Request::Noop => Err(Failure::Unexpected(format!(
            "{} cannot be sent on a classic connection",
            command_name(req)
        ))),
    }
}
