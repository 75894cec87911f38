//! One pipelined connection: a tokio task owns the socket, callers talk to it over a channel.
//!
//! Callers send a request and a reply channel; the task drains everything queued, encodes it
//! into one buffer, writes it with as few syscalls as the socket allows, and pairs replies
//! with requests strictly in order (a `VecDeque` of pending requests, each checked against
//! its opaque token). A caller that gives up never shifts anyone else's reply: its reply is
//! still read, and thrown away.
//!
//! Every request has a send state shared between caller and task (`handoff.rs`): the task
//! never writes a request its caller gave up on, and the caller can therefore tell a timeout
//! that sent nothing (safe to retry) from one whose outcome is unknown.
//!
//! Deadlines are the task's too: a request may carry one, and the task keeps a single timer
//! for the connection, set to the earliest deadline it knows of, instead of a timer per
//! request (which cost a tenth of the client's time under load). A request past its deadline
//! is answered [`Answer::Expired`] (its reply, if it comes later, goes to the late receiver);
//! one that was not written yet is then never written.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use commons::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::handoff::{Answer, Outcome, Responder, Waiter, handoff};
use crate::client::auth::{self, Credentials};
use crate::client::codec::{
    DEFAULT_MAX_VALUE, ProtocolError, Reply, ReplyShape, Request, parse_with_limit,
};
use crate::client::errors::{not_sent, outcome_unknown, protocol_error, unsafe_key};
use crate::client::identity::ServerIdentity;
use crate::client::late::LateSender;
use crate::client::stream::Stream;
use crate::client::tcp::{self, Peer};
use crate::client::tls::{TlsSettings, describe_io, refusal, tls_error};

/// Stop taking new requests into the write buffer while this much is still unwritten.
const WRITE_BACKLOG: usize = 256 * 1024;

struct Command {
    /// Shared with the caller, so a retried request is not copied again.
    req: Arc<Request>,
    reply: Responder,
    late: Option<LateSender>,
    deadline: Option<Instant>,
}

impl Command {
    /// Tells the caller the deadline passed before the request was written, and makes sure
    /// it never is.
    fn expire(self, shared: &Shared) {
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.reply.withdraw() {
            let _ = self.reply.send(Answer::Expired { sent: false });
        }
    }
}

struct Pending {
    shape: ReplyShape,
    command: &'static str,
    /// `None` once the caller was told the deadline passed.
    reply: Option<Responder>,
    /// Where the reply goes if the caller stopped waiting.
    late: Option<LateSender>,
    deadline: Option<Instant>,
}

impl Pending {
    /// Hands the result (a reply with when its bytes were read) to the caller, or to the
    /// late receiver when the caller is gone.
    fn answer(self, result: Result<(Reply, Instant), Error>) {
        let unclaimed = match self.reply {
            Some(reply) => match reply.send(match result {
                Ok((r, arrived)) => Answer::Reply(r, arrived),
                Err(e) => Answer::Failed(e),
            }) {
                Ok(()) => return,
                Err(Answer::Reply(r, _)) => Ok(r),
                Err(Answer::Failed(e)) => Err(e),
                Err(Answer::Expired { .. }) => return,
            },
            None => result.map(|(reply, _)| reply),
        };
        if let Some(late) = self.late {
            match unclaimed {
                Ok(reply) => late.reply(reply),
                Err(error) => late.failed(error),
            }
        }
    }

    /// Tells the caller the deadline passed; the reply, when it comes, goes to `late`.
    fn expire(&mut self) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Answer::Expired { sent: true });
        }
    }
}

#[derive(Debug)]
struct Shared {
    alive: AtomicBool,
    in_flight: AtomicUsize,
    /// When the connection was made: the base of `seen_used_nanos`.
    created: Instant,
    /// Set by every request handed over (no clock read on that path); taken by the idle
    /// reaper, which notes when it saw it set.
    used: AtomicBool,
    /// When the reaper last saw `used` set (or the connection made), in nanoseconds since
    /// `created`.
    seen_used_nanos: AtomicU64,
    close: Notify,
}

/// A handle to one connection's task. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Connection {
    address: Arc<str>,
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    identity: Option<ServerIdentity>,
}

/// A request handed to the connection; await its reply with [`PendingReply::wait`].
/// Dropping it abandons the request (it is not written if it was not already).
#[derive(Debug)]
pub(crate) struct PendingReply {
    waiter: Waiter,
    address: Arc<str>,
}

impl PendingReply {
    /// Waits for the task's answer: bounded by the request's deadline, if it was given one.
    pub(crate) async fn answer(&mut self) -> Answer {
        match self.waiter.outcome().await {
            Outcome::Answered(answer) => answer,
            // The task ended without answering: classify by whether the bytes went out.
            Outcome::Unanswered { sent: true } => Answer::Failed(outcome_unknown(
                &self.address,
                "request",
                "the connection task ended",
            )),
            Outcome::Unanswered { sent: false } => Answer::Failed(not_sent(
                &self.address,
                "request",
                "the connection task ended",
            )),
        }
    }

    /// Waits for the reply of a request sent without a deadline (not bounded: wrap it in a
    /// timeout).
    pub(crate) async fn wait(&mut self) -> Result<Reply, Error> {
        match self.answer().await {
            Answer::Reply(reply, _) => Ok(reply),
            Answer::Failed(error) => Err(error),
            Answer::Expired { sent } => Err(if sent {
                outcome_unknown(&self.address, "request", "its deadline passed")
            } else {
                not_sent(&self.address, "request", "its deadline passed")
            }),
        }
    }

    /// Whether the request's bytes were committed to the socket.
    #[cfg_attr(not(test), allow(dead_code))] // used by the client's own tests
    pub(crate) fn is_sent(&self) -> bool {
        self.waiter.is_sent()
    }

    /// Gives up on the request. Returns `true` when its bytes were already committed to the
    /// socket (its outcome is unknown), `false` when it is now guaranteed never to be sent.
    /// Dropping a `PendingReply` does the same.
    #[cfg_attr(not(test), allow(dead_code))] // used by the client's own tests
    pub(crate) fn abandon(&self) -> bool {
        self.waiter.abandon()
    }
}

impl Connection {
    /// Connects (bounded by `connect_timeout`, TLS handshake included), sets TCP_NODELAY,
    /// authenticates when `credentials` are given (bounded by `connect_timeout` again) and
    /// starts the task.
    pub(crate) async fn open(
        peer: &Peer,
        connect_timeout: Duration,
        max_value: usize,
        tls: Option<&TlsSettings>,
        credentials: Option<&Credentials>,
    ) -> Result<Connection, Error> {
        let mut stream = tcp::connect(peer, connect_timeout, tls).await?;
        auth::authenticate(&mut stream, peer.name(), credentials, connect_timeout).await?;
        let address = peer.name().clone();
        let shared = Arc::new(Shared {
            alive: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            created: Instant::now(),
            used: AtomicBool::new(false),
            seen_used_nanos: AtomicU64::new(0),
            close: Notify::new(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let max_value = max_value.max(DEFAULT_MAX_VALUE);
        match stream {
            // Plain TCP splits without a lock between the halves.
            Stream::Plain(tcp) => {
                let (rd, wr) = tcp.into_split();
                let io = Io {
                    rd,
                    wr,
                    plain: true,
                };
                tokio::spawn(run(io, rx, shared.clone(), address.clone(), max_value));
            }
            tls @ Stream::Tls(_) => {
                let (rd, wr) = tokio::io::split(tls);
                let io = Io {
                    rd,
                    wr,
                    plain: false,
                };
                tokio::spawn(run(io, rx, shared.clone(), address.clone(), max_value));
            }
        }
        Ok(Connection {
            address,
            tx,
            shared,
            identity: None,
        })
    }

    /// The server address this connection talks to.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The identity probed when the connection was made.
    pub(crate) fn identity(&self) -> Option<ServerIdentity> {
        self.identity
    }

    pub(crate) fn set_identity(&mut self, identity: ServerIdentity) {
        self.identity = Some(identity);
    }

    /// Whether the task still runs and the socket is usable.
    pub(crate) fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }

    /// Requests queued or awaiting their reply.
    pub(crate) fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// How long the connection has been idle, as the idle reaper sees it: since the last of
    /// its calls (at `now`) that found a request handed over since the one before. Never
    /// shorter than the time since the last request (at most one reaper period longer).
    pub(crate) fn idle_for(&self, now: Instant) -> Duration {
        let since_created = |at: Instant| {
            u64::try_from(at.saturating_duration_since(self.shared.created).as_nanos())
                .unwrap_or(u64::MAX)
        };
        if self.shared.used.swap(false, Ordering::Relaxed) {
            self.shared
                .seen_used_nanos
                .store(since_created(now), Ordering::Relaxed);
        }
        let seen = self.shared.created
            + Duration::from_nanos(self.shared.seen_used_nanos.load(Ordering::Relaxed));
        now.saturating_duration_since(seen)
    }

    /// Closes the socket; in-flight requests fail (written ones as outcome unknown).
    pub(crate) fn close(&self) {
        self.shared.alive.store(false, Ordering::Release);
        self.shared.close.notify_one();
    }

    /// Queues `req`, without a deadline. Fails at once (nothing sent) when the connection is
    /// dead.
    pub(crate) fn send(&self, req: Request) -> Result<PendingReply, Error> {
        self.send_with_late(Arc::new(req), None, None)
    }

    /// Queues `req` (shared with the caller, to retry it elsewhere without copying its key
    /// and data). With a `deadline`, the task answers [`Answer::Expired`] once it passes. If
    /// the caller stops waiting after the request was written, its reply (or the error that
    /// ends the connection) goes to `late`.
    pub(crate) fn send_with_late(
        &self,
        req: Arc<Request>,
        late: Option<LateSender>,
        deadline: Option<Instant>,
    ) -> Result<PendingReply, Error> {
        if !self.is_alive() {
            return Err(not_sent(
                &self.address,
                "request",
                "the connection is closed",
            ));
        }
        if let Some(key) = req.key()
            && !key.is_safe()
        {
            // Defence in depth: keys are validated before they get here.
            return Err(unsafe_key());
        }
        self.shared.used.store(true, Ordering::Relaxed);
        let (reply, waiter) = handoff();
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if self
            .tx
            .send(Command {
                req,
                reply,
                late,
                deadline,
            })
            .is_err()
        {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(not_sent(
                &self.address,
                "request",
                "the connection is closed",
            ));
        }
        Ok(PendingReply {
            waiter,
            address: self.address.clone(),
        })
    }

    /// Sends `req` and waits for its reply (unbounded: callers add their own timeout).
    #[cfg_attr(not(test), allow(dead_code))] // used by the client's own tests
    pub(crate) async fn call(&self, req: Request) -> Result<Reply, Error> {
        self.send(req)?.wait().await
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

/// Why the task stopped; decides how the requests still pending are failed.
enum Exit {
    /// All handles dropped and nothing pending.
    Done,
    /// Socket error, EOF, protocol error or close: pending requests fail.
    Broken(String),
    /// TLS refused the session before the server answered anything (a server that wants a
    /// client certificate says so at the first read): nothing was executed, and retrying
    /// will not help.
    Refused(String),
    Protocol(ProtocolError),
}

/// The two halves of the connection's stream.
struct Io<R, W> {
    rd: R,
    wr: W,
    /// Plain TCP (not TLS): a server that drops it unanswered may want TLS.
    plain: bool,
}

/// Why a read or write failed, before or after the server's first answer.
fn io_exit(e: &std::io::Error, doing: &str, answered: bool, plain: bool) -> Exit {
    if !answered {
        if let Some(reason) = refusal(e) {
            return Exit::Refused(reason);
        }
        if plain
            && matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
            )
        {
            return Exit::Broken(format!("{doing} failed: {e}{PLAINTEXT_HINT}"));
        }
    }
    Exit::Broken(format!("{doing} failed: {}", describe_io(e)))
}

/// Said when a server drops a new plaintext connection without answering: what a TLS-only
/// memcached port does.
const PLAINTEXT_HINT: &str = " (if its port only speaks TLS, set connection.protocol=tls)";

async fn run(
    io: Io<impl AsyncRead + Unpin, impl AsyncWrite + Unpin>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    address: Arc<str>,
    max_value: usize,
) {
    let Io {
        mut rd,
        mut wr,
        plain,
    } = io;
    // Whether the server answered anything yet.
    let mut answered = false;
    let mut pending: VecDeque<Pending> = VecDeque::new();
    // Taken from the channel, not yet encoded (the write backlog is full).
    let mut waiting: VecDeque<Command> = VecDeque::new();
    let mut wbuf: Vec<u8> = Vec::with_capacity(4096);
    let mut wpos = 0usize;
    let mut rbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut opaque: u32 = 0;
    let mut rx_open = true;
    // Written but maybe not yet on the socket: TLS keeps records in its session until a flush.
    let mut unflushed = false;
    // The connection's one timer, set to the earliest deadline known (`armed`); it may fire
    // for requests answered since, and then only re-arms.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    // Made once: a `Notified` made in each turn of the loop would join and leave the
    // notifier's waiter list (a lock each time) on every read, write and batch.
    let closed = shared.close.notified();
    tokio::pin!(closed);

    let exit = 'task: loop {
        if !rx_open && pending.is_empty() && waiting.is_empty() && wpos == wbuf.len() {
            break Exit::Done;
        }
        tokio::select! {
            biased;
            () = &mut closed => break Exit::Broken("closed by the client".into()),
            read = rd.read_buf(&mut rbuf) => {
                match read {
                    Ok(0) if !answered && plain => break Exit::Broken(format!(
                        "the server closed the connection without answering{PLAINTEXT_HINT}"
                    )),
                    Ok(0) => break Exit::Broken("the server closed the connection".into()),
                    Ok(_) => {}
                    Err(e) => break io_exit(&e, "read", answered, plain),
                }
                // One clock read per read from the socket: the arrival of every reply in it
                // (the callers' bookkeeping needs one; a read carries a dozen under load).
                let arrived = Instant::now();
                let mut pos = 0;
                while let Some(front) = pending.front() {
                    match parse_with_limit(&rbuf[pos..], front.shape, max_value) {
                        Ok(Some((reply, used))) => {
                            pos += used;
                            answered = true;
                            let poison = reply.poisons_stream();
                            let what = front.command;
                            if let Some(p) = pending.pop_front() {
                                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                                // The caller may have given up: its reply then goes to the
                                // late receiver, if any, or is discarded.
                                p.answer(Ok((reply, arrived)));
                            }
                            if poison {
                                // CLIENT_ERROR / ERROR may be followed by lines we cannot pair.
                                break 'task Exit::Broken(format!(
                                    "the server answered an error to {what}; the stream cannot be trusted"
                                ));
                            }
                        }
                        Ok(None) => break,
                        Err(e) => break 'task Exit::Protocol(e),
                    }
                }
                if pending.is_empty() && pos < rbuf.len() {
                    break Exit::Protocol(ProtocolError::new("unsolicited bytes from the server"));
                }
                rbuf.drain(..pos);
            }
            // Writes what is buffered, then flushes it out of the TLS session (for plain
            // TCP the flush does nothing).
            written = async {
                if wpos < wbuf.len() {
                    wr.write(&wbuf[wpos..]).await.map(Some)
                } else {
                    wr.flush().await.map(|()| None)
                }
            }, if wpos < wbuf.len() || unflushed => {
                match written {
                    Ok(Some(0)) => break Exit::Broken("the socket accepts no more bytes".into()),
                    Ok(Some(n)) => {
                        wpos += n;
                        unflushed = true;
                        if wpos == wbuf.len() {
                            wbuf.clear();
                            wpos = 0;
                        }
                        fill(&mut waiting, &mut opaque, &mut wbuf, wpos, &mut pending, &shared);
                    }
                    Ok(None) => unflushed = false,
                    Err(e) => break io_exit(&e, "write", answered, plain),
                }
            }
            () = &mut timer, if armed.is_some() => {
                armed = expire(Instant::now(), &mut pending, &mut waiting, &shared);
                if let Some(at) = armed {
                    timer.as_mut().reset(at);
                }
            }
            cmd = rx.recv(), if rx_open => {
                let Some(cmd) = cmd else {
                    rx_open = false;
                    continue;
                };
                let mut next = Some(cmd);
                // Batch everything already queued into one buffer.
                while let Some(cmd) = next.take() {
                    if let Some(at) = cmd.deadline
                        && armed.is_none_or(|armed| at < armed)
                    {
                        armed = Some(at);
                        timer.as_mut().reset(at);
                    }
                    waiting.push_back(cmd);
                    next = rx.try_recv().ok();
                }
                fill(&mut waiting, &mut opaque, &mut wbuf, wpos, &mut pending, &shared);
            }
        }
    };

    shared.alive.store(false, Ordering::Release);
    let why = match exit {
        Exit::Done => return,
        Exit::Refused(reason) => {
            for p in pending.drain(..) {
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                p.answer(Err(tls_error(&address, reason.clone())));
            }
            rx.close();
            while let Ok(cmd) = rx.try_recv() {
                waiting.push_back(cmd);
            }
            for cmd in waiting.drain(..) {
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                let _ = cmd
                    .reply
                    .send(Answer::Failed(tls_error(&address, reason.clone())));
            }
            return;
        }
        Exit::Broken(why) => why,
        Exit::Protocol(e) => {
            // The head of the queue gets the protocol error itself; the rest are unknown.
            let why = e.message().to_string();
            if let Some(p) = pending.pop_front() {
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                p.answer(Err(protocol_error(&address, e.message()).with_source(e)));
            }
            why
        }
    };
    for p in pending.drain(..) {
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        let error = outcome_unknown(&address, p.command, &why);
        p.answer(Err(error));
    }
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        waiting.push_back(cmd);
    }
    for cmd in waiting.drain(..) {
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        let error = not_sent(&address, cmd.req.command_name(), &why);
        let _ = cmd.reply.send(Answer::Failed(error));
    }
    let _ = wr.shutdown().await;
}

/// Encodes waiting requests into the write buffer while its unwritten part is below the
/// backlog limit. A request already past its deadline is not written (the clock is read once
/// per call, not per request).
fn fill(
    waiting: &mut VecDeque<Command>,
    opaque: &mut u32,
    wbuf: &mut Vec<u8>,
    wpos: usize,
    pending: &mut VecDeque<Pending>,
    shared: &Shared,
) {
    let mut now = None;
    while wbuf.len() - wpos < WRITE_BACKLOG {
        let Some(cmd) = waiting.pop_front() else {
            return;
        };
        if let Some(at) = cmd.deadline
            && at <= *now.get_or_insert_with(Instant::now)
        {
            cmd.expire(shared);
            continue;
        }
        enqueue(cmd, opaque, wbuf, pending, shared);
    }
}

/// Answers every request whose deadline is past `now` (written ones stay pending for their
/// reply, which goes to the late receiver); the earliest deadline left, to set the timer to.
fn expire(
    now: Instant,
    pending: &mut VecDeque<Pending>,
    waiting: &mut VecDeque<Command>,
    shared: &Shared,
) -> Option<Instant> {
    let mut next: Option<Instant> = None;
    let mut earliest = |at: Instant| {
        next = Some(next.map_or(at, |n| n.min(at)));
    };
    for p in pending.iter_mut() {
        match p.deadline {
            Some(at) if at <= now => p.expire(),
            Some(at) if p.reply.is_some() => earliest(at),
            _ => {}
        }
    }
    for cmd in std::mem::take(waiting) {
        match cmd.deadline {
            Some(at) if at <= now => cmd.expire(shared),
            deadline => {
                if let Some(at) = deadline {
                    earliest(at);
                }
                waiting.push_back(cmd);
            }
        }
    }
    next
}

fn enqueue(
    cmd: Command,
    opaque: &mut u32,
    wbuf: &mut Vec<u8>,
    pending: &mut VecDeque<Pending>,
    shared: &Shared,
) {
    // Commit the request, unless its caller already gave up (then nothing is written).
    if !cmd.reply.commit() {
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    *opaque = opaque.wrapping_add(1);
    cmd.req.encode(*opaque, wbuf);
    pending.push_back(Pending {
        shape: cmd.req.shape(*opaque),
        command: cmd.req.command_name(),
        reply: Some(cmd.reply),
        late: cmd.late,
        deadline: cmd.deadline,
    });
}
