//! The checker: turns the holders' records, the fenced resource's write log and the
//! scheduler's fault log into the figures of a chaos run.
//!
//! All times are wall-clock nanoseconds since the Unix epoch: every process of a run shares
//! the machine's clock.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Slack added around fault windows (scheduling noise between processes).
pub const FAULT_SLACK_NS: u64 = 250_000_000;

/// The kinds of fault the scheduler injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A memcached server killed and started again on the same port (forgets every lock).
    Restart,
    /// A memcached server frozen (SIGSTOP) for longer than the ttl.
    ServerPause,
    /// A worker process frozen (SIGSTOP) for longer than the ttl.
    ClientPause,
    /// A holder task sleeping through its lease while "inside" (reported by the workers).
    HolderSleep,
    /// Every proxied connection to a server aborted with RST.
    ConnectionReset,
    /// Replies from a server delayed by the proxy.
    Delay,
    /// Filler writes to the tiny server until it evicts items (locks included).
    Eviction,
    /// Quorum runs: a server restarted while another one is still in its restart quarantine
    /// (so that two servers at once do not count towards a majority).
    RestartInQuarantine,
}

/// How the run placed keys, which decides what may explain an overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// `options.mode=sharded`: each key lives on one server; a restart or eviction of that
    /// server may explain two holders valid at once.
    #[default]
    Sharded,
    /// `options.mode=quorum`: each key lives on every server; nothing explains two holders
    /// valid at once (the goal is 0).
    Quorum,
}

impl Mode {
    /// The name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sharded => "sharded",
            Mode::Quorum => "quorum",
        }
    }

    /// Parses [`Mode::name`].
    pub fn from_name(name: &str) -> Option<Mode> {
        [Mode::Sharded, Mode::Quorum]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Restart,
        FaultKind::ServerPause,
        FaultKind::ClientPause,
        FaultKind::HolderSleep,
        FaultKind::ConnectionReset,
        FaultKind::Delay,
        FaultKind::Eviction,
        FaultKind::RestartInQuarantine,
    ];

    /// The name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Restart => "restart",
            FaultKind::ServerPause => "server_pause",
            FaultKind::ClientPause => "client_pause",
            FaultKind::HolderSleep => "holder_sleep",
            FaultKind::ConnectionReset => "connection_reset",
            FaultKind::Delay => "delay",
            FaultKind::Eviction => "eviction",
            FaultKind::RestartInQuarantine => "restart_in_quarantine",
        }
    }

    /// Parses [`FaultKind::name`].
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether memcached loses locks to this fault (restart, eviction): only these may
    /// explain two holders that both believed their lease valid.
    pub fn memcached_cannot_survive(self) -> bool {
        matches!(
            self,
            FaultKind::Restart | FaultKind::Eviction | FaultKind::RestartInQuarantine
        )
    }

    /// Whether the fault acts on a server (rather than on a worker).
    pub fn on_server(self) -> bool {
        !matches!(self, FaultKind::ClientPause | FaultKind::HolderSleep)
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What was done.
    pub kind: FaultKind,
    /// The server index (server faults) or worker index (client pauses).
    pub target: Option<usize>,
    /// When it began.
    pub start_ns: u64,
    /// When it ended (the server answered again, the process ran again).
    pub end_ns: u64,
}

/// One holding of a lock, as its holder recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// `w<worker>.t<task>.<seq>`: joins the holder with its writes.
    pub id: String,
    /// The lock key.
    pub key: String,
    /// Index of the server the key lives on.
    pub server: usize,
    /// Whether the holding used a `LockGuard` (renewed) rather than a bare lease.
    pub guard: bool,
    /// When the acquire attempt that succeeded was sent (`Lease::acquired_at`).
    pub acquire_start_ns: u64,
    /// When the acquire returned the lease.
    pub enter_ns: u64,
    /// When the holder left (before its release call).
    pub exit_ns: u64,
    /// The lease's validity deadline as last known at exit (wall-clock estimate).
    pub deadline_ns: u64,
    /// The fencing token.
    pub fencing_token: Option<u64>,
    /// Whether the holder still believed its lease valid at exit (`Lease::is_valid()`,
    /// and for guards also "not lost").
    pub valid_at_exit: bool,
    /// Guards: whether the lost signal fired.
    pub lost_signal: bool,
    /// Guards: the lease's deadline passed but the lost signal did not fire.
    pub lost_without_signal: bool,
    /// Sampled check right after acquire: did the server hold this holder's item?
    pub on_server: Option<bool>,
    /// When that check returned.
    pub on_server_checked_ns: u64,
    /// How long the holder slept through its lease while inside (0: it did not).
    pub slept_inside_ms: u64,
}

/// One write presented to the fenced resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The holder's id.
    pub holder: String,
    /// The key (resource) written.
    pub key: String,
    /// The fencing token presented.
    pub token: u64,
    /// When the resource decided.
    pub at_ns: u64,
    /// Whether the resource accepted it (token >= highest seen for the key).
    pub accepted: bool,
}

/// The checker's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The mode of the run judged.
    pub mode: Mode,
    /// Holdings checked.
    pub holders: u64,
    /// Pairs of holdings of one key whose [enter, exit] intervals overlap.
    pub overlaps_total: u64,
    /// Overlaps where at least one holder knew its lease was no longer valid.
    pub overlaps_exposed_by_validity: u64,
    /// Overlaps where both holders believed their lease valid.
    pub overlaps_both_valid: u64,
    /// Of those: a restart or eviction of the key's server explains it and the fenced
    /// resource never accepted the older holder's write after the newer holder's.
    pub overlaps_explained: u64,
    /// Of those: not explained (must be 0).
    pub overlaps_unexplained: u64,
    /// Writes the resource accepted.
    pub writes_accepted: u64,
    /// Writes the resource rejected (stale token).
    pub writes_rejected: u64,
    /// Accepted writes from a holder whose key had meanwhile been acquired anew by a holder
    /// who had already presented its token (must be 0).
    pub stale_writes_accepted: u64,
    /// Rejected writes from a holder that still believed its lease valid and had no newer
    /// holder (a fencing token that went backwards, or an acquisition whose order the
    /// times cannot settle: reported, not fatal).
    pub fresh_writes_rejected: u64,
    /// Acquisitions returned while another holder's lease on the key was still valid, or
    /// whose item the server did not hold right after, unexplained (must be 0).
    pub false_acquires: u64,
    /// The same, explained by a restart or eviction of the key's server.
    pub false_acquires_explained: u64,
    /// Sampled after-acquire server checks.
    pub on_server_samples: u64,
    /// Guards whose lease expired without the lost signal (must be 0).
    pub lost_without_signal: u64,
    /// Holdings through a guard.
    pub guard_holders: u64,
    /// Guards whose lost signal fired.
    pub guards_lost: u64,
    /// Details of the first violations found.
    pub violations: Vec<String>,
}

const MAX_VIOLATIONS: usize = 25;

impl Report {
    /// Whether every must-be-zero figure is zero.
    pub fn ok(&self) -> bool {
        self.overlaps_unexplained == 0
            && self.stale_writes_accepted == 0
            && self.false_acquires == 0
            && self.lost_without_signal == 0
    }

    fn violation(&mut self, text: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(text);
        }
    }

    /// The figures as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "mode": self.mode.name(),
            "holders": self.holders,
            "overlaps": {
                "total": self.overlaps_total,
                "exposed_by_validity": self.overlaps_exposed_by_validity,
                "both_valid": self.overlaps_both_valid,
                "explained": self.overlaps_explained,
                "unexplained": self.overlaps_unexplained,
            },
            "writes": {
                "accepted": self.writes_accepted,
                "rejected": self.writes_rejected,
                "stale_accepted": self.stale_writes_accepted,
                "fresh_rejected": self.fresh_writes_rejected,
            },
            "false_acquires": self.false_acquires,
            "false_acquires_explained": self.false_acquires_explained,
            "on_server_samples": self.on_server_samples,
            "lost_without_signal": self.lost_without_signal,
            "guard_holders": self.guard_holders,
            "guards_lost": self.guards_lost,
            "violations": self.violations,
        })
    }
}

/// Whether a fault memcached cannot survive hit `server` between `from_ns` and `to_ns`.
pub fn explained_by_fault(faults: &[Fault], server: usize, from_ns: u64, to_ns: u64) -> bool {
    faults.iter().any(|f| {
        f.kind.memcached_cannot_survive()
            && f.target == Some(server)
            && f.start_ns <= to_ns.saturating_add(FAULT_SLACK_NS)
            && f.end_ns.saturating_add(FAULT_SLACK_NS) >= from_ns
    })
}

/// Whether any server-side fault (restart, pause, reset, delay, eviction) on any server falls
/// between `from_ns` and `to_ns`: in quorum mode what may explain an after-acquire sample
/// that did not find the item on a majority (a replica lost or not answering in time is a
/// loss of redundancy, not of safety).
pub fn any_server_fault(faults: &[Fault], from_ns: u64, to_ns: u64) -> bool {
    faults.iter().any(|f| {
        f.kind.on_server()
            && f.start_ns <= to_ns.saturating_add(FAULT_SLACK_NS)
            && f.end_ns.saturating_add(FAULT_SLACK_NS) >= from_ns
    })
}

/// The pairs of holdings of one key whose [enter, exit] intervals overlap while both holders
/// believed their lease valid at exit, as indices into `holders` (the one that entered first
/// comes first).
///
/// ```
/// use lock_chaos::checker::{both_valid_overlaps, Holder};
/// let h = |id: &str, enter, exit| Holder { id: id.into(), key: "k".into(), enter_ns: enter,
///     exit_ns: exit, valid_at_exit: true, ..Holder::default() };
/// assert_eq!(both_valid_overlaps(&[h("a", 10, 20), h("b", 15, 25), h("c", 30, 40)]), [(0, 1)]);
/// ```
pub fn both_valid_overlaps(holders: &[Holder]) -> Vec<(usize, usize)> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, h) in holders.iter().enumerate() {
        by_key.entry(h.key.as_str()).or_default().push(i);
    }
    let mut pairs = Vec::new();
    for list in by_key.values_mut() {
        list.sort_by_key(|i| holders[*i].enter_ns);
        for (j, &b) in list.iter().enumerate() {
            for &a in &list[..j] {
                let (ha, hb) = (&holders[a], &holders[b]);
                if ha.exit_ns > hb.enter_ns && ha.valid_at_exit && hb.valid_at_exit {
                    pairs.push((a, b));
                }
            }
        }
    }
    pairs
}

/// Runs every check on a sharded run ([`check_mode`] with [`Mode::Sharded`]).
///
/// ```
/// use lock_chaos::checker::{check, Holder};
///
/// let a = Holder { id: "a".into(), key: "k".into(), enter_ns: 10, exit_ns: 20,
///     deadline_ns: 30, valid_at_exit: true, ..Holder::default() };
/// let b = Holder { id: "b".into(), key: "k".into(), enter_ns: 15, exit_ns: 25,
///     deadline_ns: 40, valid_at_exit: true, ..Holder::default() };
/// let report = check(&[a, b], &[], &[]);
/// assert_eq!(report.overlaps_unexplained, 1);
/// assert!(!report.ok());
/// ```
pub fn check(holders: &[Holder], writes: &[Write], faults: &[Fault]) -> Report {
    check_mode(holders, writes, faults, Mode::Sharded)
}

/// Runs every check. In [`Mode::Quorum`] no fault explains an overlap of two holders that
/// both believed their lease valid, nor an acquire returned while another holder's lease was
/// valid (each key lives on every server: the lock must survive a fault of a minority); an
/// after-acquire sample that did not find the item on a majority is explained by any
/// server-side fault in its window.
///
/// ```
/// use lock_chaos::checker::{check_mode, Fault, FaultKind, Holder, Mode};
///
/// let a = Holder { id: "a".into(), key: "k".into(), enter_ns: 10, exit_ns: 20,
///     deadline_ns: 30, valid_at_exit: true, ..Holder::default() };
/// let b = Holder { id: "b".into(), key: "k".into(), enter_ns: 15, exit_ns: 25,
///     deadline_ns: 40, valid_at_exit: true, ..Holder::default() };
/// let restart = Fault { kind: FaultKind::Restart, target: Some(0), start_ns: 12, end_ns: 14 };
/// let sharded = check_mode(&[a.clone(), b.clone()], &[], &[restart.clone()], Mode::Sharded);
/// assert_eq!(sharded.overlaps_explained, 1);
/// let quorum = check_mode(&[a, b], &[], &[restart], Mode::Quorum);
/// assert_eq!((quorum.overlaps_both_valid, quorum.overlaps_unexplained), (1, 1));
/// assert!(!quorum.ok());
/// ```
pub fn check_mode(holders: &[Holder], writes: &[Write], faults: &[Fault], mode: Mode) -> Report {
    let quorum = mode == Mode::Quorum;
    let mut report = Report {
        mode,
        holders: holders.len() as u64,
        ..Report::default()
    };
    let mut by_key: BTreeMap<&str, Vec<&Holder>> = BTreeMap::new();
    for h in holders {
        by_key.entry(h.key.as_str()).or_default().push(h);
        if h.guard {
            report.guard_holders += 1;
            if h.lost_signal {
                report.guards_lost += 1;
            }
        }
        if h.lost_without_signal {
            report.lost_without_signal += 1;
            report.violation(format!(
                "{}: guard lease expired without the lost signal",
                h.id
            ));
        }
    }
    // Writes per holder, in resource order.
    let mut writes_by_holder: BTreeMap<&str, Vec<&Write>> = BTreeMap::new();
    for w in writes {
        writes_by_holder
            .entry(w.holder.as_str())
            .or_default()
            .push(w);
        if w.accepted {
            report.writes_accepted += 1;
        } else {
            report.writes_rejected += 1;
        }
    }
    let first_write = |id: &str| -> Option<u64> {
        writes_by_holder
            .get(id)
            .and_then(|ws| ws.iter().map(|w| w.at_ns).min())
    };

    for list in by_key.values_mut() {
        list.sort_by_key(|h| h.enter_ns);
        for (j, b) in list.iter().enumerate() {
            for a in &list[..j] {
                // Overlap of [enter, exit] intervals (a entered first).
                if a.exit_ns > b.enter_ns {
                    report.overlaps_total += 1;
                    if !a.valid_at_exit || !b.valid_at_exit {
                        report.overlaps_exposed_by_validity += 1;
                    } else {
                        report.overlaps_both_valid += 1;
                        let fault =
                            !quorum && explained_by_fault(faults, a.server, a.enter_ns, b.enter_ns);
                        let fenced = match first_write(&b.id) {
                            None => true, // the newer holder wrote nothing: nothing to interleave
                            Some(first_b) => {
                                !writes_by_holder.get(a.id.as_str()).is_some_and(|ws| {
                                    ws.iter().any(|w| w.accepted && w.at_ns > first_b)
                                })
                            }
                        };
                        if fault && fenced {
                            report.overlaps_explained += 1;
                        } else {
                            report.overlaps_unexplained += 1;
                            report.violation(format!(
                                "overlap on {}: {} [{}..{}] (token {:?}, deadline {}) and {} \
                                 [{}..{}] (token {:?}, deadline {}) both valid (fault \
                                 explains: {fault}, fenced: {fenced})",
                                a.key,
                                a.id,
                                a.enter_ns,
                                a.exit_ns,
                                a.fencing_token,
                                a.deadline_ns,
                                b.id,
                                b.enter_ns,
                                b.exit_ns,
                                b.fencing_token,
                                b.deadline_ns
                            ));
                        }
                    }
                }
                // False acquire: b got the key while a's lease was still valid.
                // (A lease that was already past its deadline when the acquire returned,
                // e.g. to a process frozen meanwhile, is not a claim of ownership.)
                let a_valid_end = a.exit_ns.min(a.deadline_ns);
                let b_valid_at_enter = b.deadline_ns > b.enter_ns;
                if b_valid_at_enter && b.enter_ns > a.enter_ns && b.enter_ns < a_valid_end {
                    if !quorum && explained_by_fault(faults, a.server, a.enter_ns, b.enter_ns) {
                        report.false_acquires_explained += 1;
                    } else {
                        report.false_acquires += 1;
                        report.violation(format!(
                            "false acquire on {}: {} entered at {} while {}'s lease was valid \
                             until {}",
                            a.key, b.id, b.enter_ns, a.id, a_valid_end
                        ));
                    }
                }
            }
        }
    }
    for h in holders {
        if let Some(on_server) = h.on_server {
            report.on_server_samples += 1;
            if !on_server {
                let (from, to) = (h.acquire_start_ns, h.on_server_checked_ns);
                let explained = if quorum {
                    any_server_fault(faults, from, to)
                } else {
                    explained_by_fault(faults, h.server, from, to)
                };
                if explained {
                    report.false_acquires_explained += 1;
                } else {
                    report.false_acquires += 1;
                    report.violation(format!(
                        "false acquire on {}: {}'s item was not on the server right after \
                         acquire",
                        h.key, h.id
                    ));
                }
            }
        }
    }
    stale_writes(holders, writes, &mut report);
    report
}

/// Stale writes: an accepted write by holder `h` after a newer acquisition of the same key
/// (one whose successful attempt was sent after `h` entered, so the server ordered it after
/// `h`) had presented its token to the resource.
fn stale_writes(holders: &[Holder], writes: &[Write], report: &mut Report) {
    let by_id: BTreeMap<&str, &Holder> = holders.iter().map(|h| (h.id.as_str(), h)).collect();
    // Per key: (holder acquire_start, holder enter, first write time) of every holder.
    let mut first_writes: BTreeMap<&str, u64> = BTreeMap::new();
    for w in writes {
        let e = first_writes.entry(w.holder.as_str()).or_insert(w.at_ns);
        *e = (*e).min(w.at_ns);
    }
    let mut per_key: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new(); // (acquire_start, first write)
    for (id, first) in &first_writes {
        if let Some(h) = by_id.get(id) {
            per_key
                .entry(h.key.as_str())
                .or_default()
                .push((h.acquire_start_ns, *first));
        }
    }
    for w in writes {
        let Some(h) = by_id.get(w.holder.as_str()) else {
            continue;
        };
        let newer_presented = per_key.get(h.key.as_str()).is_some_and(|v| {
            v.iter()
                .any(|(start, first)| *start > h.enter_ns && *first < w.at_ns)
        });
        if w.accepted && newer_presented {
            report.stale_writes_accepted += 1;
            report.violation(format!(
                "stale write accepted on {}: {} (token {}) after a newer holder wrote",
                w.key, w.holder, w.token
            ));
        }
        if !w.accepted && !newer_presented && h.valid_at_exit {
            report.fresh_writes_rejected += 1;
        }
    }
}

/// Reads a holder from a worker's JSON line.
pub fn holder_from_json(v: &Value) -> Option<Holder> {
    let u = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let b = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    Some(Holder {
        id: v.get("id")?.as_str()?.to_string(),
        key: v.get("key")?.as_str()?.to_string(),
        server: usize::try_from(u("server")).ok()?,
        guard: b("guard"),
        acquire_start_ns: u("acquire_start_ns"),
        enter_ns: u("enter_ns"),
        exit_ns: u("exit_ns"),
        deadline_ns: u("deadline_ns"),
        fencing_token: v.get("fencing_token").and_then(Value::as_u64),
        valid_at_exit: b("valid_at_exit"),
        lost_signal: b("lost_signal"),
        lost_without_signal: b("lost_without_signal"),
        on_server: v.get("on_server").and_then(Value::as_bool),
        on_server_checked_ns: u("on_server_checked_ns"),
        slept_inside_ms: u("slept_inside_ms"),
    })
}

/// A holder as the JSON line a worker prints.
pub fn holder_to_json(h: &Holder) -> Value {
    json!({
        "t": "holder",
        "id": h.id,
        "key": h.key,
        "server": h.server,
        "guard": h.guard,
        "acquire_start_ns": h.acquire_start_ns,
        "enter_ns": h.enter_ns,
        "exit_ns": h.exit_ns,
        "deadline_ns": h.deadline_ns,
        "fencing_token": h.fencing_token,
        "valid_at_exit": h.valid_at_exit,
        "lost_signal": h.lost_signal,
        "lost_without_signal": h.lost_without_signal,
        "on_server": h.on_server,
        "on_server_checked_ns": h.on_server_checked_ns,
        "slept_inside_ms": h.slept_inside_ms,
    })
}
