//! Inspect: one `mg <key> v c t`; tells free or held, by whom, for how long, and whether the
//! holder is this instance.

use std::time::Duration;

use commons::{Context, Result};
use lock_core::LockInfo;

use super::MemcachedLock;
use super::errors::unexpected;
use crate::client::{Call, Reply, Request};
use crate::key::wire_key;
use crate::value::LockValue;

impl MemcachedLock {
    pub(super) async fn inspect_once(&self, ctx: &Context, key: &str) -> Result<LockInfo> {
        let opened = self.opened(ctx)?;
        let wire = wire_key(ctx, key, &opened.config)?;
        let server = opened.cluster.server_for(&wire);
        let executed = server
            .call(ctx, Request::Get { key: wire }, &Call::repeatable())
            .await?;
        match executed.reply {
            Reply::En => Ok(LockInfo::free()),
            Reply::Va { data, flags } => {
                let mine = self.leases.holds_value(key, &data);
                let remaining = flags
                    .ttl
                    .filter(|t| *t >= 0)
                    .map(|t| Duration::from_secs(t as u64));
                Ok(LockInfo::held(
                    mine,
                    remaining,
                    Some(LockValue::describe(&data)),
                ))
            }
            other => Err(unexpected(ctx, "mg", &other)),
        }
    }
}
