//! `run KEY -- CMD...`: take the lock, run the command while it is held, release it.
//!
//! The order of events, each with its exit:
//! 1. open the lock (a signal stops it: 128 + N; an unreachable server: 69);
//! 2. take the lock: at once (`--no-wait`), within `--wait`, or whenever it comes; busy to the
//!    end exits with `--conflict-exit-code`, and a signal stops the wait (128 + N), in both
//!    cases without running anything;
//! 3. run the command in its own process group with the lease in its environment, the lease
//!    renewed by a `LockGuard`; SIGINT, SIGTERM and SIGHUP are forwarded to the group;
//! 4. the command exits: release, exit with its code (128 + N when a signal ended it);
//!    or the lock is lost first: SIGTERM to the group, SIGKILL after `--kill-grace`, exit 75.

use std::time::Duration;

use commons::{Context, codes};
use lock_core::LockGuard;

use crate::backend::{Backend, Source};
use crate::child::{self, Group, LeaseEnv};
use crate::cli::RunArgs;
use crate::exit::{self, Failure};
use crate::signals::Signals;

/// How long releasing the lock and closing the connections may take on the way out.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// Runs the subcommand; the exit code on every path that is not an error.
pub(crate) async fn run(args: &RunArgs, source: &Source, ctx: &Context) -> Result<u8, Failure> {
    // Before the lock is made: its metric handles are registered when it opens.
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr)?;
    }
    let mut signals = Signals::catch().map_err(|e| Failure {
        code: exit::FAILURE,
        message: format!("cannot catch signals: {e}"),
    })?;
    let backend = tokio::select! {
        opened = Backend::open(source, ctx) => opened?,
        signal = signals.recv() => {
            eprintln!("pip-lock: {signal} while connecting: not running the command");
            return Ok(exit::for_signal(signal as i32));
        }
    };
    let result = hold_and_run(args, &backend, &mut signals, ctx).await;
    backend.close(ctx, CLOSE_LIMIT).await;
    result
}

/// Steps 2 to 4, on an opened lock.
async fn hold_and_run(
    args: &RunArgs,
    backend: &Backend,
    signals: &mut Signals,
    ctx: &Context,
) -> Result<u8, Failure> {
    let key = args.key.as_str();
    let builder = LockGuard::builder(backend.lock.clone(), key, args.ttl);
    let acquiring = async {
        if args.no_wait {
            builder.try_acquire(ctx).await
        } else {
            // No --wait: as long as it takes (the retry loop reads a huge timeout as forever).
            let wait = args.wait.unwrap_or(Duration::MAX);
            builder.acquire(ctx, wait).await.map(Some)
        }
    };
    tracing::info!(key, no_wait = args.no_wait, wait = ?args.wait, "waiting for the lock");
    let guard = tokio::select! {
        got = acquiring => match got {
            Ok(Some(guard)) => guard,
            Ok(None) => {
                eprintln!("pip-lock: '{key}' is busy{}; not running the command", held_by(backend, ctx, key).await);
                return Ok(args.conflict_exit_code);
            }
            Err(e) if e.code() == codes::LOCK_TIMEOUT => {
                eprintln!(
                    "pip-lock: '{key}' is still busy after waiting {}{}; not running the command",
                    humantime::format_duration(args.wait.unwrap_or_default()),
                    held_by(backend, ctx, key).await
                );
                return Ok(args.conflict_exit_code);
            }
            Err(e) => return Err(e.into()),
        },
        signal = signals.recv() => {
            eprintln!("pip-lock: {signal} while waiting for '{key}': not running the command");
            return Ok(exit::for_signal(signal as i32));
        }
    };
    let lease = guard.lease();
    tracing::info!(
        key,
        fencing_token = ?lease.fencing_token,
        ttl_ms = args.ttl.as_millis() as u64,
        renew_interval_ms = guard.renew_interval().as_millis() as u64,
        "lock acquired"
    );
    let env = LeaseEnv {
        key,
        fencing_token: lease.fencing_token,
        ttl: args.ttl,
    };
    let mut group = match Group::spawn(&args.command, args.shell, &env) {
        Ok(group) => group,
        Err((code, message)) => {
            eprintln!("pip-lock: {message}");
            release(guard).await;
            return Ok(code);
        }
    };
    tracing::info!(key, pgid = group.pgid(), "command started");

    let lost = guard.lost();
    tokio::pin!(lost);
    let exited = loop {
        tokio::select! {
            // An exit and a loss noticed together: the command finished its work.
            biased;
            status = group.wait() => break Some(status),
            _ = &mut lost => break None,
            signal = signals.recv() => {
                tracing::info!(%signal, pgid = group.pgid(), "forwarding a signal to the command");
                group.signal(signal);
            }
        }
    };
    match exited {
        Some(status) => {
            let status = status.map_err(|e| Failure {
                code: exit::FAILURE,
                message: format!("waiting for the command failed: {e}"),
            })?;
            let code = child::exit_code(status);
            tracing::info!(key, %status, code, "command exited");
            release(guard).await;
            Ok(code)
        }
        None => {
            eprintln!(
                "pip-lock: lost the lock on '{key}' (a renewal was refused or the lease ran out \
                 before one succeeded): another process may hold it now; stopping the command \
                 (SIGTERM to its process group, SIGKILL after {})",
                humantime::format_duration(args.kill_grace)
            );
            let killed = group.stop(args.kill_grace).await;
            tracing::warn!(key, killed, "command stopped after the lock was lost");
            release(guard).await;
            Ok(exit::LOCK_LOST)
        }
    }
}

/// Releases the guard's lease (token-checked), within [`CLOSE_LIMIT`]; failures are logged,
/// since the ttl frees the lock anyway.
async fn release(guard: LockGuard) {
    match tokio::time::timeout(CLOSE_LIMIT, guard.release()).await {
        Ok(Ok(true)) => tracing::info!("lock released"),
        Ok(Ok(false)) => tracing::warn!("the lock was no longer held at release (expired or lost)"),
        Ok(Err(e)) => tracing::warn!(error = %e, "releasing the lock failed; its ttl frees it"),
        Err(_) => tracing::warn!("releasing the lock timed out; its ttl frees it"),
    }
}

/// ` (held by host=..;pid=..)` when an inspection tells the holder, else nothing.
async fn held_by(backend: &Backend, ctx: &Context, key: &str) -> String {
    match backend.lock.inspect_lock(ctx, key).await {
        Ok(info) if info.held => info
            .holder
            .map(|holder| format!(" (held by {holder})"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Installs a Prometheus recorder answering on `addr` (on this runtime, until pip-lock exits).
fn serve_metrics(addr: std::net::SocketAddr) -> Result<(), Failure> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| Failure {
            code: exit::CONFIG,
            message: format!("--metrics-addr {addr}: cannot serve metrics there: {e}"),
        })?;
    tracing::debug!(%addr, "serving metrics");
    Ok(())
}
