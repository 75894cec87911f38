//! `force-release KEY --yes`: an administrator deletes a lock whoever holds it. Refused
//! without `--yes`; logged (at `warn`, so the default log level shows it) with the holder.

use commons::Context;
use lock_core::Lock;
use serde_json::json;

use crate::backend::{Backend, Source};
use crate::cli::ForceReleaseArgs;
use crate::exit::{self, Failure};

/// Runs the subcommand: exit 0 whether a lock was deleted or the key was already free.
pub(crate) async fn force_release(
    args: &ForceReleaseArgs,
    source: &Source,
    ctx: &Context,
) -> Result<u8, Failure> {
    if !args.yes {
        return Err(Failure::usage(format!(
            "force-release deletes the lock on '{}' whoever holds it (its holder keeps running \
             until its next renewal fails); add --yes to confirm",
            args.key
        )));
    }
    let backend = Backend::open(source, ctx).await?;
    let result = async {
        let lock = backend.memcached("force-release")?;
        let before = lock.inspect_lock(ctx, &args.key).await?.holder;
        let deleted = lock.force_release(ctx, &args.key).await?;
        Ok::<_, Failure>((before, deleted))
    }
    .await;
    backend.close(ctx, std::time::Duration::from_secs(2)).await;
    let (holder, deleted) = result?;
    tracing::warn!(
        key = %args.key,
        holder = holder.as_deref().unwrap_or("none"),
        deleted,
        user = std::env::var("USER").unwrap_or_default(),
        "force-release"
    );
    if args.json {
        println!(
            "{}",
            json!({"key": args.key, "deleted": deleted, "holder": holder})
        );
    } else if deleted {
        println!(
            "{}: force-released (was held by {})",
            args.key,
            holder.as_deref().unwrap_or("an unknown holder")
        );
    } else {
        println!("{}: was free, nothing deleted", args.key);
    }
    Ok(exit::SUCCESS)
}
