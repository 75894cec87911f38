//! Quorum inspect: every server's item, read at once; the lock is held when a majority of the
//! servers hold the same value.

use std::time::Duration;

use commons::{Context, Result};
use lock_core::LockInfo;

use super::super::MemcachedLock;
use super::{fan_out, majority, no_quorum};
use crate::client::{Call, Reply, Request};
use crate::key::wire_key;
use crate::value::LockValue;

impl MemcachedLock {
    pub(in crate::lock) async fn quorum_inspect(
        &self,
        ctx: &Context,
        key: &str,
    ) -> Result<LockInfo> {
        let opened = self.opened(ctx)?;
        let wire = wire_key(ctx, key, &opened.config)?;
        let servers = opened.cluster.servers();
        let request = Request::Get { key: wire };
        let mut answers = fan_out(ctx, servers, |_| {
            Some((request.clone(), Call::repeatable()))
        });
        // (value, how many servers hold it, the shortest remaining ttl among them)
        let mut values: Vec<(Vec<u8>, usize, Option<Duration>)> = Vec::new();
        let mut answered = 0;
        let mut said = vec!["no answer in time".to_string(); servers.len()];
        while let Some((i, result)) = answers.next().await {
            match result {
                Ok(executed) => {
                    answered += 1;
                    said[i] = "answered".into();
                    if let Reply::Va { data, flags } = executed.reply {
                        let left = flags
                            .ttl
                            .filter(|t| *t >= 0)
                            .map(|t| Duration::from_secs(t as u64));
                        match values.iter_mut().find(|(v, _, _)| *v == data) {
                            Some(entry) => {
                                entry.1 += 1;
                                entry.2 = entry.2.min(left).or(left);
                            }
                            None => values.push((data, 1, left)),
                        }
                    }
                }
                Err(e) => said[i] = format!("{} ({})", e.code(), e.message()),
            }
        }
        if answered < majority(servers.len()) {
            return Err(no_quorum(ctx, key, servers, &said));
        }
        let held = values
            .into_iter()
            .find(|(_, count, _)| *count >= majority(servers.len()));
        Ok(match held {
            None => LockInfo::free(),
            Some((data, _, left)) => LockInfo::held(
                self.quorum_leases.holds_value(key, &data),
                left,
                Some(LockValue::describe(&data)),
            ),
        })
    }
}
