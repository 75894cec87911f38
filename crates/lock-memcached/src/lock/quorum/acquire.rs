//! Quorum acquire: `ms ME` + `ma` to every server at once; granted when a majority of the
//! servers outside quarantine stored the item and validity is left once the fencing token is
//! established. Answers that come after the decision are not lost: a late grant of a granted
//! lock joins its replicas, a late grant of a refused one is deleted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use commons::{Context, Error, ErrorKind, Result};
use tokio::time::Instant;

use super::super::MemcachedLock;
use super::super::expiry::{self, Expiry};
use super::super::fencing;
use super::super::lease::validity;
use super::release::{adopt_unknown, delete_replica, delete_unknown, release_replicas};
use super::{Fan, QuorumHeld, Replica, drift, in_quarantine, is_outage, majority, no_quorum};
use crate::client::{
    AcquireReplies, AcquireRequest, Call, Endpoint, Executed, Reply, Request, WireKey,
};
use crate::codes::VALIDITY_USED_UP;
use crate::config::MemcachedLockConfig;
use crate::value::LockValue;

/// What the servers answered so far.
struct Tally {
    need: usize,
    /// Grants from servers outside quarantine.
    granted: usize,
    /// Refusals (held by another owner) from servers outside quarantine.
    busy: usize,
    /// Each granting server's counter value, by server index.
    counters: Vec<(usize, Option<u64>)>,
    /// Servers that may have stored the item without saying so.
    unknown: Vec<usize>,
    /// One line per server, for errors.
    said: Vec<String>,
    /// The earliest time a granting server's item may expire, by its clock.
    trusted_until: Option<Instant>,
}

impl Tally {
    fn new(n: usize) -> Tally {
        Tally {
            need: majority(n),
            granted: 0,
            busy: 0,
            counters: Vec::new(),
            unknown: Vec::new(),
            said: vec!["no answer in time".to_string(); n],
            trusted_until: None,
        }
    }

    /// Whether the answers so far settle the decision.
    fn settled(&self, n: usize) -> bool {
        self.granted >= self.need || self.busy > n - self.need
    }
}

impl MemcachedLock {
    /// One quorum acquire attempt; on success the lease record as stored in the table.
    pub(in crate::lock) async fn quorum_acquire_once(
        &self,
        ctx: &Context,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<QuorumHeld>> {
        let (opened, wire, secs) = self.prepare_quorum(ctx, key, ttl)?;
        let config = &opened.config;
        if self.quorum_leases.holds_valid(key) {
            return Ok(None); // not reentrant
        }
        let _place = self.quorum_leases.reserve(ctx, key, config.max_size)?;
        let servers = opened.cluster.servers();
        let n = servers.len();
        let value: Arc<[u8]> = LockValue::encode_new(&self.holder, ctx.trace_id()).into();
        let counter = fencing::counter_key(&wire);
        let started = Instant::now();
        let request = AcquireRequest {
            key: wire.clone(),
            data: value.clone(),
            ttl_secs: secs,
            counter: counter.clone(),
            initial: fencing::initial_value(config.quarantine, started),
        };
        let replicas = Arc::new(Mutex::new(vec![None; n]));
        let placed = Arc::new(Mutex::new(vec![None; n]));
        let mut answers = Fan::new();
        for (i, server) in servers.iter().enumerate() {
            let (ctx, server, placed) = (ctx.clone(), server.clone(), placed.clone());
            let mut request = request.clone();
            answers.push(async move {
                // Each server's expiry by its own clock.
                let (expiry, sent) =
                    match expiry::expiry_on(&ctx, &server, secs, Instant::now()).await {
                        Ok(placed) => placed,
                        Err(e) => return (i, Err(e)),
                    };
                slot(&placed)[i] = Some((expiry, sent));
                request.ttl_secs = expiry.wire();
                let call = Call::once();
                (i, server.call(&ctx, Request::Acquire(request), &call).await)
            });
        }
        let mut tally = Tally::new(n);
        while !tally.settled(n) {
            let Some((i, result)) = answers.next().await else {
                break;
            };
            let placed = slot(&placed)[i];
            let answer = Answer {
                i,
                result,
                placed,
                ttl: (ttl, secs),
            };
            record(&mut tally, &replicas, servers, config, answer);
        }
        let granted = tally.granted >= tally.need;
        let held = QuorumHeld {
            wire,
            value,
            replicas,
            fencing: Err("not established"),
            ttl,
            acquired_at: started,
            valid_until: started,
            gone_by: expiry::certainly_gone_by(secs),
            released: Arc::default(),
        };
        // The answers still on their way are handled in the background either way.
        finish_late(
            answers,
            held.clone(),
            servers.to_vec(),
            granted,
            tally.unknown.clone(),
        );
        if !granted {
            if tally.busy > n - tally.need {
                return Ok(None);
            }
            return Err(no_quorum(ctx, key, servers, &tally.said));
        }
        let fencing = establish_token(ctx, servers, config, &counter, &tally).await;
        let by_ttl = started + validity(ttl, secs).saturating_sub(drift(ttl, config));
        // Never past when a granting server's item may expire by that server's clock.
        let by_clocks = tally
            .trusted_until
            .map(|t| t.checked_sub(drift(ttl, config)).unwrap_or(started));
        let valid_until = by_clocks.map_or(by_ttl, |t| by_ttl.min(t));
        if Instant::now() >= valid_until {
            release_replicas(ctx, servers, &held).await;
            return Err(Error::new(
                ErrorKind::Timeout,
                VALIDITY_USED_UP,
                format!(
                    "a majority granted the lock, but only after its validity ({} ms for a ttl of {} ms) was used up; it was released",
                    validity(ttl, secs)
                        .saturating_sub(drift(ttl, config))
                        .as_millis(),
                    ttl.as_millis()
                ),
            )
            .with_detail("key", key)
            .with_context(ctx));
        }
        let held = QuorumHeld {
            fencing,
            valid_until,
            ..held
        };
        self.quorum_leases.insert(key, held.clone());
        Ok(Some(held))
    }
}

/// One server's answer to the fan-out, with the expiry its request was sent with.
struct Answer {
    i: usize,
    result: Result<Executed>,
    placed: Option<(Expiry, Instant)>,
    ttl: (Duration, u32),
}

fn slot<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Adds one server's answer to the tally (and its replica to the record when it granted).
fn record(
    tally: &mut Tally,
    replicas: &Mutex<Vec<Option<Replica>>>,
    servers: &[Arc<Endpoint>],
    config: &MemcachedLockConfig,
    answer: Answer,
) {
    let Answer {
        i,
        result,
        placed,
        ttl,
    } = answer;
    let executed = match result {
        Ok(executed) => executed,
        Err(e) => {
            if e.kind() == ErrorKind::OutcomeUnknown || e.kind() == ErrorKind::Protocol {
                tally.unknown.push(i);
            }
            tally.said[i] = format!("{} ({})", e.code(), e.message());
            return;
        }
    };
    let quarantined = in_quarantine(&servers[i], executed.identity, config);
    if quarantined {
        servers[i].health().note_quarantine(executed.identity);
    } else {
        servers[i].health().note_counted(executed.identity);
    }
    let Reply::Acquired(pair) = executed.reply else {
        tally.said[i] = "an unexpected reply".to_string();
        return;
    };
    let fresh = placed.and_then(|(_, sent)| {
        expiry::observe_clock(
            &servers[i],
            executed.identity,
            (sent, executed.arrived),
            pair.server_clock(),
        )
    });
    let AcquireReplies {
        stored, counter, ..
    } = *pair;
    match stored {
        Reply::Hd(flags) => {
            let Some(cas) = flags.cas.filter(|&c| c != 0) else {
                tally.said[i] = "CAS 0 (started with -C): not usable for locks".to_string();
                return;
            };
            if let Some((expiry, sent)) = placed {
                let (until, _) = expiry::trusted_until(
                    &servers[i],
                    executed.identity,
                    expiry,
                    (sent, executed.arrived),
                    ttl,
                    fresh,
                );
                tally.trusted_until = Some(tally.trusted_until.map_or(until, |t| t.min(until)));
            }
            if let Some(slot) = replicas
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(i)
            {
                *slot = Some(Replica {
                    cas,
                    identity: executed.identity,
                });
            }
            tally.counters.push((i, fencing::token(&counter).ok()));
            if quarantined {
                tally.said[i] = "granted, but in quarantine (recently restarted or flushed)".into();
            } else {
                tally.granted += 1;
                tally.said[i] = "granted".into();
            }
        }
        Reply::Ns(_) => {
            if quarantined {
                tally.said[i] = "held by another owner, in quarantine".into();
            } else {
                tally.busy += 1;
                tally.said[i] = "held by another owner".into();
            }
        }
        other => tally.said[i] = format!("an unexpected reply {other:?}"),
    }
}

/// The fencing token: the largest counter among the granting servers, raised on the others
/// so that every server of a majority holds at least it (a later holder's majority then
/// shares a server with this one, and reads a larger value). `Err` when no majority outside
/// quarantine could be brought to it.
async fn establish_token(
    ctx: &Context,
    servers: &[Arc<Endpoint>],
    config: &MemcachedLockConfig,
    counter: &WireKey,
    tally: &Tally,
) -> std::result::Result<u64, &'static str> {
    let Some(token) = tally.counters.iter().filter_map(|(_, c)| *c).max() else {
        return Err("no granting server advanced the fencing counter");
    };
    let mut established = Vec::new();
    let mut raises = Fan::new();
    for &(i, value) in &tally.counters {
        match value {
            Some(v) if v >= token => established.push(i),
            Some(v) => {
                let (ctx, server, counter) = (ctx.clone(), servers[i].clone(), counter.clone());
                raises.push(async move {
                    let request = Request::Raise {
                        counter,
                        by: token - v,
                    };
                    (i, server.call(&ctx, request, &Call::once()).await)
                });
            }
            None => {}
        }
    }
    while let Some(answer) = raises.next().await {
        if let (i, Ok(executed)) = answer
            && matches!(executed.reply, Reply::Count(v) if v >= token)
        {
            established.push(i);
        }
    }
    let counting = established
        .iter()
        .filter(|&&i| {
            servers[i]
                .health()
                .identity()
                .is_some_and(|id| !in_quarantine(&servers[i], id, config))
        })
        .count();
    if counting >= majority(servers.len()) {
        Ok(token)
    } else {
        Err("the fencing token could not be established on a majority of the servers")
    }
}

/// Completes the fan-out in the background: a late grant of a granted lock joins its
/// replicas; of a refused lock (and whatever a server may have stored without saying so) is
/// deleted by its token.
fn finish_late(
    mut answers: Fan<(usize, Result<Executed>)>,
    held: QuorumHeld,
    servers: Vec<Arc<Endpoint>>,
    granted: bool,
    unknown: Vec<usize>,
) {
    if granted && answers.is_empty() && unknown.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let ctx = Context::new();
        let mut unknown = unknown;
        while let Some((i, result)) = answers.next().await {
            match result {
                Ok(executed) => {
                    if let Reply::Acquired(pair) = executed.reply
                        && let Reply::Hd(flags) = pair.stored
                        && let Some(cas) = flags.cas.filter(|&c| c != 0)
                    {
                        let replica = Replica {
                            cas,
                            identity: executed.identity,
                        };
                        if !held.join_late(i, replica) {
                            // Released meanwhile: this copy goes too.
                            let _ = delete_replica(&ctx, &servers[i], &held, Some(replica)).await;
                        }
                    }
                }
                Err(e) if is_outage(&e) || e.kind() == ErrorKind::Protocol => unknown.push(i),
                Err(_) => {}
            }
        }
        if granted {
            adopt_unknown(&ctx, &servers, &held, &unknown).await;
        } else {
            release_replicas(&ctx, &servers, &held).await;
            delete_unknown(&ctx, &servers, &held, &unknown).await;
        }
    });
}
