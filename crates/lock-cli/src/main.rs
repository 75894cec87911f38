#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod backend;
mod child;
mod cli;
mod exit;
mod force_release;
mod inspect;
mod run;
mod signals;
mod status;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use commons::Context;
use tracing_subscriber::EnvFilter;

use crate::backend::Source;
use crate::cli::{Cli, Command};
use crate::exit::Failure;

/// The trace id pip-lock's lock operations carry: it is stored with every lock pip-lock
/// takes, so `inspect` shows that a pip-lock holds it.
const TRACE_ID: &str = "pip-lock";

fn main() -> ExitCode {
    // A usage error exits 2 here, with the reason and the usage.
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| usage_error(e));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_error(e));
    cli.connection.prefer_command_line(&matches);
    let subcommand = match &cli.command {
        Command::Run(_) => "run",
        Command::Inspect(_) => "inspect",
        Command::Status(_) => "status",
        Command::ForceRelease(_) => "force-release",
    };
    if let Err(failure) = init_logging(cli.log_level.as_deref()) {
        return fail(failure, subcommand);
    }
    let source = match Source::from_cli(&cli.connection) {
        Ok(source) => source,
        Err(failure) => return fail(failure, subcommand),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pip-lock: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let ctx = Context::with_trace_id(TRACE_ID);
    tracing::debug!(config = %source.describe(), subcommand, "starting");
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Run(args) => run::run(args, &source, &ctx).await,
            Command::Inspect(args) => inspect::inspect(args, &source, &ctx).await,
            Command::Status(args) => status::status(args, &source, &ctx).await,
            Command::ForceRelease(args) => force_release::force_release(args, &source, &ctx).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => fail(failure, subcommand),
    }
}

/// Prints why pip-lock stops and returns the exit code; a usage error is printed the way
/// clap prints its own (the reason, then the subcommand's usage) and exits 2.
fn fail(failure: Failure, subcommand: &str) -> ExitCode {
    if failure.code == exit::USAGE {
        let mut command = Cli::command();
        command.build();
        let error_kind = clap::error::ErrorKind::ValueValidation;
        let error = match command.find_subcommand_mut(subcommand) {
            Some(sub) => sub.error(error_kind, &failure.message),
            None => command.error(error_kind, &failure.message),
        };
        let _ = error.print();
        return ExitCode::from(exit::USAGE);
    }
    eprintln!("pip-lock: {}", failure.message);
    ExitCode::from(failure.code)
}

/// Prints clap's error, with the usage where clap leaves it out (an invalid value), and exits
/// 2; `--help` and `--version` print and exit 0.
fn usage_error(error: clap::Error) -> ! {
    if !error.use_stderr() {
        error.exit();
    }
    let rendered = error.render().to_string();
    if rendered.contains("Usage:") {
        error.exit();
    }
    let mut command = Cli::command();
    command.build();
    let subcommand = std::env::args().skip(1).find_map(|arg| {
        command
            .find_subcommand(&arg)
            .map(|s| s.get_name().to_string())
    });
    let usage = match subcommand.and_then(|name| command.find_subcommand_mut(&name)) {
        Some(sub) => sub.render_usage(),
        None => command.render_usage(),
    };
    let (reason, more) = rendered
        .split_once("\nFor more information")
        .map_or((rendered.as_str(), ""), |(reason, _)| {
            (reason, "For more information, try '--help'.\n")
        });
    eprint!("{}\n\n{usage}\n\n{more}", reason.trim_end());
    std::process::exit(i32::from(exit::USAGE));
}

/// The filter `--log-level` asks for. Each comma-separated part is a level or
/// `TARGET=LEVEL`: tracing would read a bare word that is not a level (`verbose`, a
/// misspelt `degub`) as a target to log everything of, which logs nothing here, silently.
fn log_filter(level: &str) -> Result<EnvFilter, Failure> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let bad = |why: &str| {
        Failure::usage(format!(
            "--log-level '{level}': {why} (use one of {}, or TARGET=LEVEL such as lock_cli=debug)",
            LEVELS.join(", ")
        ))
    };
    for part in level.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(bad("an empty part"));
        }
        if !part.contains('=') && !LEVELS.contains(&part.to_ascii_lowercase().as_str()) {
            return Err(bad(&format!("'{part}' is not a level")));
        }
    }
    EnvFilter::try_new(level).map_err(|e| bad(&e.to_string()))
}

/// Log lines on stderr: `--log-level` (a bad one is a usage error), else `RUST_LOG`, else
/// `warn`.
fn init_logging(level: Option<&str>) -> Result<(), Failure> {
    let filter = match level {
        Some(level) => log_filter(level)?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    Ok(())
}
