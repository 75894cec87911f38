//! The modelled system: servers, clients, messages in flight, the steps that change them and
//! the two invariants.
//!
//! A [`State`] is kept *canonical* (see [`State::normalize`]): facts that can no longer
//! influence any future behaviour are erased, so that two histories that differ only in such
//! facts meet in the same visited state.

use std::fmt;

/// The bound and the protocol switches of one model-checking run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Number of memcached servers every key lives on (N).
    pub servers: usize,
    /// Number of clients contending for the one modelled key.
    pub clients: usize,
    /// How many acquires each client may start.
    pub acquires_per_client: u32,
    /// How many server restarts may happen in one run (any server, any time).
    pub max_restarts: u32,
    /// The last real tick explored; time never passes beyond it.
    pub max_ticks: u32,
    /// The ttl every acquire asks for (ticks); must be `<= max_ttl`.
    pub ttl: u32,
    /// Quorum mode's cap on the ttl.
    pub max_ttl: u32,
    /// How long (ticks of server uptime) a restarted server's answers are not counted.
    pub quarantine: u32,
    /// Switch: with `false`, restarted servers count at once.
    pub quarantine_enabled: bool,
    /// Switch: with `false`, the token is used as soon as the grant is decided (no write-back).
    pub write_back: bool,
    /// A client's measured elapsed time may fall short of real elapsed time by up to this many
    /// ticks over one acquire/lease.
    pub drift: u32,
    /// A message is processed by its server within this many ticks of being sent, or is lost.
    pub max_delay: u32,
    /// `K`: a counter created at wall-clock tick `w` starts at `w * K`; must exceed the number
    /// of increments a run can make.
    pub counter_scale: u64,
    /// Each client's wall clock (used only for the initial counter value) may lag real time by
    /// any fixed amount in `0..=wall_clock_skew` ticks, chosen nondeterministically per client.
    pub wall_clock_skew: u32,
    /// Safety valve: stop (and report `complete: false`) after this many distinct states.
    pub max_states: usize,
    /// Store each state once per symmetry class (servers are interchangeable, and so are
    /// clients with the same wall-clock offset). Sound: every step and both invariants treat
    /// servers (clients) alike; `false` explores the plain state space.
    pub symmetry: bool,
}

impl Default for Params {
    /// The CI bound: 3 servers, 2 clients, 1 acquire each, 1 restart, 8 ticks.
    fn default() -> Self {
        Params {
            servers: 3,
            clients: 2,
            acquires_per_client: 1,
            max_restarts: 1,
            max_ticks: 8,
            ttl: 3,
            max_ttl: 3,
            quarantine: 3,
            quarantine_enabled: true,
            write_back: true,
            drift: 1,
            max_delay: 1,
            counter_scale: 1000,
            wall_clock_skew: 0,
            max_states: 50_000_000,
            symmetry: true,
        }
    }
}

impl Params {
    /// The majority of servers a grant (and a write-back) needs: `N / 2 + 1`.
    pub fn majority(&self) -> u32 {
        u32::try_from(self.servers / 2 + 1).unwrap_or(u32::MAX)
    }

    /// Checks the limits of the model and quorum mode's own rules
    /// (`ttl <= max_ttl`, `quarantine >= max_ttl` when the quarantine is on).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SERVERS).contains(&self.servers) {
            return Err(format!("servers must be in 1..={MAX_SERVERS}"));
        }
        if !(1..=6).contains(&self.clients) {
            return Err("clients must be in 1..=6".into());
        }
        if self.acquires_per_client > 200 {
            return Err("acquires_per_client must be <= 200".into());
        }
        if self.ttl == 0 || self.ttl > self.max_ttl {
            return Err("ttl must be in 1..=max_ttl".into());
        }
        if self.quarantine_enabled && self.quarantine < self.max_ttl {
            return Err("quorum mode requires quarantine >= max_ttl".into());
        }
        let increments = u64::from(self.acquires_per_client) * self.clients as u64 * 4 + 1;
        if self.counter_scale <= increments {
            return Err(format!(
                "counter_scale must exceed {increments} (increments per run)"
            ));
        }
        Ok(())
    }
}

/// The most servers the model supports (replies are kept in a fixed array).
pub const MAX_SERVERS: usize = 8;

/// Index of a server.
pub type ServerId = u8;
/// Index of a client.
pub type ClientId = u8;
/// A set of servers as a bit mask (bit `s` = server `s`).
pub type ServerSet = u32;

/// The lock item one server stores for the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Item {
    /// The client that stored it.
    pub owner: ClientId,
    /// Which of the owner's acquires stored it (owner-checked deletes compare both).
    pub attempt: u8,
    /// The real tick at which the server stops treating it as live (live while `now < expires_at`).
    pub expires_at: u32,
}

/// One memcached server's state for the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Server {
    /// The lock item, if one is live.
    pub item: Option<Item>,
    /// The fencing counter, if the server holds one.
    pub counter: Option<u64>,
    /// Real tick of the last restart; `None` = booted long ago (or no longer quarantined).
    pub booted_at: Option<u32>,
}

/// What a message asks a server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Payload {
    /// Store the item if the key is free, advance the counter, reply GRANTED/BUSY.
    Acquire {
        /// Attempt id of the sender.
        attempt: u8,
    },
    /// Raise the counter to at least `token`, reply an acknowledgement.
    WriteBack {
        /// Attempt id of the sender.
        attempt: u8,
        /// The token to establish.
        token: u64,
    },
    /// Delete the item if it is still `(client, attempt)`; no reply modelled.
    Release {
        /// Attempt id whose item may be deleted.
        attempt: u8,
    },
}

/// A request in flight from a client to a server. Its reply is produced when the server
/// processes it (request and reply are one delivery). A lost request is one never processed
/// within `max_delay`; a lost (or late) reply is modelled where the client decides: it decides
/// with any subset of the replies that reached it (see [`Step::Decide`], [`Step::Establish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Message {
    /// Real tick at which it was sent (it must be processed by `sent_at + max_delay`).
    pub sent_at: u32,
    /// Sender.
    pub client: ClientId,
    /// Recipient.
    pub server: ServerId,
    /// The request.
    pub payload: Payload,
}

/// Where a client is in its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Not holding and not acquiring.
    Idle,
    /// Acquire requests sent at `started_at`; collecting replies.
    Acquiring {
        /// Attempt id.
        attempt: u8,
        /// Real tick of sending (the client's local clock is aligned to it: lag 0).
        started_at: u32,
        /// Servers whose GRANTED reply was produced (counted or not).
        granted: ServerSet,
        /// Of those, the ones out of quarantine when they answered: majorities count these.
        counted: ServerSet,
        /// The counter value in each GRANTED reply (0 elsewhere); the token is their max.
        counters: [u64; MAX_SERVERS],
    },
    /// Grant decided (the lease is believed valid); write-back of `token` in progress.
    WritingBack {
        /// Attempt id.
        attempt: u8,
        /// Real tick the acquire was sent.
        started_at: u32,
        /// The token being established.
        token: u64,
        /// Servers that granted (write-back and release targets).
        granted: ServerSet,
        /// Servers that acknowledged while out of quarantine.
        acked: ServerSet,
    },
    /// The token is established; the lease is believed valid until the local deadline.
    Holding {
        /// Attempt id.
        attempt: u8,
        /// Real tick the acquire was sent.
        started_at: u32,
        /// The established fencing token.
        token: u64,
    },
}

/// One client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Client {
    /// Protocol phase.
    pub phase: Phase,
    /// Acquires started so far (also the next attempt id).
    pub acquires_started: u8,
    /// Ticks the local clock has fallen behind real time since the current acquire started
    /// (`0..=drift`): local now = real now - lag.
    pub lag: u32,
    /// Fixed lag of this client's wall clock (only used to create counters).
    pub wall_clock_offset: u32,
}

/// A broken invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Violation {
    /// Two clients believe they hold a valid lease at the same real tick.
    MutualExclusion {
        /// One holder.
        first: ClientId,
        /// The other holder.
        second: ClientId,
        /// The real tick.
        at: u32,
    },
    /// A grant established a token not greater than an earlier grant's token.
    Fencing {
        /// The highest token established before.
        previous: u64,
        /// The later grant's token.
        later: u64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::MutualExclusion { first, second, at } => write!(
                f,
                "mutual exclusion: clients {} and {} both believe they hold the lease at tick {at}",
                client_name(first),
                client_name(second)
            ),
            Violation::Fencing { previous, later } => write!(
                f,
                "fencing: a later grant got token {later}, not above the earlier token {previous}"
            ),
        }
    }
}

/// One step of the model (a transition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Real time advances by one tick; the clients in `stalled` (bit mask) do not see it
    /// (their local clocks fall one more tick behind).
    Tick {
        /// Clients whose local clock stalls this tick.
        stalled: u32,
    },
    /// A server restarts: item and counter are lost, uptime starts again.
    Restart {
        /// The server.
        server: ServerId,
    },
    /// A server processes a message now and produces its reply (if any).
    Deliver {
        /// The message (must be in flight).
        message: Message,
    },
    /// An idle client sends an acquire to every server.
    StartAcquire {
        /// The client.
        client: ClientId,
    },
    /// An acquiring client decides with the GRANTED replies in `using`; the other GRANTED
    /// replies produced so far are lost or late (a lost BUSY reply changes nothing).
    /// GRANTED needs a counted majority in `using` and time left; the token is the max
    /// counter in `using`. Otherwise the acquire fails and `using` is released.
    Decide {
        /// The client.
        client: ClientId,
        /// The GRANTED replies that reached it in time.
        using: ServerSet,
    },
    /// A client in write-back concludes: with `established`, a counted majority of
    /// acknowledgements reached it in time; without, too few did (lost, late, or the
    /// deadline passed) and the acquire fails (released on every granting server).
    Establish {
        /// The client.
        client: ClientId,
        /// Whether the token is established.
        established: bool,
    },
    /// A holder releases: owner-checked delete on every server.
    Release {
        /// The client.
        client: ClientId,
    },
}

/// The state of the whole modelled system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State {
    /// Real time (ticks).
    pub now: u32,
    /// Restarts used so far.
    pub restarts: u32,
    /// The servers.
    pub servers: Vec<Server>,
    /// The clients.
    pub clients: Vec<Client>,
    /// Messages in flight, sorted (a multiset).
    pub messages: Vec<Message>,
    /// The highest token a grant has established so far (fencing history).
    pub highest_token: Option<u64>,
    /// Set when an establishment broke the fencing invariant.
    pub fencing_broken: Option<(u64, u64)>,
}

/// `A`, `B`, ... for client ids.
pub fn client_name(client: ClientId) -> char {
    char::from(b'A' + client)
}

fn bits(set: ServerSet) -> u32 {
    set.count_ones()
}

impl State {
    /// The initial states: every server booted long ago and empty, every client idle; one
    /// state per combination of wall-clock offsets (`0..=wall_clock_skew` per client).
    pub fn initial(params: &Params) -> Vec<State> {
        let mut offsets = vec![vec![]];
        for _ in 0..params.clients {
            offsets = offsets
                .into_iter()
                .flat_map(|prefix: Vec<u32>| {
                    (0..=params.wall_clock_skew).map(move |o| {
                        let mut next = prefix.clone();
                        next.push(o);
                        next
                    })
                })
                .collect();
        }
        offsets
            .into_iter()
            .map(|offsets| State {
                now: 0,
                restarts: 0,
                servers: vec![Server::default(); params.servers],
                clients: offsets
                    .into_iter()
                    .map(|wall_clock_offset| Client {
                        phase: Phase::Idle,
                        acquires_started: 0,
                        lag: 0,
                        wall_clock_offset,
                    })
                    .collect(),
                messages: Vec::new(),
                highest_token: None,
                fencing_broken: None,
            })
            .collect()
    }

    /// The local deadline of the client's current acquire or lease (`i64::MIN` when idle).
    pub fn deadline_of(&self, params: &Params, client: ClientId) -> i64 {
        match self.clients[usize::from(client)].phase {
            Phase::Idle => i64::MIN,
            Phase::Acquiring { started_at, .. }
            | Phase::WritingBack { started_at, .. }
            | Phase::Holding { started_at, .. } => local_deadline(params, started_at),
        }
    }

    /// The client's local clock now (real now minus its accumulated lag).
    pub fn local_now(&self, client: ClientId) -> i64 {
        i64::from(self.now) - i64::from(self.clients[usize::from(client)].lag)
    }

    /// Whether the server's answers are counted right now (uptime >= quarantine, or the
    /// quarantine is off).
    pub fn out_of_quarantine(&self, params: &Params, server: ServerId) -> bool {
        match self.servers[usize::from(server)].booted_at {
            None => true,
            Some(_) if !params.quarantine_enabled => true,
            Some(boot) => self.now - boot >= params.quarantine,
        }
    }

    /// Whether `client` believes it holds a valid lease now: it decided a grant (write-back
    /// or holding) and its local clock has not passed its deadline.
    pub fn believes_valid(&self, params: &Params, client: ClientId) -> bool {
        match self.clients[usize::from(client)].phase {
            Phase::WritingBack { started_at, .. } | Phase::Holding { started_at, .. } => {
                self.local_now(client) <= local_deadline(params, started_at)
            }
            Phase::Idle | Phase::Acquiring { .. } => false,
        }
    }

    /// The first broken invariant in this state, if any.
    pub fn violation(&self, params: &Params) -> Option<Violation> {
        if let Some((previous, later)) = self.fencing_broken {
            return Some(Violation::Fencing { previous, later });
        }
        let holders: Vec<ClientId> = (0..self.clients.len())
            .map(|c| c as ClientId)
            .filter(|&c| self.believes_valid(params, c))
            .collect();
        if let [first, second, ..] = holders[..] {
            return Some(Violation::MutualExclusion {
                first,
                second,
                at: self.now,
            });
        }
        None
    }

    /// Every enabled step with the state it leads to.
    pub fn successors(&self, params: &Params) -> Vec<(Step, State)> {
        let mut out = Vec::new();
        if self.now < params.max_ticks {
            // Only clients with a running acquire/lease measure time; their clocks may stall.
            let mut can_stall: u32 = 0;
            for (c, client) in self.clients.iter().enumerate() {
                let cid = c as ClientId;
                if client.phase != Phase::Idle
                    && client.lag < params.drift
                    && self.local_now(cid) <= self.deadline_of(params, cid)
                {
                    can_stall |= 1 << c;
                }
            }
            // Enumerate every subset of `can_stall`.
            let mut stalled = can_stall;
            loop {
                let step = Step::Tick { stalled };
                out.push((step, self.apply(params, step)));
                if stalled == 0 {
                    break;
                }
                stalled = (stalled - 1) & can_stall;
            }
        }
        if self.restarts < params.max_restarts {
            for s in 0..self.servers.len() {
                let step = Step::Restart {
                    server: s as ServerId,
                };
                out.push((step, self.apply(params, step)));
            }
        }
        let mut previous: Option<Message> = None;
        for &message in &self.messages {
            if previous == Some(message) {
                continue; // identical copies lead to identical states
            }
            previous = Some(message);
            let step = Step::Deliver { message };
            out.push((step, self.apply(params, step)));
        }
        for c in 0..self.clients.len() {
            let client = c as ClientId;
            let steps: Vec<Step> = match self.clients[c].phase {
                Phase::Idle
                    if u32::from(self.clients[c].acquires_started) < params.acquires_per_client =>
                {
                    vec![Step::StartAcquire { client }]
                }
                Phase::Idle => vec![],
                // Every subset of the GRANTED replies may be the one that arrived in time.
                Phase::Acquiring { granted, .. } => {
                    let mut subsets = Vec::new();
                    let mut using = granted;
                    loop {
                        subsets.push(Step::Decide { client, using });
                        if using == 0 {
                            break;
                        }
                        using = (using - 1) & granted;
                    }
                    subsets
                }
                Phase::WritingBack {
                    started_at, acked, ..
                } => {
                    let mut steps = vec![Step::Establish {
                        client,
                        established: false,
                    }];
                    let in_time = self.local_now(client) <= local_deadline(params, started_at);
                    if in_time && bits(acked) >= params.majority() {
                        steps.push(Step::Establish {
                            client,
                            established: true,
                        });
                    }
                    steps
                }
                Phase::Holding { .. } => vec![Step::Release { client }],
            };
            for step in steps {
                out.push((step, self.apply(params, step)));
            }
        }
        out
    }

    /// Whether the sender still waits for the reply to `message` (otherwise it is dropped).
    fn reply_awaited(&self, message: Message) -> bool {
        let phase = self.clients[usize::from(message.client)].phase;
        match (message.payload, phase) {
            (
                Payload::Acquire { attempt },
                Phase::Acquiring {
                    attempt: current, ..
                },
            )
            | (
                Payload::WriteBack { attempt, .. },
                Phase::WritingBack {
                    attempt: current, ..
                },
            ) => attempt == current,
            _ => false,
        }
    }

    /// The state after `step` (which must be enabled), normalized.
    pub fn apply(&self, params: &Params, step: Step) -> State {
        let mut next = self.clone();
        match step {
            Step::Tick { stalled } => {
                next.now += 1;
                for (c, client) in next.clients.iter_mut().enumerate() {
                    if stalled & (1 << c) != 0 {
                        client.lag += 1;
                    }
                }
            }
            Step::Restart { server } => {
                next.restarts += 1;
                next.servers[usize::from(server)] = Server {
                    item: None,
                    counter: None,
                    booted_at: Some(self.now),
                };
            }
            Step::Deliver { message } => {
                let index = next
                    .messages
                    .iter()
                    .position(|m| *m == message)
                    .expect("delivered message is in flight");
                next.messages.remove(index);
                next.process(params, message);
            }
            Step::StartAcquire { client } => {
                let c = &mut next.clients[usize::from(client)];
                let attempt = c.acquires_started;
                c.acquires_started += 1;
                c.lag = 0;
                c.phase = Phase::Acquiring {
                    attempt,
                    started_at: self.now,
                    granted: 0,
                    counted: 0,
                    counters: [0; MAX_SERVERS],
                };
                next.send_to(client, all_servers(params), Payload::Acquire { attempt });
            }
            Step::Decide { client, using } => {
                let Phase::Acquiring {
                    attempt,
                    started_at,
                    granted,
                    counted,
                    counters,
                } = self.clients[usize::from(client)].phase
                else {
                    panic!("Decide needs an acquiring client");
                };
                assert_eq!(using & !granted, 0, "only GRANTED replies can be used");
                let granted = using;
                let max_counter = (0..MAX_SERVERS)
                    .filter(|&s| using & (1 << s) != 0)
                    .map(|s| counters[s])
                    .max()
                    .unwrap_or(0);
                let in_time = self.local_now(client) <= local_deadline(params, started_at);
                if bits(counted & using) >= params.majority() && in_time {
                    if params.write_back {
                        next.clients[usize::from(client)].phase = Phase::WritingBack {
                            attempt,
                            started_at,
                            token: max_counter,
                            granted,
                            acked: 0,
                        };
                        next.send_to(
                            client,
                            granted,
                            Payload::WriteBack {
                                attempt,
                                token: max_counter,
                            },
                        );
                    } else {
                        next.establish(client, attempt, started_at, max_counter);
                    }
                } else {
                    next.abandon(client, attempt, granted);
                }
            }
            Step::Establish {
                client,
                established,
            } => {
                let Phase::WritingBack {
                    attempt,
                    started_at,
                    token,
                    granted,
                    acked,
                } = self.clients[usize::from(client)].phase
                else {
                    panic!("Establish needs a client in write-back");
                };
                // A client never acts on a lease past its own deadline: a token established
                // too late is not used.
                let in_time = self.local_now(client) <= local_deadline(params, started_at);
                if established {
                    assert!(
                        bits(acked) >= params.majority() && in_time,
                        "establish needs a majority in time"
                    );
                    next.establish(client, attempt, started_at, token);
                } else {
                    next.abandon(client, attempt, granted);
                }
            }
            Step::Release { client } => {
                let Phase::Holding { attempt, .. } = self.clients[usize::from(client)].phase else {
                    panic!("Release needs a holder");
                };
                next.send_to(client, all_servers(params), Payload::Release { attempt });
                next.clients[usize::from(client)].phase = Phase::Idle;
            }
        }
        next.normalize(params);
        next
    }

    /// Server-side processing of `message` at the current tick.
    fn process(&mut self, params: &Params, message: Message) {
        let counted = self.out_of_quarantine(params, message.server);
        let now = self.now;
        let client = self.clients[usize::from(message.client)];
        let server = &mut self.servers[usize::from(message.server)];
        let bit: ServerSet = 1 << message.server;
        match message.payload {
            Payload::Acquire { attempt } => {
                // A missing counter is created from the sender's wall clock: `w * K`.
                let wall_clock = u64::from(now + params.wall_clock_skew - client.wall_clock_offset);
                let counter = server.counter.unwrap_or(wall_clock * params.counter_scale) + 1;
                server.counter = Some(counter);
                let free = server.item.is_none_or(|item| item.expires_at <= now);
                if free {
                    server.item = Some(Item {
                        owner: message.client,
                        attempt,
                        expires_at: now + params.ttl,
                    });
                }
                // A BUSY reply changes nothing in the client's decision, so it is not kept.
                if free
                    && let Phase::Acquiring {
                        attempt: a,
                        granted,
                        counted: c,
                        mut counters,
                        started_at,
                    } = client.phase
                    && a == attempt
                {
                    counters[usize::from(message.server)] = counter;
                    self.clients[usize::from(message.client)].phase = Phase::Acquiring {
                        attempt,
                        started_at,
                        granted: granted | bit,
                        counted: if counted { c | bit } else { c },
                        counters,
                    };
                }
            }
            Payload::WriteBack { attempt, token } => {
                server.counter = Some(server.counter.map_or(token, |c| c.max(token)));
                if counted
                    && let Phase::WritingBack {
                        attempt: a, acked, ..
                    } = client.phase
                    && a == attempt
                    && let Phase::WritingBack { acked: slot, .. } =
                        &mut self.clients[usize::from(message.client)].phase
                {
                    *slot = acked | bit;
                }
            }
            Payload::Release { attempt } => {
                if server
                    .item
                    .is_some_and(|item| item.owner == message.client && item.attempt == attempt)
                {
                    server.item = None;
                }
            }
        }
    }

    /// The client starts using `token`: record it in the fencing history.
    fn establish(&mut self, client: ClientId, attempt: u8, started_at: u32, token: u64) {
        if let Some(previous) = self.highest_token
            && token <= previous
            && self.fencing_broken.is_none()
        {
            self.fencing_broken = Some((previous, token));
        }
        self.highest_token = Some(self.highest_token.map_or(token, |h| h.max(token)));
        self.clients[usize::from(client)].phase = Phase::Holding {
            attempt,
            started_at,
            token,
        };
    }

    /// A failed acquire: release on every server known to have granted, then idle.
    fn abandon(&mut self, client: ClientId, attempt: u8, granted: ServerSet) {
        self.send_to(client, granted, Payload::Release { attempt });
        self.clients[usize::from(client)].phase = Phase::Idle;
    }

    fn send_to(&mut self, client: ClientId, targets: ServerSet, payload: Payload) {
        for s in 0..self.servers.len() {
            if targets & (1 << s) != 0 {
                self.messages.push(Message {
                    sent_at: self.now,
                    client,
                    server: s as ServerId,
                    payload,
                });
            }
        }
    }

    /// Erases facts that can no longer matter, so equivalent states are stored once:
    /// messages past their delivery window are lost, expired items are gone, a boot time is
    /// forgotten once the quarantine is over, an idle client's clock lag is irrelevant.
    pub fn normalize(&mut self, params: &Params) {
        let now = self.now;
        self.messages
            .retain(|m| now <= m.sent_at + params.max_delay);
        // A release can only ever delete an item (client, attempt) that is on the server or
        // still on its way there in an acquire; otherwise it is a no-op and is dropped.
        let in_flight = self.messages.clone();
        let servers = &self.servers;
        self.messages.retain(|m| match m.payload {
            Payload::Release { attempt } => {
                let mine = |item: Item| item.owner == m.client && item.attempt == attempt;
                servers[usize::from(m.server)].item.is_some_and(mine)
                    || in_flight.iter().any(|a| {
                        a.client == m.client
                            && a.server == m.server
                            && a.payload == Payload::Acquire { attempt }
                    })
            }
            _ => true,
        });
        // A write-back nobody waits for is a no-op once the counter is at least its token and
        // no restart can wipe the counter any more.
        let restarts_left = self.restarts < params.max_restarts;
        let clients = &self.clients;
        self.messages.retain(|m| match m.payload {
            Payload::WriteBack { attempt, token } => {
                let awaited = matches!(clients[usize::from(m.client)].phase,
                    Phase::WritingBack { attempt: a, .. } if a == attempt);
                awaited
                    || restarts_left
                    || servers[usize::from(m.server)]
                        .counter
                        .is_none_or(|c| c < token)
            }
            _ => true,
        });
        self.messages.sort_unstable();
        for server in &mut self.servers {
            if server.item.is_some_and(|item| item.expires_at <= now) {
                server.item = None;
            }
            if let Some(boot) = server.booted_at
                && (!params.quarantine_enabled || now - boot >= params.quarantine)
            {
                server.booted_at = None;
            }
        }
        // The lag only matters while the local clock has not passed the deadline; once real
        // time is past it, the lease (or acquire) is over whatever the lag.
        for c in 0..self.clients.len() {
            let deadline = self.deadline_of(params, c as ClientId);
            let client = &mut self.clients[c];
            if client.phase == Phase::Idle || i64::from(now) - i64::from(client.lag) > deadline {
                client.lag = 0;
            }
        }
    }

    /// The representative of this state's symmetry class: the least state (in the derived
    /// order) over every renaming of the servers and of the clients that share a wall-clock
    /// offset. `self` must be normalized.
    pub fn canonical(self, params: &Params) -> State {
        if !params.symmetry {
            return self;
        }
        let server_perms = permutations(self.servers.len());
        let client_perms: Vec<&Vec<usize>> = permutations(self.clients.len())
            .iter()
            .filter(|perm| {
                perm.iter().enumerate().all(|(c, &to)| {
                    self.clients[c].wall_clock_offset == self.clients[to].wall_clock_offset
                })
            })
            .collect();
        let mut best: Option<State> = None;
        for sp in server_perms {
            for cp in &client_perms {
                let candidate = self.renamed(sp, cp);
                if best.as_ref().is_none_or(|b| candidate < *b) {
                    best = Some(candidate);
                }
            }
        }
        best.unwrap_or(self)
    }

    /// This state with server `s` renamed `sp[s]` and client `c` renamed `cp[c]`.
    fn renamed(&self, sp: &[usize], cp: &[usize]) -> State {
        let map_set = |set: ServerSet| -> ServerSet {
            (0..sp.len())
                .filter(|s| set & (1 << s) != 0)
                .fold(0, |acc, s| acc | (1 << sp[s]))
        };
        let map_client = |c: ClientId| cp[usize::from(c)] as ClientId;
        let mut servers = self.servers.clone();
        for (s, server) in self.servers.iter().enumerate() {
            let mut server = *server;
            if let Some(item) = &mut server.item {
                item.owner = map_client(item.owner);
            }
            servers[sp[s]] = server;
        }
        let mut clients = self.clients.clone();
        for (c, client) in self.clients.iter().enumerate() {
            let mut client = *client;
            client.phase = match client.phase {
                Phase::Acquiring {
                    attempt,
                    started_at,
                    granted,
                    counted,
                    counters,
                } => {
                    let mut renamed = [0; MAX_SERVERS];
                    for (s, &to) in sp.iter().enumerate() {
                        renamed[to] = counters[s];
                    }
                    Phase::Acquiring {
                        attempt,
                        started_at,
                        granted: map_set(granted),
                        counted: map_set(counted),
                        counters: renamed,
                    }
                }
                Phase::WritingBack {
                    attempt,
                    started_at,
                    token,
                    granted,
                    acked,
                } => Phase::WritingBack {
                    attempt,
                    started_at,
                    token,
                    granted: map_set(granted),
                    acked: map_set(acked),
                },
                other => other,
            };
            clients[cp[c]] = client;
        }
        let mut messages: Vec<Message> = self
            .messages
            .iter()
            .map(|m| Message {
                client: map_client(m.client),
                server: sp[usize::from(m.server)] as ServerId,
                ..*m
            })
            .collect();
        messages.sort_unstable();
        State {
            servers,
            clients,
            messages,
            ..self.clone()
        }
    }

    /// A one-line picture of the state, for traces.
    pub fn render(&self, params: &Params) -> String {
        let mut parts = vec![format!("t={}", self.now)];
        for (s, server) in self.servers.iter().enumerate() {
            let item = match server.item {
                Some(i) => format!(
                    "{}#{} exp {}",
                    client_name(i.owner),
                    i.attempt,
                    i.expires_at
                ),
                None => "-".into(),
            };
            let counter = server.counter.map_or("-".into(), |c| c.to_string());
            let boot = match server.booted_at {
                Some(b) => format!(
                    " booted {b}{}",
                    if self.out_of_quarantine(params, s as ServerId) {
                        ""
                    } else {
                        " (quarantined)"
                    }
                ),
                None => String::new(),
            };
            parts.push(format!("s{s}[item {item}, ctr {counter}{boot}]"));
        }
        for (c, client) in self.clients.iter().enumerate() {
            let id = c as ClientId;
            let phase = match client.phase {
                Phase::Idle => "idle".to_string(),
                Phase::Acquiring {
                    attempt,
                    started_at,
                    granted,
                    counted,
                    counters,
                } => format!(
                    "acquiring #{attempt} since {started_at} granted by {} (counted {}) ctrs {:?}",
                    set_name(granted),
                    set_name(counted),
                    &counters[..self.servers.len()]
                ),
                Phase::WritingBack {
                    attempt,
                    started_at,
                    token,
                    acked,
                    ..
                } => format!(
                    "write-back #{attempt} token {token} acked {} deadline(local) {}",
                    set_name(acked),
                    local_deadline(params, started_at)
                ),
                Phase::Holding {
                    attempt,
                    started_at,
                    token,
                } => format!(
                    "holding #{attempt} token {token} deadline(local) {}",
                    local_deadline(params, started_at)
                ),
            };
            let valid = if self.believes_valid(params, id) {
                " VALID"
            } else {
                ""
            };
            parts.push(format!(
                "{}[{phase}, local {}{valid}]",
                client_name(id),
                self.local_now(id)
            ));
        }
        if !self.messages.is_empty() {
            parts.push(format!("{} msg in flight", self.messages.len()));
        }
        parts.join(" ")
    }
}

/// The last local tick at which a lease acquired at `started_at` is believed valid:
/// `started_at + ttl - drift - 1` (the decision needs `ttl - measured_elapsed - drift > 0`).
pub fn local_deadline(params: &Params, started_at: u32) -> i64 {
    i64::from(started_at) + i64::from(params.ttl) - i64::from(params.drift) - 1
}

/// Every permutation of `0..n` (as `perm[old] = new`), the identity first; computed once per
/// `n` and kept for the life of the process.
fn permutations(n: usize) -> &'static [Vec<usize>] {
    use std::sync::{Mutex, OnceLock};
    type Permutations = &'static [Vec<usize>];
    static CACHE: OnceLock<Mutex<Vec<Option<Permutations>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(|| Mutex::new(vec![None; 17]))
        .lock()
        .expect("cache");
    cache[n].get_or_insert_with(|| Vec::leak(compute_permutations(n)))
}

fn compute_permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for smaller in compute_permutations(n - 1) {
        for position in (0..n).rev() {
            let mut perm = smaller.clone();
            perm.insert(position, n - 1);
            out.push(perm);
        }
    }
    out
}

fn all_servers(params: &Params) -> ServerSet {
    (1u32 << params.servers) - 1
}

/// `{s0,s2}` for a server set.
pub fn set_name(set: ServerSet) -> String {
    let names: Vec<String> = (0..32)
        .filter(|s| set & (1 << s) != 0)
        .map(|s| format!("s{s}"))
        .collect();
    format!("{{{}}}", names.join(","))
}

impl Step {
    /// A readable description of this step taken from `before`.
    pub fn describe(&self, before: &State, params: &Params) -> String {
        match *self {
            Step::Tick { stalled } => {
                let mut text = format!("tick {} -> {}", before.now, before.now + 1);
                let names: String = (0..before.clients.len())
                    .filter(|c| stalled & (1 << c) != 0)
                    .map(|c| client_name(c as ClientId))
                    .collect();
                if !names.is_empty() {
                    text.push_str(&format!(" (local clock of {names} stalls)"));
                }
                text
            }
            Step::Restart { server } => {
                format!("server s{server} restarts (item and counter lost)")
            }
            Step::Deliver { message } => {
                let who = client_name(message.client);
                let s = message.server;
                let what = match message.payload {
                    Payload::Acquire { attempt } => format!("acquire #{attempt} of {who}"),
                    Payload::WriteBack { attempt, token } => {
                        format!("write-back #{attempt} of {who} (token {token})")
                    }
                    Payload::Release { attempt } => format!("release #{attempt} of {who}"),
                };
                let reply = match message.payload {
                    Payload::Release { .. } => String::new(),
                    _ if !before.reply_awaited(message) => {
                        ", reply ignored (client moved on)".into()
                    }
                    _ => String::new(),
                };
                let quarantine = if before.out_of_quarantine(params, s) {
                    ""
                } else {
                    " [server quarantined]"
                };
                format!(
                    "s{s} processes {what} sent at {}{reply}{quarantine}",
                    message.sent_at
                )
            }
            Step::StartAcquire { client } => {
                format!("{} sends acquire to every server", client_name(client))
            }
            Step::Decide { client, using } => {
                let lost = match before.clients[usize::from(client)].phase {
                    Phase::Acquiring { granted, .. } if granted & !using != 0 => {
                        format!(
                            " (GRANTED replies of {} lost or late)",
                            set_name(granted & !using)
                        )
                    }
                    _ => String::new(),
                };
                format!(
                    "{} decides its acquire with the GRANTED replies of {}{lost}",
                    client_name(client),
                    set_name(using)
                )
            }
            Step::Establish {
                client,
                established: true,
            } => {
                format!(
                    "{} concludes its write-back: token established",
                    client_name(client)
                )
            }
            Step::Establish {
                client,
                established: false,
            } => format!(
                "{} concludes its write-back: NOT established (acks missing or too late), releases",
                client_name(client)
            ),
            Step::Release { client } => format!(
                "{} releases (owner-checked delete on every server)",
                client_name(client)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params::default()
    }

    fn step(state: &State, params: &Params, step: Step) -> State {
        assert!(
            state.successors(params).iter().any(|(s, _)| *s == step),
            "step {step:?} not enabled in {}",
            state.render(params)
        );
        state.apply(params, step)
    }

    fn acquire_message(state: &State, client: ClientId, server: ServerId) -> Message {
        *state
            .messages
            .iter()
            .find(|m| {
                m.client == client
                    && m.server == server
                    && matches!(m.payload, Payload::Acquire { .. })
            })
            .expect("acquire in flight")
    }

    /// Client 0 collecting the replies of its first acquire (attempt 0, sent at tick 0).
    fn acquiring(granted: ServerSet, counted: ServerSet, counters: [u64; MAX_SERVERS]) -> Phase {
        Phase::Acquiring {
            attempt: 0,
            started_at: 0,
            granted,
            counted,
            counters,
        }
    }

    /// Every server holds client 0's item of attempt 0 (expiring at 3), and client 0 is in
    /// `phase` of its first acquire.
    fn all_servers_hold_client_0(p: &Params, phase: Phase) -> State {
        let mut s = State::initial(p).remove(0);
        for server in &mut s.servers {
            server.item = Some(Item {
                owner: 0,
                attempt: 0,
                expires_at: 3,
            });
        }
        s.clients[0].acquires_started = 1;
        s.clients[0].phase = phase;
        s
    }

    /// A server holding client 1's item (expiring at 5) with counter 7.
    fn held_by_client_1() -> Server {
        Server {
            item: Some(Item {
                owner: 1,
                attempt: 0,
                expires_at: 5,
            }),
            counter: Some(7),
            booted_at: None,
        }
    }

    fn decide(state: &State, params: &Params, using: ServerSet) -> State {
        step(state, params, Step::Decide { client: 0, using })
    }

    fn establish(state: &State, params: &Params, established: bool) -> State {
        step(
            state,
            params,
            Step::Establish {
                client: 0,
                established,
            },
        )
    }

    #[test]
    fn acquire_on_a_free_server_stores_the_item_and_creates_the_counter() {
        let p = params();
        let s0 = State::initial(&p).remove(0);
        let s1 = step(&s0, &p, Step::StartAcquire { client: 0 });
        assert_eq!(s1.messages.len(), 3);
        let s2 = step(&s1, &p, Step::Tick { stalled: 0 });
        let m = acquire_message(&s2, 0, 1);
        let s3 = step(&s2, &p, Step::Deliver { message: m });
        // Counter created at wall-clock tick 1: 1 * K + 1.
        assert_eq!(s3.servers[1].counter, Some(1001));
        assert_eq!(
            s3.servers[1].item,
            Some(Item {
                owner: 0,
                attempt: 0,
                expires_at: 1 + p.ttl
            })
        );
        let Phase::Acquiring {
            granted,
            counted,
            counters,
            ..
        } = s3.clients[0].phase
        else {
            panic!()
        };
        assert_eq!((granted, counted, counters[1]), (0b010, 0b010, 1001));
    }

    #[test]
    fn busy_server_advances_the_counter_and_keeps_the_item() {
        let p = params();
        let mut s = State::initial(&p).remove(0);
        s.servers[0] = held_by_client_1();
        let s = step(&s, &p, Step::StartAcquire { client: 0 });
        let m = acquire_message(&s, 0, 0);
        let s = step(&s, &p, Step::Deliver { message: m });
        assert_eq!(s.servers[0].counter, Some(8));
        assert_eq!(s.servers[0].item.map(|i| i.owner), Some(1));
        let Phase::Acquiring { granted, .. } = s.clients[0].phase else {
            panic!()
        };
        assert_eq!(granted, 0);
    }

    #[test]
    fn restart_wipes_and_quarantines() {
        let p = params();
        let mut s = State::initial(&p).remove(0);
        s.servers[2] = held_by_client_1();
        let s = step(&s, &p, Step::Restart { server: 2 });
        assert_eq!(
            s.servers[2],
            Server {
                item: None,
                counter: None,
                booted_at: Some(0)
            }
        );
        assert!(!s.out_of_quarantine(&p, 2));
        let mut later = s.clone();
        for _ in 0..p.quarantine {
            later = step(&later, &p, Step::Tick { stalled: 0 });
        }
        assert!(later.out_of_quarantine(&p, 2));
        assert_eq!(
            later.servers[2].booted_at, None,
            "normalized once the quarantine is over"
        );
        let off = Params {
            quarantine_enabled: false,
            ..p.clone()
        };
        assert!(s.out_of_quarantine(&off, 2));
    }

    #[test]
    fn owner_checked_release_deletes_only_its_own_item() {
        let p = params();
        let mut s = State::initial(&p).remove(0);
        s.servers[0].item = Some(Item {
            owner: 0,
            attempt: 1,
            expires_at: 5,
        });
        s.messages.push(Message {
            sent_at: 0,
            client: 0,
            server: 0,
            payload: Payload::Release { attempt: 0 },
        });
        let m = s.messages[0];
        let after = step(&s, &p, Step::Deliver { message: m });
        assert!(
            after.servers[0].item.is_some(),
            "another attempt's item survives"
        );
        s.messages[0].payload = Payload::Release { attempt: 1 };
        let m = s.messages[0];
        let after = step(&s, &p, Step::Deliver { message: m });
        assert!(after.servers[0].item.is_none());
    }

    #[test]
    fn decide_needs_a_counted_majority_and_time_left() {
        let p = params();
        let mut s =
            all_servers_hold_client_0(&p, acquiring(0b011, 0b001, [9, 4, 0, 0, 0, 0, 0, 0]));
        let failed = decide(&s, &p, 0b011);
        assert_eq!(failed.clients[0].phase, Phase::Idle);
        assert_eq!(
            failed.messages.len(),
            2,
            "releases to both granting servers"
        );

        s.clients[0].phase = acquiring(0b011, 0b011, [9, 4, 0, 0, 0, 0, 0, 0]);
        let granted = decide(&s, &p, 0b011);
        assert!(matches!(
            granted.clients[0].phase,
            Phase::WritingBack { token: 9, .. }
        ));
        assert!(granted.believes_valid(&p, 0));
        // The reply of s1 lost: no majority, the acquire fails and only s0 is released.
        let lost = decide(&s, &p, 0b001);
        assert_eq!(lost.clients[0].phase, Phase::Idle);
        assert_eq!(lost.messages.len(), 1);

        // ttl 3, drift 1: local deadline 1; at local tick 2 the validity is 3 - 2 - 1 = 0.
        let mut late = s.clone();
        late.now = 2;
        let failed = decide(&late, &p, 0b011);
        assert_eq!(failed.clients[0].phase, Phase::Idle);
        // With the clock stalled one tick (local 1) the client still decides GRANTED.
        late.clients[0].lag = 1;
        let granted = decide(&late, &p, 0b011);
        assert!(matches!(
            granted.clients[0].phase,
            Phase::WritingBack { .. }
        ));
    }

    #[test]
    fn write_back_raises_counters_and_establishes_on_a_majority() {
        let p = params();
        let mut s =
            all_servers_hold_client_0(&p, acquiring(0b111, 0b111, [50, 2, 3, 0, 0, 0, 0, 0]));
        s.servers[1].counter = Some(3);
        let s = decide(&s, &p, 0b111);
        let m = *s.messages.iter().find(|m| m.server == 1).unwrap();
        let s = step(&s, &p, Step::Deliver { message: m });
        assert_eq!(s.servers[1].counter, Some(50));
        let one_ack = s.clone();
        let m = *s.messages.iter().find(|m| m.server == 2).unwrap();
        let s = step(&s, &p, Step::Deliver { message: m });
        let held = establish(&s, &p, true);
        assert_eq!(
            held.clients[0].phase,
            Phase::Holding {
                attempt: 0,
                started_at: 0,
                token: 50
            }
        );
        assert_eq!(held.highest_token, Some(50));
        assert!(
            !one_ack.successors(&p).iter().any(|(s, _)| *s
                == Step::Establish {
                    client: 0,
                    established: true
                }),
            "one ack of three is no majority"
        );
        let failed = establish(&one_ack, &p, false);
        assert_eq!(failed.clients[0].phase, Phase::Idle);
        assert_eq!(
            failed
                .messages
                .iter()
                .filter(|m| matches!(m.payload, Payload::Release { .. }))
                .count(),
            3
        );
    }

    #[test]
    fn invariants_flag_two_valid_holders_and_a_token_regression() {
        let p = params();
        let mut s = State::initial(&p).remove(0);
        s.clients[0].phase = Phase::Holding {
            attempt: 0,
            started_at: 0,
            token: 5,
        };
        assert_eq!(s.violation(&p), None);
        s.clients[1].phase = Phase::Holding {
            attempt: 0,
            started_at: 0,
            token: 6,
        };
        assert_eq!(
            s.violation(&p),
            Some(Violation::MutualExclusion {
                first: 0,
                second: 1,
                at: 0
            })
        );
        s.now = 2; // past both local deadlines (1)
        assert_eq!(s.violation(&p), None);
        s.highest_token = Some(6);
        s.establish(0, 1, 2, 6);
        assert_eq!(
            s.violation(&p),
            Some(Violation::Fencing {
                previous: 6,
                later: 6
            })
        );
    }

    #[test]
    fn messages_are_lost_after_the_delivery_window() {
        let p = params();
        let s = State::initial(&p).remove(0);
        let s = step(&s, &p, Step::StartAcquire { client: 0 });
        let s = step(&s, &p, Step::Tick { stalled: 0 });
        assert_eq!(s.messages.len(), 3);
        let s = step(&s, &p, Step::Tick { stalled: 0 });
        assert!(s.messages.is_empty());
    }
}
