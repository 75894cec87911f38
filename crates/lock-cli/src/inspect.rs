//! `inspect KEY`: held or free, for how long, by whom.

use commons::Context;
use lock_core::LockInfo;
use serde_json::{Map, Value, json};

use crate::backend::{Backend, Source};
use crate::cli::InspectArgs;
use crate::exit::{self, Failure};

/// What `inspect` says about the fencing token: the lock item does not carry it.
const NO_FENCING_TOKEN: &str = "not stored with the lock (the holder's command has it in \
                                PIP_LOCK_FENCING_TOKEN)";

/// Runs the subcommand: exit 0 whether the key is held or free.
pub(crate) async fn inspect(
    args: &InspectArgs,
    source: &Source,
    ctx: &Context,
) -> Result<u8, Failure> {
    let backend = Backend::open(source, ctx).await?;
    let info = backend.lock.inspect_lock(ctx, &args.key).await;
    backend.close(ctx, std::time::Duration::from_secs(2)).await;
    let info = info?;
    if args.json {
        println!("{}", to_json(&args.key, &info));
    } else {
        print_text(&args.key, &info);
    }
    Ok(exit::SUCCESS)
}

/// The JSON form: `key`, `held`, `remaining_ttl_ms`, `holder` (the stored text) and
/// `holder_fields` (its `name=value` parts), `fencing_token` (always `null`: see
/// [`NO_FENCING_TOKEN`]).
fn to_json(key: &str, info: &LockInfo) -> Value {
    json!({
        "key": key,
        "held": info.held,
        "remaining_ttl_ms": info.remaining_ttl.map(|t| t.as_millis() as u64),
        "holder": info.holder,
        "holder_fields": info.holder.as_deref().map(holder_fields),
        "fencing_token": Value::Null,
    })
}

/// `host=h;pid=1;trace=t` as an object.
fn holder_fields(holder: &str) -> Value {
    let fields: Map<String, Value> = holder
        .split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(name, value)| (name.to_string(), Value::String(value.to_string())))
        .collect();
    Value::Object(fields)
}

fn print_text(key: &str, info: &LockInfo) {
    if !info.held {
        println!("{key}: free");
        return;
    }
    println!("{key}: held");
    match info.remaining_ttl {
        Some(ttl) => println!("  remaining ttl: {}", humantime::format_duration(ttl)),
        None => println!("  remaining ttl: unknown"),
    }
    println!(
        "  holder:        {}",
        info.holder.as_deref().unwrap_or("unknown")
    );
    println!("  fencing token: {NO_FENCING_TOKEN}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_json_form_splits_the_holder() {
        let info = LockInfo::held(
            false,
            Some(Duration::from_secs(4)),
            Some("host=h;pid=7;trace=pip-lock".into()),
        );
        let v = to_json("k", &info);
        assert_eq!(v["held"], true);
        assert_eq!(v["remaining_ttl_ms"], 4000);
        assert_eq!(v["holder_fields"]["pid"], "7");
        assert_eq!(to_json("k", &LockInfo::free())["holder"], Value::Null);
    }
}
