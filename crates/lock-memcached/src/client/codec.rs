//! The meta-protocol codec: requests to bytes, bytes to replies.
//!
//! Only the commands the lock needs are spoken: `ms` (store, in add or compare-and-swap
//! mode), `md` (compare-and-delete), `mg` (inspect), `mn` (no-op), `version` and `stats`.
//! Every `ms`/`md`/`mg` carries an `O<opaque>` flag that memcached echoes back; the parser
//! checks it, so a stream that is out of step is detected instead of silently pairing a
//! reply with the wrong request.
//!
//! The parser is streaming and never panics: incomplete input is `Ok(None)`, anything that
//! does not follow the protocol (garbage, over-long lines, bad numbers, oversized values,
//! a reply of the wrong kind for the request, a wrong opaque) is a [`ProtocolError`].

use std::fmt;
use std::sync::Arc;

/// The longest reply line accepted (memcached's own lines are far shorter).
pub(crate) const MAX_LINE: usize = 8 * 1024;
/// The largest value accepted in a `VA` reply when no other limit is given.
pub(crate) const DEFAULT_MAX_VALUE: usize = 1024 * 1024 + 64 * 1024;
/// The largest `stats` reply accepted.
const MAX_STATS: usize = 1024 * 1024;
/// memcached's key length limit (the raw key; base64 keys are checked encoded).
pub(crate) const MAX_KEY: usize = 250;

/// The clock item's name (`pip-locks:` is the crate's reserved prefix); see `client::clock`.
pub(crate) const CLOCK_KEY: &[u8] = b"pip-locks:clock";

/// The clock item's absolute expiry, in unix seconds (2038-01-01T00:00:00Z). memcached reads
/// expiries as signed 32-bit numbers, so absolute expiries must stay below 2^31.
pub(crate) const CLOCK_EXPIRY: u32 = 2_145_916_800;

/// A key as it goes on the wire: already validated (by the lock's key module) and, when
/// `base64` is set, already base64-encoded (sent with the meta `b` flag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct WireKey {
    // Shared: a key is cloned into the request, the lease record and the cleanup guard.
    bytes: Arc<[u8]>,
    base64: bool,
}

impl WireKey {
    /// Wraps bytes the caller has validated. The connection re-checks them cheaply with
    /// [`WireKey::is_safe`] before writing, so an unchecked key can never inject a command.
    pub(crate) fn new_unchecked(bytes: Vec<u8>, base64: bool) -> WireKey {
        WireKey {
            bytes: bytes.into(),
            base64,
        }
    }

    /// [`WireKey::new_unchecked`] for `prefix` followed by `name`, in one allocation (the
    /// acquire path makes one per call).
    pub(crate) fn joined_unchecked(prefix: &[u8], name: &[u8]) -> WireKey {
        WireKey {
            bytes: prefix.iter().chain(name).copied().collect(),
            base64: false,
        }
    }

    /// The bytes sent as the key token.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the key is base64-encoded (sent with the `b` flag).
    pub(crate) fn is_base64(&self) -> bool {
        self.base64
    }

    /// Whether the key can be written without breaking the protocol: 1..=250 bytes, no
    /// whitespace, no control characters, no DEL.
    pub(crate) fn is_safe(&self) -> bool {
        !self.bytes.is_empty()
            && self.bytes.len() <= MAX_KEY
            && self.bytes.iter().all(|&b| b > b' ' && b != 0x7f)
    }
}

/// How an `ms` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetMode {
    /// Add: store only if the key does not exist (`ME`).
    Add,
    /// Compare-and-swap: store only if the item's CAS equals this (`C<cas>`).
    Cas(u64),
}

/// One request the client can send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// `ms <key> <len> [b] ME|C<cas> T<ttl> c O<opaque>` + data line.
    Set {
        key: WireKey,
        /// Shared with the lease record, so sending it copies nothing.
        data: Arc<[u8]>,
        mode: SetMode,
        ttl_secs: u32,
    },
    /// An acquire and its fencing counter in one round trip (see [`AcquireRequest`]).
    Acquire(AcquireRequest),
    /// `ma <counter> D<by> v O<opaque>`: raises an existing counter (never creates one).
    Raise { counter: WireKey, by: u64 },
    /// `md <key> [b] C<cas> O<opaque>`.
    Delete { key: WireKey, cas: u64 },
    /// `mg <key> [b] v c t O<opaque>`.
    Get { key: WireKey },
    /// `ma pip-locks:clock N<expiry> D0 t O<opaque>`: reads the server's clock (see
    /// `client::clock`); an `ma` that adds nothing rather than an `mg`, because memcached
    /// reports the remaining ttl of an item an `mg` just created as `-1`.
    Clock,
    /// `mn`.
    #[cfg_attr(not(test), allow(dead_code))] // used by the client's own tests
    Noop,
    /// `version`.
    Version,
    /// `stats`.
    Stats,
}

/// `ms <key> <len> [b] ME T<ttl> c O<opaque>` + data line, then
/// `ma <counter> N<expiry> J<initial> v t O<opaque>`. The
/// counter is advanced after the store, on the same connection, so a later acquisition of the
/// key always reads a larger value. Counters are created with the clock item's absolute expiry
/// (2038: as good as never), so the counter's remaining ttl (`t`) is also a reading of the
/// server's clock taken right after the store, which checks the clock the expiry was placed
/// by (see `client::clock`); a counter created without expiry (`t-1`) gives no reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcquireRequest {
    pub(crate) key: WireKey,
    pub(crate) data: Arc<[u8]>,
    pub(crate) ttl_secs: u32,
    pub(crate) counter: WireKey,
    /// The counter's value when this request creates it (`J`).
    pub(crate) initial: u64,
}

impl Request {
    /// The key this request carries, if any.
    pub(crate) fn key(&self) -> Option<&WireKey> {
        match self {
            Request::Acquire(a) => Some(&a.key),
            Request::Raise { counter, .. } => Some(counter),
            Request::Set { key, .. } | Request::Delete { key, .. } | Request::Get { key } => {
                Some(key)
            }
            Request::Noop | Request::Version | Request::Stats | Request::Clock => None,
        }
    }

    /// The reply shape to expect when this request is sent with `opaque`.
    pub(crate) fn shape(&self, opaque: u32) -> ReplyShape {
        match self {
            Request::Set { .. } => ReplyShape::Set { opaque },
            Request::Acquire(_) => ReplyShape::Acquire { opaque },
            Request::Raise { .. } => ReplyShape::Count { opaque },
            Request::Delete { .. } => ReplyShape::Delete { opaque },
            Request::Get { .. } => ReplyShape::Get { opaque },
            Request::Clock => ReplyShape::Count { opaque },
            Request::Noop => ReplyShape::Noop,
            Request::Version => ReplyShape::Version,
            Request::Stats => ReplyShape::Stats,
        }
    }

    /// A short name for messages (`ms`, `md`, ...): the name of the request its reply answers.
    pub(crate) fn command_name(&self) -> &'static str {
        shape_name(self.shape(0))
    }

    /// Appends the request's bytes to `buf`. `opaque` is used by `ms`/`md`/`mg` only.
    pub(crate) fn encode(&self, opaque: u32, buf: &mut Vec<u8>) {
        // Numbers are written with `push_decimal`, not `write!`: this runs once per request.
        match self {
            Request::Set {
                key,
                data,
                mode,
                ttl_secs,
            } => encode_set(buf, key, data, *mode, *ttl_secs, opaque),
            Request::Acquire(a) => {
                encode_set(buf, &a.key, &a.data, SetMode::Add, a.ttl_secs, opaque);
                // N0: created never expiring; J: its first value.
                encode_fence(buf, &a.counter, a.initial, opaque);
            }
            Request::Raise { counter, by } => encode_ma(buf, counter, b" D", *by, opaque),
            Request::Delete { key, cas } => {
                key_token(buf, b"md", key);
                base64_flag(buf, key);
                buf.extend_from_slice(b" C");
                push_decimal(buf, *cas);
                buf.extend_from_slice(b" O");
                push_decimal(buf, u64::from(opaque));
                buf.extend_from_slice(b"\r\n");
            }
            Request::Get { key } => {
                key_token(buf, b"mg", key);
                base64_flag(buf, key);
                buf.extend_from_slice(b" v c t O");
                push_decimal(buf, u64::from(opaque));
                buf.extend_from_slice(b"\r\n");
            }
            Request::Clock => encode_clock(buf, opaque),
            Request::Noop => buf.extend_from_slice(b"mn\r\n"),
            Request::Version => buf.extend_from_slice(b"version\r\n"),
            Request::Stats => buf.extend_from_slice(b"stats\r\n"),
        }
    }
}

/// `ma <counter> [b] N<expiry> J<initial> v t O<opaque>`: advances the fencing counter (created
/// at `initial` with the clock item's expiry on a miss) and returns its value and remaining ttl.
fn encode_fence(buf: &mut Vec<u8>, counter: &WireKey, initial: u64, opaque: u32) {
    key_token(buf, b"ma", counter);
    base64_flag(buf, counter);
    buf.extend_from_slice(b" N");
    push_decimal(buf, u64::from(CLOCK_EXPIRY));
    buf.extend_from_slice(b" J");
    push_decimal(buf, initial);
    buf.extend_from_slice(b" v t O");
    push_decimal(buf, u64::from(opaque));
    buf.extend_from_slice(b"\r\n");
}

/// `ma pip-locks:clock N<expiry> D0 t O<opaque>`: created on a miss with the fixed absolute
/// expiry, so the remaining ttl tells the server's clock.
fn encode_clock(buf: &mut Vec<u8>, opaque: u32) {
    buf.extend_from_slice(b"ma ");
    buf.extend_from_slice(CLOCK_KEY);
    buf.extend_from_slice(b" N");
    push_decimal(buf, u64::from(CLOCK_EXPIRY));
    buf.extend_from_slice(b" D0 t O");
    push_decimal(buf, u64::from(opaque));
    buf.extend_from_slice(b"\r\n");
}

fn key_token(buf: &mut Vec<u8>, cmd: &[u8], key: &WireKey) {
    buf.extend_from_slice(cmd);
    buf.push(b' ');
    buf.extend_from_slice(key.as_bytes());
}

fn base64_flag(buf: &mut Vec<u8>, key: &WireKey) {
    if key.is_base64() {
        buf.extend_from_slice(b" b");
    }
}

/// `ma <counter> [b]<flag><number> v O<opaque>`: the counter's new value comes back.
fn encode_ma(buf: &mut Vec<u8>, counter: &WireKey, flag: &[u8], number: u64, opaque: u32) {
    key_token(buf, b"ma", counter);
    base64_flag(buf, counter);
    buf.extend_from_slice(flag);
    push_decimal(buf, number);
    buf.extend_from_slice(b" v O");
    push_decimal(buf, u64::from(opaque));
    buf.extend_from_slice(b"\r\n");
}

/// `ms <key> <len> [b] ME|C<cas> T<ttl> c O<opaque>` + data line.
fn encode_set(
    buf: &mut Vec<u8>,
    key: &WireKey,
    data: &[u8],
    mode: SetMode,
    ttl_secs: u32,
    opaque: u32,
) {
    buf.reserve(key.as_bytes().len() + data.len() + 64);
    key_token(buf, b"ms", key);
    buf.push(b' ');
    push_decimal(buf, data.len() as u64);
    base64_flag(buf, key);
    match mode {
        SetMode::Add => buf.extend_from_slice(b" ME"),
        SetMode::Cas(cas) => {
            buf.extend_from_slice(b" C");
            push_decimal(buf, cas);
        }
    }
    buf.extend_from_slice(b" T");
    push_decimal(buf, u64::from(ttl_secs));
    buf.extend_from_slice(b" c O");
    push_decimal(buf, u64::from(opaque));
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal (what `write!(buf, "{n}")` does, without the formatting machinery:
/// a request carries up to six numbers).
fn push_decimal(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The reply kinds acceptable for one request (with the opaque it was sent with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyShape {
    /// After `ms`: `HD`, `NS`, `EX`, `NF`.
    Set { opaque: u32 },
    /// After an acquire with its counter: the `ms` reply, then the `ma` reply (`VA` with the
    /// counter's value and remaining ttl, or `NF` / `NS` / `EX`).
    Acquire { opaque: u32 },
    /// After `ma`: `VA` with the value, `NF`, `NS`, `EX`, `HD`.
    Count { opaque: u32 },
    /// After `md`: `HD`, `EX`, `NF`.
    Delete { opaque: u32 },
    /// After `mg`: `VA`, `EN`, `HD`.
    Get { opaque: u32 },
    /// After `mn`: `MN`.
    Noop,
    /// After `version`: `VERSION <v>`.
    Version,
    /// After `stats`: `STAT <k> <v>` lines and `END`.
    Stats,
}

/// One shape of each kind (opaque 1), for checks that try every kind of reply.
pub(crate) const EVERY_SHAPE: [ReplyShape; 8] = [
    ReplyShape::Set { opaque: 1 },
    ReplyShape::Acquire { opaque: 1 },
    ReplyShape::Count { opaque: 1 },
    ReplyShape::Delete { opaque: 1 },
    ReplyShape::Get { opaque: 1 },
    ReplyShape::Noop,
    ReplyShape::Version,
    ReplyShape::Stats,
];

impl ReplyShape {
    fn opaque(self) -> Option<u32> {
        match self {
            ReplyShape::Set { opaque }
            | ReplyShape::Acquire { opaque }
            | ReplyShape::Count { opaque }
            | ReplyShape::Delete { opaque }
            | ReplyShape::Get { opaque } => Some(opaque),
            ReplyShape::Noop | ReplyShape::Version | ReplyShape::Stats => None,
        }
    }
}

/// The flags of a meta reply the client cares about.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct MetaFlags {
    /// `c<cas>`: the item's CAS (`0` from a server started with `-C`).
    pub(crate) cas: Option<u64>,
    /// `t<secs>`: remaining ttl in seconds, `-1` = never expires.
    pub(crate) ttl: Option<i64>,
    /// `O<opaque>`: the echoed opaque token.
    pub(crate) opaque: Option<u32>,
}

/// One parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `HD`: stored / deleted / found (without value).
    Hd(MetaFlags),
    /// `NS`: not stored (add on an existing key).
    Ns(MetaFlags),
    /// `EX`: CAS mismatch.
    Ex(MetaFlags),
    /// `NF`: not found.
    Nf(MetaFlags),
    /// `VA <len>` + data.
    Va { data: Vec<u8>, flags: MetaFlags },
    /// `EN`: miss.
    En,
    /// `MN`: end of a pipeline.
    Mn,
    /// `VERSION <v>`.
    Version(String),
    /// `STAT` lines until `END`.
    Stats(Vec<(String, String)>),
    /// `ERROR`: unknown command (the stream can no longer be trusted).
    Error,
    /// `CLIENT_ERROR <msg>` (may be followed by `ERROR`: the stream can no longer be trusted).
    ClientError(String),
    /// `SERVER_ERROR <msg>` (for example out of memory).
    ServerError(String),
    /// `VA <len>` + decimal digits, after `ma ... v`: the counter's new value (parsed where it
    /// is read, without keeping the bytes).
    Count(u64),
    /// The two replies to an [`Request::Acquire`]: the store's, then the counter's (one
    /// allocation for the pair).
    Acquired(Box<AcquireReplies>),
}

/// The replies to an acquire sent with its fencing counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcquireReplies {
    /// The store's reply (`HD c<cas>`, `NS`, or an error line).
    pub(crate) stored: Reply,
    /// The counter's reply (`Count`, or an error line, or `En` when it was not advanced).
    pub(crate) counter: Reply,
    /// The server's clock (unix seconds) read from the counter's remaining ttl, if the counter
    /// has the clock item's expiry.
    pub(crate) clock: Option<i64>,
}

impl AcquireReplies {
    /// The server's clock (unix seconds) right after the store, if the reply carried it.
    pub(crate) fn server_clock(&self) -> Option<i64> {
        self.clock
    }
}

/// The server's clock (unix seconds) in the reply to a [`Request::Clock`]: `None` for an
/// error, or an item without expiry (`t-1`: somebody else stored the reserved key).
pub(crate) fn clock_reading(reply: &Reply) -> Option<i64> {
    match reply {
        Reply::Hd(MetaFlags { ttl: Some(t), .. }) if *t >= 0 => Some(i64::from(CLOCK_EXPIRY) - t),
        _ => None,
    }
}

impl Reply {
    /// Whether this reply means the connection's stream can no longer be trusted
    /// (`ERROR` / `CLIENT_ERROR` may come with extra lines we cannot pair with requests).
    pub(crate) fn poisons_stream(&self) -> bool {
        match self {
            Reply::Error | Reply::ClientError(_) => true,
            Reply::Acquired(pair) => pair.stored.poisons_stream() || pair.counter.poisons_stream(),
            _ => false,
        }
    }
}

/// The server's bytes do not follow the protocol (or are out of step with the requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError {
    message: String,
}

impl ProtocolError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ProtocolError {
            message: message.into(),
        }
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memcached protocol error: {}", self.message)
    }
}

impl std::error::Error for ProtocolError {}

/// Parses one reply from the start of `buf` with the default value limit.
///
/// `Ok(None)`: more bytes are needed. `Ok(Some((reply, consumed)))`: one reply taken from
/// the first `consumed` bytes.
pub(crate) fn parse(
    buf: &[u8],
    expect: ReplyShape,
) -> Result<Option<(Reply, usize)>, ProtocolError> {
    parse_with_limit(buf, expect, DEFAULT_MAX_VALUE)
}

/// Like [`parse`], with `max_value` as the largest acceptable `VA` data length.
pub(crate) fn parse_with_limit(
    buf: &[u8],
    expect: ReplyShape,
    max_value: usize,
) -> Result<Option<(Reply, usize)>, ProtocolError> {
    if let ReplyShape::Acquire { opaque } = expect {
        // Both replies or none: a caller never sees half of the pair.
        let Some((stored, used)) = parse_with_limit(buf, ReplyShape::Set { opaque }, max_value)?
        else {
            return Ok(None);
        };
        let (counter, more, clock) = match parse_count_fast(&buf[used..], opaque) {
            Some(fast) => fast,
            None => {
                let Some((counter, more)) =
                    parse_general(&buf[used..], ReplyShape::Count { opaque }, max_value)?
                else {
                    return Ok(None);
                };
                let clock = match counter {
                    Reply::Count(_) => counter_clock(&buf[used..used + more])?,
                    _ => None,
                };
                (counter, more, clock)
            }
        };
        let reply = Reply::Acquired(Box::new(AcquireReplies {
            stored,
            counter,
            clock,
        }));
        return Ok(Some((reply, used + more)));
    }
    if let Some(parsed) = parse_status_fast(buf, expect) {
        return Ok(Some(parsed));
    }
    parse_general(buf, expect, max_value)
}

/// The server's clock in the header line (`VA <len> t<secs> ...`) of a counter's reply, when
/// the counter has the clock item's expiry.
fn counter_clock(reply: &[u8]) -> Result<Option<i64>, ProtocolError> {
    let Some((line, _)) = next_line(reply)? else {
        return Ok(None);
    };
    let flags = parse_flags(line.split(' ').skip(2))?;
    Ok(flags
        .ttl
        .filter(|t| *t >= 0)
        .map(|t| i64::from(CLOCK_EXPIRY) - t))
}

/// The hot path: a complete, well-formed `HD`/`NS`/`EX`/`NF`/`EN` line answering an
/// `ms`/`md`/`mg`, parsed straight from the bytes. Anything else (incomplete, unusual or
/// wrong) is `None`, and [`parse_general`] decides, so both paths agree on every input.
fn parse_status_fast(buf: &[u8], expect: ReplyShape) -> Option<(Reply, usize)> {
    if !matches!(
        expect,
        ReplyShape::Set { .. } | ReplyShape::Delete { .. } | ReplyShape::Get { .. }
    ) {
        return None;
    }
    let window = &buf[..buf.len().min(MAX_LINE + 2)];
    let nl = window.iter().position(|&b| b == b'\n')?;
    if nl < 3 || buf[nl - 1] != b'\r' {
        return None;
    }
    let line = &buf[..nl - 1];
    let head = [line[0], line[1]];
    let allowed = match expect {
        ReplyShape::Set { .. } => matches!(&head, b"HD" | b"NS" | b"EX" | b"NF"),
        ReplyShape::Delete { .. } => matches!(&head, b"HD" | b"EX" | b"NF"),
        _ => matches!(&head, b"HD" | b"EN"),
    };
    if !allowed || line.len() > 2 && line[2] != b' ' {
        return None;
    }
    let flags = if line.len() > 2 {
        fast_flags(line[3..].split(|&b| b == b' '))?
    } else {
        MetaFlags::default()
    };
    check_opaque(expect, &flags).ok()?;
    let reply = match &head {
        b"HD" => Reply::Hd(flags),
        b"NS" => Reply::Ns(flags),
        b"EX" => Reply::Ex(flags),
        b"NF" => Reply::Nf(flags),
        _ => Reply::En,
    };
    Some((reply, nl + 1))
}

/// The hot path of a fencing counter's reply: a complete, well-formed
/// `VA <len> [t<ttl>] [O<opaque>] ...` line and its digits, parsed straight from the bytes,
/// with the clock reading its ttl gives (as [`counter_clock`]). Anything else is `None`, and
/// the general parser decides.
fn parse_count_fast(buf: &[u8], opaque: u32) -> Option<(Reply, usize, Option<i64>)> {
    let window = &buf[..buf.len().min(MAX_LINE + 2)];
    let nl = window.iter().position(|&b| b == b'\n')?;
    if nl < 4 || buf[nl - 1] != b'\r' || !buf.starts_with(b"VA ") {
        return None;
    }
    let mut tokens = buf[3..nl - 1].split(|&b| b == b' ');
    let len = usize::try_from(fast_u64(tokens.next()?)?).ok()?;
    if len == 0 || len > 20 {
        return None;
    }
    let flags = fast_flags(tokens)?;
    if flags.opaque != Some(opaque) {
        return None;
    }
    let start = nl + 1;
    let end = start + len;
    if buf.len() < end + 2 || &buf[end..end + 2] != b"\r\n" {
        return None;
    }
    let value = fast_u64(&buf[start..end])?;
    // As `counter_clock`: a negative ttl (never expires) is no reading.
    let clock = flags
        .ttl
        .filter(|t| *t >= 0)
        .map(|t| i64::from(CLOCK_EXPIRY) - t);
    Some((Reply::Count(value), end + 2, clock))
}

/// The flags of a meta reply line's tokens, for the fast paths: `c`, `O` and `t` read, other
/// flags ignored as long as they are plain printable ASCII; `None` for anything else.
fn fast_flags<'a>(tokens: impl Iterator<Item = &'a [u8]>) -> Option<MetaFlags> {
    let mut flags = MetaFlags::default();
    for token in tokens {
        let (&flag, value) = token.split_first()?;
        match flag {
            b'c' => flags.cas = Some(fast_u64(value)?),
            b'O' => flags.opaque = Some(u32::try_from(fast_u64(value)?).ok()?),
            b't' => {
                flags.ttl = Some(match value.split_first() {
                    Some((b'-', digits)) => {
                        0i64.checked_sub(i64::try_from(fast_u64(digits)?).ok()?)?
                    }
                    _ => i64::try_from(fast_u64(value)?).ok()?,
                })
            }
            f if f.is_ascii_alphabetic() && value.iter().all(|&b| b > b' ' && b < 0x7f) => {}
            _ => return None,
        }
    }
    Some(flags)
}

/// Decimal digits only (no sign), without overflow; `None` otherwise.
fn fast_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

/// The general parser: every reply form and every error.
fn parse_general(
    buf: &[u8],
    expect: ReplyShape,
    max_value: usize,
) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let Some((line, mut consumed)) = next_line(buf)? else {
        return Ok(None);
    };
    let mut tokens = line.split(' ');
    let head = tokens.next().unwrap_or("");

    // Error replies are acceptable after any request.
    match head {
        "ERROR" if line == "ERROR" => return Ok(Some((Reply::Error, consumed))),
        "CLIENT_ERROR" => {
            let msg = line.strip_prefix("CLIENT_ERROR").unwrap_or("").trim_start();
            return Ok(Some((Reply::ClientError(msg.to_string()), consumed)));
        }
        "SERVER_ERROR" => {
            let msg = line.strip_prefix("SERVER_ERROR").unwrap_or("").trim_start();
            return Ok(Some((Reply::ServerError(msg.to_string()), consumed)));
        }
        _ => {}
    }

    let wrong_kind = || {
        ProtocolError::new(format!(
            "unexpected reply {:?} for {}",
            truncate(line, 64),
            shape_name(expect)
        ))
    };

    let reply = match (expect, head) {
        (ReplyShape::Noop, "MN") if line == "MN" => Reply::Mn,
        (ReplyShape::Version, "VERSION") => {
            let v = line.strip_prefix("VERSION ").map(str::trim).unwrap_or("");
            if v.is_empty() {
                return Err(ProtocolError::new("VERSION reply without a version"));
            }
            Reply::Version(v.to_string())
        }
        (ReplyShape::Stats, _) => {
            let mut stats = Vec::new();
            let mut current = line;
            loop {
                if current == "END" {
                    break;
                }
                let Some(rest) = current.strip_prefix("STAT ") else {
                    return Err(wrong_kind());
                };
                let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                if k.is_empty() {
                    return Err(ProtocolError::new("STAT line without a name"));
                }
                stats.push((k.to_string(), v.to_string()));
                let Some((next, used)) = next_line(&buf[consumed..])? else {
                    if buf.len() > MAX_STATS {
                        return Err(ProtocolError::new("stats reply too long"));
                    }
                    return Ok(None);
                };
                consumed += used;
                current = next;
            }
            Reply::Stats(stats)
        }
        (ReplyShape::Set { .. } | ReplyShape::Count { .. }, "HD" | "NS" | "EX" | "NF")
        | (ReplyShape::Delete { .. }, "HD" | "EX" | "NF")
        | (ReplyShape::Get { .. }, "HD" | "EN") => {
            let flags = parse_flags(tokens)?;
            check_opaque(expect, &flags)?;
            match head {
                "HD" => Reply::Hd(flags),
                "NS" => Reply::Ns(flags),
                "EX" => Reply::Ex(flags),
                "NF" => Reply::Nf(flags),
                _ => Reply::En,
            }
        }
        (ReplyShape::Get { .. } | ReplyShape::Count { .. }, "VA") => {
            let len_token = tokens.next().unwrap_or("");
            let len = parse_number::<usize>(len_token, "VA length")?;
            if len > max_value {
                return Err(ProtocolError::new(format!(
                    "VA length {len} exceeds the limit of {max_value} bytes"
                )));
            }
            let flags = parse_flags(tokens)?;
            check_opaque(expect, &flags)?;
            let end = consumed + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::new("VA data not terminated by \\r\\n"));
            }
            let data = &buf[consumed..end];
            consumed = end + 2;
            if let ReplyShape::Count { .. } = expect {
                Reply::Count(
                    fast_u64(data).ok_or_else(|| ProtocolError::new("ma value is not a number"))?,
                )
            } else {
                Reply::Va {
                    data: data.to_vec(),
                    flags,
                }
            }
        }
        _ => return Err(wrong_kind()),
    };
    Ok(Some((reply, consumed)))
}

/// The next `\r\n`-terminated line (without the terminator) and the bytes it used.
fn next_line(buf: &[u8]) -> Result<Option<(&str, usize)>, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_LINE + 2)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_LINE {
            return Err(ProtocolError::new(format!(
                "reply line longer than {MAX_LINE} bytes"
            )));
        }
        return Ok(None);
    };
    if nl == 0 || buf[nl - 1] != b'\r' {
        return Err(ProtocolError::new("reply line not terminated by \\r\\n"));
    }
    let raw = &buf[..nl - 1];
    if raw.iter().any(|&b| b < b' ' || b == 0x7f) {
        return Err(ProtocolError::new("control character in reply line"));
    }
    let line = std::str::from_utf8(raw)
        .map_err(|_| ProtocolError::new("reply line is not valid UTF-8"))?;
    Ok(Some((line, nl + 1)))
}

fn parse_flags<'a>(tokens: impl Iterator<Item = &'a str>) -> Result<MetaFlags, ProtocolError> {
    let mut flags = MetaFlags::default();
    for token in tokens {
        let mut chars = token.chars();
        let Some(flag) = chars.next() else {
            return Err(ProtocolError::new("empty flag in meta reply"));
        };
        let value = chars.as_str();
        match flag {
            'c' => flags.cas = Some(parse_number(value, "cas flag")?),
            't' => flags.ttl = Some(parse_number(value, "ttl flag")?),
            'O' => flags.opaque = Some(parse_number(value, "opaque flag")?),
            c if c.is_ascii_alphabetic() => {} // other flags (k, b, s, f, ...) are not used
            _ => {
                return Err(ProtocolError::new(format!(
                    "bad flag {:?}",
                    truncate(token, 32)
                )));
            }
        }
    }
    Ok(flags)
}

fn check_opaque(expect: ReplyShape, flags: &MetaFlags) -> Result<(), ProtocolError> {
    if let Some(want) = expect.opaque()
        && flags.opaque != Some(want)
    {
        return Err(ProtocolError::new(format!(
            "reply opaque {:?} does not match request opaque {want}: stream out of step",
            flags.opaque
        )));
    }
    Ok(())
}

fn parse_number<T: std::str::FromStr>(token: &str, what: &str) -> Result<T, ProtocolError> {
    // from_str accepts a leading '+'; memcached never sends one.
    if token.is_empty() || token.starts_with('+') {
        return Err(ProtocolError::new(format!(
            "bad {what}: {:?}",
            truncate(token, 32)
        )));
    }
    token
        .parse()
        .map_err(|_| ProtocolError::new(format!("bad {what}: {:?}", truncate(token, 32))))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn shape_name(shape: ReplyShape) -> &'static str {
    match shape {
        ReplyShape::Set { .. } => "ms",
        ReplyShape::Acquire { .. } => "ms+ma",
        ReplyShape::Count { .. } => "ma",
        ReplyShape::Delete { .. } => "md",
        ReplyShape::Get { .. } => "mg",
        ReplyShape::Noop => "mn",
        ReplyShape::Version => "version",
        ReplyShape::Stats => "stats",
    }
}

/// Parses a `VERSION` string (`1.6.18`, possibly with a suffix) into (major, minor, patch).
pub(crate) fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn key(k: &str) -> WireKey {
        WireKey::new_unchecked(k.as_bytes().to_vec(), false)
    }

    fn enc(req: &Request, opaque: u32) -> Vec<u8> {
        let mut buf = Vec::new();
        req.encode(opaque, &mut buf);
        buf
    }

    #[test]
    fn an_acquire_its_counter_and_the_clock_are_read_as_one_reply_or_not_at_all() {
        let shape = ReplyShape::Acquire { opaque: 4 };
        let both = b"HD c9 O4\r\nVA 2 t349856288 O4\r\n17\r\nMN\r\n";
        let (reply, used) = parse(both, shape).unwrap().unwrap();
        assert_eq!(used, both.len() - 4, "the next reply is left alone");
        let Reply::Acquired(pair) = reply else {
            panic!("{reply:?}")
        };
        assert!(matches!(
            pair.stored,
            Reply::Hd(MetaFlags { cas: Some(9), .. })
        ));
        assert_eq!(pair.counter, Reply::Count(17));
        assert_eq!(
            pair.server_clock(),
            Some(i64::from(CLOCK_EXPIRY) - 349_856_288)
        );
        // Part of the three is no reply yet: nothing is consumed.
        for cut in 1..both.len() - 4 {
            assert_eq!(parse(&both[..cut], shape).unwrap(), None, "cut at {cut}");
        }
        // A refused acquire still advances the counter; an error of the counter alone comes
        // back as part of the reply (the lock decides), an error of the store too.
        let refused = b"NS c0 O4\r\nVA 2 t-1 O4\r\n18\r\n";
        assert!(matches!(
            parse(refused, shape).unwrap().unwrap().0,
            Reply::Acquired(pair) if matches!(pair.stored, Reply::Ns(_))
        ));
        // A counter without expiry (created by an older version) gives no reading.
        assert!(matches!(
            parse(refused, shape).unwrap().unwrap().0,
            Reply::Acquired(pair) if pair.server_clock().is_none()
        ));
        let counter_failed = b"HD c9 O4\r\nSERVER_ERROR out of memory\r\n";
        assert!(matches!(
            parse(counter_failed, shape).unwrap().unwrap().0,
            Reply::Acquired(pair) if matches!(pair.counter, Reply::ServerError(_))
        ));
        assert!(matches!(
            parse(counter_failed, shape).unwrap().unwrap().0,
            Reply::Acquired(pair) if pair.server_clock().is_none()
        ));
        // A counter that is not a number is out of protocol.
        assert!(parse(b"HD c9 O4\r\nVA 1 t5 O4\r\nx\r\n", shape).is_err());
        // A ttl that is not a number is out of protocol too.
        assert!(parse(b"HD c9 O4\r\nVA 2 tx O4\r\n17\r\n", shape).is_err());
        // Out of step: the counter's opaque must match too.
        assert!(parse(b"HD c9 O4\r\nVA 2 t5 O5\r\n17\r\n", shape).is_err());
        assert!(parse(b"HD c9 O4\r\nEN\r\n", shape).is_err());
    }

    #[test]
    fn encodes_every_request() {
        let set = Request::Set {
            key: key("lk"),
            data: b"tok".to_vec().into(),
            mode: SetMode::Add,
            ttl_secs: 5,
        };
        assert_eq!(enc(&set, 7), b"ms lk 3 ME T5 c O7\r\ntok\r\n");
        let cas = Request::Set {
            key: key("lk"),
            data: b"a\r\nb".to_vec().into(),
            mode: SetMode::Cas(42),
            ttl_secs: 9,
        };
        assert_eq!(enc(&cas, 8), b"ms lk 4 C42 T9 c O8\r\na\r\nb\r\n");
        let del = Request::Delete {
            key: key("lk"),
            cas: 3,
        };
        assert_eq!(enc(&del, 9), b"md lk C3 O9\r\n");
        let get = Request::Get { key: key("lk") };
        assert_eq!(enc(&get, 10), b"mg lk v c t O10\r\n");
        let b64 = Request::Get {
            key: WireKey::new_unchecked(b"bG9jaw==".to_vec(), true),
        };
        assert_eq!(enc(&b64, 11), b"mg bG9jaw== b v c t O11\r\n");
        let b64set = Request::Set {
            key: WireKey::new_unchecked(b"bG9jaw==".to_vec(), true),
            data: vec![].into(),
            mode: SetMode::Add,
            ttl_secs: 1,
        };
        assert_eq!(enc(&b64set, 1), b"ms bG9jaw== 0 b ME T1 c O1\r\n\r\n");
        let acquire = Request::Acquire(AcquireRequest {
            key: key("lk"),
            data: b"tok".to_vec().into(),
            ttl_secs: 5,
            counter: key("pip-locks:fence:0a1"),
            initial: 1_700_000_000_000_000_000,
        });
        assert_eq!(
            enc(&acquire, 12),
            b"ms lk 3 ME T5 c O12\r\ntok\r\nma pip-locks:fence:0a1 N2145916800 J1700000000000000000 v t O12\r\n"
        );
        assert_eq!(
            enc(&Request::Clock, 3),
            b"ma pip-locks:clock N2145916800 D0 t O3\r\n"
        );
        assert_eq!(enc(&Request::Noop, 0), b"mn\r\n");
        assert_eq!(enc(&Request::Version, 0), b"version\r\n");
        assert_eq!(enc(&Request::Stats, 0), b"stats\r\n");
    }

    #[test]
    fn decimals_match_the_formatter() {
        for n in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            12345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut buf = b"x".to_vec();
            push_decimal(&mut buf, n);
            assert_eq!(buf, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn wire_key_safety() {
        assert!(key("a").is_safe());
        assert!(key(&"k".repeat(250)).is_safe());
        assert!(!key(&"k".repeat(251)).is_safe());
        assert!(!key("").is_safe());
        assert!(!key("a b").is_safe());
        assert!(!key("a\r\nmn").is_safe());
        assert!(!key("a\x01").is_safe());
        assert!(!key("a\x7f").is_safe());
    }

    /// Every reply form, the shape it answers, and what it parses to.
    fn cases() -> Vec<(&'static [u8], ReplyShape, Reply)> {
        let f = |cas: Option<u64>, ttl: Option<i64>, opaque: Option<u32>| MetaFlags {
            cas,
            ttl,
            opaque,
        };
        vec![
            (b"HD c1 O11\r\n", ReplyShape::Set { opaque: 11 }, Reply::Hd(f(Some(1), None, Some(11)))),
            (b"NS c0 O12\r\n", ReplyShape::Set { opaque: 12 }, Reply::Ns(f(Some(0), None, Some(12)))),
            (b"EX O1\r\n", ReplyShape::Set { opaque: 1 }, Reply::Ex(f(None, None, Some(1)))),
            (b"NF O2\r\n", ReplyShape::Set { opaque: 2 }, Reply::Nf(f(None, None, Some(2)))),
            (b"HD O3\r\n", ReplyShape::Delete { opaque: 3 }, Reply::Hd(f(None, None, Some(3)))),
            (b"EX O15\r\n", ReplyShape::Delete { opaque: 15 }, Reply::Ex(f(None, None, Some(15)))),
            (b"NF O16\r\n", ReplyShape::Delete { opaque: 16 }, Reply::Nf(f(None, None, Some(16)))),
            (
                b"VA 3 c1 t5 O13\r\ntok\r\n",
                ReplyShape::Get { opaque: 13 },
                Reply::Va { data: b"tok".to_vec(), flags: f(Some(1), Some(5), Some(13)) },
            ),
            (
                b"VA 4 c2 t-1 O19 kbG9jaw== b\r\na\r\nb\r\n",
                ReplyShape::Get { opaque: 19 },
                Reply::Va { data: b"a\r\nb".to_vec(), flags: f(Some(2), Some(-1), Some(19)) },
            ),
            (
                b"VA 0 c2 t3 O4\r\n\r\n",
                ReplyShape::Get { opaque: 4 },
                Reply::Va { data: vec![], flags: f(Some(2), Some(3), Some(4)) },
            ),
            (b"EN O14\r\n", ReplyShape::Get { opaque: 14 }, Reply::En),
            (b"HD c9 t-1 O5\r\n", ReplyShape::Get { opaque: 5 }, Reply::Hd(f(Some(9), Some(-1), Some(5)))),
            (b"MN\r\n", ReplyShape::Noop, Reply::Mn),
            (b"VERSION 1.6.18\r\n", ReplyShape::Version, Reply::Version("1.6.18".into())),
            (
                b"STAT pid 6003\r\nSTAT uptime 3\r\nSTAT version 1.6.18\r\nSTAT libevent 2.1.12-stable\r\nEND\r\n",
                ReplyShape::Stats,
                Reply::Stats(vec![
                    ("pid".into(), "6003".into()),
                    ("uptime".into(), "3".into()),
                    ("version".into(), "1.6.18".into()),
                    ("libevent".into(), "2.1.12-stable".into()),
                ]),
            ),
            (b"END\r\n", ReplyShape::Stats, Reply::Stats(vec![])),
            (b"ERROR\r\n", ReplyShape::Set { opaque: 1 }, Reply::Error),
            (
                b"CLIENT_ERROR bad data chunk\r\n",
                ReplyShape::Set { opaque: 1 },
                Reply::ClientError("bad data chunk".into()),
            ),
            (
                b"SERVER_ERROR out of memory storing object\r\n",
                ReplyShape::Set { opaque: 1 },
                Reply::ServerError("out of memory storing object".into()),
            ),
            (b"ERROR\r\n", ReplyShape::Version, Reply::Error),
            (b"SERVER_ERROR busy\r\n", ReplyShape::Stats, Reply::ServerError("busy".into())),
        ]
    }

    #[test]
    fn parses_every_reply_form_split_at_every_byte() {
        for (bytes, shape, want) in cases() {
            // Whole, with trailing bytes of a following reply left untouched.
            let mut with_tail = bytes.to_vec();
            with_tail.extend_from_slice(b"MN\r\n");
            let (got, used) = parse(&with_tail, shape).unwrap().unwrap();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(bytes));
            assert_eq!(used, bytes.len());
            // Every strict prefix is incomplete, never an error.
            for cut in 0..bytes.len() {
                assert_eq!(
                    parse(&bytes[..cut], shape).unwrap(),
                    None,
                    "prefix {cut} of {:?}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }

    #[test]
    fn parses_a_pipelined_stream() {
        let stream: &[u8] =
            b"HD c1 O1\r\nNS c0 O2\r\nVA 3 c1 t5 O3\r\ntok\r\nEN O4\r\nEX O5\r\nNF O6\r\nMN\r\n";
        let set = |opaque| ReplyShape::Set { opaque };
        let get = |opaque| ReplyShape::Get { opaque };
        let delete = |opaque| ReplyShape::Delete { opaque };
        let shapes = [
            set(1),
            set(2),
            get(3),
            get(4),
            delete(5),
            delete(6),
            ReplyShape::Noop,
        ];
        let mut pos = 0;
        let mut got = Vec::new();
        for shape in shapes {
            let (reply, used) = parse(&stream[pos..], shape).unwrap().unwrap();
            pos += used;
            got.push(reply);
        }
        assert_eq!(pos, stream.len());
        assert_eq!(got[6], Reply::Mn);
        assert!(matches!(got[2], Reply::Va { ref data, .. } if data == b"tok"));
    }

    #[test]
    fn wrong_kind_for_the_request_is_an_error() {
        let wrong: &[(&[u8], ReplyShape)] = &[
            (b"VA 3 c1 O1\r\ntok\r\n", ReplyShape::Set { opaque: 1 }),
            (b"EN O1\r\n", ReplyShape::Set { opaque: 1 }),
            (b"NS O1\r\n", ReplyShape::Delete { opaque: 1 }),
            (b"NS O1\r\n", ReplyShape::Get { opaque: 1 }),
            (b"MN\r\n", ReplyShape::Get { opaque: 1 }),
            (b"HD O1\r\n", ReplyShape::Noop),
            (b"VERSION 1.6.18\r\n", ReplyShape::Stats),
            (b"STAT pid 1\r\nEND\r\n", ReplyShape::Version),
            (b"MN\r\n", ReplyShape::Version),
            (b"STORED\r\n", ReplyShape::Set { opaque: 1 }),
            (b"STAT pid 1\r\nMN\r\n", ReplyShape::Stats),
            (b"VERSION\r\n", ReplyShape::Version),
            (b"ERRORS\r\n", ReplyShape::Noop),
            (b"MN extra\r\n", ReplyShape::Noop),
        ];
        assert_refused(wrong);
    }

    #[test]
    fn opaque_mismatch_or_missing_is_an_error() {
        let e = parse(b"HD c1 O12\r\n", ReplyShape::Set { opaque: 11 }).unwrap_err();
        assert!(e.message().contains("out of step"), "{e}");
        assert!(parse(b"HD c1\r\n", ReplyShape::Set { opaque: 11 }).is_err());
        assert!(parse(b"EN O3\r\n", ReplyShape::Get { opaque: 4 }).is_err());
        assert!(parse(b"VA 1 O3\r\nx\r\n", ReplyShape::Get { opaque: 4 }).is_err());
        // ...while error lines carry no opaque and are always accepted.
        assert!(parse(b"SERVER_ERROR x\r\n", ReplyShape::Get { opaque: 4 }).is_ok());
    }

    #[test]
    fn garbage_and_bad_numbers_are_errors() {
        // Grouped by the request they answer.
        let set = ReplyShape::Set { opaque: 1 };
        let get = ReplyShape::Get { opaque: 1 };
        let bad: &[(ReplyShape, &[&[u8]])] = &[
            (
                set,
                &[
                    b"HD cX O1\r\n",
                    b"HD c O1\r\n",
                    b"HD c-1 O1\r\n",
                    b"HD c+1 O1\r\n",
                    b"HD c99999999999999999999999 O1\r\n",
                    b"HD  O1\r\n",
                    b"HD O1 t1x\r\n",
                    b"HD O1 9\r\n",
                    b"HD O1\n",
                ],
            ),
            (get, &[b"VA x O1\r\n", b"VA -1 O1\r\n", b"VA 3 O1\r\ntokXY"]),
            (
                ReplyShape::Noop,
                &[b"\r\n", b"\n", b"M\x00N\r\n", b"MN\xff\r\n"],
            ),
            (ReplyShape::Stats, &[b"STAT\r\n", b"STAT  x\r\n"]),
        ];
        for (shape, replies) in bad {
            let cases: Vec<(&[u8], ReplyShape)> = replies.iter().map(|r| (*r, *shape)).collect();
            assert_refused(&cases);
        }
    }

    #[test]
    fn oversized_input_is_an_error() {
        // A line that never ends.
        let long = vec![b'A'; MAX_LINE + 1];
        assert!(parse(&long, ReplyShape::Noop).is_err());
        let almost = vec![b'A'; MAX_LINE];
        assert_eq!(parse(&almost, ReplyShape::Noop).unwrap(), None);
        // A value larger than the limit is refused before its data arrives.
        let header = format!("VA {} O1\r\n", DEFAULT_MAX_VALUE + 1);
        assert!(parse(header.as_bytes(), ReplyShape::Get { opaque: 1 }).is_err());
        assert!(parse_with_limit(b"VA 11 O1\r\n", ReplyShape::Get { opaque: 1 }, 10).is_err());
        assert_eq!(
            parse_with_limit(b"VA 10 O1\r\n", ReplyShape::Get { opaque: 1 }, 10).unwrap(),
            None
        );
        // A stats reply that never ends.
        let mut stats = Vec::new();
        while stats.len() <= MAX_STATS {
            stats.extend_from_slice(b"STAT filler 1234567890\r\n");
        }
        assert!(parse(&stats, ReplyShape::Stats).is_err());
    }

    /// Up to `most - 1` random edits of `bytes`: a byte changed, removed, or one of
    /// `alphabet` inserted (protocol characters reach the deep parser paths).
    fn mutate(rng: &mut rand::rngs::StdRng, bytes: &mut Vec<u8>, most: u32, alphabet: &[u8]) {
        for _ in 0..rng.random_range(0..most) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.random_range(0..bytes.len());
            match rng.random_range(0..3) {
                0 => bytes[at] = rng.random(),
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
            }
        }
    }

    /// Every `(bytes, shape)` pair must be a parse error.
    fn assert_refused(cases: &[(&[u8], ReplyShape)]) {
        for (bytes, shape) in cases {
            assert!(
                parse(bytes, *shape).is_err(),
                "{:?} accepted for {shape:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        // Random mutations of valid replies exercise the deep paths; pure noise the rest.
        let seeds: Vec<Vec<u8>> = cases().into_iter().map(|(b, _, _)| b.to_vec()).collect();
        for i in 0..20_000 {
            let mut bytes = if i % 2 == 0 {
                seeds[rng.random_range(0..seeds.len())].clone()
            } else {
                let len = rng.random_range(0..64);
                (0..len).map(|_| rng.random()).collect()
            };
            mutate(&mut rng, &mut bytes, 4, b"0123456789 \r\nOcVAt-");
            crate::fuzzing::parse_replies(&bytes);
        }
    }

    #[test]
    fn fast_path_agrees_with_the_general_parser() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xfa57);
        let mut seeds: Vec<Vec<u8>> = cases().into_iter().map(|(b, _, _)| b.to_vec()).collect();
        seeds.extend(
            [
                &b"HD c18446744073709551615 t-1 O4294967295 kabc b\r\n"[..],
                b"HD c18446744073709551616 O1\r\n",
                b"HD t-9223372036854775808 O1\r\n",
                b"HD t-9223372036854775809 O1\r\n",
                b"HD O4294967296\r\n",
                b"HD t- O1\r\n",
                b"HD t--1 O1\r\n",
                b"EN\r\n",
                b"HD\r\n",
                b"HD k\x01 O1\r\n",
                b"HD k\xc3\xa9 O1\r\n",
                b"HD O1 \r\n",
            ]
            .map(<[u8]>::to_vec),
        );
        let shapes = [
            ReplyShape::Set { opaque: 1 },
            ReplyShape::Delete { opaque: 1 },
            ReplyShape::Get { opaque: 1 },
            ReplyShape::Get { opaque: 4 },
            ReplyShape::Set {
                opaque: 4_294_967_295,
            },
        ];
        let mut fast_hits = 0;
        for i in 0..40_000 {
            let mut bytes = seeds[i % seeds.len()].clone();
            if i >= seeds.len() {
                mutate(&mut rng, &mut bytes, 3, b"0123456789 -\r\nOctHDNSEXNF");
            }
            for shape in shapes {
                if let Some(fast) = parse_status_fast(&bytes, shape) {
                    fast_hits += 1;
                    assert_eq!(
                        parse_general(&bytes, shape, DEFAULT_MAX_VALUE),
                        Ok(Some(fast)),
                        "{:?} {shape:?}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
            }
        }
        assert!(
            fast_hits > 1000,
            "the fast path was hardly exercised: {fast_hits}"
        );
    }

    #[test]
    fn the_counter_fast_path_agrees_with_the_general_parser() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xc0de);
        let seeds: Vec<Vec<u8>> = [
            &b"VA 19 t394054 O7\r\n1764547200000000000\r\n"[..],
            b"VA 1 O7 t0\r\n5\r\n",
            b"VA 2 t-1 O7\r\n12\r\n",
            b"VA 2 O7\r\n12\r\n",
            b"VA 3 t5 O7 kabc\r\n123\r\n",
            b"VA 20 t1 O7\r\n18446744073709551615\r\n",
            b"VA 20 t1 O7\r\n18446744073709551616\r\n",
            b"VA 2 t1  O7\r\n12\r\n",
            b"VA 2 t1 O8\r\n12\r\n",
            b"VA 2 t1 O7\r\n1x\r\n",
            b"VA 2 t1 O7\r\n12",
            b"NF O7\r\n",
        ]
        .map(<[u8]>::to_vec)
        .to_vec();
        let mut fast_hits = 0;
        for i in 0..40_000 {
            let mut bytes = seeds[i % seeds.len()].clone();
            if i >= seeds.len() {
                mutate(&mut rng, &mut bytes, 3, b"0123456789 -\r\nOtVA");
            }
            if let Some((reply, used, clock)) = parse_count_fast(&bytes, 7) {
                fast_hits += 1;
                let shape = ReplyShape::Count { opaque: 7 };
                let general = parse_general(&bytes, shape, DEFAULT_MAX_VALUE);
                assert_eq!(
                    general,
                    Ok(Some((reply, used))),
                    "{:?}",
                    String::from_utf8_lossy(&bytes)
                );
                assert_eq!(
                    counter_clock(&bytes[..used]),
                    Ok(clock),
                    "{:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
        assert!(
            fast_hits > 1000,
            "the fast path was hardly exercised: {fast_hits}"
        );
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.6.18"), Some((1, 6, 18)));
        assert_eq!(parse_version("1.6.13-beta"), Some((1, 6, 13)));
        assert_eq!(parse_version("1.4"), Some((1, 4, 0)));
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(parse_version(""), None);
    }
}
